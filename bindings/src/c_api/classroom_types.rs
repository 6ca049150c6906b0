//! The classroom's C types: placement, settings, permissions, the room's classroom state, chat
//! messages and this client's classroom view; patches the application fills in; and the
//! conversions and free functions behind them.
//!
//! Ownership: a struct the library returns (`AulaChatMessage` arrays, `AulaClassroomView`)
//! owns every string and array it points to, and its free function releases all of it. A
//! struct handed to an event callback is the library's, valid during the callback only. A
//! patch the application passes is read during the call and stays the application's.

use std::ffi::c_char;

use super::board_types::{from_raw_array, into_raw_array, into_raw_strings, owned, release};
use crate::uniffi_api::{
    ChatKind, ChatMessage, ChatPolicy, ClassroomState, ClassroomView, LeaveReason, Permissions,
    PermissionsPatch, Placement, RoomMode, RoomSettings, RoomSettingsPatch, TrackOrigin,
};

/// Where a participant is in the room.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaPlacement {
    /// Waiting for a teacher to admit it; may do nothing.
    Lobby = 0,
    /// Admitted, watching: receives media, chats, raises a hand; publishes nothing.
    Audience = 1,
    /// Admitted and publishing what its permissions allow (everyone in a plain call).
    Stage = 2,
}

impl From<Placement> for AulaPlacement {
    fn from(p: Placement) -> Self {
        match p {
            Placement::Lobby => AulaPlacement::Lobby,
            Placement::Audience => AulaPlacement::Audience,
            Placement::Stage => AulaPlacement::Stage,
        }
    }
}

/// How a room runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaRoomMode {
    /// Everyone admitted is on stage (a video call).
    Call = 0,
    /// Students watch from the audience until a teacher brings them on stage.
    Class = 1,
}

impl From<RoomMode> for AulaRoomMode {
    fn from(m: RoomMode) -> Self {
        match m {
            RoomMode::Call => AulaRoomMode::Call,
            RoomMode::Class => AulaRoomMode::Class,
        }
    }
}

impl From<AulaRoomMode> for RoomMode {
    fn from(m: AulaRoomMode) -> Self {
        match m {
            AulaRoomMode::Call => RoomMode::Call,
            AulaRoomMode::Class => RoomMode::Class,
        }
    }
}

/// Who may send chat messages.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaChatPolicy {
    /// Everyone admitted.
    All = 0,
    /// Teachers and co-teachers only.
    Teachers = 1,
    /// Nobody.
    Off = 2,
}

impl From<ChatPolicy> for AulaChatPolicy {
    fn from(p: ChatPolicy) -> Self {
        match p {
            ChatPolicy::All => AulaChatPolicy::All,
            ChatPolicy::Teachers => AulaChatPolicy::Teachers,
            ChatPolicy::Off => AulaChatPolicy::Off,
        }
    }
}

impl From<AulaChatPolicy> for ChatPolicy {
    fn from(p: AulaChatPolicy) -> Self {
        match p {
            AulaChatPolicy::All => ChatPolicy::All,
            AulaChatPolicy::Teachers => ChatPolicy::Teachers,
            AulaChatPolicy::Off => ChatPolicy::Off,
        }
    }
}

/// Audio or video, for the requests that mute one of them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaMediaKind {
    /// Microphones.
    Audio = 0,
    /// Cameras.
    Video = 1,
}

/// Why a participant left, or why this client's room closed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaLeaveReason {
    /// A reason this version does not know (from a newer server).
    Unknown = 0,
    /// It left (for this client: the application disconnected).
    ClientRequest = 1,
    /// Its connection dropped (for this client: and it could not rejoin).
    ConnectionLost = 2,
    /// The server shut down.
    ServerShutdown = 3,
    /// The same identity joined from elsewhere.
    DuplicateIdentity = 4,
    /// A teacher removed it from the class; it cannot rejoin this class.
    Removed = 5,
    /// A teacher did not admit it from the lobby.
    Denied = 6,
    /// A teacher ended the class.
    ClassEnded = 7,
}

impl From<LeaveReason> for AulaLeaveReason {
    fn from(r: LeaveReason) -> Self {
        match r {
            LeaveReason::ClientRequest => AulaLeaveReason::ClientRequest,
            LeaveReason::ConnectionLost => AulaLeaveReason::ConnectionLost,
            LeaveReason::ServerShutdown => AulaLeaveReason::ServerShutdown,
            LeaveReason::DuplicateIdentity => AulaLeaveReason::DuplicateIdentity,
            LeaveReason::Removed => AulaLeaveReason::Removed,
            LeaveReason::Denied => AulaLeaveReason::Denied,
            LeaveReason::ClassEnded => AulaLeaveReason::ClassEnded,
            LeaveReason::Unknown => AulaLeaveReason::Unknown,
        }
    }
}

