//! What microphones and speakers share: the cpal host, finding a device by id, choosing a
//! stream configuration, and the thread that owns a running stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig, SupportedStreamConfigRange};

use super::{AudioDeviceInfo, AudioFormat, DeviceError, DeviceKind, DeviceMonitor};
use crate::media::AUDIO_SAMPLE_RATE;

/// How long opening a stream may take before it counts as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running stream's device is looked for (a stream whose callbacks stopped, or
/// that a sound server moved elsewhere, outlives its device without an error).
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The system's audio host: PulseAudio (or PipeWire's pulse server) when one runs, ALSA
/// otherwise on Linux; CoreAudio, WASAPI, AAudio elsewhere.
pub(super) fn host() -> cpal::Host {
    cpal::default_host()
}

fn is_input(kind: DeviceKind) -> bool {
    kind == DeviceKind::Microphone
}

/// Devices that are listed by the system but are not devices (ALSA's `null` discards
/// everything and records silence).
fn is_placeholder(id: &str) -> bool {
    id == "alsa:null"
}

/// A device's id as Aula shows it (cpal's `host:device`).
fn device_id(device: &cpal::Device) -> Option<String> {
    device.id().ok().map(|id| id.to_string())
}

fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| device_id(device))
        .unwrap_or_else(|| "unnamed device".into())
}

/// The configuration ranges of `device` in `kind`'s direction; an error when it cannot be used.
fn ranges(
    device: &cpal::Device,
    kind: DeviceKind,
) -> Result<Vec<SupportedStreamConfigRange>, cpal::Error> {
    let ranges: Vec<_> = if is_input(kind) {
        device.supported_input_configs()?.collect()
    } else {
        device.supported_output_configs()?.collect()
    };
    Ok(ranges)
}

/// Lists the usable devices of `kind`: those that report at least one configuration.
pub(super) fn list(kind: DeviceKind) -> Result<Vec<AudioDeviceInfo>, DeviceError> {
    let host = host();
    let devices: Vec<cpal::Device> = if is_input(kind) {
        host.input_devices()
            .map_err(|e| DeviceError::backend(kind, e))?
            .collect()
    } else {
        host.output_devices()
            .map_err(|e| DeviceError::backend(kind, e))?
            .collect()
    };
    let default = if is_input(kind) {
        host.default_input_device()
    } else {
        host.default_output_device()
    }
    .and_then(|d| device_id(&d));
    let mut list = Vec::new();
    for device in devices {
        let Some(id) = device_id(&device) else {
            continue;
        };
        if is_placeholder(&id) || list.iter().any(|d: &AudioDeviceInfo| d.id == id) {
            continue;
        }
        let formats: Vec<AudioFormat> = match ranges(&device, kind) {
            Ok(ranges) => ranges
                .iter()
                .filter(|r| sample_supported(r.sample_format()))
                .map(|r| AudioFormat {
                    channels: r.channels(),
                    min_sample_rate: r.min_sample_rate(),
                    max_sample_rate: r.max_sample_rate(),
                    sample_format: r.sample_format().to_string(),
                })
                .collect(),
            Err(err) => {
                tracing::debug!(%id, error = %err, "audio device skipped: no configurations");
                continue;
            }
        };
        if formats.is_empty() {
            continue;
        }
        list.push(AudioDeviceInfo {
            is_default: default.as_deref() == Some(id.as_str()),
            name: device_name(&device),
            id,
            formats,
        });
    }
    Ok(list)
}

