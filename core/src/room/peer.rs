//! The client's two peer connections: how they are built and what they report.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aula_transport::keyframe_requests::{KeyframeRequestInterceptor, KEYFRAME_REQUEST_SLOT};
use aula_transport::nack::{NackGenerator, NackStats, NACK_GENERATOR_SLOT};
use aula_transport::rtx_unwrap::{RtxUnwrapInterceptor, RTX_UNWRAP_SLOT};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceTransportPolicy};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::transport::{RTCIceCandidateInit, RTCIceServer};
use tokio::sync::{mpsc, Notify};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceConnectionState,
    RTCIceGatheringState, RTCPeerConnectionState,
};

use super::bandwidth::SendBandwidth;
use super::{MediaTransport, RoomError, RoomOptions};
use aula_transport::bwe::{PacingRateTap, PassThrough, SendEstimator, PACING_RATE_TAP_SLOT};
use aula_transport::fec::{
    fec_receiver, register_flexfec, FecSender, FEC_RECEIVER_SLOT, FEC_SENDER_SLOT,
};

/// Longest wait for local candidates before an offer or answer is sent without the rest.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// Events from a peer connection, handled by the room's event loop.
pub(crate) enum PeerEvent {
    /// A remote track arrived (subscriber connection).
    Track(Arc<dyn TrackRemote>),
    /// The connection's state changed.
    State(RTCPeerConnectionState),
}

/// A client peer connection plus what waiting on it needs.
pub(crate) struct ClientPeer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: Arc<Notify>,
    gathered_once: Arc<AtomicBool>,
    /// When the server's ICE-TCP candidates are dialed (see [`MediaTransport`]).
    tcp: TcpDial,
    /// Whether ICE has found a working path.
    ice_connected: Arc<AtomicBool>,
    /// Whether the connection has failed (no media for [`MEDIA_SILENCE_BEFORE_FAILED`]).
    failed: Arc<AtomicBool>,
}

/// No answer to a consent check for this long and a connection reports itself disconnected
/// (webrtc-rs's default); media that comes back within it resumes in place.
const MEDIA_SILENCE_BEFORE_DISCONNECTED: Duration = Duration::from_secs(5);

/// No answer to a consent check for this long in all and the connection fails, and the room
/// rejoins on new connections: a cut of a few seconds recovers in place, a changed network
/// (Wi-Fi to cellular: the old path is gone for good) within fifteen seconds, not webrtc-rs's
/// thirty.
pub(crate) const MEDIA_SILENCE_BEFORE_FAILED: Duration = Duration::from_secs(15);

/// How often the connection checks consent (a STUN binding request the server answers). Only
/// these answers count as hearing from the server, not media, so on a lossy path they must be
/// frequent: at 40 % loss each way a check gets through 36 % of the time, and 30 checks in a
/// row fail with odds of about one in a million; at webrtc-rs's 2 s, 10 s would have been 5
/// checks, failing every 10 s with odds of one in ten.
const CONSENT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// When to dial the server's passive ICE-TCP candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TcpDial {
    /// Never: UDP only.
    Never,
    /// At once: TCP only.
    Now,
    /// Only if UDP has not connected within [`TCP_FALLBACK_DELAY`].
    Fallback,
}

/// How long UDP gets to connect before the TCP fallback is dialed: well beyond a UDP handshake
/// on any working path, even on a loaded machine (the fallback is for networks where UDP
/// never works, and dialing it needlessly opens a second path ICE then discards).
const TCP_FALLBACK_DELAY: Duration = Duration::from_secs(2);

struct Events {
    gathered: Arc<Notify>,
    gathered_once: Arc<AtomicBool>,
    ice_connected: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered_once.store(true, Ordering::Release);
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.failed
            .store(state == RTCPeerConnectionState::Failed, Ordering::Release);
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let connected = matches!(
            state,
            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
        );
        self.ice_connected.store(connected, Ordering::Release);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track));
    }
}

