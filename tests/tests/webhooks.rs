//! Webhooks: a class's life (room opens, people join, publish, leave, room closes) reaches the
//! application's endpoint as signed events, in order, retried when the endpoint fails.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::{Room, RoomOptions};
use aula_protocol::webhook::{self, WebhookEvent, WebhookEventKind};
use aula_protocol::{unix_now, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};

use crate::support;
use support::{http_get, publish_camera, token};

/// What the endpoint saw: every attempt's headers and body.
#[derive(Default)]
struct Received {
    attempts: Vec<(HeaderMap, Bytes)>,
    /// Attempts still to refuse with 503, to exercise retries.
    refuse: usize,
}

/// An endpoint on 127.0.0.1 that records deliveries; returns its URL.
async fn start_endpoint(received: Arc<Mutex<Received>>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let received = Arc::clone(&received);
            async move {
                let mut r = received.lock().unwrap();
                r.attempts.push((headers, body));
                if r.refuse > 0 {
                    r.refuse -= 1;
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The events the endpoint accepted, in order, after checking every attempt's signature.
fn accepted_events(received: &Mutex<Received>) -> Vec<WebhookEvent> {
    let r = received.lock().unwrap();
    let mut events: Vec<WebhookEvent> = Vec::new();
    for (headers, body) in &r.attempts {
        assert_eq!(headers[webhook::KEY_HEADER], DEV_API_KEY);
        let signature = headers[webhook::SIGNATURE_HEADER].to_str().unwrap();
        webhook::verify_signature(DEV_API_SECRET, signature, body, unix_now(), 60)
            .expect("every delivery is signed with the API secret");
        assert!(
            webhook::verify_signature("not-the-secret", signature, body, unix_now(), 60).is_err(),
            "a signature checked against another secret must fail"
        );
        let event: WebhookEvent = serde_json::from_slice(body).expect("a webhook event");
        // A retried delivery carries the same event id; keep one.
        if events.last().is_none_or(|last| last.id != event.id) {
            events.push(event);
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_reaches_the_endpoint_as_signed_events_in_order() {
    let _suite = support::shared().await;
    let received = Arc::new(Mutex::new(Received {
        refuse: 1, // the first attempt fails: the event must still arrive, once
        ..Received::default()
    }));
    let url = start_endpoint(Arc::clone(&received)).await;
    let server = Server::start(ServerConfig {
        webhook_urls: vec![url],
        ..ServerConfig::dev(0, 0)
    })
    .await
    .unwrap();
    let ws = server.ws_url();
    let (teacher, _t) = Room::connect(
        &ws,
        &token("hooks", "t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    publish_camera(&teacher, 160, 96, 10).await;
    let (student, _s) = Room::connect(
        &ws,
        &token("hooks", "s1", Role::Student),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    // The track is announced once its media arrives at the server.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !accepted_events(&received)
        .iter()
        .any(|e| e.kind.name() == "track_published")
    {
        assert!(Instant::now() < deadline, "no track_published event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    student.disconnect().await;
    teacher.disconnect().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !accepted_events(&received)
        .iter()
        .any(|e| e.kind.name() == "room_finished")
    {
        assert!(Instant::now() < deadline, "no room_finished event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let events = accepted_events(&received);
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    let position = |name: &str| names.iter().position(|n| *n == name);
    assert_eq!(names.first(), Some(&"room_started"), "{names:?}");
    assert_eq!(names.last(), Some(&"room_finished"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "participant_joined").count(),
        2
    );
    assert_eq!(
        names.iter().filter(|n| **n == "participant_left").count(),
        2
    );
    assert!(position("track_published") < position("track_unpublished"));
    assert!(events.iter().all(|e| e.room.name == "hooks"));
    let first_join = events
        .iter()
        .find_map(|e| match &e.kind {
            WebhookEventKind::ParticipantJoined { participant } => {
                Some(participant.identity.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(first_join, "t1");
    assert!(
        received.lock().unwrap().attempts.len() > events.len(),
        "the refused first attempt was retried"
    );

    let (_, metrics) = http_get(&server, "/metrics").await;
    let delivered = format!(
        "aula_webhook_deliveries_total{{result=\"delivered\"}} {}",
        events.len()
    );
    assert!(metrics.contains(&delivered), "{delivered} in\n{metrics}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_tells_the_backend_who_was_admitted_staged_removed_and_when_it_ended() {
    let _suite = support::shared().await;
    let received = Arc::new(Mutex::new(Received::default()));
    let url = start_endpoint(Arc::clone(&received)).await;
    let server = Server::start(ServerConfig {
        webhook_urls: vec![url],
        ..ServerConfig::dev(0, 0)
    })
    .await
    .unwrap();
    let settings = aula_protocol::RoomSettings {
        mode: aula_protocol::RoomMode::Class,
        lobby: true,
        ..aula_protocol::RoomSettings::default()
    };
    let class_token = |identity: &str, role: Role| {
        let mut claims =
            aula_protocol::Claims::new(DEV_API_KEY, "hooked", identity, role, unix_now(), 600);
        claims.classroom = Some(settings.clone());
        claims.sign(DEV_API_SECRET).unwrap()
    };
    let ws = server.ws_url();
    let (teacher, _t) = Room::connect(
        &ws,
        &class_token("t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    let (student, mut events) = Room::connect(
        &ws,
        &class_token("s1", Role::Student),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    let id = student.local_participant().id;
    teacher.admit(&id).await.unwrap();
    teacher.invite_to_stage(&id).await.unwrap();
    // Answer once the invitation has arrived.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(
            events.recv().await,
            Some(aula_core::RoomEvent::StageInvitation { .. })
        ) {}
    })
    .await
    .expect("invited");
    student.answer_stage_invitation(true).await.unwrap();
    teacher.remove_participant(&id, "").await.unwrap();
    teacher.end_class().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !accepted_events(&received)
        .iter()
        .any(|e| e.kind.name() == "class_ended")
    {
        assert!(Instant::now() < deadline, "no class_ended event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = accepted_events(&received);
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    let position = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no {name} in {names:?}"))
    };
    assert!(position("participant_admitted") < position("stage_changed"));
    assert!(position("stage_changed") < position("participant_removed"));
    assert!(position("participant_removed") < position("class_ended"));
    let staged = events.iter().find_map(|e| match &e.kind {
        WebhookEventKind::StageChanged { participant } => Some(participant.clone()),
        _ => None,
    });
    assert_eq!(
        staged.map(|p| (p.identity, p.placement)),
        Some(("s1".to_owned(), aula_protocol::Placement::Stage))
    );
    server.shutdown().await;
}
