//! A track a participant publishes, fanned out to its subscribers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_protocol::{MediaKind, ParticipantId, ServerMessage, TrackInfo};
use prometheus_client::metrics::counter::Counter;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::broadcast;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::layers::{starts_keyframe, WantedLayers};
use crate::outbox::Outbox;

/// Packets buffered per subscriber before a slow one starts losing them (and is sent a keyframe).
const FANOUT_DEPTH: usize = 512;
/// Time between the two copies of a keyframe request.
const DUPLICATE_REQUEST_GAP: Duration = Duration::from_millis(5);
/// Keyframe requests to a publisher are sent at most this often per track.
pub const MIN_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(100);

/// What to do with a keyframe request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyframeDecision {
    /// Send it to the publisher now.
    SendNow,
    /// Too soon after the last one: send one at this instant (covering every request until then).
    SendAt(Instant),
    /// A request already sent or scheduled covers this one.
    Covered,
}

/// How long a keyframe request to the publisher covers later ones while its keyframe has not
/// come through: a request, or the keyframe, lost on the way is asked for again after this.
pub const KEYFRAME_PENDING_TIMEOUT: Duration = Duration::from_millis(350);

/// Paces keyframe requests to a publisher: at most one per interval, and a request that comes
/// too soon is deferred rather than dropped, so a subscriber that needs a keyframe always gets
/// one, while a burst of requests from many subscribers costs the publisher a single keyframe.
/// Requests that come while a requested keyframe is on its way are covered by it (subscribers
/// on lossy links send each request twice).
#[derive(Debug)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
    deferred: bool,
    /// When the request whose keyframe has not arrived yet was sent.
    pending_since: Option<Instant>,
}

impl KeyframeThrottle {
    /// A throttle that lets one request through per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            deferred: false,
            pending_since: None,
        }
    }

    /// A request arrived at `now`.
    pub fn request(&mut self, now: Instant) -> KeyframeDecision {
        if self.deferred {
            return KeyframeDecision::Covered;
        }
        if self
            .pending_since
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_PENDING_TIMEOUT)
        {
            return KeyframeDecision::Covered;
        }
        match self.last_sent {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => {
                self.deferred = true;
                KeyframeDecision::SendAt(last + self.min_interval)
            }
            _ => {
                self.last_sent = Some(now);
                self.pending_since = Some(now);
                KeyframeDecision::SendNow
            }
        }
    }

    /// The deferred request was sent at `now`.
    pub fn deferred_sent(&mut self, now: Instant) {
        self.deferred = false;
        self.last_sent = Some(now);
        self.pending_since = Some(now);
    }

    /// A keyframe came through: later requests need a new one.
    pub fn keyframe_arrived(&mut self) {
        self.pending_since = None;
    }
}

/// A packet of one layer of a published track.
#[derive(Clone, Debug)]
pub struct LayerPacket {
    /// The layer (0 for a track without layers).
    pub layer: u8,
    /// The packet as the publisher sent it.
    pub packet: rtp::Packet,
}

/// One received stream of a published track (the track itself, or one simulcast layer).
struct LayerFeed {
    remote: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    throttle: KeyframeThrottle,
    reader: tokio::task::JoinHandle<()>,
}

/// How much one layer has been carrying, measured as its packets go by.
#[derive(Default)]
struct LayerMeter {
    bytes: AtomicU64,
    /// Microseconds since the track started, of the layer's latest packet (0: none yet).
    last_packet_us: AtomicU64,
    window: Mutex<(Option<(Instant, u64)>, f64)>,
}

/// A layer not heard from for this long counts as stopped (a publisher that does not say
/// which layers it sends paused it, or the uplink lost it).
const LAYER_SILENCE: Duration = Duration::from_millis(1_000);
/// How often the track checks which layers its subscribers still want.
const WANTED_CHECK: Duration = Duration::from_millis(500);

