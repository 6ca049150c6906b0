//! A browser joins through the server's page (headless Chromium, fake camera) and exchanges
//! H.264 video with an Aula core participant. The page, opened with `?token=`, shows the remote
//! video by itself: Chromium runs with its default autoplay policy and nobody clicks.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::{Room, RoomOptions, VideoPublishOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, MediaKind, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};

use crate::support;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_and_a_core_participant_see_each_other() {
    let _suite = support::shared().await;
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        dir.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is needed at {chromium} (Debian package `chromium`; scripts/test.sh installs it)"
    );

    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let token = |identity: &str, role| {
        Claims::new(DEV_API_KEY, "browser", identity, role, unix_now(), 600)
            .sign(DEV_API_SECRET)
            .unwrap()
    };
    let (teacher, _events) = Room::connect(
        &server.ws_url(),
        &token("teacher", Role::Teacher),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    teacher
        .publish_video(
            SyntheticVideoSource::new(640, 360, 30).unwrap(),
            VideoPublishOptions {
                bitrate_bps: 800_000,
                ..VideoPublishOptions::default()
            },
        )
        .await
        .unwrap();
    teacher
        .publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await
        .unwrap();

    let url = format!("http://{}", server.http_addr());
    let student = token("browser-student", Role::Student);
    let node = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("join.js")
            .arg(url)
            .arg(student)
            .arg("40")
            // The teacher's camera is simulcast: the browser must climb to its 640-wide top
            // layer (the server estimates the browser's downlink from its TWCC feedback).
            .arg("640")
            .current_dir(dir)
            .output()
    });
    // While the browser is in the room, watch what the core participant decodes from it (its
    // subscription ends when the browser leaves).
    let mut best: (u64, u32, u32) = (0, 0, 0);
    let mut node = node;
    let output = loop {
        tokio::select! {
            done = &mut node => break done.unwrap().expect("node runs (install Node.js)"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                for r in teacher.stats().received.iter().filter(|r| r.from == "browser-student" && r.kind == MediaKind::Video) {
                    if r.frames_decoded > best.0 {
                        best = (r.frames_decoded, r.width, r.height);
                    }
                }
            }
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser did not get video both ways: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(stats["inbound"]["codec"], "video/H264", "{stats}");
    assert_eq!(stats["outbound"]["codec"], "video/H264", "{stats}");
    assert_eq!(stats["inbound"]["width"], 640, "{stats}");
    assert!(
        stats["inbound"]["frames"].as_u64().unwrap() >= 30,
        "{stats}"
    );
    // The page shows it: the remote video element plays without a user gesture and draws the
    // teacher's picture (a gradient, mostly lit), not a black tile.
    assert_eq!(stats["user_activation"], false, "{stats}");
    assert_eq!(stats["remote_video"]["paused"], false, "{stats}");
    assert!(
        stats["remote_video"]["current_time"].as_f64().unwrap() >= 1.0,
        "{stats}"
    );
    assert!(
        stats["remote_video"]["lit"].as_f64().unwrap() >= 0.2,
        "{stats}"
    );
    // The core participant decoded the browser's H.264 camera.
    assert!(
        best.0 >= 30,
        "the core participant decoded {} frames from the browser",
        best.0
    );
    assert!(best.1 > 0 && best.2 > 0);
    teacher.disconnect().await;
    server.shutdown().await;
}
