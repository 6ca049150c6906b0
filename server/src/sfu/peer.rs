//! Building the server's peer connections: ICE-lite, on the shared media socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCDtlsRole;
use tokio::sync::Notify;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
};

use crate::udp_mux::{rewrite_candidates, UdpMux};
use aula_transport::bwe::{BandwidthEstimate, PassThrough, SendEstimator};
use aula_transport::fec::{
    fec_receiver, register_flexfec, FecSender, FecStats, FEC_RECEIVER_SLOT, FEC_SENDER_SLOT,
};
use aula_transport::keyframe_requests::{KeyframeRequestInterceptor, KEYFRAME_REQUEST_SLOT};
use aula_transport::nack::{NackGenerator, NackStats, NACK_GENERATOR_SLOT};
use aula_transport::rtx_unwrap::{RtxUnwrapInterceptor, RTX_UNWRAP_SLOT};

/// Longest wait for a connection to gather its (host-only) candidates.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors from setting up or negotiating a peer connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The SDP the client sent could not be applied.
    #[error("invalid session description: {0}")]
    InvalidSdp(String),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
}

/// What a connection that sends media (a subscriber connection) measures about its path.
#[derive(Clone, Default)]
pub struct SendSide {
    /// The bandwidth estimate from the subscriber's congestion feedback.
    pub estimate: Arc<BandwidthEstimate>,
    /// The FEC protecting what is sent.
    pub fec: Arc<FecStats>,
    /// Waits for packets queued for sending to be taken (before a sender is removed).
    pub barrier: super::SendBarrier,
}

/// A server-side peer connection with the identity it is routed by.
pub struct ServerPeer {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    ufrag: String,
    mux: Arc<UdpMux>,
    gathered: GatherSignal,
    /// Loss recovery on what this connection receives.
    pub nack_stats: Arc<NackStats>,
    /// The FEC this connection sends (subscriber connections).
    fec_stats: Option<Arc<FecStats>>,
}

