//! The whiteboard's C structs: points, items to add, items read back (arrays the library
//! allocates and the caller frees), laser pointers, and byte buffers.

use std::ffi::{c_char, CString};

use super::callbacks::c_string;
use super::status::invalid;
use super::strings::arg_str;
use crate::uniffi_api::{AulaError, Item, ItemKind, Laser, LaserPointer, NewItem, Point};

/// One sampled pen position.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AulaPoint {
    /// Horizontal position in board units.
    pub x: f32,
    /// Vertical position in board units.
    pub y: f32,
    /// Pen pressure, 0..=1.
    pub pressure: f32,
}

impl From<AulaPoint> for Point {
    fn from(p: AulaPoint) -> Self {
        Point {
            x: p.x,
            y: p.y,
            pressure: p.pressure,
        }
    }
}

/// What a board item is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AulaItemKind {
    /// A freehand pen stroke with per-point pressure.
    Stroke = 0,
    /// A straight line.
    Line = 1,
    /// A rectangle.
    Rect = 2,
    /// An ellipse inside its bounding box.
    Ellipse = 3,
    /// A line with an arrowhead at its end.
    Arrow = 4,
    /// A text label.
    Text = 5,
}

impl From<AulaItemKind> for ItemKind {
    fn from(kind: AulaItemKind) -> Self {
        match kind {
            AulaItemKind::Stroke => ItemKind::Stroke,
            AulaItemKind::Line => ItemKind::Line,
            AulaItemKind::Rect => ItemKind::Rect,
            AulaItemKind::Ellipse => ItemKind::Ellipse,
            AulaItemKind::Arrow => ItemKind::Arrow,
            AulaItemKind::Text => ItemKind::Text,
        }
    }
}

impl From<ItemKind> for AulaItemKind {
    fn from(kind: ItemKind) -> Self {
        match kind {
            ItemKind::Stroke => AulaItemKind::Stroke,
            ItemKind::Line => AulaItemKind::Line,
            ItemKind::Rect => AulaItemKind::Rect,
            ItemKind::Ellipse => AulaItemKind::Ellipse,
            ItemKind::Arrow => AulaItemKind::Arrow,
            ItemKind::Text => AulaItemKind::Text,
        }
    }
}

/// An item to add, read by the library during the call. `x, y` are the first corner or start
/// point of a shape, the position of a text (whose `width` is its font size) and a stroke's
/// translation; `w, h` the size of a rectangle or ellipse and the end minus the start of a
/// line or arrow.
#[repr(C)]
#[derive(Debug)]
pub struct AulaNewItem {
    /// What it is.
    pub kind: AulaItemKind,
    /// CSS colour, e.g. `"#1e88e5"`.
    pub color: *const c_char,
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
    /// Text of a text item; NULL for none.
    pub text: *const c_char,
    /// First points of a stroke (NULL when `point_count` is 0).
    pub points: *const AulaPoint,
    /// Number of `points`.
    pub point_count: usize,
}

impl AulaNewItem {
    /// The item as the Rust API takes it.
    ///
    /// # Safety
    /// `color` and `text` are NULL or NUL-terminated; `points` holds `point_count` points.
    pub(crate) unsafe fn to_new_item(&self) -> Result<NewItem, AulaError> {
        // SAFETY: per this function's contract.
        let (color, points) = unsafe {
            (
                arg_str(self.color, "item.color")?,
                points_arg(self.points, self.point_count, "item.points")?,
            )
        };
        let text = if self.text.is_null() {
            None
        } else {
            // SAFETY: non-null and NUL-terminated per the contract.
            Some(unsafe { arg_str(self.text, "item.text") }?.to_owned())
        };
        Ok(NewItem {
            kind: self.kind.into(),
            color: color.to_owned(),
            width: self.width,
            x: self.x,
            y: self.y,
            w: self.w,
            h: self.h,
            text,
            points,
        })
    }
}

/// Reads `len` points at `ptr` (which may be NULL only when `len` is 0).
///
/// # Safety
/// `ptr` points to `len` readable points for the call.
pub(crate) unsafe fn points_arg(
    ptr: *const AulaPoint,
    len: usize,
    name: &str,
) -> Result<Vec<Point>, AulaError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL but its count is {len}")));
    }
    // SAFETY: non-null and `len` readable points per the contract.
    let points = unsafe { std::slice::from_raw_parts(ptr, len) };
    Ok(points.iter().copied().map(Point::from).collect())
}

