//! The Goertzel algorithm: the power of one frequency in a block of samples.
//! Used to check what a call carried (tests, `cargo xtask demo`) and to detect
//! in-band tones.

/// The power of `frequency` (Hz) in `samples` taken at `rate` Hz, normalised
/// so that a full-scale sine at that frequency gives about 0.25 and silence 0.
pub fn goertzel_power(samples: &[i16], frequency: f64, rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len() as f64;
    // The exact frequency rather than the nearest DFT bin: no scalloping loss
    // when the block length is not a multiple of the period.
    let w = std::f64::consts::TAU * frequency / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (n * n)
}

/// True if `frequency` carries at least `share` (0..1) of the block's energy.
pub fn tone_present(samples: &[i16], frequency: f64, rate: u32, share: f64) -> bool {
    let energy: f64 = samples
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum::<f64>()
        / samples.len().max(1) as f64;
    if energy < 1e-6 {
        return false;
    }
    // A pure sine of mean energy E has Goertzel power E/2 at its frequency.
    goertzel_power(samples, frequency, rate) >= share * energy / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AudioSource, Tone};

    #[test]
    fn finds_the_tone_and_not_others() {
        let mut t = Tone::new(440.0, 0.5);
        let mut buf = vec![0i16; 8000];
        t.read(&mut buf);
        assert!(tone_present(&buf, 440.0, 8000, 0.8));
        assert!(!tone_present(&buf, 1000.0, 8000, 0.1));
        assert!(!tone_present(&[0; 800], 440.0, 8000, 0.1));
    }
}
