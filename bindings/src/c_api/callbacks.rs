//! Callbacks into C: room events, decoded video, decoded audio.

use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};

use aula_core::media::{AudioFrame, FrameStamp, VideoFrame};
use aula_protocol::{ParticipantId, TrackSid};

use super::classroom_types::{
    AulaChatMessage, AulaClassroomState, AulaLeaveReason, AulaPermissions, AulaPlacement,
};
use super::strings::{frame_sizes, video_frame};
use crate::uniffi_api::{AulaError, ConnectionStatus, Participant, RoomListener, RoomUpdate};

/// What happened, in an [`AulaEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaEventKind {
    /// `participant_id` and `identity` joined.
    ParticipantJoined = 0,
    /// `participant_id` left; `reason` says why.
    ParticipantLeft = 1,
    /// `participant_id` published `track_sid`.
    TrackPublished = 2,
    /// `participant_id` stopped publishing `track_sid`.
    TrackUnpublished = 3,
    /// Media of `track_sid` started arriving.
    TrackSubscribed = 4,
    /// The media connection is up.
    Connected = 5,
    /// The media connection was interrupted or failed; `reason` says which.
    ConnectionLost = 6,
    /// The connection dropped and the room is rejoining by itself; `reason` says why.
    Reconnecting = 7,
    /// The room rejoined.
    Reconnected = 8,
    /// The room is closed for this client; `reason` says why in words, `cause` as a value,
    /// and `message` is what a teacher said when denying or removing it (or NULL).
    Disconnected = 9,
    /// A teacher let this client in from the lobby: its participants and chat are known now.
    /// `PERMISSIONS_CHANGED` follows.
    Admitted = 10,
    /// `participant_id` (this client's too) changed `placement`, `hand_raised` or
    /// `co_teacher`.
    ParticipantUpdated = 11,
    /// The room's classroom state changed: `classroom`.
    ClassroomChanged = 12,
    /// What this client may do changed: `permissions`.
    PermissionsChanged = 13,
    /// The teacher `participant_id` invites this client to the stage; answer with
    /// `aula_room_answer_stage_invitation`.
    StageInvitation = 14,
    /// (Teachers) the student `participant_id` answered a stage invitation: `accepted`.
    StageInvitationAnswered = 15,
    /// A chat message arrived (not this client's own): `chat`.
    ChatReceived = 16,
    /// The chat message `seq` was deleted.
    ChatDeleted = 17,
    /// The server ended this client's track `track_sid` (it left the stage, or a teacher
    /// stopped its screen share); its encoder has stopped.
    LocalTrackEnded = 18,
    /// `participant_id` (this client, when a teacher muted it) muted or unmuted `track_sid`:
    /// `muted`, `by_moderator`.
    TrackMuted = 19,
}

/// A room event. Everything it points to belongs to the library and is valid only during the
/// callback: copy what you keep. Fields that do not apply to the kind are 0, false or NULL.
#[repr(C)]
#[derive(Debug)]
pub struct AulaEvent {
    /// What happened.
    pub kind: AulaEventKind,
    /// The participant concerned.
    pub participant_id: *const c_char,
    /// Its identity (joins, updates).
    pub identity: *const c_char,
    /// The track concerned.
    pub track_sid: *const c_char,
    /// Why, in words.
    pub reason: *const c_char,
    /// PARTICIPANT_JOINED, PARTICIPANT_UPDATED: where the participant is.
    pub placement: AulaPlacement,
    /// PARTICIPANT_JOINED, PARTICIPANT_UPDATED: whether it has a hand raised.
    pub hand_raised: bool,
    /// PARTICIPANT_JOINED, PARTICIPANT_UPDATED: whether it is co-teacher.
    pub co_teacher: bool,
    /// CLASSROOM_CHANGED: the room's classroom state now.
    pub classroom: *const AulaClassroomState,
    /// PERMISSIONS_CHANGED: what this client may do now.
    pub permissions: *const AulaPermissions,
    /// CHAT_RECEIVED: the message.
    pub chat: *const AulaChatMessage,
    /// CHAT_DELETED: the deleted message's sequence number.
    pub seq: u64,
    /// STAGE_INVITATION_ANSWERED: whether the student went on stage.
    pub accepted: bool,
    /// TRACK_MUTED: whether the track is muted now.
    pub muted: bool,
    /// TRACK_MUTED: whether a teacher muted it.
    pub by_moderator: bool,
    /// PARTICIPANT_LEFT, DISCONNECTED: why.
    pub cause: AulaLeaveReason,
    /// DISCONNECTED: what a teacher said when denying or removing this client, or NULL.
    pub message: *const c_char,
}

