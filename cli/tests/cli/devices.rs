//! `aula devices` and `aula join --publish screen`, as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use aula_protocol::{token::unix_now, Claims, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};

/// `aula` with no display and no sound server in its environment.
fn aula_without_devices(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aula"))
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("PULSE_SERVER", "unix:/nonexistent/aula-test-pulse")
        .output()
        .expect("the aula binary runs")
}

fn has_entries(dir: &str, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|e| {
            e.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .unwrap_or(false)
}

#[test]
fn devices_lists_nothing_here_in_both_forms() {
    let out = aula_without_devices(&["devices", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for kind in ["cameras", "microphones", "speakers", "screens", "windows"] {
        assert!(list[kind].is_array(), "{kind} listed: {list}");
    }
    assert_eq!(list["screens"].as_array().map(Vec::len), Some(0));
    if !has_entries("/dev", "video") {
        assert_eq!(list["cameras"].as_array().map(Vec::len), Some(0));
    }
    if !has_entries("/dev/snd", "pcm") {
        assert_eq!(list["microphones"].as_array().map(Vec::len), Some(0));
        assert_eq!(list["speakers"].as_array().map(Vec::len), Some(0));
    }

    let out = aula_without_devices(&["devices"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "Cameras:",
        "Microphones:",
        "Speakers:",
        "Screens:",
        "Windows:",
    ] {
        assert!(text.contains(heading), "{text}");
    }
    assert!(text.contains("Screens:\n  (none)"), "{text}");

    // Asking for a device that is not there fails with the reason.
    let out = aula_without_devices(&[
        "join",
        "--url",
        "ws://127.0.0.1:1",
        "--token",
        "x.y.z",
        "--publish",
        "screen,smell",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("smell"));
}

/// A private Xvfb for the screen-share join; killed when dropped.
struct Xvfb(Child, String);

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "800x600x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (scripts/test.sh installs xvfb)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("Xvfb reports its display");
        let display = format!(":{}", line.trim());
        Xvfb(child, display)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn join_shares_the_display_screen_and_the_other_side_reports_it_as_screen() {
    let xvfb = Xvfb::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .unwrap();
    let url = server.ws_url();
    let token = |identity: &str, role| {
        Claims::new(DEV_API_KEY, "share", identity, role, unix_now(), 600)
            .sign(DEV_API_SECRET)
            .unwrap()
    };
    let dir = std::env::temp_dir().join(format!("aula-cli-screen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("student.json");

    let teacher = Command::new(env!("CARGO_BIN_EXE_aula"))
        .args([
            "join",
            "--url",
            &url,
            "--token",
            &token("t1", Role::Teacher),
            "--publish",
            "screen",
            "--screen-fps",
            "10",
            "--duration",
            "8",
        ])
        .env("DISPLAY", &xvfb.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the aula binary starts");
    let student = Command::new(env!("CARGO_BIN_EXE_aula"))
        .args([
            "join",
            "--url",
            &url,
            "--token",
            &token("s1", Role::Student),
            "--publish",
            "none",
            "--duration",
            "8",
            "--stats-json",
            stats.to_str().unwrap(),
        ])
        .output()
        .expect("the aula binary runs");
    let teacher = teacher.wait_with_output().unwrap();
    assert!(
        teacher.status.success(),
        "{}",
        String::from_utf8_lossy(&teacher.stderr)
    );
    assert!(
        String::from_utf8_lossy(&teacher.stderr).contains("sharing default 800x600 at 10 fps"),
        "{}",
        String::from_utf8_lossy(&teacher.stderr)
    );
    assert!(
        student.status.success(),
        "{}",
        String::from_utf8_lossy(&student.stderr)
    );

    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let received = stats["received"].as_array().unwrap();
    let screen = received
        .iter()
        .find(|r| r["kind"] == "screen" && r["from"] == "t1")
        .unwrap_or_else(|| {
            panic!(
                "a screen track was received: {received:?}\n{}\n{}",
                String::from_utf8_lossy(&student.stderr),
                String::from_utf8_lossy(&teacher.stderr)
            )
        });
    assert!(screen["frames_decoded"].as_u64().unwrap() >= 20, "{screen}");
    assert_eq!(screen["width"], 800);
    assert_eq!(screen["height"], 600);
    for field in [
        "frames_stamped_ok",
        "latency_ms",
        "freezes",
        "freeze_ms",
        "keyframe_requests",
        "first_frame_ms",
    ] {
        assert!(screen.get(field).is_some(), "{field} in {screen}");
    }

    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}
