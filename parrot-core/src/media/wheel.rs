//! A media thread's sessions by the time each is next due: a timing wheel.
//!
//! Every session is taken out and put back once a ptime, so the queue's own
//! cost is paid 50 times a second per session. A binary heap paid a sift
//! down and a sift up of ~12 levels each time (`BinaryHeap::pop` alone was
//! ~2 % of all samples at 2500 calls, of the media threads' ~45 %). The wheel
//! files a session under the half millisecond it is due in (its bucket), a
//! push onto that bucket's list; a wake-up takes whole buckets. Times past
//! the wheel's span (128 ms: a longer ptime, a session that sleeps long) wait
//! in a heap of their own and move into the wheel as it comes round to them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The time one bucket covers, and how long after its wake-up a media thread
/// steps the sessions due together (`GATHER` in session.rs is this): finer
/// buckets would buy nothing.
pub(super) const WIDTH: Duration = Duration::from_micros(500);

/// Buckets in the wheel: 128 ms, more than any ptime a call uses (RFC 4566
/// `ptime`: 10–60 ms in practice).
const BUCKETS: u64 = 256;

/// The wheel's span: due times at most this far past its current bucket go in a bucket.
#[cfg(test)]
const SPAN: Duration = Duration::from_micros(500 * BUCKETS);

/// What the wheel holds: a due time and a session's slot.
pub(super) type Due = (Instant, usize);

pub(super) struct Wheel {
    /// Bucket number 0 starts here.
    origin: Instant,
    /// Bucket number `n` is `buckets[n % BUCKETS]`.
    buckets: Vec<Vec<Due>>,
    /// No entry of the wheel is in a bucket before this one, and it is never
    /// past the bucket of the latest `take_due`'s `until`: an entry due
    /// earlier than its bucket (a new session is due at once) goes in it.
    cursor: u64,
    /// Entries in the buckets.
    near: usize,
    /// Entries due at or past bucket `cursor + BUCKETS`.
    far: BinaryHeap<Reverse<Due>>,
}

