//! Receiving: RTP from a subscribed track is reassembled on the async side and decoded on a
//! dedicated thread; decoded frames go to the app's sinks and into the stats.

use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aula_protocol::{MediaKind, ParticipantId, TrackSid, TrackSource};
use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::clock::{micros_since_stamp, unix_micros};
use crate::media::{read_stamp, AudioFrame, H264Decoder, OpusDecoder, VideoFrame};
use crate::rtp::{depacketize_h264, AssemblerCounts, FrameAssembler, MediaPacket};
use crate::stats::{FreezeDetector, Percentiles, ReceivedStats};

use super::sinks::Sinks;

/// Access units or audio packets queued for a decoder thread before the oldest are dropped.
const DECODE_QUEUE: usize = 64;
/// Keyframe requests for one track are sent at most this often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// How often the assembler is polled for frames stuck behind lost packets.
const ASSEMBLER_TICK: Duration = Duration::from_millis(20);
/// Latency samples kept per track (a ring; older ones are dropped).
const MAX_LATENCY_SAMPLES: usize = 100_000;

/// Where a subscribed track comes from.
#[derive(Clone, Debug)]
pub(crate) struct TrackOrigin {
    pub participant_id: ParticipantId,
    pub identity: String,
    pub track_sid: TrackSid,
    pub kind: MediaKind,
    pub source: TrackSource,
    pub fps_hint: u32,
}

/// What a receiving track has seen; read by [`RemoteSubscription::stats`].
#[derive(Default)]
pub(crate) struct ReceiveCounters {
    frames_decoded: u64,
    frames_stamped_ok: u64,
    latency_ms: Vec<f64>,
    freeze: Option<FreezeDetector>,
    last_frame_at: Option<Instant>,
    keyframe_requests: u64,
    samples_decoded: u64,
    audio_abs_sum: f64,
    audio_recovered: u64,
    audio_concealed: u64,
    first_frame_ms: Option<f64>,
    width: u32,
    height: u32,
    assembler: AssemblerCounts,
    loss_wait: Duration,
    decoder_overflows: u64,
}

