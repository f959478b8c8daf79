//! A jitter buffer for the playout path.
//!
//! Packets go in with [`JitterBuffer::push`] as they arrive (any order); the player calls
//! [`JitterBuffer::pop`] once per packetization interval (ptime) and gets one [`Frame`] per
//! call, in sequence order. The buffer reads no clock: the pop calls are its clock.
//!
//! Rules:
//! - Playout starts once [`JitterConfig::depth`] frames are buffered, or when the first
//!   packet has waited `depth` ticks (a stream that sends little still plays). Until then
//!   `pop` returns `None` (nothing to play: the caller plays silence).
//! - When the next frame in sequence is missing at its turn, `pop` returns
//!   [`Frame::Lost`] (conceal it: repeat the last frame or fill silence) and moves on.
//!   A packet that arrives after its turn is dropped as late; one that was already played
//!   is dropped as a duplicate.
//! - After [`JitterConfig::max_lost_run`] concealed frames in a row with an empty buffer,
//!   the stream is taken as paused (silence suppression, hold): the buffer goes back to
//!   buffering and the next packet starts playout afresh.
//! - At most [`JitterConfig::capacity`] packets are held; a push beyond that drops the
//!   oldest, and the playout point moves past it.
//! - A packet more than [`MAX_DROPOUT`] away from the playout point restarts the buffer
//!   (the sender restarted its sequence).
//!
//! Sequence numbers are extended to 64 bits internally, so a wrap from 65535 to 0 is just
//! the next frame.

use super::packet::RtpPacket;
use super::seq::{MAX_DROPOUT, extend_seq};
use std::collections::VecDeque;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitterConfig {
    /// Target depth in frames: playout starts this many frames behind the first packet
    /// (default 3: 60 ms at a 20 ms ptime).
    pub depth: usize,
    /// Most packets held at once (default 50); pushing more drops the oldest.
    pub capacity: usize,
    /// Concealed frames in a row, with nothing buffered, after which the stream counts as
    /// paused and the buffer re-buffers (default 10).
    pub max_lost_run: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            depth: 3,
            capacity: 50,
            max_lost_run: 10,
        }
    }
}

impl JitterConfig {
    /// The defaults: depth 3, capacity 50, re-buffer after 10 lost frames.
    pub fn new() -> Self {
        Self::default()
    }

    /// These settings with another target depth (frames; at least 1).
    pub fn with_depth(mut self, depth: usize) -> Self {
        self.depth = depth.max(1);
        self
    }

    /// These settings with another capacity (packets; at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// These settings with another run of lost frames before re-buffering (at least 1).
    pub fn with_max_lost_run(mut self, run: usize) -> Self {
        self.max_lost_run = run.max(1);
        self
    }
}

/// One frame of playout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// The packet for this turn.
    Packet(RtpPacket),
    /// The packet for this turn is missing: conceal (repeat the last frame, or silence).
    Lost {
        /// Its sequence number.
        sequence: u16,
    },
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Buffered.
    Buffered,
    /// Already buffered or already played: dropped.
    Duplicate,
    /// Its turn has passed: dropped.
    Late,
}

/// Counters of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitterStats {
    /// Packets buffered.
    pub buffered: u64,
    /// Frames played from a packet.
    pub played: u64,
    /// Frames concealed ([`Frame::Lost`]).
    pub lost: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Packets dropped because their turn had passed.
    pub late: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Restarts after a large sequence jump.
    pub resets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting to start; the number of ticks the oldest packet has waited.
    Buffering { waited: usize },
    /// Playing: the extended sequence number of the next frame.
    Playing { next: u64 },
}

/// A fixed-depth jitter buffer. See the [module docs](self) for the rules.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// The packets held, by extended sequence number, in order. A sorted deque rather
    /// than a map: a call holds a few packets (`depth`), nearly always arriving in order
    /// (a push at the back, a pop at the front), and the deque's storage is sized to
    /// them, where a B-tree's first node is over a kilobyte every call would keep.
    packets: VecDeque<(u64, RtpPacket)>,
    state: State,
    /// Extended sequence number of the last packet seen, the reference for extending.
    reference: Option<u64>,
    /// Bit i set: frame `next - 1 - i` was played from a packet (for duplicate detection).
    played: u64,
    lost_run: usize,
    /// After a pause: the first frame not yet played; anything before it is late.
    floor: Option<u64>,
    stats: JitterStats,
}

