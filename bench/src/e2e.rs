//! The end-to-end call scenario.

use std::time::{Duration, Instant};

use anyhow::bail;
use aula_core::Percentiles;
use aula_protocol::{MediaKind, Role};

use crate::harness::{join, median, parse_resolution, start_server, Camera};
use clap::Args;
use serde::Serialize;

/// Arguments of `aula-bench e2e`.
#[derive(Args, Debug)]
pub struct E2eArgs {
    /// Participants, each publishing video and audio.
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Send each camera as one stream instead of simulcast layers.
    #[arg(long)]
    no_simulcast: bool,
    /// Video resolution WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    resolution: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds of media after everyone has joined.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Video bitrate in kbit/s (default scales with resolution).
    #[arg(long)]
    bitrate_kbps: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One receiver's view of one publisher's video.
#[derive(Debug, Serialize)]
struct ReceiverRow {
    receiver: String,
    from: String,
    join_ms: f64,
    /// From this receiver's connect to its first decoded frame of this publisher.
    first_frame_ms: Option<f64>,
    /// From the later of the two connects (this receiver's, the publisher's) to that first
    /// frame: how long a picture takes to appear once both are in the room.
    first_frame_after_both_joined_ms: Option<f64>,
    frames_decoded: u64,
    frames_stamped_ok: u64,
    decoded_fps: f64,
    latency_ms: Percentiles,
    freezes: u64,
    audio_samples: u64,
}

/// The whole run.
#[derive(Debug, Serialize)]
struct Report {
    participants: usize,
    resolution: String,
    fps: u32,
    duration_s: f64,
    receivers: Vec<ReceiverRow>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct Summary {
    first_frame_ms_max: f64,
    first_frame_after_both_joined_ms_max: f64,
    latency_p50_ms_median: f64,
    latency_p95_ms_median: f64,
    decoded_fps_min: f64,
}

/// Runs the scenario and prints the report.
pub async fn run(args: E2eArgs) -> anyhow::Result<()> {
    if args.participants < 2 {
        bail!("--participants must be at least 2");
    }
    let (width, height) = parse_resolution(&args.resolution)?;
    let mut camera = Camera::new(width, height, args.fps, args.bitrate_kbps);
    camera.simulcast = !args.no_simulcast;
    let server = start_server().await?;
    let mut rooms = Vec::new();
    for i in 0..args.participants {
        let identity = format!("p{i}");
        let role = if i == 0 { Role::Teacher } else { Role::Student };
        let connected_at = Instant::now();
        let room = join(&server, "bench", &identity, role, Some(camera), None).await?;
        rooms.push((identity, room, connected_at));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;

    let mut receivers = Vec::new();
    for (identity, room, connected_at) in &rooms {
        let stats = room.stats();
        let age_s = connected_at.elapsed().as_secs_f64();
        for video in stats.received.iter().filter(|r| r.kind == MediaKind::Video) {
            let audio_samples = stats
                .received
                .iter()
                .filter(|r| r.kind == MediaKind::Audio && r.from == video.from)
                .map(|r| r.samples_decoded)
                .sum();
            // Frame rate over the time since this receiver's first frame of the track.
            let window_s = video
                .first_frame_ms
                .map(|first| (age_s - first / 1000.0).max(1e-3))
                .unwrap_or(age_s);
            // The publisher joined after this receiver: its picture could not come earlier.
            let publisher_later_ms = rooms
                .iter()
                .find(|(other, _, _)| *other == video.from)
                .map_or(0.0, |(_, _, publisher_at)| {
                    publisher_at
                        .saturating_duration_since(*connected_at)
                        .as_secs_f64()
                        * 1000.0
                });
            receivers.push(ReceiverRow {
                receiver: identity.clone(),
                from: video.from.clone(),
                join_ms: stats.join_ms,
                first_frame_ms: video.first_frame_ms,
                first_frame_after_both_joined_ms: video
                    .first_frame_ms
                    .map(|first| first - publisher_later_ms),
                frames_decoded: video.frames_decoded,
                frames_stamped_ok: video.frames_stamped_ok,
                decoded_fps: video.frames_decoded as f64 / window_s,
                latency_ms: video.latency_ms,
                freezes: video.freezes,
                audio_samples,
            });
        }
    }
    for (_, room, _) in &rooms {
        room.disconnect().await;
    }
    server.shutdown().await;

    let expected = args.participants * (args.participants - 1);
    let summary = Summary {
        first_frame_ms_max: receivers
            .iter()
            .filter_map(|r| r.first_frame_ms)
            .fold(0.0, f64::max),
        first_frame_after_both_joined_ms_max: receivers
            .iter()
            .filter_map(|r| r.first_frame_after_both_joined_ms)
            .fold(0.0, f64::max),
        latency_p50_ms_median: median(receivers.iter().map(|r| r.latency_ms.p50).collect()),
        latency_p95_ms_median: median(receivers.iter().map(|r| r.latency_ms.p95).collect()),
        decoded_fps_min: receivers
            .iter()
            .map(|r| r.decoded_fps)
            .fold(f64::INFINITY, f64::min),
    };
    let report = Report {
        participants: args.participants,
        resolution: args.resolution.clone(),
        fps: args.fps,
        duration_s: args.duration,
        receivers,
        summary,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    if report.receivers.len() != expected {
        bail!(
            "only {} of {expected} receiver/publisher pairs delivered video",
            report.receivers.len()
        );
    }
    Ok(())
}

fn print_table(report: &Report) {
    println!(
        "e2e: {} participants, {} @ {} fps, {:.0} s",
        report.participants, report.resolution, report.fps, report.duration_s
    );
    println!(
        "{:<8} {:<6} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "receiver",
        "from",
        "join_ms",
        "first_ms",
        "both_in_ms",
        "frames",
        "fps",
        "p50_ms",
        "p95_ms",
        "max_ms",
        "freezes"
    );
    for r in &report.receivers {
        println!(
            "{:<8} {:<6} {:>8.1} {:>10} {:>10} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8}",
            r.receiver,
            r.from,
            r.join_ms,
            r.first_frame_ms
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            r.first_frame_after_both_joined_ms
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            r.frames_decoded,
            r.decoded_fps,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.max,
            r.freezes
        );
    }
    let s = &report.summary;
    println!(
        "summary: first frame max {:.1} ms from the receiver's connect, {:.1} ms once both were \
         in the room; latency p50 {:.1} ms / p95 {:.1} ms (median over receivers), min decoded \
         fps {:.1}",
        s.first_frame_ms_max,
        s.first_frame_after_both_joined_ms_max,
        s.latency_p50_ms_median,
        s.latency_p95_ms_median,
        s.decoded_fps_min
    );
}
