//! RTP helpers that do no IO.

pub mod depacketize;
pub mod frame_assembler;

pub use depacketize::depacketize_h264;
pub use frame_assembler::{
    AdaptiveWait, AssembledFrame, AssemblerCounts, FrameAssembler, MediaPacket,
};
