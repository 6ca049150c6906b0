//! `AulaWhiteboard`: the room's shared board for C. Edits apply locally at once and reach the
//! server in the background; its answer arrives as an event (acknowledged, or refused when the
//! token lacks the grant or the page is locked). Once the room is disconnected or freed, every
//! call returns `AULA_STATUS_DISCONNECTED`.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use super::board_events::{AulaWhiteboardEventCallback, BoardCallbackListener, BoardEventFn};
use super::board_types::{
    into_raw_array, into_raw_strings, points_arg, AulaItem, AulaLaser, AulaLaserPointer,
    AulaNewItem, AulaPoint,
};
use super::callbacks::CallbackSlot;
use super::room::{handle, AulaRoom};
use super::status::{guard, invalid, AulaStatus};
use super::strings::{arg_str, give_string};
use crate::uniffi_api::{AulaError, Subscription, Whiteboard};

/// A room's whiteboard (opaque), from `aula_room_whiteboard`. Release with
/// `aula_whiteboard_free`; it does not keep the room alive.
pub struct AulaWhiteboard {
    board: Arc<Whiteboard>,
    events: Arc<CallbackSlot<BoardEventFn>>,
    subscription: Mutex<Option<Arc<Subscription>>>,
}

/// Writes `value` through a required out pointer.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn put<T>(out: *mut T, value: T, name: &str) -> Result<(), AulaError> {
    if out.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes `value` through an optional out pointer (NULL discards it).
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn put_optional<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(value) };
    }
}

/// The room's whiteboard, into `*out_board` (release it with `aula_whiteboard_free`).
///
/// # Safety
/// `room` is NULL or a live handle; `out_board` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_room_whiteboard(
    room: *mut AulaRoom,
    out_board: *mut *mut AulaWhiteboard,
) -> AulaStatus {
    guard(|| {
        if out_board.is_null() {
            return Err(invalid("out_board is NULL"));
        }
        // SAFETY: per this function's contract.
        let room = unsafe { handle(room, "room") }?;
        let board = Box::new(AulaWhiteboard {
            board: Arc::clone(&room.room).whiteboard()?,
            events: Arc::default(),
            subscription: Mutex::new(None),
        });
        // SAFETY: checked non-null; writable per the contract.
        unsafe { *out_board = Box::into_raw(board) };
        Ok(())
    })
}

/// Stops the board's callback and releases the handle. NULL is ignored. When this returns,
/// the callback is not running and will not run again.
///
/// # Safety
/// `board` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_free(board: *mut AulaWhiteboard) {
    if board.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: a live handle from `aula_room_whiteboard`, freed once per the contract.
        let board = unsafe { Box::from_raw(board) };
        board.events.set(None, std::ptr::null_mut());
        drop(board);
        Ok(())
    });
}

/// Registers `callback` (or with NULL removes it) for the board's events, called with
/// `user_data` on the board's event thread, in order. When clearing returns, the callback is
/// not running and will not run again. Clearing works on a closed room too; registering
/// does not.
///
/// # Safety
/// `board` is NULL or a live handle; `callback` is NULL or safe to call from another thread
/// with `user_data` until it is replaced or the board freed.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_set_event_callback(
    board: *mut AulaWhiteboard,
    callback: AulaWhiteboardEventCallback,
    user_data: *mut c_void,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let board = unsafe { handle(board, "board") }?;
        if callback.is_some() {
            board.board.ensure_open()?;
        }
        let mut subscription = board.subscription.lock().unwrap_or_else(|p| p.into_inner());
        if subscription.is_none() && callback.is_some() {
            let listener = Arc::new(BoardCallbackListener(Arc::clone(&board.events)));
            *subscription = Some(board.board.add_listener(listener)?);
        }
        board.events.set(callback, user_data);
        Ok(())
    })
}

