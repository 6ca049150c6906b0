//! Server authority over the board: apply an update to a scratch replica, look at what it
//! changed, and refuse it if the sender may not make those changes or they break the bounds.
//!
//! This is plain code with no IO: the server keeps a [`Scratch`] beside its authoritative
//! document, calls [`Scratch::check`] for each incoming update, and applies the update to the
//! authoritative document only when the check passes (the scratch then already holds it). After a
//! refusal the scratch has diverged and must be rebuilt from the authoritative state
//! ([`Scratch::rebuild`]).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use yrs::types::{EntryChange, Event, PathSegment};
use yrs::DeepObservable;
use yrs::{Doc, Map, Out, ReadTxn, StateVector, Transact};

use super::model::{self, Board, ITEMS, LOCKED, META, PAGES};
use super::wire::decode_update;
use super::WhiteboardLimits;

/// Who sends an update and what the token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Editor {
    /// The sender's identity (token `sub`); new items must name it as author.
    pub identity: String,
    /// The token's `whiteboard_write` grant.
    pub can_write: bool,
    /// The token's `room_admin` grant: may lock, and may edit locked pages.
    pub is_admin: bool,
}

/// Why an update was refused. The wire code is [`Refusal::code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The sender's token does not grant the change.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The board or page is locked.
    #[error("locked: {0}")]
    Locked(String),
    /// A bound is exceeded.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The update cannot be decoded or breaks the schema.
    #[error("invalid update: {0}")]
    Invalid(String),
    /// The sender sends updates faster than allowed.
    #[error("rate limited: {0}")]
    RateLimited(String),
}

impl Refusal {
    /// The stable code sent in the error frame.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::PermissionDenied(_) => "permission_denied",
            Refusal::Locked(_) => "locked",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Invalid(_) => "invalid_update",
            Refusal::RateLimited(_) => "rate_limited",
        }
    }
}

/// One thing an update touched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Touch {
    /// Board-wide settings.
    Meta,
    /// A page was added or removed.
    PageSet(String),
    /// A page's lock flag.
    PageLock(String),
    /// Another key of a page map.
    PageKey(String, String),
    /// An item was inserted (true) or replaced/removed (false) in a page's item map.
    ItemSet(String, String, bool),
    /// Something inside an item.
    ItemField(String, String),
}

type Touches = Arc<Mutex<Vec<Touch>>>;

/// A replica kept only to try updates on before they reach the authoritative document.
pub struct Scratch {
    board: Board,
    touches: Touches,
}

