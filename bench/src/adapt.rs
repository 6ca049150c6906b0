//! Adaptive bitrate: how fast a publisher reaches 720p on an open link (`ramp`), and how it
//! follows a link that drops and recovers (`step`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_core::netsim::{LinkSettings, NetworkImpairment};
use aula_core::{Percentiles, Room, VideoSink};
use aula_protocol::{MediaKind, Role};
use clap::Args;
use serde::Serialize;

use crate::harness::{join_with, start_server, Camera, JoinOptions};
use aula_core::frame_log::FrameLog;

/// One-way delay of the publisher's capped uplink, ms.
const UPLINK_DELAY_MS: u64 = 20;
/// Latency under which a step counts as absorbed, ms.
const SETTLED_LATENCY_MS: f64 = 150.0;

/// Arguments of `aula-bench ramp`.
#[derive(Args, Debug, Clone)]
pub struct RampArgs {
    /// The publisher's uplink, kbit/s.
    #[arg(long, default_value_t = 5_000)]
    pub cap_kbps: u64,
    /// Seconds to watch.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Keep the encoder at its configured bitrate (for comparison).
    #[arg(long)]
    pub no_adapt: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `aula-bench step`.
#[derive(Args, Debug, Clone)]
pub struct StepArgs {
    /// The uplink before and after the step, kbit/s.
    #[arg(long, default_value_t = 5_000)]
    pub from_kbps: u64,
    /// The uplink during the step, kbit/s.
    #[arg(long, default_value_t = 800)]
    pub to_kbps: u64,
    /// Seconds the link stays stepped down (and then up).
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Keep the encoder at its configured bitrate (for comparison).
    #[arg(long)]
    pub no_adapt: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One sample of the publisher's adaptation.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the publisher started connecting (ramp) or since the step (step).
    t: f64,
    /// The bandwidth estimate, kbit/s.
    estimate_kbps: Option<f64>,
    /// The encoder's target, kbit/s.
    encoder_kbps: f64,
    /// Height of the last frame the subscriber decoded.
    received_height: u32,
}

/// What `ramp` measured.
#[derive(Debug, Serialize)]
pub struct RampReport {
    cap_kbps: u64,
    adaptive: bool,
    /// Seconds from the publisher's connect to the start of the 720p picture the subscriber
    /// kept to the end of the run (`None` if it did not end on 720p).
    seconds_to_720p: Option<f64>,
    /// Seconds to the first 720p frame, even one the layers then stepped down from (a cold
    /// start sends every layer until the first estimate arrives).
    first_720p_frame_seconds: Option<f64>,
    /// The estimate every 250 ms.
    samples: Vec<Sample>,
}

/// What `step` measured.
#[derive(Debug, Serialize)]
pub struct StepReport {
    from_kbps: u64,
    to_kbps: u64,
    adaptive: bool,
    /// Seconds from the step down until frames arrive within 150 ms again (and stay so for a
    /// second); `None` if they never did during the hold.
    adapt_seconds: Option<f64>,
    /// Seconds from the step down until the last frame of the hold that took 150 ms or more
    /// (probes for more bandwidth overrun the capped link now and then).
    settled_for_good_seconds: Option<f64>,
    /// Share of the frames after `adapt_seconds` that took 150 ms or more.
    late_after_adapting: f64,
    /// Stamp-to-decode latency during the step down.
    latency_ms: Percentiles,
    /// Frames decoded per second during the step down.
    decoded_fps: f64,
    /// Seconds from the step back up until the encoder is back at 90 % of its pre-step target.
    recover_seconds: Option<f64>,
    /// The estimate every 250 ms from 2 s before the step down to the end.
    samples: Vec<Sample>,
}

fn capped(kbps: u64) -> LinkSettings {
    LinkSettings {
        delay: Duration::from_millis(UPLINK_DELAY_MS),
        cap_bps: Some(kbps * 1000),
        ..LinkSettings::default()
    }
}

fn sample(t: f64, publisher: &Room, subscriber: &Room) -> Sample {
    let sent = publisher.stats();
    let received_height = subscriber
        .stats()
        .received
        .iter()
        .find(|r| r.kind == MediaKind::Video)
        .map_or(0, |r| r.height);
    Sample {
        t,
        estimate_kbps: sent.send_estimate.map(|e| e.target_kbps),
        encoder_kbps: sent
            .published
            .iter()
            .find(|p| p.kind == MediaKind::Video)
            .map_or(0.0, |p| p.target_bitrate_kbps),
        received_height,
    }
}

/// A 720p30 publisher (at most 2.5 Mbit/s) behind `uplink`, and a subscriber on a clear path.
async fn class(
    uplink: NetworkImpairment,
    adaptive: bool,
) -> anyhow::Result<(
    aula_server::ServerHandle,
    Room,
    Room,
    Arc<FrameLog>,
    Instant,
)> {
    let server = start_server().await?;
    let subscriber = join_with(
        &server,
        "abr",
        "subscriber",
        Role::Student,
        None,
        JoinOptions::default(),
    )
    .await?;
    let log = Arc::new(FrameLog::default());
    subscriber.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));
    let started = Instant::now();
    let publisher = join_with(
        &server,
        "abr",
        "publisher",
        Role::Teacher,
        Some(Camera::new(1280, 720, 30, Some(2_500))),
        JoinOptions {
            network: Some(uplink),
            adaptive_bitrate: adaptive,
            ..JoinOptions::default()
        },
    )
    .await?;
    Ok((server, publisher, subscriber, log, started))
}

