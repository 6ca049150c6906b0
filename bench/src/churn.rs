//! `aula-bench churn`: thousands of joins and leaves one after another (a share of them abrupt,
//! some publishing on the way) against one `aula-server` process; its resident memory, async
//! tasks, open files and threads before (after a warm-up) and after (after a settle time) must
//! match.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::media::SyntheticAudioSource;
use aula_core::{ChatDraft, Room, RoomOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use aula_server::{DEV_API_KEY, DEV_API_SECRET};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::harness::{publish, Camera};
use crate::server_process::{
    open_file_changes, MachineLoad, ProcSample, ServerCounts, ServerOptions, ServerProcess,
};

/// Arguments of `aula-bench churn`.
#[derive(Args, Debug, Clone)]
pub struct ChurnArgs {
    /// Joins measured, each followed by a leave.
    #[arg(long, default_value_t = 10_000)]
    pub joins: usize,
    /// Joins before the first reading, so that what the server allocates once is in place.
    #[arg(long, default_value_t = 200)]
    pub warmup_joins: usize,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Rooms the joins are spread over.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Share of leaves that are abrupt: the room is dropped without a `leave`.
    #[arg(long, default_value_t = 0.3)]
    pub abrupt_share: f64,
    /// Share of joins that reconnect before leaving: the same identity joins again while its
    /// first connection is still open (as a client does whose network dropped), so the server
    /// replaces the older session; the first connection is then dropped.
    #[arg(long, default_value_t = 0.2)]
    pub reconnect_share: f64,
    /// Share of joins that publish a microphone before leaving.
    #[arg(long, default_value_t = 0.1)]
    pub publish_share: f64,
    /// No resident teacher publishing video in the first room (by default one stays there
    /// throughout, and every joiner of that room subscribes to its camera).
    #[arg(long)]
    pub no_resident: bool,
    /// Seconds the server is left alone before each reading.
    #[arg(long, default_value_t = 15.0)]
    pub settle_seconds: f64,
    /// Seed of the schedule (holds, which leaves are abrupt, who publishes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The aula-server binary [default: the one beside this executable].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Also write the report here, JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The server at one reading.
#[derive(Clone, Debug, Serialize)]
pub struct Reading {
    /// From /proc.
    #[serde(flatten)]
    pub proc: ProcSample,
    /// From /metrics.
    #[serde(flatten)]
    pub counts: ServerCounts,
    /// Open files by kind (socket, pipe, anonymous inode, path).
    pub open_file_kinds: BTreeMap<String, u64>,
}

/// What `churn` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnReport {
    /// The machine at the start and at the end.
    pub machine_before: MachineLoad,
    /// See `machine_before`.
    pub machine_after: MachineLoad,
    /// Joins measured, how many failed, and the first failure.
    pub joins: usize,
    /// See `joins`.
    pub failures: u64,
    /// See `joins`.
    pub first_error: Option<String>,
    /// Leaves that were abrupt, and joins that published a microphone.
    pub abrupt_leaves: u64,
    /// See `abrupt_leaves`.
    pub publishing_joins: u64,
    /// Joins that reconnected (joined again under the same identity) before leaving.
    pub reconnects: u64,
    /// Joins in flight at once, rooms.
    pub parallel: usize,
    /// See `parallel`.
    pub rooms: usize,
    /// Whether a resident teacher published video in the first room throughout.
    pub resident_publisher: bool,
    /// Seconds the measured joins took, and their rate.
    pub elapsed_s: f64,
    /// See `elapsed_s`.
    pub joins_per_second: f64,
    /// The server after the warm-up and a settle time, and after the joins and a settle time.
    pub before: Reading,
    /// See `before`.
    pub after: Reading,
    /// Resident set after minus before, KiB, and as a share of before.
    pub rss_growth_kib: i64,
    /// See `rss_growth_kib`.
    pub rss_growth_share: f64,
    /// Async tasks after minus before.
    pub tasks_growth: i64,
    /// Open files after minus before.
    pub fd_growth: i64,
    /// Threads after minus before.
    pub threads_growth: i64,
    /// The load generator's resident set before and after, KiB.
    pub generator_rss_kib: [u64; 2],
    /// Whether each goal was met.
    pub goals: ChurnGoals,
}

/// Growth of the resident set from before to after the joins that still counts as back to
/// baseline (allocator caches and the chat history the joins leave behind).
const RSS_TOLERANCE: f64 = 0.05;

/// The churn's goals, each met or not.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnGoals {
    /// Every join, publish and chat succeeded.
    pub no_failures: bool,
    /// The resident set came back within 5 % of before.
    pub memory_back: bool,
    /// No more async tasks after than before.
    pub tasks_back: bool,
    /// No more open files after than before.
    pub fds_back: bool,
    /// No participant left behind: only the resident teacher, if any, is counted after.
    pub participants_back: bool,
}

