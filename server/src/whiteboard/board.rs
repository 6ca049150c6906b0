//! One room's board: the authoritative yrs document, a scratch replica to validate on, and the
//! connections to serve. Runs as one task; sessions talk to it through [`BoardCmd`]s.

use std::collections::HashMap;
use std::sync::Arc;

use aula_protocol::whiteboard::awareness::{self, AwarenessEntry};
use aula_protocol::whiteboard::{
    Board, Editor, Frame, Refusal, Scratch, WhiteboardLimits, DEFAULT_PAGE,
};
use tokio::sync::{mpsc, Notify};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::store::{Store, StoreError};

/// Compact the stored updates into a snapshot after this many.
const COMPACT_EVERY: u64 = 1000;
/// Most commands handled (and updates committed) in one batch.
const MAX_BATCH: usize = 256;
/// Binary frames queued for one connection before it counts as too slow.
pub const CONN_QUEUE: usize = 4096;

/// A connection served by a board.
pub struct Conn {
    /// Binary frames to the client.
    pub tx: mpsc::Sender<Vec<u8>>,
    /// Notified when the client is too slow and must be disconnected.
    pub kill: Arc<Notify>,
    /// Whether the client speaks Aula's ack and error frames (y-websocket clients do not).
    pub aula: bool,
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
    board: Board,
    scratch: Scratch,
    conns: HashMap<u64, Conn>,
    /// Presence (awareness) states per connection, by yrs client id: relayed, never stored.
    presence: HashMap<u64, HashMap<u64, AwarenessEntry>>,
    last_seq: u64,
    compacted_seq: u64,
}

/// Loads `room`'s board and starts its task.
pub async fn spawn(
    registry: Registry,
    room: String,
    store: Arc<Store>,
    limits: WhiteboardLimits,
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
        board,
        scratch,
        conns: HashMap::new(),
        presence: HashMap::new(),
        last_seq,
        compacted_seq: stored.last_seq.saturating_sub(stored.updates.len() as u64),
    };
    tokio::spawn(actor.run(rx));
    Ok(tx)
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
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
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

    fn send(&mut self, id: u64, frame: &Frame) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if !conn.aula && matches!(frame, Frame::Ack { .. } | Frame::Error { .. }) {
            return;
        }
        if conn.tx.try_send(frame.encode()).is_err() {
            conn.kill.notify_one();
            self.conns.remove(&id);
        }
    }

    fn broadcast(&mut self, except: u64, bytes: &[u8]) {
        let mut slow = Vec::new();
        for (id, conn) in &self.conns {
            if *id != except && conn.tx.try_send(bytes.to_vec()).is_err() {
                conn.kill.notify_one();
                slow.push(*id);
            }
        }
        for id in slow {
            self.conns.remove(&id);
        }
    }

    fn handle(&mut self, cmd: BoardCmd, accepted: &mut Vec<Accepted>) {
        match cmd {
            BoardCmd::Join { id, conn } => {
                self.conns.insert(id, conn);
                let sv = self.board.doc().transact().state_vector();
                self.send(id, &Frame::SyncStep1(sv));
                let present: Vec<AwarenessEntry> = self
                    .presence
                    .values()
                    .flat_map(|m| m.values().cloned())
                    .collect();
                if !present.is_empty() {
                    self.send(id, &Frame::Awareness(awareness::encode(&present)));
                }
            }
            BoardCmd::Leave { id } => {
                self.conns.remove(&id);
                // Tell everyone the leaver's pointers are gone.
                if let Some(states) = self.presence.remove(&id) {
                    let gone: Vec<AwarenessEntry> = states
                        .into_values()
                        .map(|e| AwarenessEntry {
                            client: e.client,
                            clock: e.clock.wrapping_add(1),
                            json: "null".into(),
                        })
                        .collect();
                    if !gone.is_empty() {
                        let frame = Frame::Awareness(awareness::encode(&gone)).encode();
                        self.broadcast(id, &frame);
                    }
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
                Frame::SyncStep1(sv) => {
                    // Accepted-but-unstored updates of this batch are not in `board` yet, so
                    // the diff never serves an unacknowledged edit; the client gets those as
                    // broadcasts once stored.
                    let diff = self.board.doc().transact().encode_diff_v1(&sv);
                    self.send(id, &Frame::SyncStep2(diff));
                }
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
                Frame::Awareness(bytes) => self.on_awareness(id, bytes),
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

    /// Records a connection's presence states and relays them to everyone else.
    fn on_awareness(&mut self, id: u64, bytes: Vec<u8>) {
        let entries = match awareness::decode(&bytes) {
            Ok(entries) if bytes.len() <= 16 * 1024 => entries,
            Ok(_) => {
                self.refuse(
                    id,
                    0,
                    &Refusal::TooLarge("awareness update over 16 KiB".into()),
                );
                return;
            }
            Err(err) => {
                self.refuse(id, 0, &Refusal::Invalid(format!("awareness: {err}")));
                return;
            }
        };
        let states = self.presence.entry(id).or_default();
        for entry in entries {
            if entry.json == "null" {
                states.remove(&entry.client);
            } else if states.len() < 8 || states.contains_key(&entry.client) {
                states.insert(entry.client, entry);
            }
        }
        let frame = Frame::Awareness(bytes).encode();
        self.broadcast(id, &frame);
    }

    fn refuse(&mut self, id: u64, seq: u64, refusal: &Refusal) {
        self.send(
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
        for a in accepted {
            if let Ok(update) = Update::decode_v1(&a.update) {
                if let Err(err) = self.board.doc().transact_mut().apply_update(update) {
                    tracing::error!(room = %self.room, error = %err, "accepted update does not apply");
                }
            }
            self.send(a.conn, &Frame::Ack { seq: a.seq });
            let frame = Frame::Update(a.update).encode();
            self.broadcast(a.conn, &frame);
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
