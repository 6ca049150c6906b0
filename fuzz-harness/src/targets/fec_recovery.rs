//! Received RTP through the FlexFEC receiver (`aula_transport::fec::FecReceiver`): repair
//! packets rebuild lost media and never pass on; what comes out is the media stream's, and
//! what FEC rebuilt is marked as such.
//!
//! Input: a [`StreamConfig`] record, then [`TimedRecords`] of RTP packets (after SRTP).

use std::time::Instant;

use crate::{parse_rtp_or_rtcp, tagged, Records, StreamConfig, TimedRecords};
use aula_transport::fec::fec_receiver;
use rtc::interceptor::{Attribute, Interceptor, Packet};
use rtc::sansio::Protocol;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(config) = Records::new(data).next().map(StreamConfig::parse) else {
        return;
    };
    if config.ssrc == config.ssrc_fec {
        return;
    }
    let rest = &data[(2 + StreamConfig::LEN).min(data.len())..];
    let mut receiver = fec_receiver();
    receiver.bind_remote_stream(&config.stream_info());
    for (now, bytes) in TimedRecords::new(rest, Instant::now()) {
        let Some(packet) = parse_rtp_or_rtcp(bytes) else {
            continue;
        };
        receiver
            .handle_read(tagged(now, packet))
            .expect("reads never fail");
        while let Some(msg) = receiver.poll_read() {
            if let Packet::Rtp(p) = &msg.message.packet {
                assert_ne!(
                    p.header.ssrc, config.ssrc_fec,
                    "repair packets stay in the receiver"
                );
                if msg.message.has(&Attribute::RecoveredByFec) {
                    assert_eq!(p.header.ssrc, config.ssrc, "FEC rebuilds the media stream");
                }
            }
        }
    }
}
