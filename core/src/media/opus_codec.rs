//! Opus encoding and decoding (libopus): 48 kHz mono, 20 ms frames, in-band FEC and DTX.

use bytes::Bytes;
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::{AudioFrame, MediaError, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

/// Lowest bitrate Opus accepts, in bits per second.
const MIN_BITRATE: u32 = 6_000;
/// Highest bitrate Opus accepts, in bits per second.
const MAX_BITRATE: u32 = 510_000;
/// Packet loss the encoder plans its FEC for, in percent.
const EXPECTED_LOSS_PERCENT: i32 = 10;
/// Output buffer for one encoded packet (the recommended maximum).
const MAX_PACKET: usize = 4000;
/// Longest packet duration Opus can carry: 120 ms at 48 kHz.
const MAX_DECODED_SAMPLES: usize = 5760;

/// An Opus encoder for 20 ms frames of 48 kHz mono speech: VoIP mode, in-band FEC tuned for
/// about 10 % packet loss, and DTX.
///
/// With DTX on, silence produces packets of one or two bytes, with a small comfort-noise
/// update about every 400 ms; callers may send or drop the tiny ones.
pub struct OpusEncoder {
    encoder: Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

fn enc_err(e: opus::Error) -> MediaError {
    MediaError::Encoder(e.to_string())
}

fn dec_err(e: opus::Error) -> MediaError {
    MediaError::Decoder(e.to_string())
}

impl OpusEncoder {
    /// An encoder with a target of `bitrate_bps` (6 kbps..=510 kbps).
    pub fn new(bitrate_bps: u32) -> Result<Self, MediaError> {
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&bitrate_bps) {
            return Err(MediaError::InvalidConfig(format!(
                "Opus bitrate {bitrate_bps} must be {MIN_BITRATE}..={MAX_BITRATE} bps"
            )));
        }
        let mut encoder =
            Encoder::new(AUDIO_SAMPLE_RATE, Channels::Mono, Application::Voip).map_err(enc_err)?;
        // In range, checked above.
        let bits = i32::try_from(bitrate_bps)
            .map_err(|_| MediaError::InvalidConfig("Opus bitrate out of range".into()))?;
        encoder.set_bitrate(Bitrate::Bits(bits)).map_err(enc_err)?;
        encoder.set_inband_fec(true).map_err(enc_err)?;
        encoder
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(enc_err)?;
        encoder.set_dtx(true).map_err(enc_err)?;
        Ok(Self { encoder })
    }

    /// Tunes the in-band FEC for a path losing `percent` of its packets (0..=100): Opus spends
    /// more of the bitrate on the redundant copy of the previous frame as loss grows. It never
    /// goes below the 10 % it starts with, so a first loss burst is covered too.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), MediaError> {
        let percent = i32::from(percent.min(100)).max(EXPECTED_LOSS_PERCENT);
        self.encoder.set_packet_loss_perc(percent).map_err(enc_err)
    }

    /// Encodes one 20 ms frame: exactly [`AUDIO_FRAME_SAMPLES`] mono samples at 48 kHz.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Bytes, MediaError> {
        if frame.sample_rate != AUDIO_SAMPLE_RATE || frame.channels != 1 {
            return Err(MediaError::InvalidFrame(format!(
                "Opus encoder takes 48 kHz mono, got {} Hz with {} channels",
                frame.sample_rate, frame.channels
            )));
        }
        if frame.samples.len() != AUDIO_FRAME_SAMPLES {
            return Err(MediaError::InvalidFrame(format!(
                "Opus encoder takes {AUDIO_FRAME_SAMPLES} samples, got {}",
                frame.samples.len()
            )));
        }
        let mut out = vec![0u8; MAX_PACKET];
        let len = self
            .encoder
            .encode(&frame.samples, &mut out)
            .map_err(enc_err)?;
        out.truncate(len);
        Ok(Bytes::from(out))
    }
}

/// An Opus decoder producing 48 kHz mono frames, with packet loss concealment.
pub struct OpusDecoder {
    decoder: Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A 48 kHz mono decoder.
    pub fn new() -> Result<Self, MediaError> {
        let decoder = Decoder::new(AUDIO_SAMPLE_RATE, Channels::Mono).map_err(dec_err)?;
        Ok(Self { decoder })
    }

    /// Decodes one packet into as many samples as it carries (960 for Aula's 20 ms frames;
    /// up to 120 ms for other senders). An empty or corrupt packet is an error.
    pub fn decode(&mut self, packet: &[u8]) -> Result<AudioFrame, MediaError> {
        if packet.is_empty() {
            return Err(MediaError::Decoder(
                "empty Opus packet (use conceal for a lost one)".into(),
            ));
        }
        self.run(packet, false, MAX_DECODED_SAMPLES)
    }

