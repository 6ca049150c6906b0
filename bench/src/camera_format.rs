//! `aula-bench camera-format`: what a camera frame costs from the driver's buffer to an
//! encoded picture, per pixel format. Frames as a camera delivers them (YUYV, NV12, MJPEG,
//! made from the synthetic picture) are converted to I420 by the same code a `CameraSource`
//! runs and encoded as the camera track is. No device is involved, so this runs anywhere.

use std::time::Instant;

use anyhow::bail;
use aula_core::devices::convert::{to_i420, PixelFormat};
use aula_core::media::{
    FrameStamp, H264Encoder, H264EncoderConfig, SyntheticVideoSource, VideoFrame,
};
use aula_core::Percentiles;
use clap::Args;
use serde::Serialize;

use crate::harness::{parse_resolution, Camera};

/// Arguments of `aula-bench camera-format`.
#[derive(Args, Debug)]
pub struct CameraFormatArgs {
    /// `yuyv`, `nv12`, `mjpeg` or `all`.
    #[arg(long, default_value = "all")]
    format: String,
    /// Frame size WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    resolution: String,
    /// Frames converted and encoded per format.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Frame rate the encoder is configured for.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct FormatRow {
    format: PixelFormat,
    width: u32,
    height: u32,
    frames: usize,
    /// Bytes of one frame as the camera delivers it (mean, for MJPEG).
    frame_bytes: usize,
    convert_ms: Percentiles,
    convert_mean_ms: f64,
    encode_ms: Percentiles,
    encode_mean_ms: f64,
    /// Conversion and encoding of one frame: capture-to-encoded, without the device's wait.
    total_ms: Percentiles,
    total_mean_ms: f64,
}

/// The synthetic picture as 8-bit RGB (BT.601 video range back to RGB).
fn to_rgb(frame: &VideoFrame) -> Vec<u8> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let luma = (f32::from(frame.y[y * w + x]) - 16.0) * 1.164;
            let u = f32::from(frame.u[(y / 2) * (w / 2) + x / 2]) - 128.0;
            let v = f32::from(frame.v[(y / 2) * (w / 2) + x / 2]) - 128.0;
            let clamp = |c: f32| c.clamp(0.0, 255.0) as u8;
            rgb.push(clamp(luma + 1.596 * v));
            rgb.push(clamp(luma - 0.392 * u - 0.813 * v));
            rgb.push(clamp(luma + 2.017 * u));
        }
    }
    rgb
}

/// One frame in `format`, as a camera would deliver it.
fn camera_frame(format: PixelFormat, frame: &VideoFrame) -> anyhow::Result<Vec<u8>> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    Ok(match format {
        PixelFormat::Yuyv => {
            let mut out = Vec::with_capacity(w * h * 2);
            for y in 0..h {
                for x in (0..w).step_by(2) {
                    let c = (y / 2) * (w / 2) + x / 2;
                    out.extend_from_slice(&[
                        frame.y[y * w + x],
                        frame.u[c],
                        frame.y[y * w + x + 1],
                        frame.v[c],
                    ]);
                }
            }
            out
        }
        PixelFormat::Nv12 => {
            let mut out = frame.y.clone();
            for (u, v) in frame.u.iter().zip(&frame.v) {
                out.extend_from_slice(&[*u, *v]);
            }
            out
        }
        PixelFormat::Mjpeg => {
            let mut jpeg = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 85);
            // What UVC cameras send: 4:2:2.
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_2);
            encoder.encode(
                &to_rgb(frame),
                u16::try_from(w)?,
                u16::try_from(h)?,
                jpeg_encoder::ColorType::Rgb,
            )?;
            jpeg
        }
        other => bail!("{other} is not benchmarked"),
    })
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

fn measure(format: PixelFormat, args: &CameraFormatArgs) -> anyhow::Result<FormatRow> {
    let (width, height) = parse_resolution(&args.resolution)?;
    let mut synthetic = SyntheticVideoSource::new(width, height, args.fps)?;
    // Thirty different frames, cycled: the encoder always has motion to code.
    let inputs: Vec<Vec<u8>> = (0..30u32)
        .map(|sequence| {
            let frame = synthetic.frame(FrameStamp {
                sequence,
                capture_time_us: u64::from(sequence) * 33_333,
            });
            camera_frame(format, &frame)
        })
        .collect::<anyhow::Result<_>>()?;
    let camera = Camera::new(width, height, args.fps, None);
    let mut encoder = H264Encoder::new(H264EncoderConfig {
        width,
        height,
        fps: args.fps,
        bitrate_bps: camera.bitrate_bps,
    })?;
    let (mut convert, mut encode, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.frames {
        let input = &inputs[i % inputs.len()];
        let t0 = Instant::now();
        let frame = to_i420(format, width, height, 0, input, i as u64 * 33_333)?;
        let t1 = Instant::now();
        encoder.encode(&frame, i == 0)?;
        let t2 = Instant::now();
        convert.push((t1 - t0).as_secs_f64() * 1000.0);
        encode.push((t2 - t1).as_secs_f64() * 1000.0);
        total.push((t2 - t0).as_secs_f64() * 1000.0);
    }
    Ok(FormatRow {
        format,
        width,
        height,
        frames: args.frames,
        frame_bytes: inputs.iter().map(Vec::len).sum::<usize>() / inputs.len(),
        convert_ms: Percentiles::of(&convert),
        convert_mean_ms: mean(&convert),
        encode_ms: Percentiles::of(&encode),
        encode_mean_ms: mean(&encode),
        total_ms: Percentiles::of(&total),
        total_mean_ms: mean(&total),
    })
}

/// Runs the scenario.
pub fn run(args: CameraFormatArgs) -> anyhow::Result<()> {
    let formats = match args.format.as_str() {
        "yuyv" => vec![PixelFormat::Yuyv],
        "nv12" => vec![PixelFormat::Nv12],
        "mjpeg" => vec![PixelFormat::Mjpeg],
        "all" => vec![PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Mjpeg],
        other => bail!("--format takes yuyv, nv12, mjpeg or all, not {other:?}"),
    };
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    let rows = formats
        .into_iter()
        .map(|format| measure(format, &args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<6} {:>9} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "format", "size", "bytes", "convert", "encode", "total p50", "total p95"
    );
    for r in &rows {
        println!(
            "{:<6} {:>9} {:>10} {:>8.2}ms {:>8.2}ms {:>10.2}ms {:>10.2}ms",
            r.format.to_string(),
            format!("{}x{}", r.width, r.height),
            r.frame_bytes,
            r.convert_mean_ms,
            r.encode_mean_ms,
            r.total_ms.p50,
            r.total_ms.p95
        );
    }
    Ok(())
}
