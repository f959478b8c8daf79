//! DTMF as RFC 4733 telephone-events: the payload format, a sender that produces the packet
//! sequence of a digit, and a receiver that reports each digit exactly once.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Events 0–15 are the DTMF digits `0`–`9`, `*`, `#`, `A`–`D` (RFC 4733 §3.2).

use super::packet::RtpPacket;
use super::seq::ts_after;
use bytes::Bytes;
use std::collections::VecDeque;

/// A telephone-event payload could not be parsed, or a digit is not DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtmfError {
    /// Fewer than 4 octets.
    #[error("telephone-event payload shorter than 4 octets ({0})")]
    TooShort(usize),
    /// Not one of `0`–`9`, `*`, `#`, `A`–`D`.
    #[error("{0:?} is not a DTMF digit")]
    NotADigit(char),
}

/// The DTMF event code of a digit (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        // The match arm guarantees an ASCII digit, so the subtraction fits in a u8.
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The digit of a DTMF event code (0–15).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventPayload {
    /// The event code.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// The R bit (reserved: sent as 0, ignored on receipt, kept for inspection).
    pub reserved: bool,
    /// Power level in −dBm0, 0..=63 (larger is quieter); serializing keeps 6 bits.
    pub volume: u8,
    /// Duration so far, in timestamp units, from the event's timestamp.
    pub duration: u16,
}

impl EventPayload {
    /// A payload with the R bit clear.
    pub fn new(event: u8, end: bool, volume: u8, duration: u16) -> Self {
        EventPayload {
            event,
            end,
            reserved: false,
            volume,
            duration,
        }
    }

    /// Parses the first event of a payload (further octets, e.g. RFC 2198 redundancy in
    /// another payload type, are not interpreted).
    pub fn parse(data: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *data else {
            return Err(DtmfError::TooShort(data.len()));
        };
        Ok(EventPayload {
            event,
            end: flags & 0x80 != 0,
            reserved: flags & 0x40 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The payload in wire format (R sent as 0, §2.3.3).
    pub fn to_array(&self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        let flags = (u8::from(self.end) << 7) | (self.volume & 0x3f);
        [self.event, flags, d0, d1]
    }

    /// The payload in wire format, as `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.to_array())
    }
}

/// One packet to send for an event: the caller wraps it in RTP with the telephone-event
/// payload type, this timestamp and marker (e.g. with
/// [`RtpSession::packetize_with`](super::session::RtpSession::packetize_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The payload.
    pub payload: EventPayload,
    /// The RTP timestamp: the event's start, the same for all its packets (§2.5.1.2).
    pub timestamp: u32,
    /// The marker bit: set on the first packet of an event (§2.5.1.1).
    pub marker: bool,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    event: u8,
    total: u16,
    start: u32,
    elapsed: u32,
    ends_sent: u8,
}

/// Times the final packet of an event is sent (RFC 4733 §2.5.1.4: "a total of three
/// times").
const END_PACKETS: u8 = 3;

/// Produces the telephone-event packets of queued digits, one per packetization interval.
///
/// For each event: the first packet has the marker bit and the duration of one interval;
/// each interval after that an update with the duration grown by one interval; when the
/// duration is reached, the final packet (E bit) three times, one per interval. All packets
/// of an event carry the timestamp at which it started. Durations are capped at 65535
/// timestamp units (8.19 s at 8 kHz): longer events would need RFC 4733 §2.5.1.3 segments,
/// which this sender does not produce.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    ptime: u32,
    volume: u8,
    queue: VecDeque<(u8, u16)>,
    active: Option<Active>,
}

impl DtmfSender {
    /// A sender for this packetization interval (in timestamp units, e.g. 160 for 20 ms
    /// at 8 kHz) and volume (−dBm0, e.g. 10).
    pub fn new(ptime: u32, volume: u8) -> Self {
        DtmfSender {
            ptime: ptime.max(1),
            volume: volume & 0x3f,
            queue: VecDeque::new(),
            active: None,
        }
    }

    /// Queues a digit lasting `duration` timestamp units (capped at 65535).
    pub fn send_digit(&mut self, digit: char, duration: u32) -> Result<(), DtmfError> {
        let event = digit_to_event(digit).ok_or(DtmfError::NotADigit(digit))?;
        self.send_event(event, duration);
        Ok(())
    }

    /// Queues any event code lasting `duration` timestamp units (capped at 65535).
    pub fn send_event(&mut self, event: u8, duration: u32) {
        let duration = u16::try_from(duration).unwrap_or(u16::MAX).max(1);
        self.queue.push_back((event, duration));
    }

    /// Whether nothing is being sent or queued.
    pub fn is_idle(&self) -> bool {
        self.active.is_none() && self.queue.is_empty()
    }

