//! A signaling session's link to its room's board: numbers edit frames, applies the whiteboard
//! rate limit, and forwards frames to the board task.

use std::sync::Arc;
use std::time::Instant;

use aula_protocol::whiteboard::{Editor, Frame, WhiteboardLimits};
use aula_protocol::Claims;
use tokio::sync::{mpsc, Notify};

use super::board::{BoardCmd, Conn, CONN_QUEUE};
use super::yjs::{editor_for, next_conn_id};
use crate::limits::MessageRate;
use crate::state::ServerState;

/// Capacity of a session's queue of outgoing whiteboard frames.
pub fn board_queue() -> usize {
    CONN_QUEUE
}

/// The whiteboard side of one signaling session.
pub struct SessionBoard {
    id: u64,
    editor: Editor,
    rate: MessageRate,
    seq: u64,
    board: Option<mpsc::Sender<BoardCmd>>,
    tx: Option<mpsc::Sender<Vec<u8>>>,
}

impl SessionBoard {
    /// A link for the holder of `claims`, not yet attached to a board.
    pub fn new(claims: &Claims, limits: &WhiteboardLimits) -> Self {
        let per_second = limits.max_updates_per_second.max(1);
        Self {
            id: next_conn_id(),
            editor: editor_for(claims),
            rate: MessageRate::new(per_second, per_second * 2, Instant::now()),
            seq: 0,
            board: None,
            tx: None,
        }
    }

    /// Registers the session with `room`'s board; frames for the client go to `tx`, and `kill`
    /// is notified if the client falls too far behind.
    pub async fn attach(
        &mut self,
        server: &ServerState,
        room: &str,
        tx: mpsc::Sender<Vec<u8>>,
        kill: Arc<Notify>,
    ) {
        self.tx = Some(tx.clone());
        // A board whose last connection just left may be unloading: then load it again.
        for _ in 0..3 {
            let board = match server.boards.get(room).await {
                Ok(board) => board,
                Err(err) => {
                    tracing::error!(room, error = %err, "whiteboard unavailable");
                    return;
                }
            };
            let conn = Conn {
                tx: tx.clone(),
                kill: Arc::clone(&kill),
                aula: true,
            };
            if board
                .send(BoardCmd::Join { id: self.id, conn })
                .await
                .is_ok()
            {
                self.board = Some(board);
                return;
            }
        }
    }

    /// Whether the session is attached to its room's board.
    pub fn is_attached(&self) -> bool {
        self.board.is_some()
    }

    /// Changes what the participant may do on the board (a teacher changed its permissions,
    /// or made it co-teacher).
    pub fn set_access(&mut self, write: bool, admin: bool) {
        self.editor.can_write = write;
        self.editor.is_admin = admin;
    }

    /// Answers a frame from a client that may not use the board now (it waits in the lobby).
    pub fn refuse(&self) {
        self.reply_error(
            0,
            "permission_denied",
            "the whiteboard opens once you are admitted",
        );
    }

    /// Handles one binary frame from the client.
    pub async fn on_frame(&mut self, bytes: &[u8]) {
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                self.reply_error(0, "malformed", &err.to_string());
                return;
            }
        };
        let seq = if frame.is_edit() {
            self.seq += 1;
            self.seq
        } else {
            0
        };
        if frame.is_edit() && !self.rate.allow(Instant::now()) {
            self.reply_error(
                seq,
                "rate_limited",
                "too many whiteboard updates; this one was dropped",
            );
            return;
        }
        let Some(board) = &self.board else {
            self.reply_error(seq, "internal", "the whiteboard is unavailable");
            return;
        };
        let cmd = BoardCmd::Frame {
            id: self.id,
            editor: self.editor.clone(),
            seq,
            frame,
        };
        if board.send(cmd).await.is_err() {
            self.reply_error(seq, "internal", "the whiteboard is unavailable");
        }
    }

    fn reply_error(&self, seq: u64, code: &str, message: &str) {
        if let Some(tx) = &self.tx {
            let frame = Frame::Error {
                seq,
                code: code.into(),
                message: message.into(),
            };
            let _ = tx.try_send(frame.encode());
        }
    }

    /// Unregisters from the board.
    pub async fn detach(&mut self) {
        if let Some(board) = self.board.take() {
            let _ = board.send(BoardCmd::Leave { id: self.id }).await;
        }
    }
}