impl ServerPeer {
    /// Creates a connection routed on `mux`, its RTCP feedback counted in `metrics`. `handler` builds the event handler from the
    /// [`GatherSignal`] it must feed with gathering state changes.
    /// A connection that sends media (`send_side`) estimates its path's bandwidth from the
    /// client's congestion feedback, paces to it and protects video with FEC as the loss calls
    /// for.
    pub async fn new(
        mux: &Arc<UdpMux>,
        metrics: &crate::metrics::Metrics,
        send_side: Option<&SendSide>,
        handler: impl FnOnce(GatherSignal) -> Arc<dyn PeerConnectionEventHandler>,
    ) -> Result<Self, PeerError> {
        let ufrag = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let mut media_engine = MediaEngine::default();
        super::codecs::register_room_codecs(&mut media_engine)?;
        register_flexfec(&mut media_engine)?;
        let nack_stats = Arc::new(NackStats::default());
        let mut registry = Registry::new();
        if let Some(side) = send_side {
            registry = configure_congestion_control(
                registry,
                SendEstimator::new(Arc::clone(&side.estimate)),
                CongestionFeedback::Twcc,
                &mut media_engine,
            )?
            .with(Slot::Pacer, PassThrough::default())
            .with(
                Slot::from(FEC_SENDER_SLOT),
                FecSender::new(Arc::clone(&side.estimate), Arc::clone(&side.fec)),
            )
            .with(
                Slot::from(super::SEND_BARRIER_SLOT),
                side.barrier.interceptor(),
            );
        }
        let registry = register_default_interceptors(registry, &mut media_engine)?
            .with(
                Slot::from(KEYFRAME_REQUEST_SLOT),
                KeyframeRequestInterceptor::default(),
            )
            .with(Slot::from(RTX_UNWRAP_SLOT), RtxUnwrapInterceptor::default())
            .with(Slot::from(FEC_RECEIVER_SLOT), fec_receiver())
            // Replaces `webrtc`'s fixed-cycle generator (see `aula_transport::nack`).
            .with(
                Slot::from(NACK_GENERATOR_SLOT),
                NackGenerator::new(Arc::clone(&nack_stats)),
            )
            .with(
                Slot::from(super::RTCP_OBSERVER_SLOT),
                super::RtcpObserver::new(metrics),
            );
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), password)
            .with_include_loopback_candidate(true)
            // No mDNS socket: it would be wrapped by the mux runtime like the media socket.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            // The client starts DTLS: it knows when its ICE checks have succeeded. An ICE-lite
            // server that speaks first sends its ClientHello before the client listens, and the
            // handshake waits a retransmission timeout (measured: +200 ms per connection).
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .build();
        let gathered = GatherSignal::default();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_runtime(mux.runtime_for(&ufrag))
            .with_handler(handler(gathered.clone()))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .with_tcp_addrs(if mux.announced_tcp_addr().is_some() {
                vec!["127.0.0.1:0".to_owned()]
            } else {
                Vec::new()
            })
            .build()
            .await?;
        match send_side {
            Some(side) => metrics.watch_downlink(&side.fec),
            None => metrics.watch_uplink(&nack_stats),
        }
        Ok(Self {
            pc: Arc::new(pc),
            ufrag,
            mux: Arc::clone(mux),
            gathered,
            nack_stats,
            fec_stats: send_side.map(|side| Arc::clone(&side.fec)),
        })
    }

    /// Applies a remote offer and returns the answer, candidates included. Formats the room
    /// does not carry are not accepted; a media section with none it carries is rejected
    /// (port 0), as JSEP answers a section it cannot take.
    pub async fn answer(&self, offer_sdp: String) -> Result<String, PeerError> {
        let offer = RTCSessionDescription::offer(super::codecs::hide_uncarried_formats(&offer_sdp))
            .map_err(|e| PeerError::InvalidSdp(e.to_string()))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| PeerError::InvalidSdp(e.to_string()))?;
        let answer = self.pc.create_answer(None).await?;
        for rejected in rejected_media_sections(&answer.sdp) {
            tracing::warn!(
                section = %rejected,
                "offered media section rejected: it offers no codec the room carries \
                 (H.264 constrained baseline in packetization mode 1, Opus)"
            );
        }
        self.pc.set_local_description(answer).await?;
        self.completed_local_sdp().await
    }

    /// Creates an offer, applies it locally and returns it, candidates included.
    pub async fn offer(&self) -> Result<String, PeerError> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.completed_local_sdp().await
    }

    /// Applies the client's answer to our offer.
    pub async fn apply_answer(&self, answer_sdp: String) -> Result<(), PeerError> {
        let answer = RTCSessionDescription::answer(answer_sdp)
            .map_err(|e| PeerError::InvalidSdp(e.to_string()))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| PeerError::InvalidSdp(e.to_string()))
    }

    async fn completed_local_sdp(&self) -> Result<String, PeerError> {
        // Host candidates on one socket gather at once; the timeout only guards a stuck driver.
        if !self.gathered.done.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(GATHER_TIMEOUT, self.gathered.notify.notified()).await;
        }
        let local = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| PeerError::InvalidSdp("no local description".into()))?;
        Ok(rewrite_candidates(
            &local.sdp,
            self.mux.announced_addr(),
            self.mux.announced_tcp_addr(),
        ))
    }

    /// Closes the connection and frees its route on the media socket; `metrics` keep what it
    /// counted.
    pub async fn close(&self, metrics: &crate::metrics::Metrics) {
        match &self.fec_stats {
            Some(fec) => metrics.connection_closed(None, Some(fec)),
            None => metrics.connection_closed(Some(&self.nack_stats), None),
        }
        if let Err(err) = self.pc.close().await {
            tracing::debug!(error = %err, "closing peer connection");
        }
        self.mux.unregister(&self.ufrag);
    }
}

/// The audio and video sections an answer rejects (port 0), as `kind` and `mid`.
fn rejected_media_sections(answer: &str) -> Vec<String> {
    let mut rejected = Vec::new();
    let mut current: Option<String> = None;
    for line in answer.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            if let Some(kind) = current.take() {
                rejected.push(kind);
            }
            let mut fields = media.split(' ');
            let kind = fields.next().unwrap_or_default();
            if matches!(kind, "audio" | "video") && fields.next() == Some("0") {
                current = Some(kind.to_owned());
            }
        } else if let (Some(kind), Some(mid)) = (current.as_mut(), line.strip_prefix("a=mid:")) {
            kind.push_str(" mid ");
            kind.push_str(mid.trim());
        }
    }
    rejected.extend(current);
    rejected
}

/// Tells a [`ServerPeer`] its candidates are gathered. Gathering happens once per connection
/// (there are no ICE restarts on the server side), so later negotiations do not wait.
#[derive(Clone, Default)]
pub struct GatherSignal {
    notify: Arc<Notify>,
    done: Arc<AtomicBool>,
}

impl GatherSignal {
    /// Call on every gathering state change; wakes the waiter on `Complete`.
    pub fn on_state(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.done.store(true, Ordering::Release);
            // `notify_one` stores a permit, so a waiter arriving later still wakes.
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_sections_are_named_by_kind_and_mid() {
        let answer = "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n\
                      m=video 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:2\r\n\
                      m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";
        assert_eq!(
            rejected_media_sections(answer),
            ["video mid 0", "video mid 2"]
        );
        assert!(rejected_media_sections("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n").is_empty());
    }
}