    /// The packet for this interval, if an event is being sent. Call once per interval;
    /// `timestamp` is the media timestamp now, used as the start of a new event.
    pub fn next_packet(&mut self, timestamp: u32) -> Option<EventPacket> {
        let mut a = match self.active {
            Some(a) => a,
            None => {
                let (event, total) = self.queue.pop_front()?;
                Active {
                    event,
                    total,
                    start: timestamp,
                    elapsed: 0,
                    ends_sent: 0,
                }
            }
        };
        let marker = a.elapsed == 0;
        a.elapsed = a.elapsed.saturating_add(self.ptime);
        let duration = a.elapsed.min(u32::from(a.total));
        let end = duration >= u32::from(a.total);
        if end {
            a.ends_sent += 1;
        }
        self.active = (a.ends_sent < END_PACKETS).then_some(a);
        Some(EventPacket {
            // `duration <= total`, a u16.
            payload: EventPayload::new(a.event, end, self.volume, duration as u16),
            timestamp: a.start,
            marker,
        })
    }
}

/// A digit (or other event) reported by [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DtmfEvent {
    /// The event code.
    pub event: u8,
    /// The RTP timestamp of the event's start (its identity).
    pub timestamp: u32,
    /// Volume (−dBm0) of the packet that reported it.
    pub volume: u8,
}

impl DtmfEvent {
    /// The digit, for events 0–15.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// Turns a stream of telephone-event packets into events, each exactly once.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.2.1: all packets of an event
/// share it). It is reported on the first packet seen for it, whichever that is (start,
/// update or end), so the loss of the first packets or of some end packets does not lose
/// the digit, and redundant end packets do not repeat it. A packet whose timestamp is older
/// than the newest event reported is late (reordered behind a newer event) and ignored.
/// Feed it the packets of the telephone-event payload type of one source; call
/// [`reset`](Self::reset) when the source changes.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    last: Option<(u32, u8)>,
    ignored: u64,
}

