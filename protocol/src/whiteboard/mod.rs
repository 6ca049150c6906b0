//! The shared whiteboard: document schema ([`model`]), server-side validation
//! ([`validate`]), binary wire frames ([`wire`]) and SVG export ([`svg`]).
//!
//! The board is a yrs (Yjs) document. Clients and the server exchange it with the y-protocols
//! sync messages, so any Yjs client can join; see `docs/protocol.md`.

pub mod awareness;
mod declared;
pub mod model;
pub mod svg;
pub mod validate;
pub mod wire;

pub use model::{Board, Item, ItemKind, NewItem, Point};
pub use validate::{Editor, Refusal, Scratch};
pub use wire::{decode_update, Frame};

/// The page every board starts with.
pub const DEFAULT_PAGE: &str = "1";

/// Bounds the server enforces on every update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhiteboardLimits {
    /// Largest update accepted, in bytes.
    pub max_update_bytes: usize,
    /// Most points one stroke may hold.
    pub max_points_per_stroke: usize,
    /// Most items one page may hold.
    pub max_items_per_page: usize,
    /// Most pages one board may hold.
    pub max_pages: usize,
    /// Longest text item, in bytes.
    pub max_text_bytes: usize,
    /// Longest item id, in bytes.
    pub max_id_bytes: usize,
    /// Edit frames one connection may send per second (sustained; bursts of twice that pass).
    pub max_updates_per_second: u32,
    /// Largest awareness (presence) frame accepted, in bytes.
    pub max_presence_bytes: usize,
    /// Awareness frames one connection may send per second (bursts of twice that pass).
    pub max_presence_per_second: u32,
    /// Sync step 1 requests one connection may send per second (bursts of twice that pass).
    pub max_syncs_per_second: u32,
}

impl Default for WhiteboardLimits {
    fn default() -> Self {
        Self {
            max_update_bytes: 256 * 1024,
            max_points_per_stroke: 10_000,
            max_items_per_page: 20_000,
            max_pages: 100,
            max_text_bytes: 4096,
            max_id_bytes: 64,
            max_updates_per_second: 200,
            max_presence_bytes: 4 * 1024,
            max_presence_per_second: 60,
            max_syncs_per_second: 2,
        }
    }
}
