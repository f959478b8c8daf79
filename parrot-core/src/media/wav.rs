//! WAV files: a source that plays any PCM WAV as mono at a call's rate (8 kHz for G.711,
//! 16 kHz for G.722), and a recorder.

use super::RATE;
use super::resample::Resampler;
use super::source::AudioSource;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

/// A media error: a file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The WAV file could not be opened, read or written.
    #[error("{path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: hound::Error,
    },
    /// A format this code does not play (e.g. 32-bit float WAV with more than 2 channels… or 0 Hz).
    #[error("{path}: unsupported WAV format ({what})")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Which property.
        what: String,
    },
}

/// Plays a WAV file (8/16/24/32-bit integer or 32-bit float, any rate, any
/// channel count: channels are mixed down) as mono at 8 kHz ([`WavSource::open`]) or at
/// another rate ([`WavSource::open_at`]).
pub struct WavSource {
    samples: Arc<[i16]>,
    pos: usize,
    path: PathBuf,
    duration: f64,
}

/// Decoded files, shared by every call that plays them: a prompt is decoded
/// once, not once per call (decoding is costly next to the rest of a call's
/// media work, and the calls of a server play the same few prompts). Keyed by
/// path and rate (a prompt played in G.711 and in G.722 calls is kept at both rates), size
/// and modification time, so an edited file is decoded again.
/// Bounded by total samples held (cleared when a new file would not fit); a
/// file longer than the whole budget is not kept.
#[derive(Default)]
struct Decoded {
    /// (path, rate) → (size, modified, samples)
    files: HashMap<(PathBuf, u32), CachedFile>,
    samples: usize,
}
type CachedFile = (u64, Option<SystemTime>, Arc<[i16]>);
static DECODED: OnceLock<Mutex<Decoded>> = OnceLock::new();
/// 16 M samples = 32 MiB = 35 minutes of 8 kHz audio.
const DECODED_MAX_SAMPLES: usize = 16 << 20;

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .field("seconds", &self.duration)
            .finish()
    }
}

impl WavSource {
    /// Opens and decodes the whole file at 8 kHz (voice prompts are small; decoding up
    /// front keeps file I/O out of the real-time path).
    pub fn open(path: impl AsRef<Path>) -> Result<WavSource, MediaError> {
        WavSource::open_at(path, RATE)
    }

    /// The same, resampled to `rate` Hz.
    pub fn open_at(path: impl AsRef<Path>, rate: u32) -> Result<WavSource, MediaError> {
        let rate = rate.max(1);
        let path = path.as_ref().to_path_buf();
        let slot = (path.clone(), rate);
        let meta = std::fs::metadata(&path).map_err(|e| MediaError::Wav {
            path: path.clone(),
            source: hound::Error::IoError(e),
        })?;
        let key = (meta.len(), meta.modified().ok());
        let cache = DECODED.get_or_init(|| Mutex::new(Decoded::default()));
        let hit = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .files
            .get(&slot)
            .filter(|(len, modified, _)| (*len, *modified) == key)
            .map(|(_, _, samples)| samples.clone());
        let samples = match hit {
            Some(s) => s,
            None => {
                let decoded: Arc<[i16]> = Self::decode(&path, rate)?.into();
                if decoded.len() <= DECODED_MAX_SAMPLES {
                    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
                    if c.samples + decoded.len() > DECODED_MAX_SAMPLES {
                        *c = Decoded::default();
                    }
                    c.samples += decoded.len();
                    let old = c.files.insert(slot, (key.0, key.1, decoded.clone()));
                    if let Some((_, _, old)) = old {
                        c.samples -= old.len();
                    }
                }
                decoded
            }
        };
        let duration = samples.len() as f64 / f64::from(rate);
        Ok(WavSource {
            samples,
            pos: 0,
            path,
            duration,
        })
    }

    /// The file as last decoded into the shared cache, without touching the
    /// file system (no `stat`, no read): for the real-time path, which has
    /// [`WavSource::open`] run elsewhere first. `None` if it was never decoded.
    pub fn cached(path: impl AsRef<Path>) -> Option<WavSource> {
        WavSource::cached_at(path, RATE)
    }

    /// The same at `rate` Hz, as [`WavSource::open_at`] decoded it.
    pub fn cached_at(path: impl AsRef<Path>, rate: u32) -> Option<WavSource> {
        let path = path.as_ref();
        let rate = rate.max(1);
        let samples = DECODED
            .get()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .files
            .get(&(path.to_path_buf(), rate))
            .map(|(_, _, samples)| samples.clone())?;
        let duration = samples.len() as f64 / f64::from(rate);
        Some(WavSource {
            samples,
            pos: 0,
            path: path.to_path_buf(),
            duration,
        })
    }

