//! Two calls' audio joined: what one leg receives, the other sends (a B2BUA's
//! media relay, in decoded PCM so that each leg negotiates its own codec).
//!
//! [`bridge`] makes the two [`MediaHandler`]s: give one to the call that came
//! in ([`Incoming::answer`](crate::ua::Incoming::answer)) and one to the call
//! placed ([`Dial::media`](crate::ua::Dial::media)). Between them:
//! - audio, through a bounded queue each way;
//! - DTMF: a digit one leg receives is sent on the other (RFC 4733);
//! - the end: when one leg's media stops (its call hung up, failed, or was
//!   never answered), the other leg hangs up.

use super::handler::{Action, MediaHandler, PlaySource};
use super::source::{AudioSink, AudioSource, LiveSink, LiveSource};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// The most audio a queue holds (200 ms at 8 kHz): when the leg that writes
/// runs ahead of the one that reads (its peer's clock is faster, or a burst
/// arrived), the oldest samples go, counted, down to [`QUEUE_TARGET`].
const QUEUE_CAP: usize = 1600;
/// What a queue is brought back to when it overflows (100 ms).
const QUEUE_TARGET: usize = 800;
/// How much a queue holds before the reader starts taking from it, and again
/// after it ran dry (60 ms): the two legs tick on their own timers, so
/// without this margin every tick that comes a little early would read an
/// empty queue and put a gap in the audio.
const PREFILL: usize = 480;
/// Digits waiting for the other leg; more are dropped.
const DTMF_CAP: usize = 32;

/// One direction: what one leg received, waiting for the other to send it.
#[derive(Debug, Default)]
struct Queue {
    samples: VecDeque<i16>,
    digits: String,
    /// The leg that writes here has stopped.
    closed: bool,
    /// Samples dropped because the queue was full.
    dropped: u64,
    /// The reader takes from the queue (it held [`PREFILL`] since it last
    /// ran dry).
    flowing: bool,
}

type Shared = Arc<Mutex<Queue>>;

fn lock(q: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Writer(Shared);

impl AudioSink for Writer {
    fn write(&mut self, samples: &[i16]) {
        let mut q = lock(&self.0);
        if q.closed {
            return;
        }
        q.samples.extend(samples.iter().copied());
        if q.samples.len() > QUEUE_CAP {
            let over = q.samples.len() - QUEUE_TARGET;
            q.samples.drain(..over);
            q.dropped += over as u64;
        }
    }
}

struct Reader(Shared);

impl AudioSource for Reader {
    fn read(&mut self, out: &mut [i16]) -> usize {
        let mut q = lock(&self.0);
        if q.closed {
            // The other leg is gone: the source ends once drained.
            let n = q.samples.len().min(out.len());
            for (o, s) in out.iter_mut().zip(q.samples.drain(..n)) {
                *o = s;
            }
            return n;
        }
        if !q.flowing && q.samples.len() >= PREFILL.max(out.len()) {
            q.flowing = true;
        }
        let n = if q.flowing {
            q.samples.len().min(out.len())
        } else {
            0
        };
        for (o, s) in out.iter_mut().zip(q.samples.drain(..n)) {
            *o = s;
        }
        if n < out.len() {
            // Not arrived yet (the other leg not answered, a late packet):
            // silence, and a margin again before taking more.
            q.flowing = false;
            out[n..].fill(0);
        }
        out.len()
    }
}

/// One side of a [`bridge`]: a [`MediaHandler`] for one of the two calls.
pub struct BridgeLeg {
    /// What this leg receives, for the other to send.
    out: Shared,
    /// What the other leg received, for this one to send.
    inp: Shared,
    hung_up: bool,
}

impl std::fmt::Debug for BridgeLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeLeg")
            .field("other_gone", &lock(&self.inp).closed)
            .finish_non_exhaustive()
    }
}

/// Two media handlers joined back to back: give one to the call that came
/// in and one to the call placed. What one leg receives, the other sends
/// (through a bounded queue each way), a digit one leg receives is sent on
/// the other, and when one leg's media stops the other leg hangs up.
/// [`ua::bridge`](crate::ua::bridge) does all of it for a B2BUA.
pub fn bridge() -> (BridgeLeg, BridgeLeg) {
    let (ab, ba) = (Shared::default(), Shared::default());
    (
        BridgeLeg {
            out: ab.clone(),
            inp: ba.clone(),
            hung_up: false,
        },
        BridgeLeg {
            out: ba,
            inp: ab,
            hung_up: false,
        },
    )
}

impl BridgeLeg {
    /// Samples dropped so far in the direction this leg sends (the other
    /// leg's audio arriving faster than this one plays it).
    pub fn dropped_samples(&self) -> u64 {
        lock(&self.inp).dropped
    }

    /// True once the other leg's media has stopped.
    pub fn other_gone(&self) -> bool {
        lock(&self.inp).closed
    }

    fn close(&mut self) {
        for q in [&self.out, &self.inp] {
            let mut q = lock(q);
            q.closed = true;
            q.samples.clear();
            q.digits.clear();
        }
    }

    fn hang_up(&mut self) -> Action {
        if std::mem::replace(&mut self.hung_up, true) {
            Action::Nothing
        } else {
            Action::Hangup
        }
    }
}

