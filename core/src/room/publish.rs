//! Publishing: sources feed encoder threads, whose output is packetized onto local tracks.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aula_protocol::{MediaKind, TrackInfo, TrackSource};
use aula_transport::keyframe_requests::is_keyframe_request;
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
use crate::stats::{PublishedLayerStats, PublishedStats};

use super::bandwidth::{BandwidthEstimate, VideoTrackShare};
use super::degradation::Degradation;
use super::simulcast::{allocate, LayerControl, LayerSpec};
use super::RoomError;
use aula_transport::bwe::ProbeBackoff;

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

/// Counters one RTP stream of a publication updates; [`PublishedStats`] is read from them.
#[derive(Default)]
pub(crate) struct SendCounters {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub keyframes: AtomicU64,
    /// The encoder's current target, bit/s (0 when the app encodes or the layer is off).
    pub target_bps: AtomicU64,
    /// Whether the stream is being encoded (a simulcast layer may be off).
    pub active: AtomicBool,
    /// Bytes at the start of the current rate window, and the rate of the last one.
    rate: std::sync::Mutex<RateWindow>,
}

/// The recent send rate of a stream, measured over windows of a second.
#[derive(Default)]
struct RateWindow {
    started: Option<(Instant, u64)>,
    bps: f64,
}

/// Length of a [`RateWindow`].
const RATE_WINDOW: Duration = Duration::from_secs(1);

impl SendCounters {
    /// What the stream sent over the last full second, bit/s.
    fn recent_bps(&self) -> f64 {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut window = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        match window.started {
            Some((at, then)) if now.duration_since(at) >= RATE_WINDOW => {
                window.bps = (bytes - then) as f64 * 8.0 / now.duration_since(at).as_secs_f64();
                window.started = Some((now, bytes));
            }
            Some(_) => {}
            None => window.started = Some((now, bytes)),
        }
        window.bps
    }
}

/// Frames between two looks at the bandwidth budget.
const BUDGET_CHECK_FRAMES: u32 = 3;
/// Smallest relative change of the budget worth retargeting the encoder for.
const RETARGET_THRESHOLD: f64 = 0.05;
/// The lowest bitrate an encoder is set to, whatever the estimate.
const MIN_VIDEO_BITRATE: u32 = 50_000;

/// Where an encoder thread writes one stream's frames.
struct StreamOutput {
    tx: mpsc::Sender<(Bytes, Duration)>,
    keyframe_wanted: Arc<AtomicBool>,
    counters: Arc<SendCounters>,
    /// RTP time since the last frame sent on this stream (it advances by the source interval
    /// for every source frame, sent or not).
    since_last_sent: Duration,
}

/// What the network side of a stream reads; [`StreamOutput`] is the encoder's end.
pub(crate) struct StreamInput {
    rx: mpsc::Receiver<(Bytes, Duration)>,
    counters: Arc<SendCounters>,
    keyframe_wanted: Option<Arc<AtomicBool>>,
    layer: Option<LayerSpec>,
}

impl StreamInput {
    /// The network end of a stream fed by the app (no encoder thread).
    pub fn new(
        rx: mpsc::Receiver<(Bytes, Duration)>,
        counters: Arc<SendCounters>,
        keyframe_wanted: Option<Arc<AtomicBool>>,
    ) -> Self {
        Self {
            rx,
            counters,
            keyframe_wanted,
            layer: None,
        }
    }
}

/// A connected pair: the encoder's output and the network's input of one stream.
fn stream_channel(layer: Option<LayerSpec>) -> (StreamOutput, StreamInput) {
    let (tx, rx) = mpsc::channel(ENCODED_QUEUE);
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let counters = Arc::new(SendCounters::default());
    (
        StreamOutput {
            tx,
            keyframe_wanted: Arc::clone(&keyframe_wanted),
            counters: Arc::clone(&counters),
            since_last_sent: Duration::ZERO,
        },
        StreamInput {
            rx,
            counters,
            keyframe_wanted: Some(keyframe_wanted),
            layer,
        },
    )
}

