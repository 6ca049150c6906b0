//! Publishing: sources feed encoder threads, whose output is packetized onto local tracks.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aula_protocol::keyframe_requests::is_keyframe_request;
use aula_protocol::{MediaKind, TrackInfo, TrackSource};
use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::clock::unix_micros;
use crate::media::{
    downscale_i420, write_stamp, AudioFrame, FrameStamp, H264Encoder, H264EncoderConfig,
    OpusEncoder, SyntheticAudioSource, SyntheticVideoSource, VideoContent, VideoFrame,
    AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE,
};
use crate::stats::PublishedStats;

use super::bandwidth::VideoTrackShare;
use super::degradation::Degradation;
use super::RoomError;

/// The H.264 profile Aula sends: constrained baseline, packetization mode 1.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// Encoded frames queued between an encoder thread and the network before frames are dropped.
const ENCODED_QUEUE: usize = 8;
/// How often a track not yet negotiated looks again for its RTCP feed.
const UNBOUND_RETRY: Duration = Duration::from_millis(100);

/// A source of raw video frames, pulled at its frame rate by an encoder thread.
pub trait VideoSource: Send + 'static {
    /// Frame width in pixels.
    fn width(&self) -> u32;
    /// Frame height in pixels.
    fn height(&self) -> u32;
    /// Frames per second the source is pulled at.
    fn fps(&self) -> u32;
    /// The next frame; `stamp` says its sequence number and capture time.
    fn capture(&mut self, stamp: FrameStamp) -> VideoFrame;
    /// Whether frames carry `stamp` in their pixels (see [`crate::media::write_stamp`]), so a
    /// picture scaled down for the network is stamped again. Default `false`.
    fn stamps_frames(&self) -> bool {
        false
    }
}

impl VideoSource for SyntheticVideoSource {
    fn width(&self) -> u32 {
        SyntheticVideoSource::width(self)
    }
    fn height(&self) -> u32 {
        SyntheticVideoSource::height(self)
    }
    fn fps(&self) -> u32 {
        SyntheticVideoSource::fps(self)
    }
    fn capture(&mut self, stamp: FrameStamp) -> VideoFrame {
        self.frame(stamp)
    }
    fn stamps_frames(&self) -> bool {
        true
    }
}

/// A source of 20 ms frames of 48 kHz mono audio, pulled in real time by an encoder thread.
pub trait AudioSource: Send + 'static {
    /// The next 20 ms of audio.
    fn next_frame(&mut self) -> AudioFrame;
}

impl AudioSource for SyntheticAudioSource {
    fn next_frame(&mut self) -> AudioFrame {
        SyntheticAudioSource::next_frame(self)
    }
}

/// Counters one publication updates and [`PublishedStats`] is read from.
#[derive(Default)]
pub(crate) struct SendCounters {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub keyframes: AtomicU64,
    /// The encoder's current target, bit/s (0 when the app encodes).
    pub target_bps: Arc<AtomicU64>,
}

/// Frames between two looks at the bandwidth budget.
const BUDGET_CHECK_FRAMES: u32 = 3;
/// Smallest relative change of the budget worth retargeting the encoder for.
const RETARGET_THRESHOLD: f64 = 0.05;

/// A video track's encoder, kept at the track's share of the bandwidth estimate: the bitrate
/// follows the budget, and the picture size or frame rate steps down when the budget cannot
/// carry them ([`Degradation`]).
struct AdaptiveEncoder {
    encoder: H264Encoder,
    degradation: Degradation,
    share: VideoTrackShare,
    configured_bps: u32,
    fps: u32,
    target_bps: Arc<AtomicU64>,
}

impl AdaptiveEncoder {
    /// Looks at the budget; retargets the encoder, or re-creates it at a new size or rate.
    fn follow_budget(&mut self) -> Result<(), crate::media::MediaError> {
        let Some(budget) = self.share.bandwidth().video_budget_bps(self.configured_bps) else {
            return Ok(());
        };
        if self.degradation.update(budget) {
            let encoding = self.degradation.current();
            tracing::debug!(?encoding, budget, "video encoding changed");
            self.encoder = H264Encoder::with_content(
                H264EncoderConfig {
                    width: encoding.size.0,
                    height: encoding.size.1,
                    fps: (self.fps / encoding.frame_interval).max(1),
                    bitrate_bps: budget.max(MIN_VIDEO_BITRATE),
                },
                self.encoder.content(),
            )?;
        } else {
            let current = self.encoder.config().bitrate_bps;
            let change = (f64::from(budget) - f64::from(current)).abs();
            if change >= f64::from(current) * RETARGET_THRESHOLD {
                self.encoder.set_bitrate(budget.max(MIN_VIDEO_BITRATE));
            }
        }
        self.target_bps.store(
            u64::from(self.encoder.config().bitrate_bps),
            Ordering::Relaxed,
        );
        Ok(())
    }
}

