//! Where decoded media goes: the app's sinks.

use std::sync::{Arc, RwLock};

use aula_protocol::{ParticipantId, TrackSid};

use crate::media::{AudioFrame, FrameStamp, VideoFrame};

/// Receives decoded video. Called on a decoder thread: return quickly.
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

/// Receives decoded audio (48 kHz PCM). Called on a decoder thread: return quickly.
pub trait AudioSink: Send + Sync + 'static {
    /// 20 ms of decoded audio of `track` from `participant`.
    fn on_audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame);
}

/// The sinks a room delivers to; replaceable at any time.
#[derive(Default)]
pub(crate) struct Sinks {
    video: RwLock<Option<Arc<dyn VideoSink>>>,
    audio: RwLock<Option<Arc<dyn AudioSink>>>,
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
            sink.on_video_frame(participant, track, frame, stamp);
        }
    }

    pub fn audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame) {
        let sink = self.audio.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            sink.on_audio_frame(participant, track, frame);
        }
    }
}
