//! `aula-bench soak`: classes of mixed sizes join, publish, draw, chat, leave (some abruptly)
//! and rejoin against one `aula-server` process for many minutes, while the server's resident
//! memory, CPU, open files, threads and async tasks are sampled. The goal: memory flat after
//! the warm-up, no file, thread or task growth, and no receiver starved of video.
//!
//! Writes a JSON report (summary and every sample) and a PNG plot of the samples.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::{ChatDraft, Room, RoomOptions, VideoSink};
use aula_protocol::token::unix_now;
use aula_protocol::whiteboard::Point;
use aula_protocol::{Claims, MediaKind, Role};
use aula_server::{DEV_API_KEY, DEV_API_SECRET};
use clap::Args;
use plotters::style::RGBColor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::harness::{median, publish, Camera};
use crate::plot::{self, Line, Panel};
use crate::server_process::{
    open_file_changes, MachineLoad, ProcSample, ServerCounts, ServerOptions, ServerProcess,
};
use crate::starvation::{
    LastFrames, PublisherView, ReceiverView, StarvationRules, StarvationTally, StarvationWatch,
};

/// Arguments of `aula-bench soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Minutes the classes run.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// The classes, as SIZE:PUBLISHERS separated by commas: participants in each class, and how
    /// many of them publish a camera (640x360 at 15 fps, simulcast) and a microphone.
    #[arg(long, default_value = "2:1,5:2,12:1")]
    pub classes: String,
    /// Minutes of warm-up left out of the memory trend [default: a tenth of the run, from half
    /// a minute to five minutes].
    #[arg(long)]
    pub warmup_minutes: Option<f64>,
    /// Seconds between samples of the server.
    #[arg(long, default_value_t = 5.0)]
    pub sample_seconds: f64,
    /// Shortest stay in a class before leaving, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub stay_min: f64,
    /// Longest stay in a class before leaving, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub stay_max: f64,
    /// Share of leaves that are abrupt: the room is dropped without a `leave` (the sockets
    /// close under the server).
    #[arg(long, default_value_t = 0.3)]
    pub abrupt_share: f64,
    /// Seconds without a decoded frame from a sending publisher that count as starvation.
    #[arg(long, default_value_t = 5.0)]
    pub starve_seconds: f64,
    /// Seconds a receiver and a publisher get after the later of them arrived before silence
    /// counts (join, ICE, DTLS, first keyframe).
    #[arg(long, default_value_t = 10.0)]
    pub grace_seconds: f64,
    /// Seconds the server is left alone after everyone left, before its resting state is read.
    #[arg(long, default_value_t = 15.0)]
    pub settle_seconds: f64,
    /// Seed of the schedule (stays, pauses, which leaves are abrupt, strokes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The full report (summary and samples), JSON.
    #[arg(long, default_value = "target/soak/soak.json")]
    pub out: PathBuf,
    /// The plot, PNG [default: the --out path with the extension .png].
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The aula-server binary [default: the one beside this executable].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One class: its size and how many of its members publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClassSpec {
    /// Participants.
    pub size: usize,
    /// Of them, publishers of camera and microphone.
    pub publishers: usize,
}

