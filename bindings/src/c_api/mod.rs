//! The C ABI: the same SDK for C and C++ programs, declared in `bindings/include/aula.h`
//! (generated from this module by cbindgen; `scripts/generate-header.sh`).
//!
//! Conventions, for every function:
//! - It returns an [`AulaStatus`]; on failure [`aula_last_error_message`] describes what went
//!   wrong, on the calling thread, until that thread's next Aula call, and after
//!   [`AulaStatus::Refused`] [`aula_last_error_code`] says why the server refused.
//! - Objects are opaque handles created by `aula_*_connect` / `aula_*_publish_*` /
//!   `aula_room_whiteboard` and released with their `_free` function; strings the library
//!   returns are released with [`aula_string_free`], arrays, buffers and structs (chat
//!   messages, the classroom view) with the free function their maker names, which also
//!   releases everything they point to. Passing NULL where a handle or string is required is
//!   [`AulaStatus::InvalidArgument`], never a crash.
//! - Calls block (connect, publish, disconnect wait for the server): make them off the UI
//!   thread. Callbacks arrive on SDK threads with the `user_data` pointer they were registered
//!   with; pointers handed to a callback are valid only during it. Do not register or clear
//!   callbacks from inside a callback.
//! - No Rust panic crosses the boundary: one becomes [`AulaStatus::Internal`].
//!
//! This module is where the workspace needs `unsafe` (besides the one `unsafe impl` of
//! uniffi's converter trait in `uniffi_api::bytes`): it dereferences what C hands it. Every
//! block says why it is sound, given the documented contract.
#![allow(unsafe_code)]

mod board_events;
mod board_types;
mod callbacks;
mod classroom;
mod classroom_types;
mod publishers;
mod room;
mod status;
mod strings;
mod whiteboard;

pub use board_events::{
    AulaItemRef, AulaWhiteboardEvent, AulaWhiteboardEventCallback, AulaWhiteboardEventKind,
};
pub use board_types::{
    aula_bytes_free, aula_items_free, aula_laser_pointers_free, aula_strings_free, AulaItem,
    AulaItemKind, AulaLaser, AulaLaserPointer, AulaNewItem, AulaPoint,
};
pub use callbacks::{
    AulaAudioFrame, AulaAudioFrameCallback, AulaEvent, AulaEventCallback, AulaEventKind,
    AulaVideoFrame, AulaVideoFrameCallback,
};
pub use classroom::{
    aula_room_admit, aula_room_admit_all, aula_room_answer_stage_invitation,
    aula_room_chat_history, aula_room_classroom, aula_room_clear_stage, aula_room_delete_chat,
    aula_room_deny, aula_room_dismiss_hand, aula_room_end_class, aula_room_invite_to_stage,
    aula_room_leave_stage, aula_room_local_participant_id, aula_room_lock_room,
    aula_room_lower_hand, aula_room_move_to_audience, aula_room_mute_all,
    aula_room_mute_participant, aula_room_placement, aula_room_raise_hand,
    aula_room_remove_participant, aula_room_send_chat, aula_room_set_co_teacher,
    aula_room_set_track_muted, aula_room_spotlight, aula_room_stop_screen_share,
    aula_room_update_permissions, aula_room_update_room_settings,
};
pub use classroom_types::{
    aula_chat_message_free, aula_chat_messages_free, aula_classroom_view_free, AulaChatKind,
    AulaChatMessage, AulaChatPolicy, AulaClassroomState, AulaClassroomView, AulaLeaveReason,
    AulaMediaKind, AulaPermissions, AulaPermissionsPatch, AulaPlacement, AulaPublish, AulaRoomMode,
    AulaRoomSettings, AulaRoomSettingsPatch,
};
pub use publishers::{
    aula_video_publisher_free, aula_video_publisher_push_i420, aula_video_publisher_push_nv12,
    AulaVideoPublisher,
};
pub use room::{
    aula_room_connect, aula_room_disconnect, aula_room_free, aula_room_is_connected,
    aula_room_publish_app_video, aula_room_publish_synthetic_audio,
    aula_room_publish_synthetic_video, aula_room_set_audio_callback, aula_room_set_event_callback,
    aula_room_set_video_callback, aula_room_stats_json, aula_room_unpublish, AulaConnectOptions,
    AulaRoom,
};
pub use status::{aula_last_error_code, aula_last_error_message, AulaErrorCode, AulaStatus};
pub use strings::{
    aula_read_stamp, aula_set_log_level, aula_string_free, aula_version, AulaLogLevel, AulaStamp,
};
pub use whiteboard::{
    aula_room_whiteboard, aula_whiteboard_add_item, aula_whiteboard_add_stroke,
    aula_whiteboard_clear_page, aula_whiteboard_digest, aula_whiteboard_erase,
    aula_whiteboard_export_png, aula_whiteboard_export_svg, aula_whiteboard_extend_stroke,
    aula_whiteboard_free, aula_whiteboard_has_item, aula_whiteboard_item_count,
    aula_whiteboard_items, aula_whiteboard_lasers, aula_whiteboard_move_item,
    aula_whiteboard_pages, aula_whiteboard_recolor, aula_whiteboard_redo,
    aula_whiteboard_set_board_locked, aula_whiteboard_set_event_callback,
    aula_whiteboard_set_laser, aula_whiteboard_set_page_locked, aula_whiteboard_unacked,
    aula_whiteboard_undo, AulaWhiteboard,
};
