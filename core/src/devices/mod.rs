//! Real devices: cameras, microphones, speakers, screens and windows.
//!
//! [`list_devices`] lists everything with its formats; each kind also has its own listing
//! ([`cameras`], [`microphones`], [`speakers`], [`screens`], [`windows`]). Opening a device by id
//! (or the default one with `None`) gives a source that plugs into a [`Room`](crate::Room):
//!
//! | device | type | plugs in as | feature |
//! |---|---|---|---|
//! | camera | `CameraSource` | [`VideoSource`](crate::VideoSource) | `camera` (nokhwa) |
//! | microphone | `Microphone` | [`AudioSource`](crate::AudioSource) | `audio-devices` (cpal) |
//! | speaker | `Speaker` | [`AudioSink`](crate::AudioSink) | `audio-devices` (cpal) |
//! | screen or window | `ScreenSource` | [`VideoSource`](crate::VideoSource), published as a screen share | `screen` (X11 via x11rb; xcap on macOS and Windows) |
//!
//! The features are on by default for desktop builds; mobile builds turn them off and push
//! frames from the platform's own capture APIs instead.
//!
//! Capture runs off the async workers: cameras and audio devices on their own threads (cpal's,
//! or a thread per camera), screens on the encoder thread that pulls them. A device that goes
//! away while in use is reported through its [`DeviceMonitor`] as a [`DeviceEvent::Lost`],
//! never as a crash: its source yields black frames or silence from then on. Opening a
//! device that is missing, busy or not permitted fails with a [`DeviceError`] saying which.
//!
//! Listing never fails for lack of devices: a machine with no camera, no sound card and no
//! display gets empty lists.

pub mod convert;
mod error;
mod monitor;
mod negotiate;
#[cfg(feature = "audio-devices")]
mod playout;
#[cfg(feature = "audio-devices")]
mod resample;

#[cfg(feature = "audio-devices")]
mod audio;
#[cfg(feature = "audio-devices")]
mod audio_in;
#[cfg(feature = "audio-devices")]
mod audio_out;
#[cfg(camera_capture)]
mod camera;
mod screen;

use serde::Serialize;

pub use convert::PixelFormat;
pub use error::DeviceError;
pub use monitor::{DeviceEvent, DeviceMonitor, DeviceState};
pub use negotiate::{nearest_camera_format, CameraFormat, CameraRequest};
#[cfg(feature = "audio-devices")]
pub use playout::PlayoutStats;
pub use screen::{ScreenInfo, ScreenOptions, WindowInfo};

#[cfg(feature = "audio-devices")]
pub use audio_in::{Microphone, MicrophoneStats};
#[cfg(feature = "audio-devices")]
pub use audio_out::Speaker;
#[cfg(camera_capture)]
pub use camera::CameraSource;
#[cfg(screen_capture)]
pub use screen::ScreenSource;

/// The kinds of device Aula opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DeviceKind {
    /// A camera.
    Camera,
    /// A microphone (any audio input).
    Microphone,
    /// A speaker (any audio output).
    Speaker,
    /// A whole screen (one monitor).
    Screen,
    /// One application window.
    Window,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
            DeviceKind::Screen => "screen",
            DeviceKind::Window => "window",
        })
    }
}

/// A camera and the formats it offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CameraInfo {
    /// What to pass to `CameraSource::open`.
    pub id: String,
    /// The name the system gives it.
    pub name: String,
    /// Where it is (for example its device node), when the backend says.
    pub description: String,
    /// Every size, rate and pixel format it offers that Aula can convert.
    pub formats: Vec<CameraFormat>,
}

/// One configuration range an audio device accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AudioFormat {
    /// Interleaved channels.
    pub channels: u16,
    /// Lowest sample rate, Hz.
    pub min_sample_rate: u32,
    /// Highest sample rate, Hz.
    pub max_sample_rate: u32,
    /// Sample type, as the backend names it (`f32`, `i16`, ...).
    pub sample_format: String,
}

/// A microphone or speaker and the formats it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AudioDeviceInfo {
    /// What to pass to `Microphone::open` or `Speaker::open`.
    pub id: String,
    /// The name the system gives it.
    pub name: String,
    /// Whether it is the system's default of its direction.
    pub is_default: bool,
    /// The configurations it accepts.
    pub formats: Vec<AudioFormat>,
}

