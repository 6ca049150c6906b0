//! Received audio RTP into samples, as a client's subscription does (`read_audio` and the
//! decoder thread in `core/src/room/subscribe.rs`): an Opus RTP payload is one Opus packet
//! (RFC 7587), late and duplicate packets are dropped, the last frame of a gap is recovered from
//! the next packet's in-band FEC and the ones before it concealed (up to a limit), and every
//! packet goes through `OpusDecoder`. Every decoded frame is 48 kHz and at most 120 ms long.
//!
//! Input: [`Records`], one RTP packet each (after SRTP).

use aula_core::media::{OpusDecoder, AUDIO_SAMPLE_RATE};
use rtc::shared::marshal::Unmarshal;

use crate::Records;

/// Most consecutive lost frames concealed (`MAX_CONCEALED_FRAMES` in the subscription).
const MAX_CONCEALED_FRAMES: u16 = 5;
/// The most samples one Opus packet decodes to: 120 ms at 48 kHz.
const MAX_SAMPLES: usize = 5760;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut decoder = OpusDecoder::new().expect("an Opus decoder");
    let mut last_sequence: Option<u16> = None;
    for bytes in Records::new(data) {
        let mut buf = bytes;
        let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut buf) else {
            continue;
        };
        let seq = packet.header.sequence_number;
        let mut lost = 0;
        if let Some(last) = last_sequence {
            let delta = seq.wrapping_sub(last);
            if delta == 0 || delta > 0x8000 {
                continue;
            }
            lost = delta - 1;
        }
        last_sequence = Some(seq);
        for _ in 1..lost.min(MAX_CONCEALED_FRAMES) {
            check(decoder.conceal());
        }
        if lost > 0 {
            check(decoder.decode_fec(&packet.payload));
        }
        check(decoder.decode(&packet.payload));
    }
}

fn check(decoded: Result<aula_core::media::AudioFrame, aula_core::media::MediaError>) {
    if let Ok(frame) = decoded {
        assert_eq!(frame.sample_rate, AUDIO_SAMPLE_RATE);
        assert!(
            frame.samples.len() <= MAX_SAMPLES,
            "{}",
            frame.samples.len()
        );
    }
}
