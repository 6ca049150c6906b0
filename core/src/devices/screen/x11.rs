//! X11 screen and window capture in pure Rust (x11rb).
//!
//! Pictures come through MIT-SHM into a memfd mapping the X server writes directly (no copy
//! through the socket), with a plain `GetImage` as the fallback for displays that cannot share
//! memory (remote ones). RandR lists the monitors; XFixes gives the cursor image and position;
//! Composite keeps a window's own contents available even where other windows cover it.

use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::composite::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, AtomEnum, ConnectionExt as _, ImageFormat, ImageOrder, MapState, Window,
};
use x11rb::protocol::ErrorKind;
use x11rb::rust_connection::RustConnection;

use super::shm::SharedMapping;
use super::{blend_cursor, Cursor, ScreenInfo, Target, WindowInfo};
use crate::devices::convert::{even_size, rgb_into};
use crate::devices::{DeviceError, DeviceKind};
use crate::media::VideoFrame;

/// An open display.
struct Display {
    conn: RustConnection,
    root: Window,
    /// Red, green, blue byte offsets within a 32-bit pixel as the server writes them.
    channels: (usize, usize, usize),
    /// The display name, for messages.
    name: String,
}

fn display_name(display: Option<&str>) -> Option<String> {
    display
        .map(str::to_owned)
        .or_else(|| std::env::var("DISPLAY").ok())
        .filter(|d| !d.is_empty())
}

/// Connects to `display` (or `$DISPLAY`); `Ok(None)` when there is no display to connect to.
fn connect(display: Option<&str>, kind: DeviceKind) -> Result<Option<Display>, DeviceError> {
    let Some(name) = display_name(display) else {
        return Ok(None);
    };
    let (conn, screen) = x11rb::connect(Some(&name))
        .map_err(|e| DeviceError::backend(kind, format!("cannot open X display {name}: {e}")))?;
    let setup = conn.setup();
    let Some(root_screen) = setup.roots.get(screen) else {
        return Err(DeviceError::backend(
            kind,
            "the X server has no such screen",
        ));
    };
    let root = root_screen.root;
    let depth = root_screen.root_depth;
    let format = setup.pixmap_formats.iter().find(|f| f.depth == depth);
    let visual = root_screen
        .allowed_depths
        .iter()
        .flat_map(|d| &d.visuals)
        .find(|v| v.visual_id == root_screen.root_visual);
    let usable = format.is_some_and(|f| f.bits_per_pixel == 32 && f.scanline_pad == 32)
        && (depth == 24 || depth == 32)
        && visual.is_some_and(|v| {
            v.red_mask == 0x00FF_0000 && v.green_mask == 0x0000_FF00 && v.blue_mask == 0xFF
        });
    if !usable {
        return Err(DeviceError::UnsupportedFormat {
            kind,
            id: name,
            detail: format!("the root window is {depth}-bit; 24- or 32-bit RGB is needed"),
        });
    }
    let channels = if setup.image_byte_order == ImageOrder::LSB_FIRST {
        (2, 1, 0) // B G R X in memory
    } else {
        (1, 2, 3) // X R G B
    };
    Ok(Some(Display {
        conn,
        root,
        channels,
        name,
    }))
}

fn reply_error(kind: DeviceKind, err: impl std::fmt::Display) -> DeviceError {
    DeviceError::backend(kind, format!("X11: {err}"))
}

impl Display {
    fn has_extension(&self, name: &'static str) -> bool {
        matches!(self.conn.extension_information(name), Ok(Some(_)))
    }

    /// The monitors, from RandR 1.5 when the server has it, else the whole root window.
    fn monitors(&self) -> Result<Vec<ScreenInfo>, DeviceError> {
        let kind = DeviceKind::Screen;
        let mut screens = Vec::new();
        if self.has_extension(randr::X11_EXTENSION_NAME) {
            let version = self
                .conn
                .randr_query_version(1, 5)
                .map_err(|e| reply_error(kind, e))?
                .reply()
                .map_err(|e| reply_error(kind, e))?;
            if (version.major_version, version.minor_version) >= (1, 5) {
                let monitors = self
                    .conn
                    .randr_get_monitors(self.root, true)
                    .map_err(|e| reply_error(kind, e))?
                    .reply()
                    .map_err(|e| reply_error(kind, e))?
                    .monitors;
                for (index, monitor) in monitors.iter().enumerate() {
                    let name = self
                        .conn
                        .get_atom_name(monitor.name)
                        .ok()
                        .and_then(|c| c.reply().ok())
                        .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                        .unwrap_or_else(|| format!("monitor {index}"));
                    screens.push(ScreenInfo {
                        id: format!("screen:{index}"),
                        name,
                        x: i32::from(monitor.x),
                        y: i32::from(monitor.y),
                        width: u32::from(monitor.width),
                        height: u32::from(monitor.height),
                        primary: monitor.primary,
                    });
                }
            }
        }
        if screens.is_empty() {
            let geometry = self
                .conn
                .get_geometry(self.root)
                .map_err(|e| reply_error(kind, e))?
                .reply()
                .map_err(|e| reply_error(kind, e))?;
            screens.push(ScreenInfo {
                id: "screen:0".into(),
                name: format!("X display {}", self.name),
                x: 0,
                y: 0,
                width: u32::from(geometry.width),
                height: u32::from(geometry.height),
                primary: true,
            });
        }
        if !screens.iter().any(|s| s.primary) {
            if let Some(first) = screens.first_mut() {
                first.primary = true;
            }
        }
        Ok(screens)
    }

