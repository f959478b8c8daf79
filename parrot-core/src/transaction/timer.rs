//! Transaction timers (RFC 3261 §17, Table 4 of Appendix A; RFC 6026 §8.11 for L and M).
//!
//! Every duration the layer uses comes from [`Timer::initial`] and
//! [`Timer::backoff`], the table below; nothing else in the module knows a number.

use std::time::Duration;

/// Timer values (RFC 3261 §17.1.1.1 and Appendix A). Defaults: T1 500 ms, T2 4 s, T4 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimerConfig {
    /// RTT estimate (T1, default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (T2, default 4 s).
    pub t2: Duration,
    /// Maximum time a message remains in the network (T4, default 5 s).
    pub t4: Duration,
    /// Send `100 Trying` for an INVITE when the TU has not responded within this
    /// time (RFC 3261 §17.2.1 recommends 200 ms); `None` turns it off.
    pub auto_trying: Option<Duration>,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            auto_trying: Some(Duration::from_millis(200)),
        }
    }
}

impl TimerConfig {
    /// The defaults of RFC 3261 (T1 500 ms, T2 4 s, T4 5 s, 100 Trying after 200 ms).
    pub fn new() -> Self {
        Self::default()
    }

    /// These values with another T1.
    pub fn with_t1(mut self, t1: Duration) -> Self {
        self.t1 = t1;
        self
    }

    /// These values with another T2.
    pub fn with_t2(mut self, t2: Duration) -> Self {
        self.t2 = t2;
        self
    }

    /// These values with another T4.
    pub fn with_t4(mut self, t4: Duration) -> Self {
        self.t4 = t4;
        self
    }

    /// These values with the automatic `100 Trying` delay changed (`None`: never).
    pub fn with_auto_trying(mut self, after: Option<Duration>) -> Self {
        self.auto_trying = after;
        self
    }
}

/// The transaction timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE client: request retransmission (unreliable transports only).
    A,
    /// INVITE client: transaction timeout in Calling.
    B,
    /// INVITE client: wait for response retransmissions in Completed.
    D,
    /// Non-INVITE client: request retransmission (unreliable transports only).
    E,
    /// Non-INVITE client: transaction timeout.
    F,
    /// INVITE server: final (non-2xx) response retransmission (unreliable only).
    G,
    /// INVITE server: wait for the ACK in Completed.
    H,
    /// INVITE server: wait for ACK retransmissions in Confirmed.
    I,
    /// Non-INVITE server: wait for request retransmissions in Completed.
    J,
    /// Non-INVITE client: wait for response retransmissions in Completed.
    K,
    /// INVITE server: lifetime of the Accepted state (RFC 6026 §7.1); also the
    /// limit for 2xx retransmission without ACK (RFC 3261 §13.3.1.4).
    L,
    /// INVITE client: lifetime of the Accepted state (RFC 6026 §7.2).
    M,
    /// INVITE server: send `100 Trying` if the TU has not responded (§17.2.1).
    Trying,
    /// INVITE server in Accepted: 2xx retransmission until the ACK (§13.3.1.4).
    Retransmit2xx,
}

/// What a timer starts from.
#[derive(Clone, Copy)]
enum Base {
    T1,
    T4,
    T1x64,
    /// RFC 3261 §17.1.1.2: "at least 32 seconds" for unreliable transports.
    Secs32,
    Trying,
}

/// How a retransmission timer grows after it fires.
#[derive(Clone, Copy)]
enum Backoff {
    /// Fires once.
    None,
    /// Doubles without limit (Timer A: §17.1.1.2 gives no cap).
    Double,
    /// Doubles up to T2 (Timers E, G and the 2xx retransmission).
    DoubleToT2,
}

/// Behaviour on reliable transports (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
#[derive(Clone, Copy)]
enum OnReliable {
    /// The same as on unreliable transports.
    Same,
    /// Not started at all.
    Unused,
    /// Zero: the state is left at once.
    Zero,
}

