//! The client's whiteboard replica: a local yrs document edited at once and synced with the
//! room's authoritative board over the signaling WebSocket's binary frames.
//!
//! Every edit is applied locally, sent as a y-protocols update and kept until the server
//! acknowledges it (stored durably). On reconnect the y-protocols sync (step 1 / step 2) brings
//! both sides up to date; while offline, edits queue and are resent. If the server refuses an
//! edit (no write grant, locked page, too large), the replica is reloaded from the server so it
//! never keeps a change others will not see.

#[cfg(feature = "png")]
pub mod png;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aula_protocol::whiteboard::awareness::{self, AwarenessEntry, Laser, Presence};
use aula_protocol::whiteboard::{
    decode_update, svg, Board, Frame, Item, NewItem, Point, DEFAULT_PAGE,
};
use tokio::sync::mpsc;
use yrs::undo::Options as UndoOptions;
use yrs::{Doc, Origin, ReadTxn, StateVector, Transact, UndoManager};

/// Origin of local edits (the undo manager tracks only these).
const LOCAL: &str = "aula-local";
/// Origin of updates from the server.
const REMOTE: &str = "aula-remote";

/// Something that happened to the board.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WhiteboardEvent {
    /// The board changed; `remote` is false for this client's own edits (including undo).
    Changed {
        /// Whether the change came from the server.
        remote: bool,
        /// What changed: items added, edited or erased, and pages whose settings changed or
        /// that were created (`id` `None`). Empty after a reload, when anything may have.
        items: Vec<ItemRef>,
    },
    /// The server stored the client's edits up to `seq` (per connection).
    Acked {
        /// Edit frames acknowledged.
        seq: u64,
    },
    /// Someone's laser pointer moved, appeared or went away (see [`Whiteboard::lasers`]).
    Presence,
    /// The server refused an edit; the replica was reloaded from the server.
    Refused {
        /// Stable code (`permission_denied`, `locked`, `too_large`, `invalid_update`, ...).
        code: String,
        /// Explanation.
        message: String,
    },
}

/// An item (or, with `id` `None`, a page as a whole) named in a change event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemRef {
    /// The page.
    pub page: String,
    /// The item, or `None` for the page itself.
    pub id: Option<String>,
}

type Touched = Arc<Mutex<std::collections::BTreeSet<ItemRef>>>;

/// Records which items each transaction touches.
fn observe_changes(board: &Board, touched: &Touched) {
    use yrs::types::{Event, PathSegment};
    use yrs::DeepObservable;
    let touched = Arc::clone(touched);
    board
        .pages_ref()
        .observe_deep("aula-changes", move |txn, events| {
            let mut out = touched.lock().unwrap_or_else(|p| p.into_inner());
            for event in events.iter() {
                let path: Vec<Option<String>> = event
                    .path()
                    .iter()
                    .map(|seg| match seg {
                        PathSegment::Key(k) => Some(k.to_string()),
                        PathSegment::Index(_) => None,
                    })
                    .collect();
                match (path.as_slice(), event) {
                    ([], Event::Map(e)) => {
                        for key in e.keys(txn).keys() {
                            out.insert(ItemRef {
                                page: key.to_string(),
                                id: None,
                            });
                        }
                    }
                    ([Some(page), Some(items)], Event::Map(e)) if items == "items" => {
                        for key in e.keys(txn).keys() {
                            out.insert(ItemRef {
                                page: page.clone(),
                                id: Some(key.to_string()),
                            });
                        }
                    }
                    ([Some(page), Some(items), Some(id), ..], _) if items == "items" => {
                        out.insert(ItemRef {
                            page: page.clone(),
                            id: Some(id.clone()),
                        });
                    }
                    ([Some(page), ..], _) => {
                        out.insert(ItemRef {
                            page: page.clone(),
                            id: None,
                        });
                    }
                    _ => {}
                }
            }
        });
}

fn board_client_id(board: &Board) -> u64 {
    board.doc().client_id().get()
}

