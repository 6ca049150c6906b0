//! The classroom's records and enums for the bindings (placement, permissions, the room's
//! classroom state and settings, chat), and their conversions to and from the core's.
//!
//! The protocol's enums are `#[non_exhaustive]` but have no catch-all on the wire (a value this
//! version does not know fails to parse the message that carries it), so the fallback arms
//! below cannot be reached today; each maps to the most restrictive value.

use aula_protocol::classroom::{ChatKind as WireChatKind, ChatPolicy as WireChatPolicy};
use aula_protocol::signal::LeaveReason as WireLeaveReason;
use aula_protocol::{
    ChatMessage as WireChatMessage, ClassroomState as WireClassroomState, ParticipantId,
    Permissions as WirePermissions, PermissionsPatch as WirePermissionsPatch,
    Placement as WirePlacement, RoomMode as WireRoomMode, RoomSettings as WireRoomSettings,
    RoomSettingsPatch as WireRoomSettingsPatch, TrackSource,
};

use super::error::AulaError;
use super::records::TrackOrigin;

/// Where a participant is in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Placement {
    /// Waiting for a teacher to admit it: sees nothing of the room, may do nothing.
    Lobby,
    /// Admitted, watching: receives media, chats, raises a hand; publishes nothing.
    Audience,
    /// Admitted and publishing what its permissions allow (everyone in a plain call).
    Stage,
}

impl From<WirePlacement> for Placement {
    fn from(placement: WirePlacement) -> Self {
        match placement {
            WirePlacement::Lobby => Placement::Lobby,
            WirePlacement::Stage => Placement::Stage,
            WirePlacement::Audience => Placement::Audience,
            _ => Placement::Lobby,
        }
    }
}

/// How a room runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum RoomMode {
    /// Everyone admitted is on stage (a video call).
    Call,
    /// Students watch from the audience until a teacher brings them on stage (1 + N).
    Class,
}

impl From<WireRoomMode> for RoomMode {
    fn from(mode: WireRoomMode) -> Self {
        match mode {
            WireRoomMode::Call => RoomMode::Call,
            _ => RoomMode::Class,
        }
    }
}

impl From<RoomMode> for WireRoomMode {
    fn from(mode: RoomMode) -> Self {
        match mode {
            RoomMode::Call => WireRoomMode::Call,
            RoomMode::Class => WireRoomMode::Class,
        }
    }
}

/// Who may send chat messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ChatPolicy {
    /// Everyone admitted.
    All,
    /// Teachers and co-teachers only; students read.
    Teachers,
    /// Nobody: chat is off.
    Off,
}

impl From<WireChatPolicy> for ChatPolicy {
    fn from(policy: WireChatPolicy) -> Self {
        match policy {
            WireChatPolicy::All => ChatPolicy::All,
            WireChatPolicy::Teachers => ChatPolicy::Teachers,
            _ => ChatPolicy::Off,
        }
    }
}

impl From<ChatPolicy> for WireChatPolicy {
    fn from(policy: ChatPolicy) -> Self {
        match policy {
            ChatPolicy::All => WireChatPolicy::All,
            ChatPolicy::Teachers => WireChatPolicy::Teachers,
            ChatPolicy::Off => WireChatPolicy::Off,
        }
    }
}

/// A room's classroom settings.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RoomSettings {
    /// Call or class.
    pub mode: RoomMode,
    /// Students wait in a lobby until a teacher admits them.
    pub lobby: bool,
    /// Most students on stage at once in a class (teachers do not count).
    pub stage_capacity: u32,
    /// In a class, a raised hand goes on stage at once while there is room.
    pub auto_stage: bool,
    /// Who may chat.
    pub chat: ChatPolicy,
    /// Students may message each other privately (to and from teachers always works).
    pub student_private_chat: bool,
    /// Students may unmute what a teacher muted.
    pub students_may_unmute: bool,
}

impl From<WireRoomSettings> for RoomSettings {
    fn from(s: WireRoomSettings) -> Self {
        RoomSettings {
            mode: s.mode.into(),
            lobby: s.lobby,
            stage_capacity: s.stage_capacity,
            auto_stage: s.auto_stage,
            chat: s.chat.into(),
            student_private_chat: s.student_private_chat,
            students_may_unmute: s.students_may_unmute,
        }
    }
}

