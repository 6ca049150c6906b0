//! `GET /yjs/{room}?token=...`: the standard y-websocket protocol for a room's board, so Yjs
//! browser tools can join it. The token is checked as for `/rtc`; the server sends sync step 1
//! on connect and answers y-protocols sync and awareness messages. Aula's ack and error frames
//! are not sent here (y-websocket clients do not know them); a refused update is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aula_protocol::whiteboard::{Editor, Frame};
use aula_protocol::Claims;
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::Notify;

use super::board::{BoardCmd, Conn};
use super::gate::{FrameGate, FrameKind, Verdict};
use super::queue::frame_queue;
use crate::state::ServerState;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id for a board.
pub fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// The editor a token describes.
pub fn editor_for(claims: &Claims) -> Editor {
    Editor {
        identity: claims.sub.clone(),
        can_write: claims.grants.whiteboard_write,
        is_admin: claims.grants.room_admin,
    }
}

/// Serves one y-websocket connection until it closes.
pub async fn serve(socket: WebSocket, server: Arc<ServerState>, claims: Claims) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = frame_queue();
    let kill = Arc::new(Notify::new());
    let id = next_conn_id();
    let mut joined = None;
    // A board whose last connection just left may be unloading: then load it again.
    for _ in 0..3 {
        let Ok(board) = server.boards.get(&claims.room).await else {
            tracing::error!(room = %claims.room, "whiteboard unavailable");
            return;
        };
        let conn = Conn {
            tx: tx.clone(),
            kill: Arc::clone(&kill),
            aula: false,
        };
        if board.send(BoardCmd::Join { id, conn }).await.is_ok() {
            joined = Some(board);
            break;
        }
    }
    drop(tx);
    let Some(board) = joined else {
        return;
    };
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if sink.send(Message::Binary(bytes)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let editor = editor_for(&claims);
    let mut gate = FrameGate::new(server.boards.limits(), std::time::Instant::now());
    let mut seq = 0;
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let bytes = match incoming {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(frame) = Frame::decode(&bytes) else {
                    tracing::debug!("malformed y-websocket frame ignored");
                    continue;
                };
                if frame.is_edit() {
                    seq += 1;
                }
                let kind = FrameKind::of(&frame);
                if let Verdict::Refuse { report } = gate.check(kind, std::time::Instant::now()) {
                    // y-websocket has no error frames: the refusal is only logged and counted.
                    let code = if kind == FrameKind::Invalid { "invalid_update" } else { "rate_limited" };
                    server.metrics.whiteboard_refusal(code);
                    if report && kind != FrameKind::Edit {
                        tracing::info!(room = %claims.room, ?kind, code, "y-websocket frames dropped");
                    } else {
                        tracing::debug!(room = %claims.room, ?kind, code, "y-websocket frame dropped");
                    }
                    continue;
                }
                let cmd = BoardCmd::Frame { id, editor: editor.clone(), seq, frame };
                if board.send(cmd).await.is_err() {
                    break;
                }
            }
            _ = kill.notified() => break,
            _ = shutdown.changed() => break,
        }
    }
    let _ = board.send(BoardCmd::Leave { id }).await;
    writer.abort();
}
