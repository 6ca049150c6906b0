//! Cameras through nokhwa (V4L2 on Linux, AVFoundation on macOS, Media Foundation on Windows).
//!
//! A camera runs on a thread of its own: it waits for each frame from the driver, converts it
//! straight from the driver's buffer into I420 (see [`convert`](super::convert)) and leaves it
//! for the encoder thread, which takes the newest one at its own pace.
//!
//! Untested on this project's CI machine, which has no camera: listing with none attached, the
//! typed errors, format negotiation and every pixel conversion are tested; capture from a real
//! device is not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nokhwa::utils::{
    ApiBackend, CameraFormat as NokhwaFormat, CameraIndex, FrameFormat, RequestedFormat,
    RequestedFormatType, Resolution,
};
use nokhwa::Camera;

use super::convert::{to_i420, PixelFormat};
use super::negotiate::{nearest_camera_format, CameraFormat, CameraRequest};
use super::{CameraInfo, DeviceError, DeviceKind, DeviceMonitor};
use crate::media::{FrameStamp, VideoFrame, MAX_DIMENSION};
use crate::room::VideoSource;

/// Every frame format Aula converts.
const FORMATS: &[FrameFormat] = &[
    FrameFormat::NV12,
    FrameFormat::YUYV,
    FrameFormat::MJPEG,
    FrameFormat::GRAY,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];
/// Consecutive failed reads after which a camera counts as gone.
const MAX_READ_FAILURES: u32 = 5;
/// How long opening may take (macOS may be asking the user for permission).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

fn pixel_format(format: FrameFormat) -> PixelFormat {
    match format {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::NV12 => PixelFormat::Nv12,
        FrameFormat::GRAY => PixelFormat::Gray,
        FrameFormat::RAWRGB => PixelFormat::Rgb24,
        FrameFormat::RAWBGR => PixelFormat::Bgr24,
    }
}

fn frame_format(format: PixelFormat) -> Option<FrameFormat> {
    Some(match format {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb24 => FrameFormat::RAWRGB,
        PixelFormat::Bgr24 => FrameFormat::RAWBGR,
        _ => return None,
    })
}

fn ours(format: &NokhwaFormat) -> CameraFormat {
    CameraFormat {
        width: format.width(),
        height: format.height(),
        fps: format.frame_rate(),
        pixel_format: pixel_format(format.format()),
    }
}

fn kind() -> DeviceKind {
    DeviceKind::Camera
}

/// Asks for camera access where the system requires it (macOS); waits for the answer.
#[cfg(target_os = "macos")]
fn ensure_permission(id: &str) -> Result<(), DeviceError> {
    if nokhwa::nokhwa_check() {
        return Ok(());
    }
    let (tx, rx) = std_mpsc::channel();
    nokhwa::nokhwa_initialize(move |granted| {
        let _ = tx.send(granted);
    });
    match rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(true) => Ok(()),
        _ => Err(DeviceError::PermissionDenied {
            kind: kind(),
            id: id.to_owned(),
            detail: "camera access was not granted (System Settings > Privacy > Camera)".into(),
        }),
    }
}

#[cfg(not(target_os = "macos"))]
fn ensure_permission(_id: &str) -> Result<(), DeviceError> {
    Ok(())
}

/// Checks the device node before nokhwa opens it, for precise errors (Linux).
#[cfg(target_os = "linux")]
fn check_node(index: u32, id: &str) -> Result<(), DeviceError> {
    let path = format!("/dev/video{index}");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map(drop)
        .map_err(|e| DeviceError::from_io(kind(), id, &e))
}

#[cfg(not(target_os = "linux"))]
fn check_node(_index: u32, _id: &str) -> Result<(), DeviceError> {
    Ok(())
}

/// The cameras nokhwa finds, each with the formats it offers (a node that offers none, such
/// as a V4L2 metadata node, is left out).
pub(super) fn list() -> Result<Vec<CameraInfo>, DeviceError> {
    if !any_camera_node() {
        return Ok(Vec::new());
    }
    ensure_permission("default")?;
    let infos = nokhwa::query(ApiBackend::Auto)
        .map_err(|e| DeviceError::from_text(kind(), "default", &e.to_string()))?;
    let mut cameras = Vec::new();
    for info in infos {
        let index = info.index().clone();
        let id = index.to_string();
        let formats = match Camera::new(
            index,
            RequestedFormat::with_formats(RequestedFormatType::None, FORMATS),
        )
        .and_then(|mut camera| camera.compatible_camera_formats())
        {
            Ok(formats) => {
                let mut formats: Vec<CameraFormat> = formats
                    .iter()
                    .filter(|f| FORMATS.contains(&f.format()))
                    .map(ours)
                    .collect();
                formats.sort_by_key(|f| (std::cmp::Reverse(f.width * f.height), f.fps));
                formats.dedup();
                formats
            }
            Err(err) => {
                tracing::debug!(%id, error = %err, "camera skipped: formats not readable");
                continue;
            }
        };
        if formats.is_empty() {
            continue;
        }
        cameras.push(CameraInfo {
            id,
            name: info.human_name(),
            description: info.description().to_owned(),
            formats,
        });
    }
    Ok(cameras)
}

