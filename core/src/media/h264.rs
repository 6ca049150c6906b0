//! H.264 encoding and decoding through openh264, in Annex-B byte streams.

use bytes::Bytes;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile, QpRange,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use openh264_sys2::{
    SBitrateInfo, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_ALL,
};

use super::frame::MAX_DIMENSION;
use super::{MediaError, VideoFrame};

/// Largest access unit the decoder accepts, in bytes.
const MAX_ACCESS_UNIT: usize = 16 * 1024 * 1024;
/// Lowest accepted target bitrate, in bits per second.
const MIN_BITRATE: u32 = 10_000;
/// Highest accepted target bitrate, in bits per second.
const MAX_BITRATE: u32 = 100_000_000;
/// Highest accepted frame rate.
const MAX_FPS: u32 = 240;
/// Largest picture openh264 encodes (level 5.2): longer side.
const MAX_ENCODE_LONG_SIDE: u32 = 3840;
/// Largest picture openh264 encodes (level 5.2): shorter side.
const MAX_ENCODE_SHORT_SIDE: u32 = 2160;

/// Settings of an [`H264Encoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H264EncoderConfig {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Frame rate the encoder is fed at, used by rate control.
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
}

impl H264EncoderConfig {
    fn validate(&self) -> Result<(), MediaError> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || w & 1 != 0 || h & 1 != 0 {
            return Err(MediaError::InvalidConfig(format!(
                "H.264 size {w}x{h} must be non-zero and even"
            )));
        }
        if w.max(h) > MAX_ENCODE_LONG_SIDE || w.min(h) > MAX_ENCODE_SHORT_SIDE {
            return Err(MediaError::InvalidConfig(format!(
                "H.264 size {w}x{h} exceeds {MAX_ENCODE_LONG_SIDE}x{MAX_ENCODE_SHORT_SIDE}"
            )));
        }
        if self.fps == 0 || self.fps > MAX_FPS {
            return Err(MediaError::InvalidConfig(format!(
                "H.264 frame rate {} must be 1..={MAX_FPS}",
                self.fps
            )));
        }
        check_bitrate(self.bitrate_bps)
    }
}

fn check_bitrate(bps: u32) -> Result<(), MediaError> {
    if (MIN_BITRATE..=MAX_BITRATE).contains(&bps) {
        Ok(())
    } else {
        Err(MediaError::InvalidConfig(format!(
            "H.264 bitrate {bps} must be {MIN_BITRATE}..={MAX_BITRATE} bps"
        )))
    }
}

/// What a video track shows, which tunes the encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoContent {
    /// A camera (or any natural, moving picture): openh264's camera mode, full quantizer range.
    #[default]
    Camera,
    /// A shared screen: openh264's screen-content mode, and a quantizer ceiling
    /// ([`SCREEN_MAX_QP`]) so text stays legible; when the bitrate cannot carry that, rate
    /// control drops frames instead of blurring them.
    Screen,
}

impl VideoContent {
    /// The content a track of `source` carries.
    pub fn of_source(source: aula_protocol::TrackSource) -> Self {
        if source == aula_protocol::TrackSource::ScreenShare {
            VideoContent::Screen
        } else {
            VideoContent::Camera
        }
    }
}

/// The coarsest quantizer a screen share is encoded with (openh264's range is 0..=51).
pub const SCREEN_MAX_QP: u8 = 36;

/// One encoded picture as an Annex-B byte stream (start codes included; SPS and PPS precede
/// every keyframe).
#[derive(Clone, Debug)]
pub struct EncodedVideoFrame {
    /// Annex-B NAL units of the picture.
    pub data: Bytes,
    /// Whether the picture is an IDR (decodable on its own).
    pub keyframe: bool,
}

/// An H.264 encoder for real-time use: baseline profile, bitrate rate control with frame
/// skipping, one slice per picture, one thread, and no keyframes unless asked for (no periodic
/// ones, no scene-change detection: request them with `force_keyframe`).
pub struct H264Encoder {
    config: H264EncoderConfig,
    content: VideoContent,
    encoder: Encoder,
    /// A bitrate set by [`H264Encoder::set_bitrate`] and not yet applied.
    pending_bitrate: Option<u32>,
    /// Whether the encoder has been initialised by a first frame (openh264 takes runtime
    /// options only after that).
    started: bool,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .field("content", &self.content)
            .field("pending_bitrate", &self.pending_bitrate)
            .finish_non_exhaustive()
    }
}

