//! The one public error type, mapped in one place from the core's errors.

use aula_core::RoomError;

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
    /// The server refused the request (`code` is the server's error code, e.g. `unauthorized`).
    #[error("refused by the server ({code}): {reason}")]
    Refused {
        /// The server's error code.
        code: String,
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
                code: code.to_string(),
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
