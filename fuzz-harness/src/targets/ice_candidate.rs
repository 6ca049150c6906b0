//! An ICE candidate a client trickles to the server (`ClientMessage::Trickle`, applied with
//! `add_ice_candidate` in `server/src/session.rs`): parsed as the connection parses it, and,
//! when it parses, added to a server connection that has answered a client's offer (setting
//! that up is most of the work, so only candidates that parse pay for it).
//!
//! Input: the `m=` line index (`u8`), then the candidate attribute text (`candidate:...`).

use std::sync::OnceLock;
use std::time::Instant;

use crate::peer::peer;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

/// An offer as a client makes one (audio and video), made once.
fn offer() -> String {
    static OFFER: OnceLock<String> = OnceLock::new();
    OFFER
        .get_or_init(|| {
            let mut client = peer(true, Instant::now());
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                client
                    .add_transceiver_from_kind(kind, None)
                    .expect("a transceiver");
            }
            client.create_offer(None).expect("an offer").sdp
        })
        .clone()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&index, candidate)) = data.split_first() else {
        return;
    };
    let Ok(candidate) = std::str::from_utf8(candidate) else {
        return;
    };
    let value = candidate.strip_prefix("candidate:").unwrap_or(candidate);
    if rtc::ice::candidate::unmarshal_candidate(value).is_err() {
        return;
    }
    let now = Instant::now();
    let mut server = peer(false, now);
    let offer = RTCSessionDescription::offer(offer()).expect("the client's offer parses");
    server
        .set_remote_description(now, offer)
        .expect("the client's offer applies");
    let answer = server.create_answer(None).expect("an answer");
    server
        .set_local_description(now, answer)
        .expect("the answer applies");
    let _ = server.add_remote_candidate(RTCIceCandidateInit {
        candidate: candidate.to_owned(),
        sdp_mid: Some(index.to_string()),
        sdp_mline_index: Some(u16::from(index)),
        username_fragment: None,
        url: None,
    });
}
