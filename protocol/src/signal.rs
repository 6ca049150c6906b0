//! JSON signaling messages carried as WebSocket text frames.
//!
//! Every message is one JSON object with a `"type"` field. Client requests carry an `id`
//! chosen by the client; the server's reply to a request carries the same value as
//! `request_id`, and is either the typed response named in each request's doc or an
//! [`ServerMessage::Error`]. Messages the server sends on its own (events) carry no
//! `request_id`. Unknown fields are ignored by both sides so the protocol can grow; an unknown
//! `type` from the client gets an error, an unknown `type` from the server is ignored by clients.

use serde::{Deserialize, Serialize};

use crate::ids::{ParticipantId, TrackSid};
use crate::token::Role;

/// The protocol version this crate speaks. Sent in [`ClientMessage::Join`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest signaling message either side accepts, in bytes.
pub const MAX_SIGNAL_MESSAGE_BYTES: usize = 64 * 1024;

/// Kind of media a track carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaKind {
    /// Audio (Opus).
    Audio,
    /// Video (H.264).
    Video,
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        })
    }
}

/// Where a track comes from; grants are given per source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrackSource {
    /// A camera (or any app-supplied video of a person).
    Camera,
    /// A microphone (or any app-supplied speech audio).
    Microphone,
    /// A shared screen or window.
    ScreenShare,
}

impl TrackSource {
    /// The media kind a track of this source carries.
    pub fn kind(self) -> MediaKind {
        match self {
            TrackSource::Microphone => MediaKind::Audio,
            TrackSource::Camera | TrackSource::ScreenShare => MediaKind::Video,
        }
    }
}

/// Which of a client's two peer connections a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    /// The connection the client offers and publishes on.
    Publisher,
    /// The connection the server offers and delivers subscriptions on.
    Subscriber,
}

/// An ICE candidate as in the browser's `RTCIceCandidateInit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` attribute value (without `a=`).
    pub candidate: String,
    /// The media stream identification tag the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-line the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
    /// The ICE username fragment of the generation the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Most simulcast layers one video track may have.
pub const MAX_VIDEO_LAYERS: usize = 4;

/// One simulcast layer of a video track: an encoding of the same picture at its own size and
/// bitrate, sent as its own RTP stream. A track's layers are listed lowest first; layer `i` of a
/// track announced with client id `cid` is the WebRTC track with id `cid.i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoLayer {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The most the publisher sends on this layer, bit/s.
    pub max_bitrate_bps: u32,
}

/// A published track as others see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Server-assigned track id.
    pub sid: TrackSid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Camera, microphone or screen share.
    pub source: TrackSource,
    /// Free-form label chosen by the publisher.
    #[serde(default)]
    pub name: String,
    /// Video width in pixels, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Video height in pixels, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Simulcast layers, lowest first; empty for a track sent as one stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<VideoLayer>,
    /// Whether the publisher has muted the track: it stays negotiated, but carries black video
    /// or silence until unmuted (see [`ClientMessage::SetTrackMuted`]).
    #[serde(default)]
    pub muted: bool,
}

/// A participant as others see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Server-assigned session id.
    pub id: ParticipantId,
    /// Identity from the token.
    pub identity: String,
    /// Display name from the token (the identity when the token has none).
    pub name: String,
    /// Role from the token.
    pub role: Role,
    /// Tracks the participant currently publishes.
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
}

/// The room a client joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Room name, as in the token.
    pub name: String,
    /// Server-assigned id of this incarnation of the room (a room closed and reopened gets a new one).
    pub sid: String,
}

