//! The room's rules as a sans-IO state machine.
//!
//! [`RoomState`] owns everything a room decides: who is in it and where (lobby, audience,
//! stage), roles and what each may do, raised hands, stage invitations, moderation (mutes,
//! removals, the lock, the spotlight), chat and attendance. It holds no locks, spawns no tasks
//! and reads no clock: each entry point takes the input and the time ([`Now`]) and returns the
//! [`Action`]s a driver carries out, in order: messages to send, subscriptions to change,
//! tracks to end, sessions to close, records to store, webhooks to fire. The async room in
//! `crate::room` is that driver. Tests drive the state machine directly with virtual time.
//!
//! Every entry point ends with [`RoomState::settle`], which compares what each participant
//! may do and what the room looks like with what they were last told, and sends the
//! differences. Rules therefore only change state; the events that tell everyone follow from
//! it, and cannot be forgotten.

mod attendance;
mod chat;
mod commands;
mod member;
mod record;
mod state;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use aula_protocol::signal::LeaveReason;
use aula_protocol::webhook::WebhookEventKind;
use aula_protocol::{
    ChatMessage, ErrorCode, MediaKind, ParticipantId, PermissionsPatch, RoomSettingsPatch,
    ServerMessage, TrackSid,
};

pub use attendance::{summarize, AttendanceEvent, AttendanceKind};
pub use member::Joiner;
pub use record::{RoomRecord, RoomSnapshot};
pub use state::RoomState;

/// How long a student's place on stage waits for it after its connection dropped.
pub const STAGE_HOLD: Duration = Duration::from_secs(30);
/// Chat messages the room keeps in memory (newer ones; older pages come from the store).
pub const CHAT_WINDOW: usize = 1_000;
/// Chat messages per second one participant may send (bursts of [`CHAT_BURST`]).
pub const CHAT_PER_SECOND: u32 = 5;
/// Chat burst.
pub const CHAT_BURST: u32 = 10;
/// Hand raises and lowers per second one participant may make (bursts of [`HAND_BURST`]).
pub const HANDS_PER_SECOND: u32 = 2;
/// Hand burst.
pub const HAND_BURST: u32 = 4;
/// Most tracks one participant may have announced or published at once.
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 8;

/// The time an input happens at: a monotonic instant for durations and rates, and the wall
/// clock (ms since the Unix epoch) for what is stored and shown.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Wall-clock time, ms since the Unix epoch.
    pub unix_ms: u64,
}

impl Now {
    /// The current time by the system clocks.
    pub fn system() -> Self {
        Self {
            mono: Instant::now(),
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// This time plus `d` on both clocks.
    pub fn after(self, d: Duration) -> Self {
        Self {
            mono: self.mono + d,
            unix_ms: self.unix_ms + d.as_millis() as u64,
        }
    }
}

/// What a participant's whiteboard connection may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardAccess {
    /// Whether it is attached to the board at all (not while in the lobby).
    pub attached: bool,
    /// Whether it may change it.
    pub write: bool,
    /// Whether it may lock pages and edit locked ones.
    pub admin: bool,
}

/// Who a chat store's outcome is reported to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatReply {
    /// A participant's `send_chat` or `delete_chat`.
    Participant {
        /// Who asked.
        id: ParticipantId,
        /// Its request id.
        request_id: u64,
    },
    /// The server API (which learns the outcome from the driver).
    Api,
}

