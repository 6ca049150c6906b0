//! Frame helpers for apps and tests: stamped I420 frames and reading stamps back.

use aula_core::media::{read_stamp, write_stamp, SyntheticVideoSource};
use aula_core::room::i420_from_buffer;

use super::bytes::Bytes;
use super::error::AulaError;
use super::records::Stamp;

/// A `width`x`height` I420 test picture (Y, U, V tightly packed) with `stamp` drawn into it,
/// as the synthetic source makes them. Needs at least 160x90 for the stamp.
#[uniffi::export]
pub fn stamped_i420_frame(width: u32, height: u32, stamp: Stamp) -> Result<Bytes, AulaError> {
    let mut source = SyntheticVideoSource::new(width, height, 30)?;
    let mut frame = source.frame(stamp.into());
    write_stamp(&mut frame, stamp.into());
    let mut data = frame.y;
    data.extend_from_slice(&frame.u);
    data.extend_from_slice(&frame.v);
    Ok(data.into())
}

/// The stamp in a tightly packed I420 picture, if it carries an intact one.
#[uniffi::export]
pub fn read_stamp_i420(width: u32, height: u32, data: Bytes) -> Result<Option<Stamp>, AulaError> {
    let frame = i420_from_buffer(width, height, &data, 0)?;
    Ok(read_stamp(&frame).map(Stamp::from))
}