/// Parses `2:1,5:2,12:1` (a bare size means one publisher).
pub fn parse_classes(text: &str) -> anyhow::Result<Vec<ClassSpec>> {
    let classes = text
        .split(',')
        .map(|part| {
            let part = part.trim();
            let (size, publishers) = part.split_once(':').unwrap_or((part, "1"));
            let spec = ClassSpec {
                size: size
                    .trim()
                    .parse()
                    .with_context(|| format!("class {part:?}: size is not a number"))?,
                publishers: publishers
                    .trim()
                    .parse()
                    .with_context(|| format!("class {part:?}: publishers is not a number"))?,
            };
            if spec.size == 0 || spec.publishers > spec.size {
                bail!(
                    "class {part:?}: needs 1 or more participants and at most that many publishers"
                );
            }
            Ok(spec)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if classes.is_empty() {
        bail!("no classes");
    }
    Ok(classes)
}

/// What the soak found: the summary printed with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct SoakSummary {
    /// The machine, before and after.
    pub machine_before: MachineLoad,
    /// The machine's load at the end.
    pub machine_after: MachineLoad,
    /// The load in words.
    pub load: String,
    /// Minutes run.
    pub minutes: f64,
    /// Minutes of warm-up left out of the trend.
    pub warmup_minutes: f64,
    /// Minutes each comparison window spans (the first after warm-up, the last).
    pub window_minutes: f64,
    /// Samples taken.
    pub samples: usize,
    /// Server resident set, median of the first window after warm-up, KiB.
    pub rss_kib_first_window: f64,
    /// Median of the last window, KiB.
    pub rss_kib_last_window: f64,
    /// (last - first) / first: the goal is under 0.05.
    pub rss_growth_share: f64,
    /// Least-squares slope of the resident set after the warm-up, KiB per hour.
    pub rss_trend_kib_per_hour: f64,
    /// Resident set at rest, before the classes and after everyone left, KiB.
    pub rss_kib_at_rest: [u64; 2],
    /// Open files at rest, before and after.
    pub fds_at_rest: [u64; 2],
    /// Open files after minus before (at rest): the goal is 0 or less.
    pub fd_growth: i64,
    /// Open files at rest by kind (socket, pipe, anonymous inode, path), before and after.
    pub fd_kinds_at_rest: [BTreeMap<String, u64>; 2],
    /// Open files during the classes, medians of the first and last windows.
    pub fds_windows: [f64; 2],
    /// Async tasks at rest, before and after.
    pub tasks_at_rest: [u64; 2],
    /// Tasks after minus before (at rest): the goal is 0 or less.
    pub tasks_growth: i64,
    /// Tasks during the classes, medians of the first and last windows.
    pub tasks_windows: [f64; 2],
    /// OS threads at rest, before and after.
    pub threads_at_rest: [u64; 2],
    /// Threads after minus before (at rest).
    pub threads_growth: i64,
    /// Rooms and participants the server still counted at rest after the run (0 and 0).
    pub rooms_after: u64,
    /// See `rooms_after`.
    pub participants_after: u64,
    /// Stamp-to-decode video latency, medians of the first and last windows, ms.
    pub video_latency_ms_windows: [f64; 2],
    /// Chat round trip (sent to acknowledged), medians of the first and last windows, ms.
    pub chat_ms_windows: [f64; 2],
    /// Join time, medians of the first and last windows, ms.
    pub join_ms_windows: [f64; 2],
    /// Server CPU after the warm-up, median of the samples, % of one core.
    pub server_cpu_pct_median: f64,
    /// The load generator's CPU over the run, % of one core.
    pub generator_cpu_pct: f64,
    /// Joins made, failed joins, leaves with `leave`, abrupt leaves.
    pub joins: u64,
    /// See `joins`.
    pub join_failures: u64,
    /// See `joins`.
    pub graceful_leaves: u64,
    /// See `joins`.
    pub abrupt_leaves: u64,
    /// Publishing attempts that failed.
    pub publish_failures: u64,
    /// Receiver sessions (joins that subscribed to video).
    pub receiver_sessions: u64,
    /// Receiver sessions that decoded nothing of a sending publisher for `starve_seconds`.
    pub starved_receivers: usize,
    /// Starvation details.
    pub starvation: StarvationTally,
    /// Frames decoded by every receiver.
    pub decoded_frames: u64,
    /// Whiteboard strokes drawn and page clears.
    pub strokes: u64,
    /// See `strokes`.
    pub board_clears: u64,
    /// Chat messages sent, and refused or failed.
    pub chat_messages: u64,
    /// See `chat_messages`.
    pub chat_failures: u64,
    /// Samples of the server that failed and were left out (a few in a row end the run).
    pub missed_samples: u64,
    /// Whether each goal was met.
    pub goals: Goals,
    /// Where the plot and the full report are.
    pub plot: PathBuf,
    /// See `plot`.
    pub report: PathBuf,
}

/// The soak's goals, each met or not.
#[derive(Clone, Debug, Serialize)]
pub struct Goals {
    /// Resident set grew under 5 % from the first window after warm-up to the last.
    pub memory_flat: bool,
    /// No more open files at rest than before.
    pub no_fd_growth: bool,
    /// No more async tasks at rest than before.
    pub no_task_growth: bool,
    /// No receiver starved.
    pub no_starved_receivers: bool,
}

/// One sample of the server (and of this process, the load generator).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the classes started.
    pub t_s: f64,
    /// The server from /proc.
    #[serde(flatten)]
    pub proc: ProcSample,
    /// Server CPU since the previous sample, % of one core.
    pub cpu_pct: f64,
    /// The server's own counts.
    #[serde(flatten)]
    pub counts: ServerCounts,
    /// Participants the load generator had in rooms.
    pub online: u64,
    /// The load generator's CPU since the previous sample, % of one core.
    pub generator_cpu_pct: f64,
    /// The load generator's resident set, KiB.
    pub generator_rss_kib: u64,
    /// Median stamp-to-decode latency of the video frames decoded since the previous sample,
    /// ms (none decoded: none).
    pub video_latency_ms: Option<f64>,
    /// Median round trip of the chat messages sent since the previous sample (sent to
    /// acknowledged by the server), ms.
    pub chat_ms: Option<f64>,
    /// Median time of the joins made since the previous sample (connect to joined), ms.
    pub join_ms: Option<f64>,
}

/// The whole report written to `--out`.
#[derive(Serialize)]
struct SoakReport<'a> {
    summary: &'a SoakSummary,
    classes: &'a [ClassSpec],
    rest_before: (ProcSample, ServerCounts),
    rest_after: (ProcSample, ServerCounts),
    samples: &'a [Sample],
}

/// One participant slot: who sits there and what it does.
#[derive(Clone, Debug)]
struct Seat {
    room: String,
    identity: String,
    role: Role,
    publishes: bool,
    draws: bool,
    /// When it first joins, after the start.
    first_join: Duration,
}

fn seats(classes: &[ClassSpec]) -> Vec<Seat> {
    let mut seats = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        for s in 0..class.size {
            let index = seats.len();
            seats.push(Seat {
                room: format!("soak-{c}"),
                identity: format!("soak-{c}-{s}"),
                // The teacher in seat 0; students publish too (a call lets them).
                role: if s == 0 { Role::Teacher } else { Role::Student },
                publishes: s < class.publishers,
                // The teacher and one student draw.
                draws: s < 2,
                // Staggered, so the server sees arrivals rather than a stampede.
                first_join: Duration::from_millis(400 * index as u64),
            });
        }
    }
    seats
}

/// Counters the participants keep.
#[derive(Default)]
struct Counters {
    joins: AtomicU64,
    join_failures: AtomicU64,
    graceful_leaves: AtomicU64,
    abrupt_leaves: AtomicU64,
    publish_failures: AtomicU64,
    receiver_sessions: AtomicU64,
    decoded_frames_closed: AtomicU64,
    strokes: AtomicU64,
    board_clears: AtomicU64,
    chat_messages: AtomicU64,
    chat_failures: AtomicU64,
    /// Samples of the server that failed (and were left out).
    missed_samples: AtomicU64,
}

