//! Pictures from cameras and screens into the I420 the encoder takes
//! (`aula_core::devices::convert::to_i420`, MJPEG included), and the frames an app pushes
//! (`i420_from_buffer`, `nv12_to_i420`). Whatever converts must be a well-formed I420 frame of
//! the even size the picture was said to have.
//!
//! Input: the pixel format (`u8`, an index into the list below), width and height (`u16`s),
//! the row stride (`u32`, 0 for tightly packed; big-endian), then the picture's bytes.

use aula_core::devices::convert::to_i420;
use aula_core::devices::PixelFormat;
use aula_core::media::VideoFrame;
use aula_core::room::{i420_from_buffer, nv12_to_i420};

const FORMATS: [PixelFormat; 10] = [
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::Yuyv,
    PixelFormat::Uyvy,
    PixelFormat::Gray,
    PixelFormat::Rgb24,
    PixelFormat::Bgr24,
    PixelFormat::Bgra,
    PixelFormat::Rgba,
    PixelFormat::Mjpeg,
];

fn check(frame: &VideoFrame, width: u32, height: u32) {
    assert_eq!((frame.width, frame.height), (width & !1, height & !1));
    let luma = frame.width as usize * frame.height as usize;
    assert_eq!(frame.y.len(), luma);
    assert_eq!(frame.u.len(), luma / 4);
    assert_eq!(frame.v.len(), luma / 4);
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let [format, w0, w1, h0, h1, s0, s1, s2, s3, picture @ ..] = data else {
        return;
    };
    let format = FORMATS[usize::from(*format) % FORMATS.len()];
    let width = u32::from(u16::from_be_bytes([*w0, *w1]));
    let height = u32::from(u16::from_be_bytes([*h0, *h1]));
    let stride = u32::from_be_bytes([*s0, *s1, *s2, *s3]) as usize;
    if let Ok(frame) = to_i420(format, width, height, stride, picture, 7) {
        check(&frame, width, height);
        assert_eq!(frame.timestamp_us, 7);
    }
    match format {
        PixelFormat::I420 => {
            if let Ok(frame) = i420_from_buffer(width, height, picture, 0) {
                check(&frame, width, height);
            }
        }
        PixelFormat::Nv12 => {
            let split = (width as usize * height as usize).min(picture.len());
            let (y, uv) = picture.split_at(split);
            if let Ok(frame) = nv12_to_i420(width, height, y, uv, 0) {
                check(&frame, width, height);
            }
        }
        _ => {}
    }
}
