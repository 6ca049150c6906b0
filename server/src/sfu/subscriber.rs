//! The connection the server offers to deliver a participant's subscriptions on.
//!
//! Negotiation is one-sided: only the server offers here, one offer at a time. Changes made while
//! an offer is unanswered are folded into the next offer, sent when the answer arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aula_protocol::{ParticipantId, ServerMessage, TrackSid};
use aula_transport::bwe::{BandwidthEstimate, ProbeBackoff};
use prometheus_client::metrics::counter::Counter;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverId};
use tokio::sync::{broadcast, watch, Mutex};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

use super::layers::{
    choose_layers, starts_keyframe, Forward, LayerSwitcher, TrackDemand, VIDEO_SHARE,
};
use super::peer::{GatherSignal, PeerError, SendSide, ServerPeer};
use super::published_track::{LayerPacket, PublishedTrack};
use crate::metrics::{DirectionLabel, KindLabel, Metrics};
use crate::outbox::Outbox;
use crate::udp_mux::UdpMux;
use aula_transport::keyframe_requests::is_keyframe_request;

/// How often a not-yet-negotiated down track looks again for its RTCP feed.
const UNBOUND_RETRY: Duration = Duration::from_millis(100);

/// Negotiation state of the subscriber connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Negotiation {
    in_flight: bool,
    again: bool,
    held: bool,
}

impl Negotiation {
    /// A negotiation that offers nothing until [`Negotiation::release`]: what changes while a
    /// participant joins goes into one first offer.
    pub fn held() -> Self {
        Self {
            held: true,
            ..Self::default()
        }
    }

    /// Something changed. Returns whether to send an offer now.
    pub fn changed(&mut self) -> bool {
        if self.in_flight || self.held {
            self.again = true;
            false
        } else {
            self.in_flight = true;
            true
        }
    }

    /// Ends the hold. Returns whether to send an offer now (something changed meanwhile).
    pub fn release(&mut self) -> bool {
        if !std::mem::take(&mut self.held) || self.in_flight {
            return false;
        }
        self.in_flight = std::mem::take(&mut self.again);
        self.in_flight
    }

    /// The client answered. Returns whether to send another offer now.
    pub fn answered(&mut self) -> bool {
        self.in_flight = false;
        if std::mem::take(&mut self.again) {
            self.in_flight = true;
            true
        } else {
            false
        }
    }

    /// Whether an offer is waiting for its answer.
    pub fn awaiting_answer(&self) -> bool {
        self.in_flight
    }
}

struct DownTrack {
    sender: Arc<dyn RtpSender>,
    local: Arc<TrackLocalStaticRTP>,
    track: Arc<PublishedTrack>,
    /// The layer the allocation chose for this subscriber; the forwarder moves to it.
    target: Arc<AtomicU8>,
    /// Whether the forwarder has handed the connection a packet.
    wrote: Arc<AtomicBool>,
    tasks: [JoinHandle<()>; 2],
}

impl DownTrack {
    /// Stops the forwarder and the keyframe relay, and waits until they have: nothing is
    /// written to the track after this returns.
    async fn stop(&mut self) {
        for task in &mut self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for DownTrack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Default)]
struct State {
    peer: Option<ServerPeer>,
    down_tracks: HashMap<TrackSid, DownTrack>,
    negotiation: Negotiation,
    closed: bool,
}

/// One participant's subscriber connection and the tracks forwarded on it.
pub struct Subscriber {
    id: ParticipantId,
    mux: Arc<UdpMux>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    state: Arc<Mutex<State>>,
    allocation: JoinHandle<()>,
    /// Whether the connection is up; forwards ask for a keyframe when it comes up, since
    /// whatever was sent before reached nobody.
    connected: watch::Sender<bool>,
    /// The downlink's estimate and FEC.
    send_side: SendSide,
}

