//! Received video RTP into frames, as a client's subscription does (`read_video` in
//! `core/src/room/subscribe.rs`): packets that arrive late, twice or out of order go through
//! the frame assembler (polled every 20 ms as there), each complete frame's payloads through
//! the H.264 depacketizer into an access unit, and a keyframe answers the last request.
//!
//! Input: [`TimedRecords`], one RTP packet each (after SRTP).

use std::time::{Duration, Instant};

use crate::TimedRecords;
use aula_core::media::H264Decoder;
use aula_core::rtp::{depacketize_h264, FrameAssembler, MediaPacket};
use rtc::shared::marshal::Unmarshal;

/// How often the subscription polls its assembler.
const TICK: Duration = Duration::from_millis(20);

/// Runs one input.
pub fn run(data: &[u8]) {
    let start = Instant::now();
    let mut assembler = FrameAssembler::default();
    let mut polled = start;
    let mut asked = Some(start);
    let mut frames = Vec::new();
    for (now, bytes) in TimedRecords::new(data, start) {
        while polled + TICK <= now {
            polled += TICK;
            frames.extend(assembler.poll(polled));
        }
        let mut buf = bytes;
        let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut buf) else {
            continue;
        };
        frames.extend(assembler.push(
            MediaPacket {
                sequence: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload: packet.payload,
            },
            now,
        ));
        for frame in frames.drain(..) {
            let Some(access_unit) = depacketize_h264(&frame.payloads) else {
                asked.get_or_insert(now);
                continue;
            };
            if H264Decoder::is_keyframe(&access_unit) {
                if let Some(at) = asked.take() {
                    assembler.on_requested_keyframe(now.saturating_duration_since(at));
                }
            }
        }
    }
    let _ = assembler.poll(polled + Duration::from_secs(2));
    let _ = (assembler.counts(), assembler.loss_wait());
}