/// A change to some of a room's settings (teachers, `update_room_settings`); fields left
/// unset (null, `None`, `nil`) stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct RoomSettingsPatch {
    /// See [`RoomSettings::mode`]: a call turned class moves students to the audience, a
    /// class turned call puts them on stage.
    #[uniffi(default = None)]
    pub mode: Option<RoomMode>,
    /// See [`RoomSettings::lobby`]: turning it off admits everyone waiting.
    #[uniffi(default = None)]
    pub lobby: Option<bool>,
    /// See [`RoomSettings::stage_capacity`] (1 to 64).
    #[uniffi(default = None)]
    pub stage_capacity: Option<u32>,
    /// See [`RoomSettings::auto_stage`].
    #[uniffi(default = None)]
    pub auto_stage: Option<bool>,
    /// See [`RoomSettings::chat`].
    #[uniffi(default = None)]
    pub chat: Option<ChatPolicy>,
    /// See [`RoomSettings::student_private_chat`].
    #[uniffi(default = None)]
    pub student_private_chat: Option<bool>,
    /// See [`RoomSettings::students_may_unmute`].
    #[uniffi(default = None)]
    pub students_may_unmute: Option<bool>,
}

impl From<RoomSettingsPatch> for WireRoomSettingsPatch {
    fn from(p: RoomSettingsPatch) -> Self {
        WireRoomSettingsPatch {
            mode: p.mode.map(Into::into),
            lobby: p.lobby,
            stage_capacity: p.stage_capacity,
            auto_stage: p.auto_stage,
            chat: p.chat.map(Into::into),
            student_private_chat: p.student_private_chat,
            students_may_unmute: p.students_may_unmute,
        }
    }
}

/// What this client may do now: its token's grants narrowed by where it is (only the stage
/// publishes in a class; the lobby may do nothing) and changed by teachers. The server
/// enforces them; apps use them to show what is possible.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Permissions {
    /// What it may publish now.
    pub publish: Vec<TrackOrigin>,
    /// Whether it receives others' media.
    pub subscribe: bool,
    /// Whether it may change the whiteboard.
    pub whiteboard_write: bool,
    /// Whether it may send chat messages now.
    pub chat: bool,
    /// Whether it may unmute a track a teacher muted.
    pub unmute: bool,
    /// Whether it runs the class (teacher or co-teacher): admits, stages, mutes, removes.
    pub moderate: bool,
}

impl From<WirePermissions> for Permissions {
    fn from(p: WirePermissions) -> Self {
        Permissions {
            publish: p.publish.into_iter().map(TrackOrigin::from).collect(),
            subscribe: p.subscribe,
            whiteboard_write: p.whiteboard_write,
            chat: p.chat,
            unmute: p.unmute,
            moderate: p.moderate,
        }
    }
}

/// A teacher's change to what one participant may do (`update_permissions`); unset fields
/// follow the token and the room.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct PermissionsPatch {
    /// What it may publish while on stage (replaces the token's list).
    #[uniffi(default = None)]
    pub publish: Option<Vec<TrackOrigin>>,
    /// Whether it may chat (while the room's chat policy lets students chat).
    #[uniffi(default = None)]
    pub chat: Option<bool>,
    /// Whether it may write on the whiteboard.
    #[uniffi(default = None)]
    pub whiteboard_write: Option<bool>,
    /// Whether it may unmute what a teacher muted.
    #[uniffi(default = None)]
    pub unmute: Option<bool>,
}

impl TryFrom<PermissionsPatch> for WirePermissionsPatch {
    type Error = AulaError;

    fn try_from(p: PermissionsPatch) -> Result<Self, AulaError> {
        let publish = match p.publish {
            Some(origins) => Some(
                origins
                    .into_iter()
                    .map(|o| {
                        o.track_source().ok_or_else(|| AulaError::InvalidArgument {
                            reason: "permissions cannot name an unknown track origin".into(),
                        })
                    })
                    .collect::<Result<Vec<TrackSource>, AulaError>>()?,
            ),
            None => None,
        };
        Ok(WirePermissionsPatch {
            publish,
            chat: p.chat,
            whiteboard_write: p.whiteboard_write,
            unmute: p.unmute,
        })
    }
}