/// The board's page ids, sorted, as an array of strings into `*out_pages` (NULL when there
/// are none yet) and its length into `*out_count`; release it with `aula_strings_free`. A new
/// board gets its first page (`"1"`) from the server: draw once it is listed.
///
/// # Safety
/// `board` is NULL or a live handle; `out_pages` and `out_count` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_pages(
    board: *mut AulaWhiteboard,
    out_pages: *mut *mut *mut c_char,
    out_count: *mut usize,
) -> AulaStatus {
    guard(|| {
        if out_pages.is_null() || out_count.is_null() {
            return Err(invalid("out_pages and out_count must not be NULL"));
        }
        // SAFETY: per this function's contract.
        let pages = unsafe { handle(board, "board") }?.board.pages()?;
        let (pages, count) = into_raw_strings(pages);
        // SAFETY: both checked non-null; writable per the contract.
        unsafe {
            out_pages.write(pages);
            out_count.write(count);
        }
        Ok(())
    })
}

/// Adds a stroke on `page` with its first `point_count` points; its id goes to `*out_id`
/// (NULL to discard; free it with `aula_string_free`). More points follow with
/// `aula_whiteboard_extend_stroke` while the pen moves.
///
/// # Safety
/// `board` is NULL or a live handle; strings are NULL or NUL-terminated; `points` holds
/// `point_count` points (NULL if 0); `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_add_stroke(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    color: *const c_char,
    width: f64,
    points: *const AulaPoint,
    point_count: usize,
    out_id: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, color, points) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                arg_str(color, "color")?,
                points_arg(points, point_count, "points")?,
            )
        };
        let id = board
            .board
            .add_stroke(page.into(), color.into(), width, points)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { give_string(out_id, id) }
    })
}

/// Appends `point_count` points to stroke `id` (the same undo step as the stroke).
///
/// # Safety
/// `board` is NULL or a live handle; strings are NULL or NUL-terminated; `points` holds
/// `point_count` points (NULL if 0).
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_extend_stroke(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    id: *const c_char,
    points: *const AulaPoint,
    point_count: usize,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, id, points) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                arg_str(id, "id")?,
                points_arg(points, point_count, "points")?,
            )
        };
        board.board.extend_stroke(page.into(), id.into(), points)
    })
}

/// Adds an item (a line, rectangle, ellipse, arrow, text, or a stroke) on `page`; its id goes
/// to `*out_id` (NULL to discard; free it with `aula_string_free`).
///
/// # Safety
/// `board` is NULL or a live handle; `page` is NULL or NUL-terminated; `item` is NULL or valid
/// as its documentation says; `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_add_item(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    item: *const AulaNewItem,
    out_id: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, item) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                handle(item, "item")?.to_new_item()?,
            )
        };
        let id = board.board.add_item(page.into(), item)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { give_string(out_id, id) }
    })
}

/// Moves item `id` by `dx, dy`.
///
/// # Safety
/// `board` is NULL or a live handle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_move_item(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    id: *const c_char,
    dx: f64,
    dy: f64,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, id) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                arg_str(id, "id")?,
            )
        };
        board.board.move_item(page.into(), id.into(), dx, dy)
    })
}

/// Changes item `id`'s colour.
///
/// # Safety
/// `board` is NULL or a live handle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_recolor(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    id: *const c_char,
    color: *const c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, id, color) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                arg_str(id, "id")?,
                arg_str(color, "color")?,
            )
        };
        board.board.recolor(page.into(), id.into(), color.into())
    })
}

/// Erases item `id`.
///
/// # Safety
/// `board` is NULL or a live handle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_erase(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    id: *const c_char,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, id) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                arg_str(id, "id")?,
            )
        };
        board.board.erase(page.into(), id.into())
    })
}

/// Erases every item on `page`; how many goes to `*out_erased` (NULL to discard).
///
/// # Safety
/// `board` is NULL or a live handle; `page` is NULL or NUL-terminated; `out_erased` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_clear_page(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    out_erased: *mut usize,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page) = unsafe { (handle(board, "board")?, arg_str(page, "page")?) };
        let erased = board.board.clear_page(page.into())?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put_optional(out_erased, usize::try_from(erased).unwrap_or(usize::MAX)) };
        Ok(())
    })
}