/// A room's classroom settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AulaRoomSettings {
    /// Call or class.
    pub mode: AulaRoomMode,
    /// Students wait in a lobby until a teacher admits them.
    pub lobby: bool,
    /// Most students on stage at once in a class.
    pub stage_capacity: u32,
    /// In a class, a raised hand goes on stage at once while there is room.
    pub auto_stage: bool,
    /// Who may chat.
    pub chat: AulaChatPolicy,
    /// Students may message each other privately.
    pub student_private_chat: bool,
    /// Students may unmute what a teacher muted.
    pub students_may_unmute: bool,
}

impl From<&RoomSettings> for AulaRoomSettings {
    fn from(s: &RoomSettings) -> Self {
        AulaRoomSettings {
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

/// A change to some of a room's settings, read during `aula_room_update_room_settings`:
/// each field points to its new value, or is NULL to leave it as it is.
#[repr(C)]
#[derive(Debug)]
pub struct AulaRoomSettingsPatch {
    /// Call or class.
    pub mode: *const AulaRoomMode,
    /// The lobby on or off (off admits everyone waiting).
    pub lobby: *const bool,
    /// Most students on stage (1 to 64).
    pub stage_capacity: *const u32,
    /// A raised hand goes on stage at once.
    pub auto_stage: *const bool,
    /// Who may chat.
    pub chat: *const AulaChatPolicy,
    /// Students may message each other privately.
    pub student_private_chat: *const bool,
    /// Students may unmute what a teacher muted.
    pub students_may_unmute: *const bool,
}

/// Reads an optional value the application points to.
///
/// # Safety
/// `ptr` is NULL or points to a valid `T` for the call.
unsafe fn optional<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: per this function's contract.
    unsafe { ptr.as_ref() }.copied()
}

impl AulaRoomSettingsPatch {
    /// The patch as the Rust API takes it.
    ///
    /// # Safety
    /// Every field is NULL or points to a valid value for the call.
    pub(crate) unsafe fn to_patch(&self) -> RoomSettingsPatch {
        // SAFETY: per this function's contract.
        unsafe {
            RoomSettingsPatch {
                mode: optional(self.mode).map(Into::into),
                lobby: optional(self.lobby),
                stage_capacity: optional(self.stage_capacity),
                auto_stage: optional(self.auto_stage),
                chat: optional(self.chat).map(Into::into),
                student_private_chat: optional(self.student_private_chat),
                students_may_unmute: optional(self.students_may_unmute),
            }
        }
    }
}

/// Which sources a participant may publish.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AulaPublish {
    /// A camera.
    pub camera: bool,
    /// A microphone.
    pub microphone: bool,
    /// A screen share.
    pub screen_share: bool,
}

impl From<&[TrackOrigin]> for AulaPublish {
    fn from(origins: &[TrackOrigin]) -> Self {
        AulaPublish {
            camera: origins.contains(&TrackOrigin::Camera),
            microphone: origins.contains(&TrackOrigin::Microphone),
            screen_share: origins.contains(&TrackOrigin::ScreenShare),
        }
    }
}

impl From<AulaPublish> for Vec<TrackOrigin> {
    fn from(p: AulaPublish) -> Self {
        [
            (p.camera, TrackOrigin::Camera),
            (p.microphone, TrackOrigin::Microphone),
            (p.screen_share, TrackOrigin::ScreenShare),
        ]
        .into_iter()
        .filter_map(|(on, origin)| on.then_some(origin))
        .collect()
    }
}

/// What this client may do now (its grants narrowed by where it is and changed by teachers).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AulaPermissions {
    /// What it may publish now.
    pub publish: AulaPublish,
    /// Whether it receives others' media.
    pub subscribe: bool,
    /// Whether it may change the whiteboard.
    pub whiteboard_write: bool,
    /// Whether it may send chat messages now.
    pub chat: bool,
    /// Whether it may unmute what a teacher muted.
    pub unmute: bool,
    /// Whether it runs the class (teacher or co-teacher).
    pub moderate: bool,
}

