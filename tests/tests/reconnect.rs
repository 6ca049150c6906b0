//! Draining a server: clients are told, rejoin a new instance on the same address by themselves,
//! republish, and media resumes.

use std::time::{Duration, Instant};

use aula_core::media::SyntheticVideoSource;
use aula_core::{Room, RoomEvent, RoomOptions, VideoPublishOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, MediaKind, Role};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use tokio::sync::mpsc::UnboundedReceiver;

fn token(identity: &str, role: Role) -> String {
    Claims::new(DEV_API_KEY, "drain", identity, role, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .unwrap()
}

fn frames_from(room: &Room, identity: &str) -> u64 {
    room.stats()
        .received
        .iter()
        .filter(|r| r.from == identity && r.kind == MediaKind::Video)
        .map(|r| r.frames_stamped_ok)
        .sum()
}

async fn wait_frames(room: &Room, identity: &str, at_least: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while frames_from(room, identity) < at_least {
        assert!(
            Instant::now() < deadline,
            "{} got {} frames from {identity}, wanted {at_least}",
            room.local_participant().identity,
            frames_from(room, identity)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_reconnected(events: &mut UnboundedReceiver<RoomEvent>) -> Duration {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await.expect("events open") {
                RoomEvent::Reconnected { after } => return after,
                RoomEvent::Disconnected { reason } => panic!("gave up: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the room rejoins")
}

async fn http_status(server: &ServerHandle, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: aula\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_server_hands_its_room_to_the_next_instance() {
    let first = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let address = first.http_addr();
    assert!(http_status(&first, "/readyz").await.contains("200 OK"));
    let url = first.ws_url();
    let (teacher, mut teacher_events) =
        Room::connect(&url, &token("t1", Role::Teacher), RoomOptions::default())
            .await
            .unwrap();
    teacher
        .publish_video(
            SyntheticVideoSource::new(320, 180, 15).unwrap(),
            VideoPublishOptions {
                bitrate_bps: 300_000,
                ..VideoPublishOptions::default()
            },
        )
        .await
        .unwrap();
    let (student, mut student_events) =
        Room::connect(&url, &token("s1", Role::Student), RoomOptions::default())
            .await
            .unwrap();
    wait_frames(&student, "t1", 15, Duration::from_secs(20)).await;

    // Drain the first instance and start the next one on the same address, as a rolling
    // update behind a fixed address would.
    first.shutdown().await;
    let mut config = ServerConfig::dev(address.port(), 0);
    config.listen = address;
    let second = Server::start(config)
        .await
        .expect("the address is free again");

    let teacher_after = wait_reconnected(&mut teacher_events).await;
    let student_after = wait_reconnected(&mut student_events).await;
    // Media flows again on the new instance, republished without the application's help.
    wait_frames(&student, "t1", 15, Duration::from_secs(20)).await;
    assert!(teacher.is_connected() && student.is_connected());
    println!(
        "rejoined after {:.0} ms (teacher) and {:.0} ms (student)",
        teacher_after.as_secs_f64() * 1000.0,
        student_after.as_secs_f64() * 1000.0
    );
    teacher.disconnect().await;
    student.disconnect().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_opt_out_of_reconnecting_are_told_why_and_stay_down() {
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let (room, mut events) = Room::connect(
        &server.ws_url(),
        &token("t1", Role::Teacher),
        RoomOptions {
            reconnect: false,
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    server.shutdown().await;
    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let RoomEvent::Disconnected { reason } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(reason.to_string(), "the server is shutting down");
    assert!(!room.is_connected());
}
