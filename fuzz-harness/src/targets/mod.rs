//! One module per fuzz target; each `run` takes one input, as libFuzzer (`fuzz/fuzz_targets/`) and
//! the corpus replay test (`tests/corpus.rs`, stable) call it.

pub mod api_bodies;
pub mod camera_convert;
pub mod fec_recovery;
pub mod ice_candidate;
pub mod opus_packets;
pub mod rtcp_feedback;
pub mod rtp_frames;
pub mod rtx_unwrap;
pub mod sdp;
pub mod signal_client_message;
pub mod signal_server_message;
pub mod stun_ufrag;
pub mod token;
pub mod webhook;
pub mod whiteboard_client;
pub mod whiteboard_frame;
pub mod whiteboard_update;

/// A target's entry point: one input, any bytes.
pub type Run = fn(&[u8]);

/// Every target by name (the name of its `fuzz/fuzz_targets/` binary and `fuzz/corpus/`
/// directory).
pub const ALL: &[(&str, Run)] = &[
    ("api_bodies", api_bodies::run),
    ("camera_convert", camera_convert::run),
    ("fec_recovery", fec_recovery::run),
    ("ice_candidate", ice_candidate::run),
    ("opus_packets", opus_packets::run),
    ("rtcp_feedback", rtcp_feedback::run),
    ("rtp_frames", rtp_frames::run),
    ("rtx_unwrap", rtx_unwrap::run),
    ("sdp", sdp::run),
    ("signal_client_message", signal_client_message::run),
    ("signal_server_message", signal_server_message::run),
    ("stun_ufrag", stun_ufrag::run),
    ("token", token::run),
    ("webhook", webhook::run),
    ("whiteboard_client", whiteboard_client::run),
    ("whiteboard_frame", whiteboard_frame::run),
    ("whiteboard_update", whiteboard_update::run),
];
