//! ICE over TCP: a client that cannot use UDP at all still sends and receives media through
//! the server's TCP listener on the media port number.

use std::time::{Duration, Instant};

use aula_core::{MediaTransport, Room, RoomOptions};
use aula_protocol::Role;
use aula_server::{Server, ServerConfig};

use crate::support;
use support::{init_test_log, publish_camera, stamped_frames_from, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_only_client_sends_and_receives_media() {
    let _suite = support::shared().await;
    init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let tcp = server.rtc_tcp_addr().expect("ICE-TCP is on by default");
    assert_eq!(tcp.ip(), server.rtc_addr().ip());
    let url = server.ws_url();
    let (teacher, _t) = Room::connect(
        &url,
        &token("tcp", "t1", Role::Teacher),
        RoomOptions {
            media_transport: MediaTransport::UdpOnly,
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    publish_camera(&teacher, 320, 180, 15).await;
    // No UDP socket at all on this side: whatever media flows, flows over TCP.
    let (student, _s) = Room::connect(
        &url,
        &token("tcp", "s1", Role::Student),
        RoomOptions {
            media_transport: MediaTransport::TcpOnly,
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    publish_camera(&student, 320, 180, 15).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while stamped_frames_from(&student, "t1") < 30 || stamped_frames_from(&teacher, "s1") < 30 {
        assert!(
            Instant::now() < deadline,
            "media over TCP: student decoded {} from the teacher, teacher {} from the student",
            stamped_frames_from(&student, "t1"),
            stamped_frames_from(&teacher, "s1")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = student
        .stats()
        .received
        .into_iter()
        .find(|r| r.from == "t1")
        .unwrap();
    println!(
        "over ICE-TCP: first frame after {:.0} ms, latency p50 {:.1} ms",
        received.first_frame_ms.unwrap_or_default(),
        received.latency_ms.p50
    );
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_fails_cleanly_when_the_server_has_ice_tcp_off() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig {
        ice_tcp: false,
        ..ServerConfig::dev(0, 0)
    })
    .await
    .unwrap();
    assert!(server.rtc_tcp_addr().is_none());
    let url = server.ws_url();
    let (teacher, _t) = Room::connect(
        &url,
        &token("tcp", "t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    publish_camera(&teacher, 160, 96, 10).await;
    let (student, _s) = Room::connect(
        &url,
        &token("tcp", "s1", Role::Student),
        RoomOptions {
            media_transport: MediaTransport::TcpOnly,
            reconnect: false,
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        stamped_frames_from(&student, "t1"),
        0,
        "no path exists, so nothing can have arrived"
    );
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}
