//! A call's audio as async streams, for code that is not a media handler: a
//! speech recogniser, a language model, a WebSocket bridge. What the call
//! receives arrives as 20 ms frames (mono, at the stream's rate: 8 kHz from
//! [`audio_stream`], any rate from [`audio_stream_at`], resampled from the
//! call's codec rate: 16 kHz for G.722) with the DTMF digits between them;
//! what the code sends (at any common rate, resampled) is played paced by the
//! call's media session, with `clear` for barge-in and marks that come back
//! once their point has been played.
//!
//! Both directions are bounded. Received frames wait in a queue of
//! [`IN_FRAMES`] (2 s); when the reader falls behind, the newest frames are
//! dropped and counted. Audio to send waits in a queue of 10 s at the
//! stream's rate ([`OUT_SAMPLES`] at 8 kHz); what does not fit is dropped and
//! counted.
//!
//! [`audio_stream_both_ways`] also reports each frame the call sent
//! ([`AudioEvent::Played`]), for code that wants both sides (a stereo
//! stream to a service); [`AudioOut::hang_up`] ends the call from the
//! async side.

use super::handler::{Action, MediaHandler};
use super::resample::Resampler;
use super::source::{AudioSink, AudioSource, LiveSink, LiveSource};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

/// Received frames that wait for the reader (2 s of 20 ms frames).
pub const IN_FRAMES: usize = 100;
/// Samples to send that wait to be played in an 8 kHz stream (10 s; a stream at another
/// rate holds 10 s at its rate).
pub const OUT_SAMPLES: usize = 80_000;

/// What a call gives its [`AudioIn`], in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AudioEvent {
    /// Received audio: mono samples at the stream's rate (a 20 ms frame: 160
    /// at 8 kHz, 320 at 16 kHz), and how many samples the call had received
    /// before them (the frame's position).
    Audio {
        /// The samples.
        samples: Vec<i16>,
        /// The position of the first one, in samples since the stream began.
        at: u64,
    },
    /// A DTMF digit arrived.
    Dtmf(char),
    /// Everything sent before [`AudioOut::mark`] with this name has been played.
    Mark(String),
    /// A frame the call sent (what [`AudioOut`] queued, or silence), 8 kHz
    /// mono; only from [`audio_stream_both_ways`].
    Played {
        /// The samples.
        samples: Vec<i16>,
        /// The position of the first one, in samples since the stream began.
        at: u64,
    },
}

/// The received side: frames, digits and marks, in order.
#[derive(Debug)]
pub struct AudioIn {
    rx: mpsc::Receiver<AudioEvent>,
    counts: Arc<Counts>,
    rate: u32,
}

/// The sending side (cheap to clone).
#[derive(Debug, Clone)]
pub struct AudioOut {
    queue: Arc<Mutex<OutQueue>>,
    counts: Arc<Counts>,
}

/// The [`MediaHandler`] that joins a call to its [`AudioIn`] and [`AudioOut`].
#[derive(Debug)]
pub struct AudioStream {
    events: mpsc::Sender<AudioEvent>,
    queue: Arc<Mutex<OutQueue>>,
    counts: Arc<Counts>,
    /// Report what is sent too ([`audio_stream_both_ways`]).
    played: bool,
    rate: u32,
}

#[derive(Debug, Default)]
struct Counts {
    in_dropped: AtomicU64,
    out_dropped: AtomicU64,
    /// Set by [`AudioOut::hang_up`]; the handler's next poll hangs up.
    hang_up: std::sync::atomic::AtomicBool,
}

/// Audio to send and the marks between it.
#[derive(Debug)]
struct OutQueue {
    items: VecDeque<Item>,
    samples: usize,
    /// The stream's rate, and the most samples the queue holds (10 s of it).
    rate: u32,
    capacity: usize,
    /// Per input rate, so that chunks of one stream resample continuously.
    resampler: Option<(u32, Resampler)>,
}

#[derive(Debug)]
enum Item {
    Samples(VecDeque<i16>),
    Mark(String),
}

fn lock(q: &Mutex<OutQueue>) -> std::sync::MutexGuard<'_, OutQueue> {
    q.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call's audio as streams: give the [`AudioStream`] to
