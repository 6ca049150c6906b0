//! Sample-rate conversion between an audio device's rate and Aula's 48 kHz.
//!
//! A streaming windowed-sinc interpolator (32 taps, Kaiser window, cut off just below the
//! lower of the two Nyquist frequencies so nothing aliases), with the filter tabulated at 128
//! fractional positions and interpolated between them. Any pair of rates works; equal rates
//! pass samples through untouched.

/// Taps on each side of the interpolated point.
const HALF_TAPS: usize = 16;
/// Fractional positions the filter is tabulated at.
const PHASES: usize = 128;
/// Kaiser window shape (about 80 dB of stop-band attenuation).
const KAISER_BETA: f64 = 8.0;
/// The pass band as a fraction of the lower Nyquist frequency.
const CUTOFF: f64 = 0.92;

/// Converts a mono stream from one sample rate to another, chunk by chunk.
#[derive(Debug)]
pub(crate) struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// `(PHASES + 1) * 2 * HALF_TAPS` filter taps.
    table: Vec<f32>,
    /// Input not yet fully used, with `HALF_TAPS - 1` samples of history before `position`.
    history: Vec<f32>,
    /// Where the next output sample falls, in input samples from `history[0]`.
    position: f64,
    passthrough: bool,
}

impl Resampler {
    /// A converter from `from_hz` to `to_hz` (both non-zero).
    pub fn new(from_hz: u32, to_hz: u32) -> Self {
        let (from, to) = (f64::from(from_hz.max(1)), f64::from(to_hz.max(1)));
        let passthrough = from_hz == to_hz;
        let cutoff = CUTOFF * (to / from).min(1.0);
        let taps = 2 * HALF_TAPS;
        let mut table = vec![0f32; (PHASES + 1) * taps];
        if !passthrough {
            for phase in 0..=PHASES {
                let frac = phase as f64 / PHASES as f64;
                let row = &mut table[phase * taps..][..taps];
                let mut sum = 0.0;
                let mut values = [0f64; 2 * HALF_TAPS];
                for (k, value) in values.iter_mut().enumerate() {
                    // Distance from the output point to input sample `i0 - HALF_TAPS + 1 + k`.
                    let t = frac + (HALF_TAPS - 1) as f64 - k as f64;
                    *value = cutoff * sinc(cutoff * t) * kaiser(t / HALF_TAPS as f64);
                    sum += *value;
                }
                for (out, value) in row.iter_mut().zip(values) {
                    // Unity gain at DC for every phase.
                    *out = (value / sum) as f32;
                }
            }
        }
        Self {
            step: from / to,
            table,
            history: vec![0.0; HALF_TAPS - 1],
            position: (HALF_TAPS - 1) as f64,
            passthrough,
        }
    }

    /// Converts `input` and appends what it yields to `out` (about `input.len() * to / from`
    /// samples; the first call yields about 16 samples fewer, held back for the filter).
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend_from_slice(input);
        let taps = 2 * HALF_TAPS;
        loop {
            let base = self.position.floor();
            let i0 = base as usize;
            if i0 + HALF_TAPS >= self.history.len() {
                break;
            }
            let frac = (self.position - base) * PHASES as f64;
            let phase = (frac.floor() as usize).min(PHASES - 1);
            let blend = (frac - phase as f64) as f32;
            let lower = &self.table[phase * taps..][..taps];
            let upper = &self.table[(phase + 1) * taps..][..taps];
            let window = &self.history[i0 + 1 - HALF_TAPS..][..taps];
            let mut acc = 0f32;
            for ((x, a), b) in window.iter().zip(lower).zip(upper) {
                acc += x * (a + blend * (b - a));
            }
            out.push(acc);
            self.position += self.step;
        }
        let consumed = (self.position.floor() as usize).saturating_sub(HALF_TAPS - 1);
        if consumed > 0 {
            let consumed = consumed.min(self.history.len());
            self.history.drain(..consumed);
            self.position -= consumed as f64;
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-9 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// The Kaiser window at `x` in -1..=1 (0 outside).
fn kaiser(x: f64) -> f64 {
    if x.abs() > 1.0 {
        return 0.0;
    }
    bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA)
}

/// The modified Bessel function of the first kind, order 0 (its power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= half / k as f64;
        sum += term * term;
        if term * term < sum * 1e-16 {
            break;
        }
    }
    sum
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tone(rate: u32, hz: f64, amplitude: f32, samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| {
                amplitude * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin() as f32
            })
            .collect()
    }

    /// Frequency from upward zero crossings, over `samples` taken at `rate`.
    pub(crate) fn frequency(samples: &[f32], rate: u32) -> f64 {
        let crossings: Vec<usize> = samples
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
            .map(|(i, _)| i)
            .collect();
        let (Some(first), Some(last)) = (crossings.first(), crossings.last()) else {
            return 0.0;
        };
        (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
    }

    fn rms(samples: &[f32]) -> f64 {
        (samples
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / samples.len().max(1) as f64)
            .sqrt()
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_level_across_rates() {
        for (from, to) in [
            (44_100, 48_000),
            (48_000, 44_100),
            (16_000, 48_000),
            (96_000, 48_000),
        ] {
            let input = tone(from, 1000.0, 0.5, from as usize);
            let mut resampler = Resampler::new(from, to);
            let mut out = Vec::new();
            // In uneven chunks, as a device delivers them.
            for chunk in input.chunks(441) {
                resampler.process(chunk, &mut out);
            }
            // Up to the filter's half width of input is held back.
            let held = (HALF_TAPS as u32 * to.div_ceil(from)) as usize;
            assert!(
                out.len() <= to as usize && out.len() + held >= to as usize,
                "{from}->{to}: {} samples",
                out.len()
            );
            let steady = &out[to as usize / 10..out.len() - to as usize / 10];
            let f = frequency(steady, to);
            assert!((f - 1000.0).abs() < 1.0, "{from}->{to}: {f} Hz");
            let level = rms(steady) * std::f64::consts::SQRT_2;
            assert!(
                (level - 0.5).abs() < 0.01,
                "{from}->{to}: amplitude {level}"
            );
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let input = tone(96_000, 30_000.0, 0.5, 96_000);
        let mut out = Vec::new();
        Resampler::new(96_000, 48_000).process(&input, &mut out);
        let level = rms(&out[1000..]);
        assert!(level < 0.005, "30 kHz leaked through at rms {level}");
    }

    #[test]
    fn equal_rates_pass_through_and_chunking_does_not_change_the_output() {
        let input = tone(48_000, 440.0, 0.3, 4800);
        let mut same = Vec::new();
        Resampler::new(48_000, 48_000).process(&input, &mut same);
        assert_eq!(same, input);

        let input = tone(44_100, 440.0, 0.3, 44_100);
        let mut whole = Vec::new();
        Resampler::new(44_100, 48_000).process(&input, &mut whole);
        let mut pieces = Vec::new();
        let mut resampler = Resampler::new(44_100, 48_000);
        for chunk in input.chunks(97) {
            resampler.process(chunk, &mut pieces);
        }
        assert_eq!(whole.len(), pieces.len());
        let worst = whole
            .iter()
            .zip(&pieces)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "chunked output differs by {worst}");
    }
}
