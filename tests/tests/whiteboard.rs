//! The shared whiteboard end to end: real server, real client replicas on loopback.

use std::time::{Duration, Instant};

use aula_core::{Room, RoomOptions, Whiteboard, WhiteboardEvent};
use aula_protocol::token::unix_now;
use aula_protocol::whiteboard::{Point, DEFAULT_PAGE};
use aula_protocol::{Claims, Role};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};

use crate::support;

fn token(room: &str, identity: &str, role: Role, write: bool) -> String {
    let mut claims = Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 600);
    claims.grants.whiteboard_write = write;
    claims.sign(DEV_API_SECRET).expect("dev claims are valid")
}

async fn start_server() -> ServerHandle {
    Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts on free loopback ports")
}

async fn join(server: &ServerHandle, room: &str, identity: &str, role: Role, write: bool) -> Room {
    let (room, _events) = Room::connect(
        &server.ws_url(),
        &token(room, identity, role, write),
        RoomOptions::default(),
    )
    .await
    .expect("join succeeds");
    room
}

fn pts(seed: u32, n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            x: (seed * 7 + i as u32) as f32,
            y: (seed * 3 + i as u32 * 2) as f32,
            pressure: 0.5,
        })
        .collect()
}

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn server_digest(server: &ServerHandle, room: &str) -> (usize, String) {
    server
        .whiteboard_digest(room)
        .await
        .expect("the board is readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_clients_converge_despite_loss_and_partitions() {
    let _suite = support::shared().await;
    let server = start_server().await;
    let mut boards: Vec<Whiteboard> = Vec::new();
    let mut rooms = Vec::new();
    for i in 0..5 {
        let room = join(&server, "conv", &format!("user{i}"), Role::Student, true).await;
        boards.push(room.whiteboard());
        rooms.push(room);
    }
    eventually(
        "the default page on every replica",
        Duration::from_secs(5),
        || {
            boards
                .iter()
                .all(|b| b.pages() == vec![DEFAULT_PAGE.to_owned()])
        },
    )
    .await;
    let mut tasks = Vec::new();
    for (i, board) in boards.iter().enumerate() {
        let board = board.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for step in 0..40u32 {
                // Partitions: frames are lost both ways for a while, then the replica resyncs.
                if step % 13 == (i as u32 % 5) + 3 {
                    board.set_offline(true);
                }
                if step % 13 == (i as u32 % 5) + 7 {
                    board.set_offline(false);
                }
                match step % 5 {
                    0 | 1 => {
                        let id = board.add_stroke(DEFAULT_PAGE, "#ff0000", 2.0, &pts(step, 4));
                        board
                            .extend_stroke(DEFAULT_PAGE, &id, &pts(step + 1, 4))
                            .expect("own stroke exists");
                        mine.push(id);
                    }
                    2 => {
                        // Move someone's item (whatever this replica sees first).
                        if let Some(item) = board.items(DEFAULT_PAGE).first() {
                            let _ = board.move_item(DEFAULT_PAGE, &item.id, 1.0, 2.0);
                        }
                    }
                    3 => {
                        if let Some(item) = board.items(DEFAULT_PAGE).last() {
                            let _ = board.recolor(DEFAULT_PAGE, &item.id, "#00ff00");
                        }
                    }
                    _ => {
                        if let Some(id) = mine.first().cloned() {
                            let _ = board.erase(DEFAULT_PAGE, &id);
                            mine.remove(0);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(3 + i as u64)).await;
            }
            board.set_offline(false);
        }));
    }
    for task in tasks {
        task.await.expect("editor task");
    }
    eventually("every edit acknowledged", Duration::from_secs(20), || {
        boards.iter().all(|b| b.unacked() == 0)
    })
    .await;
    let (count, digest) = server_digest(&server, "conv").await;
    eventually(
        "every replica equal to the server's board",
        Duration::from_secs(20),
        || boards.iter().all(|b| b.digest() == digest),
    )
    .await;
    assert!(
        count > 20,
        "the board holds the surviving strokes ({count})"
    );
    for b in &boards {
        assert_eq!(b.item_count(), count);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_only_undoes_ones_own_edits() {
    let _suite = support::shared().await;
    let server = start_server().await;
    let alice_room = join(&server, "undo", "alice", Role::Teacher, true).await;
    let alice = alice_room.whiteboard();
    let bob_room = join(&server, "undo", "bob", Role::Student, true).await;
    let bob = bob_room.whiteboard();
    eventually("pages", Duration::from_secs(5), || {
        !alice.pages().is_empty() && !bob.pages().is_empty()
    })
    .await;
    let a = alice.add_stroke(DEFAULT_PAGE, "#000", 1.0, &pts(1, 3));
    alice
        .extend_stroke(DEFAULT_PAGE, &a, &pts(2, 3))
        .expect("stroke");
    eventually("alice's stroke at bob", Duration::from_secs(5), || {
        bob.item_count() == 1
    })
    .await;
    let b = bob.add_stroke(DEFAULT_PAGE, "#111", 1.0, &pts(3, 3));
    eventually("bob's stroke at alice", Duration::from_secs(5), || {
        alice.item_count() == 2
    })
    .await;
    assert!(alice.undo(), "alice has an edit to undo");
    assert_eq!(alice.item_count(), 1, "undo applies locally at once");
    eventually("undo reaches bob", Duration::from_secs(5), || {
        bob.item_count() == 1
    })
    .await;
    let left = bob.items(DEFAULT_PAGE);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, b, "bob's stroke survives alice's undo");
    assert!(
        !alice.undo(),
        "alice has nothing else to undo: bob's stroke is not hers"
    );
    assert_eq!(alice.item_count(), 1);
    assert!(alice.redo());
    eventually("redo reaches bob", Duration::from_secs(5), || {
        bob.item_count() == 2
    })
    .await;
    let restored = bob.items(DEFAULT_PAGE);
    let stroke = restored
        .iter()
        .find(|i| i.id == a)
        .expect("alice's stroke is back");
    assert_eq!(
        stroke.points.len(),
        6,
        "the whole stroke, both chunks, is one undo step"
    );
}

async fn refused(
    what: &str,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<WhiteboardEvent>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(WhiteboardEvent::Refused { code, .. })) => return code,
            Ok(Some(_)) => continue,
            _ => panic!("no refusal arrived: {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_edits_change_nothing() {
    let _suite = support::shared().await;
    let server = start_server().await;
    let teacher_room = join(&server, "perm", "teacher", Role::Teacher, true).await;
    let teacher = teacher_room.whiteboard();
    let reader_room = join(&server, "perm", "reader", Role::Student, false).await;
    let reader = reader_room.whiteboard();
    let writer_room = join(&server, "perm", "writer", Role::Student, true).await;
    let writer = writer_room.whiteboard();
    for b in [&teacher, &reader, &writer] {
        eventually("pages", Duration::from_secs(5), || !b.pages().is_empty()).await;
    }
    teacher.add_stroke(DEFAULT_PAGE, "#000", 1.0, &pts(1, 3));
    eventually(
        "teacher's stroke everywhere",
        Duration::from_secs(5),
        || reader.item_count() == 1 && writer.item_count() == 1,
    )
    .await;
    let before = server_digest(&server, "perm").await;

    // No write grant.
    let mut events = reader.events();
    reader.add_stroke(DEFAULT_PAGE, "#f00", 1.0, &pts(2, 3));
    assert_eq!(reader.item_count(), 2, "applied locally at once");
    assert_eq!(refused("step 1", &mut events).await, "permission_denied");
    eventually(
        "the reader's replica reloaded",
        Duration::from_secs(5),
        || reader.digest() == before.1,
    )
    .await;
    assert_eq!(server_digest(&server, "perm").await, before);

    // Locking needs room_admin.
    let mut events = writer.events();
    writer.set_page_locked(DEFAULT_PAGE, true);
    assert_eq!(refused("step 2", &mut events).await, "permission_denied");

    // A locked page refuses writers but not the admin.
    teacher.set_page_locked(DEFAULT_PAGE, true);
    eventually("the lock everywhere", Duration::from_secs(5), || {
        writer.digest() == teacher.digest() && teacher.unacked() == 0
    })
    .await;
    let locked = server_digest(&server, "perm").await;
    let mut events = writer.events();
    writer.add_stroke(DEFAULT_PAGE, "#f00", 1.0, &pts(3, 3));
    assert_eq!(refused("step 3", &mut events).await, "locked");
    eventually(
        "the writer's replica reloaded",
        Duration::from_secs(5),
        || writer.digest() == locked.1,
    )
    .await;
    let first = teacher.items(DEFAULT_PAGE)[0].id.clone();
    let _ = writer.erase(DEFAULT_PAGE, &first);
    assert_eq!(refused("step 4", &mut events).await, "locked");
    assert_eq!(server_digest(&server, "perm").await, locked);
    teacher.add_stroke(DEFAULT_PAGE, "#000", 1.0, &pts(4, 3));
    eventually(
        "the admin may draw on a locked page",
        Duration::from_secs(5),
        || teacher.unacked() == 0 && writer.item_count() == 2,
    )
    .await;
    teacher.set_page_locked(DEFAULT_PAGE, false);
    eventually("unlocked", Duration::from_secs(5), || {
        teacher.unacked() == 0
    })
    .await;

    // Oversized: a stroke with more points than allowed.
    let before = server_digest(&server, "perm").await;
    let mut events = writer.events();
    writer.add_stroke(DEFAULT_PAGE, "#f00", 1.0, &pts(5, 10_001));
    assert_eq!(refused("step 5", &mut events).await, "too_large");
    assert_eq!(server_digest(&server, "perm").await, before);
    eventually(
        "the writer's replica reloaded",
        Duration::from_secs(5),
        || writer.digest() == before.1,
    )
    .await;
    // The writer can still draw afterwards.
    writer.add_stroke(DEFAULT_PAGE, "#f00", 1.0, &pts(6, 3));
    eventually("writer's stroke stored", Duration::from_secs(5), || {
        writer.unacked() == 0
    })
    .await;
    assert_eq!(server_digest(&server, "perm").await.0, before.0 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_an_error_and_change_nothing() {
    let _suite = support::shared().await;
    use aula_core::signal_client::SignalClient;
    use aula_protocol::whiteboard::Frame;
    use aula_protocol::{ClientMessage, PROTOCOL_VERSION};
    let server = start_server().await;
    let teacher_room = join(&server, "bad", "teacher", Role::Teacher, true).await;
    let teacher = teacher_room.whiteboard();
    eventually("pages", Duration::from_secs(5), || {
        !teacher.pages().is_empty()
    })
    .await;
    teacher.add_stroke(DEFAULT_PAGE, "#000", 1.0, &pts(1, 3));
    eventually("stored", Duration::from_secs(5), || teacher.unacked() == 0).await;
    let before = server_digest(&server, "bad").await;

    let (signal, _events) = SignalClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let id = signal.next_id();
    signal
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: "bad".into(),
            token: token("bad", "raw", Role::Teacher, true),
            auto_subscribe: false,
        })
        .await
        .expect("joins");
    let mut incoming = signal.take_binary_receiver().expect("binary frames");
    let out = signal.binary_sender();
    for garbage in [
        vec![],
        vec![7, 1, 2],
        vec![0, 2, 5, 1, 2],                   // update shorter than its length
        Frame::Update(vec![255; 40]).encode(), // not a yrs update
    ] {
        out.send(garbage).expect("sent");
    }
    let mut codes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while codes.len() < 4 && Instant::now() < deadline {
        if let Ok(Some(bytes)) = tokio::time::timeout(Duration::from_secs(1), incoming.recv()).await
        {
            if let Ok(Frame::Error { code, .. }) = Frame::decode(&bytes) {
                codes.push(code);
            }
        }
    }
    assert_eq!(codes.len(), 4, "every bad frame is answered: {codes:?}");
    assert!(codes.iter().any(|c| c == "malformed"));
    assert!(codes.iter().any(|c| c == "invalid_update"));
    assert_eq!(server_digest(&server, "bad").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_across_a_server_restart_and_converge() {
    let _suite = support::shared().await;
    let data_dir = std::env::temp_dir().join(format!(
        "aula-wb-restart-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let mut config = ServerConfig::dev(0, 0);
    config.data_dir = Some(data_dir.clone());
    let server = Server::start(config.clone()).await.expect("server starts");
    config.listen = server.http_addr();
    let mut rooms = Vec::new();
    for i in 0..3 {
        rooms.push(join(&server, "restart", &format!("u{i}"), Role::Student, true).await);
    }
    let boards: Vec<Whiteboard> = rooms.iter().map(Room::whiteboard).collect();
    eventually("pages", Duration::from_secs(5), || {
        boards.iter().all(|b| !b.pages().is_empty())
    })
    .await;
    let mut tasks = Vec::new();
    for board in &boards {
        let board = board.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..60u32 {
                ids.push(board.add_stroke(DEFAULT_PAGE, "#123456", 1.0, &pts(n, 3)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        }));
    }
    // Mid-burst: the server goes away (telling everyone) and comes back on the same address and
    // data directory; every client rejoins by itself and resyncs, offline strokes included.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = Server::start(config).await.expect("server restarts");
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("drawing task"));
    }
    eventually("every stroke acknowledged", Duration::from_secs(30), || {
        boards.iter().all(|b| b.unacked() == 0)
    })
    .await;
    let (count, digest) = server_digest(&server, "restart").await;
    assert_eq!(
        count,
        all.len(),
        "every stroke, drawn online or offline, is on the server"
    );
    eventually(
        "replicas equal to the server",
        Duration::from_secs(20),
        || boards.iter().all(|b| b.digest() == digest),
    )
    .await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laser_pointers_are_shared_live_and_vanish_when_their_owner_leaves() {
    let _suite = support::shared().await;
    use aula_protocol::whiteboard::awareness::Laser;
    let server = start_server().await;
    let teacher_room = join(&server, "laser", "teacher", Role::Teacher, true).await;
    let student_room = join(&server, "laser", "student", Role::Student, false).await;
    let teacher = teacher_room.whiteboard();
    let student = student_room.whiteboard();
    let spot = Laser {
        page: DEFAULT_PAGE.into(),
        x: 10.0,
        y: 20.0,
    };
    teacher.set_laser(Some(spot.clone()));
    eventually("the student sees the laser", Duration::from_secs(5), || {
        student.lasers() == vec![("teacher".to_owned(), spot.clone())]
    })
    .await;
    let late_room = join(&server, "laser", "late", Role::Observer, false).await;
    let late = late_room.whiteboard();
    eventually("a late joiner sees it too", Duration::from_secs(5), || {
        late.lasers().len() == 1
    })
    .await;
    assert!(
        teacher.lasers().is_empty(),
        "one's own pointer is not listed"
    );
    teacher_room.disconnect().await;
    eventually(
        "the pointer vanishes with its owner",
        Duration::from_secs(5),
        || student.lasers().is_empty() && late.lasers().is_empty(),
    )
    .await;
    // Nothing about pointers was stored on the board.
    let (items, _) = server_digest(&server, "laser").await;
    assert_eq!(items, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_left_empty_is_there_for_whoever_comes_back() {
    let _suite = support::shared().await;
    let server = start_server().await;
    for round in 0..3u32 {
        let room = join(&server, "again", "teacher", Role::Teacher, true).await;
        let board = room.whiteboard();
        eventually("the board so far", Duration::from_secs(5), || {
            board.item_count() == round as usize && !board.pages().is_empty()
        })
        .await;
        board.add_stroke(DEFAULT_PAGE, "#000", 1.0, &pts(round, 3));
        eventually("stored", Duration::from_secs(5), || board.unacked() == 0).await;
        room.disconnect().await;
        // Everyone left: the server unloads the board and loads it again on the next join.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server_digest(&server, "again").await.0, 3);
}
