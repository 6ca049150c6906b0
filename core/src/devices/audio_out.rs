//! A speaker as an [`AudioSink`]: every remote audio track goes into its own small adaptive
//! buffer; cpal's playback callback mixes them, resamples to the device's rate and fills
//! every channel.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use aula_protocol::{ParticipantId, TrackSid};
use cpal::traits::DeviceTrait;
use cpal::{FromSample, SizedSample};

use super::audio::{self, Activity, StreamGuard};
use super::playout::{Mixer, PlayoutStats};
use super::resample::Resampler;
use super::{DeviceError, DeviceKind, DeviceMonitor};
use crate::media::{AudioFrame, AUDIO_SAMPLE_RATE};
use crate::room::AudioSink;

/// Mixed 48 kHz audio produced per step of the playback callback (10 ms).
const MIX_STEP: usize = (AUDIO_SAMPLE_RATE / 100) as usize;

/// A speaker that plays everyone's audio, through cpal.
///
/// Set it as the room's audio sink (`room.set_audio_sink(Some(Arc::new(speaker)))`): each
/// remote track gets a playout buffer of 20 to 200 ms that adapts to how regularly its audio
/// arrives (see [`PlayoutStats`]), and the tracks are summed. When the device goes away its
/// [`monitor`](Self::monitor) reports it and audio is dropped.
pub struct Speaker {
    mixer: Arc<Mutex<Mixer>>,
    monitor: DeviceMonitor,
    _stream: StreamGuard,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("id", &self.monitor.id())
            .finish_non_exhaustive()
    }
}

impl Speaker {
    /// Opens the speaker `id` (as listed by [`speakers`](super::speakers), or a device name),
    /// or the system's default with `None`.
    pub fn open(id: Option<&str>) -> Result<Self, DeviceError> {
        let requested = id;
        let kind = DeviceKind::Speaker;
        let (device, id, chosen) = audio::prepare(kind, id, 2)?;
        let monitor = DeviceMonitor::new(kind, &id);
        let mixer = Arc::new(Mutex::new(Mixer::default()));
        // 40 ms device buffers: a loaded machine starves smaller ones into audible gaps.
        let (config, fallback) = audio::stream_configs(chosen, 40);
        let playback = Playback::new(Arc::clone(&mixer), chosen.rate, chosen.channels);
        let on_error = audio::stream_error_handler(&monitor);
        let activity = Activity::new();
        let touched = activity.clone();
        let follows_default = matches!(requested, None | Some("default"));
        let stream = StreamGuard::start(&monitor, follows_default, activity, move || {
            let playback = Arc::new(Mutex::new(playback));
            audio::with_sample_type!(chosen.format, T => audio::build_with_fallback(
                config,
                fallback,
                |config| {
                    let playback = Arc::clone(&playback);
                    let touched = touched.clone();
                    device.build_output_stream::<T, _, _>(
                        config,
                        move |data: &mut [T], _| {
                            touched.touch();
                            lock(&playback).fill(data)
                        },
                        on_error.clone(),
                        None,
                    )
                },
            ))
        })?;
        tracing::info!(%id, rate = chosen.rate, channels = chosen.channels, format = %chosen.format, "speaker open");
        Ok(Self {
            mixer,
            monitor,
            _stream: stream,
        })
    }

    /// The device's state and events (unplugging is reported there).
    pub fn monitor(&self) -> DeviceMonitor {
        self.monitor.clone()
    }

    /// What the playout has done so far.
    pub fn stats(&self) -> PlayoutStats {
        lock(&self.mixer).stats()
    }
}

impl AudioSink for Speaker {
    fn on_audio_frame(&self, _participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame) {
        if frame.sample_rate != AUDIO_SAMPLE_RATE || self.monitor.is_lost() {
            return;
        }
        let channels = usize::from(frame.channels.max(1));
        let mut mixer = lock(&self.mixer);
        if channels == 1 {
            mixer.push(track, frame.samples.iter().copied());
        } else {
            mixer.push(
                track,
                frame.samples.chunks_exact(channels).map(|c| {
                    (c.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16
                }),
            );
        }
    }
}

/// What cpal's playback callback owns.
struct Playback {
    mixer: Arc<Mutex<Mixer>>,
    channels: usize,
    resampler: Resampler,
    mixed: Vec<f32>,
    resampled: Vec<f32>,
    /// Resampled audio not yet written to the device.
    pending: VecDeque<f32>,
}

impl Playback {
    fn new(mixer: Arc<Mutex<Mixer>>, rate: u32, channels: u16) -> Self {
        Self {
            mixer,
            channels: usize::from(channels.max(1)),
            resampler: Resampler::new(AUDIO_SAMPLE_RATE, rate),
            mixed: vec![0.0; MIX_STEP],
            resampled: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    fn fill<T>(&mut self, data: &mut [T])
    where
        T: SizedSample + FromSample<f32>,
    {
        let frames = data.len() / self.channels;
        while self.pending.len() < frames {
            lock(&self.mixer).mix(&mut self.mixed);
            self.resampled.clear();
            self.resampler.process(&self.mixed, &mut self.resampled);
            self.pending.extend(self.resampled.iter().copied());
        }
        for frame in data.chunks_exact_mut(self.channels) {
            let value = T::from_sample(self.pending.pop_front().unwrap_or(0.0));
            frame.fill(value);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::resample::tests::frequency;
    use crate::media::SyntheticAudioSource;

    /// Two tracks pushed as the decoder would, played out at 44.1 kHz stereo i16: both
    /// channels carry the mix at the right pitch.
    #[test]
    fn remote_audio_is_mixed_resampled_and_fills_every_channel() {
        let mixer = Arc::new(Mutex::new(Mixer::default()));
        let mut playback = Playback::new(Arc::clone(&mixer), 44_100, 2);
        let mut a = SyntheticAudioSource::new(441.0);
        let track = TrackSid("TR_a".into());
        let mut out = Vec::new();
        for _ in 0..100 {
            lock(&mixer).push(&track, a.next_frame().samples);
            let mut device = vec![0i16; 882 * 2];
            playback.fill(&mut device);
            out.extend(device);
        }
        let left: Vec<f32> = out.iter().step_by(2).map(|&s| f32::from(s)).collect();
        let right: Vec<f32> = out
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&s| f32::from(s))
            .collect();
        assert_eq!(left, right);
        let f = frequency(&left[4410..], 44_100);
        assert!((f - 441.0).abs() < 2.0, "{f} Hz");
        assert_eq!(lock(&mixer).stats().underruns, 0);
    }
}