impl From<&Permissions> for AulaPermissions {
    fn from(p: &Permissions) -> Self {
        AulaPermissions {
            publish: AulaPublish::from(p.publish.as_slice()),
            subscribe: p.subscribe,
            whiteboard_write: p.whiteboard_write,
            chat: p.chat,
            unmute: p.unmute,
            moderate: p.moderate,
        }
    }
}

/// A teacher's change to what one participant may do, read during
/// `aula_room_update_permissions`: each field points to its new value, or is NULL to leave it.
#[repr(C)]
#[derive(Debug)]
pub struct AulaPermissionsPatch {
    /// What it may publish while on stage (replaces the token's list).
    pub publish: *const AulaPublish,
    /// Whether it may chat.
    pub chat: *const bool,
    /// Whether it may write on the whiteboard.
    pub whiteboard_write: *const bool,
    /// Whether it may unmute what a teacher muted.
    pub unmute: *const bool,
}

impl AulaPermissionsPatch {
    /// The patch as the Rust API takes it.
    ///
    /// # Safety
    /// Every field is NULL or points to a valid value for the call.
    pub(crate) unsafe fn to_patch(&self) -> PermissionsPatch {
        // SAFETY: per this function's contract.
        unsafe {
            PermissionsPatch {
                publish: optional(self.publish).map(Into::into),
                chat: optional(self.chat),
                whiteboard_write: optional(self.whiteboard_write),
                unmute: optional(self.unmute),
            }
        }
    }
}

/// The room's shared classroom state.
#[repr(C)]
#[derive(Debug)]
pub struct AulaClassroomState {
    /// The room's settings.
    pub settings: AulaRoomSettings,
    /// Whether the room takes no new participants.
    pub locked: bool,
    /// The participant id a teacher asked everyone to feature, or NULL.
    pub spotlight: *const c_char,
    /// Participant ids with a raised hand, first raised first (NULL when `hand_count` is 0).
    pub hands: *const *const c_char,
    /// Number of `hands`.
    pub hand_count: usize,
    /// Whether a teacher or co-teacher is in the room.
    pub teacher_present: bool,
    /// Students on stage now.
    pub stage_count: u32,
}

/// An optional string, NULL for none.
fn owned_opt(s: Option<&str>) -> *const c_char {
    s.map_or(std::ptr::null(), owned)
}

impl AulaClassroomState {
    /// The state, owning its strings (release with [`AulaClassroomState::release`]).
    pub(crate) fn owned(c: &ClassroomState) -> Self {
        let (hands, hand_count) = into_raw_strings(c.hands.clone());
        AulaClassroomState {
            settings: (&c.settings).into(),
            locked: c.locked,
            spotlight: owned_opt(c.spotlight.as_deref()),
            hands: hands.cast_const().cast(),
            hand_count,
            teacher_present: c.teacher_present,
            stage_count: c.stage_count,
        }
    }

    /// Releases what [`AulaClassroomState::owned`] allocated.
    ///
    /// # Safety
    /// `self` came from [`AulaClassroomState::owned`] and is released once.
    pub(crate) unsafe fn release(&self) {
        // SAFETY: every pointer was made by `owned` for this state, released once.
        unsafe {
            release(self.spotlight);
            for hand in from_raw_array(self.hands.cast_mut(), self.hand_count) {
                release(hand);
            }
        }
    }
}

/// What kind of chat message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaChatKind {
    /// An ordinary message.
    Message = 0,
    /// A teacher's announcement, to show prominently.
    Announcement = 1,
    /// From the server or the application's backend (`from_identity` NULL).
    System = 2,
}

impl From<ChatKind> for AulaChatKind {
    fn from(k: ChatKind) -> Self {
        match k {
            ChatKind::Message => AulaChatKind::Message,
            ChatKind::Announcement => AulaChatKind::Announcement,
            ChatKind::System => AulaChatKind::System,
        }
    }
}

/// One chat message as the server stored it.
#[repr(C)]
#[derive(Debug)]
pub struct AulaChatMessage {
    /// The server's number for it, increasing within a class (starts at 1).
    pub seq: u64,
    /// When the server stored it, ms since the Unix epoch.
    pub time_ms: u64,
    /// The sender's identity; NULL for system messages.
    pub from_identity: *const c_char,
    /// The sender's display name (empty for system messages).
    pub from_name: *const c_char,
    /// For a private message, the recipient's identity; NULL for a public one.
    pub to_identity: *const c_char,
    /// Message, announcement or system.
    pub kind: AulaChatKind,
    /// The text (empty once deleted).
    pub text: *const c_char,
    /// Whether it was deleted.
    pub deleted: bool,
}

