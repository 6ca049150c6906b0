//! A track a participant publishes, fanned out to its subscribers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_protocol::{ParticipantId, TrackInfo};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::broadcast;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Packets buffered per subscriber before a slow one starts losing them (and is sent a keyframe).
const FANOUT_DEPTH: usize = 512;
/// Keyframe requests to a publisher are sent at most this often per track.
pub const MIN_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// Decides whether a keyframe request may go to the publisher now.
#[derive(Debug)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
}

impl KeyframeThrottle {
    /// A throttle that lets one request through per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
        }
    }

    /// Whether to send a request at `now`; records it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => false,
            _ => {
                self.last_sent = Some(now);
                true
            }
        }
    }
}

/// A published track: its description, its codec, and the fan-out of its RTP packets.
pub struct PublishedTrack {
    /// The track as others see it.
    pub info: TrackInfo,
    /// Who publishes it.
    pub publisher: ParticipantId,
    /// The codec the publisher negotiated.
    pub codec: RTCRtpCodec,
    remote: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    packets: broadcast::Sender<rtp::Packet>,
    throttle: Mutex<KeyframeThrottle>,
    reader: tokio::task::JoinHandle<()>,
}

impl PublishedTrack {
    /// Starts reading `remote` and fanning its packets out. `None` if the track has no SSRC
    /// or codec yet (it was torn down while being set up).
    pub async fn start(
        info: TrackInfo,
        publisher: ParticipantId,
        remote: Arc<dyn TrackRemote>,
    ) -> Option<Arc<Self>> {
        let media_ssrc = *remote.ssrcs().await.first()?;
        let codec = remote.codec(media_ssrc).await?;
        let (packets, _) = broadcast::channel(FANOUT_DEPTH);
        let reader = tokio::spawn(read_packets(Arc::clone(&remote), packets.clone()));
        Some(Arc::new(Self {
            info,
            publisher,
            codec,
            remote,
            media_ssrc,
            packets,
            throttle: Mutex::new(KeyframeThrottle::new(MIN_KEYFRAME_REQUEST_INTERVAL)),
            reader,
        }))
    }

    /// A new receiver of this track's packets, from the next one on.
    pub fn packets(&self) -> broadcast::Receiver<rtp::Packet> {
        self.packets.subscribe()
    }

    /// Asks the publisher for a keyframe, unless one was asked for very recently.
    pub async fn request_keyframe(&self) {
        let allowed = self
            .throttle
            .lock()
            .map(|mut t| t.allow(Instant::now()))
            .unwrap_or(false);
        if !allowed {
            return;
        }
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.media_ssrc,
        };
        if let Err(err) = self.remote.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(track = %self.info.sid, error = %err, "keyframe request not sent");
        }
    }
}

impl Drop for PublishedTrack {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_packets(remote: Arc<dyn TrackRemote>, packets: broadcast::Sender<rtp::Packet>) {
    while let Some(event) = remote.poll().await {
        match event {
            // No receivers yet is fine: the packet is simply not needed.
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let _ = packets.send(packet);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_request_through_per_interval() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::new(Duration::from_millis(300));
        assert!(throttle.allow(start));
        assert!(!throttle.allow(start + Duration::from_millis(100)));
        assert!(!throttle.allow(start + Duration::from_millis(299)));
        assert!(throttle.allow(start + Duration::from_millis(300)));
        assert!(!throttle.allow(start + Duration::from_millis(450)));
    }
}
