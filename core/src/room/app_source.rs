//! App-supplied video: raw frames pushed by the app (camera APIs the app already uses), and
//! pre-encoded H.264 access units from apps with a hardware encoder.
//!
//! Raw frames go through an [`AppVideoFeed`] into an [`AppVideoSource`], which
//! [`Room::publish_video`](super::Room::publish_video) pulls at its frame rate on the usual
//! encoder thread: the encoder always takes the newest frame pushed since its last pull (older
//! ones are counted as replaced) and repeats the previous frame when nothing new arrived. The
//! pixels are passed on untouched, so a frame stamped with
//! [`write_stamp`](crate::media::write_stamp) keeps its stamp across the call.
//!
//! Pre-encoded video goes through an [`EncodedVideoFeed`] returned by
//! [`Room::publish_encoded_video`](super::Room::publish_encoded_video) straight to the packetizer,
//! bypassing the encoder. Keyframe requests from receivers reach the app through
//! [`EncodedVideoFeed::set_keyframe_request_handler`] (or by polling
//! [`EncodedVideoFeed::take_keyframe_request`]); until a keyframe arrives, delta frames are
//! dropped, since receivers could not decode them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aula_protocol::TrackInfo;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::publish::{BoundStream, LocalPublication, SendCounters, StreamInput};
use super::{RoomError, VideoSource};
use crate::media::{FrameStamp, H264Decoder, MediaError, VideoFrame, MAX_DIMENSION};

/// Encoded frames queued between the app and the network before frames are dropped.
const ENCODED_QUEUE: usize = 8;
/// Largest accepted access unit (a 4K keyframe at a generous bitrate).
const MAX_ACCESS_UNIT: usize = 4 << 20;
/// How often keyframe requests are looked for and forwarded to the app.
const KEYFRAME_POLL: Duration = Duration::from_millis(10);

/// Checks a frame size: non-zero, even, at most [`MAX_DIMENSION`].
fn check_size(width: u32, height: u32) -> Result<(), MediaError> {
    if width == 0 || height == 0 || width & 1 != 0 || height & 1 != 0 {
        return Err(MediaError::InvalidFrame(format!(
            "frame size {width}x{height} must be non-zero and even"
        )));
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(MediaError::InvalidFrame(format!(
            "frame {width}x{height} larger than {MAX_DIMENSION}x{MAX_DIMENSION}"
        )));
    }
    Ok(())
}

/// Builds an I420 frame from one tightly packed buffer (Y plane, then U, then V).
pub fn i420_from_buffer(
    width: u32,
    height: u32,
    data: &[u8],
    timestamp_us: u64,
) -> Result<VideoFrame, MediaError> {
    check_size(width, height)?;
    let luma = width as usize * height as usize;
    let chroma = luma / 4;
    if data.len() != luma + 2 * chroma {
        return Err(MediaError::InvalidFrame(format!(
            "I420 {width}x{height} needs {} bytes, got {}",
            luma + 2 * chroma,
            data.len()
        )));
    }
    let frame = VideoFrame {
        width,
        height,
        y: data[..luma].to_vec(),
        u: data[luma..luma + chroma].to_vec(),
        v: data[luma + chroma..].to_vec(),
        timestamp_us,
    };
    frame.validate()?;
    Ok(frame)
}

/// Converts a tightly packed NV12 picture (Y plane, then interleaved U/V) into I420.
pub fn nv12_to_i420(
    width: u32,
    height: u32,
    y: &[u8],
    uv: &[u8],
    timestamp_us: u64,
) -> Result<VideoFrame, MediaError> {
    check_size(width, height)?;
    let luma = width as usize * height as usize;
    let chroma = luma / 4;
    if y.len() != luma || uv.len() != 2 * chroma {
        return Err(MediaError::InvalidFrame(format!(
            "NV12 {width}x{height} needs {luma} Y and {} UV bytes, got {} and {}",
            2 * chroma,
            y.len(),
            uv.len()
        )));
    }
    let mut u = Vec::with_capacity(chroma);
    let mut v = Vec::with_capacity(chroma);
    for pair in uv.chunks_exact(2) {
        u.push(pair[0]);
        v.push(pair[1]);
    }
    let frame = VideoFrame {
        width,
        height,
        y: y.to_vec(),
        u,
        v,
        timestamp_us,
    };
    frame.validate()?;
    Ok(frame)
}

/// Counters of an app feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppFeedStats {
    /// Frames the app pushed and that were accepted.
    pub pushed: u64,
    /// Frames replaced by a newer one before the encoder took them (raw feeds), or dropped
    /// because the network side was behind or a keyframe was awaited (encoded feeds).
    pub dropped: u64,
}

