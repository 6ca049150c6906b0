//! Forward error correction (FlexFEC, draft 03) whose overhead follows the measured loss.
//!
//! Retransmission repairs a lost packet one round trip late at best; FEC repairs it on arrival,
//! at the price of sending repair packets whether or not anything was lost. So the sender
//! protects only as much as the path needs: [`protection_for`] maps the loss the receiver's
//! congestion feedback reports (before any repair) to a block shape, from nothing on a clean
//! path to one repair packet per media packet at 30 % loss and above. Blocks end with each
//! frame, so the last packets of a frame are protected without waiting for the next one.
//!
//! `webrtc`'s FlexFEC sender protects every block with a fixed shape; [`FecSender`] uses the
//! same encoder with the adaptive shape, and [`FecReceiver`] the same decoder. Both protect
//! packets *without* their RTP header extensions: `webrtc`'s own interceptors add and read them
//! wire-ward of FEC (the transport-wide sequence number is added after the repair packets are
//! made), and its encoder and decoder XOR the marshalled packet, extensions included, so a
//! receiver that sees extensions the sender's encoder did not rebuilds garbage. The codec is
//! negotiated like any other ([`register_flexfec`]); a peer that does not offer it (a browser
//! without FlexFEC) gets no repair stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{
    Attribute, AttributedPacket, FlexFec03Decoder, FlexFec03Encoder, Interceptor, Packet,
    StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_FLEX_FEC03};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::bwe::BandwidthEstimate;

/// The payload type Aula negotiates for FlexFEC-03 repair packets.
pub const FLEXFEC_PAYLOAD_TYPE: u8 = 118;
/// Where the sender sits: the FEC encoder's slot (after the application's packets, before the
/// NACK responder, so retransmissions are not protected again).
pub const FEC_SENDER_SLOT: usize = 5_000;
/// Where the receiver sits: the FEC decoder's slot, before the NACK generator (6 000).
pub const FEC_RECEIVER_SLOT: usize = 6_000;

/// How one block of media packets is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    /// Media packets per block.
    pub media: u32,
    /// Repair packets per full block (interleaved: repair `i` covers media `i`, `i + repair`, …).
    pub repair: u32,
}

impl Protection {
    /// Repair bytes sent per media byte.
    pub fn overhead(&self) -> f64 {
        f64::from(self.repair) / f64::from(self.media)
    }

    /// Repair packets for a block cut short at `len` media packets (at the end of a frame).
    fn repair_for(&self, len: usize) -> u32 {
        let len = len as u32;
        if len >= self.media {
            self.repair
        } else {
            (self.repair * len).div_ceil(self.media).max(1)
        }
    }
}

/// The protection for a path that loses `loss` (0 to 1) of its packets before repair; `None`
/// when retransmission alone is enough.
///
/// With interleaved XOR repair, a repair packet covering `n` media packets rebuilds one of them
/// when the other `n` packets of its group arrived. At loss `p` a media packet stays lost with
/// probability about `p (1 - (1 - p)^n)`: one repair per two media packets (n = 2) halves the
/// loss at 30 %, one per packet (n = 1) cuts it to `p²` (9 % at 30 %), and retransmission does
/// the rest.
pub fn protection_for(loss: f64) -> Option<Protection> {
    let (media, repair) = match loss {
        l if l < 0.01 => return None,
        l if l < 0.04 => (10, 1),
        l if l < 0.08 => (8, 2),
        l if l < 0.15 => (6, 3),
        l if l < 0.25 => (4, 3),
        _ => (4, 4),
    };
    Some(Protection { media, repair })
}

/// Registers FlexFEC-03 for video, so every video sender gets a repair stream where the peer
/// accepts one.
pub fn register_flexfec(media_engine: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_FLEX_FEC03.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: "repair-window=10000000".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: FLEXFEC_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )
}

/// A copy of `packet` as FEC protects it: without header extensions.
fn protected_form(packet: &rtc::rtp::Packet) -> rtc::rtp::Packet {
    let mut bare = packet.clone();
    bare.header.extension = false;
    bare.header.extension_profile = 0;
    bare.header.extensions.clear();
    bare.header.extensions_padding = 0;
    bare
}

