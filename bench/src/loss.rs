//! Video through random or bursty loss and delay: one publisher, two subscribers, every client's
//! path to the server impaired each way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_core::netsim::{BurstLoss, LinkSettings, NetworkImpairment};
use aula_core::{Percentiles, RecoveryStats, VideoSink};
use aula_protocol::{MediaKind, Role};
use clap::Args;
use serde::Serialize;

use crate::harness::{
    join, join_with, median, parse_resolution, start_server, Camera, JoinOptions,
};
use aula_core::frame_log::FrameLog;

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
    /// Print, every second, what each subscriber decoded and what the publisher sent.
    #[arg(long)]
    pub timeline: bool,
    /// Subscribers do not repair what they receive (no NACK, no FEC), for comparison.
    #[arg(long)]
    pub no_recovery: bool,
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
    /// The longest freeze at any subscriber.
    longest_freeze_ms: f64,
    /// Stamp-to-decode latency, median over the subscribers of each percentile.
    latency_ms: Percentiles,
    /// Height of the decoded video, median over the subscribers.
    height: u32,
    /// Keyframe requests sent, summed over the subscribers (since joining).
    keyframe_requests: u64,
    /// Loss recovery on the subscribers' downlinks, summed (since joining).
    recovery: RecoveryStats,
    /// Times a subscriber skipped ahead past unrepaired packets, summed (since joining).
    gaps_skipped: u64,
    /// Frames completed too late to show, summed (since joining).
    stale_frames: u64,
    /// Frames dropped because a decoder was behind, summed (since joining).
    decoder_overflows: u64,
    /// Keyframes the publisher produced (since joining).
    keyframes_sent: u64,
    /// The subscribers' loss wait at the end, ms (median).
    loss_wait_ms: f64,
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