/// Errors of whiteboard calls.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhiteboardError {
    /// No item with that id on that page.
    #[error("no item {0:?} on that page")]
    NoSuchItem(String),
}

struct State {
    board: Board,
    undo: UndoManager,
    identity: String,
    next_id: u64,
    /// Where to send binary frames, when connected.
    out: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Counts `attach` calls, so a stale connection's end does not detach a newer one.
    generation: u64,
    /// Frames dropped both ways (a simulated network partition).
    offline: bool,
    /// Edit frames sent on the current connection.
    sent_seq: u64,
    /// Updates not yet acknowledged, by the frame number they were (or will be) sent as.
    unacked: BTreeMap<u64, Vec<u8>>,
    /// Updates made while offline or detached, to send when back.
    queued: Vec<Vec<u8>>,
    listeners: Vec<mpsc::UnboundedSender<WhiteboardEvent>>,
    /// Items touched since the last change event.
    touched: Touched,
    /// This client's presence id (stable across reloads) and clock.
    presence_id: u64,
    presence_clock: u32,
    /// This client's presence state as JSON, once set.
    my_presence: Option<String>,
    /// Others' presence, by presence id.
    remote_presence: std::collections::HashMap<u64, (u32, Option<Presence>)>,
}

/// A room's whiteboard as this client sees it. Cheap to clone; clones share the replica.
#[derive(Clone)]
pub struct Whiteboard {
    state: Arc<Mutex<State>>,
}

fn new_board() -> (Board, UndoManager) {
    let board = Board::new(Doc::new());
    // Each call is one undo step: `reset` separates calls (see `edit`), so the timeout only
    // has to outlast the drawing of one stroke.
    let mut options = UndoOptions {
        capture_timeout_millis: 3_600_000,
        ..UndoOptions::default()
    };
    options.tracked_origins.insert(Origin::from(LOCAL));
    let mut undo = UndoManager::with_options(options);
    undo.expand_scope(board.doc(), board.pages_ref());
    (board, undo)
}

