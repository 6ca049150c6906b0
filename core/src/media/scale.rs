//! Downscaling I420 pictures by whole factors, for sending a smaller picture when the network
//! cannot carry the full one.

use super::VideoFrame;

/// The size of `width`x`height` divided by `factor`, rounded down to even numbers (at least
/// 2x2).
pub fn scaled_size(width: u32, height: u32, factor: u32) -> (u32, u32) {
    let factor = factor.max(1);
    let even = |v: u32| ((v / factor) & !1).max(2);
    (even(width), even(height))
}

/// `frame` shrunk by `factor` (1 returns a copy), each output pixel the mean of the
/// `factor`x`factor` block it covers. The frame must be valid.
pub fn downscale_i420(frame: &VideoFrame, factor: u32) -> VideoFrame {
    let factor = factor.max(1);
    let (width, height) = scaled_size(frame.width, frame.height, factor);
    if factor == 1 {
        return frame.clone();
    }
    let y = box_filter(&frame.y, frame.width, width, height, factor);
    let u = box_filter(&frame.u, frame.width / 2, width / 2, height / 2, factor);
    let v = box_filter(&frame.v, frame.width / 2, width / 2, height / 2, factor);
    VideoFrame {
        width,
        height,
        y,
        u,
        v,
        timestamp_us: frame.timestamp_us,
    }
}

/// One plane of `out_width`x`out_height` from a plane `stride` bytes wide.
fn box_filter(plane: &[u8], stride: u32, out_width: u32, out_height: u32, factor: u32) -> Vec<u8> {
    let (stride, factor) = (stride as usize, factor as usize);
    let area = (factor * factor) as u32;
    let mut out = Vec::with_capacity(out_width as usize * out_height as usize);
    for oy in 0..out_height as usize {
        let rows = &plane[oy * factor * stride..];
        for ox in 0..out_width as usize {
            let mut sum = 0u32;
            for dy in 0..factor {
                let row = &rows[dy * stride + ox * factor..][..factor];
                sum += row.iter().map(|&p| u32::from(p)).sum::<u32>();
            }
            out.push(((sum + area / 2) / area) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32) -> VideoFrame {
        let mut frame = VideoFrame::new_black(width, height);
        for (i, p) in frame.y.iter_mut().enumerate() {
            *p = (i % 256) as u8;
        }
        frame
    }

    #[test]
    fn halving_averages_blocks_and_keeps_planes_consistent() {
        let source = frame(8, 4);
        let half = downscale_i420(&source, 2);
        assert_eq!((half.width, half.height), (4, 2));
        assert!(half.validate().is_ok());
        // The first output pixel is the mean of source pixels 0, 1, 8, 9.
        assert_eq!(half.y[0], 5, "(0 + 1 + 8 + 9) / 4, rounded");
        assert_eq!(half.u.len(), 2);
    }

    #[test]
    fn sizes_round_down_to_even() {
        assert_eq!(scaled_size(1280, 720, 2), (640, 360));
        assert_eq!(scaled_size(1280, 720, 4), (320, 180));
        assert_eq!(scaled_size(642, 362, 4), (160, 90));
        assert_eq!(scaled_size(4, 4, 8), (2, 2));
        let odd = downscale_i420(&frame(642, 362), 4);
        assert!(odd.validate().is_ok());
        assert_eq!(downscale_i420(&frame(16, 16), 1).y, frame(16, 16).y);
    }
}
