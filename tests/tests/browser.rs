//! The server's browser page in headless Chromium (fake camera and microphone), with Aula core
//! participants: H.264 video both ways, and the classroom as a student and as a teacher live it
//! in the page. The page, opened with `?token=`, shows the remote video by itself: Chromium runs
//! with its default autoplay policy and nobody clicks.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::{ChatDraft, Room, RoomEvent, RoomOptions, VideoPublishOptions};
use aula_protocol::api::ApiClaims;
use aula_protocol::classroom::PermissionsPatch;
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, MediaKind, Placement, Role, RoomMode, RoomSettings, TrackSource};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::support;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Checks what the browser tests need, then waits for this test's turn: one Chromium at a time
/// on a small machine. The test shares the process with others meanwhile.
async fn browser_turn() -> (
    support::serial::Shared,
    tokio::sync::MutexGuard<'static, ()>,
) {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let suite = support::shared().await;
    check_browser_setup();
    (suite, TURN.lock().await)
}

/// Fails with what to install when the browser tests cannot run.
fn check_browser_setup() {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_and_a_core_participant_see_each_other() {
    // The browser must climb to the top simulcast layer on its downlink estimate, a figure
    // of the media path's timing: it runs alone, like the other tests that measure that path.
    check_browser_setup();
    let _alone = support::exclusive().await;
    let dir = browser_dir();
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

/// A page script (`tests/browser/*.js`, on `lib.js`) followed line by line: `STEP name` as the
/// page reaches each state, then `DONE {json}`, or `FAIL ...`. Dropping it closes the script's
/// stdin, which closes the browser.
struct PageScript {
    child: Child,
    lines: UnboundedReceiver<String>,
    printed: Vec<String>,
}

impl PageScript {
    fn start(script: &str, args: &[&str]) -> Self {
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(browser_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs (install Node.js)");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    async fn next_line(&mut self, waiting_for: &str) -> String {
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.recv()).await;
        match line {
            Ok(Some(line)) if !line.starts_with("FAIL") => {
                self.printed.push(line.clone());
                line
            }
            other => panic!(
                "the page did not get to {waiting_for} ({other:?}); it printed:\n{}",
                self.printed.join("\n")
            ),
        }
    }

    /// Waits until the page reports `name`, the next state it should reach.
    async fn step(&mut self, name: &str) {
        let line = self.next_line(name).await;
        assert_eq!(line, format!("STEP {name}"), "the page went elsewhere");
    }

    /// Waits for the script's result.
    async fn done(&mut self) -> serde_json::Value {
        let line = self.next_line("the end").await;
        let json = line.strip_prefix("DONE ").expect("the script's result");
        serde_json::from_str(json).expect("JSON")
    }
}

impl Drop for PageScript {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for `identity` (shown as `name`) whose room runs with `settings`.
fn class_token(identity: &str, name: &str, role: Role, settings: &RoomSettings) -> String {
    let mut claims = Claims::new(DEV_API_KEY, "class", identity, role, unix_now(), 600);
    claims.name = Some(name.to_owned());
    claims.classroom = Some(settings.clone());
    claims.sign(DEV_API_SECRET).expect("valid claims")
}

fn class_with_lobby() -> RoomSettings {
    RoomSettings {
        mode: RoomMode::Class,
        lobby: true,
        ..RoomSettings::default()
    }
}

/// A `POST` to the server API as a backend would make it; the HTTP status.
async fn api_post(server: &ServerHandle, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let token = ApiClaims::new(DEV_API_KEY, unix_now(), 300)
        .sign(DEV_API_SECRET)
        .expect("server token");
    let mut stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .expect("the server accepts");
    let request = format!(
        "POST /api/v1{path} HTTP/1.1\r\nHost: aula\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status")
}

/// Waits for the first event `pick` accepts.
async fn next<T>(
    events: &mut UnboundedReceiver<RoomEvent>,
    what: &str,
    mut pick: impl FnMut(RoomEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(found) = pick(events.recv().await.expect("events open")) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Video frames `room` decoded from `identity`.
fn decoded_from(room: &Room, identity: &str) -> u64 {
    room.stats()
        .received
        .iter()
        .filter(|r| r.from == identity && r.kind == MediaKind::Video)
        .map(|r| r.frames_decoded)
        .sum()
}

async fn wait_for_frames(room: &Room, identity: &str, frames: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while decoded_from(room, identity) < frames {
        assert!(
            Instant::now() < deadline,
            "decoded {} frames from {identity}",
            decoded_from(room, identity)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn text(shown: &serde_json::Value, field: &str) -> String {
    shown[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_student_waits_is_admitted_raises_its_hand_and_is_seen_on_stage() {
    let _turn = browser_turn().await;
    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let settings = class_with_lobby();
    let chat = "Welcome to the stage";
    let url = format!("http://{}", server.http_addr());
    let student = class_token("browser-student", "Bea", Role::Student, &settings);
    let mut page = PageScript::start("class-student.js", &[&url, &student, chat]);

    // Alone in the lobby, then with a teacher who lets it in through the server API.
    page.step("lobby-no-teacher").await;
    let (teacher, mut events) = Room::connect(
        &server.ws_url(),
        &class_token("teacher", "Ms Rivera", Role::Teacher, &settings),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    page.step("lobby-waiting").await;
    let status = api_post(&server, "/rooms/class/participants/browser-student/admit").await;
    assert_eq!(status, 200);

    // The page raises its hand; the teacher accepts it, which puts it on stage at once.
    page.step("hand-raised").await;
    let hands = next(&mut events, "the raised hand", |e| match e {
        RoomEvent::ClassroomChanged(c) if !c.hands.is_empty() => Some(c.hands),
        _ => None,
    })
    .await;
    let id = teacher
        .remote_participants()
        .into_iter()
        .find(|p| p.identity == "browser-student")
        .expect("the student is in")
        .id;
    assert_eq!(hands, vec![id.clone()]);
    teacher.invite_to_stage(&id).await.expect("on stage");
    page.step("on-stage").await;

    // Its camera reaches the teacher, decoded.
    wait_for_frames(&teacher, "browser-student", 30).await;
    teacher
        .send_chat(ChatDraft {
            text: chat.into(),
            ..ChatDraft::default()
        })
        .await
        .expect("sent");
    let shown = page.done().await;
    assert!(
        text(&shown, "no_teacher").contains("No teacher here yet"),
        "{shown}"
    );
    assert!(
        text(&shown, "waiting").contains("Waiting for the teacher to let you in"),
        "{shown}"
    );
    assert!(
        text(&shown, "audience").contains("in the audience"),
        "{shown}"
    );
    assert!(text(&shown, "hands").contains("Bea"), "{shown}");
    assert!(text(&shown, "stage").contains("on stage"), "{shown}");
    assert!(text(&shown, "own_video").contains("Bea (you)"), "{shown}");
    assert!(
        text(&shown, "chat").contains(&format!("Ms Rivera: {chat}")),
        "{shown}"
    );
    drop(page);
    teacher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_teacher_admits_a_student_accepts_its_hand_and_writes_to_it() {
    let _turn = browser_turn().await;
    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let settings = class_with_lobby();
    let chat = "Welcome, Sam";
    let url = format!("http://{}", server.http_addr());
    let teacher = class_token("browser-teacher", "Mr Okafor", Role::Teacher, &settings);
    let mut page = PageScript::start("class-teacher.js", &[&url, &teacher, "Sam", chat]);
    page.step("teaching").await;

    let (student, mut events) = Room::connect(
        &server.ws_url(),
        &class_token("s1", "Sam", Role::Student, &settings),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(student.placement(), Placement::Lobby);
    // The page admits it from its lobby list.
    page.step("admitted").await;
    next(&mut events, "admission", |e| {
        matches!(e, RoomEvent::Admitted).then_some(())
    })
    .await;
    assert_eq!(student.placement(), Placement::Audience);
    // The page accepts its hand from the queue.
    student.raise_hand().await.expect("hand raised");
    page.step("on-stage").await;
    next(&mut events, "the stage", |e| match e {
        RoomEvent::PermissionsChanged(p) if p.can_publish(TrackSource::Camera) => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(student.placement(), Placement::Stage);
    let message = next(&mut events, "the page's message", |e| match e {
        RoomEvent::ChatReceived(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(message.text, chat);
    assert_eq!(message.from.as_deref(), Some("browser-teacher"));
    let shown = page.done().await;
    assert!(text(&shown, "sent").contains(chat), "{shown}");
    drop(page);
    student.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_student_follows_what_a_teacher_does_to_it() {
    let _turn = browser_turn().await;
    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0)).await.unwrap();
    let settings = RoomSettings {
        mode: RoomMode::Class,
        ..RoomSettings::default()
    };
    let (teacher, mut events) = Room::connect(
        &server.ws_url(),
        &class_token("teacher", "Ms Rivera", Role::Teacher, &settings),
        RoomOptions::default(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.http_addr());
    let student = class_token("browser-student", "Bea", Role::Student, &settings);
    let mut page = PageScript::start("class-moderated.js", &[&url, &student]);
    page.step("audience").await;
    let id = next(&mut events, "the student", |e| match e {
        RoomEvent::ParticipantJoined(p) => Some(p.id),
        _ => None,
    })
    .await;

    // Invited (no hand raised): the page asks, the person accepts.
    teacher.invite_to_stage(&id).await.expect("invited");
    page.step("on-stage").await;
    wait_for_frames(&teacher, "browser-student", 10).await;
    // Muted by the teacher, who also takes away the right to unmute.
    let no_unmute = PermissionsPatch {
        unmute: Some(false),
        ..PermissionsPatch::default()
    };
    teacher.update_permissions(&id, no_unmute).await.unwrap();
    teacher
        .mute_participant(&id, MediaKind::Video)
        .await
        .unwrap();
    page.step("unmute-refused").await;
    // Back to the audience: the page stops sending.
    teacher.move_to_audience(&id).await.expect("unstaged");
    page.step("back-in-audience").await;
    teacher
        .send_chat(ChatDraft {
            text: "Quiz in five minutes".into(),
            announcement: true,
            ..ChatDraft::default()
        })
        .await
        .expect("announced");
    page.step("announcement").await;
    teacher
        .remove_participant(&id, "please join from the other link")
        .await
        .expect("removed");
    let shown = page.done().await;
    assert!(
        text(&shown, "invitation").contains("Ms Rivera invites you"),
        "{shown}"
    );
    assert_eq!(shown["camera_enabled"], false, "muted locally: {shown}");
    assert!(
        text(&shown, "refusal").contains("may not unmute"),
        "{shown}"
    );
    assert_eq!(shown["video_left"], 0, "{shown}");
    assert!(
        text(&shown, "announcement").contains("Ms Rivera: Quiz in five minutes"),
        "{shown}"
    );
    assert!(
        text(&shown, "ended").contains("Reason: please join from the other link"),
        "{shown}"
    );
    drop(page);
    teacher.disconnect().await;
    server.shutdown().await;
}