/// The room's shared classroom state, as every admitted participant sees it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ClassroomState {
    /// The room's settings.
    pub settings: RoomSettings,
    /// Whether the room takes no new participants.
    pub locked: bool,
    /// The participant id a teacher asked everyone to feature, if any.
    pub spotlight: Option<String>,
    /// Participant ids with a raised hand, first raised first.
    pub hands: Vec<String>,
    /// Whether a teacher or co-teacher is in the room.
    pub teacher_present: bool,
    /// Students on stage now (the stage capacity applies to them).
    pub stage_count: u32,
}

impl From<WireClassroomState> for ClassroomState {
    fn from(c: WireClassroomState) -> Self {
        ClassroomState {
            settings: c.settings.into(),
            locked: c.locked,
            spotlight: c.spotlight.map(|p| p.0),
            hands: c.hands.into_iter().map(|p| p.0).collect(),
            teacher_present: c.teacher_present,
            stage_count: c.stage_count,
        }
    }
}

/// What kind of chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ChatKind {
    /// An ordinary message.
    Message,
    /// A teacher's announcement, to show prominently.
    Announcement,
    /// From the server or the application's backend (no sender).
    System,
}

impl From<WireChatKind> for ChatKind {
    fn from(kind: WireChatKind) -> Self {
        match kind {
            WireChatKind::Announcement => ChatKind::Announcement,
            WireChatKind::System => ChatKind::System,
            _ => ChatKind::Message,
        }
    }
}

/// One chat message, as the server stored it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ChatMessage {
    /// The server's number for it, increasing within a class (starts at 1).
    pub seq: u64,
    /// When the server stored it, ms since the Unix epoch.
    pub time_ms: u64,
    /// The sender's identity; none for system messages.
    pub from_identity: Option<String>,
    /// The sender's display name (empty for system messages).
    pub from_name: String,
    /// For a private message, the recipient's identity.
    pub to_identity: Option<String>,
    /// Message, announcement or system.
    pub kind: ChatKind,
    /// The text (empty once deleted).
    pub text: String,
    /// Whether its sender or a teacher deleted it.
    pub deleted: bool,
}

impl From<WireChatMessage> for ChatMessage {
    fn from(m: WireChatMessage) -> Self {
        ChatMessage {
            seq: m.seq,
            time_ms: m.time,
            from_identity: m.from,
            from_name: m.from_name,
            to_identity: m.to,
            kind: m.kind.into(),
            text: m.text,
            deleted: m.deleted,
        }
    }
}

/// A chat message to send.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ChatDraft {
    /// The text (1 to 4096 bytes of UTF-8, no control characters but newlines).
    pub text: String,
    /// For a private message, the recipient's participant id.
    #[uniffi(default = None)]
    pub to_participant_id: Option<String>,
    /// Send as an announcement (teachers only).
    #[uniffi(default = false)]
    pub announcement: bool,
}

impl From<ChatDraft> for aula_core::ChatDraft {
    fn from(d: ChatDraft) -> Self {
        aula_core::ChatDraft {
            text: d.text,
            to: d.to_participant_id.map(|p| ParticipantId::from(p.as_str())),
            announcement: d.announcement,
        }
    }
}

/// A page of older chat messages (`chat_history`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ChatPage {
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether there are older ones still.
    pub more: bool,
}

/// This client's view of the classroom: where it is, what it may do, the room's classroom
/// state, a pending stage invitation and the chat it has seen.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ClassroomView {
    /// Where this client is.
    pub placement: Placement,
    /// What it may do now; none from a server without a classroom (the token's grants apply).
    pub permissions: Option<Permissions>,
    /// The room's classroom state.
    pub classroom: ClassroomState,
    /// The participant id of the teacher whose stage invitation waits for an answer.
    pub invitation_from: Option<String>,
    /// Whether this client has a hand raised.
    pub hand_raised: bool,
    /// Whether a teacher made it co-teacher.
    pub co_teacher: bool,
    /// The newest chat messages it may see (at most 1000), oldest first.
    pub chat: Vec<ChatMessage>,
}

