//! A speaker's playout: one small adaptive buffer per remote audio track, mixed into one
//! stream at 48 kHz.
//!
//! Each track starts playing once 40 ms are buffered. When a track runs dry (a late packet,
//! a decoder that fell behind) it goes quiet, and waits for 10 ms more than before, up to
//! 200 ms; after 10 s without running dry its buffer shrinks again by 10 ms, down to 20 ms.
//! A buffer that never dropped below its target for half a second (a burst after a stall, or
//! a sender whose clock runs fast) has the excess cut, once per half second, so latency does
//! not creep up; one that grows past twice the largest target is cut back at once. (Cutting
//! rather than playing faster keeps the pitch.) Tracks that send nothing for 2 s are
//! forgotten.

use std::collections::{HashMap, VecDeque};

use aula_protocol::TrackSid;
use serde::Serialize;

use crate::media::AUDIO_SAMPLE_RATE;

/// Samples per millisecond at 48 kHz.
const PER_MS: usize = (AUDIO_SAMPLE_RATE / 1000) as usize;
/// The smallest buffer a track is played with.
const MIN_TARGET: usize = 20 * PER_MS;
/// The buffer a new track waits for.
const START_TARGET: usize = 40 * PER_MS;
/// The largest buffer a track is given.
const MAX_TARGET: usize = 200 * PER_MS;
/// How much a track's buffer grows each time it runs dry, and shrinks after a calm spell.
const TARGET_STEP: usize = 10 * PER_MS;
/// How long a track must play without running dry before its buffer shrinks.
const CALM_TO_SHRINK: usize = 10_000 * PER_MS;
/// A track silent this long is forgotten.
const IDLE_TO_FORGET: usize = 2_000 * PER_MS;
/// Beyond this a buffer is cut back to its target at once.
const HARD_LIMIT: usize = 2 * MAX_TARGET;
/// How long a buffer must stay above its target before the excess is cut.
const EXCESS_WINDOW: usize = 500 * PER_MS;

/// What a speaker's playout has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PlayoutStats {
    /// Remote tracks currently mixed.
    pub tracks: usize,
    /// Times a track ran dry while playing.
    pub underruns: u64,
    /// Audio skipped to keep latency down, ms.
    pub dropped_ms: f64,
    /// Audio played (mixed output), ms.
    pub played_ms: f64,
    /// The largest current buffer target among the tracks, ms.
    pub target_ms: f64,
    /// The most audio any track holds right now, ms.
    pub buffered_ms: f64,
}

#[derive(Debug)]
struct TrackBuffer {
    queue: VecDeque<i16>,
    target: usize,
    playing: bool,
    /// Samples played since the last underrun (or shrink).
    calm: usize,
    /// Samples mixed since the last push.
    idle: usize,
    /// The least audio held after a mix in the current excess window.
    low_water: usize,
    /// Samples played in the current excess window.
    window: usize,
}

impl TrackBuffer {
    fn new() -> Self {
        Self {
            queue: VecDeque::with_capacity(HARD_LIMIT),
            target: START_TARGET,
            playing: false,
            calm: 0,
            idle: 0,
            low_water: usize::MAX,
            window: 0,
        }
    }
}

/// Every remote track's buffer and the mix of them.
#[derive(Debug, Default)]
pub(crate) struct Mixer {
    tracks: HashMap<TrackSid, TrackBuffer>,
    underruns: u64,
    dropped: u64,
    played: u64,
}

