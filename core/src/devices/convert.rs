//! The pixel formats cameras and screens deliver, converted to the I420 the encoder takes.
//!
//! Every conversion reads the device's buffer once and writes the I420 planes once: no
//! intermediate RGB or full-resolution chroma copy (MJPEG, which the JPEG decoder upsamples, is
//! the one exception). Colour is BT.601 video range, what H.264 decoders assume when a stream
//! does not say otherwise. Odd sizes lose their last column or row (I420 needs even sizes).

use serde::Serialize;

use crate::media::{MediaError, VideoFrame, MAX_DIMENSION};

/// How a device lays out a picture's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PixelFormat {
    /// Planar 4:2:0 (Y, then U, then V).
    I420,
    /// Y plane, then interleaved U/V at half resolution.
    Nv12,
    /// Packed 4:2:2, `Y0 U Y1 V`.
    Yuyv,
    /// Packed 4:2:2, `U Y0 V Y1`.
    Uyvy,
    /// 8-bit luma only (full range).
    Gray,
    /// 24-bit `R G B`.
    Rgb24,
    /// 24-bit `B G R`.
    Bgr24,
    /// 32-bit `B G R A` (or `B G R X`): X11 and Windows screens.
    Bgra,
    /// 32-bit `R G B A`.
    Rgba,
    /// Motion JPEG: each frame a JPEG picture.
    Mjpeg,
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Gray => "GRAY",
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::Bgr24 => "BGR24",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Mjpeg => "MJPEG",
        })
    }
}

impl PixelFormat {
    /// Bytes per pixel of a packed format's row (`None` for planar and compressed formats).
    pub fn bytes_per_pixel(self) -> Option<usize> {
        match self {
            PixelFormat::Yuyv | PixelFormat::Uyvy => Some(2),
            PixelFormat::Gray => Some(1),
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => Some(3),
            PixelFormat::Bgra | PixelFormat::Rgba => Some(4),
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Mjpeg => None,
        }
    }

    /// How much work turning a frame of this format into I420 is, smallest first (a tie-break
    /// when a device offers the same size and rate in several formats).
    pub(crate) fn conversion_cost(self) -> u8 {
        match self {
            PixelFormat::I420 => 0,
            PixelFormat::Nv12 => 1,
            PixelFormat::Yuyv | PixelFormat::Uyvy => 2,
            PixelFormat::Gray => 3,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Bgra | PixelFormat::Rgba => 4,
            PixelFormat::Mjpeg => 5,
        }
    }
}

/// Converts one frame of `format` into a new I420 frame of `width & !1` x `height & !1`.
///
/// `stride` is the length of a source row in bytes (of the luma plane for planar formats);
/// 0 means tightly packed. MJPEG ignores `stride` and takes its size from the picture, which
/// must match `width` x `height`.
pub fn to_i420(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    data: &[u8],
    timestamp_us: u64,
) -> Result<VideoFrame, MediaError> {
    let (w, h) = even_size(width, height)?;
    let mut frame = alloc_frame(w, h);
    frame.timestamp_us = timestamp_us;
    let (sw, sh) = (width as usize, height as usize);
    let packed_stride = |bpp: usize| if stride == 0 { sw * bpp } else { stride };
    match format {
        PixelFormat::Bgra => rgb_into::<2, 1, 0, 4>(data, packed_stride(4), sw, sh, &mut frame)?,
        PixelFormat::Rgba => rgb_into::<0, 1, 2, 4>(data, packed_stride(4), sw, sh, &mut frame)?,
        PixelFormat::Rgb24 => rgb_into::<0, 1, 2, 3>(data, packed_stride(3), sw, sh, &mut frame)?,
        PixelFormat::Bgr24 => rgb_into::<2, 1, 0, 3>(data, packed_stride(3), sw, sh, &mut frame)?,
        PixelFormat::Yuyv => packed422_into::<0, 1, 2, 3>(data, packed_stride(2), sh, &mut frame)?,
        PixelFormat::Uyvy => packed422_into::<1, 0, 3, 2>(data, packed_stride(2), sh, &mut frame)?,
        PixelFormat::Gray => gray_into(data, packed_stride(1), sh, &mut frame)?,
        PixelFormat::Nv12 => nv12_into(data, packed_stride(1), sh, &mut frame)?,
        PixelFormat::I420 => i420_into(data, packed_stride(1), sh, &mut frame)?,
        PixelFormat::Mjpeg => return mjpeg_to_i420(data, width, height, timestamp_us),
    }
    Ok(frame)
}

