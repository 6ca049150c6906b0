//! A sans-IO `rtc` peer connection set up as Aula's: the server's (ICE-lite, answering DTLS
//! as server, `server/src/sfu/peer.rs`) or a client's (`core/src/room/peer.rs`), each with
//! FlexFEC, congestion control on TWCC feedback and Aula's interceptors, whose header
//! extensions and feedback types shape what the connection negotiates.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use aula_transport::bwe::{BandwidthEstimate, PassThrough, SendEstimator};
use aula_transport::fec::{fec_receiver, register_flexfec, FEC_RECEIVER_SLOT};
use aula_transport::keyframe_requests::{KeyframeRequestInterceptor, KEYFRAME_REQUEST_SLOT};
use aula_transport::nack::{NackGenerator, NACK_GENERATOR_SLOT};
use aula_transport::rtx_unwrap::{RtxUnwrapInterceptor, RTX_UNWRAP_SLOT};
use rtc::crypto::SignatureScheme;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};

/// One certificate for every connection: generating a key per input would be most of the work.
fn certificate() -> RTCCertificate {
    static CERTIFICATE: OnceLock<RTCCertificate> = OnceLock::new();
    CERTIFICATE
        .get_or_init(|| {
            let provider = rtc::crypto::default_provider().expect("a crypto provider");
            RTCCertificate::generate(
                provider.crypto(),
                SignatureScheme::EcdsaP256Sha256,
                CertificateParams::new(vec!["aula-fuzz".to_owned()]).expect("params"),
            )
            .expect("a certificate")
        })
        .clone()
}

/// A new connection, a client's when `client`, else the server's.
pub fn peer(client: bool, now: Instant) -> RTCPeerConnection {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_default_codecs()
        .expect("default codecs register");
    register_flexfec(&mut media_engine).expect("FlexFEC registers");
    // Both sides estimate what they send from TWCC feedback (the server on subscriber
    // connections, a client on its publisher connection).
    let registry = configure_congestion_control(
        Registry::new(),
        SendEstimator::new(Arc::new(BandwidthEstimate::default())),
        CongestionFeedback::Twcc,
        &mut media_engine,
    )
    .expect("congestion control configures")
    .with(Slot::Pacer, PassThrough::default());
    let registry = register_default_interceptors(registry, &mut media_engine)
        .expect("default interceptors register")
        .with(
            Slot::from(KEYFRAME_REQUEST_SLOT),
            KeyframeRequestInterceptor::default(),
        )
        .with(Slot::from(RTX_UNWRAP_SLOT), RtxUnwrapInterceptor::default())
        .with(Slot::from(FEC_RECEIVER_SLOT), fec_receiver())
        .with(
            Slot::from(NACK_GENERATOR_SLOT),
            NackGenerator::new(Arc::default()),
        );
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_lite(!client)
        .with_answering_dtls_role(if client {
            RTCDtlsRole::Client
        } else {
            RTCDtlsRole::Server
        })
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![certificate()])
                .build(),
        )
        .with_media_engine(media_engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build(now)
        .expect("a peer connection")
}