impl Mixer {
    /// Queues decoded mono 48 kHz samples of `track`.
    pub fn push(&mut self, track: &TrackSid, samples: impl IntoIterator<Item = i16>) {
        let buffer = self
            .tracks
            .entry(track.clone())
            .or_insert_with(TrackBuffer::new);
        buffer.queue.extend(samples);
        buffer.idle = 0;
        if buffer.queue.len() > HARD_LIMIT {
            let excess = buffer.queue.len() - buffer.target;
            buffer.queue.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Mixes the next `out.len()` samples (mono, 48 kHz, -1..=1) of every track into `out`.
    pub fn mix(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        let n = out.len();
        for buffer in self.tracks.values_mut() {
            buffer.idle += n;
            if !buffer.playing {
                if buffer.queue.len() < buffer.target {
                    continue;
                }
                buffer.playing = true;
            }
            for slot in out.iter_mut() {
                let Some(sample) = buffer.queue.pop_front() else {
                    buffer.playing = false;
                    buffer.target = (buffer.target + TARGET_STEP).min(MAX_TARGET);
                    buffer.calm = 0;
                    self.underruns += 1;
                    break;
                };
                *slot += f32::from(sample) / 32_768.0;
            }
            if buffer.playing {
                buffer.calm += n;
                if buffer.calm >= CALM_TO_SHRINK {
                    buffer.calm = 0;
                    buffer.target = buffer.target.saturating_sub(TARGET_STEP).max(MIN_TARGET);
                }
                buffer.low_water = buffer.low_water.min(buffer.queue.len());
                buffer.window += n;
                if buffer.window >= EXCESS_WINDOW {
                    if buffer.low_water != usize::MAX && buffer.low_water > buffer.target {
                        let excess = buffer.low_water - buffer.target;
                        buffer.queue.drain(..excess);
                        self.dropped += excess as u64;
                    }
                    buffer.window = 0;
                    buffer.low_water = usize::MAX;
                }
            } else {
                buffer.window = 0;
                buffer.low_water = usize::MAX;
            }
        }
        self.tracks
            .retain(|_, b| b.idle < IDLE_TO_FORGET || !b.queue.is_empty());
        for slot in out.iter_mut() {
            *slot = slot.clamp(-1.0, 1.0);
        }
        self.played += n as u64;
    }

    /// What the playout has done so far.
    pub fn stats(&self) -> PlayoutStats {
        let ms = |samples: u64| samples as f64 / PER_MS as f64;
        PlayoutStats {
            tracks: self.tracks.len(),
            underruns: self.underruns,
            dropped_ms: ms(self.dropped),
            played_ms: ms(self.played),
            target_ms: ms(self.tracks.values().map(|b| b.target).max().unwrap_or(0) as u64),
            buffered_ms: ms(self
                .tracks
                .values()
                .map(|b| b.queue.len())
                .max()
                .unwrap_or(0) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 20 * PER_MS;

    fn sid(name: &str) -> TrackSid {
        TrackSid(name.into())
    }

    fn frame(value: i16) -> Vec<i16> {
        vec![value; FRAME]
    }

    /// Mixes 10 ms and returns it.
    fn mix10(mixer: &mut Mixer) -> Vec<f32> {
        let mut out = vec![0f32; 10 * PER_MS];
        mixer.mix(&mut out);
        out
    }

    #[test]
    fn a_steady_track_plays_after_40_ms_without_running_dry() {
        let mut mixer = Mixer::default();
        mixer.push(&sid("a"), frame(1000));
        assert!(
            mix10(&mut mixer).iter().all(|&s| s == 0.0),
            "still buffering"
        );
        mixer.push(&sid("a"), frame(1000));
        for _ in 0..500 {
            let out = mix10(&mut mixer);
            assert!(out.iter().all(|&s| (s - 1000.0 / 32_768.0).abs() < 1e-6));
            let out = mix10(&mut mixer);
            assert!(out.iter().all(|&s| s != 0.0));
            mixer.push(&sid("a"), frame(1000));
        }
        let stats = mixer.stats();
        assert_eq!(stats.underruns, 0);
        assert_eq!(stats.dropped_ms, 0.0);
        assert!((stats.played_ms - 10_010.0).abs() < 1.0, "{stats:?}");
    }

    #[test]
    fn running_dry_grows_the_buffer_and_a_calm_spell_shrinks_it() {
        let mut mixer = Mixer::default();
        mixer.push(&sid("a"), frame(500));
        mixer.push(&sid("a"), frame(500));
        for _ in 0..5 {
            mix10(&mut mixer);
        }
        let stats = mixer.stats();
        assert_eq!(stats.underruns, 1);
        assert_eq!(stats.target_ms, 50.0, "10 ms more than the start");
        // 40 ms is no longer enough to start again; 60 ms is.
        mixer.push(&sid("a"), frame(500));
        mixer.push(&sid("a"), frame(500));
        assert!(mix10(&mut mixer).iter().all(|&s| s == 0.0));
        mixer.push(&sid("a"), frame(500));
        assert!(mix10(&mut mixer).iter().all(|&s| s != 0.0));
        // Ten calm seconds later the target is back down.
        for _ in 0..1_000 {
            mixer.push(&sid("a"), frame(500));
            mix10(&mut mixer);
            mix10(&mut mixer);
        }
        assert!(mixer.stats().target_ms < 50.0, "{:?}", mixer.stats());
        assert_eq!(mixer.stats().underruns, 1);
    }

    #[test]
    fn a_lasting_backlog_is_cut_and_a_flood_at_once() {
        let mut mixer = Mixer::default();
        for _ in 0..10 {
            mixer.push(&sid("a"), frame(100));
        }
        // 200 ms queued against a 40 ms target, then a steady stream: after half a second
        // above the target, the excess goes.
        for _ in 0..49 {
            mixer.push(&sid("a"), frame(100)[..10 * PER_MS].to_vec());
            mix10(&mut mixer);
        }
        assert_eq!(mixer.stats().dropped_ms, 0.0, "not before half a second");
        for _ in 0..2 {
            mixer.push(&sid("a"), frame(100)[..10 * PER_MS].to_vec());
            mix10(&mut mixer);
        }
        let stats = mixer.stats();
        assert!(stats.buffered_ms <= 50.0, "{stats:?}");
        assert!((stats.dropped_ms - 150.0).abs() <= 10.0, "{stats:?}");
        // The steady stream that follows loses nothing more.
        for _ in 0..200 {
            mixer.push(&sid("a"), frame(100)[..10 * PER_MS].to_vec());
            mix10(&mut mixer);
        }
        assert_eq!(mixer.stats().dropped_ms, stats.dropped_ms);
        assert_eq!(mixer.stats().underruns, 0);
        // A flood far beyond any target is cut back at once.
        for _ in 0..100 {
            mixer.push(&sid("b"), frame(1));
        }
        assert!(mixer.stats().buffered_ms <= 400.0, "{:?}", mixer.stats());
    }

    #[test]
    fn tracks_are_summed_clamped_and_forgotten_when_silent() {
        let mut mixer = Mixer::default();
        for _ in 0..2 {
            mixer.push(&sid("a"), frame(20_000));
            mixer.push(&sid("b"), frame(20_000));
            mixer.push(&sid("c"), frame(-1_000));
        }
        let out = mix10(&mut mixer);
        assert!(out.iter().all(|&s| s == 1.0), "clamped: {}", out[0]);
        assert_eq!(mixer.stats().tracks, 3);
        for _ in 0..300 {
            mix10(&mut mixer);
        }
        assert_eq!(mixer.stats().tracks, 0, "silent tracks are dropped");
    }
}
