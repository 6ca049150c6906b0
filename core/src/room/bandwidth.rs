//! The publisher connection's bandwidth estimate (see [`aula_transport::bwe`]) and the budget it
//! gives each video encoder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use aula_transport::bwe::{BandwidthEstimate, SendEstimate};
pub use aula_transport::fec::FecStats;

/// Share of the estimate left for audio, RTP/SRTP headers and retransmissions.
const VIDEO_SHARE: f64 = 0.85;

/// The publisher connection's estimate, the FEC that protects it, and how many video tracks
/// share what is left.
#[derive(Debug, Default)]
pub struct SendBandwidth {
    estimate: Arc<BandwidthEstimate>,
    fec: Arc<FecStats>,
    video_tracks: AtomicUsize,
}

impl SendBandwidth {
    /// The estimate the connection's estimator publishes into.
    pub fn estimate(&self) -> &Arc<BandwidthEstimate> {
        &self.estimate
    }

    /// The FEC sender's counters (its overhead comes out of the video budget).
    pub fn fec(&self) -> &Arc<FecStats> {
        &self.fec
    }

    /// What one video track may use now, bit/s: the estimate less audio, overhead and the FEC
    /// that protects the video, shared equally by the video tracks, never above
    /// `configured_bps`.
    pub fn video_budget_bps(&self, configured_bps: u32) -> Option<u32> {
        let target = self.estimate.target_bps()? as f64;
        let tracks = self.video_tracks.load(Ordering::Relaxed).max(1) as f64;
        let fec = 1.0 + self.fec.overhead();
        let share = (target * VIDEO_SHARE / fec / tracks) as u32;
        Some(share.min(configured_bps))
    }

    /// Counts a video track in the split until the returned guard drops.
    pub fn video_track(self: &Arc<Self>) -> VideoTrackShare {
        self.video_tracks.fetch_add(1, Ordering::Relaxed);
        VideoTrackShare(Arc::clone(self))
    }

    /// The estimate, for stats; `None` before the first feedback.
    pub fn snapshot(&self) -> Option<SendEstimate> {
        self.estimate.snapshot()
    }
}

/// A video track's place in the split of the estimate; dropping it frees the share.
#[derive(Debug)]
pub struct VideoTrackShare(Arc<SendBandwidth>);

impl VideoTrackShare {
    /// The shared estimate.
    pub fn bandwidth(&self) -> &SendBandwidth {
        &self.0
    }
}

impl Drop for VideoTrackShare {
    fn drop(&mut self) {
        self.0.video_tracks.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_tracks_share_the_budget_and_respect_their_ceiling() {
        let shared = Arc::new(SendBandwidth::default());
        assert_eq!(shared.video_budget_bps(1_000_000), None);
        shared.estimate().set_target_bps(2_000_000);
        let one = shared.video_track();
        assert_eq!(shared.video_budget_bps(5_000_000), Some(1_700_000));
        assert_eq!(shared.video_budget_bps(500_000), Some(500_000));
        let two = shared.video_track();
        assert_eq!(shared.video_budget_bps(5_000_000), Some(850_000));
        drop(two);
        drop(one);
        assert_eq!(shared.video_tracks.load(Ordering::Relaxed), 0);
    }
}
