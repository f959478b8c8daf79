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

/// Something that takes the audio a call receives, 8 kHz mono, a frame at a
/// time (a speaker, an analyser).
pub trait AudioSink: Send {
    /// Takes the next samples.
    fn write(&mut self, samples: &[i16]);
}

/// A live source shared with the application (a microphone): cloned handles
/// refer to the same source.
#[derive(Clone)]
pub struct LiveSource(pub(crate) std::sync::Arc<std::sync::Mutex<Box<dyn AudioSource>>>);

impl LiveSource {
    /// Wraps a source.
    pub fn new(source: impl AudioSource + 'static) -> LiveSource {
        LiveSource(std::sync::Arc::new(std::sync::Mutex::new(Box::new(source))))
    }
}

impl AudioSource for LiveSource {
    fn read(&mut self, out: &mut [i16]) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .read(out)
    }
}

impl PartialEq for LiveSource {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSource")
    }
}

/// A live sink shared with the application (a speaker).
#[derive(Clone)]
pub struct LiveSink(pub(crate) std::sync::Arc<std::sync::Mutex<Box<dyn AudioSink>>>);

impl LiveSink {
    /// Wraps a sink.
    pub fn new(sink: impl AudioSink + 'static) -> LiveSink {
        LiveSink(std::sync::Arc::new(std::sync::Mutex::new(Box::new(sink))))
    }

    pub(crate) fn write(&self, samples: &[i16]) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(samples);
    }
}

impl PartialEq for LiveSink {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for LiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSink")
    }
}