    fn atom(&self, name: &str) -> Option<xproto::Atom> {
        let reply = self
            .conn
            .intern_atom(true, name.as_bytes())
            .ok()?
            .reply()
            .ok()?;
        (reply.atom != x11rb::NONE).then_some(reply.atom)
    }

    /// A window's title: `_NET_WM_NAME` (UTF-8), else `WM_NAME`.
    fn title(&self, window: Window) -> Option<String> {
        let read = |property: xproto::Atom, type_: xproto::Atom| {
            let reply = self
                .conn
                .get_property(false, window, property, type_, 0, 1024)
                .ok()?
                .reply()
                .ok()?;
            (!reply.value.is_empty()).then(|| String::from_utf8_lossy(&reply.value).into_owned())
        };
        let utf8 = self
            .atom("_NET_WM_NAME")
            .zip(self.atom("UTF8_STRING"))
            .and_then(|(name, utf8)| read(name, utf8));
        utf8.or_else(|| read(AtomEnum::WM_NAME.into(), AtomEnum::STRING.into()))
    }

    /// Shareable windows: the window manager's client list, or without one the mapped
    /// top-level windows that have a title.
    fn windows(&self) -> Result<Vec<WindowInfo>, DeviceError> {
        let kind = DeviceKind::Window;
        let managed: Option<Vec<Window>> = self.atom("_NET_CLIENT_LIST").and_then(|list| {
            let reply = self
                .conn
                .get_property(false, self.root, list, AtomEnum::WINDOW, 0, 4096)
                .ok()?
                .reply()
                .ok()?;
            let windows: Vec<Window> = reply.value32()?.collect();
            (!windows.is_empty()).then_some(windows)
        });
        let candidates = match managed {
            Some(windows) => windows,
            None => {
                self.conn
                    .query_tree(self.root)
                    .map_err(|e| reply_error(kind, e))?
                    .reply()
                    .map_err(|e| reply_error(kind, e))?
                    .children
            }
        };
        let mut windows = Vec::new();
        for window in candidates {
            let viewable = self
                .conn
                .get_window_attributes(window)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == MapState::VIEWABLE);
            let Some(geometry) = self
                .conn
                .get_geometry(window)
                .ok()
                .and_then(|c| c.reply().ok())
            else {
                continue;
            };
            let Some(title) = self.title(window) else {
                continue;
            };
            if !viewable || geometry.width < 16 || geometry.height < 16 {
                continue;
            }
            windows.push(WindowInfo {
                id: format!("window:0x{window:x}"),
                title,
                width: u32::from(geometry.width),
                height: u32::from(geometry.height),
            });
        }
        Ok(windows)
    }
}

/// The monitors of `display` (or `$DISPLAY`); empty when there is no display.
pub(super) fn list_screens(display: Option<&str>) -> Result<Vec<ScreenInfo>, DeviceError> {
    match connect(display, DeviceKind::Screen)? {
        Some(display) => display.monitors(),
        None => Ok(Vec::new()),
    }
}

/// The shareable windows of `display` (or `$DISPLAY`); empty when there is no display.
pub(super) fn list_windows(display: Option<&str>) -> Result<Vec<WindowInfo>, DeviceError> {
    match connect(display, DeviceKind::Window)? {
        Some(display) => display.windows(),
        None => Ok(Vec::new()),
    }
}

/// Why a capture failed.
pub(super) enum CaptureFailure {
    /// The screen or window is gone for good (display closed, window destroyed).
    Lost(String),
    /// Nothing to show this time (a window unmapped or minimised).
    Hidden,
}