/// `Incoming::answer` or `Dial::media`, and keep the two ends: [`AudioIn`]
/// yields what the call receives (20 ms frames at 8 kHz, digits between
/// them), [`AudioOut`] takes audio to play at any common rate, with marks and
/// `clear`. Both are bounded ([`IN_FRAMES`], [`OUT_SAMPLES`]); what
/// overflows is dropped and counted.
pub fn audio_stream() -> (AudioStream, AudioIn, AudioOut) {
    make(super::RATE, false)
}

/// The same with received frames at `rate` Hz (16 000 for a speech service):
/// a G.722 call's wideband audio as it came, a G.711 call's upsampled; what
/// [`AudioOut`] plays is converted to the call's rate.
pub fn audio_stream_at(rate: u32) -> (AudioStream, AudioIn, AudioOut) {
    make(rate, false)
}

/// [`audio_stream`], and [`AudioIn`] also yields every frame the call sends
/// ([`AudioEvent::Played`], in time with the received ones): both sides of
/// the call, for a stereo stream. Its queue holds twice [`IN_FRAMES`]
/// events, so that it still spans 2 s.
pub fn audio_stream_both_ways() -> (AudioStream, AudioIn, AudioOut) {
    make(super::RATE, true)
}

fn make(rate: u32, played: bool) -> (AudioStream, AudioIn, AudioOut) {
    let rate = rate.max(1);
    let (tx, rx) = mpsc::channel(if played { 2 * IN_FRAMES } else { IN_FRAMES });
    let queue = Arc::new(Mutex::new(OutQueue {
        items: VecDeque::new(),
        samples: 0,
        rate,
        capacity: usize::try_from(u64::from(rate) * 10).unwrap_or(OUT_SAMPLES),
        resampler: None,
    }));
    let counts = Arc::new(Counts::default());
    (
        AudioStream {
            events: tx,
            queue: queue.clone(),
            counts: counts.clone(),
            played,
            rate,
        },
        AudioIn {
            rx,
            counts: counts.clone(),
            rate,
        },
        AudioOut { queue, counts },
    )
}

impl AudioIn {
    /// The next frame, digit or mark; `None` once the call's media is over.
    pub async fn recv(&mut self) -> Option<AudioEvent> {
        self.rx.recv().await
    }

    /// Frames (received, or played with [`audio_stream_both_ways`]) dropped
    /// because this side fell behind.
    pub fn dropped(&self) -> u64 {
        self.counts.in_dropped.load(Ordering::Relaxed)
    }

    /// The rate of the received samples, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }
}

impl AudioOut {
    /// Queues `samples` (mono, `rate` Hz: 8000, 16000, 24000, 48000, …) to
    /// be played after what is queued; resampled to the stream's rate (and
    /// from it to the call's). What does not fit in 10 s ([`OUT_SAMPLES`] at
    /// 8 kHz) is dropped (see [`AudioOut::dropped`]).
    pub fn send(&self, samples: &[i16], rate: u32) {
        let mut q = lock(&self.queue);
        let to = q.rate;
        let mut pcm = Vec::with_capacity(samples.len() * to as usize / rate.max(1) as usize + 16);
        if rate == to {
            pcm.extend_from_slice(samples);
        } else {
            let r = match &mut q.resampler {
                Some((r, res)) if *r == rate => res,
                slot => &mut slot.insert((rate, Resampler::new(rate, to))).1,
            };
            r.process(samples, &mut pcm);
        }
        let room = q.capacity.saturating_sub(q.samples);
        if pcm.len() > room {
            self.counts
                .out_dropped
                .fetch_add((pcm.len() - room) as u64, Ordering::Relaxed);
            pcm.truncate(room);
        }
        q.samples += pcm.len();
        match q.items.back_mut() {
            Some(Item::Samples(s)) => s.extend(pcm),
            _ => q.items.push_back(Item::Samples(pcm.into())),
        }
    }

    /// A mark after what is queued now: [`AudioEvent::Mark`] comes back
    /// once it has all been played (or cleared).
    pub fn mark(&self, name: &str) {
        lock(&self.queue)
            .items
            .push_back(Item::Mark(name.to_owned()));
    }

    /// Drops everything queued (barge-in): playback stops within a frame.
    /// Marks still queued come back at once.
    pub fn clear(&self) {
        let mut q = lock(&self.queue);
        q.samples = 0;
        q.items.retain(|i| matches!(i, Item::Mark(_)));
    }

