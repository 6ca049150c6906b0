//! Raw media frames: I420 video and interleaved 16-bit PCM audio.

use super::MediaError;

/// Sample rate of all Aula audio, in Hz.
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono audio frame at [`AUDIO_SAMPLE_RATE`].
pub const AUDIO_FRAME_SAMPLES: usize = 960;
/// Largest accepted frame width or height, in pixels.
pub const MAX_DIMENSION: u32 = 4096;

/// A raw video frame in I420 (planar YUV 4:2:0), tightly packed.
///
/// The Y plane has `width * height` bytes with stride `width`; the U and V planes each have
/// `(width / 2) * (height / 2)` bytes with stride `width / 2`. Width and height are even.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Width in pixels (even, non-zero).
    pub width: u32,
    /// Height in pixels (even, non-zero).
    pub height: u32,
    /// Luma plane, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb plane, `(width / 2) * (height / 2)` bytes.
    pub u: Vec<u8>,
    /// Cr plane, `(width / 2) * (height / 2)` bytes.
    pub v: Vec<u8>,
    /// Presentation or capture time in microseconds (meaning chosen by the producer).
    pub timestamp_us: u64,
}

impl VideoFrame {
    /// A black frame (Y = 16, U = V = 128, video range) of the given size.
    ///
    /// The size is not checked here: call [`VideoFrame::validate`] when it comes from outside.
    /// Odd sizes get chroma planes of `(width / 2) * (height / 2)` bytes and will not validate.
    pub fn new_black(width: u32, height: u32) -> Self {
        let luma = width as usize * height as usize;
        let chroma = (width / 2) as usize * (height / 2) as usize;
        Self {
            width,
            height,
            y: vec![16; luma],
            u: vec![128; chroma],
            v: vec![128; chroma],
            timestamp_us: 0,
        }
    }

    /// Checks dimensions (non-zero, even, at most [`MAX_DIMENSION`]) and plane sizes.
    pub fn validate(&self) -> Result<(), MediaError> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 {
            return Err(MediaError::InvalidFrame(format!("empty frame {w}x{h}")));
        }
        if w & 1 != 0 || h & 1 != 0 {
            return Err(MediaError::InvalidFrame(format!("odd frame size {w}x{h}")));
        }
        if w > MAX_DIMENSION || h > MAX_DIMENSION {
            return Err(MediaError::InvalidFrame(format!(
                "frame {w}x{h} larger than {MAX_DIMENSION}x{MAX_DIMENSION}"
            )));
        }
        let luma = w as usize * h as usize;
        let chroma = luma / 4;
        if self.y.len() != luma {
            return Err(MediaError::InvalidFrame(format!(
                "Y plane has {} bytes, {w}x{h} needs {luma}",
                self.y.len()
            )));
        }
        if self.u.len() != chroma || self.v.len() != chroma {
            return Err(MediaError::InvalidFrame(format!(
                "U/V planes have {}/{} bytes, {w}x{h} needs {chroma}",
                self.u.len(),
                self.v.len()
            )));
        }
        Ok(())
    }
}

/// A block of interleaved signed 16-bit PCM audio.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Interleaved samples (`frames * channels` values).
    pub samples: Vec<i16>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_frame_validates_and_bad_frames_do_not() {
        let f = VideoFrame::new_black(640, 360);
        assert!(f.validate().is_ok());
        assert_eq!(f.u.len(), 320 * 180);
        assert!(VideoFrame::new_black(641, 360).validate().is_err());
        assert!(VideoFrame::new_black(0, 360).validate().is_err());
        assert!(VideoFrame::new_black(4098, 2).validate().is_err());
        let mut short = VideoFrame::new_black(64, 64);
        short.y.pop();
        assert!(short.validate().is_err());
        let mut short_v = VideoFrame::new_black(64, 64);
        short_v.v.pop();
        assert!(short_v.validate().is_err());
    }
}