/// What is being captured.
enum Source {
    /// A rectangle of the root window (one monitor).
    Screen { x: i16, y: i16 },
    /// A window, through its Composite pixmap when the server has Composite.
    Window {
        window: Window,
        composite: bool,
        pixmap: Option<(xproto::Pixmap, u16, u16)>,
    },
}

/// Where pictures land.
enum Buffer {
    /// A shared memory segment attached to the server.
    Shared {
        mapping: SharedMapping,
        segment: shm::Seg,
    },
    /// Plain `GetImage` replies (no shared memory).
    Socket,
}

/// Captures one monitor or window of an X display.
pub(super) struct Capturer {
    display: Display,
    source: Source,
    /// The frame size (even), fixed at open.
    width: u32,
    height: u32,
    buffer: Buffer,
    cursor: bool,
    /// Display name and target, for messages.
    label: String,
}

impl Capturer {
    /// Opens `target` on `display` (or `$DISPLAY`).
    pub fn open(target: Target, display: Option<&str>, cursor: bool) -> Result<Self, DeviceError> {
        let kind = match target {
            Target::Window(_) => DeviceKind::Window,
            _ => DeviceKind::Screen,
        };
        let requested = match target {
            Target::DefaultScreen => "default".to_owned(),
            Target::Screen(n) => format!("screen:{n}"),
            Target::Window(w) => format!("window:0x{w:x}"),
        };
        let Some(display) = connect(display, kind)? else {
            return Err(DeviceError::not_found(
                kind,
                &requested,
                "no X display ($DISPLAY is unset)",
            ));
        };
        let (source, width, height) = match target {
            Target::DefaultScreen | Target::Screen(_) => {
                let monitors = display.monitors()?;
                let monitor = match target {
                    Target::Screen(n) => monitors.get(n),
                    _ => monitors.iter().find(|m| m.primary).or(monitors.first()),
                }
                .ok_or_else(|| {
                    DeviceError::not_found(
                        kind,
                        &requested,
                        format!("display {} has {} screens", display.name, monitors.len()),
                    )
                })?;
                let (w, h) = even_size(monitor.width, monitor.height)
                    .map_err(|e| DeviceError::backend(kind, e))?;
                let source = Source::Screen {
                    x: clamp_i16(monitor.x),
                    y: clamp_i16(monitor.y),
                };
                (source, w, h)
            }
            Target::Window(id) => {
                let window = u32::try_from(id).map_err(|_| {
                    DeviceError::InvalidArgument(format!("{requested} is not an X window id"))
                })?;
                let geometry = display
                    .conn
                    .get_geometry(window)
                    .map_err(|e| reply_error(kind, e))?
                    .reply()
                    .map_err(|e| match e {
                        ReplyError::X11Error(_) => DeviceError::not_found(
                            kind,
                            &requested,
                            format!("no such window on display {}", display.name),
                        ),
                        other => reply_error(kind, other),
                    })?;
                let (w, h) = even_size(u32::from(geometry.width), u32::from(geometry.height))
                    .map_err(|e| DeviceError::backend(kind, e))?;
                let composite = display.has_extension(composite::X11_EXTENSION_NAME)
                    && display
                        .conn
                        .composite_query_version(0, 4)
                        .ok()
                        .and_then(|c| c.reply().ok())
                        .is_some_and(|v| (v.major_version, v.minor_version) >= (0, 2))
                    && display
                        .conn
                        .composite_redirect_window(window, composite::Redirect::AUTOMATIC)
                        .ok()
                        .and_then(|c| c.check().ok())
                        .is_some();
                let source = Source::Window {
                    window,
                    composite,
                    pixmap: None,
                };
                (source, w, h)
            }
        };
        let cursor = cursor
            && display.has_extension(xfixes::X11_EXTENSION_NAME)
            && display
                .conn
                .xfixes_query_version(4, 0)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some();
        let name = display.name.clone();
        let buffer = shared_buffer(&display, width, height).unwrap_or_else(|why| {
            tracing::info!(x_display = %name, %why, "no shared memory: capturing through the socket");
            Buffer::Socket
        });
        let label = format!("{requested} on {}", display.name);
        let mut capturer = Self {
            display,
            source,
            width,
            height,
            buffer,
            cursor,
            label,
        };
        // One capture now, so that a display that accepts the segment but cannot fill it
        // falls back before the first frame, and a window that cannot be read fails here.
        let mut probe = VideoFrame::new_black(width, height);
        match capturer.capture(&mut probe) {
            Ok(()) | Err(CaptureFailure::Hidden) => {}
            Err(CaptureFailure::Lost(why)) if matches!(capturer.buffer, Buffer::Shared { .. }) => {
                tracing::info!(%why, "shared memory capture failed: capturing through the socket");
                capturer.buffer = Buffer::Socket;
                if let Err(CaptureFailure::Lost(why)) = capturer.capture(&mut probe) {
                    return Err(DeviceError::backend(kind, why));
                }
            }
            Err(CaptureFailure::Lost(why)) => return Err(DeviceError::backend(kind, why)),
        }
        Ok(capturer)
    }