impl StreamOutput {
    /// Encodes `frame` with `encoder` and queues it for the network. Breaks when the
    /// publication is gone.
    fn encode(&mut self, encoder: &mut H264Encoder, frame: &VideoFrame) -> ControlFlow<()> {
        let force = self.keyframe_wanted.swap(false, Ordering::AcqRel);
        match encoder.encode(frame, force) {
            Ok(Some(encoded)) => {
                if encoded.keyframe {
                    self.counters.keyframes.fetch_add(1, Ordering::Relaxed);
                }
                let duration = std::mem::take(&mut self.since_last_sent);
                // A full queue means the network side is behind: drop, and make the next frame
                // a keyframe so receivers recover from the gap.
                if self.tx.try_send((encoded.data, duration)).is_err() {
                    if self.tx.is_closed() {
                        return ControlFlow::Break(());
                    }
                    self.keyframe_wanted.store(true, Ordering::Release);
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "video encode failed"),
        }
        ControlFlow::Continue(())
    }
}

/// A single-stream video track's encoder, kept at the track's share of the bandwidth estimate:
/// the bitrate follows the budget, and the picture size or frame rate steps down when the
/// budget cannot carry them ([`Degradation`]).
struct AdaptiveEncoder {
    encoder: H264Encoder,
    degradation: Degradation,
    share: VideoTrackShare,
    configured_bps: u32,
    fps: u32,
    output: StreamOutput,
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
            retarget(&mut self.encoder, budget);
        }
        self.output.counters.target_bps.store(
            u64::from(self.encoder.config().bitrate_bps),
            Ordering::Relaxed,
        );
        Ok(())
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        stamp: FrameStamp,
        restamp: bool,
        sequence: u32,
        interval: Duration,
    ) -> ControlFlow<()> {
        self.output.since_last_sent += interval;
        let encoding = self.degradation.current();
        if !sequence.is_multiple_of(encoding.frame_interval) {
            return ControlFlow::Continue(());
        }
        if encoding.scale > 1 {
            let mut small = downscale_i420(frame, encoding.scale);
            if restamp {
                write_stamp(&mut small, stamp);
            }
            self.output.encode(&mut self.encoder, &small)
        } else {
            self.output.encode(&mut self.encoder, frame)
        }
    }
}

/// Sets `encoder` to `budget` when it differs enough from the current target.
fn retarget(encoder: &mut H264Encoder, budget: u32) {
    let current = encoder.config().bitrate_bps;
    let change = (f64::from(budget) - f64::from(current)).abs();
    if change >= f64::from(current) * RETARGET_THRESHOLD {
        encoder.set_bitrate(budget.max(MIN_VIDEO_BITRATE));
    }
}

/// One simulcast layer's encoder; `None` while the layer is off.
struct LayerEncoder {
    spec: LayerSpec,
    encoder: Option<H264Encoder>,
    output: StreamOutput,
    backoff: ProbeBackoff,
}

/// A simulcast track's encoders: the budget shared out among the layers ([`allocate`]), the
/// layers the server says nobody watches switched off.
struct LayeredEncoder {
    layers: Vec<LayerEncoder>,
    share: VideoTrackShare,
    control: Arc<LayerControl>,
    fps: u32,
}

impl LayeredEncoder {
    fn follow_budget(&mut self) -> Result<(), crate::media::MediaError> {
        let ceiling: u32 = self.layers.iter().map(|l| l.spec.max_bitrate_bps).sum();
        // Without an estimate (adaptation off, or before the first feedback) every layer runs
        // at its ceiling.
        let budget = self
            .share
            .bandwidth()
            .video_budget_bps(ceiling)
            .unwrap_or(ceiling);
        let now = Instant::now();
        let specs: Vec<LayerSpec> = self.layers.iter().map(|l| l.spec).collect();
        let on: Vec<bool> = self.layers.iter().map(|l| l.encoder.is_some()).collect();
        let may_run = |i: usize| on[i] || self.layers[i].backoff.may_start(now);
        let shares = allocate(
            budget,
            &specs,
            |i| self.control.is_wanted(i) && may_run(i),
            |i| on[i],
        );
        // A layer that stops leaves its subscribers to the next one down, which they can only
        // join at a keyframe: make one now rather than wait for them to ask.
        let stopping = shares
            .iter()
            .zip(&on)
            .rposition(|(share, was_on)| share.is_none() && *was_on);
        if let Some(stopped) = stopping {
            if let Some(below) = shares[..stopped].iter().rposition(Option::is_some) {
                self.layers[below]
                    .output
                    .keyframe_wanted
                    .store(true, Ordering::Release);
            }
        }
        let wanted: Vec<bool> = (0..self.layers.len())
            .map(|i| self.control.is_wanted(i))
            .collect();
        for (index, (layer, share)) in self.layers.iter_mut().zip(shares).enumerate() {
            match (share, layer.encoder.as_mut()) {
                (Some(bps), Some(encoder)) => retarget(encoder, bps),
                (Some(bps), None) => {
                    tracing::debug!(width = layer.spec.width, bps, "simulcast layer on");
                    layer.backoff.started(now);
                    layer.encoder = Some(H264Encoder::new(H264EncoderConfig {
                        width: layer.spec.width,
                        height: layer.spec.height,
                        fps: self.fps,
                        bitrate_bps: bps.max(MIN_VIDEO_BITRATE),
                    })?);
                    layer.output.keyframe_wanted.store(true, Ordering::Release);
                }
                (None, Some(_)) => {
                    tracing::debug!(width = layer.spec.width, "simulcast layer off");
                    layer.encoder = None;
                    if wanted[index] {
                        layer.backoff.stopped(now);
                    }
                }
                (None, None) => {}
            }
            let target = layer
                .encoder
                .as_ref()
                .map_or(0, |e| u64::from(e.config().bitrate_bps));
            let counters = &layer.output.counters;
            counters.target_bps.store(target, Ordering::Relaxed);
            counters
                .active
                .store(layer.encoder.is_some(), Ordering::Relaxed);
        }
        self.control.set_active(
            (0..self.layers.len() as u8)
                .filter(|&i| self.layers[usize::from(i)].encoder.is_some())
                .collect(),
        );
        Ok(())
    }

