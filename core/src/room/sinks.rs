//! Where decoded media goes: the app's sinks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aula_protocol::{ParticipantId, TrackSid};

use crate::media::{AudioFrame, FrameStamp, VideoFrame};

/// Receives decoded video. Called on a decoder thread: return quickly. A sink that panics (in
/// the bindings: a foreign sink that throws) loses that frame only; the decoder goes on.
pub trait VideoSink: Send + Sync + 'static {
    /// A decoded I420 frame of `track` from `participant`, with its stamp when it carries one.
    fn on_video_frame(
        &self,
        participant: &ParticipantId,
        track: &TrackSid,
        frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    );
}

/// Receives decoded audio (48 kHz PCM). Called on a decoder thread: return quickly. As with
/// [`VideoSink`], a panic loses that frame only.
pub trait AudioSink: Send + Sync + 'static {
    /// 20 ms of decoded audio of `track` from `participant`.
    fn on_audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame);
}

/// The sinks a room delivers to; replaceable at any time.
#[derive(Default)]
pub(crate) struct Sinks {
    video: RwLock<Option<Arc<dyn VideoSink>>>,
    audio: RwLock<Option<Arc<dyn AudioSink>>>,
    /// Deliveries that panicked, video and audio.
    failures: AtomicU64,
}

impl Sinks {
    pub fn set_video(&self, sink: Option<Arc<dyn VideoSink>>) {
        *self.video.write().unwrap_or_else(|p| p.into_inner()) = sink;
    }

    pub fn set_audio(&self, sink: Option<Arc<dyn AudioSink>>) {
        *self.audio.write().unwrap_or_else(|p| p.into_inner()) = sink;
    }

    pub fn video_frame(
        &self,
        participant: &ParticipantId,
        track: &TrackSid,
        frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        let sink = self.video.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            self.guarded("video", || {
                sink.on_video_frame(participant, track, frame, stamp)
            });
        }
    }

    pub fn audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame) {
        let sink = self.audio.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            self.guarded("audio", || sink.on_audio_frame(participant, track, frame));
        }
    }

    /// Deliveries that panicked so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Runs one delivery; a panic in the app's sink is counted and logged (the first and then
    /// every thousandth), never passed on to the decoder thread.
    fn guarded(&self, kind: &str, deliver: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(deliver)).is_err() {
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures % 1000 == 1 {
                tracing::warn!(
                    kind,
                    failures,
                    "the app's sink failed; that frame was dropped"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on every frame, counting them.
    #[derive(Default)]
    struct Throwing(AtomicU64);

    impl VideoSink for Throwing {
        fn on_video_frame(
            &self,
            _participant: &ParticipantId,
            _track: &TrackSid,
            _frame: &VideoFrame,
            _stamp: Option<FrameStamp>,
        ) {
            self.0.fetch_add(1, Ordering::Relaxed);
            panic!("the app's sink threw");
        }
    }

    #[test]
    fn a_sink_that_panics_loses_its_frame_and_gets_the_next() {
        let sinks = Sinks::default();
        let sink = Arc::new(Throwing::default());
        sinks.set_video(Some(Arc::clone(&sink) as Arc<dyn VideoSink>));
        let frame = VideoFrame::new_black(16, 16);
        for _ in 0..3 {
            sinks.video_frame(
                &ParticipantId::from("p"),
                &TrackSid::from("t"),
                &frame,
                None,
            );
        }
        assert_eq!(sink.0.load(Ordering::Relaxed), 3);
        assert_eq!(sinks.failures(), 3);
    }
}
