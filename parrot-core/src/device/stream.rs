//! Opening devices: the stream thread, [`Microphone`] and [`Speaker`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};

use super::alsa_log::AlsaLog;
use super::ring::{Ring, RingStats};
use super::select::{DeviceKind, Found, find, label};
use super::{DeviceError, DeviceSelector, RING_MS};
use crate::media::{AudioSource, RATE, Resampler};

/// What was opened: the device and the configuration chosen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The host (`alsa`).
    pub host: String,
    /// The device's name.
    pub name: String,
    /// The backend's identifier for the device.
    pub id: String,
    /// The device's sample rate, Hz (the call side is always 8 kHz).
    pub rate: u32,
    /// The device's channel count (capture is mixed down to mono, playback copied to every channel).
    pub channels: u16,
    /// The device's sample format (`i16`, `f32`...).
    pub format: String,
}

/// Owns the thread that owns the `cpal::Stream`; dropping it stops both.
struct StreamThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

type Opened = (Arc<Ring>, StreamInfo);

/// Starts the stream on its own thread and waits until it plays or fails.
fn spawn(
    direction: DeviceKind,
    sel: DeviceSelector,
) -> Result<(StreamThread, Opened), DeviceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<Result<Opened, DeviceError>>(1);
    let stop_in = Arc::clone(&stop);
    let thread = thread::Builder::new()
        .name(format!("parrot-audio-{direction}"))
        .spawn(move || {
            // Before cpal is touched on this thread: see `alsa_log`.
            let mut alsa = AlsaLog::install();
            let started = start(direction, &sel);
            alsa.flush();
            match started {
                Ok((stream, opened)) => {
                    if tx.send(Ok(opened)).is_err() {
                        return;
                    }
                    while !stop_in.load(Ordering::SeqCst) {
                        thread::park_timeout(Duration::from_millis(100));
                    }
                    drop(stream);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| DeviceError::Backend(format!("cannot start the audio thread: {e}")))?;
    let running = StreamThread {
        stop,
        thread: Some(thread),
    };
    match rx.recv() {
        Ok(Ok(opened)) => Ok((running, opened)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeviceError::Backend(
            "the audio thread ended before the stream started".to_owned(),
        )),
    }
}

/// On the stream thread: find the device, choose a config, build and play.
fn start(
    direction: DeviceKind,
    sel: &DeviceSelector,
) -> Result<(cpal::Stream, Opened), DeviceError> {
    let found = find(direction, sel)?;
    let name = label(&found);
    let (config, format) = choose(&found, direction)?;
    let rate = config.sample_rate;
    let ring = Arc::new(Ring::new(match direction {
        // The microphone ring holds 8 kHz mono, the speaker ring device-rate mono.
        DeviceKind::Input => (RATE * RING_MS / 1000) as usize,
        DeviceKind::Output => (u64::from(rate) * u64::from(RING_MS) / 1000) as usize,
    }));
    let stream = match direction {
        DeviceKind::Input => build_input(&found.device, &config, format, &ring),
        DeviceKind::Output => build_output(&found.device, &config, format, &ring),
    }
    .map_err(|e| DeviceError::from_cpal(&name, &e))?;
    stream
        .play()
        .map_err(|e| DeviceError::from_cpal(&name, &e))?;
    let info = StreamInfo {
        host: found.host.clone(),
        name: found.name.clone(),
        id: found.id.clone(),
        rate,
        channels: config.channels,
        format: format.to_string(),
    };
    Ok((stream, (ring, info)))
}

/// Formats this layer converts, best first.
const FORMATS: [SampleFormat; 6] = [
    SampleFormat::I16,
    SampleFormat::F32,
    SampleFormat::I32,
    SampleFormat::U16,
    SampleFormat::I8,
    SampleFormat::U8,
];

/// Chooses a supported configuration: i16, then f32, then other formats this
/// layer converts; mono if offered, else the first channel count listed; the
/// device's default rate if in range, else 48 kHz, 8 kHz, or the nearest bound.
fn choose(
    found: &Found,
    direction: DeviceKind,
) -> Result<(StreamConfig, SampleFormat), DeviceError> {
    let name = label(found);
    let (ranges, default) = match direction {
        DeviceKind::Input => (
            found
                .device
                .supported_input_configs()
                .map(|c| c.collect::<Vec<_>>()),
            found.device.default_input_config().ok(),
        ),
        DeviceKind::Output => (
            found
                .device
                .supported_output_configs()
                .map(|c| c.collect::<Vec<_>>()),
            found.device.default_output_config().ok(),
        ),
    };
    let ranges = ranges.map_err(|e| DeviceError::from_cpal(&name, &e))?;
    let best = ranges
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let rank = FORMATS.iter().position(|f| *f == r.sample_format())?;
            Some(((rank, r.channels() != 1, i), r))
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, r)| r);
    let Some(range) = best else {
        let offered: Vec<String> = ranges
            .iter()
            .map(|r| r.sample_format().to_string())
            .collect();
        return Err(DeviceError::Unsupported {
            device: name,
            detail: if offered.is_empty() {
                "it lists no configurations".to_owned()
            } else {
                format!(
                    "it offers only sample formats {} (usable: i16, f32, i32, u16, i8, u8)",
                    offered.join(", ")
                )
            },
        });
    };
    let default_rate = default.map(|d| d.sample_rate());
    let rate = default_rate
        .filter(|r| range.contains_rate(*r))
        .or_else(|| [48_000, RATE].into_iter().find(|r| range.contains_rate(*r)))
        .unwrap_or_else(|| 48_000u32.clamp(range.min_sample_rate(), range.max_sample_rate()));
    let config = StreamConfig {
        channels: range.channels().max(1),
        sample_rate: rate,
        buffer_size: cpal::BufferSize::Default,
    };
    Ok((config, range.sample_format()))
}

