//! `AulaRoom`: joining, callbacks, publishing, stats.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use super::callbacks::{
    AudioCallbackSink, AulaAudioFrameCallback, AulaEventCallback, AulaVideoFrameCallback,
    CallbackSlot, EventCallbackListener, VideoCallbackSink,
};
use super::publishers::AulaVideoPublisher;
use super::status::{guard, invalid, AulaStatus};
use super::strings::{arg_str, give_string};
use crate::uniffi_api::{self, AulaError, ConnectOptions, Subscription, TrackOrigin};

type EventFn = unsafe extern "C" fn(*mut c_void, *const super::callbacks::AulaEvent);
type VideoFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const super::callbacks::AulaVideoFrame,
);
type AudioFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const super::callbacks::AulaAudioFrame,
);

/// How to join. Pass NULL for the defaults (both true).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AulaConnectOptions {
    /// Subscribe to every track automatically.
    pub auto_subscribe: bool,
    /// Rejoin by itself after a lost connection.
    pub reconnect: bool,
}

/// A joined room (opaque). Release with `aula_room_free`.
pub struct AulaRoom {
    pub(crate) room: Arc<uniffi_api::AulaRoom>,
    events: Arc<CallbackSlot<EventFn>>,
    event_subscription: Mutex<Option<Arc<Subscription>>>,
    video: Arc<CallbackSlot<VideoFn>>,
    audio: Arc<CallbackSlot<AudioFn>>,
}

/// Borrows the object behind a handle.
///
/// # Safety
/// `ptr` is NULL or a live handle from this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, AulaError> {
    // SAFETY: non-null handles are live objects created by this library, per the contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| invalid(format!("{name} is NULL")))
}

/// Joins the room named in `token` on the server at `url` (`ws://host:port`), blocking until
/// joined, and stores the room in `*out_room`.
///
/// # Safety
/// `url` and `token` are NULL or NUL-terminated; `options` is NULL or valid; `out_room` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_connect(
    url: *const c_char,
    token: *const c_char,
    options: *const AulaConnectOptions,
    out_room: *mut *mut AulaRoom,
) -> AulaStatus {
    guard(|| {
        if out_room.is_null() {
            return Err(invalid("out_room is NULL"));
        }
        // SAFETY: per this function's contract.
        let (url, token) = unsafe { (arg_str(url, "url")?, arg_str(token, "token")?) };
        // SAFETY: NULL or valid, per the contract.
        let options =
            unsafe { options.as_ref() }.map_or_else(ConnectOptions::default, |o| ConnectOptions {
                auto_subscribe: o.auto_subscribe,
                reconnect: o.reconnect,
            });
        let room = uniffi_api::connect(url.into(), token.into(), options)?;
        let room = Box::new(AulaRoom {
            room,
            events: Arc::default(),
            event_subscription: Mutex::new(None),
            video: Arc::default(),
            audio: Arc::default(),
        });
        // SAFETY: checked non-null; writable per the contract.
        unsafe { *out_room = Box::into_raw(room) };
        Ok(())
    })
}

/// Leaves the room. Idempotent; later calls on the room return `AULA_STATUS_DISCONNECTED`.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_disconnect(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    guard(|| unsafe { handle(room, "room") }?.room.disconnect())
}

/// Whether the room is connected (false for NULL).
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_is_connected(room: *const AulaRoom) -> bool {
    let mut connected = false;
    guard(|| {
        // SAFETY: per this function's contract.
        connected = unsafe { handle(room, "room") }?.room.is_connected();
        Ok(())
    });
    connected
}

/// Leaves the room if still connected, stops every callback and releases the handle. NULL is
/// ignored. When this returns, no callback of the room runs or will run.
///
/// # Safety
/// `room` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_room_free(room: *mut AulaRoom) {
    if room.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: a live handle from `aula_room_connect`, freed once per the contract.
        let room = unsafe { Box::from_raw(room) };
        let _ = room.room.disconnect();
        room.events.set(None, std::ptr::null_mut());
        room.video.set(None, std::ptr::null_mut());
        room.audio.set(None, std::ptr::null_mut());
        drop(room);
        Ok(())
    });
}

/// Registers `callback` (or with NULL removes it) for the room's events, called with
/// `user_data` on the room's event thread, in order.
///
/// # Safety
/// `room` is NULL or a live handle; `callback` is NULL or safe to call from another thread
/// with `user_data` until it is replaced or the room freed.
#[no_mangle]
pub unsafe extern "C" fn aula_room_set_event_callback(
    room: *mut AulaRoom,
    callback: AulaEventCallback,
    user_data: *mut c_void,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        room.events.set(callback, user_data);
        let mut subscription = room
            .event_subscription
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if subscription.is_none() && room.events.is_set() {
            let listener = Arc::new(EventCallbackListener(Arc::clone(&room.events)));
            *subscription = Some(room.room.add_listener(listener)?);
        }
        Ok(())
    })
}

