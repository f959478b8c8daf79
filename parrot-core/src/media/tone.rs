//! A sine tone generator.

use super::RATE;
use super::source::AudioSource;

/// A sine tone at `frequency` Hz, optionally for a limited number of samples.
#[derive(Debug, Clone)]
pub struct Tone {
    phase: f64,
    step: f64,
    amplitude: f64,
    remaining: Option<u64>,
}

impl Tone {
    /// An endless tone at `frequency` Hz with peak `amplitude` (0.0 to 1.0 of full scale).
    pub fn new(frequency: f64, amplitude: f64) -> Tone {
        Tone {
            phase: 0.0,
            step: std::f64::consts::TAU * frequency / f64::from(RATE),
            amplitude: amplitude.clamp(0.0, 1.0) * f64::from(i16::MAX),
            remaining: None,
        }
    }

    /// The same tone, lasting `seconds`.
    pub fn lasting(mut self, seconds: f64) -> Tone {
        self.remaining = Some((seconds.max(0.0) * f64::from(RATE)).round() as u64);
        self
    }
}

impl AudioSource for Tone {
    fn read(&mut self, out: &mut [i16]) -> usize {
        let n = match self.remaining {
            Some(r) => out.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => out.len(),
        };
        for s in &mut out[..n] {
            *s = (self.phase.sin() * self.amplitude).round() as i16;
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
        if let Some(r) = &mut self.remaining {
            *r -= n as u64;
        }
        n
    }
}
