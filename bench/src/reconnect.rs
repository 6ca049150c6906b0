//! A subscriber's network cut for a few seconds, then restored: how long until its picture is
//! live again, with no help from the application.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_core::frame_log::FrameLog;
use aula_core::netsim::{LinkSettings, NetworkImpairment};
use aula_core::VideoSink;
use aula_protocol::Role;
use clap::Args;
use serde::Serialize;

use crate::harness::{join_with, median, parse_resolution, start_server, Camera, JoinOptions};

/// Arguments of `aula-bench reconnect`.
#[derive(Args, Debug, Clone)]
pub struct ReconnectArgs {
    /// Seconds the subscriber's media path is cut (both ways).
    #[arg(long, default_value_t = 5.0)]
    pub cut_seconds: f64,
    /// Cuts measured, one call each.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
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

/// One cut and what followed it.
#[derive(Debug, Serialize)]
pub struct ReconnectRun {
    /// From the path coming back to the first decoded frame captured after that moment.
    first_live_frame_ms: Option<f64>,
    /// From the path coming back to a second of live frames at no less than half the frame rate.
    smooth_again_ms: Option<f64>,
    /// Whether the room reported itself connected throughout (resumed, not rejoined).
    stayed_connected: bool,
}

/// What `reconnect` measured: every run, and the medians.
#[derive(Debug, Serialize)]
pub struct ReconnectReport {
    cut_seconds: f64,
    runs: Vec<ReconnectRun>,
    first_live_frame_ms_median: Option<f64>,
    smooth_again_ms_median: Option<f64>,
}

/// Runs one call: a publisher, a subscriber whose path is cut once.
async fn run_once(args: &ReconnectArgs) -> anyhow::Result<ReconnectRun> {
    let (width, height) = parse_resolution(&args.resolution)?;
    let server = start_server().await?;
    let publisher = join_with(
        &server,
        "reconnect",
        "publisher",
        Role::Teacher,
        Some(Camera::new(width, height, args.fps, None)),
        JoinOptions::default(),
    )
    .await?;
    let network = NetworkImpairment::symmetric(LinkSettings {
        delay: Duration::from_millis(10),
        ..LinkSettings::default()
    });
    let subscriber = join_with(
        &server,
        "reconnect",
        "subscriber",
        Role::Student,
        None,
        JoinOptions {
            network: Some(network.clone()),
            ..JoinOptions::default()
        },
    )
    .await?;
    let log = Arc::new(FrameLog::default());
    subscriber.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));

    // Media flows and the layers settle before the cut.
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.len() < usize::try_from(args.fps * 3)? {
        anyhow::ensure!(Instant::now() < deadline, "no video before the cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    network.set_cut(true);
    tokio::time::sleep(Duration::from_secs_f64(args.cut_seconds)).await;
    let restored = Instant::now();
    let restored_unix_ms = unix_ms();
    network.set_cut(false);

    let give_up = restored + Duration::from_secs(30);
    let mut stayed_connected = subscriber.is_connected();
    let mut first_live_frame_ms = None;
    let mut smooth_again_ms = None;
    while Instant::now() < give_up && smooth_again_ms.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stayed_connected &= subscriber.is_connected();
        let now = Instant::now();
        // Frames captured after the path came back: latency shorter than the time since then.
        let live: Vec<Instant> = log
            .between(restored, now)
            .into_iter()
            .filter(|f| {
                f.latency_ms.is_some_and(|latency| {
                    let captured_unix_ms =
                        decoded_unix_ms(restored_unix_ms, restored, f.at) - latency;
                    captured_unix_ms >= restored_unix_ms
                })
            })
            .map(|f| f.at)
            .collect();
        if first_live_frame_ms.is_none() {
            first_live_frame_ms = live.first().map(|at| ms(at.duration_since(restored)));
        }
        // A second of live frames at half the frame rate or better.
        let needed = usize::try_from(args.fps / 2)?.max(1);
        if let Some(window_end) = live
            .iter()
            .enumerate()
            .skip(needed)
            .find(|(i, at)| at.duration_since(live[i - needed]) <= Duration::from_secs(1))
            .map(|(_, at)| *at)
        {
            smooth_again_ms = Some(ms(window_end.duration_since(restored)));
        }
    }
    subscriber.disconnect().await;
    publisher.disconnect().await;
    server.shutdown().await;
    Ok(ReconnectRun {
        first_live_frame_ms,
        smooth_again_ms,
        stayed_connected,
    })
}

/// `aula-bench reconnect`.
pub async fn run(args: ReconnectArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for run in 0..args.runs {
        let result = run_once(&args).await?;
        if !args.json {
            println!(
                "run {}: first live frame {} ms, smooth again {} ms, stayed connected: {}",
                run + 1,
                show(result.first_live_frame_ms),
                show(result.smooth_again_ms),
                result.stayed_connected
            );
        }
        runs.push(result);
    }
    let median_of = |pick: fn(&ReconnectRun) -> Option<f64>| {
        let values: Option<Vec<f64>> = runs.iter().map(pick).collect();
        values.map(median)
    };
    let report = ReconnectReport {
        cut_seconds: args.cut_seconds,
        first_live_frame_ms_median: median_of(|r| r.first_live_frame_ms),
        smooth_again_ms_median: median_of(|r| r.smooth_again_ms),
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "after a {:.1} s cut, median of {}: first live frame {} ms, smooth again {} ms",
            report.cut_seconds,
            report.runs.len(),
            show(report.first_live_frame_ms_median),
            show(report.smooth_again_ms_median)
        );
    }
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn show(value: Option<f64>) -> String {
    value.map_or("never".to_owned(), |v| format!("{v:.0}"))
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The wall-clock time of `at`, from a known pair (`anchor_unix_ms` at `anchor`).
fn decoded_unix_ms(anchor_unix_ms: f64, anchor: Instant, at: Instant) -> f64 {
    anchor_unix_ms + ms(at.saturating_duration_since(anchor))
}
