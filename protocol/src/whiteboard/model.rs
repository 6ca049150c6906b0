//! The board's document schema over a yrs [`Doc`] and a typed API to read and edit it.
//!
//! Layout (the same in Yjs terms, so browser tools can read and write it):
//!
//! ```text
//! root map "meta":  { "locked": bool }                     — the whole board locked by an admin
//! root map "pages": { PAGE_ID: Y.Map {
//!     "locked": bool,                                       — this page locked by an admin
//!     "items":  { ITEM_ID: Y.Map {
//!         "kind": "stroke" | "line" | "rect" | "ellipse" | "arrow" | "text",
//!         "author": identity, "color": "#rrggbb", "width": number, "z": number,
//!         "x", "y": number   — translation (strokes) or first corner / start point (shapes, text)
//!         "w", "h": number   — size (rect, ellipse) or end minus start (line, arrow)
//!         "text": string     — text items
//!         "points": Y.Array of binary chunks, each a run of (x, y, pressure) little-endian f32
//!     } }
//! } }
//! ```
//!
//! Strokes are streamed: the item is created with the first chunk of points and further chunks
//! are appended while the pen moves, so others see the stroke as it is drawn.

use std::collections::BTreeMap;
use std::sync::Arc;

use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayPrelim, ArrayRef, Doc, In, Map, MapPrelim, MapRef, Out, ReadTxn,
    TransactionMut,
};

/// Name of the root map holding the pages.
pub const PAGES: &str = "pages";
/// Name of the root map holding board-wide settings.
pub const META: &str = "meta";
/// Key of the lock flag (in `meta` and in each page).
pub const LOCKED: &str = "locked";
/// Key of a page's item map.
pub const ITEMS: &str = "items";
/// Key of a stroke's point chunks.
pub const POINTS: &str = "points";
/// Bytes per encoded point: x, y, pressure as little-endian f32.
pub const POINT_BYTES: usize = 12;

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A freehand pen stroke with per-point pressure.
    Stroke,
    /// A straight line.
    Line,
    /// A rectangle.
    Rect,
    /// An ellipse inside its bounding box.
    Ellipse,
    /// A line with an arrowhead at its end.
    Arrow,
    /// A text label.
    Text,
}

impl ItemKind {
    /// The name stored in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Stroke => "stroke",
            ItemKind::Line => "line",
            ItemKind::Rect => "rect",
            ItemKind::Ellipse => "ellipse",
            ItemKind::Arrow => "arrow",
            ItemKind::Text => "text",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stroke" => ItemKind::Stroke,
            "line" => ItemKind::Line,
            "rect" => ItemKind::Rect,
            "ellipse" => ItemKind::Ellipse,
            "arrow" => ItemKind::Arrow,
            "text" => ItemKind::Text,
            _ => return None,
        })
    }
}

/// One sampled pen position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal position in board units.
    pub x: f32,
    /// Vertical position in board units.
    pub y: f32,
    /// Pen pressure, 0..=1.
    pub pressure: f32,
}

/// Encodes points as one binary chunk.
pub fn encode_points(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT_BYTES);
    for p in points {
        out.extend_from_slice(&p.x.to_le_bytes());
        out.extend_from_slice(&p.y.to_le_bytes());
        out.extend_from_slice(&p.pressure.to_le_bytes());
    }
    out
}

/// Decodes one binary chunk; `None` when its length is not a whole number of points.
pub fn decode_points(chunk: &[u8]) -> Option<Vec<Point>> {
    if !chunk.len().is_multiple_of(POINT_BYTES) {
        return None;
    }
    let f = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Some(
        chunk
            .chunks_exact(POINT_BYTES)
            .map(|c| Point {
                x: f(&c[0..4]),
                y: f(&c[4..8]),
                pressure: f(&c[8..12]),
            })
            .collect(),
    )
}

/// An item to add. Geometry meaning depends on `kind` (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct NewItem {
    /// What it is.
    pub kind: ItemKind,
    /// CSS colour, e.g. `#1e88e5`.
    pub color: String,
    /// Line width in board units.
    pub width: f64,
    /// Position or translation.
    pub x: f64,
    /// Position or translation.
    pub y: f64,
    /// Size or end delta.
    pub w: f64,
    /// Size or end delta.
    pub h: f64,
    /// Text of a text item.
    pub text: Option<String>,
    /// First points of a stroke.
    pub points: Vec<Point>,
}

impl NewItem {
    /// A stroke starting with `points`.
    pub fn stroke(color: &str, width: f64, points: Vec<Point>) -> Self {
        Self::shape(ItemKind::Stroke, color, width, 0.0, 0.0, 0.0, 0.0).with_points(points)
    }