/// The lowest bitrate an encoder is set to, whatever the estimate.
const MIN_VIDEO_BITRATE: u32 = 50_000;

/// Encoded frames from an encoder thread, waiting to be packetized. Shared so that a
/// publication can move to a new connection (after a reconnect) without stopping its encoder.
type EncodedQueue = Arc<tokio::sync::Mutex<mpsc::Receiver<(Bytes, Duration)>>>;

/// A running publication. Dropping it stops the encoder thread and the writer.
pub(crate) struct LocalPublication {
    pub info: TrackInfo,
    pub sender: Arc<dyn RtpSender>,
    counters: Arc<SendCounters>,
    started: Instant,
    stop: Arc<AtomicBool>,
    encoded: EncodedQueue,
    /// Set to make the encoder emit a keyframe (video only).
    keyframe_wanted: Option<Arc<AtomicBool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalPublication {
    pub fn stats(&self) -> PublishedStats {
        let bytes = self.counters.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        PublishedStats {
            track_sid: self.info.sid.clone(),
            kind: self.info.kind,
            frames_sent: self.counters.frames.load(Ordering::Relaxed),
            bytes_sent: bytes,
            keyframes: self.counters.keyframes.load(Ordering::Relaxed),
            bitrate_kbps: bytes as f64 * 8.0 / 1000.0 / secs,
            target_bitrate_kbps: self.counters.target_bps.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// Starts the writer that packetizes `encoded` onto the track (and, for video, the task
    /// that turns keyframe requests into a flag for the encoder).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        info: TrackInfo,
        sender: Arc<dyn RtpSender>,
        prepared: &PreparedTrack,
        payload_type: u8,
        encoded: mpsc::Receiver<(Bytes, Duration)>,
        counters: Arc<SendCounters>,
        stop: Arc<AtomicBool>,
        keyframe_wanted: Option<Arc<AtomicBool>>,
    ) -> Self {
        let mut publication = Self {
            info,
            sender,
            counters,
            started: Instant::now(),
            stop,
            encoded: Arc::new(tokio::sync::Mutex::new(encoded)),
            keyframe_wanted,
            tasks: Vec::new(),
        };
        publication.spawn_tasks(prepared, payload_type);
        publication
    }

    /// Moves the publication to a new track on a new connection (after a reconnect): the
    /// encoder keeps running, its output now goes to `prepared`, starting with a keyframe.
    pub fn rebind(
        &mut self,
        info: TrackInfo,
        sender: Arc<dyn RtpSender>,
        prepared: &PreparedTrack,
        payload_type: u8,
    ) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.info = info;
        self.sender = sender;
        self.spawn_tasks(prepared, payload_type);
        if let Some(flag) = &self.keyframe_wanted {
            flag.store(true, Ordering::Release);
        }
    }

    fn spawn_tasks(&mut self, prepared: &PreparedTrack, payload_type: u8) {
        self.tasks.push(tokio::spawn(write_samples(
            Arc::clone(&prepared.track),
            prepared.ssrc,
            payload_type,
            Arc::clone(&self.encoded),
            Arc::clone(&self.counters),
        )));
        if let Some(flag) = &self.keyframe_wanted {
            self.tasks.push(tokio::spawn(watch_keyframe_requests(
                Arc::clone(&prepared.track),
                Arc::clone(flag),
            )));
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for LocalPublication {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A local track ready to be added to the publisher connection.
pub(crate) struct PreparedTrack {
    pub track: Arc<TrackLocalStaticSample>,
    pub ssrc: u32,
    pub codec: RTCRtpCodec,
}

/// Makes the local track for `cid`.
pub(crate) fn prepare_track(
    stream_id: &str,
    cid: &str,
    kind: MediaKind,
) -> Result<PreparedTrack, RoomError> {
    let (codec, rtp_kind) = match kind {
        MediaKind::Audio => (
            RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: AUDIO_SAMPLE_RATE,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            RtpCodecKind::Audio,
        ),
        _ => (
            RTCRtpCodec {
                mime_type: "video/H264".into(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: H264_FMTP.into(),
                rtcp_feedback: vec![],
            },
            RtpCodecKind::Video,
        ),
    };
    let ssrc = rand_ssrc();
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            stream_id.to_owned(),
            cid.to_owned(),
            cid.to_owned(),
            rtp_kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            }],
        ),
    )
    .map_err(super::peer::webrtc_error)?;
    Ok(PreparedTrack {
        track: Arc::new(track),
        ssrc,
        codec,
    })
}

fn rand_ssrc() -> u32 {
    // Not security relevant: SSRCs only need to differ between streams.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    nanos.wrapping_mul(2_654_435_761)
        ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u32).wrapping_mul(40_503)
}

/// The payload type the connection negotiated for `codec` on `sender`.
pub(crate) async fn negotiated_payload_type(
    sender: &Arc<dyn RtpSender>,
    codec: &RTCRtpCodec,
) -> Result<u8, RoomError> {
    let params = sender
        .get_parameters()
        .await
        .map_err(super::peer::webrtc_error)?;
    params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| {
            c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type)
                && (codec.sdp_fmtp_line.is_empty()
                    || !c.rtp_codec.sdp_fmtp_line.contains("packetization-mode")
                    || c.rtp_codec.sdp_fmtp_line.contains("packetization-mode=1"))
        })
        .map(|c| c.payload_type)
        .ok_or_else(|| RoomError::Internal(format!("{} was not negotiated", codec.mime_type)))
}

