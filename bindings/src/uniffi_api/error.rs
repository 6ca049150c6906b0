//! The one public error type, mapped in one place from the core's errors.

use aula_core::RoomError;

/// Every failure an Aula binding reports.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum AulaError {
    /// The server could not be reached.
    #[error("cannot reach the server: {message}")]
    Unreachable {
        /// Details.
        message: String,
    },
    /// The server refused the request (`code` is the server's error code, e.g. `unauthorized`).
    #[error("refused by the server ({code}): {message}")]
    Refused {
        /// The server's error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The token could not be read or signed.
    #[error("invalid token: {message}")]
    InvalidToken {
        /// Details.
        message: String,
    },
    /// The room is disconnected (or the publication stopped): the call cannot proceed.
    #[error("disconnected: {message}")]
    Disconnected {
        /// Details.
        message: String,
    },
    /// The call needs a state the object is not in.
    #[error("invalid state: {message}")]
    InvalidState {
        /// Details.
        message: String,
    },
    /// An argument is out of range (bad frame size, bad buffer length, unknown track...).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// Details.
        message: String,
    },
    /// Encoding or decoding failed.
    #[error("media: {message}")]
    Media {
        /// Details.
        message: String,
    },
    /// The WebRTC stack failed.
    #[error("webrtc: {message}")]
    WebRtc {
        /// Details.
        message: String,
    },
    /// The server did not answer in time.
    #[error("timed out: {message}")]
    Timeout {
        /// Details.
        message: String,
    },
    /// Something that should not fail did.
    #[error("internal: {message}")]
    Internal {
        /// Details.
        message: String,
    },
}

impl AulaError {
    /// The error for a call on a closed room.
    pub(crate) fn disconnected() -> Self {
        AulaError::Disconnected {
            message: "the room is disconnected".into(),
        }
    }
}

impl From<RoomError> for AulaError {
    fn from(err: RoomError) -> Self {
        match err {
            RoomError::Unreachable(message) => AulaError::Unreachable { message },
            RoomError::Refused { code, message } => AulaError::Refused {
                code: code.to_string(),
                message,
            },
            RoomError::InvalidToken(message) => AulaError::InvalidToken { message },
            RoomError::InvalidState(message) => AulaError::InvalidState { message },
            RoomError::InvalidArgument(message) => AulaError::InvalidArgument { message },
            RoomError::Media(message) => AulaError::Media { message },
            RoomError::WebRtc(message) => AulaError::WebRtc { message },
            RoomError::Timeout(message) => AulaError::Timeout { message },
            RoomError::Internal(message) => AulaError::Internal { message },
            other => AulaError::Internal {
                message: other.to_string(),
            },
        }
    }
}

impl From<aula_core::media::MediaError> for AulaError {
    fn from(err: aula_core::media::MediaError) -> Self {
        match err {
            aula_core::media::MediaError::InvalidFrame(message)
            | aula_core::media::MediaError::InvalidConfig(message) => {
                AulaError::InvalidArgument { message }
            }
            other => AulaError::Media {
                message: other.to_string(),
            },
        }
    }
}
