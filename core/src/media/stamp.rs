//! Frame stamps: a sequence number and capture time drawn into the picture itself, so they
//! survive H.264 coding and can be read back from decoded frames (DESIGN.md, principle 6).
//!
//! The pattern and its guarantees are described on [`FrameStamp`].

use super::VideoFrame;

/// Mask of the capture-time bits a stamp carries (the low 48 bits).
pub const STAMP_TIME_MASK: u64 = (1 << 48) - 1;

/// Total bits in a stamp.
const STAMP_BITS: usize = 96;
/// Most blocks in one row of the stamp.
const MAX_BLOCKS_PER_ROW: u32 = 48;
/// Luma of a 0 bit.
const LEVEL_LOW: u8 = 16;
/// Luma of a 1 bit.
const LEVEL_HIGH: u8 = 235;
/// Decision threshold on a block's mean luma.
const THRESHOLD: u32 = 128;
/// A block mean closer than this to the threshold is ambiguous and rejects the stamp.
const GUARD: u32 = 40;

/// What a frame carries to identify it: its sequence number and capture time.
///
/// # Pattern
///
/// 96 bits are drawn as square blocks in the luma plane, starting at the top-left corner, in
/// raster order, most significant bit first:
///
/// | bits   | content                                              |
/// |--------|------------------------------------------------------|
/// | 0..32  | `sequence` (u32)                                     |
/// | 32..80 | low 48 bits of `capture_time_us`                     |
/// | 80..96 | CRC-16/CCITT-FALSE over the 10 bytes above           |
///
/// A 1 bit is a block of luma 235, a 0 bit a block of luma 16 (video-range white and black).
/// The block side is `width / 48` rounded down to a multiple of 4, at least 4 px, so blocks
/// line up with H.264's 4x4 transform grid and each transform block inside the stamp is flat
/// (only its DC coefficient is non-zero, which coding keeps well). Rows hold up to 48 blocks
/// (two rows from 192 px width up; three at 160 px). The chroma under the stamp is set to 128
/// so colour does not bleed into it. The smallest supported frame is 160x90.
///
/// The reader takes the mean of the inner half of each block and thresholds it at 128. It
/// rejects the stamp (returns `None`) if any block's mean is ambiguous (within 40 of 128) or
/// the checksum does not match, so a damaged or missing stamp is rejected rather than misread.
///
/// # Capture time
///
/// Only the low 48 bits of `capture_time_us` are carried (2^48 µs is about 8.9 years).
/// [`read_stamp`] returns `capture_time_us` as those 48 bits (upper bits zero); compare it
/// with a local clock modulo 2^48 (see `crate::clock::micros_since_stamp`), or mask with
/// [`STAMP_TIME_MASK`]. Unix time in microseconds is already above 2^48, so a stamp read
/// back equals the one written only with its `capture_time_us` masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameStamp {
    /// Sequence number of the frame in its stream (wraps at 2^32).
    pub sequence: u32,
    /// Capture time in microseconds since the Unix epoch; a stamp carries only the low 48 bits
    /// (see [`FrameStamp`]).
    pub capture_time_us: u64,
}

/// Where the stamp's blocks go in a frame of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// Side of a block in pixels (a multiple of 4).
    block: usize,
    /// Blocks per row.
    per_row: usize,
    /// Rows of blocks.
    rows: usize,
}

impl Layout {
    /// The layout for a `width` x `height` frame, or `None` if the stamp does not fit.
    fn for_size(width: u32, height: u32) -> Option<Self> {
        let block = ((width / MAX_BLOCKS_PER_ROW) & !3).max(4);
        let per_row = (width / block).min(MAX_BLOCKS_PER_ROW) as usize;
        if per_row == 0 {
            return None;
        }
        let rows = STAMP_BITS.div_ceil(per_row);
        let block = block as usize;
        if rows * block > height as usize {
            return None;
        }
        Some(Self {
            block,
            per_row,
            rows,
        })
    }

    /// Top-left pixel of block `i`.
    fn origin(&self, i: usize) -> (usize, usize) {
        (
            (i % self.per_row) * self.block,
            (i / self.per_row) * self.block,
        )
    }
}

