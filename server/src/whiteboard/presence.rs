//! The presence (awareness) states of one board's connections, tied to their senders.
//!
//! A connection owns the awareness client ids it introduces (at most
//! [`MAX_CLIENTS_PER_CONNECTION`]); entries for ids another identity owns are dropped, and a
//! connection of the same identity takes its ids over (a client that reconnected before its old
//! connection was noticed gone). Every state is checked and stamped with the sender's identity
//! ([`stamp_state`]); what is relayed is re-encoded from the accepted entries, never the bytes
//! received. States are never stored.

use std::collections::HashMap;

use aula_protocol::whiteboard::awareness::{stamp_state, AwarenessEntry, PresenceError};
use aula_protocol::whiteboard::Refusal;

/// Awareness client ids one connection may own. A Yjs or Aula client has one.
pub const MAX_CLIENTS_PER_CONNECTION: usize = 1;
/// Most entries one awareness update may carry.
pub const MAX_ENTRIES_PER_UPDATE: usize = 4;

/// Why an awareness update was refused as a whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PresenceRefusal {
    /// More entries than [`MAX_ENTRIES_PER_UPDATE`].
    #[error("an awareness update may carry at most {MAX_ENTRIES_PER_UPDATE} entries, not {0}")]
    TooManyEntries(usize),
    /// A state is not acceptable.
    #[error(transparent)]
    State(#[from] PresenceError),
    /// Every entry names an awareness client this connection may not speak for.
    #[error("the awareness update names only clients this connection does not own")]
    NotOwned,
}

impl PresenceRefusal {
    /// The whiteboard refusal sent back in an error frame.
    pub fn to_refusal(&self) -> Refusal {
        match self {
            PresenceRefusal::TooManyEntries(_) => Refusal::TooLarge(self.to_string()),
            PresenceRefusal::State(PresenceError::ForeignUser(_)) | PresenceRefusal::NotOwned => {
                Refusal::PermissionDenied(self.to_string())
            }
            PresenceRefusal::State(_) => Refusal::Invalid(self.to_string()),
        }
    }
}

#[derive(Debug, Default)]
struct ConnPresence {
    identity: String,
    /// Awareness client ids this connection owns, with their state (`None` after a removal).
    states: HashMap<u64, Option<AwarenessEntry>>,
}

/// Every connection's presence on one board.
#[derive(Debug, Default)]
pub struct PresenceTable {
    conns: HashMap<u64, ConnPresence>,
    owners: HashMap<u64, u64>,
}

impl PresenceTable {
    /// Applies an awareness update from connection `conn`, whose token identity is
    /// `identity`; returns the entries to relay to everyone else (possibly none).
    pub fn update(
        &mut self,
        conn: u64,
        identity: &str,
        entries: Vec<AwarenessEntry>,
    ) -> Result<Vec<AwarenessEntry>, PresenceRefusal> {
        if entries.len() > MAX_ENTRIES_PER_UPDATE {
            return Err(PresenceRefusal::TooManyEntries(entries.len()));
        }
        // Check every state before changing anything.
        let stamped = entries
            .into_iter()
            .map(|e| {
                Ok(AwarenessEntry {
                    json: stamp_state(&e.json, identity)?,
                    ..e
                })
            })
            .collect::<Result<Vec<_>, PresenceError>>()?;
        let mut relay = Vec::new();
        let mut not_owned = false;
        for entry in stamped {
            if !self.own(conn, identity, entry.client, entry.json == "null") {
                not_owned = true;
                continue;
            }
            let states = &mut self
                .conns
                .get_mut(&conn)
                .expect("`own` registered the connection")
                .states;
            let slot = states.entry(entry.client).or_default();
            let removal = entry.json == "null";
            if let Some(known) = slot {
                // y-protocols: a newer clock wins; at the same clock only a removal does.
                if entry.clock < known.clock || (entry.clock == known.clock && !removal) {
                    continue;
                }
            }
            *slot = (!removal).then(|| entry.clone());
            relay.push(entry);
        }
        if relay.is_empty() && not_owned {
            return Err(PresenceRefusal::NotOwned);
        }
        Ok(relay)
    }

    /// Whether `conn` may speak for awareness client `client`; claims or takes it over when
    /// allowed. A removal never claims an id nobody owns.
    fn own(&mut self, conn: u64, identity: &str, client: u64, removal: bool) -> bool {
        match self.owners.get(&client).copied() {
            Some(owner) if owner == conn => true,
            Some(owner) => {
                let same_identity = self
                    .conns
                    .get(&owner)
                    .is_some_and(|other| other.identity == identity);
                if !same_identity || !self.has_room(conn, identity) {
                    return false;
                }
                // The same person on a newer connection: the id moves with its state.
                let state = self
                    .conns
                    .get_mut(&owner)
                    .and_then(|other| other.states.remove(&client))
                    .flatten();
                self.owners.insert(client, conn);
                self.conn(conn, identity).states.insert(client, state);
                true
            }
            None if removal => false,
            None => {
                if !self.has_room(conn, identity) {
                    return false;
                }
                self.owners.insert(client, conn);
                self.conn(conn, identity).states.insert(client, None);
                true
            }
        }
    }

    fn has_room(&mut self, conn: u64, identity: &str) -> bool {
        self.conn(conn, identity).states.len() < MAX_CLIENTS_PER_CONNECTION
    }

