//! Yjs interoperability: a Node client built on the real `yjs` and `y-protocols` packages syncs
//! both ways with an Aula client through the server's y-websocket endpoint.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aula_core::{Room, RoomOptions};
use aula_protocol::token::unix_now;
use aula_protocol::whiteboard::{ItemKind, NewItem, Point, DEFAULT_PAGE};
use aula_protocol::{Claims, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};

use crate::support;

fn token(room: &str, identity: &str, role: Role, write: bool) -> String {
    let mut claims = Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 600);
    claims.grants.whiteboard_write = write;
    claims.sign(DEV_API_SECRET).expect("dev claims are valid")
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yjs-interop")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_yjs_client_syncs_both_ways_with_an_aula_client() {
    let _suite = support::shared().await;
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/yjs").is_dir() && dir.join("node_modules/y-protocols").is_dir(),
        "tests/yjs-interop/node_modules is missing: run `npm ci` in tests/yjs-interop \
         (scripts/test.sh does it)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` is not on PATH; install Node.js (scripts/test.sh installs Debian's nodejs)"
    );

    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (room, _events) = Room::connect(
        &server.ws_url(),
        &token("yjs", "teacher", Role::Teacher, true),
        RoomOptions::default(),
    )
    .await
    .expect("joins");
    let board = room.whiteboard();
    let deadline = Instant::now() + Duration::from_secs(5);
    while board.pages().is_empty() {
        assert!(Instant::now() < deadline, "no page");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let points: Vec<Point> = (0..7)
        .map(|i| Point {
            x: i as f32,
            y: 2.0 * i as f32,
            pressure: 0.5,
        })
        .collect();
    let stroke = board.add_stroke(DEFAULT_PAGE, "#000000", 2.0, &points[..4]);
    board
        .extend_stroke(DEFAULT_PAGE, &stroke, &points[4..])
        .expect("stroke");
    let label = board.add_item(
        DEFAULT_PAGE,
        &NewItem::text("#222222", 18.0, 5.0, 5.0, "hello yjs"),
    );
    while board.unacked() > 0 {
        assert!(Instant::now() < deadline, "edits not acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let url = format!(
        "{}/yjs/yjs?token={}",
        server.ws_url(),
        token("yjs", "browser", Role::Student, true)
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("client.mjs")
            .arg(url)
            .arg("browser")
            .current_dir(dir)
            .output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap_or(""))
        .expect("the node client prints JSON");
    let seen = seen["seen"].as_array().expect("items");
    let by_id = |id: &str| seen.iter().find(|i| i["id"] == id).cloned();
    let s = by_id(&stroke).expect("Yjs sees the Aula stroke");
    assert_eq!(s["kind"], "stroke");
    assert_eq!(s["author"], "teacher");
    assert_eq!(s["points"], 7, "both streamed chunks");
    assert_eq!(
        by_id(&label).expect("Yjs sees the label")["text"],
        "hello yjs"
    );

    // And the other way: the Yjs client's rectangle and stroke reach the Aula client.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let items = board.items(DEFAULT_PAGE);
        let rect = items.iter().find(|i| i.id == "browser-rect");
        let pen = items.iter().find(|i| i.id == "browser-stroke");
        if let (Some(rect), Some(pen)) = (rect, pen) {
            assert_eq!(rect.kind, ItemKind::Rect);
            assert_eq!(rect.author, "browser");
            assert_eq!((rect.x, rect.y, rect.w, rect.h), (10.0, 20.0, 200.0, 100.0));
            assert_eq!(pen.points.len(), 3);
            assert_eq!(pen.points[1].x, 3.0);
            assert_eq!(pen.points[2].pressure, 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Yjs client's items never reached Aula"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, digest) = server.whiteboard_digest("yjs").await.expect("digest");
    assert_eq!(board.digest(), digest);
}