impl Scratch {
    /// A scratch replica holding `state` (a full-state update, e.g. the authoritative document
    /// encoded against an empty state vector).
    pub fn rebuild(state: &[u8]) -> Result<Self, Refusal> {
        let board = Board::new(Doc::new());
        let touches: Touches = Arc::default();
        let t1 = Arc::clone(&touches);
        board
            .pages_ref()
            .observe_deep("aula-validate-pages", move |txn, events| {
                let mut out = t1.lock().unwrap_or_else(|p| p.into_inner());
                for event in events.iter() {
                    collect(txn, event, &mut out);
                }
            });
        let t2 = Arc::clone(&touches);
        board
            .meta_ref()
            .observe_deep("aula-validate-meta", move |_, _| {
                t2.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Touch::Meta);
            });
        if !state.is_empty() {
            let update = decode_update(state).map_err(|e| Refusal::Invalid(e.to_string()))?;
            board
                .doc()
                .transact_mut()
                .apply_update(update)
                .map_err(|e| Refusal::Invalid(e.to_string()))?;
        }
        if let Ok(mut t) = touches.lock() {
            t.clear();
        }
        Ok(Self { board, touches })
    }

    /// The scratch board (for tests and inspection).
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Applies `update` (v1 encoding) to the scratch replica and checks every change against
    /// `editor`'s grants and `limits`. On `Ok` the update is in the scratch and may be applied to
    /// the authoritative document; returns whether it changed anything. On `Err` the scratch must
    /// be rebuilt before the next check.
    pub fn check(
        &mut self,
        update: &[u8],
        editor: &Editor,
        limits: &WhiteboardLimits,
    ) -> Result<bool, Refusal> {
        if update.len() > limits.max_update_bytes {
            return Err(Refusal::TooLarge(format!(
                "update of {} bytes exceeds {} bytes",
                update.len(),
                limits.max_update_bytes
            )));
        }
        let decoded = decode_update(update).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let doc = self.board.doc().clone();
        let (locked_before, board_locked_before, sv_before) = {
            let txn = doc.transact();
            let locked: HashSet<String> = self
                .board
                .pages(&txn)
                .into_iter()
                .filter(|p| self.board.page_locked(&txn, p))
                .collect();
            (locked, self.board.board_locked(&txn), txn.state_vector())
        };
        if let Ok(mut t) = self.touches.lock() {
            t.clear();
        }
        {
            let mut txn = doc.transact_mut();
            txn.apply_update(decoded)
                .map_err(|e| Refusal::Invalid(e.to_string()))?;
        }
        let touches: BTreeSet<Touch> = self
            .touches
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        let txn = doc.transact();
        if txn.has_missing_updates() {
            return Err(Refusal::Invalid(
                "the update depends on edits the server does not have".into(),
            ));
        }
        for (name, _) in txn.root_refs() {
            if name != PAGES && name != META {
                return Err(Refusal::Invalid(format!("unknown root type {name:?}")));
            }
        }
        let changed = !touches.is_empty() || txn.state_vector() != sv_before;
        if changed && !editor.can_write && !editor.is_admin {
            return Err(Refusal::PermissionDenied(
                "the token does not grant whiteboard_write".into(),
            ));
        }
        let board_locked = board_locked_before || self.board.board_locked(&txn);
        let mut pages_touched = BTreeSet::new();
        let mut items_touched = BTreeSet::new();
        let mut inserted = BTreeSet::new();
        // Pages (or item maps) created by this update: every item in them is new.
        let mut fresh_pages = BTreeSet::new();
        for touch in &touches {
            match touch {
                Touch::Meta => {
                    if !editor.is_admin {
                        return Err(Refusal::PermissionDenied(
                            "only a room admin may change board settings".into(),
                        ));
                    }
                }
                Touch::PageLock(page) => {
                    if !editor.is_admin {
                        return Err(Refusal::PermissionDenied(format!(
                            "only a room admin may lock page {page:?}"
                        )));
                    }
                    pages_touched.insert(page.clone());
                }
                Touch::PageSet(page) => {
                    pages_touched.insert(page.clone());
                    fresh_pages.insert(page.clone());
                }
                Touch::PageKey(page, key) => {
                    if key != ITEMS {
                        return Err(Refusal::Invalid(format!("unknown page key {key:?}")));
                    }
                    pages_touched.insert(page.clone());
                    fresh_pages.insert(page.clone());
                }
                Touch::ItemSet(page, id, is_insert) => {
                    pages_touched.insert(page.clone());
                    items_touched.insert((page.clone(), id.clone()));
                    if *is_insert {
                        inserted.insert((page.clone(), id.clone()));
                    }
                }
                Touch::ItemField(page, id) => {
                    pages_touched.insert(page.clone());
                    items_touched.insert((page.clone(), id.clone()));
                }
            }
        }
        if !editor.is_admin {
            for page in &pages_touched {
                if board_locked {
                    return Err(Refusal::Locked("the board is locked".into()));
                }
                if locked_before.contains(page) || self.board.page_locked(&txn, page) {
                    return Err(Refusal::Locked(format!("page {page:?} is locked")));
                }
            }
        }
        let pages = self.board.pages_ref();
        for page in &fresh_pages {
            if let Some(items) =
                model::get_map(pages, &txn, page).and_then(|p| model::get_map(&p, &txn, ITEMS))
            {
                for id in items.keys(&txn) {
                    items_touched.insert((page.clone(), id.to_owned()));
                    inserted.insert((page.clone(), id.to_owned()));
                }
            }
        }
        if pages.len(&txn) as usize > limits.max_pages {
            return Err(Refusal::TooLarge(format!(
                "more than {} pages",
                limits.max_pages
            )));
        }
        for page in &pages_touched {
            let Some(page_map) = model::get_map(pages, &txn, page) else {
                if pages.get(&txn, page).is_some() {
                    return Err(Refusal::Invalid(format!("page {page:?} is not a map")));
                }
                continue;
            };
            for (key, value) in page_map.iter(&txn) {
                let ok = match key {
                    ITEMS => matches!(value, Out::YMap(_)),
                    LOCKED => matches!(value, Out::Any(yrs::Any::Bool(_))),
                    _ => false,
                };
                if !ok {
                    return Err(Refusal::Invalid(format!(
                        "page key {key:?} has the wrong type"
                    )));
                }
            }
            if let Some(items) = model::get_map(&page_map, &txn, ITEMS) {
                let n = items.len(&txn) as usize;
                if n > limits.max_items_per_page {
                    return Err(Refusal::TooLarge(format!(
                        "page {page:?} would hold {n} items, more than {}",
                        limits.max_items_per_page
                    )));
                }
            }
        }
        for (page, id) in &items_touched {
            let Some(items) =
                model::get_map(pages, &txn, page).and_then(|p| model::get_map(&p, &txn, ITEMS))
            else {
                continue;
            };
            let Some(value) = items.get(&txn, id) else {
                continue; // erased
            };
            let Out::YMap(item) = value else {
                return Err(Refusal::Invalid(format!("item {id:?} is not a map")));
            };
            check_item(&txn, page, id, &item, limits)?;
            if inserted.contains(&(page.clone(), id.clone())) {
                let author = model::get_str(&item, &txn, "author").unwrap_or_default();
                if author != editor.identity {
                    return Err(Refusal::PermissionDenied(format!(
                        "new item {id:?} names author {author:?}, not the sender"
                    )));
                }
            }
        }
        Ok(changed)
    }

    /// The scratch replica's state vector.
    pub fn state_vector(&self) -> StateVector {
        self.board.doc().transact().state_vector()
    }
}