impl ChurnGoals {
    /// The goals not met, in words.
    pub fn missed(&self) -> Vec<&'static str> {
        [
            (self.no_failures, "joins failed"),
            (self.memory_back, "memory did not come back within 5 %"),
            (self.tasks_back, "more async tasks after than before"),
            (self.fds_back, "more open files after than before"),
            (self.participants_back, "participants left behind"),
        ]
        .into_iter()
        .filter(|(met, _)| !met)
        .map(|(_, what)| what)
        .collect()
    }
}

/// What every join worker shares.
struct Shared {
    url: String,
    args: ChurnArgs,
    next: AtomicUsize,
    failures: AtomicU64,
    abrupt: AtomicU64,
    publishing: AtomicU64,
    reconnects: AtomicU64,
    first_error: Mutex<Option<String>>,
}

fn token(room: &str, identity: &str, role: Role) -> anyhow::Result<String> {
    Ok(
        Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 24 * 3600)
            .sign(DEV_API_SECRET)?,
    )
}

/// One join: connect, maybe publish a microphone and chat, maybe reconnect, hold a moment,
/// leave.
async fn join_once(shared: &Shared, index: usize, rng: &mut StdRng) -> anyhow::Result<()> {
    let room_name = format!("churn-{}", index % shared.args.rooms);
    let identity = format!("churn-{index}");
    let token = token(&room_name, &identity, Role::Student)?;
    let (room, _events) = Room::connect(&shared.url, &token, RoomOptions::default())
        .await
        .with_context(|| format!("{identity} cannot join {room_name}"))?;
    let publishes = rng.random_bool(shared.args.publish_share);
    let abrupt = rng.random_bool(shared.args.abrupt_share);
    let reconnects = rng.random_bool(shared.args.reconnect_share);
    let chats = rng.random_bool(0.25);
    let hold = Duration::from_millis(rng.random_range(0..250));
    if publishes {
        room.publish_audio(SyntheticAudioSource::new(440.0), "mic")
            .await
            .with_context(|| format!("{identity} cannot publish"))?;
        shared.publishing.fetch_add(1, Ordering::Relaxed);
    }
    if chats {
        room.send_chat(ChatDraft {
            text: format!("{identity} was here"),
            to: None,
            announcement: false,
        })
        .await
        .with_context(|| format!("{identity} cannot chat"))?;
    }
    // Publishers stay long enough for their audio to reach the others.
    let hold = if publishes {
        hold + Duration::from_millis(300)
    } else {
        hold
    };
    tokio::time::sleep(hold).await;
    let room = if reconnects {
        // The second connection takes the identity over; the server closes the first.
        let (again, _events) = Room::connect(&shared.url, &token, RoomOptions::default())
            .await
            .with_context(|| format!("{identity} cannot reconnect to {room_name}"))?;
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        drop(room);
        again
    } else {
        room
    };
    if abrupt {
        shared.abrupt.fetch_add(1, Ordering::Relaxed);
        drop(room);
    } else {
        room.disconnect().await;
    }
    Ok(())
}

