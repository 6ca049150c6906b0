//! Durable storage of boards in one redb database.
//!
//! Why redb: it is an embedded, pure-Rust, ACID key-value store — no C toolchain or system
//! library (SQLite would bring a bundled C build), and a committed write transaction is fsynced
//! (`Durability::Immediate`, the default) before `commit` returns, which is exactly the guarantee
//! "stored before acknowledged" needs.
//!
//! Layout: table `wb_updates` maps `(room, seq)` to one accepted yrs update (v1); table
//! `wb_snapshots` maps `room` to `(seq, state)`: the whole board as one update, covering every
//! update up to `seq`. Compaction writes a snapshot and deletes the updates it covers in one
//! transaction.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

const UPDATES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("wb_updates");
const SNAPSHOTS: TableDefinition<'_, &str, (u64, &[u8])> = TableDefinition::new("wb_snapshots");

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("whiteboard storage: {0}")]
    Db(#[from] redb::Error),
    /// The data directory could not be created.
    #[error("whiteboard data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data does not load, or a storage task died.
    #[error("whiteboard storage: {0}")]
    Other(String),
}

fn e<E: Into<redb::Error>>(err: E) -> StoreError {
    StoreError::Db(err.into())
}

/// A board as stored: the latest snapshot and the updates after it.
#[derive(Debug, Default)]
pub struct Stored {
    /// The snapshot's state, empty when there is none.
    pub snapshot: Vec<u8>,
    /// Updates after the snapshot, in order.
    pub updates: Vec<Vec<u8>>,
    /// Sequence number of the last stored update (or of the snapshot).
    pub last_seq: u64,
}

/// The boards' tables in the server's database.
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) `dir/whiteboard.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("whiteboard.redb")).map_err(e)?;
        Self::init(Arc::new(db))
    }

    /// The boards' tables in `db`, the database the server keeps everything in.
    pub fn with_database(db: Arc<Database>) -> Result<Self, StoreError> {
        Self::init(db)
    }

    /// A database held in memory only (no data directory configured): boards last as long as
    /// the process.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(e)?;
        Self::init(Arc::new(db))
    }

    fn init(db: Arc<Database>) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(e)?;
        txn.open_table(UPDATES).map_err(e)?;
        txn.open_table(SNAPSHOTS).map_err(e)?;
        txn.commit().map_err(e)?;
        Ok(Self { db })
    }

    /// Loads a room's board.
    pub fn load(&self, room: &str) -> Result<Stored, StoreError> {
        let txn = self.db.begin_read().map_err(e)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(e)?;
        let mut stored = Stored::default();
        if let Some(snap) = snapshots.get(room).map_err(e)? {
            let (seq, state) = snap.value();
            stored.snapshot = state.to_vec();
            stored.last_seq = seq;
        }
        let updates = txn.open_table(UPDATES).map_err(e)?;
        for row in updates
            .range((room, stored.last_seq + 1)..=(room, u64::MAX))
            .map_err(e)?
        {
            let (key, value) = row.map_err(e)?;
            stored.last_seq = key.value().1;
            stored.updates.push(value.value().to_vec());
        }
        Ok(stored)
    }

    /// Durably appends updates with sequence numbers `first_seq..`; returns when they are on
    /// disk.
    pub fn append(
        &self,
        room: &str,
        first_seq: u64,
        updates: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(e)?;
        {
            let mut table = txn.open_table(UPDATES).map_err(e)?;
            for (i, update) in updates.iter().enumerate() {
                table
                    .insert((room, first_seq + i as u64), update.as_slice())
                    .map_err(e)?;
            }
        }
        txn.commit().map_err(e)
    }

    /// Replaces every update up to `seq` by one snapshot `state`.
    pub fn compact(&self, room: &str, seq: u64, state: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(e)?;
        {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(e)?;
            snapshots.insert(room, (seq, state)).map_err(e)?;
            let mut updates = txn.open_table(UPDATES).map_err(e)?;
            updates
                .retain_in((room, 0)..=(room, seq), |_, _| false)
                .map_err(e)?;
        }
        txn.commit().map_err(e)
    }

    /// Bytes stored for a room: snapshot plus pending updates (payloads, without the
    /// database's own overhead).
    pub fn stored_bytes(&self, room: &str) -> Result<u64, StoreError> {
        let stored = self.load(room)?;
        Ok(stored.snapshot.len() as u64
            + stored.updates.iter().map(|u| u.len() as u64).sum::<u64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_load_compact() {
        let store = Store::in_memory().expect("store");
        store.append("a", 1, &[vec![1], vec![2]]).expect("append");
        store.append("b", 1, &[vec![9]]).expect("append");
        let a = store.load("a").expect("load");
        assert_eq!(a.updates, vec![vec![1], vec![2]]);
        assert_eq!(a.last_seq, 2);
        store.compact("a", 2, &[7, 7]).expect("compact");
        store.append("a", 3, &[vec![3]]).expect("append");
        let a = store.load("a").expect("load");
        assert_eq!(a.snapshot, vec![7, 7]);
        assert_eq!(a.updates, vec![vec![3]]);
        assert_eq!(a.last_seq, 3);
        assert_eq!(store.load("b").expect("load").updates, vec![vec![9]]);
    }
}
