//! `aula-bench screen`: what sharing a screen costs the sender. A slide of text that is being
//! typed into, scrolled now and then, with the pointer moving, is captured (X11 shared memory,
//! cursor drawn in, converted to I420) and encoded for a screen share, paced at the frame
//! rate, as the publishing thread does. Reported: capture, encode and capture-to-encoded time
//! per frame, and CPU use of that thread, of the whole process and of the X server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::devices::{ScreenOptions, ScreenSource};
use aula_core::media::{H264Encoder, H264EncoderConfig, VideoContent};
use aula_core::{Percentiles, VideoSource};
use clap::Args;
use serde::Serialize;

use crate::cpu;
use crate::harness::parse_resolution;

/// Arguments of `aula-bench screen`.
#[derive(Args, Debug)]
pub struct ScreenArgs {
    /// Screen size WIDTHxHEIGHT (of the Xvfb this starts; ignored with `--display`).
    #[arg(long, default_value = "1920x1080")]
    resolution: String,
    /// Frames per second captured and encoded.
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Seconds measured (after one second of warm-up).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Encoder bitrate in kbit/s (default: `aula join`'s, 0.08 bit per pixel per frame).
    #[arg(long)]
    bitrate_kbps: Option<u32>,
    /// Capture this X display instead of starting an Xvfb (nothing is drawn on it then).
    #[arg(long)]
    display: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct ScreenReport {
    width: u32,
    height: u32,
    fps: u32,
    bitrate_kbps: f64,
    duration_s: f64,
    frames_captured: u64,
    frames_encoded: u64,
    encoded_kbps: f64,
    capture_ms: Percentiles,
    capture_mean_ms: f64,
    encode_ms: Percentiles,
    encode_mean_ms: f64,
    capture_to_encoded_ms: Percentiles,
    capture_to_encoded_mean_ms: f64,
    /// The capture-and-encode thread's CPU, % of one core.
    pipeline_cpu_percent: f64,
    /// This whole process (the pipeline and the slide being drawn), % of one core.
    process_cpu_percent: f64,
    /// The Xvfb this run started (its share of the capture: filling the shared memory).
    x_server_cpu_percent: Option<f64>,
}

/// A private Xvfb; killed when dropped.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start(width: u32, height: u32) -> anyhow::Result<Xvfb> {
        use std::io::BufRead;
        let mut child = std::process::Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .args(["-nolisten", "tcp"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start Xvfb (apt-get install xvfb), or pass --display")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("Xvfb's stdout")?)
            .read_line(&mut line)?;
        let display = format!(":{}", line.trim());
        Ok(Xvfb { child, display })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Draws the slide and keeps changing it until `stop`.
fn paint(display: &str, width: u16, height: u16, stop: &AtomicBool) -> anyhow::Result<()> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{
        ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, Rectangle, WindowClass,
    };

    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id()?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        width,
        height,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .background_pixel(0xFF_FFFF)
            .override_redirect(1),
    )?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, window, &CreateGCAux::new().foreground(0x20_2020))?;
    conn.map_window(window)?;
    // A deterministic pseudo-random "text": words of 1-pixel strokes on 16-pixel lines.
    let strokes = |line: u32, scroll: u32| -> Vec<Rectangle> {
        let mut state = (line + scroll).wrapping_mul(2_654_435_761) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut out = Vec::new();
        let mut x = 40u32;
        let y = 40 + line * 16;
        while x + 60 < u32::from(width) {
            let word = 3 + next() % 8;
            for _ in 0..word {
                let glyph = next();
                for s in 0..3 {
                    if glyph >> s & 1 == 1 {
                        out.push(Rectangle {
                            x: (x + s * 2) as i16,
                            y: y as i16,
                            width: 1,
                            height: 10,
                        });
                    }
                }
                out.push(Rectangle {
                    x: x as i16,
                    y: (y + (glyph % 3) * 4) as i16,
                    width: 6,
                    height: 1,
                });
                x += 8;
            }
            x += 8;
        }
        out
    };
    let lines = (u32::from(height).saturating_sub(80)) / 16;
    let draw_page = |scroll: u32| -> anyhow::Result<()> {
        conn.clear_area(false, window, 0, 0, width, height)?;
        for line in 0..lines {
            conn.poly_fill_rectangle(window, gc, &strokes(line, scroll))?;
        }
        Ok(())
    };
    let started = Instant::now();
    let mut scroll = 0;
    draw_page(scroll)?;
    let mut typed = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let t = started.elapsed().as_secs_f64();
        // A page scroll every 4 s; a word typed every 200 ms; the pointer always moving.
        if (t / 4.0) as u32 != scroll {
            scroll = (t / 4.0) as u32;
            typed = 0;
            draw_page(scroll)?;
        }
        let line = lines.saturating_sub(3);
        let x = 40 + typed * 48;
        if x + 60 < u32::from(width) {
            conn.change_gc(gc, &ChangeGCAux::new().foreground(0x10_30A0))?;
            conn.poly_fill_rectangle(
                window,
                gc,
                &[Rectangle {
                    x: x as i16,
                    y: (40 + line * 16) as i16,
                    width: 40,
                    height: 10,
                }],
            )?;
            conn.change_gc(gc, &ChangeGCAux::new().foreground(0x20_2020))?;
            typed += 1;
        }
        let (cx, cy) = (
            (f64::from(width) / 2.0 + f64::from(width) / 3.0 * (t * 0.7).cos()) as i16,
            (f64::from(height) / 2.0 + f64::from(height) / 3.0 * (t * 0.9).sin()) as i16,
        );
        conn.warp_pointer(x11rb::NONE, window, 0, 0, 0, 0, cx, cy)?;
        conn.flush()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

/// Runs the scenario.
pub async fn run(args: ScreenArgs) -> anyhow::Result<()> {
    if args.fps == 0 || args.fps > 60 {
        bail!("--fps must be 1..=60");
    }
    let (width, height) = parse_resolution(&args.resolution)?;
    let xvfb = match &args.display {
        Some(_) => None,
        None => Some(Xvfb::start(width, height)?),
    };
    let display = args
        .display
        .clone()
        .or_else(|| xvfb.as_ref().map(|x| x.display.clone()))
        .context("no display")?;
    let stop = Arc::new(AtomicBool::new(false));
    let painter = if xvfb.is_some() {
        let (display, stop) = (display.clone(), Arc::clone(&stop));
        let (w, h) = (u16::try_from(width)?, u16::try_from(height)?);
        Some(std::thread::spawn(move || paint(&display, w, h, &stop)))
    } else {
        None
    };
    // Let the first page appear.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fps = args.fps;
    let duration = Duration::from_secs_f64(args.duration.max(1.0));
    let x_pid = xvfb.as_ref().map(|x| x.child.id());
    let bitrate_kbps = args.bitrate_kbps;
    let report =
        tokio::task::spawn_blocking(move || measure(&display, fps, duration, bitrate_kbps, x_pid))
            .await?;
    stop.store(true, Ordering::Relaxed);
    if let Some(painter) = painter {
        if let Ok(Err(err)) = painter.join() {
            eprintln!("the slide painter stopped: {err:#}");
        }
    }
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "screen share {}x{} at {} fps, {:.0} kbit/s target, {:.0} s",
            report.width, report.height, report.fps, report.bitrate_kbps, report.duration_s
        );
        println!(
            "  frames captured {}, encoded {} ({:.0} kbit/s)",
            report.frames_captured, report.frames_encoded, report.encoded_kbps
        );
        for (what, p, m) in [
            ("capture", report.capture_ms, report.capture_mean_ms),
            ("encode", report.encode_ms, report.encode_mean_ms),
            (
                "capture-to-encoded",
                report.capture_to_encoded_ms,
                report.capture_to_encoded_mean_ms,
            ),
        ] {
            println!(
                "  {what:>18}: mean {m:.1} ms, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
                p.p50, p.p95, p.max
            );
        }
        println!(
            "  CPU (% of one core): capture+encode thread {:.1}, process {:.1}, X server {}",
            report.pipeline_cpu_percent,
            report.process_cpu_percent,
            report
                .x_server_cpu_percent
                .map(|p| format!("{p:.1}"))
                .unwrap_or_else(|| "not measured".into())
        );
    }
    drop(xvfb);
    Ok(())
}