/// A board item, in an array from `aula_whiteboard_items`. Every pointer belongs to the array
/// and is released with it by `aula_items_free`.
#[repr(C)]
#[derive(Debug)]
pub struct AulaItem {
    /// Unique id.
    pub id: *const c_char,
    /// The page it is on.
    pub page: *const c_char,
    /// What it is.
    pub kind: AulaItemKind,
    /// Identity of the participant who created it.
    pub author: *const c_char,
    /// CSS colour.
    pub color: *const c_char,
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
    /// Text, for text items; NULL otherwise.
    pub text: *const c_char,
    /// Stroke points, absolute, before translation by `x, y` (NULL when `point_count` is 0).
    pub points: *const AulaPoint,
    /// Number of `points`.
    pub point_count: usize,
}

/// A string owned by a returned array, freed by the array's free function.
pub(crate) fn owned(s: &str) -> *const c_char {
    c_string(s).into_raw()
}

/// Releases a string made by [`owned`] (NULL is ignored).
///
/// # Safety
/// `s` is NULL or came from [`owned`] and is released once.
pub(crate) unsafe fn release(s: *const c_char) {
    if !s.is_null() {
        // SAFETY: made by `CString::into_raw` in `owned`, released once per the contract.
        drop(unsafe { CString::from_raw(s.cast_mut()) });
    }
}

/// Hands `items` to C as an array (NULL when empty) and its length.
pub(crate) fn into_raw_array<T>(items: Vec<T>) -> (*mut T, usize) {
    if items.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let len = items.len();
    (Box::into_raw(items.into_boxed_slice()).cast::<T>(), len)
}

/// Takes back an array made by [`into_raw_array`].
///
/// # Safety
/// `ptr` is NULL or came from [`into_raw_array`] with exactly `len` elements, taken back once.
pub(crate) unsafe fn from_raw_array<T>(ptr: *mut T, len: usize) -> Vec<T> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: a boxed slice of `len` elements made by `into_raw_array`, per the contract.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) }.into_vec()
}

impl From<Item> for AulaItem {
    fn from(item: Item) -> Self {
        let points: Vec<AulaPoint> = item
            .points
            .iter()
            .map(|p| AulaPoint {
                x: p.x,
                y: p.y,
                pressure: p.pressure,
            })
            .collect();
        let (points, point_count) = into_raw_array(points);
        AulaItem {
            id: owned(&item.id),
            page: owned(&item.page),
            kind: item.kind.into(),
            author: owned(&item.author),
            color: owned(&item.color),
            width: item.width,
            z: item.z,
            x: item.x,
            y: item.y,
            w: item.w,
            h: item.h,
            text: item.text.as_deref().map_or(std::ptr::null(), owned),
            points,
            point_count,
        }
    }
}

/// Releases an array of items from `aula_whiteboard_items`, with everything it points to.
/// NULL is ignored.
///
/// # Safety
/// `items` is NULL or an array from `aula_whiteboard_items` with the `count` it returned, not
/// used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_items_free(items: *mut AulaItem, count: usize) {
    // SAFETY: per this function's contract.
    for item in unsafe { from_raw_array(items, count) } {
        // SAFETY: every string and the points were made for this item and are released once.
        unsafe {
            for s in [item.id, item.page, item.author, item.color, item.text] {
                release(s);
            }
            drop(from_raw_array(item.points.cast_mut(), item.point_count));
        }
    }
}

/// Where a laser pointer is (to show this client's, read during the call).
#[repr(C)]
#[derive(Debug)]
pub struct AulaLaser {
    /// The page pointed at.
    pub page: *const c_char,
    /// Horizontal position in board units.
    pub x: f64,
    /// Vertical position in board units.
    pub y: f64,
}

impl AulaLaser {
    /// The laser as the Rust API takes it.
    ///
    /// # Safety
    /// `page` is NULL or NUL-terminated.
    pub(crate) unsafe fn to_laser(&self) -> Result<Laser, AulaError> {
        Ok(Laser {
            // SAFETY: per this function's contract.
            page: unsafe { arg_str(self.page, "laser.page") }?.to_owned(),
            x: self.x,
            y: self.y,
        })
    }
}

