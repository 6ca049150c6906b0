//! A client that may only use a TURN relay (as behind a firewall that blocks direct UDP) still
//! exchanges media with the server, through a real coturn server on loopback.

use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aula_core::{IceServer, Room, RoomOptions};
use aula_protocol::Role;
use aula_server::{Server, ServerConfig};

use crate::support;
use support::{publish_camera, stamped_frames_from, token};

struct Turn(Child);

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port for both UDP and TCP on loopback.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_turn(port: u16) -> Turn {
    let relay_base = free_port().clamp(20_000, 60_000);
    let child = Command::new("turnserver")
        .args([
            "-n",
            "--listening-ip",
            "127.0.0.1",
            "--relay-ip",
            "127.0.0.1",
            "--listening-port",
            &port.to_string(),
            "--min-port",
            &relay_base.to_string(),
            "--max-port",
            &(relay_base + 100).to_string(),
            "--allow-loopback-peers",
            "--lt-cred-mech",
            "--user",
            "aula:turnsecret",
            "--realm",
            "aula.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file",
            "stdout",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coturn's turnserver runs (Debian package `coturn`; scripts/test.sh installs it)");
    Turn(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_client_receives_media_through_turn() {
    let _suite = support::shared().await;
    let turn_port = free_port();
    let _turn = start_turn(turn_port);
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let (teacher, _t) = Room::connect(
        &server.ws_url(),
        &token("turn", "t1", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    publish_camera(&teacher, 320, 180, 15).await;
    // Give coturn a moment to listen before the relay-only client gathers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (student, _s) = Room::connect(
        &server.ws_url(),
        &token("turn", "s1", Role::Student),
        RoomOptions {
            ice_servers: vec![IceServer {
                urls: vec![format!("turn:127.0.0.1:{turn_port}?transport=udp")],
                username: "aula".into(),
                credential: "turnsecret".into(),
            }],
            relay_only: true,
            ..RoomOptions::default()
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if stamped_frames_from(&student, "t1") >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no media through the relay: {:#?}",
            student.stats().received
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}