/// A published track: its description, its codec, and the fan-out of its RTP packets. A
/// simulcast track's layers arrive as separate WebRTC tracks and are attached one by one.
pub struct PublishedTrack {
    /// The track as others see it.
    pub info: TrackInfo,
    /// Who publishes it.
    pub publisher: ParticipantId,
    /// The codec the publisher negotiated.
    pub codec: RTCRtpCodec,
    started: Instant,
    feeds: Mutex<Vec<Option<LayerFeed>>>,
    meters: Vec<LayerMeter>,
    packets: broadcast::Sender<LayerPacket>,
    keyframe_requests: Counter,
    /// The layers the publisher says it sends (all, until it says otherwise).
    sent: Vec<AtomicBool>,
    wanted: Mutex<WantedLayers>,
    publisher_outbox: Outbox,
    wanted_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set while a teacher holds the track muted: its packets go to nobody.
    held: AtomicBool,
}

impl PublishedTrack {
    /// Starts reading `remote` as layer `layer` and fanning its packets out. `None` if the
    /// track has no SSRC or codec yet (it was torn down while being set up). Keyframe requests
    /// sent to the publisher are counted in `keyframe_requests`; which layers are wanted is
    /// told to the publisher through `publisher_outbox`.
    pub async fn start(
        info: TrackInfo,
        publisher: ParticipantId,
        layer: u8,
        remote: Arc<dyn TrackRemote>,
        keyframe_requests: Counter,
        publisher_outbox: Outbox,
    ) -> Option<Arc<Self>> {
        let media_ssrc = *remote.ssrcs().await.first()?;
        let codec = remote.codec(media_ssrc).await?;
        let layers = info.layers.len().max(1);
        let (packets, _) = broadcast::channel(FANOUT_DEPTH * layers);
        let track = Arc::new(Self {
            info,
            publisher,
            codec,
            started: Instant::now(),
            feeds: Mutex::new((0..layers).map(|_| None).collect()),
            meters: (0..layers).map(|_| LayerMeter::default()).collect(),
            packets,
            keyframe_requests,
            sent: (0..layers).map(|_| AtomicBool::new(true)).collect(),
            wanted: Mutex::new(WantedLayers::new(layers, Instant::now())),
            publisher_outbox,
            wanted_task: Mutex::new(None),
            held: AtomicBool::new(false),
        });
        track.attach_layer(layer, remote).await;
        if layers > 1 {
            let weak = Arc::downgrade(&track);
            *lock(&track.wanted_task) = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(WANTED_CHECK);
                loop {
                    tick.tick().await;
                    let Some(track) = weak.upgrade() else { return };
                    track.report_wanted();
                }
            }));
        }
        Some(track)
    }

    /// Attaches `remote` as simulcast layer `layer` (ignored if out of range or attached).
    pub async fn attach_layer(self: &Arc<Self>, layer: u8, remote: Arc<dyn TrackRemote>) {
        let Some(media_ssrc) = remote.ssrcs().await.first().copied() else {
            return;
        };
        let mut feeds = lock(&self.feeds);
        let Some(slot) = feeds.get_mut(usize::from(layer)) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let reader = tokio::spawn(read_packets(
            Arc::clone(&remote),
            layer,
            Arc::downgrade(self),
        ));
        *slot = Some(LayerFeed {
            remote,
            media_ssrc,
            throttle: KeyframeThrottle::new(MIN_KEYFRAME_REQUEST_INTERVAL),
            reader,
        });
    }

    /// Forwards the track's packets again, or holds them back from every subscriber (a
    /// teacher muted it; whatever its publisher keeps sending reaches nobody). Video asks for a
    /// keyframe when it resumes, since subscribers missed the frames in between; the requests
    /// go out on their own task, so the caller (the room, under its lock) does not wait.
    pub fn set_forwarded(self: &Arc<Self>, forwarded: bool) {
        let was_held = self.held.swap(!forwarded, Ordering::Relaxed);
        if forwarded && was_held && self.info.kind == MediaKind::Video {
            let track = Arc::clone(self);
            tokio::spawn(async move {
                for layer in 0..track.layer_count() as u8 {
                    track.request_keyframe(layer).await;
                }
            });
        }
    }

    /// A new receiver of every layer's packets, from the next one on.
    pub fn packets(&self) -> broadcast::Receiver<LayerPacket> {
        self.packets.subscribe()
    }

    /// How many layers the track has (1 without simulcast).
    pub fn layer_count(&self) -> usize {
        self.meters.len()
    }

    /// The publisher now sends `layers` (and has stopped the others).
    pub fn set_sent_layers(&self, layers: &[u8]) {
        for (i, flag) in self.sent.iter().enumerate() {
            flag.store(layers.contains(&(i as u8)), Ordering::Relaxed);
        }
    }

    /// Whether layer `layer` runs: the publisher has not said it stopped it, and it sent a
    /// packet lately.
    pub fn is_layer_active(&self, layer: u8) -> bool {
        let sent = self
            .sent
            .get(usize::from(layer))
            .is_some_and(|flag| flag.load(Ordering::Relaxed));
        sent && self.meters.get(usize::from(layer)).is_some_and(|meter| {
            let last = meter.last_packet_us.load(Ordering::Relaxed);
            last > 0
                && self.started.elapsed().as_micros() as u64 - last
                    < LAYER_SILENCE.as_micros() as u64
        })
    }

    /// What each layer costs a subscriber now, bit/s, lowest first: its measured rate while it
    /// runs, the rate the publisher announced while it is paused.
    pub fn layer_rates(&self) -> Vec<f64> {
        (0..self.layer_count())
            .map(|i| {
                let announced = self
                    .info
                    .layers
                    .get(i)
                    .map(|l| f64::from(l.max_bitrate_bps));
                let measured = self.measured_bps(i);
                match (self.is_layer_active(i as u8), announced) {
                    (true, Some(announced)) if measured > 0.0 => measured.min(announced * 1.5),
                    (true, None) => measured,
                    (_, Some(announced)) => announced,
                    (false, None) => 0.0,
                }
            })
            .collect()
    }

    /// The best running layer at or below `wanted`; the lowest running one when none is.
    pub fn available_layer(&self, wanted: u8) -> Option<u8> {
        (0..=wanted)
            .rev()
            .find(|&l| self.is_layer_active(l))
            .or_else(|| (0..self.layer_count() as u8).find(|&l| self.is_layer_active(l)))
    }

    /// `subscriber` now takes `layer` (or, with `None`, no longer receives the track). While
    /// that layer does not run, the layers between it and the best one running are wanted
    /// too, so the publisher can bring back the best its uplink carries.
    pub fn set_wanted(&self, subscriber: &ParticipantId, layer: Option<u8>) {
        let Some(layer) = layer else {
            lock(&self.wanted).remove(subscriber);
            return;
        };
        let running = self.available_layer(layer).filter(|l| *l <= layer);
        let lowest = running.map_or(0, |l| l);
        let layers: Vec<u8> = (lowest..=layer).collect();
        lock(&self.wanted).set(subscriber, &layers, Instant::now());
    }

    fn report_wanted(&self) {
        let changed = lock(&self.wanted).poll(Instant::now());
        if let Some(layers) = changed {
            tracing::debug!(track = %self.info.sid, ?layers, "layers wanted");
            self.publisher_outbox.send(ServerMessage::LayersWanted {
                sid: self.info.sid.clone(),
                layers,
            });
        }
    }

    /// Asks the publisher for a keyframe on `layer`, now or (if one was just asked for) when
    /// the throttle allows; requests in between are covered by that one.
    pub async fn request_keyframe(self: &Arc<Self>, layer: u8) {
        let decision = {
            let mut feeds = lock(&self.feeds);
            let Some(Some(feed)) = feeds.get_mut(usize::from(layer)) else {
                return;
            };
            feed.throttle.request(Instant::now())
        };
        match decision {
            KeyframeDecision::SendNow => self.send_pli(layer).await,
            KeyframeDecision::Covered => {}
            KeyframeDecision::SendAt(at) => {
                let track = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    if let Some(track) = track.upgrade() {
                        if let Some(Some(feed)) = lock(&track.feeds).get_mut(usize::from(layer)) {
                            feed.throttle.deferred_sent(Instant::now());
                        }
                        track.send_pli(layer).await;
                    }
                });
            }
        }
    }

    async fn send_pli(&self, layer: u8) {
        let target = lock(&self.feeds)
            .get(usize::from(layer))
            .and_then(|f| f.as_ref().map(|f| (Arc::clone(&f.remote), f.media_ssrc)));
        let Some((remote, media_ssrc)) = target else {
            return;
        };
        self.keyframe_requests.inc();
        // Twice, a moment apart: on a lossy uplink a lost request costs a keyframe timeout.
        // The publisher's encoder folds the two into one keyframe.
        for copy in 0..2 {
            if copy > 0 {
                tokio::time::sleep(DUPLICATE_REQUEST_GAP).await;
            }
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(err) = remote.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!(track = %self.info.sid, error = %err, "keyframe request not sent");
            }
        }
    }

    fn on_packet(&self, layer: u8, packet: rtp::Packet) {
        if self.info.kind == MediaKind::Video && starts_keyframe(&packet.payload) {
            if let Some(Some(feed)) = lock(&self.feeds).get_mut(usize::from(layer)) {
                feed.throttle.keyframe_arrived();
            }
        }
        if let Some(meter) = self.meters.get(usize::from(layer)) {
            meter
                .bytes
                .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
            meter.last_packet_us.store(
                self.started.elapsed().as_micros().max(1) as u64,
                Ordering::Relaxed,
            );
        }
        if self.held.load(Ordering::Relaxed) {
            return;
        }
        // No receivers yet is fine: the packet is simply not needed.
        let _ = self.packets.send(LayerPacket { layer, packet });
    }

    /// The rate of layer `index` over the last full second.
    fn measured_bps(&self, index: usize) -> f64 {
        let Some(meter) = self.meters.get(index) else {
            return 0.0;
        };
        let bytes = meter.bytes.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut window = lock(&meter.window);
        match window.0 {
            Some((at, then)) if now.duration_since(at) >= Duration::from_secs(1) => {
                window.1 = (bytes - then) as f64 * 8.0 / now.duration_since(at).as_secs_f64();
                window.0 = Some((now, bytes));
            }
            Some(_) => {}
            None => window.0 = Some((now, bytes)),
        }
        window.1
    }
}

