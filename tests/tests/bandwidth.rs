//! Adaptive bitrate end to end: the publisher's estimate follows its uplink, the encoder
//! follows the estimate, and a capped link stops queueing once it has adapted.

use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use aula_core::clock::{micros_since_stamp, unix_micros};
use aula_core::media::{FrameStamp, SyntheticVideoSource, VideoFrame};
use aula_core::netsim::{LinkSettings, NetworkImpairment};
use aula_core::{Room, RoomOptions, VideoPublishOptions, VideoSink};
use aula_protocol::{ParticipantId, Role, TrackSid};
use aula_server::{Server, ServerConfig};

use crate::support;
use support::{init_test_log, stamped_frames_from, token};

/// Records the stamp-to-decode latency of every decoded frame, with when it was decoded.
#[derive(Default)]
struct LatencyLog(Mutex<Vec<(Instant, f64)>>);

impl VideoSink for LatencyLog {
    fn on_video_frame(
        &self,
        _participant: &ParticipantId,
        _track: &TrackSid,
        _frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        if let Some(us) = stamp.and_then(|s| micros_since_stamp(s.capture_time_us, unix_micros())) {
            self.0
                .lock()
                .unwrap()
                .push((Instant::now(), us as f64 / 1000.0));
        }
    }
}

impl LatencyLog {
    /// Latency p95 (ms) of the frames decoded since `from`, and how many there were.
    fn p95_since(&self, from: Instant) -> (f64, usize) {
        let mut recent: Vec<f64> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, ms)| *ms)
            .collect();
        recent.sort_by(f64::total_cmp);
        let p95 = recent
            .get(((recent.len() as f64) * 0.95) as usize)
            .or(recent.last())
            .copied()
            .unwrap_or(f64::INFINITY);
        (p95, recent.len())
    }
}

/// A teacher publishing 1280x720 at 30 fps configured for 2.5 Mbit/s through `uplink`, and a
/// student on a clear path.
async fn class(
    uplink: NetworkImpairment,
    adaptive: bool,
    log: Arc<LatencyLog>,
) -> (aula_server::ServerHandle, Room, Room) {
    init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let url = server.ws_url();
    let (teacher, _t) = Room::connect(
        &url,
        &token("abr", "t1", Role::Teacher),
        RoomOptions {
            network: Some(uplink),
            adaptive_bitrate: adaptive,
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    teacher
        .publish_video(
            SyntheticVideoSource::new(1280, 720, 30).unwrap(),
            VideoPublishOptions {
                bitrate_bps: 2_500_000,
                ..VideoPublishOptions::default()
            },
        )
        .await
        .unwrap();
    let (student, _s) = Room::connect(
        &url,
        &token("abr", "s1", Role::Student),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    student.set_video_sink(Some(log));
    let deadline = Instant::now() + Duration::from_secs(20);
    while stamped_frames_from(&student, "t1") < 30 {
        assert!(Instant::now() < deadline, "video flows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, teacher, student)
}

fn capped(kbps: u64) -> LinkSettings {
    LinkSettings {
        delay: Duration::from_millis(20),
        cap_bps: Some(kbps * 1000),
        ..LinkSettings::default()
    }
}

/// Capping the uplink from 5 Mbit/s to 800 kbit/s: within a few seconds the encoder is under
/// the cap and frames stop queueing. Returns (encoder target kbit/s, latency p95 ms, frames
/// decoded) measured 3 to 6 s after the cap.
async fn step_down(adaptive: bool) -> (f64, f64, usize) {
    let uplink = NetworkImpairment::new(capped(5_000), LinkSettings::default());
    let log = Arc::new(LatencyLog::default());
    let (server, teacher, student) = class(uplink.clone(), adaptive, Arc::clone(&log)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = teacher.stats();
    println!(
        "before the cap: estimate {:?}, encoder target {:.0} kbit/s",
        before.send_estimate, before.published[0].target_bitrate_kbps
    );
    uplink.set_up(capped(800));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (p95, frames) = log.p95_since(window);
    let after = teacher.stats();
    println!(
        "adaptive {adaptive}: 3-6 s after the cap: {frames} frames, latency p95 {p95:.0} ms, \
         estimate {:?}, encoder target {:.0} kbit/s",
        after.send_estimate, after.published[0].target_bitrate_kbps
    );
    let target = after.published[0].target_bitrate_kbps;
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
    (target, p95, frames)
}

/// One test, so the two runs (each a 720p30 encoder and decoder) do not compete for the CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_uplink_is_followed_and_stops_queueing() {
    let _alone = support::exclusive().await;
    let (target, p95, frames) = step_down(true).await;
    assert!(
        target <= 800.0,
        "the encoder follows the cap: {target} kbit/s"
    );
    assert!(p95 < 300.0, "queueing delay drained: p95 {p95} ms");
    assert!(frames >= 45, "video keeps flowing: {frames} frames in 3 s");

    // The control: the same cap with the encoder held at its configured rate.
    let (target, p95, frames) = step_down(false).await;
    assert!(target > 800.0);
    assert!(
        p95 >= 300.0 || frames < 45,
        "without adaptation a 2.5 Mbit/s encoder over 800 kbit/s must queue or stall \
         (p95 {p95} ms, {frames} frames in 3 s)"
    );
}