    fn conn(&mut self, conn: u64, identity: &str) -> &mut ConnPresence {
        self.conns.entry(conn).or_insert_with(|| ConnPresence {
            identity: identity.to_owned(),
            states: HashMap::new(),
        })
    }

    /// Forgets connection `conn`; returns the removals to tell everyone (state `null`, clock
    /// one past the last).
    pub fn remove_conn(&mut self, conn: u64) -> Vec<AwarenessEntry> {
        let Some(gone) = self.conns.remove(&conn) else {
            return Vec::new();
        };
        let mut removals = Vec::new();
        for (client, state) in gone.states {
            self.owners.remove(&client);
            if let Some(state) = state {
                removals.push(AwarenessEntry {
                    client,
                    clock: state.clock.wrapping_add(1),
                    json: "null".into(),
                });
            }
        }
        removals
    }

    /// Every present state, for a late joiner.
    pub fn snapshot(&self) -> Vec<AwarenessEntry> {
        self.conns
            .values()
            .flat_map(|c| c.states.values().flatten().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(client: u64, clock: u32, json: &str) -> AwarenessEntry {
        AwarenessEntry {
            client,
            clock,
            json: json.into(),
        }
    }

    fn laser(user: &str) -> String {
        format!(r#"{{"user":"{user}","laser":{{"page":"1","x":1.0,"y":2.0}}}}"#)
    }

    #[test]
    fn a_connection_speaks_for_its_own_client_id_only() {
        let mut table = PresenceTable::default();
        let relayed = table
            .update(1, "ann", vec![entry(10, 1, &laser("ann"))])
            .expect("own state");
        assert_eq!(relayed.len(), 1);
        // Bob cannot move Ann's pointer, nor claim a second id.
        assert_eq!(
            table.update(2, "bob", vec![entry(10, 2, &laser("bob"))]),
            Err(PresenceRefusal::NotOwned)
        );
        table
            .update(2, "bob", vec![entry(20, 1, &laser("bob"))])
            .expect("bob's own id");
        assert_eq!(
            table.update(2, "bob", vec![entry(21, 1, &laser("bob"))]),
            Err(PresenceRefusal::NotOwned),
            "one id per connection"
        );
        // Mixed: only the owned entry is relayed.
        let mixed = table
            .update(
                2,
                "bob",
                vec![entry(10, 9, "null"), entry(20, 2, &laser("bob"))],
            )
            .expect("one entry is bob's");
        assert_eq!(mixed.iter().map(|e| e.client).collect::<Vec<_>>(), [20]);
        assert_eq!(table.snapshot().len(), 2, "ann's pointer is untouched");
    }

    #[test]
    fn states_name_their_sender() {
        let mut table = PresenceTable::default();
        assert!(matches!(
            table.update(1, "bob", vec![entry(10, 1, &laser("ann"))]),
            Err(PresenceRefusal::State(PresenceError::ForeignUser(_)))
        ));
        assert!(matches!(
            table.update(1, "bob", vec![entry(10, 1, "{not json")]),
            Err(PresenceRefusal::State(PresenceError::NotJson(_)))
        ));
        let relayed = table
            .update(1, "bob", vec![entry(10, 1, r#"{"cursor":1}"#)])
            .expect("stamped");
        assert!(relayed[0].json.contains(r#""user":"bob""#));
    }

    #[test]
    fn updates_with_many_client_ids_are_refused_whole() {
        let mut table = PresenceTable::default();
        let many: Vec<_> = (0..100).map(|i| entry(i, 1, &laser("eve"))).collect();
        assert_eq!(
            table.update(1, "eve", many),
            Err(PresenceRefusal::TooManyEntries(100))
        );
        assert!(table.snapshot().is_empty());
    }

    #[test]
    fn stale_clocks_are_not_relayed_and_removals_are() {
        let mut table = PresenceTable::default();
        table
            .update(1, "ann", vec![entry(10, 5, &laser("ann"))])
            .unwrap();
        assert!(table
            .update(1, "ann", vec![entry(10, 4, &laser("ann"))])
            .unwrap()
            .is_empty());
        assert!(table
            .update(1, "ann", vec![entry(10, 5, &laser("ann"))])
            .unwrap()
            .is_empty());
        assert_eq!(
            table
                .update(1, "ann", vec![entry(10, 5, "null")])
                .unwrap()
                .len(),
            1
        );
        assert!(table.snapshot().is_empty());
        // The id stays Ann's after her removal.
        assert_eq!(
            table.update(2, "bob", vec![entry(10, 9, &laser("bob"))]),
            Err(PresenceRefusal::NotOwned)
        );
    }

    #[test]
    fn the_same_identity_takes_its_id_to_a_new_connection() {
        let mut table = PresenceTable::default();
        table
            .update(1, "ann", vec![entry(10, 1, &laser("ann"))])
            .unwrap();
        table
            .update(2, "ann", vec![entry(10, 2, &laser("ann"))])
            .expect("ann reconnected");
        assert!(
            table.remove_conn(1).is_empty(),
            "the old connection's end removes nothing"
        );
        let removals = table.remove_conn(2);
        assert_eq!(removals, vec![entry(10, 3, "null")]);
        // Now free for anyone.
        table
            .update(3, "bob", vec![entry(10, 1, &laser("bob"))])
            .unwrap();
    }
}
