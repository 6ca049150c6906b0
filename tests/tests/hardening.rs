//! The server under abuse that needs no whiteboard: half-open HTTP connections, floods before
//! `join`, tokens not valid yet or valid too long, and who may read `/metrics`.

use crate::support;

use std::time::{Duration, Instant};

use aula_core::signal_client::{SignalClient, SignalError};
use aula_protocol::token::{unix_now, CLOCK_SKEW_LEEWAY_SECS};
use aula_protocol::{Claims, ClientMessage, ErrorCode, Role, ServerMessage, PROTOCOL_VERSION};
use aula_server::{Limits, Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A GET with extra header lines against `addr`: the status line and the body.
async fn get(addr: std::net::SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("the server accepts");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: aula\r\n{headers}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Whether the server has closed `stream` (EOF or reset), waiting up to `limit`.
async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (e.g. 408) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

async fn join_with(server: &ServerHandle, token: String) -> Result<SignalClient, SignalError> {
    let (client, _events) = SignalClient::connect(&server.ws_url()).await?;
    let id = client.next_id();
    client
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: "r".into(),
            token,
            auto_subscribe: false,
        })
        .await?;
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_do_not_starve_health_checks_or_joins() {
    support::init_test_log();
    let _suite = support::exclusive().await;
    let cap = 16;
    let server = Server::start(ServerConfig {
        limits: Limits {
            max_pending_connections: cap,
            handshake_timeout_secs: 2,
            ..Limits::default()
        },
        ..ServerConfig::dev(0, 0)
    })
    .await
    .expect("server starts");
    let addr = server.http_addr();
    // Ten times the cap: silent connections, and requests cut off inside their headers.
    let mut attackers = Vec::new();
    for i in 0..160 {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        if i % 2 == 1 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: aula\r\nX-Slow: ")
                .await
                .expect("partial request");
        }
        attackers.push(stream);
    }
    for _ in 0..10 {
        let started = Instant::now();
        let (status, body) = get(addr, "/healthz", "").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "ok");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/healthz took {:?}",
            started.elapsed()
        );
    }
    let (room, _events) = support::join(&server, "r", "student", Role::Student).await;
    // Every attacking connection is closed: the older ones at once to make room, the rest
    // once they miss the header deadline.
    for (i, stream) in attackers.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, Duration::from_secs(5)).await,
            "attacking connection {i} is still open"
        );
    }
    let (_, metrics) = get(addr, "/metrics", "").await;
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aula_http_closed_connections_total{reason=\"evicted\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        evicted >= (160 - cap) as f64,
        "connections beyond the cap were evicted: {evicted}\n{metrics}"
    );
    // The session that upgraded is not pending and still works.
    assert!(!room.local_participant().id.0.is_empty());
    let (status, _) = get(addr, "/healthz", "").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    room.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_before_join_gets_one_reply_per_run_and_is_closed() {
    support::init_test_log();
    let _suite = support::exclusive().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/rtc", server.ws_url()))
        .await
        .expect("upgrades");
    let ping = serde_json::to_string(&ClientMessage::Ping { id: 1 }).unwrap();
    let mut sent = 0;
    for _ in 0..5_000 {
        if ws.send(Message::Text(ping.clone().into())).await.is_err() {
            break;
        }
        sent += 1;
    }
    let mut replies = 0;
    let mut rate_limited = 0;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(text) => {
                    replies += 1;
                    if let Ok(ServerMessage::Error {
                        code: ErrorCode::RateLimited,
                        ..
                    }) = serde_json::from_str(&text)
                    {
                        rate_limited += 1;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the flooding connection was closed");
    assert!(sent > 100, "the flood was sent: {sent}");
    assert!(
        replies <= 10,
        "{sent} messages before join earned {replies} replies"
    );
    // The server closes a flooding socket with unread data in it, which may reset the
    // connection before every reply is read: at most one `rate_limited` arrives.
    assert!(
        rate_limited <= 1,
        "one rate_limited for the run: {rate_limited}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_not_valid_yet_or_valid_too_long_are_refused() {
    support::init_test_log();
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig {
        max_token_lifetime_secs: Some(3_600),
        ..ServerConfig::dev(0, 0)
    })
    .await
    .expect("server starts");
    let now = unix_now();
    let sign = |claims: Claims| claims.sign(DEV_API_SECRET).expect("valid claims");
    let claims = |identity: &str, iat: u64, ttl: u64| {
        Claims::new(DEV_API_KEY, "r", identity, Role::Student, iat, ttl)
    };
    let refused = |result: Result<SignalClient, SignalError>| match result {
        Err(SignalError::Refused { code, message }) => (code, message),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the join succeeded"),
    };

    let mut later = claims("a", now, 1_800);
    later.nbf = Some(now + 600);
    let (code, message) = refused(join_with(&server, sign(later)).await);
    assert_eq!(code, ErrorCode::InvalidToken);
    assert!(message.contains("not valid yet"), "{message}");

    let future = claims("b", now + 600, 1_800);
    assert_eq!(
        refused(join_with(&server, sign(future)).await).0,
        ErrorCode::InvalidToken
    );

    let long = claims("c", now, 7_200);
    let (code, message) = refused(join_with(&server, sign(long)).await);
    assert_eq!(code, ErrorCode::InvalidToken);
    assert!(message.contains("3600"), "{message}");

    // A little clock skew is tolerated, and a fitting token joins.
    let mut skewed = claims("d", now + CLOCK_SKEW_LEEWAY_SECS / 2, 1_800);
    skewed.nbf = Some(now + CLOCK_SKEW_LEEWAY_SECS / 2);
    let _d = join_with(&server, sign(skewed))
        .await
        .expect("within the leeway");
    let _e = join_with(&server, sign(claims("e", now, 1_800)))
        .await
        .expect("a plain token joins");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_bearer_token_and_can_listen_apart() {
    support::init_test_log();
    let _suite = support::shared().await;
    let token = "metrics-0123456789abcdef";
    let server = Server::start(ServerConfig {
        metrics_token: Some(token.into()),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::dev(0, 0)
    })
    .await
    .expect("server starts");
    let metrics_addr = server.metrics_addr().expect("a metrics listener");
    assert_ne!(metrics_addr, server.http_addr());
    let (status, _) = get(server.http_addr(), "/metrics", "").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found", "not on the public port");
    let (status, _) = get(metrics_addr, "/metrics", "").await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let (status, _) = get(metrics_addr, "/metrics", "Authorization: Bearer wrong\r\n").await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let (status, body) = get(
        metrics_addr,
        "/metrics",
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("aula_rooms"), "{body}");
    server.shutdown().await;

    // A token alone guards /metrics on the public port.
    let server = Server::start(ServerConfig {
        metrics_token: Some(token.into()),
        ..ServerConfig::dev(0, 0)
    })
    .await
    .expect("server starts");
    assert!(server.metrics_addr().is_none());
    let (status, _) = get(server.http_addr(), "/metrics", "").await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let (status, _) = get(
        server.http_addr(),
        "/metrics",
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.shutdown().await;
}
