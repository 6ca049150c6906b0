//! How a video track gives way when its bandwidth budget shrinks: a camera lowers its
//! resolution and keeps its frame rate (motion stays smooth), a screen share lowers its frame
//! rate and keeps its resolution (text stays sharp).

use aula_protocol::TrackSource;

use crate::media::scaled_size;

/// Bits per pixel per frame a camera picture needs to look right (H.264, moving content).
const CAMERA_BITS_PER_PIXEL: f64 = 0.04;
/// Bits per pixel per frame for screen content, which compresses far better.
const SCREEN_BITS_PER_PIXEL: f64 = 0.02;
/// A step up needs this much more than the bare minimum, so the choice does not flap.
const UPGRADE_MARGIN: f64 = 1.3;
/// Smallest picture width a camera is scaled down to.
const MIN_CAMERA_WIDTH: u32 = 160;
/// Lowest frame rate a screen share is slowed to.
const MIN_SCREEN_FPS: u32 = 1;

/// The encoded picture size and frame rate a track currently uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoding {
    /// Width and height.
    pub size: (u32, u32),
    /// Divisor of the source size (1, 2 or 4).
    pub scale: u32,
    /// Encode every `frame_interval`-th source frame.
    pub frame_interval: u32,
}

/// Chooses the [`Encoding`] for a budget.
#[derive(Debug)]
pub(crate) struct Degradation {
    keeps_resolution: bool,
    source_size: (u32, u32),
    fps: u32,
    current: Encoding,
}

impl Degradation {
    /// Starts at full size and frame rate.
    pub fn new(source: TrackSource, width: u32, height: u32, fps: u32) -> Self {
        Self {
            keeps_resolution: source == TrackSource::ScreenShare,
            source_size: (width, height),
            fps: fps.max(1),
            current: Encoding {
                size: (width, height),
                scale: 1,
                frame_interval: 1,
            },
        }
    }

    /// The current encoding.
    pub fn current(&self) -> Encoding {
        self.current
    }

    /// The bitrate `encoding` needs at least.
    fn needs(&self, encoding: Encoding) -> f64 {
        let (w, h) = encoding.size;
        let fps = f64::from(self.fps) / f64::from(encoding.frame_interval);
        let bpp = if self.keeps_resolution {
            SCREEN_BITS_PER_PIXEL
        } else {
            CAMERA_BITS_PER_PIXEL
        };
        f64::from(w) * f64::from(h) * fps * bpp
    }

    /// The encodings this track may use, best first.
    fn ladder(&self) -> Vec<Encoding> {
        let (w, h) = self.source_size;
        if self.keeps_resolution {
            (1..=self.fps / MIN_SCREEN_FPS.max(1))
                .filter(|n| self.fps.is_multiple_of(*n) || *n == self.fps)
                .map(|frame_interval| Encoding {
                    size: (w, h),
                    scale: 1,
                    frame_interval,
                })
                .collect()
        } else {
            [1, 2, 4]
                .into_iter()
                .filter(|s| *s == 1 || w / s >= MIN_CAMERA_WIDTH)
                .map(|scale| Encoding {
                    size: scaled_size(w, h, scale),
                    scale,
                    frame_interval: 1,
                })
                .collect()
        }
    }

    /// Adapts to `budget_bps`; returns whether the encoding changed.
    pub fn update(&mut self, budget_bps: u32) -> bool {
        let budget = f64::from(budget_bps);
        let ladder = self.ladder();
        let position = ladder.iter().position(|e| *e == self.current).unwrap_or(0);
        // The best rung the budget carries; moving up also needs the margin.
        let chosen = ladder
            .iter()
            .enumerate()
            .find(|(i, e)| {
                let need = self.needs(**e);
                if *i < position {
                    budget >= need * UPGRADE_MARGIN
                } else {
                    budget >= need
                }
            })
            .map(|(_, e)| *e)
            .or_else(|| ladder.last().copied())
            .unwrap_or(self.current);
        let changed = chosen != self.current;
        self.current = chosen;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_steps_down_in_resolution_and_back_up_with_a_margin() {
        let mut d = Degradation::new(TrackSource::Camera, 1280, 720, 30);
        assert!(!d.update(2_000_000));
        assert_eq!(d.current().size, (1280, 720));
        assert!(d.update(800_000));
        assert_eq!(d.current().size, (640, 360));
        assert_eq!(
            d.current().frame_interval,
            1,
            "the camera keeps its frame rate"
        );
        assert!(d.update(100_000));
        assert_eq!(d.current().size, (320, 180));
        // 1.2 Mbit/s is enough to stay at 720p but not to climb back to it.
        assert!(d.update(1_200_000));
        assert_eq!(d.current().size, (640, 360));
        assert!(d.update(1_500_000));
        assert_eq!(d.current().size, (1280, 720));
    }

    #[test]
    fn a_screen_share_keeps_its_resolution_and_slows_down() {
        let mut d = Degradation::new(TrackSource::ScreenShare, 1920, 1080, 15);
        assert!(!d.update(1_000_000));
        assert!(d.update(300_000));
        assert_eq!(d.current().size, (1920, 1080), "text stays sharp");
        assert!(d.current().frame_interval > 1);
        assert!(d.update(10_000));
        assert_eq!(d.current().frame_interval, 15, "down to one frame a second");
    }
}