impl MediaHandler for BridgeLeg {
    fn stream_started(&mut self) -> Action {
        Action::Listen(LiveSink::new(Writer(self.out.clone())))
            .also(Action::play_live(LiveSource::new(Reader(self.inp.clone()))))
    }

    fn play_complete(&mut self, played: &PlaySource) -> Action {
        match played {
            PlaySource::Live(_) if self.other_gone() => self.hang_up(),
            _ => Action::Nothing,
        }
    }

    fn dtmf(&mut self, digit: char) -> Action {
        let mut q = lock(&self.out);
        if !q.closed && q.digits.len() < DTMF_CAP {
            q.digits.push(digit);
        }
        Action::Nothing
    }

    fn poll(&mut self) -> Action {
        let mut q = lock(&self.inp);
        if q.closed {
            drop(q);
            return self.hang_up();
        }
        if q.digits.is_empty() {
            return Action::Nothing;
        }
        Action::SendDtmf(std::mem::take(&mut q.digits))
    }

    fn session_stopped(&mut self) {
        self.close();
    }
}

impl Drop for BridgeLeg {
    /// A leg whose call never got media (not answered, failed) ends the other.
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaEngine, Output, tone_present};

    fn tone(freq: f64, n: usize) -> Vec<[i16; 160]> {
        let mut t = crate::media::Tone::new(freq, 0.5).lasting(10.0);
        (0..n)
            .map(|_| {
                let mut f = [0i16; 160];
                t.read(&mut f);
                f
            })
            .collect()
    }

    #[test]
    fn each_leg_sends_what_the_other_receives() {
        let (a, b) = bridge();
        let (mut a, mut b) = (MediaEngine::new(a), MediaEngine::new(b));
        a.start();
        b.start();
        // Before anything arrives: silence, not an ended source.
        assert!(b.frames(2).iter().all(|s| *s == 0));
        for (fa, fb) in tone(440.0, 25).iter().zip(tone(1000.0, 25).iter()) {
            a.received(fa);
            b.received(fb);
        }
        let to_b = b.frames(5);
        let to_a = a.frames(5);
        assert!(
            tone_present(&to_b, 440.0, 8000, 0.5),
            "A's caller heard on B"
        );
        assert!(
            tone_present(&to_a, 1000.0, 8000, 0.5),
            "B's callee heard on A"
        );
        assert!(!tone_present(&to_b, 1000.0, 8000, 0.5));
    }

    #[test]
    fn the_delay_is_bounded() {
        let (a, b) = bridge();
        let (mut a, mut b) = (MediaEngine::new(a), MediaEngine::new(b));
        a.start();
        b.start();
        // 2 s arrive on A while B sends nothing (not answered yet, say).
        for f in tone(440.0, 100) {
            a.received(&f);
        }
        // At most 200 ms wait; what is left plays, then silence.
        let after = b.frames(15);
        assert!(after[..QUEUE_TARGET].iter().any(|s| *s != 0));
        assert!(after[QUEUE_CAP..].iter().all(|s| *s == 0));
        assert!(b.handler_ref().dropped_samples() >= (16000 - QUEUE_CAP) as u64);
    }

    #[test]
    fn early_ticks_do_not_put_gaps_in_the_audio() {
        let (a, b) = bridge();
        let (mut a, mut b) = (MediaEngine::new(a), MediaEngine::new(b));
        a.start();
        b.start();
        let mut heard = Vec::new();
        let frames_in = tone(440.0, 60);
        // B's timer runs a little ahead of A's: now and then it ticks twice
        // between two of A's frames.
        for (i, f) in frames_in.iter().enumerate() {
            a.received(f);
            heard.extend(b.frames(if i % 7 == 3 { 0 } else { 1 }));
            if i % 11 == 5 {
                heard.extend(b.frames(1));
            }
        }
        let start = heard.iter().position(|s| *s != 0).unwrap();
        let end = heard.iter().rposition(|s| *s != 0).unwrap();
        let gaps = heard[start..end]
            .chunks(160)
            .filter(|c| c.iter().all(|s| *s == 0))
            .count();
        assert_eq!(gaps, 0, "continuous once flowing");
        assert!(tone_present(&heard[start..end], 440.0, 8000, 0.8));
    }

    #[test]
    fn digits_cross_and_the_end_hangs_up_the_other_leg() {
        let (a, b) = bridge();
        let (mut a, mut b) = (MediaEngine::new(a), MediaEngine::new(b));
        a.start();
        b.start();
        a.dtmf('5');
        a.dtmf('#');
        b.frames(1);
        assert_eq!(b.poll_output(), Some(Output::SendDtmf('5')));
        assert_eq!(b.poll_output(), Some(Output::SendDtmf('#')));
        assert_eq!(a.poll_output(), None);
        a.stop();
        b.frames(1);
        assert_eq!(b.poll_output(), Some(Output::Hangup));
        b.frames(3);
        assert_eq!(b.poll_output(), None, "one hangup only");
    }

    #[test]
    fn a_leg_dropped_unused_ends_the_other() {
        let (a, b) = bridge();
        let mut b = MediaEngine::new(b);
        b.start();
        drop(a);
        b.frames(1);
        assert_eq!(b.poll_output(), Some(Output::Hangup));
    }
}