/// Finds the device `id` (cpal's `host:device` id, or a device name) of `kind`, or the
/// default one.
pub(super) fn find(
    kind: DeviceKind,
    id: Option<&str>,
) -> Result<(cpal::Device, String), DeviceError> {
    let host = host();
    let shown = id.unwrap_or("default");
    let missing = |detail: &str| DeviceError::not_found(kind, shown, detail);
    let device = match id {
        None | Some("default") => if is_input(kind) {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or_else(|| missing("the system has no default device"))?,
        Some(id) => {
            let by_id = id
                .parse::<cpal::DeviceId>()
                .ok()
                .and_then(|parsed| host.device_by_id(&parsed));
            match by_id {
                Some(device) => device,
                None => {
                    let devices: Vec<cpal::Device> = if is_input(kind) {
                        host.input_devices().map(Iterator::collect)
                    } else {
                        host.output_devices().map(Iterator::collect)
                    }
                    .map_err(|e| DeviceError::backend(kind, e))?;
                    devices
                        .into_iter()
                        .find(|d| device_name(d) == id || device_id(d).as_deref() == Some(id))
                        .ok_or_else(|| missing(""))?
                }
            }
        }
    };
    let id = device_id(&device).unwrap_or_else(|| shown.to_owned());
    if is_placeholder(&id) {
        return Err(missing("ALSA's null device is not a device"));
    }
    Ok((device, id))
}

/// Sorts a cpal failure into Aula's device errors.
pub(super) fn map_error(kind: DeviceKind, id: &str, err: &cpal::Error) -> DeviceError {
    use cpal::ErrorKind as K;
    let detail = err.to_string();
    let id = id.to_owned();
    match err.kind() {
        K::DeviceBusy => DeviceError::Busy { kind, id, detail },
        K::DeviceNotAvailable | K::HostUnavailable => DeviceError::NotFound { kind, id, detail },
        K::PermissionDenied => DeviceError::PermissionDenied { kind, id, detail },
        K::UnsupportedConfig => DeviceError::UnsupportedFormat { kind, id, detail },
        _ => DeviceError::from_text(kind, &id, &detail),
    }
}

/// Whether a running stream's error means the device is gone.
fn is_fatal(err: &cpal::Error) -> bool {
    use cpal::ErrorKind as K;
    matches!(
        err.kind(),
        K::DeviceNotAvailable | K::HostUnavailable | K::StreamInvalidated
    )
}

/// The sample types Aula converts from and to.
pub(super) fn sample_supported(format: SampleFormat) -> bool {
    matches!(
        format,
        SampleFormat::F32
            | SampleFormat::F64
            | SampleFormat::I8
            | SampleFormat::I16
            | SampleFormat::I32
            | SampleFormat::U8
            | SampleFormat::U16
            | SampleFormat::U32
    )
}

/// Preference among sample types: float first, then wide integers.
fn sample_rank(format: SampleFormat) -> u8 {
    match format {
        SampleFormat::F32 => 0,
        SampleFormat::I16 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::F64 => 3,
        SampleFormat::U16 => 4,
        SampleFormat::U32 => 5,
        SampleFormat::I8 => 6,
        SampleFormat::U8 => 7,
        _ => 255,
    }
}

/// One configuration range, as the choice below sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Range {
    pub channels: u16,
    pub min_rate: u32,
    pub max_rate: u32,
    pub format: SampleFormat,
    /// Callback sizes the device accepts, in frames, when it says.
    pub buffer: Option<(u32, u32)>,
}

/// The chosen stream configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chosen {
    pub channels: u16,
    pub rate: u32,
    pub format: SampleFormat,
    pub buffer: Option<(u32, u32)>,
}

/// The configuration nearest to 48 kHz with `want_channels` channels (or the fewest above,
/// or the most below), in the best sample type; `None` if no range has a usable type.
pub(super) fn choose(ranges: &[Range], want_channels: u16) -> Option<Chosen> {
    let rate_for = |r: &Range| AUDIO_SAMPLE_RATE.clamp(r.min_rate, r.max_rate.max(r.min_rate));
    ranges
        .iter()
        .filter(|r| sample_supported(r.format) && r.channels > 0)
        .min_by_key(|r| {
            let rate = rate_for(r);
            let channel_cost = if r.channels == want_channels {
                0
            } else if r.channels > want_channels {
                u32::from(r.channels - want_channels)
            } else {
                100 + u32::from(want_channels - r.channels)
            };
            (
                rate.abs_diff(AUDIO_SAMPLE_RATE),
                channel_cost,
                sample_rank(r.format),
            )
        })
        .map(|r| Chosen {
            channels: r.channels,
            rate: rate_for(r),
            format: r.format,
            buffer: r.buffer,
        })
}

