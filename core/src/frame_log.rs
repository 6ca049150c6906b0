//! A record of what a subscriber decoded, frame by frame, so a tool, test or benchmark can
//! judge any window of it: frame rate, freezes, stamp-to-decode latency, picture size.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aula_protocol::{ParticipantId, TrackSid};
use serde::Serialize;

use crate::clock::{micros_since_stamp, unix_micros};
use crate::media::{FrameStamp, VideoFrame};
use crate::stats::{FreezeDetector, Percentiles};
use crate::VideoSink;

/// One decoded frame.
#[derive(Clone, Copy, Debug)]
pub struct DecodedFrame {
    /// When it was decoded.
    pub at: Instant,
    /// Stamp-to-decode latency, when the stamp was read back.
    pub latency_ms: Option<f64>,
    /// Its height in pixels.
    pub height: u32,
}

/// A video sink that records every decoded frame (of every track it is given).
#[derive(Debug, Default)]
pub struct FrameLog(Mutex<Vec<DecodedFrame>>);

impl VideoSink for FrameLog {
    fn on_video_frame(
        &self,
        _participant: &ParticipantId,
        _track: &TrackSid,
        frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        let latency_ms = stamp
            .and_then(|s| micros_since_stamp(s.capture_time_us, unix_micros()))
            .map(|us| us as f64 / 1000.0);
        if let Ok(mut log) = self.0.lock() {
            log.push(DecodedFrame {
                at: Instant::now(),
                latency_ms,
                height: frame.height,
            });
        }
    }
}

/// What a window of decoded frames looked like.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WindowSummary {
    /// Frames decoded.
    pub frames: usize,
    /// Frames decoded per second.
    pub decoded_fps: f64,
    /// Freezes (see [`FreezeDetector`]), counting a silent start or end of the window as one.
    pub freezes: u64,
    /// Total freeze time, ms.
    pub freeze_ms: f64,
    /// The longest freeze, ms.
    pub longest_freeze_ms: f64,
    /// Stamp-to-decode latency.
    pub latency_ms: Percentiles,
    /// Median height of the decoded frames.
    pub height: u32,
}

impl FrameLog {
    /// The frames decoded in `from..to`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<DecodedFrame> {
        self.0
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|f| f.at >= from && f.at < to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The frames decoded so far.
    pub fn len(&self) -> usize {
        self.0.lock().map(|log| log.len()).unwrap_or(0)
    }

    /// Whether no frame was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Summarises the window `from..to` of a stream meant to run at `fps`.
    pub fn summary(&self, from: Instant, to: Instant, fps: u32) -> WindowSummary {
        let frames = self.between(from, to);
        let mut freezes = FreezeDetector::new(fps);
        let mut previous = from;
        for frame in &frames {
            freezes.on_gap(frame.at.duration_since(previous));
            previous = frame.at;
        }
        freezes.on_gap(to.duration_since(previous));
        let latencies: Vec<f64> = frames.iter().filter_map(|f| f.latency_ms).collect();
        let mut heights: Vec<u32> = frames.iter().map(|f| f.height).collect();
        heights.sort_unstable();
        let seconds = to.duration_since(from).as_secs_f64().max(1e-3);
        WindowSummary {
            frames: frames.len(),
            decoded_fps: frames.len() as f64 / seconds,
            freezes: freezes.freezes(),
            freeze_ms: millis(freezes.frozen_for()),
            longest_freeze_ms: millis(freezes.longest()),
            latency_ms: Percentiles::of(&latencies),
            height: heights.get(heights.len() / 2).copied().unwrap_or(0),
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: Instant, latency_ms: f64) -> DecodedFrame {
        DecodedFrame {
            at,
            latency_ms: Some(latency_ms),
            height: 360,
        }
    }

    #[test]
    fn a_gap_in_the_window_is_a_freeze() {
        let start = Instant::now();
        let log = FrameLog::default();
        {
            let mut frames = log.0.lock().unwrap();
            for i in 0..30u64 {
                frames.push(frame(start + Duration::from_millis(33 * i), 50.0));
            }
            // 600 ms without a frame, then the stream goes on.
            for i in 0..30u64 {
                frames.push(frame(start + Duration::from_millis(1557 + 33 * i), 70.0));
            }
        }
        let end = start + Duration::from_millis(2_550);
        let s = log.summary(start, end, 30);
        assert_eq!(s.frames, 60);
        assert_eq!(s.freezes, 1);
        assert!((s.longest_freeze_ms - 600.0).abs() < 1.0, "{s:?}");
        assert_eq!(s.height, 360);
        assert_eq!(s.latency_ms.p50, 50.0);
        let silent = log.summary(end, end + Duration::from_secs(1), 30);
        assert_eq!((silent.frames, silent.freezes), (0, 1));
    }
}
