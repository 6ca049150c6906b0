//! `aula devices`: the cameras, microphones, speakers, screens and windows this machine has.

use std::fmt::Write as _;

use aula_core::devices::{self, AudioDeviceInfo, CameraFormat, DeviceList};
use clap::Args;

/// Arguments of `aula devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON (every format of every device) instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Lists the devices.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    if !cfg!(all(
        feature = "camera",
        feature = "audio-devices",
        feature = "screen"
    )) {
        eprintln!(
            "aula: built without some device backends; `cargo build --release -p aula \
             --features devices` builds them all (see the README for the system packages)"
        );
    }
    let list = devices::list_devices();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", summary(&list));
    }
    Ok(())
}

/// Formats shown per camera before "and N more".
const CAMERA_FORMATS_SHOWN: usize = 6;

fn camera_formats(formats: &[CameraFormat]) -> String {
    let mut shown: Vec<String> = formats
        .iter()
        .take(CAMERA_FORMATS_SHOWN)
        .map(CameraFormat::to_string)
        .collect();
    if formats.len() > CAMERA_FORMATS_SHOWN {
        shown.push(format!("and {} more", formats.len() - CAMERA_FORMATS_SHOWN));
    }
    shown.join(", ")
}

fn audio_formats(device: &AudioDeviceInfo) -> String {
    let mut rates: Vec<String> = device
        .formats
        .iter()
        .map(|f| {
            let rate = if f.min_sample_rate == f.max_sample_rate {
                format!("{} Hz", f.min_sample_rate)
            } else {
                format!("{}-{} Hz", f.min_sample_rate, f.max_sample_rate)
            };
            format!("{} ch {rate} {}", f.channels, f.sample_format)
        })
        .collect();
    rates.dedup();
    rates.join(", ")
}

/// The human-readable listing.
fn summary(list: &DeviceList) -> String {
    let mut out = String::new();
    let none = |out: &mut String, empty: bool| {
        if empty {
            out.push_str("  (none)\n");
        }
    };
    out.push_str("Cameras:\n");
    for camera in &list.cameras {
        let _ = writeln!(out, "  {}  {}", camera.id, camera.name);
        let _ = writeln!(out, "      {}", camera_formats(&camera.formats));
    }
    none(&mut out, list.cameras.is_empty());
    for (title, devices) in [
        ("Microphones", &list.microphones),
        ("Speakers", &list.speakers),
    ] {
        let _ = writeln!(out, "{title}:");
        for device in devices {
            let default = if device.is_default { " (default)" } else { "" };
            let _ = writeln!(out, "  {}  {}{default}", device.id, device.name);
            let _ = writeln!(out, "      {}", audio_formats(device));
        }
        none(&mut out, devices.is_empty());
    }
    out.push_str("Screens:\n");
    for screen in &list.screens {
        let primary = if screen.primary { " (primary)" } else { "" };
        let _ = writeln!(
            out,
            "  {}  {}  {}x{} at {},{}{primary}",
            screen.id, screen.name, screen.width, screen.height, screen.x, screen.y
        );
    }
    none(&mut out, list.screens.is_empty());
    out.push_str("Windows:\n");
    for window in &list.windows {
        let _ = writeln!(
            out,
            "  {}  {:?}  {}x{}",
            window.id, window.title, window.width, window.height
        );
    }
    none(&mut out, list.windows.is_empty());
    if !list.unavailable.is_empty() {
        out.push_str("Not listed:\n");
        for note in &list.unavailable {
            let _ = writeln!(out, "  {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aula_core::devices::{AudioFormat, CameraInfo, PixelFormat, ScreenInfo};

    #[test]
    fn the_summary_names_every_device_and_says_none_when_empty() {
        let empty = summary(&DeviceList::default());
        assert_eq!(empty.matches("(none)").count(), 5, "{empty}");

        let format = |width, height, fps| CameraFormat {
            width,
            height,
            fps,
            pixel_format: PixelFormat::Mjpeg,
        };
        let list = DeviceList {
            cameras: vec![CameraInfo {
                id: "0".into(),
                name: "Webcam".into(),
                description: "/dev/video0".into(),
                formats: (0..8).map(|i| format(1280, 720, 30 - i)).collect(),
            }],
            microphones: vec![AudioDeviceInfo {
                id: "pulseaudio:mic".into(),
                name: "Built-in".into(),
                is_default: true,
                formats: vec![AudioFormat {
                    channels: 1,
                    min_sample_rate: 8_000,
                    max_sample_rate: 48_000,
                    sample_format: "f32".into(),
                }],
            }],
            screens: vec![ScreenInfo {
                id: "screen:0".into(),
                name: "HDMI-1".into(),
                x: 0,
                y: 0,
                width: 1920,
                height: 1080,
                primary: true,
            }],
            unavailable: vec!["windows: backend failed".into()],
            ..DeviceList::default()
        };
        let text = summary(&list);
        assert!(text.contains("  0  Webcam\n"), "{text}");
        assert!(text.contains("1280x720@30 MJPEG"), "{text}");
        assert!(text.contains("and 2 more"), "{text}");
        assert!(
            text.contains("pulseaudio:mic  Built-in (default)"),
            "{text}"
        );
        assert!(text.contains("1 ch 8000-48000 Hz f32"), "{text}");
        assert!(
            text.contains("screen:0  HDMI-1  1920x1080 at 0,0 (primary)"),
            "{text}"
        );
        assert!(
            text.contains("Not listed:\n  windows: backend failed"),
            "{text}"
        );
        assert_eq!(
            text.matches("(none)").count(),
            2,
            "speakers and windows: {text}"
        );
    }
}