impl AulaChatMessage {
    /// The message, owning its strings (release with [`AulaChatMessage::release`]).
    pub(crate) fn owned(m: &ChatMessage) -> Self {
        AulaChatMessage {
            seq: m.seq,
            time_ms: m.time_ms,
            from_identity: owned_opt(m.from_identity.as_deref()),
            from_name: owned(&m.from_name),
            to_identity: owned_opt(m.to_identity.as_deref()),
            kind: m.kind.into(),
            text: owned(&m.text),
            deleted: m.deleted,
        }
    }

    /// Releases what [`AulaChatMessage::owned`] allocated.
    ///
    /// # Safety
    /// `self` came from [`AulaChatMessage::owned`] and is released once.
    pub(crate) unsafe fn release(&self) {
        // SAFETY: every string was made by `owned` for this message, released once.
        unsafe {
            for s in [
                self.from_identity,
                self.from_name,
                self.to_identity,
                self.text,
            ] {
                release(s);
            }
        }
    }
}

/// Hands `messages` to C as an array owning everything in it (NULL when empty).
pub(crate) fn into_raw_messages(messages: &[ChatMessage]) -> (*mut AulaChatMessage, usize) {
    into_raw_array(messages.iter().map(AulaChatMessage::owned).collect())
}

/// Releases one chat message from `aula_room_send_chat`, with its strings. NULL is ignored.
///
/// # Safety
/// `message` is NULL or a message from `aula_room_send_chat`, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_chat_message_free(message: *mut AulaChatMessage) {
    // SAFETY: per this function's contract, an array of one.
    unsafe { aula_chat_messages_free(message, 1) }
}

/// Releases an array of chat messages from `aula_room_chat_history`, with every string in
/// it. NULL is ignored.
///
/// # Safety
/// `messages` is NULL or an array from this library with the `count` it returned, not used
/// again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_chat_messages_free(messages: *mut AulaChatMessage, count: usize) {
    // SAFETY: per this function's contract.
    for message in unsafe { from_raw_array(messages, count) } {
        // SAFETY: made by `AulaChatMessage::owned` for this array, released once.
        unsafe { message.release() };
    }
}

/// This client's view of the classroom, from `aula_room_classroom`. It owns everything it
/// points to; release it with `aula_classroom_view_free`.
#[repr(C)]
#[derive(Debug)]
pub struct AulaClassroomView {
    /// Where this client is.
    pub placement: AulaPlacement,
    /// Whether `permissions` holds what it may do (false from a server without a classroom,
    /// where the token's grants apply).
    pub has_permissions: bool,
    /// What it may do now (all false when `has_permissions` is false).
    pub permissions: AulaPermissions,
    /// The room's classroom state.
    pub classroom: AulaClassroomState,
    /// The participant id of the teacher whose stage invitation waits for an answer, or NULL.
    pub invitation_from: *const c_char,
    /// Whether this client has a hand raised.
    pub hand_raised: bool,
    /// Whether a teacher made it co-teacher.
    pub co_teacher: bool,
    /// The newest chat messages it may see (at most 1000), oldest first (NULL when
    /// `chat_count` is 0).
    pub chat: *const AulaChatMessage,
    /// Number of `chat` messages.
    pub chat_count: usize,
}

impl AulaClassroomView {
    /// The view, owning everything it points to (released by `aula_classroom_view_free`).
    pub(crate) fn owned(v: &ClassroomView) -> Self {
        let (chat, chat_count) = into_raw_messages(&v.chat);
        AulaClassroomView {
            placement: v.placement.into(),
            has_permissions: v.permissions.is_some(),
            permissions: v
                .permissions
                .as_ref()
                .map(AulaPermissions::from)
                .unwrap_or_default(),
            classroom: AulaClassroomState::owned(&v.classroom),
            invitation_from: owned_opt(v.invitation_from.as_deref()),
            hand_raised: v.hand_raised,
            co_teacher: v.co_teacher,
            chat: chat.cast_const(),
            chat_count,
        }
    }
}

