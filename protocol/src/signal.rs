//! JSON signaling messages carried as WebSocket text frames.
//!
//! Every message is one JSON object with a `"type"` field. Client requests carry an `id`
//! chosen by the client; the server's reply to a request carries the same value as
//! `request_id`, and is either the typed response named in each request's doc or an
//! [`ServerMessage::Error`]. Messages the server sends on its own (events) carry no
//! `request_id`. Unknown fields are ignored by both sides so the protocol can grow; an unknown
//! `type` from the client gets an error, an unknown `type` from the server is ignored by clients.

use serde::{Deserialize, Serialize};

use crate::classroom::{
    ChatMessage, ClassroomState, Permissions, PermissionsPatch, Placement, RoomSettingsPatch,
};
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
    /// Where it is: lobby (only teachers see lobby participants), audience or stage.
    #[serde(default)]
    pub placement: Placement,
    /// Whether it has a hand raised.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hand_raised: bool,
    /// Whether a teacher made it a co-teacher (it then runs the class with the teachers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub co_teacher: bool,
}

impl ParticipantInfo {
    /// A participant on stage with no tracks yet (what a plain call has).
    pub fn new(id: ParticipantId, identity: &str, name: &str, role: Role) -> Self {
        Self {
            id,
            identity: identity.to_owned(),
            name: name.to_owned(),
            role,
            tracks: Vec::new(),
            placement: Placement::Stage,
            hand_raised: false,
            co_teacher: false,
        }
    }
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
    /// Teacher: lets a participant in from the lobby. Reply: [`ServerMessage::Ok`].
    Admit {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
    },
    /// Teacher: lets everyone in the lobby in. Reply: [`ServerMessage::Ok`].
    AdmitAll {
        /// Request id.
        id: u64,
    },
    /// Teacher: refuses a participant in the lobby, who is shown `reason` and disconnected.
    /// Reply: [`ServerMessage::Ok`].
    Deny {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
        /// Shown to the participant.
        #[serde(default)]
        reason: String,
    },
    /// Teacher: invites a student in the audience to the stage; the student answers with
    /// [`ClientMessage::AnswerStageInvitation`]. A student whose hand is raised asked already
    /// and goes on stage at once. Reply: [`ServerMessage::Ok`]; `stage_full` when there is no
    /// room.
    InviteToStage {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
    },
    /// Student: accepts or declines a stage invitation. Reply: [`ServerMessage::Ok`].
    AnswerStageInvitation {
        /// Request id.
        id: u64,
        /// `true` to go on stage.
        accept: bool,
    },
    /// Teacher: moves a student from the stage to the audience (a student may move itself).
    /// Its camera and microphone end. Reply: [`ServerMessage::Ok`].
    MoveToAudience {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
    },
    /// Teacher: moves every student on stage to the audience. Reply: [`ServerMessage::Ok`].
    ClearStage {
        /// Request id.
        id: u64,
    },
    /// Raises this participant's hand. Reply: [`ServerMessage::Ok`].
    RaiseHand {
        /// Request id.
        id: u64,
    },
    /// Lowers a hand: one's own, or (teacher) anyone's, which dismisses it.
    /// Reply: [`ServerMessage::Ok`].
    LowerHand {
        /// Request id.
        id: u64,
        /// Whose hand; absent for one's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant_id: Option<ParticipantId>,
    },
    /// Teacher: mutes a participant's microphone (`audio`) or camera (`video`). The server
    /// stops forwarding it at once. Reply: [`ServerMessage::Ok`].
    MuteParticipant {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
        /// Which kind of track.
        kind: MediaKind,
    },
    /// Teacher: mutes every student's microphone or camera; `allow_unmute`, when given, sets
    /// whether students may unmute themselves afterwards. Reply: [`ServerMessage::Ok`].
    MuteAll {
        /// Request id.
        id: u64,
        /// Which kind of track.
        kind: MediaKind,
        /// Sets the room's `students_may_unmute`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allow_unmute: Option<bool>,
    },
    /// Teacher: ends a participant's screen share. Reply: [`ServerMessage::Ok`].
    StopScreenShare {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
    },
    /// Teacher: removes a participant, who cannot rejoin this class. Reply:
    /// [`ServerMessage::Ok`].
    RemoveParticipant {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
        /// Shown to the participant.
        #[serde(default)]
        reason: String,
    },
    /// Teacher: locks the room (no new joins, even with a valid token) or unlocks it.
    /// Reply: [`ServerMessage::Ok`].
    LockRoom {
        /// Request id.
        id: u64,
        /// `true` to lock.
        locked: bool,
    },
    /// Teacher: ends the class for everyone. Reply: [`ServerMessage::Ok`], then everyone gets
    /// `leave` with reason `class_ended`.
    EndClass {
        /// Request id.
        id: u64,
    },
    /// Teacher: makes a participant co-teacher, or takes it back. Reply: [`ServerMessage::Ok`].
    SetCoTeacher {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
        /// `true` to make it co-teacher.
        co_teacher: bool,
    },
    /// Teacher: asks every client to feature one participant (or, absent, nobody).
    /// Reply: [`ServerMessage::Ok`].
    Spotlight {
        /// Request id.
        id: u64,
        /// Who; absent to clear.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant_id: Option<ParticipantId>,
    },
    /// Teacher: changes some of the room's settings. Reply: [`ServerMessage::Ok`].
    UpdateRoomSettings {
        /// Request id.
        id: u64,
        /// The fields to change.
        settings: RoomSettingsPatch,
    },
    /// Teacher: changes what one participant may do. Reply: [`ServerMessage::Ok`].
    UpdatePermissions {
        /// Request id.
        id: u64,
        /// Who.
        participant_id: ParticipantId,
        /// The changes.
        permissions: PermissionsPatch,
    },
    /// Sends a chat message to the class, or privately to one participant. Reply:
    /// [`ServerMessage::ChatSent`] once the message is stored.
    SendChat {
        /// Request id.
        id: u64,
        /// The text, at most [`MAX_CHAT_TEXT_BYTES`](crate::classroom::MAX_CHAT_TEXT_BYTES).
        text: String,
        /// For a private message, the recipient.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<ParticipantId>,
        /// Teacher: send as an announcement.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        announcement: bool,
    },
    /// Deletes a chat message: one's own, or (teacher) any. Reply: [`ServerMessage::Ok`].
    DeleteChat {
        /// Request id.
        id: u64,
        /// The message.
        seq: u64,
    },
    /// Asks for older chat messages. Reply: [`ServerMessage::ChatHistory`].
    ChatHistory {
        /// Request id.
        id: u64,
        /// Only messages before this sequence number (absent: the newest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// Most messages to return (at most, and by default,
        /// [`CHAT_PAGE`](crate::classroom::CHAT_PAGE)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
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
            | ClientMessage::SetTrackMuted { id, .. }
            | ClientMessage::Admit { id, .. }
            | ClientMessage::AdmitAll { id }
            | ClientMessage::Deny { id, .. }
            | ClientMessage::InviteToStage { id, .. }
            | ClientMessage::AnswerStageInvitation { id, .. }
            | ClientMessage::MoveToAudience { id, .. }
            | ClientMessage::ClearStage { id }
            | ClientMessage::RaiseHand { id }
            | ClientMessage::LowerHand { id, .. }
            | ClientMessage::MuteParticipant { id, .. }
            | ClientMessage::MuteAll { id, .. }
            | ClientMessage::StopScreenShare { id, .. }
            | ClientMessage::RemoveParticipant { id, .. }
            | ClientMessage::LockRoom { id, .. }
            | ClientMessage::EndClass { id }
            | ClientMessage::SetCoTeacher { id, .. }
            | ClientMessage::Spotlight { id, .. }
            | ClientMessage::UpdateRoomSettings { id, .. }
            | ClientMessage::UpdatePermissions { id, .. }
            | ClientMessage::SendChat { id, .. }
            | ClientMessage::DeleteChat { id, .. }
            | ClientMessage::ChatHistory { id, .. } => Some(*id),
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
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::AdmitAll { .. } => "admit_all",
            ClientMessage::Deny { .. } => "deny",
            ClientMessage::InviteToStage { .. } => "invite_to_stage",
            ClientMessage::AnswerStageInvitation { .. } => "answer_stage_invitation",
            ClientMessage::MoveToAudience { .. } => "move_to_audience",
            ClientMessage::ClearStage { .. } => "clear_stage",
            ClientMessage::RaiseHand { .. } => "raise_hand",
            ClientMessage::LowerHand { .. } => "lower_hand",
            ClientMessage::MuteParticipant { .. } => "mute_participant",
            ClientMessage::MuteAll { .. } => "mute_all",
            ClientMessage::StopScreenShare { .. } => "stop_screen_share",
            ClientMessage::RemoveParticipant { .. } => "remove_participant",
            ClientMessage::LockRoom { .. } => "lock_room",
            ClientMessage::EndClass { .. } => "end_class",
            ClientMessage::SetCoTeacher { .. } => "set_co_teacher",
            ClientMessage::Spotlight { .. } => "spotlight",
            ClientMessage::UpdateRoomSettings { .. } => "update_room_settings",
            ClientMessage::UpdatePermissions { .. } => "update_permissions",
            ClientMessage::SendChat { .. } => "send_chat",
            ClientMessage::DeleteChat { .. } => "delete_chat",
            ClientMessage::ChatHistory { .. } => "chat_history",
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
    /// A teacher (or the server API) removed it from the class.
    Removed,
    /// A teacher refused it entry from the lobby.
    Denied,
    /// A teacher (or the server API) ended the class.
    ClassEnded,
    /// A reason this version does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
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
        /// Everyone else already in the room, with their tracks (empty while the participant
        /// waits in the lobby; teachers also see who waits there).
        participants: Vec<ParticipantInfo>,
        /// The room's classroom state.
        #[serde(default)]
        classroom: ClassroomState,
        /// What the participant may do now (absent from servers without a classroom: the
        /// token's grants apply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permissions: Option<Permissions>,
        /// The newest chat messages it may see, oldest first (at most
        /// [`CHAT_PAGE`](crate::classroom::CHAT_PAGE)).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chat: Vec<ChatMessage>,
    },
    /// To a participant in the lobby: a teacher let it in. What `joined` would have carried.
    Admitted {
        /// The participant itself, now in the audience or on stage.
        participant: ParticipantInfo,
        /// Everyone else in the room, with their tracks.
        participants: Vec<ParticipantInfo>,
        /// The room's classroom state.
        classroom: ClassroomState,
        /// What it may do now.
        permissions: Permissions,
        /// The newest chat messages it may see, oldest first.
        #[serde(default)]
        chat: Vec<ChatMessage>,
    },
    /// A participant's placement, hand or co-teacher flag changed (also sent to the
    /// participant itself).
    ParticipantUpdated {
        /// The participant as it is now.
        participant: ParticipantInfo,
    },
    /// The room's classroom state changed (settings, lock, spotlight, hands, teacher present).
    ClassroomUpdated {
        /// The state as it is now.
        classroom: ClassroomState,
    },
    /// What this participant may do changed.
    PermissionsChanged {
        /// What it may do now.
        permissions: Permissions,
    },
    /// To a student: a teacher invites it to the stage; answer with
    /// [`ClientMessage::AnswerStageInvitation`].
    StageInvitation {
        /// The teacher who invited.
        from: ParticipantId,
    },
    /// To teachers: a student answered a stage invitation.
    StageInvitationAnswered {
        /// The student.
        participant_id: ParticipantId,
        /// Whether it went on stage.
        accepted: bool,
    },
    /// A chat message this participant may see.
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// A chat message was deleted.
    ChatDeleted {
        /// Its sequence number.
        seq: u64,
    },
    /// Reply to [`ClientMessage::SendChat`]: the message as stored.
    ChatSent {
        /// The request's id.
        request_id: u64,
        /// The message.
        message: ChatMessage,
    },
    /// Reply to [`ClientMessage::ChatHistory`].
    ChatHistory {
        /// The request's id.
        request_id: u64,
        /// Messages, oldest first.
        messages: Vec<ChatMessage>,
        /// Whether older messages exist.
        more: bool,
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
        /// For people: why a teacher denied or removed it, when one said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
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
    /// A participant muted or unmuted one of its tracks, or a teacher muted it. Sent to the
    /// publisher itself too when a teacher muted it (its client then mutes locally).
    TrackMuted {
        /// The publisher.
        participant_id: ParticipantId,
        /// The track.
        track_sid: TrackSid,
        /// Whether it is muted now.
        muted: bool,
        /// Whether a teacher muted it (the server then forwards nothing of it until it is
        /// unmuted).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_moderator: bool,
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
    /// The request does not fit the participant's or the room's state (admitting someone
    /// not in the lobby, answering an invitation that was never made).
    InvalidState,
    /// The request names a participant who is not in the room.
    UnknownParticipant,
    /// The request (server API) names a room the server does not know.
    UnknownRoom,
    /// The stage has no room for another student.
    StageFull,
    /// The room is locked: it takes no new joins.
    RoomLocked,
    /// This identity was removed from the class and may not rejoin it.
    Removed,
    /// Chat is off, or this participant may not chat now.
    ChatDisabled,
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
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::StageFull => "stage_full",
            ErrorCode::RoomLocked => "room_locked",
            ErrorCode::Removed => "removed",
            ErrorCode::ChatDisabled => "chat_disabled",
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
            | ServerMessage::Pong { request_id }
            | ServerMessage::ChatSent { request_id, .. }
            | ServerMessage::ChatHistory { request_id, .. } => Some(*request_id),
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
            by_moderator: false,
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
