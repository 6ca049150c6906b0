//! The authoritative whiteboards: one actor task per room's board, durable storage, and the
//! y-websocket endpoint.

mod board;
pub mod gate;
pub mod presence;
pub mod queue;
mod session;
pub mod store;
pub mod yjs;

use std::sync::Arc;

use aula_protocol::whiteboard::WhiteboardLimits;
use tokio::sync::mpsc;

pub use board::{BoardCmd, Conn};
pub use queue::{frame_queue as connection_queue, FrameReceiver, FrameSender};
pub use session::SessionBoard;
pub use store::{Store, StoreError};

/// Every room's board; boards are loaded from the store on first use.
pub struct Boards {
    store: Arc<Store>,
    limits: WhiteboardLimits,
    metrics: Arc<crate::metrics::Metrics>,
    open: board::Registry,
}

impl Boards {
    /// Boards kept in `store`, counting in `metrics`.
    pub fn new(
        store: Store,
        limits: WhiteboardLimits,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            store: Arc::new(store),
            limits,
            metrics,
            open: Arc::default(),
        }
    }

    /// The server's metrics, for the sessions' whiteboard links.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The limits every update is checked against.
    pub fn limits(&self) -> &WhiteboardLimits {
        &self.limits
    }

    /// The command queue of `room`'s board, loading it if needed.
    pub async fn get(&self, room: &str) -> Result<mpsc::Sender<BoardCmd>, StoreError> {
        let mut open = self.open.lock().await;
        if let Some(tx) = open.get(room) {
            if !tx.is_closed() {
                return Ok(tx.clone());
            }
        }
        let tx = board::spawn(
            Arc::clone(&self.open),
            room.to_owned(),
            Arc::clone(&self.store),
            self.limits.clone(),
            Arc::clone(&self.metrics),
        )
        .await?;
        open.insert(room.to_owned(), tx.clone());
        Ok(tx)
    }

    /// Bytes stored for a room's board.
    pub fn stored_bytes(&self, room: &str) -> Result<u64, StoreError> {
        self.store.stored_bytes(room)
    }
}
