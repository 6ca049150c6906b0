//! Media: raw frames, codecs (H.264 via openh264, Opus via libopus), frame stamps and
//! synthetic sources.
//!
//! Everything here is synchronous and CPU-bound: encoders and decoders are meant to run on
//! dedicated threads, never on async workers.

mod frame;
mod h264;
mod opus_codec;
mod scale;
mod stamp;
mod synthetic;

pub use frame::{AudioFrame, VideoFrame, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE, MAX_DIMENSION};
pub use h264::{
    EncodedVideoFrame, H264Decoder, H264Encoder, H264EncoderConfig, VideoContent, SCREEN_MAX_QP,
};
pub use opus_codec::{OpusDecoder, OpusEncoder};
pub use scale::{downscale_i420, scaled_size};
pub use stamp::{read_stamp, write_stamp, FrameStamp, STAMP_TIME_MASK};
pub use synthetic::{SyntheticAudioSource, SyntheticVideoSource};

/// Errors from the media layer: bad frames, bad configuration, codec failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The encoder could not be created or failed to encode.
    #[error("encoder error: {0}")]
    Encoder(String),
    /// The decoder could not be created or rejected its input.
    #[error("decoder error: {0}")]
    Decoder(String),
    /// A raw frame has wrong dimensions, plane sizes or sample count.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}
