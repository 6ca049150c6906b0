//! A microphone as an [`AudioSource`]: cpal's capture callback downmixes to mono, resamples
//! to 48 kHz and queues; the encoder thread takes 20 ms frames from the queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cpal::traits::DeviceTrait;
use cpal::{FromSample, SizedSample};
use serde::Serialize;

use super::audio::{self, Activity, StreamGuard};
use super::resample::Resampler;
use super::{DeviceError, DeviceKind, DeviceMonitor};
use crate::media::{AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};
use crate::room::AudioSource;

/// Audio queued before the first frame is taken (and again after running dry), so the
/// device's and the encoder's clocks can wander a little without gaps.
const PRIME: usize = 2 * AUDIO_FRAME_SAMPLES;
/// Frames over which the least queued audio is watched: audio that never dropped below
/// [`PRIME`] plus a frame for this long is latency to shed (the device delivering faster than
/// the encoder takes, or a burst after the encoder thread was held up).
const EXCESS_WINDOW: u32 = 25;
/// Beyond this much queued audio the oldest is dropped at once (nobody is taking frames).
const HARD_LIMIT: usize = 50 * AUDIO_FRAME_SAMPLES;

/// What a microphone has captured so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MicrophoneStats {
    /// The device's sample rate, Hz (resampled to 48 kHz when different).
    pub device_rate: u32,
    /// The device's channels (mixed down to mono).
    pub device_channels: u16,
    /// Audio delivered by the device, ms (after resampling).
    pub captured_ms: f64,
    /// Frames the encoder asked for before enough audio had arrived.
    pub underruns: u64,
    /// Audio dropped to keep latency low, ms.
    pub dropped_ms: f64,
}

#[derive(Debug)]
struct Queue {
    samples: VecDeque<i16>,
    primed: bool,
    /// The least audio left after a frame was taken, in the current window.
    low_water: usize,
    /// Frames taken in the current window.
    window: u32,
    stats: MicrophoneStats,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            samples: VecDeque::new(),
            primed: false,
            low_water: usize::MAX,
            window: 0,
            stats: MicrophoneStats::default(),
        }
    }
}

/// A microphone, captured through cpal.
///
/// The device runs on cpal's audio thread at its own rate and channel count; its audio is
/// mixed down to mono, resampled to 48 kHz and handed out in 20 ms frames with about 40 ms of
/// buffering. When the device goes away its [`monitor`](Self::monitor) reports it and frames
/// are silent.
pub struct Microphone {
    queue: Arc<Mutex<Queue>>,
    monitor: DeviceMonitor,
    _stream: StreamGuard,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("id", &self.monitor.id())
            .finish_non_exhaustive()
    }
}

impl Microphone {
    /// Opens the microphone `id` (as listed by [`microphones`](super::microphones), or a
    /// device name), or the system's default with `None`.
    pub fn open(id: Option<&str>) -> Result<Self, DeviceError> {
        let requested = id;
        let kind = DeviceKind::Microphone;
        let (device, id, chosen) = audio::prepare(kind, id, 1)?;
        let monitor = DeviceMonitor::new(kind, &id);
        let queue = Arc::new(Mutex::new(Queue {
            stats: MicrophoneStats {
                device_rate: chosen.rate,
                device_channels: chosen.channels,
                ..MicrophoneStats::default()
            },
            ..Queue::default()
        }));
        let (config, fallback) = audio::stream_configs(chosen, 10);
        let capture = Capture::new(Arc::clone(&queue), chosen.rate, chosen.channels);
        let on_error = audio::stream_error_handler(&monitor);
        let activity = Activity::new();
        let touched = activity.clone();
        let follows_default = matches!(requested, None | Some("default"));
        let stream = StreamGuard::start(&monitor, follows_default, activity, move || {
            let capture = Arc::new(Mutex::new(capture));
            audio::with_sample_type!(chosen.format, T => audio::build_with_fallback(
                config,
                fallback,
                |config| {
                    let capture = Arc::clone(&capture);
                    let touched = touched.clone();
                    device.build_input_stream::<T, _, _>(
                        config,
                        move |data: &[T], _| {
                            touched.touch();
                            lock(&capture).on_data(data)
                        },
                        on_error.clone(),
                        None,
                    )
                },
            ))
        })?;
        tracing::info!(%id, rate = chosen.rate, channels = chosen.channels, format = %chosen.format, "microphone open");
        Ok(Self {
            queue,
            monitor,
            _stream: stream,
        })
    }

    /// The device's state and events (unplugging is reported there).
    pub fn monitor(&self) -> DeviceMonitor {
        self.monitor.clone()
    }

    /// What the microphone has captured so far.
    pub fn stats(&self) -> MicrophoneStats {
        lock(&self.queue).stats
    }
}

impl AudioSource for Microphone {
    fn next_frame(&mut self) -> AudioFrame {
        AudioFrame {
            samples: lock(&self.queue).take_frame(),
            sample_rate: AUDIO_SAMPLE_RATE,
            channels: 1,
        }
    }
}

