//! A connection's queue of outgoing whiteboard frames, bounded in bytes per class of frame, so
//! that a slow reader loses presence first, then document updates (which a resync replaces),
//! and is never disconnected because of what other members send.
//!
//! Frames are [`Bytes`]: a frame broadcast to a room is one allocation shared by every queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Presence frames are queued only while the whole queue holds less than this: as soon as a
/// reader falls behind, it stops getting pointer moves.
pub const PRESENCE_HEADROOM: usize = 64 * 1024;
/// Document frames are shed once this much document content waits (one frame may overshoot,
/// so a board larger than this still reaches a reader with an empty queue).
pub const DOCUMENT_BUDGET: usize = 1024 * 1024;
/// Replies to the reader's own frames (acks, errors) waiting at most; beyond it the reader is
/// disconnected: it sends edits and does not read the answers.
pub const REPLY_BUDGET: usize = 256 * 1024;

/// What a frame is, for the queue's shedding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Someone's presence (laser pointer): shed first.
    Presence,
    /// Document content (updates, presence removals): shed once [`DOCUMENT_BUDGET`] waits; the
    /// board then sends the reader what it missed when its queue has drained.
    Document,
    /// The answer to the reader's own sync step 1 (document content, counted apart so that a
    /// repeated request is answered once while its answer still waits).
    SyncAnswer,
    /// An ack or error for the reader's own frames.
    Reply,
}

/// What became of a pushed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Not queued: the reader is behind (presence and document frames).
    Shed,
    /// Not queued: the reader's replies overflowed; disconnect it.
    Overflow,
    /// The reader is gone.
    Closed,
}

#[derive(Default)]
struct Counters {
    total: AtomicUsize,
    document: AtomicUsize,
    replies: AtomicUsize,
    sync_answers: AtomicUsize,
}

impl Counters {
    fn counters_for(&self, class: Class) -> [&AtomicUsize; 2] {
        match class {
            Class::Presence => [&self.total, &self.total],
            Class::Document | Class::SyncAnswer => [&self.total, &self.document],
            Class::Reply => [&self.total, &self.replies],
        }
    }

