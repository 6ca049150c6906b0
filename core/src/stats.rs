//! Statistics of a call: what was sent, what was received, how late and how smooth.

use std::time::Duration;

use aula_protocol::{MediaKind, ParticipantId, TrackSid, TrackSource};
use serde::Serialize;

/// How a connection recovered lost packets: the holes it saw in what it received, and what
/// became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RecoveryStats {
    /// Packets found missing.
    pub holes: u64,
    /// Of those, packets that arrived later (retransmitted, rebuilt from FEC or late).
    pub repaired: u64,
    /// Of those, packets given up on.
    pub abandoned: u64,
    /// Packets rebuilt from FEC repair packets.
    pub fec_recovered: u64,
    /// Retransmissions asked for.
    pub requested: u64,
    /// The round trip the retransmission requests are timed by, ms.
    pub rtt_ms: f64,
}

impl RecoveryStats {
    /// A snapshot of `stats`.
    pub fn of(stats: &aula_transport::nack::NackStats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            holes: stats.holes.load(Relaxed),
            repaired: stats.repaired.load(Relaxed),
            abandoned: stats.abandoned.load(Relaxed),
            fec_recovered: stats.fec_recovered.load(Relaxed),
            requested: stats.requested.load(Relaxed),
            rtt_ms: stats.rtt().as_secs_f64() * 1000.0,
        }
    }
}

/// Percentiles of a set of samples, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (nearest-rank); zeros when empty.
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// Counts freezes from the gaps between decoded frames.
///
/// A freeze is a gap longer than max(3 × frame interval, mean interval + 150 ms), where the mean
/// is over the gaps seen so far.
#[derive(Clone, Debug, Default)]
pub struct FreezeDetector {
    frame_interval: Duration,
    gaps: u64,
    gap_sum: Duration,
    freezes: u64,
    frozen_for: Duration,
    longest: Duration,
}

impl FreezeDetector {
    /// A detector for a stream meant to run at `fps`.
    pub fn new(fps: u32) -> Self {
        Self {
            frame_interval: Duration::from_secs(1) / fps.max(1),
            ..Self::default()
        }
    }

    /// Records the gap since the previous decoded frame; returns whether it was a freeze.
    pub fn on_gap(&mut self, gap: Duration) -> bool {
        let mean = if self.gaps == 0 {
            self.frame_interval
        } else {
            self.gap_sum / self.gaps as u32
        };
        let threshold = (self.frame_interval * 3).max(mean + Duration::from_millis(150));
        self.gaps += 1;
        self.gap_sum += gap;
        if gap > threshold {
            self.freezes += 1;
            self.frozen_for += gap;
            self.longest = self.longest.max(gap);
            true
        } else {
            false
        }
    }

    /// Freezes so far.
    pub fn freezes(&self) -> u64 {
        self.freezes
    }

    /// Total duration of the freezes.
    pub fn frozen_for(&self) -> Duration {
        self.frozen_for
    }

    /// The longest freeze.
    pub fn longest(&self) -> Duration {
        self.longest
    }
}

/// What one published track sent.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedStats {
    /// The track's server id.
    pub track_sid: TrackSid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Frames handed to the network.
    pub frames_sent: u64,
    /// Encoded bytes handed to the network.
    pub bytes_sent: u64,
    /// Keyframes produced (forced by requests or at start).
    pub keyframes: u64,
    /// Average encoded bitrate since the track started, kbit/s.
    pub bitrate_kbps: f64,
    /// The encoder's current target, kbit/s (it follows the bandwidth estimate; 0 for audio and
    /// app-encoded video). With simulcast, the sum over the layers.
    pub target_bitrate_kbps: f64,
    /// Simulcast layers, lowest first (empty for a track sent as one stream).
    pub layers: Vec<PublishedLayerStats>,
}

/// What one simulcast layer of a published track is doing.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedLayerStats {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Whether the layer is being sent (it stops when the uplink cannot carry it or nobody
    /// watches it).
    pub active: bool,
    /// The layer encoder's target, kbit/s.
    pub target_bitrate_kbps: f64,
    /// What the layer sent over the last second, kbit/s.
    pub bitrate_kbps: f64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Keyframes sent.
    pub keyframes: u64,
}

/// What one subscribed track delivered.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedStats {
    /// The publisher's participant id.
    pub participant_id: ParticipantId,
    /// The publisher's identity.
    pub from: String,
    /// The track's server id.
    pub track_sid: TrackSid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Camera, microphone or screen share, as the publisher announced it.
    pub source: TrackSource,
    /// Video frames decoded.
    pub frames_decoded: u64,
    /// Decoded video frames whose stamp was read back intact.
    pub frames_stamped_ok: u64,
    /// Stamp-to-decode latency of the video frames.
    pub latency_ms: Percentiles,
    /// Freezes in the decoded video.
    pub freezes: u64,
    /// Total freeze time, ms.
    pub freeze_ms: f64,
    /// The longest freeze, ms.
    pub longest_freeze_ms: f64,
    /// Keyframe requests sent for this track.
    pub keyframe_requests: u64,
    /// Audio samples decoded (per channel).
    pub samples_decoded: u64,
    /// Mean absolute amplitude of decoded audio (0 means silence).
    pub audio_level: f64,
    /// Lost audio frames rebuilt from the next packet's in-band FEC data.
    pub audio_frames_recovered: u64,
    /// Lost audio frames that could only be concealed.
    pub audio_frames_concealed: u64,
    /// Time from subscribing to the first decoded frame, ms.
    pub first_frame_ms: Option<f64>,
    /// Times the receiver gave up waiting for lost packets and skipped ahead (each costs a
    /// keyframe request).
    pub gaps_skipped: u64,
    /// Frames completed too late to be shown.
    pub stale_frames: u64,
    /// Frames dropped because the decoder was behind (a busy machine).
    pub decoder_overflows: u64,
    /// How long a frame behind a lost packet currently waits for its repair, ms (adapts to the
    /// path).
    pub loss_wait_ms: f64,
    /// The simulcast layer the server forwards (an index into the track's layers), for a
    /// simulcast track.
    pub layer: Option<u8>,
    /// Width of the last decoded frame.
    pub width: u32,
    /// Height of the last decoded frame.
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&samples);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p95, 95.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }

    #[test]
    fn a_long_gap_is_a_freeze_and_steady_frames_are_not() {
        let mut d = FreezeDetector::new(30);
        for _ in 0..30 {
            assert!(!d.on_gap(Duration::from_millis(33)));
        }
        assert!(!d.on_gap(Duration::from_millis(150)), "under mean + 150 ms");
        assert!(d.on_gap(Duration::from_millis(400)));
        assert_eq!(d.freezes(), 1);
        assert_eq!(d.frozen_for(), Duration::from_millis(400));
    }
}