impl Subscriber {
    /// A subscriber (participant `id`) that will create its connection on the first
    /// subscription, and sends no offer before [`Subscriber::start`]. Must be called within a
    /// tokio runtime: it starts the task that chooses the simulcast layers its downlink carries.
    pub fn new(id: ParticipantId, mux: Arc<UdpMux>, outbox: Outbox, metrics: Arc<Metrics>) -> Self {
        let state = Arc::new(Mutex::new(State {
            negotiation: Negotiation::held(),
            ..State::default()
        }));
        let send_side = SendSide::default();
        let allocation = tokio::spawn(allocate_layers(
            id.clone(),
            Arc::downgrade(&state),
            Arc::clone(&send_side.estimate),
            Arc::clone(&metrics),
        ));
        Self {
            id,
            mux,
            outbox,
            metrics,
            state,
            allocation,
            connected: watch::channel(false).0,
            send_side,
        }
    }

    /// The downlink's bandwidth estimate, once the client's feedback has arrived.
    pub fn downlink_estimate(&self) -> Option<aula_transport::bwe::SendEstimate> {
        self.send_side.estimate.snapshot()
    }

    /// Whether `sid` is forwarded to this participant.
    pub async fn is_subscribed(&self, sid: &TrackSid) -> bool {
        self.state.lock().await.down_tracks.contains_key(sid)
    }

    /// Starts offering, once the participant has been told it joined: one first offer carries
    /// every subscription made while it joined (the tracks already in the room).
    ///
    /// With `open_early`, a connection that has nothing to forward yet is opened now, so that
    /// its ICE and DTLS handshakes run while the client is still setting up its publisher
    /// connection: when the first track comes, only a renegotiation separates it from the
    /// subscriber. Its first offer carries a data channel, which gives the connection a
    /// transport to set up.
    pub async fn start(&self, open_early: bool) -> Result<(), PeerError> {
        let mut state = self.state.lock().await;
        if state.closed {
            return Ok(());
        }
        let opened = if open_early && state.peer.is_none() {
            self.open_empty(&mut state).await
        } else {
            Ok(())
        };
        // Whatever happened above, later changes must be offered.
        if state.negotiation.release() {
            self.send_offer(&state).await?;
        }
        opened
    }

    async fn open_empty(&self, state: &mut State) -> Result<(), PeerError> {
        self.ensure_peer(state).await?;
        if let Some(peer) = state.peer.as_ref() {
            peer.pc.create_data_channel("aula", None).await?;
        }
        state.negotiation.changed();
        Ok(())
    }

    async fn ensure_peer(&self, state: &mut State) -> Result<(), PeerError> {
        if state.peer.is_none() {
            let connected = self.connected.clone();
            state.peer = Some(
                ServerPeer::new(
                    &self.mux,
                    &self.metrics,
                    Some(&self.send_side),
                    move |gathered| {
                        Arc::new(SubscriberEvents {
                            gathered,
                            connected,
                        }) as Arc<dyn PeerConnectionEventHandler>
                    },
                )
                .await?,
            );
        }
        Ok(())
    }

