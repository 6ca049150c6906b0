//! Status codes, the thread-local last error, and the guard every entry point runs in.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::uniffi_api::{AulaError, ErrorCode};

/// What an Aula C call returns.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaStatus {
    /// Success.
    Ok = 0,
    /// An argument is NULL, out of range or not valid UTF-8.
    InvalidArgument = 1,
    /// The object is not in a state that allows the call.
    InvalidState = 2,
    /// The room is disconnected (or the publication stopped).
    Disconnected = 3,
    /// The server could not be reached.
    Unreachable = 4,
    /// The server refused: `aula_last_error_code()` says why (`AULA_ERROR_CODE_*`), and the
    /// message names the code too. A refused request changed nothing.
    Refused = 5,
    /// The token could not be read (a token the server does not accept is `Refused`).
    InvalidToken = 6,
    /// Encoding or decoding failed.
    Media = 7,
    /// The WebRTC stack failed.
    Webrtc = 8,
    /// The server did not answer in time.
    Timeout = 9,
    /// Something that should not fail did (including a caught panic).
    Internal = 10,
    /// Nothing to report (for example, a picture without a stamp).
    NotFound = 11,
    /// This build of the library leaves the feature out (PNG export in the mobile SDK).
    Unsupported = 12,
}

impl From<&AulaError> for AulaStatus {
    fn from(err: &AulaError) -> Self {
        match err {
            AulaError::Unreachable { .. } => AulaStatus::Unreachable,
            AulaError::Refused { .. } => AulaStatus::Refused,
            AulaError::InvalidToken { .. } => AulaStatus::InvalidToken,
            AulaError::Disconnected { .. } => AulaStatus::Disconnected,
            AulaError::InvalidState { .. } => AulaStatus::InvalidState,
            AulaError::InvalidArgument { .. } => AulaStatus::InvalidArgument,
            AulaError::Media { .. } => AulaStatus::Media,
            AulaError::WebRtc { .. } => AulaStatus::Webrtc,
            AulaError::Timeout { .. } => AulaStatus::Timeout,
            AulaError::Unsupported { .. } => AulaStatus::Unsupported,
            _ => AulaStatus::Internal,
        }
    }
}

/// Why the server refused a request (after `AULA_STATUS_REFUSED`), from
/// `aula_last_error_code()`. The values are stable; new codes are added at the end.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaErrorCode {
    /// The last call on this thread was not refused by the server.
    None = 0,
    /// A code this version does not know (from a newer server).
    Unknown = 1,
    /// The message was not understood.
    MalformedMessage = 2,
    /// The message, or a chat text (over 4096 bytes), is too large.
    MessageTooLarge = 3,
    /// The server does not speak this library's protocol version.
    UnsupportedVersion = 4,
    /// The token is malformed, forged, or names an unknown key.
    InvalidToken = 5,
    /// The token has expired.
    TokenExpired = 6,
    /// The token is for another room.
    RoomMismatch = 7,
    /// The session has not joined.
    NotJoined = 8,
    /// The session joined already.
    AlreadyJoined = 9,
    /// The participant may not do this now (its grants, its placement, or a teacher-only
    /// request from a student).
    PermissionDenied = 10,
    /// The request names a track that does not exist.
    UnknownTrack = 11,
    /// The request cannot be carried out as made (an empty chat text, a bad SDP...).
    InvalidRequest = 12,
    /// The room has reached its participant limit.
    RoomFull = 13,
    /// The server opens no new rooms.
    ServerFull = 14,
    /// Too many requests; this one was dropped.
    RateLimited = 15,
    /// The request does not fit the participant's or the room's state (admitting someone not
    /// in the lobby, answering an invitation never made, raising a hand in the lobby).
    InvalidState = 16,
    /// The request names a participant who is not in the room.
    UnknownParticipant = 17,
    /// The request names a room the server does not know.
    UnknownRoom = 18,
    /// The stage has no room for another student.
    StageFull = 19,
    /// The room is locked: it takes no new participants.
    RoomLocked = 20,
    /// This identity was removed from the class and may not rejoin it.
    Removed = 21,
    /// Chat is off, teachers-only, or not allowed to this participant now.
    ChatDisabled = 22,
    /// The server failed; the request may be retried.
    Internal = 23,
    /// Media arrived for a track with the other kind than its announced source; the track is
    /// not published.
    TrackKindMismatch = 24,
}

