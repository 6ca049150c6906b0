//! Screen and window capture on macOS and Windows, through xcap.
//!
//! Untested on this project's CI machine (Linux, no display): written against xcap's
//! documented API and kept to what every platform of it offers (a screenshot of a monitor or
//! window per frame, converted from RGBA). Whether the cursor is in the picture is up to the
//! platform's capture (xcap does not draw it).

use xcap::{Monitor, Window};

use super::{ScreenInfo, Target, WindowInfo};
use crate::devices::convert::{even_size, rgb_into};
use crate::devices::{DeviceError, DeviceKind};
use crate::media::VideoFrame;

/// Why a capture failed.
pub(super) enum CaptureFailure {
    /// The screen or window is gone for good.
    Lost(String),
    /// Nothing to show this time (a minimised window).
    Hidden,
}

fn err(kind: DeviceKind, e: impl std::fmt::Display) -> DeviceError {
    DeviceError::from_text(kind, "default", &e.to_string())
}

pub(super) fn list_screens(_display: Option<&str>) -> Result<Vec<ScreenInfo>, DeviceError> {
    let kind = DeviceKind::Screen;
    let monitors = Monitor::all().map_err(|e| err(kind, e))?;
    let mut screens = Vec::new();
    for (index, monitor) in monitors.iter().enumerate() {
        screens.push(ScreenInfo {
            id: format!("screen:{index}"),
            name: monitor
                .name()
                .unwrap_or_else(|_| format!("monitor {index}")),
            x: monitor.x().unwrap_or(0),
            y: monitor.y().unwrap_or(0),
            width: monitor.width().unwrap_or(0),
            height: monitor.height().unwrap_or(0),
            primary: monitor.is_primary().unwrap_or(index == 0),
        });
    }
    Ok(screens)
}

pub(super) fn list_windows(_display: Option<&str>) -> Result<Vec<WindowInfo>, DeviceError> {
    let kind = DeviceKind::Window;
    let windows = Window::all().map_err(|e| err(kind, e))?;
    Ok(windows
        .iter()
        .filter(|w| !w.is_minimized().unwrap_or(false))
        .filter_map(|w| {
            Some(WindowInfo {
                id: format!("window:{}", w.id().ok()?),
                title: w.title().ok().filter(|t| !t.is_empty())?,
                width: w.width().ok()?,
                height: w.height().ok()?,
            })
        })
        .filter(|w| w.width >= 16 && w.height >= 16)
        .collect())
}

/// What is captured: looked up again for every frame, so nothing platform-bound is kept
/// across threads.
enum Source {
    Screen(usize),
    Window(u32),
}

/// Captures one monitor or window through xcap.
pub(super) struct Capturer {
    source: Source,
    width: u32,
    height: u32,
    label: String,
}

impl Capturer {
    /// Opens `target`; the display name is an X11 notion and ignored here, and so is the
    /// cursor flag (the platform decides).
    pub fn open(
        target: Target,
        _display: Option<&str>,
        _cursor: bool,
    ) -> Result<Self, DeviceError> {
        let (kind, source, label) = match target {
            Target::DefaultScreen => {
                let monitors = Monitor::all().map_err(|e| err(DeviceKind::Screen, e))?;
                let index = monitors
                    .iter()
                    .position(|m| m.is_primary().unwrap_or(false))
                    .or((!monitors.is_empty()).then_some(0))
                    .ok_or_else(|| {
                        DeviceError::not_found(DeviceKind::Screen, "default", "no monitor")
                    })?;
                (
                    DeviceKind::Screen,
                    Source::Screen(index),
                    format!("screen:{index}"),
                )
            }
            Target::Screen(index) => (
                DeviceKind::Screen,
                Source::Screen(index),
                format!("screen:{index}"),
            ),
            Target::Window(id) => {
                let id = u32::try_from(id).map_err(|_| {
                    DeviceError::InvalidArgument(format!("window:{id} is not a window id"))
                })?;
                (
                    DeviceKind::Window,
                    Source::Window(id),
                    format!("window:{id}"),
                )
            }
        };
        let mut capturer = Self {
            source,
            width: 0,
            height: 0,
            label,
        };
        // The first picture gives the real pixel size (monitors may be scaled).
        let image = capturer.image().map_err(|failure| match failure {
            Failure::Gone(why) | Failure::NotShown(why) => {
                DeviceError::not_found(kind, &capturer.label, why)
            }
        })?;
        let (w, h) =
            even_size(image.width(), image.height()).map_err(|e| DeviceError::backend(kind, e))?;
        capturer.width = w;
        capturer.height = h;
        Ok(capturer)
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn image(&self) -> Result<xcap::image::RgbaImage, Failure> {
        match self.source {
            Source::Screen(index) => {
                let monitors = Monitor::all().map_err(|e| Failure::Gone(e.to_string()))?;
                let monitor = monitors
                    .get(index)
                    .ok_or_else(|| Failure::Gone(format!("screen:{index} is gone")))?;
                monitor
                    .capture_image()
                    .map_err(|e| Failure::Gone(e.to_string()))
            }
            Source::Window(id) => {
                let windows = Window::all().map_err(|e| Failure::Gone(e.to_string()))?;
                let window = windows
                    .iter()
                    .find(|w| w.id().ok() == Some(id))
                    .ok_or_else(|| Failure::Gone(format!("window {id} was closed")))?;
                if window.is_minimized().unwrap_or(false) {
                    return Err(Failure::NotShown("the window is minimised".into()));
                }
                window
                    .capture_image()
                    .map_err(|e| Failure::NotShown(e.to_string()))
            }
        }
    }

    pub fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), CaptureFailure> {
        let image = self.image().map_err(|f| match f {
            Failure::Gone(why) => CaptureFailure::Lost(why),
            Failure::NotShown(_) => CaptureFailure::Hidden,
        })?;
        let (w, h) = (image.width(), image.height());
        if (w & !1, h & !1) != (frame.width, frame.height) {
            frame.y.fill(16);
            frame.u.fill(128);
            frame.v.fill(128);
        }
        rgb_into::<0, 1, 2, 4>(
            image.as_raw(),
            w as usize * 4,
            w as usize,
            h as usize,
            frame,
        )
        .map_err(|e| CaptureFailure::Lost(e.to_string()))
    }
}

/// A capture failure with its reason kept for messages.
enum Failure {
    Gone(String),
    NotShown(String),
}