/// Whether the system could have a camera at all (Linux: any `/dev/video*` node); elsewhere
/// the backend is asked.
fn any_camera_node() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_dir("/dev")
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("video"))
            })
            .unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// The newest converted frame, handed from the camera thread to the encoder thread.
#[derive(Default)]
struct Slot {
    frame: Mutex<Option<VideoFrame>>,
    fresh: Condvar,
}

/// A camera, captured on its own thread.
///
/// Opened at the format nearest the request ([`CameraSource::format`] says which); the
/// encoder pulls at the camera's negotiated frame rate and gets the newest frame, or the
/// previous one again when the camera is late (dim light slows many cameras down). When the
/// camera goes away its [`monitor`](Self::monitor) reports it and frames are black.
pub struct CameraSource {
    slot: Arc<Slot>,
    format: CameraFormat,
    size: (u32, u32),
    monitor: DeviceMonitor,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    /// The last frame handed out, for repeating when the camera is late.
    last: Option<VideoFrame>,
}

impl std::fmt::Debug for CameraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraSource")
            .field("id", &self.monitor.id())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl CameraSource {
    /// Opens camera `id` (as listed by [`cameras`](super::cameras)), or the first camera with
    /// `None`, at the offered format nearest to `request`.
    pub fn open(id: Option<&str>, request: CameraRequest) -> Result<Self, DeviceError> {
        if request.fps == 0
            || request.fps > 120
            || !(16..=MAX_DIMENSION).contains(&request.width)
            || !(16..=MAX_DIMENSION).contains(&request.height)
        {
            return Err(DeviceError::InvalidArgument(format!(
                "a camera request of {}x{} at {} fps is out of range",
                request.width, request.height, request.fps
            )));
        }
        let shown = id.unwrap_or("default").to_owned();
        let index = match id {
            Some(text) if text != "default" => text.parse::<u32>().map_err(|_| {
                DeviceError::InvalidArgument(format!("{text:?} is not a camera id"))
            })?,
            _ => {
                let first = list()?.into_iter().next().ok_or_else(|| {
                    DeviceError::not_found(kind(), "default", "no camera is attached")
                })?;
                first.id.parse::<u32>().map_err(|_| {
                    DeviceError::backend(kind(), format!("unexpected camera id {}", first.id))
                })?
            }
        };
        if !any_camera_node() {
            return Err(DeviceError::not_found(
                kind(),
                &shown,
                "no camera is attached",
            ));
        }
        check_node(index, &shown)?;
        ensure_permission(&shown)?;

        let slot = Arc::new(Slot::default());
        let stop = Arc::new(AtomicBool::new(false));
        let monitor = DeviceMonitor::new(kind(), &shown);
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<CameraFormat, DeviceError>>();
        let thread = {
            let (slot, stop, monitor, shown) = (
                Arc::clone(&slot),
                Arc::clone(&stop),
                monitor.clone(),
                shown.clone(),
            );
            thread::Builder::new()
                .name(format!("aula-camera-{index}"))
                .spawn(move || run(index, &shown, request, ready_tx, &slot, &stop, &monitor))
                .map_err(|e| DeviceError::backend(kind(), format!("cannot start a thread: {e}")))?
        };
        let format = match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(format)) => format,
            Ok(Err(err)) => {
                let _ = thread.join();
                return Err(err);
            }
            Err(_) => {
                stop.store(true, Ordering::Release);
                return Err(DeviceError::backend(
                    kind(),
                    format!("camera {shown} did not start within {OPEN_TIMEOUT:?}"),
                ));
            }
        };
        let size = (format.width & !1, format.height & !1);
        tracing::info!(id = %shown, %format, "camera open");
        Ok(Self {
            slot,
            format,
            size,
            monitor,
            stop,
            thread: Some(thread),
            last: None,
        })
    }

    /// The format the camera was opened at.
    pub fn format(&self) -> CameraFormat {
        self.format
    }

    /// The camera's state and events (unplugging is reported there).
    pub fn monitor(&self) -> DeviceMonitor {
        self.monitor.clone()
    }
}

impl VideoSource for CameraSource {
    fn width(&self) -> u32 {
        self.size.0
    }

    fn height(&self) -> u32 {
        self.size.1
    }

    fn fps(&self) -> u32 {
        self.format.fps.clamp(1, 120)
    }