/// Captures and encodes at `fps` for `duration` on this (blocking) thread, after a second of
/// warm-up; `x_pid` is the X server whose CPU is measured too.
fn measure(
    display: &str,
    fps: u32,
    duration: Duration,
    bitrate_kbps: Option<u32>,
    x_pid: Option<u32>,
) -> anyhow::Result<ScreenReport> {
    let mut source = ScreenSource::open(
        None,
        ScreenOptions {
            fps,
            cursor: true,
            display: Some(display.to_owned()),
        },
    )?;
    let (width, height) = (source.width(), source.height());
    let bitrate_bps = bitrate_kbps.map(|k| k * 1000).unwrap_or_else(|| {
        (u64::from(width) * u64::from(height) * u64::from(fps) * 8 / 100).clamp(300_000, 4_000_000)
            as u32
    });
    let mut encoder = H264Encoder::with_content(
        H264EncoderConfig {
            width,
            height,
            fps,
            bitrate_bps,
        },
        VideoContent::Screen,
    )?;
    let interval = Duration::from_secs(1) / fps;
    let warm_up = Duration::from_secs(1);
    let (mut capture, mut encode, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let (mut captured, mut encoded, mut bytes) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let x_cpu = || x_pid.and_then(|pid| cpu::process_cpu(&pid.to_string()));
    let mut measuring: Option<(Instant, Duration, Duration, Option<Duration>)> = None;
    let mut next = started;
    let mut sequence = 0u64;
    loop {
        let now = Instant::now();
        if measuring.is_none() && now - started >= warm_up {
            measuring = Some((
                now,
                cpu::thread_cpu().unwrap_or_default(),
                cpu::process_cpu("self").unwrap_or_default(),
                x_cpu(),
            ));
        }
        if let Some((since, ..)) = measuring {
            if now - since >= duration {
                break;
            }
        }
        let t0 = Instant::now();
        let mut frame = source.capture_frame(sequence * 1_000_000 / u64::from(fps));
        frame.timestamp_us = sequence * 1_000_000 / u64::from(fps);
        let t1 = Instant::now();
        let out = encoder.encode(&frame, sequence == 0)?;
        let t2 = Instant::now();
        sequence += 1;
        if measuring.is_some() {
            captured += 1;
            capture.push((t1 - t0).as_secs_f64() * 1000.0);
            if let Some(out) = out {
                encoded += 1;
                bytes += out.data.len() as u64;
                encode.push((t2 - t1).as_secs_f64() * 1000.0);
                total.push((t2 - t0).as_secs_f64() * 1000.0);
            }
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let Some((since, thread_start, process_start, x_start)) = measuring else {
        bail!("nothing measured");
    };
    let wall = since.elapsed();
    let thread_cpu = cpu::thread_cpu()
        .unwrap_or_default()
        .saturating_sub(thread_start);
    let process_cpu = cpu::process_cpu("self")
        .unwrap_or_default()
        .saturating_sub(process_start);
    let report = ScreenReport {
        width,
        height,
        fps,
        bitrate_kbps: f64::from(bitrate_bps) / 1000.0,
        duration_s: wall.as_secs_f64(),
        frames_captured: captured,
        frames_encoded: encoded,
        encoded_kbps: bytes as f64 * 8.0 / 1000.0 / wall.as_secs_f64(),
        capture_ms: Percentiles::of(&capture),
        capture_mean_ms: mean(&capture),
        encode_ms: Percentiles::of(&encode),
        encode_mean_ms: mean(&encode),
        capture_to_encoded_ms: Percentiles::of(&total),
        capture_to_encoded_mean_ms: mean(&total),
        pipeline_cpu_percent: cpu::percent(thread_cpu, wall),
        process_cpu_percent: cpu::percent(process_cpu, wall),
        x_server_cpu_percent: x_start
            .zip(x_cpu())
            .map(|(start, end)| cpu::percent(end.saturating_sub(start), wall)),
    };
    Ok(report)
}
