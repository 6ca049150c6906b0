//! The classroom on the wire: a room's settings, where each participant is (lobby, audience,
//! stage), what each may do now, raised hands, and chat.
//!
//! A room runs in one of two [`RoomMode`]s. A **call** (the default, and what a token without
//! classroom settings gets) puts everyone who is admitted on stage: everyone publishes what
//! their token grants. A **class** puts students in the audience (they watch, hear, chat and
//! raise a hand) until a teacher brings them on stage, up to [`RoomSettings::stage_capacity`].
//! Either mode can have a lobby, where students wait until a teacher admits them.

use serde::{Deserialize, Serialize};

use crate::ids::ParticipantId;
use crate::signal::TrackSource;

/// Default number of students on stage at once in a class.
pub const DEFAULT_STAGE_CAPACITY: u32 = 6;
/// Largest stage a room may have.
pub const MAX_STAGE_CAPACITY: u32 = 64;
/// Longest chat message, in bytes of UTF-8 text.
pub const MAX_CHAT_TEXT_BYTES: usize = 4 * 1024;
/// Most chat messages a client is sent at once (on joining, and per history page).
pub const CHAT_PAGE: usize = 200;
/// Longest reason a teacher may give when denying or removing someone, in bytes.
pub const MAX_REASON_BYTES: usize = 256;

/// How a room runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoomMode {
    /// Everyone admitted is on stage and publishes what the token grants (a video call).
    #[default]
    Call,
    /// Students watch from the audience until a teacher brings them on stage (1 + N).
    Class,
}

/// Who may send chat messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChatPolicy {
    /// Everyone admitted.
    #[default]
    All,
    /// Teachers and co-teachers only (students read).
    Teachers,
    /// Nobody: chat is off.
    Off,
}

/// A room's settings. Missing fields take their defaults, so `{}` is a plain call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomSettings {
    /// Call or class.
    pub mode: RoomMode,
    /// Students wait in a lobby until a teacher admits them.
    pub lobby: bool,
    /// Most students on stage at once in a class (teachers and co-teachers do not count).
    pub stage_capacity: u32,
    /// In a class, a raised hand puts the student on stage at once when there is room.
    pub auto_stage: bool,
    /// Who may chat.
    pub chat: ChatPolicy,
    /// Students may send private messages to each other (to and from teachers is always
    /// allowed). Teachers never see private messages between students.
    pub student_private_chat: bool,
    /// Students may unmute a track a teacher muted.
    pub students_may_unmute: bool,
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            mode: RoomMode::Call,
            lobby: false,
            stage_capacity: DEFAULT_STAGE_CAPACITY,
            auto_stage: false,
            chat: ChatPolicy::All,
            student_private_chat: false,
            students_may_unmute: true,
        }
    }
}

/// Why settings were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The stage capacity is out of range.
    #[error("stage capacity must be 1 to {MAX_STAGE_CAPACITY}")]
    StageCapacity,
}

impl RoomSettings {
    /// Checks the settings are within bounds.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=MAX_STAGE_CAPACITY).contains(&self.stage_capacity) {
            return Err(SettingsError::StageCapacity);
        }
        Ok(())
    }

    /// These settings with every field `patch` sets replaced.
    pub fn patched(&self, patch: &RoomSettingsPatch) -> RoomSettings {
        RoomSettings {
            mode: patch.mode.unwrap_or(self.mode),
            lobby: patch.lobby.unwrap_or(self.lobby),
            stage_capacity: patch.stage_capacity.unwrap_or(self.stage_capacity),
            auto_stage: patch.auto_stage.unwrap_or(self.auto_stage),
            chat: patch.chat.unwrap_or(self.chat),
            student_private_chat: patch
                .student_private_chat
                .unwrap_or(self.student_private_chat),
            students_may_unmute: patch
                .students_may_unmute
                .unwrap_or(self.students_may_unmute),
        }
    }
}

/// A change to some of a room's settings; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomSettingsPatch {
    /// See [`RoomSettings::mode`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RoomMode>,
    /// See [`RoomSettings::lobby`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lobby: Option<bool>,
    /// See [`RoomSettings::stage_capacity`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_capacity: Option<u32>,
    /// See [`RoomSettings::auto_stage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_stage: Option<bool>,
    /// See [`RoomSettings::chat`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatPolicy>,
    /// See [`RoomSettings::student_private_chat`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_private_chat: Option<bool>,
    /// See [`RoomSettings::students_may_unmute`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub students_may_unmute: Option<bool>,
}

/// Where a participant is in the room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Placement {
    /// Waiting to be admitted: sees nothing of the room.
    Lobby,
    /// Admitted, watching: receives media, chats, raises a hand; publishes nothing.
    Audience,
    /// Admitted and publishing what its permissions allow. (What servers without a classroom
    /// put everyone in, hence the default.)
    #[default]
    Stage,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Placement::Lobby => "lobby",
            Placement::Audience => "audience",
            Placement::Stage => "stage",
        })
    }
}