impl Drop for PublishedTrack {
    fn drop(&mut self) {
        for feed in lock(&self.feeds).iter().flatten() {
            feed.reader.abort();
        }
        if let Some(task) = lock(&self.wanted_task).take() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn read_packets(
    remote: Arc<dyn TrackRemote>,
    layer: u8,
    track: std::sync::Weak<PublishedTrack>,
) {
    while let Some(event) = remote.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let Some(track) = track.upgrade() else { return };
                track.on_packet(layer, packet);
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
            throttle.request(start + ms(50)),
            KeyframeDecision::Covered,
            "the keyframe on its way covers it"
        );
        throttle.keyframe_arrived();
        assert_eq!(
            throttle.request(start + ms(100)),
            KeyframeDecision::SendAt(start + ms(300))
        );
        assert_eq!(throttle.request(start + ms(200)), KeyframeDecision::Covered);
        throttle.deferred_sent(start + ms(300));
        throttle.keyframe_arrived();
        assert_eq!(
            throttle.request(start + ms(450)),
            KeyframeDecision::SendAt(start + ms(600))
        );
        throttle.deferred_sent(start + ms(600));
        assert_eq!(
            throttle.request(start + ms(1000)),
            KeyframeDecision::SendNow,
            "a request whose keyframe never came is sent again"
        );
    }
}
