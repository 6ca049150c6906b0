//! The one public error type, mapped in one place from the core's errors.

use aula_core::RoomError;
use aula_protocol::ErrorCode as WireCode;

/// Every failure an Aula binding reports.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum AulaError {
    /// The server could not be reached.
    #[error("cannot reach the server: {reason}")]
    Unreachable {
        /// Details.
        reason: String,
    },
    /// The server refused the request: `code` says why, as a value apps can branch on
    /// (`PermissionDenied`, `StageFull`, `ChatDisabled`, ...); `reason` explains it for people.
    #[error("refused by the server ({code}): {reason}")]
    Refused {
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation.
        reason: String,
    },
    /// The token could not be read. (A token the server does not accept, forged or expired,
    /// is `Refused` with the server's code, `invalid_token` or `token_expired`.)
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// Details.
        reason: String,
    },
    /// The room is disconnected (or the publication stopped): the call cannot proceed.
    #[error("disconnected: {reason}")]
    Disconnected {
        /// Details.
        reason: String,
    },
    /// The call needs a state the object is not in.
    #[error("invalid state: {reason}")]
    InvalidState {
        /// Details.
        reason: String,
    },
    /// An argument is out of range (bad frame size, bad buffer length, unknown track...).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Details.
        reason: String,
    },
    /// Encoding or decoding failed.
    #[error("media: {reason}")]
    Media {
        /// Details.
        reason: String,
    },
    /// The WebRTC stack failed.
    #[error("webrtc: {reason}")]
    WebRtc {
        /// Details.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("timed out: {reason}")]
    Timeout {
        /// Details.
        reason: String,
    },
    /// This build of the library leaves the feature out (e.g. PNG export in the mobile SDK).
    #[error("unsupported: {reason}")]
    Unsupported {
        /// What is missing, and what to use instead.
        reason: String,
    },
    /// Something that should not fail did.
    #[error("internal: {reason}")]
    Internal {
        /// Details.
        reason: String,
    },
}

/// Why the server refused a request (the protocol's error codes, `docs/protocol.md`, "Errors"
/// and "Classroom"). A request the server refused changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ErrorCode {
    /// The message was not understood.
    MalformedMessage,
    /// The message, or a chat text (over 4096 bytes), is too large.
    MessageTooLarge,
    /// The server does not speak this SDK's protocol version.
    UnsupportedVersion,
    /// The token is malformed, forged, or names an unknown key.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The token is for another room.
    RoomMismatch,
    /// The session has not joined.
    NotJoined,
    /// The session joined already.
    AlreadyJoined,
    /// The participant may not do this now (its grants, its placement, or a teacher-only
    /// request from a student).
    PermissionDenied,
    /// The request names a track that does not exist.
    UnknownTrack,
    /// The request cannot be carried out as made (an empty chat text, a private message to
    /// oneself, a bad SDP...).
    InvalidRequest,
    /// The room has reached its participant limit.
    RoomFull,
    /// The server opens no new rooms.
    ServerFull,
    /// Too many requests (chat: over 5 messages a second; hands: over 2 changes a second).
    RateLimited,
    /// The request does not fit the participant's or the room's state (admitting someone not
    /// in the lobby, answering an invitation that was never made, raising a hand in the
    /// lobby).
    InvalidState,
    /// The request names a participant who is not in the room.
    UnknownParticipant,
    /// The request names a room the server does not know.
    UnknownRoom,
    /// The stage has no room for another student.
    StageFull,
    /// The room is locked: it takes no new participants.
    RoomLocked,
    /// This identity was removed from the class and may not rejoin it.
    Removed,
    /// Chat is off, teachers-only, or not allowed to this participant now (in the lobby).
    ChatDisabled,
    /// Media arrived for a track with the other kind than its announced source; the track is
    /// not published.
    TrackKindMismatch,
    /// The server failed; the request may be retried.
    Internal,
    /// A code this version of the SDK does not know (from a newer server).
    Unknown,
}

