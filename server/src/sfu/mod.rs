//! The selective forwarding unit: peer connections, published tracks and their fan-out.

mod codecs;
mod layers;
mod peer;
mod published_track;
mod rtcp_observer;
mod send_barrier;
mod subscriber;

pub use codecs::{
    hide_uncarried_formats, is_carried_h264, register_room_codecs, H264_FMTP, OPUS_FMTP,
};
pub use layers::{
    choose_layers, starts_keyframe, Forward, LayerSwitcher, TrackDemand, WantedLayers,
};
pub use peer::{GatherSignal, PeerError, SendSide, ServerPeer};
pub use published_track::{
    KeyframeDecision, KeyframeThrottle, LayerPacket, PublishedTrack, MIN_KEYFRAME_REQUEST_INTERVAL,
};
pub use rtcp_observer::{RtcpObserver, RTCP_OBSERVER_SLOT};
pub use send_barrier::{SendBarrier, SendBarrierInterceptor, SEND_BARRIER_SLOT};
pub use subscriber::{Negotiation, Subscriber};