/// Receives room events, in order, on the room's event thread.
pub type AulaEventCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const AulaEvent)>;

/// A decoded I420 picture. The planes are valid only during the callback; copy what you keep.
#[repr(C)]
#[derive(Debug)]
pub struct AulaVideoFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma plane, `stride_y * height` bytes.
    pub y: *const u8,
    /// Cb plane, `stride_u * height / 2` bytes.
    pub u: *const u8,
    /// Cr plane, `stride_v * height / 2` bytes.
    pub v: *const u8,
    /// Bytes per luma row.
    pub stride_y: u32,
    /// Bytes per Cb row.
    pub stride_u: u32,
    /// Bytes per Cr row.
    pub stride_v: u32,
}

impl AulaVideoFrame {
    /// A copy of the picture.
    ///
    /// # Safety
    /// The planes point to at least the bytes the size and strides say.
    pub(crate) unsafe fn to_owned_frame(&self) -> Result<VideoFrame, AulaError> {
        let (luma, chroma) = frame_sizes(self.width, self.height)?;
        if self.y.is_null() || self.u.is_null() || self.v.is_null() {
            return Err(super::status::invalid("a plane pointer is NULL"));
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let copy = |plane: *const u8, stride: u32, width: usize, rows: usize| {
            let mut out = Vec::with_capacity(width * rows);
            for row in 0..rows {
                // SAFETY: per this function's contract the plane holds `stride * rows` bytes.
                let line =
                    unsafe { std::slice::from_raw_parts(plane.add(row * stride as usize), width) };
                out.extend_from_slice(line);
            }
            out
        };
        let y = copy(self.y, self.stride_y.max(self.width), w, h);
        let u = copy(self.u, self.stride_u.max(self.width / 2), w / 2, h / 2);
        let v = copy(self.v, self.stride_v.max(self.width / 2), w / 2, h / 2);
        debug_assert_eq!((y.len(), u.len()), (luma, chroma));
        Ok(video_frame(self.width, self.height, y, u, v))
    }
}

/// Receives every decoded picture, on decoder threads: return quickly.
pub type AulaVideoFrameCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        participant_id: *const c_char,
        track_sid: *const c_char,
        frame: *const AulaVideoFrame,
    ),
>;

/// 20 ms of decoded audio, interleaved signed 16-bit samples, valid only during the callback.
#[repr(C)]
#[derive(Debug)]
pub struct AulaAudioFrame {
    /// `sample_count` samples (all channels).
    pub samples: *const i16,
    /// Number of samples.
    pub sample_count: usize,
    /// Samples per second per channel (48000).
    pub sample_rate: u32,
    /// Channels (1).
    pub channels: u16,
}

/// Receives every decoded audio frame, on decoder threads: return quickly.
pub type AulaAudioFrameCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        participant_id: *const c_char,
        track_sid: *const c_char,
        frame: *const AulaAudioFrame,
    ),
>;

/// The caller's `user_data`, handed back untouched.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);

// SAFETY: the library never dereferences `user_data`; it only passes it back to the callback
// the application registered with it, which the documentation says runs on SDK threads.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer is only copied.
unsafe impl Sync for UserData {}

/// A registered callback. Clearing it waits for a call in progress, so after the clearing
/// function returns the callback is not running and will not run again.
pub(crate) struct CallbackSlot<F: Copy>(Mutex<Option<(F, UserData)>>);

impl<F: Copy> Default for CallbackSlot<F> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<F: Copy> CallbackSlot<F> {
    /// Registers (or with `None` clears) the callback.
    pub(crate) fn set(&self, callback: Option<F>, user_data: *mut c_void) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            callback.map(|cb| (cb, UserData(user_data)));
    }

    /// Whether a callback is registered.
    pub(crate) fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Calls `call` with the callback, holding the slot so it cannot be cleared meanwhile.
    pub(crate) fn with(&self, call: impl FnOnce(F, *mut c_void)) {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((callback, user_data)) = *slot {
            call(callback, user_data.0);
        }
    }
}

type VideoFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *const AulaVideoFrame);
type AudioFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *const AulaAudioFrame);
type EventFn = unsafe extern "C" fn(*mut c_void, *const AulaEvent);

