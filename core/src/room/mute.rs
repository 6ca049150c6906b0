//! Muting a local track without renegotiating: a gate between a source and its encoder thread.
//!
//! A muted video track keeps sending black pictures at its frame rate (H.264 codes a static
//! black picture in a few bytes per frame, and keyframe requests are still answered); a muted
//! audio track sends silence, which Opus DTX turns into one- or two-byte packets. The
//! underlying source is not pulled while video is muted (a screen capture costs nothing then);
//! audio keeps draining its source so that unmuting does not replay stale sound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::media::{AudioFrame, FrameStamp, VideoFrame};

use super::publish::{AudioSource, VideoSource};

/// The flag a [`super::Room`] flips and a gate reads on every frame.
pub(crate) type MuteFlag = Arc<AtomicBool>;

/// A video source that yields black frames while its flag is set.
pub(crate) struct MutableVideo<S> {
    inner: S,
    muted: MuteFlag,
}

impl<S: VideoSource> MutableVideo<S> {
    /// Wraps `inner`, muted while `muted` is set.
    pub fn new(inner: S, muted: MuteFlag) -> Self {
        Self { inner, muted }
    }
}

impl<S: VideoSource> VideoSource for MutableVideo<S> {
    fn width(&self) -> u32 {
        self.inner.width()
    }

    fn height(&self) -> u32 {
        self.inner.height()
    }

    fn fps(&self) -> u32 {
        self.inner.fps()
    }

    fn capture(&mut self, stamp: FrameStamp) -> VideoFrame {
        if self.muted.load(Ordering::Acquire) {
            let mut black = VideoFrame::new_black(self.inner.width(), self.inner.height());
            black.timestamp_us = stamp.capture_time_us;
            black
        } else {
            self.inner.capture(stamp)
        }
    }

    fn stamps_frames(&self) -> bool {
        self.inner.stamps_frames()
    }
}

/// An audio source that yields silence while its flag is set (and still drains the source).
pub(crate) struct MutableAudio<S> {
    inner: S,
    muted: MuteFlag,
}

impl<S: AudioSource> MutableAudio<S> {
    /// Wraps `inner`, muted while `muted` is set.
    pub fn new(inner: S, muted: MuteFlag) -> Self {
        Self { inner, muted }
    }
}

impl<S: AudioSource> AudioSource for MutableAudio<S> {
    fn next_frame(&mut self) -> AudioFrame {
        let mut frame = self.inner.next_frame();
        if self.muted.load(Ordering::Acquire) {
            frame.samples.fill(0);
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{read_stamp, SyntheticAudioSource, SyntheticVideoSource};

    #[test]
    fn muted_video_is_black_and_unmuted_video_is_the_source() {
        let flag = MuteFlag::default();
        let source = SyntheticVideoSource::new(320, 180, 15).expect("source");
        let mut gate = MutableVideo::new(source, Arc::clone(&flag));
        let stamp = FrameStamp {
            sequence: 7,
            capture_time_us: 1234,
        };
        assert_eq!(read_stamp(&gate.capture(stamp)), Some(stamp));
        flag.store(true, Ordering::Release);
        let black = gate.capture(stamp);
        black.validate().expect("a valid frame");
        assert!(black.y.iter().all(|&p| p == 16), "black luma");
        assert_eq!(black.timestamp_us, 1234);
        flag.store(false, Ordering::Release);
        assert_eq!(read_stamp(&gate.capture(stamp)), Some(stamp));
    }

    #[test]
    fn muted_audio_is_silent() {
        let flag = MuteFlag::default();
        let mut gate = MutableAudio::new(SyntheticAudioSource::new(440.0), Arc::clone(&flag));
        assert!(gate.next_frame().samples.iter().any(|&s| s != 0));
        flag.store(true, Ordering::Release);
        let frame = gate.next_frame();
        assert_eq!(frame.samples.len(), crate::media::AUDIO_FRAME_SAMPLES);
        assert!(frame.samples.iter().all(|&s| s == 0));
    }
}