    /// A shape (line, rect, ellipse, arrow) at `x, y` with size or end delta `w, h`.
    pub fn shape(kind: ItemKind, color: &str, width: f64, x: f64, y: f64, w: f64, h: f64) -> Self {
        Self {
            kind,
            color: color.to_owned(),
            width,
            x,
            y,
            w,
            h,
            text: None,
            points: Vec::new(),
        }
    }

    /// A text label at `x, y`.
    pub fn text(color: &str, size: f64, x: f64, y: f64, text: &str) -> Self {
        let mut item = Self::shape(ItemKind::Text, color, size, x, y, 0.0, 0.0);
        item.text = Some(text.to_owned());
        item
    }

    fn with_points(mut self, points: Vec<Point>) -> Self {
        self.points = points;
        self
    }
}

/// An item as read from the document.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Unique id (chosen by its creator).
    pub id: String,
    /// The page it is on.
    pub page: String,
    /// What it is.
    pub kind: ItemKind,
    /// Identity of the participant who created it.
    pub author: String,
    /// CSS colour.
    pub color: String,
    /// Line width.
    pub width: f64,
    /// Stacking order: higher is drawn later.
    pub z: f64,
    /// Position or translation.
    pub x: f64,
    /// Position or translation.
    pub y: f64,
    /// Size or end delta.
    pub w: f64,
    /// Size or end delta.
    pub h: f64,
    /// Text, for text items.
    pub text: Option<String>,
    /// Stroke points (absolute, before translation by `x, y`).
    pub points: Vec<Point>,
}

fn num(x: f64) -> In {
    In::Any(Any::Number(yrs::any::Number::Float(x)))
}

/// Reads a number stored under `key`.
pub fn get_f64<T: ReadTxn>(map: &MapRef, txn: &T, key: &str) -> Option<f64> {
    match map.get(txn, key)? {
        Out::Any(Any::Number(n)) => n.as_f64(),
        _ => None,
    }
}

