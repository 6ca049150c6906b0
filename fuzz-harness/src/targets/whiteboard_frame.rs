//! A binary whiteboard frame, as the server reads it from Aula clients and from y-websocket
//! clients (`/yjs/{room}`), and as clients read it from the server: y-protocols sync and
//! awareness messages plus Aula's ack and error. A frame that decodes must encode to bytes that
//! decode to the same frame, and must not decode with a byte more (trailing garbage is an
//! error, as `Frame::decode` promises); an awareness payload goes on through its own decoder
//! and each state through the presence JSON, as the server and the clients read them.

use aula_protocol::whiteboard::awareness::{self, Presence};
use aula_protocol::whiteboard::Frame;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let _ = frame.is_edit();
    let encoded = frame.encode();
    let again = Frame::decode(&encoded).expect("an encoded frame decodes");
    assert_eq!(again, frame);
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(
        Frame::decode(&longer).is_err(),
        "a frame with a trailing byte decodes"
    );
    if let Frame::Awareness(bytes) = &frame {
        if let Ok(entries) = awareness::decode(bytes) {
            for entry in &entries {
                let _ = serde_json::from_str::<Presence>(&entry.json);
            }
            let again =
                awareness::decode(&awareness::encode(&entries)).expect("encoded awareness decodes");
            assert_eq!(again.len(), entries.len());
        }
    }
}
