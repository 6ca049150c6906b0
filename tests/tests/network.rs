//! Media over an impaired path: a client's network cut for five seconds comes back by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_core::frame_log::FrameLog;
use aula_core::media::SyntheticVideoSource;
use aula_core::netsim::{LinkSettings, NetworkImpairment};
use aula_core::{Room, RoomEvent, RoomOptions, VideoPublishOptions, VideoSink};
use aula_protocol::{MediaKind, Role};
use aula_server::{Server, ServerConfig};

use crate::support;

use support::{http_get, init_test_log, publish_camera, stamped_frames_from, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_second_network_cut_resumes_without_the_application() {
    let _alone = support::exclusive().await;
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let url = server.ws_url();
    let (teacher, _t_events) = Room::connect(
        &url,
        &token("net", "t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    publish_camera(&teacher, 320, 180, 15).await;
    let network = NetworkImpairment::symmetric(LinkSettings::default());
    let (student, _s_events) = Room::connect(
        &url,
        &token("net", "s1", Role::Student),
        RoomOptions {
            network: Some(network.clone()),
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stamped_frames_from(&student, "t1") < 15 {
        assert!(Instant::now() < deadline, "media flows before the cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    network.set_cut(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = stamped_frames_from(&student, "t1");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        stamped_frames_from(&student, "t1") <= during + 1,
        "nothing arrives while the path is cut"
    );
    let restored = Instant::now();
    network.set_cut(false);
    let before = stamped_frames_from(&student, "t1");
    let deadline = restored + Duration::from_secs(20);
    let mut first_frame_after = None;
    while stamped_frames_from(&student, "t1") < before + 15 {
        if first_frame_after.is_none() && stamped_frames_from(&student, "t1") > before {
            first_frame_after = Some(restored.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "media did not resume after the cut: {:#?}",
            student.stats().received
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "first frame {:.0} ms and 15 frames {:.0} ms after the path came back",
        first_frame_after.unwrap_or_default().as_secs_f64() * 1000.0,
        restored.elapsed().as_secs_f64() * 1000.0
    );
    assert!(student.is_connected());
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}

/// A media path dead for longer than a connection waits (a changed network: the old path is
/// gone): the room rejoins on new connections by itself, and the picture comes back once the
/// path does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_dead_beyond_the_ice_timeout_rejoins_by_itself() {
    let _alone = support::exclusive().await;
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let url = server.ws_url();
    let (teacher, _t_events) = Room::connect(
        &url,
        &token("net-rejoin", "t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    publish_camera(&teacher, 320, 180, 15).await;
    let network = NetworkImpairment::symmetric(LinkSettings::default());
    let (student, mut events) = Room::connect(
        &url,
        &token("net-rejoin", "s1", Role::Student),
        RoomOptions {
            network: Some(network.clone()),
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    // The sink outlives the rejoin; the per-subscription stats start again with it.
    let log = Arc::new(FrameLog::default());
    student.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));
    let deadline = Instant::now() + Duration::from_secs(20);
    while stamped_frames_from(&student, "t1") < 15 {
        assert!(Instant::now() < deadline, "media flows before the cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    network.set_cut(true);
    // Fifteen seconds of silence fail the connections (5 s of a short cut resume in place).
    let cut_at = Instant::now();
    let mut reconnecting = false;
    while cut_at.elapsed() < Duration::from_secs(18) {
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), events.recv()).await
        {
            reconnecting |= matches!(event, RoomEvent::Reconnecting { .. });
        }
    }
    assert!(
        reconnecting,
        "a path dead for 18 s makes the room rejoin on new connections"
    );
    network.set_cut(false);
    let restored = Instant::now();
    let deadline = restored + Duration::from_secs(25);
    while log.between(restored, Instant::now()).len() < 15 {
        assert!(
            Instant::now() < deadline,
            "media did not resume after the rejoin: {:#?}",
            student.stats().received
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "15 frames {:.0} ms after the path came back",
        restored.elapsed().as_secs_f64() * 1000.0
    );
    assert!(student.is_connected());
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}

/// Runs a publisher and a subscriber with `publisher_up` loss on the publisher's uplink and
/// `subscriber_down` loss on the subscriber's downlink (20 ms each way), and returns what the
/// subscriber decoded in the 10 s after its first frame of 640x360 at 15 fps, and the packets
/// the server's metrics say were asked for again.
async fn decoded_through_loss(publisher_up: f64, subscriber_down: f64) -> ThroughLoss {
    init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let url = server.ws_url();
    let path = |loss: f64| LinkSettings {
        loss,
        delay: Duration::from_millis(20),
        ..LinkSettings::default()
    };
    let (teacher, _t) = Room::connect(
        &url,
        &token("net", "t1", Role::Teacher),
        RoomOptions {
            network: Some(NetworkImpairment::new(path(publisher_up), path(0.0))),
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    teacher
        .publish_video(
            SyntheticVideoSource::new(640, 360, 15).unwrap(),
            VideoPublishOptions {
                bitrate_bps: 600_000,
                ..VideoPublishOptions::default()
            },
        )
        .await
        .unwrap();
    let (student, _s) = Room::connect(
        &url,
        &token("net", "s1", Role::Student),
        RoomOptions {
            network: Some(NetworkImpairment::new(path(0.0), path(subscriber_down))),
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    // Connecting through loss may take a while on a busy machine; measure 10 s from the
    // first decoded frame.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stamped_frames_from(&student, "t1") == 0 {
        assert!(
            Instant::now() < deadline,
            "no video through 5% loss: sent {:#?}, received {:#?}",
            teacher.stats().published,
            student.stats().received
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stats = student.stats();
    let video = stats
        .received
        .iter()
        .find(|r| r.from == "t1" && r.kind == MediaKind::Video)
        .expect("video received")
        .clone();
    let (_, metrics) = http_get(&server, "/metrics").await;
    let nacked = |direction: &str| {
        let name = format!("aula_nacked_packets_total{{direction=\"{direction}\"}}");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let result = ThroughLoss {
        uplink_lost: value("aula_uplink_lost_packets_total "),
        uplink_repaired: value("aula_uplink_repaired_packets_total "),
        downlink_estimates: value("aula_downlink_estimate_bps_count "),
        frames: video.frames_decoded,
        plis: video.keyframe_requests,
        freezes: video.freezes,
        nacked_by_subscribers: nacked("from_subscribers"),
        nacked_from_publishers: nacked("to_publishers"),
        forwarded: metrics
            .lines()
            .find_map(|line| line.strip_prefix(r#"aula_forwarded_packets_total{kind="video"}"#))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0),
    };
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
    result
}

/// What [`decoded_through_loss`] measured.
#[derive(Debug)]
struct ThroughLoss {
    frames: u64,
    plis: u64,
    freezes: u64,
    nacked_by_subscribers: u64,
    nacked_from_publishers: u64,
    /// Video packets the server forwarded to the subscriber.
    forwarded: u64,
    /// Packets the server's metrics say went missing on the publisher's uplink.
    uplink_lost: u64,
    /// Of those, packets the server repaired.
    uplink_repaired: u64,
    /// Samples of the subscriber's downlink estimate in the server's metrics.
    downlink_estimates: u64,
}

impl ThroughLoss {
    /// Most NACKed packets expected at `loss` on one hop: each lost packet asked for about
    /// once (a lost retransmission is asked for again), with room for a busy machine. A
    /// receiver that never learns a retransmission arrived asks every 100 ms until the hole
    /// ages out, some sixty times per lost packet, far above this.
    fn nack_budget(&self, loss: f64) -> u64 {
        (4.0 * loss * self.forwarded as f64) as u64 + 20
    }
}

/// NACK and retransmission on both hops. Without them, 5 % loss breaks about one frame in four
/// (five packets a frame) and each break costs a keyframe round trip: a few dozen keyframe
/// requests in 10 s and far fewer frames. With them, most losses are repaired in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_retransmitted_on_both_hops() {
    let _alone = support::exclusive().await;
    let down = decoded_through_loss(0.0, 0.05).await;
    println!(
        "5% subscriber downlink loss: {} freezes; {down:?}",
        down.freezes
    );
    assert!(
        down.frames >= 100 && down.plis <= 10,
        "server to subscriber: {down:?}"
    );
    assert!(
        down.nacked_by_subscribers > 0,
        "the subscriber's NACKs reach the server's metrics: {down:?}"
    );
    assert!(
        down.nacked_by_subscribers <= down.nack_budget(0.05),
        "repaired packets are asked for again: {down:?}"
    );
    assert!(
        down.downlink_estimates > 0,
        "the server estimates the subscriber's downlink: {down:?}"
    );
    let up = decoded_through_loss(0.05, 0.0).await;
    println!("5% publisher uplink loss: {} freezes; {up:?}", up.freezes);
    assert!(
        up.frames >= 100 && up.plis <= 10,
        "publisher to server: {up:?}"
    );
    assert!(
        up.nacked_from_publishers > 0,
        "the server NACKs the publisher and counts it: {up:?}"
    );
    assert!(
        up.nacked_from_publishers <= up.nack_budget(0.05),
        "repaired packets are asked for again: {up:?}"
    );
    assert!(
        up.uplink_lost > 0 && up.uplink_repaired * 10 >= up.uplink_lost * 9,
        "the server repairs its uplink and its metrics say so: {up:?}"
    );
}

/// Opus in-band FEC on a lossy uplink: a single lost packet is rebuilt from the next one, so
/// most lost frames are recovered rather than concealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_audio_is_mostly_rebuilt_from_in_band_fec() {
    let _alone = support::exclusive().await;
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let url = server.ws_url();
    let lossy = LinkSettings {
        loss: 0.15,
        delay: Duration::from_millis(20),
        ..LinkSettings::default()
    };
    let (teacher, _t) = Room::connect(
        &url,
        &token("fec", "t1", Role::Teacher),
        RoomOptions {
            network: Some(NetworkImpairment::new(lossy, LinkSettings::default())),
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    teacher
        .publish_audio(aula_core::media::SyntheticAudioSource::new(440.0), "mic")
        .await
        .unwrap();
    let (student, _s) = Room::connect(
        &url,
        &token("fec", "s1", Role::Student),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    let audio = |room: &Room| {
        room.stats()
            .received
            .into_iter()
            .find(|r| r.from == "t1" && r.kind == MediaKind::Audio)
    };
    // Connecting through 15 % loss can take a while on a busy machine (lost handshake
    // packets wait for retransmission timers); measure six seconds from the first audio.
    let deadline = Instant::now() + Duration::from_secs(30);
    while audio(&student).is_none_or(|a| a.samples_decoded == 0) {
        assert!(Instant::now() < deadline, "audio arrives through 15 % loss");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while audio(&student).is_none_or(|a| a.samples_decoded < 48_000 * 6) {
        assert!(
            Instant::now() < deadline,
            "six seconds of audio arrive: {:?}",
            audio(&student)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = audio(&student).unwrap();
    println!(
        "15% uplink loss: {} audio frames rebuilt from FEC, {} concealed",
        received.audio_frames_recovered, received.audio_frames_concealed
    );
    assert!(received.audio_frames_recovered > 20, "{received:?}");
    assert!(
        received.audio_frames_recovered > received.audio_frames_concealed,
        "{received:?}"
    );
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}
