//! The connection the server offers to deliver a participant's subscriptions on.
//!
//! Negotiation is one-sided: only the server offers here, one offer at a time. Changes made while
//! an offer is unanswered are folded into the next offer, sent when the answer arrives.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use aula_protocol::{ServerMessage, TrackSid};
use prometheus_client::metrics::counter::Counter;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{broadcast, watch, Mutex};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

use super::peer::{GatherSignal, PeerError, SendSide, ServerPeer};
use super::published_track::PublishedTrack;
use crate::metrics::{KindLabel, Metrics};
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
}

impl Negotiation {
    /// Something changed. Returns whether to send an offer now.
    pub fn changed(&mut self) -> bool {
        if self.in_flight {
            self.again = true;
            false
        } else {
            self.in_flight = true;
            true
        }
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
    tasks: [JoinHandle<()>; 2],
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
    mux: Arc<UdpMux>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Whether the connection is up; forwards ask for a keyframe when it comes up, since
    /// whatever was sent before reached nobody.
    connected: watch::Sender<bool>,
    /// The downlink's estimate and FEC.
    send_side: SendSide,
}

impl Subscriber {
    /// A subscriber that will create its connection on the first subscription.
    pub fn new(mux: Arc<UdpMux>, outbox: Outbox, metrics: Arc<Metrics>) -> Self {
        Self {
            mux,
            outbox,
            metrics,
            state: Mutex::new(State::default()),
            connected: watch::channel(false).0,
            send_side: SendSide::default(),
        }
    }

    /// Whether `sid` is forwarded to this participant.
    pub async fn is_subscribed(&self, sid: &TrackSid) -> bool {
        self.state.lock().await.down_tracks.contains_key(sid)
    }

    /// Starts forwarding `track`. Does nothing if it is already forwarded.
    pub async fn subscribe(&self, track: Arc<PublishedTrack>) -> Result<(), PeerError> {
        let mut state = self.state.lock().await;
        if state.closed || state.down_tracks.contains_key(&track.info.sid) {
            return Ok(());
        }
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
        let forward = tokio::spawn(forward_packets(
            Arc::clone(&track),
            Arc::clone(&local),
            Arc::clone(&sender),
            ssrc,
            self.connected.subscribe(),
            ForwardCounters::new(&self.metrics, track.info.kind),
        ));
        let feedback = tokio::spawn(relay_keyframe_requests(Arc::clone(&track), local));
        state.down_tracks.insert(
            track.info.sid.clone(),
            DownTrack {
                sender,
                tasks: [forward, feedback],
            },
        );
        self.renegotiate(&mut state).await
    }

    /// Stops forwarding `sid`. Returns whether it was forwarded.
    pub async fn unsubscribe(&self, sid: &TrackSid) -> Result<bool, PeerError> {
        let mut state = self.state.lock().await;
        let Some(down_track) = state.down_tracks.remove(sid) else {
            return Ok(false);
        };
        if let Some(peer) = state.peer.as_ref() {
            peer.pc.remove_track(&down_track.sender).await?;
        }
        drop(down_track);
        self.renegotiate(&mut state).await?;
        Ok(true)
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
        let mut state = self.state.lock().await;
        state.closed = true;
        state.down_tracks.clear();
        if let Some(peer) = state.peer.take() {
            peer.close().await;
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

/// Copies the publisher's packets onto one subscriber's track, with the subscriber's SSRC and
/// payload type. Header extensions are dropped: their ids are the publisher connection's, and
/// this connection's interceptors add their own.
async fn forward_packets(
    track: Arc<PublishedTrack>,
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mut connected: watch::Receiver<bool>,
    counters: ForwardCounters,
) {
    let mut packets = track.packets();
    let mut payload_type: Option<u8> = None;
    loop {
        let received = tokio::select! {
            received = packets.recv() => received,
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                if *connected.borrow_and_update() {
                    track.request_keyframe().await;
                }
                continue;
            }
        };
        let mut packet = match received {
            Ok(packet) => packet,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                track.request_keyframe().await;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if payload_type.is_none() {
            payload_type = negotiated_payload_type(&sender, &track).await;
            if payload_type.is_none() {
                continue;
            }
            // First packet this subscriber can take: it needs a keyframe to start decoding.
            // Before the connection is up nothing arrives; the connected watch asks then.
            if *connected.borrow() {
                track.request_keyframe().await;
            }
        }
        let Some(pt) = payload_type else { continue };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = pt;
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        let payload_len = packet.payload.len() as u64;
        if local.write_rtp(packet).await.is_ok() {
            counters.packets.inc();
            counters.bytes.inc_by(payload_len);
        } else {
            // Unbound (renegotiating): look the payload type up again once it is back.
            payload_type = None;
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

async fn relay_keyframe_requests(track: Arc<PublishedTrack>, local: Arc<TrackLocalStaticRTP>) {
    loop {
        match local.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    track.request_keyframe().await;
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
