//! Sample-rate conversion by windowed-sinc interpolation, for bringing WAV
//! files and sound cards (44.1/48 kHz) to the codec rate and back.

/// A streaming resampler for mono i16 PCM.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Position of the next output sample, in input samples, relative to `history`.
    pos: f64,
    history: Vec<f32>,
    cutoff: f64,
}

/// Taps on each side of the interpolation point.
const HALF: usize = 16;

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz (both > 0).
    pub fn new(from: u32, to: u32) -> Resampler {
        let (from, to) = (from.max(1), to.max(1));
        // Low-pass below the lower Nyquist frequency, with a little margin.
        let cutoff = 0.95 * f64::from(from.min(to)) / f64::from(from);
        Resampler {
            from,
            to,
            pos: HALF as f64,
            history: vec![0.0; HALF],
            cutoff,
        }
    }

    /// True when no conversion happens.
    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    /// Converts `input`, appending to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.is_identity() {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let step = f64::from(self.from) / f64::from(self.to);
        while self.pos + (HALF as f64) < self.history.len() as f64 {
            let center = self.pos.floor() as isize;
            let frac = self.pos - self.pos.floor();
            let mut acc = 0.0f64;
            let mut norm = 0.0f64;
            for k in -(HALF as isize) + 1..=HALF as isize {
                let idx = center + k;
                if idx < 0 {
                    continue;
                }
                let x = k as f64 - frac;
                let w = sinc(x * self.cutoff) * self.cutoff * window(x / HALF as f64);
                acc += w * f64::from(self.history[idx as usize]);
                norm += w;
            }
            let v = if norm.abs() > 1e-9 { acc / norm } else { acc };
            out.push(v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16);
            self.pos += step;
        }
        // Keep only what the next call needs.
        let keep_from = (self.pos.floor() as usize).saturating_sub(HALF);
        if keep_from > 0 {
            self.history.drain(..keep_from);
            self.pos -= keep_from as f64;
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
    }
}

/// Blackman window on [-1, 1].
fn window(x: f64) -> f64 {
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let t = std::f64::consts::PI * (x + 1.0);
    0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AudioSource, Tone, tone_present};

    fn tone_at(rate: u32, freq: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin() * 12000.0) as i16
            })
            .collect()
    }

    #[test]
    fn down_and_up_keep_the_tone_and_the_duration() {
        for from in [44_100, 48_000, 16_000] {
            let input = tone_at(from, 440.0, from as usize); // one second
            let mut r = Resampler::new(from, 8000);
            let mut out = Vec::new();
            for chunk in input.chunks(441) {
                r.process(chunk, &mut out);
            }
            assert!(
                (out.len() as i64 - 8000).abs() < 40,
                "{from}: {} samples",
                out.len()
            );
            assert!(tone_present(&out[400..], 440.0, 8000, 0.9), "{from}");
        }
        let mut t = Tone::new(1000.0, 0.5);
        let mut eight = vec![0i16; 8000];
        t.read(&mut eight);
        let mut up = Resampler::new(8000, 48_000);
        let mut out = Vec::new();
        up.process(&eight, &mut out);
        assert!((out.len() as i64 - 48_000).abs() < 200);
        assert!(tone_present(&out[2000..], 1000.0, 48_000, 0.9));
    }

    #[test]
    fn aliasing_is_filtered() {
        // 6 kHz cannot exist at 8 kHz: it must be attenuated, not folded to 2 kHz.
        let input = tone_at(48_000, 6000.0, 48_000);
        let mut r = Resampler::new(48_000, 8000);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let energy: f64 = out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / out.len() as f64;
        let input_energy: f64 =
            input.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / input.len() as f64;
        assert!(energy < input_energy * 0.05, "{energy} vs {input_energy}");
    }
}