    /// Starts forwarding `track`. Does nothing if it is already forwarded.
    pub async fn subscribe(&self, track: Arc<PublishedTrack>) -> Result<(), PeerError> {
        let mut state = self.state.lock().await;
        if state.closed || state.down_tracks.contains_key(&track.info.sid) {
            return Ok(());
        }
        self.ensure_peer(&mut state).await?;
        let Some(peer) = state.peer.as_ref() else {
            return Ok(());
        };
        let ssrc = rand::random::<u32>();
        let kind = match track.info.kind {
            aula_protocol::MediaKind::Audio => RtpCodecKind::Audio,
            _ => RtpCodecKind::Video,
        };
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            track.publisher.to_string(),
            track.info.sid.to_string(),
            track.info.name.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: track.codec.clone(),
                ..Default::default()
            }],
        )));
        let sender = peer
            .pc
            .add_track(Arc::clone(&local) as Arc<dyn TrackLocal>)
            .await?;
        // The server only sends here: a new transceiver is offered `sendonly` (as `add_track`
        // would offer it `sendrecv`). A transceiver whose track ended is `inactive` and is
        // reused for the next track of its kind (`add_track` takes it back to sending).
        let transceiver_id = RTCRtpTransceiverId::from(sender.id());
        for transceiver in peer.pc.get_transceivers().await {
            if transceiver.id() == transceiver_id {
                transceiver
                    .set_direction(RTCRtpTransceiverDirection::Sendonly)
                    .await?;
            }
        }
        // Until the allocation has run: the lowest layer, which every downlink carries.
        let target = Arc::new(AtomicU8::new(0));
        let forwarding = Arc::new(AtomicU8::new(0));
        let wrote = Arc::new(AtomicBool::new(false));
        let forward = tokio::spawn(forward_packets(
            Forwarding {
                track: Arc::clone(&track),
                local: Arc::clone(&local),
                sender: Arc::clone(&sender),
                ssrc,
                target: Arc::clone(&target),
                forwarding: Arc::clone(&forwarding),
                wrote: Arc::clone(&wrote),
                outbox: self.outbox.clone(),
            },
            self.connected.subscribe(),
            ForwardCounters::new(&self.metrics, track.info.kind),
        ));
        let feedback = tokio::spawn(relay_keyframe_requests(
            Arc::clone(&track),
            Arc::clone(&local),
            forwarding,
        ));
        state.down_tracks.insert(
            track.info.sid.clone(),
            DownTrack {
                sender,
                local,
                track: Arc::clone(&track),
                target,
                wrote,
                tasks: [forward, feedback],
            },
        );
        self.renegotiate(&mut state).await
    }

    /// Stops forwarding `sid`. Returns whether it was forwarded.
    pub async fn unsubscribe(&self, sid: &TrackSid) -> Result<bool, PeerError> {
        let mut state = self.state.lock().await;
        let Some(mut down_track) = state.down_tracks.remove(sid) else {
            return Ok(false);
        };
        down_track.track.set_wanted(&self.id, None);
        // The sender must outlive every packet its forwarder queued: stop the forwarder, let
        // the connection take what it queued, and only then remove the sender.
        down_track.stop().await;
        self.drain_sends(std::slice::from_ref(&down_track)).await;
        if let Some(peer) = state.peer.as_ref() {
            peer.pc.remove_track(&down_track.sender).await?;
        }
        drop(down_track);
        self.renegotiate(&mut state).await?;
        Ok(true)
    }

    /// Waits until the connection has taken every packet the (stopped) forwarders of
    /// `down_tracks` queued. One barrier covers every track of the connection.
    async fn drain_sends(&self, down_tracks: &[DownTrack]) {
        let Some(written) = down_tracks.iter().find(|d| d.wrote.load(Ordering::Acquire)) else {
            return;
        };
        if !self.send_side.barrier.drain(written.local.as_ref()).await {
            tracing::debug!(participant = %self.id, "queued packets not confirmed taken");
        }
    }

    /// Applies the client's answer, and sends the next offer if changes are waiting.
    pub async fn on_answer(&self, sdp: String) -> Result<(), PeerError> {
        let mut state = self.state.lock().await;
        let Some(peer) = state.peer.as_ref() else {
            return Err(PeerError::InvalidSdp("no subscriber offer was sent".into()));
        };
        if !state.negotiation.awaiting_answer() {
            return Err(PeerError::InvalidSdp(
                "no subscriber offer is awaiting an answer".into(),
            ));
        }
        peer.apply_answer(sdp).await?;
        if state.negotiation.answered() {
            self.send_offer(&state).await?;
        }
        Ok(())
    }

    /// Adds a client ICE candidate to the subscriber connection.
    pub async fn add_ice_candidate(
        &self,
        candidate: rtc::peer_connection::transport::RTCIceCandidateInit,
    ) -> Result<(), PeerError> {
        let state = self.state.lock().await;
        match state.peer.as_ref() {
            Some(peer) => Ok(peer.pc.add_ice_candidate(candidate).await?),
            None => Err(PeerError::InvalidSdp("no subscriber connection yet".into())),
        }
    }

    /// Stops every forward and closes the connection.
    pub async fn close(&self) {
        self.allocation.abort();
        let mut state = self.state.lock().await;
        state.closed = true;
        let mut down_tracks: Vec<DownTrack> = state.down_tracks.drain().map(|(_, d)| d).collect();
        for down_track in &mut down_tracks {
            down_track.track.set_wanted(&self.id, None);
            down_track.stop().await;
        }
        self.drain_sends(&down_tracks).await;
        drop(down_tracks);
        if let Some(peer) = state.peer.take() {
            peer.close(&self.metrics).await;
        }
    }

    async fn renegotiate(&self, state: &mut State) -> Result<(), PeerError> {
        if state.negotiation.changed() {
            self.send_offer(state).await?;
        }
        Ok(())
    }

    async fn send_offer(&self, state: &State) -> Result<(), PeerError> {
        let Some(peer) = state.peer.as_ref() else {
            return Ok(());
        };
        let sdp = peer.offer().await?;
        self.outbox.send(ServerMessage::SubscriberOffer { sdp });
        Ok(())
    }
}