impl Wheel {
    pub(super) fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            cursor: 0,
            near: 0,
            far: BinaryHeap::new(),
        }
    }

    /// How many sessions it holds.
    pub(super) fn len(&self) -> usize {
        self.near + self.far.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of the bucket `t` falls in (0 before the origin).
    fn number(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        // Whole seconds and the rest apart: no 128-bit division.
        d.as_secs() * (1_000_000_000 / WIDTH.as_nanos() as u64)
            + u64::from(d.subsec_nanos() / WIDTH.subsec_nanos())
    }

    fn bucket(&mut self, n: u64) -> &mut Vec<Due> {
        &mut self.buckets[(n % BUCKETS) as usize]
    }

    /// Files `slot` as due at `due`.
    pub(super) fn push(&mut self, due: Instant, slot: usize) {
        let n = self.number(due).max(self.cursor);
        if n - self.cursor < BUCKETS {
            self.bucket(n).push((due, slot));
            self.near += 1;
        } else {
            self.far.push(Reverse((due, slot)));
        }
    }

    /// Far entries the wheel has come round to go into their buckets.
    fn migrate(&mut self) {
        while let Some(&Reverse((due, slot))) = self.far.peek() {
            if self.number(due) >= self.cursor + BUCKETS {
                break;
            }
            self.far.pop();
            self.push(due, slot);
        }
    }

    /// The earliest due time it holds.
    pub(super) fn earliest(&self) -> Option<Instant> {
        if self.near > 0 {
            // Buckets go up in time from the cursor; within one, any order.
            for k in 0..BUCKETS {
                let b = &self.buckets[((self.cursor + k) % BUCKETS) as usize];
                if let Some(min) = b.iter().map(|e| e.0).min() {
                    return Some(min);
                }
            }
        }
        self.far.peek().map(|Reverse(e)| e.0)
    }

    /// Moves every entry due at or before `until` to `out`, bucket by bucket
    /// (within a bucket, in the order they were filed).
    pub(super) fn take_due(&mut self, until: Instant, out: &mut Vec<Due>) {
        let end = self.number(until);
        while self.cursor < end {
            if self.near == 0 {
                // Nothing in the buckets: on to the far heap's first, or the end.
                let far = self.far.peek().map(|Reverse(e)| self.number(e.0));
                self.cursor = far.map_or(end, |n| n.min(end)).max(self.cursor + 1);
            } else {
                let c = self.cursor;
                let b = self.bucket(c);
                let taken = b.len();
                out.append(b);
                self.near -= taken;
                self.cursor += 1;
            }
            self.migrate();
        }
        self.migrate();
        // The bucket `until` falls in: those due by then.
        let before = out.len();
        self.bucket(end).retain(|&e| {
            if e.0 <= until {
                out.push(e);
                false
            } else {
                true
            }
        });
        self.near -= out.len() - before;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `take_due` gave, sorted, against the entries due by then.
    fn check(wheel: &mut Wheel, all: &mut Vec<Due>, until: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        wheel.take_due(until, &mut out);
        out.sort();
        let mut expected: Vec<Due> = all.iter().copied().filter(|e| e.0 <= until).collect();
        expected.sort();
        all.retain(|e| e.0 > until);
        assert_eq!(out, expected, "due by {until:?}");
        assert_eq!(wheel.len(), all.len());
        assert_eq!(wheel.earliest(), all.iter().map(|e| e.0).min());
        out
    }

    #[test]
    fn takes_what_is_due_in_and_past_the_span() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_micros(m * 1000 + 137);
        let mut w = Wheel::new(t0);
        let mut all = vec![
            (ms(0), 1),
            (ms(20), 2),
            (ms(20), 3),
            (ms(21), 4),
            (t0 + SPAN + Duration::from_millis(5), 5),
            (t0 + Duration::from_secs(600), 6),
        ];
        for &(due, slot) in &all {
            w.push(due, slot);
        }
        assert_eq!(w.earliest(), Some(ms(0)));
        assert_eq!(check(&mut w, &mut all, ms(0)), vec![(ms(0), 1)]);
        // Within the bucket of `until`, only what is due by then.
        assert_eq!(
            check(&mut w, &mut all, ms(20) - Duration::from_micros(1)),
            vec![]
        );
        assert_eq!(check(&mut w, &mut all, ms(20)).len(), 2);
        // An entry due before the cursor's bucket (a new session, due at
        // once) is taken at the next wake-up.
        w.push(t0, 7);
        all.push((t0, 7));
        assert_eq!(check(&mut w, &mut all, ms(20)), vec![(t0, 7)]);
        // Past the span: from the far heap, as the wheel comes round.
        check(&mut w, &mut all, ms(200));
        // A thread idle for minutes, then due again.
        assert_eq!(
            check(&mut w, &mut all, t0 + Duration::from_secs(900)).len(),
            1
        );
        assert!(w.is_empty());
        assert_eq!(w.earliest(), None);
    }

    #[test]
    fn agrees_with_a_sorted_list_as_sessions_come_round() {
        // Sessions of several ptimes, each put back at its next due time
        // when taken, wake-ups at uneven intervals, new sessions now and then.
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let mut all = Vec::new();
        let mut seed = 0x2545_f491_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let ptime_of = |slot: usize| Duration::from_millis([10, 20, 30, 60, 150][slot % 5]);
        let mut now = t0;
        let mut next_slot = 0;
        for _ in 0..5000 {
            if rand(4) == 0 {
                let due = now + Duration::from_micros(rand(200_000));
                w.push(due, next_slot);
                all.push((due, next_slot));
                next_slot += 1;
            }
            now += Duration::from_micros(rand(3000));
            let until = now + WIDTH;
            for (due, slot) in check(&mut w, &mut all, until) {
                let again = due + ptime_of(slot);
                w.push(again, slot);
                all.push((again, slot));
            }
            assert_eq!(w.earliest(), all.iter().map(|e| e.0).min());
        }
        assert!(next_slot > 1000);
    }
}
