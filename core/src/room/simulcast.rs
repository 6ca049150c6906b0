//! Simulcast: a camera published as several layers of the same picture (for example 180p, 360p
//! and 720p), each its own encoder and RTP stream, so the server can give every subscriber the
//! layer its downlink carries without re-encoding anything.
//!
//! The uplink estimate is shared out lowest layer first ([`allocate`]): the lowest layer is
//! always sent, and each layer above it only when what is left can carry it, so on a poor
//! uplink the top layers switch off and the lower ones stay smooth. The server says which
//! layers any subscriber takes ([`LayerControl`]); the others stop encoding, and their share
//! goes to the layers that are watched.

use std::sync::atomic::{AtomicBool, Ordering};

use aula_protocol::{VideoLayer, MAX_VIDEO_LAYERS};

use crate::media::scaled_size;

/// Smallest layer width worth sending.
const MIN_LAYER_WIDTH: u32 = 240;
/// Pictures smaller than this (height) are sent as one layer.
const MIN_SIMULCAST_HEIGHT: u32 = 360;
/// The lowest layer's floor, bit/s: it is always sent.
const MIN_BASE_BITRATE: u32 = 50_000;
/// Share of its ceiling a layer above the lowest needs to be worth sending.
const MIN_LAYER_SHARE: f64 = 0.4;
/// A layer that is off needs this much more than its minimum to come on (no flapping).
const SWITCH_ON_MARGIN: f64 = 1.3;
/// A layer's ceiling falls with its picture area to this power (smaller pictures need more
/// bits per pixel).
const AREA_EXPONENT: f64 = 0.8;

/// One layer to encode: its size, how much smaller than the source it is, and its ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LayerSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Divisor of the source size (1, 2, 4).
    pub scale: u32,
    /// The most this layer sends, bit/s.
    pub max_bitrate_bps: u32,
}

impl LayerSpec {
    /// The layer as the protocol describes it.
    pub fn info(&self) -> VideoLayer {
        VideoLayer {
            width: self.width,
            height: self.height,
            max_bitrate_bps: self.max_bitrate_bps,
        }
    }
}

/// The layers of a camera picture of `width` x `height` whose top layer may use `bitrate_bps`,
/// lowest first: the full picture, half and a quarter of it, as far as they stay at least
/// 240 pixels wide. A picture under 360 lines is one layer.
pub(crate) fn simulcast_layers(width: u32, height: u32, bitrate_bps: u32) -> Vec<LayerSpec> {
    if height.min(width) < MIN_SIMULCAST_HEIGHT {
        return vec![LayerSpec {
            width,
            height,
            scale: 1,
            max_bitrate_bps: bitrate_bps,
        }];
    }
    let mut layers: Vec<LayerSpec> = [4u32, 2, 1]
        .into_iter()
        .filter(|scale| width / scale >= MIN_LAYER_WIDTH)
        .map(|scale| {
            let (w, h) = if scale == 1 {
                (width, height)
            } else {
                scaled_size(width, height, scale)
            };
            let area = 1.0 / f64::from(scale * scale);
            let bitrate = f64::from(bitrate_bps) * area.powf(AREA_EXPONENT);
            LayerSpec {
                width: w,
                height: h,
                scale,
                max_bitrate_bps: (bitrate as u32).max(MIN_BASE_BITRATE),
            }
        })
        .collect();
    layers.truncate(MAX_VIDEO_LAYERS);
    layers
}

/// Between the encoder thread and the room: which layers of a publication the server says are
/// watched (all are, until it says otherwise; the lowest always is), and which the encoder is
/// sending, for the room to tell the server when that changes.
#[derive(Debug)]
pub(crate) struct LayerControl {
    wanted: [AtomicBool; MAX_VIDEO_LAYERS],
    active: std::sync::Mutex<Vec<u8>>,
    active_changed: tokio::sync::Notify,
}

impl Default for LayerControl {
    fn default() -> Self {
        Self {
            wanted: std::array::from_fn(|_| AtomicBool::new(true)),
            active: std::sync::Mutex::new(Vec::new()),
            active_changed: tokio::sync::Notify::new(),
        }
    }
}

impl LayerControl {
    /// The encoder now sends `layers` (ascending).
    pub fn set_active(&self, layers: Vec<u8>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if *active != layers {
            *active = layers;
            // Stores a permit: a change while nobody waits is not lost.
            self.active_changed.notify_one();
        }
    }

    /// The layers being sent.
    pub fn active(&self) -> Vec<u8> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the layers being sent change.
    pub async fn active_changed(&self) {
        self.active_changed.notified().await;
    }

    /// Applies the server's list of wanted layer indices.
    pub fn set_wanted(&self, layers: &[u8]) {
        for (i, flag) in self.wanted.iter().enumerate() {
            let wanted = i == 0 || layers.contains(&(i as u8));
            flag.store(wanted, Ordering::Relaxed);
        }
    }

