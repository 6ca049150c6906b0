//! A participant's queue of outgoing signaling messages.

use std::sync::Arc;

use aula_protocol::ServerMessage;
use tokio::sync::{mpsc, Notify};

use crate::metrics::Metrics;

/// Messages queued for one client before it counts as too slow and is disconnected.
pub const OUTBOX_DEPTH: usize = 1024;

/// The sending half of a participant's signaling queue. Cloneable; never blocks.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<ServerMessage>,
    overflowed: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// A new queue; the receiver feeds the WebSocket writer.
    /// Error replies are counted in `metrics` as they are queued.
    pub fn new(metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<ServerMessage>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(OUTBOX_DEPTH);
        let overflowed = Arc::new(Notify::new());
        (
            Self {
                tx,
                overflowed: Arc::clone(&overflowed),
                metrics,
            },
            rx,
            overflowed,
        )
    }

    /// Queues `msg`. A client that lets its queue fill up is disconnected rather than being sent
    /// an incomplete picture of the room.
    pub fn send(&self, msg: ServerMessage) {
        if let ServerMessage::Error { code, .. } = &msg {
            self.metrics.error(*code);
        }
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.overflowed.notify_one(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
