//! A participant leaves while another stays, media flowing both ways: the server tears the
//! forwards down without its WebRTC stack complaining. (A sender removed while its forwarder's
//! packets were still queued made the stack log `Failed to send RTP due to unknown sender id`,
//! once per queued packet.) And a room dropped without leaving stops every task it started.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::media::SyntheticAudioSource;
use aula_protocol::Role;
use aula_server::{Server, ServerConfig};

use crate::support;

/// Keeps every error the WebRTC stack logs (it logs through the `log` crate).
struct ErrorLog(Arc<Mutex<Vec<String>>>);

impl log::Log for ErrorLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Error
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{}: {}", record.target(), record.args());
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_while_others_stay_sends_nothing_on_a_removed_sender() {
    // Alone: the WebRTC stack's log is process-wide, and other tests' teardowns would be
    // counted as this one's.
    let _alone = support::exclusive().await;
    let errors = Arc::new(Mutex::new(Vec::new()));
    log::set_boxed_logger(Box::new(ErrorLog(Arc::clone(&errors))))
        .expect("the `log` crate's logger is free (AULA_TEST_LOG installs one: unset it)");
    log::set_max_level(log::LevelFilter::Error);

    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (stays, _events) = support::join(&server, "teardown", "stays", Role::Teacher).await;
    support::publish_camera(&stays, 640, 360, 30).await;
    stays
        .publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await
        .expect("audio publishes");
    // Each round: someone joins, publishes, receives and is received, then leaves mid-stream.
    // (Before the fix, 8 rounds of 640x360 at 30 fps logged the error about twice.)
    for round in 0..8 {
        let identity = format!("leaves-{round}");
        let (leaves, _events) = support::join(&server, "teardown", &identity, Role::Student).await;
        support::publish_camera(&leaves, 640, 360, 30).await;
        leaves
            .publish_audio(SyntheticAudioSource::new(660.0), "mic")
            .await
            .expect("audio publishes");
        wait_until("media flows both ways", || {
            support::stamped_frames_from(&stays, &identity) >= 10
                && support::stamped_frames_from(&leaves, "stays") >= 10
        })
        .await;
        leaves.disconnect().await;
        wait_until("the server sees the leave", || {
            stays.remote_participants().is_empty()
        })
        .await;
    }
    // Give the driver time to take anything still queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logged = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let unknown: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("unknown sender id"))
        .collect();
    assert!(unknown.is_empty(), "{} times:\n{unknown:#?}", unknown.len());
    stays.disconnect().await;
    server.shutdown().await;
}

/// A room dropped without `disconnect` (an app that lets go of it, a task cancelled mid-call)
/// must not leave its connections running: their driver tasks, sockets and buffers would stay
/// for the life of the process, and a phone app that rejoins now and then would grow without
/// bound. The server, on its own runtime here, also sees the participant go at once.
#[test]
fn a_room_dropped_without_leaving_stops_everything_it_started() {
    let _shared = support::shared_blocking();
    let server_runtime = tokio::runtime::Runtime::new().expect("a runtime for the server");
    let server = server_runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .expect("server starts");
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the clients");
    client_runtime.block_on(async {
        let (stays, _events) = support::join(&server, "dropped", "stays", Role::Teacher).await;
        support::publish_camera(&stays, 320, 180, 15).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();

        let (dropped, _events) = support::join(&server, "dropped", "dropped", Role::Student).await;
        support::publish_camera(&dropped, 320, 180, 15).await;
        dropped
            .publish_audio(SyntheticAudioSource::new(440.0), "mic")
            .await
            .expect("audio publishes");
        wait_until("media flows both ways", || {
            support::stamped_frames_from(&stays, "dropped") >= 5
                && support::stamped_frames_from(&dropped, "stays") >= 5
        })
        .await;
        let during = tasks();
        assert!(
            during > before,
            "the call runs tasks: {during} during, {before} before"
        );
        drop(dropped);

        let deadline = Instant::now() + Duration::from_secs(5);
        while !(stays.remote_participants().is_empty() && tasks() <= before) {
            assert!(
                Instant::now() < deadline,
                "5 s after the drop: {} tasks (before the join {before}, during the call \
                 {during}); the server still lists {} other participant(s)",
                tasks(),
                stays.remote_participants().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stays.disconnect().await;
    });
    server_runtime.block_on(server.shutdown());
}
