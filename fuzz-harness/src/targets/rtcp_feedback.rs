//! A sending connection's interceptor chain, composed as the server composes it for a
//! subscriber (`server/src/sfu/peer.rs` with a send side): the congestion controller with
//! Aula's estimator on transport-wide congestion control (TWCC) feedback, the FEC sender, the
//! NACK responder, reports, keyframe requests, and the receive-side interceptors. RTP in the
//! input is media this end sends; RTCP is feedback it receives (NACKs, TWCC, PLI, FIR,
//! receiver reports). The estimate must stay within its bounds.
//!
//! Input: a [`StreamConfig`] record, then [`TimedRecords`] of RTP or RTCP packets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{parse_rtp_or_rtcp, tagged, Records, StreamConfig, TimedRecords};
use aula_transport::bwe::{
    BandwidthEstimate, PassThrough, SendEstimator, MAX_BITRATE, MIN_BITRATE,
};
use aula_transport::fec::{
    fec_receiver, register_flexfec, FecSender, FEC_RECEIVER_SLOT, FEC_SENDER_SLOT,
};
use aula_transport::keyframe_requests::{KeyframeRequestInterceptor, KEYFRAME_REQUEST_SLOT};
use aula_transport::nack::{NackGenerator, NACK_GENERATOR_SLOT};
use aula_transport::rtx_unwrap::{RtxUnwrapInterceptor, RTX_UNWRAP_SLOT};
use rtc::interceptor::{Interceptor, Packet, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::sansio::Protocol;

fn chain(estimate: &Arc<BandwidthEstimate>) -> impl Interceptor {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_default_codecs()
        .expect("default codecs register");
    register_flexfec(&mut media_engine).expect("FlexFEC registers");
    let registry = configure_congestion_control(
        Registry::new(),
        SendEstimator::new(Arc::clone(estimate)),
        CongestionFeedback::Twcc,
        &mut media_engine,
    )
    .expect("congestion control configures")
    .with(Slot::Pacer, PassThrough::default())
    .with(
        Slot::from(FEC_SENDER_SLOT),
        FecSender::new(Arc::clone(estimate), Arc::default()),
    );
    register_default_interceptors(registry, &mut media_engine)
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
        )
        .build()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(config) = Records::new(data).next().map(StreamConfig::parse) else {
        return;
    };
    let rest = &data[(2 + StreamConfig::LEN).min(data.len())..];
    let estimate = Arc::new(BandwidthEstimate::default());
    let mut chain = chain(&estimate);
    chain.bind_local_stream(&config.stream_info());
    let start = Instant::now();
    let mut now = start;
    for (at, bytes) in TimedRecords::new(rest, start) {
        now = at;
        // As a driver does: run every timer that is due (bounded, should one never settle).
        for _ in 0..64 {
            if chain.poll_timeout().is_none_or(|due| due > now) {
                break;
            }
            let _ = chain.handle_timeout(now);
            drain(&mut chain);
        }
        let Some(packet) = parse_rtp_or_rtcp(bytes) else {
            continue;
        };
        let _ = if matches!(packet, Packet::Rtp(_)) {
            chain.handle_write(tagged(now, packet))
        } else {
            chain.handle_read(tagged(now, packet))
        };
        drain(&mut chain);
        if let Some(bps) = estimate.target_bps() {
            assert!(
                (MIN_BITRATE as u64..=MAX_BITRATE as u64).contains(&bps),
                "estimate {bps} bit/s out of bounds"
            );
        }
        assert!((0.0..=1.0).contains(&estimate.loss_fraction()));
    }
    let _ = chain.handle_timeout(now + Duration::from_secs(1));
    drain(&mut chain);
    chain.unbind_local_stream(&config.stream_info());
}

fn drain(chain: &mut impl Interceptor) {
    while chain.poll_read().is_some() {}
    while chain.poll_write().is_some() {}
    while chain.poll_event().is_some() {}
}