impl From<aula_core::ClassroomView> for ClassroomView {
    fn from(v: aula_core::ClassroomView) -> Self {
        ClassroomView {
            placement: v.placement.into(),
            permissions: v.permissions.map(Into::into),
            classroom: v.classroom.into(),
            invitation_from: v.invitation.map(|p| p.0),
            hand_raised: v.hand_raised,
            co_teacher: v.co_teacher,
            chat: v.chat.into_iter().map(Into::into).collect(),
        }
    }
}

/// Why a participant left, or why this client's room closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum LeaveReason {
    /// It left (for this client: the app called `disconnect`).
    ClientRequest,
    /// Its connection dropped (for this client: and it could not rejoin).
    ConnectionLost,
    /// The server shut down.
    ServerShutdown,
    /// The same identity joined from elsewhere.
    DuplicateIdentity,
    /// A teacher removed it from the class; it cannot rejoin this class.
    Removed,
    /// A teacher did not admit it from the lobby.
    Denied,
    /// A teacher ended the class.
    ClassEnded,
    /// A reason this version of the SDK does not know (from a newer server).
    Unknown,
}

impl From<WireLeaveReason> for LeaveReason {
    fn from(reason: WireLeaveReason) -> Self {
        match reason {
            WireLeaveReason::ClientRequest => LeaveReason::ClientRequest,
            WireLeaveReason::ConnectionLost => LeaveReason::ConnectionLost,
            WireLeaveReason::ServerShutdown => LeaveReason::ServerShutdown,
            WireLeaveReason::DuplicateIdentity => LeaveReason::DuplicateIdentity,
            WireLeaveReason::Removed => LeaveReason::Removed,
            WireLeaveReason::Denied => LeaveReason::Denied,
            WireLeaveReason::ClassEnded => LeaveReason::ClassEnded,
            _ => LeaveReason::Unknown,
        }
    }
}

impl From<aula_core::DisconnectReason> for LeaveReason {
    fn from(reason: aula_core::DisconnectReason) -> Self {
        match reason {
            aula_core::DisconnectReason::ClientRequest => LeaveReason::ClientRequest,
            aula_core::DisconnectReason::ConnectionLost => LeaveReason::ConnectionLost,
            aula_core::DisconnectReason::ServerRequest(reason) => reason.into(),
            _ => LeaveReason::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_patch_sets_only_what_it_names() {
        let patch = RoomSettingsPatch {
            lobby: Some(false),
            chat: Some(ChatPolicy::Teachers),
            ..RoomSettingsPatch::default()
        };
        let wire = WireRoomSettingsPatch::from(patch);
        let patched = WireRoomSettings::default().patched(&wire);
        assert!(!patched.lobby);
        assert_eq!(patched.chat, WireChatPolicy::Teachers);
        assert_eq!(patched.mode, WireRoomMode::Call);
        assert_eq!(
            serde_json::to_string(&wire).unwrap(),
            r#"{"lobby":false,"chat":"teachers"}"#
        );
    }

    #[test]
    fn a_permissions_patch_with_an_unknown_origin_is_refused() {
        let patch = PermissionsPatch {
            publish: Some(vec![TrackOrigin::Camera, TrackOrigin::Unknown]),
            ..PermissionsPatch::default()
        };
        assert!(matches!(
            WirePermissionsPatch::try_from(patch),
            Err(AulaError::InvalidArgument { .. })
        ));
        let patch = PermissionsPatch {
            publish: Some(Vec::new()),
            chat: Some(false),
            ..PermissionsPatch::default()
        };
        let wire = WirePermissionsPatch::try_from(patch).unwrap();
        assert_eq!(
            wire.publish,
            Some(Vec::new()),
            "an empty list publishes nothing"
        );
        assert_eq!(wire.chat, Some(false));
    }

    #[test]
    fn a_removal_reads_as_removed_and_a_lost_server_as_connection_lost() {
        use aula_core::DisconnectReason;
        assert_eq!(
            LeaveReason::from(DisconnectReason::ServerRequest(WireLeaveReason::Removed)),
            LeaveReason::Removed
        );
        assert_eq!(
            LeaveReason::from(DisconnectReason::ConnectionLost),
            LeaveReason::ConnectionLost
        );
        assert_eq!(
            LeaveReason::from(DisconnectReason::ClientRequest),
            LeaveReason::ClientRequest
        );
    }
}