/// Whether a `width` x `height` frame can carry a stamp.
pub(crate) fn stamp_fits(width: u32, height: u32) -> bool {
    Layout::for_size(width, height).is_some()
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF).
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 12 bytes a stamp encodes: sequence, 48-bit time, checksum.
fn payload(stamp: FrameStamp) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&stamp.sequence.to_be_bytes());
    bytes[4..10].copy_from_slice(&(stamp.capture_time_us & STAMP_TIME_MASK).to_be_bytes()[2..]);
    let crc = crc16(&bytes[..10]);
    bytes[10..].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn bit(bytes: &[u8; 12], i: usize) -> bool {
    bytes[i / 8] & (0x80 >> (i % 8)) != 0
}

/// Draws `stamp` into the top rows of `frame` (see [`FrameStamp`] for the pattern).
///
/// Only the low 48 bits of `capture_time_us` are written. A frame that is invalid (see
/// [`VideoFrame::validate`]) or too small for the stamp (under 160x90 in general) is left
/// unchanged.
pub fn write_stamp(frame: &mut VideoFrame, stamp: FrameStamp) {
    if let Err(err) = frame.validate() {
        tracing::debug!(error = %err, "not stamping an invalid frame");
        return;
    }
    let Some(layout) = Layout::for_size(frame.width, frame.height) else {
        tracing::debug!(
            width = frame.width,
            height = frame.height,
            "frame too small for a stamp"
        );
        return;
    };
    let width = frame.width as usize;
    let bytes = payload(stamp);
    for i in 0..STAMP_BITS {
        let level = if bit(&bytes, i) {
            LEVEL_HIGH
        } else {
            LEVEL_LOW
        };
        let (x0, y0) = layout.origin(i);
        for row in y0..y0 + layout.block {
            let start = row * width + x0;
            if let Some(line) = frame.y.get_mut(start..start + layout.block) {
                line.fill(level);
            }
        }
    }
    // Neutral chroma under the whole stamp area.
    let chroma_width = width / 2;
    let chroma_cols = layout.per_row * layout.block / 2;
    let chroma_rows = layout.rows * layout.block / 2;
    for row in 0..chroma_rows {
        let start = row * chroma_width;
        for plane in [&mut frame.u, &mut frame.v] {
            if let Some(line) = plane.get_mut(start..start + chroma_cols) {
                line.fill(128);
            }
        }
    }
}

