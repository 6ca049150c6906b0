//! Session descriptions from the other side, applied to a sans-IO `rtc` peer connection set up
//! as Aula's: the server's (ICE-lite, FlexFEC, Aula's interceptors and their header extensions,
//! `server/src/sfu/peer.rs`) or a client's (`core/src/room/peer.rs`). Either side answers an
//! offer (the server a publisher's, a client the server's subscriber offer) or applies the
//! answer to an offer of its own (receive-only audio and video here).
//!
//! Input: a mode byte (bit 0: client rather than server; bit 1: apply an answer rather than
//! answer an offer), then the SDP text.

use std::time::Instant;

use crate::peer::peer;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&mode, sdp)) = data.split_first() else {
        return;
    };
    let Ok(sdp) = std::str::from_utf8(sdp) else {
        return;
    };
    let (client, apply_answer) = (mode & 1 != 0, mode & 2 != 0);
    let now = Instant::now();
    let mut pc = peer(client, now);
    if apply_answer {
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(kind, None)
                .expect("a receive-only transceiver");
        }
        let offer = pc.create_offer(None).expect("an offer");
        pc.set_local_description(now, offer)
            .expect("the own offer applies");
        let Ok(answer) = RTCSessionDescription::answer(sdp.to_owned()) else {
            return;
        };
        let _ = pc.set_remote_description(now, answer);
    } else {
        let Ok(offer) = RTCSessionDescription::offer(sdp.to_owned()) else {
            return;
        };
        if pc.set_remote_description(now, offer).is_ok() {
            if let Ok(answer) = pc.create_answer(None) {
                let _ = pc.set_local_description(now, answer);
            }
        }
    }
    let _ = pc.local_description();
}
