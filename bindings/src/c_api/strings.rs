//! Strings across the boundary, and the small free-standing functions.

use std::ffi::{c_char, CStr, CString};

use aula_core::media::{read_stamp, VideoFrame};

use super::callbacks::AulaVideoFrame;
use super::status::{guard, guard_status, invalid, AulaStatus};
use crate::uniffi_api::{self, AulaError, LogLevel};

/// Reads a required C string argument.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string that stays valid for the call.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, AulaError> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string valid for the call.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// Hands `value` to C through `out` (NULL `out` discards it).
///
/// # Safety
/// `out` is NULL or points to writable storage for one pointer.
pub(crate) unsafe fn give_string(out: *mut *mut c_char, value: String) -> Result<(), AulaError> {
    if out.is_null() {
        return Ok(());
    }
    let owned = CString::new(value).map_err(|_| AulaError::Internal {
        reason: "string with an interior NUL".into(),
    })?;
    // SAFETY: `out` is non-null and writable per the contract.
    unsafe { *out = owned.into_raw() };
    Ok(())
}

/// Releases a string the library returned. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn aula_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the string came from `CString::into_raw` in this library and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// The library version, e.g. `"0.1.0"`. Static: do not free.
#[no_mangle]
pub extern "C" fn aula_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// How much the library logs (to standard error).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaLogLevel {
    /// Nothing.
    Off = 0,
    /// Failures.
    Error = 1,
    /// Suspicious conditions.
    Warn = 2,
    /// Milestones.
    Info = 3,
    /// Details.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

/// Sets how much the library logs.
#[no_mangle]
pub extern "C" fn aula_set_log_level(level: AulaLogLevel) -> AulaStatus {
    guard(|| {
        uniffi_api::set_log_level(match level {
            AulaLogLevel::Off => LogLevel::Off,
            AulaLogLevel::Error => LogLevel::Error,
            AulaLogLevel::Warn => LogLevel::Warn,
            AulaLogLevel::Info => LogLevel::Info,
            AulaLogLevel::Debug => LogLevel::Debug,
            AulaLogLevel::Trace => LogLevel::Trace,
        });
        Ok(())
    })
}

/// The sequence number and capture time a sender stamped into a picture.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AulaStamp {
    /// Frame sequence number.
    pub sequence: u32,
    /// Capture time, microseconds since the Unix epoch (low 48 bits).
    pub capture_time_us: u64,
}

/// Reads the stamp Aula's synthetic source puts in its pictures from a decoded `frame` into
/// `*out`. Returns `AULA_STATUS_NOT_FOUND` when the picture carries none.
///
/// # Safety
/// `frame` is NULL or a frame handed to a video callback, used during that callback; `out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_read_stamp(
    frame: *const AulaVideoFrame,
    out: *mut AulaStamp,
) -> AulaStatus {
    guard_status(|| {
        if frame.is_null() || out.is_null() {
            return Err(invalid("frame and out must not be NULL"));
        }
        // SAFETY: non-null, and valid during the callback per the contract.
        let frame = unsafe { &*frame };
        // SAFETY: the planes of a frame handed to a callback are valid for their documented sizes.
        let picture = unsafe { frame.to_owned_frame() }?;
        match read_stamp(&picture) {
            Some(stamp) => {
                // SAFETY: `out` checked non-null; writable per the contract.
                unsafe {
                    *out = AulaStamp {
                        sequence: stamp.sequence,
                        capture_time_us: stamp.capture_time_us,
                    }
                };
                Ok(AulaStatus::Ok)
            }
            None => Ok(AulaStatus::NotFound),
        }
    })
}

/// Checks that a frame's planes are as large as its size says.
pub(crate) fn frame_sizes(width: u32, height: u32) -> Result<(usize, usize), AulaError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(invalid(format!(
            "frame size {width}x{height} must be even and non-zero"
        )));
    }
    let luma = width as usize * height as usize;
    Ok((luma, luma / 4))
}

/// A decoded picture as the core holds it (used to read stamps).
pub(crate) fn video_frame(
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
) -> VideoFrame {
    VideoFrame {
        width,
        height,
        y,
        u,
        v,
        timestamp_us: 0,
    }
}
