//! Synthetic media sources: moving, stamped video and a sine tone, for tests, benchmarks and
//! headless participants.

use super::frame::MAX_DIMENSION;
use super::stamp::stamp_fits;
use super::{
    write_stamp, AudioFrame, FrameStamp, MediaError, VideoFrame, AUDIO_FRAME_SAMPLES,
    AUDIO_SAMPLE_RATE,
};

/// Highest frame rate a synthetic source accepts.
const MAX_FPS: u32 = 240;

/// Generates moving I420 video (a scrolling diagonal gradient and a bouncing rectangle) and
/// stamps every frame with [`write_stamp`].
///
/// Each frame costs a table lookup per luma pixel and per chroma sample, integer arithmetic
/// only, so 1280x720 at 30 fps is cheap.
#[derive(Debug)]
pub struct SyntheticVideoSource {
    width: u32,
    height: u32,
    fps: u32,
    /// Frames produced so far; drives the motion.
    index: u64,
    /// Video-range luma for each gradient phase 0..=255.
    luma_ramp: [u8; 256],
}

impl SyntheticVideoSource {
    /// A source of `width` x `height` frames meant to be pulled `fps` times a second.
    ///
    /// Width and height must be even, at least 160x90 (so the stamp fits) and at most
    /// 4096x4096; `fps` must be 1..=240.
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, MediaError> {
        if width & 1 != 0 || height & 1 != 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(MediaError::InvalidConfig(format!(
                "synthetic video size {width}x{height} must be even and at most {MAX_DIMENSION}"
            )));
        }
        if width < 160 || height < 90 || !stamp_fits(width, height) {
            return Err(MediaError::InvalidConfig(format!(
                "synthetic video size {width}x{height} is below the 160x90 minimum"
            )));
        }
        if fps == 0 || fps > MAX_FPS {
            return Err(MediaError::InvalidConfig(format!(
                "synthetic video frame rate {fps} must be 1..={MAX_FPS}"
            )));
        }
        let mut luma_ramp = [0u8; 256];
        for (i, v) in luma_ramp.iter_mut().enumerate() {
            // A triangle wave, so the gradient has no hard edge where it wraps.
            let tri = if i < 128 { i * 2 } else { (255 - i) * 2 };
            *v = (16 + tri * 219 / 255) as u8;
        }
        Ok(Self {
            width,
            height,
            fps,
            index: 0,
            luma_ramp,
        })
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Frames per second this source is meant to be pulled at.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// The next frame, different from the previous one, carrying `stamp`.
    ///
    /// The frame's `timestamp_us` is `stamp.capture_time_us`.
    pub fn frame(&mut self, stamp: FrameStamp) -> VideoFrame {
        let (w, h) = (self.width as usize, self.height as usize);
        let t = self.index;
        self.index = self.index.wrapping_add(1);
        let mut frame = VideoFrame::new_black(self.width, self.height);
        frame.timestamp_us = stamp.capture_time_us;

        // Scrolling diagonal gradient: 4 px per frame, so luma and chroma (below) move by
        // the same whole-pixel motion vector and stay cheap to code.
        let phase = (t.wrapping_mul(4) & 0xFF) as usize;
        for (row, line) in frame.y.chunks_exact_mut(w).enumerate() {
            let base = row + phase;
            for (x, p) in line.iter_mut().enumerate() {
                *p = self.luma_ramp[(base + x) & 0xFF];
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        let cphase = (t.wrapping_mul(2) & 0xFF) as usize;
        for (row, (u_line, v_line)) in frame
            .u
            .chunks_exact_mut(cw)
            .zip(frame.v.chunks_exact_mut(cw))
            .enumerate()
        {
            let v_val = 64 + ((row * 128 / ch.max(1)) as u8);
            v_line.fill(v_val);
            for (x, c) in u_line.iter_mut().enumerate() {
                *c = 64 + (self.luma_ramp[(x + cphase) & 0xFF] >> 1);
            }
        }

        // A bouncing rectangle.
        let (rw, rh) = ((w / 6) & !1, (h / 5) & !1);
        let (x, y) = (
            bounce(t, (w / 160).max(2) as u64, w - rw) & !1,
            bounce(t, (h / 120).max(2) as u64, h - rh) & !1,
        );
        for row in y..y + rh {
            if let Some(line) = frame.y.get_mut(row * w + x..row * w + x + rw) {
                line.fill(210);
            }
        }
        for row in y / 2..(y + rh) / 2 {
            let start = row * cw + x / 2;
            if let Some(line) = frame.u.get_mut(start..start + rw / 2) {
                line.fill(60);
            }
            if let Some(line) = frame.v.get_mut(start..start + rw / 2) {
                line.fill(200);
            }
        }

        write_stamp(&mut frame, stamp);
        frame
    }
}

/// Position at step `t` of a point moving `speed` per step back and forth over `0..=range`.
fn bounce(t: u64, speed: u64, range: usize) -> usize {
    let range = range as u64;
    if range == 0 {
        return 0;
    }
    let travelled = t.wrapping_mul(speed) % (2 * range);
    (if travelled <= range {
        travelled
    } else {
        2 * range - travelled
    }) as usize
}

/// Generates a continuous 48 kHz mono sine tone in 20 ms frames.
#[derive(Debug)]
pub struct SyntheticAudioSource {
    /// Phase advance per sample, in radians.
    step: f64,
    /// Current phase, in radians, kept in `0..2π`.
    phase: f64,
}

/// Peak amplitude of the tone (about -12 dBFS).
const TONE_AMPLITUDE: f64 = 8192.0;

impl SyntheticAudioSource {
    /// A tone of `frequency_hz`. A frequency that is not finite or not in 1 Hz..=20 kHz is
    /// replaced by 440 Hz.
    pub fn new(frequency_hz: f32) -> Self {
        let f = if frequency_hz.is_finite() && (1.0..=20_000.0).contains(&frequency_hz) {
            f64::from(frequency_hz)
        } else {
            440.0
        };
        Self {
            step: std::f64::consts::TAU * f / f64::from(AUDIO_SAMPLE_RATE),
            phase: 0.0,
        }
    }

    /// The next 20 ms ([`AUDIO_FRAME_SAMPLES`] samples) of the tone, continuing its phase.
    pub fn next_frame(&mut self) -> AudioFrame {
        let mut samples = Vec::with_capacity(AUDIO_FRAME_SAMPLES);
        for _ in 0..AUDIO_FRAME_SAMPLES {
            samples.push((self.phase.sin() * TONE_AMPLITUDE).round() as i16);
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
        AudioFrame {
            samples,
            sample_rate: AUDIO_SAMPLE_RATE,
            channels: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::read_stamp;

    #[test]
    fn video_frames_are_valid_moving_and_stamped() {
        for (w, h) in [(160, 90), (320, 180), (640, 360), (1280, 720)] {
            let mut src = SyntheticVideoSource::new(w, h, 30).expect("valid size");
            assert_eq!((src.width(), src.height(), src.fps()), (w, h, 30));
            let mut previous: Option<VideoFrame> = None;
            for seq in 0..5u32 {
                let stamp = FrameStamp {
                    sequence: seq,
                    capture_time_us: 1_000_000 + u64::from(seq) * 33_333,
                };
                let f = src.frame(stamp);
                f.validate().expect("valid frame");
                assert_eq!(f.timestamp_us, stamp.capture_time_us);
                assert_eq!(read_stamp(&f), Some(stamp));
                if let Some(p) = &previous {
                    // Content below the stamp changes every frame.
                    let below = (w * h / 2) as usize;
                    assert_ne!(p.y[below..], f.y[below..], "{w}x{h} frame {seq}");
                }
                previous = Some(f);
            }
        }
    }

    #[test]
    fn video_source_rejects_bad_sizes() {
        assert!(SyntheticVideoSource::new(0, 0, 30).is_err());
        assert!(SyntheticVideoSource::new(641, 360, 30).is_err());
        assert!(SyntheticVideoSource::new(128, 72, 30).is_err());
        assert!(SyntheticVideoSource::new(8192, 360, 30).is_err());
        assert!(SyntheticVideoSource::new(640, 360, 0).is_err());
    }

    #[test]
    fn bounce_stays_in_range() {
        for t in 0..1000 {
            assert!(bounce(t, 7, 100) <= 100);
        }
        assert_eq!(bounce(3, 10, 100), 30);
        assert_eq!(bounce(13, 10, 100), 70);
    }

    #[test]
    fn tone_is_continuous_and_at_moderate_level() {
        let mut src = SyntheticAudioSource::new(440.0);
        let a = src.next_frame();
        let b = src.next_frame();
        assert_eq!(a.samples.len(), AUDIO_FRAME_SAMPLES);
        assert_eq!((a.sample_rate, a.channels), (48_000, 1));
        let peak = a
            .samples
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0);
        assert!((8000..=8192).contains(&peak), "peak {peak}");
        // Continuity: the step across the frame boundary is like any step inside a frame.
        let max_step = a
            .samples
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        let across = (i32::from(b.samples[0]) - i32::from(a.samples[959])).abs();
        assert!(across <= max_step + 1, "{across} > {max_step}");
        // Bad frequencies fall back instead of producing NaN or silence.
        let f = SyntheticAudioSource::new(f32::NAN).next_frame();
        assert!(f.samples.iter().any(|&s| s.unsigned_abs() > 4000));
    }
}