fn build_input(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
    ring: &Arc<Ring>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::I16 => input_stream::<i16>(device, config, ring),
        SampleFormat::F32 => input_stream::<f32>(device, config, ring),
        SampleFormat::I32 => input_stream::<i32>(device, config, ring),
        SampleFormat::U16 => input_stream::<u16>(device, config, ring),
        SampleFormat::I8 => input_stream::<i8>(device, config, ring),
        SampleFormat::U8 => input_stream::<u8>(device, config, ring),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} is not converted"),
        )),
    }
}

fn build_output(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
    ring: &Arc<Ring>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::I16 => output_stream::<i16>(device, config, ring),
        SampleFormat::F32 => output_stream::<f32>(device, config, ring),
        SampleFormat::I32 => output_stream::<i32>(device, config, ring),
        SampleFormat::U16 => output_stream::<u16>(device, config, ring),
        SampleFormat::I8 => output_stream::<i8>(device, config, ring),
        SampleFormat::U8 => output_stream::<u8>(device, config, ring),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} is not converted"),
        )),
    }
}

/// Capture callback: mix down to mono, resample to 8 kHz, push into the ring.
fn input_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    ring: &Arc<Ring>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    i16: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let mut resampler = Resampler::new(config.sample_rate, RATE);
    let (mut mono, mut eight) = (Vec::<i16>::new(), Vec::<i16>::new());
    let data_ring = Arc::clone(ring);
    let err_ring = Arc::clone(ring);
    device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _| {
            mono.clear();
            mono.extend(data.chunks(channels).map(|frame| {
                let sum: i32 = frame.iter().map(|&s| i32::from(i16::from_sample_(s))).sum();
                (sum / frame.len() as i32) as i16
            }));
            eight.clear();
            resampler.process(&mono, &mut eight);
            data_ring.push(&eight);
        },
        move |_err| err_ring.stream_error(),
        None,
    )
}

