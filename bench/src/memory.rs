//! Server memory: per idle participant and per forwarded 720p stream, measured as the resident
//! set of a real `aula-server` process while clients in this process join it.

use std::time::Duration;

use anyhow::bail;
use aula_core::{Room, RoomOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use aula_server::{DEV_API_KEY, DEV_API_SECRET};
use clap::Args;
use serde::Serialize;

use crate::harness::{parse_resolution, Camera};
use crate::server_process::{ServerOptions, ServerProcess};

/// Arguments of `aula-bench memory`.
#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Idle participants (joined, publishing nothing, subscribed to nothing).
    #[arg(long, default_value_t = 50)]
    idle: usize,
    /// Subscribers of one published video stream.
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Resolution of the published stream.
    #[arg(long, default_value = "1280x720")]
    resolution: String,
    /// Seconds the stream runs before measuring.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What the run measured.
#[derive(Debug, Serialize)]
struct MemoryReport {
    baseline_kib: u64,
    idle_participants: usize,
    with_idle_kib: u64,
    per_idle_participant_kib: f64,
    subscribers: usize,
    with_one_subscriber_kib: u64,
    with_all_subscribers_kib: u64,
    per_forwarded_stream_kib: f64,
}

async fn join(url: &str, identity: &str, subscribe: bool) -> anyhow::Result<Room> {
    let token = Claims::new(
        DEV_API_KEY,
        "memory",
        identity,
        Role::Student,
        unix_now(),
        3600,
    )
    .sign(DEV_API_SECRET)?;
    let options = RoomOptions {
        auto_subscribe: subscribe,
        ..RoomOptions::default()
    };
    Ok(Room::connect(url, &token, options).await?.0)
}

async fn settle(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

/// Runs the measurement.
pub async fn run(args: MemoryArgs) -> anyhow::Result<()> {
    if args.subscribers < 2 {
        bail!("--subscribers must be at least 2");
    }
    let server = ServerProcess::start(&ServerOptions::default())?;
    settle(1.0).await;
    let baseline_kib = server.rss_kib()?;

    let mut idle = Vec::new();
    for i in 0..args.idle {
        idle.push(join(server.url(), &format!("idle-{i}"), false).await?);
    }
    settle(2.0).await;
    let with_idle_kib = server.rss_kib()?;
    for room in &idle {
        room.disconnect().await;
    }
    drop(idle);
    settle(1.0).await;

    let (width, height) = parse_resolution(&args.resolution)?;
    let camera = Camera::new(width, height, 30, None);
    let token = Claims::new(
        DEV_API_KEY,
        "memory",
        "publisher",
        Role::Teacher,
        unix_now(),
        3600,
    )
    .sign(DEV_API_SECRET)?;
    let (publisher, _events) = Room::connect(server.url(), &token, RoomOptions::default()).await?;
    publisher
        .publish_video(
            aula_core::media::SyntheticVideoSource::new(camera.width, camera.height, camera.fps)?,
            aula_core::VideoPublishOptions {
                bitrate_bps: camera.bitrate_bps,
                ..aula_core::VideoPublishOptions::default()
            },
        )
        .await?;
    let mut subscribers = vec![join(server.url(), "subscriber-0", true).await?];
    settle(args.settle).await;
    let with_one_subscriber_kib = server.rss_kib()?;
    for i in 1..args.subscribers {
        subscribers.push(join(server.url(), &format!("subscriber-{i}"), true).await?);
    }
    settle(args.settle).await;
    let with_all_subscribers_kib = server.rss_kib()?;
    for room in &subscribers {
        room.disconnect().await;
    }
    publisher.disconnect().await;

    let per_idle = (with_idle_kib as f64 - baseline_kib as f64) / args.idle.max(1) as f64;
    let extra = (args.subscribers - 1) as f64;
    let per_stream =
        (with_all_subscribers_kib as f64 - with_one_subscriber_kib as f64) / extra - per_idle;
    let report = MemoryReport {
        baseline_kib,
        idle_participants: args.idle,
        with_idle_kib,
        per_idle_participant_kib: per_idle,
        subscribers: args.subscribers,
        with_one_subscriber_kib,
        with_all_subscribers_kib,
        per_forwarded_stream_kib: per_stream,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "server RSS: {} KiB at rest, {} KiB with {} idle participants ({:.0} KiB each)",
            report.baseline_kib, report.with_idle_kib, report.idle_participants, per_idle
        );
        println!(
            "one {} stream: {} KiB with 1 subscriber, {} KiB with {}: {:.0} KiB per forwarded stream (beyond the subscriber's own session)",
            args.resolution,
            report.with_one_subscriber_kib,
            report.with_all_subscribers_kib,
            report.subscribers,
            per_stream
        );
    }
    Ok(())
}
