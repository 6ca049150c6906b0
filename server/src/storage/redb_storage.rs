//! [`Storage`] in the embedded redb database (the same file as the boards).
//!
//! Tables: `rooms` maps a room's name to its record; `chat` maps `(room, class, seq)` to a
//! message; `attendance` maps `(room, class, seq)` to an event. Values are JSON, so a record
//! read by a newer server still decodes (fields are added with defaults).

use std::sync::Arc;

use aula_protocol::ChatMessage;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Storage, StorageError, Write};
use crate::classroom::{AttendanceEvent, RoomRecord};

const ROOMS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("rooms");
const CHAT: TableDefinition<'_, (&str, u64, u64), &[u8]> = TableDefinition::new("chat");
const ATTENDANCE: TableDefinition<'_, (&str, u64, u64), &[u8]> = TableDefinition::new("attendance");

fn db_error<E: Into<redb::Error>>(err: E) -> StorageError {
    StorageError::Db(err.into())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

/// Rooms, chat and attendance in redb.
pub struct RedbStorage {
    db: Arc<Database>,
}

impl RedbStorage {
    /// Storage in `db`, creating its tables.
    pub fn new(db: Arc<Database>) -> Result<Self, StorageError> {
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(ROOMS).map_err(db_error)?;
        txn.open_table(CHAT).map_err(db_error)?;
        txn.open_table(ATTENDANCE).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(Self { db })
    }
}

impl Storage for RedbStorage {
    fn write(&self, writes: &[Write]) -> Result<(), StorageError> {
        if writes.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut rooms = txn.open_table(ROOMS).map_err(db_error)?;
            let mut chat = txn.open_table(CHAT).map_err(db_error)?;
            let mut attendance = txn.open_table(ATTENDANCE).map_err(db_error)?;
            for write in writes {
                match write {
                    Write::Room(record) => {
                        rooms
                            .insert(record.name.as_str(), encode(record)?.as_slice())
                            .map_err(db_error)?;
                    }
                    Write::Chat {
                        room,
                        class,
                        message,
                    } => {
                        chat.insert(
                            (room.as_str(), *class, message.seq),
                            encode(message)?.as_slice(),
                        )
                        .map_err(db_error)?;
                    }
                    Write::Attendance { room, event } => {
                        attendance
                            .insert(
                                (room.as_str(), event.class, event.seq),
                                encode(event)?.as_slice(),
                            )
                            .map_err(db_error)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_error)
    }

    fn room(&self, name: &str) -> Result<Option<RoomRecord>, StorageError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let rooms = txn.open_table(ROOMS).map_err(db_error)?;
        match rooms.get(name).map_err(db_error)? {
            Some(value) => Ok(Some(decode(value.value())?)),
            None => Ok(None),
        }
    }

    fn rooms(&self) -> Result<Vec<RoomRecord>, StorageError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let rooms = txn.open_table(ROOMS).map_err(db_error)?;
        let mut all = Vec::new();
        for row in rooms.iter().map_err(db_error)? {
            let (_, value) = row.map_err(db_error)?;
            all.push(decode(value.value())?);
        }
        Ok(all)
    }

    fn chat_page(
        &self,
        room: &str,
        class: u64,
        before: u64,
        limit: usize,
        identity: Option<&str>,
    ) -> Result<(Vec<ChatMessage>, bool), StorageError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let chat = txn.open_table(CHAT).map_err(db_error)?;
        let mut page = Vec::new();
        let mut more = false;
        for row in chat
            .range((room, class, 0)..(room, class, before))
            .map_err(db_error)?
            .rev()
        {
            let (_, value) = row.map_err(db_error)?;
            let message: ChatMessage = decode(value.value())?;
            if identity.is_some_and(|i| !message.visible_to(i)) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(message);
        }
        page.reverse();
        Ok((page, more))
    }

    fn attendance(&self, room: &str, class: u64) -> Result<Vec<AttendanceEvent>, StorageError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ATTENDANCE).map_err(db_error)?;
        let mut events = Vec::new();
        for row in table
            .range((room, class, 0)..=(room, class, u64::MAX))
            .map_err(db_error)?
        {
            let (_, value) = row.map_err(db_error)?;
            events.push(decode(value.value())?);
        }
        Ok(events)
    }

    fn last_attendance_seq(&self, room: &str, class: u64) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ATTENDANCE).map_err(db_error)?;
        let last = table
            .range((room, class, 0)..=(room, class, u64::MAX))
            .map_err(db_error)?
            .next_back()
            .transpose()
            .map_err(db_error)?;
        Ok(last.map_or(0, |(key, _)| key.value().2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classroom::AttendanceKind;
    use aula_protocol::classroom::ChatKind;

    fn storage() -> RedbStorage {
        RedbStorage::new(super::super::open_database(None).unwrap()).unwrap()
    }

    fn message(seq: u64, from: &str, to: Option<&str>) -> ChatMessage {
        ChatMessage {
            seq,
            time: seq * 10,
            from: Some(from.into()),
            from_name: from.into(),
            to: to.map(Into::into),
            kind: ChatKind::Message,
            text: format!("m{seq}"),
            deleted: false,
        }
    }

    #[test]
    fn rooms_chat_and_attendance_round_trip() {
        let s = storage();
        let mut record = RoomRecord::new("r1", 5);
        record.banned.insert("s9".into());
        let mut writes = vec![Write::Room(record.clone())];
        for seq in 1..=10 {
            let to = (seq % 3 == 0).then_some("s2");
            writes.push(Write::Chat {
                room: "r1".into(),
                class: 1,
                message: message(seq, "s1", to),
            });
        }
        writes.push(Write::Chat {
            room: "r1".into(),
            class: 2,
            message: message(1, "s1", None),
        });
        writes.push(Write::Attendance {
            room: "r1".into(),
            event: AttendanceEvent {
                class: 1,
                seq: 4,
                time: 1,
                identity: "s1".into(),
                name: "S".into(),
                role: aula_protocol::Role::Student,
                kind: AttendanceKind::Joined { lobby: false },
            },
        });
        s.write(&writes).unwrap();
        assert_eq!(s.room("r1").unwrap(), Some(record));
        assert_eq!(s.room("nope").unwrap(), None);
        assert_eq!(s.rooms().unwrap().len(), 1);
        // All of class 1 before 11, newest 4: 7..=10.
        let (page, more) = s.chat_page("r1", 1, 11, 4, None).unwrap();
        assert_eq!(
            page.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
        assert!(more);
        // s3 sees no private message to s2.
        let (page, _) = s.chat_page("r1", 1, 11, 100, Some("s3")).unwrap();
        assert_eq!(page.len(), 7);
        let (page, more) = s.chat_page("r1", 1, 3, 100, None).unwrap();
        assert_eq!(page.len(), 2);
        assert!(!more);
        assert_eq!(s.attendance("r1", 1).unwrap().len(), 1);
        assert_eq!(s.last_attendance_seq("r1", 1).unwrap(), 4);
        assert_eq!(s.last_attendance_seq("r1", 2).unwrap(), 0);
    }

    #[test]
    fn a_deleted_message_replaces_the_stored_one() {
        let s = storage();
        let write = |m: ChatMessage| Write::Chat {
            room: "r".into(),
            class: 1,
            message: m,
        };
        s.write(&[write(message(1, "a", None))]).unwrap();
        let mut deleted = message(1, "a", None);
        deleted.deleted = true;
        deleted.text.clear();
        s.write(&[write(deleted.clone())]).unwrap();
        assert_eq!(s.chat_page("r", 1, 2, 10, None).unwrap().0, vec![deleted]);
    }
}
