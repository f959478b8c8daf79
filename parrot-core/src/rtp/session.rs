//! A sans-IO RTP session for one stream (RFC 3550): one local sender, one remote source.
//!
//! The session reads no clock and owns no socket. The caller:
//! - sends what [`RtpSession::packetize`] returns to [`RtpSession::remote_addr`];
//! - feeds received datagrams to [`RtpSession::receive`] (RTP) and
//!   [`RtpSession::handle_rtcp`] (RTCP), with the arrival time;
//! - sleeps until [`RtpSession::poll_timeout`], then sends what
//!   [`RtpSession::poll_rtcp`] returns to the RTCP address;
//! - drains [`RtpSession::poll_event`] after each input.
//!
//! # Which packets are accepted
//!
//! In this order:
//! 1. The datagram must parse as RTP version 2 ([`DropReason::TooShort`],
//!    [`DropReason::BadVersion`], [`DropReason::BadPadding`]).
//! 2. **Source address, symmetric RTP** (RFC 4961 spirit; "strict RTP" with learning).
//!    The session starts *learning*. A packet from the current remote address (the one
//!    signalled in SDP, if any) is accepted; after [`SessionConfig::latch_after`] such
//!    packets in a row, learning ends (the signalled address is confirmed). Packets from any
//!    other address are dropped ([`DropReason::UnexpectedSource`]), except that while
//!    learning, when `latch_after` packets in a row come from one other address, with one
//!    SSRC (the expected SSRC if one is known), the session **latches**: that address
//!    becomes [`RtpSession::remote_addr`] (the peer is behind a NAT), the packet that
//!    completed the run is accepted, and learning ends. A packet from the remote address
//!    interrupts a run. [`RtpSession::set_remote_addr`] (a re-INVITE) starts learning again.
//!    `latch_after = 0` turns latching off: only the signalled address is accepted.
//! 3. **SSRC**: the first SSRC accepted becomes the remote SSRC, unless one was configured
//!    ([`SessionConfig::remote_ssrc`]). Another SSRC is dropped
//!    ([`DropReason::UnexpectedSsrc`]), except that `latch_after` packets in a row with one
//!    new SSRC from the remote address switch to it (a B2BUA or media server changing
//!    streams; [`SessionEvent::SsrcChanged`]). A configured SSRC never switches. A BYE from
//!    the remote SSRC frees the session to adopt a new one.
//! 4. **Sequence** (RFC 3550 §A.1): packets of a source on probation are dropped
//!    ([`DropReason::Probation`]), as are very large jumps ([`DropReason::SequenceJump`]).
//!
//! # RTCP
//!
//! Reports go out on the RFC 3550 §6.2 / §A.7 interval: a deterministic interval of at
//! least 5 s (2.5 s before the first report), scaled by a random factor in [0.5, 1.5] and
//! divided by e − 3/2 ≈ 1.21828 (§6.3.1), so successive reports are 2.05 s to 6.16 s apart
//! (1.03 s to 3.08 s for the first one) in a two-party call at audio bit rates. Or a fixed
//! interval ([`RtcpInterval::Fixed`]). An SR is sent if we sent RTP since the report before
//! the previous one (§6.4), an RR otherwise; each carries a report block on the remote
//! source once it is valid, and an SDES CNAME.

use super::packet::{RtpError, RtpPacket};
use super::rtcp::{
    self, Bye, ReceiverReport, ReportBlock, RtcpError, RtcpPacket, SdesChunk, SenderInfo,
    SenderReport,
};
use super::seq::{SeqUpdate, SequenceTracker};
use crate::entropy::Entropy;
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often to send RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpInterval {
    /// The RFC 3550 §6.2 computed, randomised interval, for this session bandwidth
    /// (bits per second; RTCP gets 5 % of it).
    Rfc3550 {
        /// Session bandwidth in bits per second.
        session_bandwidth: u32,
    },
    /// Exactly this interval, not randomised (tests, or peers that want it).
    Fixed(Duration),
}

impl Default for RtcpInterval {
    fn default() -> Self {
        // G.711 at 20 ms: 64 kbit/s of payload plus 16 kbit/s of IP/UDP/RTP headers.
        RtcpInterval::Rfc3550 {
            session_bandwidth: 80_000,
        }
    }
}

/// Settings of an [`RtpSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// RTP clock rate of the payload in Hz (default 8000).
    pub clock_rate: u32,
    /// Payload type of [`RtpSession::packetize`] (default 0, PCMU).
    pub payload_type: u8,
    /// The remote RTP address from signalling, if known.
    pub remote_addr: Option<SocketAddr>,
    /// The remote RTCP address from signalling, if known. It latches to the source of the
    /// first valid report from the remote SSRC, if different.
    pub remote_rtcp_addr: Option<SocketAddr>,
    /// The remote SSRC from signalling (`a=ssrc`), if known: other SSRCs are never accepted.
    pub remote_ssrc: Option<u32>,
    /// Consecutive packets from a new address (or SSRC) before latching to it (default 2;
    /// 0 turns latching off). See the [module docs](self).
    pub latch_after: u32,
    /// Sequential packets before a source is valid (RFC 3550 §A.1 MIN_SEQUENTIAL,
    /// default 2; 1 accepts the first packet).
    pub min_sequential: u32,
    /// RTCP interval rule.
    pub rtcp_interval: RtcpInterval,
    /// Our CNAME for SDES (§6.5.1), e.g. `user@host`.
    pub cname: Bytes,
    /// Our SSRC; random if `None`.
    pub ssrc: Option<u32>,
    /// Our first sequence number; random if `None` (§5.1).
    pub initial_sequence: Option<u16>,
    /// Our first timestamp; random if `None` (§5.1).
    pub initial_timestamp: Option<u32>,
    /// Seed of the session's random numbers (SSRC, initial values, RTCP interval); drawn
    /// from the process-wide [`entropy::global`](crate::entropy::global) source if `None`.
    /// Set it (or use [`SessionConfig::with_entropy`]) for reproducible runs.
    pub seed: Option<u64>,
    /// NTP timestamp (64-bit, §4) at the `now` given to [`RtpSession::new`]; SRs carry
    /// it plus the elapsed time. The runtime sets it from the wall clock
    /// ([`rtcp::ntp_from_unix`]); 0 (the default) still gives correct round-trip times.
    pub ntp_at_start: u64,
}

