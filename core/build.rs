//! Names the device backends this build has, so that the sources say `#[cfg(x11_screen)]`
//! instead of repeating the feature and platform conditions.

use cfg_aliases::cfg_aliases;

fn main() {
    cfg_aliases! {
        // Screen capture through X11 (x11rb): Linux and the BSDs.
        x11_screen: { all(feature = "screen", any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly"
        )) },
        // Screen capture through xcap: macOS and Windows.
        xcap_screen: { all(feature = "screen", any(target_os = "macos", target_os = "windows")) },
        // Some screen capture backend is built (`ScreenSource` exists).
        screen_capture: { any(x11_screen, xcap_screen) },
        // Cameras through nokhwa's native backend (`CameraSource` exists).
        camera_capture: { all(feature = "camera", any(
            target_os = "linux",
            target_os = "macos",
            target_os = "windows"
        )) },
    }
}
