//! Ephemeral presence on the board (laser pointers), carried as y-protocols awareness updates:
//! never stored, relayed to everyone in the room, cleared when the sender leaves.
//!
//! Each client's state is a JSON object; Aula uses
//! `{"user": IDENTITY, "laser": {"page": PAGE, "x": X, "y": Y}}` (`laser` `null` when the
//! pointer is off). A state of `null` removes the client.

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
}
