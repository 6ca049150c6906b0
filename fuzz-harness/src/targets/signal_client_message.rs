//! A signaling message from a client, as the server decodes each WebSocket text frame
//! (`server/src/session.rs`): typed, or else a best-effort request id for the error reply.
//! A message that decodes must survive a round trip through its own encoding.

use aula_protocol::{ClientMessage, MAX_SIGNAL_MESSAGE_BYTES};

/// Runs one input.
pub fn run(data: &[u8]) {
    // WebSocket text frames are UTF-8 by the time the server sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_SIGNAL_MESSAGE_BYTES {
        return;
    }
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => {
            let _ = (message.request_id(), message.kind());
            let encoded = serde_json::to_string(&message).expect("a decoded message encodes");
            let again: ClientMessage =
                serde_json::from_str(&encoded).expect("an encoded message decodes");
            assert_eq!(again, message, "round trip through {encoded}");
        }
        Err(_) => {
            let _ = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_u64()));
        }
    }
}