/// What a participant may do now: its token's grants, narrowed by where it is (only the
/// stage publishes in a class) and changed by teachers (co-teacher, per-participant
/// permissions). The server enforces these; clients show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Permissions {
    /// Sources it may publish now.
    pub publish: Vec<TrackSource>,
    /// Whether it receives others' media.
    pub subscribe: bool,
    /// Whether it may change the whiteboard.
    pub whiteboard_write: bool,
    /// Whether it may send chat messages now.
    pub chat: bool,
    /// Whether it may unmute a track a teacher muted.
    pub unmute: bool,
    /// Whether it runs the class: admits, stages, mutes, removes, locks, ends.
    pub moderate: bool,
}

impl Permissions {
    /// Whether publishing `source` is allowed now.
    pub fn can_publish(&self, source: TrackSource) -> bool {
        self.publish.contains(&source)
    }
}

/// Per-participant changes a teacher or the server API makes to what it may do; unset fields
/// follow the token and the room.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermissionsPatch {
    /// Sources it may publish while on stage (replaces the token's list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<TrackSource>>,
    /// Whether it may chat (while the room's chat policy lets students chat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<bool>,
    /// Whether it may write on the whiteboard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whiteboard_write: Option<bool>,
    /// Whether it may unmute what a teacher muted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmute: Option<bool>,
}

/// The room's shared classroom state, as every admitted participant sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassroomState {
    /// The room's settings.
    pub settings: RoomSettings,
    /// Whether the room takes no new joins.
    pub locked: bool,
    /// The participant the class should look at, if a teacher chose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spotlight: Option<ParticipantId>,
    /// Raised hands, first raised first.
    pub hands: Vec<ParticipantId>,
    /// Whether a teacher or co-teacher is in the room.
    pub teacher_present: bool,
    /// Students on stage now, and the room's stage capacity applies to them.
    pub stage_count: u32,
}

/// What kind of chat message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChatKind {
    /// An ordinary message.
    #[default]
    Message,
    /// A teacher's announcement, shown prominently.
    Announcement,
    /// From the server or the application's backend (server API).
    System,
}

/// One chat message, as stored and delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned, increasing within a class.
    pub seq: u64,
    /// When the server stored it, milliseconds since the Unix epoch.
    pub time: u64,
    /// The sender's identity; `null` for system messages.
    pub from: Option<String>,
    /// The sender's display name (empty for system messages).
    #[serde(default)]
    pub from_name: String,
    /// For a private message, the recipient's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Message, announcement or system.
    #[serde(default)]
    pub kind: ChatKind,
    /// The text (empty once deleted).
    pub text: String,
    /// Whether it was deleted (by its sender or a teacher).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl ChatMessage {
    /// Whether `identity` (a moderator or not) may see this message.
    pub fn visible_to(&self, identity: &str) -> bool {
        match &self.to {
            None => true,
            Some(to) => to == identity || self.from.as_deref() == Some(identity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_are_a_plain_call() {
        let settings: RoomSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, RoomSettings::default());
        assert_eq!(settings.mode, RoomMode::Call);
        assert!(!settings.lobby);
        assert_eq!(settings.stage_capacity, DEFAULT_STAGE_CAPACITY);
    }

    #[test]
    fn patches_change_only_what_they_name() {
        let patch: RoomSettingsPatch =
            serde_json::from_str(r#"{"lobby":true,"chat":"teachers"}"#).unwrap();
        let patched = RoomSettings::default().patched(&patch);
        assert!(patched.lobby);
        assert_eq!(patched.chat, ChatPolicy::Teachers);
        assert_eq!(patched.stage_capacity, DEFAULT_STAGE_CAPACITY);
        assert_eq!(
            serde_json::to_string(&patch).unwrap(),
            r#"{"lobby":true,"chat":"teachers"}"#
        );
    }

    #[test]
    fn stage_capacity_is_bounded() {
        let mut settings = RoomSettings {
            stage_capacity: 0,
            ..RoomSettings::default()
        };
        assert_eq!(settings.validate(), Err(SettingsError::StageCapacity));
        settings.stage_capacity = MAX_STAGE_CAPACITY + 1;
        assert!(settings.validate().is_err());
        settings.stage_capacity = MAX_STAGE_CAPACITY;
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn private_messages_are_visible_to_their_two_ends_only() {
        let message = ChatMessage {
            seq: 1,
            time: 0,
            from: Some("s1".into()),
            from_name: "S".into(),
            to: Some("s2".into()),
            kind: ChatKind::Message,
            text: "hi".into(),
            deleted: false,
        };
        assert!(message.visible_to("s1"));
        assert!(message.visible_to("s2"));
        assert!(!message.visible_to("t1"));
        let public = ChatMessage {
            to: None,
            ..message
        };
        assert!(public.visible_to("t1"));
    }
}
