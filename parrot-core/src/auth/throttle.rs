//! Throttling of repeated authentication failures per source address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Counts failed authentications per source address and, after too many in
/// a window, refuses that source for a while (Kamailio's `pike` plus an
/// `htable` ban, fail2ban in front of Asterisk, done in the stack).
///
/// Sans-IO: times are seconds on any clock the caller keeps. A source is an
/// IPv4 address or an IPv6 /64 (one host can pick any address in its /64).
/// At most [`Throttle::with_max_sources`] sources are tracked; beyond that the
/// oldest are forgotten, so memory is bounded whatever the attacker does.
///
/// Default: 5 failures within 60 s block the source for 300 s; 10,000 sources.
/// Hosts behind one NAT share an address, and so share the count.
#[derive(Debug, Clone)]
pub struct Throttle {
    max_failures: u32,
    window: u64,
    block: u64,
    capacity: usize,
    sources: HashMap<IpAddr, Entry>,
    /// Insertion order, for forgetting: (source, the entry's serial).
    order: VecDeque<(IpAddr, u64)>,
    serial: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    serial: u64,
    failures: u32,
    since: u64,
    blocked_until: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(5, Duration::from_secs(60), Duration::from_secs(300))
    }
}

impl Throttle {
    /// After `max_failures` failures from one source within `window`, the
    /// source is refused for `block` (whole seconds; `max_failures` 0 means
    /// never).
    pub fn new(max_failures: u32, window: Duration, block: Duration) -> Throttle {
        Throttle {
            max_failures,
            window: window.as_secs().max(1),
            block: block.as_secs(),
            capacity: 10_000,
            sources: HashMap::new(),
            order: VecDeque::new(),
            serial: 0,
        }
    }

    /// No throttling.
    pub fn off() -> Throttle {
        Throttle::new(0, Duration::from_secs(1), Duration::ZERO)
    }

    /// Tracks at most `sources` source addresses (at least 1).
    pub fn with_max_sources(mut self, sources: usize) -> Throttle {
        self.capacity = sources.max(1);
        self
    }

    /// True while `source` is refused at `now` (seconds).
    pub fn is_blocked(&self, source: IpAddr, now: u64) -> bool {
        self.sources
            .get(&key(source))
            .is_some_and(|e| now < e.blocked_until)
    }

    /// Records a failed authentication from `source` at `now`; true if this
    /// one starts a block.
    pub fn failed(&mut self, source: IpAddr, now: u64) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let source = key(source);
        self.forget_expired(now);
        if !self.sources.contains_key(&source) {
            while self.sources.len() >= self.capacity {
                let Some((old, serial)) = self.order.pop_front() else {
                    break;
                };
                if self.sources.get(&old).is_some_and(|e| e.serial == serial) {
                    self.sources.remove(&old);
                }
            }
            self.serial += 1;
            self.sources.insert(
                source,
                Entry {
                    serial: self.serial,
                    failures: 0,
                    since: now,
                    blocked_until: 0,
                },
            );
            self.order.push_back((source, self.serial));
        }
        let Some(e) = self.sources.get_mut(&source) else {
            return false;
        };
        if now >= e.since.saturating_add(self.window) {
            e.failures = 0;
            e.since = now;
        }
        e.failures += 1;
        if e.failures < self.max_failures {
            return false;
        }
        e.failures = 0;
        e.since = now;
        e.blocked_until = now.saturating_add(self.block);
        true
    }

    /// Forgets a few entries from the front that neither count nor block any
    /// more (amortised: the table does not wait for the cap to shrink).
    fn forget_expired(&mut self, now: u64) {
        for _ in 0..4 {
            let Some(&(ip, serial)) = self.order.front() else {
                return;
            };
            let done = match self.sources.get(&ip) {
                Some(e) if e.serial == serial => {
                    now >= e.since.saturating_add(self.window) && now >= e.blocked_until
                }
                _ => true,
            };
            if !done {
                return;
            }
            self.order.pop_front();
            if self.sources.get(&ip).is_some_and(|e| e.serial == serial) {
                self.sources.remove(&ip);
            }
        }
    }

    /// How many sources are tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

/// The address counted for `ip`: itself for IPv4, its /64 for IPv6
/// (IPv4-mapped IPv6 addresses count as the IPv4 address).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn blocks_after_the_limit_within_the_window_then_lets_go() {
        let mut t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(300));
        let a = ip("192.0.2.1");
        assert!(!t.failed(a, 0));
        assert!(!t.failed(a, 10));
        assert!(!t.is_blocked(a, 10));
        assert!(t.failed(a, 20), "the third within 60 s");
        assert!(t.is_blocked(a, 20));
        assert!(t.is_blocked(a, 319));
        assert!(!t.is_blocked(ip("192.0.2.2"), 20), "others are not");
        assert!(!t.is_blocked(a, 320), "the block ends");
        // Failures spread wider than the window never block.
        for n in 0..10 {
            assert!(!t.failed(a, 400 + n * 61));
        }
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let mut t = Throttle::new(2, Duration::from_secs(60), Duration::from_secs(60));
        t.failed(ip("2001:db8:1:2::1"), 0);
        t.failed(ip("2001:db8:1:2::ffff"), 1);
        assert!(t.is_blocked(ip("2001:db8:1:2:abcd::9"), 2));
        assert!(!t.is_blocked(ip("2001:db8:1:3::1"), 2));
        t.failed(ip("::ffff:192.0.2.7"), 0);
        t.failed(ip("192.0.2.7"), 1);
        assert!(t.is_blocked(ip("192.0.2.7"), 2));
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = Throttle::default().with_max_sources(100);
        for n in 0..10_000u32 {
            t.failed(IpAddr::V4(n.into()), 5);
            assert!(t.tracked() <= 100);
        }
        // Expired entries go without waiting for the cap.
        let mut t = Throttle::default();
        for n in 0..1_000u32 {
            t.failed(IpAddr::V4(n.into()), u64::from(n) * 100);
        }
        assert!(t.tracked() < 10, "{}", t.tracked());
    }

    #[test]
    fn off_never_blocks() {
        let mut t = Throttle::off();
        let a = ip("192.0.2.1");
        for n in 0..100 {
            assert!(!t.failed(a, n));
        }
        assert!(!t.is_blocked(a, 100));
        assert_eq!(t.tracked(), 0);
    }
}