/// The even size a `width` x `height` picture is encoded at.
pub(crate) fn even_size(width: u32, height: u32) -> Result<(u32, u32), MediaError> {
    let (w, h) = (width & !1, height & !1);
    if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
        return Err(MediaError::InvalidFrame(format!(
            "picture {width}x{height} is not between 2x2 and {MAX_DIMENSION}x{MAX_DIMENSION}"
        )));
    }
    Ok((w, h))
}

/// A frame whose planes are about to be overwritten (zeroed memory is free from the allocator).
pub(crate) fn alloc_frame(width: u32, height: u32) -> VideoFrame {
    let luma = width as usize * height as usize;
    VideoFrame {
        width,
        height,
        y: vec![0; luma],
        u: vec![0; luma / 4],
        v: vec![0; luma / 4],
        timestamp_us: 0,
    }
}

fn too_short(what: &str, needed: usize, got: usize) -> MediaError {
    MediaError::InvalidFrame(format!("{what} needs {needed} bytes, got {got}"))
}

/// Checks that `rows` rows of `row_bytes` bytes, `stride` apart, fit in `len` bytes.
fn check_rows(
    what: &str,
    len: usize,
    stride: usize,
    row_bytes: usize,
    rows: usize,
) -> Result<(), MediaError> {
    if stride < row_bytes {
        return Err(MediaError::InvalidFrame(format!(
            "{what}: stride {stride} is below the row's {row_bytes} bytes"
        )));
    }
    let needed = stride * rows.saturating_sub(1) + row_bytes;
    if len < needed {
        return Err(too_short(what, needed, len));
    }
    Ok(())
}

#[inline(always)]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    // BT.601, video range, 8-bit fixed point.
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// U and V from the sums of four pixels' R, G and B.
#[inline(always)]
fn chroma4(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 512) >> 10) + 128;
    (u as u8, v as u8)
}

/// Packed RGB with `R`, `G`, `B` at those byte offsets of `BPP`-byte pixels, into `frame`.
/// Converts the part of a `src_w` x `src_h` source that overlaps the frame; the rest of the
/// frame is left as it is.
pub(crate) fn rgb_into<const R: usize, const G: usize, const B: usize, const BPP: usize>(
    src: &[u8],
    stride: usize,
    src_w: usize,
    src_h: usize,
    frame: &mut VideoFrame,
) -> Result<(), MediaError> {
    let fw = frame.width as usize;
    let w = fw.min(src_w) & !1;
    let h = (frame.height as usize).min(src_h) & !1;
    if w == 0 || h == 0 {
        return Ok(());
    }
    check_rows("RGB picture", src.len(), stride, w * BPP, h)?;
    let cw = fw / 2;
    for row in 0..h / 2 {
        let s0 = &src[2 * row * stride..][..w * BPP];
        let s1 = &src[(2 * row + 1) * stride..][..w * BPP];
        let (y0, y1) = frame.y[2 * row * fw..][..2 * fw].split_at_mut(fw);
        let u = &mut frame.u[row * cw..][..w / 2];
        let v = &mut frame.v[row * cw..][..w / 2];
        let pixels = s0
            .chunks_exact(2 * BPP)
            .zip(s1.chunks_exact(2 * BPP))
            .zip(y0.chunks_exact_mut(2).zip(y1.chunks_exact_mut(2)))
            .zip(u.iter_mut().zip(v.iter_mut()));
        for (((a, b), (ya, yb)), (uu, vv)) in pixels {
            let px = |p: &[u8], i: usize| {
                (
                    i32::from(p[i * BPP + R]),
                    i32::from(p[i * BPP + G]),
                    i32::from(p[i * BPP + B]),
                )
            };
            let (r0, g0, b0) = px(a, 0);
            let (r1, g1, b1) = px(a, 1);
            let (r2, g2, b2) = px(b, 0);
            let (r3, g3, b3) = px(b, 1);
            ya[0] = luma(r0, g0, b0);
            ya[1] = luma(r1, g1, b1);
            yb[0] = luma(r2, g2, b2);
            yb[1] = luma(r3, g3, b3);
            (*uu, *vv) = chroma4(r0 + r1 + r2 + r3, g0 + g1 + g2 + g3, b0 + b1 + b2 + b3);
        }
    }
    Ok(())
}

