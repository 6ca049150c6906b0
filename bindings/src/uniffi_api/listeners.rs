//! Foreign callbacks: room listeners (with subscription handles) and media sinks.

use std::sync::{Arc, Mutex, Weak};

use aula_core::media::{AudioFrame, FrameStamp, VideoFrame};
use aula_core::RoomEvent;
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

/// The listeners of one room.
#[derive(Default)]
pub(crate) struct Listeners {
    entries: Mutex<Vec<(u64, Arc<dyn RoomListener>)>>,
    next_id: Mutex<u64>,
}

impl Listeners {
    fn add(&self, listener: Arc<dyn RoomListener>) -> u64 {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, listener));
        id
    }

    fn remove(&self, id: u64) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != id);
    }

    fn deliver(&self, update: &RoomUpdate) {
        // Copy out so a listener may add or close subscriptions from inside its callback.
        let listeners: Vec<Arc<dyn RoomListener>> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, l)| Arc::clone(l))
            .collect();
        for listener in listeners {
            listener.on_update(update.clone());
        }
    }

    /// Registers `listener`; the returned handle removes it.
    pub(crate) fn subscribe(self: &Arc<Self>, listener: Arc<dyn RoomListener>) -> Subscription {
        let id = self.add(listener);
        Subscription {
            listeners: Arc::downgrade(self),
            id,
        }
    }

    /// Runs the room's event thread: core events to listeners until the stream ends.
    pub(crate) fn spawn_dispatcher(
        self: &Arc<Self>,
        mut events: UnboundedReceiver<RoomEvent>,
    ) -> std::io::Result<()> {
        let listeners = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("aula-events".into())
            .spawn(move || {
                while let Some(event) = events.blocking_recv() {
                    let Some(listeners) = listeners.upgrade() else {
                        return;
                    };
                    if let Some(update) = RoomUpdate::from_event(event) {
                        listeners.deliver(&update);
                    }
                }
            })
            .map(drop)
    }
}

/// A listener registration; cancelling or dropping (closing, in Kotlin) it stops the listener's callbacks.
#[derive(uniffi::Object)]
pub struct Subscription {
    listeners: Weak<Listeners>,
    id: u64,
}

#[uniffi::export]
impl Subscription {
    /// Stops the callbacks. Idempotent.
    pub fn cancel(&self) {
        if let Some(listeners) = self.listeners.upgrade() {
            listeners.remove(self.id);
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