fn check_item<T: ReadTxn>(
    txn: &T,
    page: &str,
    id: &str,
    item: &yrs::MapRef,
    limits: &WhiteboardLimits,
) -> Result<(), Refusal> {
    if id.is_empty() || id.len() > limits.max_id_bytes {
        return Err(Refusal::Invalid(format!("item id of {} bytes", id.len())));
    }
    let Some(parsed) = model::read_item(page, id, item, txn) else {
        return Err(Refusal::Invalid(format!(
            "item {id:?} does not follow the schema"
        )));
    };
    let numbers = [
        parsed.width,
        parsed.z,
        parsed.x,
        parsed.y,
        parsed.w,
        parsed.h,
    ];
    if numbers.iter().any(|n| !n.is_finite()) {
        return Err(Refusal::Invalid(format!(
            "item {id:?} has a non-finite number"
        )));
    }
    if parsed.color.len() > 32 || parsed.author.len() > 128 {
        return Err(Refusal::Invalid(format!(
            "item {id:?} has an overlong field"
        )));
    }
    if parsed
        .text
        .as_ref()
        .is_some_and(|t| t.len() > limits.max_text_bytes)
    {
        return Err(Refusal::TooLarge(format!(
            "text longer than {} bytes",
            limits.max_text_bytes
        )));
    }
    if parsed.points.len() > limits.max_points_per_stroke {
        return Err(Refusal::TooLarge(format!(
            "stroke {id:?} has {} points, more than {}",
            parsed.points.len(),
            limits.max_points_per_stroke
        )));
    }
    if item.len(txn) > 16 {
        return Err(Refusal::Invalid(format!("item {id:?} has too many fields")));
    }
    Ok(())
}

fn seg_key(seg: &PathSegment) -> Option<String> {
    match seg {
        PathSegment::Key(k) => Some(k.to_string()),
        PathSegment::Index(_) => None,
    }
}

