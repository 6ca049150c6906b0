//! The server's caps: rooms, participants per room, connections per IP, message rate.

use std::time::Duration;

use aula_core::signal_client::{SignalClient, SignalError};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, ClientMessage, ErrorCode, Role, ServerMessage, PROTOCOL_VERSION};
use aula_server::{Limits, Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};

use crate::support;

async fn server_with(limits: Limits) -> ServerHandle {
    let mut config = ServerConfig::dev(0, 0);
    config.limits = limits;
    Server::start(config).await.expect("server starts")
}

async fn join(
    server: &ServerHandle,
    room: &str,
    identity: &str,
) -> Result<SignalClient, SignalError> {
    let (client, _events) = SignalClient::connect(&server.ws_url()).await?;
    let token = Claims::new(DEV_API_KEY, room, identity, Role::Student, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .unwrap();
    let id = client.next_id();
    client
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: room.into(),
            token,
            auto_subscribe: false,
        })
        .await?;
    Ok(client)
}

fn code(result: Result<SignalClient, SignalError>) -> ErrorCode {
    match result {
        Err(SignalError::Refused { code, .. }) => code,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the join succeeded"),
    }
}

#[tokio::test]
async fn room_and_participant_caps_refuse_with_typed_errors() {
    let _suite = support::shared().await;
    let server = server_with(Limits {
        max_rooms: 1,
        max_participants_per_room: 2,
        ..Limits::default()
    })
    .await;
    let _a = join(&server, "r1", "a").await.unwrap();
    let _b = join(&server, "r1", "b").await.unwrap();
    assert_eq!(code(join(&server, "r1", "c").await), ErrorCode::RoomFull);
    assert_eq!(code(join(&server, "r2", "d").await), ErrorCode::ServerFull);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_per_ip_are_capped() {
    let _suite = support::shared().await;
    let server = server_with(Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    })
    .await;
    let first = SignalClient::connect(&server.ws_url()).await.unwrap();
    let second = SignalClient::connect(&server.ws_url()).await.unwrap();
    let third = SignalClient::connect(&server.ws_url()).await;
    match third {
        Err(SignalError::Connect { reason, .. }) => assert!(reason.contains("429"), "{reason}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a third connection from one address was admitted"),
    }
    drop(first);
    // The slot frees when the connection's session ends.
    let mut admitted = false;
    for _ in 0..50 {
        if SignalClient::connect(&server.ws_url()).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a closed connection frees its slot");
    drop(second);
    server.shutdown().await;
}

#[tokio::test]
async fn message_floods_are_dropped_and_the_connection_survives() {
    let _suite = support::shared().await;
    let server = server_with(Limits {
        max_messages_per_second: 20,
        ..Limits::default()
    })
    .await;
    let (client, mut events) = SignalClient::connect(&server.ws_url()).await.unwrap();
    let token = Claims::new(DEV_API_KEY, "r", "flood", Role::Student, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .unwrap();
    let id = client.next_id();
    client
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: "r".into(),
            token,
            auto_subscribe: false,
        })
        .await
        .unwrap();
    for _ in 0..200 {
        client
            .send(&ClientMessage::Ping {
                id: client.next_id(),
            })
            .unwrap();
    }
    let mut limited = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        if let ServerMessage::Error {
            code: ErrorCode::RateLimited,
            ..
        } = msg
        {
            limited += 1;
        }
    }
    assert!(
        limited >= 100,
        "most of a 200-message burst is refused: {limited}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = client.next_id();
    assert!(
        matches!(
            client.request(ClientMessage::Ping { id }).await,
            Ok(ServerMessage::Pong { .. })
        ),
        "after the burst the connection answers again"
    );
    server.shutdown().await;
}
