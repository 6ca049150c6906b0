//! Aula's media transport, shared by the client core and the server.
//!
//! Both ends of every Aula media path run the `webrtc` stack; this crate holds the pieces of
//! RTP/RTCP machinery they have in common, as `rtc` interceptors around plain, sans-IO logic:
//! keyframe requests delivered to the application ([`keyframe_requests`]), RTX retransmissions
//! turned back into the packets they repair ([`rtx_unwrap`]), loss recovery by NACK
//! ([`nack`]) and FEC ([`fec`]), and send-side bandwidth estimation ([`bwe`]). It does no IO of its
//! own and knows nothing of signaling (that is `aula-protocol`).
#![deny(missing_docs)]

pub mod bwe;
pub mod fec;
pub mod keyframe_requests;
pub mod nack;
pub mod rtx_unwrap;