/// Registers `callback` (or with NULL removes it) for every decoded video frame, called with
/// `user_data` on decoder threads. The frame's planes are the decoder's own (no copy).
///
/// # Safety
/// As for `aula_room_set_event_callback`.
#[no_mangle]
pub unsafe extern "C" fn aula_room_set_video_callback(
    room: *mut AulaRoom,
    callback: AulaVideoFrameCallback,
    user_data: *mut c_void,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let core = room.room.room()?;
        room.video.set(callback, user_data);
        core.set_video_sink(
            callback
                .is_some()
                .then(|| Arc::new(VideoCallbackSink(Arc::clone(&room.video))) as _),
        );
        Ok(())
    })
}

/// Registers `callback` (or with NULL removes it) for every decoded audio frame, called with
/// `user_data` on decoder threads.
///
/// # Safety
/// As for `aula_room_set_event_callback`.
#[no_mangle]
pub unsafe extern "C" fn aula_room_set_audio_callback(
    room: *mut AulaRoom,
    callback: AulaAudioFrameCallback,
    user_data: *mut c_void,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let core = room.room.room()?;
        room.audio.set(callback, user_data);
        core.set_audio_sink(
            callback
                .is_some()
                .then(|| Arc::new(AudioCallbackSink(Arc::clone(&room.audio))) as _),
        );
        Ok(())
    })
}

/// Publishes a synthetic stamped test pattern of `width`x`height` at `fps`, encoded as H.264
/// at up to `bitrate_bps` (0 for the default); the track id goes to `*out_track_sid` (NULL to
/// discard; free it with `aula_string_free`).
///
/// # Safety
/// `room` is NULL or a live handle; `out_track_sid` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_publish_synthetic_video(
    room: *mut AulaRoom,
    width: u32,
    height: u32,
    fps: u32,
    bitrate_bps: u32,
    out_track_sid: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let track =
            room.room
                .publish_synthetic_video(width, height, fps, bitrate_bps, "camera".into())?;
        // SAFETY: NULL or writable per the contract.
        unsafe { give_string(out_track_sid, track.sid) }
    })
}

/// Publishes a synthetic sine tone of `frequency_hz`, encoded as Opus.
///
/// # Safety
/// As for `aula_room_publish_synthetic_video`.
#[no_mangle]
pub unsafe extern "C" fn aula_room_publish_synthetic_audio(
    room: *mut AulaRoom,
    frequency_hz: f32,
    out_track_sid: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let track = room
            .room
            .publish_synthetic_audio(frequency_hz, "microphone".into())?;
        // SAFETY: NULL or writable per the contract.
        unsafe { give_string(out_track_sid, track.sid) }
    })
}

/// Publishes a camera track the app feeds with raw frames (`aula_video_publisher_push_*`) of
/// `width`x`height`, encoded at `fps` and up to `bitrate_bps` (0 for the default).
///
/// # Safety
/// `room` is NULL or a live handle; `out_publisher` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_publish_app_video(
    room: *mut AulaRoom,
    width: u32,
    height: u32,
    fps: u32,
    bitrate_bps: u32,
    out_publisher: *mut *mut AulaVideoPublisher,
) -> AulaStatus {
    guard(|| {
        if out_publisher.is_null() {
            return Err(invalid("out_publisher is NULL"));
        }
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let publisher = room.room.publish_app_video(
            width,
            height,
            fps,
            bitrate_bps,
            TrackOrigin::Camera,
            "camera".into(),
        )?;
        let publisher = Box::new(AulaVideoPublisher::new(publisher));
        // SAFETY: checked non-null; writable per the contract.
        unsafe { *out_publisher = Box::into_raw(publisher) };
        Ok(())
    })
}

/// Stops publishing `track_sid`.
///
/// # Safety
/// `room` is NULL or a live handle; `track_sid` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_unpublish(
    room: *mut AulaRoom,
    track_sid: *const c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (room, sid) = unsafe { (handle(room, "room")?, arg_str(track_sid, "track_sid")?) };
        room.room.unpublish(sid.into())
    })
}

/// Everything sent and received so far, as JSON (the fields of the stats file of
/// `aula join`), into `*out_json`; free it with `aula_string_free`.
///
/// # Safety
/// `room` is NULL or a live handle; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_stats_json(
    room: *mut AulaRoom,
    out_json: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        if out_json.is_null() {
            return Err(invalid("out_json is NULL"));
        }
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let stats = room.room.room()?.stats();
        let json = serde_json::to_string(&stats).map_err(|e| AulaError::Internal {
            reason: format!("cannot encode stats: {e}"),
        })?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { give_string(out_json, json) }
    })
}