/// How a video track is encoded.
pub(crate) struct VideoEncodeSettings {
    /// The most the encoder may use, bit/s.
    pub bitrate_bps: u32,
    /// Camera or screen: how it degrades.
    pub source_kind: TrackSource,
    /// Its share of the bandwidth estimate.
    pub share: VideoTrackShare,
}

/// Starts a video publication: an encoder thread pulling `source`, and a writer task.
pub(crate) fn start_video(
    info: TrackInfo,
    prepared: PreparedTrack,
    sender: Arc<dyn RtpSender>,
    payload_type: u8,
    mut source: Box<dyn VideoSource>,
    settings: VideoEncodeSettings,
) -> Result<LocalPublication, RoomError> {
    let VideoEncodeSettings {
        bitrate_bps,
        source_kind,
        share,
    } = settings;
    let fps = source.fps().max(1);
    let config = H264EncoderConfig {
        width: source.width(),
        height: source.height(),
        fps,
        bitrate_bps,
    };
    let encoder = H264Encoder::with_content(config, VideoContent::of_source(source_kind))
        .map_err(|e| RoomError::Media(e.to_string()))?;
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let counters = Arc::new(SendCounters::default());
    counters
        .target_bps
        .store(u64::from(bitrate_bps), Ordering::Relaxed);
    let mut adaptive = AdaptiveEncoder {
        encoder,
        degradation: Degradation::new(source_kind, source.width(), source.height(), fps),
        share,
        configured_bps: bitrate_bps,
        fps,
        target_bps: Arc::clone(&counters.target_bps),
    };
    let restamp = source.stamps_frames();
    let (tx, rx) = mpsc::channel::<(Bytes, Duration)>(ENCODED_QUEUE);
    let interval = Duration::from_secs(1) / fps;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let keyframe_wanted = Arc::clone(&keyframe_wanted);
        let counters = Arc::clone(&counters);
        let mut sequence = 0u32;
        // RTP time advances by the source interval for every frame, sent or skipped.
        let mut since_last_sent = Duration::ZERO;
        spawn_paced(
            format!("aula-video-enc-{}", info.sid),
            interval,
            4,
            &stop,
            move || {
                let stamp = FrameStamp {
                    sequence,
                    capture_time_us: unix_micros(),
                };
                if sequence.is_multiple_of(BUDGET_CHECK_FRAMES) {
                    if let Err(err) = adaptive.follow_budget() {
                        tracing::warn!(error = %err, "cannot adapt the video encoder");
                    }
                }
                sequence = sequence.wrapping_add(1);
                let frame = source.capture(stamp);
                since_last_sent += interval;
                let encoding = adaptive.degradation.current();
                if !sequence.is_multiple_of(encoding.frame_interval) {
                    return ControlFlow::Continue(());
                }
                let frame = if encoding.scale > 1 {
                    let mut small = downscale_i420(&frame, encoding.scale);
                    if restamp {
                        write_stamp(&mut small, stamp);
                    }
                    small
                } else {
                    frame
                };
                let force = keyframe_wanted.swap(false, Ordering::AcqRel);
                match adaptive.encoder.encode(&frame, force) {
                    Ok(Some(encoded)) => {
                        if encoded.keyframe {
                            counters.keyframes.fetch_add(1, Ordering::Relaxed);
                        }
                        let duration = std::mem::take(&mut since_last_sent);
                        // A full queue means the network side is behind: drop, and make the next
                        // frame a keyframe so receivers recover from the gap.
                        if tx.try_send((encoded.data, duration)).is_err() {
                            if tx.is_closed() {
                                return ControlFlow::Break(());
                            }
                            keyframe_wanted.store(true, Ordering::Release);
                        }
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %err, "video encode failed"),
                }
                ControlFlow::Continue(())
            },
        )?;
    }
    Ok(LocalPublication::start(
        info,
        sender,
        &prepared,
        payload_type,
        rx,
        counters,
        stop,
        Some(keyframe_wanted),
    ))
}