    /// Recovers the frame lost just before `next_packet` from the in-band FEC data
    /// `next_packet` carries (20 ms); falls back to concealment if it carries none.
    /// Then decode `next_packet` itself with [`decode`](Self::decode).
    pub fn decode_fec(&mut self, next_packet: &[u8]) -> Result<AudioFrame, MediaError> {
        if next_packet.is_empty() {
            return self.conceal();
        }
        self.run(next_packet, true, AUDIO_FRAME_SAMPLES)
    }

    /// Packet loss concealment: a plausible 20 ms ([`AUDIO_FRAME_SAMPLES`] samples) frame in
    /// place of a lost packet.
    pub fn conceal(&mut self) -> Result<AudioFrame, MediaError> {
        self.run(&[], false, AUDIO_FRAME_SAMPLES)
    }

    fn run(&mut self, packet: &[u8], fec: bool, capacity: usize) -> Result<AudioFrame, MediaError> {
        let mut samples = vec![0i16; capacity];
        let n = self
            .decoder
            .decode(packet, &mut samples, fec)
            .map_err(dec_err)?;
        samples.truncate(n);
        Ok(AudioFrame {
            samples,
            sample_rate: AUDIO_SAMPLE_RATE,
            channels: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::SyntheticAudioSource;

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    }

    #[test]
    fn tone_round_trips_with_energy() {
        let mut source = SyntheticAudioSource::new(440.0);
        let mut encoder = OpusEncoder::new(32_000).expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut decoded = Vec::new();
        let mut bytes = 0;
        for _ in 0..50 {
            let packet = encoder.encode(&source.next_frame()).expect("encode");
            assert!(packet.len() > 2, "a tone is not DTX silence");
            bytes += packet.len();
            let frame = decoder.decode(&packet).expect("decode");
            assert_eq!(frame.samples.len(), AUDIO_FRAME_SAMPLES);
            assert_eq!((frame.sample_rate, frame.channels), (48_000, 1));
            decoded.extend(frame.samples);
        }
        // The source's RMS is 8192 / sqrt(2) ≈ 5793; skip the codec's start-up.
        let level = rms(&decoded[AUDIO_FRAME_SAMPLES * 5..]);
        assert!(level > 3000.0 && level < 8000.0, "rms {level}");
        // About 32 kbps: 50 frames are one second.
        assert!(bytes * 8 < 64_000, "{bytes} bytes per second");

        let concealed = decoder.conceal().expect("conceal");
        assert_eq!(concealed.samples.len(), AUDIO_FRAME_SAMPLES);
        assert!(
            rms(&concealed.samples) > 100.0,
            "concealment continues the tone"
        );
        let packet = encoder.encode(&source.next_frame()).expect("encode");
        let recovered = decoder.decode_fec(&packet).expect("fec");
        assert_eq!(recovered.samples.len(), AUDIO_FRAME_SAMPLES);
        assert_eq!(
            decoder.decode(&packet).expect("decode").samples.len(),
            AUDIO_FRAME_SAMPLES
        );
    }

    #[test]
    fn silence_is_cheap_with_dtx() {
        let mut encoder = OpusEncoder::new(32_000).expect("encoder");
        let silence = AudioFrame {
            samples: vec![0; AUDIO_FRAME_SAMPLES],
            sample_rate: AUDIO_SAMPLE_RATE,
            channels: 1,
        };
        let sizes: Vec<usize> = (0..50)
            .map(|_| encoder.encode(&silence).expect("encode").len())
            .collect();
        let tiny = sizes[10..].iter().filter(|&&n| n <= 2).count();
        assert!(tiny >= 35, "{sizes:?}");
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(OpusEncoder::new(0).is_err());
        assert!(OpusEncoder::new(1_000_000).is_err());
        let mut encoder = OpusEncoder::new(24_000).expect("encoder");
        let mut frame = SyntheticAudioSource::new(300.0).next_frame();
        frame.samples.truncate(480);
        assert!(encoder.encode(&frame).is_err());
        let stereo = AudioFrame {
            samples: vec![0; AUDIO_FRAME_SAMPLES],
            sample_rate: AUDIO_SAMPLE_RATE,
            channels: 2,
        };
        assert!(encoder.encode(&stereo).is_err());

        let mut decoder = OpusDecoder::new().expect("decoder");
        assert!(decoder.decode(&[]).is_err());
        let mut state: u32 = 0xC0FF_EE11;
        for len in [1usize, 2, 3, 10, 100, 1275, 2000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            if let Ok(frame) = decoder.decode(&data) {
                assert!(frame.samples.len() <= MAX_DECODED_SAMPLES);
            }
        }
        // Still decodes real packets afterwards.
        let packet = encoder
            .encode(&SyntheticAudioSource::new(300.0).next_frame())
            .expect("encode");
        assert_eq!(
            decoder.decode(&packet).expect("decode").samples.len(),
            AUDIO_FRAME_SAMPLES
        );
    }
}