    fn capture(&mut self, stamp: FrameStamp) -> VideoFrame {
        let wait = Duration::from_secs(1) / self.fps() / 2;
        let deadline = Instant::now() + wait;
        let mut slot = self.slot.frame.lock().unwrap_or_else(|p| p.into_inner());
        while slot.is_none() && !self.monitor.is_lost() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            slot = self
                .slot
                .fresh
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let fresh = slot.take();
        drop(slot);
        let mut frame = match (fresh, &self.last, self.monitor.is_lost()) {
            (_, _, true) | (None, None, _) => VideoFrame::new_black(self.size.0, self.size.1),
            (Some(frame), _, false) => {
                // Kept to repeat if the camera is late next time.
                self.last = Some(frame.clone());
                frame
            }
            (None, Some(last), false) => last.clone(),
        };
        frame.timestamp_us = stamp.capture_time_us;
        frame
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The row length of a raw frame of `len` bytes: drivers may pad rows, and nokhwa hands over
/// the buffer without saying. 0 (tightly packed) when the length does not show padding.
fn stride_of(format: CameraFormat, len: usize) -> usize {
    let (w, h) = (format.width as usize, format.height as usize);
    if h == 0 {
        return 0;
    }
    match format.pixel_format {
        PixelFormat::Nv12 | PixelFormat::I420 => {
            // Luma rows plus half as many bytes of chroma.
            let rows = h + h / 2;
            if len.is_multiple_of(rows) && len / rows > w {
                len / rows
            } else {
                0
            }
        }
        other => match other.bytes_per_pixel() {
            Some(bpp) if len.is_multiple_of(h) && len / h > w * bpp => len / h,
            _ => 0,
        },
    }
}

/// The camera thread: opens, negotiates, reports, then captures until told to stop.
fn run(
    index: u32,
    id: &str,
    request: CameraRequest,
    ready: std_mpsc::Sender<Result<CameraFormat, DeviceError>>,
    slot: &Slot,
    stop: &AtomicBool,
    monitor: &DeviceMonitor,
) {
    let text = |e: nokhwa::NokhwaError| DeviceError::from_text(kind(), id, &e.to_string());
    let opened = (|| {
        let mut camera = Camera::new(
            CameraIndex::Index(index),
            RequestedFormat::with_formats(RequestedFormatType::None, FORMATS),
        )
        .map_err(text)?;
        let offered: Vec<CameraFormat> = camera
            .compatible_camera_formats()
            .map_err(text)?
            .iter()
            .filter(|f| FORMATS.contains(&f.format()))
            .map(ours)
            .collect();
        let chosen = nearest_camera_format(&offered, request).ok_or_else(|| {
            DeviceError::UnsupportedFormat {
                kind: kind(),
                id: id.to_owned(),
                detail: "no YUYV, NV12, MJPEG, GRAY or RGB format".into(),
            }
        })?;
        let fourcc = frame_format(chosen.pixel_format).ok_or_else(|| {
            DeviceError::backend(
                kind(),
                format!("{} is not a camera format", chosen.pixel_format),
            )
        })?;
        let exact = NokhwaFormat::new(
            Resolution::new(chosen.width, chosen.height),
            fourcc,
            chosen.fps,
        );
        let set = camera
            .set_camera_requset(RequestedFormat::with_formats(
                RequestedFormatType::Exact(exact),
                FORMATS,
            ))
            .map_err(text)?;
        camera.open_stream().map_err(text)?;
        Ok((camera, ours(&set)))
    })();
    let (mut camera, format) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let _ = ready.send(Ok(format));
    let mut failures = 0;
    while !stop.load(Ordering::Acquire) {
        let converted = match camera.frame_raw() {
            Ok(raw) => {
                failures = 0;
                let stride = stride_of(format, raw.len());
                to_i420(
                    format.pixel_format,
                    format.width,
                    format.height,
                    stride,
                    &raw,
                    0,
                )
            }
            Err(err) => {
                failures += 1;
                let gone = cfg!(target_os = "linux") && check_node(index, id).is_err();
                if gone || failures >= MAX_READ_FAILURES {
                    monitor.lost(err.to_string());
                    slot.fresh.notify_all();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        match converted {
            Ok(frame) => {
                *slot.frame.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame);
                slot.fresh.notify_one();
            }
            // A corrupt frame (a torn MJPEG picture) is skipped.
            Err(err) => tracing::debug!(error = %err, "camera frame dropped"),
        }
    }
    let _ = camera.stop_stream();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_rows_are_recognised_from_the_buffer_length() {
        let format = |pixel_format| CameraFormat {
            width: 640,
            height: 480,
            fps: 30,
            pixel_format,
        };
        assert_eq!(stride_of(format(PixelFormat::Yuyv), 640 * 2 * 480), 0);
        assert_eq!(stride_of(format(PixelFormat::Yuyv), 1344 * 480), 1344);
        assert_eq!(stride_of(format(PixelFormat::Nv12), 640 * 720), 0);
        assert_eq!(stride_of(format(PixelFormat::Nv12), 704 * 720), 704);
        // A length that shows nothing (a short or odd buffer) is left to the converter.
        assert_eq!(stride_of(format(PixelFormat::Yuyv), 1000), 0);
        assert_eq!(stride_of(format(PixelFormat::Mjpeg), 123_456), 0);
    }

    #[test]
    fn every_format_nokhwa_offers_maps_both_ways() {
        for format in FORMATS {
            assert_eq!(frame_format(pixel_format(*format)), Some(*format));
        }
        assert_eq!(frame_format(PixelFormat::Bgra), None);
    }
}
