//! The codecs a room carries, and nothing else.
//!
//! The SFU forwards packets without decoding them, so whatever one participant sends must be
//! what every other participant decodes: H.264 constrained baseline in packetization mode 1 and
//! Opus, as Aula clients send and decode them. A server connection registers only these (plus
//! the repair formats that accompany H.264: RTX and FlexFEC), so an offer that lists VP8 before
//! H.264, or PCMU before Opus, is answered with H.264 and Opus; a media section that offers
//! neither is rejected in the answer (port 0), which tells the client's WebRTC stack at once.

use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};

/// The H.264 format a room carries: constrained baseline, packetization mode 1 (RFC 6184).
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// The Opus format a room carries (RFC 7587): in-band FEC on.
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// Payload type the server gives H.264 in its offers (as Aula clients number it).
const H264_PAYLOAD_TYPE: u8 = 125;
/// Payload type of H.264's retransmission format (RFC 4588).
const H264_RTX_PAYLOAD_TYPE: u8 = 105;
/// Payload type the server gives Opus in its offers.
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Registers the codecs a room carries, and only them. Call before the interceptors are
/// registered (they add their feedback types to every registered codec).
pub fn register_room_codecs(
    media_engine: &mut MediaEngine,
) -> Result<(), rtc::shared::error::Error> {
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: OPUS_FMTP.to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: H264_FMTP.to_owned(),
                rtcp_feedback: vec![
                    feedback("goog-remb", ""),
                    feedback("ccm", "fir"),
                    feedback("nack", ""),
                    feedback("nack", "pli"),
                ],
            },
            payload_type: H264_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_RTX.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={H264_PAYLOAD_TYPE}"),
                rtcp_feedback: vec![],
            },
            payload_type: H264_RTX_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )
}

/// Whether an offered H.264 format is one a room carries: packetization mode 1 and a
/// constrained baseline profile (`profile_idc` 66 with `constraint_set1_flag`, RFC 6184
/// section 8.1), whatever its level.
pub fn is_carried_h264(fmtp: &str) -> bool {
    let mut packetization_mode_1 = false;
    let mut constrained_baseline = false;
    for parameter in fmtp.split(';') {
        let Some((key, value)) = parameter.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        if key.trim().eq_ignore_ascii_case("packetization-mode") {
            packetization_mode_1 = value == "1";
        } else if key.trim().eq_ignore_ascii_case("profile-level-id") {
            constrained_baseline = value.len() == 6
                && u8::from_str_radix(&value[..2], 16) == Ok(0x42)
                && u8::from_str_radix(&value[2..4], 16).is_ok_and(|iop| iop & 0x40 != 0);
        }
    }
    packetization_mode_1 && constrained_baseline
}

/// Encoding name given to an offered format the room cannot carry, so that the WebRTC stack
/// cannot pick it. It never leaves the server: answers list only formats that matched.
const HIDDEN_ENCODING: &str = "x-aula-not-carried";

