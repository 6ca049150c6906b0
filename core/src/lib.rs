//! Aula client engine: rooms, participants, tracks, codecs and synthetic sources.
//!
//! [`Room::connect`] joins a room on an Aula server; the room publishes [`VideoSource`]s and
//! [`AudioSource`]s (H.264 and Opus, encoded on dedicated threads), receives everyone else's
//! tracks, decodes them off the async workers and hands frames to [`VideoSink`]s and
//! [`AudioSink`]s. [`media`] holds the codecs and the synthetic sources whose stamped frames let
//! tests and benchmarks check what arrived and how late. [`devices`] lists and opens real
//! cameras, microphones, speakers and screens (desktop features `camera`, `audio-devices` and
//! `screen`, on by default).
#![deny(missing_docs)]

pub mod clock;
pub mod devices;
pub mod frame_log;
pub mod media;
pub mod netsim;
pub mod room;
pub mod rtp;
pub mod signal_client;
pub mod stats;
pub mod whiteboard;

pub use room::{
    app_video_source, AppFeedStats, AppVideoFeed, AppVideoSource, EncodedVideoFeed, PushOutcome,
};
pub use room::{
    AudioSink, AudioSource, ChatDraft, ClassroomView, ConnectionState, DisconnectReason, IceServer,
    MediaTransport, Room, RoomError, RoomEvent, RoomOptions, RoomStats, VideoPublishOptions,
    VideoSink, VideoSource,
};
pub use stats::{Percentiles, PublishedLayerStats, PublishedStats, ReceivedStats, RecoveryStats};
pub use whiteboard::{Whiteboard, WhiteboardError, WhiteboardEvent};
