//! Helpers shared by the end-to-end tests: how a test shares the process (`serial`), tokens,
//! joining a room, a stamped synthetic camera, frame counts and plain HTTP requests.

pub mod pulse;
pub mod serial;
pub mod xvfb;

pub use serial::{exclusive, exclusive_blocking, shared, shared_blocking};

use aula_core::media::SyntheticVideoSource;
use aula_core::{Room, RoomEvent, RoomOptions, VideoPublishOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, MediaKind, Role};
use aula_server::{ServerHandle, DEV_API_KEY, DEV_API_SECRET};

/// A dev-key token for `identity` in `room`, valid for ten minutes.
pub fn token(room: &str, identity: &str, role: Role) -> String {
    Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .expect("dev claims are valid")
}

/// Joins `room` on `server` as `identity` with a dev-key token and default options; panics,
/// naming `identity`, when the join fails.
pub async fn join(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
) -> (Room, tokio::sync::mpsc::UnboundedReceiver<RoomEvent>) {
    Room::connect(
        &server.ws_url(),
        &token(room, identity, role),
        RoomOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{identity} cannot join {room}: {e}"))
}

/// Publishes a stamped synthetic camera of the given size and frame rate at 300 kbit/s.
pub async fn publish_camera(room: &Room, width: u32, height: u32, fps: u32) {
    room.publish_video(
        SyntheticVideoSource::new(width, height, fps).expect("valid size"),
        VideoPublishOptions {
            bitrate_bps: 300_000,
            ..VideoPublishOptions::default()
        },
    )
    .await
    .expect("video publishes");
}

/// Decoded video frames from `identity` whose stamp was read back intact.
pub fn stamped_frames_from(room: &Room, identity: &str) -> u64 {
    room.stats()
        .received
        .iter()
        .filter(|r| r.from == identity && r.kind == MediaKind::Video)
        .map(|r| r.frames_stamped_ok)
        .sum()
}

/// A plain HTTP/1.1 GET against the server: the status line and the body.
pub async fn http_get(server: &ServerHandle, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .expect("the server accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: aula\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Sends the test's logs to stderr when `AULA_TEST_LOG` holds a filter (e.g. `aula_core=debug`).
pub fn init_test_log() {
    if let Ok(filter) = std::env::var("AULA_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
