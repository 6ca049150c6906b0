//! The SFU's decisions about simulcast layers, as plain logic over packets, rates and time:
//! which layer each subscriber gets ([`choose_layers`]), how a subscriber's stream moves from
//! one layer to another without the decoder noticing more than a keyframe ([`LayerSwitcher`]),
//! and which layers anyone watches, so the publisher can stop the rest ([`WantedLayers`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aula_protocol::ParticipantId;

/// A layer not wanted for this long is reported unwanted (a subscriber whose estimate dips for
/// a moment should not make the publisher stop and restart a layer).
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);
/// Share of the downlink estimate given to video (the rest: audio, headers, retransmissions).
pub const VIDEO_SHARE: f64 = 0.85;
/// A step up to a larger layer needs this much more room than its rate.
const UPGRADE_MARGIN: f64 = 1.2;

/// Whether an H.264 RTP payload (RFC 6184) starts a keyframe: an IDR slice or a sequence
/// parameter set, alone, first in a STAP-A, or as the first fragment of an FU-A.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    match first & 0x1F {
        24 => {
            // STAP-A: (16-bit size, NAL unit) pairs after the header byte.
            let mut at = 1;
            while at + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                let Some(&nal) = payload.get(at + 2) else {
                    return false;
                };
                if size > 0 && is_key(nal & 0x1F) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && is_key(fu & 0x1F)),
        nal_type => is_key(nal_type),
    }
}

/// What to do with one packet of a published track on one subscriber's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Send it, renumbered.
    Send {
        /// The subscriber stream's sequence number.
        sequence: u16,
        /// The subscriber stream's RTP timestamp.
        timestamp: u32,
        /// Whether this packet switched the stream to a new layer.
        switched: bool,
    },
    /// Not for this subscriber (another layer, or from before the last switch).
    Drop,
}

/// One subscriber's stream of a simulcast track: forwards one layer, renumbered so the
/// subscriber sees a single continuous stream, and moves to the target layer at its next
/// keyframe.
#[derive(Debug)]
pub struct LayerSwitcher {
    current: Option<u8>,
    target: u8,
    /// Sequence number of the current layer's first forwarded packet: anything older belongs to
    /// the previous epoch of that layer.
    start: u16,
    sequence_offset: u16,
    timestamp_offset: u32,
    /// The newest packet sent: its subscriber sequence number and timestamp, and when.
    last: Option<(u16, u32, Instant)>,
}

impl LayerSwitcher {
    /// A stream that will start at `target`'s next keyframe.
    pub fn new(target: u8) -> Self {
        Self {
            current: None,
            target,
            start: 0,
            sequence_offset: 0,
            timestamp_offset: 0,
            last: None,
        }
    }

    /// The layer forwarded now.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// The layer to move to.
    pub fn target(&self) -> u8 {
        self.target
    }

    /// Moves to `layer` at its next keyframe.
    pub fn set_target(&mut self, layer: u8) {
        self.target = layer;
    }

    /// The layer a keyframe is needed from, while the stream waits to move to it.
    pub fn awaited_keyframe(&self) -> Option<u8> {
        (self.current != Some(self.target)).then_some(self.target)
    }

    /// Decides about a packet of `layer` that arrived at `now`.
    pub fn on_packet(
        &mut self,
        layer: u8,
        sequence: u16,
        timestamp: u32,
        keyframe_start: bool,
        now: Instant,
    ) -> Forward {
        let switched = if self.current == Some(layer) {
            if sequence.wrapping_sub(self.start) >= 0x8000 {
                return Forward::Drop;
            }
            false
        } else if layer == self.target && keyframe_start {
            let (next_sequence, next_timestamp) = match self.last {
                None => (sequence, timestamp),
                Some((last_sequence, last_timestamp, at)) => {
                    // Keep the clock running at 90 kHz across the switch.
                    let ticks = (now.saturating_duration_since(at).as_micros() * 9 / 100) as u32;
                    (
                        last_sequence.wrapping_add(1),
                        last_timestamp.wrapping_add(ticks.max(1)),
                    )
                }
            };
            self.sequence_offset = next_sequence.wrapping_sub(sequence);
            self.timestamp_offset = next_timestamp.wrapping_sub(timestamp);
            self.start = sequence;
            self.current = Some(layer);
            true
        } else {
            return Forward::Drop;
        };
        let out_sequence = sequence.wrapping_add(self.sequence_offset);
        let out_timestamp = timestamp.wrapping_add(self.timestamp_offset);
        let newer = self
            .last
            .is_none_or(|(last, _, _)| out_sequence.wrapping_sub(last) < 0x8000);
        if newer {
            self.last = Some((out_sequence, out_timestamp, now));
        }
        Forward::Send {
            sequence: out_sequence,
            timestamp: out_timestamp,
            switched,
        }
    }
}

/// One video track a subscriber receives, as [`choose_layers`] sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackDemand {
    /// What each layer costs, bit/s, lowest first (one entry for a track without layers).
    pub layer_bps: Vec<f64>,
    /// The layer chosen last time.
    pub current: u8,
    /// The highest layer it may step up to now (a step up that failed recently waits).
    pub max_layer: u8,
    /// Higher first: a screen share is served before cameras.
    pub priority: u8,
}