/// Runs `count` joins on `parallel` workers; returns how long they took.
async fn churn(shared: &Arc<Shared>, first: usize, count: usize, progress: bool) -> Duration {
    shared.next.store(first, Ordering::SeqCst);
    let end = first + count;
    let started = Instant::now();
    let workers: Vec<_> = (0..shared.args.parallel)
        .map(|worker| {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(
                    shared
                        .args
                        .seed
                        .wrapping_mul(7919)
                        .wrapping_add((first + worker) as u64),
                );
                loop {
                    let index = shared.next.fetch_add(1, Ordering::SeqCst);
                    if index >= end {
                        break;
                    }
                    if let Err(err) = join_once(&shared, index, &mut rng).await {
                        shared.failures.fetch_add(1, Ordering::Relaxed);
                        let mut first_error =
                            shared.first_error.lock().unwrap_or_else(|p| p.into_inner());
                        first_error.get_or_insert_with(|| format!("{err:#}"));
                    }
                    let done = index + 1 - first;
                    if progress && done.is_multiple_of(500) {
                        eprintln!("{done} joins in {:.0} s", started.elapsed().as_secs_f64());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    started.elapsed()
}

async fn read(server: &ServerProcess) -> anyhow::Result<Reading> {
    Ok(Reading {
        proc: server.sample()?,
        counts: server.counts().await?,
        open_file_kinds: server.open_file_kinds()?,
    })
}

fn own_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn validate(args: &ChurnArgs) -> anyhow::Result<()> {
    if args.joins == 0 || args.parallel == 0 || args.rooms == 0 {
        bail!("--joins, --parallel and --rooms must be at least 1");
    }
    for (name, share) in [
        ("--abrupt-share", args.abrupt_share),
        ("--publish-share", args.publish_share),
        ("--reconnect-share", args.reconnect_share),
    ] {
        if !(0.0..=1.0).contains(&share) {
            bail!("{name} must be between 0 and 1");
        }
    }
    if !(args.settle_seconds.is_finite() && args.settle_seconds >= 0.0) {
        bail!("--settle-seconds cannot be negative");
    }
    Ok(())
}

/// Runs the churn and returns what it measured.
pub async fn run_churn(args: ChurnArgs) -> anyhow::Result<ChurnReport> {
    validate(&args)?;
    let machine_before = MachineLoad::now();
    let data_dir = std::env::temp_dir().join(format!("aula-churn-{}", std::process::id()));
    let server = ServerProcess::start(&ServerOptions {
        binary: args.server_bin.clone(),
        data_dir: Some(data_dir.clone()),
        // Abruptly dropped connections are closed by the kernel at once, but allow for a few
        // still being torn down while the next joins arrive.
        max_connections_per_ip: Some(args.parallel * 4 + 64),
    })?;
    let result = churn_against(&args, &server, machine_before).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn churn_against(
    args: &ChurnArgs,
    server: &ServerProcess,
    machine_before: MachineLoad,
) -> anyhow::Result<ChurnReport> {
    let shared = Arc::new(Shared {
        url: server.url().to_owned(),
        args: args.clone(),
        next: AtomicUsize::new(0),
        failures: AtomicU64::new(0),
        abrupt: AtomicU64::new(0),
        publishing: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let resident = if args.no_resident {
        None
    } else {
        let (room, _events) = Room::connect(
            server.url(),
            &token("churn-0", "resident-teacher", Role::Teacher)?,
            RoomOptions::default(),
        )
        .await
        .context("the resident teacher cannot join")?;
        publish(&room, Camera::new(640, 360, 15, None)).await?;
        Some(room)
    };
    let settle = Duration::from_secs_f64(args.settle_seconds);
    if !args.json {
        eprintln!(
            "churn: {} warm-up joins, then {} measured, {} at a time over {} rooms",
            args.warmup_joins, args.joins, args.parallel, args.rooms
        );
    }
    churn(&shared, 0, args.warmup_joins, false).await;
    tokio::time::sleep(settle).await;
    let before = read(server).await?;
    let generator_before = own_rss_kib();
    // Counts are of the measured joins only.
    shared.failures.store(0, Ordering::SeqCst);
    shared.abrupt.store(0, Ordering::SeqCst);
    shared.publishing.store(0, Ordering::SeqCst);
    shared.reconnects.store(0, Ordering::SeqCst);
    *shared.first_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let elapsed = churn(&shared, args.warmup_joins, args.joins, !args.json).await;
    tokio::time::sleep(settle).await;
    let after = read(server).await?;
    if let Some(room) = resident {
        room.disconnect().await;
    }
    let growth = |a: u64, b: u64| a as i64 - b as i64;
    let rss_growth_share = (after.proc.rss_kib as f64 - before.proc.rss_kib as f64)
        / before.proc.rss_kib.max(1) as f64;
    let failures = shared.failures.load(Ordering::SeqCst);
    let goals = ChurnGoals {
        no_failures: failures == 0,
        memory_back: rss_growth_share < RSS_TOLERANCE,
        tasks_back: after.counts.tasks <= before.counts.tasks,
        fds_back: after.proc.fds <= before.proc.fds,
        participants_back: after.counts.participants <= u64::from(!args.no_resident),
    };
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(ChurnReport {
        machine_before,
        machine_after: MachineLoad::now(),
        joins: args.joins,
        failures,
        first_error,
        abrupt_leaves: shared.abrupt.load(Ordering::SeqCst),
        publishing_joins: shared.publishing.load(Ordering::SeqCst),
        reconnects: shared.reconnects.load(Ordering::SeqCst),
        parallel: args.parallel,
        rooms: args.rooms,
        resident_publisher: !args.no_resident,
        elapsed_s: elapsed.as_secs_f64(),
        joins_per_second: args.joins as f64 / elapsed.as_secs_f64().max(1e-3),
        rss_growth_kib: growth(after.proc.rss_kib, before.proc.rss_kib),
        rss_growth_share,
        tasks_growth: growth(after.counts.tasks, before.counts.tasks),
        fd_growth: growth(after.proc.fds, before.proc.fds),
        threads_growth: growth(after.proc.threads, before.proc.threads),
        generator_rss_kib: [generator_before, own_rss_kib()],
        goals,
        before,
        after,
    })
}

/// `aula-bench churn`.
pub async fn run(args: ChurnArgs) -> anyhow::Result<()> {
    let json = args.json;
    let out = args.out.clone();
    let r = run_churn(args).await?;
    if let Some(path) = &out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    let missed = r.goals.missed();
    if !missed.is_empty() {
        bail!("churn failed: {}", missed.join(", "));
    }
    Ok(())
}

fn print_report(r: &ChurnReport) {
    println!(
        "{} joins and leaves ({} abrupt, {} reconnecting, {} publishing a microphone, {} failed) in {:.0} s: {:.1} joins/s, {} at a time over {} rooms",
        r.joins, r.abrupt_leaves, r.reconnects, r.publishing_joins, r.failures, r.elapsed_s, r.joins_per_second,
        r.parallel, r.rooms
    );
    if let Some(err) = &r.first_error {
        println!("first failure: {err}");
    }
    println!(
        "server before/after: RSS {}/{} KiB ({:+} KiB, {:+.2} %), tasks {}/{} ({:+}), open files {}/{} ({:+}), threads {}/{} ({:+}); participants after {}, rooms after {}",
        r.before.proc.rss_kib, r.after.proc.rss_kib, r.rss_growth_kib, r.rss_growth_share * 100.0,
        r.before.counts.tasks, r.after.counts.tasks, r.tasks_growth,
        r.before.proc.fds, r.after.proc.fds, r.fd_growth,
        r.before.proc.threads, r.after.proc.threads, r.threads_growth,
        r.after.counts.participants, r.after.counts.rooms
    );
    let changes = open_file_changes(&r.before.open_file_kinds, &r.after.open_file_kinds);
    if !changes.is_empty() {
        println!("open files that changed: {changes}");
    }
    println!(
        "machine: {} at the start, {} at the end; load generator RSS {} -> {} KiB",
        r.machine_before, r.machine_after, r.generator_rss_kib[0], r.generator_rss_kib[1]
    );
    let missed = r.goals.missed();
    if missed.is_empty() {
        println!("verdict: PASS");
    } else {
        println!("verdict: FAIL ({})", missed.join(", "));
    }
}
