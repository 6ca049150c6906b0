//! The whiteboard scenario: edit-to-remote-visible latency with N participants, join time on a
//! board of many strokes, and stored bytes per stroke. The server stores the board durably in a
//! temporary data directory (real fsyncs), as in production.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::{Room, RoomOptions, Whiteboard, WhiteboardEvent};
use aula_protocol::token::unix_now;
use aula_protocol::whiteboard::{Point, WhiteboardLimits, DEFAULT_PAGE};
use aula_protocol::{Claims, Role};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use clap::Args;
use serde::Serialize;

/// Arguments of `aula-bench whiteboard`.
#[derive(Args, Debug)]
pub struct WhiteboardArgs {
    /// Participants in the latency room; each stroke is timed at every other participant.
    #[arg(long, default_value_t = 30)]
    participants: usize,
    /// Strokes on the board whose join time is measured.
    #[arg(long, default_value_t = 10_000)]
    strokes: usize,
    /// Points per stroke.
    #[arg(long, default_value_t = 32)]
    points: usize,
    /// Strokes timed in the latency room.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p95: f64,
    max: f64,
    samples: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    participants: usize,
    strokes: usize,
    points_per_stroke: usize,
    edit_latency_ms: Latency,
    /// Join until the whole board is visible, with `strokes` strokes (10,000 by default);
    /// median of 3 joins.
    join_ms_10k_strokes: f64,
    /// Stored bytes (snapshot plus pending updates) per stroke.
    bytes_per_stroke: f64,
}

fn token(room: &str, identity: &str) -> anyhow::Result<String> {
    let mut claims = Claims::new(DEV_API_KEY, room, identity, Role::Teacher, unix_now(), 3600);
    claims.grants.whiteboard_write = true;
    Ok(claims.sign(DEV_API_SECRET)?)
}

async fn join(server: &ServerHandle, room: &str, identity: &str) -> anyhow::Result<Room> {
    let (room, _events) = Room::connect(
        &server.ws_url(),
        &token(room, identity)?,
        RoomOptions::default(),
    )
    .await
    .with_context(|| format!("{identity} cannot join"))?;
    Ok(room)
}

async fn until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn stroke_points(seed: usize, n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            x: (seed % 1000) as f32 + i as f32 * 1.5,
            y: (seed / 1000) as f32 * 10.0 + (i as f32 * 0.3).sin() * 8.0,
            pressure: 0.3 + (i % 7) as f32 * 0.1,
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Waits until `board` has item `id`, waking on its change events.
async fn seen(
    board: Whiteboard,
    mut events: tokio::sync::mpsc::UnboundedReceiver<WhiteboardEvent>,
    id: String,
    start: Instant,
) -> (f64, tokio::sync::mpsc::UnboundedReceiver<WhiteboardEvent>) {
    while !board.has_item(DEFAULT_PAGE, &id) {
        if tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            break;
        }
    }
    (start.elapsed().as_secs_f64() * 1000.0, events)
}

/// Runs the scenario and prints the report.
pub async fn run(args: WhiteboardArgs) -> anyhow::Result<()> {
    if args.participants < 2 {
        bail!("--participants must be at least 2");
    }
    let data_dir = std::env::temp_dir().join(format!(
        "aula-bench-wb-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let mut config = ServerConfig::dev(0, 0);
    config.data_dir = Some(data_dir.clone());
    config.limits.max_participants_per_room = config
        .limits
        .max_participants_per_room
        .max(args.participants + 8);
    config.limits.max_connections_per_ip = config
        .limits
        .max_connections_per_ip
        .max(args.participants + 8);
    // The loader draws as fast as it can; the default rate limit is for people.
    config.whiteboard_limits = WhiteboardLimits {
        max_updates_per_second: 1_000_000,
        ..WhiteboardLimits::default()
    };
    let server = Server::start(config).await?;
    let result = measure(&server, &args).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "whiteboard: {} participants, edit latency p50 {:.1} ms p95 {:.1} ms max {:.1} ms ({} samples)",
            report.participants,
            report.edit_latency_ms.p50,
            report.edit_latency_ms.p95,
            report.edit_latency_ms.max,
            report.edit_latency_ms.samples
        );
        println!(
            "join with {} strokes of {} points: {:.1} ms; stored {:.1} bytes per stroke",
            report.strokes,
            report.points_per_stroke,
            report.join_ms_10k_strokes,
            report.bytes_per_stroke
        );
    }
    Ok(())
}

