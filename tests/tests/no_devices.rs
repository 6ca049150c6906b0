//! A machine with no camera, no sound card and no display (CI): every listing is empty, and
//! opening any device fails with a typed error that says so, never a panic.
//!
//! The environment is made explicit first: no X or Wayland display, and no sound server (a
//! PulseAudio socket path that does not exist, so cpal falls back to ALSA). Cameras and sound
//! cards are hardware; on a machine that has them, that part is reported instead of asserted.

use aula_core::devices::{
    self, CameraRequest, CameraSource, DeviceError, DeviceKind, Microphone, ScreenOptions,
    ScreenSource, Speaker,
};

use crate::support;

fn has_entries(dir: &str, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .unwrap_or(false)
}

#[test]
fn with_no_devices_lists_are_empty_and_opening_is_a_typed_error() {
    // Changing the environment races with nothing while this test runs alone.
    let alone = support::exclusive_blocking();
    let nowhere = std::env::temp_dir().join(format!("aula-no-pulse-{}", std::process::id()));
    let nowhere = format!("unix:{}", nowhere.display());
    let _env = alone.set_env(&[
        ("DISPLAY", None),
        ("WAYLAND_DISPLAY", None),
        ("PULSE_SERVER", Some(&nowhere)),
    ]);
    let cameras_attached = has_entries("/dev", "video");
    let sound_cards = has_entries("/dev/snd", "pcm");

    let list = devices::list_devices();
    assert!(list.screens.is_empty(), "{:?}", list.screens);
    assert!(list.windows.is_empty(), "{:?}", list.windows);
    if cameras_attached {
        eprintln!("this machine has /dev/video*: cameras not asserted empty");
    } else {
        assert!(list.cameras.is_empty(), "{:?}", list.cameras);
    }
    if sound_cards {
        eprintln!("this machine has a sound card: audio devices not asserted empty");
    } else {
        assert!(list.microphones.is_empty(), "{:?}", list.microphones);
        assert!(list.speakers.is_empty(), "{:?}", list.speakers);
    }
    // Empty because there is nothing, not because a backend is missing or broken.
    assert!(list.unavailable.is_empty(), "{:?}", list.unavailable);

    let screen = ScreenSource::open(None, ScreenOptions::default());
    assert!(
        matches!(
            &screen,
            Err(DeviceError::NotFound {
                kind: DeviceKind::Screen,
                ..
            })
        ),
        "{screen:?}"
    );
    if let Err(err) = &screen {
        assert!(err.to_string().contains("DISPLAY"), "says why: {err}");
    }
    let window = ScreenSource::open(Some("window:0x400001"), ScreenOptions::default());
    assert!(
        matches!(
            window,
            Err(DeviceError::NotFound {
                kind: DeviceKind::Window,
                ..
            })
        ),
        "{window:?}"
    );

    if !cameras_attached {
        for id in [None, Some("0"), Some("7")] {
            let camera = CameraSource::open(id, CameraRequest::default());
            assert!(
                matches!(
                    camera,
                    Err(DeviceError::NotFound {
                        kind: DeviceKind::Camera,
                        ..
                    })
                ),
                "{id:?}: {camera:?}"
            );
        }
    }
    if !sound_cards {
        for id in [
            None,
            Some("alsa:hw:CARD=0,DEV=0"),
            Some("no such microphone"),
        ] {
            let microphone = Microphone::open(id);
            assert!(
                matches!(
                    microphone,
                    Err(DeviceError::NotFound {
                        kind: DeviceKind::Microphone,
                        ..
                    })
                ),
                "{id:?}: {microphone:?}"
            );
            let speaker = Speaker::open(id);
            assert!(
                matches!(
                    speaker,
                    Err(DeviceError::NotFound {
                        kind: DeviceKind::Speaker,
                        ..
                    })
                ),
                "{id:?}: {speaker:?}"
            );
        }
    }
    // Bad requests are refused before any device is touched.
    assert!(matches!(
        CameraSource::open(
            None,
            CameraRequest {
                fps: 0,
                ..CameraRequest::default()
            }
        ),
        Err(DeviceError::InvalidArgument(_))
    ));
    assert!(matches!(
        ScreenSource::open(Some("monitor 2"), ScreenOptions::default()),
        Err(DeviceError::InvalidArgument(_))
    ));
}
