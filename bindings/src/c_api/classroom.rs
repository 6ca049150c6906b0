//! The classroom for C: this client's view of it, and the requests students and teachers
//! make. Each request blocks until the server answered; a refusal is `AULA_STATUS_REFUSED`
//! with the reason in `aula_last_error_code()` (`AULA_ERROR_CODE_PERMISSION_DENIED`,
//! `..._STAGE_FULL`, `..._CHAT_DISABLED`, ...), and a refused request changed nothing.

use std::ffi::c_char;

use super::classroom_types::{
    into_raw_messages, AulaChatMessage, AulaClassroomView, AulaMediaKind, AulaPermissionsPatch,
    AulaPlacement, AulaRoomSettingsPatch,
};
use super::room::{handle, AulaRoom};
use super::status::{guard, invalid, AulaStatus};
use super::strings::{arg_str, give_string};
use crate::uniffi_api::{AulaError, ChatDraft, TrackKind};

/// Reads an optional C string argument (NULL for none).
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for the call.
unsafe fn opt_str(ptr: *const c_char, name: &str) -> Result<Option<String>, AulaError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: per this function's contract.
    Ok(Some(unsafe { arg_str(ptr, name) }?.to_owned()))
}

/// Runs `request` with the room and a required participant id.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
unsafe fn with_participant(
    room: *mut AulaRoom,
    participant_id: *const c_char,
    request: impl FnOnce(&AulaRoom, String) -> Result<(), AulaError>,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (room, id) = unsafe {
            (
                handle(room, "room")?,
                arg_str(participant_id, "participant_id")?,
            )
        };
        request(room, id.to_owned())
    })
}

/// Runs `request` with the room.
///
/// # Safety
/// `room` is NULL or a live handle.
unsafe fn with_room(
    room: *mut AulaRoom,
    request: impl FnOnce(&AulaRoom) -> Result<(), AulaError>,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        request(unsafe { handle(room, "room") }?)
    })
}

/// This client's participant id into `*out_id` (free it with `aula_string_free`).
///
/// # Safety
/// `room` is NULL or a live handle; `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_local_participant_id(
    room: *mut AulaRoom,
    out_id: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        if out_id.is_null() {
            return Err(invalid("out_id is NULL"));
        }
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let id = room.room.local_participant()?.id;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { give_string(out_id, id) }
    })
}

/// Where this client is now, into `*out_placement`.
///
/// # Safety
/// `room` is NULL or a live handle; `out_placement` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_placement(
    room: *mut AulaRoom,
    out_placement: *mut AulaPlacement,
) -> AulaStatus {
    guard(|| {
        if out_placement.is_null() {
            return Err(invalid("out_placement is NULL"));
        }
        // SAFETY: per this function's contract.
        let placement = unsafe { handle(room, "room") }?.room.placement()?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { *out_placement = placement.into() };
        Ok(())
    })
}

/// This client's view of the classroom now (placement, permissions, the room's classroom
/// state, a pending invitation, its hand, the chat it has seen) into `*out_view`. The view
/// owns everything it points to: release it with `aula_classroom_view_free`.
///
/// # Safety
/// `room` is NULL or a live handle; `out_view` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_classroom(
    room: *mut AulaRoom,
    out_view: *mut *mut AulaClassroomView,
) -> AulaStatus {
    guard(|| {
        if out_view.is_null() {
            return Err(invalid("out_view is NULL"));
        }
        // SAFETY: per this function's contract.
        let view = unsafe { handle(room, "room") }?.room.classroom()?;
        let view = Box::new(AulaClassroomView::owned(&view));
        // SAFETY: checked non-null; writable per the contract.
        unsafe { *out_view = Box::into_raw(view) };
        Ok(())
    })
}

/// Mutes or unmutes one of this client's tracks (others get `AULA_EVENT_KIND_TRACK_MUTED`).
/// Unmuting what a teacher muted is refused (`PERMISSION_DENIED`) unless permitted.
///
/// # Safety
/// `room` is NULL or a live handle; `track_sid` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_set_track_muted(
    room: *mut AulaRoom,
    track_sid: *const c_char,
    muted: bool,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (room, sid) = unsafe { (handle(room, "room")?, arg_str(track_sid, "track_sid")?) };
        room.room.set_track_muted(sid.to_owned(), muted)
    })
}

/// Raises this client's hand (`INVALID_STATE` in the lobby).
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_raise_hand(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.raise_hand()) }
}

/// Lowers this client's hand.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_lower_hand(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.lower_hand()) }
}

