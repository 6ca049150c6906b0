//! Screen and window capture, as a video source for a screen-share track.
//!
//! A `ScreenSource` captures one monitor (`screen:N`) or one window (`window:ID`) every time
//! its encoder thread pulls a frame, at full resolution, with the mouse cursor drawn in. The
//! track is published with [`TrackSource::ScreenShare`](aula_protocol::TrackSource), which
//! keeps the resolution and lowers the frame rate first when the network cannot carry it, and
//! tunes the H.264 encoder for text (see
//! [`VideoContent::Screen`](crate::media::VideoContent)).
//!
//! Backends: X11 on Linux and the BSDs (pure Rust through x11rb: MIT-SHM into a shared memory
//! mapping, XFixes for the cursor, Composite for windows that other windows cover), and xcap on
//! macOS and Windows. Native Wayland capture (the desktop portal's ScreenCast over PipeWire) is
//! not built: in a Wayland session the X11 backend captures XWayland's `$DISPLAY`, which on
//! most compositors shows only the X11 applications' windows.

use serde::Serialize;

use super::DeviceError;
#[cfg(not(screen_capture))]
use super::DeviceKind;

#[cfg(x11_screen)]
mod shm;
#[cfg(x11_screen)]
mod x11;
#[cfg(x11_screen)]
use x11 as backend;
#[cfg(xcap_screen)]
mod xcap_backend;
#[cfg(xcap_screen)]
use xcap_backend as backend;

#[cfg(screen_capture)]
mod source;
#[cfg(screen_capture)]
pub use source::ScreenSource;

/// A monitor that can be shared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScreenInfo {
    /// What to pass to `ScreenSource::open` (`screen:N`).
    pub id: String,
    /// The name the system gives it (an output name such as `HDMI-1`).
    pub name: String,
    /// Left edge on the desktop, pixels.
    pub x: i32,
    /// Top edge on the desktop, pixels.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether it is the primary monitor (what `None` opens).
    pub primary: bool,
}

/// An application window that can be shared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowInfo {
    /// What to pass to `ScreenSource::open` (`window:ID`).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// How to capture a screen or window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenOptions {
    /// Frames per second to capture (1..=60; default 15). Slides and text need few; the track
    /// gives frames up before resolution when the network is short.
    pub fps: u32,
    /// Draw the mouse cursor into the picture (default `true`).
    pub cursor: bool,
    /// The X11 display to capture (for example `:1`); `None` uses `$DISPLAY`. Ignored by the
    /// other backends.
    pub display: Option<String>,
}

impl Default for ScreenOptions {
    fn default() -> Self {
        Self {
            fps: 15,
            cursor: true,
            display: None,
        }
    }
}

/// What a `screen:` or `window:` id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(screen_capture), allow(dead_code))]
pub(crate) enum Target {
    /// The primary monitor (or the first).
    DefaultScreen,
    /// The monitor at this index of the listing.
    Screen(usize),
    /// The window with this id.
    Window(u64),
}

/// Parses `screen:N`, `window:ID` (decimal or `0x` hex) or `None` (the default screen).
#[cfg_attr(not(screen_capture), allow(dead_code))]
pub(crate) fn parse_target(id: Option<&str>) -> Result<Target, DeviceError> {
    let Some(id) = id else {
        return Ok(Target::DefaultScreen);
    };
    let bad = || {
        DeviceError::InvalidArgument(format!(
            "{id:?} is not a screen or window id (`screen:N` or `window:ID`)"
        ))
    };
    if id == "default" {
        return Ok(Target::DefaultScreen);
    }
    if let Some(n) = id.strip_prefix("screen:") {
        return n.parse().map(Target::Screen).map_err(|_| bad());
    }
    if let Some(w) = id.strip_prefix("window:") {
        let parsed = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => w.parse(),
        };
        return parsed.map(Target::Window).map_err(|_| bad());
    }
    Err(bad())
}

/// The screens that can be shared (of the X11 `display`, or `$DISPLAY`).
#[cfg_attr(not(screen_capture), allow(unused_variables))]
pub(crate) fn list_screens(display: Option<&str>) -> Result<Vec<ScreenInfo>, DeviceError> {
    #[cfg(screen_capture)]
    {
        backend::list_screens(display)
    }
    #[cfg(not(screen_capture))]
    {
        Err(not_built(DeviceKind::Screen))
    }
}