/// Releases a view from `aula_room_classroom`, with everything it points to. NULL is ignored.
///
/// # Safety
/// `view` is NULL or a view from `aula_room_classroom`, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_classroom_view_free(view: *mut AulaClassroomView) {
    if view.is_null() {
        return;
    }
    // SAFETY: a view boxed by `aula_room_classroom`, freed once per the contract.
    let view = unsafe { Box::from_raw(view) };
    // SAFETY: every pointer in the view was made for it by `AulaClassroomView::owned`.
    unsafe {
        view.classroom.release();
        release(view.invitation_from);
        aula_chat_messages_free(view.chat.cast_mut(), view.chat_count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn message(seq: u64, to: Option<&str>) -> ChatMessage {
        ChatMessage {
            seq,
            time_ms: 1_000 + seq,
            from_identity: Some("t1".into()),
            from_name: "Ms Rivera".into(),
            to_identity: to.map(Into::into),
            kind: ChatKind::Announcement,
            text: format!("message {seq}"),
            deleted: false,
        }
    }

    /// The text behind a C string the library made.
    fn text(s: *const c_char) -> &'static str {
        // SAFETY: a live string made by `owned` in these tests.
        unsafe { CStr::from_ptr(s) }.to_str().unwrap()
    }

    #[test]
    fn a_view_owns_its_strings_and_arrays_and_frees_them() {
        let view = ClassroomView {
            placement: Placement::Stage,
            permissions: Some(Permissions {
                publish: vec![TrackOrigin::Camera, TrackOrigin::Microphone],
                subscribe: true,
                whiteboard_write: false,
                chat: true,
                unmute: true,
                moderate: false,
            }),
            classroom: ClassroomState {
                settings: RoomSettings {
                    mode: RoomMode::Class,
                    lobby: true,
                    stage_capacity: 4,
                    auto_stage: false,
                    chat: ChatPolicy::All,
                    student_private_chat: false,
                    students_may_unmute: true,
                },
                locked: false,
                spotlight: Some("PA_1".into()),
                hands: vec!["PA_2".into(), "PA_3".into()],
                teacher_present: true,
                stage_count: 1,
            },
            invitation_from: None,
            hand_raised: false,
            co_teacher: false,
            chat: vec![message(1, None), message(2, Some("s1"))],
        };
        let raw = Box::into_raw(Box::new(AulaClassroomView::owned(&view)));
        // SAFETY: just made.
        let c = unsafe { &*raw };
        assert_eq!(c.placement, AulaPlacement::Stage);
        assert!(c.has_permissions && c.permissions.publish.camera);
        assert!(!c.permissions.publish.screen_share);
        assert_eq!(c.classroom.settings.mode, AulaRoomMode::Class);
        assert_eq!(c.classroom.hand_count, 2);
        // SAFETY: `hand_count` strings.
        let second = unsafe { *c.classroom.hands.add(1) };
        assert_eq!(text(second), "PA_3");
        assert_eq!(text(c.classroom.spotlight), "PA_1");
        assert!(c.invitation_from.is_null());
        assert_eq!(c.chat_count, 2);
        // SAFETY: `chat_count` messages.
        let second = unsafe { &*c.chat.add(1) };
        assert_eq!(second.seq, 2);
        assert_eq!(text(second.to_identity), "s1");
        assert_eq!(text(second.text), "message 2");
        assert_eq!(second.kind, AulaChatKind::Announcement);
        // SAFETY: made by `aula_room_classroom`'s conversion and boxed like it.
        unsafe { aula_classroom_view_free(raw) };
        // SAFETY: NULL is allowed.
        unsafe { aula_classroom_view_free(std::ptr::null_mut()) };
    }

    #[test]
    fn patches_take_only_the_fields_that_point_somewhere() {
        let lobby = false;
        let chat = AulaChatPolicy::Teachers;
        let patch = AulaRoomSettingsPatch {
            mode: std::ptr::null(),
            lobby: &lobby,
            stage_capacity: std::ptr::null(),
            auto_stage: std::ptr::null(),
            chat: &chat,
            student_private_chat: std::ptr::null(),
            students_may_unmute: std::ptr::null(),
        };
        // SAFETY: every field is NULL or points to a live value.
        let patch = unsafe { patch.to_patch() };
        assert_eq!(patch.lobby, Some(false));
        assert_eq!(patch.chat, Some(ChatPolicy::Teachers));
        assert_eq!(patch.mode, None);
        let publish = AulaPublish {
            camera: true,
            ..AulaPublish::default()
        };
        let permissions = AulaPermissionsPatch {
            publish: &publish,
            chat: std::ptr::null(),
            whiteboard_write: std::ptr::null(),
            unmute: std::ptr::null(),
        };
        // SAFETY: as above.
        let permissions = unsafe { permissions.to_patch() };
        assert_eq!(permissions.publish, Some(vec![TrackOrigin::Camera]));
        assert_eq!(permissions.chat, None);
    }
}