/// Something the driver must do, in the order given.
// Actions live for one input in a short vector; boxing the messages would cost an allocation
// each for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Action {
    /// Queue a signaling message to a participant.
    Send {
        /// To whom.
        to: ParticipantId,
        /// What.
        message: ServerMessage,
    },
    /// Forward a track to a participant.
    Subscribe {
        /// Who receives.
        subscriber: ParticipantId,
        /// What.
        track: TrackSid,
    },
    /// Stop forwarding a track to a participant (nothing if it was not forwarded).
    Unsubscribe {
        /// Who received it.
        subscriber: ParticipantId,
        /// What.
        track: TrackSid,
    },
    /// The room ended a published track: drop it from the SFU and tell the publisher's session
    /// to forget it (media that still comes for it is not forwarded).
    EndTrack {
        /// Who published it.
        publisher: ParticipantId,
        /// The track.
        track: TrackSid,
    },
    /// Forward a track's packets, or hold them back (a teacher muted it).
    SetForwarding {
        /// The track.
        track: TrackSid,
        /// Whether its packets go out.
        forwarded: bool,
    },
    /// End a participant's session: queue `leave` with this reason and close it.
    Disconnect {
        /// Whose session.
        who: ParticipantId,
        /// Why.
        reason: LeaveReason,
        /// Shown to it.
        message: Option<String>,
    },
    /// Change what a participant's whiteboard link may do.
    Board {
        /// Whose.
        who: ParticipantId,
        /// What it may do now.
        access: BoardAccess,
    },
    /// Tell the application's backend.
    Webhook(WebhookEventKind),
    /// Store a chat message (new, or deleted), then report with
    /// [`RoomState::chat_stored`] or [`RoomState::chat_store_failed`].
    StoreChat {
        /// The class it belongs to.
        class: u64,
        /// The message as it must be stored.
        message: ChatMessage,
    },
    /// Store the room's record.
    StoreRoom(RoomRecord),
    /// Store an attendance event.
    StoreAttendance(AttendanceEvent),
    /// Read a page of older chat messages from the store and send it to a participant.
    LoadChatPage {
        /// Who asked.
        to: ParticipantId,
        /// Its identity (private messages of others are filtered out).
        identity: String,
        /// Its request id.
        request_id: u64,
        /// The class.
        class: u64,
        /// Messages before this sequence number.
        before: u64,
        /// At most this many.
        limit: usize,
    },
}

/// A request the room refused: the wire error code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// For programs.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Who asks for a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A participant of the room (its permissions apply).
    Participant(ParticipantId),
    /// The application's backend through the server API (may do anything a teacher may).
    Api,
}

/// Whom a [`Command`] is about: a session id (from clients) or an identity (from the server
/// API, where backends know identities).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A participant's session id.
    Id(ParticipantId),
    /// A participant's identity.
    Identity(String),
}

/// What teachers (and the server API) do to run a class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Let a participant in from the lobby.
    Admit(Subject),
    /// Let everyone in the lobby in.
    AdmitAll,
    /// Refuse a participant in the lobby, with a reason it is shown.
    Deny(Subject, String),
    /// Invite a student to the stage (or put it there at once if its hand is raised).
    InviteToStage(Subject),
    /// Move a student from the stage to the audience.
    MoveToAudience(Subject),
    /// Move every student on stage to the audience.
    ClearStage,
    /// Lower (dismiss) a participant's hand.
    LowerHand(Subject),
    /// Mute a participant's microphone (audio) or camera (video).
    Mute(Subject, MediaKind),
    /// Mute every student's microphone or camera; optionally set whether they may unmute.
    MuteAll(MediaKind, Option<bool>),
    /// End a participant's screen share.
    StopScreenShare(Subject),
    /// Remove a participant from the class, with a reason it is shown.
    Remove(Subject, String),
    /// Lock or unlock the room.
    Lock(bool),
    /// End the class for everyone.
    EndClass,
    /// Make a participant co-teacher or take it back.
    SetCoTeacher(Subject, bool),
    /// Feature a participant, or nobody.
    Spotlight(Option<Subject>),
    /// Change some settings.
    UpdateSettings(RoomSettingsPatch),
    /// Change what one participant may do.
    UpdatePermissions(Subject, PermissionsPatch),
    /// A system message from the backend, to the class or one identity.
    SystemMessage {
        /// The text.
        text: String,
        /// Recipient identity, for a private one.
        to: Option<String>,
    },
}
