//! One room's board: the authoritative yrs document, a scratch replica to validate on, and the
//! connections to serve. Runs as one task; sessions talk to it through [`BoardCmd`]s.
//!
//! Each connection's outgoing frames go through a byte-bounded [`FrameSender`]: a reader that
//! falls behind loses presence first, then document updates; once its queue has drained, the
//! board sends it everything it missed in one sync step 2 (and the presence it missed), so a
//! slow reader is brought up to date instead of being disconnected. A sync step 1 is answered
//! once while its answer still waits, and the whole board (the answer to an empty state vector)
//! is encoded once per change and shared by every connection that asks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_protocol::whiteboard::awareness::{self, AwarenessEntry};
use aula_protocol::whiteboard::{
    Board, Editor, Frame, Refusal, Scratch, WhiteboardLimits, DEFAULT_PAGE,
};
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::presence::PresenceTable;
use super::queue::{Class, FrameSender, Pushed, PRESENCE_HEADROOM};
use super::store::{Store, StoreError};
use crate::limits::{burst_for, MessageRate};
use crate::metrics::Metrics;

/// Compact the stored updates into a snapshot after this many.
const COMPACT_EVERY: u64 = 1000;
/// Most commands handled (and updates committed) in one batch.
const MAX_BATCH: usize = 256;
/// How often a board with readers behind checks whether their queues have drained.
const RESYNC_CHECK_EVERY: Duration = Duration::from_millis(50);
/// Presence removals remembered per reader while its presence is being shed.
const MAX_MISSED_REMOVALS: usize = 256;

/// A connection served by a board.
pub struct Conn {
    /// Binary frames to the client.
    pub tx: FrameSender,
    /// Notified when the client must be disconnected (it let its replies pile up).
    pub kill: Arc<Notify>,
    /// Whether the client speaks Aula's ack and error frames (y-websocket clients do not).
    pub aula: bool,
}

/// A served connection and how far behind it is.
struct Reader {
    conn: Conn,
    /// Sync step 1 requests answered, limited to `max_syncs_per_second`.
    syncs: MessageRate,
    /// A sync request over the rate, answered once the rate allows (requests meanwhile merge
    /// into it).
    deferred_sync: Option<StateVector>,
    /// Set while document frames are shed: the client holds at least this state (plus what it
    /// sent itself); the resync sends the diff from it.
    behind: Option<StateVector>,
    /// The state vector of the last sync step 1 answered.
    answered: Option<StateVector>,
    /// Whether presence frames were shed since the last presence resync.
    presence_lost: bool,
    /// Presence removals shed meanwhile, resent with the presence resync.
    missed_removals: Vec<AwarenessEntry>,
}

/// What a session asks of a board.
pub enum BoardCmd {
    /// A connection starts being served; the board sends it sync step 1.
    Join {
        /// Connection id, unique per server.
        id: u64,
        /// How to reach it.
        conn: Conn,
    },
    /// A connection is gone.
    Leave {
        /// Connection id.
        id: u64,
    },
    /// A frame from a connection. `seq` numbers edit frames (0 for others).
    Frame {
        /// Connection id.
        id: u64,
        /// Who sent it.
        editor: Editor,
        /// Edit frame number on that connection.
        seq: u64,
        /// The frame.
        frame: Frame,
    },
    /// Reports the board's item count and digest (for tests and tools).
    Inspect {
        /// Where to send `(items, digest)`.
        reply: tokio::sync::oneshot::Sender<(usize, String)>,
    },
}

/// The open boards' command queues, by room.
pub type Registry = Arc<tokio::sync::Mutex<HashMap<String, mpsc::Sender<BoardCmd>>>>;

struct BoardActor {
    room: String,
    registry: Registry,
    store: Arc<Store>,
    limits: WhiteboardLimits,
    metrics: Arc<Metrics>,
    board: Board,
    scratch: Scratch,
    conns: HashMap<u64, Reader>,
    /// Presence (awareness) states, tied to their connections: relayed, never stored.
    presence: PresenceTable,
    /// The whole board as an encoded sync step 2, while the board is unchanged.
    full_frame: Option<Bytes>,
    last_seq: u64,
    compacted_seq: u64,
}