/// The CNAME our sessions send in RTCP SDES by default (RFC 3550 §6.5.1), and so the
/// one an SDP `a=ssrc` names with our SSRC (RFC 5576 §4.1).
pub(crate) const CNAME: &str = "parrot";

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            clock_rate: 8000,
            payload_type: 0,
            remote_addr: None,
            remote_rtcp_addr: None,
            remote_ssrc: None,
            latch_after: 2,
            min_sequential: 2,
            rtcp_interval: RtcpInterval::default(),
            cname: Bytes::from_static(CNAME.as_bytes()),
            ssrc: None,
            initial_sequence: None,
            initial_timestamp: None,
            seed: None,
            ntp_at_start: 0,
        }
    }
}

impl SessionConfig {
    /// Defaults for a payload with this clock rate and payload type.
    pub fn new(clock_rate: u32, payload_type: u8) -> Self {
        SessionConfig {
            clock_rate: clock_rate.max(1),
            payload_type,
            ..Self::default()
        }
    }

    /// With the signalled remote RTP address.
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// With the signalled remote RTCP address.
    pub fn with_remote_rtcp_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_rtcp_addr = Some(addr);
        self
    }

    /// With the signalled remote SSRC.
    pub fn with_remote_ssrc(mut self, ssrc: u32) -> Self {
        self.remote_ssrc = Some(ssrc);
        self
    }

    /// With another latching threshold (0: off).
    pub fn with_latch_after(mut self, packets: u32) -> Self {
        self.latch_after = packets;
        self
    }

    /// With another probation length.
    pub fn with_min_sequential(mut self, packets: u32) -> Self {
        self.min_sequential = packets.max(1);
        self
    }

    /// With another RTCP interval rule.
    pub fn with_rtcp_interval(mut self, interval: RtcpInterval) -> Self {
        self.rtcp_interval = interval;
        self
    }

    /// With our CNAME.
    pub fn with_cname(mut self, cname: impl Into<Bytes>) -> Self {
        self.cname = cname.into();
        self
    }

    /// With fixed SSRC, first sequence number and first timestamp.
    pub fn with_initial(mut self, ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        self.ssrc = Some(ssrc);
        self.initial_sequence = Some(sequence);
        self.initial_timestamp = Some(timestamp);
        self
    }

    /// With a fixed random seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// With the seed drawn now from `entropy` (a seeded [`Entropy`] gives the same SSRC,
    /// initial values and RTCP intervals on every run).
    pub fn with_entropy(mut self, entropy: &Entropy) -> Self {
        self.seed = Some(entropy.next_u64());
        self
    }

    /// With the NTP time at session start.
    pub fn with_ntp_at_start(mut self, ntp: u64) -> Self {
        self.ntp_at_start = ntp;
        self
    }
}

/// An RTP packet that [`RtpSession::receive`] accepted, with its extended
/// sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedPacket {
    /// The packet.
    pub packet: RtpPacket,
    /// Its extended sequence number (cycles in the high 16 bits, §A.1).
    pub extended_sequence: u32,
}

/// Why [`RtpSession::receive`] dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than its header.
    #[error("RTP packet too short")]
    TooShort,
    /// Not RTP version 2.
    #[error("not RTP version 2")]
    BadVersion,
    /// Bad padding count.
    #[error("bad RTP padding")]
    BadPadding,
    /// From an address that is not the remote one (and did not latch).
    #[error("RTP from an unexpected source address")]
    UnexpectedSource,
    /// From an SSRC that is not the remote one (and did not switch).
    #[error("RTP from an unexpected SSRC")]
    UnexpectedSsrc,
    /// The source is on probation (RFC 3550 §A.1).
    #[error("RTP source on probation")]
    Probation,
    /// The sequence number jumped too far (RFC 3550 §A.1).
    #[error("RTP sequence number jump")]
    SequenceJump,
    /// The session has ended (after [`RtpSession::bye`]).
    #[error("RTP session closed")]
    Closed,
}

impl From<RtpError> for DropReason {
    fn from(e: RtpError) -> Self {
        match e {
            RtpError::BadVersion(_) => DropReason::BadVersion,
            RtpError::BadPadding { .. } => DropReason::BadPadding,
            _ => DropReason::TooShort,
        }
    }
}

/// Dropped datagrams, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropCounts {
    /// [`DropReason::TooShort`].
    pub too_short: u64,
    /// [`DropReason::BadVersion`].
    pub bad_version: u64,
    /// [`DropReason::BadPadding`].
    pub bad_padding: u64,
    /// [`DropReason::UnexpectedSource`].
    pub unexpected_source: u64,
    /// [`DropReason::UnexpectedSsrc`].
    pub unexpected_ssrc: u64,
    /// [`DropReason::Probation`].
    pub probation: u64,
    /// [`DropReason::SequenceJump`].
    pub sequence_jump: u64,
    /// [`DropReason::Closed`].
    pub closed: u64,
    /// RTCP datagrams that failed [`rtcp::parse_compound`].
    pub rtcp_malformed: u64,
}

impl DropCounts {
    fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::TooShort => &mut self.too_short,
            DropReason::BadVersion => &mut self.bad_version,
            DropReason::BadPadding => &mut self.bad_padding,
            DropReason::UnexpectedSource => &mut self.unexpected_source,
            DropReason::UnexpectedSsrc => &mut self.unexpected_ssrc,
            DropReason::Probation => &mut self.probation,
            DropReason::SequenceJump => &mut self.sequence_jump,
            DropReason::Closed => &mut self.closed,
        };
        *c += 1;
    }
}

/// Reception statistics of the remote source (RFC 3550 §6.4.1, §A.3, §A.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// The remote SSRC.
    pub ssrc: u32,
    /// Packets received (duplicates included, §A.3).
    pub received: u32,
    /// Packets expected (extended highest − first + 1).
    pub expected: u32,
    /// Cumulative lost (expected − received; negative with duplicates).
    pub lost: i32,
    /// Fraction lost since the last report we sent, in 1/256 units.
    pub fraction_lost: u8,
    /// Extended highest sequence number.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units (§A.8).
    pub jitter: u32,
    /// Payload octets received.
    pub octets: u64,
}

/// Sending statistics (what an SR reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// Something the caller may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// Symmetric RTP: the remote RTP address changed to the packets' source.
    RemoteAddrLatched {
        /// The address before (the signalled one, if any).
        previous: Option<SocketAddr>,
        /// The new remote address.
        addr: SocketAddr,
    },
    /// The remote RTCP address changed to the reports' source.
    RemoteRtcpAddrLatched {
        /// The address before.
        previous: Option<SocketAddr>,
        /// The new remote RTCP address.
        addr: SocketAddr,
    },
    /// The remote source changed SSRC (the first SSRC is not reported).
    SsrcChanged {
        /// The SSRC before.
        previous: u32,
        /// The new SSRC.
        ssrc: u32,
    },
    /// A BYE for the remote source (§6.6).
    Bye {
        /// The source leaving.
        ssrc: u32,
        /// Its reason, if given.
        reason: Option<Bytes>,
    },
}