/// Locks or unlocks `page` (needs the `room_admin` grant, or the server refuses it).
///
/// # Safety
/// `board` is NULL or a live handle; `page` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_set_page_locked(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    locked: bool,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page) = unsafe { (handle(board, "board")?, arg_str(page, "page")?) };
        board.board.set_page_locked(page.into(), locked)
    })
}

/// Locks or unlocks the whole board (needs `room_admin`).
///
/// # Safety
/// `board` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_set_board_locked(
    board: *mut AulaWhiteboard,
    locked: bool,
) -> AulaStatus {
    // SAFETY: per this function's contract.
    guard(|| {
        unsafe { handle(board, "board") }?
            .board
            .set_board_locked(locked)
    })
}

/// Undoes this client's last edit (never someone else's); whether there was one goes to
/// `*out_done` (NULL to discard).
///
/// # Safety
/// `board` is NULL or a live handle; `out_done` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_undo(
    board: *mut AulaWhiteboard,
    out_done: *mut bool,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let done = unsafe { handle(board, "board") }?.board.undo()?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put_optional(out_done, done) };
        Ok(())
    })
}

/// Redoes the last undone edit; whether there was one goes to `*out_done` (NULL to discard).
///
/// # Safety
/// `board` is NULL or a live handle; `out_done` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_redo(
    board: *mut AulaWhiteboard,
    out_done: *mut bool,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let done = unsafe { handle(board, "board") }?.board.redo()?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put_optional(out_done, done) };
        Ok(())
    })
}

/// The items of `page` in drawing order, as an array into `*out_items` (NULL when the page is
/// empty) and its length into `*out_count`. Release it with `aula_items_free(items, count)`.
///
/// # Safety
/// `board` is NULL or a live handle; `page` is NULL or NUL-terminated; `out_items` and
/// `out_count` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_items(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    out_items: *mut *mut AulaItem,
    out_count: *mut usize,
) -> AulaStatus {
    guard(|| {
        if out_items.is_null() || out_count.is_null() {
            return Err(invalid("out_items and out_count must not be NULL"));
        }
        // SAFETY: per this function's contract.
        let (board, page) = unsafe { (handle(board, "board")?, arg_str(page, "page")?) };
        let items: Vec<AulaItem> = board
            .board
            .items(page.into())?
            .into_iter()
            .map(AulaItem::from)
            .collect();
        let (items, count) = into_raw_array(items);
        // SAFETY: both checked non-null; writable per the contract.
        unsafe {
            out_items.write(items);
            out_count.write(count);
        }
        Ok(())
    })
}

/// Whether `page` holds an item `id`, into `*out_present`.
///
/// # Safety
/// `board` is NULL or a live handle; strings are NULL or NUL-terminated; `out_present` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_has_item(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    id: *const c_char,
    out_present: *mut bool,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let (board, page, id) = unsafe {
            (
                handle(board, "board")?,
                arg_str(page, "page")?,
                arg_str(id, "id")?,
            )
        };
        let present = board.board.has_item(page.into(), id.into())?;
        // SAFETY: per this function's contract.
        unsafe { put(out_present, present, "out_present") }
    })
}

/// The number of items over all pages, into `*out_count`.
///
/// # Safety
/// `board` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_item_count(
    board: *mut AulaWhiteboard,
    out_count: *mut usize,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let count = unsafe { handle(board, "board") }?.board.item_count()?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        // SAFETY: per this function's contract.
        unsafe { put(out_count, count, "out_count") }
    })
}

/// The number of this client's edits the server has not acknowledged yet, into `*out_count`.
///
/// # Safety
/// `board` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_unacked(
    board: *mut AulaWhiteboard,
    out_count: *mut usize,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let count = unsafe { handle(board, "board") }?.board.unacked()?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        // SAFETY: per this function's contract.
        unsafe { put(out_count, count, "out_count") }
    })
}

/// A digest of the board's content into `*out_digest` (free it with `aula_string_free`):
/// equal on replicas with identical boards.
///
/// # Safety
/// `board` is NULL or a live handle; `out_digest` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_digest(
    board: *mut AulaWhiteboard,
    out_digest: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        if out_digest.is_null() {
            return Err(invalid("out_digest is NULL"));
        }
        // SAFETY: per this function's contract.
        let digest = unsafe { handle(board, "board") }?.board.digest()?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { give_string(out_digest, digest) }
    })
}