/// Starts an audio publication: an Opus encoder thread pulling `source` every 20 ms.
pub(crate) fn start_audio(
    info: TrackInfo,
    prepared: PreparedTrack,
    sender: Arc<dyn RtpSender>,
    payload_type: u8,
    mut source: Box<dyn AudioSource>,
) -> Result<LocalPublication, RoomError> {
    let mut encoder = OpusEncoder::new(32_000).map_err(|e| RoomError::Media(e.to_string()))?;
    let counters = Arc::new(SendCounters::default());
    let (tx, rx) = mpsc::channel::<(Bytes, Duration)>(ENCODED_QUEUE);
    let frame_duration = Duration::from_micros(
        AUDIO_FRAME_SAMPLES as u64 * 1_000_000 / u64::from(AUDIO_SAMPLE_RATE),
    );
    let stop = Arc::new(AtomicBool::new(false));
    spawn_paced(
        format!("aula-audio-enc-{}", info.sid),
        frame_duration,
        10,
        &stop,
        move || {
            let frame = source.next_frame();
            match encoder.encode(&frame) {
                Ok(packet) => {
                    if tx.try_send((packet, frame_duration)).is_err() && tx.is_closed() {
                        return ControlFlow::Break(());
                    }
                }
                Err(err) => tracing::warn!(error = %err, "audio encode failed"),
            }
            ControlFlow::Continue(())
        },
    )?;
    Ok(LocalPublication::start(
        info,
        sender,
        &prepared,
        payload_type,
        rx,
        counters,
        stop,
        None,
    ))
}

/// Runs `step` on a new thread every `interval` until `stop` is set or `step` breaks. A thread
/// that falls more than `max_lag` intervals behind (a stalled machine) resumes from now instead
/// of bursting to catch up.
fn spawn_paced(
    name: String,
    interval: Duration,
    max_lag: u32,
    stop: &Arc<AtomicBool>,
    mut step: impl FnMut() -> ControlFlow<()> + Send + 'static,
) -> Result<(), RoomError> {
    let stop = Arc::clone(stop);
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Acquire) {
                if step().is_break() {
                    break;
                }
                next += interval;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else if now - next > interval * max_lag {
                    next = now;
                }
            }
        })
        .map(drop)
        .map_err(|e| RoomError::Internal(format!("cannot start encoder thread: {e}")))
}

async fn write_samples(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
    encoded: EncodedQueue,
    counters: Arc<SendCounters>,
) {
    // Held for the writer's life; a writer aborted by `rebind` releases it to the next one.
    let mut encoded = encoded.lock().await;
    while let Some((data, duration)) = encoded.recv().await {
        let len = data.len() as u64;
        let sample = Sample {
            data,
            duration,
            ..Sample::new(Instant::now())
        };
        match track
            .sample_writer(ssrc, payload_type)
            .write_sample(&sample)
            .await
        {
            Ok(()) => {
                counters.frames.fetch_add(1, Ordering::Relaxed);
                counters.bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(err) => tracing::debug!(error = %err, "sample not sent"),
        }
    }
}

async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    keyframe_wanted: Arc<AtomicBool>,
) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    keyframe_wanted.store(true, Ordering::Release);
                }
            }
            Some(_) => {}
            None => tokio::time::sleep(UNBOUND_RETRY).await,
        }
    }
}