async fn measure(server: &ServerHandle, args: &WhiteboardArgs) -> anyhow::Result<Report> {
    // Latency: strokes drawn in turn by every participant, timed at every other one.
    let mut rooms = Vec::new();
    for i in 0..args.participants {
        rooms.push(join(server, "wb-latency", &format!("p{i}")).await?);
    }
    let boards: Vec<Whiteboard> = rooms.iter().map(Room::whiteboard).collect();
    until("the first page everywhere", Duration::from_secs(10), || {
        boards.iter().all(|b| !b.pages().is_empty())
    })
    .await?;
    let mut receivers: Vec<_> = boards.iter().map(Whiteboard::events).collect();
    let mut latencies = Vec::new();
    for sample in 0..args.samples {
        let writer = sample % boards.len();
        for rx in &mut receivers {
            while rx.try_recv().is_ok() {}
        }
        let start = Instant::now();
        let id = boards[writer].add_stroke(
            DEFAULT_PAGE,
            "#1e88e5",
            2.0,
            &stroke_points(sample, args.points),
        );
        let mut waits = Vec::new();
        for (i, rx) in std::mem::take(&mut receivers).into_iter().enumerate() {
            waits.push(tokio::spawn(seen(boards[i].clone(), rx, id.clone(), start)));
        }
        for (i, wait) in waits.into_iter().enumerate() {
            let (ms, rx) = wait.await?;
            if i != writer {
                latencies.push(ms);
            }
            receivers.push(rx);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let edit_latency_ms = Latency {
        p50: percentile(&latencies, 0.5),
        p95: percentile(&latencies, 0.95),
        max: latencies.last().copied().unwrap_or(0.0),
        samples: latencies.len(),
    };
    drop(receivers);
    drop(rooms);

    // Join time on a large board.
    let loader_room = join(server, "wb-join", "loader").await?;
    let loader = loader_room.whiteboard();
    until("the first page", Duration::from_secs(10), || {
        !loader.pages().is_empty()
    })
    .await?;
    for n in 0..args.strokes {
        loader.add_stroke(DEFAULT_PAGE, "#43a047", 2.0, &stroke_points(n, args.points));
        if n % 500 == 499 {
            // Keep the unacknowledged window bounded.
            until("acks", Duration::from_secs(60), || loader.unacked() < 1000).await?;
        }
    }
    until("every stroke stored", Duration::from_secs(120), || {
        loader.unacked() == 0
    })
    .await?;
    let mut joins = Vec::new();
    for i in 0..3 {
        let start = Instant::now();
        let room = join(server, "wb-join", &format!("late{i}")).await?;
        let board = room.whiteboard();
        until("the whole board", Duration::from_secs(60), || {
            board.item_count() >= args.strokes
        })
        .await?;
        joins.push(start.elapsed().as_secs_f64() * 1000.0);
        room.disconnect().await;
    }
    joins.sort_by(f64::total_cmp);
    let stored = server
        .whiteboard_stored_bytes("wb-join")
        .context("stored size")?;
    loader_room.disconnect().await;
    Ok(Report {
        participants: args.participants,
        strokes: args.strokes,
        points_per_stroke: args.points,
        edit_latency_ms,
        join_ms_10k_strokes: joins[1],
        bytes_per_stroke: stored as f64 / args.strokes.max(1) as f64,
    })
}