/// A message from the client to the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// First message on a connection. Reply: [`ServerMessage::Joined`].
    Join {
        /// Request id.
        id: u64,
        /// The protocol version the client speaks ([`PROTOCOL_VERSION`]).
        protocol_version: u32,
        /// The room to join; must match the token's room.
        room: String,
        /// The access token.
        token: String,
        /// Whether the server subscribes the client to every track automatically.
        #[serde(default = "default_true")]
        auto_subscribe: bool,
    },
    /// Announces a track the client is about to add to its publisher connection.
    /// Reply: [`ServerMessage::TrackPublished`].
    PublishTrack {
        /// Request id.
        id: u64,
        /// Client-chosen id; must equal the WebRTC track id the client adds in its next offer.
        cid: String,
        /// Camera, microphone or screen share.
        source: TrackSource,
        /// Free-form label.
        #[serde(default)]
        name: String,
        /// Video width, when known.
        #[serde(default)]
        width: Option<u32>,
        /// Video height, when known.
        #[serde(default)]
        height: Option<u32>,
        /// Simulcast layers, lowest first (at most [`MAX_VIDEO_LAYERS`]): the client then adds
        /// one WebRTC track per layer, with ids `cid.0`, `cid.1`, … Empty (the default) for
        /// one stream with id `cid`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        layers: Vec<VideoLayer>,
    },
    /// Stops publishing a track. Reply: [`ServerMessage::Ok`].
    UnpublishTrack {
        /// Request id.
        id: u64,
        /// The track to stop.
        sid: TrackSid,
    },
    /// An SDP offer for the publisher connection. Reply: [`ServerMessage::PublisherAnswer`].
    PublisherOffer {
        /// Request id.
        id: u64,
        /// The offer SDP.
        sdp: String,
    },
    /// The answer to a [`ServerMessage::SubscriberOffer`]. Reply: [`ServerMessage::Ok`].
    SubscriberAnswer {
        /// Request id.
        id: u64,
        /// The answer SDP.
        sdp: String,
    },
    /// A local ICE candidate for one of the client's connections. No reply on success.
    Trickle {
        /// Which connection.
        target: PeerRole,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Subscribes to or unsubscribes from tracks. Reply: [`ServerMessage::Ok`].
    UpdateSubscription {
        /// Request id.
        id: u64,
        /// The tracks concerned.
        track_sids: Vec<TrackSid>,
        /// `true` to subscribe, `false` to unsubscribe.
        subscribe: bool,
    },
    /// Keep-alive. Reply: [`ServerMessage::Pong`].
    Ping {
        /// Request id.
        id: u64,
    },
    /// Leaves the room. Reply: [`ServerMessage::Ok`], then the server closes the socket.
    Leave {
        /// Request id.
        id: u64,
    },
    /// Which simulcast layers of a published track the client is sending now (it stops a
    /// layer its uplink cannot carry, or that nobody wants). Lets the server move subscribers
    /// off a stopped layer at once. No reply.
    LayersActive {
        /// The track.
        sid: TrackSid,
        /// Indices of the layers being sent, ascending.
        layers: Vec<u8>,
    },
    /// Mutes or unmutes one of the client's tracks, without renegotiating: the track keeps
    /// flowing (black video, silence) and the server tells everyone else with
    /// [`ServerMessage::TrackMuted`]. Reply: [`ServerMessage::Ok`]; `unknown_track` if the
    /// client publishes no such track.
    SetTrackMuted {
        /// Request id.
        id: u64,
        /// The track.
        sid: TrackSid,
        /// `true` to mute, `false` to unmute.
        muted: bool,
    },
}

fn default_true() -> bool {
    true
}

impl ClientMessage {
    /// The request id, for messages that are requests.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ClientMessage::Join { id, .. }
            | ClientMessage::PublishTrack { id, .. }
            | ClientMessage::UnpublishTrack { id, .. }
            | ClientMessage::PublisherOffer { id, .. }
            | ClientMessage::SubscriberAnswer { id, .. }
            | ClientMessage::UpdateSubscription { id, .. }
            | ClientMessage::Ping { id }
            | ClientMessage::Leave { id }
            | ClientMessage::SetTrackMuted { id, .. } => Some(*id),
            ClientMessage::Trickle { .. } | ClientMessage::LayersActive { .. } => None,
        }
    }

    /// The message's `type` tag, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::PublishTrack { .. } => "publish_track",
            ClientMessage::UnpublishTrack { .. } => "unpublish_track",
            ClientMessage::PublisherOffer { .. } => "publisher_offer",
            ClientMessage::SubscriberAnswer { .. } => "subscriber_answer",
            ClientMessage::UpdateSubscription { .. } => "update_subscription",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Leave { .. } => "leave",
            ClientMessage::Trickle { .. } => "trickle",
            ClientMessage::LayersActive { .. } => "layers_active",
            ClientMessage::SetTrackMuted { .. } => "set_track_muted",
        }
    }
}

