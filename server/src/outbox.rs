//! A participant's queue of outgoing signaling messages, bounded in messages and in bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aula_protocol::ServerMessage;
use tokio::sync::{mpsc, Notify};

use crate::metrics::Metrics;

/// Messages queued for one client before it counts as too slow and is disconnected.
pub const OUTBOX_DEPTH: usize = 1024;
/// Bytes (as JSON on the wire) queued for one client before it counts as too slow and is
/// disconnected. One message is always accepted into an empty queue, whatever its size.
pub const OUTBOX_MAX_BYTES: usize = 1024 * 1024;

/// The sending half of a participant's signaling queue. Cloneable; never blocks.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<(ServerMessage, usize)>,
    queued_bytes: Arc<AtomicUsize>,
    overflowed: Arc<Notify>,
    metrics: Arc<Metrics>,
}

/// The receiving half: what the WebSocket writer sends.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<(ServerMessage, usize)>,
    queued_bytes: Arc<AtomicUsize>,
}

impl OutboxReceiver {
    /// The next message, or `None` once every [`Outbox`] is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        let (msg, len) = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        Some(msg)
    }
}

impl Outbox {
    /// A new queue; the receiver feeds the WebSocket writer, and the notify fires when the
    /// client let the queue overflow. Error replies are counted in `metrics` as they are queued.
    pub fn new(metrics: Arc<Metrics>) -> (Self, OutboxReceiver, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(OUTBOX_DEPTH);
        let overflowed = Arc::new(Notify::new());
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let outbox = Self {
            tx,
            queued_bytes: Arc::clone(&queued_bytes),
            overflowed: Arc::clone(&overflowed),
            metrics,
        };
        (outbox, OutboxReceiver { rx, queued_bytes }, overflowed)
    }

    /// Queues `msg`. A client that lets its queue fill up (in messages or bytes) is disconnected
    /// rather than being sent an incomplete picture of the room.
    pub fn send(&self, msg: ServerMessage) {
        if let ServerMessage::Error { code, .. } = &msg {
            self.metrics.error(*code);
        }
        let len = json_len(&msg);
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > OUTBOX_MAX_BYTES {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.overflow();
            return;
        }
        match self.tx.try_send((msg, len)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.overflow();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            }
        }
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    fn overflow(&self) {
        self.metrics.slow_client_disconnects.inc();
        self.overflowed.notify_one();
    }
}

/// The length of `msg` as JSON, without building the text.
fn json_len(msg: &ServerMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing these plain data types cannot fail (see `ServerMessage::to_json`).
    let _ = serde_json::to_writer(&mut count, msg);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use aula_protocol::ErrorCode;

    fn big(len: usize) -> ServerMessage {
        ServerMessage::error(None, ErrorCode::Internal, "x".repeat(len))
    }

    #[test]
    fn json_len_is_the_wire_length() {
        let msg = big(100);
        assert_eq!(json_len(&msg), msg.to_json().len());
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_and_drains() {
        let (outbox, mut rx, overflowed) = Outbox::new(Arc::new(Metrics::default()));
        // Four 300 KB messages do not fit in 1 MiB: the fourth overflows.
        for _ in 0..3 {
            outbox.send(big(300_000));
        }
        assert!(outbox.queued_bytes() > 900_000);
        outbox.send(big(300_000));
        tokio::time::timeout(std::time::Duration::from_secs(1), overflowed.notified())
            .await
            .expect("the fourth overflows the byte bound");
        let mut received = 0;
        while let Ok(Some(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), rx.recv()).await
        {
            received += 1;
        }
        assert_eq!(received, 3, "the overflowing message is not queued");
        assert_eq!(
            outbox.queued_bytes(),
            0,
            "what was written is no longer counted"
        );
    }

    #[tokio::test]
    async fn one_message_larger_than_the_bound_passes_an_empty_queue() {
        let (outbox, mut rx, _overflowed) = Outbox::new(Arc::new(Metrics::default()));
        outbox.send(big(OUTBOX_MAX_BYTES + 10));
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_messages() {
        let (outbox, _rx, overflowed) = Outbox::new(Arc::new(Metrics::default()));
        for _ in 0..OUTBOX_DEPTH {
            outbox.send(ServerMessage::Pong { request_id: 1 });
        }
        outbox.send(ServerMessage::Pong { request_id: 1 });
        tokio::time::timeout(std::time::Duration::from_secs(1), overflowed.notified())
            .await
            .expect("one message too many overflows");
    }
}