/// Every device found, with what could not be looked at and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceList {
    /// Cameras.
    pub cameras: Vec<CameraInfo>,
    /// Microphones.
    pub microphones: Vec<AudioDeviceInfo>,
    /// Speakers.
    pub speakers: Vec<AudioDeviceInfo>,
    /// Screens (monitors).
    pub screens: Vec<ScreenInfo>,
    /// Application windows that can be shared.
    pub windows: Vec<WindowInfo>,
    /// Kinds of device that could not be listed, with the reason (a backend not built in, a
    /// sound server that failed). Empty lists with nothing here mean there are no devices.
    pub unavailable: Vec<String>,
}

/// Lists every device of every kind. A kind whose backend fails is listed as empty, with the
/// reason in [`DeviceList::unavailable`].
pub fn list_devices() -> DeviceList {
    let mut list = DeviceList::default();
    let mut note = |kind: &str, err: DeviceError| list_note(&mut list.unavailable, kind, err);
    let cameras = cameras().unwrap_or_else(|e| {
        note("cameras", e);
        Vec::new()
    });
    let microphones = microphones().unwrap_or_else(|e| {
        note("microphones", e);
        Vec::new()
    });
    let speakers = speakers().unwrap_or_else(|e| {
        note("speakers", e);
        Vec::new()
    });
    let screens = screens().unwrap_or_else(|e| {
        note("screens", e);
        Vec::new()
    });
    let windows = windows().unwrap_or_else(|e| {
        note("windows", e);
        Vec::new()
    });
    DeviceList {
        cameras,
        microphones,
        speakers,
        screens,
        windows,
        unavailable: list.unavailable,
    }
}

fn list_note(notes: &mut Vec<String>, kind: &str, err: DeviceError) {
    tracing::debug!(kind, error = %err, "devices not listed");
    notes.push(format!("{kind}: {err}"));
}

/// The cameras attached, with their formats. Empty when there are none.
pub fn cameras() -> Result<Vec<CameraInfo>, DeviceError> {
    #[cfg(camera_capture)]
    {
        camera::list()
    }
    #[cfg(not(camera_capture))]
    {
        Err(DeviceError::NotBuilt {
            kind: DeviceKind::Camera,
            detail: "aula-core's `camera` feature, on Linux, macOS or Windows".into(),
        })
    }
}

/// The microphones (audio inputs) available, with their formats. Empty when there are none.
pub fn microphones() -> Result<Vec<AudioDeviceInfo>, DeviceError> {
    #[cfg(feature = "audio-devices")]
    {
        audio::list(DeviceKind::Microphone)
    }
    #[cfg(not(feature = "audio-devices"))]
    {
        Err(audio_not_built(DeviceKind::Microphone))
    }
}

/// The speakers (audio outputs) available, with their formats. Empty when there are none.
pub fn speakers() -> Result<Vec<AudioDeviceInfo>, DeviceError> {
    #[cfg(feature = "audio-devices")]
    {
        audio::list(DeviceKind::Speaker)
    }
    #[cfg(not(feature = "audio-devices"))]
    {
        Err(audio_not_built(DeviceKind::Speaker))
    }
}

#[cfg(not(feature = "audio-devices"))]
fn audio_not_built(kind: DeviceKind) -> DeviceError {
    DeviceError::NotBuilt {
        kind,
        detail: "aula-core's `audio-devices` feature".into(),
    }
}

/// The screens (monitors) that can be shared. Empty without a display.
pub fn screens() -> Result<Vec<ScreenInfo>, DeviceError> {
    screen::list_screens(None)
}

/// The application windows that can be shared. Empty without a display.
pub fn windows() -> Result<Vec<WindowInfo>, DeviceError> {
    screen::list_windows(None)
}

/// The screens of the X11 display `display` (for example `:1`) rather than `$DISPLAY`; the
/// same as [`screens`] on platforms without X11.
pub fn screens_of(display: &str) -> Result<Vec<ScreenInfo>, DeviceError> {
    screen::list_screens(Some(display))
}

/// The windows of the X11 display `display` rather than `$DISPLAY`; the same as [`windows`]
/// on platforms without X11.
pub fn windows_of(display: &str) -> Result<Vec<WindowInfo>, DeviceError> {
    screen::list_windows(Some(display))
}