/// The remote source as seen by the receiver.
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    seq: SequenceTracker,
    /// §A.8 jitter estimate, scaled by 16.
    jitter16: u64,
    last_transit: Option<u32>,
    octets: u64,
    /// LSR of the last SR from this source, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

/// Small xorshift64* generator seeded once; enough for SSRCs and jitter of timers
/// (RFC 3550 §8.1 asks for unpredictability, not cryptographic strength).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| crate::entropy::global().next_u64());
        Rng(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next_u32(&mut self) -> u32 {
        // The high half of the output is the best-mixed part.
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// e − 3/2: compensates for timer reconsideration converging below the intended average
/// (RFC 3550 §6.3.1, §A.7).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;

/// A sans-IO RTP session. See the [module docs](self).
#[derive(Debug)]
pub struct RtpSession {
    config: SessionConfig,
    epoch: Instant,
    rng: Rng,
    // Sender.
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    sent: SenderStats,
    /// Timestamp and time of the last media packet, to map `now` to RTP time for SRs.
    last_media: Option<(u32, Instant)>,
    sent_since_report: bool,
    sent_since_prev_report: bool,
    // Receiver.
    remote_addr: Option<SocketAddr>,
    remote_rtcp_addr: Option<SocketAddr>,
    learning: bool,
    rtcp_learning: bool,
    confirmed: u32,
    addr_candidate: Option<(SocketAddr, u32, u32)>,
    ssrc_candidate: Option<(u32, u32)>,
    source: Option<Source>,
    last_rtp_at: Option<Instant>,
    drops: DropCounts,
    // RTCP.
    next_rtcp: Instant,
    initial_report: bool,
    avg_rtcp_size: f64,
    rtt: Option<Duration>,
    remote_report: Option<ReportBlock>,
    last_remote_sr: Option<SenderInfo>,
    closed: bool,
    events: VecDeque<SessionEvent>,
}

impl RtpSession {
    /// A session starting at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut rng = Rng::new(config.seed);
        let ssrc = config.ssrc.unwrap_or_else(|| rng.next_u32());
        // Low 16 bits of a random u32.
        let sequence = config
            .initial_sequence
            .unwrap_or_else(|| rng.next_u32() as u16);
        let timestamp = config.initial_timestamp.unwrap_or_else(|| rng.next_u32());
        let mut s = RtpSession {
            epoch: now,
            rng,
            ssrc,
            sequence,
            timestamp,
            sent: SenderStats::default(),
            last_media: None,
            sent_since_report: false,
            sent_since_prev_report: false,
            remote_addr: config.remote_addr,
            remote_rtcp_addr: config.remote_rtcp_addr,
            learning: true,
            rtcp_learning: true,
            confirmed: 0,
            addr_candidate: None,
            ssrc_candidate: None,
            source: None,
            last_rtp_at: None,
            drops: DropCounts::default(),
            next_rtcp: now,
            initial_report: true,
            // A typical SR + SDES with IP/UDP headers.
            avg_rtcp_size: 100.0,
            rtt: None,
            remote_report: None,
            last_remote_sr: None,
            closed: false,
            events: VecDeque::new(),
            config,
        };
        s.next_rtcp = now + s.rtcp_interval();
        s
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number of the next packet we send.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp of the next media packet we send.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Advances the media timestamp without sending (e.g. a frame not sent because of
    /// silence suppression, or while DTMF events are sent instead).
    pub fn advance_timestamp(&mut self, increment: u32) {
        self.timestamp = self.timestamp.wrapping_add(increment);
    }

    /// Where RTP goes: the signalled address, or the latched one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The one address RTP is accepted from from now on: the remote address once
    /// learning is over (confirmed or latched), or at once when latching is off. `None`
    /// while another source may still latch, or with no remote address.
    /// [`set_remote_addr`](Self::set_remote_addr) makes it `None` again.
    pub fn settled_remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
            .filter(|_| !self.learning || self.config.latch_after == 0)
    }

    /// Where RTCP goes: the signalled RTCP address, or the latched one.
    pub fn remote_rtcp_addr(&self) -> Option<SocketAddr> {
        self.remote_rtcp_addr
    }

    /// A new signalled remote address (re-INVITE): replaces the current one and starts
    /// learning (latching) again.
    pub fn set_remote_addr(&mut self, addr: SocketAddr, rtcp: Option<SocketAddr>) {
        self.remote_addr = Some(addr);
        self.remote_rtcp_addr = rtcp;
        self.learning = true;
        self.rtcp_learning = true;
        self.confirmed = 0;
        self.addr_candidate = None;
    }

    /// The remote SSRC, once a packet was accepted (or as configured).
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.source
            .as_ref()
            .map(|s| s.ssrc)
            .or(self.config.remote_ssrc)
    }

    /// What we sent.
    pub fn sender_stats(&self) -> SenderStats {
        self.sent
    }

    /// What we received from the remote source, once one was accepted.
    pub fn receiver_stats(&self) -> Option<ReceiverStats> {
        let s = self.source.as_ref()?;
        Some(ReceiverStats {
            ssrc: s.ssrc,
            received: s.seq.received(),
            expected: s.seq.expected(),
            lost: s.seq.cumulative_lost(),
            fraction_lost: s.seq.fraction_lost(),
            extended_highest_seq: s.seq.extended_max(),
            jitter: jitter_of(s.jitter16),
            octets: s.octets,
        })
    }

    /// Dropped datagrams by reason.
    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    /// When the last RTP packet was accepted (for media timeouts).
    pub fn last_rtp_received(&self) -> Option<Instant> {
        self.last_rtp_at
    }

    /// Round-trip time from the last report block about us that carried an LSR (§6.4.1).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The last report block the remote sent about our stream.
    pub fn remote_report(&self) -> Option<&ReportBlock> {
        self.remote_report.as_ref()
    }

    /// The sender info of the last SR from the remote source.
    pub fn last_remote_sender_info(&self) -> Option<&SenderInfo> {
        self.last_remote_sr.as_ref()
    }

    /// Whether [`bye`](Self::bye) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Wraps a media payload in RTP with our payload type, the current timestamp and the next
    /// sequence number, then advances the timestamp by `timestamp_increment` (the payload's
    /// duration in clock units, e.g. 160 for 20 ms at 8 kHz).
    pub fn packetize(
        &mut self,
        now: Instant,
        payload: Bytes,
        timestamp_increment: u32,
        marker: bool,
    ) -> Bytes {
        let timestamp = self.timestamp;
        self.last_media = Some((timestamp, now));
        self.timestamp = self.timestamp.wrapping_add(timestamp_increment);
        let pt = self.config.payload_type;
        self.send(pt, payload, timestamp, marker)
    }

    /// [`packetize`](Self::packetize) into a caller's buffer: writes the RTP header and
    /// `payload` to the front of `out` and returns the packet's length, allocating nothing
    /// (a media session sends 50 of these a second per call). `None`, and nothing
    /// advanced, if `out` is too small.
    pub fn packetize_to(
        &mut self,
        now: Instant,
        payload: &[u8],
        timestamp_increment: u32,
        marker: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let len = super::packet::FIXED_HEADER_LEN + payload.len();
        let out = out.get_mut(..len)?;
        let timestamp = self.timestamp;
        let (header, body) = out.split_at_mut(super::packet::FIXED_HEADER_LEN);
        header[0] = 2 << 6; // version 2, no padding, extension or CSRC
        header[1] = u8::from(marker) << 7 | (self.config.payload_type & 0x7f);
        header[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        header[4..8].copy_from_slice(&timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        body.copy_from_slice(payload);
        self.last_media = Some((timestamp, now));
        self.timestamp = self.timestamp.wrapping_add(timestamp_increment);
        self.sequence = self.sequence.wrapping_add(1);
        self.sent.packets = self.sent.packets.wrapping_add(1);
        // Payload lengths fit a datagram, far below u32::MAX; the octet count wraps (§6.4.1).
        self.sent.octets = self.sent.octets.wrapping_add(payload.len() as u32);
        self.sent_since_report = true;
        Some(len)
    }

    /// Wraps a payload with an explicit payload type and timestamp, leaving the media
    /// timestamp alone: for RFC 4733 events, whose packets repeat the event's start
    /// timestamp (see [`super::dtmf::DtmfSender`]).
    pub fn packetize_with(
        &mut self,
        payload_type: u8,
        payload: Bytes,
        timestamp: u32,
        marker: bool,
    ) -> Bytes {
        self.send(payload_type, payload, timestamp, marker)
    }

    fn send(&mut self, payload_type: u8, payload: Bytes, timestamp: u32, marker: bool) -> Bytes {
        let len = payload.len();
        let packet = RtpPacket::new(payload_type, self.sequence, timestamp, self.ssrc, payload)
            .with_marker(marker);
        self.sequence = self.sequence.wrapping_add(1);
        self.sent.packets = self.sent.packets.wrapping_add(1);
        // Payload lengths fit a datagram, far below u32::MAX; the octet count wraps (§6.4.1).
        self.sent.octets = self.sent.octets.wrapping_add(len as u32);
        self.sent_since_report = true;
        packet.to_bytes()
    }

    /// Takes in an RTP datagram that arrived at `now` from `source`.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: Bytes,
    ) -> Result<AcceptedPacket, DropReason> {
        let result = self.receive_inner(now, source, data);
        if let Err(reason) = result {
            self.drops.count(reason);
        }
        result
    }

    fn receive_inner(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: Bytes,
    ) -> Result<AcceptedPacket, DropReason> {
        if self.closed {
            return Err(DropReason::Closed);
        }
        let packet = RtpPacket::parse(data)?;
        self.check_source(source, packet.ssrc)?;
        self.check_ssrc(packet.ssrc, packet.sequence)?;
        let arrival = self.rtp_clock(now);
        let Some(src) = self.source.as_mut() else {
            // check_ssrc always leaves a source.
            return Err(DropReason::UnexpectedSsrc);
        };
        let extended = match src.seq.update(packet.sequence) {
            SeqUpdate::Valid { extended } => extended,
            SeqUpdate::Probation => return Err(DropReason::Probation),
            _ => return Err(DropReason::SequenceJump),
        };
        // §A.8: transit = arrival − timestamp, both in timestamp units;
        // J += (|D| − J) / 16, kept scaled by 16 as in the RFC's integer version.
        let transit = arrival.wrapping_sub(packet.timestamp);
        if let Some(last) = src.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            src.jitter16 = (src.jitter16 + d).saturating_sub((src.jitter16 + 8) >> 4);
        }
        src.last_transit = Some(transit);
        src.octets += packet.payload.len() as u64;
        self.last_rtp_at = Some(now);
        Ok(AcceptedPacket {
            packet,
            extended_sequence: extended,
        })
    }

    /// Step 2 of the acceptance rules (module docs): the source address and latching.
    fn check_source(&mut self, source: SocketAddr, ssrc: u32) -> Result<(), DropReason> {
        let latch_after = self.config.latch_after;
        if Some(source) == self.remote_addr {
            self.addr_candidate = None;
            if self.learning {
                self.confirmed += 1;
                if self.confirmed >= latch_after {
                    self.learning = false;
                }
            }
            return Ok(());
        }
        if !self.learning || latch_after == 0 {
            return Err(DropReason::UnexpectedSource);
        }
        if self.remote_ssrc().is_some_and(|expected| expected != ssrc) {
            return Err(DropReason::UnexpectedSource);
        }
        let run = match self.addr_candidate {
            Some((addr, s, n)) if addr == source && s == ssrc => n + 1,
            _ => 1,
        };
        if run < latch_after {
            self.addr_candidate = Some((source, ssrc, run));
            return Err(DropReason::UnexpectedSource);
        }
        let previous = self.remote_addr.replace(source);
        self.addr_candidate = None;
        self.learning = false;
        self.events.push_back(SessionEvent::RemoteAddrLatched {
            previous,
            addr: source,
        });
        Ok(())
    }

    /// Step 3: the SSRC, adopting or switching.
    fn check_ssrc(&mut self, ssrc: u32, seq: u16) -> Result<(), DropReason> {
        let current = self.remote_ssrc();
        if current == Some(ssrc) && self.source.is_some() {
            self.ssrc_candidate = None;
            return Ok(());
        }
        let switch = match current {
            None => None,
            Some(c) if c == ssrc => None,
            Some(_) if self.config.remote_ssrc.is_some() => {
                return Err(DropReason::UnexpectedSsrc);
            }
            Some(previous) => {
                let run = match self.ssrc_candidate {
                    Some((s, n)) if s == ssrc => n + 1,
                    _ => 1,
                };
                if run < self.config.latch_after.max(1) || self.config.latch_after == 0 {
                    self.ssrc_candidate = Some((ssrc, run));
                    return Err(DropReason::UnexpectedSsrc);
                }
                Some(previous)
            }
        };
        self.ssrc_candidate = None;
        // A source switched in by a run of packets has shown sequential packets already;
        // the probation still applies from here (§A.1).
        self.source = Some(Source {
            ssrc,
            seq: SequenceTracker::with_probation(seq, self.config.min_sequential),
            jitter16: 0,
            last_transit: None,
            octets: 0,
            last_sr: None,
        });
        if let Some(previous) = switch {
            self.events
                .push_back(SessionEvent::SsrcChanged { previous, ssrc });
        }
        Ok(())
    }

    /// `now` in RTP timestamp units since the session started (wrapping).
    fn rtp_clock(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.epoch);
        let units = elapsed.as_nanos() * u128::from(self.config.clock_rate) / 1_000_000_000;
        // Wrapping modulo 2^32, like the timestamps it is compared with.
        units as u32
    }

    fn ntp_now(&self, now: Instant) -> u64 {
        rtcp::ntp_add(
            self.config.ntp_at_start,
            now.saturating_duration_since(self.epoch),
        )
    }

    /// Takes in an RTCP datagram that arrived at `now` from `source`.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &Bytes,
    ) -> Result<(), RtcpError> {
        let packets = match rtcp::parse_compound(data) {
            Ok(p) => p,
            Err(e) => {
                self.drops.rtcp_malformed += 1;
                return Err(e);
            }
        };
        self.avg_rtcp_size = (data.len() + 28) as f64 / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        let remote = self.remote_ssrc();
        let ntp_middle_now = rtcp::ntp_middle(self.ntp_now(now));
        for packet in packets {
            let (reporter, blocks) = match &packet {
                RtcpPacket::SenderReport(sr) => {
                    if remote == Some(sr.ssrc) {
                        self.last_remote_sr = Some(sr.info);
                        if let Some(src) = self.source.as_mut() {
                            src.last_sr = Some((rtcp::ntp_middle(sr.info.ntp_timestamp), now));
                        }
                    }
                    (sr.ssrc, &sr.reports)
                }
                RtcpPacket::ReceiverReport(rr) => (rr.ssrc, &rr.reports),
                RtcpPacket::Bye(bye) => {
                    if let Some(r) = remote.filter(|r| bye.sources.contains(r)) {
                        self.events.push_back(SessionEvent::Bye {
                            ssrc: r,
                            reason: bye.reason.clone(),
                        });
                        // Free to adopt a new source (unless one is configured).
                        self.source = None;
                    }
                    continue;
                }
                _ => continue,
            };
            // Reports count from the remote source, or from anyone while we know none
            // (we only send).
            if remote.is_some_and(|r| r != reporter) {
                continue;
            }
            if self.rtcp_learning && Some(source) != self.remote_rtcp_addr {
                let previous = self.remote_rtcp_addr.replace(source);
                self.events.push_back(SessionEvent::RemoteRtcpAddrLatched {
                    previous,
                    addr: source,
                });
            }
            self.rtcp_learning = false;
            for block in blocks.iter().filter(|b| b.ssrc == self.ssrc) {
                self.remote_report = Some(*block);
                if block.last_sr != 0 {
                    // RTT = A − LSR − DLSR, all in 1/65536 s (§6.4.1).
                    let rtt = ntp_middle_now
                        .wrapping_sub(block.last_sr)
                        .wrapping_sub(block.delay_since_last_sr);
                    if rtt < 1 << 31 {
                        self.rtt = Some(rtcp::from_dlsr(rtt));
                    }
                }
            }
        }
        Ok(())
    }

    /// When to call [`poll_rtcp`](Self::poll_rtcp) next; `None` once closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.next_rtcp)
    }

    /// The compound RTCP report due at `now` (SR or RR, then SDES), if one is due.
    #[must_use]
    pub fn poll_rtcp(&mut self, now: Instant) -> Option<Bytes> {
        if self.closed || now < self.next_rtcp {
            return None;
        }
        let packets = self.report(now);
        let data = rtcp::serialize_compound(&packets);
        self.avg_rtcp_size = (data.len() + 28) as f64 / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        self.initial_report = false;
        self.next_rtcp = now + self.rtcp_interval();
        Some(data)
    }

    /// Leaves the session: the final compound report with a BYE (§6.6). The session sends
    /// no more RTCP and drops further RTP.
    pub fn bye(&mut self, now: Instant, reason: Option<Bytes>) -> Bytes {
        let mut packets = self.report(now);
        packets.push(RtcpPacket::Bye(Bye::new(vec![self.ssrc], reason)));
        self.closed = true;
        rtcp::serialize_compound(&packets)
    }

    /// SR or RR plus SDES, with the report block on the remote source.
    fn report(&mut self, now: Instant) -> Vec<RtcpPacket> {
        let mut blocks = Vec::new();
        if let Some(src) = self.source.as_mut().filter(|s| s.seq.is_valid()) {
            let (last_sr, delay_since_last_sr) = match src.last_sr {
                Some((lsr, at)) => (lsr, rtcp::to_dlsr(now.saturating_duration_since(at))),
                None => (0, 0),
            };
            blocks.push(ReportBlock {
                ssrc: src.ssrc,
                fraction_lost: src.seq.take_fraction_lost(),
                cumulative_lost: src.seq.cumulative_lost(),
                extended_highest_seq: src.seq.extended_max(),
                jitter: jitter_of(src.jitter16),
                last_sr,
                delay_since_last_sr,
            });
        }
        // §6.4: SR if we sent data since the report before the previous one.
        let we_sent = self.sent_since_report || self.sent_since_prev_report;
        self.sent_since_prev_report = self.sent_since_report;
        self.sent_since_report = false;
        let first = match self.last_media {
            Some((ts, at)) if we_sent => {
                let rtp_timestamp = ts.wrapping_add(
                    self.rtp_clock(now)
                        .wrapping_sub(self.rtp_clock(at.max(self.epoch))),
                );
                let info = SenderInfo::new(
                    self.ntp_now(now),
                    rtp_timestamp,
                    self.sent.packets,
                    self.sent.octets,
                );
                RtcpPacket::SenderReport(SenderReport::new(self.ssrc, info, blocks))
            }
            _ => RtcpPacket::ReceiverReport(ReceiverReport::new(self.ssrc, blocks)),
        };
        vec![
            first,
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(
                self.ssrc,
                self.config.cname.clone(),
            )]),
        ]
    }

    /// The next RTCP interval (§6.3.1, §A.7, simplified to our two-party view: us and the
    /// remote source).
    fn rtcp_interval(&mut self) -> Duration {
        let session_bandwidth = match self.config.rtcp_interval {
            RtcpInterval::Fixed(d) => return d,
            RtcpInterval::Rfc3550 { session_bandwidth } => session_bandwidth,
        };
        // RTCP gets 5 % of the session bandwidth, in octets per second.
        let mut rtcp_bw = f64::from(session_bandwidth.max(1)) * 0.05 / 8.0;
        let we_sent = self.sent_since_report || self.sent_since_prev_report;
        let remote_sends = self.last_remote_sr.is_some();
        let members = 1.0 + f64::from(u8::from(self.source.is_some()));
        let senders = f64::from(u8::from(we_sent) + u8::from(remote_sends));
        // §6.2: senders share 25 % of the RTCP bandwidth when they are few.
        let n = if senders > 0.0 && senders <= members * 0.25 {
            if we_sent {
                rtcp_bw *= 0.25;
                senders
            } else {
                rtcp_bw *= 0.75;
                members - senders
            }
        } else {
            members
        };
        let t_min = if self.initial_report { 2.5 } else { 5.0 };
        let t = (self.avg_rtcp_size * n / rtcp_bw).max(t_min);
        let t = t * (self.rng.unit() + 0.5) / COMPENSATION;
        Duration::from_secs_f64(t)
    }
}