    fn decode(path: &Path, rate: u32) -> Result<Vec<i16>, MediaError> {
        let path = path.to_path_buf();
        let wav = |source| MediaError::Wav {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(|e| wav(hound::Error::IoError(e)))?;
        let reader = hound::WavReader::new(BufReader::new(file)).map_err(wav)?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(MediaError::Unsupported {
                path,
                what: format!("{} channels at {} Hz", spec.channels, spec.sample_rate),
            });
        }
        let channels = usize::from(spec.channels);
        let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => reader
                .into_samples::<f32>()
                .map(|s| s.map(|v| v * 32767.0))
                .collect::<Result<_, _>>()
                .map_err(wav)?,
            (hound::SampleFormat::Int, bits @ 1..=32) => {
                let shift = f32::powi(2.0, i32::from(bits) - 16);
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32 / shift))
                    .collect::<Result<_, _>>()
                    .map_err(wav)?
            }
            (fmt, bits) => {
                return Err(MediaError::Unsupported {
                    path,
                    what: format!("{fmt:?} {bits}-bit"),
                });
            }
        };
        let mono: Vec<i16> = interleaved
            .chunks(channels)
            .map(|frame| {
                (frame.iter().sum::<f32>() / frame.len() as f32)
                    .round()
                    .clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        let mut out =
            Vec::with_capacity(mono.len() * rate as usize / spec.sample_rate as usize + 64);
        let mut r = Resampler::new(spec.sample_rate, rate);
        r.process(&mono, &mut out);
        // Flush the resampler's look-ahead with silence so the end is not cut.
        if !r.is_identity() {
            let tail = vec![0i16; 64 * spec.sample_rate as usize / rate as usize + 32];
            let expected =
                (mono.len() as u64 * u64::from(rate) / u64::from(spec.sample_rate)) as usize;
            r.process(&tail, &mut out);
            out.truncate(expected);
        }
        Ok(out)
    }

    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.duration
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AudioSource for WavSource {
    fn read(&mut self, out: &mut [i16]) -> usize {
        let rest = self.samples.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        n
    }
}

/// Writes 16-bit PCM to a WAV file: mono or stereo, 8 kHz unless made at another rate
/// ([`WavRecorder::create_at`]).
pub struct WavRecorder {
    writer: Option<hound::WavWriter<BufWriter<std::fs::File>>>,
    path: PathBuf,
    samples: u64,
}

impl std::fmt::Debug for WavRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavRecorder")
            .field("path", &self.path)
            .field("samples", &self.samples)
            .finish()
    }
}

impl WavRecorder {
    /// Creates (or truncates) `path`: 8 kHz mono.
    pub fn create(path: impl AsRef<Path>) -> Result<WavRecorder, MediaError> {
        Self::create_with(path.as_ref(), 1, RATE)
    }

    /// The same at `rate` Hz (a call's rate: 16 000 for G.722).
    pub fn create_at(path: impl AsRef<Path>, rate: u32) -> Result<WavRecorder, MediaError> {
        Self::create_with(path.as_ref(), 1, rate)
    }

    /// A stereo recording (8 kHz, 16-bit), written with
    /// [`WavRecorder::write_stereo`]: both directions of a call.
    pub fn create_stereo(path: impl AsRef<Path>) -> Result<WavRecorder, MediaError> {
        Self::create_with(path.as_ref(), 2, RATE)
    }

    /// The same at `rate` Hz.
    pub fn create_stereo_at(path: impl AsRef<Path>, rate: u32) -> Result<WavRecorder, MediaError> {
        Self::create_with(path.as_ref(), 2, rate)
    }

    fn create_with(path: &Path, channels: u16, rate: u32) -> Result<WavRecorder, MediaError> {
        let path = path.to_path_buf();
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate.max(1),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|source| MediaError::Wav {
            path: path.clone(),
            source,
        })?;
        Ok(WavRecorder {
            writer: Some(writer),
            path,
            samples: 0,
        })
    }

    /// Appends frames of a stereo recording: `left[i]` and `right[i]` side
    /// by side (the shorter side padded with silence).
    pub fn write_stereo(&mut self, left: &[i16], right: &[i16]) -> Result<(), MediaError> {
        let n = left.len().max(right.len());
        let mut both = Vec::with_capacity(2 * n);
        for i in 0..n {
            both.push(left.get(i).copied().unwrap_or(0));
            both.push(right.get(i).copied().unwrap_or(0));
        }
        self.write(&both)
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        for &s in samples {
            w.write_sample(s).map_err(|source| MediaError::Wav {
                path: self.path.clone(),
                source,
            })?;
        }
        self.samples += samples.len() as u64;
        Ok(())
    }

    /// Samples written so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Writes the header and closes the file.
    pub fn finish(mut self) -> Result<PathBuf, MediaError> {
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|source| MediaError::Wav {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(self.path.clone())
    }
}