/// The windows that can be shared (of the X11 `display`, or `$DISPLAY`).
#[cfg_attr(not(screen_capture), allow(unused_variables))]
pub(crate) fn list_windows(display: Option<&str>) -> Result<Vec<WindowInfo>, DeviceError> {
    #[cfg(screen_capture)]
    {
        backend::list_windows(display)
    }
    #[cfg(not(screen_capture))]
    {
        Err(not_built(DeviceKind::Window))
    }
}

#[cfg(not(screen_capture))]
fn not_built(kind: DeviceKind) -> DeviceError {
    DeviceError::NotBuilt {
        kind,
        detail: "aula-core's `screen` feature, on Linux/BSD (X11), macOS or Windows".into(),
    }
}

/// The mouse cursor as a premultiplied ARGB image, placed on the captured picture.
#[cfg_attr(not(screen_capture), allow(dead_code))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Cursor {
    /// Left edge relative to the picture (may be negative).
    pub x: i32,
    /// Top edge relative to the picture.
    pub y: i32,
    /// Width of the image.
    pub width: u32,
    /// Height of the image.
    pub height: u32,
    /// `0xAARRGGBB` pixels, premultiplied by alpha, row by row.
    pub pixels: Vec<u32>,
}

/// Draws `cursor` over a packed 32-bit picture whose red, green and blue bytes sit at offsets
/// `r`, `g`, `b` of each pixel.
#[cfg_attr(not(screen_capture), allow(dead_code))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn blend_cursor(
    picture: &mut [u8],
    stride: usize,
    width: u32,
    height: u32,
    (r, g, b): (usize, usize, usize),
    cursor: &Cursor,
) {
    let (cw, ch) = (cursor.width as i64, cursor.height as i64);
    if cursor.pixels.len() < (cw * ch) as usize {
        return;
    }
    for cy in 0..ch {
        let py = i64::from(cursor.y) + cy;
        if py < 0 || py >= i64::from(height) {
            continue;
        }
        let row = &mut picture[py as usize * stride..];
        for cx in 0..cw {
            let px = i64::from(cursor.x) + cx;
            if px < 0 || px >= i64::from(width) {
                continue;
            }
            let argb = cursor.pixels[(cy * cw + cx) as usize];
            let alpha = argb >> 24;
            if alpha == 0 {
                continue;
            }
            let pixel = &mut row[px as usize * 4..][..4];
            let keep = 255 - alpha;
            for (offset, shift) in [(r, 16u32), (g, 8), (b, 0)] {
                let src = (argb >> shift) & 0xFF;
                let dst = u32::from(pixel[offset]);
                pixel[offset] = (src + (dst * keep + 127) / 255).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_target(None), Ok(Target::DefaultScreen));
        assert_eq!(parse_target(Some("default")), Ok(Target::DefaultScreen));
        assert_eq!(parse_target(Some("screen:2")), Ok(Target::Screen(2)));
        assert_eq!(
            parse_target(Some("window:0x1a00003")),
            Ok(Target::Window(0x1a0_0003))
        );
        assert_eq!(parse_target(Some("window:42")), Ok(Target::Window(42)));
        for bad in ["screen", "screen:x", "window:0xZZ", "camera:0", ""] {
            assert!(
                matches!(
                    parse_target(Some(bad)),
                    Err(DeviceError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_cursor_is_blended_with_its_alpha_and_clipped() {
        // A 4x2 BGRX picture of mid grey.
        let mut picture = vec![100u8; 4 * 4 * 2];
        let cursor = Cursor {
            x: -1,
            y: 1,
            width: 3,
            height: 2,
            // Opaque white, half-transparent black (premultiplied: colour 0), transparent.
            pixels: vec![
                0xFFFF_FFFF,
                0x8000_0000,
                0,
                0xFFFF_0000,
                0xFFFF_0000,
                0xFFFF_0000,
            ],
        };
        blend_cursor(&mut picture, 16, 4, 2, (2, 1, 0), &cursor);
        // Row 0 is above the cursor; the cursor's column -1 is clipped.
        assert!(picture[..16].iter().all(|&p| p == 100));
        // Row 1, pixel 0: the half-transparent black darkens the grey to about half.
        assert_eq!(&picture[16..19], &[50, 50, 50]);
        // Pixel 1: transparent, unchanged. The cursor's second row is below the picture.
        assert_eq!(&picture[20..23], &[100, 100, 100]);
    }
}
