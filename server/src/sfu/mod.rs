//! The selective forwarding unit: peer connections, published tracks and their fan-out.

mod peer;
mod published_track;
mod rtcp_observer;
mod subscriber;

pub use peer::{GatherSignal, PeerError, SendSide, ServerPeer};
pub use published_track::{
    KeyframeDecision, KeyframeThrottle, PublishedTrack, MIN_KEYFRAME_REQUEST_INTERVAL,
};
pub use rtcp_observer::{RtcpObserver, RTCP_OBSERVER_SLOT};
pub use subscriber::{Negotiation, Subscriber};
