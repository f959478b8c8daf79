//! Audio for calls: sources (WAV files, tones, silence), a recorder, sample
//! rate conversion, and tone detection. Everything here works on 16-bit mono
//! PCM at the codec rate (8 kHz for G.711) and is independent of the network.

mod goertzel;
mod handler;
mod resample;
mod source;
mod tone;
mod wav;

pub use goertzel::{goertzel_power, tone_present};
pub use handler::{Action, ErrorAction, MediaEngine, MediaHandler, Output, Play, PlaySource};
pub use resample::Resampler;
pub use source::{AudioSource, Silence};
pub use tone::Tone;
pub use wav::{MediaError, WavRecorder, WavSource};

/// The sample rate of G.711 and of everything in this module unless said otherwise.
pub const RATE: u32 = 8000;