fn jitter_of(jitter16: u64) -> u32 {
    u32::try_from(jitter16 >> 4).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const SIGNALLED: &str = "192.0.2.10:4000";
    const NAT: &str = "198.51.100.7:61000";

    fn rtp(seq: u16, ts: u32, ssrc: u32) -> Bytes {
        RtpPacket::new(0, seq, ts, ssrc, Bytes::from_static(&[0xff; 160])).to_bytes()
    }

    fn session(t0: Instant) -> RtpSession {
        RtpSession::new(
            SessionConfig::new(8000, 0)
                .with_remote_addr(addr(SIGNALLED))
                .with_initial(0xaaaa, 100, 1000)
                .with_seed(7),
            t0,
        )
    }

    #[test]
    fn packetize_to_writes_what_packetize_returns() {
        let t0 = Instant::now();
        let (mut a, mut b) = (session(t0), session(t0));
        let mut buf = [0u8; 64];
        for (payload, marker) in [(&b"abcd"[..], true), (&b"ef"[..], false)] {
            let want = a.packetize(t0, Bytes::copy_from_slice(payload), 160, marker);
            let n = b.packetize_to(t0, payload, 160, marker, &mut buf).unwrap();
            assert_eq!(&buf[..n], &want[..]);
        }
        assert_eq!(a.sender_stats(), b.sender_stats());
        assert_eq!(b.packetize_to(t0, &[0; 60], 160, false, &mut buf), None);
        assert_eq!(
            b.sequence, a.sequence,
            "a packet that did not fit takes no number"
        );
    }

    #[test]
    fn packetize_counts_and_advances() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let a = RtpPacket::parse(s.packetize(t0, Bytes::from_static(b"abcd"), 160, true)).unwrap();
        let b = RtpPacket::parse(s.packetize(t0, Bytes::from_static(b"ef"), 160, false)).unwrap();
        assert_eq!(
            (a.sequence, a.timestamp, a.ssrc, a.marker),
            (100, 1000, 0xaaaa, true)
        );
        assert_eq!((b.sequence, b.timestamp, b.marker), (101, 1160, false));
        assert_eq!(s.sender_stats().packets, 2);
        assert_eq!(s.sender_stats().octets, 6);
        assert_eq!(s.timestamp(), 1320);
    }

    #[test]
    fn random_initial_values_differ_by_seed() {
        let t0 = Instant::now();
        let a = RtpSession::new(SessionConfig::default().with_seed(1), t0);
        let b = RtpSession::new(SessionConfig::default().with_seed(2), t0);
        assert_ne!(a.ssrc(), b.ssrc());
        let c = RtpSession::new(SessionConfig::default(), t0);
        let d = RtpSession::new(SessionConfig::default(), t0);
        assert_ne!((c.ssrc(), c.timestamp()), (d.ssrc(), d.timestamp()));
    }

    #[test]
    fn a_seeded_entropy_replays_the_initial_values() {
        let t0 = Instant::now();
        let run = |seed| {
            let e = Entropy::seeded(seed);
            let s = RtpSession::new(SessionConfig::default().with_entropy(&e), t0);
            let t = RtpSession::new(SessionConfig::default().with_entropy(&e), t0);
            [
                (s.ssrc(), s.next_sequence(), s.timestamp()),
                (t.ssrc(), t.next_sequence(), t.timestamp()),
            ]
        };
        assert_eq!(run(7), run(7));
        let [a, b] = run(7);
        assert_ne!(a, b, "two sessions of one source differ");
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn probation_then_accept() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr(SIGNALLED);
        assert_eq!(
            s.receive(t0, from, rtp(1, 0, 9)),
            Err(DropReason::Probation)
        );
        let r = s.receive(t0, from, rtp(2, 160, 9)).unwrap();
        assert_eq!(r.extended_sequence, 2);
        assert_eq!(s.remote_ssrc(), Some(9));
        assert_eq!(s.drops().probation, 1);
    }

    #[test]
    fn malformed_packets_are_counted_by_reason() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr(SIGNALLED);
        assert_eq!(
            s.receive(t0, from, Bytes::from_static(&[0x80, 0])),
            Err(DropReason::TooShort)
        );
        let mut v1 = rtp(1, 0, 9).to_vec();
        v1[0] = 0x40;
        assert_eq!(
            s.receive(t0, from, Bytes::from(v1)),
            Err(DropReason::BadVersion)
        );
        let mut pad = rtp(1, 0, 9).to_vec();
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 0;
        assert_eq!(
            s.receive(t0, from, Bytes::from(pad)),
            Err(DropReason::BadPadding)
        );
        let d = s.drops();
        assert_eq!((d.too_short, d.bad_version, d.bad_padding), (1, 1, 1));
    }

    #[test]
    fn symmetric_rtp_latches_to_nat_address() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(
            SessionConfig::new(8000, 0)
                .with_remote_addr(addr(SIGNALLED))
                .with_min_sequential(1)
                .with_seed(3),
            t0,
        );
        let nat = addr(NAT);
        // First packet from the NAT address: dropped, counted as a candidate.
        assert_eq!(
            s.receive(t0, nat, rtp(1, 0, 9)),
            Err(DropReason::UnexpectedSource)
        );
        assert_eq!(s.remote_addr(), Some(addr(SIGNALLED)));
        assert_eq!(s.settled_remote_addr(), None, "still learning");
        // Second in a row from the same address and SSRC: latch.
        assert!(s.receive(t0, nat, rtp(2, 160, 9)).is_ok());
        assert_eq!(s.remote_addr(), Some(nat));
        assert_eq!(s.settled_remote_addr(), Some(nat));
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::RemoteAddrLatched {
                previous: Some(addr(SIGNALLED)),
                addr: nat
            })
        );
        // Locked now: an attacker's two packets do not move it.
        let other = addr("203.0.113.5:5000");
        for seq in 3..6 {
            assert_eq!(
                s.receive(t0, other, rtp(seq, 0, 9)),
                Err(DropReason::UnexpectedSource)
            );
        }
        assert_eq!(s.remote_addr(), Some(nat));
        assert_eq!(s.drops().unexpected_source, 4);
        // A re-INVITE starts learning again.
        s.set_remote_addr(addr(SIGNALLED), None);
        assert_eq!(s.settled_remote_addr(), None);
        assert!(s.receive(t0, other, rtp(6, 0, 9)).is_err());
        assert!(s.receive(t0, other, rtp(7, 0, 9)).is_ok());
        assert_eq!(s.remote_addr(), Some(other));
    }

    #[test]
    fn without_latching_the_signalled_address_is_settled_at_once() {
        let t0 = Instant::now();
        let config = |c: SessionConfig| c.with_min_sequential(1).with_seed(3);
        let s = RtpSession::new(
            config(SessionConfig::new(8000, 0))
                .with_remote_addr(addr(SIGNALLED))
                .with_latch_after(0),
            t0,
        );
        assert_eq!(s.settled_remote_addr(), Some(addr(SIGNALLED)));
        let s = RtpSession::new(config(SessionConfig::new(8000, 0)).with_latch_after(0), t0);
        assert_eq!(s.settled_remote_addr(), None, "no address to settle on");
    }

    #[test]
    fn signalled_address_confirmed_stops_learning() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr(SIGNALLED);
        let nat = addr(NAT);
        s.receive(t0, from, rtp(1, 0, 9)).unwrap_err();
        assert_eq!(s.settled_remote_addr(), None, "one packet confirms nothing");
        s.receive(t0, from, rtp(2, 0, 9)).unwrap();
        assert_eq!(s.settled_remote_addr(), Some(from));
        // Interleaved candidate packets never latch; after confirmation none do.
        for seq in 3..8 {
            assert_eq!(
                s.receive(t0, nat, rtp(seq, 0, 9)),
                Err(DropReason::UnexpectedSource)
            );
        }
        assert_eq!(s.remote_addr(), Some(from));
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn candidate_with_wrong_ssrc_does_not_latch() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(
            SessionConfig::new(8000, 0)
                .with_remote_addr(addr(SIGNALLED))
                .with_remote_ssrc(9)
                .with_min_sequential(1),
            t0,
        );
        let nat = addr(NAT);
        for seq in 1..5 {
            assert!(s.receive(t0, nat, rtp(seq, 0, 10)).is_err());
        }
        assert_eq!(s.remote_addr(), Some(addr(SIGNALLED)));
        // From the right address, the wrong SSRC is dropped as such, and never switches.
        for seq in 1..5 {
            assert_eq!(
                s.receive(t0, addr(SIGNALLED), rtp(seq, 0, 10)),
                Err(DropReason::UnexpectedSsrc)
            );
        }
    }

    #[test]
    fn ssrc_switch_after_a_run() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr(SIGNALLED);
        s.receive(t0, from, rtp(1, 0, 9)).unwrap_err();
        s.receive(t0, from, rtp(2, 0, 9)).unwrap();
        assert_eq!(
            s.receive(t0, from, rtp(500, 0, 10)),
            Err(DropReason::UnexpectedSsrc)
        );
        // Interrupted by the current source: the run restarts.
        s.receive(t0, from, rtp(3, 0, 9)).unwrap();
        assert_eq!(
            s.receive(t0, from, rtp(501, 0, 10)),
            Err(DropReason::UnexpectedSsrc)
        );
        // Second in a row: switch (the new source then starts its probation).
        assert_eq!(
            s.receive(t0, from, rtp(502, 0, 10)),
            Err(DropReason::Probation)
        );
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::SsrcChanged {
                previous: 9,
                ssrc: 10
            })
        );
        assert!(s.receive(t0, from, rtp(503, 0, 10)).is_ok());
        assert_eq!(s.remote_ssrc(), Some(10));
    }

    #[test]
    fn extended_sequence_across_wrap() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr(SIGNALLED);
        let mut ext = Vec::new();
        for seq in [65533u16, 65534, 65535, 0, 2, 1] {
            if let Ok(r) = s.receive(t0, from, rtp(seq, 0, 9)) {
                ext.push(r.extended_sequence);
            }
        }
        assert_eq!(ext, [65534, 65535, 65536, 65538, 65537]);
        let st = s.receiver_stats().unwrap();
        assert_eq!((st.expected, st.received, st.lost), (5, 5, 0));
        assert_eq!(st.extended_highest_seq, 65538);
    }

    /// RFC 3550 §A.8 on a stream whose transit time alternates between 0 and 5 ms:
    /// |D| is 40 timestamp units for every packet, so J converges to 40.
    #[test]
    fn interarrival_jitter_converges_to_known_value() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr(SIGNALLED);
        let mut reference = 0.0f64;
        for i in 0..400u32 {
            let extra = if i % 2 == 1 { 5 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(20 * i + extra));
            let _ = s.receive(at, from, rtp(i as u16, 5000 + 160 * i, 9));
            if i >= 2 {
                reference += (40.0 - reference) / 16.0;
            }
        }
        let stats = s.receiver_stats().unwrap();
        assert!((39..=40).contains(&stats.jitter), "{}", stats.jitter);
        assert!((f64::from(stats.jitter) - reference).abs() <= 1.0);

        // No jitter: constant transit.
        let mut s = session(t0);
        for i in 0..100u32 {
            let at = t0 + Duration::from_millis(u64::from(20 * i + 3));
            let _ = s.receive(at, from, rtp(i as u16, 160 * i, 9));
        }
        assert_eq!(s.receiver_stats().unwrap().jitter, 0);
    }

    #[test]
    fn loss_fraction_in_receiver_report() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(
            SessionConfig::new(8000, 0)
                .with_remote_addr(addr(SIGNALLED))
                .with_initial(0xaaaa, 0, 0)
                .with_rtcp_interval(RtcpInterval::Fixed(Duration::from_secs(5))),
            t0,
        );
        let from = addr(SIGNALLED);
        // 200 packets, 1 in 10 lost (never seq 0 or 1, so probation passes on 0, 1).
        for i in 0..200u16 {
            if i % 10 != 5 {
                let _ = s.receive(t0, from, rtp(i, u32::from(i) * 160, 9));
            }
        }
        let st = s.receiver_stats().unwrap();
        // Probation makes seq 1 the base: 199 expected, 179 received.
        assert_eq!(st.expected, 199);
        assert_eq!(st.received, 179);
        assert_eq!(st.lost, 20);
        assert_eq!(st.fraction_lost, (20 * 256 / 199) as u8);
        assert_eq!(s.poll_rtcp(t0), None);
        let t = t0 + Duration::from_secs(5);
        let report = rtcp::parse_compound(&s.poll_rtcp(t).unwrap()).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &report[0] else {
            panic!("RR expected (we sent nothing): {report:?}")
        };
        assert_eq!(rr.ssrc, 0xaaaa);
        let b = rr.reports[0];
        assert_eq!(b.ssrc, 9);
        assert_eq!(b.fraction_lost, (20 * 256 / 199) as u8);
        assert_eq!(b.cumulative_lost, 20);
        assert_eq!(b.extended_highest_seq, 199);
        let RtcpPacket::SourceDescription(sdes) = &report[1] else {
            panic!()
        };
        assert_eq!(
            sdes[0].find_cname().unwrap(),
            &Bytes::from_static(b"parrot")
        );
        // The next interval starts afresh: no loss in it.
        assert_eq!(s.receiver_stats().unwrap().fraction_lost, 0);
        assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(5)));
    }

    #[test]
    fn sender_report_and_rtt() {
        let t0 = Instant::now();
        let cfg = |ssrc, remote: &str| {
            SessionConfig::new(8000, 0)
                .with_remote_addr(addr(remote))
                .with_initial(ssrc, 0, 0)
                .with_min_sequential(1)
                .with_rtcp_interval(RtcpInterval::Fixed(Duration::from_secs(5)))
                .with_ntp_at_start(rtcp::ntp_from_unix(Duration::from_secs(1_700_000_000)))
        };
        let a_addr = addr("10.0.0.1:4000");
        let b_addr = addr("10.0.0.2:5000");
        let mut a = RtpSession::new(cfg(1, "10.0.0.2:5000"), t0);
        let mut b = RtpSession::new(cfg(2, "10.0.0.1:4000"), t0);
        for i in 0..50u64 {
            let now = t0 + Duration::from_millis(20 * i);
            let p = a.packetize(now, Bytes::from_static(&[0; 160]), 160, i == 0);
            b.receive(now + Duration::from_millis(30), a_addr, p)
                .unwrap();
        }
        // A's SR at 5 s, arriving at B 30 ms later.
        let t5 = t0 + Duration::from_secs(5);
        let sr = a.poll_rtcp(t5).unwrap();
        let parsed = rtcp::parse_compound(&sr).unwrap();
        let RtcpPacket::SenderReport(info) = &parsed[0] else {
            panic!("{parsed:?}")
        };
        assert_eq!(info.info.packet_count, 50);
        assert_eq!(info.info.octet_count, 50 * 160);
        // RTP time at 5 s: last packet at 980 ms had ts 49*160; 4.02 s later.
        assert_eq!(info.info.rtp_timestamp, 49 * 160 + 4020 * 8);
        b.handle_rtcp(t5 + Duration::from_millis(30), a_addr, &sr)
            .unwrap();
        // B's RR 1 s later carries LSR and DLSR = 970 ms; back at A after 30 ms: RTT 60 ms.
        let rr = b.poll_rtcp(t0 + Duration::from_secs(6)).unwrap();
        a.handle_rtcp(t0 + Duration::from_millis(6030), b_addr, &rr)
            .unwrap();
        let rtt = a.rtt().unwrap();
        assert!(
            rtt.abs_diff(Duration::from_millis(60)) < Duration::from_millis(1),
            "{rtt:?}"
        );
        assert_eq!(a.remote_report().unwrap().cumulative_lost, 0);
        // A learnt B's RTCP address from the report.
        assert_eq!(a.remote_rtcp_addr(), Some(b_addr));
    }

    #[test]
    fn bye_is_an_event_and_closes() {
        let t0 = Instant::now();
        let mut a = session(t0);
        let mut b = RtpSession::new(
            SessionConfig::new(8000, 0)
                .with_initial(9, 0, 0)
                .with_min_sequential(1),
            t0,
        );
        let from = addr(SIGNALLED);
        let p = b.packetize(t0, Bytes::from_static(b"x"), 160, false);
        a.receive(t0, from, p.clone()).unwrap_err(); // probation
        let p = b.packetize(t0, Bytes::from_static(b"x"), 160, false);
        a.receive(t0, from, p).unwrap();
        let bye = b.bye(t0, Some(Bytes::from_static(b"bye now")));
        assert!(b.is_closed());
        assert_eq!(b.poll_timeout(), None);
        assert_eq!(b.poll_rtcp(t0 + Duration::from_secs(100)), None);
        a.handle_rtcp(t0, from, &bye).unwrap();
        let events: Vec<_> = std::iter::from_fn(|| a.poll_event()).collect();
        assert!(events.contains(&SessionEvent::Bye {
            ssrc: 9,
            reason: Some(Bytes::from_static(b"bye now"))
        }));
        assert_eq!(a.remote_ssrc(), None);
        assert!(
            a.handle_rtcp(t0, from, &Bytes::from_static(&[0x80, 202, 0, 0]))
                .is_err()
        );
        assert_eq!(a.drops().rtcp_malformed, 1);
    }

    #[test]
    fn rtcp_interval_bounds() {
        let t0 = Instant::now();
        let (mut lo, mut hi) = (f64::MAX, 0.0f64);
        let (mut first_lo, mut first_hi) = (f64::MAX, 0.0f64);
        for seed in 0..300 {
            let mut s = RtpSession::new(SessionConfig::default().with_seed(seed), t0);
            let first = s.poll_timeout().unwrap().duration_since(t0).as_secs_f64();
            first_lo = first_lo.min(first);
            first_hi = first_hi.max(first);
            let mut now = t0 + Duration::from_secs_f64(first);
            for _ in 0..5 {
                let _ = s.packetize(now, Bytes::from_static(&[0; 160]), 160, false);
                assert!(s.poll_rtcp(now).is_some());
                let next = s.poll_timeout().unwrap();
                let d = next.duration_since(now).as_secs_f64();
                lo = lo.min(d);
                hi = hi.max(d);
                now = next;
            }
        }
        // Td = 5 s; T in [0.5, 1.5] * Td / 1.21828.
        assert!(lo >= 2.5 / COMPENSATION - 1e-6 && hi <= 7.5 / COMPENSATION + 1e-6);
        assert!(
            lo < 2.3 && hi > 5.9,
            "randomised across the range: {lo} {hi}"
        );
        assert!(first_lo >= 1.25 / COMPENSATION - 1e-6 && first_hi <= 3.75 / COMPENSATION + 1e-6);
        // Fixed interval.
        let mut s = RtpSession::new(
            SessionConfig::default()
                .with_rtcp_interval(RtcpInterval::Fixed(Duration::from_secs(1))),
            t0,
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        assert!(s.poll_rtcp(t0 + Duration::from_millis(999)).is_none());
        assert!(s.poll_rtcp(t0 + Duration::from_secs(1)).is_some());
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    }
}
