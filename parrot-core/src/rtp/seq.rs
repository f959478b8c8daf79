//! Sequence number and timestamp arithmetic with wrap-around, and the source validation
//! and loss accounting of RFC 3550 Appendix A.1 and A.3.
//!
//! Comparisons use serial number arithmetic (RFC 1982): `a` is after `b` when the forward
//! distance from `b` to `a` is less than half the number space.

use std::cmp::Ordering;

/// Signed distance from `b` to `a` (`a - b`) in the 16-bit sequence space.
/// Exactly half the space apart (32768) counts as behind (negative).
pub fn seq_delta(a: u16, b: u16) -> i16 {
    // Reinterpreting the wrapped difference as signed is the serial-number rule.
    a.wrapping_sub(b) as i16
}

/// Orders two sequence numbers with wrap-around: 0 is after 65535.
pub fn seq_cmp(a: u16, b: u16) -> Ordering {
    seq_delta(a, b).cmp(&0)
}

/// Whether sequence number `a` comes after `b`, with wrap-around.
pub fn seq_after(a: u16, b: u16) -> bool {
    seq_delta(a, b) > 0
}

/// Signed distance from `b` to `a` (`a - b`) in the 32-bit timestamp space.
pub fn ts_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Orders two RTP timestamps with wrap-around.
pub fn ts_cmp(a: u32, b: u32) -> Ordering {
    ts_delta(a, b).cmp(&0)
}

/// Whether timestamp `a` comes after `b`, with wrap-around.
pub fn ts_after(a: u32, b: u32) -> bool {
    ts_delta(a, b) > 0
}

/// Extends a 16-bit sequence number to 64 bits, picking the value closest to `reference`
/// (itself extended). Used where a counter that never wraps is handier than serial compares.
pub fn extend_seq(reference: u64, seq: u16) -> u64 {
    // `reference as u16` keeps the low 16 bits, the position in the current cycle.
    let delta = i64::from(seq_delta(seq, reference as u16));
    reference.saturating_add_signed(delta)
}

/// A jump larger than this (forward) is not a plain loss (RFC 3550 §A.1: MAX_DROPOUT).
pub const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind (or less) is a late or duplicate packet (§A.1: MAX_MISORDER).
pub const MAX_MISORDER: u16 = 100;
/// Sequential packets needed before a source is valid (§A.1: MIN_SEQUENTIAL).
pub const MIN_SEQUENTIAL: u32 = 2;

const RTP_SEQ_MOD: u32 = 1 << 16;

/// The result of [`SequenceTracker::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeqUpdate {
    /// The packet is valid; its extended sequence number (cycles in the high 16 bits).
    Valid {
        /// Extended sequence number of this packet.
        extended: u32,
    },
    /// The source is on probation (not yet [`MIN_SEQUENTIAL`] packets in a row): not valid yet.
    Probation,
    /// A very large jump: dropped, but remembered; if the next packet follows it, the source
    /// is taken as restarted (§A.1).
    BadJump,
}

/// Per-source sequence state: RFC 3550 Appendix A.1 `update_seq` with probation, and the
/// received/expected/lost accounting of A.3.
#[derive(Debug, Clone)]
pub struct SequenceTracker {
    max_seq: u16,
    /// Shifted count of sequence number cycles (multiples of 2^16).
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    min_sequential: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
}

impl SequenceTracker {
    /// Starts tracking at the first packet seen, `seq`, with the default probation of
    /// [`MIN_SEQUENTIAL`] packets. Call [`update`](Self::update) with that packet too.
    pub fn new(seq: u16) -> Self {
        Self::with_probation(seq, MIN_SEQUENTIAL)
    }

    /// Like [`new`](Self::new) with another probation length; 0 or 1 make the source valid
    /// at its first packet.
    pub fn with_probation(seq: u16, min_sequential: u32) -> Self {
        let mut s = SequenceTracker {
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: 0,
            min_sequential,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
        };
        s.init(seq);
        // §A.1: "s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL;". With a probation of
        // one packet, `update(seq)` validates the source at once.
        s.max_seq = seq.wrapping_sub(1);
        s.probation = min_sequential.max(1);
        s.min_sequential = min_sequential.max(1);
        s
    }

