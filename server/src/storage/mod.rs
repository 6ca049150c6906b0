//! Durable state other than the boards' updates: rooms, chat and attendance, behind one
//! trait so that a cluster can keep them in PostgreSQL while a single server keeps them in
//! its embedded database.
//!
//! Every write returns only once it is durable: the room acknowledges nothing before.

mod redb_storage;

use std::path::Path;
use std::sync::Arc;

use aula_protocol::ChatMessage;

pub use redb_storage::RedbStorage;

use crate::classroom::{AttendanceEvent, RoomRecord};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database failed.
    #[error("storage: {0}")]
    Db(#[from] redb::Error),
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value does not decode.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A storage task died.
    #[error("storage task: {0}")]
    Task(String),
}

/// One change to store; a room's changes from one input are stored together.
#[derive(Clone, Debug)]
pub enum Write {
    /// A room's record (replaces the stored one).
    Room(RoomRecord),
    /// A chat message, new or deleted (replaces the stored one with its sequence number).
    Chat {
        /// The room.
        room: String,
        /// The class.
        class: u64,
        /// The message.
        message: ChatMessage,
    },
    /// An attendance event.
    Attendance {
        /// The room.
        room: String,
        /// The event.
        event: AttendanceEvent,
    },
}

/// Where rooms, chat and attendance are kept. Blocking: call from a blocking task.
pub trait Storage: Send + Sync + 'static {
    /// Stores every write in one transaction; returns once they are durable.
    fn write(&self, writes: &[Write]) -> Result<(), StorageError>;
    /// A room's record, if one was stored.
    fn room(&self, name: &str) -> Result<Option<RoomRecord>, StorageError>;
    /// Every stored room record.
    fn rooms(&self) -> Result<Vec<RoomRecord>, StorageError>;
    /// Up to `limit` of the newest messages of `room`'s class `class` before sequence number
    /// `before` that `identity` may see (all, without an identity), oldest first, and
    /// whether more such messages exist before them.
    fn chat_page(
        &self,
        room: &str,
        class: u64,
        before: u64,
        limit: usize,
        identity: Option<&str>,
    ) -> Result<(Vec<ChatMessage>, bool), StorageError>;
    /// Every attendance event of a class, in order.
    fn attendance(&self, room: &str, class: u64) -> Result<Vec<AttendanceEvent>, StorageError>;
    /// The sequence number of the last attendance event of a class (0 when none).
    fn last_attendance_seq(&self, room: &str, class: u64) -> Result<u64, StorageError>;
}

/// Opens the server's database in `dir` (creating it), or in memory without a directory.
/// A data directory from before rooms and chat were stored holds `whiteboard.redb`; it is
/// taken over as it is.
pub fn open_database(dir: Option<&Path>) -> Result<Arc<redb::Database>, StorageError> {
    let db = match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let path = dir.join("aula.redb");
            let legacy = dir.join("whiteboard.redb");
            if !path.exists() && legacy.exists() {
                std::fs::rename(&legacy, &path)?;
            }
            redb::Database::create(path).map_err(|e| StorageError::Db(e.into()))?
        }
        None => redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StorageError::Db(e.into()))?,
    };
    Ok(Arc::new(db))
}