/// Rebuilds lost media from FlexFEC-03 repair packets (see the module docs), and keeps the
/// repair packets away from everything after it.
#[derive(Default)]
pub struct FecReceiver {
    /// Decoders by the media SSRC they protect.
    decoders: HashMap<u32, FlexFec03Decoder>,
    /// Repair SSRC to the media SSRC it protects.
    repair_to_media: HashMap<u32, u32>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

/// The receive side's FEC decoder.
pub fn fec_receiver() -> FecReceiver {
    FecReceiver::default()
}

impl FecReceiver {
    fn queue_recovered(&mut self, template: &TaggedPacket, recovered: Vec<rtc::rtp::Packet>) {
        for packet in recovered {
            self.read_queue.push_back(TaggedPacket {
                now: template.now,
                transport: template.transport,
                message: AttributedPacket::new(Packet::Rtp(packet)).with(Attribute::RecoveredByFec),
            });
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FecReceiver {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtp(packet) = &msg.message.packet else {
            self.read_queue.push_back(msg);
            return Ok(());
        };
        let ssrc = packet.header.ssrc;
        if let Some(media) = self.repair_to_media.get(&ssrc).copied() {
            // A repair packet: used here, never passed on.
            let recovered = match self.decoders.get_mut(&media) {
                Some(decoder) => decoder.decode(protected_form(packet)),
                None => Vec::new(),
            };
            self.queue_recovered(&msg, recovered);
            return Ok(());
        }
        let recovered = match self.decoders.get_mut(&ssrc) {
            Some(decoder) => decoder.decode(protected_form(packet)),
            None => Vec::new(),
        };
        // The packet that arrived goes first, then whatever it made recoverable.
        let template = TaggedPacket {
            now: msg.now,
            transport: msg.transport,
            message: AttributedPacket::new(Packet::Rtcp(Vec::new())),
        };
        self.read_queue.push_back(msg);
        self.queue_recovered(&template, recovered);
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

impl Interceptor for FecReceiver {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(ssrc_fec), Some(_)) = (info.ssrc_fec, info.payload_type_fec) {
            self.decoders
                .insert(info.ssrc, FlexFec03Decoder::new(ssrc_fec, info.ssrc));
            self.repair_to_media.insert(ssrc_fec, info.ssrc);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.decoders.remove(&info.ssrc);
        self.repair_to_media.retain(|_, media| *media != info.ssrc);
    }
}

/// What a connection's FEC sender did, shared with stats.
#[derive(Debug, Default)]
pub struct FecStats {
    /// Media packets sent under protection.
    pub protected: AtomicU64,
    /// Repair packets sent.
    pub repair_packets: AtomicU64,
    /// The current overhead (repair per media packet), in thousandths.
    pub overhead_permille: AtomicU64,
}

impl FecStats {
    /// The current overhead, repair bytes per media byte.
    pub fn overhead(&self) -> f64 {
        self.overhead_permille.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

struct ProtectedStream {
    encoder: FlexFec03Encoder,
    block: Vec<rtc::rtp::Packet>,
}

/// Protects a connection's outgoing video with FlexFEC at the strength its loss calls for.
pub struct FecSender {
    loss: Arc<BandwidthEstimate>,
    stats: Arc<FecStats>,
    streams: HashMap<u32, ProtectedStream>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl FecSender {
    /// A sender that reads the path's loss from `loss` (the connection's estimate) and counts
    /// into `stats`.
    pub fn new(loss: Arc<BandwidthEstimate>, stats: Arc<FecStats>) -> Self {
        Self {
            loss,
            stats,
            streams: HashMap::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    /// Repair packets for `stream`'s block, which is then emptied.
    fn flush(
        stream: &mut ProtectedStream,
        protection: Option<Protection>,
        stats: &FecStats,
    ) -> Vec<rtc::rtp::Packet> {
        let block = std::mem::take(&mut stream.block);
        let Some(protection) = protection else {
            return Vec::new();
        };
        if block.is_empty() {
            return Vec::new();
        }
        let repair = stream
            .encoder
            .encode(&block, protection.repair_for(block.len()));
        stats
            .protected
            .fetch_add(block.len() as u64, Ordering::Relaxed);
        stats
            .repair_packets
            .fetch_add(repair.len() as u64, Ordering::Relaxed);
        repair
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FecSender {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtp(packet) = &msg.message.packet else {
            self.write_queue.push_back(msg);
            return Ok(());
        };
        let Some(stream) = self.streams.get_mut(&packet.header.ssrc) else {
            self.write_queue.push_back(msg);
            return Ok(());
        };
        let protection = protection_for(self.loss.loss_fraction());
        self.stats.overhead_permille.store(
            protection.map_or(0, |p| (p.overhead() * 1000.0) as u64),
            Ordering::Relaxed,
        );
        let (now, transport) = (msg.now, msg.transport);
        let mut repair = Vec::new();
        // A block is a run of consecutive sequence numbers (an SFU forwards with gaps where its
        // own uplink lost packets it has not recovered yet).
        let follows = stream.block.last().is_none_or(|last| {
            last.header.sequence_number.wrapping_add(1) == packet.header.sequence_number
        });
        if !follows {
            repair.extend(Self::flush(stream, protection, &self.stats));
        }
        if protection.is_some() {
            stream.block.push(protected_form(packet));
        }
        let full = protection.is_some_and(|p| stream.block.len() as u32 >= p.media);
        if full || packet.header.marker {
            repair.extend(Self::flush(stream, protection, &self.stats));
        }
        // The media packet leaves first; its repair packets follow it through the rest of the
        // chain (TWCC numbers, pacing) like any other packet.
        self.write_queue.push_back(msg);
        for packet in repair {
            self.write_queue.push_back(TaggedPacket {
                now,
                transport,
                message: AttributedPacket::new(Packet::Rtp(packet)),
            });
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for FecSender {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let (Some(ssrc_fec), Some(payload_type_fec)) = (info.ssrc_fec, info.payload_type_fec) {
            self.streams.insert(
                info.ssrc,
                ProtectedStream {
                    encoder: FlexFec03Encoder::new(payload_type_fec, ssrc_fec),
                    block: Vec::new(),
                },
            );
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::FlexFec03Decoder;

    #[test]
    fn protection_grows_with_loss() {
        assert_eq!(protection_for(0.0), None);
        let mut last = 0.0;
        for loss in [0.02, 0.05, 0.10, 0.20, 0.30] {
            let overhead = protection_for(loss).map_or(0.0, |p| p.overhead());
            assert!(overhead > last, "{loss}: {overhead} after {last}");
            last = overhead;
        }
        assert_eq!(protection_for(0.3).map(|p| p.overhead()), Some(1.0));
        assert_eq!(protection_for(0.45).map(|p| p.overhead()), Some(1.0));
    }

    #[test]
    fn a_short_block_gets_a_proportional_share_of_repair() {
        let p = Protection {
            media: 6,
            repair: 3,
        };
        assert_eq!(p.repair_for(6), 3);
        assert_eq!(p.repair_for(2), 1);
        assert_eq!(p.repair_for(1), 1);
        assert_eq!(p.repair_for(4), 2);
    }

    fn media(seq: u16, marker: bool) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                ssrc: 1,
                payload_type: 96,
                sequence_number: seq,
                timestamp: 3000,
                marker,
                ..Default::default()
            },
            payload: bytes::Bytes::from(vec![seq as u8; 100]),
        }
    }

    fn sender(loss: f64) -> FecSender {
        let estimate = Arc::new(BandwidthEstimate::default());
        estimate.set_loss_fraction(loss);
        let mut sender = FecSender::new(estimate, Arc::default());
        sender.bind_local_stream(&StreamInfo {
            ssrc: 1,
            ssrc_fec: Some(2),
            payload_type: 96,
            payload_type_fec: Some(FLEXFEC_PAYLOAD_TYPE),
            ..StreamInfo::default()
        });
        sender
    }

    /// Writes `packets` through `sender`; returns what came out.
    fn send(sender: &mut FecSender, packets: Vec<rtc::rtp::Packet>) -> Vec<rtc::rtp::Packet> {
        let now = Instant::now();
        let mut out = Vec::new();
        for packet in packets {
            sender
                .handle_write(TaggedPacket {
                    now,
                    transport: Default::default(),
                    message: AttributedPacket::new(Packet::Rtp(packet)),
                })
                .unwrap();
            while let Some(msg) = sender.poll_write() {
                if let Packet::Rtp(p) = msg.message.packet {
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn a_clean_path_sends_no_repair() {
        let out = send(&mut sender(0.0), (0..8).map(|i| media(i, i == 7)).collect());
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn a_lossy_frame_is_repaired_from_its_own_repair_packets() {
        let mut s = sender(0.30);
        // One frame of 3 packets: at 30 % loss one repair per media packet, sent at the marker.
        let out = send(&mut s, (10..13).map(|i| media(i, i == 12)).collect());
        let repair: Vec<_> = out.iter().filter(|p| p.header.ssrc == 2).cloned().collect();
        assert_eq!(repair.len(), 3, "{out:?}");
        // The receiver lost packet 11; 10, 12 and the repair packets arrive.
        let mut decoder = FlexFec03Decoder::new(2, 1);
        let mut recovered = Vec::new();
        for p in out
            .into_iter()
            .filter(|p| p.header.sequence_number != 11 || p.header.ssrc == 2)
        {
            recovered.extend(decoder.decode(p));
        }
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].header.sequence_number, 11);
        assert_eq!(recovered[0].payload, media(11, false).payload);
    }

    #[test]
    fn repair_works_when_the_wire_adds_header_extensions() {
        // At 10 % loss each repair packet covers two media packets (11 with 13), so what the
        // receiver XORs back out must match what the sender XORed in.
        let mut s = sender(0.10);
        let out = send(&mut s, (10..14).map(|i| media(i, i == 13)).collect());
        // On the way, every packet gains a header extension (a transport-wide sequence number).
        let with_extension = |mut p: rtc::rtp::Packet| {
            p.header.extension = true;
            p.header.extension_profile = 0xBEDE;
            p.header.extensions = vec![rtc::rtp::header::Extension {
                id: 5,
                payload: bytes::Bytes::from_static(&[0, 42]),
            }];
            p
        };
        let mut receiver = fec_receiver();
        receiver.bind_remote_stream(&StreamInfo {
            ssrc: 1,
            ssrc_fec: Some(2),
            payload_type: 96,
            payload_type_fec: Some(FLEXFEC_PAYLOAD_TYPE),
            ..StreamInfo::default()
        });
        let mut media_seen = Vec::new();
        for p in out
            .into_iter()
            .filter(|p| p.header.sequence_number != 11 || p.header.ssrc == 2)
        {
            receiver
                .handle_read(TaggedPacket {
                    now: Instant::now(),
                    transport: Default::default(),
                    message: AttributedPacket::new(Packet::Rtp(with_extension(p))),
                })
                .unwrap();
            while let Some(msg) = receiver.poll_read() {
                if let Packet::Rtp(p) = &msg.message.packet {
                    media_seen.push((p.clone(), msg.message.has(&Attribute::RecoveredByFec)));
                }
            }
        }
        assert!(
            media_seen.iter().all(|(p, _)| p.header.ssrc == 1),
            "repair packets stay here"
        );
        let rebuilt: Vec<_> = media_seen.iter().filter(|(_, fec)| *fec).collect();
        assert_eq!(rebuilt.len(), 1);
        assert_eq!(rebuilt[0].0.header.sequence_number, 11);
        assert_eq!(
            rebuilt[0].0.payload,
            media(11, false).payload,
            "the exact payload"
        );
    }

    #[test]
    fn a_gap_in_what_is_sent_starts_a_new_block() {
        let mut s = sender(0.10);
        // 0, 1, then 5..8 (an SFU forwarding around upstream loss).
        let mut packets = vec![media(0, false), media(1, false)];
        packets.extend((5..9).map(|i| media(i, i == 8)));
        let out = send(&mut s, packets);
        let repair = out.iter().filter(|p| p.header.ssrc == 2).count();
        assert_eq!(repair, 1 + 2, "one block of 2, one of 4 (6 + 3 shape)");
    }
}