/// Reads a stamp drawn by [`write_stamp`], or `None` if the frame carries none or it is damaged.
///
/// Ambiguous blocks or a checksum mismatch give `None`, so damage is reported rather than
/// misread. `capture_time_us` holds the low 48 bits of the written time.
pub fn read_stamp(frame: &VideoFrame) -> Option<FrameStamp> {
    frame.validate().ok()?;
    let layout = Layout::for_size(frame.width, frame.height)?;
    let width = frame.width as usize;
    let margin = layout.block / 4;
    let inner = layout.block - 2 * margin;
    let area = (inner * inner) as u32;
    let mut bytes = [0u8; 12];
    for i in 0..STAMP_BITS {
        let (x0, y0) = layout.origin(i);
        let mut sum: u32 = 0;
        for row in y0 + margin..y0 + margin + inner {
            let start = row * width + x0 + margin;
            let line = frame.y.get(start..start + inner)?;
            sum += line.iter().map(|&p| u32::from(p)).sum::<u32>();
        }
        let mean = sum / area;
        if mean.abs_diff(THRESHOLD) < GUARD {
            return None;
        }
        if mean > THRESHOLD {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let crc = u16::from_be_bytes([bytes[10], bytes[11]]);
    if crc16(&bytes[..10]) != crc {
        return None;
    }
    let sequence = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut time = [0u8; 8];
    time[2..].copy_from_slice(&bytes[4..10]);
    Some(FrameStamp {
        sequence,
        capture_time_us: u64::from_be_bytes(time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [(u32, u32); 7] = [
        (160, 90),
        (320, 180),
        (480, 270),
        (640, 360),
        (1280, 720),
        (1920, 1080),
        (4096, 2160),
    ];

    fn busy_frame(width: u32, height: u32) -> VideoFrame {
        let mut f = VideoFrame::new_black(width, height);
        for (i, p) in f.y.iter_mut().enumerate() {
            *p = (i * 7 % 251) as u8;
        }
        for (i, p) in f.u.iter_mut().enumerate() {
            *p = (i * 3 % 256) as u8;
        }
        f
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn layout_fits_every_supported_size() {
        for (w, h) in SIZES {
            let l = Layout::for_size(w, h).expect("fits");
            assert_eq!(l.block % 4, 0);
            assert!(l.per_row * l.rows >= STAMP_BITS);
            assert!(l.per_row * l.block <= w as usize);
            assert!(l.rows * l.block <= h as usize);
        }
        assert_eq!(
            Layout::for_size(640, 360),
            Some(Layout {
                block: 12,
                per_row: 48,
                rows: 2
            })
        );
        assert_eq!(Layout::for_size(160, 8), None);
    }

    #[test]
    fn stamps_round_trip_at_several_sizes() {
        for (w, h) in SIZES {
            for stamp in [
                FrameStamp {
                    sequence: 0,
                    capture_time_us: 0,
                },
                FrameStamp {
                    sequence: 0xDEAD_BEEF,
                    capture_time_us: 1_764_009_288_123_456,
                },
                FrameStamp {
                    sequence: u32::MAX,
                    capture_time_us: STAMP_TIME_MASK,
                },
            ] {
                let mut f = busy_frame(w, h);
                write_stamp(&mut f, stamp);
                let expected = FrameStamp {
                    capture_time_us: stamp.capture_time_us & STAMP_TIME_MASK,
                    ..stamp
                };
                assert_eq!(read_stamp(&f), Some(expected), "{w}x{h}");
            }
        }
    }

    #[test]
    fn only_the_low_48_bits_of_time_are_kept() {
        let mut f = busy_frame(640, 360);
        write_stamp(
            &mut f,
            FrameStamp {
                sequence: 7,
                capture_time_us: (0xABCD << 48) | 0x1234_5678_9ABC,
            },
        );
        let read = read_stamp(&f).expect("stamp");
        assert_eq!(read.capture_time_us, 0x1234_5678_9ABC);
        assert_eq!(read.sequence, 7);
    }

    #[test]
    fn chroma_under_the_stamp_is_neutral() {
        let mut f = busy_frame(640, 360);
        write_stamp(
            &mut f,
            FrameStamp {
                sequence: 1,
                capture_time_us: 2,
            },
        );
        // 2 rows of 12 px blocks, 48 blocks: chroma 288 x 12.
        for row in 0..12 {
            assert!(f.u[row * 320..row * 320 + 288].iter().all(|&c| c == 128));
            assert!(f.v[row * 320..row * 320 + 288].iter().all(|&c| c == 128));
        }
        assert_ne!(f.u[12 * 320 + 5], 128);
    }

    #[test]
    fn corrupted_stamps_are_rejected_not_misread() {
        let stamp = FrameStamp {
            sequence: 123_456,
            capture_time_us: 987_654_321,
        };
        for (w, h) in [(160, 90), (640, 360), (1280, 720)] {
            let layout = Layout::for_size(w, h).expect("fits");
            let clean = {
                let mut f = busy_frame(w, h);
                write_stamp(&mut f, stamp);
                f
            };
            for i in 0..STAMP_BITS {
                let mut f = clean.clone();
                let (x0, y0) = layout.origin(i);
                for row in y0..y0 + layout.block {
                    for p in &mut f.y[row * w as usize + x0..][..layout.block] {
                        *p = LEVEL_HIGH + LEVEL_LOW - *p;
                    }
                }
                assert_eq!(read_stamp(&f), None, "{w}x{h}, flipped block {i}");
            }
            // A block washed to mid-grey is ambiguous: rejected.
            let mut f = clean.clone();
            let (x0, y0) = layout.origin(40);
            for row in y0..y0 + layout.block {
                f.y[row * w as usize + x0..][..layout.block].fill(128);
            }
            assert_eq!(read_stamp(&f), None);
        }
    }

    #[test]
    fn unstamped_and_invalid_frames_read_none() {
        assert_eq!(read_stamp(&VideoFrame::new_black(640, 360)), None);
        let mut white = VideoFrame::new_black(640, 360);
        white.y.fill(235);
        assert_eq!(read_stamp(&white), None);
        assert_eq!(read_stamp(&busy_frame(640, 360)), None);
        let mut bad = VideoFrame::new_black(640, 360);
        bad.y.truncate(100);
        assert_eq!(read_stamp(&bad), None);
        // Writing to an invalid or tiny frame is a no-op, not a panic.
        let stamp = FrameStamp {
            sequence: 1,
            capture_time_us: 1,
        };
        write_stamp(&mut bad, stamp);
        assert_eq!(bad.y.len(), 100);
        let mut tiny = VideoFrame::new_black(16, 16);
        write_stamp(&mut tiny, stamp);
        assert!(tiny.y.iter().all(|&p| p == 16));
    }
}
