//! Helpers shared by Aula's fuzz targets: the layouts their inputs use.
//!
//! Targets that take one message read the input as it is. Targets that take a sequence (RTP
//! packets, whiteboard updates) read [`Records`]: each record is a big-endian `u16` length and
//! that many bytes (a short last record takes what is left). Targets whose logic depends on
//! time read [`TimedRecords`]: each record is preceded by a big-endian `u16` gap in
//! milliseconds since the previous one. `fuzz/README.md` lists which target takes which.

use std::time::{Duration, Instant};

pub mod peer;
pub mod targets;

/// Records of an input: `[u16 BE length][bytes]`, repeated.
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    /// The records of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, body) = split_u16(self.rest)?;
        let len = usize::from(len).min(body.len());
        let (record, rest) = body.split_at(len);
        self.rest = rest;
        Some(record)
    }
}

/// Records with arrival times: `[u16 BE gap in ms][u16 BE length][bytes]`, repeated.
pub struct TimedRecords<'a> {
    rest: &'a [u8],
    now: Instant,
}

impl<'a> TimedRecords<'a> {
    /// The records of `data`, the first arriving `start` plus its gap.
    pub fn new(data: &'a [u8], start: Instant) -> Self {
        Self {
            rest: data,
            now: start,
        }
    }
}

impl<'a> Iterator for TimedRecords<'a> {
    type Item = (Instant, &'a [u8]);

    fn next(&mut self) -> Option<(Instant, &'a [u8])> {
        let (gap, rest) = split_u16(self.rest)?;
        let (len, body) = split_u16(rest)?;
        let len = usize::from(len).min(body.len());
        let (record, rest) = body.split_at(len);
        self.rest = rest;
        self.now += Duration::from_millis(u64::from(gap));
        Some((self.now, record))
    }
}

fn split_u16(data: &[u8]) -> Option<(u16, &[u8])> {
    match data {
        [a, b, rest @ ..] => Some((u16::from_be_bytes([*a, *b]), rest)),
        _ => None,
    }
}

/// Writes `records` in the [`Records`] layout (for tests and tools that make seeds).
pub fn encode_records<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let len = u16::try_from(record.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&record[..usize::from(len)]);
    }
    out
}

/// An RTP or RTCP packet as the peer connection hands it to the interceptors once SRTP has
/// decrypted it: told apart by the payload-type byte, RTCP compound packets split up.
pub fn parse_rtp_or_rtcp(bytes: &[u8]) -> Option<rtc::interceptor::Packet> {
    use rtc::shared::marshal::Unmarshal;
    let mut buf = bytes;
    if rtc::shared::util::is_rtcp(bytes) {
        let packets = rtc::rtcp::packet::unmarshal(&mut buf).ok()?;
        (!packets.is_empty()).then_some(rtc::interceptor::Packet::Rtcp(packets))
    } else {
        rtc::rtp::Packet::unmarshal(&mut buf)
            .ok()
            .map(rtc::interceptor::Packet::Rtp)
    }
}

/// The stream a transport target's packets belong to, read from the input's first record:
/// media SSRC, RTX SSRC, FEC SSRC (big-endian `u32`s), then the media, RTX and FEC payload
/// types and the id of the transport-wide sequence number extension (`u8`s). Missing bytes
/// are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamConfig {
    /// Media SSRC.
    pub ssrc: u32,
    /// RTX SSRC.
    pub ssrc_rtx: u32,
    /// FlexFEC SSRC.
    pub ssrc_fec: u32,
    /// Media payload type.
    pub payload_type: u8,
    /// RTX payload type.
    pub payload_type_rtx: u8,
    /// FlexFEC payload type.
    pub payload_type_fec: u8,
    /// Header extension id of the transport-wide sequence number.
    pub twcc_extension_id: u8,
}

impl StreamConfig {
    /// Length of the encoded form.
    pub const LEN: usize = 16;

    /// Reads a config from `record` (zero where it is short).
    pub fn parse(record: &[u8]) -> Self {
        let mut b = [0u8; Self::LEN];
        let n = record.len().min(Self::LEN);
        b[..n].copy_from_slice(&record[..n]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            ssrc: u32_at(0),
            ssrc_rtx: u32_at(4),
            ssrc_fec: u32_at(8),
            payload_type: b[12],
            payload_type_rtx: b[13],
            payload_type_fec: b[14],
            twcc_extension_id: b[15],
        }
    }

    /// The encoded form [`StreamConfig::parse`] reads.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        for v in [self.ssrc, self.ssrc_rtx, self.ssrc_fec] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[
            self.payload_type,
            self.payload_type_rtx,
            self.payload_type_fec,
            self.twcc_extension_id,
        ]);
        out
    }

    /// The H.264 video stream as the peer connection binds it to its interceptors: NACK,
    /// PLI, FIR and transport-wide congestion control feedback, RTX and FlexFEC.
    pub fn stream_info(&self) -> rtc::interceptor::StreamInfo {
        use rtc::interceptor::{RTCPFeedback, RTPHeaderExtension, StreamInfo};
        let feedback = |typ: &str, parameter: &str| RTCPFeedback {
            typ: typ.into(),
            parameter: parameter.into(),
        };
        StreamInfo {
            ssrc: self.ssrc,
            ssrc_rtx: Some(self.ssrc_rtx),
            ssrc_fec: Some(self.ssrc_fec),
            payload_type: self.payload_type,
            payload_type_rtx: Some(self.payload_type_rtx),
            payload_type_fec: Some(self.payload_type_fec),
            rtp_header_extensions: vec![RTPHeaderExtension {
                uri: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
                    .into(),
                id: u16::from(self.twcc_extension_id),
            }],
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .into(),
            rtcp_feedback: vec![
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("ccm", "fir"),
                feedback("transport-cc", ""),
            ],
        }
    }
}

/// A packet read from the wire at `now`, as the interceptors receive it.
pub fn tagged(now: Instant, packet: rtc::interceptor::Packet) -> rtc::interceptor::TaggedPacket {
    rtc::interceptor::TaggedPacket {
        now,
        transport: Default::default(),
        message: rtc::interceptor::AttributedPacket::new(packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_configs_round_trip() {
        let config = StreamConfig {
            ssrc: 1,
            ssrc_rtx: 2,
            ssrc_fec: 3,
            payload_type: 96,
            payload_type_rtx: 97,
            payload_type_fec: 118,
            twcc_extension_id: 5,
        };
        assert_eq!(StreamConfig::parse(&config.encode()), config);
    }

    #[test]
    fn records_round_trip() {
        let data = encode_records([&b"ab"[..], b"", b"cde"]);
        assert_eq!(
            Records::new(&data).collect::<Vec<_>>(),
            vec![&b"ab"[..], b"", b"cde"]
        );
        assert_eq!(
            Records::new(&[0, 5, 1]).collect::<Vec<_>>(),
            vec![&[1u8][..]]
        );
    }
}