/// State shared by a raw feed and its source.
struct RawShared {
    width: u32,
    height: u32,
    latest: Mutex<Option<VideoFrame>>,
    closed: AtomicBool,
    pushed: AtomicU64,
    dropped: AtomicU64,
}

/// The app's end of a raw video feed: push I420 or NV12 frames. Cheap to clone.
#[derive(Clone)]
pub struct AppVideoFeed {
    shared: Arc<RawShared>,
}

/// The encoder's end of a raw video feed; publish it with
/// [`Room::publish_video`](super::Room::publish_video).
pub struct AppVideoSource {
    shared: Arc<RawShared>,
    fps: u32,
    last: VideoFrame,
}

/// Makes a raw video feed of frames `width`x`height`, encoded at `fps`.
pub fn app_video_source(
    width: u32,
    height: u32,
    fps: u32,
) -> Result<(AppVideoFeed, AppVideoSource), MediaError> {
    check_size(width, height)?;
    if fps == 0 || fps > 120 {
        return Err(MediaError::InvalidConfig(format!(
            "fps {fps} outside 1..=120"
        )));
    }
    let shared = Arc::new(RawShared {
        width,
        height,
        latest: Mutex::new(None),
        closed: AtomicBool::new(false),
        pushed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    Ok((
        AppVideoFeed {
            shared: Arc::clone(&shared),
        },
        AppVideoSource {
            shared,
            fps,
            last: VideoFrame::new_black(width, height),
        },
    ))
}

impl AppVideoFeed {
    /// Frame width this feed accepts.
    pub fn width(&self) -> u32 {
        self.shared.width
    }

    /// Frame height this feed accepts.
    pub fn height(&self) -> u32 {
        self.shared.height
    }

    /// Whether the publication that pulled this feed has stopped (or its source was dropped).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Pushes an I420 frame. It must be valid and of the feed's size.
    pub fn push(&self, frame: VideoFrame) -> Result<(), RoomError> {
        if self.is_closed() {
            return Err(RoomError::InvalidState(
                "the video publication has stopped".into(),
            ));
        }
        frame
            .validate()
            .map_err(|e| RoomError::InvalidArgument(e.to_string()))?;
        if frame.width != self.shared.width || frame.height != self.shared.height {
            return Err(RoomError::InvalidArgument(format!(
                "frame is {}x{}, the feed takes {}x{}",
                frame.width, frame.height, self.shared.width, self.shared.height
            )));
        }
        let replaced = self
            .shared
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(frame);
        self.shared.pushed.fetch_add(1, Ordering::Relaxed);
        if replaced.is_some() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Pushes a tightly packed I420 buffer (Y, then U, then V).
    pub fn push_i420(&self, data: &[u8], timestamp_us: u64) -> Result<(), RoomError> {
        let frame = i420_from_buffer(self.shared.width, self.shared.height, data, timestamp_us)
            .map_err(|e| RoomError::InvalidArgument(e.to_string()))?;
        self.push(frame)
    }

    /// Pushes a tightly packed NV12 picture (Y plane and interleaved UV plane), converted to I420.
    pub fn push_nv12(&self, y: &[u8], uv: &[u8], timestamp_us: u64) -> Result<(), RoomError> {
        let frame = nv12_to_i420(self.shared.width, self.shared.height, y, uv, timestamp_us)
            .map_err(|e| RoomError::InvalidArgument(e.to_string()))?;
        self.push(frame)
    }

    /// Frames pushed and replaced so far.
    pub fn stats(&self) -> AppFeedStats {
        AppFeedStats {
            pushed: self.shared.pushed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

impl VideoSource for AppVideoSource {
    fn width(&self) -> u32 {
        self.shared.width
    }
    fn height(&self) -> u32 {
        self.shared.height
    }
    fn fps(&self) -> u32 {
        self.fps
    }
    /// The newest pushed frame, or the previous one again; `stamp` is not drawn (the app's
    /// pixels, and any stamp in them, pass unchanged).
    fn capture(&mut self, _stamp: FrameStamp) -> VideoFrame {
        let fresh = self
            .shared
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(frame) = fresh {
            self.last = frame;
        }
        self.last.clone()
    }
}

impl Drop for AppVideoSource {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

/// Called (on a runtime worker: return quickly) when a receiver needs a keyframe.
pub type KeyframeRequestHandler = Box<dyn Fn() + Send + Sync + 'static>;

/// State shared by an encoded feed and its keyframe-request watcher.
struct EncodedShared {
    tx: mpsc::Sender<(Bytes, Duration)>,
    stop: Arc<AtomicBool>,
    /// Set by the publication (RTCP PLI/FIR, reconnect) and by drops; consumed by the watcher.
    keyframe_wanted: Arc<AtomicBool>,
    /// A request forwarded to the app and not yet answered by a keyframe or taken by a poll.
    requested: AtomicBool,
    /// Delta frames are dropped until a keyframe arrives.
    awaiting_keyframe: AtomicBool,
    handler: Mutex<Option<KeyframeRequestHandler>>,
    last_timestamp_us: Mutex<Option<u64>>,
    default_duration: Duration,
    counters: Arc<SendCounters>,
    pushed: AtomicU64,
    dropped: AtomicU64,
}

/// The app's end of a pre-encoded H.264 publication: push Annex-B access units. Cheap to clone.
#[derive(Clone)]
pub struct EncodedVideoFeed {
    shared: Arc<EncodedShared>,
}

/// What happened to a pushed access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for sending.
    Queued,
    /// Dropped: a keyframe is awaited (after start, a drop, or a receiver's request).
    DroppedAwaitingKeyframe,
    /// Dropped: the network side is behind; the next frame must be a keyframe.
    DroppedQueueFull,
}

impl EncodedVideoFeed {
    /// Pushes one Annex-B access unit. `keyframe` must say whether it holds an IDR picture
    /// (checked); `timestamp_us` is its capture time and sets the RTP timestamp spacing.
    pub fn push(
        &self,
        access_unit: &[u8],
        keyframe: bool,
        timestamp_us: u64,
    ) -> Result<PushOutcome, RoomError> {
        let shared = &self.shared;
        if shared.stop.load(Ordering::Acquire) || shared.tx.is_closed() {
            return Err(RoomError::InvalidState(
                "the video publication has stopped".into(),
            ));
        }
        if access_unit.len() < 4 || access_unit.len() > MAX_ACCESS_UNIT {
            return Err(RoomError::InvalidArgument(format!(
                "access unit of {} bytes (expected 4 to {MAX_ACCESS_UNIT})",
                access_unit.len()
            )));
        }
        if !(access_unit.starts_with(&[0, 0, 1]) || access_unit.starts_with(&[0, 0, 0, 1])) {
            return Err(RoomError::InvalidArgument(
                "access unit is not Annex-B (no leading start code)".into(),
            ));
        }
        if keyframe != H264Decoder::is_keyframe(access_unit) {
            return Err(RoomError::InvalidArgument(format!(
                "access unit flagged keyframe={keyframe} but {} an IDR/SPS NAL unit",
                if keyframe { "has no" } else { "has" }
            )));
        }
        let duration = {
            let mut last = shared
                .last_timestamp_us
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let duration = match *last {
                Some(prev) if timestamp_us > prev => {
                    Duration::from_micros((timestamp_us - prev).min(1_000_000))
                }
                _ => shared.default_duration,
            };
            *last = Some(timestamp_us);
            duration
        };
        if keyframe {
            shared.awaiting_keyframe.store(false, Ordering::Release);
            shared.requested.store(false, Ordering::Release);
        } else if shared.awaiting_keyframe.load(Ordering::Acquire) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(PushOutcome::DroppedAwaitingKeyframe);
        }
        if shared
            .tx
            .try_send((Bytes::copy_from_slice(access_unit), duration))
            .is_err()
        {
            if shared.tx.is_closed() {
                return Err(RoomError::InvalidState(
                    "the video publication has stopped".into(),
                ));
            }
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            shared.awaiting_keyframe.store(true, Ordering::Release);
            shared.keyframe_wanted.store(true, Ordering::Release);
            return Ok(PushOutcome::DroppedQueueFull);
        }
        if keyframe {
            shared.counters.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        shared.pushed.fetch_add(1, Ordering::Relaxed);
        Ok(PushOutcome::Queued)
    }

    /// Whether a keyframe has been requested since the last keyframe or the last call; clears
    /// the request. (An alternative to [`EncodedVideoFeed::set_keyframe_request_handler`].)
    pub fn take_keyframe_request(&self) -> bool {
        self.shared.requested.swap(false, Ordering::AcqRel)
    }

    /// Sets (or with `None` removes) the function called whenever a receiver needs a keyframe.
    /// A request pending when the handler is set is delivered at once.
    pub fn set_keyframe_request_handler(&self, handler: Option<KeyframeRequestHandler>) {
        let pending = handler.is_some() && self.shared.requested.load(Ordering::Acquire);
        *self
            .shared
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = handler;
        if pending {
            self.shared.keyframe_wanted.store(true, Ordering::Release);
        }
    }

    /// Whether the publication has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire) || self.shared.tx.is_closed()
    }

    /// Access units pushed and dropped so far.
    pub fn stats(&self) -> AppFeedStats {
        AppFeedStats {
            pushed: self.shared.pushed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Starts a publication fed with pre-encoded access units: no encoder thread, a watcher task
/// that forwards keyframe requests to the app, and the usual writer. Needs a tokio runtime.
pub(crate) fn start_encoded(
    info: TrackInfo,
    bound: BoundStream,
    fps_hint: u32,
) -> (LocalPublication, EncodedVideoFeed) {
    let (tx, rx) = mpsc::channel::<(Bytes, Duration)>(ENCODED_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let counters = Arc::new(SendCounters::default());
    let shared = Arc::new(EncodedShared {
        tx,
        stop: Arc::clone(&stop),
        keyframe_wanted: Arc::clone(&keyframe_wanted),
        requested: AtomicBool::new(false),
        awaiting_keyframe: AtomicBool::new(true),
        handler: Mutex::new(None),
        last_timestamp_us: Mutex::new(None),
        default_duration: Duration::from_secs(1) / fps_hint.clamp(1, 120),
        counters: Arc::clone(&counters),
        pushed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    tokio::spawn(forward_keyframe_requests(Arc::downgrade(&shared)));
    let publication = LocalPublication::start(
        info,
        vec![bound],
        vec![StreamInput::new(rx, counters, Some(keyframe_wanted))],
        stop,
        None,
    );
    (publication, EncodedVideoFeed { shared })
}

/// Turns the publication's keyframe flag into a request the app sees, until the feed is gone
/// or the publication stops.
async fn forward_keyframe_requests(shared: std::sync::Weak<EncodedShared>) {
    loop {
        tokio::time::sleep(KEYFRAME_POLL).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if shared.keyframe_wanted.swap(false, Ordering::AcqRel) {
            shared.requested.store(true, Ordering::Release);
            shared.awaiting_keyframe.store(true, Ordering::Release);
            let handler = shared.handler.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(handler) = handler.as_ref() {
                handler();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nv12_converts_to_planar() {
        let y = vec![50u8; 4 * 2];
        let uv = vec![1, 2, 3, 4];
        let frame = nv12_to_i420(4, 2, &y, &uv, 7).expect("valid NV12");
        assert_eq!(frame.u, vec![1, 3]);
        assert_eq!(frame.v, vec![2, 4]);
        assert_eq!(frame.timestamp_us, 7);
        assert!(nv12_to_i420(4, 2, &y, &uv[..3], 0).is_err());
        assert!(nv12_to_i420(3, 2, &y, &uv, 0).is_err());
    }

    #[test]
    fn i420_buffer_sizes_are_checked() {
        let ok = i420_from_buffer(4, 2, &[0; 12], 0).expect("valid I420");
        assert_eq!((ok.y.len(), ok.u.len(), ok.v.len()), (8, 2, 2));
        assert!(i420_from_buffer(4, 2, &[0; 11], 0).is_err());
        assert!(i420_from_buffer(0, 2, &[], 0).is_err());
        assert!(i420_from_buffer(8192, 2, &[0; 8192 * 3], 0).is_err());
    }

    #[test]
    fn raw_feed_keeps_newest_frame_and_its_pixels() {
        let (feed, mut source) = app_video_source(320, 180, 30).expect("valid");
        let stamp = FrameStamp {
            sequence: 42,
            capture_time_us: 123_456_789,
        };
        let mut frame = VideoFrame::new_black(320, 180);
        crate::media::write_stamp(&mut frame, stamp);
        feed.push(VideoFrame::new_black(320, 180)).expect("push");
        feed.push(frame).expect("push");
        assert_eq!(
            feed.stats(),
            AppFeedStats {
                pushed: 2,
                dropped: 1
            }
        );
        let pulled = source.capture(FrameStamp {
            sequence: 0,
            capture_time_us: 0,
        });
        assert_eq!(crate::media::read_stamp(&pulled), Some(stamp));
        // Nothing new: the same frame again.
        let again = source.capture(FrameStamp {
            sequence: 1,
            capture_time_us: 0,
        });
        assert_eq!(crate::media::read_stamp(&again), Some(stamp));
        assert!(feed.push(VideoFrame::new_black(640, 360)).is_err());
        drop(source);
        assert!(feed.is_closed());
        assert!(matches!(
            feed.push(VideoFrame::new_black(320, 180)),
            Err(RoomError::InvalidState(_))
        ));
    }
}
