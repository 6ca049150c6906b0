//! A classroom call end to end: a server and real clients on loopback, real H.264 and Opus.

use std::time::{Duration, Instant};

use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::signal_client::{SignalClient, SignalError};
use aula_core::{Room, RoomError, RoomEvent, RoomOptions, VideoPublishOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{
    Claims, ClientMessage, ErrorCode, MediaKind, ParticipantId, Role, ServerMessage,
    PROTOCOL_VERSION,
};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;

use support::token;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
const FPS: u32 = 15;

async fn start_server() -> ServerHandle {
    Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts on free loopback ports")
}

async fn join_and_publish(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
    tone_hz: f32,
) -> (Room, UnboundedReceiver<RoomEvent>) {
    let (room, events) = support::join(server, room, identity, role).await;
    room.publish_video(
        SyntheticVideoSource::new(WIDTH, HEIGHT, FPS).expect("valid size"),
        VideoPublishOptions {
            bitrate_bps: 300_000,
            ..VideoPublishOptions::default()
        },
    )
    .await
    .expect("video publishes");
    room.publish_audio(SyntheticAudioSource::new(tone_hz), "mic")
        .await
        .expect("audio publishes");
    (room, events)
}

/// Waits until `room` has decoded at least `frames` stamped video frames and half a second of
/// audible audio from each of `from`.
async fn wait_for_media(room: &Room, from: &[&str], frames: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = room.stats();
        let ok = from.iter().all(|identity| {
            let video_ok = stats.received.iter().any(|r| {
                r.from == *identity
                    && r.kind == MediaKind::Video
                    && r.frames_stamped_ok >= frames
                    && r.width == WIDTH
                    && r.height == HEIGHT
            });
            let audio_ok = stats.received.iter().any(|r| {
                r.from == *identity
                    && r.kind == MediaKind::Audio
                    && r.samples_decoded >= 24_000
                    && r.audio_level > 500.0
            });
            video_ok && audio_ok
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not receive media from {from:?} in time: {:#?}",
            room.local_participant().identity,
            stats.received
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_event(
    events: &mut UnboundedReceiver<RoomEvent>,
    timeout: Duration,
    mut matches: impl FnMut(&RoomEvent) -> bool,
) -> RoomEvent {
    tokio::time::timeout(timeout, async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if matches(&event) {
                return event;
            }
        }
    })
    .await
    .expect("event arrives in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teacher_and_students_see_and_hear_each_other_and_leaving_ends_tracks() {
    let _suite = support::shared().await;
    let server = start_server().await;
    let (teacher, mut teacher_events) =
        join_and_publish(&server, "class", "t1", Role::Teacher, 440.0).await;
    let (s1, mut s1_events) = join_and_publish(&server, "class", "s1", Role::Student, 550.0).await;
    let (s2, _s2_events) = join_and_publish(&server, "class", "s2", Role::Student, 660.0).await;

    let timeout = Duration::from_secs(40);
    wait_for_media(&teacher, &["s1", "s2"], 20, timeout).await;
    wait_for_media(&s1, &["t1", "s2"], 20, timeout).await;
    wait_for_media(&s2, &["t1", "s1"], 20, timeout).await;

    // Stamps read back after decoding carry plausible loopback latency.
    for room in [&teacher, &s1, &s2] {
        for received in room
            .stats()
            .received
            .iter()
            .filter(|r| r.kind == MediaKind::Video)
        {
            assert!(
                received.latency_ms.p50 > 0.0 && received.latency_ms.p50 < 1_000.0,
                "implausible latency {:?}",
                received.latency_ms
            );
        }
    }

    // The server's metrics reflect the running room.
    let metrics = http_get(&server, "/metrics").await;
    assert!(metrics.contains("aula_rooms 1\n"), "{metrics}");
    assert!(metrics.contains("aula_participants 3\n"), "{metrics}");
    assert!(metrics.contains("aula_tracks 6\n"), "{metrics}");
    let forwarded = metric_value(&metrics, r#"aula_forwarded_packets_total{kind="video"}"#);
    assert!(forwarded > 100.0, "video packets forwarded: {forwarded}");
    let offers_answered = metric_value(
        &metrics,
        r#"aula_signaling_latency_seconds_count{message="publisher_offer"}"#,
    );
    assert!(
        offers_answered >= 3.0,
        "publisher offers timed: {offers_answered}"
    );
    let loss_reports = metric_value(&metrics, "aula_subscriber_reported_loss_count");
    assert!(loss_reports > 0.0, "receiver reports seen: {loss_reports}");
    assert_eq!(http_get(&server, "/healthz").await, "ok");

    let s2_id: ParticipantId = s2.local_participant().id;
    s2.disconnect().await;
    for events in [&mut teacher_events, &mut s1_events] {
        wait_for_event(events, Duration::from_secs(10), |e| {
            matches!(e, RoomEvent::ParticipantLeft { participant_id, .. } if *participant_id == s2_id)
        })
        .await;
    }
    for room in [&teacher, &s1] {
        assert!(
            room.remote_participants().iter().all(|p| p.id != s2_id),
            "s2 is gone from the participant list"
        );
        assert!(
            room.stats()
                .received
                .iter()
                .all(|r| r.participant_id != s2_id),
            "s2's tracks ended"
        );
    }
    // The remaining two keep receiving each other.
    let before = frames_from(&teacher, "s1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        frames_from(&teacher, "s1") > before + 5,
        "media keeps flowing after a leave"
    );

    assert!(matches!(
        s2.publish_audio(SyntheticAudioSource::new(100.0), "late")
            .await,
        Err(RoomError::InvalidState(_))
    ));
    teacher.disconnect().await;
    s1.disconnect().await;
    server.shutdown().await;
}

/// The body of a GET that must answer 200.
async fn http_get(server: &ServerHandle, path: &str) -> String {
    let (status, body) = support::http_get(server, path).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    body
}

fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in {metrics}"))
}

fn frames_from(room: &Room, identity: &str) -> u64 {
    room.stats()
        .received
        .iter()
        .filter(|r| r.from == identity && r.kind == MediaKind::Video)
        .map(|r| r.frames_decoded)
        .sum()
}

async fn join_error(server: &ServerHandle, room: &str, token: &str) -> SignalError {
    let (client, _events) = SignalClient::connect(&server.ws_url())
        .await
        .expect("ws opens");
    let id = client.next_id();
    client
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: room.into(),
            token: token.into(),
            auto_subscribe: true,
        })
        .await
        .expect_err("join is refused")
}

fn refused_code(err: SignalError) -> ErrorCode {
    match err {
        SignalError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_expired_and_wrong_room_tokens_are_refused() {
    let _suite = support::shared().await;
    let server = start_server().await;
    let forged = Claims::new(DEV_API_KEY, "r1", "x", Role::Teacher, unix_now(), 600)
        .sign("not-the-secret")
        .unwrap();
    assert_eq!(
        refused_code(join_error(&server, "r1", &forged).await),
        ErrorCode::InvalidToken
    );
    assert_eq!(
        refused_code(join_error(&server, "r1", "garbage").await),
        ErrorCode::InvalidToken
    );
    let expired = Claims::new(
        DEV_API_KEY,
        "r1",
        "x",
        Role::Teacher,
        unix_now() - 7200,
        3600,
    )
    .sign(DEV_API_SECRET)
    .unwrap();
    assert_eq!(
        refused_code(join_error(&server, "r1", &expired).await),
        ErrorCode::TokenExpired
    );
    let other_room = token("r2", "x", Role::Teacher);
    assert_eq!(
        refused_code(join_error(&server, "r1", &other_room).await),
        ErrorCode::RoomMismatch
    );
    // Through the Room API the refusal surfaces as a typed error too.
    match Room::connect(&server.ws_url(), &expired, RoomOptions::default()).await {
        Err(RoomError::Refused { code, .. }) => assert_eq!(code, ErrorCode::TokenExpired),
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("expired token was accepted"),
    }
    // A student may not share the screen.
    let (student, _events) = Room::connect(
        &server.ws_url(),
        &token("r1", "s", Role::Student),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    let screen = student
        .publish_video(
            SyntheticVideoSource::new(WIDTH, HEIGHT, FPS).unwrap(),
            VideoPublishOptions {
                source: aula_protocol::TrackSource::ScreenShare,
                ..VideoPublishOptions::default()
            },
        )
        .await;
    assert!(matches!(
        screen,
        Err(RoomError::Refused {
            code: ErrorCode::PermissionDenied,
            ..
        })
    ));
    // An observer may not publish at all.
    let (observer, _observer_events) = Room::connect(
        &server.ws_url(),
        &token("r1", "o", Role::Observer),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    let camera = observer
        .publish_video(
            SyntheticVideoSource::new(WIDTH, HEIGHT, FPS).unwrap(),
            VideoPublishOptions::default(),
        )
        .await;
    assert!(matches!(
        camera,
        Err(RoomError::Refused {
            code: ErrorCode::PermissionDenied,
            ..
        })
    ));
    observer.disconnect().await;
    assert_eq!(server.room_count().await, 1, "refused joins open no rooms");
    let metrics = http_get(&server, "/metrics").await;
    for (code, at_least) in [
        ("invalid_token", 2.0),
        ("token_expired", 2.0),
        ("room_mismatch", 1.0),
        ("permission_denied", 2.0),
    ] {
        let name = format!("aula_signal_errors_total{{code=\"{code}\"}}");
        assert!(metric_value(&metrics, &name) >= at_least, "{name}");
    }
    student.disconnect().await;
    server.shutdown().await;
}

async fn next_error(events: &mut UnboundedReceiver<ServerMessage>) -> ErrorCode {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(ServerMessage::Error { code, .. }) = events.recv().await {
                return code;
            }
        }
    })
    .await
    .expect("an error reply arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_messages_get_errors_and_the_room_stays_healthy() {
    let _suite = support::shared().await;
    let server = start_server().await;
    let (teacher, _teacher_events) =
        join_and_publish(&server, "class", "t1", Role::Teacher, 440.0).await;
    let (student, _student_events) = Room::connect(
        &server.ws_url(),
        &token("class", "s1", Role::Student),
        RoomOptions::default(),
    )
    .await
    .unwrap();

    // A raw client in the same room sends garbage.
    let (raw, mut raw_events) = SignalClient::connect(&server.ws_url()).await.unwrap();
    let id = raw.next_id();
    raw.request(ClientMessage::Join {
        id,
        protocol_version: PROTOCOL_VERSION,
        room: "class".into(),
        token: token("class", "raw", Role::Student),
        auto_subscribe: false,
    })
    .await
    .expect("raw client joins");
    raw.send_raw("this is not json".into()).unwrap();
    assert_eq!(
        next_error(&mut raw_events).await,
        ErrorCode::MalformedMessage
    );
    raw.send_raw(r#"{"type":"dance","id":5}"#.into()).unwrap();
    assert_eq!(
        next_error(&mut raw_events).await,
        ErrorCode::MalformedMessage
    );
    raw.send_raw(format!(
        r#"{{"type":"ping","id":6,"pad":"{}"}}"#,
        "x".repeat(100 * 1024)
    ))
    .unwrap();
    assert_eq!(
        next_error(&mut raw_events).await,
        ErrorCode::MessageTooLarge
    );
    raw.send_raw(r#"{"type":"publisher_offer","id":7,"sdp":"v=0 nonsense"}"#.into())
        .unwrap();
    assert_eq!(next_error(&mut raw_events).await, ErrorCode::InvalidRequest);
    raw.send_raw(
        r#"{"type":"update_subscription","id":8,"track_sids":["TR_nope"],"subscribe":true}"#.into(),
    )
    .unwrap();
    assert_eq!(next_error(&mut raw_events).await, ErrorCode::UnknownTrack);

    // The same connection still answers, and the room still carries media.
    let id = raw.next_id();
    assert!(matches!(
        raw.request(ClientMessage::Ping { id }).await,
        Ok(ServerMessage::Pong { .. })
    ));
    student
        .ping()
        .await
        .expect("the student's session is healthy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames_from(&student, "t1") < 20 {
        assert!(
            Instant::now() < deadline,
            "student receives the teacher after the garbage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}