/// The best layer of each track that fits together in `budget_bps`: every track starts at its
/// lowest layer, then tracks step up, highest priority first, while the budget allows (a step
/// above the current choice needs a margin, so choices do not flap).
pub fn choose_layers(budget_bps: f64, tracks: &[TrackDemand]) -> Vec<u8> {
    let mut chosen = vec![0u8; tracks.len()];
    let mut spent: f64 = tracks
        .iter()
        .map(|t| t.layer_bps.first().copied().unwrap_or(0.0))
        .sum();
    let mut order: Vec<usize> = (0..tracks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tracks[i].priority));
    loop {
        let mut stepped = false;
        for &i in &order {
            let track = &tracks[i];
            let next = usize::from(chosen[i]) + 1;
            if next > usize::from(track.max_layer.max(track.current)) {
                continue;
            }
            let Some(&next_bps) = track.layer_bps.get(next) else {
                continue;
            };
            let now_bps = track.layer_bps[next - 1];
            let margin = if next as u8 > track.current {
                UPGRADE_MARGIN
            } else {
                1.0
            };
            if spent - now_bps + next_bps * margin <= budget_bps {
                spent += next_bps - now_bps;
                chosen[i] = next as u8;
                stepped = true;
            }
        }
        if !stepped {
            return chosen;
        }
    }
}

/// Which layers of one track any subscriber takes; a layer nobody has taken for
/// [`PAUSE_AFTER`] is dropped from the list (the lowest layer is always in it).
#[derive(Debug)]
pub struct WantedLayers {
    by_subscriber: HashMap<ParticipantId, Vec<u8>>,
    /// When each layer was last wanted.
    last_wanted: HashMap<u8, Instant>,
    reported: Option<Vec<u8>>,
}

impl WantedLayers {
    /// A track of `layers` layers published at `now`: every layer counts as wanted at first,
    /// so subscribers joining right after the publisher find them running.
    pub fn new(layers: usize, now: Instant) -> Self {
        Self {
            by_subscriber: HashMap::new(),
            last_wanted: (0..layers.min(usize::from(u8::MAX)) as u8)
                .map(|layer| (layer, now))
                .collect(),
            reported: None,
        }
    }

    /// `subscriber` now takes `layers` (the layer it is to receive, and any the publisher
    /// should run until that one runs).
    pub fn set(&mut self, subscriber: &ParticipantId, layers: &[u8], now: Instant) {
        self.by_subscriber
            .insert(subscriber.clone(), layers.to_vec());
        for layer in layers {
            self.last_wanted.insert(*layer, now);
        }
    }

    /// `subscriber` no longer receives the track.
    pub fn remove(&mut self, subscriber: &ParticipantId) {
        self.by_subscriber.remove(subscriber);
    }

