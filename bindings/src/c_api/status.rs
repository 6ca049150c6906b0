//! Status codes, the thread-local last error, and the guard every entry point runs in.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::uniffi_api::AulaError;

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
    /// The server refused (the message names its error code, e.g. `unauthorized`).
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

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: Option<String>) {
    let message = message
        .map(|m| CString::new(m.replace('\0', " ")).unwrap_or_else(|_| CString::from(c"error")));
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
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
            AulaStatus::Ok
        }
        Ok(Err(err)) => {
            set_last_error(Some(err.to_string()));
            AulaStatus::from(&err)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(Some(format!("internal: a panic was caught: {what}")));
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