    /// Whether layer `index` is watched.
    pub fn is_wanted(&self, index: usize) -> bool {
        self.wanted
            .get(index)
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

/// Shares `budget_bps` out among `layers` (lowest first): the bitrate each gets, or `None` for
/// a layer that is off. `wanted` says which the server wants, `on` which are sending now.
pub(crate) fn allocate(
    budget_bps: u32,
    layers: &[LayerSpec],
    wanted: impl Fn(usize) -> bool,
    on: impl Fn(usize) -> bool,
) -> Vec<Option<u32>> {
    let mut remaining = f64::from(budget_bps);
    let mut out = vec![None; layers.len()];
    for (i, layer) in layers.iter().enumerate() {
        let max = f64::from(layer.max_bitrate_bps);
        if i == 0 {
            let given = remaining.min(max).max(f64::from(MIN_BASE_BITRATE));
            remaining -= given;
            out[i] = Some(given as u32);
            continue;
        }
        if !wanted(i) {
            continue;
        }
        let need = max * MIN_LAYER_SHARE * if on(i) { 1.0 } else { SWITCH_ON_MARGIN };
        if remaining < need {
            // A larger layer needs more still.
            break;
        }
        let given = remaining.min(max);
        remaining -= given;
        out[i] = Some(given as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_720p_camera_gets_three_layers() {
        let layers = simulcast_layers(1280, 720, 1_500_000);
        let sizes: Vec<(u32, u32, u32)> = layers
            .iter()
            .map(|l| (l.width, l.height, l.scale))
            .collect();
        assert_eq!(sizes, vec![(320, 180, 4), (640, 360, 2), (1280, 720, 1)]);
        assert_eq!(layers[2].max_bitrate_bps, 1_500_000);
        assert!(layers[1].max_bitrate_bps > 400_000 && layers[1].max_bitrate_bps < 600_000);
        assert!(layers[0].max_bitrate_bps > 100_000 && layers[0].max_bitrate_bps < 200_000);
        assert_eq!(simulcast_layers(320, 240, 300_000).len(), 1);
        assert_eq!(simulcast_layers(640, 360, 500_000).len(), 2);
    }

    #[test]
    fn the_budget_goes_to_the_lowest_layers_first() {
        let layers = simulcast_layers(1280, 720, 1_500_000);
        let all = |_: usize| true;
        let none = |_: usize| false;
        // Plenty: every layer at its ceiling.
        let a = allocate(5_000_000, &layers, all, all);
        assert_eq!(
            a,
            layers
                .iter()
                .map(|l| Some(l.max_bitrate_bps))
                .collect::<Vec<_>>()
        );
        // 800 kbit/s: 180p and 360p; the top layer would get too little.
        let a = allocate(800_000, &layers, all, all);
        assert!(a[0].is_some() && a[1].is_some() && a[2].is_none(), "{a:?}");
        // 100 kbit/s: the lowest layer only, at its floor or above.
        let a = allocate(100_000, &layers, all, none);
        assert_eq!(a, vec![Some(100_000), None, None]);
        let a = allocate(10_000, &layers, all, none);
        assert_eq!(a[0], Some(MIN_BASE_BITRATE));
    }

    #[test]
    fn unwatched_layers_free_their_share_for_the_watched_ones() {
        let layers = simulcast_layers(1280, 720, 1_500_000);
        let all = |_: usize| true;
        let a = allocate(1_200_000, &layers, all, all);
        assert!(a[2].is_none(), "with 360p on, 720p does not fit: {a:?}");
        let a = allocate(1_200_000, &layers, |i| i != 1, all);
        assert!(a[1].is_none() && a[2].is_some(), "{a:?}");
    }

    #[test]
    fn a_layer_needs_a_margin_to_come_back_on() {
        let layers = simulcast_layers(1280, 720, 1_500_000);
        let all = |_: usize| true;
        // Just enough to keep the top layer running, not to start it.
        let budget = layers[0].max_bitrate_bps
            + layers[1].max_bitrate_bps
            + (f64::from(layers[2].max_bitrate_bps) * MIN_LAYER_SHARE * 1.1) as u32;
        assert!(allocate(budget, &layers, all, all)[2].is_some());
        assert!(allocate(budget, &layers, all, |i| i < 2)[2].is_none());
    }

    #[test]
    fn the_server_list_controls_wanted_layers_but_not_the_lowest() {
        let control = LayerControl::default();
        assert!(control.is_wanted(2));
        control.set_wanted(&[2]);
        assert!(control.is_wanted(0) && !control.is_wanted(1) && control.is_wanted(2));
        assert!(!control.is_wanted(MAX_VIDEO_LAYERS));
    }
}
