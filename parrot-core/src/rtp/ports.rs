//! RTP/RTCP port pairs from a configured range.
//!
//! RFC 3550 §11: RTP uses an even port and RTCP the next (odd) one. The allocator only
//! keeps the books; the runtime binds. Pairs are handed out round-robin, so a pair just
//! released is reused last (stray packets of an old call are less likely to reach a new
//! one). When binding fails (another program holds the port), call
//! [`PortAllocator::try_next`] again: the cursor has moved past the failed pair, which stays
//! reserved until [`PortAllocator::release`]d.
//!
//! A pair bound for a call stays marked in use for as long as its sockets are open: the
//! runtime's `media::bind_pair` hands out a [`PortLease`] that releases the pair when
//! dropped, and the media session keeps it beside the sockets. So [`PortAllocator::in_use`]
//! counts the pairs calls really hold, and a pair a call holds is never tried again.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

/// An RTP port and its RTCP port (`rtp + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortPair {
    /// The even RTP port.
    pub rtp: u16,
    /// The odd RTCP port, `rtp + 1`.
    pub rtcp: u16,
}

/// The range holds no even/odd pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port range {start}..={end} holds no even/odd pair (port 0 excluded)")]
#[non_exhaustive]
pub struct PortRangeError {
    /// First port of the range.
    pub start: u16,
    /// Last port of the range.
    pub end: u16,
}

/// Hands out RTP/RTCP port pairs from a range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    /// First RTP port (even, non-zero).
    first: u16,
    /// Pair `i` is `first + 2i`; `true` when in use.
    used: Vec<bool>,
    in_use: usize,
    cursor: usize,
}

impl PortAllocator {
    /// An allocator over `range` (both ends included). Pairs are `(p, p+1)` with `p` even,
    /// both inside the range; port 0 is never used.
    pub fn new(range: RangeInclusive<u16>) -> Result<Self, PortRangeError> {
        let (start, end) = (*range.start(), *range.end());
        let err = PortRangeError { start, end };
        let Some(first) = start.max(2).checked_next_multiple_of(2) else {
            return Err(err);
        };
        if first >= end {
            return Err(err);
        }
        let pairs = usize::from((end - first - 1) / 2 + 1);
        Ok(PortAllocator {
            first,
            used: vec![false; pairs],
            in_use: 0,
            cursor: 0,
        })
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    /// Number of pairs handed out and not released.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Reserves the next free pair after the last one handed out (wrapping around), or
    /// `None` when all are in use.
    pub fn try_next(&mut self) -> Option<PortPair> {
        let n = self.used.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.in_use += 1;
                self.cursor = (i + 1) % n;
                return Some(self.pair(i));
            }
        }
        None
    }

    /// Reserves pairs in turn until `bind` succeeds for one, trying each free pair at most
    /// once. Pairs that failed to bind are released again. Returns the pair and what `bind`
    /// returned, or `None` if every free pair failed.
    pub fn allocate_with<T>(
        &mut self,
        mut bind: impl FnMut(PortPair) -> Option<T>,
    ) -> Option<(PortPair, T)> {
        let mut failed = Vec::new();
        let mut found = None;
        while let Some(pair) = self.try_next() {
            if let Some(bound) = bind(pair) {
                found = Some((pair, bound));
                break;
            }
            failed.push(pair);
        }
        for pair in failed {
            self.release(pair);
        }
        found
    }

    /// Returns a pair. `false` if it was not handed out by this allocator.
    pub fn release(&mut self, pair: PortPair) -> bool {
        let Some(i) = self.index(pair) else {
            return false;
        };
        if !self.used[i] {
            return false;
        }
        self.used[i] = false;
        self.in_use -= 1;
        true
    }

    /// Whether `pair` is currently handed out.
    pub fn is_in_use(&self, pair: PortPair) -> bool {
        self.index(pair).is_some_and(|i| self.used[i])
    }

    fn index(&self, pair: PortPair) -> Option<usize> {
        if pair.rtp < self.first || pair.rtp % 2 != 0 || Some(pair.rtcp) != pair.rtp.checked_add(1)
        {
            return None;
        }
        let i = usize::from((pair.rtp - self.first) / 2);
        (i < self.used.len()).then_some(i)
    }

    fn pair(&self, i: usize) -> PortPair {
        // `i < used.len()`, so the port fits the range it was built from.
        let rtp = self.first + 2 * i as u16;
        PortPair { rtp, rtcp: rtp + 1 }
    }
}

/// A pair reserved in a shared [`PortAllocator`] until this is dropped (then released).
///
/// Keep it as long as the sockets bound to the pair are open: the media session holds it
/// beside them.
#[derive(Debug)]
#[must_use = "dropping the lease releases the pair at once"]
pub struct PortLease {
    ports: Arc<Mutex<PortAllocator>>,
    pair: PortPair,
}