/// Accepts or declines the pending stage invitation (`INVALID_STATE` without one).
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_answer_stage_invitation(
    room: *mut AulaRoom,
    accept: bool,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.answer_stage_invitation(accept)) }
}

/// Leaves the stage for the audience; the server ends this client's camera and microphone.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_leave_stage(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.leave_stage()) }
}

/// Sends a chat message `text` (at most 4096 bytes), privately to `to_participant_id` or, with
/// NULL, to everyone; `announcement` for a teacher's announcement. The message as the server
/// stored it (with its `seq`) goes to `*out_message` (NULL to discard); release it with
/// `aula_chat_message_free`.
///
/// # Safety
/// `room` is NULL or a live handle; `text` and `to_participant_id` are NULL or
/// NUL-terminated; `out_message` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_send_chat(
    room: *mut AulaRoom,
    text: *const c_char,
    to_participant_id: *const c_char,
    announcement: bool,
    out_message: *mut *mut AulaChatMessage,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (room, text, to) = unsafe {
            (
                handle(room, "room")?,
                arg_str(text, "text")?,
                opt_str(to_participant_id, "to_participant_id")?,
            )
        };
        let message = room.room.send_chat(ChatDraft {
            text: text.to_owned(),
            to_participant_id: to,
            announcement,
        })?;
        if !out_message.is_null() {
            let (array, _) = into_raw_messages(std::slice::from_ref(&message));
            // SAFETY: checked non-null; writable per the contract.
            unsafe { *out_message = array };
        }
        Ok(())
    })
}

/// Deletes the chat message `seq`: one's own, or any as a teacher.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_delete_chat(room: *mut AulaRoom, seq: u64) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.delete_chat(seq)) }
}

/// Older chat messages: up to `limit` (0 for the server's default and most, 200) before
/// `before` (0 for the newest), oldest first, into `*out_messages` and `*out_count` (NULL and
/// 0 when there are none); `*out_more` (NULL to discard) says whether older ones remain.
/// Release the array with `aula_chat_messages_free(messages, count)`.
///
/// # Safety
/// `room` is NULL or a live handle; `out_messages` and `out_count` are NULL or writable;
/// `out_more` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_chat_history(
    room: *mut AulaRoom,
    before: u64,
    limit: u32,
    out_messages: *mut *mut AulaChatMessage,
    out_count: *mut usize,
    out_more: *mut bool,
) -> AulaStatus {
    guard(|| {
        if out_messages.is_null() || out_count.is_null() {
            return Err(invalid("out_messages and out_count must not be NULL"));
        }
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let page = room.room.chat_history(
            (before != 0).then_some(before),
            (limit != 0).then_some(limit),
        )?;
        let (array, count) = into_raw_messages(&page.messages);
        // SAFETY: checked non-null (`out_more`: NULL or writable); writable per the contract.
        unsafe {
            *out_messages = array;
            *out_count = count;
            if !out_more.is_null() {
                *out_more = page.more;
            }
        }
        Ok(())
    })
}

/// (Teachers) Lets `participant_id` in from the lobby (`INVALID_STATE` if it is not there).
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_admit(
    room: *mut AulaRoom,
    participant_id: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_participant(room, participant_id, |r, id| r.room.admit(id)) }
}

/// (Teachers) Lets everyone in the lobby in.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_admit_all(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.admit_all()) }
}