struct SubscriberEvents {
    gathered: GatherSignal,
    connected: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for SubscriberEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered.on_state(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected
            .send_replace(state == RTCPeerConnectionState::Connected);
    }
}

/// What one down track's forwarder works with.
struct Forwarding {
    track: Arc<PublishedTrack>,
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    /// The layer the allocation chose.
    target: Arc<AtomicU8>,
    /// The layer being forwarded (for keyframe requests from the subscriber).
    forwarding: Arc<AtomicU8>,
    /// Set once a packet was handed to the connection.
    wrote: Arc<AtomicBool>,
    outbox: Outbox,
}

/// How often a forwarder looks at which layer it should forward.
const TARGET_CHECK: Duration = Duration::from_millis(50);
/// How often a forwarder waiting for a layer's keyframe asks for it again.
const AWAITED_KEYFRAME_RETRY: Duration = Duration::from_millis(300);

/// Copies the publisher's packets onto one subscriber's track: one layer of a simulcast track
/// (the best one the allocation chose that is running, switched at keyframes), renumbered into
/// one continuous stream with the subscriber's SSRC and payload type. Header extensions are
/// dropped: their ids are the publisher connection's, and this connection's interceptors add
/// their own. Nothing is written while the connection is not up: it would reach nobody (and
/// the packets the connection queues must be confirmed taken before a sender goes, which only
/// a connection that is up can confirm; see [`super::SendBarrier`]).
async fn forward_packets(
    forwarding: Forwarding,
    mut connected: watch::Receiver<bool>,
    counters: ForwardCounters,
) {
    let Forwarding {
        track,
        local,
        sender,
        ssrc,
        target,
        forwarding,
        wrote,
        outbox,
    } = forwarding;
    let mut packets = track.packets();
    let mut payload_type: Option<u8> = None;
    let mut switcher = LayerSwitcher::new(track.available_layer(0).unwrap_or(0));
    let mut last_keyframe_request: Option<Instant> = None;
    let mut next_target_check: Option<Instant> = None;
    let is_video = track.info.kind == aula_protocol::MediaKind::Video;
    loop {
        let received = tokio::select! {
            received = packets.recv() => received,
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                if *connected.borrow_and_update() {
                    // Whatever was sent before reached nobody.
                    track.request_keyframe(switcher.current().unwrap_or(switcher.target())).await;
                }
                continue;
            }
        };
        let LayerPacket { layer, mut packet } = match received {
            Ok(packet) => packet,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                track
                    .request_keyframe(switcher.current().unwrap_or(0))
                    .await;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !*connected.borrow() {
            continue;
        }
        if payload_type.is_none() {
            payload_type = negotiated_payload_type(&sender, &track).await;
            if payload_type.is_none() {
                continue;
            }
        }
        let Some(pt) = payload_type else { continue };
        let now = Instant::now();
        // Which layer to move to changes at most every allocation round; look a few times a
        // round, not for every packet.
        if next_target_check.is_none_or(|at| now >= at) {
            next_target_check = Some(now + TARGET_CHECK);
            if let Some(layer) = track.available_layer(target.load(Ordering::Relaxed)) {
                switcher.set_target(layer);
            }
        }
        if is_video && *connected.borrow() {
            if let Some(awaited) = switcher.awaited_keyframe() {
                let due = last_keyframe_request
                    .is_none_or(|at| now.duration_since(at) >= AWAITED_KEYFRAME_RETRY);
                if due {
                    last_keyframe_request = Some(now);
                    track.request_keyframe(awaited).await;
                }
            }
        }
        let keyframe_start = is_video && starts_keyframe(&packet.payload);
        let decision = if is_video {
            switcher.on_packet(
                layer,
                packet.header.sequence_number,
                packet.header.timestamp,
                keyframe_start,
                now,
            )
        } else {
            // Audio has no layers: forwarded as it comes.
            Forward::Send {
                sequence: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                switched: false,
            }
        };
        let Forward::Send {
            sequence,
            timestamp,
            switched,
        } = decision
        else {
            continue;
        };
        if switched {
            tracing::debug!(track = %track.info.sid, layer, "forwarding layer");
            forwarding.store(layer, Ordering::Relaxed);
            last_keyframe_request = None;
            if track.layer_count() > 1 {
                outbox.send(ServerMessage::LayerForwarded {
                    sid: track.info.sid.clone(),
                    layer,
                });
            }
        }
        packet.header.ssrc = ssrc;
        packet.header.payload_type = pt;
        packet.header.sequence_number = sequence;
        packet.header.timestamp = timestamp;
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        let payload_len = packet.payload.len() as u64;
        if local.write_rtp(packet).await.is_ok() {
            wrote.store(true, Ordering::Release);
            counters.packets.inc();
            counters.bytes.inc_by(payload_len);
        } else {
            // Unbound (renegotiating): look the payload type up again once it is back.
            payload_type = None;
        }
    }
}

