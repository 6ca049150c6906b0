//! Received RTP through RTX unwrapping and NACK generation, in the order a receiving
//! connection runs them (`RtxUnwrapInterceptor` at slot 5 500, `NackGenerator` at 7 000): an
//! RTX packet must come out as the packet it repairs, on the media stream and marked as a
//! retransmission; NACKs may only ask the media stream's sender.
//!
//! Input: a [`StreamConfig`] record, then [`TimedRecords`] of RTP or RTCP packets (after SRTP).

use std::sync::Arc;
use std::time::Instant;

use crate::{parse_rtp_or_rtcp, tagged, Records, StreamConfig, TimedRecords};
use aula_transport::nack::{NackGenerator, NackStats};
use aula_transport::rtx_unwrap::RtxUnwrapInterceptor;
use rtc::interceptor::{Attribute, Interceptor, Packet};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(config) = Records::new(data).next().map(StreamConfig::parse) else {
        return;
    };
    let rest = &data[(2 + StreamConfig::LEN).min(data.len())..];
    let info = config.stream_info();
    let mut unwrap = RtxUnwrapInterceptor::default();
    let mut nack = NackGenerator::new(Arc::new(NackStats::default()));
    unwrap.bind_remote_stream(&info);
    nack.bind_remote_stream(&info);
    let start = Instant::now();
    let mut now = start;
    for (at, bytes) in TimedRecords::new(rest, start) {
        now = at;
        if nack.poll_timeout().is_some_and(|due| due <= now) {
            nack.handle_timeout(now).expect("timeouts never fail");
        }
        let Some(packet) = parse_rtp_or_rtcp(bytes) else {
            continue;
        };
        let was_rtx = matches!(&packet, Packet::Rtp(p) if p.header.ssrc == config.ssrc_rtx
            && config.ssrc_rtx != config.ssrc);
        unwrap
            .handle_read(tagged(now, packet))
            .expect("reads never fail");
        while let Some(msg) = unwrap.poll_read() {
            if let Packet::Rtp(p) = &msg.message.packet {
                if msg.message.has(&Attribute::Retransmission) {
                    assert_eq!(
                        p.header.ssrc, config.ssrc,
                        "unwrapped onto the media stream"
                    );
                    assert_eq!(p.header.payload_type, config.payload_type);
                } else if was_rtx {
                    // Only padding-only probes stay on the RTX stream.
                    assert!(
                        p.payload.len() < 2,
                        "an RTX packet with a payload stayed wrapped"
                    );
                }
            }
            nack.handle_read(msg).expect("reads never fail");
        }
        while nack.poll_read().is_some() {}
        while let Some(msg) = nack.poll_write() {
            if let Packet::Rtcp(packets) = &msg.message.packet {
                for p in packets {
                    if let Some(n) = p.as_any().downcast_ref::<TransportLayerNack>() {
                        assert_eq!(n.media_ssrc, config.ssrc, "NACKs ask the media stream");
                    }
                }
            }
        }
    }
    // The holes left run out of requests and age.
    for step in 1..=40u64 {
        let _ = nack.handle_timeout(now + std::time::Duration::from_millis(50 * step));
        while nack.poll_write().is_some() {}
    }
}