fn openh264_encoder(
    config: &H264EncoderConfig,
    content: VideoContent,
) -> Result<Encoder, MediaError> {
    // Screen content: openh264 has no adaptive quantization or background detection for it,
    // and wants its scene-change detection (a new slide may then start with a keyframe).
    let screen = content == VideoContent::Screen;
    let (usage, qp) = if screen {
        (
            UsageType::ScreenContentRealTime,
            QpRange::new(0, SCREEN_MAX_QP),
        )
    } else {
        (UsageType::CameraVideoRealTime, QpRange::default())
    };
    let settings = EncoderConfig::new()
        .bitrate(BitRate::from_bps(config.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(config.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(true)
        .usage_type(usage)
        .qp(qp)
        .profile(Profile::Baseline)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .scene_change_detect(screen)
        .adaptive_quantization(!screen)
        .background_detection(!screen)
        .num_threads(1);
    Encoder::with_api_config(OpenH264API::from_source(), settings)
        .map_err(|e| MediaError::Encoder(format!("cannot create openh264 encoder: {e}")))
}

/// Retargets a running encoder's rate control to `bps`; returns whether openh264 took it.
#[allow(unsafe_code)]
fn retarget_bitrate(encoder: &mut Encoder, bps: u32) -> bool {
    let Ok(bitrate) = std::os::raw::c_int::try_from(bps) else {
        return false;
    };
    let mut max = SBitrateInfo {
        iLayer: SPATIAL_LAYER_ALL,
        iBitrate: bitrate,
    };
    let mut target = max;
    // SAFETY: the encoder is initialised (it has encoded a frame); ENCODER_OPTION_MAX_BITRATE
    // and ENCODER_OPTION_BITRATE each read one SBitrateInfo through the pointer, which lives
    // for the call. These are openh264's documented runtime rate-control options and change
    // nothing the Rust wrapper relies on. The ceiling goes first so a raise is not clamped.
    unsafe {
        let api = encoder.raw_api();
        api.set_option(ENCODER_OPTION_MAX_BITRATE, (&raw mut max).cast()) == 0
            && api.set_option(ENCODER_OPTION_BITRATE, (&raw mut target).cast()) == 0
    }
}

/// A borrowed, validated [`VideoFrame`] as openh264 input.
struct FrameSource<'a>(&'a VideoFrame);

impl YUVSource for FrameSource<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

impl H264Encoder {
    /// An encoder for frames of exactly `config.width` x `config.height`.
    ///
    /// Sizes must be even and at most 3840x2160 (either orientation), `fps` 1..=240 and the
    /// bitrate 10 kbps..=100 Mbps.
    pub fn new(config: H264EncoderConfig) -> Result<Self, MediaError> {
        Self::with_content(config, VideoContent::Camera)
    }

    /// An encoder tuned for `content` (see [`VideoContent`]); otherwise as [`Self::new`].
    pub fn with_content(
        config: H264EncoderConfig,
        content: VideoContent,
    ) -> Result<Self, MediaError> {
        config.validate()?;
        Ok(Self {
            encoder: openh264_encoder(&config, content)?,
            config,
            content,
            pending_bitrate: None,
            started: false,
        })
    }

    /// What the encoder is tuned for.
    pub fn content(&self) -> VideoContent {
        self.content
    }

    /// The current settings (including the latest bitrate set, applied or pending).
    pub fn config(&self) -> &H264EncoderConfig {
        &self.config
    }

    /// Changes the target bitrate from the next encoded frame on, without a keyframe (the
    /// running encoder's rate control is retargeted). Out-of-range values are clamped to
    /// 10 kbps..=100 Mbps; calls between two frames coalesce, and setting the current bitrate
    /// does nothing.
    pub fn set_bitrate(&mut self, bps: u32) {
        let bps = bps.clamp(MIN_BITRATE, MAX_BITRATE);
        if bps == self.config.bitrate_bps {
            return;
        }
        self.config.bitrate_bps = bps;
        self.pending_bitrate = Some(bps);
    }

    /// Encodes one frame; `force_keyframe` makes it an IDR picture.
    ///
    /// Returns `Ok(None)` when rate control skipped the frame. The frame must be valid and of
    /// the configured size.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Option<EncodedVideoFrame>, MediaError> {
        frame.validate()?;
        if (frame.width, frame.height) != (self.config.width, self.config.height) {
            return Err(MediaError::InvalidFrame(format!(
                "frame is {}x{}, encoder is configured for {}x{}",
                frame.width, frame.height, self.config.width, self.config.height
            )));
        }
        if let Some(bps) = self.pending_bitrate.take() {
            if !(self.started && retarget_bitrate(&mut self.encoder, bps)) {
                // Not running yet (the first frame is a keyframe anyway), or openh264 refused
                // the option: start over at the new rate.
                self.encoder = openh264_encoder(&self.config, self.content)?;
                self.started = false;
                tracing::debug!(
                    bitrate_bps = bps,
                    "H.264 encoder re-created for a new bitrate"
                );
            }
        }
        self.started = true;
        if force_keyframe {
            self.encoder.force_intra_frame();
        }
        let timestamp = Timestamp::from_millis(frame.timestamp_us / 1000);
        let stream = self
            .encoder
            .encode_at(&FrameSource(frame), timestamp)
            .map_err(|e| MediaError::Encoder(e.to_string()))?;
        if matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        let keyframe = H264Decoder::is_keyframe(&data);
        Ok(Some(EncodedVideoFrame {
            data: Bytes::from(data),
            keyframe,
        }))
    }
}

/// An H.264 decoder producing tightly packed I420 frames.
pub struct H264Decoder {
    decoder: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A new decoder. It needs a keyframe (with SPS and PPS) before it can output pictures.
    pub fn new() -> Result<Self, MediaError> {
        let decoder = Decoder::new()
            .map_err(|e| MediaError::Decoder(format!("cannot create openh264 decoder: {e}")))?;
        Ok(Self { decoder })
    }

    /// Decodes one access unit (Annex-B) and returns the picture, if one is ready.
    ///
    /// Returns `Ok(None)` when the data produced no picture (e.g. only parameter sets), and
    /// an error for empty, oversized or corrupt input, or for a picture with odd dimensions.
    /// After an error the decoder stays usable; feed it a keyframe to resynchronise.
    /// The returned frame has `timestamp_us` 0: timing travels outside the bitstream.
    pub fn decode(&mut self, annex_b: &[u8]) -> Result<Option<VideoFrame>, MediaError> {
        if annex_b.is_empty() {
            return Err(MediaError::Decoder("empty access unit".into()));
        }
        if annex_b.len() > MAX_ACCESS_UNIT {
            return Err(MediaError::Decoder(format!(
                "access unit of {} bytes exceeds {MAX_ACCESS_UNIT}",
                annex_b.len()
            )));
        }
        let Some(yuv) = self
            .decoder
            .decode(annex_b)
            .map_err(|e| MediaError::Decoder(e.to_string()))?
        else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        if w == 0 || h == 0 || w & 1 != 0 || h & 1 != 0 {
            return Err(MediaError::Decoder(format!(
                "decoded picture {w}x{h} is not a non-empty even size"
            )));
        }
        if w > MAX_DIMENSION as usize || h > MAX_DIMENSION as usize {
            return Err(MediaError::Decoder(format!(
                "decoded picture {w}x{h} exceeds {MAX_DIMENSION}x{MAX_DIMENSION}"
            )));
        }
        let y = copy_plane(yuv.y(), sy, w, h)?;
        let u = copy_plane(yuv.u(), su, w / 2, h / 2)?;
        let v = copy_plane(yuv.v(), sv, w / 2, h / 2)?;
        Ok(Some(VideoFrame {
            width: w as u32,
            height: h as u32,
            y,
            u,
            v,
            timestamp_us: 0,
        }))
    }

    /// Whether an Annex-B access unit starts a decodable sequence: it holds an IDR slice
    /// (NAL type 5) or a sequence parameter set (NAL type 7).
    pub fn is_keyframe(annex_b: &[u8]) -> bool {
        nal_types(annex_b).any(|t| t == 5 || t == 7)
    }
}

/// Copies `rows` rows of `width` bytes out of a plane with `stride`.
fn copy_plane(src: &[u8], stride: usize, width: usize, rows: usize) -> Result<Vec<u8>, MediaError> {
    if stride < width {
        return Err(MediaError::Decoder(format!(
            "decoded plane stride {stride} below width {width}"
        )));
    }
    let mut out = Vec::with_capacity(width * rows);
    for row in 0..rows {
        let line = src
            .get(row * stride..row * stride + width)
            .ok_or_else(|| MediaError::Decoder("decoded plane shorter than its size".into()))?;
        out.extend_from_slice(line);
    }
    Ok(out)
}

/// The `nal_unit_type` of every NAL unit in an Annex-B stream (after each 00 00 01 start code).
fn nal_types(stream: &[u8]) -> impl Iterator<Item = u8> + '_ {
    stream
        .windows(4)
        .filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1)
        .map(|w| w[3] & 0x1F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{read_stamp, FrameStamp, SyntheticVideoSource};

    /// Encodes `frames` synthetic frames and checks every decoded one carries its exact stamp.
    fn round_trip(width: u32, height: u32, bitrate_bps: u32, frames: u32) {
        let fps = 30;
        let mut source = SyntheticVideoSource::new(width, height, fps).expect("source");
        let mut encoder = H264Encoder::new(H264EncoderConfig {
            width,
            height,
            fps,
            bitrate_bps,
        })
        .expect("encoder");
        let mut decoder = H264Decoder::new().expect("decoder");
        let mut decoded = 0;
        let mut bytes = 0;
        let mut unforced_keyframes = 0;
        for seq in 0..frames {
            let stamp = FrameStamp {
                sequence: 1000 + seq,
                // Below 2^48, so the stamp carries it whole.
                capture_time_us: 200_009_288_000_000 + u64::from(seq) * 33_333,
            };
            let frame = source.frame(stamp);
            let Some(encoded) = encoder.encode(&frame, seq == 0).expect("encode") else {
                assert_ne!(seq, 0, "a forced keyframe is never skipped");
                continue;
            };
            if seq == 0 {
                assert!(encoded.keyframe, "forced keyframe");
            } else if encoded.keyframe {
                // Scene-change detection may add one; it must stay rare.
                unforced_keyframes += 1;
            }
            bytes += encoded.data.len();
            let picture = decoder
                .decode(&encoded.data)
                .expect("decode")
                .expect("one picture per access unit");
            assert_eq!((picture.width, picture.height), (width, height));
            picture.validate().expect("packed I420");
            assert_eq!(
                read_stamp(&picture),
                Some(stamp),
                "{width}x{height}@{bitrate_bps}: frame {seq}"
            );
            decoded += 1;
        }
        assert!(
            unforced_keyframes <= 2,
            "{unforced_keyframes} unrequested keyframes"
        );
        assert!(
            decoded * 10 >= frames * 9,
            "only {decoded} of {frames} frames came through"
        );
        // Rate control keeps the stream near its target (generously: within 2x).
        let bps = bytes as u64 * 8 * u64::from(fps) / u64::from(decoded);
        assert!(
            bps < u64::from(bitrate_bps) * 2,
            "{width}x{height}: {bps} bps for a {bitrate_bps} target"
        );
    }

    #[test]
    fn stamps_survive_640x360_at_800_kbps() {
        round_trip(640, 360, 800_000, 30);
    }

    #[test]
    fn stamps_survive_320x180_at_250_kbps() {
        round_trip(320, 180, 250_000, 30);
    }

    #[test]
    fn stamps_survive_1280x720_at_1500_kbps() {
        round_trip(1280, 720, 1_500_000, 30);
    }

    #[test]
    fn stamps_survive_160x90_at_100_kbps() {
        round_trip(160, 90, 100_000, 30);
    }

    #[test]
    fn forced_keyframes_and_bitrate_changes_produce_decodable_idrs() {
        let (w, h) = (320, 180);
        let mut source = SyntheticVideoSource::new(w, h, 30).expect("source");
        let mut encoder = H264Encoder::new(H264EncoderConfig {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: 300_000,
        })
        .expect("encoder");
        let mut decoder = H264Decoder::new().expect("decoder");
        let mut kinds = Vec::new();
        for seq in 0..12u32 {
            if seq == 8 {
                encoder.set_bitrate(150_000);
                assert_eq!(encoder.config().bitrate_bps, 150_000);
            }
            let stamp = FrameStamp {
                sequence: seq,
                capture_time_us: u64::from(seq),
            };
            let frame = source.frame(stamp);
            let encoded = encoder
                .encode(&frame, seq == 0 || seq == 4)
                .expect("encode");
            let Some(encoded) = encoded else { continue };
            kinds.push((seq, encoded.keyframe));
            if encoded.keyframe {
                // A keyframe decodes on a fresh decoder.
                let mut fresh = H264Decoder::new().expect("decoder");
                let pic = fresh
                    .decode(&encoded.data)
                    .expect("decode")
                    .expect("picture");
                assert_eq!(read_stamp(&pic), Some(stamp));
            }
            decoder.decode(&encoded.data).expect("decode");
        }
        for seq in [0, 4] {
            assert!(
                kinds.contains(&(seq, true)),
                "frame {seq} is a keyframe: {kinds:?}"
            );
        }
        assert!(
            kinds.contains(&(8, false)),
            "a bitrate change costs no keyframe: {kinds:?}"
        );
    }

    /// Encoded bytes of frames `from..to` of a moving pattern, with the bitrate switched to
    /// `then_bps` at frame `switch_at`.
    fn bytes_after_switch(start_bps: u32, then_bps: u32, switch_at: u32, to: u32) -> usize {
        let (w, h) = (640, 360);
        let mut source = SyntheticVideoSource::new(w, h, 30).expect("source");
        let mut encoder = H264Encoder::new(H264EncoderConfig {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: start_bps,
        })
        .expect("encoder");
        let mut after = 0;
        for seq in 0..to {
            if seq == switch_at {
                encoder.set_bitrate(then_bps);
            }
            let stamp = FrameStamp {
                sequence: seq,
                capture_time_us: u64::from(seq) * 33_333,
            };
            let mut frame = source.frame(stamp);
            frame.timestamp_us = u64::from(seq) * 33_333;
            if let Some(encoded) = encoder.encode(&frame, seq == 0).expect("encode") {
                // Skip the first second after the switch: rate control settles.
                if seq >= switch_at + 30 {
                    after += encoded.data.len();
                }
            }
        }
        after
    }

    #[test]
    fn a_running_encoder_follows_a_new_bitrate() {
        let kept = bytes_after_switch(1_200_000, 1_200_000, 30, 120);
        let lowered = bytes_after_switch(1_200_000, 200_000, 30, 120);
        assert!(
            (lowered as f64) < kept as f64 * 0.5,
            "lowering the target to a sixth must cut the output: {lowered} vs {kept} bytes"
        );
        let raised = bytes_after_switch(200_000, 1_200_000, 30, 120);
        let low = bytes_after_switch(200_000, 200_000, 30, 120);
        assert!(
            raised as f64 > low as f64 * 1.5,
            "raising the target must raise the output: {raised} vs {low} bytes"
        );
    }

    /// A slide of thin black-on-white strokes, with a small block moving over it.
    fn slide(width: u32, height: u32, t: u32) -> VideoFrame {
        let mut frame = VideoFrame::new_black(width, height);
        let w = width as usize;
        for (i, p) in frame.y.iter_mut().enumerate() {
            let (x, y) = (i % w, i / w);
            // Rows of "text": 1-pixel vertical strokes, 12-pixel lines with gaps between.
            let in_line = y % 16 < 12;
            let stroke = x % 2 == 0 && (x / 7 + y / 16) % 3 != 0;
            *p = if in_line && stroke { 16 } else { 235 };
        }
        let x0 = (t as usize * 24) % (w - 32);
        for y in 40..72 {
            frame.y[y * w + x0..y * w + x0 + 32].fill(128);
        }
        frame
    }

    /// Mean luma step from a stroke to the background beside it, over one line of "text".
    fn stroke_contrast(frame: &VideoFrame) -> f64 {
        let w = frame.width as usize;
        let mut sum = 0.0;
        let mut n = 0.0;
        // Rows 193..=203 are inside a line (y % 16 < 12).
        for y in 193..204 {
            for x in (400..600).step_by(2) {
                if (x / 7 + y / 16) % 3 == 0 {
                    continue;
                }
                sum += f64::from(frame.y[y * w + x + 1]) - f64::from(frame.y[y * w + x]);
                n += 1.0;
            }
        }
        sum / n
    }

    #[test]
    fn screen_content_keeps_thin_strokes_sharp_at_a_low_bitrate() {
        let config = H264EncoderConfig {
            width: 1280,
            height: 720,
            fps: 5,
            bitrate_bps: 600_000,
        };
        let mut encoder = H264Encoder::with_content(config, VideoContent::Screen).expect("encoder");
        assert_eq!(encoder.content(), VideoContent::Screen);
        assert_eq!(
            stroke_contrast(&slide(1280, 720, 0)),
            219.0,
            "the measure itself"
        );
        let mut decoder = H264Decoder::new().expect("decoder");
        let mut decoded = 0;
        for t in 0..10 {
            let Some(encoded) = encoder
                .encode(&slide(1280, 720, t), t == 0)
                .expect("encode")
            else {
                continue;
            };
            let picture = decoder
                .decode(&encoded.data)
                .expect("decode")
                .expect("picture");
            let contrast = stroke_contrast(&picture);
            // 219 is perfect; a blurred stroke drops far below.
            assert!(contrast > 180.0, "frame {t}: stroke contrast {contrast}");
            decoded += 1;
        }
        assert!(decoded >= 3, "only {decoded} frames came through");
        // A bitrate change keeps the tuning (the encoder may be re-created for it).
        encoder.set_bitrate(100_000);
        assert!(encoder.encode(&slide(1280, 720, 11), false).is_ok());
        assert_eq!(encoder.content(), VideoContent::Screen);
        assert_eq!(
            VideoContent::of_source(aula_protocol::TrackSource::ScreenShare),
            VideoContent::Screen
        );
        assert_eq!(
            VideoContent::of_source(aula_protocol::TrackSource::Camera),
            VideoContent::Camera
        );
    }

    #[test]
    fn encoder_rejects_bad_config_and_frames() {
        let good = H264EncoderConfig {
            width: 320,
            height: 180,
            fps: 30,
            bitrate_bps: 300_000,
        };
        for bad in [
            H264EncoderConfig { width: 321, ..good },
            H264EncoderConfig { height: 0, ..good },
            H264EncoderConfig {
                width: 4096,
                ..good
            },
            H264EncoderConfig { fps: 0, ..good },
            H264EncoderConfig {
                bitrate_bps: 0,
                ..good
            },
        ] {
            assert!(H264Encoder::new(bad).is_err(), "{bad:?}");
        }
        let mut encoder = H264Encoder::new(good).expect("encoder");
        assert!(encoder
            .encode(&VideoFrame::new_black(640, 360), false)
            .is_err());
        let mut broken = VideoFrame::new_black(320, 180);
        broken.u.clear();
        assert!(encoder.encode(&broken, false).is_err());
    }

    #[test]
    fn decoder_survives_garbage() {
        let mut decoder = H264Decoder::new().expect("decoder");
        assert!(decoder.decode(&[]).is_err());
        let mut state: u32 = 0x1234_5678;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for len in [1usize, 3, 4, 5, 17, 100, 1000, 5000] {
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Random bytes, then the same behind a start code with assorted NAL types.
            let _ = decoder.decode(&data);
            for nal in [1u8, 5, 7, 8] {
                data.splice(0..0, [0, 0, 0, 1, 0x60 | nal]);
                let _ = decoder.decode(&data);
            }
        }
        // Still works afterwards.
        let mut source = SyntheticVideoSource::new(320, 180, 30).expect("source");
        let mut encoder = H264Encoder::new(H264EncoderConfig {
            width: 320,
            height: 180,
            fps: 30,
            bitrate_bps: 300_000,
        })
        .expect("encoder");
        let stamp = FrameStamp {
            sequence: 9,
            capture_time_us: 99,
        };
        let encoded = encoder
            .encode(&source.frame(stamp), true)
            .expect("encode")
            .expect("keyframe");
        let mut fresh_ok = false;
        for _ in 0..2 {
            if let Ok(Some(pic)) = decoder.decode(&encoded.data) {
                fresh_ok = read_stamp(&pic) == Some(stamp);
                break;
            }
        }
        assert!(fresh_ok, "decoder recovers on a keyframe after garbage");
    }

    #[test]
    fn codecs_can_move_to_their_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<H264Encoder>();
        assert_send::<H264Decoder>();
        assert_send::<crate::media::OpusEncoder>();
        assert_send::<crate::media::OpusDecoder>();
    }

    #[test]
    fn keyframe_detection_scans_nal_types() {
        assert!(H264Decoder::is_keyframe(&[0, 0, 0, 1, 0x67, 1, 2]));
        assert!(H264Decoder::is_keyframe(&[0, 0, 1, 0x41, 0, 0, 1, 0x65, 9]));
        assert!(!H264Decoder::is_keyframe(&[0, 0, 0, 1, 0x41, 0x9a, 0, 0]));
        assert!(!H264Decoder::is_keyframe(&[]));
        assert!(!H264Decoder::is_keyframe(&[0, 0, 1]));
        assert!(!H264Decoder::is_keyframe(&[0x65, 0x67]));
    }
}