/// Why a participant left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaveReason {
    /// It asked to leave.
    ClientRequest,
    /// Its connection dropped.
    ConnectionLost,
    /// The server is shutting down.
    ServerShutdown,
    /// Its identity joined again from another connection.
    DuplicateIdentity,
}

/// A message from the server to the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// Reply to [`ClientMessage::Join`].
    Joined {
        /// The join request's id.
        request_id: u64,
        /// The protocol version the server speaks.
        protocol_version: u32,
        /// The server's software version.
        server_version: String,
        /// The room.
        room: RoomInfo,
        /// The joining participant itself.
        participant: ParticipantInfo,
        /// Everyone else already in the room, with their tracks.
        participants: Vec<ParticipantInfo>,
    },
    /// Reply to [`ClientMessage::PublishTrack`].
    TrackPublished {
        /// The request's id.
        request_id: u64,
        /// The client-chosen id from the request.
        cid: String,
        /// The track as others will see it.
        track: TrackInfo,
    },
    /// Reply to [`ClientMessage::PublisherOffer`].
    PublisherAnswer {
        /// The request's id.
        request_id: u64,
        /// The answer SDP.
        sdp: String,
    },
    /// An offer for the subscriber connection; the client answers with
    /// [`ClientMessage::SubscriberAnswer`]. The server sends a new one whenever the set of
    /// forwarded tracks changes, never while an earlier one is unanswered.
    SubscriberOffer {
        /// The offer SDP.
        sdp: String,
    },
    /// A server ICE candidate for one of the client's connections.
    Trickle {
        /// Which connection.
        target: PeerRole,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Another participant joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Another participant left; its tracks are gone.
    ParticipantLeft {
        /// Who.
        participant_id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// Another participant published a track.
    TrackAdded {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track: TrackInfo,
    },
    /// Another participant stopped publishing a track.
    TrackRemoved {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track_sid: TrackSid,
    },
    /// Generic success reply.
    Ok {
        /// The request's id.
        request_id: u64,
    },
    /// Reply to [`ClientMessage::Ping`].
    Pong {
        /// The request's id.
        request_id: u64,
    },
    /// A request failed, or (without `request_id`) the connection has a problem.
    Error {
        /// The failed request's id, when the failure belongs to one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<u64>,
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
    /// The server is ending this client's session; the socket closes next.
    Leave {
        /// Why.
        reason: LeaveReason,
    },
    /// To a publisher: the simulcast layers of one of its tracks that some subscriber takes.
    /// The publisher may stop encoding the others until they are wanted again (layer 0 is
    /// always wanted). Sent when the set changes.
    LayersWanted {
        /// The track.
        sid: TrackSid,
        /// Indices of the wanted layers, ascending.
        layers: Vec<u8>,
    },
    /// To a subscriber: the simulcast layer of a track now forwarded to it (the server picks
    /// the best one its downlink carries, and switches on keyframes).
    LayerForwarded {
        /// The track.
        sid: TrackSid,
        /// Index of the layer, into the track's `layers`.
        layer: u8,
    },
    /// Another participant muted or unmuted one of its tracks.
    TrackMuted {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track_sid: TrackSid,
        /// Whether it is muted now.
        muted: bool,
    },
}

/// What went wrong, as a stable code. Serialized as a snake_case string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The message is not valid JSON or not a known message.
    MalformedMessage,
    /// The message is larger than [`MAX_SIGNAL_MESSAGE_BYTES`].
    MessageTooLarge,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// The token is malformed, forged, or names an unknown key.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The token is for a different room than the one requested.
    RoomMismatch,
    /// The request needs a joined session and this connection has not joined.
    NotJoined,
    /// `join` was sent twice on one connection.
    AlreadyJoined,
    /// The token's grants do not allow this.
    PermissionDenied,
    /// The request names a track that does not exist.
    UnknownTrack,
    /// The request is well-formed but cannot be carried out (for example a bad SDP).
    InvalidRequest,
    /// The room has reached its participant limit.
    RoomFull,
    /// The server has reached its room limit and opens no new rooms.
    ServerFull,
    /// The connection sends messages faster than the server accepts; the message was dropped.
    RateLimited,
    /// Media arrived for an announced track with the other media kind (video on a track
    /// announced as a microphone, audio on a camera); the server does not forward it.
    TrackKindMismatch,
    /// The server failed; the request may be retried.
    Internal,
    /// A code this version does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedMessage => "malformed_message",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::RoomMismatch => "room_mismatch",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::UnknownTrack => "unknown_track",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TrackKindMismatch => "track_kind_mismatch",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ServerMessage {
    /// Builds an error reply.
    pub fn error(request_id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            request_id,
            code,
            message: message.into(),
        }
    }

    /// The `request_id` when this message replies to a request.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ServerMessage::Joined { request_id, .. }
            | ServerMessage::TrackPublished { request_id, .. }
            | ServerMessage::PublisherAnswer { request_id, .. }
            | ServerMessage::Ok { request_id }
            | ServerMessage::Pong { request_id } => Some(*request_id),
            ServerMessage::Error { request_id, .. } => *request_id,
            _ => None,
        }
    }

    /// Serializes to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_round_trips_with_documented_field_names() {
        let text = r#"{"type":"join","id":1,"protocol_version":1,"room":"r1","token":"t"}"#;
        let msg: ClientMessage = serde_json::from_str(text).unwrap();
        assert_eq!(
            msg,
            ClientMessage::Join {
                id: 1,
                protocol_version: 1,
                room: "r1".into(),
                token: "t".into(),
                auto_subscribe: true,
            }
        );
        assert_eq!(msg.request_id(), Some(1));
    }

    #[test]
    fn errors_serialize_with_snake_case_codes() {
        let msg = ServerMessage::error(Some(7), ErrorCode::TokenExpired, "expired");
        let json = msg.to_json();
        assert_eq!(
            json,
            r#"{"type":"error","request_id":7,"code":"token_expired","message":"expired"}"#
        );
        let back: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn the_track_kind_mismatch_code_has_one_wire_name() {
        let code = ErrorCode::TrackKindMismatch;
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            format!("\"{}\"", code.as_str())
        );
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"track_kind_mismatch\"").unwrap(),
            code
        );
    }

    #[test]
    fn unknown_error_codes_from_newer_servers_still_parse() {
        let msg: ServerMessage =
            serde_json::from_str(r#"{"type":"error","code":"brand_new","message":"x"}"#).unwrap();
        assert!(matches!(
            msg,
            ServerMessage::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn mute_messages_round_trip_and_old_track_infos_are_unmuted() {
        let text = r#"{"type":"set_track_muted","id":4,"sid":"TR_1","muted":true}"#;
        let msg: ClientMessage = serde_json::from_str(text).unwrap();
        assert_eq!(msg.request_id(), Some(4));
        assert_eq!(msg.kind(), "set_track_muted");
        assert_eq!(serde_json::to_string(&msg).unwrap(), text);
        let event = ServerMessage::TrackMuted {
            participant_id: ParticipantId("PA_1".into()),
            track_sid: TrackSid("TR_1".into()),
            muted: false,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"track_muted","participant_id":"PA_1","track_sid":"TR_1","muted":false}"#
        );
        // A track announced by an older server carries no flag: it is not muted.
        let track: TrackInfo =
            serde_json::from_str(r#"{"sid":"TR_1","kind":"audio","source":"microphone"}"#).unwrap();
        assert!(!track.muted);
    }

    #[test]
    fn unknown_client_message_type_is_an_error() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance","id":1}"#).is_err());
    }
}