fn collect(txn: &yrs::TransactionMut<'_>, event: &Event, out: &mut Vec<Touch>) {
    let path: Vec<Option<String>> = event.path().iter().map(seg_key).collect();
    match (path.as_slice(), event) {
        ([], Event::Map(e)) => {
            for key in e.keys(txn).keys() {
                out.push(Touch::PageSet(key.to_string()));
            }
        }
        ([Some(page)], Event::Map(e)) => {
            for key in e.keys(txn).keys() {
                if key.as_ref() == LOCKED {
                    out.push(Touch::PageLock(page.clone()));
                } else {
                    out.push(Touch::PageKey(page.clone(), key.to_string()));
                }
            }
        }
        ([Some(page), Some(items)], Event::Map(e)) if items == ITEMS => {
            for (key, change) in e.keys(txn) {
                let insert = !matches!(change, EntryChange::Removed(_));
                out.push(Touch::ItemSet(page.clone(), key.to_string(), insert));
            }
        }
        ([Some(page), Some(items), Some(id), ..], _) if items == ITEMS => {
            out.push(Touch::ItemField(page.clone(), id.clone()));
        }
        ([Some(page), ..], _) => out.push(Touch::PageKey(page.clone(), "?".into())),
        _ => out.push(Touch::PageKey(String::new(), "?".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whiteboard::model::{NewItem, Point};
    use crate::whiteboard::DEFAULT_PAGE;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, Map, StateVector, Transact, Update};

    fn editor(identity: &str, can_write: bool, is_admin: bool) -> Editor {
        Editor {
            identity: identity.into(),
            can_write,
            is_admin,
        }
    }

    /// A server-side scratch holding a board with the default page, and a client replica of it.
    fn setup() -> (Scratch, Board) {
        let seed = Board::new(Doc::new());
        seed.ensure_page(&mut seed.doc().transact_mut(), DEFAULT_PAGE);
        let state = seed
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let scratch = Scratch::rebuild(&state).expect("rebuilds");
        let client = Board::new(Doc::new());
        client
            .doc()
            .transact_mut()
            .apply_update(Update::decode_v1(&state).expect("decodes"))
            .expect("applies");
        (scratch, client)
    }

    fn edit(board: &Board, f: impl FnOnce(&Board, &mut yrs::TransactionMut<'_>)) -> Vec<u8> {
        let mut txn = board.doc().transact_mut();
        f(board, &mut txn);
        txn.encode_update_v1()
    }

    fn stroke(n: usize) -> NewItem {
        NewItem::stroke(
            "#000000",
            1.0,
            vec![
                Point {
                    x: 1.0,
                    y: 2.0,
                    pressure: 0.5
                };
                n
            ],
        )
    }

    #[test]
    fn a_writer_may_draw_and_a_reader_may_not() {
        let limits = WhiteboardLimits::default();
        let (mut scratch, client) = setup();
        let update = edit(&client, |b, t| {
            b.add_item(t, DEFAULT_PAGE, "a", "ann", &stroke(3))
        });
        assert_eq!(
            scratch.check(&update, &editor("ann", true, false), &limits),
            Ok(true)
        );
        let (mut scratch, client) = setup();
        let update = edit(&client, |b, t| {
            b.add_item(t, DEFAULT_PAGE, "a", "ann", &stroke(3))
        });
        assert!(matches!(
            scratch.check(&update, &editor("ann", false, false), &limits),
            Err(Refusal::PermissionDenied(_))
        ));
    }

    #[test]
    fn authors_cannot_be_forged() {
        let (mut scratch, client) = setup();
        let update = edit(&client, |b, t| {
            b.add_item(t, DEFAULT_PAGE, "a", "teacher", &stroke(3))
        });
        assert!(matches!(
            scratch.check(
                &update,
                &editor("mallory", true, false),
                &WhiteboardLimits::default()
            ),
            Err(Refusal::PermissionDenied(_))
        ));
    }

    #[test]
    fn locks_and_settings_need_room_admin() {
        let limits = WhiteboardLimits::default();
        for admin in [false, true] {
            let (mut scratch, client) = setup();
            let update = edit(&client, |b, t| b.set_page_locked(t, DEFAULT_PAGE, true));
            assert_eq!(
                scratch
                    .check(&update, &editor("x", true, admin), &limits)
                    .is_ok(),
                admin
            );
            let (mut scratch, client) = setup();
            let update = edit(&client, |b, t| b.set_board_locked(t, true));
            assert_eq!(
                scratch
                    .check(&update, &editor("x", true, admin), &limits)
                    .is_ok(),
                admin
            );
        }
    }

    #[test]
    fn bounds_unknown_roots_and_garbage_are_refused() {
        let limits = WhiteboardLimits {
            max_points_per_stroke: 10,
            max_items_per_page: 2,
            ..WhiteboardLimits::default()
        };
        let me = editor("ann", true, false);
        let (mut scratch, client) = setup();
        let update = edit(&client, |b, t| {
            b.add_item(t, DEFAULT_PAGE, "a", "ann", &stroke(11))
        });
        assert!(matches!(
            scratch.check(&update, &me, &limits),
            Err(Refusal::TooLarge(_))
        ));

        let (mut scratch, client) = setup();
        let update = edit(&client, |b, t| {
            for id in ["a", "b", "c"] {
                b.add_item(t, DEFAULT_PAGE, id, "ann", &stroke(1));
            }
        });
        assert!(matches!(
            scratch.check(&update, &me, &limits),
            Err(Refusal::TooLarge(_))
        ));

        let (mut scratch, client) = setup();
        let other = client.doc().get_or_insert_map("other");
        let update = {
            let mut txn = client.doc().transact_mut();
            other.insert(&mut txn, "k", "v");
            txn.encode_update_v1()
        };
        assert!(matches!(
            scratch.check(&update, &me, &limits),
            Err(Refusal::Invalid(_))
        ));

        let (mut scratch, _) = setup();
        assert!(matches!(
            scratch.check(&[1, 2, 3, 250], &me, &limits),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            scratch.check(&vec![0; limits.max_update_bytes + 1], &me, &limits),
            Err(Refusal::TooLarge(_))
        ));
    }

    #[test]
    fn a_locked_page_refuses_writers_but_not_admins() {
        let limits = WhiteboardLimits::default();
        let (mut scratch, client) = setup();
        let lock = edit(&client, |b, t| b.set_page_locked(t, DEFAULT_PAGE, true));
        scratch
            .check(&lock, &editor("teacher", true, true), &limits)
            .expect("the admin locks");
        let draw = edit(&client, |b, t| {
            b.add_item(t, DEFAULT_PAGE, "a", "ann", &stroke(2))
        });
        assert!(matches!(
            scratch.check(&draw, &editor("ann", true, false), &limits),
            Err(Refusal::Locked(_))
        ));
    }
}