impl PortLease {
    /// Reserves the next free pair of `ports` for which `bind` succeeds (each free pair
    /// tried once, those that fail released again; see [`PortAllocator::allocate_with`]):
    /// the lease and what `bind` returned, or `None` if no free pair binds.
    pub fn allocate<T>(
        ports: &Arc<Mutex<PortAllocator>>,
        bind: impl FnMut(PortPair) -> Option<T>,
    ) -> Option<(PortLease, T)> {
        let (pair, bound) = ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allocate_with(bind)?;
        Some((
            PortLease {
                ports: Arc::clone(ports),
                pair,
            },
            bound,
        ))
    }

    /// The pair held.
    pub fn pair(&self) -> PortPair {
        self.pair
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_its_pair_until_dropped() {
        let ports = Arc::new(Mutex::new(PortAllocator::new(40000..=40005).unwrap()));
        let in_use = || ports.lock().unwrap().in_use();
        let (a, ()) = PortLease::allocate(&ports, |_| Some(())).unwrap();
        let (b, ()) = PortLease::allocate(&ports, |_| Some(())).unwrap();
        assert_ne!(a.pair(), b.pair());
        assert_eq!(in_use(), 2);
        assert!(ports.lock().unwrap().is_in_use(a.pair()));
        // The one left is handed out; then none.
        let (c, ()) = PortLease::allocate(&ports, |_| Some(())).unwrap();
        assert!(PortLease::allocate(&ports, |_| Some(())).is_none());
        // A held pair is never offered to `bind` again.
        let held = [a.pair(), b.pair(), c.pair()];
        drop(b);
        let mut tried = Vec::new();
        let (d, ()) = PortLease::allocate(&ports, |p| {
            tried.push(p);
            Some(())
        })
        .unwrap();
        assert_eq!(tried, vec![held[1]]);
        assert_eq!(d.pair(), held[1]);
        drop((a, c, d));
        assert_eq!(in_use(), 0);
        // Pairs that fail to bind are not kept.
        assert!(PortLease::allocate(&ports, |_| None::<()>).is_none());
        assert_eq!(in_use(), 0);
    }

    #[test]
    fn pairs_are_even_odd_and_exhaust() {
        let mut a = PortAllocator::new(10001..=10008).unwrap();
        // 10002/3, 10004/5, 10006/7; 10008 has no odd partner in range.
        assert_eq!(a.capacity(), 3);
        let mut got = Vec::new();
        while let Some(p) = a.try_next() {
            assert_eq!(p.rtp % 2, 0);
            assert_eq!(p.rtcp, p.rtp + 1);
            got.push(p.rtp);
        }
        assert_eq!(got, [10002, 10004, 10006]);
        assert_eq!(a.in_use(), 3);
        assert_eq!(a.try_next(), None);
        assert!(a.release(PortPair {
            rtp: 10004,
            rtcp: 10005
        }));
        assert!(!a.release(PortPair {
            rtp: 10004,
            rtcp: 10005
        }));
        assert!(!a.release(PortPair {
            rtp: 10003,
            rtcp: 10004
        }));
        assert!(!a.release(PortPair {
            rtp: 20000,
            rtcp: 20001
        }));
        assert_eq!(a.try_next().map(|p| p.rtp), Some(10004));
        assert_eq!(a.try_next(), None);
    }

    #[test]
    fn round_robin_reuses_released_pairs_last() {
        let mut a = PortAllocator::new(20000..=20009).unwrap();
        let p1 = a.try_next().unwrap();
        a.release(p1);
        assert_eq!(a.try_next().map(|p| p.rtp), Some(20002));
        assert_eq!(a.try_next().map(|p| p.rtp), Some(20004));
    }

    #[test]
    fn bind_failures_are_skipped() {
        let mut a = PortAllocator::new(30000..=30009).unwrap();
        // The "OS" refuses 30000 and 30002.
        let (pair, token) = a
            .allocate_with(|p| (p.rtp >= 30004).then_some(u32::from(p.rtp) * 10))
            .unwrap();
        assert_eq!(pair.rtp, 30004);
        assert_eq!(token, 300040);
        assert_eq!(a.in_use(), 1);
        assert!(!a.is_in_use(PortPair {
            rtp: 30000,
            rtcp: 30001
        }));
        assert!(a.is_in_use(pair));
        // Nothing binds: None, and nothing stays reserved.
        assert!(a.allocate_with(|_| None::<()>).is_none());
        assert_eq!(a.in_use(), 1);
    }

    #[test]
    fn bad_ranges() {
        assert!(PortAllocator::new(5..=5).is_err());
        assert!(PortAllocator::new(7..=7).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 10..=2;
        assert!(PortAllocator::new(reversed).is_err());
        assert!(PortAllocator::new(65535..=65535).is_err());
        assert_eq!(PortAllocator::new(0..=3).unwrap().capacity(), 1);
        assert_eq!(PortAllocator::new(65534..=65535).unwrap().capacity(), 1);
        assert_eq!(PortAllocator::new(6..=7).unwrap().capacity(), 1);
    }
}
