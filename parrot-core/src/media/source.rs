//! The source trait and silence.

/// Something that produces 8 kHz mono PCM, a frame at a time.
pub trait AudioSource: Send {
    /// Fills `out` with the next samples; returns how many were written. Fewer
    /// than `out.len()` means the source has ended (the rest is untouched).
    fn read(&mut self, out: &mut [i16]) -> usize;
}

/// Endless silence.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silence;

impl AudioSource for Silence {
    fn read(&mut self, out: &mut [i16]) -> usize {
        out.fill(0);
        out.len()
    }
}