impl Drop for WavRecorder {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.finalize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Tone, tone_present};

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("parrot-wav-{}-{name}", std::process::id()))
    }

    #[test]
    fn record_then_play_back() {
        let path = temp("rt.wav");
        let mut rec = WavRecorder::create(&path).unwrap();
        let mut t = Tone::new(440.0, 0.4).lasting(1.0);
        let mut buf = [0i16; 160];
        loop {
            let n = t.read(&mut buf);
            rec.write(&buf[..n]).unwrap();
            if n < buf.len() {
                break;
            }
        }
        assert_eq!(rec.samples(), 8000);
        rec.finish().unwrap();
        let mut src = WavSource::open(&path).unwrap();
        assert!((src.duration() - 1.0).abs() < 1e-9);
        let mut all = vec![0i16; 9000];
        let n = src.read(&mut all);
        assert_eq!(n, 8000);
        assert!(tone_present(&all[..n], 440.0, 8000, 0.9));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn stereo_44k_is_mixed_and_resampled() {
        let path = temp("st.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..44_100 {
            let v = ((std::f64::consts::TAU * 1000.0 * f64::from(i) / 44_100.0).sin() * 10_000.0)
                as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let mut src = WavSource::open(&path).unwrap();
        assert!((src.duration() - 1.0).abs() < 0.01, "{}", src.duration());
        let mut all = vec![0i16; 8000];
        let n = src.read(&mut all);
        assert!(tone_present(&all[200..n], 1000.0, 8000, 0.9));
        let _ = std::fs::remove_file(path);
    }

    fn write_tone(path: &Path, seconds: f64) {
        let mut rec = WavRecorder::create(path).unwrap();
        let mut t = Tone::new(500.0, 0.3).lasting(seconds);
        let mut buf = vec![0i16; 8000];
        let n = t.read(&mut buf);
        rec.write(&buf[..n]).unwrap();
        rec.finish().unwrap();
    }

    #[test]
    fn decoded_once_and_again_when_the_file_changes() {
        let path = temp("cache.wav");
        write_tone(&path, 1.0);
        let a = WavSource::open(&path).unwrap();
        let b = WavSource::open(&path).unwrap();
        assert!(
            Arc::ptr_eq(&a.samples, &b.samples),
            "the second open reuses the decoded samples"
        );
        write_tone(&path, 0.5);
        let c = WavSource::open(&path).unwrap();
        assert!(
            (c.duration() - 0.5).abs() < 1e-9,
            "an edited file is decoded again"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_same_file_at_two_rates() {
        let path = temp("rates.wav");
        let mut rec = WavRecorder::create_at(&path, 16_000).unwrap();
        let mut t = Tone::at_rate(5000.0, 0.4, 16_000).lasting(1.0);
        let mut buf = vec![0i16; 16_000];
        assert_eq!(t.read(&mut buf), 16_000);
        rec.write(&buf).unwrap();
        rec.finish().unwrap();
        assert_eq!(
            hound::WavReader::open(&path).unwrap().spec().sample_rate,
            16_000
        );
        // At 16 kHz the 5 kHz tone plays as it is; at 8 kHz it cannot exist and is filtered.
        let mut wide = WavSource::open_at(&path, 16_000).unwrap();
        let mut narrow = WavSource::open(&path).unwrap();
        assert!((wide.duration() - 1.0).abs() < 1e-9 && (narrow.duration() - 1.0).abs() < 0.01);
        let mut out = vec![0i16; 16_000];
        assert_eq!(wide.read(&mut out), 16_000);
        assert!(tone_present(&out, 5000.0, 16_000, 0.9));
        let n = narrow.read(&mut out);
        assert_eq!(n, 8000);
        let energy = out[..n].iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / n as f64;
        assert!(energy < 1e5, "folded energy {energy}");
        // Both are in the cache, each at its rate.
        assert_eq!(
            WavSource::cached_at(&path, 16_000).map(|s| s.samples.len()),
            Some(16_000)
        );
        assert_eq!(
            WavSource::cached(&path).map(|s| s.samples.len()),
            Some(8000)
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn unreadable_files_are_clear_errors() {
        let missing = WavSource::open("/nonexistent/prompt.wav").unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/prompt.wav"),
            "{missing}"
        );
        let garbage = temp("garbage.wav");
        std::fs::write(&garbage, b"RIFF....not a wav").unwrap();
        assert!(WavSource::open(&garbage).is_err());
        let _ = std::fs::remove_file(garbage);
    }
}