impl Whiteboard {
    /// An empty replica for `identity` (the token's `sub`), not connected yet.
    pub fn new(identity: &str) -> Self {
        let (board, undo) = new_board();
        let touched = Touched::default();
        observe_changes(&board, &touched);
        let board_for_id = board.clone();
        Self {
            state: Arc::new(Mutex::new(State {
                board,
                undo,
                identity: identity.to_owned(),
                next_id: 1,
                out: None,
                generation: 0,
                offline: false,
                sent_seq: 0,
                unacked: BTreeMap::new(),
                queued: Vec::new(),
                listeners: Vec::new(),
                touched,
                presence_id: board_client_id(&board_for_id),
                presence_clock: 0,
                my_presence: None,
                remote_presence: std::collections::HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events about this board. Each call returns a new receiver.
    pub fn events(&self) -> mpsc::UnboundedReceiver<WhiteboardEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().listeners.push(tx);
        rx
    }

    /// Starts syncing over a new connection: frames go to `out`; the caller feeds incoming
    /// binary frames to [`on_frame`](Self::on_frame). Sends sync step 1. Returns the
    /// connection's generation, for [`detach`](Self::detach).
    pub fn attach(&self, out: mpsc::UnboundedSender<Vec<u8>>) -> u64 {
        let mut st = self.lock();
        st.generation += 1;
        let generation = st.generation;
        st.out = Some(out);
        st.sent_seq = 0;
        // Sync step 2 in answer to the server's step 1 carries everything unacknowledged.
        st.unacked.clear();
        st.queued.clear();
        let sv = st.board.doc().transact().state_vector();
        st.send_raw(Frame::SyncStep1(sv).encode());
        st.send_presence();
        generation
    }

    /// Stops syncing because connection `generation` is gone (a newer connection is left
    /// alone); edits keep working locally and are sent on the next [`attach`](Self::attach).
    pub fn detach(&self, generation: u64) {
        let mut st = self.lock();
        if st.generation == generation {
            st.out = None;
        }
    }

    /// Simulates a network partition: while `offline`, frames are dropped both ways. Going
    /// back online re-syncs: it asks the server for what it missed and resends every edit the
    /// server has not acknowledged.
    pub fn set_offline(&self, offline: bool) {
        let mut st = self.lock();
        st.offline = offline;
        if !offline {
            let sv = st.board.doc().transact().state_vector();
            st.send_raw(Frame::SyncStep1(sv).encode());
            let queued = std::mem::take(&mut st.queued);
            let mut resend: Vec<Vec<u8>> = std::mem::take(&mut st.unacked).into_values().collect();
            resend.extend(queued);
            for update in resend {
                st.send_edit(update);
            }
        }
    }

    /// Handles one binary frame from the server.
    pub fn on_frame(&self, bytes: &[u8]) {
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::debug!(error = %err, "malformed whiteboard frame ignored");
                return;
            }
        };
        let mut st = self.lock();
        if st.offline {
            return;
        }
        match frame {
            Frame::SyncStep1(sv) => {
                let diff = st.board.doc().transact().encode_diff_v1(&sv);
                st.send_edit(diff);
            }
            Frame::SyncStep2(update) | Frame::Update(update) => {
                let Ok(update) = decode_update(&update) else {
                    return;
                };
                let applied = st
                    .board
                    .doc()
                    .transact_mut_with(REMOTE)
                    .apply_update(update);
                if applied.is_ok() {
                    st.emit_changed(true);
                }
            }
            Frame::Awareness(bytes) => {
                if let Ok(entries) = awareness::decode(&bytes) {
                    st.on_presence(entries);
                }
            }
            Frame::Ack { seq } => {
                st.unacked.retain(|s, _| *s > seq);
                st.emit(WhiteboardEvent::Acked { seq });
            }
            Frame::Error { seq, code, message } => {
                tracing::info!(seq, %code, %message, "whiteboard edit refused");
                if seq > 0 {
                    // Reload from the server: the refused edit must not linger locally.
                    let (board, undo) = new_board();
                    observe_changes(&board, &st.touched);
                    st.board = board;
                    st.undo = undo;
                    st.unacked.clear();
                    st.queued.clear();
                    st.send_raw(Frame::SyncStep1(StateVector::default()).encode());
                }
                st.emit(WhiteboardEvent::Refused { code, message });
                st.emit_changed(true);
            }
        }
    }

    /// Runs one local edit, sends it, and notifies listeners. `group` false merges the edit
    /// into the previous undo step (a stroke's further points).
    fn edit<R>(
        &self,
        group: bool,
        f: impl FnOnce(&Board, &mut yrs::TransactionMut<'_>, &str) -> R,
    ) -> R {
        let mut st = self.lock();
        if group {
            st.undo.reset();
        }
        let board = st.board.clone();
        let identity = st.identity.clone();
        let (result, update) = {
            let mut txn = board.doc().transact_mut_with(LOCAL);
            let result = f(&board, &mut txn, &identity);
            (result, txn.encode_update_v1())
        };
        st.send_edit(update);
        st.emit_changed(false);
        result
    }

    fn fresh_id(&self) -> String {
        let mut st = self.lock();
        st.next_id += 1;
        let client = st.board.doc().client_id();
        format!("{client}-{}", st.next_id)
    }

    /// Adds an item on `page`; returns its id.
    pub fn add_item(&self, page: &str, item: &NewItem) -> String {
        let id = self.fresh_id();
        self.edit(true, |board, txn, me| {
            board.add_item(txn, page, &id, me, item)
        });
        id
    }

    /// Adds a stroke with its first points; more can follow with
    /// [`extend_stroke`](Self::extend_stroke) while the pen moves (others see it grow).
    pub fn add_stroke(&self, page: &str, color: &str, width: f64, points: &[Point]) -> String {
        self.add_item(page, &NewItem::stroke(color, width, points.to_vec()))
    }

    /// Appends points to a stroke being drawn (same undo step as the stroke).
    pub fn extend_stroke(
        &self,
        page: &str,
        id: &str,
        points: &[Point],
    ) -> Result<(), WhiteboardError> {
        self.edit(false, |board, txn, _| {
            board.append_points(txn, page, id, points)
        })
        .then_some(())
        .ok_or_else(|| WhiteboardError::NoSuchItem(id.to_owned()))
    }

    /// Moves an item by `dx, dy`.
    pub fn move_item(&self, page: &str, id: &str, dx: f64, dy: f64) -> Result<(), WhiteboardError> {
        self.edit(true, |board, txn, _| board.move_item(txn, page, id, dx, dy))
            .then_some(())
            .ok_or_else(|| WhiteboardError::NoSuchItem(id.to_owned()))
    }

    /// Changes an item's colour.
    pub fn recolor(&self, page: &str, id: &str, color: &str) -> Result<(), WhiteboardError> {
        self.edit(true, |board, txn, _| board.recolor(txn, page, id, color))
            .then_some(())
            .ok_or_else(|| WhiteboardError::NoSuchItem(id.to_owned()))
    }

    /// Erases an item.
    pub fn erase(&self, page: &str, id: &str) -> Result<(), WhiteboardError> {
        self.edit(true, |board, txn, _| board.erase(txn, page, id))
            .then_some(())
            .ok_or_else(|| WhiteboardError::NoSuchItem(id.to_owned()))
    }

    /// Erases every item on `page`; returns how many.
    pub fn clear_page(&self, page: &str) -> usize {
        self.edit(true, |board, txn, _| board.clear_page(txn, page))
    }

    /// Locks or unlocks a page (needs the `room_admin` grant, or the server refuses it).
    pub fn set_page_locked(&self, page: &str, locked: bool) {
        self.edit(true, |board, txn, _| {
            board.set_page_locked(txn, page, locked)
        });
    }

    /// Locks or unlocks the whole board (needs `room_admin`).
    pub fn set_board_locked(&self, locked: bool) {
        self.edit(true, |board, txn, _| board.set_board_locked(txn, locked));
    }

    fn undo_redo(&self, redo: bool) -> bool {
        let mut st = self.lock();
        let sv = st.board.doc().transact().state_vector();
        let done = if redo {
            st.undo.redo_blocking()
        } else {
            st.undo.undo_blocking()
        };
        if done {
            let update = st.board.doc().transact().encode_diff_v1(&sv);
            st.send_edit(update);
            st.emit_changed(false);
        }
        done
    }

    /// Shows this client's laser pointer at `laser`, or hides it with `None`. Ephemeral: others
    /// see it at once, nothing is stored, and it disappears when this client leaves.
    pub fn set_laser(&self, laser: Option<Laser>) {
        let mut st = self.lock();
        let presence = Presence {
            user: st.identity.clone(),
            laser,
        };
        st.my_presence = serde_json::to_string(&presence).ok();
        st.presence_clock += 1;
        st.send_presence();
    }

    /// Everyone else's visible laser pointers, as (identity, position).
    pub fn lasers(&self) -> Vec<(String, Laser)> {
        let st = self.lock();
        let mut out: Vec<(String, Laser)> = st
            .remote_presence
            .values()
            .filter_map(|(_, p)| {
                let p = p.as_ref()?;
                Some((p.user.clone(), p.laser.clone()?))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Undoes this client's last edit (never someone else's). Returns false if there is none.
    pub fn undo(&self) -> bool {
        self.undo_redo(false)
    }

    /// Redoes the last undone edit. Returns false if there is none.
    pub fn redo(&self) -> bool {
        self.undo_redo(true)
    }

    /// Items of `page` in drawing order.
    pub fn items(&self, page: &str) -> Vec<Item> {
        let st = self.lock();
        let txn = st.board.doc().transact();
        st.board.items(&txn, page)
    }

    /// Whether `page` holds an item `id` (cheaper than [`items`](Self::items)).
    pub fn has_item(&self, page: &str, id: &str) -> bool {
        let st = self.lock();
        let txn = st.board.doc().transact();
        st.board.has_item(&txn, page, id)
    }

    /// Page ids.
    pub fn pages(&self) -> Vec<String> {
        let st = self.lock();
        let txn = st.board.doc().transact();
        st.board.pages(&txn)
    }

    /// The page every board starts with.
    pub fn default_page(&self) -> &'static str {
        DEFAULT_PAGE
    }

    /// Items over all pages.
    pub fn item_count(&self) -> usize {
        let st = self.lock();
        let txn = st.board.doc().transact();
        st.board.item_count(&txn)
    }

    /// Content digest: equal on replicas with identical boards.
    pub fn digest(&self) -> String {
        let st = self.lock();
        let txn = st.board.doc().transact();
        st.board.digest(&txn)
    }

    /// Edits not yet acknowledged by the server.
    pub fn unacked(&self) -> usize {
        let st = self.lock();
        st.unacked.len() + st.queued.len()
    }

    /// The whole board as one yrs update (v1), e.g. to save it.
    pub fn encode_state(&self) -> Vec<u8> {
        let st = self.lock();
        let txn = st.board.doc().transact();
        txn.encode_state_as_update_v1(&StateVector::default())
    }

    /// `page` as an SVG document of `width` × `height` board units.
    pub fn export_svg(&self, page: &str, width: f64, height: f64) -> String {
        svg::page_to_svg(&self.items(page), width, height)
    }

    /// `page` as a PNG image of `width` × `height` pixels (one pixel per board unit). Needs the
    /// `png` feature (on by default).
    #[cfg(feature = "png")]
    pub fn export_png(
        &self,
        page: &str,
        width: u32,
        height: u32,
    ) -> Result<Vec<u8>, png::RenderError> {
        png::svg_to_png(&self.export_svg(page, f64::from(width), f64::from(height)))
    }
}

impl State {
    fn send_raw(&mut self, bytes: Vec<u8>) {
        if self.offline {
            return;
        }
        if let Some(out) = &self.out {
            if out.send(bytes).is_err() {
                self.out = None;
            }
        }
    }

    fn send_edit(&mut self, update: Vec<u8>) {
        if self.offline || self.out.is_none() {
            self.queued.push(update);
            return;
        }
        self.sent_seq += 1;
        let seq = self.sent_seq;
        self.unacked.insert(seq, update.clone());
        self.send_raw(Frame::Update(update).encode());
    }

    fn send_presence(&mut self) {
        let Some(json) = self.my_presence.clone() else {
            return;
        };
        let entry = AwarenessEntry {
            client: self.presence_id,
            clock: self.presence_clock,
            json,
        };
        self.send_raw(Frame::Awareness(awareness::encode(&[entry])).encode());
    }

    /// Applies others' presence updates (y-protocols rules: newer clocks win; `null` removes).
    fn on_presence(&mut self, entries: Vec<AwarenessEntry>) {
        let mut changed = false;
        for entry in entries {
            if entry.client == self.presence_id {
                continue;
            }
            let known = self
                .remote_presence
                .get(&entry.client)
                .map(|(clock, _)| *clock);
            let removal = entry.json == "null";
            if known.is_some_and(|clock| entry.clock < clock || (entry.clock == clock && !removal))
            {
                continue;
            }
            if removal {
                self.remote_presence.remove(&entry.client);
            } else {
                let state = serde_json::from_str::<Presence>(&entry.json).ok();
                self.remote_presence
                    .insert(entry.client, (entry.clock, state));
            }
            changed = true;
        }
        if changed {
            self.emit(WhiteboardEvent::Presence);
        }
    }

    fn emit_changed(&mut self, remote: bool) {
        let items: Vec<ItemRef> =
            std::mem::take(&mut *self.touched.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        self.emit(WhiteboardEvent::Changed { remote, items });
    }

    fn emit(&mut self, event: WhiteboardEvent) {
        self.listeners.retain(|l| l.send(event.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                x: i as f32,
                y: 1.0,
                pressure: 0.5,
            })
            .collect()
    }

    #[test]
    fn undo_leaves_remote_items_alone() {
        // The server creates the first page; clients only add items to it.
        let seed = Board::new(Doc::new());
        seed.ensure_page(&mut seed.doc().transact_mut(), DEFAULT_PAGE);
        let seed = seed
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let alice = Whiteboard::new("alice");
        let bob = Whiteboard::new("bob");
        alice.on_frame(&Frame::SyncStep2(seed.clone()).encode());
        bob.on_frame(&Frame::SyncStep2(seed).encode());
        let a = alice.add_stroke("1", "#000", 1.0, &p(2));
        alice.extend_stroke("1", &a, &p(2)).expect("stroke");
        bob.on_frame(&Frame::SyncStep2(alice.encode_state()).encode());
        bob.add_stroke("1", "#111", 1.0, &p(2));
        alice.on_frame(&Frame::SyncStep2(bob.encode_state()).encode());
        assert_eq!(alice.item_count(), 2);
        assert!(alice.undo());
        assert_eq!(alice.item_count(), 1);
        assert!(!alice.undo());
    }

    /// A board with a red diagonal stroke, a blue rectangle and a text on page "1".
    fn drawn_board() -> Whiteboard {
        use aula_protocol::whiteboard::ItemKind;
        let board = Whiteboard::new("ann");
        board.add_stroke(
            "1",
            "#ff0000",
            4.0,
            &[
                Point {
                    x: 10.0,
                    y: 10.0,
                    pressure: 1.0,
                },
                Point {
                    x: 90.0,
                    y: 90.0,
                    pressure: 1.0,
                },
            ],
        );
        board.add_item(
            "1",
            &NewItem::shape(ItemKind::Rect, "#0000ff", 2.0, 5.0, 50.0, 30.0, 20.0),
        );
        board.add_item("1", &NewItem::text("#000", 12.0, 5.0, 5.0, "a < b"));
        board
    }

    #[test]
    fn pages_export_as_svg() {
        let svg = drawn_board().export_svg("1", 100.0, 100.0);
        assert!(svg.contains("<path d=\"M10.00 10.00 L90.00 90.00\""));
        assert!(svg.contains("<rect x=\"5\" y=\"50\" width=\"30\" height=\"20\""));
        assert!(svg.contains(">a &lt; b</text>"));
    }

    #[cfg(feature = "png")]
    #[test]
    fn pages_export_as_png() {
        let board = drawn_board();
        let png = board.export_png("1", 100, 100).expect("renders");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).expect("decodes");
        assert_eq!((pixmap.width(), pixmap.height()), (100, 100));
        // The stroke's middle is red, a corner stays white.
        let at = |x: u32, y: u32| pixmap.pixel(x, y).expect("inside");
        let mid = at(50, 50);
        assert!(
            mid.red() > 200 && mid.green() < 60 && mid.blue() < 60,
            "{mid:?}"
        );
        let corner = at(98, 2);
        assert!(corner.red() > 240 && corner.green() > 240 && corner.blue() > 240);
        assert!(board.export_png("1", 100_000, 10).is_err());
    }

    #[test]
    fn change_events_name_the_items() {
        let board = Whiteboard::new("ann");
        let mut events = board.events();
        let id = board.add_stroke("1", "#000", 1.0, &p(2));
        let first = events.try_recv().expect("an event");
        assert_eq!(
            first,
            WhiteboardEvent::Changed {
                remote: false,
                items: vec![ItemRef {
                    page: "1".into(),
                    id: None
                }],
            },
            "the first stroke creates the page"
        );
        board.recolor("1", &id, "#fff").expect("recolors");
        let WhiteboardEvent::Changed { items, .. } = events.try_recv().expect("an event") else {
            panic!("not a change");
        };
        assert_eq!(
            items,
            vec![ItemRef {
                page: "1".into(),
                id: Some(id)
            }]
        );
    }
}