impl ClientPeer {
    /// Builds a connection that binds its UDP socket on an address that can reach `server_ip`.
    /// With `send_bandwidth` (the publisher connection) it estimates its uplink into it; the
    /// loss recovery of what it receives is counted in `nack_stats`.
    pub async fn new(
        server_ip: IpAddr,
        events: mpsc::UnboundedSender<PeerEvent>,
        options: &RoomOptions,
        send_bandwidth: Option<&Arc<SendBandwidth>>,
        nack_stats: &Arc<NackStats>,
    ) -> Result<Self, RoomError> {
        let mut media_engine = MediaEngine::default();
        media_engine
            .register_default_codecs()
            .map_err(webrtc_error)?;
        if options.loss_recovery {
            register_flexfec(&mut media_engine).map_err(webrtc_error)?;
        }
        let mut registry = Registry::new();
        if let Some(shared) = send_bandwidth {
            // A publishing connection estimates its uplink from the server's TWCC reports,
            // paces to it, and tells the encoders (see `bandwidth`).
            registry = configure_congestion_control(
                registry,
                SendEstimator::new(Arc::clone(shared.estimate())),
                CongestionFeedback::Twcc,
                &mut media_engine,
            )
            .map_err(webrtc_error)?
            .with(Slot::from(PACING_RATE_TAP_SLOT), PacingRateTap::default())
            .with(
                Slot::from(FEC_SENDER_SLOT),
                FecSender::new(Arc::clone(shared.estimate()), Arc::clone(shared.fec())),
            );
        }
        let registry = register_default_interceptors(registry, &mut media_engine)
            .map_err(webrtc_error)?
            .with(
                Slot::from(KEYFRAME_REQUEST_SLOT),
                KeyframeRequestInterceptor::default(),
            )
            .with(Slot::from(RTX_UNWRAP_SLOT), RtxUnwrapInterceptor::default());
        let registry = if options.loss_recovery {
            registry
                .with(Slot::from(FEC_RECEIVER_SLOT), fec_receiver())
                // Replaces `webrtc`'s fixed-cycle generator (see `aula_transport::nack`).
                .with(
                    Slot::from(NACK_GENERATOR_SLOT),
                    NackGenerator::new(Arc::clone(nack_stats)),
                )
        } else {
            registry.with(Slot::from(NACK_GENERATOR_SLOT), PassThrough::default())
        };
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(server_ip.is_loopback())
            // Aula servers never send mDNS candidates; do not open a multicast socket for them.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            // Pace checks at 50 ms (RFC 8445's Ta) instead of 200 ms: the server is ICE-lite, so
            // our checks are the whole handshake, and with one server candidate they are cheap.
            // 28 attempts keep the default 1.4 s budget per candidate pair.
            .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
            // We start DTLS on both connections (see the server's answering role): we are the
            // ICE side that knows first when the path works.
            .with_answering_dtls_role(RTCDtlsRole::Client)
            .with_ice_timeouts(
                Some(MEDIA_SILENCE_BEFORE_DISCONNECTED),
                Some(MEDIA_SILENCE_BEFORE_FAILED - MEDIA_SILENCE_BEFORE_DISCONNECTED),
                Some(CONSENT_CHECK_INTERVAL),
            )
            .build();
        let bind: SocketAddr = if server_ip.is_loopback() {
            SocketAddr::new(server_ip, 0)
        } else if server_ip.is_ipv6() {
            "[::]:0"
                .parse()
                .map_err(|_| RoomError::Internal("bind address".into()))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| RoomError::Internal("bind address".into()))?
        };
        let (use_udp, tcp) = match options.media_transport {
            MediaTransport::Auto if options.network.is_none() => (true, TcpDial::Fallback),
            MediaTransport::Auto | MediaTransport::UdpOnly => (true, TcpDial::Never),
            MediaTransport::TcpOnly => (false, TcpDial::Now),
        };
        let use_tcp = tcp != TcpDial::Never;
        let ice_connected = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let gathered = Arc::new(Notify::new());
        let gathered_once = Arc::new(AtomicBool::new(false));
        let mut builder = PeerConnectionBuilder::new();
        if let Some(network) = &options.network {
            builder = builder.with_runtime(network.runtime());
        }
        let ice_servers = options
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        let policy = if options.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        };
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .with_ice_transport_policy(policy)
            .build();
        let pc = builder
            .with_configuration(configuration)
            .with_media_engine(media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events {
                gathered: Arc::clone(&gathered),
                gathered_once: Arc::clone(&gathered_once),
                ice_connected: Arc::clone(&ice_connected),
                failed: Arc::clone(&failed),
                events,
            }))
            .with_udp_addrs(if use_udp { vec![bind] } else { Vec::new() })
            .with_tcp_addrs(if use_tcp { vec![bind] } else { Vec::new() })
            .build()
            .await
            .map_err(webrtc_error)?;
        Ok(Self {
            pc: Arc::new(pc),
            gathered,
            gathered_once,
            tcp,
            ice_connected,
            failed,
        })
    }

    /// Whether this connection has failed.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Applies the server's description, then dials its passive ICE-TCP candidates: at once
    /// for TCP only, after [`TCP_FALLBACK_DELAY`] if UDP has not connected by then for the
    /// fallback. (`webrtc` connects only to candidates handed to `add_ice_candidate`, and the
    /// server sends its candidates inside the description.)
    pub async fn set_remote_description(
        &self,
        description: RTCSessionDescription,
    ) -> Result<(), RoomError> {
        let tcp_candidates = match self.tcp {
            TcpDial::Never => Vec::new(),
            TcpDial::Now | TcpDial::Fallback => passive_tcp_candidates(&description.sdp),
        };
        self.pc
            .set_remote_description(description)
            .await
            .map_err(webrtc_error)?;
        if tcp_candidates.is_empty() {
            return Ok(());
        }
        let pc = Arc::clone(&self.pc);
        let ice_connected = Arc::clone(&self.ice_connected);
        let delay = (self.tcp == TcpDial::Fallback).then_some(TCP_FALLBACK_DELAY);
        tokio::spawn(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
                if ice_connected.load(Ordering::Acquire) {
                    return;
                }
                tracing::info!("UDP did not connect; trying ICE over TCP");
            }
            for candidate in tcp_candidates {
                if let Err(err) = pc.add_ice_candidate(candidate).await {
                    tracing::debug!(error = %err, "ICE-TCP candidate not usable");
                }
            }
        });
        Ok(())
    }

    /// The local description once candidates are gathered (non-trickle: the server is ICE-lite
    /// and needs nothing from us but the checks we send).
    pub async fn local_sdp(&self) -> Result<String, RoomError> {
        if !self.gathered_once.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(GATHER_TIMEOUT, self.gathered.notified()).await;
        }
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| RoomError::Internal("no local description".into()))
    }
}

