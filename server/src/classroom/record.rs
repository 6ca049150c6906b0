//! What the server keeps of a room between its sessions: settings, class number, lock, bans.

use std::collections::BTreeSet;

use aula_protocol::{ChatMessage, RoomSettings};
use serde::{Deserialize, Serialize};

/// A room as stored. Written whenever one of its fields changes; read when the room opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The room's name.
    pub name: String,
    /// The class number: 1 for the first, one more after each end of class.
    pub class: u64,
    /// The settings.
    pub settings: RoomSettings,
    /// Whether the settings were chosen (by the server API, a token, or a teacher) rather
    /// than defaulted; a token's classroom settings only apply to a room whose were not.
    pub configured: bool,
    /// Whether the server API created it: such a room stays listed while empty.
    pub created_by_api: bool,
    /// Whether it takes no new joins.
    pub locked: bool,
    /// Identities removed from the current class.
    pub banned: BTreeSet<String>,
    /// When anyone last joined or left, ms since the Unix epoch.
    pub last_active_ms: u64,
}

impl RoomRecord {
    /// A room nobody configured, at its first class.
    pub fn new(name: &str, now_ms: u64) -> Self {
        Self {
            name: name.to_owned(),
            class: 1,
            settings: RoomSettings::default(),
            configured: false,
            created_by_api: false,
            locked: false,
            banned: BTreeSet::new(),
            last_active_ms: now_ms,
        }
    }

    /// The record after its class ended: the next class, with no bans and no lock.
    pub fn next_class(&self) -> Self {
        Self {
            class: self.class + 1,
            locked: false,
            banned: BTreeSet::new(),
            ..self.clone()
        }
    }
}

/// What a room starts from when it opens: its record and the tail of its class's chat.
#[derive(Clone, Debug)]
pub struct RoomSnapshot {
    /// The stored record (or a new one).
    pub record: RoomRecord,
    /// The newest chat messages of the current class, oldest first.
    pub chat_tail: Vec<ChatMessage>,
    /// The next attendance event's sequence number in the current class.
    pub next_attendance_seq: u64,
}

impl RoomSnapshot {
    /// A room never seen before.
    pub fn fresh(name: &str, now_ms: u64) -> Self {
        Self {
            record: RoomRecord::new(name, now_ms),
            chat_tail: Vec::new(),
            next_attendance_seq: 1,
        }
    }
}
