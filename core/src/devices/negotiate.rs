//! Choosing, among the formats a device offers, the one nearest to what was asked for.

use serde::Serialize;

use super::convert::PixelFormat;

/// One way a camera can deliver pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CameraFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// How the bytes of a frame are laid out.
    pub pixel_format: PixelFormat,
}

impl std::fmt::Display for CameraFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{}@{} {}",
            self.width, self.height, self.fps, self.pixel_format
        )
    }
}

/// The picture size and frame rate an app would like from a camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraRequest {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

impl Default for CameraRequest {
    /// 1280x720 at 30 fps.
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// The offered format nearest to `request`: closest picture area and shape first, then the
/// frame rate (a rate below the request counts more than one above it), then the cheapest
/// conversion. Formats Aula cannot convert never appear in `offered`. `None` when nothing is
/// offered.
pub fn nearest_camera_format(
    offered: &[CameraFormat],
    request: CameraRequest,
) -> Option<CameraFormat> {
    let want_area = f64::from(request.width.max(1)) * f64::from(request.height.max(1));
    let want_aspect = f64::from(request.width.max(1)) / f64::from(request.height.max(1));
    let want_fps = f64::from(request.fps.max(1));
    let cost = |f: &CameraFormat| {
        let area = f64::from(f.width.max(1)) * f64::from(f.height.max(1));
        let aspect = f64::from(f.width.max(1)) / f64::from(f.height.max(1));
        let size = (area / want_area).ln().abs() + 0.5 * (aspect / want_aspect).ln().abs();
        let fps = f64::from(f.fps.max(1));
        let rate = if fps < want_fps {
            (want_fps / fps).ln()
        } else {
            0.2 * (fps / want_fps).ln()
        };
        size + rate + 0.001 * f64::from(f.pixel_format.conversion_cost())
    };
    offered
        .iter()
        .copied()
        .min_by(|a, b| cost(a).total_cmp(&cost(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(width: u32, height: u32, fps: u32, pixel_format: PixelFormat) -> CameraFormat {
        CameraFormat {
            width,
            height,
            fps,
            pixel_format,
        }
    }

    /// What a typical USB webcam offers: YUYV only at low rates for big pictures, MJPEG fast.
    fn webcam() -> Vec<CameraFormat> {
        vec![
            format(640, 480, 30, PixelFormat::Yuyv),
            format(1280, 720, 10, PixelFormat::Yuyv),
            format(1920, 1080, 5, PixelFormat::Yuyv),
            format(640, 480, 30, PixelFormat::Mjpeg),
            format(1280, 720, 30, PixelFormat::Mjpeg),
            format(1920, 1080, 30, PixelFormat::Mjpeg),
        ]
    }

    #[test]
    fn the_exact_size_and_rate_win_and_raw_beats_mjpeg_on_a_tie() {
        let chosen = nearest_camera_format(&webcam(), CameraRequest::default());
        assert_eq!(chosen, Some(format(1280, 720, 30, PixelFormat::Mjpeg)));
        let vga = nearest_camera_format(
            &webcam(),
            CameraRequest {
                width: 640,
                height: 480,
                fps: 30,
            },
        );
        assert_eq!(vga, Some(format(640, 480, 30, PixelFormat::Yuyv)));
    }

    #[test]
    fn an_unoffered_request_gets_the_nearest_offer() {
        // 960x540 is between VGA and 720p; 720p30 is nearer in area than 640x480 (and keeps 16:9).
        let chosen = nearest_camera_format(
            &webcam(),
            CameraRequest {
                width: 960,
                height: 540,
                fps: 24,
            },
        );
        assert_eq!(chosen, Some(format(1280, 720, 30, PixelFormat::Mjpeg)));
        // A camera that only does 15 fps still gives its best.
        let slow = [format(1280, 720, 15, PixelFormat::Nv12)];
        assert_eq!(
            nearest_camera_format(&slow, CameraRequest::default()),
            Some(slow[0])
        );
        assert_eq!(nearest_camera_format(&[], CameraRequest::default()), None);
    }
}