/// `s` as a C string (interior NULs, which C cannot carry, become spaces).
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Delivers decoded video to a C callback without copying the picture.
pub(crate) struct VideoCallbackSink(pub Arc<CallbackSlot<VideoFn>>);

impl aula_core::VideoSink for VideoCallbackSink {
    fn on_video_frame(
        &self,
        participant: &ParticipantId,
        track: &TrackSid,
        frame: &VideoFrame,
        _stamp: Option<FrameStamp>,
    ) {
        let participant = c_string(participant.as_str());
        let track = c_string(track.as_str());
        let view = AulaVideoFrame {
            width: frame.width,
            height: frame.height,
            y: frame.y.as_ptr(),
            u: frame.u.as_ptr(),
            v: frame.v.as_ptr(),
            stride_y: frame.width,
            stride_u: frame.width / 2,
            stride_v: frame.width / 2,
        };
        self.0.with(|callback, user_data| {
            // SAFETY: the application registered `callback` for this use; every pointer lives
            // until the call returns.
            unsafe { callback(user_data, participant.as_ptr(), track.as_ptr(), &view) }
        });
    }
}

/// Delivers decoded audio to a C callback.
pub(crate) struct AudioCallbackSink(pub Arc<CallbackSlot<AudioFn>>);

impl aula_core::AudioSink for AudioCallbackSink {
    fn on_audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame) {
        let participant = c_string(participant.as_str());
        let track = c_string(track.as_str());
        let view = AulaAudioFrame {
            samples: frame.samples.as_ptr(),
            sample_count: frame.samples.len(),
            sample_rate: frame.sample_rate,
            channels: frame.channels,
        };
        self.0.with(|callback, user_data| {
            // SAFETY: as for video: registered by the application, pointers live for the call.
            unsafe { callback(user_data, participant.as_ptr(), track.as_ptr(), &view) }
        });
    }
}

/// The parts of an [`AulaEvent`] the library owns while the callback runs.
#[derive(Default)]
struct EventParts {
    participant_id: Option<String>,
    identity: Option<String>,
    track_sid: Option<String>,
    reason: Option<String>,
    placement: Option<AulaPlacement>,
    hand_raised: bool,
    co_teacher: bool,
    classroom: Option<AulaClassroomState>,
    permissions: Option<AulaPermissions>,
    chat: Option<AulaChatMessage>,
    seq: u64,
    accepted: bool,
    muted: bool,
    by_moderator: bool,
    cause: Option<AulaLeaveReason>,
    message: Option<String>,
}

impl Drop for EventParts {
    fn drop(&mut self) {
        // SAFETY: both were made by their `owned` constructors for this event, released once.
        unsafe {
            if let Some(classroom) = &self.classroom {
                classroom.release();
            }
            if let Some(chat) = &self.chat {
                chat.release();
            }
        }
    }
}