    /// The frame size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// What is captured, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Captures the current picture into `frame` (of [`Self::size`]).
    pub fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), CaptureFailure> {
        let (drawable, x, y, w, h, origin) = self.region()?;
        let channels = self.display.channels;
        let cursor = if self.cursor {
            self.cursor_at(origin)
        } else {
            None
        };
        let frame_w = frame.width;
        let frame_h = frame.height;
        if (u32::from(w), u32::from(h)) != (frame_w, frame_h) {
            // A window smaller than when sharing started: black around it.
            frame.y.fill(16);
            frame.u.fill(128);
            frame.v.fill(128);
        }
        let stride = usize::from(w) * 4;
        let mut convert = |pixels: &mut [u8]| {
            if let Some(cursor) = &cursor {
                blend_cursor(pixels, stride, u32::from(w), u32::from(h), channels, cursor);
            }
            let result = match channels {
                (2, 1, 0) => rgb_into::<2, 1, 0, 4>(pixels, stride, w.into(), h.into(), frame),
                _ => rgb_into::<1, 2, 3, 4>(pixels, stride, w.into(), h.into(), frame),
            };
            result.map_err(|e| CaptureFailure::Lost(e.to_string()))
        };
        match &mut self.buffer {
            Buffer::Shared { mapping, segment } => {
                let reply = self
                    .display
                    .conn
                    .shm_get_image(
                        drawable,
                        x,
                        y,
                        w,
                        h,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        *segment,
                        0,
                    )
                    .map_err(lost)?
                    .reply()
                    .map_err(|e| classify(&self.source, e))?;
                let bytes = (reply.size as usize).min(mapping.bytes_mut().len());
                if bytes < stride * usize::from(h) {
                    return Err(CaptureFailure::Lost(format!(
                        "the server wrote {bytes} bytes for a {w}x{h} picture"
                    )));
                }
                convert(&mut mapping.bytes_mut()[..bytes])
            }
            Buffer::Socket => {
                let mut reply = self
                    .display
                    .conn
                    .get_image(ImageFormat::Z_PIXMAP, drawable, x, y, w, h, !0)
                    .map_err(lost)?
                    .reply()
                    .map_err(|e| classify(&self.source, e))?;
                convert(&mut reply.data)
            }
        }
    }

    /// The drawable and rectangle to read, and where its top-left is on the root window.
    #[allow(clippy::type_complexity)]
    fn region(
        &mut self,
    ) -> Result<(xproto::Drawable, i16, i16, u16, u16, (i32, i32)), CaptureFailure> {
        let (fw, fh) = (clamp_u16(self.width), clamp_u16(self.height));
        match &mut self.source {
            Source::Screen { x, y } => Ok((
                self.display.root,
                *x,
                *y,
                fw,
                fh,
                (i32::from(*x), i32::from(*y)),
            )),
            Source::Window {
                window,
                composite,
                pixmap,
            } => {
                let window = *window;
                let conn = &self.display.conn;
                let attributes = conn
                    .get_window_attributes(window)
                    .map_err(lost)?
                    .reply()
                    .map_err(|e| window_error(e, window))?;
                if attributes.map_state != MapState::VIEWABLE {
                    return Err(CaptureFailure::Hidden);
                }
                let geometry = conn
                    .get_geometry(window)
                    .map_err(lost)?
                    .reply()
                    .map_err(|e| window_error(e, window))?;
                let origin = conn
                    .translate_coordinates(window, self.display.root, 0, 0)
                    .map_err(lost)?
                    .reply()
                    .map_err(|e| window_error(e, window))?;
                let w = geometry.width.min(fw) & !1;
                let h = geometry.height.min(fh) & !1;
                if w == 0 || h == 0 {
                    return Err(CaptureFailure::Hidden);
                }
                let origin = (i32::from(origin.dst_x), i32::from(origin.dst_y));
                if !*composite {
                    return Ok((window, 0, 0, w, h, origin));
                }
                let size = (geometry.width, geometry.height);
                let stale = pixmap.is_some_and(|(_, pw, ph)| (pw, ph) != size);
                if stale {
                    if let Some((old, _, _)) = pixmap.take() {
                        let _ = conn.free_pixmap(old);
                    }
                }
                let id = match pixmap {
                    Some((id, _, _)) => *id,
                    None => {
                        let id = conn.generate_id().map_err(lost_id)?;
                        conn.composite_name_window_pixmap(window, id)
                            .map_err(lost)?
                            .check()
                            .map_err(|e| window_error(e, window))?;
                        *pixmap = Some((id, size.0, size.1));
                        id
                    }
                };
                // The pixmap includes the border; the picture starts inside it.
                let border = clamp_i16(i32::from(geometry.border_width));
                Ok((id, border, border, w, h, origin))
            }
        }
    }

    /// The cursor relative to a picture whose top-left is at `origin` on the root window.
    fn cursor_at(&self, origin: (i32, i32)) -> Option<Cursor> {
        let image = self
            .display
            .conn
            .xfixes_get_cursor_image()
            .ok()?
            .reply()
            .ok()?;
        Some(Cursor {
            x: i32::from(image.x) - i32::from(image.xhot) - origin.0,
            y: i32::from(image.y) - i32::from(image.yhot) - origin.1,
            width: u32::from(image.width),
            height: u32::from(image.height),
            pixels: image.cursor_image,
        })
    }
}