/// Runs one cell. Everyone joins on a clean path (with the cell's delay); once video flows at
/// both subscribers the loss starts, and the next `duration` seconds are measured. (Joining
/// through heavy loss is a different matter: the DTLS handshake retransmits a lost flight only
/// once a second.)
pub async fn run_cell(args: &LossArgs) -> anyhow::Result<LossCell> {
    let (width, height) = parse_resolution(&args.resolution)?;
    let camera = Camera::new(width, height, args.fps, None);
    let server = start_server().await?;
    let clean = LinkSettings {
        delay: Duration::from_millis(args.rtt / 2),
        ..LinkSettings::default()
    };
    let paths: Vec<NetworkImpairment> = (0..3)
        .map(|i| NetworkImpairment::symmetric(clean.clone()).with_seed(0x1055 + i))
        .collect();
    let publisher = join(
        &server,
        "loss",
        "publisher",
        Role::Teacher,
        Some(camera),
        Some(paths[0].clone()),
    )
    .await?;
    let mut subscribers = Vec::new();
    for (i, path) in paths[1..].iter().enumerate() {
        let identity = format!("subscriber-{i}");
        let room = join_with(
            &server,
            "loss",
            &identity,
            Role::Student,
            None,
            JoinOptions {
                network: Some(path.clone()),
                loss_recovery: !args.no_recovery,
                ..JoinOptions::default()
            },
        )
        .await?;
        let log = Arc::new(FrameLog::default());
        room.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));
        subscribers.push((room, log));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while subscribers.iter().any(|(_, log)| log.len() < 15) {
        anyhow::ensure!(Instant::now() < deadline, "video did not start within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in &paths {
        path.set_up(link(args));
        path.set_down(link(args));
    }
    let from = Instant::now();
    let end = from + Duration::from_secs_f64(args.duration);
    let mut second = from;
    while second < end {
        let next = (second + Duration::from_secs(1)).min(end);
        tokio::time::sleep_until(next.into()).await;
        if args.timeline {
            print_second(from, second, next, &publisher, &subscribers, args.fps);
        }
        second = next;
    }
    let to = Instant::now();
    let mut fps = Vec::new();
    let mut p50 = Vec::new();
    let mut p95 = Vec::new();
    let mut max = Vec::new();
    let mut heights = Vec::new();
    let (mut freezes, mut freeze_ms, mut keyframe_requests) = (0, 0.0, 0);
    let mut longest_freeze_ms: f64 = 0.0;
    let mut recovery = RecoveryStats::default();
    let (mut gaps_skipped, mut stale_frames, mut waits) = (0, 0, Vec::new());
    let mut decoder_overflows = 0;
    for (room, log) in &subscribers {
        let window = log.summary(from, to, args.fps);
        fps.push(window.decoded_fps);
        p50.push(window.latency_ms.p50);
        p95.push(window.latency_ms.p95);
        max.push(window.latency_ms.max);
        heights.push(f64::from(window.height));
        freezes += window.freezes;
        freeze_ms += window.freeze_ms;
        longest_freeze_ms = longest_freeze_ms.max(window.longest_freeze_ms);
        let stats = room.stats();
        for video in stats
            .received
            .iter()
            .filter(|r| r.from == "publisher" && r.kind == MediaKind::Video)
        {
            keyframe_requests += video.keyframe_requests;
            gaps_skipped += video.gaps_skipped;
            stale_frames += video.stale_frames;
            decoder_overflows += video.decoder_overflows;
            waits.push(video.loss_wait_ms);
        }
        let r = stats.receive_recovery;
        recovery.holes += r.holes;
        recovery.repaired += r.repaired;
        recovery.abandoned += r.abandoned;
        recovery.fec_recovered += r.fec_recovered;
        recovery.requested += r.requested;
        recovery.rtt_ms = recovery.rtt_ms.max(r.rtt_ms);
    }
    let keyframes_sent = publisher
        .stats()
        .published
        .iter()
        .filter(|p| p.kind == MediaKind::Video)
        .map(|p| p.keyframes)
        .sum();
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
        longest_freeze_ms,
        latency_ms: Percentiles {
            p50: median(p50),
            p95: median(p95),
            max: median(max),
        },
        height: median(heights) as u32,
        keyframe_requests,
        recovery,
        gaps_skipped,
        stale_frames,
        decoder_overflows,
        keyframes_sent,
        loss_wait_ms: median(waits),
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

/// One line of `--timeline`: each subscriber's second `from..to`, and the publisher's layers.
fn print_second(
    start: Instant,
    from: Instant,
    to: Instant,
    publisher: &aula_core::Room,
    subscribers: &[(aula_core::Room, Arc<FrameLog>)],
    fps: u32,
) {
    let mut line = format!("t={:>5.1}s", to.duration_since(start).as_secs_f64());
    for (room, log) in subscribers {
        let w = log.summary(from, to, fps);
        let stats = room.stats();
        let video = stats.received.iter().find(|r| r.kind == MediaKind::Video);
        line += &format!(
            " | {:>2} fps {:>4}p p95 {:>4.0} ms kf-req {:>3} skip {:>3} layer {}",
            w.frames,
            w.height,
            w.latency_ms.p95,
            video.map_or(0, |v| v.keyframe_requests),
            video.map_or(0, |v| v.gaps_skipped),
            video
                .and_then(|v| v.layer)
                .map_or("-".to_owned(), |l| l.to_string()),
        );
    }
    let sent = publisher.stats();
    if let Some(video) = sent.published.iter().find(|p| p.kind == MediaKind::Video) {
        let layers: Vec<String> = video
            .layers
            .iter()
            .map(|l| {
                if l.active {
                    format!("{}p {:.0}k", l.height, l.bitrate_kbps)
                } else {
                    format!("{}p off", l.height)
                }
            })
            .collect();
        line += &format!(
            " | sent kf {} {} est {:.0}k",
            video.keyframes,
            layers.join(" "),
            sent.send_estimate.map_or(0.0, |e| e.target_kbps)
        );
    }
    println!("{line}");
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