pub(crate) fn webrtc_error(err: webrtc::error::Error) -> RoomError {
    RoomError::WebRtc(err.to_string())
}

/// The passive TCP candidates in `sdp`, with the media section each belongs to.
fn passive_tcp_candidates(sdp: &str) -> Vec<RTCIceCandidateInit> {
    let mut candidates = Vec::new();
    let mut mline_index: Option<u16> = None;
    let mut mid: Option<String> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            mline_index = Some(mline_index.map_or(0, |i| i + 1));
            mid = None;
        } else if let Some(value) = line.strip_prefix("a=mid:") {
            mid = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("a=candidate:") {
            let fields: Vec<&str> = value.split(' ').collect();
            let passive = fields.len() >= 8
                && fields[2].eq_ignore_ascii_case("tcp")
                && fields
                    .windows(2)
                    .any(|w| w[0] == "tcptype" && w[1] == "passive");
            if passive {
                candidates.push(RTCIceCandidateInit {
                    candidate: format!("candidate:{value}"),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: mline_index,
                    username_fragment: None,
                    url: None,
                });
            }
        }
    }
    // With BUNDLE every section carries the same candidates: dial each address once.
    candidates.dedup_by(|a, b| a.candidate == b.candidate);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_passive_tcp_candidates_once_per_address() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   a=candidate:1 1 udp 2130706431 10.0.0.1 7881 typ host\r\n\
                   a=candidate:3 1 tcp 1671430143 10.0.0.1 7881 typ host tcptype passive\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
                   a=candidate:3 1 tcp 1671430143 10.0.0.1 7881 typ host tcptype passive\r\n";
        let found = passive_tcp_candidates(sdp);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].candidate,
            "candidate:3 1 tcp 1671430143 10.0.0.1 7881 typ host tcptype passive"
        );
        assert_eq!(found[0].sdp_mid.as_deref(), Some("0"));
        assert_eq!(found[0].sdp_mline_index, Some(0));
    }
}