/// How often a subscriber's layers are chosen again.
const ALLOCATION_INTERVAL: Duration = Duration::from_millis(250);
/// The budget before the subscriber's first congestion feedback, bit/s.
const BUDGET_BEFORE_FEEDBACK: f64 = aula_transport::bwe::INITIAL_BITRATE;
/// A budget short of the received layer for this long moves the track down a layer.
const DOWNGRADE_AFTER: Duration = Duration::from_millis(600);
/// A budget under this share of the received layer's rate moves it down at once.
const SEVERE_SHORTFALL: f64 = 0.5;
/// What an audio track is taken to cost, bit/s.
const AUDIO_COST: f64 = 40_000.0;

/// Chooses, every [`ALLOCATION_INTERVAL`], the layer of each video track `subscriber`
/// receives that its downlink `estimate` carries, and tells the tracks which layers are taken.
async fn allocate_layers(
    subscriber: ParticipantId,
    state: std::sync::Weak<Mutex<State>>,
    estimate: Arc<BandwidthEstimate>,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(ALLOCATION_INTERVAL);
    // When each track's budget first fell short of the layer it receives.
    let mut short_since: HashMap<TrackSid, Instant> = HashMap::new();
    // Per track and layer: when a step up to it that had to be taken back may be tried again.
    let mut backoff: HashMap<(TrackSid, u8), ProbeBackoff> = HashMap::new();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let Some(state) = state.upgrade() else { return };
        let state = state.lock().await;
        let video: Vec<&DownTrack> = state
            .down_tracks
            .values()
            .filter(|d| d.track.info.kind == aula_protocol::MediaKind::Video)
            .collect();
        let audio = state.down_tracks.len() - video.len();
        if let Some(bps) = estimate.target_bps().filter(|_| !video.is_empty()) {
            metrics.downlink_estimate.observe(bps as f64);
        }
        let budget = estimate
            .target_bps()
            .map_or(BUDGET_BEFORE_FEEDBACK, |bps| bps as f64)
            * VIDEO_SHARE
            - AUDIO_COST * audio as f64;
        let demands: Vec<TrackDemand> = video
            .iter()
            .map(|d| {
                let current = d.target.load(Ordering::Relaxed);
                let layers = d.track.layer_count() as u8;
                let sid = &d.track.info.sid;
                let max_layer = (current..layers)
                    .take_while(|l| {
                        *l == current
                            || backoff
                                .get(&(sid.clone(), *l))
                                .is_none_or(|b| b.may_start(now))
                    })
                    .last()
                    .unwrap_or(current);
                TrackDemand {
                    layer_bps: d.track.layer_rates(),
                    current,
                    max_layer,
                    priority: u8::from(
                        d.track.info.source == aula_protocol::TrackSource::ScreenShare,
                    ),
                }
            })
            .collect();
        let chosen = choose_layers(budget.max(0.0), &demands);
        short_since.retain(|sid, _| state.down_tracks.contains_key(sid));
        backoff.retain(|(sid, _), _| state.down_tracks.contains_key(sid));
        for ((down_track, demand), mut layer) in video.iter().zip(&demands).zip(chosen) {
            let sid = &down_track.track.info.sid;
            if layer < demand.current {
                // A step down waits a moment unless the shortfall is large: one late feedback
                // report (a stalled machine) should not cost a keyframe.
                let since = *short_since.entry(sid.clone()).or_insert(now);
                let current_bps = demand
                    .layer_bps
                    .get(usize::from(demand.current))
                    .copied()
                    .unwrap_or(0.0);
                let severe = budget < current_bps * SEVERE_SHORTFALL;
                if !severe && now.duration_since(since) < DOWNGRADE_AFTER {
                    layer = demand.current;
                }
            } else {
                short_since.remove(sid);
            }
            if layer < demand.current {
                for dropped in layer + 1..=demand.current {
                    backoff
                        .entry((sid.clone(), dropped))
                        .or_default()
                        .stopped(now);
                }
            } else if layer > demand.current {
                for raised in demand.current + 1..=layer {
                    backoff
                        .entry((sid.clone(), raised))
                        .or_default()
                        .started(now);
                }
            }
            let before = down_track.target.swap(layer, Ordering::Relaxed);
            if before != layer {
                metrics
                    .layer_switches
                    .get_or_create(&DirectionLabel {
                        direction: if layer > before { "up" } else { "down" }.to_owned(),
                    })
                    .inc();
                tracing::debug!(
                    %subscriber,
                    track = %down_track.track.info.sid,
                    layer,
                    budget,
                    "layer chosen"
                );
            }
            if down_track.track.layer_count() > 1 {
                down_track.track.set_wanted(&subscriber, Some(layer));
            }
        }
    }
}