/// A participant in a room now, as the watch sees it.
struct LiveSession {
    room_name: String,
    room: Room,
    joined: Instant,
    frames: Arc<LastFrames>,
    /// When it started publishing video.
    publishing_since: Option<Instant>,
}

/// Everything the participants, the sampler and the watch share.
struct Shared {
    sessions: Mutex<HashMap<u64, LiveSession>>,
    /// Chat round trips and join times (ms) since the sampler last took them.
    chat_ms: Mutex<Vec<f64>>,
    join_ms: Mutex<Vec<f64>>,
    next_session: AtomicU64,
    counters: Counters,
    end: tokio::time::Instant,
    args: SoakArgs,
    url: String,
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LiveSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn online(&self) -> u64 {
        self.sessions().len() as u64
    }

    /// Takes a session out of the watch and keeps what it decoded.
    fn remove(&self, session: u64) {
        if let Some(live) = self.sessions().remove(&session) {
            self.counters
                .decoded_frames_closed
                .fetch_add(live.frames.frames(), Ordering::Relaxed);
        }
    }

    /// Takes the stamp-to-decode latencies every session in a room now decoded since the last
    /// call, and the chat round trips and join times since then.
    fn take_latencies(&self) -> [Vec<f64>; 3] {
        let video = self
            .sessions()
            .values()
            .flat_map(|s| s.frames.take_latencies_ms())
            .collect();
        let take =
            |m: &Mutex<Vec<f64>>| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner()));
        [video, take(&self.chat_ms), take(&self.join_ms)]
    }

    /// Keeps a latency (ms) for the sampler.
    fn record(list: &Mutex<Vec<f64>>, since: Instant) {
        list.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(since.elapsed().as_secs_f64() * 1000.0);
    }

    fn decoded_frames(&self) -> u64 {
        self.counters.decoded_frames_closed.load(Ordering::Relaxed)
            + self
                .sessions()
                .values()
                .map(|s| s.frames.frames())
                .sum::<u64>()
    }
}

/// The size the plotted and measured participants publish.
fn camera() -> Camera {
    Camera::new(640, 360, 15, None)
}

fn token(seat: &Seat) -> anyhow::Result<String> {
    let mut claims = Claims::new(
        DEV_API_KEY,
        &seat.room,
        &seat.identity,
        seat.role,
        unix_now(),
        24 * 3600,
    );
    claims.grants.whiteboard_write |= seat.draws;
    Ok(claims.sign(DEV_API_SECRET)?)
}

/// Sleeps until `at` or the end of the run, whichever comes first; false at the end.
async fn sleep_until(shared: &Shared, at: tokio::time::Instant) -> bool {
    tokio::time::sleep_until(at.min(shared.end)).await;
    at < shared.end
}

fn seconds(rng: &mut StdRng, min: f64, max: f64) -> Duration {
    Duration::from_secs_f64(if max > min {
        rng.random_range(min..max)
    } else {
        min
    })
}

