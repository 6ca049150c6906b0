//! Durability of chat: SIGKILL the real `aula-server` binary in the middle of a burst of chat
//! messages, restart it on the same data directory, and find every acknowledged message (and
//! the class's attendance) there, in order, with its sequence number and text.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aula_protocol::token::unix_now;
use aula_protocol::{ChatMessage, Claims, ClientMessage, Role, ServerMessage, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::{free_port, Server, Ws};

const ROOM: &str = "chat-durable";
/// Every message of the burst must be accepted: the rate limit is not under test.
const RATE_LIMIT_OFF: &[&str] = &["--max-messages-per-second", "5000"];

/// Joins as `identity` and returns the socket and the chat `joined` carried.
async fn join(port: u16, identity: &str) -> (Ws, Vec<ChatMessage>) {
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
    let token = Claims::new("devkey", ROOM, identity, Role::Teacher, unix_now(), 600)
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
                if let Ok(ServerMessage::Joined { chat, .. }) = serde_json::from_str(text.as_str())
                {
                    return (ws, chat);
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no join reply: {other:?}"),
        }
    }
}

/// Every message of the class, paging back from the newest.
async fn history(ws: &mut Ws) -> Vec<ChatMessage> {
    let mut all = Vec::new();
    let mut before = None;
    for id in 100.. {
        let request = ClientMessage::ChatHistory {
            id,
            before,
            limit: None,
        };
        ws.send(Message::Text(
            serde_json::to_string(&request).expect("json").into(),
        ))
        .await
        .expect("sent");
        let (messages, more) = loop {
            let text = match ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => panic!("connection ended during history: {other:?}"),
            };
            if let Ok(ServerMessage::ChatHistory {
                request_id,
                messages,
                more,
            }) = serde_json::from_str(text.as_str())
            {
                assert_eq!(request_id, id);
                break (messages, more);
            }
        };
        before = messages.first().map(|m| m.seq);
        let mut page = messages;
        page.append(&mut all);
        all = page;
        if !more || before.is_none() {
            break;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_chat_message_survives_sigkill() {
    let data_dir = std::env::temp_dir().join(format!(
        "aula-chat-durability-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let port = free_port();
    let mut server = Server::start(&data_dir, port, RATE_LIMIT_OFF);
    // Several senders, so that the server's rate limit per participant is not what paces it.
    let senders = 4;
    let mut acked: HashMap<u64, String> = HashMap::new();
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (ws, _) = join(port, &format!("t{s}")).await;
        let acks = acks_tx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let reader = tokio::spawn(async move {
                // The board's binary frames share the socket: only text is signaling.
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    if let Ok(ServerMessage::ChatSent { message, .. }) =
                        serde_json::from_str(text.as_str())
                    {
                        let _ = acks.send((message.seq, message.text));
                    }
                }
            });
            for n in 0..400u64 {
                let send = ClientMessage::SendChat {
                    id: 10 + n,
                    text: format!("t{s} message {n}"),
                    to: None,
                    announcement: false,
                };
                let text = serde_json::to_string(&send).expect("json");
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
                // Under the chat rate limit of 5 per second (bursts of 10).
                tokio::time::sleep(Duration::from_millis(210)).await;
            }
            reader.abort();
        }));
    }
    drop(acks_tx);
    // Kill the server mid-burst, once a fair number of messages is acknowledged.
    while acked.len() < 40 {
        let (seq, text) = tokio::time::timeout(Duration::from_secs(30), acks_rx.recv())
            .await
            .expect("acknowledgements arrive")
            .expect("senders run");
        acked.insert(seq, text);
    }
    server.kill();
    while let Ok(Some((seq, text))) =
        tokio::time::timeout(Duration::from_millis(200), acks_rx.recv()).await
    {
        acked.insert(seq, text);
    }
    for task in tasks {
        task.abort();
    }

    let port = free_port();
    let mut server = Server::start(&data_dir, port, RATE_LIMIT_OFF);
    let (mut ws, recent) = join(port, "late").await;
    assert!(!recent.is_empty(), "a late joiner gets the newest messages");
    let stored = history(&mut ws).await;
    let by_seq: HashMap<u64, &ChatMessage> = stored.iter().map(|m| (m.seq, m)).collect();
    for (seq, text) in &acked {
        let message = by_seq
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged message {seq} lost"));
        assert_eq!(&message.text, text, "message {seq} changed");
    }
    assert!(
        stored.windows(2).all(|w| w[0].seq < w[1].seq),
        "history is in order"
    );
    server.kill();
    let _ = std::fs::remove_dir_all(&data_dir);
}