/// Reads a string stored under `key`.
pub fn get_str<T: ReadTxn>(map: &MapRef, txn: &T, key: &str) -> Option<String> {
    match map.get(txn, key)? {
        Out::Any(Any::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// Reads a bool stored under `key` (absent counts as false).
pub fn get_bool<T: ReadTxn>(map: &MapRef, txn: &T, key: &str) -> bool {
    matches!(map.get(txn, key), Some(Out::Any(Any::Bool(true))))
}

/// Reads the nested map under `key`.
pub fn get_map<T: ReadTxn>(map: &MapRef, txn: &T, key: &str) -> Option<MapRef> {
    match map.get(txn, key)? {
        Out::YMap(m) => Some(m),
        _ => None,
    }
}

/// Reads the nested array under `key`.
pub fn get_array<T: ReadTxn>(map: &MapRef, txn: &T, key: &str) -> Option<ArrayRef> {
    match map.get(txn, key)? {
        Out::YArray(a) => Some(a),
        _ => None,
    }
}

/// Point chunks of a stroke; `None` when a chunk is not a valid buffer.
pub fn read_points<T: ReadTxn>(item: &MapRef, txn: &T) -> Option<Vec<Point>> {
    let Some(array) = get_array(item, txn, POINTS) else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for value in array.iter(txn) {
        let Out::Any(Any::Buffer(chunk)) = value else {
            return None;
        };
        out.extend(decode_points(&chunk)?);
    }
    Some(out)
}

/// Number of points in a stroke without decoding them; `None` if a chunk is malformed.
pub fn point_count<T: ReadTxn>(item: &MapRef, txn: &T) -> Option<usize> {
    let Some(array) = get_array(item, txn, POINTS) else {
        return Some(0);
    };
    let mut n = 0;
    for value in array.iter(txn) {
        let Out::Any(Any::Buffer(chunk)) = value else {
            return None;
        };
        if !chunk.len().is_multiple_of(POINT_BYTES) {
            return None;
        }
        n += chunk.len() / POINT_BYTES;
    }
    Some(n)
}

/// Reads one item map; `None` when it does not follow the schema.
pub fn read_item<T: ReadTxn>(page: &str, id: &str, map: &MapRef, txn: &T) -> Option<Item> {
    let kind = ItemKind::parse(&get_str(map, txn, "kind")?)?;
    Some(Item {
        id: id.to_owned(),
        page: page.to_owned(),
        kind,
        author: get_str(map, txn, "author")?,
        color: get_str(map, txn, "color").unwrap_or_else(|| "#000000".into()),
        width: get_f64(map, txn, "width").unwrap_or(1.0),
        z: get_f64(map, txn, "z").unwrap_or(0.0),
        x: get_f64(map, txn, "x").unwrap_or(0.0),
        y: get_f64(map, txn, "y").unwrap_or(0.0),
        w: get_f64(map, txn, "w").unwrap_or(0.0),
        h: get_f64(map, txn, "h").unwrap_or(0.0),
        text: get_str(map, txn, "text"),
        points: read_points(map, txn)?,
    })
}

/// A typed view over a board document. Cheap to clone (the [`Doc`] is shared).
#[derive(Clone)]
pub struct Board {
    doc: Doc,
    pages: MapRef,
    meta: MapRef,
}

impl Board {
    /// Wraps `doc`, creating the root types if needed.
    pub fn new(doc: Doc) -> Self {
        let pages = doc.get_or_insert_map(PAGES);
        let meta = doc.get_or_insert_map(META);
        Self { doc, pages, meta }
    }

    /// The underlying document.
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The root map of pages.
    pub fn pages_ref(&self) -> &MapRef {
        &self.pages
    }

    /// The root map of board-wide settings.
    pub fn meta_ref(&self) -> &MapRef {
        &self.meta
    }

    fn page_items(&self, txn: &mut TransactionMut<'_>, page: &str) -> MapRef {
        let page_map = match get_map(&self.pages, txn, page) {
            Some(m) => m,
            None => self.pages.insert(txn, page, MapPrelim::default()),
        };
        match get_map(&page_map, txn, ITEMS) {
            Some(m) => m,
            None => page_map.insert(txn, ITEMS, MapPrelim::default()),
        }
    }

    fn item_map<T: ReadTxn>(&self, txn: &T, page: &str, id: &str) -> Option<MapRef> {
        let page_map = get_map(&self.pages, txn, page)?;
        let items = get_map(&page_map, txn, ITEMS)?;
        get_map(&items, txn, id)
    }

    /// Adds `item` with id `id` by `author` on top of `page` (created if missing).
    pub fn add_item(
        &self,
        txn: &mut TransactionMut<'_>,
        page: &str,
        id: &str,
        author: &str,
        item: &NewItem,
    ) {
        let items = self.page_items(txn, page);
        let z = items
            .iter(txn)
            .filter_map(|(_, v)| match v {
                Out::YMap(m) => get_f64(&m, txn, "z"),
                _ => None,
            })
            .fold(0.0_f64, f64::max)
            + 1.0;
        let mut fields: Vec<(&str, In)> = vec![
            ("kind", In::Any(Any::from(item.kind.as_str()))),
            ("author", In::Any(Any::from(author))),
            ("color", In::Any(Any::from(item.color.as_str()))),
            ("width", num(item.width)),
            ("z", num(z)),
            ("x", num(item.x)),
            ("y", num(item.y)),
            ("w", num(item.w)),
            ("h", num(item.h)),
        ];
        if let Some(text) = &item.text {
            fields.push(("text", In::Any(Any::from(text.as_str()))));
        }
        if item.kind == ItemKind::Stroke {
            let mut chunks = ArrayPrelim::default();
            if !item.points.is_empty() {
                chunks.push(In::Any(Any::from(encode_points(&item.points))));
            }
            fields.push((POINTS, In::Array(chunks)));
        }
        items.insert(txn, id, MapPrelim::from_iter(fields));
    }

    /// Appends points to a stroke being drawn. Returns false if there is no such stroke.
    pub fn append_points(
        &self,
        txn: &mut TransactionMut<'_>,
        page: &str,
        id: &str,
        points: &[Point],
    ) -> bool {
        let Some(array) = self
            .item_map(txn, page, id)
            .and_then(|m| get_array(&m, txn, POINTS))
        else {
            return false;
        };
        array.push_back(txn, Any::from(encode_points(points)));
        true
    }

    /// Moves an item by `dx, dy`. Returns false if there is no such item.
    pub fn move_item(
        &self,
        txn: &mut TransactionMut<'_>,
        page: &str,
        id: &str,
        dx: f64,
        dy: f64,
    ) -> bool {
        let Some(m) = self.item_map(txn, page, id) else {
            return false;
        };
        let x = get_f64(&m, txn, "x").unwrap_or(0.0) + dx;
        let y = get_f64(&m, txn, "y").unwrap_or(0.0) + dy;
        m.insert(txn, "x", num(x));
        m.insert(txn, "y", num(y));
        true
    }

    /// Changes an item's colour. Returns false if there is no such item.
    pub fn recolor(&self, txn: &mut TransactionMut<'_>, page: &str, id: &str, color: &str) -> bool {
        let Some(m) = self.item_map(txn, page, id) else {
            return false;
        };
        m.insert(txn, "color", Any::from(color));
        true
    }

    /// Erases an item. Returns false if there is no such item.
    pub fn erase(&self, txn: &mut TransactionMut<'_>, page: &str, id: &str) -> bool {
        let Some(items) = get_map(&self.pages, txn, page).and_then(|p| get_map(&p, txn, ITEMS))
        else {
            return false;
        };
        items.remove(txn, id).is_some()
    }

    /// Erases every item on a page; returns how many.
    pub fn clear_page(&self, txn: &mut TransactionMut<'_>, page: &str) -> usize {
        let Some(items) = get_map(&self.pages, txn, page).and_then(|p| get_map(&p, txn, ITEMS))
        else {
            return 0;
        };
        let ids: Vec<String> = items.keys(txn).map(str::to_owned).collect();
        for id in &ids {
            items.remove(txn, id);
        }
        ids.len()
    }

    /// Creates `page` (with its item map) if it does not exist.
    pub fn ensure_page(&self, txn: &mut TransactionMut<'_>, page: &str) {
        self.page_items(txn, page);
    }

    /// Locks or unlocks a page (admins only; the server refuses it from others).
    pub fn set_page_locked(&self, txn: &mut TransactionMut<'_>, page: &str, locked: bool) {
        let page_map = match get_map(&self.pages, txn, page) {
            Some(m) => m,
            None => self.pages.insert(txn, page, MapPrelim::default()),
        };
        page_map.insert(txn, LOCKED, Any::Bool(locked));
    }

    /// Locks or unlocks the whole board (admins only).
    pub fn set_board_locked(&self, txn: &mut TransactionMut<'_>, locked: bool) {
        self.meta.insert(txn, LOCKED, Any::Bool(locked));
    }

    /// Whether the whole board is locked.
    pub fn board_locked<T: ReadTxn>(&self, txn: &T) -> bool {
        get_bool(&self.meta, txn, LOCKED)
    }

    /// Whether `page` is locked (by itself or because the board is).
    pub fn page_locked<T: ReadTxn>(&self, txn: &T, page: &str) -> bool {
        self.board_locked(txn)
            || get_map(&self.pages, txn, page).is_some_and(|p| get_bool(&p, txn, LOCKED))
    }

    /// Whether `page` holds an item `id`.
    pub fn has_item<T: ReadTxn>(&self, txn: &T, page: &str, id: &str) -> bool {
        self.item_map(txn, page, id).is_some()
    }

    /// Page ids, sorted.
    pub fn pages<T: ReadTxn>(&self, txn: &T) -> Vec<String> {
        let mut ids: Vec<String> = self.pages.keys(txn).map(str::to_owned).collect();
        ids.sort();
        ids
    }

    /// Items of `page` in drawing order (z, then id). Entries not following the schema are
    /// skipped.
    pub fn items<T: ReadTxn>(&self, txn: &T, page: &str) -> Vec<Item> {
        let Some(items) = get_map(&self.pages, txn, page).and_then(|p| get_map(&p, txn, ITEMS))
        else {
            return Vec::new();
        };
        let mut out: Vec<Item> = items
            .iter(txn)
            .filter_map(|(id, v)| match v {
                Out::YMap(m) => read_item(page, id, &m, txn),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.z.total_cmp(&b.z).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Total items over all pages.
    pub fn item_count<T: ReadTxn>(&self, txn: &T) -> usize {
        self.pages(txn)
            .iter()
            .filter_map(|p| get_map(&self.pages, txn, p).and_then(|m| get_map(&m, txn, ITEMS)))
            .map(|items| items.len(txn) as usize)
            .sum()
    }

    /// A digest of the board's content (FNV-1a 64 over a canonical JSON rendering): equal for
    /// replicas whose boards are identical, whatever order the edits arrived in.
    pub fn digest<T: ReadTxn>(&self, txn: &T) -> String {
        let mut canon = BTreeMap::new();
        canon.insert("meta", canonical(&self.meta.to_json(txn)));
        canon.insert("pages", canonical(&self.pages.to_json(txn)));
        let text = format!("{canon:?}");
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// A rendering of an `Any` with maps sorted by key.
fn canonical(any: &Any) -> String {
    match any {
        Any::Map(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!("{sorted:?}")
        }
        Any::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical).collect();
            format!("{parts:?}")
        }
        Any::Buffer(bytes) => format!("b{:?}", Arc::clone(bytes)),
        other => format!("{other:?}"),
    }
}