/// Packed 4:2:2 with `Y0`, `U`, `Y1`, `V` at those offsets of each 4-byte pair, into `frame`
/// (chroma of two rows averaged).
fn packed422_into<const Y0: usize, const U: usize, const Y1: usize, const V: usize>(
    src: &[u8],
    stride: usize,
    src_h: usize,
    frame: &mut VideoFrame,
) -> Result<(), MediaError> {
    let w = frame.width as usize;
    let h = (frame.height as usize).min(src_h & !1);
    check_rows("4:2:2 picture", src.len(), stride, w * 2, h)?;
    let cw = w / 2;
    for row in 0..h / 2 {
        let s0 = &src[2 * row * stride..][..w * 2];
        let s1 = &src[(2 * row + 1) * stride..][..w * 2];
        let (y0, y1) = frame.y[2 * row * w..][..2 * w].split_at_mut(w);
        let u = &mut frame.u[row * cw..][..cw];
        let v = &mut frame.v[row * cw..][..cw];
        let pairs = s0
            .chunks_exact(4)
            .zip(s1.chunks_exact(4))
            .zip(y0.chunks_exact_mut(2).zip(y1.chunks_exact_mut(2)))
            .zip(u.iter_mut().zip(v.iter_mut()));
        for (((a, b), (ya, yb)), (uu, vv)) in pairs {
            ya[0] = a[Y0];
            ya[1] = a[Y1];
            yb[0] = b[Y0];
            yb[1] = b[Y1];
            *uu = ((u16::from(a[U]) + u16::from(b[U]) + 1) >> 1) as u8;
            *vv = ((u16::from(a[V]) + u16::from(b[V]) + 1) >> 1) as u8;
        }
    }
    Ok(())
}

/// Full-range luma to video range (`16 + y * 219 / 255`).
fn full_to_video_luma() -> [u8; 256] {
    let mut table = [0u8; 256];
    for (i, v) in table.iter_mut().enumerate() {
        *v = (16 + (i * 219 + 127) / 255) as u8;
    }
    table
}

/// Full-range chroma to video range (`128 + (c - 128) * 224 / 255`).
fn full_to_video_chroma() -> [u8; 256] {
    let mut table = [0u8; 256];
    for (i, v) in table.iter_mut().enumerate() {
        let c = i as i32 - 128;
        *v = (128 + (c * 224 + c.signum() * 127) / 255) as u8;
    }
    table
}

fn gray_into(
    src: &[u8],
    stride: usize,
    src_h: usize,
    frame: &mut VideoFrame,
) -> Result<(), MediaError> {
    let w = frame.width as usize;
    let h = (frame.height as usize).min(src_h & !1);
    check_rows("GRAY picture", src.len(), stride, w, h)?;
    let table = full_to_video_luma();
    for (row, line) in frame.y.chunks_exact_mut(w).take(h).enumerate() {
        for (out, &g) in line.iter_mut().zip(&src[row * stride..][..w]) {
            *out = table[usize::from(g)];
        }
    }
    frame.u.fill(128);
    frame.v.fill(128);
    Ok(())
}

fn nv12_into(
    src: &[u8],
    stride: usize,
    src_h: usize,
    frame: &mut VideoFrame,
) -> Result<(), MediaError> {
    let w = frame.width as usize;
    let h = frame.height as usize;
    if src_h < h {
        return Err(MediaError::InvalidFrame("NV12 picture too short".into()));
    }
    // The UV plane follows `src_h` luma rows of `stride` bytes.
    let uv_start = stride * src_h;
    check_rows("NV12 luma", src.len(), stride, w, h)?;
    check_rows(
        "NV12 chroma",
        src.len().saturating_sub(uv_start),
        stride,
        w,
        h / 2,
    )?;
    for (row, line) in frame.y.chunks_exact_mut(w).enumerate() {
        line.copy_from_slice(&src[row * stride..][..w]);
    }
    let cw = w / 2;
    for row in 0..h / 2 {
        let uv = &src[uv_start + row * stride..][..w];
        let u = &mut frame.u[row * cw..][..cw];
        let v = &mut frame.v[row * cw..][..cw];
        for ((pair, uu), vv) in uv.chunks_exact(2).zip(u).zip(v) {
            *uu = pair[0];
            *vv = pair[1];
        }
    }
    Ok(())
}

