//! `AulaVideoPublisher`: a camera track fed with raw frames by the app.

use std::sync::Arc;

use super::room::handle;
use super::status::{guard, invalid, AulaStatus};
use crate::uniffi_api::{AppVideoPublisher, AulaError};

/// A video track the app feeds (opaque). Release with `aula_video_publisher_free`; the track
/// stays published until unpublished or the room is left.
pub struct AulaVideoPublisher {
    inner: Arc<AppVideoPublisher>,
}

impl AulaVideoPublisher {
    pub(crate) fn new(inner: Arc<AppVideoPublisher>) -> Self {
        Self { inner }
    }
}

/// Borrows `len` bytes at `data` (which must not be NULL unless `len` is 0).
///
/// # Safety
/// `data` points to `len` readable bytes for the call.
unsafe fn bytes<'a>(data: *const u8, len: usize, name: &str) -> Result<&'a [u8], AulaError> {
    if data.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-null and `len` readable bytes per the contract.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Pushes one I420 frame: `len` = `width*height*3/2` bytes, Y then U then V, tightly packed,
/// with its capture time. The library copies it; the buffer may be reused on return.
///
/// # Safety
/// `publisher` is NULL or a live handle; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn aula_video_publisher_push_i420(
    publisher: *mut AulaVideoPublisher,
    data: *const u8,
    len: usize,
    timestamp_us: u64,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (publisher, data) =
            unsafe { (handle(publisher, "publisher")?, bytes(data, len, "data")?) };
        publisher
            .inner
            .feed
            .push_i420(data, timestamp_us)
            .map_err(feed_error)
    })
}

/// Pushes one NV12 frame: a `width*height` Y plane and a `width*height/2` interleaved UV
/// plane, tightly packed.
///
/// # Safety
/// `publisher` is NULL or a live handle; `y` and `uv` point to `y_len` and `uv_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn aula_video_publisher_push_nv12(
    publisher: *mut AulaVideoPublisher,
    y: *const u8,
    y_len: usize,
    uv: *const u8,
    uv_len: usize,
    timestamp_us: u64,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (publisher, y, uv) = unsafe {
            (
                handle(publisher, "publisher")?,
                bytes(y, y_len, "y")?,
                bytes(uv, uv_len, "uv")?,
            )
        };
        publisher
            .inner
            .feed
            .push_nv12(y, uv, timestamp_us)
            .map_err(feed_error)
    })
}

/// Releases the handle. NULL is ignored.
///
/// # Safety
/// `publisher` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_video_publisher_free(publisher: *mut AulaVideoPublisher) {
    if !publisher.is_null() {
        // SAFETY: a live handle from `aula_room_publish_app_video`, freed once.
        drop(unsafe { Box::from_raw(publisher) });
    }
}

fn feed_error(err: aula_core::RoomError) -> AulaError {
    match err {
        aula_core::RoomError::InvalidState(reason) => AulaError::Disconnected { reason },
        other => other.into(),
    }
}
