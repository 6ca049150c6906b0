//! A signaling message from the server, as the client decodes each WebSocket text frame
//! (`core/src/signal_client.rs`). A message that decodes must survive a round trip through
//! its own encoding.

use aula_protocol::{ServerMessage, MAX_SIGNAL_MESSAGE_BYTES};

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_SIGNAL_MESSAGE_BYTES {
        return;
    }
    if let Ok(message) = serde_json::from_str::<ServerMessage>(text) {
        let _ = message.request_id();
        let encoded = message.to_json();
        let again: ServerMessage =
            serde_json::from_str(&encoded).expect("an encoded message decodes");
        assert_eq!(again, message, "round trip through {encoded}");
    }
}