/// (Teachers) Refuses `participant_id` in the lobby, who is shown `reason` (NULL for none;
/// at most 256 bytes).
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` and `reason` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_deny(
    room: *mut AulaRoom,
    participant_id: *const c_char,
    reason: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe {
        with_participant(room, participant_id, |r, id| {
            let reason = opt_str(reason, "reason")?.unwrap_or_default();
            r.room.deny(id, reason)
        })
    }
}

/// (Teachers) Invites `participant_id` from the audience to the stage; one with a raised hand
/// goes up at once (`STAGE_FULL`, `INVALID_STATE`).
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_invite_to_stage(
    room: *mut AulaRoom,
    participant_id: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_participant(room, participant_id, |r, id| r.room.invite_to_stage(id)) }
}

/// (Teachers) Moves `participant_id` from the stage to the audience.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_move_to_audience(
    room: *mut AulaRoom,
    participant_id: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_participant(room, participant_id, |r, id| r.room.move_to_audience(id)) }
}

/// (Teachers) Moves every student on stage to the audience.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_clear_stage(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.clear_stage()) }
}

/// (Teachers) Lowers `participant_id`'s raised hand.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_dismiss_hand(
    room: *mut AulaRoom,
    participant_id: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_participant(room, participant_id, |r, id| r.room.dismiss_hand(id)) }
}

/// The bindings' kind for a C media kind.
fn track_kind(kind: AulaMediaKind) -> TrackKind {
    match kind {
        AulaMediaKind::Audio => TrackKind::Audio,
        AulaMediaKind::Video => TrackKind::Video,
    }
}

/// (Teachers) Mutes `participant_id`'s microphone (`AULA_MEDIA_KIND_AUDIO`) or camera.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_mute_participant(
    room: *mut AulaRoom,
    participant_id: *const c_char,
    kind: AulaMediaKind,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe {
        with_participant(room, participant_id, |r, id| {
            r.room.mute_participant(id, track_kind(kind))
        })
    }
}

/// (Teachers) Mutes every student's microphone or camera; `allow_unmute` (NULL to leave it)
/// sets whether they may unmute themselves.
///
/// # Safety
/// `room` is NULL or a live handle; `allow_unmute` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_mute_all(
    room: *mut AulaRoom,
    kind: AulaMediaKind,
    allow_unmute: *const bool,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    let allow_unmute = unsafe { allow_unmute.as_ref() }.copied();
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.mute_all(track_kind(kind), allow_unmute)) }
}

/// (Teachers) Ends `participant_id`'s screen share.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_stop_screen_share(
    room: *mut AulaRoom,
    participant_id: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_participant(room, participant_id, |r, id| r.room.stop_screen_share(id)) }
}

/// (Teachers) Removes `participant_id` from the class, showing it `reason` (NULL for none; at
/// most 256 bytes); its identity cannot rejoin this class.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` and `reason` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_remove_participant(
    room: *mut AulaRoom,
    participant_id: *const c_char,
    reason: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe {
        with_participant(room, participant_id, |r, id| {
            let reason = opt_str(reason, "reason")?.unwrap_or_default();
            r.room.remove_participant(id, reason)
        })
    }
}

/// (Teachers) Locks the room (no new participants: `ROOM_LOCKED`) or unlocks it.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_lock_room(room: *mut AulaRoom, locked: bool) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.lock_room(locked)) }
}

/// (Teachers) Ends the class for everyone.
///
/// # Safety
/// `room` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_room_end_class(room: *mut AulaRoom) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe { with_room(room, |r| r.room.end_class()) }
}

/// (Teachers) Makes `participant_id` co-teacher, or takes it back.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_set_co_teacher(
    room: *mut AulaRoom,
    participant_id: *const c_char,
    co_teacher: bool,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe {
        with_participant(room, participant_id, |r, id| {
            r.room.set_co_teacher(id, co_teacher)
        })
    }
}

/// (Teachers) Features `participant_id` for everyone, or with NULL nobody.
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_room_spotlight(
    room: *mut AulaRoom,
    participant_id: *const c_char,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe {
        with_room(room, |r| {
            r.room.spotlight(opt_str(participant_id, "participant_id")?)
        })
    }
}

/// (Teachers) Changes the room's settings that `settings` points to (read during the call).
///
/// # Safety
/// `room` is NULL or a live handle; `settings` is NULL or valid, each of its fields NULL or
/// pointing to a valid value.
#[no_mangle]
pub unsafe extern "C" fn aula_room_update_room_settings(
    room: *mut AulaRoom,
    settings: *const AulaRoomSettingsPatch,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (room, settings) = unsafe {
            (
                handle(room, "room")?,
                settings
                    .as_ref()
                    .ok_or_else(|| invalid("settings is NULL"))?,
            )
        };
        // SAFETY: the fields are NULL or valid, per the contract.
        room.room
            .update_room_settings(unsafe { settings.to_patch() })
    })
}

/// (Teachers) Changes what `participant_id` may do: the fields `permissions` points to (read
/// during the call).
///
/// # Safety
/// `room` is NULL or a live handle; `participant_id` is NULL or NUL-terminated;
/// `permissions` is NULL or valid, each of its fields NULL or pointing to a valid value.
#[no_mangle]
pub unsafe extern "C" fn aula_room_update_permissions(
    room: *mut AulaRoom,
    participant_id: *const c_char,
    permissions: *const AulaPermissionsPatch,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    unsafe {
        with_participant(room, participant_id, |r, id| {
            let patch = permissions
                .as_ref()
                .ok_or_else(|| invalid("permissions is NULL"))?
                .to_patch();
            r.room.update_permissions(id, patch)
        })
    }
}
