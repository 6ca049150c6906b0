//! A track a participant publishes, fanned out to its subscribers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_protocol::{ParticipantId, TrackInfo};
use prometheus_client::metrics::counter::Counter;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::broadcast;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Packets buffered per subscriber before a slow one starts losing them (and is sent a keyframe).
const FANOUT_DEPTH: usize = 512;
/// Keyframe requests to a publisher are sent at most this often per track.
pub const MIN_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(100);

/// What to do with a keyframe request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyframeDecision {
    /// Send it to the publisher now.
    SendNow,
    /// Too soon after the last one: send one at this instant (covering every request until then).
    SendAt(Instant),
    /// A deferred request is already scheduled and covers this one.
    Covered,
}

/// Paces keyframe requests to a publisher: at most one per interval, and a request that comes
/// too soon is deferred rather than dropped, so a subscriber that needs a keyframe always gets
/// one, while a burst of requests from many subscribers costs the publisher a single keyframe.
#[derive(Debug)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
    deferred: bool,
}

impl KeyframeThrottle {
    /// A throttle that lets one request through per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            deferred: false,
        }
    }

    /// A request arrived at `now`.
    pub fn request(&mut self, now: Instant) -> KeyframeDecision {
        if self.deferred {
            return KeyframeDecision::Covered;
        }
        match self.last_sent {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => {
                self.deferred = true;
                KeyframeDecision::SendAt(last + self.min_interval)
            }
            _ => {
                self.last_sent = Some(now);
                KeyframeDecision::SendNow
            }
        }
    }

    /// The deferred request was sent at `now`.
    pub fn deferred_sent(&mut self, now: Instant) {
        self.deferred = false;
        self.last_sent = Some(now);
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
    keyframe_requests: Counter,
    reader: tokio::task::JoinHandle<()>,
}

impl PublishedTrack {
    /// Starts reading `remote` and fanning its packets out. `None` if the track has no SSRC
    /// or codec yet (it was torn down while being set up). Keyframe requests sent to the
    /// publisher are counted in `keyframe_requests`.
    pub async fn start(
        info: TrackInfo,
        publisher: ParticipantId,
        remote: Arc<dyn TrackRemote>,
        keyframe_requests: Counter,
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
            keyframe_requests,
            reader,
        }))
    }

    /// A new receiver of this track's packets, from the next one on.
    pub fn packets(&self) -> broadcast::Receiver<rtp::Packet> {
        self.packets.subscribe()
    }

    /// Asks the publisher for a keyframe, now or (if one was just asked for) when the throttle
    /// allows; requests in between are covered by that one.
    pub async fn request_keyframe(self: &Arc<Self>) {
        let decision = self.lock_throttle().request(Instant::now());
        match decision {
            KeyframeDecision::SendNow => self.send_pli().await,
            KeyframeDecision::Covered => {}
            KeyframeDecision::SendAt(at) => {
                let track = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    if let Some(track) = track.upgrade() {
                        track.lock_throttle().deferred_sent(Instant::now());
                        track.send_pli().await;
                    }
                });
            }
        }
    }

    async fn send_pli(&self) {
        self.keyframe_requests.inc();
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.media_ssrc,
        };
        if let Err(err) = self.remote.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(track = %self.info.sid, error = %err, "keyframe request not sent");
        }
    }

    fn lock_throttle(&self) -> std::sync::MutexGuard<'_, KeyframeThrottle> {
        self.throttle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    fn requests_too_soon_are_deferred_once_not_dropped() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut throttle = KeyframeThrottle::new(ms(300));
        assert_eq!(throttle.request(start), KeyframeDecision::SendNow);
        assert_eq!(
            throttle.request(start + ms(100)),
            KeyframeDecision::SendAt(start + ms(300))
        );
        assert_eq!(throttle.request(start + ms(200)), KeyframeDecision::Covered);
        throttle.deferred_sent(start + ms(300));
        assert_eq!(
            throttle.request(start + ms(450)),
            KeyframeDecision::SendAt(start + ms(600))
        );
        throttle.deferred_sent(start + ms(600));
        assert_eq!(
            throttle.request(start + ms(1000)),
            KeyframeDecision::SendNow
        );
    }
}