/// One down track's handles on the forwarding counters, looked up once, not per packet.
struct ForwardCounters {
    packets: Counter,
    bytes: Counter<u64, AtomicU64>,
}

impl ForwardCounters {
    fn new(metrics: &Metrics, kind: aula_protocol::MediaKind) -> Self {
        let label = KindLabel {
            kind: kind.to_string(),
        };
        Self {
            packets: metrics.forwarded_packets.get_or_create(&label).clone(),
            bytes: metrics.forwarded_bytes.get_or_create(&label).clone(),
        }
    }
}

async fn negotiated_payload_type(
    sender: &Arc<dyn RtpSender>,
    track: &PublishedTrack,
) -> Option<u8> {
    let params = sender.get_parameters().await.ok()?;
    params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| {
            c.rtp_codec
                .mime_type
                .eq_ignore_ascii_case(&track.codec.mime_type)
        })
        .map(|c| c.payload_type)
}

/// Relays the subscriber's keyframe requests to the layer it is receiving.
async fn relay_keyframe_requests(
    track: Arc<PublishedTrack>,
    local: Arc<TrackLocalStaticRTP>,
    forwarding: Arc<AtomicU8>,
) {
    loop {
        match local.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    track
                        .request_keyframe(forwarding.load(Ordering::Relaxed))
                        .await;
                }
            }
            Some(_) => {}
            // Not bound to a negotiated sender yet (or between negotiations).
            None => tokio::time::sleep(UNBOUND_RETRY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_while_held_fold_into_one_first_offer() {
        let mut n = Negotiation::held();
        assert!(!n.changed(), "held: no offer");
        assert!(!n.changed());
        assert!(n.release(), "the release sends one offer for both");
        assert!(!n.changed(), "which is awaiting its answer");
        assert!(n.answered(), "so the third change follows it");
        assert!(!n.answered());

        let mut quiet = Negotiation::held();
        assert!(!quiet.release(), "nothing changed, nothing to offer");
        assert!(quiet.changed(), "and later changes offer at once");
        assert!(!quiet.release(), "a second release changes nothing");
    }

    #[test]
    fn changes_during_an_offer_fold_into_one_follow_up_offer() {
        let mut n = Negotiation::default();
        assert!(n.changed(), "first change offers at once");
        assert!(!n.changed(), "second change waits for the answer");
        assert!(!n.changed(), "and so does a third");
        assert!(n.answered(), "the answer releases one follow-up offer");
        assert!(!n.answered(), "whose answer leaves nothing pending");
        assert!(!n.awaiting_answer());
        assert!(n.changed());
    }
}
