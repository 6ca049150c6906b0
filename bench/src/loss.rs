//! Video through random or bursty loss and delay: one publisher, two subscribers, every client's
//! path to the server impaired each way.

use std::time::{Duration, Instant};

use aula_core::netsim::{BurstLoss, LinkSettings, NetworkImpairment};
use aula_core::Percentiles;
use aula_protocol::{MediaKind, Role};
use clap::Args;
use serde::Serialize;

use crate::harness::{join, median, parse_resolution, start_server, Camera};

/// Arguments of `aula-bench loss`.
#[derive(Args, Debug, Clone)]
pub struct LossArgs {
    /// Packet loss in percent, each way on every client's path.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Round-trip time of every client's path to the server, ms (half each way).
    #[arg(long, default_value_t = 50)]
    pub rtt: u64,
    /// Bursty loss (Gilbert-Elliott, mean burst of 4 packets) instead of independent loss.
    #[arg(long)]
    pub burst: bool,
    /// Seconds of media measured.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Video resolution WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    pub resolution: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One cell of the loss table.
#[derive(Debug, Serialize)]
pub struct LossCell {
    loss_pct: f64,
    rtt_ms: u64,
    burst: bool,
    duration_s: f64,
    /// Decoded frame rate, median over the subscribers.
    decoded_fps: f64,
    /// Freezes, summed over the subscribers.
    freezes: u64,
    /// Total freeze time, summed over the subscribers.
    freeze_ms: f64,
    /// Stamp-to-decode latency, median over the subscribers of each percentile.
    latency_ms: Percentiles,
    /// Height of the decoded video, median over the subscribers.
    height: u32,
    /// Keyframe requests sent, summed over the subscribers.
    keyframe_requests: u64,
}

fn link(args: &LossArgs) -> LinkSettings {
    let loss = args.loss / 100.0;
    LinkSettings {
        loss: if args.burst { 0.0 } else { loss },
        burst: args.burst.then(|| BurstLoss::with_mean(loss, 4.0)),
        delay: Duration::from_millis(args.rtt / 2),
        ..LinkSettings::default()
    }
}

/// Runs one cell.
pub async fn run_cell(args: &LossArgs) -> anyhow::Result<LossCell> {
    let (width, height) = parse_resolution(&args.resolution)?;
    let camera = Camera::new(width, height, args.fps, None);
    let server = start_server().await?;
    let network = || Some(NetworkImpairment::symmetric(link(args)));
    let publisher = join(
        &server,
        "loss",
        "publisher",
        Role::Teacher,
        Some(camera),
        network(),
    )
    .await?;
    let mut subscribers = Vec::new();
    for i in 0..2 {
        let identity = format!("subscriber-{i}");
        subscribers.push((
            join(&server, "loss", &identity, Role::Student, None, network()).await?,
            Instant::now(),
        ));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let mut fps = Vec::new();
    let mut p50 = Vec::new();
    let mut p95 = Vec::new();
    let mut max = Vec::new();
    let mut heights = Vec::new();
    let (mut freezes, mut freeze_ms, mut keyframe_requests) = (0, 0.0, 0);
    for (room, joined) in &subscribers {
        let stats = room.stats();
        let video = stats
            .received
            .iter()
            .find(|r| r.from == "publisher" && r.kind == MediaKind::Video);
        let Some(video) = video else {
            fps.push(0.0);
            continue;
        };
        let window = joined.elapsed().as_secs_f64() - video.first_frame_ms.unwrap_or(0.0) / 1000.0;
        fps.push(video.frames_decoded as f64 / window.max(1e-3));
        p50.push(video.latency_ms.p50);
        p95.push(video.latency_ms.p95);
        max.push(video.latency_ms.max);
        heights.push(f64::from(video.height));
        freezes += video.freezes;
        freeze_ms += video.freeze_ms;
        keyframe_requests += video.keyframe_requests;
    }
    for (room, _) in &subscribers {
        room.disconnect().await;
    }
    publisher.disconnect().await;
    server.shutdown().await;
    Ok(LossCell {
        loss_pct: args.loss,
        rtt_ms: args.rtt,
        burst: args.burst,
        duration_s: args.duration,
        decoded_fps: median(fps),
        freezes,
        freeze_ms,
        latency_ms: Percentiles {
            p50: median(p50),
            p95: median(p95),
            max: median(max),
        },
        height: median(heights) as u32,
        keyframe_requests,
    })
}

/// `aula-bench loss`.
pub async fn run(args: LossArgs) -> anyhow::Result<()> {
    let cell = run_cell(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&cell)?);
    } else {
        print_header();
        print_row(&cell);
    }
    Ok(())
}

/// `aula-bench loss-table`: every cell of the table in turn.
pub async fn run_table(args: LossArgs) -> anyhow::Result<()> {
    if !args.json {
        print_header();
    }
    for rtt in [50, 150] {
        for loss in [0.0, 10.0, 20.0, 30.0, 40.0] {
            let cell = run_cell(&LossArgs {
                loss,
                rtt,
                ..args.clone()
            })
            .await?;
            if args.json {
                println!("{}", serde_json::to_string(&cell)?);
            } else {
                print_row(&cell);
            }
        }
    }
    Ok(())
}

fn print_header() {
    println!(
        "{:>6} {:>7} {:>6} {:>8} {:>8} {:>10} {:>8} {:>8} {:>7} {:>6}",
        "loss%",
        "rtt_ms",
        "burst",
        "fps",
        "freezes",
        "freeze_ms",
        "p50_ms",
        "p95_ms",
        "height",
        "plis"
    );
}

fn print_row(c: &LossCell) {
    println!(
        "{:>6.0} {:>7} {:>6} {:>8.1} {:>8} {:>10.0} {:>8.1} {:>8.1} {:>7} {:>6}",
        c.loss_pct,
        c.rtt_ms,
        c.burst,
        c.decoded_fps,
        c.freezes,
        c.freeze_ms,
        c.latency_ms.p50,
        c.latency_ms.p95,
        c.height,
        c.keyframe_requests
    );
}