impl EventParts {
    /// The kind and parts of `update`; `None` for updates C does not receive (connecting).
    fn of(update: RoomUpdate) -> Option<(AulaEventKind, Self)> {
        let mut p = EventParts::default();
        let kind = match update {
            RoomUpdate::ParticipantJoined { participant } => {
                p.participant(participant);
                AulaEventKind::ParticipantJoined
            }
            RoomUpdate::ParticipantLeft {
                participant_id,
                reason,
                cause,
            } => {
                p.participant_id = Some(participant_id);
                p.reason = Some(reason);
                p.cause = Some(cause.into());
                AulaEventKind::ParticipantLeft
            }
            RoomUpdate::TrackPublished {
                participant_id,
                track,
            } => {
                p.participant_id = Some(participant_id);
                p.track_sid = Some(track.sid);
                AulaEventKind::TrackPublished
            }
            RoomUpdate::TrackUnpublished {
                participant_id,
                track_sid,
            } => {
                p.participant_id = Some(participant_id);
                p.track_sid = Some(track_sid);
                AulaEventKind::TrackUnpublished
            }
            RoomUpdate::TrackSubscribed {
                participant_id,
                track_sid,
            } => {
                p.participant_id = Some(participant_id);
                p.track_sid = Some(track_sid);
                AulaEventKind::TrackSubscribed
            }
            RoomUpdate::ConnectionChanged { status } => match status {
                ConnectionStatus::Connected => AulaEventKind::Connected,
                ConnectionStatus::Connecting => return None,
                ConnectionStatus::Interrupted => {
                    p.reason = Some("interrupted".to_owned());
                    AulaEventKind::ConnectionLost
                }
                ConnectionStatus::Failed => {
                    p.reason = Some("failed".to_owned());
                    AulaEventKind::ConnectionLost
                }
            },
            RoomUpdate::Reconnecting { reason } => {
                p.reason = Some(reason);
                AulaEventKind::Reconnecting
            }
            RoomUpdate::Reconnected { .. } => AulaEventKind::Reconnected,
            RoomUpdate::Disconnected {
                reason,
                cause,
                message,
                ..
            } => {
                p.reason = Some(reason);
                p.cause = Some(cause.into());
                p.message = message;
                AulaEventKind::Disconnected
            }
            RoomUpdate::TrackMuted {
                participant_id,
                track_sid,
                muted,
                by_moderator,
            } => {
                p.participant_id = Some(participant_id);
                p.track_sid = Some(track_sid);
                p.muted = muted;
                p.by_moderator = by_moderator;
                AulaEventKind::TrackMuted
            }
            RoomUpdate::Admitted => AulaEventKind::Admitted,
            RoomUpdate::ParticipantUpdated { participant } => {
                p.participant(participant);
                AulaEventKind::ParticipantUpdated
            }
            RoomUpdate::ClassroomChanged { classroom } => {
                p.classroom = Some(AulaClassroomState::owned(&classroom));
                AulaEventKind::ClassroomChanged
            }
            RoomUpdate::PermissionsChanged { permissions } => {
                p.permissions = Some(AulaPermissions::from(&permissions));
                AulaEventKind::PermissionsChanged
            }
            RoomUpdate::StageInvitation {
                from_participant_id,
            } => {
                p.participant_id = Some(from_participant_id);
                AulaEventKind::StageInvitation
            }
            RoomUpdate::StageInvitationAnswered {
                participant_id,
                accepted,
            } => {
                p.participant_id = Some(participant_id);
                p.accepted = accepted;
                AulaEventKind::StageInvitationAnswered
            }
            RoomUpdate::ChatReceived { message } => {
                p.chat = Some(AulaChatMessage::owned(&message));
                AulaEventKind::ChatReceived
            }
            RoomUpdate::ChatDeleted { seq } => {
                p.seq = seq;
                AulaEventKind::ChatDeleted
            }
            RoomUpdate::LocalTrackEnded { track_sid } => {
                p.track_sid = Some(track_sid);
                AulaEventKind::LocalTrackEnded
            }
        };
        Some((kind, p))
    }

    /// Fills in a participant's fields.
    fn participant(&mut self, participant: Participant) {
        self.participant_id = Some(participant.id);
        self.identity = Some(participant.identity);
        self.placement = Some(participant.placement.into());
        self.hand_raised = participant.hand_raised;
        self.co_teacher = participant.co_teacher;
    }
}

/// Delivers room events to a C callback.
pub(crate) struct EventCallbackListener(pub Arc<CallbackSlot<EventFn>>);

impl RoomListener for EventCallbackListener {
    fn on_update(&self, update: RoomUpdate) {
        let Some((kind, parts)) = EventParts::of(update) else {
            return;
        };
        let owned = [
            &parts.participant_id,
            &parts.identity,
            &parts.track_sid,
            &parts.reason,
            &parts.message,
        ]
        .map(|s| s.as_deref().map(c_string));
        let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let event = AulaEvent {
            kind,
            participant_id: ptr(&owned[0]),
            identity: ptr(&owned[1]),
            track_sid: ptr(&owned[2]),
            reason: ptr(&owned[3]),
            placement: parts.placement.unwrap_or(AulaPlacement::Lobby),
            hand_raised: parts.hand_raised,
            co_teacher: parts.co_teacher,
            classroom: parts
                .classroom
                .as_ref()
                .map_or(std::ptr::null(), |c| c as *const _),
            permissions: parts
                .permissions
                .as_ref()
                .map_or(std::ptr::null(), |p| p as *const _),
            chat: parts
                .chat
                .as_ref()
                .map_or(std::ptr::null(), |c| c as *const _),
            seq: parts.seq,
            accepted: parts.accepted,
            muted: parts.muted,
            by_moderator: parts.by_moderator,
            cause: parts.cause.unwrap_or(AulaLeaveReason::Unknown),
            message: ptr(&owned[4]),
        };
        self.0.with(|callback, user_data| {
            // SAFETY: registered by the application; the event and everything it points to
            // live until the call returns (`parts` and `owned` outlive it).
            unsafe { callback(user_data, &event) }
        });
    }
}