/// Start of the extended sequence space: far from 0 so that packets before the first one
/// seen never saturate.
const ORIGIN: u64 = 1 << 32;

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        JitterBuffer {
            config: JitterConfig {
                depth: config.depth.max(1),
                capacity: config.capacity.max(1),
                max_lost_run: config.max_lost_run.max(1),
            },
            packets: VecDeque::new(),
            state: State::Buffering { waited: 0 },
            reference: None,
            played: 0,
            lost_run: 0,
            floor: None,
            stats: JitterStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Whether playout has started (`pop` returns frames).
    pub fn is_playing(&self) -> bool {
        matches!(self.state, State::Playing { .. })
    }

    /// Forgets every packet and starts buffering again (e.g. after the SSRC changed).
    /// Counters are kept.
    pub fn reset(&mut self) {
        self.packets.clear();
        self.state = State::Buffering { waited: 0 };
        self.reference = None;
        self.played = 0;
        self.lost_run = 0;
        self.floor = None;
    }

    /// Adds a packet that just arrived.
    pub fn push(&mut self, packet: RtpPacket) -> PushOutcome {
        let reference = match (self.state, self.reference) {
            (State::Playing { next }, _) => Some(next),
            (_, r) => r,
        };
        let Some(reference) = reference else {
            // The first packet: it defines the extended numbering.
            let ext = ORIGIN + u64::from(packet.sequence);
            self.reference = Some(ext);
            self.packets.push_back((ext, packet));
            self.stats.buffered += 1;
            return PushOutcome::Buffered;
        };
        let ext = extend_seq(reference, packet.sequence);
        if ext.abs_diff(reference) > u64::from(MAX_DROPOUT) {
            // The sender restarted its sequence numbers: start over from this packet.
            self.reset();
            self.stats.resets += 1;
            return self.push(packet);
        }
        if let State::Playing { next } = self.state {
            if ext < next {
                let back = next - ext;
                return if back <= 64 && self.played & (1 << (back - 1)) != 0 {
                    self.stats.duplicate += 1;
                    PushOutcome::Duplicate
                } else {
                    self.stats.late += 1;
                    PushOutcome::Late
                };
            }
        }
        if self.floor.is_some_and(|floor| ext < floor) {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        // Where it goes: nearly always at the back (in order).
        let at = match self.packets.back() {
            Some(&(last, _)) if last < ext => self.packets.len(),
            _ => match self.packets.binary_search_by_key(&ext, |(k, _)| *k) {
                Ok(_) => {
                    self.stats.duplicate += 1;
                    return PushOutcome::Duplicate;
                }
                Err(at) => at,
            },
        };
        self.reference = Some(match self.reference {
            Some(r) if r > ext => r,
            _ => ext,
        });
        self.packets.insert(at, (ext, packet));
        self.stats.buffered += 1;
        while self.packets.len() > self.config.capacity {
            if let Some((oldest, _)) = self.packets.pop_front() {
                self.stats.overflow += 1;
                if let State::Playing { next } = &mut self.state {
                    if *next <= oldest {
                        // Skip what was dropped instead of concealing it later.
                        self.played = shift_played(self.played, oldest + 1 - *next);
                        *next = oldest + 1;
                    }
                }
            }
        }
        PushOutcome::Buffered
    }

    /// The frame for this tick; call once per ptime. `None` while buffering.
    #[must_use]
    pub fn pop(&mut self) -> Option<Frame> {
        if let State::Buffering { waited } = self.state {
            let &(first, _) = self.packets.front()?;
            let waited = waited + 1;
            let last = self.packets.back().map_or(first, |(k, _)| *k);
            // Start when `depth` frames (by sequence span) are buffered, or the first packet
            // has waited `depth` ticks.
            if last - first + 1 >= self.config.depth as u64 || waited >= self.config.depth {
                self.state = State::Playing { next: first };
                self.played = 0;
            } else {
                self.state = State::Buffering { waited };
                return None;
            }
        }
        let State::Playing { next } = self.state else {
            return None;
        };
        self.state = State::Playing { next: next + 1 };
        // Every packet held is at or after `next` (earlier ones are refused as late, or
        // dropped on overflow with `next` moved past them), so it is at the front if held;
        // should one before it ever be held, it is dropped as late rather than left to
        // block the front.
        while self.packets.front().is_some_and(|(k, _)| *k < next) {
            self.packets.pop_front();
            self.stats.late += 1;
        }
        let front = self.packets.front().is_some_and(|(k, _)| *k == next);
        if let Some((_, packet)) = front.then(|| self.packets.pop_front()).flatten() {
            self.played = (self.played << 1) | 1;
            self.lost_run = 0;
            self.stats.played += 1;
            return Some(Frame::Packet(packet));
        }
        self.played <<= 1;
        self.stats.lost += 1;
        if self.packets.is_empty() {
            self.lost_run += 1;
            if self.lost_run >= self.config.max_lost_run {
                // Nothing is coming: the stream paused. Re-buffer on the next packet.
                self.state = State::Buffering { waited: 0 };
                self.floor = Some(next + 1);
                self.lost_run = 0;
            }
        } else {
            self.lost_run = 0;
        }
        // `next` as u16 is its sequence number: the low 16 bits of the extended number.
        Some(Frame::Lost {
            sequence: next as u16,
        })
    }
}

fn shift_played(played: u64, by: u64) -> u64 {
    if by >= 64 { 0 } else { played << by }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16) -> RtpPacket {
        RtpPacket::new(0, seq, u32::from(seq) * 160, 1, Bytes::new())
    }

    /// Pops `n` frames, rendering each as Some(seq) for a packet or None for a loss.
    fn drain(jb: &mut JitterBuffer, n: usize) -> Vec<Option<u16>> {
        (0..n)
            .filter_map(|_| jb.pop())
            .map(|f| match f {
                Frame::Packet(p) => Some(p.sequence),
                Frame::Lost { .. } => None,
            })
            .collect()
    }

    #[test]
    fn waits_for_depth_then_plays_in_order() {
        let mut jb = JitterBuffer::new(JitterConfig::new().with_depth(3));
        assert_eq!(jb.pop(), None);
        jb.push(pkt(10));
        assert_eq!(jb.pop(), None);
        jb.push(pkt(12));
        jb.push(pkt(11));
        assert!(!jb.is_playing());
        assert_eq!(drain(&mut jb, 3), [Some(10), Some(11), Some(12)]);
        assert!(jb.is_playing());
    }

    #[test]
    fn single_packet_plays_after_depth_ticks() {
        let mut jb = JitterBuffer::new(JitterConfig::new().with_depth(3));
        jb.push(pkt(1));
        assert_eq!(jb.pop(), None);
        assert_eq!(jb.pop(), None);
        assert_eq!(jb.pop(), Some(Frame::Packet(pkt(1))));
    }

    #[test]
    fn loss_duplication_reordering_and_wrap() {
        let mut jb = JitterBuffer::new(JitterConfig::new().with_depth(2));
        // Sender emits 65530..=65535, 0..=5 (12 packets), one per tick; playout runs one tick
        // behind. Network: 65533 lost, 2 lost, 65531 duplicated, 0 and 1 swapped, 4 arrives
        // after its turn.
        let arrivals: [&[u16]; 13] = [
            &[65530],
            &[65531],
            &[65532, 65531],
            &[],
            &[65534],
            &[65535],
            &[1],
            &[0],
            &[],
            &[3],
            &[],
            &[5],
            &[4],
        ];
        let mut out = Vec::new();
        let mut outcomes = Vec::new();
        for tick in arrivals {
            for &s in tick {
                outcomes.push(jb.push(pkt(s)));
            }
            out.extend(drain(&mut jb, 1));
        }
        assert_eq!(
            out,
            [
                Some(65530),
                Some(65531),
                Some(65532),
                None, // 65533 lost
                Some(65534),
                Some(65535),
                Some(0),
                Some(1),
                None, // 2 lost
                Some(3),
                None, // 4 too late: concealed
                Some(5),
            ]
        );
        let s = jb.stats();
        assert_eq!(s.played, 9);
        assert_eq!(s.lost, 3);
        assert_eq!(s.late, 1);
        assert_eq!(s.duplicate, 1);
        assert_eq!(
            outcomes.iter().filter(|o| **o == PushOutcome::Late).count(),
            1
        );
        // A duplicate of a played packet is told apart from a late one.
        assert_eq!(jb.push(pkt(5)), PushOutcome::Duplicate);
        assert_eq!(jb.push(pkt(2)), PushOutcome::Late);
    }

    #[test]
    fn lost_frames_carry_their_sequence() {
        let mut jb = JitterBuffer::new(JitterConfig::new().with_depth(1));
        jb.push(pkt(65535));
        jb.push(pkt(1));
        assert_eq!(jb.pop(), Some(Frame::Packet(pkt(65535))));
        assert_eq!(jb.pop(), Some(Frame::Lost { sequence: 0 }));
        assert_eq!(jb.pop(), Some(Frame::Packet(pkt(1))));
    }

    #[test]
    fn overflow_drops_oldest() {
        let mut jb = JitterBuffer::new(JitterConfig::new().with_depth(2).with_capacity(4));
        for s in 0..6 {
            jb.push(pkt(s));
        }
        assert_eq!(jb.len(), 4);
        assert_eq!(jb.stats().overflow, 2);
        assert_eq!(drain(&mut jb, 4), [Some(2), Some(3), Some(4), Some(5)]);
        // While playing, overflow moves the playout point past the dropped packet.
        for s in 6..12 {
            jb.push(pkt(s));
        }
        assert_eq!(jb.stats().overflow, 4);
        assert_eq!(drain(&mut jb, 1), [Some(8)]);
    }

    #[test]
    fn pause_rebuffers_and_restart_resets() {
        let mut jb = JitterBuffer::new(JitterConfig::new().with_depth(1).with_max_lost_run(2));
        jb.push(pkt(1));
        assert_eq!(drain(&mut jb, 3), [Some(1), None, None]);
        assert!(!jb.is_playing());
        assert_eq!(jb.pop(), None);
        // A straggler from before the pause is late, not a new start.
        assert_eq!(jb.push(pkt(0)), PushOutcome::Late);
        // Talkspurt resumes later: plays from the new packet, no concealment for the gap.
        jb.push(pkt(50));
        assert_eq!(drain(&mut jb, 1), [Some(50)]);
        // A jump beyond MAX_DROPOUT restarts.
        jb.push(pkt(40000));
        assert_eq!(jb.stats().resets, 1);
        assert_eq!(drain(&mut jb, 1), [Some(40000)]);
    }
}
