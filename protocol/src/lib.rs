//! Aula wire types shared by the client core and the server.
//!
//! This crate holds data only: the JSON signaling messages exchanged over the WebSocket
//! ([`signal`]), the access-token claims and their signing ([`token`]), and the identifiers both
//! sides use ([`ids`]). It does no IO. The protocol is documented for implementers of other
//! clients in `docs/protocol.md`.
#![deny(missing_docs)]

pub mod api;
pub mod classroom;
pub mod ids;
pub mod signal;
pub mod token;
pub mod webhook;
pub mod whiteboard;

pub use classroom::{
    ChatMessage, ClassroomState, Permissions, PermissionsPatch, Placement, RoomMode, RoomSettings,
    RoomSettingsPatch,
};
pub use ids::{ParticipantId, TrackSid};
pub use signal::{
    ClientMessage, ErrorCode, IceCandidate, LeaveReason, MediaKind, ParticipantInfo, PeerRole,
    RoomInfo, ServerMessage, TrackInfo, TrackSource, VideoLayer, MAX_SIGNAL_MESSAGE_BYTES,
    MAX_VIDEO_LAYERS, PROTOCOL_VERSION,
};
pub use token::{unix_now, Claims, Grants, Role, TokenError};
