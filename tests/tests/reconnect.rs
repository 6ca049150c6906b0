//! Draining a server: clients are told, rejoin a new instance on the same address by themselves,
//! republish, and media resumes.

use std::time::{Duration, Instant};

use aula_core::{Room, RoomEvent, RoomOptions};
use aula_protocol::Role;
use aula_server::{Server, ServerConfig};

use crate::support;
use support::{http_get, publish_camera, stamped_frames_from, token};
use tokio::sync::mpsc::UnboundedReceiver;

async fn wait_frames(room: &Room, identity: &str, at_least: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while stamped_frames_from(room, identity) < at_least {
        assert!(
            Instant::now() < deadline,
            "{} got {} frames from {identity}, wanted {at_least}",
            room.local_participant().identity,
            stamped_frames_from(room, identity)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_reconnected(events: &mut UnboundedReceiver<RoomEvent>) -> Duration {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await.expect("events open") {
                RoomEvent::Reconnected { after } => return after,
                RoomEvent::Disconnected { reason, .. } => panic!("gave up: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the room rejoins")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_server_hands_its_room_to_the_next_instance() {
    let _suite = support::shared().await;
    let first = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let address = first.http_addr();
    assert!(http_get(&first, "/readyz").await.0.contains("200 OK"));
    let url = first.ws_url();
    let (teacher, mut teacher_events) = Room::connect(
        &url,
        &token("drain", "t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    publish_camera(&teacher, 320, 180, 15).await;
    let (student, mut student_events) = Room::connect(
        &url,
        &token("drain", "s1", Role::Student),
        RoomOptions::default(),
    )
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
    let _suite = support::shared().await;
    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let (room, mut events) = Room::connect(
        &server.ws_url(),
        &token("drain", "t1", Role::Teacher),
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
            if let RoomEvent::Disconnected { reason, .. } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(reason.to_string(), "the server is shutting down");
    assert!(!room.is_connected());
}