/// Finds, checks and configures `kind`'s device `id`.
pub(super) fn prepare(
    kind: DeviceKind,
    id: Option<&str>,
    want_channels: u16,
) -> Result<(cpal::Device, String, Chosen), DeviceError> {
    let (device, id) = find(kind, id)?;
    let ranges: Vec<Range> = ranges(&device, kind)
        .map_err(|e| map_error(kind, &id, &e))?
        .iter()
        .map(|r| Range {
            channels: r.channels(),
            min_rate: r.min_sample_rate(),
            max_rate: r.max_sample_rate(),
            format: r.sample_format(),
            buffer: match r.buffer_size() {
                cpal::SupportedBufferSize::Range { min, max } => Some((*min, *max)),
                _ => None,
            },
        })
        .collect();
    let chosen = choose(&ranges, want_channels).ok_or_else(|| DeviceError::UnsupportedFormat {
        kind,
        id: id.clone(),
        detail: format!("offered {ranges:?}"),
    })?;
    Ok((device, id, chosen))
}

/// The cpal stream configuration for `chosen`, asking for callbacks of about `period_ms`
/// when the device says what it accepts (left to the system otherwise, and as the fallback:
/// a sound server's default can be seconds for capture).
pub(super) fn stream_configs(chosen: Chosen, period_ms: u32) -> (StreamConfig, StreamConfig) {
    let default = StreamConfig {
        channels: chosen.channels,
        sample_rate: chosen.rate,
        buffer_size: cpal::BufferSize::Default,
    };
    let fixed = match chosen.buffer {
        Some((min, max)) if max >= min && max > 0 => StreamConfig {
            buffer_size: cpal::BufferSize::Fixed(
                (chosen.rate * period_ms / 1000).clamp(min.max(1), max),
            ),
            ..default
        },
        _ => default,
    };
    (fixed, default)
}

/// Whether building a stream failed only because of the requested buffer size.
fn retry_with_default(err: &cpal::Error) -> bool {
    matches!(
        err.kind(),
        cpal::ErrorKind::UnsupportedConfig | cpal::ErrorKind::InvalidInput
    )
}

/// Builds a stream with `config`, and once more with `fallback` when the device refused only
/// the requested buffer size.
pub(super) fn build_with_fallback(
    config: StreamConfig,
    fallback: StreamConfig,
    build: impl Fn(StreamConfig) -> Result<cpal::Stream, cpal::Error>,
) -> Result<cpal::Stream, cpal::Error> {
    build(config).or_else(|err| {
        if retry_with_default(&err) {
            build(fallback)
        } else {
            Err(err)
        }
    })
}

/// A running stream's error callback: an error that means the device is gone marks it lost
/// on `monitor`; the others are logged.
pub(super) fn stream_error_handler(
    monitor: &DeviceMonitor,
) -> impl FnMut(cpal::Error) + Clone + Send + 'static {
    let monitor = monitor.clone();
    move |err: cpal::Error| {
        if is_fatal(&err) {
            monitor.lost(err.to_string());
        } else {
            tracing::debug!(device = %monitor.kind(), error = %err, "stream error");
        }
    }
}

/// Evaluates `$body` with the type alias `$t` naming the Rust sample type of the cpal
/// `$format` (one of those [`sample_supported`] accepts), so that one generic stream-building
/// expression serves every sample format.
macro_rules! with_sample_type {
    ($format:expr, $t:ident => $body:expr) => {
        match $format {
            ::cpal::SampleFormat::F32 => {
                type $t = f32;
                $body
            }
            ::cpal::SampleFormat::F64 => {
                type $t = f64;
                $body
            }
            ::cpal::SampleFormat::I8 => {
                type $t = i8;
                $body
            }
            ::cpal::SampleFormat::I16 => {
                type $t = i16;
                $body
            }
            ::cpal::SampleFormat::I32 => {
                type $t = i32;
                $body
            }
            ::cpal::SampleFormat::U8 => {
                type $t = u8;
                $body
            }
            ::cpal::SampleFormat::U16 => {
                type $t = u16;
                $body
            }
            _ => {
                type $t = u32;
                $body
            }
        }
    };
}
pub(super) use with_sample_type;