/// Playback callback: pop device-rate mono from the ring (silence when short)
/// and copy it to every channel.
fn output_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    ring: &Arc<Ring>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<i16> + Send + 'static,
{
    let channels = usize::from(config.channels.max(1));
    let mut mono = Vec::<i16>::new();
    let data_ring = Arc::clone(ring);
    let err_ring = Arc::clone(ring);
    device.build_output_stream::<T, _, _>(
        *config,
        move |data: &mut [T], _| {
            mono.resize(data.len() / channels, 0);
            data_ring.pop_fill(&mut mono);
            for (frame, &s) in data.chunks_mut(channels).zip(mono.iter()) {
                frame.fill(T::from_sample_(s));
            }
        },
        move |_err| err_ring.stream_error(),
        None,
    )
}

/// A capture device delivering 8 kHz mono; an [`AudioSource`] that never ends.
///
/// Samples the call does not read in time are dropped oldest first once
/// [`RING_MS`] of audio is waiting; reads that find too few get silence.
pub struct Microphone {
    ring: Arc<Ring>,
    info: StreamInfo,
    _thread: StreamThread,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("info", &self.info)
            .field("stats", &self.ring.stats())
            .finish()
    }
}

/// Opens a capture device and starts it.
pub fn open_input(sel: DeviceSelector) -> Result<Microphone, DeviceError> {
    let (thread, (ring, info)) = spawn(DeviceKind::Input, sel)?;
    Ok(Microphone {
        ring,
        info,
        _thread: thread,
    })
}

impl Microphone {
    /// The device and configuration in use.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Samples (8 kHz) captured and not yet read.
    pub fn available(&self) -> usize {
        self.ring.len()
    }

    /// Counters since the device was opened.
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}

impl crate::media::AudioSink for Speaker {
    fn write(&mut self, samples: &[i16]) {
        Speaker::write(self, samples);
    }
}

impl AudioSource for Microphone {
    /// Copies the oldest captured samples into `out`, with silence for what has
    /// not been captured yet; always fills `out` (a microphone does not end).
    fn read(&mut self, out: &mut [i16]) -> usize {
        self.ring.pop_fill(out);
        out.len()
    }
}

/// A playback device fed 8 kHz mono frames.
///
/// When more than [`RING_MS`] of audio is waiting, the oldest is dropped; when
/// the device finds nothing waiting, it plays silence.
pub struct Speaker {
    ring: Arc<Ring>,
    info: StreamInfo,
    resampler: Resampler,
    scratch: Vec<i16>,
    _thread: StreamThread,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("info", &self.info)
            .field("stats", &self.ring.stats())
            .finish()
    }
}

/// Opens a playback device and starts it (playing silence until written to).
pub fn open_output(sel: DeviceSelector) -> Result<Speaker, DeviceError> {
    let (thread, (ring, info)) = spawn(DeviceKind::Output, sel)?;
    Ok(Speaker {
        resampler: Resampler::new(RATE, info.rate),
        ring,
        info,
        scratch: Vec::new(),
        _thread: thread,
    })
}

impl Speaker {
    /// Queues 8 kHz mono samples for playback.
    pub fn write(&mut self, samples: &[i16]) {
        self.scratch.clear();
        self.resampler.process(samples, &mut self.scratch);
        self.ring.push(&self.scratch);
    }

    /// How much audio is queued and not yet taken by the device.
    pub fn queued(&self) -> Duration {
        let rate = u64::from(self.info.rate.max(1));
        Duration::from_micros(self.ring.len() as u64 * 1_000_000 / rate)
    }

    /// The most audio the queue holds before dropping the oldest.
    pub fn capacity(&self) -> Duration {
        let rate = u64::from(self.info.rate.max(1));
        Duration::from_micros(self.ring.capacity() as u64 * 1_000_000 / rate)
    }

    /// The device and configuration in use.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Counters since the device was opened (in device-rate samples).
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}
