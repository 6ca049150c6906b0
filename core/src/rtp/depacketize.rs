//! H.264 RTP payloads (RFC 6184, packetization mode 1) back into an Annex-B access unit.

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Joins one frame's RTP payloads, in sequence order (as [`super::AssembledFrame`] holds
/// them), into one Annex-B access unit. `None` when a payload is malformed or the frame holds
/// no NAL unit: the decoder then needs a keyframe.
pub fn depacketize_h264(payloads: &[Bytes]) -> Option<Bytes> {
    let mut depacketizer = H264Packet::default();
    let mut access_unit = BytesMut::new();
    for payload in payloads {
        match depacketizer.depacketize(payload) {
            Ok(nalus) => access_unit.extend_from_slice(&nalus),
            Err(_) => return None,
        }
    }
    (!access_unit.is_empty()).then(|| access_unit.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: [u8; 4] = [0, 0, 0, 1];

    #[test]
    fn single_nal_units_and_aggregates_become_annex_b() {
        // A single NAL unit (an SPS), then a STAP-A holding a PPS and an IDR slice.
        let single = Bytes::from_static(&[0x67, 1, 2]);
        let stap_a = Bytes::from_static(&[0x78, 0, 2, 0x68, 3, 0, 2, 0x65, 4]);
        let au = depacketize_h264(&[single, stap_a]).expect("an access unit");
        let mut expected = Vec::new();
        for nal in [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]] {
            expected.extend_from_slice(&START);
            expected.extend_from_slice(nal);
        }
        assert_eq!(&au[..], &expected[..]);
    }

    #[test]
    fn fragments_are_joined() {
        // FU-A: indicator 0x7C (NRI 3, type 28), header start/end bits with type 5 (IDR).
        let first = Bytes::from_static(&[0x7C, 0x85, 10, 11]);
        let last = Bytes::from_static(&[0x7C, 0x45, 12]);
        let au = depacketize_h264(&[first, last]).expect("an access unit");
        assert_eq!(&au[..], &[0, 0, 0, 1, 0x65, 10, 11, 12]);
    }

    #[test]
    fn malformed_or_empty_frames_are_refused() {
        assert!(depacketize_h264(&[]).is_none());
        assert!(depacketize_h264(&[Bytes::new()]).is_none());
        // A STAP-A whose length runs past the payload.
        assert!(depacketize_h264(&[Bytes::from_static(&[0x78, 0, 9, 0x65])]).is_none());
    }
}