    /// Encodes `frame` on every layer that is on, each picture scaled from the next larger one.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        stamp: FrameStamp,
        restamp: bool,
        interval: Duration,
    ) -> ControlFlow<()> {
        // Largest first, so each smaller picture is scaled from the one before it.
        let mut larger: Option<(u32, VideoFrame)> = None;
        for layer in self.layers.iter_mut().rev() {
            layer.output.since_last_sent += interval;
            let Some(encoder) = layer.encoder.as_mut() else {
                continue;
            };
            let scale = layer.spec.scale;
            if scale == 1 {
                if layer.output.encode(encoder, frame).is_break() {
                    return ControlFlow::Break(());
                }
                continue;
            }
            let mut scaled = match &larger {
                Some((from, picture)) if scale.is_multiple_of(*from) => {
                    downscale_i420(picture, scale / from)
                }
                _ => downscale_i420(frame, scale),
            };
            if restamp {
                write_stamp(&mut scaled, stamp);
            }
            if layer.output.encode(encoder, &scaled).is_break() {
                return ControlFlow::Break(());
            }
            larger = Some((scale, scaled));
        }
        ControlFlow::Continue(())
    }
}

/// How a video track is encoded: one stream that degrades, or simulcast layers.
enum VideoEncoding {
    // Boxed: an openh264 encoder is several kilobytes; the layered variant keeps its own
    // encoders on the heap already.
    Single(Box<AdaptiveEncoder>),
    Layered(LayeredEncoder),
}

impl VideoEncoding {
    fn follow_budget(&mut self) -> Result<(), crate::media::MediaError> {
        match self {
            VideoEncoding::Single(e) => e.follow_budget(),
            VideoEncoding::Layered(e) => e.follow_budget(),
        }
    }
}

/// Encoded frames from an encoder thread, waiting to be packetized. Shared so that a
/// publication can move to a new connection (after a reconnect) without stopping its encoder.
type EncodedQueue = Arc<tokio::sync::Mutex<mpsc::Receiver<(Bytes, Duration)>>>;

/// One RTP stream of a publication once negotiated: its sender, local track and payload type.
pub(crate) struct BoundStream {
    pub sender: Arc<dyn RtpSender>,
    pub track: Arc<TrackLocalStaticSample>,
    pub ssrc: u32,
    pub payload_type: u8,
}

/// One RTP stream of a running publication (the whole track, or one simulcast layer).
struct PublishedStream {
    sender: Arc<dyn RtpSender>,
    counters: Arc<SendCounters>,
    encoded: EncodedQueue,
    /// Set to make the encoder emit a keyframe (video only).
    keyframe_wanted: Option<Arc<AtomicBool>>,
    layer: Option<LayerSpec>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PublishedStream {
    fn bind(&mut self, bound: BoundStream) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.sender = Arc::clone(&bound.sender);
        self.tasks.push(tokio::spawn(write_samples(
            Arc::clone(&bound.track),
            bound.ssrc,
            bound.payload_type,
            Arc::clone(&self.encoded),
            Arc::clone(&self.counters),
        )));
        if let Some(flag) = &self.keyframe_wanted {
            self.tasks.push(tokio::spawn(watch_keyframe_requests(
                bound.track,
                Arc::clone(flag),
            )));
        }
    }
}