impl From<ErrorCode> for AulaErrorCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::MalformedMessage => AulaErrorCode::MalformedMessage,
            ErrorCode::MessageTooLarge => AulaErrorCode::MessageTooLarge,
            ErrorCode::UnsupportedVersion => AulaErrorCode::UnsupportedVersion,
            ErrorCode::InvalidToken => AulaErrorCode::InvalidToken,
            ErrorCode::TokenExpired => AulaErrorCode::TokenExpired,
            ErrorCode::RoomMismatch => AulaErrorCode::RoomMismatch,
            ErrorCode::NotJoined => AulaErrorCode::NotJoined,
            ErrorCode::AlreadyJoined => AulaErrorCode::AlreadyJoined,
            ErrorCode::PermissionDenied => AulaErrorCode::PermissionDenied,
            ErrorCode::UnknownTrack => AulaErrorCode::UnknownTrack,
            ErrorCode::InvalidRequest => AulaErrorCode::InvalidRequest,
            ErrorCode::RoomFull => AulaErrorCode::RoomFull,
            ErrorCode::ServerFull => AulaErrorCode::ServerFull,
            ErrorCode::RateLimited => AulaErrorCode::RateLimited,
            ErrorCode::InvalidState => AulaErrorCode::InvalidState,
            ErrorCode::UnknownParticipant => AulaErrorCode::UnknownParticipant,
            ErrorCode::UnknownRoom => AulaErrorCode::UnknownRoom,
            ErrorCode::StageFull => AulaErrorCode::StageFull,
            ErrorCode::RoomLocked => AulaErrorCode::RoomLocked,
            ErrorCode::Removed => AulaErrorCode::Removed,
            ErrorCode::ChatDisabled => AulaErrorCode::ChatDisabled,
            ErrorCode::TrackKindMismatch => AulaErrorCode::TrackKindMismatch,
            ErrorCode::Internal => AulaErrorCode::Internal,
            ErrorCode::Unknown => AulaErrorCode::Unknown,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    static LAST_CODE: Cell<AulaErrorCode> = const { Cell::new(AulaErrorCode::None) };
}

fn set_last_error(message: Option<String>) {
    let message = message
        .map(|m| CString::new(m.replace('\0', " ")).unwrap_or_else(|_| CString::from(c"error")));
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

/// Why the server refused the last failed Aula call on this thread: a code other than
/// `AULA_ERROR_CODE_NONE` after a call returned `AULA_STATUS_REFUSED`, `AULA_ERROR_CODE_NONE`
/// after any other outcome. Valid until this thread's next Aula call.
#[no_mangle]
pub extern "C" fn aula_last_error_code() -> AulaErrorCode {
    LAST_CODE.with(Cell::get)
}

/// The message of the last failed Aula call on this thread, or NULL after a successful one.
/// Owned by the library: valid until this thread's next Aula call; do not free it.
#[no_mangle]
pub extern "C" fn aula_last_error_message() -> *const c_char {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |m| m.as_ptr())
    })
}

/// An error raised inside the C layer.
pub(crate) fn invalid(reason: impl Into<String>) -> AulaError {
    AulaError::InvalidArgument {
        reason: reason.into(),
    }
}

/// Runs `body` with panics caught, records its error as the thread's last error, and maps it to
/// a status.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), AulaError>) -> AulaStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error(None);
            LAST_CODE.with(|c| c.set(AulaErrorCode::None));
            AulaStatus::Ok
        }
        Ok(Err(err)) => {
            set_last_error(Some(err.to_string()));
            let code = match &err {
                AulaError::Refused { code, .. } => AulaErrorCode::from(*code),
                _ => AulaErrorCode::None,
            };
            LAST_CODE.with(|c| c.set(code));
            AulaStatus::from(&err)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(Some(format!("internal: a panic was caught: {what}")));
            LAST_CODE.with(|c| c.set(AulaErrorCode::None));
            AulaStatus::Internal
        }
    }
}

/// Like [`guard`], for a status other than success or an error (e.g. [`AulaStatus::NotFound`]).
pub(crate) fn guard_status(body: impl FnOnce() -> Result<AulaStatus, AulaError>) -> AulaStatus {
    let mut status = AulaStatus::Ok;
    let outcome = guard(|| {
        status = body()?;
        Ok(())
    });
    if outcome == AulaStatus::Ok {
        status
    } else {
        outcome
    }
}