/// Loads `room`'s board and starts its task.
pub async fn spawn(
    registry: Registry,
    room: String,
    store: Arc<Store>,
    limits: WhiteboardLimits,
    metrics: Arc<Metrics>,
) -> Result<mpsc::Sender<BoardCmd>, StoreError> {
    let loader_store = Arc::clone(&store);
    let loader_room = room.clone();
    let stored = tokio::task::spawn_blocking(move || loader_store.load(&loader_room))
        .await
        .map_err(|err| StoreError::Other(err.to_string()))??;
    let board = Board::new(Doc::new());
    {
        let mut txn = board.doc().transact_mut();
        for bytes in std::iter::once(&stored.snapshot)
            .filter(|s| !s.is_empty())
            .chain(stored.updates.iter())
        {
            match Update::decode_v1(bytes) {
                Ok(update) => {
                    if let Err(err) = txn.apply_update(update) {
                        tracing::error!(room, error = %err, "stored whiteboard update does not apply");
                    }
                }
                Err(err) => {
                    tracing::error!(room, error = %err, "stored whiteboard update unreadable")
                }
            }
        }
    }
    let mut last_seq = stored.last_seq;
    // A new board gets its first page from the server, so clients never race to create it.
    let has_page = {
        let txn = board.doc().transact();
        !board.pages(&txn).is_empty()
    };
    if !has_page {
        let update = {
            let mut txn = board.doc().transact_mut();
            board.ensure_page(&mut txn, DEFAULT_PAGE);
            txn.encode_update_v1()
        };
        let seed_store = Arc::clone(&store);
        let seed_room = room.clone();
        let seq = last_seq + 1;
        tokio::task::spawn_blocking(move || seed_store.append(&seed_room, seq, &[update]))
            .await
            .map_err(|err| StoreError::Other(err.to_string()))??;
        last_seq = seq;
    }
    let scratch = Scratch::rebuild(&full_state(&board))
        .map_err(|err| StoreError::Other(format!("board {room}: {err}")))?;
    let (tx, rx) = mpsc::channel(1024);
    let actor = BoardActor {
        room,
        registry,
        store,
        limits,
        metrics,
        board,
        scratch,
        conns: HashMap::new(),
        presence: PresenceTable::default(),
        full_frame: None,
        last_seq,
        compacted_seq: stored.last_seq.saturating_sub(stored.updates.len() as u64),
    };
    tokio::spawn(actor.run(rx));
    Ok(tx)
}

/// A frame's wire bytes, shareable between queues.
fn frame_bytes(frame: &Frame) -> Bytes {
    Bytes::from(frame.encode())
}

/// The least of two state vectors, client by client (a client missing from one counts as 0).
fn sv_min(a: &StateVector, b: &StateVector) -> StateVector {
    a.iter()
        .filter_map(|(client, clock)| {
            let least = (*clock).min(b.get(client));
            (least > 0).then_some((*client, least))
        })
        .collect()
}

/// Whether an answer to a sync step 1 with `answered` also answers one with `asked`: the
/// client now holds at least what it held then.
fn sv_covers(answered: &StateVector, asked: &StateVector) -> bool {
    answered
        .iter()
        .all(|(client, clock)| *clock <= asked.get(client))
}

