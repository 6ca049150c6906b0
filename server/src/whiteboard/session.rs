//! A signaling session's link to its room's board: numbers edit frames, applies the whiteboard
//! rate limits (one per kind of frame), and forwards frames to the board task.

use std::sync::Arc;
use std::time::Instant;

use aula_protocol::whiteboard::{Editor, Frame, WhiteboardLimits};
use aula_protocol::Claims;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::board::{BoardCmd, Conn};
use super::gate::{FrameGate, FrameKind, Verdict};
use super::queue::{Class, FrameSender, Pushed};
use super::yjs::{editor_for, next_conn_id};
use crate::metrics::Metrics;
use crate::state::ServerState;

/// The whiteboard side of one signaling session.
pub struct SessionBoard {
    id: u64,
    editor: Editor,
    gate: FrameGate,
    seq: u64,
    board: Option<mpsc::Sender<BoardCmd>>,
    tx: Option<FrameSender>,
    kill: Option<Arc<Notify>>,
    metrics: Option<Arc<Metrics>>,
}

impl SessionBoard {
    /// A link for the holder of `claims`, not yet attached to a board.
    pub fn new(claims: &Claims, limits: &WhiteboardLimits) -> Self {
        Self {
            id: next_conn_id(),
            editor: editor_for(claims),
            gate: FrameGate::new(limits, Instant::now()),
            seq: 0,
            board: None,
            tx: None,
            kill: None,
            metrics: None,
        }
    }

    /// Registers the session with `room`'s board; frames for the client go to `tx`, and `kill`
    /// is notified if the client must be disconnected (it does not read its replies).
    pub async fn attach(
        &mut self,
        server: &ServerState,
        room: &str,
        tx: FrameSender,
        kill: Arc<Notify>,
    ) {
        self.tx = Some(tx.clone());
        self.kill = Some(Arc::clone(&kill));
        self.metrics = Some(Arc::clone(&server.metrics));
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
        let now = Instant::now();
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                if let Some(metrics) = &self.metrics {
                    metrics.whiteboard_refusal("malformed");
                }
                if self.gate.check(FrameKind::Invalid, now) == (Verdict::Refuse { report: true }) {
                    self.reply_error(0, "malformed", &err.to_string());
                }
                return;
            }
        };
        let kind = FrameKind::of(&frame);
        let seq = if frame.is_edit() {
            self.seq += 1;
            self.seq
        } else {
            0
        };
        if let Verdict::Refuse { report } = self.gate.check(kind, now) {
            let (code, message) = match kind {
                FrameKind::Invalid => (
                    "invalid_update",
                    "ack and error frames are sent by the server",
                ),
                FrameKind::Edit => (
                    "rate_limited",
                    "too many whiteboard updates; this one was dropped",
                ),
                FrameKind::Presence => (
                    "rate_limited",
                    "too many presence updates; they are dropped",
                ),
                // Not limited here: the board defers sync requests over their rate.
                FrameKind::Sync => ("rate_limited", "too many sync requests"),
            };
            if let Some(metrics) = &self.metrics {
                metrics.whiteboard_refusal(code);
            }
            if report {
                self.reply_error(seq, code, message);
            }
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
        let Some(tx) = &self.tx else {
            return;
        };
        let frame = Frame::Error {
            seq,
            code: code.into(),
            message: message.into(),
        };
        if tx.push(Class::Reply, Bytes::from(frame.encode())) == Pushed::Overflow {
            if let Some(kill) = &self.kill {
                tracing::info!("whiteboard client does not read its replies; disconnected");
                kill.notify_one();
            }
        }
    }

    /// Unregisters from the board.
    pub async fn detach(&mut self) {
        if let Some(board) = self.board.take() {
            let _ = board.send(BoardCmd::Leave { id: self.id }).await;
        }
    }
}
