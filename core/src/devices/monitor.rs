//! What an open device reports after it was opened: that it went away.
//!
//! Sources and sinks keep working after their device is lost (black frames, silence, dropped
//! audio), so a call never crashes on an unplugged camera; the app learns about it here and can
//! offer another device.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::DeviceKind;

/// Something that happened to an open device.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The device went away (unplugged, its window closed, the display or sound server gone) or
    /// failed for good. Its source now yields black frames or silence; a speaker drops audio.
    Lost {
        /// What kind of device.
        kind: DeviceKind,
        /// Its id.
        id: String,
        /// What happened, in the backend's words.
        reason: String,
    },
}

/// Whether an open device still works.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceState {
    /// Frames or samples flow.
    Active,
    /// The device is gone, for the reason given.
    Lost(String),
}

/// A handle on an open device's state and events. Cheap to clone; every clone sees the same
/// device, and it stays valid after the source is moved into a room.
#[derive(Clone, Debug)]
pub struct DeviceMonitor {
    inner: Arc<MonitorInner>,
}

#[derive(Debug)]
struct MonitorInner {
    kind: DeviceKind,
    id: String,
    state: Mutex<DeviceState>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<DeviceEvent>>>,
}

#[cfg_attr(
    not(any(feature = "camera", feature = "audio-devices", feature = "screen")),
    allow(dead_code)
)]
impl DeviceMonitor {
    pub(crate) fn new(kind: DeviceKind, id: &str) -> Self {
        Self {
            inner: Arc::new(MonitorInner {
                kind,
                id: id.to_owned(),
                state: Mutex::new(DeviceState::Active),
                subscribers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// What kind of device this is.
    pub fn kind(&self) -> DeviceKind {
        self.inner.kind
    }

    /// The device's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The device's state now.
    pub fn state(&self) -> DeviceState {
        lock(&self.inner.state).clone()
    }

    /// Whether the device is gone.
    pub fn is_lost(&self) -> bool {
        matches!(self.state(), DeviceState::Lost(_))
    }

    /// A stream of this device's events from now on. A device already lost reports that at
    /// once, so subscribing late misses nothing.
    pub fn events(&self) -> mpsc::UnboundedReceiver<DeviceEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = lock(&self.inner.state);
        if let DeviceState::Lost(reason) = &*state {
            let _ = tx.send(self.lost_event(reason));
        }
        lock(&self.inner.subscribers).push(tx);
        rx
    }

    /// Records that the device is gone and tells every subscriber; only the first call counts.
    pub(crate) fn lost(&self, reason: impl Into<String>) {
        let reason = reason.into();
        {
            let mut state = lock(&self.inner.state);
            if matches!(*state, DeviceState::Lost(_)) {
                return;
            }
            *state = DeviceState::Lost(reason.clone());
        }
        tracing::warn!(kind = %self.inner.kind, id = %self.inner.id, %reason, "device lost");
        let event = self.lost_event(&reason);
        lock(&self.inner.subscribers).retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn lost_event(&self, reason: &str) -> DeviceEvent {
        DeviceEvent::Lost {
            kind: self.inner.kind,
            id: self.inner.id.clone(),
            reason: reason.to_owned(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_reported_once_and_to_late_subscribers() {
        let monitor = DeviceMonitor::new(DeviceKind::Camera, "0");
        let mut early = monitor.events();
        assert_eq!(monitor.state(), DeviceState::Active);
        monitor.lost("unplugged");
        monitor.lost("again");
        assert_eq!(monitor.state(), DeviceState::Lost("unplugged".into()));
        let expected = DeviceEvent::Lost {
            kind: DeviceKind::Camera,
            id: "0".into(),
            reason: "unplugged".into(),
        };
        assert_eq!(early.try_recv().ok(), Some(expected.clone()));
        assert!(early.try_recv().is_err(), "only the first loss counts");
        let mut late = monitor.clone().events();
        assert_eq!(late.try_recv().ok(), Some(expected));
    }
}