impl DtmfReceiver {
    /// A receiver that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the last event (a new source).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Packets ignored: repeats of a reported event, late packets, malformed payloads.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Takes one telephone-event packet; returns the event if it is new.
    pub fn receive(&mut self, packet: &RtpPacket) -> Option<DtmfEvent> {
        let Ok(payload) = EventPayload::parse(&packet.payload) else {
            self.ignored += 1;
            return None;
        };
        let ts = packet.timestamp;
        let new = match self.last {
            None => true,
            Some((last_ts, last_event)) => {
                ts_after(ts, last_ts) || (ts == last_ts && payload.event != last_event)
            }
        };
        if !new {
            self.ignored += 1;
            return None;
        }
        self.last = Some((ts, payload.event));
        Some(DtmfEvent {
            event: payload.event,
            timestamp: ts,
            volume: payload.volume,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::session::{RtpSession, SessionConfig};
    use std::time::Instant;

    #[test]
    fn digits_map_to_events() {
        let digits = "0123456789*#ABCD";
        for (i, d) in digits.chars().enumerate() {
            assert_eq!(digit_to_event(d), Some(i as u8));
            assert_eq!(event_to_digit(i as u8), Some(d));
        }
        assert_eq!(digit_to_event('a'), Some(12));
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn payload_round_trip() {
        let p = EventPayload::new(5, true, 10, 800);
        assert_eq!(p.to_array(), [5, 0x80 | 10, 0x03, 0x20]);
        assert_eq!(EventPayload::parse(&p.to_array()), Ok(p));
        // R is ignored on receipt but visible.
        let q = EventPayload::parse(&[11, 0x40 | 63, 0, 160]).unwrap();
        assert!(q.reserved && !q.end);
        assert_eq!((q.event, q.volume, q.duration), (11, 63, 160));
        assert_eq!(q.to_array()[1], 63);
        assert_eq!(EventPayload::parse(&[1, 2, 3]), Err(DtmfError::TooShort(3)));
    }

    /// Digit '5', 20 ms ptime at 8 kHz, 100 ms long: four growing updates, then the end
    /// packet three times, all with the event's timestamp, consecutive sequence numbers.
    #[test]
    fn sender_sequence_for_digit_5() {
        let t0 = Instant::now();
        let mut session = RtpSession::new(
            SessionConfig::new(8000, 0).with_initial(0x1234, 1000, 8000),
            t0,
        );
        let mut dtmf = DtmfSender::new(160, 10);
        dtmf.send_digit('5', 800).unwrap();
        assert_eq!(dtmf.send_digit('x', 800), Err(DtmfError::NotADigit('x')));
        let mut wire = Vec::new();
        while let Some(ev) = dtmf.next_packet(session.timestamp()) {
            let bytes = session.packetize_with(101, ev.payload.to_bytes(), ev.timestamp, ev.marker);
            // The media clock runs on while the event plays.
            session.advance_timestamp(160);
            wire.push(RtpPacket::parse(bytes).unwrap());
        }
        assert!(dtmf.is_idle());
        let got: Vec<_> = wire
            .iter()
            .map(|p| {
                let e = EventPayload::parse(&p.payload).unwrap();
                (
                    p.sequence,
                    p.timestamp,
                    p.marker,
                    e.event,
                    e.end,
                    e.volume,
                    e.duration,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1000, 8000, true, 5, false, 10, 160),
                (1001, 8000, false, 5, false, 10, 320),
                (1002, 8000, false, 5, false, 10, 480),
                (1003, 8000, false, 5, false, 10, 640),
                (1004, 8000, false, 5, true, 10, 800),
                (1005, 8000, false, 5, true, 10, 800),
                (1006, 8000, false, 5, true, 10, 800),
            ]
        );
        assert!(wire.iter().all(|p| p.payload_type == 101));
        assert_eq!(session.timestamp(), 8000 + 7 * 160);
    }

    #[test]
    fn short_event_and_queue() {
        let mut dtmf = DtmfSender::new(160, 0);
        dtmf.send_digit('1', 40).unwrap();
        dtmf.send_digit('#', 200).unwrap();
        let pkts: Vec<_> = std::iter::successors(Some(0u32), |t| Some(t + 160))
            .map_while(|ts| dtmf.next_packet(ts))
            .map(|p| {
                (
                    p.timestamp,
                    p.marker,
                    p.payload.event,
                    p.payload.end,
                    p.payload.duration,
                )
            })
            .collect();
        assert_eq!(
            pkts,
            [
                (0, true, 1, true, 40),
                (0, false, 1, true, 40),
                (0, false, 1, true, 40),
                (480, true, 11, false, 160),
                (480, false, 11, true, 200),
                (480, false, 11, true, 200),
                (480, false, 11, true, 200),
            ]
        );
    }

    fn event_packets(digit: char, ts: u32, seq0: u16) -> Vec<RtpPacket> {
        let mut s = DtmfSender::new(160, 10);
        s.send_digit(digit, 640).unwrap();
        std::iter::from_fn(|| s.next_packet(ts))
            .enumerate()
            .map(|(i, p)| {
                RtpPacket::new(101, seq0 + i as u16, p.timestamp, 7, p.payload.to_bytes())
                    .with_marker(p.marker)
            })
            .collect()
    }

    #[test]
    fn receiver_reports_each_digit_once() {
        // Three digits, 6 packets each (3 updates, 3 ends).
        let a = event_packets('1', 1000, 0);
        let b = event_packets('2', 5000, 6);
        let c = event_packets('#', 9000, 12);
        let mut stream = Vec::new();
        // Digit 1: everything arrives, end packets duplicated.
        stream.extend(a.iter().cloned());
        stream.extend(a[3..].iter().cloned());
        // Digit 2: start and updates lost; only the second end packet arrives, twice.
        stream.push(b[4].clone());
        stream.push(b[4].clone());
        // Digit #: reordered, and a late duplicate of digit 2 among them.
        stream.push(c[1].clone());
        stream.push(c[0].clone());
        stream.push(b[5].clone());
        stream.extend(c[2..].iter().cloned());
        let mut rx = DtmfReceiver::new();
        let digits: Vec<_> = stream
            .iter()
            .filter_map(|p| rx.receive(p))
            .map(|e| (e.digit().unwrap(), e.timestamp))
            .collect();
        assert_eq!(digits, [('1', 1000), ('2', 5000), ('#', 9000)]);
        assert_eq!(rx.ignored(), stream.len() as u64 - 3);
        // The same digit pressed twice is two events (two timestamps).
        let again = event_packets('1', 13000, 18);
        assert_eq!(rx.receive(&again[0]).and_then(|e| e.digit()), Some('1'));
        // Malformed payloads are ignored.
        let bad = RtpPacket::new(101, 99, 20000, 7, Bytes::from_static(&[1, 2]));
        assert_eq!(rx.receive(&bad), None);
    }

    #[test]
    fn receiver_handles_timestamp_wrap() {
        let mut rx = DtmfReceiver::new();
        let a = event_packets('4', u32::MAX - 100, 0);
        let b = event_packets('5', 300, 6);
        assert!(rx.receive(&a[0]).is_some());
        assert!(rx.receive(&b[0]).is_some());
        assert!(rx.receive(&a[5]).is_none());
    }
}
