//! Publications the app feeds: raw I420/NV12 frames and pre-encoded H.264.

use std::sync::Arc;

use aula_core::{AppVideoFeed, EncodedVideoFeed};

use super::bytes::Bytes;
use super::error::AulaError;
use super::records::{EncodedPushResult, FeedStats, Track};

/// Maps a feed error: a stopped publication reads as a disconnected room.
fn feed_error(err: aula_core::RoomError) -> AulaError {
    match err {
        aula_core::RoomError::InvalidState(reason) => AulaError::Disconnected { reason },
        other => other.into(),
    }
}

/// A video publication fed with raw frames by the app. The encoder takes the newest frame at
/// the publication's frame rate (older unsent frames are replaced), and repeats the last one
/// when none arrived. Pixels pass unchanged, so stamped frames keep their stamps.
#[derive(uniffi::Object)]
pub struct AppVideoPublisher {
    pub(crate) track: Track,
    pub(crate) feed: AppVideoFeed,
}

#[uniffi::export]
impl AppVideoPublisher {
    /// The published track.
    pub fn track(&self) -> Track {
        self.track.clone()
    }

    /// Pushes one I420 frame: `width*height*3/2` bytes, Y then U then V, tightly packed.
    pub fn push_i420(&self, data: Bytes, timestamp_us: u64) -> Result<(), AulaError> {
        self.feed.push_i420(&data, timestamp_us).map_err(feed_error)
    }

    /// Pushes one NV12 frame: a `width*height` Y plane and a `width*height/2` interleaved UV
    /// plane, tightly packed; converted to I420.
    pub fn push_nv12(&self, y: Bytes, uv: Bytes, timestamp_us: u64) -> Result<(), AulaError> {
        self.feed
            .push_nv12(&y, &uv, timestamp_us)
            .map_err(feed_error)
    }

    /// Frames pushed and replaced so far.
    pub fn stats(&self) -> FeedStats {
        self.feed.stats().into()
    }
}

/// Tells the app that receivers need a keyframe.
#[uniffi::export(with_foreign)]
pub trait KeyframeRequestListener: Send + Sync {
    /// Encode the next frame as a keyframe (IDR with SPS/PPS). Called on an SDK thread.
    fn on_keyframe_requested(&self);
}

/// A video publication fed with pre-encoded H.264 (constrained baseline, Annex-B access units)
/// by an app with its own (hardware) encoder. Delta frames are dropped until a keyframe
/// arrives after a request, so answer requests promptly.
#[derive(uniffi::Object)]
pub struct EncodedVideoPublisher {
    pub(crate) track: Track,
    pub(crate) feed: EncodedVideoFeed,
}

#[uniffi::export]
impl EncodedVideoPublisher {
    /// The published track.
    pub fn track(&self) -> Track {
        self.track.clone()
    }

    /// Pushes one access unit; `keyframe` must match its content (IDR/SPS present).
    pub fn push(
        &self,
        access_unit: Bytes,
        keyframe: bool,
        timestamp_us: u64,
    ) -> Result<EncodedPushResult, AulaError> {
        self.feed
            .push(&access_unit, keyframe, timestamp_us)
            .map(EncodedPushResult::from)
            .map_err(feed_error)
    }

    /// Whether a keyframe was requested since the last keyframe or call (clears it).
    pub fn take_keyframe_request(&self) -> bool {
        self.feed.take_keyframe_request()
    }

    /// Sets (or with `None` removes) the listener told about keyframe requests.
    pub fn set_keyframe_request_listener(
        &self,
        listener: Option<Arc<dyn KeyframeRequestListener>>,
    ) {
        self.feed.set_keyframe_request_handler(listener.map(|l| {
            Box::new(move || {
                // A foreign listener that throws must not take the publisher's thread with it.
                let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    l.on_keyframe_requested()
                }));
                if asked.is_err() {
                    tracing::warn!("the keyframe request listener failed");
                }
            }) as aula_core::room::KeyframeRequestHandler
        }));
    }

    /// Access units pushed and dropped so far.
    pub fn stats(&self) -> FeedStats {
        self.feed.stats().into()
    }
}