fn i420_into(
    src: &[u8],
    stride: usize,
    src_h: usize,
    frame: &mut VideoFrame,
) -> Result<(), MediaError> {
    let w = frame.width as usize;
    let h = frame.height as usize;
    if src_h < h {
        return Err(MediaError::InvalidFrame("I420 picture too short".into()));
    }
    let cstride = stride / 2;
    let u_start = stride * src_h;
    let v_start = u_start + cstride * src_h / 2;
    check_rows("I420 luma", src.len(), stride, w, h)?;
    check_rows(
        "I420 chroma",
        src.len().saturating_sub(v_start),
        cstride,
        w / 2,
        h / 2,
    )?;
    for (row, line) in frame.y.chunks_exact_mut(w).enumerate() {
        line.copy_from_slice(&src[row * stride..][..w]);
    }
    let cw = w / 2;
    for row in 0..h / 2 {
        frame.u[row * cw..][..cw].copy_from_slice(&src[u_start + row * cstride..][..cw]);
        frame.v[row * cw..][..cw].copy_from_slice(&src[v_start + row * cstride..][..cw]);
    }
    Ok(())
}

/// Decodes one MJPEG frame (a JPEG picture, baseline or with the default MJPEG Huffman tables)
/// into I420, going through YCbCr only.
#[cfg(feature = "mjpeg")]
pub fn mjpeg_to_i420(
    jpeg: &[u8],
    width: u32,
    height: u32,
    timestamp_us: u64,
) -> Result<VideoFrame, MediaError> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(MAX_DIMENSION as usize)
        .set_max_height(MAX_DIMENSION as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(jpeg, options);
    decoder
        .decode_headers()
        .map_err(|e| MediaError::InvalidFrame(format!("MJPEG frame: {e}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| MediaError::InvalidFrame("MJPEG frame without a header".into()))?;
    if (u32::from(info.width), u32::from(info.height)) != (width, height) {
        return Err(MediaError::InvalidFrame(format!(
            "MJPEG frame is {}x{}, the camera said {width}x{height}",
            info.width, info.height
        )));
    }
    if decoder.get_output_colorspace() != Some(ColorSpace::YCbCr) {
        return Err(MediaError::InvalidFrame(
            "MJPEG frame is not YCbCr (grayscale or CMYK)".into(),
        ));
    }
    let ycbcr = decoder
        .decode()
        .map_err(|e| MediaError::InvalidFrame(format!("MJPEG frame: {e}")))?;
    let (w, h) = even_size(width, height)?;
    let mut frame = alloc_frame(w, h);
    frame.timestamp_us = timestamp_us;
    ycbcr444_into(&ycbcr, width as usize, &mut frame)?;
    Ok(frame)
}

/// Decoding MJPEG needs the `mjpeg` feature's JPEG decoder (part of `camera`).
#[cfg(not(feature = "mjpeg"))]
pub fn mjpeg_to_i420(
    _jpeg: &[u8],
    _width: u32,
    _height: u32,
    _timestamp_us: u64,
) -> Result<VideoFrame, MediaError> {
    Err(MediaError::InvalidConfig(
        "MJPEG decoding needs aula-core's `mjpeg` feature".into(),
    ))
}

/// Interleaved full-range YCbCr 4:4:4 (`src_w` pixels a row) into video-range I420.
#[cfg_attr(not(feature = "mjpeg"), allow(dead_code))]
fn ycbcr444_into(src: &[u8], src_w: usize, frame: &mut VideoFrame) -> Result<(), MediaError> {
    let w = frame.width as usize;
    let h = frame.height as usize;
    let stride = src_w * 3;
    check_rows("YCbCr picture", src.len(), stride, w * 3, h)?;
    let ly = full_to_video_luma();
    let lc = full_to_video_chroma();
    let cw = w / 2;
    for row in 0..h / 2 {
        let s0 = &src[2 * row * stride..][..w * 3];
        let s1 = &src[(2 * row + 1) * stride..][..w * 3];
        let (y0, y1) = frame.y[2 * row * w..][..2 * w].split_at_mut(w);
        let u = &mut frame.u[row * cw..][..cw];
        let v = &mut frame.v[row * cw..][..cw];
        let pixels = s0
            .chunks_exact(6)
            .zip(s1.chunks_exact(6))
            .zip(y0.chunks_exact_mut(2).zip(y1.chunks_exact_mut(2)))
            .zip(u.iter_mut().zip(v.iter_mut()));
        for (((a, b), (ya, yb)), (uu, vv)) in pixels {
            ya[0] = ly[usize::from(a[0])];
            ya[1] = ly[usize::from(a[3])];
            yb[0] = ly[usize::from(b[0])];
            yb[1] = ly[usize::from(b[3])];
            let cb = u16::from(a[1]) + u16::from(a[4]) + u16::from(b[1]) + u16::from(b[4]);
            let cr = u16::from(a[2]) + u16::from(a[5]) + u16::from(b[2]) + u16::from(b[5]);
            *uu = lc[usize::from((cb + 2) >> 2)];
            *vv = lc[usize::from((cr + 2) >> 2)];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: u8, b: u8) -> bool {
        a.abs_diff(b) <= 2
    }

    /// A 2x2 BGRA picture of one colour converts to the BT.601 video-range values.
    #[test]
    fn primary_colours_convert_to_bt601_video_range() {
        for (rgb, yuv) in [
            ([255u8, 255, 255], [235u8, 128, 128]),
            ([0, 0, 0], [16, 128, 128]),
            ([255, 0, 0], [82, 90, 240]),
            ([0, 255, 0], [145, 54, 34]),
            ([0, 0, 255], [41, 240, 110]),
        ] {
            let bgra: Vec<u8> = (0..4).flat_map(|_| [rgb[2], rgb[1], rgb[0], 255]).collect();
            let f = to_i420(PixelFormat::Bgra, 2, 2, 0, &bgra, 5).expect("converts");
            assert_eq!(f.timestamp_us, 5);
            assert!(
                close(f.y[0], yuv[0]) && close(f.u[0], yuv[1]) && close(f.v[0], yuv[2]),
                "{rgb:?} gave {:?}",
                (f.y[0], f.u[0], f.v[0])
            );
            let rgba: Vec<u8> = (0..4).flat_map(|_| [rgb[0], rgb[1], rgb[2], 0]).collect();
            let g = to_i420(PixelFormat::Rgba, 2, 2, 0, &rgba, 0).expect("converts");
            assert_eq!((g.y[0], g.u[0], g.v[0]), (f.y[0], f.u[0], f.v[0]));
            let rgb24: Vec<u8> = (0..4).flat_map(|_| rgb).collect();
            let h = to_i420(PixelFormat::Rgb24, 2, 2, 0, &rgb24, 0).expect("converts");
            assert_eq!((h.y[3], h.u[0], h.v[0]), (f.y[0], f.u[0], f.v[0]));
        }
    }

    #[test]
    fn strides_and_odd_sizes_are_honoured() {
        // 5x3 BGRA with 4 bytes of row padding: encoded as 4x2, padding ignored.
        let (w, h, stride) = (5usize, 3usize, 24usize);
        let mut src = vec![0xEEu8; stride * h];
        for row in 0..h {
            for x in 0..w {
                let level = (row * 40 + x * 10) as u8;
                src[row * stride + x * 4..][..4].copy_from_slice(&[level, level, level, 255]);
            }
        }
        let f = to_i420(PixelFormat::Bgra, 5, 3, stride, &src, 0).expect("converts");
        assert_eq!((f.width, f.height), (4, 2));
        f.validate().expect("valid I420");
        assert_eq!(f.y[1], luma(10, 10, 10));
        assert_eq!(f.y[4 + 3], luma(70, 70, 70));
        // Two rows of four pixels need 24 + 16 bytes.
        assert!(to_i420(PixelFormat::Bgra, 5, 3, stride, &src[..40], 0).is_ok());
        assert!(to_i420(PixelFormat::Bgra, 5, 3, stride, &src[..39], 0).is_err());
        assert!(to_i420(PixelFormat::Bgra, 5, 3, 8, &src, 0).is_err());
        assert!(to_i420(PixelFormat::Bgra, 1, 1, 0, &src, 0).is_err());
    }

    #[test]
    fn packed_422_and_semi_planar_keep_their_samples() {
        // 4x2 YUYV: distinct Y values, U/V differing per row so the average shows.
        let yuyv = [
            10u8, 100, 20, 200, 30, 110, 40, 210, //
            50, 102, 60, 202, 70, 112, 80, 212,
        ];
        let f = to_i420(PixelFormat::Yuyv, 4, 2, 0, &yuyv, 0).expect("converts");
        assert_eq!(f.y, [10, 20, 30, 40, 50, 60, 70, 80]);
        assert_eq!(f.u, [101, 111]);
        assert_eq!(f.v, [201, 211]);
        let uyvy: Vec<u8> = yuyv
            .chunks_exact(4)
            .flat_map(|c| [c[1], c[0], c[3], c[2]])
            .collect();
        let g = to_i420(PixelFormat::Uyvy, 4, 2, 0, &uyvy, 0).expect("converts");
        assert_eq!((g.y, g.u, g.v), (f.y.clone(), f.u.clone(), f.v.clone()));

        let nv12 = [1u8, 2, 3, 4, 5, 6, 7, 8, 100, 200, 101, 201];
        let n = to_i420(PixelFormat::Nv12, 4, 2, 0, &nv12, 0).expect("converts");
        assert_eq!(n.y, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            (n.u.as_slice(), n.v.as_slice()),
            (&[100, 101][..], &[200, 201][..])
        );
        let i420 = [1u8, 2, 3, 4, 5, 6, 7, 8, 100, 101, 200, 201];
        let i = to_i420(PixelFormat::I420, 4, 2, 0, &i420, 0).expect("converts");
        assert_eq!((i.y, i.u, i.v), (n.y, n.u, n.v));
        assert!(to_i420(PixelFormat::Nv12, 4, 2, 0, &nv12[..10], 0).is_err());

        let gray = [0u8, 255, 128, 64, 0, 0, 0, 0];
        let g = to_i420(PixelFormat::Gray, 4, 2, 0, &gray, 0).expect("converts");
        assert_eq!(&g.y[..4], &[16, 235, 126, 71]);
        assert!(g.u.iter().chain(&g.v).all(|&c| c == 128));
    }

    /// A JPEG of flat colour blocks (as a camera's MJPEG stream carries) decodes to the same
    /// I420 the raw RGB converts to, within coding error.
    #[cfg(feature = "mjpeg")]
    #[test]
    fn mjpeg_frames_decode_to_the_colours_they_show() {
        let (w, h) = (64u16, 32u16);
        let colours = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [240, 240, 240]];
        let mut rgb = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&colours[usize::from(x / 16)]);
            }
        }
        for sampling in [
            jpeg_encoder::SamplingFactor::R_4_2_2,
            jpeg_encoder::SamplingFactor::R_4_2_0,
        ] {
            let mut jpeg = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 95);
            encoder.set_sampling_factor(sampling);
            encoder
                .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
                .expect("encodes");
            let decoded = to_i420(PixelFormat::Mjpeg, 64, 32, 0, &jpeg, 9).expect("decodes");
            let raw = to_i420(PixelFormat::Rgb24, 64, 32, 0, &rgb, 9).expect("converts");
            assert_eq!((decoded.width, decoded.height), (64, 32));
            for block in 0..4 {
                // The middle of each block, away from the edges JPEG blurs.
                let (x, y) = (block * 16 + 8, 16);
                let (cx, cy) = (x / 2, y / 2);
                let pairs = [
                    (decoded.y[y * 64 + x], raw.y[y * 64 + x]),
                    (decoded.u[cy * 32 + cx], raw.u[cy * 32 + cx]),
                    (decoded.v[cy * 32 + cx], raw.v[cy * 32 + cx]),
                ];
                for (got, want) in pairs {
                    assert!(got.abs_diff(want) <= 6, "block {block}: {pairs:?}");
                }
            }
        }
        assert!(to_i420(PixelFormat::Mjpeg, 64, 32, 0, b"not a jpeg", 0).is_err());
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
            .expect("encodes");
        assert!(
            to_i420(PixelFormat::Mjpeg, 640, 480, 0, &jpeg, 0).is_err(),
            "a frame of another size is refused"
        );
    }
}