/// One seat's life: join, publish, draw, chat, leave, pause, rejoin, until the end.
async fn run_seat(seat: Seat, seed: u64, shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = shared.end - Duration::from_secs_f64(shared.args.minutes * 60.0);
    if !sleep_until(&shared, start + seat.first_join).await {
        return;
    }
    loop {
        let stay = seconds(&mut rng, shared.args.stay_min, shared.args.stay_max);
        let leave_at = tokio::time::Instant::now() + stay;
        let abrupt = rng.random_bool(shared.args.abrupt_share.clamp(0.0, 1.0));
        match join(&seat, &shared).await {
            Ok((session, room)) => {
                attend(&seat, &room, leave_at, &mut rng, &shared).await;
                shared.remove(session);
                // At the end everyone leaves properly, so the server's resting state is read
                // after a clean close.
                if abrupt && tokio::time::Instant::now() < shared.end {
                    shared
                        .counters
                        .abrupt_leaves
                        .fetch_add(1, Ordering::Relaxed);
                    drop(room);
                } else {
                    room.disconnect().await;
                    shared
                        .counters
                        .graceful_leaves
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => {
                tracing::warn!(seat = seat.identity, error = %format!("{err:#}"), "join failed");
                shared
                    .counters
                    .join_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let pause = seconds(&mut rng, 2.0, 8.0);
        if !sleep_until(&shared, tokio::time::Instant::now() + pause).await {
            return;
        }
    }
}

/// Joins, starts publishing if the seat does, and enters the session in the watch.
async fn join(seat: &Seat, shared: &Shared) -> anyhow::Result<(u64, Room)> {
    let token = token(seat)?;
    let started = Instant::now();
    let (room, _events) = Room::connect(&shared.url, &token, RoomOptions::default()).await?;
    Shared::record(&shared.join_ms, started);
    shared.counters.joins.fetch_add(1, Ordering::Relaxed);
    let frames = Arc::new(LastFrames::default());
    room.set_video_sink(Some(Arc::clone(&frames) as Arc<dyn VideoSink>));
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .receiver_sessions
        .fetch_add(1, Ordering::Relaxed);
    shared.sessions().insert(
        session,
        LiveSession {
            room_name: seat.room.clone(),
            room: room.clone(),
            joined: Instant::now(),
            frames,
            publishing_since: None,
        },
    );
    if seat.publishes {
        match publish(&room, camera()).await {
            Ok(()) => {
                if let Some(live) = shared.sessions().get_mut(&session) {
                    live.publishing_since = Some(Instant::now());
                }
            }
            Err(err) => {
                tracing::warn!(seat = seat.identity, error = %format!("{err:#}"), "publish failed");
                shared
                    .counters
                    .publish_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok((session, room))
}

/// Takes part until `leave_at` (or the end): strokes on the board, chat.
async fn attend(
    seat: &Seat,
    room: &Room,
    leave_at: tokio::time::Instant,
    rng: &mut StdRng,
    shared: &Shared,
) {
    let now = tokio::time::Instant::now;
    let mut next_stroke = now() + seconds(rng, 1.0, 4.0);
    let mut next_chat = now() + seconds(rng, 5.0, 30.0);
    loop {
        let next = if seat.draws {
            next_stroke.min(next_chat)
        } else {
            next_chat
        };
        if next >= leave_at {
            let _ = sleep_until(shared, leave_at).await;
            return;
        }
        if !sleep_until(shared, next).await {
            return;
        }
        if seat.draws && now() >= next_stroke {
            draw_stroke(room, rng, shared);
            next_stroke = now() + seconds(rng, 2.0, 6.0);
        }
        if now() >= next_chat {
            let draft = ChatDraft {
                text: format!("{} at {}", seat.identity, unix_now()),
                to: None,
                announcement: false,
            };
            let started = Instant::now();
            let counter = match room.send_chat(draft).await {
                Ok(_) => {
                    Shared::record(&shared.chat_ms, started);
                    &shared.counters.chat_messages
                }
                Err(_) => &shared.counters.chat_failures,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            next_chat = now() + seconds(rng, 10.0, 30.0);
        }
    }
}

/// Draws a stroke; clears the page once it holds 40 items, as a teacher wipes the board.
fn draw_stroke(room: &Room, rng: &mut StdRng, shared: &Shared) {
    let board = room.whiteboard();
    let page = board.default_page();
    if board.items(page).len() >= 40 {
        board.clear_page(page);
        shared.counters.board_clears.fetch_add(1, Ordering::Relaxed);
    }
    let (mut x, mut y) = (rng.random_range(50.0..950.0), rng.random_range(50.0..650.0));
    let points: Vec<Point> = (0..24)
        .map(|_| {
            x += rng.random_range(-12.0..12.0);
            y += rng.random_range(-12.0..12.0);
            Point {
                x,
                y,
                pressure: 0.5,
            }
        })
        .collect();
    board.add_stroke(page, "#1e66f5", 3.0, &points);
    shared.counters.strokes.fetch_add(1, Ordering::Relaxed);
}

/// Checks every receiver against every sending publisher of its room, once a second.
async fn watch(shared: Arc<Shared>, stop: tokio::sync::watch::Receiver<bool>) -> StarvationTally {
    let rules = StarvationRules {
        grace: Duration::from_secs_f64(shared.args.grace_seconds),
        quiet: Duration::from_secs_f64(shared.args.starve_seconds),
    };
    let mut watch = StarvationWatch::new(rules);
    // Per publishing session: video frames sent at the last check, and when that last grew.
    let mut progress: HashMap<u64, (u64, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !*stop.borrow() {
        tick.tick().await;
        let now = Instant::now();
        let (receivers, publishers) = {
            let sessions = shared.sessions();
            progress.retain(|session, _| sessions.contains_key(session));
            let mut publishers = Vec::new();
            for (&session, live) in sessions.iter() {
                let Some(since) = live.publishing_since else {
                    continue;
                };
                let sent: u64 = live
                    .room
                    .stats()
                    .published
                    .iter()
                    .filter(|p| p.kind == MediaKind::Video)
                    .map(|p| p.frames_sent)
                    .sum();
                let entry = progress.entry(session).or_insert((sent, now));
                if sent > entry.0 {
                    *entry = (sent, now);
                }
                publishers.push(PublisherView {
                    session,
                    room: live.room_name.clone(),
                    participant: live.room.local_participant().id,
                    since,
                    sending: now.duration_since(entry.1) <= rules.quiet,
                });
            }
            let receivers: Vec<ReceiverView> = sessions
                .iter()
                .map(|(&session, live)| ReceiverView {
                    session,
                    room: live.room_name.clone(),
                    participant: live.room.local_participant().id,
                    joined: live.joined,
                    last_frames: publishers
                        .iter()
                        .filter_map(|p| {
                            live.frames
                                .last_from(&p.participant)
                                .map(|at| (p.participant.clone(), at))
                        })
                        .collect(),
                })
                .collect();
            (receivers, publishers)
        };
        for starving in watch.check(now, &receivers, &publishers) {
            tracing::warn!(session = starving, "receiver starved");
        }
    }
    watch.tally().clone()
}

/// Samples the server (and this process) every `sample_seconds` until told to stop.
async fn sample_loop(
    server: Arc<ServerProcess>,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
    start: Instant,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples: Vec<Sample> = Vec::new();
    let period = Duration::from_secs_f64(shared.args.sample_seconds);
    let mut tick = tokio::time::interval(period);
    let mut last = (Instant::now(), server.sample()?.cpu_s, own_cpu_s());
    let mut failed_in_a_row = 0;
    while !*stop.borrow() {
        tick.tick().await;
        // One failed reading is a missing sample, not the end of an hour's run; a server that
        // stops answering (it died) ends the run after a few.
        let (proc, counts) = match read_server(&server).await {
            Ok(reading) => {
                failed_in_a_row = 0;
                reading
            }
            Err(err) if failed_in_a_row + 1 < MAX_FAILED_SAMPLES_IN_A_ROW => {
                failed_in_a_row += 1;
                shared
                    .counters
                    .missed_samples
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!("sample missed: {err:#}");
                continue;
            }
            Err(err) => {
                return Err(err.context(format!(
                    "{MAX_FAILED_SAMPLES_IN_A_ROW} samples in a row failed"
                )))
            }
        };
        let now = Instant::now();
        let wall = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let generator_cpu = own_cpu_s();
        let [video, chat, joins] = shared.take_latencies();
        samples.push(Sample {
            t_s: now.duration_since(start).as_secs_f64(),
            proc,
            cpu_pct: 100.0 * (proc.cpu_s - last.1) / wall,
            counts,
            online: shared.online(),
            generator_cpu_pct: 100.0 * (generator_cpu - last.2) / wall,
            generator_rss_kib: own_rss_kib(),
            video_latency_ms: median_of(video),
            chat_ms: median_of(chat),
            join_ms: median_of(joins),
        });
        last = (now, proc.cpu_s, generator_cpu);
        if !shared.args.json {
            let s = samples[samples.len() - 1];
            eprintln!(
                "t={:>6.0}s  rss {:>7} KiB  cpu {:>5.1}%  fds {:>4}  threads {:>3}  tasks {:>5}  participants {:>3}  video {:>6} ms  chat {:>6} ms  generator cpu {:>5.1}%",
                s.t_s, s.proc.rss_kib, s.cpu_pct, s.proc.fds, s.proc.threads, s.counts.tasks,
                s.counts.participants, ms(s.video_latency_ms), ms(s.chat_ms), s.generator_cpu_pct
            );
        }
    }
    Ok(samples)
}

/// Samples that may fail one after another before the run gives up on the server.
const MAX_FAILED_SAMPLES_IN_A_ROW: u32 = 3;

/// One reading of the server: /proc and /metrics.
async fn read_server(server: &ServerProcess) -> anyhow::Result<(ProcSample, ServerCounts)> {
    Ok((server.sample()?, server.counts().await?))
}

/// The median of `values`, none when empty.
fn median_of(values: Vec<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| median(values))
}

/// A latency for the progress lines.
fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn own_cpu_s() -> f64 {
    crate::cpu::process_cpu("self").map_or(0.0, |d| d.as_secs_f64())
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

/// The warm-up: a tenth of the run, from half a minute to five minutes, unless given.
fn warmup_minutes(args: &SoakArgs) -> f64 {
    args.warmup_minutes
        .unwrap_or((args.minutes / 10.0).clamp(0.5, 5.0))
        .min(args.minutes * 0.5)
}

fn validate(args: &SoakArgs) -> anyhow::Result<Vec<ClassSpec>> {
    let classes = parse_classes(&args.classes)?;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(args.minutes) || !positive(args.sample_seconds) || !positive(args.starve_seconds) {
        bail!("--minutes, --sample-seconds and --starve-seconds must be positive");
    }
    if !(0.0..=1.0).contains(&args.abrupt_share) {
        bail!("--abrupt-share must be between 0 and 1");
    }
    if !(args.stay_min > 0.0 && args.stay_max >= args.stay_min) {
        bail!("--stay-min must be positive and at most --stay-max");
    }
    if !(args.grace_seconds >= 0.0 && args.settle_seconds >= 0.0) {
        bail!("--grace-seconds and --settle-seconds cannot be negative");
    }
    Ok(classes)
}

/// The medians of `value` over the first window after `from_s` and over the last window.
fn windows(samples: &[Sample], from_s: f64, window_s: f64, value: fn(&Sample) -> f64) -> [f64; 2] {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= from_s).collect();
    let Some(last_t) = after.last().map(|s| s.t_s) else {
        return [f64::NAN; 2];
    };
    // Samples without a value (NaN: no latency measured then) are left out.
    let first: Vec<f64> = after
        .iter()
        .filter(|s| s.t_s < from_s + window_s)
        .map(|s| value(s))
        .filter(|v| v.is_finite())
        .collect();
    let last: Vec<f64> = after
        .iter()
        .filter(|s| s.t_s > last_t - window_s)
        .map(|s| value(s))
        .filter(|v| v.is_finite())
        .collect();
    [median(first), median(last)]
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

/// Runs the soak and returns its summary (also written, with the samples, to `--out`).
pub async fn run_soak(args: SoakArgs) -> anyhow::Result<SoakSummary> {
    let classes = validate(&args)?;
    let machine_before = MachineLoad::now();
    let data_dir = std::env::temp_dir().join(format!("aula-soak-{}", std::process::id()));
    let server = Arc::new(ServerProcess::start(&ServerOptions {
        binary: args.server_bin.clone(),
        data_dir: Some(data_dir.clone()),
        max_connections_per_ip: None,
    })?);
    let result = soak_against(&args, &classes, &server, machine_before).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn soak_against(
    args: &SoakArgs,
    classes: &[ClassSpec],
    server: &Arc<ServerProcess>,
    machine_before: MachineLoad,
) -> anyhow::Result<SoakSummary> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rest_before = (server.sample()?, server.counts().await?);
    let fd_kinds_before = server.open_file_kinds()?;
    let seats = seats(classes);
    let publishers: usize = classes.iter().map(|c| c.publishers).sum();
    let load = format!(
        "{} classes of {} participants ({} in all), {publishers} publishing 640x360 at 15 fps \
         (simulcast) and audio, everyone subscribed; stays of {:.0}-{:.0} s, {:.0} % of leaves \
         abrupt; two drawers and chat in every class",
        classes.len(),
        classes
            .iter()
            .map(|c| c.size.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        seats.len(),
        args.stay_min,
        args.stay_max,
        args.abrupt_share * 100.0
    );
    if !args.json {
        eprintln!("soak: {load}; {} minutes; {machine_before}", args.minutes);
    }
    let start = Instant::now();
    let generator_cpu_start = own_cpu_s();
    let shared = Arc::new(Shared {
        sessions: Mutex::new(HashMap::new()),
        chat_ms: Mutex::new(Vec::new()),
        join_ms: Mutex::new(Vec::new()),
        next_session: AtomicU64::new(0),
        counters: Counters::default(),
        end: tokio::time::Instant::now() + Duration::from_secs_f64(args.minutes * 60.0),
        args: args.clone(),
        url: server.url().to_owned(),
    });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_loop(
        Arc::clone(server),
        Arc::clone(&shared),
        stop.clone(),
        start,
    ));
    let watcher = tokio::spawn(watch(Arc::clone(&shared), stop));
    let participants: Vec<_> = seats
        .into_iter()
        .enumerate()
        .map(|(i, seat)| {
            let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            tokio::spawn(run_seat(seat, seed, Arc::clone(&shared)))
        })
        .collect();
    for participant in participants {
        participant.await.context("a participant task failed")?;
    }
    let _ = stop_tx.send(true);
    let samples = sampler.await.context("the sampler failed")??;
    let starvation = watcher.await.context("the watch failed")?;
    let generator_cpu_pct =
        100.0 * (own_cpu_s() - generator_cpu_start) / start.elapsed().as_secs_f64().max(1e-3);
    let decoded_frames = shared.decoded_frames();
    tokio::time::sleep(Duration::from_secs_f64(args.settle_seconds)).await;
    let rest_after = (server.sample()?, server.counts().await?);
    let fd_kinds_after = server.open_file_kinds()?;

    let warmup = warmup_minutes(args);
    let from_s = warmup * 60.0;
    let window_s = ((args.minutes - warmup) * 60.0 / 6.0).clamp(args.sample_seconds * 2.0, 300.0);
    let rss = windows(&samples, from_s, window_s, |s| s.proc.rss_kib as f64);
    let fds = windows(&samples, from_s, window_s, |s| s.proc.fds as f64);
    let tasks = windows(&samples, from_s, window_s, |s| s.counts.tasks as f64);
    let video_latency = windows(&samples, from_s, window_s, |s| {
        s.video_latency_ms.unwrap_or(f64::NAN)
    });
    let chat_ms = windows(&samples, from_s, window_s, |s| {
        s.chat_ms.unwrap_or(f64::NAN)
    });
    let join_ms = windows(&samples, from_s, window_s, |s| {
        s.join_ms.unwrap_or(f64::NAN)
    });
    let trend: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= from_s)
        .map(|s| (s.t_s / 3600.0, s.proc.rss_kib as f64))
        .collect();
    let growth = |after: u64, before: u64| after as i64 - before as i64;
    let counters = &shared.counters;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let rss_growth_share = (rss[1] - rss[0]) / rss[0];
    let plot_path = args
        .plot
        .clone()
        .unwrap_or_else(|| args.out.with_extension("png"));
    let summary = SoakSummary {
        machine_before,
        machine_after: MachineLoad::now(),
        load,
        minutes: args.minutes,
        warmup_minutes: warmup,
        window_minutes: window_s / 60.0,
        samples: samples.len(),
        rss_kib_first_window: rss[0],
        rss_kib_last_window: rss[1],
        rss_growth_share,
        rss_trend_kib_per_hour: slope(&trend),
        rss_kib_at_rest: [rest_before.0.rss_kib, rest_after.0.rss_kib],
        fds_at_rest: [rest_before.0.fds, rest_after.0.fds],
        fd_growth: growth(rest_after.0.fds, rest_before.0.fds),
        fd_kinds_at_rest: [fd_kinds_before, fd_kinds_after],
        fds_windows: fds,
        tasks_at_rest: [rest_before.1.tasks, rest_after.1.tasks],
        tasks_growth: growth(rest_after.1.tasks, rest_before.1.tasks),
        tasks_windows: tasks,
        threads_at_rest: [rest_before.0.threads, rest_after.0.threads],
        threads_growth: growth(rest_after.0.threads, rest_before.0.threads),
        video_latency_ms_windows: video_latency,
        chat_ms_windows: chat_ms,
        join_ms_windows: join_ms,
        rooms_after: rest_after.1.rooms,
        participants_after: rest_after.1.participants,
        server_cpu_pct_median: median(
            samples
                .iter()
                .filter(|s| s.t_s >= from_s)
                .map(|s| s.cpu_pct)
                .collect(),
        ),
        generator_cpu_pct,
        joins: get(&counters.joins),
        join_failures: get(&counters.join_failures),
        graceful_leaves: get(&counters.graceful_leaves),
        abrupt_leaves: get(&counters.abrupt_leaves),
        publish_failures: get(&counters.publish_failures),
        receiver_sessions: get(&counters.receiver_sessions),
        starved_receivers: starvation.starved_receivers,
        starvation,
        decoded_frames,
        strokes: get(&counters.strokes),
        board_clears: get(&counters.board_clears),
        chat_messages: get(&counters.chat_messages),
        chat_failures: get(&counters.chat_failures),
        missed_samples: get(&counters.missed_samples),
        goals: Goals {
            memory_flat: rss_growth_share < 0.05,
            no_fd_growth: rest_after.0.fds <= rest_before.0.fds,
            no_task_growth: rest_after.1.tasks <= rest_before.1.tasks,
            no_starved_receivers: false,
        },
        plot: plot_path.clone(),
        report: args.out.clone(),
    };
    let summary = SoakSummary {
        goals: Goals {
            no_starved_receivers: summary.starved_receivers == 0,
            ..summary.goals
        },
        ..summary
    };
    write_outputs(args, &summary, classes, rest_before, rest_after, &samples)?;
    Ok(summary)
}

fn write_outputs(
    args: &SoakArgs,
    summary: &SoakSummary,
    classes: &[ClassSpec],
    rest_before: (ProcSample, ServerCounts),
    rest_after: (ProcSample, ServerCounts),
    samples: &[Sample],
) -> anyhow::Result<()> {
    for path in [&summary.report, &summary.plot] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let report = SoakReport {
        summary,
        classes,
        rest_before,
        rest_after,
        samples,
    };
    std::fs::write(&summary.report, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", summary.report.display()))?;
    draw(args, summary, samples, &summary.plot)
}

fn draw(
    args: &SoakArgs,
    summary: &SoakSummary,
    samples: &[Sample],
    path: &Path,
) -> anyhow::Result<()> {
    let series = |value: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (s.t_s / 60.0, value(s))).collect()
    };
    let latency = |value: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|s| Some((s.t_s / 60.0, value(s)?)))
            .collect()
    };
    let panels = [
        Panel {
            title: format!(
                "Server resident memory: {:+.1} % from the first window after warm-up to the last",
                summary.rss_growth_share * 100.0
            ),
            unit: "MiB",
            lines: vec![Line {
                label: "aula-server RSS",
                color: RGBColor(30, 102, 245),
                points: series(|s| s.proc.rss_kib as f64 / 1024.0),
            }],
        },
        Panel {
            title: "CPU".into(),
            unit: "% of one core",
            lines: vec![
                Line {
                    label: "aula-server",
                    color: RGBColor(210, 15, 57),
                    points: series(|s| s.cpu_pct),
                },
                Line {
                    label: "load generator",
                    color: RGBColor(140, 140, 140),
                    points: series(|s| s.generator_cpu_pct),
                },
            ],
        },
        Panel {
            title: format!(
                "Latency, medians per sample: video {:.0} -> {:.0} ms, chat {:.1} -> {:.1} ms (first and last window)",
                summary.video_latency_ms_windows[0],
                summary.video_latency_ms_windows[1],
                summary.chat_ms_windows[0],
                summary.chat_ms_windows[1]
            ),
            unit: "ms",
            lines: vec![
                Line {
                    label: "video, stamp to decode",
                    color: RGBColor(223, 142, 29),
                    points: latency(|s| s.video_latency_ms),
                },
                Line {
                    label: "chat round trip",
                    color: RGBColor(23, 146, 153),
                    points: latency(|s| s.chat_ms),
                },
                Line {
                    label: "join",
                    color: RGBColor(114, 135, 253),
                    points: latency(|s| s.join_ms),
                },
            ],
        },
        Panel {
            title: format!(
                "Server open files, threads, async tasks; participants (at rest after: {:+} files, {:+} tasks)",
                summary.fd_growth, summary.tasks_growth
            ),
            unit: "count",
            lines: vec![
                Line {
                    label: "open files",
                    color: RGBColor(64, 160, 43),
                    points: series(|s| s.proc.fds as f64),
                },
                Line {
                    label: "threads",
                    color: RGBColor(254, 100, 11),
                    points: series(|s| s.proc.threads as f64),
                },
                Line {
                    label: "tokio tasks",
                    color: RGBColor(136, 57, 239),
                    points: series(|s| s.counts.tasks as f64),
                },
                Line {
                    label: "participants",
                    color: RGBColor(4, 165, 229),
                    points: series(|s| s.counts.participants as f64),
                },
            ],
        },
    ];
    let title = format!(
        "aula-bench soak: {:.0} min, classes {}; {} cores, load average {:.1} at the start",
        args.minutes, args.classes, summary.machine_before.cores, summary.machine_before.load[0]
    );
    plot::write_png(path, &title, &panels, Some(summary.warmup_minutes))
}

/// `aula-bench soak`.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let json = args.json;
    let s = run_soak(args).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_summary(&s);
    }
    let missed = s.goals.missed();
    if !missed.is_empty() {
        bail!("soak failed: {}", missed.join(", "));
    }
    Ok(())
}

impl Goals {
    /// The goals not met, in words.
    pub fn missed(&self) -> Vec<&'static str> {
        [
            (
                self.memory_flat,
                "memory grew 5 % or more after the warm-up",
            ),
            (self.no_fd_growth, "more open files at rest than before"),
            (self.no_task_growth, "more async tasks at rest than before"),
            (self.no_starved_receivers, "receivers starved"),
        ]
        .into_iter()
        .filter(|(met, _)| !met)
        .map(|(_, what)| what)
        .collect()
    }
}

fn print_summary(s: &SoakSummary) {
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!("load: {}", s.load);
    println!(
        "machine: {} at the start, {} at the end",
        s.machine_before, s.machine_after
    );
    println!(
        "server memory: {:.0} KiB -> {:.0} KiB (medians of {:.1}-minute windows after a {:.1}-minute warm-up): {:+.2} % [{}]; trend {:+.0} KiB/h",
        s.rss_kib_first_window,
        s.rss_kib_last_window,
        s.window_minutes,
        s.warmup_minutes,
        s.rss_growth_share * 100.0,
        verdict(s.goals.memory_flat),
        s.rss_trend_kib_per_hour
    );
    println!(
        "at rest before/after: open files {}/{} ({:+}) [{}], tasks {}/{} ({:+}) [{}], threads {}/{} ({:+}), rooms {} and participants {} left",
        s.fds_at_rest[0], s.fds_at_rest[1], s.fd_growth, verdict(s.goals.no_fd_growth),
        s.tasks_at_rest[0], s.tasks_at_rest[1], s.tasks_growth, verdict(s.goals.no_task_growth),
        s.threads_at_rest[0], s.threads_at_rest[1], s.threads_growth,
        s.rooms_after, s.participants_after
    );
    let changes = open_file_changes(&s.fd_kinds_at_rest[0], &s.fd_kinds_at_rest[1]);
    if !changes.is_empty() {
        println!("open files that changed at rest: {changes}");
    }
    println!(
        "receivers: {} sessions, {} starved ({} episodes, longest silence {:.1} s) [{}]; {} frames decoded",
        s.receiver_sessions,
        s.starved_receivers,
        s.starvation.episodes,
        s.starvation.longest_quiet_s,
        verdict(s.goals.no_starved_receivers),
        s.decoded_frames
    );
    println!(
        "activity: {} joins ({} failed), {} leaves + {} abrupt, {} publish failures, {} strokes, {} board clears, {} chat messages ({} failed)",
        s.joins, s.join_failures, s.graceful_leaves, s.abrupt_leaves, s.publish_failures,
        s.strokes, s.board_clears, s.chat_messages, s.chat_failures
    );
    println!(
        "CPU: server median {:.1} % of a core after warm-up; load generator {:.1} %",
        s.server_cpu_pct_median, s.generator_cpu_pct
    );
    println!(
        "latency (medians, first -> last window): video stamp to decode {:.1} -> {:.1} ms, chat round trip {:.1} -> {:.1} ms, join {:.0} -> {:.0} ms",
        s.video_latency_ms_windows[0], s.video_latency_ms_windows[1],
        s.chat_ms_windows[0], s.chat_ms_windows[1],
        s.join_ms_windows[0], s.join_ms_windows[1]
    );
    println!("report {}, plot {}", s.report.display(), s.plot.display());
    let missed = s.goals.missed();
    if missed.is_empty() {
        println!("verdict: PASS");
    } else {
        println!("verdict: FAIL ({})", missed.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_classes("2:1, 5:2,12").unwrap(),
            vec![
                ClassSpec {
                    size: 2,
                    publishers: 1
                },
                ClassSpec {
                    size: 5,
                    publishers: 2
                },
                ClassSpec {
                    size: 12,
                    publishers: 1
                },
            ]
        );
        assert!(parse_classes("0:0").is_err());
        assert!(parse_classes("2:3").is_err());
        assert!(parse_classes("x").is_err());
        assert!(parse_classes("").is_err());
    }

    #[test]
    fn seats_give_each_class_a_teacher_its_publishers_and_two_drawers() {
        let seats = seats(&parse_classes("2:1,5:2").unwrap());
        assert_eq!(seats.len(), 7);
        let class = |c: &'static str| seats.iter().filter(move |s| s.room == c);
        assert_eq!(class("soak-0").filter(|s| s.publishes).count(), 1);
        assert_eq!(class("soak-1").filter(|s| s.publishes).count(), 2);
        assert_eq!(class("soak-1").filter(|s| s.draws).count(), 2);
        assert_eq!(
            class("soak-1").filter(|s| s.role == Role::Teacher).count(),
            1
        );
        let mut identities: Vec<_> = seats.iter().map(|s| &s.identity).collect();
        identities.dedup();
        assert_eq!(identities.len(), 7);
    }

    fn sample(t_s: f64, rss_kib: u64) -> Sample {
        Sample {
            t_s,
            proc: ProcSample {
                rss_kib,
                cpu_s: 0.0,
                fds: 10,
                threads: 4,
            },
            cpu_pct: 0.0,
            counts: ServerCounts::default(),
            online: 0,
            generator_cpu_pct: 0.0,
            generator_rss_kib: 0,
            video_latency_ms: None,
            chat_ms: None,
            join_ms: None,
        }
    }

    #[test]
    fn windows_compare_the_start_after_warmup_with_the_end() {
        // Warm-up to 100 s (RSS climbing), then flat at 1000, then 1100 in the last minute.
        let samples: Vec<Sample> = (0..120)
            .map(|i| {
                let t = f64::from(i) * 5.0;
                let rss = if t < 100.0 {
                    500 + i as u64 * 20
                } else if t >= 540.0 {
                    1100
                } else {
                    1000
                };
                sample(t, rss)
            })
            .collect();
        let [first, last] = windows(&samples, 100.0, 60.0, |s| s.proc.rss_kib as f64);
        assert_eq!((first, last), (1000.0, 1100.0));
        // Samples without a value are left out of a window rather than poisoning it.
        let [first, last] = windows(&samples, 100.0, 60.0, |s| {
            if (s.t_s as u64).is_multiple_of(10) {
                f64::NAN
            } else {
                s.proc.rss_kib as f64
            }
        });
        assert_eq!((first, last), (1000.0, 1100.0));
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 7.0)).collect();
        assert_eq!(slope(&flat), 0.0);
        let rising: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 2.0 * f64::from(i)))
            .collect();
        assert!((slope(&rising) - 2.0).abs() < 1e-9);
    }
}
