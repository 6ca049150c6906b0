//! A server-API request body (`server/src/api.rs`, `docs/api.md`) into the type its call
//! takes, as the handlers parse it (`serde_json::from_slice`; an empty or blank body is `{}`),
//! then the checks the handlers run on it before the room sees it: a room's settings validated
//! (as created, or patched onto the defaults). A body that parses must survive its own
//! encoding. The HTTP routing and the bearer token are not fed from here (tokens: the `token`
//! target).
//!
//! Input: a selector byte (which call's body, modulo the number of calls), then the body.

use aula_protocol::api::{
    CreateRoom, LockRequest, MuteAllRequest, MuteRequest, ReasonRequest, SystemMessageRequest,
};
use aula_protocol::{PermissionsPatch, RoomSettings, RoomSettingsPatch};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 8 {
        0 => {
            if let Some(request) = parse::<CreateRoom>(body) {
                let _ = request.settings.validate();
            }
        }
        1 => {
            if let Some(patch) = parse::<RoomSettingsPatch>(body) {
                let patched = RoomSettings::default().patched(&patch);
                if patch.stage_capacity.is_none() {
                    assert!(patched.validate().is_ok(), "{patch:?}");
                }
            }
        }
        2 => drop(parse::<PermissionsPatch>(body)),
        3 => drop(parse::<MuteRequest>(body)),
        4 => drop(parse::<MuteAllRequest>(body)),
        5 => drop(parse::<ReasonRequest>(body)),
        6 => drop(parse::<LockRequest>(body)),
        _ => drop(parse::<SystemMessageRequest>(body)),
    }
}

/// Parses a body as the API does; what parses must encode and parse back to itself.
fn parse<T: DeserializeOwned + Serialize + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: T = serde_json::from_slice(text).ok()?;
    let encoded = serde_json::to_vec(&value).expect("a parsed body encodes");
    let again: T = serde_json::from_slice(&encoded).expect("an encoded body parses");
    assert_eq!(again, value);
    Some(value)
}
