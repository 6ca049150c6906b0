//! RTP helpers that do no IO.

pub mod frame_assembler;

pub use frame_assembler::{
    AdaptiveWait, AssembledFrame, AssemblerCounts, FrameAssembler, MediaPacket,
};