/// Sorts a failed capture: the window or screen gone, or hidden for now.
fn classify(source: &Source, err: ReplyError) -> CaptureFailure {
    match (source, err) {
        (Source::Window { window, .. }, err) => window_error(err, *window),
        (Source::Screen { .. }, ReplyError::X11Error(e)) if e.error_kind == ErrorKind::Match => {
            CaptureFailure::Lost(
                "the screen is no longer where it was (resolution or layout changed)".into(),
            )
        }
        (_, err) => CaptureFailure::Lost(format!("X11: {err}")),
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        let conn = &self.display.conn;
        if let Buffer::Shared { segment, .. } = &self.buffer {
            let _ = conn.shm_detach(*segment);
        }
        if let Source::Window {
            window,
            composite,
            pixmap,
        } = &self.source
        {
            if let Some((id, _, _)) = pixmap {
                let _ = conn.free_pixmap(*id);
            }
            if *composite {
                let _ = conn.composite_unredirect_window(*window, composite::Redirect::AUTOMATIC);
            }
        }
        let _ = conn.flush();
    }
}

/// A memfd segment attached to the server, when it speaks MIT-SHM 1.2.
fn shared_buffer(display: &Display, width: u32, height: u32) -> Result<Buffer, String> {
    if !display.has_extension(shm::X11_EXTENSION_NAME) {
        return Err("the server has no MIT-SHM".into());
    }
    let version = display
        .conn
        .shm_query_version()
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    if (version.major_version, version.minor_version) < (1, 2) {
        return Err("the server's MIT-SHM is older than 1.2".into());
    }
    let len = width as usize * height as usize * 4;
    let (mapping, fd) = SharedMapping::new(len).map_err(|e| e.to_string())?;
    let segment = display.conn.generate_id().map_err(|e| e.to_string())?;
    display
        .conn
        .shm_attach_fd(segment, fd, false)
        .map_err(|e| e.to_string())?
        .check()
        .map_err(|e| e.to_string())?;
    Ok(Buffer::Shared { mapping, segment })
}

fn lost(err: ConnectionError) -> CaptureFailure {
    CaptureFailure::Lost(format!("the X display went away: {err}"))
}

fn lost_id(err: ReplyOrIdError) -> CaptureFailure {
    CaptureFailure::Lost(format!("X11: {err}"))
}

/// Sorts an error about a captured window: gone, hidden, or the display lost.
fn window_error(err: ReplyError, window: Window) -> CaptureFailure {
    match err {
        ReplyError::X11Error(e)
            if matches!(e.error_kind, ErrorKind::Window | ErrorKind::Drawable) =>
        {
            CaptureFailure::Lost(format!("window 0x{window:x} was closed"))
        }
        ReplyError::X11Error(e) if e.error_kind == ErrorKind::Match => CaptureFailure::Hidden,
        ReplyError::X11Error(e) => CaptureFailure::Lost(format!("X11: {e:?}")),
        ReplyError::ConnectionError(e) => lost(e),
    }
}

fn clamp_i16(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

fn clamp_u16(v: u32) -> u16 {
    v.min(u32::from(u16::MAX)) as u16
}
