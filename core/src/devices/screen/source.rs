//! The screen-share video source over whichever capture backend the platform has.

use std::time::Duration;

use crate::devices::convert::alloc_frame;
use crate::devices::{DeviceError, DeviceKind, DeviceMonitor};
use crate::media::{FrameStamp, VideoFrame};
use crate::room::VideoSource;

use super::backend::{CaptureFailure, Capturer};
use super::{parse_target, ScreenOptions, Target};

/// Highest frame rate a screen is captured at.
const MAX_FPS: u32 = 60;

/// A screen or window, captured at full resolution each time the encoder pulls a frame.
///
/// Publish it with [`VideoPublishOptions::screen_share`](crate::VideoPublishOptions): the
/// track is marked as a screen share, keeps its resolution and lowers its frame rate first
/// when the network is short, and is encoded with settings for text. The capture (a shared
/// memory copy by the display server, the cursor drawn in, and one conversion to I420) runs
/// on that encoder thread. A screen or window that goes away (display closed, window
/// destroyed) is reported through [`ScreenSource::monitor`] and the source yields black
/// frames; a minimised window yields black frames until it is shown again. The picture size is
/// fixed when sharing starts: a window that grows is cropped to it, one that shrinks is shown
/// on black.
pub struct ScreenSource {
    capturer: Capturer,
    fps: u32,
    monitor: DeviceMonitor,
    kind: DeviceKind,
    /// Time the last capture took (for benchmarks and logs).
    last_capture: Duration,
}

impl std::fmt::Debug for ScreenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenSource")
            .field("id", &self.monitor.id())
            .field("size", &self.capturer.size())
            .field("fps", &self.fps)
            .finish_non_exhaustive()
    }
}

impl ScreenSource {
    /// Opens a screen (`screen:N`), a window (`window:ID`) or, with `None`, the primary
    /// screen (on X11, the primary monitor of `$DISPLAY` or [`ScreenOptions::display`]).
    ///
    /// Fails with [`DeviceError::NotFound`] when there is no display or no such screen or
    /// window, and [`DeviceError::InvalidArgument`] for a malformed id or frame rate.
    pub fn open(id: Option<&str>, options: ScreenOptions) -> Result<Self, DeviceError> {
        if options.fps == 0 || options.fps > MAX_FPS {
            return Err(DeviceError::InvalidArgument(format!(
                "screen capture runs at 1 to {MAX_FPS} fps, not {}",
                options.fps
            )));
        }
        let target = parse_target(id)?;
        let kind = match target {
            Target::Window(_) => DeviceKind::Window,
            _ => DeviceKind::Screen,
        };
        let capturer = Capturer::open(target, options.display.as_deref(), options.cursor)?;
        let monitor = DeviceMonitor::new(kind, id.unwrap_or("default"));
        tracing::info!(target = capturer.label(), size = ?capturer.size(), fps = options.fps, "screen capture open");
        Ok(Self {
            capturer,
            fps: options.fps,
            monitor,
            kind,
            last_capture: Duration::ZERO,
        })
    }

    /// The screen's or window's state and events (a closed window or display is reported
    /// there).
    pub fn monitor(&self) -> DeviceMonitor {
        self.monitor.clone()
    }

    /// Whether this captures a whole screen or one window.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// How long the last capture took: the display server's copy, the cursor and the
    /// conversion to I420.
    pub fn last_capture_time(&self) -> Duration {
        self.last_capture
    }

    /// Captures one frame now (what the encoder thread calls through [`VideoSource`]).
    pub fn capture_frame(&mut self, timestamp_us: u64) -> VideoFrame {
        let (width, height) = self.capturer.size();
        if self.monitor.is_lost() {
            let mut black = VideoFrame::new_black(width, height);
            black.timestamp_us = timestamp_us;
            return black;
        }
        let started = std::time::Instant::now();
        let mut frame = alloc_frame(width, height);
        frame.timestamp_us = timestamp_us;
        let result = self.capturer.capture(&mut frame);
        self.last_capture = started.elapsed();
        match result {
            Ok(()) => frame,
            Err(failure) => {
                if let CaptureFailure::Lost(reason) = failure {
                    self.monitor.lost(reason);
                }
                let mut black = VideoFrame::new_black(width, height);
                black.timestamp_us = timestamp_us;
                black
            }
        }
    }
}

impl VideoSource for ScreenSource {
    fn width(&self) -> u32 {
        self.capturer.size().0
    }

    fn height(&self) -> u32 {
        self.capturer.size().1
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn capture(&mut self, stamp: FrameStamp) -> VideoFrame {
        self.capture_frame(stamp.capture_time_us)
    }
}