    fn add(&self, class: Class, len: usize) {
        let [total, own] = self.counters_for(class);
        total.fetch_add(len, Ordering::AcqRel);
        if !std::ptr::eq(total, own) {
            own.fetch_add(len, Ordering::AcqRel);
        }
        if class == Class::SyncAnswer {
            self.sync_answers.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn sub(&self, class: Class, len: usize) {
        let [total, own] = self.counters_for(class);
        total.fetch_sub(len, Ordering::AcqRel);
        if !std::ptr::eq(total, own) {
            own.fetch_sub(len, Ordering::AcqRel);
        }
        if class == Class::SyncAnswer {
            self.sync_answers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The sending half; cloneable, never blocks.
#[derive(Clone)]
pub struct FrameSender {
    tx: mpsc::UnboundedSender<(Class, Bytes)>,
    counters: Arc<Counters>,
}

/// The receiving half: what the connection's writer sends.
pub struct FrameReceiver {
    rx: mpsc::UnboundedReceiver<(Class, Bytes)>,
    counters: Arc<Counters>,
}

/// A new, empty queue.
pub fn frame_queue() -> (FrameSender, FrameReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters::default());
    (
        FrameSender {
            tx,
            counters: Arc::clone(&counters),
        },
        FrameReceiver { rx, counters },
    )
}

impl FrameSender {
    /// Queues `frame` unless its class is over its bound.
    pub fn push(&self, class: Class, frame: Bytes) -> Pushed {
        let c = &self.counters;
        let len = frame.len();
        let admitted = match class {
            Class::Presence => c.total.load(Ordering::Acquire) + len <= PRESENCE_HEADROOM,
            Class::Document | Class::SyncAnswer => {
                c.document.load(Ordering::Acquire) < DOCUMENT_BUDGET
            }
            Class::Reply => c.replies.load(Ordering::Acquire) + len <= REPLY_BUDGET,
        };
        if !admitted {
            return if class == Class::Reply {
                Pushed::Overflow
            } else {
                Pushed::Shed
            };
        }
        c.add(class, len);
        if self.tx.send((class, frame)).is_err() {
            c.sub(class, len);
            return Pushed::Closed;
        }
        Pushed::Queued
    }

    /// Bytes waiting, all classes together.
    pub fn queued_bytes(&self) -> usize {
        self.counters.total.load(Ordering::Acquire)
    }

    /// Bytes of document content waiting.
    pub fn queued_document_bytes(&self) -> usize {
        self.counters.document.load(Ordering::Acquire)
    }

    /// Answers to sync step 1 still waiting.
    pub fn queued_sync_answers(&self) -> usize {
        self.counters.sync_answers.load(Ordering::Acquire)
    }

    /// Whether the reader is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl FrameReceiver {
    /// The next frame, or `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let (class, frame) = self.rx.recv().await?;
        self.counters.sub(class, frame.len());
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[test]
    fn presence_is_shed_as_soon_as_anything_backs_up() {
        let (tx, _rx) = frame_queue();
        let mut queued = 0;
        while tx.push(Class::Presence, frame(4096)) == Pushed::Queued {
            queued += 1;
        }
        assert_eq!(queued, PRESENCE_HEADROOM / 4096);
        // Document frames still pass: presence never crowds them out.
        assert_eq!(tx.push(Class::Document, frame(4096)), Pushed::Queued);
        assert_eq!(tx.push(Class::Reply, frame(16)), Pushed::Queued);
    }

    #[test]
    fn document_frames_are_shed_at_the_budget_with_one_overshoot() {
        let (tx, _rx) = frame_queue();
        assert_eq!(
            tx.push(Class::SyncAnswer, frame(3 * DOCUMENT_BUDGET)),
            Pushed::Queued,
            "a board larger than the budget still reaches an empty queue"
        );
        assert_eq!(tx.push(Class::Document, frame(10)), Pushed::Shed);
        assert_eq!(tx.push(Class::Presence, frame(10)), Pushed::Shed);
        assert_eq!(tx.push(Class::Reply, frame(10)), Pushed::Queued);
        assert_eq!(tx.queued_sync_answers(), 1);
    }

    #[test]
    fn replies_overflow_at_their_own_budget() {
        let (tx, _rx) = frame_queue();
        for _ in 0..REPLY_BUDGET / 1024 {
            assert_eq!(tx.push(Class::Reply, frame(1024)), Pushed::Queued);
        }
        assert_eq!(tx.push(Class::Reply, frame(1024)), Pushed::Overflow);
    }

    #[tokio::test]
    async fn reading_frees_the_budget() {
        let (tx, mut rx) = frame_queue();
        tx.push(Class::SyncAnswer, frame(2 * DOCUMENT_BUDGET));
        tx.push(Class::Presence, frame(10));
        assert_eq!(tx.push(Class::Document, frame(10)), Pushed::Shed);
        assert_eq!(rx.recv().await.map(|f| f.len()), Some(2 * DOCUMENT_BUDGET));
        assert_eq!(tx.queued_sync_answers(), 0);
        assert_eq!(tx.queued_document_bytes(), 0);
        assert_eq!(
            tx.queued_bytes(),
            0,
            "the presence frame was shed, not queued"
        );
        assert_eq!(tx.push(Class::Document, frame(10)), Pushed::Queued);
        assert_eq!(tx.push(Class::Presence, frame(10)), Pushed::Queued);
    }

    #[test]
    fn a_gone_reader_is_reported() {
        let (tx, rx) = frame_queue();
        drop(rx);
        assert_eq!(tx.push(Class::Document, frame(10)), Pushed::Closed);
        assert!(tx.is_closed());
        assert_eq!(tx.queued_bytes(), 0);
    }
}
