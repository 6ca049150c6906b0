//! A participant's queue of outgoing signaling messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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
    /// Messages held back while the participant joins (see [`Outbox::hold`]).
    held: Arc<Mutex<Option<VecDeque<ServerMessage>>>>,
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
                held: Arc::default(),
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
        let mut held = self.lock_held();
        match held.as_mut() {
            Some(queue) if queue.len() >= OUTBOX_DEPTH => self.overflowed.notify_one(),
            Some(queue) => queue.push_back(msg),
            None => self.push(msg),
        }
    }

    /// Holds back everything sent from now on until [`Outbox::release`]: the room starts sending
    /// a joining participant events (and its first subscriber offer) before the server has
    /// queued the `joined` reply, which must come first.
    pub fn hold(&self) {
        self.lock_held().get_or_insert_with(VecDeque::new);
    }

    /// Queues `first` (if any), then everything held back, and stops holding.
    pub fn release(&self, first: Option<ServerMessage>) {
        // Under the lock, so a concurrent `send` queues after the held messages, not among them.
        let mut held = self.lock_held();
        if let Some(first) = first {
            self.push(first);
        }
        for msg in held.take().into_iter().flatten() {
            self.push(msg);
        }
    }

    fn push(&self, msg: ServerMessage) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.overflowed.notify_one(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, Option<VecDeque<ServerMessage>>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(id: u64) -> ServerMessage {
        ServerMessage::Pong { request_id: id }
    }

    #[test]
    fn held_messages_follow_the_release_message_in_order() {
        let (outbox, mut rx, _) = Outbox::new(Arc::new(Metrics::default()));
        outbox.send(ping(1));
        outbox.hold();
        outbox.send(ping(3));
        outbox.send(ping(4));
        assert_eq!(rx.try_recv().ok(), Some(ping(1)));
        assert!(rx.try_recv().is_err(), "held messages wait");
        outbox.release(Some(ping(2)));
        outbox.send(ping(5));
        let order: Vec<ServerMessage> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(order, vec![ping(2), ping(3), ping(4), ping(5)]);
    }
}
