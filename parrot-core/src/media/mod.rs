//! Audio for calls: sources (WAV files, tones, silence), a recorder, sample
//! rate conversion, and tone detection. Everything here works on 16-bit mono
//! PCM at the codec's rate (8 kHz for G.711, 16 kHz for G.722: a call's
//! [`MediaEngine::rate`]) and is independent of the network.

mod bridge;
mod goertzel;
mod handler;
#[cfg(feature = "runtime")]
mod keypad;
mod resample;
#[cfg(feature = "runtime")]
mod session;
#[cfg(feature = "runtime")]
mod shared;
mod source;
#[cfg(feature = "runtime")]
mod stream;
mod tone;
mod wav;
#[cfg(feature = "runtime")]
mod wheel;
#[cfg(feature = "runtime")]
pub mod ws;

pub use bridge::{BridgeLeg, bridge};
pub use goertzel::{goertzel_power, tone_present};
pub use handler::{Action, ErrorAction, MediaEngine, MediaHandler, Output, Play, PlaySource};
#[cfg(feature = "runtime")]
pub use keypad::{Digits, Keypad, keypad};
pub use resample::Resampler;
#[cfg(feature = "runtime")]
pub use session::{
    MediaConfig, MediaEvent, MediaSession, MediaSockets, MediaStats, Ports, bind_pair, media_room,
    pacing_behind, set_media_threads,
};
/// For the project's benchmarks; not part of the supported API.
#[cfg(feature = "runtime")]
#[doc(hidden)]
pub use session::{pacing_counters, pacing_worst_ms, reset_pacing_counters};
#[cfg(feature = "runtime")]
pub use shared::{SharedPort, bind_shared, set_shared_ports, shared_port_unclaimed, shared_ports};
pub use source::{AudioSink, AudioSource, LiveSink, LiveSource, Silence};
#[cfg(feature = "runtime")]
pub use stream::{
    AudioEvent, AudioIn, AudioOut, AudioStream, IN_FRAMES, OUT_SAMPLES, audio_stream,
    audio_stream_at, audio_stream_both_ways,
};
pub use tone::Tone;
pub use wav::{MediaError, WavRecorder, WavSource};

/// The sample rate of G.711, and of everything in this module unless a rate is given
/// (`*_at` constructors, [`MediaEngine::with_rate`]).
pub const RATE: u32 = 8000;
