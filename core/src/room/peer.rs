//! The client's two peer connections: how they are built and what they report.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aula_protocol::keyframe_requests::{KeyframeRequestInterceptor, KEYFRAME_REQUEST_SLOT};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceTransportPolicy};
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::transport::RTCIceServer;
use tokio::sync::{mpsc, Notify};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

use super::{RoomError, RoomOptions};

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
}

struct Events {
    gathered: Arc<Notify>,
    gathered_once: Arc<AtomicBool>,
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
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track));
    }
}

impl ClientPeer {
    /// Builds a connection that binds its UDP socket on an address that can reach `server_ip`.
    pub async fn new(
        server_ip: IpAddr,
        events: mpsc::UnboundedSender<PeerEvent>,
        options: &RoomOptions,
    ) -> Result<Self, RoomError> {
        let mut media_engine = MediaEngine::default();
        media_engine
            .register_default_codecs()
            .map_err(webrtc_error)?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)
            .map_err(webrtc_error)?
            .with(
                Slot::from(KEYFRAME_REQUEST_SLOT),
                KeyframeRequestInterceptor::default(),
            );
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
                events,
            }))
            .with_udp_addrs(vec![bind])
            .build()
            .await
            .map_err(webrtc_error)?;
        Ok(Self {
            pc: Arc::new(pc),
            gathered,
            gathered_once,
        })
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