    /// The wanted layers at `now`, if they differ from what was last reported.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        for layers in self.by_subscriber.values() {
            for layer in layers {
                self.last_wanted.insert(*layer, now);
            }
        }
        let mut wanted: Vec<u8> = self
            .last_wanted
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) < PAUSE_AFTER)
            .map(|(layer, _)| *layer)
            .chain(std::iter::once(0))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if self.reported.as_ref() == Some(&wanted) {
            return None;
        }
        self.reported = Some(wanted.clone());
        Some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_recognised_in_every_packetization() {
        assert!(starts_keyframe(&[0x65, 0x88]), "a single IDR NAL");
        assert!(starts_keyframe(&[0x67, 0x42]), "a single SPS");
        assert!(!starts_keyframe(&[0x41, 0x9a]), "a P slice");
        // STAP-A with SPS and PPS.
        assert!(starts_keyframe(&[0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce]));
        assert!(
            !starts_keyframe(&[0x78, 0, 2, 0x06, 0x05]),
            "STAP-A with SEI only"
        );
        // FU-A: start fragment of an IDR, middle fragment, start of a P slice.
        assert!(starts_keyframe(&[0x7c, 0x85, 0xaa]));
        assert!(!starts_keyframe(&[0x7c, 0x05, 0xaa]));
        assert!(!starts_keyframe(&[0x7c, 0x81, 0xaa]));
        assert!(!starts_keyframe(&[]));
        assert!(!starts_keyframe(&[0x78, 0, 200]), "truncated STAP-A");
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_and_keeps_the_stream_continuous() {
        let t = Instant::now();
        let mut s = LayerSwitcher::new(0);
        assert_eq!(
            s.on_packet(0, 500, 9000, false, t),
            Forward::Drop,
            "no keyframe yet"
        );
        let Forward::Send { sequence, .. } = s.on_packet(0, 501, 9000, true, t) else {
            panic!("keyframe starts the stream");
        };
        assert_eq!(sequence, 501);
        assert!(matches!(
            s.on_packet(0, 502, 9000, false, t),
            Forward::Send { sequence: 502, .. }
        ));
        assert_eq!(
            s.on_packet(1, 7000, 1000, true, t),
            Forward::Drop,
            "not the target"
        );
        s.set_target(1);
        assert_eq!(s.awaited_keyframe(), Some(1));
        assert!(matches!(
            s.on_packet(0, 503, 12000, false, t),
            Forward::Send { sequence: 503, .. }
        ));
        assert_eq!(
            s.on_packet(1, 7001, 4000, false, t),
            Forward::Drop,
            "wait for its keyframe"
        );
        let later = t + Duration::from_millis(33);
        match s.on_packet(1, 7002, 4000, true, later) {
            Forward::Send {
                sequence,
                timestamp,
                switched,
            } => {
                assert_eq!(sequence, 504, "continues where layer 0 stopped");
                assert_eq!(timestamp, 12000 + 2970, "33 ms later at 90 kHz");
                assert!(switched);
            }
            Forward::Drop => panic!("the keyframe switches"),
        }
        assert_eq!(s.awaited_keyframe(), None);
        assert_eq!(
            s.on_packet(0, 504, 15000, false, later),
            Forward::Drop,
            "old layer off"
        );
        assert_eq!(
            s.on_packet(1, 7001, 4000, false, later),
            Forward::Drop,
            "from before the switch"
        );
        assert!(matches!(
            s.on_packet(1, 7003, 4000, false, later),
            Forward::Send { sequence: 505, .. }
        ));
    }

    #[test]
    fn sequence_numbers_wrap_across_a_switch() {
        let t = Instant::now();
        let mut s = LayerSwitcher::new(0);
        s.on_packet(0, 65_535, 0, true, t);
        s.set_target(1);
        assert!(matches!(
            s.on_packet(1, 10, 0, true, t),
            Forward::Send { sequence: 0, .. }
        ));
        assert!(matches!(
            s.on_packet(1, 11, 0, false, t),
            Forward::Send { sequence: 1, .. }
        ));
    }

    fn camera(current: u8) -> TrackDemand {
        TrackDemand {
            layer_bps: vec![150_000.0, 500_000.0, 1_500_000.0],
            current,
            max_layer: 2,
            priority: 0,
        }
    }

    #[test]
    fn each_track_gets_the_best_layer_that_fits() {
        assert_eq!(choose_layers(5_000_000.0, &[camera(2)]), vec![2]);
        assert_eq!(choose_layers(1_000_000.0, &[camera(2)]), vec![1]);
        assert_eq!(
            choose_layers(100_000.0, &[camera(0)]),
            vec![0],
            "never below the lowest"
        );
        // Two cameras in 2.5 Mbit/s: one at the top, the other one step lower.
        assert_eq!(
            choose_layers(2_100_000.0, &[camera(2), camera(2)]),
            vec![2, 1]
        );
        // A screen share is served first.
        let screen = TrackDemand {
            layer_bps: vec![1_200_000.0],
            current: 0,
            max_layer: 0,
            priority: 1,
        };
        assert_eq!(choose_layers(1_500_000.0, &[camera(0), screen]), vec![0, 0]);
    }

    #[test]
    fn stepping_up_needs_a_margin_but_staying_does_not() {
        // A subscriber receives one layer of a track: 720p costs 1.5 Mbit/s of 1.6.
        assert_eq!(
            choose_layers(1_600_000.0, &[camera(2)]),
            vec![2],
            "stays at 720p"
        );
        assert_eq!(
            choose_layers(1_600_000.0, &[camera(1)]),
            vec![1],
            "does not climb to it"
        );
        assert_eq!(choose_layers(1_900_000.0, &[camera(1)]), vec![2]);
        let held = TrackDemand {
            max_layer: 1,
            ..camera(1)
        };
        assert_eq!(
            choose_layers(5_000_000.0, &[held]),
            vec![1],
            "a failed step waits"
        );
    }

    #[test]
    fn layers_nobody_takes_are_dropped_after_a_while() {
        let t = Instant::now();
        let a = ParticipantId("PA_1".into());
        let b = ParticipantId("PA_2".into());
        let mut w = WantedLayers::new(3, t);
        assert_eq!(w.poll(t), Some(vec![0, 1, 2]), "all wanted at first");
        assert_eq!(
            w.poll(t + PAUSE_AFTER),
            Some(vec![0]),
            "until nobody took them for a while"
        );
        w.set(&a, &[2], t);
        w.set(&b, &[1], t);
        assert_eq!(w.poll(t), Some(vec![0, 1, 2]));
        assert_eq!(w.poll(t), None, "only changes are reported");
        w.set(&b, &[2], t + Duration::from_secs(1));
        assert_eq!(
            w.poll(t + Duration::from_secs(2)),
            None,
            "layer 1 not yet dropped"
        );
        assert_eq!(w.poll(t + Duration::from_secs(4)), Some(vec![0, 2]));
        w.remove(&a);
        w.remove(&b);
        assert_eq!(w.poll(t + Duration::from_secs(8)), Some(vec![0]));
    }
}