impl Queue {
    /// The next 20 ms: queued audio once primed, silence before (and while re-priming after
    /// running dry); sheds lasting excess latency (see [`EXCESS_WINDOW`]).
    fn take_frame(&mut self) -> Vec<i16> {
        let mut samples = vec![0i16; AUDIO_FRAME_SAMPLES];
        if !self.primed && self.samples.len() >= PRIME {
            self.primed = true;
        }
        if self.primed {
            let available = self.samples.len().min(AUDIO_FRAME_SAMPLES);
            for (slot, sample) in samples.iter_mut().zip(self.samples.drain(..available)) {
                *slot = sample;
            }
            if available < AUDIO_FRAME_SAMPLES {
                self.primed = false;
                self.stats.underruns += 1;
            }
        }
        if self.primed {
            self.low_water = self.low_water.min(self.samples.len());
            self.window += 1;
            if self.window >= EXCESS_WINDOW {
                let keep = PRIME + AUDIO_FRAME_SAMPLES;
                if self.low_water != usize::MAX && self.low_water > keep {
                    let excess = self.low_water - keep;
                    self.drop_oldest(excess);
                }
                self.window = 0;
                self.low_water = usize::MAX;
            }
        }
        samples
    }

    fn drop_oldest(&mut self, count: usize) {
        let count = count.min(self.samples.len());
        self.samples.drain(..count);
        self.stats.dropped_ms += count as f64 * 1000.0 / f64::from(AUDIO_SAMPLE_RATE);
    }
}

/// What cpal's capture callback owns: the conversion state and scratch buffers, reused.
struct Capture {
    queue: Arc<Mutex<Queue>>,
    channels: usize,
    resampler: Resampler,
    mono: Vec<f32>,
    resampled: Vec<f32>,
}

impl Capture {
    fn new(queue: Arc<Mutex<Queue>>, rate: u32, channels: u16) -> Self {
        Self {
            queue,
            channels: usize::from(channels.max(1)),
            resampler: Resampler::new(rate, AUDIO_SAMPLE_RATE),
            mono: Vec::new(),
            resampled: Vec::new(),
        }
    }

    fn on_data<T>(&mut self, data: &[T])
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        self.mono.clear();
        let scale = 1.0 / self.channels as f32;
        self.mono.extend(
            data.chunks_exact(self.channels)
                .map(|frame| frame.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() * scale),
        );
        self.resampled.clear();
        self.resampler.process(&self.mono, &mut self.resampled);
        let mut queue = lock(&self.queue);
        queue.samples.extend(
            self.resampled
                .iter()
                .map(|&s| (s.clamp(-1.0, 1.0) * 32_767.0).round() as i16),
        );
        queue.stats.captured_ms +=
            self.resampled.len() as f64 * 1000.0 / f64::from(AUDIO_SAMPLE_RATE);
        // Bound the queue even when nobody takes frames (a source not yet published).
        if queue.samples.len() > HARD_LIMIT {
            let excess = queue.samples.len() - PRIME;
            queue.drop_oldest(excess);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::resample::tests::{frequency, tone};

    /// A stereo 44.1 kHz device delivering 10 ms callbacks of a tone in both channels comes
    /// out as 48 kHz mono 20 ms frames of the same tone.
    #[test]
    fn device_audio_becomes_48_khz_mono_frames() {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let mut capture = Capture::new(Arc::clone(&queue), 44_100, 2);
        let mono = tone(44_100, 523.0, 0.4, 44_100);
        let stereo: Vec<i16> = mono
            .iter()
            .flat_map(|&s| {
                let v = (s * 32_767.0) as i16;
                [v, v]
            })
            .collect();
        let mut out = Vec::new();
        for chunk in stereo.chunks(882) {
            // 10 ms from the device; a frame taken every other callback, as the encoder would.
            capture.on_data(chunk);
            if lock(&queue).samples.len() >= PRIME {
                out.extend(lock(&queue).take_frame());
            }
        }
        assert!(
            out.len() >= 40 * AUDIO_FRAME_SAMPLES,
            "{} samples",
            out.len()
        );
        let as_f32: Vec<f32> = out[AUDIO_FRAME_SAMPLES..]
            .iter()
            .map(|&s| f32::from(s))
            .collect();
        let f = frequency(&as_f32, AUDIO_SAMPLE_RATE);
        assert!((f - 523.0).abs() < 2.0, "{f} Hz");
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((12_500..=13_700).contains(&peak), "peak {peak}");
        assert_eq!(lock(&queue).stats.underruns, 0);
    }

    #[test]
    fn lasting_excess_is_shed_and_a_burst_is_not() {
        let mut queue = Queue::default();
        let tone: Vec<i16> = (0..AUDIO_FRAME_SAMPLES * 200)
            .map(|i| (i % 97) as i16)
            .collect();
        let mut fed = tone.chunks(AUDIO_FRAME_SAMPLES);
        // A 100 ms burst on top of a steady stream: left alone for a while, then cut to size.
        for _ in 0..7 {
            queue.samples.extend(fed.next().expect("audio"));
        }
        for _ in 0..EXCESS_WINDOW - 1 {
            queue.samples.extend(fed.next().expect("audio"));
            queue.take_frame();
        }
        assert_eq!(queue.stats.dropped_ms, 0.0);
        queue.samples.extend(fed.next().expect("audio"));
        queue.take_frame();
        assert!(queue.stats.dropped_ms > 50.0, "{:?}", queue.stats);
        assert!(queue.samples.len() <= PRIME + AUDIO_FRAME_SAMPLES);
        // Then steady: nothing more is lost.
        let dropped = queue.stats.dropped_ms;
        for _ in 0..100 {
            queue.samples.extend(fed.next().expect("audio"));
            queue.take_frame();
        }
        assert_eq!(queue.stats.dropped_ms, dropped);
        assert_eq!(queue.stats.underruns, 0);
    }
}
