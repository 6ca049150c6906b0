//! The whiteboard's records and enums as the bindings pass them, and their conversions from and
//! to the core's (`aula_protocol::whiteboard`, `aula_core::whiteboard`). Same names and fields
//! as the Rust API.

use aula_core::whiteboard as core;
use aula_protocol::whiteboard as wire;
use aula_protocol::whiteboard::awareness;

/// One sampled pen position.
#[derive(Clone, Copy, Debug, PartialEq, uniffi::Record)]
pub struct Point {
    /// Horizontal position in board units.
    pub x: f32,
    /// Vertical position in board units.
    pub y: f32,
    /// Pen pressure, 0..=1.
    pub pressure: f32,
}

impl From<Point> for wire::Point {
    fn from(p: Point) -> Self {
        wire::Point {
            x: p.x,
            y: p.y,
            pressure: p.pressure,
        }
    }
}

impl From<wire::Point> for Point {
    fn from(p: wire::Point) -> Self {
        Point {
            x: p.x,
            y: p.y,
            pressure: p.pressure,
        }
    }
}

/// Core points from the bindings' (a copy: the layouts are the Rust API's to choose).
pub(crate) fn wire_points(points: Vec<Point>) -> Vec<wire::Point> {
    points.into_iter().map(wire::Point::from).collect()
}

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
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

impl From<ItemKind> for wire::ItemKind {
    fn from(kind: ItemKind) -> Self {
        match kind {
            ItemKind::Stroke => wire::ItemKind::Stroke,
            ItemKind::Line => wire::ItemKind::Line,
            ItemKind::Rect => wire::ItemKind::Rect,
            ItemKind::Ellipse => wire::ItemKind::Ellipse,
            ItemKind::Arrow => wire::ItemKind::Arrow,
            ItemKind::Text => wire::ItemKind::Text,
        }
    }
}

impl From<wire::ItemKind> for ItemKind {
    fn from(kind: wire::ItemKind) -> Self {
        match kind {
            wire::ItemKind::Stroke => ItemKind::Stroke,
            wire::ItemKind::Line => ItemKind::Line,
            wire::ItemKind::Rect => ItemKind::Rect,
            wire::ItemKind::Ellipse => ItemKind::Ellipse,
            wire::ItemKind::Arrow => ItemKind::Arrow,
            wire::ItemKind::Text => ItemKind::Text,
        }
    }
}

/// An item to add. `x, y` are the first corner or start point of a shape, the position of a
/// text (whose `width` is its font size) and a stroke's translation; `w, h` the size of a
/// rectangle or ellipse and the end minus the start of a line or arrow.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewItem {
    /// What it is.
    pub kind: ItemKind,
    /// CSS colour, e.g. `#1e88e5`.
    pub color: String,
    /// Line width (font size for text) in board units.
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
    #[uniffi(default)]
    pub text: Option<String>,
    /// First points of a stroke.
    #[uniffi(default)]
    pub points: Vec<Point>,
}

impl From<NewItem> for wire::NewItem {
    fn from(item: NewItem) -> Self {
        wire::NewItem {
            kind: item.kind.into(),
            color: item.color,
            width: item.width,
            x: item.x,
            y: item.y,
            w: item.w,
            h: item.h,
            text: item.text,
            points: wire_points(item.points),
        }
    }
}

/// An item as read from the board.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
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
    /// Line width (font size for text).
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

impl From<wire::Item> for Item {
    fn from(item: wire::Item) -> Self {
        Item {
            id: item.id,
            page: item.page,
            kind: item.kind.into(),
            author: item.author,
            color: item.color,
            width: item.width,
            z: item.z,
            x: item.x,
            y: item.y,
            w: item.w,
            h: item.h,
            text: item.text,
            points: item.points.into_iter().map(Point::from).collect(),
        }
    }
}

/// An item (or, with `id` `None`, a page as a whole) named in a change event.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ItemRef {
    /// The page.
    pub page: String,
    /// The item, or `None` for the page itself.
    pub id: Option<String>,
}

impl From<core::ItemRef> for ItemRef {
    fn from(r: core::ItemRef) -> Self {
        ItemRef {
            page: r.page,
            id: r.id,
        }
    }
}

/// Where a laser pointer is.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Laser {
    /// The page pointed at.
    pub page: String,
    /// Horizontal position in board units.
    pub x: f64,
    /// Vertical position in board units.
    pub y: f64,
}

impl From<Laser> for awareness::Laser {
    fn from(l: Laser) -> Self {
        awareness::Laser {
            page: l.page,
            x: l.x,
            y: l.y,
        }
    }
}

impl From<awareness::Laser> for Laser {
    fn from(l: awareness::Laser) -> Self {
        Laser {
            page: l.page,
            x: l.x,
            y: l.y,
        }
    }
}

/// Someone else's visible laser pointer.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct LaserPointer {
    /// Their identity.
    pub identity: String,
    /// Where it points.
    pub laser: Laser,
}

/// Something that happened to the board; delivered to [`super::WhiteboardListener`]s.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum WhiteboardEvent {
    /// The board changed; `remote` is false for this client's own edits (including undo).
    Changed {
        /// Whether the change came from the server.
        remote: bool,
        /// Items added, edited or erased, and pages (`id` `None`) created or whose settings
        /// changed. Empty after a reload, when anything may have.
        items: Vec<ItemRef>,
    },
    /// The server stored this client's edits up to `seq` (counted per connection).
    Acked {
        /// Edit frames acknowledged.
        seq: u64,
    },
    /// Someone's laser pointer moved, appeared or went away (see `lasers()`).
    Presence,
    /// The server refused an edit; the replica was reloaded from the server, so the edit is
    /// gone locally too.
    Refused {
        /// Stable code (`permission_denied`, `locked`, `too_large`, `invalid_update`,
        /// `rate_limited`, ...).
        code: String,
        /// Explanation.
        message: String,
    },
}

impl WhiteboardEvent {
    /// The binding's view of a core event (`None` for events the bindings do not know).
    pub(crate) fn from_event(event: core::WhiteboardEvent) -> Option<Self> {
        Some(match event {
            core::WhiteboardEvent::Changed { remote, items } => WhiteboardEvent::Changed {
                remote,
                items: items.into_iter().map(ItemRef::from).collect(),
            },
            core::WhiteboardEvent::Acked { seq } => WhiteboardEvent::Acked { seq },
            core::WhiteboardEvent::Presence => WhiteboardEvent::Presence,
            core::WhiteboardEvent::Refused { code, message } => {
                WhiteboardEvent::Refused { code, message }
            }
            _ => return None,
        })
    }
}
