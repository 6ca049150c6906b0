//! Durability: SIGKILL the real `aula-server` binary in the middle of a burst of whiteboard
//! edits, restart it on the same data directory, and find every acknowledged edit there.

use std::time::{Duration, Instant};

use aula_protocol::token::unix_now;
use aula_protocol::whiteboard::{Board, Frame, NewItem, Point, DEFAULT_PAGE};
use aula_protocol::{Claims, ClientMessage, Role, ServerMessage, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use yrs::updates::decoder::Decode;
use yrs::{Doc, StateVector, Transact, Update};

mod support;

use support::{free_port, Server, Ws};

const ROOM: &str = "durable";

async fn connect(port: u16) -> Ws {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("ws://127.0.0.1:{port}/rtc");
    let mut ws = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => break ws,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("server did not come up: {err}"),
        }
    };
    let token = Claims::new("devkey", ROOM, "teacher", Role::Teacher, unix_now(), 600)
        .sign("devsecret")
        .expect("token");
    let join = ClientMessage::Join {
        id: 1,
        protocol_version: PROTOCOL_VERSION,
        room: ROOM.into(),
        token,
        auto_subscribe: false,
    };
    ws.send(Message::Text(
        serde_json::to_string(&join).expect("json").into(),
    ))
    .await
    .expect("join sent");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Ok(ServerMessage::Joined { .. }) = serde_json::from_str(text.as_str()) {
                    return ws;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no join reply: {other:?}"),
        }
    }
}

/// Asks for the whole board and applies it to `doc`.
async fn load(ws: &mut Ws, doc: &Doc) {
    ws.send(Message::Binary(
        Frame::SyncStep1(StateVector::default()).encode().into(),
    ))
    .await
    .expect("step 1 sent");
    loop {
        let Some(Ok(Message::Binary(bytes))) = ws.next().await else {
            continue;
        };
        if let Ok(Frame::SyncStep2(update)) = Frame::decode(&bytes) {
            let update = Update::decode_v1(&update).expect("server state decodes");
            doc.transact_mut().apply_update(update).expect("applies");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_edit_survives_sigkill() {
    let data_dir = std::env::temp_dir().join(format!(
        "aula-wb-durability-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let port = free_port();
    let mut server = Server::start(&data_dir, port, &[]);
    let mut ws = connect(port).await;
    let board = Board::new(Doc::new());
    load(&mut ws, board.doc()).await;

    let (mut sink, mut stream) = ws.split();
    let (acked_tx, mut acked_rx) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Binary(bytes) = message {
                if let Ok(Frame::Ack { seq }) = Frame::decode(&bytes) {
                    let _ = acked_tx.send(seq);
                }
            }
        }
    });
    // A burst of strokes, one update each, paced under the rate limit.
    let total = 600u64;
    let writer_board = board.clone();
    let writer = tokio::spawn(async move {
        for n in 1..=total {
            let update = {
                let mut txn = writer_board.doc().transact_mut();
                let points = vec![
                    Point {
                        x: n as f32,
                        y: 1.0,
                        pressure: 0.5
                    };
                    16
                ];
                writer_board.add_item(
                    &mut txn,
                    DEFAULT_PAGE,
                    &format!("s{n}"),
                    "teacher",
                    &NewItem::stroke("#000000", 2.0, points),
                );
                txn.encode_update_v1()
            };
            if sink
                .send(Message::Binary(Frame::Update(update).encode().into()))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(6)).await;
        }
    });
    // Kill the server once a good part of the burst is acknowledged, mid-burst.
    acked_rx
        .wait_for(|seq| *seq >= 150)
        .await
        .expect("acks arrive");
    server.kill();
    let acked = *acked_rx.borrow();
    writer.abort();
    reader.abort();
    assert!(acked < total, "the kill landed in the middle of the burst");

    let port = free_port();
    let mut server = Server::start(&data_dir, port, &[]);
    let mut ws = connect(port).await;
    let restored = Board::new(Doc::new());
    load(&mut ws, restored.doc()).await;
    let items = {
        let txn = restored.doc().transact();
        restored.items(&txn, DEFAULT_PAGE)
    };
    let ids: std::collections::HashSet<String> = items.iter().map(|i| i.id.clone()).collect();
    for n in 1..=acked {
        assert!(
            ids.contains(&format!("s{n}")),
            "acknowledged stroke s{n} lost"
        );
    }
    assert!(
        items.iter().all(|i| i.points.len() == 16),
        "strokes are whole"
    );
    server.kill();
    let _ = std::fs::remove_dir_all(&data_dir);
}
