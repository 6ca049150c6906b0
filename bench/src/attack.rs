//! Reproducible attacks on a real `aula-server` process (release build, loopback), each
//! reporting the figure that shows whether the server holds: its resident memory during a
//! flood of sync requests, how long a slow reader survives presence spam, and whether
//! `/healthz` and joins still answer while half-open connections pile up under a low
//! descriptor limit.
//!
//! `--server-bin` points at the binary to attack, so one build of this tool measures an older
//! server and a newer one alike (`scripts/attack.sh` runs every scenario for a given binary).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::{Room, RoomOptions};
use aula_protocol::token::unix_now;
use aula_protocol::whiteboard::awareness::{self, AwarenessEntry};
use aula_protocol::whiteboard::{Frame, Point, DEFAULT_PAGE};
use aula_protocol::{Claims, ClientMessage, Role, PROTOCOL_VERSION};
use aula_server::{DEV_API_KEY, DEV_API_SECRET};
use clap::{Args, ValueEnum};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::median;

/// Which attack to run.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Attack {
    /// An observer that does not read sends 400 sync step 1 requests (4 bytes each) with an
    /// empty state vector for a 2 MB board: the server's resident memory.
    SyncFlood,
    /// An observer sends thousands of presence frames while a student reads slowly: how long
    /// the student stays connected.
    PresenceSpam,
    /// Silent and half-sent HTTP connections, more than the server's descriptor limit:
    /// whether `/healthz` and a join still answer.
    HalfOpen,
}

/// Arguments of `aula-bench attack`.
#[derive(Args, Debug)]
pub struct AttackArgs {
    /// The attack.
    #[arg(value_enum)]
    attack: Attack,
    /// The server binary to attack [default: `aula-server` next to this executable].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The server's descriptor limit (`ulimit -n`), as in the report of the half-open attack.
    #[arg(long, default_value_t = 1024)]
    nofile: u32,
    /// Runs (a fresh server each); figures are medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Presence spam: bytes of each presence frame (the server may refuse large ones).
    #[arg(long, default_value_t = 16 * 1024)]
    frame_bytes: usize,
    /// Presence spam: frames sent.
    #[arg(long, default_value_t = 5000)]
    frames: usize,
    /// Presence spam: seconds the slow reader is watched.
    #[arg(long, default_value_t = 30.0)]
    watch: f64,
    /// Half-open: connections opened.
    #[arg(long, default_value_t = 1100)]
    connections: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A server process under a descriptor limit.
struct ServerProcess {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start(binary: &PathBuf, nofile: u32) -> anyhow::Result<Self> {
        if !binary.exists() {
            bail!(
                "{} not found: build it with `cargo build --release -p aula-server`",
                binary.display()
            );
        }
        // `exec` keeps the pid: the one whose memory is read.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {nofile} && exec \"$0\" --dev --listen 127.0.0.1:0 --rtc-port 0"
            ))
            .arg(binary)
            .env("AULA_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .context("the server exited before listening")??;
            if let Some(rest) = line.strip_prefix("aula-server listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .context("listen address")?;
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, addr })
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS missing (Linux only)")
    }
}

fn token(room: &str, identity: &str, role: Role) -> anyhow::Result<String> {
    Ok(Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 3600).sign(DEV_API_SECRET)?)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw participant: a WebSocket through a 4 KiB receive buffer, joined, reading nothing
/// unless told to.
async fn raw_participant(
    server: &ServerProcess,
    room: &str,
    identity: &str,
    role: Role,
) -> anyhow::Result<Ws> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(server.addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("{}/rtc", server.url()),
        MaybeTlsStream::Plain(stream),
    )
    .await?;
    let join = ClientMessage::Join {
        id: 1,
        protocol_version: PROTOCOL_VERSION,
        room: room.into(),
        token: token(room, identity, role)?,
        auto_subscribe: false,
    };
    ws.send(Message::Text(serde_json::to_string(&join)?.into()))
        .await?;
    // Read up to `joined`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains("\"joined\"") => return Ok(ws),
            Ok(Some(Ok(_))) => continue,
            other => bail!("{identity} could not join: {other:?}"),
        }
    }
}

