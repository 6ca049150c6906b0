//! The classroom end to end: real clients (aula-core) and the server API against an
//! in-process server on loopback. Lobby, stage, moderation and chat as participants live them,
//! with media decoded where media is the point.

use std::time::{Duration, Instant};

use aula_core::{ChatDraft, Room, RoomError, RoomEvent, RoomOptions};
use aula_protocol::api::ApiClaims;
use aula_protocol::token::unix_now;
use aula_protocol::{
    Claims, ErrorCode, MediaKind, Placement, Role, RoomMode, RoomSettings, TrackSource,
};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;

/// A token for `identity` whose room runs as a class with `settings`.
fn class_token(room: &str, identity: &str, role: Role, settings: &RoomSettings) -> String {
    let mut claims = Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 600);
    claims.classroom = Some(settings.clone());
    claims.sign(DEV_API_SECRET).expect("valid claims")
}

async fn join_class(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
    settings: &RoomSettings,
) -> (Room, UnboundedReceiver<RoomEvent>) {
    Room::connect(
        &server.ws_url(),
        &class_token(room, identity, role, settings),
        RoomOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{identity} cannot join: {e}"))
}

/// Waits for the first event `pick` accepts.
async fn next<T>(
    events: &mut UnboundedReceiver<RoomEvent>,
    what: &str,
    mut pick: impl FnMut(RoomEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("events open");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn class_settings(lobby: bool) -> RoomSettings {
    RoomSettings {
        mode: RoomMode::Class,
        lobby,
        stage_capacity: 2,
        ..RoomSettings::default()
    }
}

fn refused_code(result: Result<(), RoomError>) -> ErrorCode {
    match result {
        Err(RoomError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_waits_is_admitted_goes_on_stage_and_is_seen_then_leaves_the_stage() {
    let _suite = support::shared().await;
    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let settings = class_settings(true);
    let (teacher, mut teacher_events) =
        join_class(&server, "c1", "t1", Role::Teacher, &settings).await;
    let (student, mut student_events) =
        join_class(&server, "c1", "s1", Role::Student, &settings).await;

    // In the lobby: nobody seen, nothing allowed.
    assert_eq!(student.placement(), Placement::Lobby);
    assert!(student.remote_participants().is_empty());
    assert!(student.classroom().classroom.teacher_present);
    let refused = student
        .send_chat(ChatDraft {
            text: "let me in".into(),
            ..ChatDraft::default()
        })
        .await
        .map(drop);
    assert_eq!(refused_code(refused), ErrorCode::ChatDisabled);
    let refused = student.raise_hand().await;
    assert_eq!(refused_code(refused), ErrorCode::InvalidState);
    let waiting = next(
        &mut teacher_events,
        "the student in the lobby",
        |e| match e {
            RoomEvent::ParticipantJoined(p) if p.placement == Placement::Lobby => Some(p),
            _ => None,
        },
    )
    .await;

    teacher.admit(&waiting.id).await.expect("admitted");
    next(&mut student_events, "admission", |e| {
        matches!(e, RoomEvent::Admitted).then_some(())
    })
    .await;
    assert_eq!(student.placement(), Placement::Audience);
    assert_eq!(student.remote_participants().len(), 1);
    // The audience may not publish.
    let refused = student
        .publish_video(
            aula_core::media::SyntheticVideoSource::new(320, 240, 15).expect("source"),
            aula_core::VideoPublishOptions::default(),
        )
        .await
        .map(drop);
    assert_eq!(refused_code(refused), ErrorCode::PermissionDenied);

    // A raised hand, accepted: on stage, allowed to publish, and seen.
    student.raise_hand().await.expect("hand raised");
    let hands = next(&mut teacher_events, "the hand", |e| match e {
        RoomEvent::ClassroomChanged(c) if !c.hands.is_empty() => Some(c.hands),
        _ => None,
    })
    .await;
    assert_eq!(hands, vec![waiting.id.clone()]);
    teacher.invite_to_stage(&waiting.id).await.expect("staged");
    next(&mut student_events, "permission to publish", |e| match e {
        RoomEvent::PermissionsChanged(p) if p.can_publish(TrackSource::Camera) => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(student.placement(), Placement::Stage);
    support::publish_camera(&student, 320, 240, 15).await;
    wait_until(
        "the teacher decodes the student",
        Duration::from_secs(30),
        || support::stamped_frames_from(&teacher, "s1") >= 10,
    )
    .await;

    // Back to the audience: the student's track ends on both sides.
    teacher
        .move_to_audience(&waiting.id)
        .await
        .expect("unstaged");
    next(&mut student_events, "its track ended", |e| {
        matches!(e, RoomEvent::LocalTrackEnded { .. }).then_some(())
    })
    .await;
    next(&mut teacher_events, "the track gone", |e| {
        matches!(e, RoomEvent::TrackUnpublished { .. }).then_some(())
    })
    .await;
    assert!(student.stats().published.is_empty(), "its encoder stopped");
    let frames = support::stamped_frames_from(&teacher, "s1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        support::stamped_frames_from(&teacher, "s1"),
        frames,
        "nothing more arrives"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_mute_is_enforced_by_the_server_even_when_the_app_keeps_sending() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let (teacher, _) = support::join(&server, "m1", "t1", Role::Teacher).await;
    let (student, mut student_events) = support::join(&server, "m1", "s1", Role::Student).await;
    // The app encodes its own video and pushes frames whatever the mute flag says.
    let (track, feed) = student
        .publish_encoded_video(320, 240, 15, aula_core::VideoPublishOptions::default())
        .await
        .expect("published");
    let mut encoder = aula_core::media::H264Encoder::new(aula_core::media::H264EncoderConfig {
        width: 320,
        height: 240,
        fps: 15,
        bitrate_bps: 300_000,
    })
    .expect("encoder");
    let mut source = aula_core::media::SyntheticVideoSource::new(320, 240, 15).expect("source");
    let pusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(66));
        for sequence in 0u32.. {
            tick.tick().await;
            let stamp = aula_core::media::FrameStamp {
                sequence,
                capture_time_us: aula_core::clock::unix_micros(),
            };
            let frame = aula_core::VideoSource::capture(&mut source, stamp);
            let force = feed.take_keyframe_request();
            if let Ok(Some(encoded)) = encoder.encode(&frame, force) {
                let _ = feed.push(&encoded.data, encoded.keyframe, stamp.capture_time_us);
            }
        }
    });
    wait_until("frames flow", Duration::from_secs(30), || {
        support::stamped_frames_from(&teacher, "s1") >= 10
    })
    .await;
    let student_id = student.local_participant().id;
    teacher
        .mute_participant(&student_id, MediaKind::Video)
        .await
        .expect("muted");
    next(&mut student_events, "the mute", |e| match e {
        RoomEvent::TrackMuted {
            by_moderator: true,
            track_sid,
            ..
        } if track_sid == track.sid => Some(()),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frames = support::stamped_frames_from(&teacher, "s1");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        support::stamped_frames_from(&teacher, "s1") <= frames + 1,
        "the server forwards nothing of a muted track"
    );
    pusher.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_the_class_privately_or_not_and_a_late_joiner_reads_it() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let (teacher, mut teacher_events) = support::join(&server, "chat", "t1", Role::Teacher).await;
    let (student, mut student_events) = support::join(&server, "chat", "s1", Role::Student).await;
    let sent = student
        .send_chat(ChatDraft {
            text: "hello class".into(),
            ..ChatDraft::default()
        })
        .await
        .expect("sent");
    assert_eq!(sent.seq, 1);
    let received = next(&mut teacher_events, "the message", |e| match e {
        RoomEvent::ChatReceived(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(received, sent);
    let private = teacher
        .send_chat(ChatDraft {
            text: "see me after class".into(),
            to: Some(student.local_participant().id),
            announcement: false,
        })
        .await
        .expect("private sent");
    let got = next(&mut student_events, "the private message", |e| match e {
        RoomEvent::ChatReceived(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(got.to.as_deref(), Some("s1"));
    // A late student sees the public message, not the private one.
    let (late, _) = support::join(&server, "chat", "s2", Role::Student).await;
    let history: Vec<String> = late
        .classroom()
        .chat
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(history, vec!["hello class".to_owned()]);
    // A teacher deletes; everyone hears it.
    teacher.delete_chat(private.seq).await.expect("deleted");
    let (page, more) = late.chat_history(None, Some(10)).await.expect("history");
    assert_eq!(page.len(), 1);
    assert!(!more);
    server.shutdown().await;
}

/// A server token for the dev key.
fn api_token() -> String {
    ApiClaims::new(DEV_API_KEY, unix_now(), 300)
        .sign(DEV_API_SECRET)
        .expect("server token")
}

/// A JSON request to the server API: status and body.
async fn api(
    server: &ServerHandle,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .expect("the server accepts");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: aula\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let json = serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_runs_a_class_through_the_server_api() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let token = api_token();
    let t = Some(token.as_str());
    // No token, a participant token, a forged one: refused.
    assert_eq!(api(&server, "GET", "/rooms", None, None).await.0, 401);
    let participant = support::token("api", "t1", Role::Teacher);
    assert_eq!(
        api(&server, "GET", "/rooms", None, Some(&participant))
            .await
            .0,
        401
    );
    let (status, created) = api(
        &server,
        "POST",
        "/rooms",
        Some(serde_json::json!({"name": "api", "settings": {"mode": "class", "lobby": true, "stage_capacity": 3}})),
        t,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, rooms) = api(&server, "GET", "/rooms", None, t).await;
    assert_eq!(rooms[0]["name"], "api");
    assert_eq!(rooms[0]["settings"]["stage_capacity"], 3);

    // A student with a plain token lands in the API-made room's lobby.
    let (student, mut events) = support::join(&server, "api", "s1", Role::Student).await;
    assert_eq!(student.placement(), Placement::Lobby);
    let (status, body) = api(
        &server,
        "POST",
        "/rooms/api/participants/nobody/admit",
        None,
        t,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_participant"))
    );
    let (status, _) = api(&server, "POST", "/rooms/api/participants/s1/admit", None, t).await;
    assert_eq!(status, 200);
    next(&mut events, "admission", |e| {
        matches!(e, RoomEvent::Admitted).then_some(())
    })
    .await;
    let (status, body) = api(&server, "POST", "/rooms/api/participants/s1/admit", None, t).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (status, message) = api(
        &server,
        "POST",
        "/rooms/api/chat",
        Some(serde_json::json!({"text": "class starts in 5 minutes"})),
        t,
    )
    .await;
    assert_eq!(status, 200, "{message}");
    let got = next(&mut events, "the system message", |e| match e {
        RoomEvent::ChatReceived(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(got.text, "class starts in 5 minutes");
    assert!(got.from.is_none());
    let (_, history) = api(&server, "GET", "/rooms/api/chat", None, t).await;
    assert_eq!(history["messages"][0]["seq"], message["seq"]);
    let (_, attendance) = api(&server, "GET", "/rooms/api/attendance", None, t).await;
    assert_eq!(attendance["participants"][0]["identity"], "s1");
    assert!(attendance["participants"][0]["lobby_ms"].as_u64().is_some());
    let (status, _) = api(
        &server,
        "POST",
        "/rooms/api/participants/s1/remove",
        Some(serde_json::json!({"reason": "wrong room"})),
        t,
    )
    .await;
    assert_eq!(status, 200);
    let (reason, message) = next(&mut events, "removal", |e| match e {
        RoomEvent::Disconnected { reason, message } => Some((reason, message)),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        aula_core::DisconnectReason::ServerRequest(aula_protocol::signal::LeaveReason::Removed)
    );
    assert_eq!(message.as_deref(), Some("wrong room"));
    let again = Room::connect(
        &server.ws_url(),
        &support::token("api", "s1", Role::Student),
        RoomOptions::default(),
    )
    .await
    .map(drop);
    assert_eq!(refused_code(again), ErrorCode::Removed);
    let (status, _) = api(&server, "POST", "/rooms/api/end", None, t).await;
    assert_eq!(status, 200);
    let (_, detail) = api(&server, "GET", "/rooms/api", None, t).await;
    assert_eq!(detail["class"], 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_flooding_chat_and_hands_is_held_back_and_the_class_goes_on() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let settings = class_settings(false);
    let (teacher, _teacher_events) =
        join_class(&server, "flood", "t1", Role::Teacher, &settings).await;
    let (flooder, _flooder_events) =
        join_class(&server, "flood", "noisy", Role::Student, &settings).await;
    let (_listener, mut listener_events) =
        join_class(&server, "flood", "quiet", Role::Student, &settings).await;

    // The flood: 200 chat messages and 100 hand changes, all at once.
    let flooder = std::sync::Arc::new(flooder);
    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..200 {
        let flooder = std::sync::Arc::clone(&flooder);
        flood.spawn(async move {
            flooder
                .send_chat(ChatDraft {
                    text: format!("spam {n}"),
                    ..ChatDraft::default()
                })
                .await
                .map(drop)
        });
    }
    for n in 0..100 {
        let flooder = std::sync::Arc::clone(&flooder);
        flood.spawn(async move {
            if n % 2 == 0 {
                flooder.raise_hand().await
            } else {
                flooder.lower_hand().await
            }
        });
    }
    // The teacher speaks in the middle of it.
    let announcement = teacher
        .send_chat(ChatDraft {
            text: "page 12, everyone".into(),
            announcement: true,
            ..ChatDraft::default()
        })
        .await
        .expect("the teacher's message is taken");
    let (mut accepted, mut limited) = (0, 0);
    while let Some(result) = flood.join_next().await {
        match result.expect("a flood task") {
            Ok(()) => accepted += 1,
            Err(RoomError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            Err(other) => panic!("a flood request failed otherwise: {other:?}"),
        }
    }
    let flood_secs = started.elapsed().as_secs_f64();
    // What passed is what the limits allow (bursts plus the rate over the flood's duration);
    // every other request got a typed refusal.
    let allowed = 10.0 + 4.0 + (5.0 + 2.0) * (flood_secs + 1.0);
    assert!(
        f64::from(accepted) <= allowed,
        "{accepted} of 300 passed in {flood_secs:.2} s"
    );
    assert_eq!(accepted + limited, 300);

    // The quiet student heard the teacher, and the flooder's accepted messages did not bury it.
    let heard = next(&mut listener_events, "the teacher's message", |e| match e {
        RoomEvent::ChatReceived(m) if m.seq == announcement.seq => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(heard.text, "page 12, everyone");
    // The flooder is still in the class, and may chat again once it slows down.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    flooder
        .send_chat(ChatDraft {
            text: "sorry".into(),
            ..ChatDraft::default()
        })
        .await
        .expect("a calm message passes");
    server.shutdown().await;
}