impl Drop for PublishedStream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A running publication. Dropping it stops the encoder thread and the writers.
pub(crate) struct LocalPublication {
    pub info: TrackInfo,
    streams: Vec<PublishedStream>,
    started: Instant,
    stop: Arc<AtomicBool>,
    /// Which simulcast layers the server wants (simulcast video only).
    layers: Option<Arc<LayerControl>>,
}

impl LocalPublication {
    pub fn stats(&self) -> PublishedStats {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let load = |f: fn(&SendCounters) -> &AtomicU64| {
            self.streams
                .iter()
                .map(|s| f(&s.counters).load(Ordering::Relaxed))
                .collect::<Vec<u64>>()
        };
        let bytes: u64 = load(|c| &c.bytes).iter().sum();
        let layers = self
            .streams
            .iter()
            .filter_map(|stream| {
                let spec = stream.layer?;
                let c = &stream.counters;
                Some(PublishedLayerStats {
                    width: spec.width,
                    height: spec.height,
                    active: c.active.load(Ordering::Relaxed),
                    target_bitrate_kbps: c.target_bps.load(Ordering::Relaxed) as f64 / 1000.0,
                    bitrate_kbps: c.recent_bps() / 1000.0,
                    frames_sent: c.frames.load(Ordering::Relaxed),
                    keyframes: c.keyframes.load(Ordering::Relaxed),
                })
            })
            .collect();
        PublishedStats {
            track_sid: self.info.sid.clone(),
            kind: self.info.kind,
            frames_sent: load(|c| &c.frames).into_iter().max().unwrap_or(0),
            bytes_sent: bytes,
            keyframes: load(|c| &c.keyframes).iter().sum(),
            bitrate_kbps: bytes as f64 * 8.0 / 1000.0 / secs,
            target_bitrate_kbps: load(|c| &c.target_bps).iter().sum::<u64>() as f64 / 1000.0,
            layers,
        }
    }

    /// Starts the writers that packetize each input onto its negotiated stream (and, for
    /// video, the tasks that turn keyframe requests into a flag for the encoder). `inputs` and
    /// `bound` pair up in order.
    pub(crate) fn start(
        info: TrackInfo,
        bound: Vec<BoundStream>,
        inputs: Vec<StreamInput>,
        stop: Arc<AtomicBool>,
        layers: Option<Arc<LayerControl>>,
    ) -> Self {
        let streams = inputs
            .into_iter()
            .zip(bound)
            .map(|(input, bound)| {
                let mut stream = PublishedStream {
                    sender: Arc::clone(&bound.sender),
                    counters: input.counters,
                    encoded: Arc::new(tokio::sync::Mutex::new(input.rx)),
                    keyframe_wanted: input.keyframe_wanted,
                    layer: input.layer,
                    tasks: Vec::new(),
                };
                stream.bind(bound);
                stream
            })
            .collect();
        Self {
            info,
            streams,
            started: Instant::now(),
            stop,
            layers,
        }
    }

    /// The senders of this publication's streams on the publisher connection.
    pub fn senders(&self) -> Vec<Arc<dyn RtpSender>> {
        self.streams.iter().map(|s| Arc::clone(&s.sender)).collect()
    }

    /// Moves the publication to new tracks on a new connection (after a reconnect): the
    /// encoders keep running, their output now goes to `bound` (in stream order), starting with
    /// a keyframe.
    pub fn rebind(&mut self, info: TrackInfo, bound: Vec<BoundStream>) {
        self.info = info;
        for (stream, bound) in self.streams.iter_mut().zip(bound) {
            stream.bind(bound);
            if let Some(flag) = &stream.keyframe_wanted {
                flag.store(true, Ordering::Release);
            }
        }
    }

    /// The simulcast layer control (which layers are wanted and sent), for simulcast video.
    pub fn layer_control(&self) -> Option<&Arc<LayerControl>> {
        self.layers.as_ref()
    }

