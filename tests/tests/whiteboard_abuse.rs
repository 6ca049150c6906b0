//! Whiteboard abuse end to end, against a real server on loopback: presence spam aimed at a
//! slow reader, forged presence, and floods of sync requests.

use crate::support;

use std::time::{Duration, Instant};

use aula_core::signal_client::SignalClient;
use aula_core::Whiteboard;
use aula_protocol::whiteboard::awareness::{self, AwarenessEntry};
use aula_protocol::whiteboard::{Frame, Point, DEFAULT_PAGE};
use aula_protocol::{ClientMessage, Role, ServerMessage, PROTOCOL_VERSION};
use aula_server::{Server, ServerConfig, ServerHandle};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::StateVector;

/// Joins `room` with a raw signaling client: returns it, its events and its binary frames.
async fn raw_join(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
) -> (
    SignalClient,
    mpsc::UnboundedReceiver<ServerMessage>,
    mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let (client, events) = SignalClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let binary = client.take_binary_receiver().expect("first take");
    let id = client.next_id();
    client
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: room.into(),
            token: support::token(room, identity, role),
            auto_subscribe: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{identity} cannot join: {e}"));
    (client, events, binary)
}

/// Waits until `board` has the server's first page: drawing before it arrives would create a
/// page of one's own that loses to the server's.
async fn wait_for_page(board: &Whiteboard) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while board.pages().is_empty() {
        assert!(Instant::now() < deadline, "the board never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A participant that reads its socket only when told to, through a 4 KiB receive buffer: the
/// server's writes to it back up as soon as it stops reading.
struct SlowReader {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    board: Whiteboard,
    /// Frames the replica wants to send (its sync step 1 and answers).
    to_server: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl SlowReader {
    async fn join(server: &ServerHandle, room: &str, identity: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small buffer");
        let stream = socket.connect(server.http_addr()).await.expect("connects");
        let url = format!("{}/rtc", server.ws_url());
        let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("upgrades");
        let join = ClientMessage::Join {
            id: 1,
            protocol_version: PROTOCOL_VERSION,
            room: room.into(),
            token: support::token(room, identity, Role::Student),
            auto_subscribe: false,
        };
        ws.send(Message::Text(serde_json::to_string(&join).unwrap().into()))
            .await
            .expect("join sent");
        let board = Whiteboard::new(identity);
        let (out, to_server) = mpsc::unbounded_channel();
        board.attach(out);
        let mut reader = Self {
            ws,
            board,
            to_server,
        };
        let joined = reader
            .read_for(Duration::from_secs(5), |msg| {
                matches!(msg, ServerMessage::Joined { .. })
            })
            .await;
        assert!(joined, "{identity} joined");
        reader
    }

    /// Reads (feeding whiteboard frames to the replica and sending what it answers) until
    /// `until` holds for a signaling message or `limit` passes; false on timeout. Panics when
    /// the server closes the connection.
    async fn read_for(
        &mut self,
        limit: Duration,
        mut until: impl FnMut(&ServerMessage) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Ok(frame) = self.to_server.try_recv() {
                self.ws
                    .send(Message::Binary(frame.into()))
                    .await
                    .expect("the server still takes frames");
            }
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            let message = match next {
                Err(_) => return false,
                Ok(Some(Ok(message))) => message,
                Ok(other) => panic!("the server closed the slow reader's connection: {other:?}"),
            };
            match message {
                Message::Binary(bytes) => self.board.on_frame(&bytes),
                Message::Text(text) => {
                    let msg: ServerMessage = serde_json::from_str(&text).expect("server JSON");
                    if let ServerMessage::Leave { reason, .. } = &msg {
                        panic!("the slow reader was told to leave: {reason:?}");
                    }
                    if until(&msg) {
                        return true;
                    }
                }
                Message::Close(frame) => panic!("the server closed the slow reader: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Sends a ping and reads until its pong.
    async fn ping(&mut self, id: u64) -> bool {
        let ping = serde_json::to_string(&ClientMessage::Ping { id }).unwrap();
        self.ws
            .send(Message::Text(ping.into()))
            .await
            .expect("ping sent");
        self.read_for(
            Duration::from_secs(10),
            |msg| matches!(msg, ServerMessage::Pong { request_id } if *request_id == id),
        )
        .await
    }
}

fn presence(client: u64, clock: u32, json: &str) -> Vec<u8> {
    Frame::Awareness(awareness::encode(&[AwarenessEntry {
        client,
        clock,
        json: json.into(),
    }]))
    .encode()
}

fn points(seed: u32, n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            x: (seed * 13 + i as u32 % 997) as f32,
            y: (i as u32 / 997) as f32,
            pressure: 0.5,
        })
        .collect()
}

async fn metric(server: &ServerHandle, line_prefix: &str) -> f64 {
    let (_, body) = support::http_get(server, "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spam_never_disconnects_a_slow_reader_who_then_catches_up() {
    support::init_test_log();
    let _suite = support::exclusive().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (teacher, _t) = support::join(&server, "spam", "teacher", Role::Teacher).await;
    let board = teacher.whiteboard();
    wait_for_page(&board).await;
    let mut slow = SlowReader::join(&server, "spam", "slow-student").await;
    // The slow reader takes the initial sync, then stops reading.
    slow.read_for(Duration::from_millis(500), |_| false).await;
    let (spammer, _events, _frames) = raw_join(&server, "spam", "spammer", Role::Observer).await;

    // An observer (no write grant) sends thousands of large presence frames while the teacher
    // draws more than a reader's document budget: neither may cost the slow reader its seat.
    let spam = spammer.binary_sender();
    let padding = "x".repeat(3_900);
    let spam_task = tokio::spawn(async move {
        for clock in 1..=5_000u32 {
            let json = format!(r#"{{"laser":{{"page":"1","x":1.0,"y":2.0}},"pad":"{padding}"}}"#);
            if spam.send(presence(4242, clock, &json)).is_err() {
                break;
            }
            if clock % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let mut strokes = Vec::new();
    for i in 0..24 {
        strokes.push(board.add_stroke(DEFAULT_PAGE, "#123456", 2.0, &points(i, 8_000)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    spam_task.await.expect("spam sent");
    let deadline = Instant::now() + Duration::from_secs(30);
    while board.unacked() > 0 {
        assert!(
            Instant::now() < deadline,
            "the teacher's strokes were never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Reading again, the slow reader is still in the room and converges on the board.
    assert!(
        slow.ping(77).await,
        "the slow reader answers after the spam"
    );
    let (_, server_digest) = server.whiteboard_digest("spam").await.expect("digest");
    let deadline = Instant::now() + Duration::from_secs(20);
    while slow.board.digest() != server_digest {
        assert!(
            Instant::now() < deadline,
            "the slow reader never caught up: {} of {} strokes",
            slow.board.items(DEFAULT_PAGE).len(),
            strokes.len()
        );
        slow.read_for(Duration::from_millis(200), |_| false).await;
    }
    // The spam reached the shedding (the test exercised what it claims), and the whole board
    // went out again once the reader drained.
    assert!(
        metric(
            &server,
            "aula_whiteboard_shed_frames_total{reason=\"presence\"}"
        )
        .await
            > 0.0,
        "presence was shed for the slow reader"
    );
    assert!(
        metric(
            &server,
            "aula_whiteboard_refusals_total{code=\"rate_limited\"}"
        )
        .await
            >= 1_000.0,
        "most of the spam was refused at the door"
    );
    assert_eq!(
        metric(&server, "aula_slow_client_disconnects_total").await,
        0.0
    );
    drop(spammer);
    teacher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_tied_to_its_sender() {
    support::init_test_log();
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (teacher, _t) = support::join(&server, "laser", "teacher", Role::Teacher).await;
    let teacher_board = teacher.whiteboard();
    let (mallory, _m_events, mut mallory_frames) =
        raw_join(&server, "laser", "mallory", Role::Observer).await;
    let send = mallory.binary_sender();
    let laser = r#"{"page":"1","x":10.0,"y":20.0}"#;

    // Each of these is refused with an error frame and relayed to nobody.
    let forged = [
        (
            presence(900, 1, &format!(r#"{{"user":"teacher","laser":{laser}}}"#)),
            "permission_denied",
        ),
        (
            presence(900, 2, r#"{"user":"mallory","laser":"#),
            "invalid_update",
        ),
        (
            Frame::Awareness(awareness::encode(
                &(0..100)
                    .map(|client| AwarenessEntry {
                        client,
                        clock: 1,
                        json: format!(r#"{{"laser":{laser}}}"#),
                    })
                    .collect::<Vec<_>>(),
            ))
            .encode(),
            "too_large",
        ),
    ];
    for (frame, code) in forged {
        send.send(frame).expect("sent");
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(bytes) = mallory_frames.recv().await {
                if let Ok(Frame::Error { code, .. }) = Frame::decode(&bytes) {
                    return code;
                }
            }
            String::new()
        })
        .await
        .expect("an error frame");
        assert_eq!(refused, code);
    }
    // Her own pointer, with no `user`: the server names her.
    send.send(presence(900, 3, &format!(r#"{{"laser":{laser}}}"#)))
        .expect("sent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while teacher_board.lasers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "mallory's own laser never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lasers = teacher_board.lasers();
    assert_eq!(lasers.len(), 1, "{lasers:?}");
    assert_eq!(lasers[0].0, "mallory", "stamped with the sender's identity");

    // Another identity cannot take over her client id.
    let (eve, _e_events, mut eve_frames) = raw_join(&server, "laser", "eve", Role::Observer).await;
    eve.binary_sender()
        .send(presence(900, 9, r#"{"laser":null}"#))
        .expect("sent");
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(bytes) = eve_frames.recv().await {
            if let Ok(Frame::Error { code, .. }) = Frame::decode(&bytes) {
                return code;
            }
        }
        String::new()
    })
    .await
    .expect("an error frame");
    assert_eq!(refused, "permission_denied");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        teacher_board.lasers().len(),
        1,
        "mallory's pointer is still there"
    );
    teacher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sync_requests_is_answered_a_few_times_not_400() {
    support::init_test_log();
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (teacher, _t) = support::join(&server, "sync", "teacher", Role::Teacher).await;
    let board = teacher.whiteboard();
    wait_for_page(&board).await;
    for i in 0..5 {
        board.add_stroke(DEFAULT_PAGE, "#000000", 2.0, &points(i, 500));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while board.unacked() > 0 {
        assert!(Instant::now() < deadline, "strokes not stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (observer, _events, mut frames) = raw_join(&server, "sync", "asker", Role::Observer).await;
    let send = observer.binary_sender();
    let empty = Frame::SyncStep1(StateVector::default()).encode();
    for _ in 0..400 {
        send.send(empty.clone()).expect("sent");
    }
    let mut answers = 0;
    let mut whole_board_bytes = 0;
    let mut rate_limited = 0;
    let mut seen = Vec::new();
    // Everything the server sends until it has been quiet for two seconds.
    while let Ok(Some(bytes)) = tokio::time::timeout(Duration::from_secs(2), frames.recv()).await {
        let decoded = Frame::decode(&bytes);
        seen.push(match &decoded {
            Ok(Frame::SyncStep2(u)) => format!("step2 {}", u.len()),
            Ok(Frame::Error { code, .. }) => format!("error {code}"),
            Ok(other) => format!("{other:.40?}"),
            Err(e) => format!("{e}"),
        });
        match decoded {
            Ok(Frame::SyncStep2(update)) => {
                answers += 1;
                whole_board_bytes = whole_board_bytes.max(update.len());
            }
            Ok(Frame::Error { code, .. }) if code == "rate_limited" => rate_limited += 1,
            _ => {}
        }
    }
    assert!(whole_board_bytes > 10_000, "the board was sent: {seen:?}");
    // Of a burst of 4 within the rate, requests made while an answer still waited are not
    // answered again; the rest merge into one request answered when the rate allows. None is
    // refused: a client that reloads must get its board.
    assert!(
        (1..=5).contains(&answers),
        "400 requests for the whole board got {answers} answers: {seen:?}"
    );
    assert_eq!(rate_limited, 0, "{seen:?}");
    drop(observer);
    teacher.disconnect().await;
    server.shutdown().await;
}
