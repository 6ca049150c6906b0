//! An interceptor that turns received RTX retransmissions (RFC 4588) back into the packets
//! they repair, before the NACK generator looks for gaps.
//!
//! `webrtc`'s NACK generator tracks received sequence numbers per SSRC. A retransmission
//! arrives on the RTX SSRC with its own sequence number and the original one in the first two
//! payload bytes, so the generator never learns the gap was filled and asks again every 100 ms
//! until the hole ages out of its log: measured on a 5 % lossy hop, about 65 requests (and as
//! many resends) per lost packet. Unwrapping wire-ward of the generator marks the gap filled
//! on arrival, and hands the receiver the repaired packet on the stream it belongs to, marked
//! as a retransmission.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where the interceptor sits: before the FEC decoder (6 000), which can use a retransmitted
/// packet to complete a repair group, and before the NACK generator (7 000).
pub const RTX_UNWRAP_SLOT: usize = 5_500;

/// The stream an RTX SSRC repairs.
#[derive(Clone, Copy, Debug)]
struct Repaired {
    ssrc: u32,
    payload_type: u8,
}

/// Rewrites inbound RTX packets into the original packets they carry.
#[derive(Default)]
pub struct RtxUnwrapInterceptor {
    by_rtx_ssrc: HashMap<u32, Repaired>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl RtxUnwrapInterceptor {
    /// Unwraps `packet` in place when it is a retransmission of a known stream. Returns whether
    /// it did.
    fn unwrap_rtx(&self, packet: &mut rtc::rtp::Packet) -> bool {
        let Some(repaired) = self.by_rtx_ssrc.get(&packet.header.ssrc) else {
            return false;
        };
        if packet.payload.len() < 2 {
            // An RTX padding-only probe carries no original packet.
            return false;
        }
        let original_sequence = u16::from_be_bytes([packet.payload[0], packet.payload[1]]);
        packet.header.ssrc = repaired.ssrc;
        packet.header.payload_type = repaired.payload_type;
        packet.header.sequence_number = original_sequence;
        packet.payload = packet.payload.slice(2..);
        true
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxUnwrapInterceptor {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let unwrapped = match &mut msg.message.packet {
            Packet::Rtp(packet) => self.unwrap_rtx(packet),
            _ => false,
        };
        if unwrapped {
            // Tells the NACK generator this answered a request (it times round trips by it).
            msg.message.add(Attribute::Retransmission);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for RtxUnwrapInterceptor {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx_ssrc) = info.ssrc_rtx {
            self.by_rtx_ssrc.insert(
                rtx_ssrc,
                Repaired {
                    ssrc: info.ssrc,
                    payload_type: info.payload_type,
                },
            );
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx_ssrc) = info.ssrc_rtx {
            self.by_rtx_ssrc.remove(&rtx_ssrc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamInfo {
        StreamInfo {
            ssrc: 1111,
            ssrc_rtx: Some(2222),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..StreamInfo::default()
        }
    }

    fn packet(
        ssrc: u32,
        payload_type: u8,
        sequence_number: u16,
        payload: &[u8],
    ) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                ssrc,
                payload_type,
                sequence_number,
                timestamp: 9000,
                ..Default::default()
            },
            payload: bytes::Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn a_retransmission_becomes_the_packet_it_repairs() {
        let mut unwrap = RtxUnwrapInterceptor::default();
        unwrap.bind_remote_stream(&stream());
        let mut rtx = packet(2222, 97, 5, &[0x01, 0x02, 0xAA, 0xBB]);
        assert!(unwrap.unwrap_rtx(&mut rtx));
        assert_eq!(rtx.header.ssrc, 1111);
        assert_eq!(rtx.header.payload_type, 96);
        assert_eq!(rtx.header.sequence_number, 0x0102);
        assert_eq!(rtx.header.timestamp, 9000);
        assert_eq!(&rtx.payload[..], &[0xAA, 0xBB]);
    }

    #[test]
    fn other_packets_pass_untouched() {
        let mut unwrap = RtxUnwrapInterceptor::default();
        unwrap.bind_remote_stream(&stream());
        let mut media = packet(1111, 96, 7, &[1, 2, 3]);
        assert!(!unwrap.unwrap_rtx(&mut media));
        assert_eq!(media.header.sequence_number, 7);
        let mut padding = packet(2222, 97, 8, &[]);
        assert!(
            !unwrap.unwrap_rtx(&mut padding),
            "padding-only RTX is left alone"
        );
        unwrap.unbind_remote_stream(&stream());
        let mut late = packet(2222, 97, 9, &[0, 1, 2]);
        assert!(
            !unwrap.unwrap_rtx(&mut late),
            "unbound streams are forgotten"
        );
    }
}