/// Someone else's visible laser pointer, in an array from `aula_whiteboard_lasers` (its
/// strings belong to the array, released by `aula_laser_pointers_free`).
#[repr(C)]
#[derive(Debug)]
pub struct AulaLaserPointer {
    /// Their identity.
    pub identity: *const c_char,
    /// The page pointed at.
    pub page: *const c_char,
    /// Horizontal position in board units.
    pub x: f64,
    /// Vertical position in board units.
    pub y: f64,
}

impl From<LaserPointer> for AulaLaserPointer {
    fn from(p: LaserPointer) -> Self {
        AulaLaserPointer {
            identity: owned(&p.identity),
            page: owned(&p.laser.page),
            x: p.laser.x,
            y: p.laser.y,
        }
    }
}

/// Releases an array from `aula_whiteboard_lasers`. NULL is ignored.
///
/// # Safety
/// `pointers` is NULL or an array from `aula_whiteboard_lasers` with the `count` it returned,
/// not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_laser_pointers_free(pointers: *mut AulaLaserPointer, count: usize) {
    // SAFETY: per this function's contract.
    for pointer in unsafe { from_raw_array(pointers, count) } {
        // SAFETY: both strings were made for this entry and are released once.
        unsafe {
            release(pointer.identity);
            release(pointer.page);
        }
    }
}

/// Hands `strings` to C as an array of strings the array owns (NULL when empty).
pub(crate) fn into_raw_strings(strings: Vec<String>) -> (*mut *mut c_char, usize) {
    into_raw_array(
        strings
            .iter()
            .map(|s| owned(s).cast_mut())
            .collect::<Vec<*mut c_char>>(),
    )
}

/// Releases an array of strings the library returned (e.g. from `aula_whiteboard_pages`),
/// with every string in it. NULL is ignored.
///
/// # Safety
/// `strings` is NULL or an array from this library with the `count` it returned, not used
/// again afterwards.
#[no_mangle]
pub unsafe extern "C" fn aula_strings_free(strings: *mut *mut c_char, count: usize) {
    // SAFETY: per this function's contract.
    for s in unsafe { from_raw_array(strings, count) } {
        // SAFETY: each string was made by `owned` for this array and is released once.
        unsafe { release(s) };
    }
}

/// Releases a byte buffer the library returned (e.g. from `aula_whiteboard_export_png`), with
/// the length it returned. NULL is ignored.
///
/// # Safety
/// `data` is NULL or a buffer from this library with exactly `len` bytes, not used again.
#[no_mangle]
pub unsafe extern "C" fn aula_bytes_free(data: *mut u8, len: usize) {
    // SAFETY: per this function's contract.
    drop(unsafe { from_raw_array(data, len) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_arrays_round_trip_and_free() {
        let item = Item {
            id: "a-1".into(),
            page: "1".into(),
            kind: ItemKind::Text,
            author: "ann".into(),
            color: "#000".into(),
            width: 12.0,
            z: 1.0,
            x: 5.0,
            y: 6.0,
            w: 0.0,
            h: 0.0,
            text: Some("hello".into()),
            points: vec![Point {
                x: 1.0,
                y: 2.0,
                pressure: 0.5,
            }],
        };
        let (ptr, len) = into_raw_array(vec![AulaItem::from(item)]);
        assert_eq!(len, 1);
        // SAFETY: just made, one element.
        let first = unsafe { &*ptr };
        assert_eq!(first.kind, AulaItemKind::Text);
        assert_eq!(first.point_count, 1);
        // SAFETY: the text was made by `owned`.
        let text = unsafe { std::ffi::CStr::from_ptr(first.text) };
        assert_eq!(text.to_str(), Ok("hello"));
        // SAFETY: the array came from `into_raw_array` with this length.
        unsafe { aula_items_free(ptr, len) };
        let (empty, none) = into_raw_array(Vec::<AulaItem>::new());
        assert!(empty.is_null() && none == 0);
        // SAFETY: NULL is allowed.
        unsafe { aula_items_free(empty, none) };
    }
}
