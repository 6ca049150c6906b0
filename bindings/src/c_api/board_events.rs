//! The whiteboard's events for C: what changed, acknowledgements, refusals, laser pointers.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::callbacks::{c_string, CallbackSlot};
use crate::uniffi_api::{WhiteboardEvent, WhiteboardListener};

/// What happened, in an [`AulaWhiteboardEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaWhiteboardEventKind {
    /// The board changed (`remote` false for this client's own edits, including undo); `items`
    /// names what changed.
    Changed = 0,
    /// The server stored this client's edits up to `seq`.
    Acked = 1,
    /// Someone's laser pointer moved, appeared or went away (see `aula_whiteboard_lasers`).
    Presence = 2,
    /// The server refused an edit (`code`, `message`); the replica was reloaded, so the edit
    /// is gone locally too.
    Refused = 3,
}

/// An item (or, with `id` NULL, a page as a whole) named in a change event.
#[repr(C)]
#[derive(Debug)]
pub struct AulaItemRef {
    /// The page.
    pub page: *const c_char,
    /// The item, or NULL for the page itself.
    pub id: *const c_char,
}

/// A whiteboard event. Pointers are valid only during the callback; fields that do not apply
/// to the kind are 0, false or NULL.
#[repr(C)]
#[derive(Debug)]
pub struct AulaWhiteboardEvent {
    /// What happened.
    pub kind: AulaWhiteboardEventKind,
    /// Changed: whether the change came from the server.
    pub remote: bool,
    /// Changed: what changed, `item_count` entries (NULL when 0; 0 after a reload, when
    /// anything may have).
    pub items: *const AulaItemRef,
    /// Number of `items`.
    pub item_count: usize,
    /// Acked: edit frames acknowledged on this connection.
    pub seq: u64,
    /// Refused: a stable code (`permission_denied`, `locked`, `too_large`, ...).
    pub code: *const c_char,
    /// Refused: the explanation.
    pub message: *const c_char,
}

/// Receives a whiteboard's events, in order, on the board's event thread.
pub type AulaWhiteboardEventCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const AulaWhiteboardEvent)>;

pub(crate) type BoardEventFn = unsafe extern "C" fn(*mut c_void, *const AulaWhiteboardEvent);

/// Delivers a board's events to a C callback.
pub(crate) struct BoardCallbackListener(pub Arc<CallbackSlot<BoardEventFn>>);

impl WhiteboardListener for BoardCallbackListener {
    fn on_event(&self, event: WhiteboardEvent) {
        let mut strings: Vec<CString> = Vec::new();
        let mut refs: Vec<(usize, Option<usize>)> = Vec::new();
        let mut text = |s: &str| {
            strings.push(c_string(s));
            strings.len() - 1
        };
        let (kind, remote, seq, code, message) = match event {
            WhiteboardEvent::Changed { remote, items } => {
                for item in &items {
                    let page = text(&item.page);
                    let id = item.id.as_deref().map(&mut text);
                    refs.push((page, id));
                }
                (AulaWhiteboardEventKind::Changed, remote, 0, None, None)
            }
            WhiteboardEvent::Acked { seq } => {
                (AulaWhiteboardEventKind::Acked, false, seq, None, None)
            }
            WhiteboardEvent::Presence => (AulaWhiteboardEventKind::Presence, false, 0, None, None),
            WhiteboardEvent::Refused { code, message } => (
                AulaWhiteboardEventKind::Refused,
                false,
                0,
                Some(text(&code)),
                Some(text(&message)),
            ),
        };
        let ptr = |i: Option<usize>| i.map_or(std::ptr::null(), |i| strings[i].as_ptr());
        let items: Vec<AulaItemRef> = refs
            .iter()
            .map(|&(page, id)| AulaItemRef {
                page: ptr(Some(page)),
                id: ptr(id),
            })
            .collect();
        let event = AulaWhiteboardEvent {
            kind,
            remote,
            items: if items.is_empty() {
                std::ptr::null()
            } else {
                items.as_ptr()
            },
            item_count: items.len(),
            seq,
            code: ptr(code),
            message: ptr(message),
        };
        self.0.with(|callback, user_data| {
            // SAFETY: registered by the application; the event, its array and its strings
            // live until the call returns.
            unsafe { callback(user_data, &event) }
        });
    }
}