    /// Samples queued to be played.
    pub fn queued(&self) -> usize {
        lock(&self.queue).samples
    }

    /// Samples dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counts.out_dropped.load(Ordering::Relaxed)
    }

    /// Hangs up the call (a BYE) at its next frame: for async code that
    /// decides the conversation is over, or a bridge whose service is gone.
    pub fn hang_up(&self) {
        self.counts.hang_up.store(true, Ordering::Relaxed);
    }
}

/// Feeds received frames to the [`AudioIn`].
struct Ear {
    events: mpsc::Sender<AudioEvent>,
    counts: Arc<Counts>,
    at: u64,
}

impl AudioSink for Ear {
    fn write(&mut self, samples: &[i16]) {
        let at = self.at;
        self.at += samples.len() as u64;
        let ev = AudioEvent::Audio {
            samples: samples.to_vec(),
            at,
        };
        if self.events.try_send(ev).is_err() {
            self.counts.in_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Plays the [`AudioOut`]'s queue, silence when it is empty.
struct Mouth {
    queue: Arc<Mutex<OutQueue>>,
    events: mpsc::Sender<AudioEvent>,
    /// Report each frame played, from this position ([`AudioEvent::Played`]).
    played: Option<u64>,
    counts: Arc<Counts>,
}

impl AudioSource for Mouth {
    fn read(&mut self, out: &mut [i16]) -> usize {
        let n = self.fill(out);
        if let Some(at) = self.played.as_mut() {
            let ev = AudioEvent::Played {
                samples: out.to_vec(),
                at: *at,
            };
            *at += n as u64;
            if self.events.try_send(ev).is_err() {
                self.counts.in_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        n
    }
}

impl Mouth {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut q = lock(&self.queue);
        let mut filled = 0;
        while filled < out.len() {
            match q.items.front_mut() {
                None => break,
                Some(Item::Mark(_)) => {
                    if let Some(Item::Mark(name)) = q.items.pop_front() {
                        // The reader may be gone: a mark nobody waits for.
                        let _ = self.events.try_send(AudioEvent::Mark(name));
                    }
                }
                Some(Item::Samples(s)) => {
                    let n = s.len().min(out.len() - filled);
                    for (o, v) in out[filled..filled + n].iter_mut().zip(s.drain(..n)) {
                        *o = v;
                    }
                    filled += n;
                    let empty = s.is_empty();
                    q.samples -= n;
                    if empty {
                        q.items.pop_front();
                    }
                }
            }
        }
        out[filled..].fill(0);
        // A live source never ends: the call decides when it is over.
        out.len()
    }
}

impl MediaHandler for AudioStream {
    fn stream_started(&mut self) -> Action {
        let ear = Ear {
            events: self.events.clone(),
            counts: self.counts.clone(),
            at: 0,
        };
        let mouth = Mouth {
            queue: self.queue.clone(),
            events: self.events.clone(),
            played: self.played.then_some(0),
            counts: self.counts.clone(),
        };
        Action::Listen(LiveSink::with_rate(ear, self.rate))
            .also(Action::play_live(LiveSource::with_rate(mouth, self.rate)))
    }

    fn dtmf(&mut self, digit: char) -> Action {
        let _ = self.events.try_send(AudioEvent::Dtmf(digit));
        Action::Nothing
    }

    fn poll(&mut self) -> Action {
        if self.counts.hang_up.swap(false, Ordering::Relaxed) {
            Action::Hangup
        } else {
            Action::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaEngine, tone_present};

    #[tokio::test]
    async fn frames_in_audio_out_marks_and_clear() {
        let (s, mut inp, out) = audio_stream();
        let mut e = MediaEngine::new(s);
        e.start();
        // In: a received frame and a digit arrive in order.
        e.received(&[7; 160]);
        e.dtmf('5');
        assert_eq!(
            inp.recv().await,
            Some(AudioEvent::Audio {
                samples: vec![7; 160],
                at: 0
            })
        );
        assert_eq!(inp.recv().await, Some(AudioEvent::Dtmf('5')));
        // Out: 16 kHz audio comes out at 8 kHz, the mark after it.
        let mut t16 = Vec::new();
        for i in 0..8000 {
            let x = (i as f64) / 16000.0;
            t16.push(((2.0 * std::f64::consts::PI * 440.0 * x).sin() * 8000.0) as i16);
        }
        out.send(&t16, 16000);
        out.mark("said");
        let played = e.frames(26);
        assert!(tone_present(&played[..3600], 440.0, 8000, 0.5));
        assert_eq!(inp.recv().await, Some(AudioEvent::Mark("said".into())));
        // Clear: what is queued goes within a frame.
        out.send(&vec![1000; 8000], 8000);
        e.frames(1);
        out.clear();
        assert_eq!(out.queued(), 0);
        assert!(e.frames(1).iter().all(|s| *s == 0));
    }

    #[tokio::test]
    async fn both_ways_reports_what_was_played_and_hang_up_ends_the_call() {
        let (s, mut inp, out) = audio_stream_both_ways();
        let mut e = MediaEngine::new(s);
        e.start();
        out.send(&[500; 200], 8000);
        e.received(&[7; 160]);
        let mut f = [0i16; 160];
        e.next_frame(&mut f);
        e.next_frame(&mut f);
        assert!(matches!(
            inp.recv().await,
            Some(AudioEvent::Audio { at: 0, .. })
        ));
        let Some(AudioEvent::Played { samples, at: 0 }) = inp.recv().await else {
            panic!("the first frame played")
        };
        assert_eq!(samples, vec![500; 160]);
        let Some(AudioEvent::Played { samples, at: 160 }) = inp.recv().await else {
            panic!("the second frame played")
        };
        assert_eq!(&samples[..40], &[500; 40]);
        assert!(samples[40..].iter().all(|s| *s == 0));
        assert_eq!(e.poll_output(), None);
        out.hang_up();
        e.next_frame(&mut f);
        assert_eq!(e.poll_output(), Some(crate::media::Output::Hangup));
    }

    /// A 16 kHz stream on a G.722 call (engine at 16 kHz): frames come as they were, with
    /// what G.711 cannot carry; on a G.711 call they come upsampled, still 320 a frame.
    #[tokio::test]
    async fn a_wideband_stream_on_wideband_and_narrowband_calls() {
        let (s, mut inp, out) = audio_stream_at(16_000);
        assert_eq!(inp.rate(), 16_000);
        let mut e = MediaEngine::new(s).with_rate(16_000);
        e.start();
        let mut tone = crate::media::Tone::at_rate(6000.0, 0.5, 16_000);
        let mut heard = Vec::new();
        for _ in 0..10 {
            let mut f = [0i16; 320];
            tone.read(&mut f);
            e.received(&f);
            match inp.recv().await {
                Some(AudioEvent::Audio { samples, .. }) => heard.extend(samples),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(heard.len(), 3200);
        assert!(tone_present(&heard, 6000.0, 16_000, 0.9));
        // What is sent at 16 kHz is played as it is; 10 s fit.
        out.send(&vec![100; 16_000 * 10 + 5], 16_000);
        assert_eq!(out.dropped(), 5);
        let mut f = [0i16; 320];
        e.next_frame(&mut f);
        assert!(f.iter().all(|s| *s == 100));

        let (s, mut inp, _out) = audio_stream_at(16_000);
        let mut e = MediaEngine::new(s);
        e.start();
        let mut tone = crate::media::Tone::new(1000.0, 0.5);
        let mut heard = Vec::new();
        for _ in 0..10 {
            let mut f = [0i16; 160];
            tone.read(&mut f);
            e.received(&f);
            if let Some(AudioEvent::Audio { samples, .. }) = inp.recv().await {
                heard.extend(samples);
            }
        }
        assert!((3150..=3200).contains(&heard.len()), "{}", heard.len());
        assert!(tone_present(&heard[400..], 1000.0, 16_000, 0.9));
    }

    #[test]
    fn both_queues_are_bounded() {
        let (s, inp, out) = audio_stream();
        let mut e = MediaEngine::new(s);
        e.start();
        for _ in 0..IN_FRAMES + 10 {
            e.received(&[1; 160]);
        }
        assert_eq!(inp.dropped(), 10);
        out.send(&vec![1; OUT_SAMPLES + 500], 8000);
        assert_eq!(out.queued(), OUT_SAMPLES);
        assert_eq!(out.dropped(), 500);
    }
}