impl From<WireCode> for ErrorCode {
    fn from(code: WireCode) -> Self {
        match code {
            WireCode::MalformedMessage => ErrorCode::MalformedMessage,
            WireCode::MessageTooLarge => ErrorCode::MessageTooLarge,
            WireCode::UnsupportedVersion => ErrorCode::UnsupportedVersion,
            WireCode::InvalidToken => ErrorCode::InvalidToken,
            WireCode::TokenExpired => ErrorCode::TokenExpired,
            WireCode::RoomMismatch => ErrorCode::RoomMismatch,
            WireCode::NotJoined => ErrorCode::NotJoined,
            WireCode::AlreadyJoined => ErrorCode::AlreadyJoined,
            WireCode::PermissionDenied => ErrorCode::PermissionDenied,
            WireCode::UnknownTrack => ErrorCode::UnknownTrack,
            WireCode::InvalidRequest => ErrorCode::InvalidRequest,
            WireCode::RoomFull => ErrorCode::RoomFull,
            WireCode::ServerFull => ErrorCode::ServerFull,
            WireCode::RateLimited => ErrorCode::RateLimited,
            WireCode::InvalidState => ErrorCode::InvalidState,
            WireCode::UnknownParticipant => ErrorCode::UnknownParticipant,
            WireCode::UnknownRoom => ErrorCode::UnknownRoom,
            WireCode::StageFull => ErrorCode::StageFull,
            WireCode::RoomLocked => ErrorCode::RoomLocked,
            WireCode::Removed => ErrorCode::Removed,
            WireCode::ChatDisabled => ErrorCode::ChatDisabled,
            WireCode::TrackKindMismatch => ErrorCode::TrackKindMismatch,
            WireCode::Internal => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }
}

impl ErrorCode {
    /// The code's name on the wire (`permission_denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedMessage => WireCode::MalformedMessage,
            ErrorCode::MessageTooLarge => WireCode::MessageTooLarge,
            ErrorCode::UnsupportedVersion => WireCode::UnsupportedVersion,
            ErrorCode::InvalidToken => WireCode::InvalidToken,
            ErrorCode::TokenExpired => WireCode::TokenExpired,
            ErrorCode::RoomMismatch => WireCode::RoomMismatch,
            ErrorCode::NotJoined => WireCode::NotJoined,
            ErrorCode::AlreadyJoined => WireCode::AlreadyJoined,
            ErrorCode::PermissionDenied => WireCode::PermissionDenied,
            ErrorCode::UnknownTrack => WireCode::UnknownTrack,
            ErrorCode::InvalidRequest => WireCode::InvalidRequest,
            ErrorCode::RoomFull => WireCode::RoomFull,
            ErrorCode::ServerFull => WireCode::ServerFull,
            ErrorCode::RateLimited => WireCode::RateLimited,
            ErrorCode::InvalidState => WireCode::InvalidState,
            ErrorCode::UnknownParticipant => WireCode::UnknownParticipant,
            ErrorCode::UnknownRoom => WireCode::UnknownRoom,
            ErrorCode::StageFull => WireCode::StageFull,
            ErrorCode::RoomLocked => WireCode::RoomLocked,
            ErrorCode::Removed => WireCode::Removed,
            ErrorCode::ChatDisabled => WireCode::ChatDisabled,
            ErrorCode::TrackKindMismatch => WireCode::TrackKindMismatch,
            ErrorCode::Internal => WireCode::Internal,
            ErrorCode::Unknown => WireCode::Unknown,
        }
        .as_str()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AulaError {
    /// The error for a call on a closed room.
    pub(crate) fn disconnected() -> Self {
        AulaError::Disconnected {
            reason: "the room is disconnected".into(),
        }
    }
}

impl From<RoomError> for AulaError {
    fn from(err: RoomError) -> Self {
        match err {
            RoomError::Unreachable(reason) => AulaError::Unreachable { reason },
            RoomError::Refused {
                code,
                message: reason,
            } => AulaError::Refused {
                code: code.into(),
                reason,
            },
            RoomError::InvalidToken(reason) => AulaError::InvalidToken { reason },
            RoomError::InvalidState(reason) => AulaError::InvalidState { reason },
            RoomError::InvalidArgument(reason) => AulaError::InvalidArgument { reason },
            RoomError::Media(reason) => AulaError::Media { reason },
            RoomError::WebRtc(reason) => AulaError::WebRtc { reason },
            RoomError::Timeout(reason) => AulaError::Timeout { reason },
            RoomError::Internal(reason) => AulaError::Internal { reason },
            other => AulaError::Internal {
                reason: other.to_string(),
            },
        }
    }
}

impl From<aula_core::media::MediaError> for AulaError {
    fn from(err: aula_core::media::MediaError) -> Self {
        match err {
            aula_core::media::MediaError::InvalidFrame(reason)
            | aula_core::media::MediaError::InvalidConfig(reason) => {
                AulaError::InvalidArgument { reason }
            }
            other => AulaError::Media {
                reason: other.to_string(),
            },
        }
    }
}

impl From<aula_core::WhiteboardError> for AulaError {
    fn from(err: aula_core::WhiteboardError) -> Self {
        // Every whiteboard error names an argument that does not fit the board (an unknown
        // item id); the variants to come are of the same kind.
        AulaError::InvalidArgument {
            reason: err.to_string(),
        }
    }
}

#[cfg(feature = "png")]
impl From<aula_core::whiteboard::png::RenderError> for AulaError {
    fn from(err: aula_core::whiteboard::png::RenderError) -> Self {
        // A page renders unless its size is empty or over the limit.
        AulaError::InvalidArgument {
            reason: err.to_string(),
        }
    }
}