fn full_state(board: &Board) -> Vec<u8> {
    board
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// An accepted edit waiting for its batch to be stored.
struct Accepted {
    conn: u64,
    seq: u64,
    update: Vec<u8>,
}

impl BoardActor {
    async fn run(mut self, mut rx: mpsc::Receiver<BoardCmd>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut resync_check = tokio::time::interval(RESYNC_CHECK_EVERY);
        resync_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let lagging = self.lagging();
            tokio::select! {
                received = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    self.handle_batch(&mut batch).await;
                }
                _ = resync_check.tick(), if lagging => {}
            }
            self.resync_drained();
            // Nobody left: free the memory; the next `Boards::get` loads the board again. Under
            // the registry's lock no new sender can appear, and the registry's own is the
            // only one left, so no command can be lost.
            if self.conns.is_empty() && rx.is_empty() {
                let mut open = self.registry.lock().await;
                if rx.is_empty() && rx.sender_strong_count() == 1 {
                    open.remove(&self.room);
                    tracing::debug!(room = %self.room, "whiteboard unloaded: nobody connected");
                    break;
                }
            }
        }
    }

    async fn handle_batch(&mut self, batch: &mut Vec<BoardCmd>) {
        let mut accepted = Vec::new();
        for cmd in batch.drain(..) {
            // Whoever asks for the state must get the batch's accepted edits too (a client
            // reloading after a refusal may have had earlier edits accepted in this batch,
            // and broadcasts skip their sender).
            let reads_state = matches!(
                cmd,
                BoardCmd::Inspect { .. }
                    | BoardCmd::Frame {
                        frame: Frame::SyncStep1(_),
                        ..
                    }
            );
            if reads_state && !accepted.is_empty() {
                self.commit(std::mem::take(&mut accepted)).await;
            }
            self.handle(cmd, &mut accepted);
        }
        if !accepted.is_empty() {
            self.commit(accepted).await;
        }
    }

    /// Whether some reader waits for a resync or a deferred sync answer.
    fn lagging(&self) -> bool {
        self.conns
            .values()
            .any(|r| r.behind.is_some() || r.presence_lost || r.deferred_sync.is_some())
    }

    /// Sends readers whose queue has drained what they missed, and answers deferred sync
    /// requests the rate now allows.
    fn resync_drained(&mut self) {
        let now = Instant::now();
        let deferred: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, r)| r.deferred_sync.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in deferred {
            let Some(reader) = self.conns.get_mut(&id) else {
                continue;
            };
            if reader.syncs.allow(now) {
                if let Some(sv) = reader.deferred_sync.take() {
                    self.answer_sync(id, sv);
                }
            }
        }
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, r)| r.behind.is_some() || r.presence_lost)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(reader) = self.conns.get_mut(&id) else {
                continue;
            };
            if reader.conn.tx.queued_document_bytes() == 0 {
                if let Some(behind) = reader.behind.take() {
                    let diff = self.board.doc().transact().encode_diff_v1(&behind);
                    self.metrics.whiteboard_resyncs.inc();
                    tracing::debug!(room = %self.room, conn = id, bytes = diff.len(), "slow reader resynced");
                    self.push_document(
                        id,
                        Class::Document,
                        frame_bytes(&Frame::SyncStep2(diff)),
                        &behind,
                    );
                }
            }
            let Some(reader) = self.conns.get_mut(&id) else {
                continue;
            };
            if reader.presence_lost
                && reader.behind.is_none()
                && reader.conn.tx.queued_bytes() < PRESENCE_HEADROOM / 2
            {
                reader.presence_lost = false;
                let mut entries = std::mem::take(&mut reader.missed_removals);
                entries.extend(self.presence.snapshot());
                if !entries.is_empty() {
                    let frame = frame_bytes(&Frame::Awareness(awareness::encode(&entries)));
                    self.push_presence(id, frame);
                }
            }
        }
    }

    /// Queues a document frame for `id`; `known` is what the reader is sure to hold if this
    /// frame is shed. A reader already behind gets nothing until its resync.
    fn push_document(&mut self, id: u64, class: Class, frame: Bytes, known: &StateVector) {
        let Some(reader) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(behind) = &mut reader.behind {
            *behind = sv_min(behind, known);
            return;
        }
        match reader.conn.tx.push(class, frame) {
            Pushed::Queued => {}
            Pushed::Shed => {
                self.metrics.whiteboard_shed("document");
                tracing::debug!(room = %self.room, conn = id, "slow reader: document frames shed until it drains");
                reader.behind = Some(known.clone());
            }
            Pushed::Overflow | Pushed::Closed => self.drop_conn(id),
        }
    }

    /// Queues a presence frame for `id`, shed first when the reader is behind.
    fn push_presence(&mut self, id: u64, frame: Bytes) {
        let Some(reader) = self.conns.get_mut(&id) else {
            return;
        };
        if reader.presence_lost {
            self.metrics.whiteboard_shed("presence");
            return;
        }
        match reader.conn.tx.push(Class::Presence, frame) {
            Pushed::Queued => {}
            Pushed::Shed => {
                self.metrics.whiteboard_shed("presence");
                reader.presence_lost = true;
            }
            Pushed::Overflow | Pushed::Closed => self.drop_conn(id),
        }
    }

    /// Queues an ack or error for `id` (Aula connections only).
    fn push_reply(&mut self, id: u64, frame: &Frame) {
        let Some(reader) = self.conns.get(&id) else {
            return;
        };
        if !reader.conn.aula {
            return;
        }
        match reader.conn.tx.push(Class::Reply, frame_bytes(frame)) {
            Pushed::Queued | Pushed::Shed => {}
            Pushed::Overflow => {
                tracing::info!(room = %self.room, conn = id, "whiteboard client does not read its replies; disconnected");
                reader.conn.kill.notify_one();
                self.drop_conn(id);
            }
            Pushed::Closed => self.drop_conn(id),
        }
    }

    fn drop_conn(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    /// Sends a document frame to everyone but `except`.
    fn broadcast_document(&mut self, except: u64, frame: &Bytes, known: &StateVector) {
        let ids: Vec<u64> = self
            .conns
            .keys()
            .copied()
            .filter(|id| *id != except)
            .collect();
        for id in ids {
            self.push_document(id, Class::Document, frame.clone(), known);
        }
    }

    /// Sends presence to everyone but `except`.
    fn broadcast_presence(&mut self, except: u64, frame: &Bytes) {
        let ids: Vec<u64> = self
            .conns
            .keys()
            .copied()
            .filter(|id| *id != except)
            .collect();
        for id in ids {
            self.push_presence(id, frame.clone());
        }
    }

    /// Presence removals go to everyone: as document frames (they must not be lost), and
    /// remembered for readers that will get a presence resync.
    fn broadcast_removals(&mut self, except: u64, removals: &[AwarenessEntry]) {
        let frame = frame_bytes(&Frame::Awareness(awareness::encode(removals)));
        let sv = self.board.doc().transact().state_vector();
        let ids: Vec<u64> = self
            .conns
            .keys()
            .copied()
            .filter(|id| *id != except)
            .collect();
        for id in ids {
            let Some(reader) = self.conns.get_mut(&id) else {
                continue;
            };
            if reader.presence_lost || reader.behind.is_some() {
                reader.presence_lost = true;
                if reader.missed_removals.len() + removals.len() <= MAX_MISSED_REMOVALS {
                    reader.missed_removals.extend_from_slice(removals);
                }
                continue;
            }
            match reader.conn.tx.push(Class::Document, frame.clone()) {
                Pushed::Queued => {}
                Pushed::Shed => {
                    self.metrics.whiteboard_shed("document");
                    reader.behind = Some(sv.clone());
                    reader.presence_lost = true;
                    reader.missed_removals.extend_from_slice(removals);
                }
                Pushed::Overflow | Pushed::Closed => self.drop_conn(id),
            }
        }
    }

    /// The whole board as a sync step 2 frame, encoded once per change.
    fn full_frame(&mut self) -> Bytes {
        if let Some(frame) = &self.full_frame {
            return frame.clone();
        }
        let frame = frame_bytes(&Frame::SyncStep2(full_state(&self.board)));
        self.full_frame = Some(frame.clone());
        frame
    }

    fn handle(&mut self, cmd: BoardCmd, accepted: &mut Vec<Accepted>) {
        match cmd {
            BoardCmd::Join { id, conn } => {
                let per_second = self.limits.max_syncs_per_second.max(1);
                self.conns.insert(
                    id,
                    Reader {
                        conn,
                        syncs: MessageRate::new(per_second, burst_for(per_second), Instant::now()),
                        deferred_sync: None,
                        behind: None,
                        answered: None,
                        presence_lost: false,
                        missed_removals: Vec::new(),
                    },
                );
                let sv = self.board.doc().transact().state_vector();
                let step1 = frame_bytes(&Frame::SyncStep1(sv.clone()));
                self.push_document(id, Class::Document, step1, &sv);
                let present = self.presence.snapshot();
                if !present.is_empty() {
                    let frame = frame_bytes(&Frame::Awareness(awareness::encode(&present)));
                    self.push_presence(id, frame);
                }
            }
            BoardCmd::Leave { id } => {
                self.conns.remove(&id);
                // Tell everyone the leaver's pointers are gone.
                let gone = self.presence.remove_conn(id);
                if !gone.is_empty() {
                    self.broadcast_removals(id, &gone);
                }
            }
            BoardCmd::Inspect { reply } => {
                let txn = self.board.doc().transact();
                let _ = reply.send((self.board.item_count(&txn), self.board.digest(&txn)));
            }
            BoardCmd::Frame {
                id,
                editor,
                seq,
                frame,
            } => match frame {
                Frame::SyncStep1(sv) => self.on_sync_step1(id, sv),
                Frame::SyncStep2(update) | Frame::Update(update) => {
                    match self.scratch.check(&update, &editor, &self.limits) {
                        Ok(_) => accepted.push(Accepted {
                            conn: id,
                            seq,
                            update,
                        }),
                        Err(refusal) => {
                            tracing::info!(room = %self.room, identity = %editor.identity, %refusal, "whiteboard update refused");
                            self.refuse(id, seq, &refusal);
                            self.rebuild_scratch(accepted);
                        }
                    }
                }
                Frame::Awareness(bytes) => self.on_awareness(id, &editor, bytes),
                Frame::Ack { .. } | Frame::Error { .. } => {
                    self.refuse(
                        id,
                        0,
                        &Refusal::Invalid("ack and error frames are sent by the server".into()),
                    );
                }
            },
        }
    }

    /// Answers a sync step 1 with what the client lacks, once: a request whose needs an
    /// answer still queued already covers is not answered again, and requests over the
    /// reader's sync rate are merged into one answered when the rate allows.
    fn on_sync_step1(&mut self, id: u64, sv: StateVector) {
        let Some(reader) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(deferred) = &mut reader.deferred_sync {
            *deferred = sv_min(deferred, &sv);
            return;
        }
        if !self.is_covered(id, &sv) {
            let Some(reader) = self.conns.get_mut(&id) else {
                return;
            };
            if reader.syncs.allow(Instant::now()) {
                self.answer_sync(id, sv);
            } else {
                self.metrics.whiteboard_refusal("sync_deferred");
                reader.deferred_sync = Some(sv);
            }
        }
    }

    /// Whether the reader already has (or will get) what a sync step 1 with `sv` asks for: it
    /// is behind (the resync will carry it, and `sv` joins its resync point) or an answer
    /// still queued covers it.
    fn is_covered(&mut self, id: u64, sv: &StateVector) -> bool {
        let Some(reader) = self.conns.get_mut(&id) else {
            return true;
        };
        if let Some(behind) = &mut reader.behind {
            *behind = sv_min(behind, sv);
            return true;
        }
        let covered = reader.conn.tx.queued_sync_answers() > 0
            && reader.answered.as_ref().is_some_and(|p| sv_covers(p, sv));
        if covered {
            tracing::debug!(room = %self.room, conn = id, "repeated sync step 1 answered once");
        }
        covered
    }

    /// Queues the answer to a sync step 1 with `sv` (unless something queued covers it).
    fn answer_sync(&mut self, id: u64, sv: StateVector) {
        if self.is_covered(id, &sv) {
            return;
        }
        let Some(reader) = self.conns.get_mut(&id) else {
            return;
        };
        reader.answered = Some(sv.clone());
        // Accepted-but-unstored updates of this batch are not in `board` yet, so the diff
        // never serves an unacknowledged edit; the client gets those as broadcasts once stored.
        let frame = if sv.is_empty() {
            self.full_frame()
        } else {
            let diff = self.board.doc().transact().encode_diff_v1(&sv);
            frame_bytes(&Frame::SyncStep2(diff))
        };
        self.push_document(id, Class::SyncAnswer, frame, &sv);
    }

    /// Records a connection's presence states and relays them to everyone else.
    fn on_awareness(&mut self, id: u64, editor: &Editor, bytes: Vec<u8>) {
        if bytes.len() > self.limits.max_presence_bytes {
            let limit = self.limits.max_presence_bytes;
            self.refuse(
                id,
                0,
                &Refusal::TooLarge(format!("awareness update over {limit} bytes")),
            );
            return;
        }
        let entries = match awareness::decode(&bytes) {
            Ok(entries) => entries,
            Err(err) => {
                self.refuse(id, 0, &Refusal::Invalid(format!("awareness: {err}")));
                return;
            }
        };
        match self.presence.update(id, &editor.identity, entries) {
            Ok(relay) if relay.is_empty() => {}
            Ok(relay) => {
                let frame = frame_bytes(&Frame::Awareness(awareness::encode(&relay)));
                self.broadcast_presence(id, &frame);
            }
            Err(refusal) => {
                tracing::info!(room = %self.room, identity = %editor.identity, %refusal, "presence refused");
                self.refuse(id, 0, &refusal.to_refusal());
            }
        }
    }

    fn refuse(&mut self, id: u64, seq: u64, refusal: &Refusal) {
        self.metrics.whiteboard_refusal(refusal.code());
        self.push_reply(
            id,
            &Frame::Error {
                seq,
                code: refusal.code().into(),
                message: refusal.to_string(),
            },
        );
    }

    /// After a refusal: the scratch is the authoritative state plus this batch's accepted
    /// updates.
    fn rebuild_scratch(&mut self, accepted: &[Accepted]) {
        let rebuilt = Scratch::rebuild(&full_state(&self.board)).and_then(|mut scratch| {
            let admin = Editor {
                identity: String::new(),
                can_write: true,
                is_admin: true,
            };
            let unbounded = WhiteboardLimits {
                max_update_bytes: usize::MAX,
                ..self.limits.clone()
            };
            for a in accepted {
                scratch.check(&a.update, &admin, &unbounded)?;
            }
            Ok(scratch)
        });
        match rebuilt {
            Ok(scratch) => self.scratch = scratch,
            Err(err) => tracing::error!(room = %self.room, error = %err, "scratch rebuild failed"),
        }
    }

    async fn commit(&mut self, accepted: Vec<Accepted>) {
        let updates: Vec<Vec<u8>> = accepted.iter().map(|a| a.update.clone()).collect();
        let first = self.last_seq + 1;
        let store = Arc::clone(&self.store);
        let room = self.room.clone();
        let stored =
            tokio::task::spawn_blocking(move || store.append(&room, first, &updates)).await;
        let ok = matches!(stored, Ok(Ok(())));
        if !ok {
            tracing::error!(room = %self.room, ?stored, "whiteboard updates could not be stored");
            for a in &accepted {
                self.refuse(
                    a.conn,
                    a.seq,
                    &Refusal::Invalid("internal: storage failed".into()),
                );
            }
            self.rebuild_scratch(&[]);
            return;
        }
        self.last_seq += accepted.len() as u64;
        self.full_frame = None;
        // What every reader holds before this batch: the resync point of one that falls
        // behind during it (re-sending a few of the batch's updates is harmless).
        let known = self.board.doc().transact().state_vector();
        for a in accepted {
            if let Ok(update) = Update::decode_v1(&a.update) {
                if let Err(err) = self.board.doc().transact_mut().apply_update(update) {
                    tracing::error!(room = %self.room, error = %err, "accepted update does not apply");
                }
            }
            self.push_reply(a.conn, &Frame::Ack { seq: a.seq });
            let frame = frame_bytes(&Frame::Update(a.update));
            self.broadcast_document(a.conn, &frame, &known);
        }
        if self.last_seq - self.compacted_seq >= COMPACT_EVERY {
            self.compact().await;
        }
    }

    async fn compact(&mut self) {
        let state = full_state(&self.board);
        let seq = self.last_seq;
        let store = Arc::clone(&self.store);
        let room = self.room.clone();
        match tokio::task::spawn_blocking(move || store.compact(&room, seq, &state)).await {
            Ok(Ok(())) => self.compacted_seq = seq,
            other => tracing::error!(room = %self.room, ?other, "whiteboard compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whiteboard::queue::{frame_queue, FrameReceiver, DOCUMENT_BUDGET};
    use aula_protocol::whiteboard::{NewItem, Point};

    async fn open_board() -> (mpsc::Sender<BoardCmd>, Arc<Metrics>) {
        let registry: Registry = Arc::default();
        let metrics = Arc::new(Metrics::default());
        let tx = spawn(
            Arc::clone(&registry),
            "r".into(),
            Arc::new(Store::in_memory().expect("store")),
            WhiteboardLimits::default(),
            Arc::clone(&metrics),
        )
        .await
        .expect("board loads");
        registry.lock().await.insert("r".into(), tx.clone());
        (tx, metrics)
    }

    struct TestConn {
        id: u64,
        rx: FrameReceiver,
        tx: FrameSender,
        kill: Arc<Notify>,
        editor: Editor,
    }

    async fn join(board: &mpsc::Sender<BoardCmd>, id: u64, identity: &str) -> TestConn {
        let (tx, rx) = frame_queue();
        let kill = Arc::new(Notify::new());
        let conn = Conn {
            tx: tx.clone(),
            kill: Arc::clone(&kill),
            aula: true,
        };
        board
            .send(BoardCmd::Join { id, conn })
            .await
            .expect("joins");
        TestConn {
            id,
            rx,
            tx,
            kill,
            editor: Editor {
                identity: identity.into(),
                can_write: true,
                is_admin: false,
            },
        }
    }

    impl TestConn {
        async fn send(&self, board: &mpsc::Sender<BoardCmd>, seq: u64, frame: Frame) {
            let cmd = BoardCmd::Frame {
                id: self.id,
                editor: self.editor.clone(),
                seq,
                frame,
            };
            board.send(cmd).await.expect("board alive");
        }

        /// Every frame that arrives within `quiet` of the previous one.
        async fn drain(&mut self, quiet: Duration) -> Vec<Frame> {
            let mut frames = Vec::new();
            while let Ok(Some(bytes)) = tokio::time::timeout(quiet, self.rx.recv()).await {
                frames.push(Frame::decode(&bytes).expect("server frames decode"));
            }
            frames
        }
    }

    async fn digest(board: &mpsc::Sender<BoardCmd>) -> String {
        let (reply, answer) = tokio::sync::oneshot::channel();
        board
            .send(BoardCmd::Inspect { reply })
            .await
            .expect("board alive");
        answer.await.expect("answered").1
    }

    fn presence(client: u64, clock: u32, pad: usize) -> Frame {
        let json = format!(r#"{{"laser":null,"pad":"{}"}}"#, "x".repeat(pad));
        Frame::Awareness(awareness::encode(&[AwarenessEntry {
            client,
            clock,
            json,
        }]))
    }

    /// A replica synced from the board's answers, to make valid updates and check content.
    fn apply(replica: &Board, frames: &[Frame]) {
        for frame in frames {
            if let Frame::SyncStep2(update) | Frame::Update(update) = frame {
                let update = Update::decode_v1(update).expect("an update");
                replica
                    .doc()
                    .transact_mut()
                    .apply_update(update)
                    .expect("applies");
            }
        }
    }

    fn stroke_update(replica: &Board, id: &str, author: &str, n: usize) -> Vec<u8> {
        let points: Vec<Point> = (0..n)
            .map(|i| Point {
                x: i as f32,
                y: 1.0,
                pressure: 0.5,
            })
            .collect();
        let mut txn = replica.doc().transact_mut();
        replica.add_item(
            &mut txn,
            DEFAULT_PAGE,
            id,
            author,
            &NewItem::stroke("#000000", 1.0, points),
        );
        txn.encode_update_v1()
    }

    #[tokio::test]
    async fn presence_spam_is_shed_for_a_slow_reader_who_keeps_its_seat_and_its_updates() {
        let (board, metrics) = open_board().await;
        let mut slow = join(&board, 1, "slow").await;
        let spammer = join(&board, 2, "spammer").await;
        let mut writer = join(&board, 3, "writer").await;
        writer
            .send(&board, 0, Frame::SyncStep1(StateVector::default()))
            .await;
        let replica = Board::new(Doc::new());
        apply(&replica, &writer.drain(Duration::from_millis(100)).await);
        for clock in 1..=2_000 {
            spammer.send(&board, 0, presence(77, clock, 3_900)).await;
        }
        let update = stroke_update(&replica, "w-1", "writer", 10);
        writer.send(&board, 1, Frame::Update(update)).await;
        digest(&board).await;
        // Eight megabytes of presence were relayed; the reader holds its headroom at most.
        assert!(
            slow.tx.queued_bytes() <= crate::whiteboard::queue::PRESENCE_HEADROOM + 1024,
            "{} bytes queued",
            slow.tx.queued_bytes()
        );
        let frames = slow.drain(Duration::from_millis(300)).await;
        assert!(
            frames.iter().any(|f| matches!(f, Frame::Update(_))),
            "the document update was not shed"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(10), slow.kill.notified())
                .await
                .is_err(),
            "the slow reader is not disconnected"
        );
        let shed = metrics.render();
        assert!(
            shed.contains(r#"aula_whiteboard_shed_frames_total{reason="presence"}"#),
            "{shed}"
        );
        // Once drained, it is sent the presence it missed: the spammer's last state (the
        // frames queued before the shedding carry the first few clocks only).
        let last_clock = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Awareness(bytes) => awareness::decode(bytes).ok(),
                _ => None,
            })
            .flatten()
            .map(|e| e.clock)
            .max();
        assert_eq!(last_clock, Some(2_000), "the presence resync");
    }

    #[tokio::test]
    async fn repeated_sync_requests_are_answered_once_while_the_answer_waits() {
        let (board, _metrics) = open_board().await;
        let mut asker = join(&board, 1, "asker").await;
        for _ in 0..400 {
            asker
                .send(&board, 0, Frame::SyncStep1(StateVector::default()))
                .await;
        }
        digest(&board).await;
        let answers = asker
            .drain(Duration::from_millis(100))
            .await
            .into_iter()
            .filter(|f| matches!(f, Frame::SyncStep2(_)))
            .count();
        assert_eq!(answers, 1);
        // Read, then asked again: answered again.
        asker
            .send(&board, 0, Frame::SyncStep1(StateVector::default()))
            .await;
        let again = asker.drain(Duration::from_millis(100)).await;
        assert!(again.iter().any(|f| matches!(f, Frame::SyncStep2(_))));
    }

    #[tokio::test]
    async fn sync_requests_over_the_rate_are_merged_and_answered_later_not_dropped() {
        let (board, metrics) = open_board().await;
        let mut asker = join(&board, 1, "asker").await;
        asker.drain(Duration::from_millis(50)).await;
        let step2s = |frames: Vec<Frame>| {
            frames
                .into_iter()
                .filter(|f| matches!(f, Frame::SyncStep2(_)))
                .count()
        };
        let mut at_once = 0;
        for _ in 0..6 {
            asker
                .send(&board, 0, Frame::SyncStep1(StateVector::default()))
                .await;
            at_once += step2s(asker.drain(Duration::from_millis(20)).await);
        }
        // The burst (4) is answered at once; the other two wait for the rate, as one.
        assert_eq!(at_once, 4);
        let later = step2s(asker.drain(Duration::from_millis(800)).await);
        assert_eq!(later, 1, "the deferred requests are answered, once");
        assert!(metrics
            .render()
            .contains(r#"aula_whiteboard_refusals_total{code="sync_deferred"} 1"#));
    }

    #[tokio::test]
    async fn a_reader_behind_on_the_document_is_resynced_once_drained() {
        let (board, metrics) = open_board().await;
        let mut writer = join(&board, 1, "writer").await;
        writer
            .send(&board, 0, Frame::SyncStep1(StateVector::default()))
            .await;
        let replica = Board::new(Doc::new());
        apply(&replica, &writer.drain(Duration::from_millis(100)).await);
        let mut slow = join(&board, 2, "slow").await;
        slow.send(&board, 0, Frame::SyncStep1(StateVector::default()))
            .await;
        // Twenty strokes of about 100 KB: twice the reader's document budget.
        for i in 0..20u64 {
            let update = stroke_update(&replica, &format!("w-{i}"), "writer", 8_000);
            writer.send(&board, i + 1, Frame::Update(update)).await;
        }
        let server_digest = digest(&board).await;
        assert!(
            slow.tx.queued_document_bytes() < DOCUMENT_BUDGET + 200_000,
            "{} document bytes queued",
            slow.tx.queued_document_bytes()
        );
        let mine = Board::new(Doc::new());
        let frames = slow.drain(Duration::from_millis(300)).await;
        apply(&mine, &frames);
        let txn = mine.doc().transact();
        assert_eq!(mine.digest(&txn), server_digest, "caught up after draining");
        assert!(metrics.render().contains("aula_whiteboard_resyncs_total 1"));
        assert!(
            tokio::time::timeout(Duration::from_millis(10), slow.kill.notified())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_whole_board_answer_follows_every_change() {
        let (board, _metrics) = open_board().await;
        let mut writer = join(&board, 1, "writer").await;
        writer
            .send(&board, 0, Frame::SyncStep1(StateVector::default()))
            .await;
        let replica = Board::new(Doc::new());
        apply(&replica, &writer.drain(Duration::from_millis(100)).await);
        for i in 0..5u64 {
            let update = stroke_update(&replica, &format!("w-{i}"), "writer", 500);
            writer.send(&board, i + 1, Frame::Update(update)).await;
        }
        let server_digest = digest(&board).await;
        let mut reader = join(&board, 2, "reader").await;
        reader
            .send(&board, 0, Frame::SyncStep1(StateVector::default()))
            .await;
        let mine = Board::new(Doc::new());
        apply(&mine, &reader.drain(Duration::from_millis(100)).await);
        let txn = mine.doc().transact();
        assert_eq!(mine.digest(&txn), server_digest);
    }

    #[test]
    fn state_vectors_meet_and_cover() {
        let a: StateVector = [
            (yrs::block::ClientID::new(1), 5),
            (yrs::block::ClientID::new(2), 3),
        ]
        .into_iter()
        .collect();
        let b: StateVector = [
            (yrs::block::ClientID::new(1), 2),
            (yrs::block::ClientID::new(3), 9),
        ]
        .into_iter()
        .collect();
        let least = sv_min(&a, &b);
        assert_eq!(least.get(&yrs::block::ClientID::new(1)), 2);
        assert_eq!(least.get(&yrs::block::ClientID::new(2)), 0);
        assert_eq!(least.get(&yrs::block::ClientID::new(3)), 0);
        assert!(
            sv_covers(&StateVector::default(), &a),
            "the whole board covers anything"
        );
        assert!(sv_covers(&b, &b));
        assert!(!sv_covers(&a, &StateVector::default()));
        assert!(sv_covers(&least, &a));
    }
}
