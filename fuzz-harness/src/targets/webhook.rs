//! A webhook delivery, as an application's endpoint checks it: the `Aula-Signature` header
//! against the body (`webhook::verify_signature`), then the body as an event. The input is the
//! header, a newline, and the body.

use aula_protocol::webhook::{self, WebhookEvent};

/// The secret the dev server signs with (`aula_server::DEV_API_SECRET`).
const SECRET: &str = "devsecret";

/// Runs one input.
pub fn run(data: &[u8]) {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    // Any clock: the signature's own time, with a day either way.
    for now in [0, 1_700_000_000, u64::MAX] {
        let _ = webhook::verify_signature(SECRET, header, body, now, 86_400);
    }
    if let Ok(event) = serde_json::from_slice::<WebhookEvent>(body) {
        let _ = event.kind.name();
        let encoded = serde_json::to_vec(&event).expect("a decoded event encodes");
        let again: WebhookEvent =
            serde_json::from_slice(&encoded).expect("an encoded event decodes");
        assert_eq!(again, event);
    }
}