/// When a stream's callback last ran, for noticing a stream that stopped without an error
/// (PulseAudio ends the stream of a removed device silently).
#[derive(Clone, Debug)]
pub(super) struct Activity {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: Arc::default(),
        }
    }

    /// Called from the stream's callback.
    pub fn touch(&self) {
        self.last_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

/// Keeps a running stream on a thread of its own (streams are not `Send` on every platform)
/// until dropped. That thread also watches the stream: when its callbacks stop and the device
/// is no longer there, the device is reported lost.
pub(super) struct StreamGuard {
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard").finish_non_exhaustive()
    }
}

impl StreamGuard {
    /// Runs `build` on a new thread, starts the stream it returns, and keeps it there.
    pub fn start(
        monitor: &DeviceMonitor,
        follows_default: bool,
        activity: Activity,
        build: impl FnOnce() -> Result<cpal::Stream, cpal::Error> + Send + 'static,
    ) -> Result<Self, DeviceError> {
        let (kind, id) = (monitor.kind(), monitor.id().to_owned());
        let watched = monitor.clone();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), cpal::Error>>();
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("aula-{kind}"))
            .spawn(move || {
                let stream = match build().and_then(|s| s.play().map(|()| s)) {
                    Ok(stream) => {
                        let _ = ready_tx.send(Ok(()));
                        stream
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                // Until the guard is dropped (the sender goes away).
                while let Err(std_mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(WATCH_EVERY)
                {
                    // A stream on the default device may be moved to a new default; one on
                    // a chosen device has lost it when the device is gone.
                    let look = !follows_default || activity.idle() >= WATCH_EVERY;
                    if look && !watched.is_lost() {
                        if let Err(DeviceError::NotFound { .. }) =
                            find(watched.kind(), Some(watched.id()))
                        {
                            watched.lost("the device went away");
                        }
                    }
                }
                drop(stream);
            })
            .map_err(|e| DeviceError::backend(kind, format!("cannot start a thread: {e}")))?;
        let guard = Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(guard),
            Ok(Err(err)) => Err(map_error(kind, &id, &err)),
            Err(_) => Err(DeviceError::backend(
                kind,
                format!("{id} did not start within {OPEN_TIMEOUT:?}"),
            )),
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(channels: u16, min_rate: u32, max_rate: u32, format: SampleFormat) -> Range {
        Range {
            channels,
            min_rate,
            max_rate,
            format,
            buffer: Some((64, 8192)),
        }
    }

    #[test]
    fn the_choice_prefers_48_khz_then_channels_then_float() {
        let offered = [
            range(2, 44_100, 44_100, SampleFormat::F32),
            range(2, 8_000, 96_000, SampleFormat::I16),
            range(1, 8_000, 96_000, SampleFormat::I16),
            range(1, 8_000, 96_000, SampleFormat::F32),
        ];
        assert_eq!(
            choose(&offered, 1),
            Some(Chosen {
                channels: 1,
                rate: 48_000,
                format: SampleFormat::F32,
                buffer: Some((64, 8192)),
            })
        );
        assert_eq!(
            choose(&offered, 2).map(|c| (c.channels, c.rate)),
            Some((2, 48_000))
        );
        // A device fixed at 44.1 kHz stereo gets just that: resampling and downmixing follow.
        let fixed = [range(2, 44_100, 44_100, SampleFormat::I16)];
        assert_eq!(
            choose(&fixed, 1),
            Some(Chosen {
                channels: 2,
                rate: 44_100,
                format: SampleFormat::I16,
                buffer: Some((64, 8192)),
            })
        );
        // Mono only, for a stereo speaker: the mono range is still taken.
        let mono = [range(1, 16_000, 16_000, SampleFormat::U8)];
        assert_eq!(choose(&mono, 2).map(|c| c.channels), Some(1));
        assert_eq!(
            choose(&[range(2, 48_000, 48_000, SampleFormat::DsdU8)], 2),
            None
        );
    }
}
