//! `aula class` against an in-process server on loopback: commands that succeed, refusals
//! that exit with the server's error code, and a headless student (`aula join`) that waits in
//! the lobby, is admitted, raises its hand, goes on stage, publishes, chats, leaves the stage and
//! comes back, as the stats file records.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aula_protocol::{token::unix_now, Claims, Role};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use serde_json::Value;

fn aula(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aula"))
        .args(args)
        .output()
        .expect("the aula binary runs")
}

/// `aula class` on `room` of `server`, with the dev key.
fn class(server: &ServerHandle, room: &str, args: &[&str]) -> Output {
    class_with(&server.ws_url(), DEV_API_SECRET, room, args)
}

fn class_with(url: &str, secret: &str, room: &str, args: &[&str]) -> Output {
    let mut argv = vec![
        "class",
        "--url",
        url,
        "--api-key",
        DEV_API_KEY,
        "--api-secret",
        secret,
        "--room",
        room,
    ];
    argv.extend_from_slice(args);
    aula(&argv)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout as JSON.
fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// Asserts the command was refused with `code`: exit code 1 and `error: <code>: ...`.
fn assert_refused(out: &Output, code: &str) {
    assert_eq!(out.status.code(), Some(1), "refused: {}", stderr(out));
    assert!(
        stderr(out).starts_with(&format!("error: {code}: ")),
        "expected {code}, got: {}",
        stderr(out)
    );
}

fn start_server(runtime: &tokio::runtime::Runtime) -> ServerHandle {
    runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .expect("server")
}

#[test]
fn class_commands_run_a_room_and_refusals_exit_with_the_server_code() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = start_server(&runtime);

    // A room that does not exist yet is created with the settings given.
    let out = class(
        &server,
        "c1",
        &[
            "settings",
            "--mode",
            "class",
            "--lobby",
            "on",
            "--stage-capacity",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("mode: class"), "{}", stdout(&out));
    assert!(stdout(&out).contains("lobby: on"));
    assert!(stderr(&out).contains("created room c1"));
    // Changed, then printed.
    let out = class(
        &server,
        "c1",
        &["settings", "--chat", "teachers", "--auto-stage", "on"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("chat: teachers"), "{}", stdout(&out));
    let settings = json_of(&class(&server, "c1", &["settings", "--json"]));
    assert_eq!(settings["mode"], "class");
    assert_eq!(settings["lobby"], true);
    assert_eq!(settings["stage_capacity"], 3);
    assert_eq!(settings["chat"], "teachers");
    assert_eq!(settings["auto_stage"], true);
    let rooms = json_of(&class(&server, "c1", &["rooms", "--json"]));
    assert_eq!(rooms[0]["name"], "c1");
    let text = stdout(&class(&server, "c1", &["rooms"]));
    assert!(text.contains("c1") && text.contains("class"), "{text}");

    // Refusals: the server's code on stderr, exit code 1.
    assert_refused(
        &class(&server, "c1", &["settings", "--stage-capacity", "0"]),
        "invalid_request",
    );
    assert_refused(
        &class(&server, "c1", &["admit", "nobody"]),
        "unknown_participant",
    );
    assert_refused(&class(&server, "nowhere", &["show"]), "unknown_room");
    assert_refused(&class(&server, "nowhere", &["settings"]), "unknown_room");
    assert_refused(
        &class_with(&server.ws_url(), "not-the-secret", "c1", &["show"]),
        "invalid_token",
    );
    // Bad command lines are clap's (2); an unreachable server is 3.
    assert_eq!(
        class(&server, "c1", &["mute", "s1", "--kind", "smell"])
            .status
            .code(),
        Some(2)
    );
    let unreachable = class_with("ws://127.0.0.1:1", DEV_API_SECRET, "c1", &["show"]);
    assert_eq!(
        unreachable.status.code(),
        Some(3),
        "{}",
        stderr(&unreachable)
    );
    assert!(stderr(&unreachable).contains("cannot reach the server"));

    // Lock, chat, attendance and the end of the class on a room nobody is in.
    assert!(class(&server, "c1", &["lock"]).status.success());
    let detail = json_of(&class(&server, "c1", &["show", "--json"]));
    assert_eq!(detail["locked"], true);
    assert!(class(&server, "c1", &["unlock"]).status.success());
    assert_eq!(
        json_of(&class(&server, "c1", &["show", "--json"]))["locked"],
        false
    );
    assert_eq!(
        json_of(&class(&server, "c1", &["history", "--json"])),
        Value::Array(vec![])
    );
    // System messages need someone in the room to hear them.
    assert_refused(
        &class(&server, "c1", &["say", "hello"]),
        "unknown_participant",
    );
    let attendance = json_of(&class(&server, "c1", &["attendance", "--json"]));
    assert_eq!(attendance["class"], 1);
    assert_eq!(attendance["participants"], Value::Array(vec![]));
    assert!(class(&server, "c1", &["end"]).status.success());
    assert_eq!(
        json_of(&class(&server, "c1", &["show", "--json"]))["class"],
        2
    );

    runtime.block_on(server.shutdown());
}

fn token(room: &str, identity: &str, role: Role) -> String {
    Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .unwrap()
}

/// Starts `aula join` as `identity` for `seconds`, writing its stats to `stats`.
fn spawn_join(
    server: &ServerHandle,
    token: &str,
    stats: &Path,
    seconds: u32,
    extra: &[&str],
) -> Child {
    let seconds = seconds.to_string();
    let url = server.ws_url();
    let mut argv = vec![
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
        &seconds,
    ];
    argv.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_aula"))
        .args(argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the aula binary starts")
}

/// Polls `aula class participants --json` until `ok` accepts `identity`'s entry.
fn wait_for_participant(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = json_of(&class(server, room, &["participants", "--json"]));
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["identity"] == identity)
            .cloned();
        if found.as_ref().is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {identity} {what}: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn read_stats(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("stats written")).expect("stats are JSON")
}

#[test]
fn a_headless_student_waits_is_admitted_goes_on_stage_publishes_and_chats() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = start_server(&runtime);
    let dir = std::env::temp_dir().join(format!("aula-class-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (teacher_stats, student_stats) = (dir.join("t1.json"), dir.join("s1.json"));
    let out = class(
        &server,
        "lesson",
        &[
            "settings",
            "--mode",
            "class",
            "--lobby",
            "on",
            "--stage-capacity",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The teacher watches; the student publishes once it may, chats and raises its hand once
    // admitted. The teacher leaves first, while the student is still on stage, so its stats
    // hold the student's video.
    let teacher = spawn_join(
        &server,
        &token("lesson", "t1", Role::Teacher),
        &teacher_stats,
        36,
        &["--publish", "none"],
    );
    wait_for_participant(&server, "lesson", "t1", "is in", |p| {
        p["placement"] == "stage"
    });
    let student = spawn_join(
        &server,
        &token("lesson", "s1", Role::Student),
        &student_stats,
        42,
        &[
            "--publish",
            "video,audio",
            "--chat",
            "hello teacher",
            "--chat",
            "page 42?",
            "--raise-hand",
        ],
    );
    wait_for_participant(&server, "lesson", "s1", "waits", |p| {
        p["placement"] == "lobby"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(class(&server, "lesson", &["admit", "s1"]).status.success());
    wait_for_participant(&server, "lesson", "s1", "raises its hand", |p| {
        p["placement"] == "audience" && p["hand_raised"] == true
    });
    // A raised hand goes on stage at once; the student publishes there.
    assert!(class(&server, "lesson", &["stage", "s1"]).status.success());
    wait_for_participant(&server, "lesson", "s1", "publishes on stage", |p| {
        p["placement"] == "stage" && p["tracks"].as_array().is_some_and(|t| t.len() == 2)
    });
    let said = json_of(&class(
        &server,
        "lesson",
        &["say", "welcome on stage", "--json"],
    ));
    assert_eq!(said["text"], "welcome on stage");
    std::thread::sleep(Duration::from_secs(3));
    // Off stage its tracks end; invited back (no hand now) it accepts and publishes again.
    assert!(class(&server, "lesson", &["unstage", "s1"])
        .status
        .success());
    wait_for_participant(&server, "lesson", "s1", "is back in the audience", |p| {
        p["placement"] == "audience" && p["tracks"].as_array().is_some_and(|t| t.is_empty())
    });
    assert!(class(&server, "lesson", &["stage", "s1"]).status.success());
    wait_for_participant(&server, "lesson", "s1", "publishes again", |p| {
        p["placement"] == "stage" && p["tracks"].as_array().is_some_and(|t| t.len() == 2)
    });
    // The teacher mutes its microphone, and everyone sees the track muted.
    assert!(class(&server, "lesson", &["mute", "s1", "--kind", "audio"])
        .status
        .success());
    let participants = json_of(&class(&server, "lesson", &["participants", "--json"]));
    let s1 = participants
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == "s1")
        .unwrap()
        .clone();
    assert!(s1["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["source"] == "microphone" && t["muted"] == true));

    let student = student.wait_with_output().unwrap();
    assert!(student.status.success(), "{}", stderr(&student));
    let teacher = teacher.wait_with_output().unwrap();
    assert!(teacher.status.success(), "{}", stderr(&teacher));

    let stats = read_stats(&student_stats);
    let classroom = &stats["classroom"];
    assert_eq!(classroom["joined_in"], "lobby");
    assert_eq!(classroom["state"], "stage");
    assert!(
        classroom["lobby_ms"].as_f64().unwrap() >= 500.0,
        "{classroom}"
    );
    let placements: Vec<&str> = classroom["stage_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["placement"].as_str().unwrap())
        .collect();
    assert_eq!(placements, ["audience", "stage", "audience", "stage"]);
    let times: Vec<f64> = classroom["stage_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["at_ms"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(classroom["chat_sent"], 2);
    assert_eq!(
        classroom["chat_received"],
        serde_json::json!([{"from": null, "text": "welcome on stage"}])
    );
    let video = stats["published"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "video")
        .expect("publishing video again on stage");
    assert!(video["frames_sent"].as_u64().unwrap() > 10, "{video}");

    // The teacher decoded the student's stamped video and got its chat.
    let watched = read_stats(&teacher_stats);
    let received = watched["received"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "video" && r["from"] == "s1")
        .unwrap_or_else(|| panic!("the teacher received s1's video: {watched}"));
    let decoded = received["frames_decoded"].as_u64().unwrap();
    assert!(decoded >= 10, "decoded {decoded}");
    assert_eq!(received["frames_stamped_ok"], received["frames_decoded"]);
    let texts: Vec<&str> = watched["classroom"]["chat_received"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == "s1")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello teacher", "page 42?"]);
    assert_eq!(watched["classroom"]["lobby_ms"], 0.0);

    // The server's record agrees: history (oldest first) and attendance.
    let history = json_of(&class(&server, "lesson", &["history", "--json"]));
    let history: Vec<(Value, Value)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert!(m["seq"].is_u64() && m["time"].is_u64(), "{m}");
            (m["from"].clone(), m["text"].clone())
        })
        .collect();
    assert_eq!(
        history,
        [
            ("s1".into(), "hello teacher".into()),
            ("s1".into(), "page 42?".into()),
            (Value::Null, "welcome on stage".into()),
        ]
    );
    let newest = json_of(&class(
        &server,
        "lesson",
        &["history", "--json", "--limit", "1"],
    ));
    assert_eq!(newest[0]["text"], "welcome on stage");
    let attendance = json_of(&class(&server, "lesson", &["attendance", "--json"]));
    let s1 = attendance["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["identity"] == "s1")
        .expect("s1 attended");
    assert_eq!(s1["stage_turns"], 2);
    assert!(s1["lobby_ms"].as_u64().unwrap() >= 500);
    let text = stdout(&class(&server, "lesson", &["attendance"]));
    assert!(text.contains("s1") && text.contains("t1"), "{text}");

    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_student_in_a_plain_call_publishes_at_once_and_a_removed_one_fails_clearly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = start_server(&runtime);
    let dir = std::env::temp_dir().join(format!("aula-call-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("s2.json");
    let student = spawn_join(
        &server,
        &token("call", "s2", Role::Student),
        &stats,
        30,
        &["--publish", "video", "--chat", "hi"],
    );
    wait_for_participant(&server, "call", "s2", "publishes", |p| {
        p["placement"] == "stage" && p["tracks"].as_array().is_some_and(|t| t.len() == 1)
    });
    let out = class(&server, "call", &["remove", "s2", "--reason", "wrong room"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let student = student.wait_with_output().unwrap();
    assert!(
        !student.status.success(),
        "a removed participant's run fails"
    );
    assert!(
        stderr(&student).contains("wrong room"),
        "says why: {}",
        stderr(&student)
    );
    let stats = read_stats(&stats);
    assert_eq!(stats["classroom"]["joined_in"], "stage");
    assert_eq!(stats["classroom"]["lobby_ms"], 0.0);
    assert_eq!(stats["classroom"]["chat_sent"], 1);
    // Removed: it cannot come back to this class.
    assert_refused(
        &class(&server, "call", &["admit", "s2"]),
        "unknown_participant",
    );
    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_test_runs_a_class_and_reports_what_the_classroom_did() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = start_server(&runtime);
    let dir = std::env::temp_dir().join(format!("aula-class-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let summary_path = dir.join("load.json");
    let out = aula(&[
        "load-test",
        "--url",
        &server.ws_url(),
        "--api-key",
        DEV_API_KEY,
        "--api-secret",
        DEV_API_SECRET,
        "--class",
        "--stage",
        "1",
        "--audience",
        "2",
        "--lobby",
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
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("class: admitted 3/3"),
        "{}",
        stdout(&out)
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["participants"], 5);
    assert_eq!(summary["joined"], 5);
    // The teacher and the stage student publish; the teacher, the stage student and the two in
    // the audience receive (the teacher and the student one stream each, the audience two).
    assert_eq!(summary["expected_streams"], 6, "{summary}");
    assert_eq!(summary["starved_receivers"], 0, "{summary}");
    let class = &summary["classroom"];
    assert_eq!(class["admitted"], 3, "{class}");
    assert_eq!(class["on_stage"], 1);
    assert!(class["admit_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(class["stage_video_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(class["chat_expected"], 9);
    assert_eq!(class["chat_delivered"], 9);
    assert_eq!(class["still_in_lobby"], 1);
    assert_eq!(class["lobby_frames"], 0);
    assert_eq!(class["lobby_chat"], 0);

    // The shapes that cannot run are refused before anything joins.
    let bad = aula(&[
        "load-test",
        "--url",
        &server.ws_url(),
        "--api-key",
        DEV_API_KEY,
        "--api-secret",
        DEV_API_SECRET,
        "--class",
        "--stage",
        "65",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--stage is at most 64"),
        "{}",
        stderr(&bad)
    );
    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}