    /// §A.1 `init_seq`.
    fn init(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1; // so seq == bad_seq is false
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// §A.1 `update_seq`: accounts for one received packet.
    pub fn update(&mut self, seq: u16) -> SeqUpdate {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // The source is valid only after MIN_SEQUENTIAL packets in sequence.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.received += 1;
                    return SeqUpdate::Valid {
                        extended: self.extended(seq),
                    };
                }
            } else if self.min_sequential == 1 {
                self.init(seq);
                self.probation = 0;
                self.received += 1;
                return SeqUpdate::Valid {
                    extended: self.extended(seq),
                };
            } else {
                self.probation = self.min_sequential - 1;
                self.max_seq = seq;
            }
            return SeqUpdate::Probation;
        } else if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                // Sequence number wrapped: count another 64K cycle.
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted without telling us.
                self.init(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return SeqUpdate::BadJump;
            }
        } else {
            // Duplicate or reordered packet.
        }
        self.received = self.received.wrapping_add(1);
        SeqUpdate::Valid {
            extended: self.extended(seq),
        }
    }

    /// The extended sequence number of `seq`, relative to the highest seen.
    fn extended(&self, seq: u16) -> u32 {
        self.extended_max()
            .wrapping_add_signed(i32::from(seq_delta(seq, self.max_seq)))
    }

    /// Whether the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// The extended highest sequence number received (§6.4.1).
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// The first valid sequence number (extended).
    pub fn base(&self) -> u32 {
        self.base_seq
    }

    /// Packets counted as received (duplicates included, as in §A.3).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected: extended highest − base + 1 (§A.3); 0 while on probation.
    pub fn expected(&self) -> u32 {
        if !self.is_valid() {
            return 0;
        }
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (§A.3): expected − received, clamped to the 24-bit signed
    /// range of a report block (duplicates can make it negative).
    pub fn cumulative_lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        // Clamped to ±2^23, so the cast cannot truncate.
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// The fraction lost since the previous call, in 1/256 units (§A.3), and starts a new
    /// interval. 0 when packets arrived as expected or more (duplicates).
    pub fn take_fraction_lost(&mut self) -> u8 {
        let fraction = self.fraction_lost();
        self.expected_prior = self.expected();
        self.received_prior = self.received;
        fraction
    }

    /// The fraction lost since the last [`take_fraction_lost`](Self::take_fraction_lost)
    /// (or the start), in 1/256 units, without starting a new interval.
    pub fn fraction_lost(&self) -> u8 {
        let expected_interval = self.expected().wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // lost_interval <= expected_interval, so the quotient is at most 256.
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_comparison_wraps() {
        assert!(seq_after(0, 65535));
        assert!(!seq_after(65535, 0));
        assert_eq!(seq_delta(0, 65535), 1);
        assert_eq!(seq_delta(65535, 0), -1);
        assert_eq!(seq_delta(5, 65530), 11);
        assert_eq!(seq_cmp(10, 10), Ordering::Equal);
        assert_eq!(seq_cmp(100, 65000), Ordering::Greater);
        assert_eq!(seq_delta(32768, 0), -32768);
        assert!(ts_after(10, u32::MAX - 10));
        assert_eq!(ts_delta(10, u32::MAX - 10), 21);
        assert_eq!(ts_cmp(u32::MAX, 0), Ordering::Less);
    }

    #[test]
    fn extend_follows_reference() {
        assert_eq!(extend_seq(65535, 0), 65536);
        assert_eq!(extend_seq(65536, 65535), 65535);
        assert_eq!(extend_seq(70000, 4465), 70001);
        assert_eq!(extend_seq(0, 65535), 0, "saturates below zero");
        assert_eq!(extend_seq(3 << 16, 2), (3 << 16) + 2);
    }

    #[test]
    fn wrap_extends_counter() {
        let mut t = SequenceTracker::with_probation(65533, 1);
        let mut ext = Vec::new();
        for s in [65533u16, 65534, 65535, 0, 1, 2] {
            match t.update(s) {
                SeqUpdate::Valid { extended } => ext.push(extended),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ext, [65533, 65534, 65535, 65536, 65537, 65538]);
        assert_eq!(t.extended_max(), 65538);
        assert_eq!(t.expected(), 6);
        assert_eq!(t.received(), 6);
        assert_eq!(t.cumulative_lost(), 0);
        // A reordered packet from before the wrap keeps its extended number.
        assert_eq!(t.update(65535), SeqUpdate::Valid { extended: 65535 });
    }

    #[test]
    fn probation_needs_sequential_packets() {
        let mut t = SequenceTracker::new(100);
        assert!(!t.is_valid());
        assert_eq!(t.update(100), SeqUpdate::Probation);
        // Out of sequence: probation restarts.
        assert_eq!(t.update(200), SeqUpdate::Probation);
        assert_eq!(t.update(201), SeqUpdate::Valid { extended: 201 });
        assert!(t.is_valid());
        assert_eq!(t.received(), 1);
        assert_eq!(t.expected(), 1);
        assert_eq!(t.update(202), SeqUpdate::Valid { extended: 202 });

        let mut t = SequenceTracker::with_probation(7, 3);
        assert_eq!(t.update(7), SeqUpdate::Probation);
        assert_eq!(t.update(8), SeqUpdate::Probation);
        assert_eq!(t.update(9), SeqUpdate::Valid { extended: 9 });
    }

    #[test]
    fn large_jump_then_restart() {
        let mut t = SequenceTracker::with_probation(10, 1);
        assert!(matches!(t.update(10), SeqUpdate::Valid { .. }));
        assert_eq!(t.update(20000), SeqUpdate::BadJump);
        // Not sequential with the jump: still bad.
        assert_eq!(t.update(30000), SeqUpdate::BadJump);
        // Sequential with the last bad packet: the source restarted.
        assert_eq!(t.update(30001), SeqUpdate::Valid { extended: 30001 });
        assert_eq!(t.base(), 30001);
        assert_eq!(t.expected(), 1);
        // A packet a little behind is misordered, not a jump.
        assert_eq!(t.update(29990), SeqUpdate::Valid { extended: 29990 });
    }

    #[test]
    fn loss_fraction_and_cumulative() {
        let mut t = SequenceTracker::with_probation(0, 1);
        // 100 packets, every 4th lost: 75 received.
        for s in 0..100u16 {
            if s % 4 != 3 {
                t.update(s);
            }
        }
        // Highest received is 98 (99 is lost): expected 99, received 75.
        assert_eq!(t.expected(), 99);
        assert_eq!(t.cumulative_lost(), 24);
        assert_eq!(t.take_fraction_lost(), (24 * 256 / 99) as u8);
        // Next interval: 99's loss shows up now (98 was the highest before): 1 of 11.
        for s in 100..110u16 {
            t.update(s);
        }
        assert_eq!(t.fraction_lost(), (256 / 11) as u8);
        assert_eq!(t.take_fraction_lost(), (256 / 11) as u8);
        assert_eq!(t.take_fraction_lost(), 0, "empty interval");
        // Duplicates make lost negative, fraction 0.
        for _ in 0..30 {
            t.update(109);
        }
        assert_eq!(t.cumulative_lost(), 24 + 1 - 30);
        assert_eq!(t.take_fraction_lost(), 0);
    }
}
