//! Foreign callbacks: listeners (with subscription handles) and media sinks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use aula_core::media::{AudioFrame, FrameStamp, VideoFrame};
use aula_protocol::{ParticipantId, TrackSid};
use tokio::sync::mpsc::UnboundedReceiver;

use super::records::{DecodedAudioFrame, DecodedVideoFrame, RoomUpdate};

/// Receives a room's events, on the room's event thread (one thread per room, in order).
/// Blocking room calls are allowed from here; long work delays later events.
#[uniffi::export(with_foreign)]
pub trait RoomListener: Send + Sync {
    /// Something happened in the room.
    fn on_update(&self, update: RoomUpdate);
}

/// Receives decoded video, on a decoder thread: return quickly.
#[uniffi::export(with_foreign)]
pub trait VideoFrameSink: Send + Sync {
    /// A decoded frame of `track_sid` from `participant_id` (a copy the callee owns).
    fn on_video_frame(&self, participant_id: String, track_sid: String, frame: DecodedVideoFrame);
}

/// Receives decoded audio (48 kHz), on a decoder thread: return quickly.
#[uniffi::export(with_foreign)]
pub trait AudioFrameSink: Send + Sync {
    /// 20 ms of decoded audio of `track_sid` from `participant_id`.
    fn on_audio_frame(&self, participant_id: String, track_sid: String, frame: DecodedAudioFrame);
}

/// Listeners of one kind (a room's, or a whiteboard's), each under a registration id.
pub(crate) struct Listeners<L: ?Sized> {
    entries: Mutex<Vec<(u64, Arc<L>)>>,
    next_id: AtomicU64,
}

impl<L: ?Sized> Default for Listeners<L> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }
}

/// What a [`Subscription`] removes its listener from.
trait Unsubscribe: Send + Sync {
    /// Removes the listener registered as `id`, if still there.
    fn remove(&self, id: u64);
}

impl<L: ?Sized + Send + Sync> Unsubscribe for Listeners<L> {
    fn remove(&self, id: u64) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != id);
    }
}

impl<L: ?Sized + Send + Sync + 'static> Listeners<L> {
    /// Registers `listener`; the returned handle removes it.
    pub(crate) fn subscribe(self: &Arc<Self>, listener: Arc<L>) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, listener));
        let target: Arc<dyn Unsubscribe> = Arc::clone(self) as Arc<dyn Unsubscribe>;
        Subscription {
            target: Arc::downgrade(&target),
            id,
        }
    }

    /// Calls `call` on every listener. A listener that panics (a foreign callback that threw)
    /// is reported in the log; the others, and later events, still get through.
    fn deliver(&self, call: impl Fn(&L)) {
        // Copy out so a listener may add or close subscriptions from inside its callback.
        let listeners: Vec<Arc<L>> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, l)| Arc::clone(l))
            .collect();
        for listener in listeners {
            if catch_unwind(AssertUnwindSafe(|| call(&listener))).is_err() {
                tracing::warn!("a listener callback failed; the event was dropped for it");
            }
        }
    }

    /// Runs a thread named `name` that turns each of `events` into an update with `convert`
    /// (skipping `None`) and hands it to every listener with `call`, in order, until the
    /// stream ends or these listeners are gone.
    pub(crate) fn spawn_dispatcher<E, U>(
        self: &Arc<Self>,
        name: &str,
        mut events: UnboundedReceiver<E>,
        convert: fn(E) -> Option<U>,
        call: fn(&L, U),
    ) -> std::io::Result<()>
    where
        E: Send + 'static,
        U: Clone + 'static,
    {
        let listeners = Arc::downgrade(self);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Some(event) = events.blocking_recv() {
                    let Some(listeners) = listeners.upgrade() else {
                        return;
                    };
                    if let Some(update) = convert(event) {
                        listeners.deliver(|l| call(l, update.clone()));
                    }
                }
            })
            .map(drop)
    }
}

/// A listener registration; cancelling or dropping (closing, in Kotlin) it stops the
/// listener's callbacks.
#[derive(uniffi::Object)]
pub struct Subscription {
    target: Weak<dyn Unsubscribe>,
    id: u64,
}

#[uniffi::export]
impl Subscription {
    /// Stops the callbacks. Idempotent.
    pub fn cancel(&self) {
        if let Some(target) = self.target.upgrade() {
            target.remove(self.id);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Adapts a foreign video sink to the core's.
pub(crate) struct VideoSinkAdapter(pub Arc<dyn VideoFrameSink>);

impl aula_core::VideoSink for VideoSinkAdapter {
    fn on_video_frame(
        &self,
        participant: &ParticipantId,
        track: &TrackSid,
        frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        self.0.on_video_frame(
            participant.as_str().to_owned(),
            track.as_str().to_owned(),
            DecodedVideoFrame::from_frame(frame, stamp),
        );
    }
}

/// Adapts a foreign audio sink to the core's.
pub(crate) struct AudioSinkAdapter(pub Arc<dyn AudioFrameSink>);

impl aula_core::AudioSink for AudioSinkAdapter {
    fn on_audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame) {
        self.0.on_audio_frame(
            participant.as_str().to_owned(),
            track.as_str().to_owned(),
            DecodedAudioFrame::from(frame),
        );
    }
}