/// A teacher draws strokes until the board holds about `bytes`.
async fn fill_board(server: &ServerProcess, room: &str, bytes: usize) -> anyhow::Result<Room> {
    let (teacher, _events) = Room::connect(
        &server.url(),
        &token(room, "teacher", Role::Teacher)?,
        RoomOptions::default(),
    )
    .await?;
    let board = teacher.whiteboard();
    // Drawing before the server's first page arrives would make a page that loses to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while board.pages().is_empty() {
        if Instant::now() > deadline {
            bail!("the board never arrived");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 8 000 points of 12 bytes: about 96 KB per stroke.
    let strokes = bytes.div_ceil(96_000);
    for i in 0..strokes {
        let points: Vec<Point> = (0..8_000u32)
            .map(|p| Point {
                x: (i as u32 * 7 + p % 1000) as f32,
                y: (p / 1000) as f32,
                pressure: 0.5,
            })
            .collect();
        board.add_stroke(DEFAULT_PAGE, "#204080", 2.0, &points);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while board.unacked() > 0 {
        if Instant::now() > deadline {
            bail!("the board was not stored in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(teacher)
}

#[derive(Debug, Serialize)]
struct SyncFloodRun {
    board_bytes: usize,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    rss_after_10s_kib: u64,
}

async fn sync_flood(server: &ServerProcess) -> anyhow::Result<SyncFloodRun> {
    let teacher = fill_board(server, "flood", 2_000_000).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = server.rss_kib()?;
    let mut observer = raw_participant(server, "flood", "observer", Role::Observer).await?;
    // Sync step 1, empty state vector: message 0, sub-type 0, a 1-byte state vector `0`.
    let request: Vec<u8> = vec![0, 0, 1, 0];
    for _ in 0..400 {
        observer
            .feed(Message::Binary(request.clone().into()))
            .await?;
    }
    observer.flush().await?;
    let mut peak = rss_before_kib;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        peak = peak.max(server.rss_kib()?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = server.rss_kib()?;
    drop(observer);
    teacher.disconnect().await;
    Ok(SyncFloodRun {
        board_bytes: 2_000_000,
        rss_before_kib,
        rss_peak_kib: peak,
        rss_after_10s_kib: after,
    })
}

#[derive(Debug, Serialize)]
struct PresenceSpamRun {
    frame_bytes: usize,
    frames_sent: usize,
    /// Seconds from the first spam frame to the slow reader's disconnection; `None` when it
    /// stayed for the whole watch.
    disconnected_after_s: Option<f64>,
    watched_s: f64,
    presence_frames_read: usize,
    ping_answered_after: bool,
}

async fn presence_spam(
    server: &ServerProcess,
    args: &AttackArgs,
) -> anyhow::Result<PresenceSpamRun> {
    let mut slow = raw_participant(server, "spam", "slow-student", Role::Student).await?;
    let mut spammer = raw_participant(server, "spam", "spammer", Role::Observer).await?;
    // The spammer's own socket is read and discarded so its side never backs up.
    let padding = "x".repeat(args.frame_bytes.saturating_sub(64));
    let frames: Vec<Vec<u8>> = (1..=args.frames as u32)
        .map(|clock| {
            let json = format!(r#"{{"laser":{{"page":"1","x":1.0,"y":2.0}},"pad":"{padding}"}}"#);
            Frame::Awareness(awareness::encode(&[AwarenessEntry {
                client: 4242,
                clock,
                json,
            }]))
            .encode()
        })
        .collect();
    let started = Instant::now();
    let spam = tokio::spawn(async move {
        for frame in frames {
            if spammer.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_micros(1), spammer.next()).await
            {}
        }
        spammer
    });
    // The slow reader: one message every 10 ms (a student on a poor link).
    let watch = Duration::from_secs_f64(args.watch);
    let mut disconnected_after_s = None;
    let mut presence_frames_read = 0;
    while started.elapsed() < watch {
        match tokio::time::timeout(Duration::from_secs(1), slow.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) if bytes.first() == Some(&1) => {
                presence_frames_read += 1;
            }
            Ok(Some(Ok(Message::Text(text)))) if text.contains("\"leave\"") => {
                disconnected_after_s = Some(started.elapsed().as_secs_f64());
                break;
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                disconnected_after_s = Some(started.elapsed().as_secs_f64());
                break;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let spammer = spam.await?;
    drop(spammer);
    let ping_answered_after = disconnected_after_s.is_none() && {
        let ping = serde_json::to_string(&ClientMessage::Ping { id: 99 })?;
        slow.send(Message::Text(ping.into())).await.is_ok()
            && tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(Ok(message)) = slow.next().await {
                    if let Message::Text(text) = message {
                        if text.contains("\"pong\"") {
                            return true;
                        }
                    }
                }
                false
            })
            .await
            .unwrap_or(false)
    };
    Ok(PresenceSpamRun {
        frame_bytes: args.frame_bytes,
        frames_sent: args.frames,
        disconnected_after_s,
        watched_s: watch.as_secs_f64(),
        presence_frames_read,
        ping_answered_after,
    })
}

#[derive(Debug, Serialize)]
struct HalfOpenRun {
    nofile: u32,
    connections_opened: usize,
    healthz_ok: usize,
    healthz_tried: usize,
    healthz_median_ms: Option<f64>,
    join_ok: bool,
    attacker_connections_closed_by_server_within_30s: usize,
}

/// One `/healthz` request: its time when answered `200 ok` within 3 s.
async fn healthz(server: &ServerProcess) -> Option<f64> {
    let started = Instant::now();
    let attempt = async {
        let mut stream = TcpStream::connect(server.addr).await.ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: aula\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        response.starts_with("HTTP/1.1 200").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()??;
    Some(started.elapsed().as_secs_f64() * 1000.0)
}

async fn half_open(server: &ServerProcess, args: &AttackArgs) -> anyhow::Result<HalfOpenRun> {
    let mut attackers = Vec::new();
    for i in 0..args.connections {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(server.addr)).await
        else {
            continue;
        };
        if i % 2 == 1 {
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: aula\r\nX-Slow: ")
                .await;
        }
        attackers.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut times = Vec::new();
    let tried = 10;
    for _ in 0..tried {
        if let Some(ms) = healthz(server).await {
            times.push(ms);
        }
    }
    let join_ok = tokio::time::timeout(
        Duration::from_secs(10),
        Room::connect(
            &server.url(),
            &token("halfopen", "student", Role::Student)?,
            RoomOptions::default(),
        ),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    // How many of the attacker's connections the server closes by itself.
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut closed = 0;
        for stream in &mut attackers {
            let mut buf = [0u8; 512];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        closed += 1;
                        break;
                    }
                    Ok(_) => continue,
                }
            }
        }
        closed
    })
    .await;
    let closed = match closed {
        Ok(n) => n,
        // Count what is closed so far without waiting.
        Err(_) => {
            let mut n = 0;
            for stream in &mut attackers {
                let mut buf = [0u8; 512];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
                {
                    n += 1;
                }
            }
            n
        }
    };
    let healthz_ok = times.len();
    Ok(HalfOpenRun {
        nofile: args.nofile,
        connections_opened: attackers.len(),
        healthz_ok,
        healthz_tried: tried,
        healthz_median_ms: (!times.is_empty()).then(|| median(times)),
        join_ok,
        attacker_connections_closed_by_server_within_30s: closed,
    })
}

/// Runs the attack `args.runs` times and prints each run and the medians.
pub async fn run(args: AttackArgs) -> anyhow::Result<()> {
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("bench executable has no directory")?
            .join("aula-server"),
    };
    let mut reports = Vec::new();
    for _ in 0..args.runs.max(1) {
        let server = ServerProcess::start(&binary, args.nofile)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let report = match args.attack {
            Attack::SyncFlood => serde_json::to_value(sync_flood(&server).await?)?,
            Attack::PresenceSpam => serde_json::to_value(presence_spam(&server, &args).await?)?,
            Attack::HalfOpen => serde_json::to_value(half_open(&server, &args).await?)?,
        };
        if !args.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        reports.push(report);
    }
    let numbers = |key: &str| -> Vec<f64> {
        reports
            .iter()
            .filter_map(|r| r.get(key).and_then(serde_json::Value::as_f64))
            .collect()
    };
    let keys: Vec<String> = reports
        .first()
        .and_then(|r| r.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let medians: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .filter_map(|k| {
            let values = numbers(k);
            (values.len() == reports.len()).then(|| (k.clone(), serde_json::json!(median(values))))
        })
        .collect();
    let summary = serde_json::json!({
        "attack": format!("{:?}", args.attack),
        "server": binary.display().to_string(),
        "runs": reports,
        "medians": medians,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "medians over {} run(s): {}",
            reports.len(),
            serde_json::Value::Object(medians)
        );
    }
    Ok(())
}