/// Runs `ramp` once.
pub async fn run_ramp_once(args: &RampArgs) -> anyhow::Result<RampReport> {
    let uplink = NetworkImpairment::new(capped(args.cap_kbps), LinkSettings::default());
    let (server, publisher, subscriber, _log, started) = class(uplink, !args.no_adapt).await?;
    let mut samples = Vec::new();
    let mut seconds_to_720p = None;
    let mut first_720p_frame_seconds = None;
    let mut next_sample = Duration::ZERO;
    while started.elapsed().as_secs_f64() < args.duration {
        let now = sample(started.elapsed().as_secs_f64(), &publisher, &subscriber);
        if now.received_height >= 720 {
            first_720p_frame_seconds.get_or_insert(now.t);
            seconds_to_720p.get_or_insert(now.t);
        } else {
            seconds_to_720p = None;
        }
        if started.elapsed() >= next_sample {
            samples.push(now);
            next_sample += Duration::from_millis(250);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publisher.disconnect().await;
    subscriber.disconnect().await;
    server.shutdown().await;
    Ok(RampReport {
        cap_kbps: args.cap_kbps,
        adaptive: !args.no_adapt,
        seconds_to_720p,
        first_720p_frame_seconds,
        samples,
    })
}

/// `aula-bench ramp`.
pub async fn run_ramp(args: RampArgs) -> anyhow::Result<()> {
    let report = run_ramp_once(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        match report.seconds_to_720p {
            Some(s) => println!(
                "720p reached the subscriber for good {s:.2} s after the publisher joined \
                 (first 720p frame at {:.2} s)",
                report.first_720p_frame_seconds.unwrap_or(s)
            ),
            None => println!("720p never reached the subscriber in {} s", args.duration),
        }
        print_samples(&report.samples);
    }
    Ok(())
}

/// Runs `step` once.
pub async fn run_step_once(args: &StepArgs) -> anyhow::Result<StepReport> {
    let uplink = NetworkImpairment::new(capped(args.from_kbps), LinkSettings::default());
    let (server, publisher, subscriber, log, _) = class(uplink.clone(), !args.no_adapt).await?;
    // Settle at the high rate first.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let before = sample(0.0, &publisher, &subscriber).encoder_kbps;
    let mut samples = Vec::new();
    let down = Instant::now();
    uplink.set_up(capped(args.to_kbps));
    let hold = Duration::from_secs_f64(args.hold);
    while down.elapsed() < hold {
        samples.push(sample(
            down.elapsed().as_secs_f64(),
            &publisher,
            &subscriber,
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up = Instant::now();
    uplink.set_up(capped(args.from_kbps));
    let mut recover_seconds = None;
    while up.elapsed() < hold {
        let now = sample(down.elapsed().as_secs_f64(), &publisher, &subscriber);
        if recover_seconds.is_none() && now.encoder_kbps >= before * 0.9 {
            recover_seconds = Some(up.elapsed().as_secs_f64());
        }
        samples.push(now);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let during: Vec<(Instant, f64)> = log
        .between(down, up)
        .iter()
        .filter_map(|f| Some((f.at, f.latency_ms?)))
        .collect();
    let adapt_seconds = first_settled(&during, down);
    let settled_for_good_seconds = settled_after(&during, down);
    let late_after_adapting = adapt_seconds.map_or(1.0, |s| {
        let after: Vec<_> = during
            .iter()
            .filter(|(at, _)| at.duration_since(down).as_secs_f64() >= s)
            .collect();
        let late = after
            .iter()
            .filter(|(_, ms)| *ms >= SETTLED_LATENCY_MS)
            .count();
        late as f64 / after.len().max(1) as f64
    });
    let decoded_fps = during.len() as f64 / hold.as_secs_f64();
    publisher.disconnect().await;
    subscriber.disconnect().await;
    server.shutdown().await;
    Ok(StepReport {
        from_kbps: args.from_kbps,
        to_kbps: args.to_kbps,
        adaptive: !args.no_adapt,
        adapt_seconds,
        settled_for_good_seconds,
        late_after_adapting,
        latency_ms: Percentiles::of(&during.iter().map(|(_, ms)| *ms).collect::<Vec<_>>()),
        decoded_fps,
        recover_seconds,
        samples,
    })
}

/// Seconds from `from` to the first frame from which every frame for a second arrived within
/// [`SETTLED_LATENCY_MS`].
fn first_settled(frames: &[(Instant, f64)], from: Instant) -> Option<f64> {
    let mut start: Option<usize> = None;
    for (i, (at, ms)) in frames.iter().enumerate() {
        if *ms >= SETTLED_LATENCY_MS {
            start = None;
            continue;
        }
        let first = *start.get_or_insert(i);
        if at.duration_since(frames[first].0) >= Duration::from_secs(1) {
            return Some(frames[first].0.duration_since(from).as_secs_f64());
        }
    }
    None
}

/// Seconds from `from` to the first frame after which every frame for a second (and to the
/// end of the log) arrived within [`SETTLED_LATENCY_MS`].
fn settled_after(frames: &[(Instant, f64)], from: Instant) -> Option<f64> {
    let last_late = frames.iter().rposition(|(_, ms)| *ms >= SETTLED_LATENCY_MS);
    let settled_from = match last_late {
        None => frames.first()?,
        Some(i) => frames.get(i + 1)?,
    };
    let end = frames.last()?.0;
    (end.duration_since(settled_from.0) >= Duration::from_secs(1))
        .then(|| settled_from.0.duration_since(from).as_secs_f64())
}

/// `aula-bench step`.
pub async fn run_step(args: StepArgs) -> anyhow::Result<()> {
    let report = run_step_once(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} -> {} kbit/s: back under {SETTLED_LATENCY_MS} ms after {} ({:.1} % of frames late after that, the last {}); latency p50 {:.0} / p95 {:.0} / max {:.0} ms, {:.1} fps during the step; encoder back at 90 % {} after the link returned",
            report.from_kbps,
            report.to_kbps,
            report
                .adapt_seconds
                .map_or("never".to_owned(), |s| format!("{s:.2} s")),
            report.late_after_adapting * 100.0,
            report
                .settled_for_good_seconds
                .map_or("at the end".to_owned(), |s| format!("at {s:.2} s")),
            report.latency_ms.p50,
            report.latency_ms.p95,
            report.latency_ms.max,
            report.decoded_fps,
            report
                .recover_seconds
                .map_or("never".to_owned(), |s| format!("{s:.2} s")),
        );
        print_samples(&report.samples);
    }
    Ok(())
}

fn print_samples(samples: &[Sample]) {
    println!(
        "{:>6} {:>12} {:>12} {:>8}",
        "t_s", "estimate", "encoder", "height"
    );
    for s in samples {
        println!(
            "{:>6.2} {:>12} {:>12.0} {:>8}",
            s.t,
            s.estimate_kbps
                .map_or("-".to_owned(), |e| format!("{e:.0}")),
            s.encoder_kbps,
            s.received_height
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_needs_a_second_of_timely_frames() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let frames = vec![
            (at(100), 400.0),
            (at(500), 200.0),
            (at(900), 80.0),
            (at(2000), 60.0),
        ];
        assert_eq!(settled_after(&frames, start), Some(0.9));
        let late_end = vec![(at(100), 80.0), (at(1500), 400.0)];
        assert_eq!(settled_after(&late_end, start), None);
        assert_eq!(settled_after(&[], start), None);
        let probe = vec![
            (at(100), 400.0),
            (at(500), 80.0),
            (at(1600), 80.0),
            (at(2000), 300.0),
            (at(3200), 80.0),
        ];
        assert_eq!(first_settled(&probe, start), Some(0.5));
        assert_eq!(
            settled_after(&probe, start),
            None,
            "the last second is not a full one"
        );
    }
}
