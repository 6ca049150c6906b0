//! `Whiteboard`: the room's shared board (`aula_core::Whiteboard`) for the bindings.
//!
//! Every call goes to the room's one replica: edits apply locally at once and reach the server
//! (and everyone else) in the background; the server's answer arrives as an event (`Acked`, or
//! `Refused` when the token lacks the grant or the page is locked). Calls do not block on the
//! network. Once the room is disconnected or released, every call returns
//! [`AulaError::Disconnected`].

use std::sync::{Arc, Mutex, Weak};

use super::board_records::{
    wire_points, Item, Laser, LaserPointer, NewItem, Point, WhiteboardEvent,
};
use super::bytes::Bytes;
use super::error::AulaError;
use super::listeners::{Listeners, Subscription};
use super::AulaRoom;

/// `page` of `board` as PNG bytes.
#[cfg(feature = "png")]
fn render_png(
    board: &aula_core::Whiteboard,
    page: &str,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, AulaError> {
    Ok(board.export_png(page, width, height)?)
}

/// Without the `png` feature there is no rasteriser: the typed refusal.
#[cfg(not(feature = "png"))]
fn render_png(
    _board: &aula_core::Whiteboard,
    _page: &str,
    _width: u32,
    _height: u32,
) -> Result<Vec<u8>, AulaError> {
    Err(AulaError::Unsupported {
        reason: "this build of the Aula library leaves PNG export out (feature `png`); \
                 rasterise export_svg with the platform's graphics API"
            .into(),
    })
}

/// Receives a board's events, in order, on the board's event thread (`aula-board`, one per
/// [`Whiteboard`] object with listeners). Calls on the board are allowed from here.
#[uniffi::export(with_foreign)]
pub trait WhiteboardListener: Send + Sync {
    /// Something happened to the board.
    fn on_event(&self, event: WhiteboardEvent);
}

/// A room's whiteboard, from `AulaRoom.whiteboard()`. Each call of that returns a new handle
/// on the same board.
#[derive(uniffi::Object)]
pub struct Whiteboard {
    room: Weak<AulaRoom>,
    listeners: Arc<Listeners<dyn WhiteboardListener>>,
    /// Whether the event thread runs (started with the first listener).
    dispatching: Mutex<bool>,
}

impl Whiteboard {
    /// A handle on `room`'s board. It does not keep the room alive.
    pub(crate) fn new(room: &Arc<AulaRoom>) -> Self {
        Whiteboard {
            room: Arc::downgrade(room),
            listeners: Arc::default(),
            dispatching: Mutex::new(false),
        }
    }

    /// Fails with `Disconnected` once the room is disconnected or released.
    pub(crate) fn ensure_open(&self) -> Result<(), AulaError> {
        self.board().map(drop)
    }

    /// The core replica, while the room is connected.
    fn board(&self) -> Result<aula_core::Whiteboard, AulaError> {
        let room = self.room.upgrade().ok_or_else(AulaError::disconnected)?;
        Ok(room.room()?.whiteboard())
    }
}

#[uniffi::export]
impl Whiteboard {
    /// The page every board starts with (`"1"`).
    pub fn default_page(&self) -> Result<String, AulaError> {
        Ok(self.board()?.default_page().to_owned())
    }

    /// Page ids, sorted. A new board gets its first page from the server shortly after the
    /// join: draw on it once it is listed here (an edit made before that can be lost when the
    /// two creations of the page meet).
    pub fn pages(&self) -> Result<Vec<String>, AulaError> {
        Ok(self.board()?.pages())
    }

    /// Adds an item (a shape, a text, or a stroke with its points) on `page`; returns its id.
    pub fn add_item(&self, page: String, item: NewItem) -> Result<String, AulaError> {
        Ok(self.board()?.add_item(&page, &item.into()))
    }

    /// Adds a stroke with its first points; returns its id. More can follow with
    /// `extend_stroke` while the pen moves (others see it grow).
    pub fn add_stroke(
        &self,
        page: String,
        color: String,
        width: f64,
        points: Vec<Point>,
    ) -> Result<String, AulaError> {
        Ok(self
            .board()?
            .add_stroke(&page, &color, width, &wire_points(points)))
    }

    /// Appends points to a stroke (the same undo step as the stroke).
    pub fn extend_stroke(
        &self,
        page: String,
        id: String,
        points: Vec<Point>,
    ) -> Result<(), AulaError> {
        Ok(self
            .board()?
            .extend_stroke(&page, &id, &wire_points(points))?)
    }

    /// Moves an item by `dx, dy`.
    pub fn move_item(&self, page: String, id: String, dx: f64, dy: f64) -> Result<(), AulaError> {
        Ok(self.board()?.move_item(&page, &id, dx, dy)?)
    }

    /// Changes an item's colour.
    pub fn recolor(&self, page: String, id: String, color: String) -> Result<(), AulaError> {
        Ok(self.board()?.recolor(&page, &id, &color)?)
    }

    /// Erases an item.
    pub fn erase(&self, page: String, id: String) -> Result<(), AulaError> {
        Ok(self.board()?.erase(&page, &id)?)
    }

    /// Erases every item on `page`; returns how many.
    pub fn clear_page(&self, page: String) -> Result<u64, AulaError> {
        Ok(self.board()?.clear_page(&page) as u64)
    }

    /// Locks or unlocks a page (needs the `room_admin` grant, or the server refuses it).
    pub fn set_page_locked(&self, page: String, locked: bool) -> Result<(), AulaError> {
        self.board()?.set_page_locked(&page, locked);
        Ok(())
    }

    /// Locks or unlocks the whole board (needs `room_admin`).
    pub fn set_board_locked(&self, locked: bool) -> Result<(), AulaError> {
        self.board()?.set_board_locked(locked);
        Ok(())
    }

    /// Undoes this client's last edit (never someone else's). False if there is none.
    pub fn undo(&self) -> Result<bool, AulaError> {
        Ok(self.board()?.undo())
    }

    /// Redoes the last undone edit. False if there is none.
    pub fn redo(&self) -> Result<bool, AulaError> {
        Ok(self.board()?.redo())
    }

    /// Items of `page` in drawing order.
    pub fn items(&self, page: String) -> Result<Vec<Item>, AulaError> {
        Ok(self
            .board()?
            .items(&page)
            .into_iter()
            .map(Item::from)
            .collect())
    }

    /// Whether `page` holds an item `id` (cheaper than `items`).
    pub fn has_item(&self, page: String, id: String) -> Result<bool, AulaError> {
        Ok(self.board()?.has_item(&page, &id))
    }

    /// Items over all pages.
    pub fn item_count(&self) -> Result<u64, AulaError> {
        Ok(self.board()?.item_count() as u64)
    }

    /// Content digest: equal on replicas with identical boards.
    pub fn digest(&self) -> Result<String, AulaError> {
        Ok(self.board()?.digest())
    }

    /// Edits the server has not acknowledged yet.
    pub fn unacked(&self) -> Result<u64, AulaError> {
        Ok(self.board()?.unacked() as u64)
    }

    /// `page` as an SVG document of `width` × `height` board units.
    pub fn export_svg(&self, page: String, width: f64, height: f64) -> Result<String, AulaError> {
        Ok(self.board()?.export_svg(&page, width, height))
    }

    /// `page` as a PNG image of `width` × `height` pixels (one pixel per board unit, at most
    /// 8192 × 8192). A library built without the `png` feature (the mobile SDK) fails with
    /// [`AulaError::Unsupported`]: rasterise [`Whiteboard::export_svg`] there instead.
    pub fn export_png(&self, page: String, width: u32, height: u32) -> Result<Bytes, AulaError> {
        Ok(render_png(&self.board()?, &page, width, height)?.into())
    }

    /// Shows this client's laser pointer at `laser`, or hides it with `None`. Ephemeral:
    /// others see it at once, nothing is stored, and it goes away when this client leaves.
    pub fn set_laser(&self, laser: Option<Laser>) -> Result<(), AulaError> {
        self.board()?.set_laser(laser.map(Into::into));
        Ok(())
    }

    /// Everyone else's visible laser pointers, by identity.
    pub fn lasers(&self) -> Result<Vec<LaserPointer>, AulaError> {
        Ok(self
            .board()?
            .lasers()
            .into_iter()
            .map(|(identity, laser)| LaserPointer {
                identity,
                laser: laser.into(),
            })
            .collect())
    }

    /// Registers a listener for the board's events from now on: what changed, the server's
    /// acknowledgements and refusals, laser pointers. Cancelling (or dropping) the returned
    /// subscription stops it.
    pub fn add_listener(
        &self,
        listener: Arc<dyn WhiteboardListener>,
    ) -> Result<Arc<Subscription>, AulaError> {
        let board = self.board()?;
        let mut dispatching = self.dispatching.lock().unwrap_or_else(|p| p.into_inner());
        if !*dispatching {
            self.listeners
                .spawn_dispatcher(
                    "aula-board",
                    board.events(),
                    WhiteboardEvent::from_event,
                    |l, e| l.on_event(e),
                )
                .map_err(|e| AulaError::Internal {
                    reason: format!("cannot start the board's event thread: {e}"),
                })?;
            *dispatching = true;
        }
        Ok(Arc::new(self.listeners.subscribe(listener)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica (not connected) with one stroke on page "1".
    fn board_with_a_stroke() -> aula_core::Whiteboard {
        let board = aula_core::Whiteboard::new("ann");
        let points = [(10.0, 10.0), (90.0, 90.0)].map(|(x, y)| Point {
            x,
            y,
            pressure: 1.0,
        });
        board.add_stroke("1", "#ff0000", 4.0, &wire_points(points.to_vec()));
        board
    }

    #[cfg(feature = "png")]
    #[test]
    fn png_export_renders_with_the_png_feature() {
        let png = render_png(&board_with_a_stroke(), "1", 100, 100).expect("renders");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let err = render_png(&board_with_a_stroke(), "1", 100_000, 10).unwrap_err();
        assert!(matches!(err, AulaError::InvalidArgument { .. }), "{err}");
    }

    #[cfg(not(feature = "png"))]
    #[test]
    fn png_export_is_a_typed_refusal_without_the_png_feature() {
        use crate::c_api::AulaStatus;
        let err = render_png(&board_with_a_stroke(), "1", 100, 100).unwrap_err();
        assert!(
            matches!(&err, AulaError::Unsupported { reason } if reason.contains("png")),
            "{err}"
        );
        assert_eq!(AulaStatus::from(&err), AulaStatus::Unsupported);
    }
}