/// Hides, in a client's offer, the H.264 formats the room does not carry (another profile, or
/// packetization mode 0), before the offer is applied.
///
/// The WebRTC stack matches offered formats against the registered ones by MIME type and
/// format parameters, and when nothing matches exactly it falls back to the MIME type alone:
/// an offer of H.264 High profile only would be accepted as if it were constrained baseline,
/// and its video would reach subscribers that cannot decode it. Renaming such a format's
/// encoding leaves the offer well-formed (every payload type keeps its `a=rtpmap`), and a
/// section left with nothing the room carries is rejected in the answer as usual. The
/// retransmission formats of hidden formats fall away with them (their `apt` matches nothing).
pub fn hide_uncarried_formats(offer: &str) -> String {
    let hidden: Vec<(usize, String)> = {
        let mut media_index = 0;
        let mut h264: Vec<(usize, String)> = Vec::new();
        let mut carried: Vec<(usize, String)> = Vec::new();
        for line in offer.lines() {
            if line.starts_with("m=") {
                media_index += 1;
            } else if let Some((pt, encoding)) = rtpmap(line) {
                if encoding
                    .split('/')
                    .next()
                    .is_some_and(|name| name.eq_ignore_ascii_case("H264"))
                {
                    h264.push((media_index, pt.to_owned()));
                }
            } else if let Some((pt, parameters)) = fmtp(line) {
                if is_carried_h264(parameters) {
                    carried.push((media_index, pt.to_owned()));
                }
            }
        }
        h264.retain(|format| !carried.contains(format));
        h264
    };
    if hidden.is_empty() {
        return offer.to_owned();
    }
    let mut out = String::with_capacity(offer.len());
    let mut media_index = 0;
    for line in offer.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.starts_with("m=") {
            media_index += 1;
        }
        if let Some((pt, encoding)) = rtpmap(trimmed) {
            if hidden.contains(&(media_index, pt.to_owned())) {
                let clock = encoding.split_once('/').map_or("", |(_, rest)| rest);
                out.push_str(&format!("a=rtpmap:{pt} {HIDDEN_ENCODING}/{clock}"));
                out.push_str(&line[trimmed.len()..]);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// `a=rtpmap:PT ENCODING/CLOCK[/CHANNELS]` → (PT, ENCODING/CLOCK...).
fn rtpmap(line: &str) -> Option<(&str, &str)> {
    line.trim_end()
        .strip_prefix("a=rtpmap:")?
        .split_once(' ')
        .map(|(pt, rest)| (pt, rest.trim()))
}

/// `a=fmtp:PT PARAMETERS` → (PT, PARAMETERS).
fn fmtp(line: &str) -> Option<(&str, &str)> {
    line.trim_end()
        .strip_prefix("a=fmtp:")?
        .split_once(' ')
        .map(|(pt, rest)| (pt, rest.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_baseline_in_mode_1_is_carried_and_nothing_else() {
        assert!(is_carried_h264(H264_FMTP));
        assert!(is_carried_h264(
            "profile-level-id=42E01F;packetization-mode=1"
        ));
        // Constrained baseline by constraint_set1 alone, another level.
        assert!(is_carried_h264(
            "packetization-mode=1;profile-level-id=424028"
        ));
        assert!(!is_carried_h264(
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"
        ));
        assert!(!is_carried_h264(
            "packetization-mode=1;profile-level-id=42001f"
        ));
        assert!(!is_carried_h264(
            "packetization-mode=1;profile-level-id=640c1f"
        ));
        assert!(!is_carried_h264("packetization-mode=1"));
        assert!(!is_carried_h264("profile-level-id=42e01f"));
        assert!(!is_carried_h264("packetization-mode=1;profile-level-id=zz"));
    }

    const OFFER: &str = "v=0\r\n\
        o=- 1 1 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 103 123\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 packetization-mode=1;profile-level-id=640c1f\r\n\
        a=rtpmap:103 rtx/90000\r\n\
        a=fmtp:103 apt=102\r\n\
        a=rtpmap:123 H264/90000\r\n\
        a=fmtp:123 packetization-mode=1;profile-level-id=42e01f\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 123\r\n\
        a=rtpmap:123 H264/90000\r\n\
        a=fmtp:123 packetization-mode=0;profile-level-id=42e01f\r\n";

    #[test]
    fn uncarried_h264_formats_are_hidden_per_section() {
        let hidden = hide_uncarried_formats(OFFER);
        let lines: Vec<&str> = hidden.split("\r\n").collect();
        // First section: High profile hidden, constrained baseline and VP8 untouched.
        assert!(lines.contains(&"a=rtpmap:102 x-aula-not-carried/90000"));
        assert!(lines.contains(&"a=rtpmap:96 VP8/90000"));
        assert_eq!(
            lines
                .iter()
                .filter(|l| **l == "a=rtpmap:123 H264/90000")
                .count(),
            1,
            "the carried format of section 1 stays, the mode-0 one of section 2 goes: {hidden}"
        );
        assert!(lines.contains(&"a=rtpmap:123 x-aula-not-carried/90000"));
        // Nothing else changed: same line count, same fmtp lines.
        assert_eq!(lines.len(), OFFER.split("\r\n").count());
        assert!(hidden.contains("a=fmtp:103 apt=102\r\n"));
    }

    #[test]
    fn an_offer_with_only_carried_formats_is_unchanged() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n\
                     a=rtpmap:0 PCMU/8000\r\nm=video 9 UDP/TLS/RTP/SAVPF 125\r\n\
                     a=rtpmap:125 H264/90000\r\na=fmtp:125 packetization-mode=1;profile-level-id=42e01f\r\n";
        assert_eq!(hide_uncarried_formats(offer), offer);
    }
}
