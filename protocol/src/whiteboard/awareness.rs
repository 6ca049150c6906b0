//! Ephemeral presence on the board (laser pointers), carried as y-protocols awareness updates:
//! never stored, relayed to everyone in the room, cleared when the sender leaves.
//!
//! Each client's state is a JSON object; Aula uses
//! `{"user": IDENTITY, "laser": {"page": PAGE, "x": X, "y": Y}}` (`laser` `null` when the
//! pointer is off). A state of `null` removes the client. The server ties every state to its
//! sender ([`stamp_state`]): `user` is always the sender's identity.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

/// Where someone's laser pointer is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Laser {
    /// The page pointed at.
    pub page: String,
    /// Horizontal position in board units.
    pub x: f64,
    /// Vertical position in board units.
    pub y: f64,
}

/// One client's presence state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The participant's identity.
    pub user: String,
    /// The laser pointer, when on.
    #[serde(default)]
    pub laser: Option<Laser>,
}

/// One entry of an awareness update.
#[derive(Clone, Debug, PartialEq)]
pub struct AwarenessEntry {
    /// The yrs client id the state belongs to.
    pub client: u64,
    /// Increases with every change of that client's state.
    pub clock: u32,
    /// The state as JSON text; `"null"` removes the client.
    pub json: String,
}

/// Why a client's presence state was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceError {
    /// The state is not JSON text.
    #[error("presence state is not JSON: {0}")]
    NotJson(String),
    /// The state is JSON but neither an object nor `null`.
    #[error("presence state must be a JSON object or null")]
    NotAnObject,
    /// The state's `user` is not the sender's identity.
    #[error("presence state names another user: {0}")]
    ForeignUser(String),
}

/// Ties a presence state to its sender, whose token identity is `identity`: `null` (a removal)
/// passes unchanged; a JSON object passes with `user` set to `identity`; anything else, and an
/// object whose `user` is not the string `identity`, is refused. The returned text is
/// re-serialized, so what others parse is exactly what was checked (no duplicate keys).
pub fn stamp_state(json: &str, identity: &str) -> Result<String, PresenceError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| PresenceError::NotJson(e.to_string()))?;
    let mut object = match value {
        serde_json::Value::Null => return Ok("null".to_owned()),
        serde_json::Value::Object(object) => object,
        _ => return Err(PresenceError::NotAnObject),
    };
    match object.get("user") {
        None => {
            object.insert("user".to_owned(), identity.into());
        }
        Some(serde_json::Value::String(user)) if user == identity => {}
        Some(other) => {
            let mut shown = other.to_string();
            if shown.len() > 64 {
                let mut end = 64;
                while !shown.is_char_boundary(end) {
                    end -= 1;
                }
                shown.truncate(end);
                shown.push('…');
            }
            return Err(PresenceError::ForeignUser(shown));
        }
    }
    Ok(serde_json::Value::Object(object).to_string())
}

/// Encodes entries as a y-protocols awareness update.
pub fn encode(entries: &[AwarenessEntry]) -> Vec<u8> {
    let clients: HashMap<_, _> = entries
        .iter()
        .map(|e| {
            (
                yrs::block::ClientID::new(e.client),
                AwarenessUpdateEntry {
                    clock: e.clock,
                    json: Arc::from(e.json.as_str()),
                },
            )
        })
        .collect();
    AwarenessUpdate { clients }.encode_v1()
}

/// Decodes a y-protocols awareness update, refusing one that declares more entries than it has
/// bytes (see [`super::declared`]).
pub fn decode(bytes: &[u8]) -> Result<Vec<AwarenessEntry>, String> {
    super::declared::check_awareness(bytes)?;
    let update = AwarenessUpdate::decode_v1(bytes).map_err(|e| e.to_string())?;
    Ok(update
        .clients
        .into_iter()
        .map(|(client, e)| AwarenessEntry {
            client: client.get(),
            clock: e.clock,
            json: e.json.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entries = vec![AwarenessEntry {
            client: 42,
            clock: 3,
            json: r#"{"user":"ann","laser":{"page":"1","x":1.0,"y":2.0}}"#.into(),
        }];
        assert_eq!(decode(&encode(&entries)).expect("decodes"), entries);
        assert!(decode(&[5, 1]).is_err());
        // Found by the `whiteboard_client` fuzz target: a count of 2^46 entries in 7 bytes.
        assert!(decode(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
    }

    #[test]
    fn states_are_tied_to_their_sender() {
        let own = r#"{"user":"ann","laser":{"page":"1","x":1.0,"y":2.0}}"#;
        let stamped = stamp_state(own, "ann").expect("own state");
        let presence: Presence = serde_json::from_str(&stamped).expect("still a presence");
        assert_eq!(presence.user, "ann");
        assert_eq!(presence.laser.expect("laser").x, 1.0);
        // No `user`: the server names the sender.
        let anonymous = stamp_state(r#"{"cursor":3}"#, "ann").expect("object");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&anonymous).unwrap()["user"],
            "ann"
        );
        assert_eq!(stamp_state("null", "ann").unwrap(), "null");
        assert!(matches!(
            stamp_state(r#"{"user":"bob"}"#, "ann"),
            Err(PresenceError::ForeignUser(_))
        ));
        assert!(matches!(
            stamp_state(r#"{"user":{"name":"ann"}}"#, "ann"),
            Err(PresenceError::ForeignUser(_))
        ));
        // A second `user` key cannot hide behind the first one.
        let doubled = stamp_state(r#"{"user":"bob","user":"ann"}"#, "ann").expect("last wins");
        assert_eq!(doubled.matches("user").count(), 1);
        assert!(matches!(
            stamp_state(r#"{"user":"ann""#, "ann"),
            Err(PresenceError::NotJson(_))
        ));
        assert!(matches!(
            stamp_state("[1,2]", "ann"),
            Err(PresenceError::NotAnObject)
        ));
        assert!(matches!(
            stamp_state(&format!(r#"{{"user":"{}"}}"#, "x".repeat(500)), "ann"),
            Err(PresenceError::ForeignUser(shown)) if shown.len() < 80
        ));
    }
}