/// The table: (timer, base value, reliable transports, backoff).
const TABLE: [(Timer, Base, OnReliable, Backoff); 14] = [
    (Timer::A, Base::T1, OnReliable::Unused, Backoff::Double),
    (Timer::B, Base::T1x64, OnReliable::Same, Backoff::None),
    (Timer::D, Base::Secs32, OnReliable::Zero, Backoff::None),
    (Timer::E, Base::T1, OnReliable::Unused, Backoff::DoubleToT2),
    (Timer::F, Base::T1x64, OnReliable::Same, Backoff::None),
    (Timer::G, Base::T1, OnReliable::Unused, Backoff::DoubleToT2),
    (Timer::H, Base::T1x64, OnReliable::Same, Backoff::None),
    (Timer::I, Base::T4, OnReliable::Zero, Backoff::None),
    (Timer::J, Base::T1x64, OnReliable::Zero, Backoff::None),
    (Timer::K, Base::T4, OnReliable::Zero, Backoff::None),
    (Timer::L, Base::T1x64, OnReliable::Same, Backoff::None),
    (Timer::M, Base::T1x64, OnReliable::Same, Backoff::None),
    (Timer::Trying, Base::Trying, OnReliable::Same, Backoff::None),
    // §13.3.1.4 does not exempt reliable transports: the hop after a proxy
    // may be UDP, so the UAS retransmits its 2xx end to end on any transport.
    (
        Timer::Retransmit2xx,
        Base::T1,
        OnReliable::Same,
        Backoff::DoubleToT2,
    ),
];

impl Timer {
    /// A timer whose firing only ends a transaction that has nothing left to
    /// say (it waited for retransmissions to absorb, §17.1.1.2, §17.1.2.2,
    /// §17.2.1, §17.2.2, RFC 6026 §7.1–7.2): D, I, J, K, L and M. Firing one a
    /// little late changes nothing on the wire, so the layer wakes for them
    /// in batches ([`LAZY_GRAIN`](super::layer::LAZY_GRAIN)). L also ends a
    /// 2xx's retransmissions without an ACK; being 64·T1 long, it is late by
    /// a 1600th at most.
    pub(crate) fn is_lazy(self) -> bool {
        matches!(
            self,
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M
        )
    }

    fn row(self) -> (Base, OnReliable, Backoff) {
        // The table is indexed by declaration order; `table_is_in_order` checks it.
        let (_, base, rel, back) = TABLE[self as usize];
        (base, rel, back)
    }

    /// The first interval of this timer, or `None` if it is not used: not on a
    /// reliable transport (A, E, G), or `100 Trying` turned off.
    /// `Some(Duration::ZERO)` means the state it guards is left at once.
    pub fn initial(self, config: &TimerConfig, reliable: bool) -> Option<Duration> {
        let (base, rel, _) = self.row();
        if reliable {
            match rel {
                OnReliable::Same => {}
                OnReliable::Unused => return None,
                OnReliable::Zero => return Some(Duration::ZERO),
            }
        }
        match base {
            Base::T1 => Some(config.t1),
            Base::T4 => Some(config.t4),
            Base::T1x64 => Some(config.t1 * 64),
            Base::Secs32 => Some(Duration::from_secs(32)),
            Base::Trying => config.auto_trying,
        }
    }

    /// The next interval of a retransmission timer that fired after `previous`.
    pub fn backoff(self, config: &TimerConfig, previous: Duration) -> Duration {
        match self.row().2 {
            Backoff::None => previous,
            Backoff::Double => previous * 2,
            Backoff::DoubleToT2 => (previous * 2).min(config.t2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i);
        }
    }

    #[test]
    fn durations() {
        let c = TimerConfig::default();
        let s = Duration::from_secs;
        assert_eq!(Timer::A.initial(&c, false), Some(c.t1));
        assert_eq!(Timer::A.initial(&c, true), None);
        assert_eq!(Timer::B.initial(&c, true), Some(s(32)));
        assert_eq!(Timer::D.initial(&c, false), Some(s(32)));
        assert_eq!(Timer::D.initial(&c, true), Some(Duration::ZERO));
        assert_eq!(Timer::I.initial(&c, false), Some(s(5)));
        assert_eq!(Timer::J.initial(&c, true), Some(Duration::ZERO));
        assert_eq!(Timer::K.initial(&c, false), Some(s(5)));
        assert_eq!(Timer::A.backoff(&c, s(4)), s(8));
        assert_eq!(Timer::E.backoff(&c, s(4)), s(4));
        assert_eq!(Timer::G.backoff(&c, s(2)), s(4));
        assert_eq!(
            Timer::Trying.initial(&c.with_auto_trying(None), false),
            None
        );
    }
}
