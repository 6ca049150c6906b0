//! The `aula` binary against an in-process server: tokens, a headless join, the stats file;
//! with the `devices` feature, `aula devices` and screen sharing (`devices.rs`). One test
//! binary for both: each links the server, WebRTC and the codecs.

use std::process::{Command, Output, Stdio};

use aula_protocol::{token::unix_now, Claims, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};

#[cfg(feature = "devices")]
mod devices;

fn aula(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aula"))
        .args(args)
        .output()
        .expect("the aula binary runs")
}

#[test]
fn token_prints_a_verifiable_token() {
    let out = aula(&[
        "token",
        "--api-key",
        "devkey",
        "--api-secret",
        "devsecret",
        "--room",
        "r1",
        "--identity",
        "t1",
        "--name",
        "Ms Rivera",
        "--role",
        "teacher",
        "--ttl",
        "30m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = Claims::verify(
        token.trim(),
        |k| (k == "devkey").then_some("devsecret"),
        unix_now(),
    )
    .expect("token verifies");
    assert_eq!(claims.room, "r1");
    assert_eq!(claims.role, Role::Teacher);
    assert_eq!(claims.name.as_deref(), Some("Ms Rivera"));
    assert!(claims.exp - claims.iat == 1800);

    let bad = aula(&[
        "token",
        "--api-key",
        "k",
        "--api-secret",
        "s",
        "--room",
        "r",
        "--identity",
        "i",
        "--role",
        "principal",
    ]);
    assert!(!bad.status.success(), "an unknown role is refused");
}

#[test]
fn join_writes_the_documented_stats_and_fails_clearly_on_a_bad_token() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .unwrap();
    let url = server.ws_url();
    let token = |identity: &str| {
        Claims::new(DEV_API_KEY, "cli", identity, Role::Student, unix_now(), 600)
            .sign(DEV_API_SECRET)
            .unwrap()
    };
    let dir = std::env::temp_dir().join(format!("aula-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats_a = dir.join("a.json");
    let stats_b = dir.join("b.json");
    let join_args = |token: &str, stats: &std::path::Path| -> Vec<String> {
        [
            "join",
            "--url",
            &url,
            "--token",
            token,
            "--stats-json",
            stats.to_str().unwrap(),
            "--resolution",
            "320x180",
            "--fps",
            "15",
            "--duration",
            "8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Both participants run at once, as two processes.
    let a = Command::new(env!("CARGO_BIN_EXE_aula"))
        .args(join_args(&token("a"), &stats_a))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the aula binary starts");
    let b = Command::new(env!("CARGO_BIN_EXE_aula"))
        .args(join_args(&token("b"), &stats_b))
        .output()
        .expect("the aula binary runs");
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));

    for (path, me, other) in [(&stats_a, "a", "b"), (&stats_b, "b", "a")] {
        let stats: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(stats["identity"], me);
        assert_eq!(stats["room"], "cli");
        assert!(stats["join_ms"].as_f64().unwrap() > 0.0);
        let published = stats["published"].as_array().unwrap();
        let video = published.iter().find(|p| p["kind"] == "video").unwrap();
        assert!(video["frames_sent"].as_u64().unwrap() >= 40);
        assert!(video["bitrate_kbps"].as_f64().unwrap() > 10.0);
        let received = stats["received"].as_array().unwrap();
        let video = received
            .iter()
            .find(|r| r["kind"] == "video" && r["from"] == other)
            .expect("the other's video was received");
        let decoded = video["frames_decoded"].as_u64().unwrap();
        assert!(decoded >= 30, "decoded {decoded}");
        assert_eq!(video["frames_stamped_ok"], video["frames_decoded"]);
        for key in ["p50", "p95", "max"] {
            assert!(video["latency_ms"][key].as_f64().unwrap() > 0.0);
        }
        assert!(video["freezes"].is_u64());
        let audio = received
            .iter()
            .find(|r| r["kind"] == "audio" && r["from"] == other)
            .expect("the other's audio was received");
        assert!(audio["samples_decoded"].as_u64().unwrap() >= 48_000);
    }

    let expired = Claims::new(
        DEV_API_KEY,
        "cli",
        "c",
        Role::Student,
        unix_now() - 7200,
        60,
    )
    .sign(DEV_API_SECRET)
    .unwrap();
    let refused = aula(&[
        "join",
        "--url",
        &url,
        "--token",
        &expired,
        "--duration",
        "1",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("token_expired"), "clear message: {stderr}");

    let unreachable = aula(&[
        "join",
        "--url",
        "ws://127.0.0.1:1",
        "--token",
        &token("d"),
        "--duration",
        "1",
    ]);
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot"));

    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_test_reports_what_every_receiver_decoded_and_fails_on_refused_joins() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .unwrap();
    let url = server.ws_url();
    let dir = std::env::temp_dir().join(format!("aula-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let summary_path = dir.join("load.json");
    let load = |secret: &str| {
        aula(&[
            "load-test",
            "--url",
            &url,
            "--api-key",
            DEV_API_KEY,
            "--api-secret",
            secret,
            "--rooms",
            "2",
            "--participants-per-room",
            "3",
            "--publishers-per-room",
            "1",
            "--resolution",
            "320x180",
            "--fps",
            "15",
            "--join-rate",
            "20",
            "--duration",
            "4",
            "--stats-json",
            summary_path.to_str().unwrap(),
        ])
    };
    let out = load(DEV_API_SECRET);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["participants"], 6);
    assert_eq!(summary["joined"], 6);
    assert_eq!(summary["failed"], 0);
    // Two students in each of the two rooms watch that room's one publisher.
    assert_eq!(summary["expected_streams"], 4);
    assert_eq!(summary["starved_receivers"], 0);
    let fps = summary["decoded_fps_min"].as_f64().unwrap();
    assert!(
        fps >= 5.0,
        "every receiver decodes its publisher: {summary}"
    );
    assert!(summary["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(summary["join_ms"]["p50"].as_f64().unwrap() > 0.0);

    // Tokens signed with the wrong secret: every join is refused and the run fails, saying why.
    let refused = load("not-the-secret");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("6 of 6 participants could not join") && stderr.contains("invalid_token"),
        "clear message: {stderr}"
    );

    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_server_prints_a_server_token_the_api_accepts() {
    let out = aula(&[
        "token",
        "--server",
        "--api-key",
        "devkey",
        "--api-secret",
        "devsecret",
        "--room",
        "r1",
        "--ttl",
        "10m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let secret = |k: &str| (k == "devkey").then_some("devsecret");
    let claims = aula_protocol::api::ApiClaims::verify(token.trim(), secret, unix_now())
        .expect("a server token");
    assert!(claims.api);
    assert_eq!(claims.room.as_deref(), Some("r1"));
    assert_eq!(claims.exp - claims.iat, 600);
    // It is no access token, and an access token needs its room and identity.
    assert!(Claims::verify(token.trim(), secret, unix_now()).is_err());
    let incomplete = aula(&[
        "token",
        "--api-key",
        "k",
        "--api-secret",
        "s",
        "--room",
        "r",
    ]);
    assert!(!incomplete.status.success());
}