    /// Applies the server's list of the simulcast layers someone watches.
    pub fn set_wanted_layers(&self, layers: &[u8]) {
        if let Some(control) = &self.layers {
            control.set_wanted(layers);
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for stream in &self.streams {
            for task in &stream.tasks {
                task.abort();
            }
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
    /// The most the encoder (the top layer, with simulcast) may use, bit/s.
    pub bitrate_bps: u32,
    /// Camera or screen: how it degrades.
    pub source_kind: TrackSource,
    /// Simulcast layers, lowest first; empty or one for a single stream.
    pub layers: Vec<LayerSpec>,
    /// Its share of the bandwidth estimate.
    pub share: VideoTrackShare,
}

/// Starts a video publication: an encoder thread pulling `source` and encoding each stream
/// (one, or one per simulcast layer), and a writer task per stream. `bound` has one entry per
/// layer (or one).
pub(crate) fn start_video(
    info: TrackInfo,
    bound: Vec<BoundStream>,
    mut source: Box<dyn VideoSource>,
    settings: VideoEncodeSettings,
) -> Result<LocalPublication, RoomError> {
    let VideoEncodeSettings {
        bitrate_bps,
        source_kind,
        layers,
        share,
    } = settings;
    let fps = source.fps().max(1);
    let media = |e: crate::media::MediaError| RoomError::Media(e.to_string());
    let (mut encoding, inputs, control) = if layers.len() > 1 {
        let control = Arc::new(LayerControl::default());
        let mut inputs = Vec::new();
        let mut encoders = Vec::new();
        for spec in layers {
            let (output, input) = stream_channel(Some(spec));
            inputs.push(input);
            encoders.push(LayerEncoder {
                spec,
                encoder: None,
                output,
                backoff: ProbeBackoff::default(),
            });
        }
        let mut layered = LayeredEncoder {
            layers: encoders,
            share,
            control: Arc::clone(&control),
            fps,
        };
        layered.follow_budget().map_err(media)?;
        (VideoEncoding::Layered(layered), inputs, Some(control))
    } else {
        let encoder = H264Encoder::with_content(
            H264EncoderConfig {
                width: source.width(),
                height: source.height(),
                fps,
                bitrate_bps,
            },
            VideoContent::of_source(source_kind),
        )
        .map_err(media)?;
        let (output, input) = stream_channel(None);
        output
            .counters
            .target_bps
            .store(u64::from(bitrate_bps), Ordering::Relaxed);
        output.counters.active.store(true, Ordering::Relaxed);
        let single = AdaptiveEncoder {
            encoder,
            degradation: Degradation::new(source_kind, source.width(), source.height(), fps),
            share,
            configured_bps: bitrate_bps,
            fps,
            output,
        };
        (VideoEncoding::Single(Box::new(single)), vec![input], None)
    };
    let restamp = source.stamps_frames();
    let interval = Duration::from_secs(1) / fps;
    let stop = Arc::new(AtomicBool::new(false));
    let mut sequence = 0u32;
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
                if let Err(err) = encoding.follow_budget() {
                    tracing::warn!(error = %err, "cannot adapt the video encoder");
                }
            }
            sequence = sequence.wrapping_add(1);
            let frame = source.capture(stamp);
            match &mut encoding {
                VideoEncoding::Single(e) => e.encode(&frame, stamp, restamp, sequence, interval),
                VideoEncoding::Layered(e) => e.encode(&frame, stamp, restamp, interval),
            }
        },
    )?;
    Ok(LocalPublication::start(info, bound, inputs, stop, control))
}

/// Audio frames between two looks at the path's loss.
const LOSS_CHECK_FRAMES: u32 = 50;

/// Starts an audio publication: an Opus encoder thread pulling `source` every 20 ms, its
/// in-band FEC following the loss the uplink estimate reports.
pub(crate) fn start_audio(
    info: TrackInfo,
    bound: BoundStream,
    mut source: Box<dyn AudioSource>,
    uplink: Arc<BandwidthEstimate>,
) -> Result<LocalPublication, RoomError> {
    let mut encoder = OpusEncoder::new(32_000).map_err(|e| RoomError::Media(e.to_string()))?;
    let counters = Arc::new(SendCounters::default());
    counters.active.store(true, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<(Bytes, Duration)>(ENCODED_QUEUE);
    let frame_duration = Duration::from_micros(
        AUDIO_FRAME_SAMPLES as u64 * 1_000_000 / u64::from(AUDIO_SAMPLE_RATE),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut frames = 0u32;
    spawn_paced(
        format!("aula-audio-enc-{}", info.sid),
        frame_duration,
        10,
        &stop,
        move || {
            if frames.is_multiple_of(LOSS_CHECK_FRAMES) {
                let percent = (uplink.loss_fraction() * 100.0).round() as u8;
                if let Err(err) = encoder.set_expected_loss(percent) {
                    tracing::debug!(error = %err, "Opus loss setting refused");
                }
            }
            frames = frames.wrapping_add(1);
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
        vec![bound],
        vec![StreamInput::new(rx, counters, None)],
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