/// `page` as an SVG document of `width` × `height` board units, into `*out_svg` (free it with
/// `aula_string_free`).
///
/// # Safety
/// `board` is NULL or a live handle; `page` is NULL or NUL-terminated; `out_svg` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_export_svg(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    width: f64,
    height: f64,
    out_svg: *mut *mut c_char,
) -> AulaStatus {
    guard(|| {
        if out_svg.is_null() {
            return Err(invalid("out_svg is NULL"));
        }
        // SAFETY: per this function's contract.
        let (board, page) = unsafe { (handle(board, "board")?, arg_str(page, "page")?) };
        let svg = board.board.export_svg(page.into(), width, height)?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { give_string(out_svg, svg) }
    })
}

/// `page` as a PNG image of `width` × `height` pixels (at most 8192 × 8192), into `*out_png`
/// and `*out_len`; release it with `aula_bytes_free(png, len)`. A library built without the
/// `png` feature (the mobile SDK) returns `AULA_STATUS_UNSUPPORTED` and leaves both untouched:
/// rasterise `aula_whiteboard_export_svg` there instead.
///
/// # Safety
/// `board` is NULL or a live handle; `page` is NULL or NUL-terminated; `out_png` and `out_len`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_export_png(
    board: *mut AulaWhiteboard,
    page: *const c_char,
    width: u32,
    height: u32,
    out_png: *mut *mut u8,
    out_len: *mut usize,
) -> AulaStatus {
    guard(|| {
        if out_png.is_null() || out_len.is_null() {
            return Err(invalid("out_png and out_len must not be NULL"));
        }
        // SAFETY: per this function's contract.
        let (board, page) = unsafe { (handle(board, "board")?, arg_str(page, "page")?) };
        let (png, len) = into_raw_array(
            board
                .board
                .export_png(page.into(), width, height)?
                .into_vec(),
        );
        // SAFETY: both checked non-null; writable per the contract.
        unsafe {
            out_png.write(png);
            out_len.write(len);
        }
        Ok(())
    })
}

/// Shows this client's laser pointer at `*laser`, or hides it when `laser` is NULL. Ephemeral:
/// others see it at once, nothing is stored.
///
/// # Safety
/// `board` is NULL or a live handle; `laser` is NULL or valid, its `page` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_set_laser(
    board: *mut AulaWhiteboard,
    laser: *const AulaLaser,
) -> AulaStatus {
    guard(|| {
        // SAFETY: per this function's contract.
        let board = unsafe { handle(board, "board") }?;
        // SAFETY: NULL or valid per the contract.
        let laser = match unsafe { laser.as_ref() } {
            // SAFETY: its page is NULL or NUL-terminated per the contract.
            Some(laser) => Some(unsafe { laser.to_laser() }?),
            None => None,
        };
        board.board.set_laser(laser)
    })
}

/// Everyone else's visible laser pointers, as an array into `*out_pointers` (NULL when there
/// are none) and its length into `*out_count`; release it with `aula_laser_pointers_free`.
///
/// # Safety
/// `board` is NULL or a live handle; `out_pointers` and `out_count` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aula_whiteboard_lasers(
    board: *mut AulaWhiteboard,
    out_pointers: *mut *mut AulaLaserPointer,
    out_count: *mut usize,
) -> AulaStatus {
    guard(|| {
        if out_pointers.is_null() || out_count.is_null() {
            return Err(invalid("out_pointers and out_count must not be NULL"));
        }
        // SAFETY: per this function's contract.
        let board = unsafe { handle(board, "board") }?;
        let pointers: Vec<AulaLaserPointer> = board
            .board
            .lasers()?
            .into_iter()
            .map(AulaLaserPointer::from)
            .collect();
        let (pointers, count) = into_raw_array(pointers);
        // SAFETY: both checked non-null; writable per the contract.
        unsafe {
            out_pointers.write(pointers);
            out_count.write(count);
        }
        Ok(())
    })
}
