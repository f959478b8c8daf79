//! The bounded sample queue between a device callback and a call.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// What a device ring has seen since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Samples that went into the ring.
    pub pushed: u64,
    /// Samples that came out of the ring (not counting substituted silence).
    pub popped: u64,
    /// Times the reader wanted more samples than the ring held.
    pub underruns: u64,
    /// Samples of silence substituted on underruns.
    pub silence: u64,
    /// Times the writer found the ring too full and dropped its oldest samples.
    pub overruns: u64,
    /// Samples dropped on overruns.
    pub dropped: u64,
    /// Errors the audio backend reported on the stream (xruns, disconnection).
    pub stream_errors: u64,
}

struct Inner {
    buf: VecDeque<i16>,
    stats: RingStats,
}

/// A mutex-protected deque with a fixed capacity: writes drop the oldest
/// samples when full, reads fill the missing part with silence. The lock is
/// held only to copy samples in or out.
pub(crate) struct Ring {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Ring {
        let capacity = capacity.max(1);
        Ring {
            capacity,
            inner: Mutex::new(Inner {
                buf: VecDeque::with_capacity(capacity),
                stats: RingStats::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the deque inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `samples`, dropping the oldest ones beyond the capacity.
    pub(crate) fn push(&self, samples: &[i16]) {
        if samples.is_empty() {
            return;
        }
        let mut g = self.lock();
        g.stats.pushed += samples.len() as u64;
        let keep = &samples[samples.len().saturating_sub(self.capacity)..];
        let excess = (g.buf.len() + samples.len()).saturating_sub(self.capacity);
        if excess > 0 {
            let from_buf = excess.min(g.buf.len());
            g.buf.drain(..from_buf);
            g.stats.overruns += 1;
            g.stats.dropped += excess as u64;
        }
        g.buf.extend(keep.iter().copied());
    }

    /// Fills `out` from the front of the ring, with silence for what is missing.
    /// Returns how many real samples were copied.
    pub(crate) fn pop_fill(&self, out: &mut [i16]) -> usize {
        let mut g = self.lock();
        let n = out.len().min(g.buf.len());
        for (o, s) in out.iter_mut().zip(g.buf.drain(..n)) {
            *o = s;
        }
        out[n..].fill(0);
        g.stats.popped += n as u64;
        if n < out.len() {
            g.stats.underruns += 1;
            g.stats.silence += (out.len() - n) as u64;
        }
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    pub(crate) fn stream_error(&self) {
        self.lock().stats.stream_errors += 1;
    }

    pub(crate) fn stats(&self) -> RingStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrun_drops_the_oldest_and_underrun_fills_silence() {
        let r = Ring::new(4);
        r.push(&[1, 2, 3]);
        r.push(&[4, 5, 6]);
        let mut out = [9; 6];
        assert_eq!(r.pop_fill(&mut out), 4);
        assert_eq!(out, [3, 4, 5, 6, 0, 0]);
        let s = r.stats();
        assert_eq!(
            (s.overruns, s.dropped, s.underruns, s.silence),
            (1, 2, 1, 2)
        );
        // A single write larger than the ring keeps its newest samples.
        r.push(&[1, 2, 3, 4, 5, 6, 7]);
        let mut out = [0; 4];
        assert_eq!(r.pop_fill(&mut out), 4);
        assert_eq!(out, [4, 5, 6, 7]);
        assert_eq!(r.stats().dropped, 5);
        assert_eq!(r.len(), 0);
    }
}