/// A subscribed track being received. Dropping it stops the reader and the decoder thread.
pub(crate) struct RemoteSubscription {
    pub origin: TrackOrigin,
    counters: Arc<Mutex<ReceiveCounters>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for RemoteSubscription {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl RemoteSubscription {
    /// Starts receiving `remote`. `started` is when the room began connecting (for the
    /// first-frame time).
    pub fn start(
        origin: TrackOrigin,
        remote: Arc<dyn TrackRemote>,
        sinks: Arc<Sinks>,
        started: Instant,
    ) -> Result<Self, super::RoomError> {
        let counters = Arc::new(Mutex::new(ReceiveCounters {
            freeze: Some(FreezeDetector::new(origin.fps_hint)),
            ..ReceiveCounters::default()
        }));
        let (keyframe_tx, keyframe_rx) = mpsc::unbounded_channel();
        let reader = match origin.kind {
            MediaKind::Audio => {
                let decode_tx = spawn_audio_decoder(&origin, Arc::clone(&counters), sinks)?;
                tokio::spawn(read_audio(remote, decode_tx))
            }
            _ => {
                let decode_tx = spawn_video_decoder(
                    &origin,
                    Arc::clone(&counters),
                    sinks,
                    keyframe_tx.clone(),
                    started,
                )?;
                tokio::spawn(read_video(
                    remote,
                    decode_tx,
                    keyframe_tx,
                    keyframe_rx,
                    Arc::clone(&counters),
                ))
            }
        };
        Ok(Self {
            origin,
            counters,
            reader,
        })
    }

    /// What this track has delivered so far.
    pub fn stats(&self) -> ReceivedStats {
        let c = self
            .counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let freeze = c.freeze.as_ref();
        ReceivedStats {
            participant_id: self.origin.participant_id.clone(),
            from: self.origin.identity.clone(),
            track_sid: self.origin.track_sid.clone(),
            kind: self.origin.kind,
            source: self.origin.source,
            frames_decoded: c.frames_decoded,
            frames_stamped_ok: c.frames_stamped_ok,
            latency_ms: Percentiles::of(&c.latency_ms),
            freezes: freeze.map(FreezeDetector::freezes).unwrap_or(0),
            freeze_ms: freeze
                .map(|f| f.frozen_for().as_secs_f64() * 1000.0)
                .unwrap_or(0.0),
            longest_freeze_ms: freeze
                .map(|f| f.longest().as_secs_f64() * 1000.0)
                .unwrap_or(0.0),
            keyframe_requests: c.keyframe_requests,
            samples_decoded: c.samples_decoded,
            audio_frames_recovered: c.audio_recovered,
            audio_frames_concealed: c.audio_concealed,
            audio_level: if c.samples_decoded == 0 {
                0.0
            } else {
                c.audio_abs_sum / c.samples_decoded as f64
            },
            first_frame_ms: c.first_frame_ms,
            layer: None,
            width: c.width,
            height: c.height,
            gaps_skipped: c.assembler.holes_skipped,
            stale_frames: c.assembler.stale_frames,
            decoder_overflows: c.decoder_overflows,
            loss_wait_ms: c.loss_wait.as_secs_f64() * 1000.0,
        }
    }
}

/// Why a decoder wants a keyframe.
enum KeyframeNeed {
    Wanted,
}

fn spawn_video_decoder(
    origin: &TrackOrigin,
    counters: Arc<Mutex<ReceiveCounters>>,
    sinks: Arc<Sinks>,
    keyframe_tx: mpsc::UnboundedSender<KeyframeNeed>,
    started: Instant,
) -> Result<std_mpsc::SyncSender<(Bytes, bool)>, super::RoomError> {
    let (tx, rx) = std_mpsc::sync_channel::<(Bytes, bool)>(DECODE_QUEUE);
    let mut decoder = H264Decoder::new().map_err(|e| super::RoomError::Media(e.to_string()))?;
    let origin = origin.clone();
    thread::Builder::new()
        .name(format!("aula-video-dec-{}", origin.track_sid))
        .spawn(move || {
            let mut need_keyframe = true;
            while let Ok((access_unit, after_loss)) = rx.recv() {
                if after_loss {
                    need_keyframe = true;
                }
                if need_keyframe && !H264Decoder::is_keyframe(&access_unit) {
                    let _ = keyframe_tx.send(KeyframeNeed::Wanted);
                    continue;
                }
                match decoder.decode(&access_unit) {
                    Ok(Some(frame)) => {
                        need_keyframe = false;
                        on_video_frame(&origin, &counters, &sinks, &frame, started);
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::debug!(track = %origin.track_sid, error = %err, "decode failed");
                        need_keyframe = true;
                        let _ = keyframe_tx.send(KeyframeNeed::Wanted);
                    }
                }
            }
        })
        .map_err(|e| super::RoomError::Internal(format!("cannot start decoder thread: {e}")))?;
    Ok(tx)
}

fn on_video_frame(
    origin: &TrackOrigin,
    counters: &Mutex<ReceiveCounters>,
    sinks: &Sinks,
    frame: &VideoFrame,
    started: Instant,
) {
    let now = Instant::now();
    let stamp = read_stamp(frame);
    {
        let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
        c.frames_decoded += 1;
        c.width = frame.width;
        c.height = frame.height;
        if c.first_frame_ms.is_none() {
            c.first_frame_ms = Some(now.duration_since(started).as_secs_f64() * 1000.0);
            tracing::debug!(track = %origin.track_sid, first_frame_ms = c.first_frame_ms, "first frame decoded");
        }
        if let Some(previous) = c.last_frame_at.replace(now) {
            if let Some(freeze) = c.freeze.as_mut() {
                freeze.on_gap(now.duration_since(previous));
            }
        }
        if let Some(stamp) = stamp {
            c.frames_stamped_ok += 1;
            if let Some(us) = micros_since_stamp(stamp.capture_time_us, unix_micros()) {
                if c.latency_ms.len() < MAX_LATENCY_SAMPLES {
                    c.latency_ms.push(us as f64 / 1000.0);
                }
            }
        }
    }
    sinks.video_frame(&origin.participant_id, &origin.track_sid, frame, stamp);
}

/// What the audio decoder thread is asked to do.
enum AudioInput {
    /// Decode a received packet.
    Packet(Bytes),
    /// A packet was lost and nothing can recover it: conceal 20 ms.
    Conceal,
    /// The packet before this one was lost: recover it from this one's in-band FEC data, then
    /// decode this one.
    RecoverThenDecode(Bytes),
}

fn spawn_audio_decoder(
    origin: &TrackOrigin,
    counters: Arc<Mutex<ReceiveCounters>>,
    sinks: Arc<Sinks>,
) -> Result<std_mpsc::SyncSender<AudioInput>, super::RoomError> {
    let (tx, rx) = std_mpsc::sync_channel::<AudioInput>(DECODE_QUEUE);
    let mut decoder = OpusDecoder::new().map_err(|e| super::RoomError::Media(e.to_string()))?;
    let origin = origin.clone();
    thread::Builder::new()
        .name(format!("aula-audio-dec-{}", origin.track_sid))
        .spawn(move || {
            let deliver = |frame: AudioFrame| {
                {
                    let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
                    c.samples_decoded +=
                        frame.samples.len() as u64 / u64::from(frame.channels.max(1));
                    c.audio_abs_sum += frame
                        .samples
                        .iter()
                        .map(|s| f64::from(s.unsigned_abs()))
                        .sum::<f64>()
                        / f64::from(frame.channels.max(1));
                }
                sinks.audio_frame(&origin.participant_id, &origin.track_sid, &frame);
            };
            let count = |recovered: bool| {
                let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
                if recovered {
                    c.audio_recovered += 1;
                } else {
                    c.audio_concealed += 1;
                }
            };
            while let Ok(input) = rx.recv() {
                let decoded = match input {
                    AudioInput::Packet(packet) => decoder.decode(&packet),
                    AudioInput::Conceal => {
                        count(false);
                        decoder.conceal()
                    }
                    AudioInput::RecoverThenDecode(packet) => {
                        match decoder.decode_fec(&packet) {
                            Ok(recovered) => {
                                count(true);
                                deliver(recovered);
                            }
                            Err(err) => tracing::debug!(error = %err, "audio FEC failed"),
                        }
                        decoder.decode(&packet)
                    }
                };
                match decoded {
                    Ok(frame) => deliver(frame),
                    Err(err) => tracing::debug!(error = %err, "audio decode failed"),
                }
            }
        })
        .map_err(|e| super::RoomError::Internal(format!("cannot start decoder thread: {e}")))?;
    Ok(tx)
}

/// Most consecutive lost audio frames concealed; a longer gap is silence.
const MAX_CONCEALED_FRAMES: u16 = 5;

async fn read_audio(remote: Arc<dyn TrackRemote>, decode_tx: std_mpsc::SyncSender<AudioInput>) {
    let mut last_sequence: Option<u16> = None;
    while let Some(event) = remote.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let seq = packet.header.sequence_number;
                let mut lost = 0;
                if let Some(last) = last_sequence {
                    let delta = seq.wrapping_sub(last);
                    if delta == 0 || delta > 0x8000 {
                        continue; // duplicate or late
                    }
                    lost = delta - 1;
                }
                last_sequence = Some(seq);
                // Conceal all but the last lost frame (up to a limit); the last one is in this
                // packet's in-band FEC data.
                for _ in 1..lost.min(MAX_CONCEALED_FRAMES) {
                    let _ = decode_tx.try_send(AudioInput::Conceal);
                }
                let input = if lost > 0 {
                    AudioInput::RecoverThenDecode(packet.payload)
                } else {
                    AudioInput::Packet(packet.payload)
                };
                if decode_tx.try_send(input).is_err() {
                    tracing::debug!("audio decoder behind; packet dropped");
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

async fn read_video(
    remote: Arc<dyn TrackRemote>,
    decode_tx: std_mpsc::SyncSender<(Bytes, bool)>,
    keyframe_tx: mpsc::UnboundedSender<KeyframeNeed>,
    mut keyframe_rx: mpsc::UnboundedReceiver<KeyframeNeed>,
    counters: Arc<Mutex<ReceiveCounters>>,
) {
    let mut assembler = FrameAssembler::default();
    let mut last_counts = AssemblerCounts::default();
    let mut tick = tokio::time::interval(ASSEMBLER_TICK);
    let mut last_request: Option<Instant> = None;
    // When the oldest keyframe request not yet answered was sent.
    let mut keyframe_asked: Option<Instant> = None;
    let media_ssrc = remote.ssrcs().await.first().copied().unwrap_or(0);
    loop {
        let frames = tokio::select! {
            event = remote.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => assembler.push(
                    MediaPacket {
                        sequence: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        marker: packet.header.marker,
                        payload: packet.payload,
                    },
                    Instant::now(),
                ),
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => continue,
            },
            _ = tick.tick() => assembler.poll(Instant::now()),
            Some(KeyframeNeed::Wanted) = keyframe_rx.recv() => {
                let now = Instant::now();
                if last_request.is_none_or(|t| now.duration_since(t) >= KEYFRAME_REQUEST_INTERVAL) {
                    last_request = Some(now);
                    counters.lock().unwrap_or_else(|p| p.into_inner()).keyframe_requests += 1;
                    tracing::debug!(media_ssrc, "keyframe requested");
                    keyframe_asked.get_or_insert(now);
                    request_keyframe(&remote, media_ssrc).await;
                }
                continue;
            }
        };
        if !frames.is_empty() || assembler.counts() != last_counts {
            last_counts = assembler.counts();
            let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
            c.assembler = last_counts;
            c.loss_wait = assembler.loss_wait();
        }
        for frame in frames {
            let access_unit = match depacketize_h264(&frame.payloads) {
                Some(au) => au,
                None => {
                    let _ = keyframe_tx.send(KeyframeNeed::Wanted);
                    continue;
                }
            };
            if let Some(asked) = keyframe_asked {
                if H264Decoder::is_keyframe(&access_unit) {
                    assembler.on_requested_keyframe(asked.elapsed());
                    keyframe_asked = None;
                }
            }
            if decode_tx.try_send((access_unit, frame.after_loss)).is_err() {
                // The decoder is behind: this frame is lost to it, so it must resync.
                counters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .decoder_overflows += 1;
                let _ = keyframe_tx.send(KeyframeNeed::Wanted);
            }
        }
    }
}

/// Time between the two copies of a keyframe request.
const DUPLICATE_REQUEST_GAP: Duration = Duration::from_millis(5);

/// Asks the sender of `remote` for a keyframe, twice a moment apart: on a lossy link a lost
/// request would cost a whole retry interval of frozen picture (the server folds the copies
/// into one request to the publisher).
async fn request_keyframe(remote: &Arc<dyn TrackRemote>, media_ssrc: u32) {
    for copy in 0..2 {
        if copy > 0 {
            tokio::time::sleep(DUPLICATE_REQUEST_GAP).await;
        }
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(err) = remote.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(error = %err, "keyframe request not sent");
        }
    }
}
