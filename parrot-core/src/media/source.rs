//! The source trait and silence.

/// Something that produces mono PCM, a frame at a time, at the rate of whoever reads it (a
/// call's media reads at its codec's rate: 8 kHz for G.711, 16 kHz for G.722; a
/// [`LiveSource`] says its own rate and is converted).
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

/// Something that takes the audio a call receives, mono, a frame at a time (a speaker, an
/// analyser); at the rate its [`LiveSink`] says, converted from the call's.
pub trait AudioSink: Send {
    /// Takes the next samples.
    fn write(&mut self, samples: &[i16]);
}

/// A live source shared with the application (a microphone): cloned handles
/// refer to the same source. It produces audio at its own rate (8 kHz unless made with
/// [`LiveSource::with_rate`]); a call at another rate resamples it.
#[derive(Clone)]
pub struct LiveSource {
    source: std::sync::Arc<std::sync::Mutex<Box<dyn AudioSource>>>,
    rate: u32,
}

impl LiveSource {
    /// Wraps a source of 8 kHz audio.
    pub fn new(source: impl AudioSource + 'static) -> LiveSource {
        LiveSource::with_rate(source, super::RATE)
    }

    /// Wraps a source of audio at `rate` Hz.
    pub fn with_rate(source: impl AudioSource + 'static, rate: u32) -> LiveSource {
        LiveSource {
            source: std::sync::Arc::new(std::sync::Mutex::new(Box::new(source))),
            rate: rate.max(1),
        }
    }

    /// The rate the source produces, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }
}

impl AudioSource for LiveSource {
    fn read(&mut self, out: &mut [i16]) -> usize {
        self.source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .read(out)
    }
}

impl PartialEq for LiveSource {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.source, &other.source)
    }
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSource")
    }
}

/// A live sink shared with the application (a speaker). It takes audio at its own rate
/// (8 kHz unless made with [`LiveSink::with_rate`]); a call at another rate resamples for it.
#[derive(Clone)]
pub struct LiveSink {
    sink: std::sync::Arc<std::sync::Mutex<Box<dyn AudioSink>>>,
    rate: u32,
}

impl LiveSink {
    /// Wraps a sink of 8 kHz audio.
    pub fn new(sink: impl AudioSink + 'static) -> LiveSink {
        LiveSink::with_rate(sink, super::RATE)
    }

    /// Wraps a sink of audio at `rate` Hz.
    pub fn with_rate(sink: impl AudioSink + 'static, rate: u32) -> LiveSink {
        LiveSink {
            sink: std::sync::Arc::new(std::sync::Mutex::new(Box::new(sink))),
            rate: rate.max(1),
        }
    }

    /// The rate the sink takes, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub(crate) fn write(&self, samples: &[i16]) {
        self.sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(samples);
    }
}

impl PartialEq for LiveSink {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.sink, &other.sink)
    }
}

impl std::fmt::Debug for LiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSink")
    }
}
