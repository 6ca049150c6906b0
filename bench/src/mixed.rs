//! Subscribers on different downlinks watching one publisher: each should get the simulcast
//! layer its own link carries, and the one on the good link should not be held back by the
//! other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_core::netsim::{LinkSettings, NetworkImpairment};
use aula_core::VideoSink;
use aula_protocol::{MediaKind, Role};
use clap::Args;
use serde::Serialize;

use crate::harness::{join_with, start_server, Camera, JoinOptions};
use aula_core::frame_log::{FrameLog, WindowSummary};

/// Arguments of `aula-bench mixed`.
#[derive(Args, Debug, Clone)]
pub struct MixedArgs {
    /// The good subscriber's downlink, kbit/s.
    #[arg(long, default_value_t = 5_000)]
    pub good_kbps: u64,
    /// The poor subscriber's downlink, kbit/s.
    #[arg(long, default_value_t = 500)]
    pub poor_kbps: u64,
    /// Seconds to let the layers settle before measuring.
    #[arg(long, default_value_t = 8.0)]
    pub settle: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Send the camera as one stream instead of simulcast layers (for comparison).
    #[arg(long)]
    pub no_simulcast: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one subscriber got.
#[derive(Debug, Serialize)]
pub struct SubscriberReport {
    /// Its downlink, kbit/s.
    downlink_kbps: u64,
    /// The layer the server forwarded at the end.
    layer: Option<u8>,
    /// What it decoded in the measured window.
    #[serde(flatten)]
    window: WindowSummary,
}

/// What `mixed` measured.
#[derive(Debug, Serialize)]
pub struct MixedReport {
    simulcast: bool,
    good: SubscriberReport,
    poor: SubscriberReport,
}

fn downlink(kbps: u64) -> NetworkImpairment {
    NetworkImpairment::new(
        LinkSettings {
            delay: Duration::from_millis(20),
            ..LinkSettings::default()
        },
        LinkSettings {
            delay: Duration::from_millis(20),
            cap_bps: Some(kbps * 1000),
            ..LinkSettings::default()
        },
    )
}

/// Runs `mixed` once.
pub async fn run_once(args: &MixedArgs) -> anyhow::Result<MixedReport> {
    let server = start_server().await?;
    let mut camera = Camera::new(1280, 720, 30, None);
    camera.simulcast = !args.no_simulcast;
    let publisher = join_with(
        &server,
        "mixed",
        "publisher",
        Role::Teacher,
        Some(camera),
        JoinOptions::default(),
    )
    .await?;
    let mut subscribers = Vec::new();
    for (identity, kbps) in [("good", args.good_kbps), ("poor", args.poor_kbps)] {
        let room = join_with(
            &server,
            "mixed",
            identity,
            Role::Student,
            None,
            JoinOptions {
                network: Some(downlink(kbps)),
                ..JoinOptions::default()
            },
        )
        .await?;
        let log = Arc::new(FrameLog::default());
        room.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));
        subscribers.push((room, log, kbps));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let to = Instant::now();
    let mut reports = Vec::new();
    for (room, log, kbps) in &subscribers {
        let layer = room
            .stats()
            .received
            .iter()
            .find(|r| r.kind == MediaKind::Video)
            .and_then(|r| r.layer);
        reports.push(SubscriberReport {
            downlink_kbps: *kbps,
            layer,
            window: log.summary(from, to, 30),
        });
    }
    for (room, _, _) in &subscribers {
        room.disconnect().await;
    }
    publisher.disconnect().await;
    server.shutdown().await;
    let poor = reports.pop().ok_or_else(|| anyhow::anyhow!("no report"))?;
    let good = reports.pop().ok_or_else(|| anyhow::anyhow!("no report"))?;
    Ok(MixedReport {
        simulcast: !args.no_simulcast,
        good,
        poor,
    })
}

/// `aula-bench mixed`.
pub async fn run(args: MixedArgs) -> anyhow::Result<()> {
    let report = run_once(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{:>10} {:>8} {:>6} {:>7} {:>8} {:>8} {:>8}",
        "downlink", "layer", "height", "fps", "p50_ms", "p95_ms", "freezes"
    );
    for s in [&report.good, &report.poor] {
        println!(
            "{:>10} {:>8} {:>6} {:>7.1} {:>8.1} {:>8.1} {:>8}",
            format!("{}k", s.downlink_kbps),
            s.layer.map_or("-".to_owned(), |l| l.to_string()),
            s.window.height,
            s.window.decoded_fps,
            s.window.latency_ms.p50,
            s.window.latency_ms.p95,
            s.window.freezes
        );
    }
    Ok(())
}
