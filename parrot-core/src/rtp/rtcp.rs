//! RTCP (RFC 3550 §6): compound packets of sender reports, receiver reports, source
//! descriptions and BYE; other packet types (APP, feedback…) are kept raw.
//!
//! [`parse_compound`] applies the validity checks of RFC 3550 §A.2: every packet is
//! version 2, the first is an SR or RR without padding, only the last may be padded, and
//! the length fields add up to the datagram's length. A malformed datagram is an
//! [`RtcpError`], never a panic.

use super::packet::be32;
use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

/// Packet type of a sender report (§6.4.1).
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report (§6.4.2).
pub const PT_RR: u8 = 201;
/// Packet type of a source description (§6.5).
pub const PT_SDES: u8 = 202;
/// Packet type of BYE (§6.6).
pub const PT_BYE: u8 = 203;
/// Packet type of APP (§6.7).
pub const PT_APP: u8 = 204;

/// SDES item type CNAME, the canonical end-point identifier (§6.5.1).
pub const SDES_CNAME: u8 = 1;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// What is wrong with an RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpErrorKind {
    /// The datagram is empty.
    #[error("empty RTCP datagram")]
    Empty,
    /// A header or body ends early.
    #[error("RTCP packet truncated")]
    TooShort,
    /// The version is not 2.
    #[error("RTCP version {0} (only 2 is supported)")]
    BadVersion(u8),
    /// The first packet of a compound is not an SR or RR (§A.2); the packet type.
    #[error("compound RTCP starts with packet type {0}, not SR or RR")]
    FirstNotReport(u8),
    /// A packet other than the last one has the padding bit set, or the first one has (§A.2).
    #[error("padding on a packet that is not the last of the compound")]
    PaddingNotLast,
    /// The padding count is 0 or larger than the packet body.
    #[error("bad RTCP padding length")]
    BadPadding,
    /// The report, source or chunk count does not fit the length field.
    #[error("RTCP count does not fit the packet length")]
    BadCount,
    /// An SDES chunk is malformed (an item runs past its packet, or no terminator).
    #[error("malformed SDES chunk")]
    BadSdes,
    /// The BYE reason runs past its packet.
    #[error("malformed BYE reason")]
    BadBye,
}

/// An RTCP parse error: what and where (byte offset in the datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
#[non_exhaustive]
pub struct RtcpError {
    /// What went wrong.
    pub kind: RtcpErrorKind,
    /// Offset in the datagram where the offending packet (or field) starts.
    pub offset: usize,
}

impl RtcpError {
    fn new(kind: RtcpErrorKind, offset: usize) -> Self {
        RtcpError { kind, offset }
    }
}

/// One reception report block (§6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost: a 24-bit signed value on the wire (duplicates can make it
    /// negative); values outside ±2^23 are clamped when serialized.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source (LSR),
    /// or 0.
    pub last_sr: u32,
    /// Delay since that SR, in units of 1/65536 s (DLSR), or 0.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// A block about `ssrc` with every other field zero.
    pub fn new(ssrc: u32) -> Self {
        ReportBlock {
            ssrc,
            ..Self::default()
        }
    }

    fn parse(d: &[u8]) -> Self {
        let lost24 = u32::from_be_bytes([0, d[5], d[6], d[7]]);
        ReportBlock {
            ssrc: be32(d, 0),
            fraction_lost: d[4],
            // Sign-extend the 24-bit value.
            cumulative_lost: ((lost24 << 8) as i32) >> 8,
            extended_highest_seq: be32(d, 8),
            jitter: be32(d, 12),
            last_sr: be32(d, 16),
            delay_since_last_sr: be32(d, 20),
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_u32(self.ssrc);
        buf.put_u8(self.fraction_lost);
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff);
        // Two's complement, low 24 bits.
        let [_, a, b, c] = lost.to_be_bytes();
        buf.put_slice(&[a, b, c]);
        buf.put_u32(self.extended_highest_seq);
        buf.put_u32(self.jitter);
        buf.put_u32(self.last_sr);
        buf.put_u32(self.delay_since_last_sr);
    }
}

/// The sender information of an SR (§6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderInfo {
    /// Wallclock time of the report, 64-bit NTP format (seconds since 1900, 32.32 fixed point).
    pub ntp_timestamp: u64,
    /// The same instant in RTP timestamp units.
    pub rtp_timestamp: u32,
    /// Packets sent since the sender started.
    pub packet_count: u32,
    /// Payload octets sent since the sender started.
    pub octet_count: u32,
}

impl SenderInfo {
    /// Sender information with these values.
    pub fn new(
        ntp_timestamp: u64,
        rtp_timestamp: u32,
        packet_count: u32,
        octet_count: u32,
    ) -> Self {
        SenderInfo {
            ntp_timestamp,
            rtp_timestamp,
            packet_count,
            octet_count,
        }
    }
}

/// A sender report (SR, §6.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderReport {
    /// The sender.
    pub ssrc: u32,
    /// What it sent.
    pub info: SenderInfo,
    /// What it received (at most 31 blocks are serialized).
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension, kept raw (a multiple of 4 bytes when parsed).
    pub extension: Bytes,
}

impl SenderReport {
    /// A report with these blocks and no extension.
    pub fn new(ssrc: u32, info: SenderInfo, reports: Vec<ReportBlock>) -> Self {
        SenderReport {
            ssrc,
            info,
            reports,
            extension: Bytes::new(),
        }
    }
}

/// A receiver report (RR, §6.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverReport {
    /// The reporter.
    pub ssrc: u32,
    /// What it received (at most 31 blocks are serialized).
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension, kept raw.
    pub extension: Bytes,
}

impl ReceiverReport {
    /// A report with these blocks and no extension.
    pub fn new(ssrc: u32, reports: Vec<ReportBlock>) -> Self {
        ReceiverReport {
            ssrc,
            reports,
            extension: Bytes::new(),
        }
    }
}

/// One SDES item (§6.5): a type and up to 255 octets of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    /// Item type ([`SDES_CNAME`] = 1, NAME = 2, …).
    pub kind: u8,
    /// The value (UTF-8 by the RFC; kept as bytes). Cut to 255 octets when serialized.
    pub value: Bytes,
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its items.
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// A chunk holding only a CNAME.
    pub fn cname(ssrc: u32, cname: impl Into<Bytes>) -> Self {
        SdesChunk {
            ssrc,
            items: vec![SdesItem {
                kind: SDES_CNAME,
                value: cname.into(),
            }],
        }
    }

    /// The CNAME item's value, if any.
    pub fn find_cname(&self) -> Option<&Bytes> {
        self.items
            .iter()
            .find(|i| i.kind == SDES_CNAME)
            .map(|i| &i.value)
    }
}

/// A BYE (§6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bye {
    /// The sources leaving (at most 31 are serialized).
    pub sources: Vec<u32>,
    /// Why, if given (at most 255 octets are serialized).
    pub reason: Option<Bytes>,
}

impl Bye {
    /// A BYE for these sources.
    pub fn new(sources: Vec<u32>, reason: Option<Bytes>) -> Self {
        Bye { sources, reason }
    }
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket {
    /// SR.
    SenderReport(SenderReport),
    /// RR.
    ReceiverReport(ReceiverReport),
    /// SDES.
    SourceDescription(Vec<SdesChunk>),
    /// BYE.
    Bye(Bye),
    /// Any other type (APP, feedback, XR…), uninterpreted.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count/subtype field.
        count: u8,
        /// The body after the 4-byte header, padding removed.
        body: Bytes,
    },
}

/// Parses a compound RTCP datagram, with the checks of §A.2.
pub fn parse_compound(data: &Bytes) -> Result<Vec<RtcpPacket>, RtcpError> {
    if data.is_empty() {
        return Err(RtcpError::new(RtcpErrorKind::Empty, 0));
    }
    let mut packets = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        if data.len() - offset < 4 {
            return Err(RtcpError::new(RtcpErrorKind::TooShort, offset));
        }
        let b0 = data[offset];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtcpError::new(RtcpErrorKind::BadVersion(version), offset));
        }
        let padding = b0 & 0x20 != 0;
        let count = b0 & 0x1f;
        let packet_type = data[offset + 1];
        let words = usize::from(u16::from_be_bytes([data[offset + 2], data[offset + 3]]));
        let end = offset + 4 * (words + 1);
        if end > data.len() {
            return Err(RtcpError::new(RtcpErrorKind::TooShort, offset));
        }
        if offset == 0 {
            if packet_type != PT_SR && packet_type != PT_RR {
                return Err(RtcpError::new(
                    RtcpErrorKind::FirstNotReport(packet_type),
                    offset,
                ));
            }
            if padding {
                return Err(RtcpError::new(RtcpErrorKind::PaddingNotLast, offset));
            }
        }
        let mut body_end = end;
        if padding {
            if end != data.len() {
                return Err(RtcpError::new(RtcpErrorKind::PaddingNotLast, offset));
            }
            let pad = usize::from(data[end - 1]);
            if pad == 0 || pad > end - (offset + 4) {
                return Err(RtcpError::new(RtcpErrorKind::BadPadding, offset));
            }
            body_end -= pad;
        }
        let body = data.slice(offset + 4..body_end);
        packets.push(parse_one(packet_type, count, body, offset)?);
        offset = end;
    }
    Ok(packets)
}

fn parse_one(
    packet_type: u8,
    count: u8,
    body: Bytes,
    offset: usize,
) -> Result<RtcpPacket, RtcpError> {
    let err = |kind| RtcpError::new(kind, offset);
    let count = usize::from(count);
    match packet_type {
        PT_SR | PT_RR => {
            let fixed = if packet_type == PT_SR { 24 } else { 4 };
            let blocks_end = fixed + 24 * count;
            if body.len() < blocks_end {
                return Err(err(RtcpErrorKind::BadCount));
            }
            let ssrc = be32(&body, 0);
            let reports = (0..count)
                .map(|i| ReportBlock::parse(&body[fixed + 24 * i..fixed + 24 * (i + 1)]))
                .collect();
            let extension = body.slice(blocks_end..);
            if packet_type == PT_SR {
                let ntp_timestamp = u64::from(be32(&body, 4)) << 32 | u64::from(be32(&body, 8));
                Ok(RtcpPacket::SenderReport(SenderReport {
                    ssrc,
                    info: SenderInfo::new(
                        ntp_timestamp,
                        be32(&body, 12),
                        be32(&body, 16),
                        be32(&body, 20),
                    ),
                    reports,
                    extension,
                }))
            } else {
                Ok(RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc,
                    reports,
                    extension,
                }))
            }
        }
        PT_SDES => {
            let mut chunks = Vec::with_capacity(count);
            let mut at = 0;
            for _ in 0..count {
                if body.len() < at + 4 {
                    return Err(err(RtcpErrorKind::BadSdes));
                }
                let ssrc = be32(&body, at);
                at += 4;
                let mut items = Vec::new();
                loop {
                    let Some(&kind) = body.get(at) else {
                        return Err(err(RtcpErrorKind::BadSdes));
                    };
                    if kind == 0 {
                        // The list ends with a null octet, padded to the next 32-bit
                        // boundary (§6.5).
                        at = (at + 1).next_multiple_of(4);
                        break;
                    }
                    let Some(&len) = body.get(at + 1) else {
                        return Err(err(RtcpErrorKind::BadSdes));
                    };
                    let start = at + 2;
                    let stop = start + usize::from(len);
                    if stop > body.len() {
                        return Err(err(RtcpErrorKind::BadSdes));
                    }
                    items.push(SdesItem {
                        kind,
                        value: body.slice(start..stop),
                    });
                    at = stop;
                }
                if at > body.len() {
                    return Err(err(RtcpErrorKind::BadSdes));
                }
                chunks.push(SdesChunk { ssrc, items });
            }
            Ok(RtcpPacket::SourceDescription(chunks))
        }
        PT_BYE => {
            let ids_end = 4 * count;
            if body.len() < ids_end {
                return Err(err(RtcpErrorKind::BadCount));
            }
            let sources = (0..count).map(|i| be32(&body, 4 * i)).collect();
            let reason = match body.get(ids_end) {
                None => None,
                Some(&len) => {
                    let start = ids_end + 1;
                    let stop = start + usize::from(len);
                    if stop > body.len() {
                        return Err(err(RtcpErrorKind::BadBye));
                    }
                    Some(body.slice(start..stop))
                }
            };
            Ok(RtcpPacket::Bye(Bye { sources, reason }))
        }
        _ => Ok(RtcpPacket::Other {
            packet_type,
            // `count` came from a 5-bit field.
            count: count as u8,
            body,
        }),
    }
}

impl RtcpPacket {
    /// Appends the packet in wire format (no padding) to `buf`.
    pub fn write_to(&self, buf: &mut BytesMut) {
        let start = buf.len();
        // Header written with a zero length, patched at the end.
        match self {
            RtcpPacket::SenderReport(sr) => {
                let reports = &sr.reports[..sr.reports.len().min(31)];
                header(buf, reports.len(), PT_SR);
                buf.put_u32(sr.ssrc);
                buf.put_u64(sr.info.ntp_timestamp);
                buf.put_u32(sr.info.rtp_timestamp);
                buf.put_u32(sr.info.packet_count);
                buf.put_u32(sr.info.octet_count);
                reports.iter().for_each(|r| r.write(buf));
                put_padded(buf, &sr.extension);
            }
            RtcpPacket::ReceiverReport(rr) => {
                let reports = &rr.reports[..rr.reports.len().min(31)];
                header(buf, reports.len(), PT_RR);
                buf.put_u32(rr.ssrc);
                reports.iter().for_each(|r| r.write(buf));
                put_padded(buf, &rr.extension);
            }
            RtcpPacket::SourceDescription(chunks) => {
                let chunks = &chunks[..chunks.len().min(31)];
                header(buf, chunks.len(), PT_SDES);
                for chunk in chunks {
                    let chunk_start = buf.len();
                    buf.put_u32(chunk.ssrc);
                    for item in &chunk.items {
                        let value = &item.value[..item.value.len().min(255)];
                        buf.put_u8(item.kind);
                        // At most 255 after the cut.
                        buf.put_u8(value.len() as u8);
                        buf.put_slice(value);
                    }
                    // Null item, then zeros to the 32-bit boundary (§6.5).
                    let len = buf.len() - chunk_start + 1;
                    buf.put_bytes(0, 1 + len.next_multiple_of(4) - len);
                }
            }
            RtcpPacket::Bye(bye) => {
                let sources = &bye.sources[..bye.sources.len().min(31)];
                header(buf, sources.len(), PT_BYE);
                sources.iter().for_each(|s| buf.put_u32(*s));
                if let Some(reason) = &bye.reason {
                    let reason = &reason[..reason.len().min(255)];
                    buf.put_u8(reason.len() as u8);
                    buf.put_slice(reason);
                    let len = reason.len() + 1;
                    buf.put_bytes(0, len.next_multiple_of(4) - len);
                }
            }
            RtcpPacket::Other {
                packet_type,
                count,
                body,
            } => {
                header(buf, usize::from(*count & 0x1f), *packet_type);
                put_padded(buf, body);
            }
        }
        // Length in 32-bit words minus one (§6.4.1). Bodies are capped above (31 blocks,
        // 255-octet items), except raw extension/bodies, which saturate.
        let words = (buf.len() - start) / 4 - 1;
        let words = u16::try_from(words).unwrap_or(u16::MAX);
        buf[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    }
}

fn header(buf: &mut BytesMut, count: usize, packet_type: u8) {
    // `count` is at most 31 (capped by the callers).
    buf.put_u8(0x80 | (count as u8 & 0x1f));
    buf.put_u8(packet_type);
    buf.put_u16(0);
}

fn put_padded(buf: &mut BytesMut, data: &[u8]) {
    buf.put_slice(data);
    buf.put_bytes(0, data.len().next_multiple_of(4) - data.len());
}

/// Serializes a compound packet. The caller puts an SR or RR first (§6.1).
pub fn serialize_compound(packets: &[RtcpPacket]) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    for p in packets {
        p.write_to(&mut buf);
    }
    buf.freeze()
}

/// Converts a time since the Unix epoch to a 64-bit NTP timestamp (§4).
pub fn ntp_from_unix(since_epoch: Duration) -> u64 {
    let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Adds a duration to a 64-bit NTP timestamp (wrapping, like the NTP era).
pub fn ntp_add(ntp: u64, d: Duration) -> u64 {
    let secs = d.as_secs() << 32;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ntp.wrapping_add(secs).wrapping_add(frac)
}

/// The middle 32 bits of an NTP timestamp, the LSR format (§6.4.1).
pub fn ntp_middle(ntp: u64) -> u32 {
    // Bits 16..48: 16 bits of seconds and 16 of fraction.
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s units (DLSR), saturating.
pub fn to_dlsr(d: Duration) -> u32 {
    let units = d.as_micros().saturating_mul(65536) / 1_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A duration from 1/65536 s units.
pub fn from_dlsr(units: u32) -> Duration {
    Duration::from_micros(u64::from(units) * 1_000_000 / 65536)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 64,
            cumulative_lost: lost,
            extended_highest_seq: 0x0001_0005,
            jitter: 37,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536 * 2,
        }
    }

    fn compound() -> Vec<RtcpPacket> {
        vec![
            RtcpPacket::SenderReport(SenderReport::new(
                0x1111,
                SenderInfo::new(0xe000_0000_8000_0000, 160_000, 1000, 160_000),
                vec![block(0x2222, -3), block(0x3333, 0x7f_ffff)],
            )),
            RtcpPacket::SourceDescription(vec![
                SdesChunk::cname(0x1111, "alice@example.com"),
                SdesChunk {
                    ssrc: 0x4444,
                    items: vec![
                        SdesItem {
                            kind: SDES_CNAME,
                            value: Bytes::from_static(b"abc"),
                        },
                        SdesItem {
                            kind: 2,
                            value: Bytes::from_static(b"Alice"),
                        },
                    ],
                },
            ]),
            RtcpPacket::Bye(Bye::new(
                vec![0x1111],
                Some(Bytes::from_static(b"call ended")),
            )),
        ]
    }

    #[test]
    fn compound_round_trip() {
        let packets = compound();
        let wire = serialize_compound(&packets);
        assert_eq!(wire.len() % 4, 0);
        assert_eq!(parse_compound(&wire).unwrap(), packets);
        // RR, empty BYE, APP kept raw.
        let packets = vec![
            RtcpPacket::ReceiverReport(ReceiverReport::new(9, vec![block(1, -0x80_0000)])),
            RtcpPacket::Bye(Bye::new(vec![9, 10], None)),
            RtcpPacket::Other {
                packet_type: PT_APP,
                count: 1,
                body: Bytes::from_static(b"\0\0\0\x09NAMEdata"),
            },
        ];
        let wire = serialize_compound(&packets);
        assert_eq!(parse_compound(&wire).unwrap(), packets);
    }

    #[test]
    fn wire_format_of_an_rr() {
        let rr = RtcpPacket::ReceiverReport(ReceiverReport::new(0x0102_0304, vec![block(5, -2)]));
        let wire = serialize_compound(&[rr]);
        assert_eq!(&wire[..8], &[0x81, 201, 0, 7, 1, 2, 3, 4]);
        // Cumulative lost -2 as 24-bit two's complement.
        assert_eq!(&wire[12..16], &[64, 0xff, 0xff, 0xfe]);
    }

    #[test]
    fn cumulative_lost_is_clamped_to_24_bits() {
        let rr = RtcpPacket::ReceiverReport(ReceiverReport::new(1, vec![block(2, 1 << 30)]));
        let parsed = parse_compound(&serialize_compound(&[rr])).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &parsed[0] else {
            panic!()
        };
        assert_eq!(rr.reports[0].cumulative_lost, 0x7f_ffff);
    }

    #[test]
    fn validity_checks() {
        let good = serialize_compound(&compound()).to_vec();
        let kind = |d: Vec<u8>| parse_compound(&Bytes::from(d)).unwrap_err().kind;
        assert_eq!(kind(vec![]), RtcpErrorKind::Empty);
        assert_eq!(kind(good[..3].to_vec()), RtcpErrorKind::TooShort);
        // Truncated: length fields no longer add up.
        assert_eq!(
            kind(good[..good.len() - 4].to_vec()),
            RtcpErrorKind::TooShort
        );
        // Trailing garbage.
        let mut d = good.clone();
        d.extend_from_slice(&[0x80]);
        assert_eq!(kind(d), RtcpErrorKind::TooShort);
        // Version 1.
        let mut d = good.clone();
        d[0] = 0x40 | (d[0] & 0x3f);
        assert_eq!(kind(d), RtcpErrorKind::BadVersion(1));
        // First packet not SR/RR.
        let sdes = serialize_compound(&compound()[1..]).to_vec();
        assert_eq!(kind(sdes), RtcpErrorKind::FirstNotReport(PT_SDES));
        // Padding on the first packet.
        let mut d = good.clone();
        d[0] |= 0x20;
        assert_eq!(kind(d), RtcpErrorKind::PaddingNotLast);
        // Report count larger than the length allows.
        let mut d = good.clone();
        d[0] = 0x80 | 5;
        assert_eq!(kind(d), RtcpErrorKind::BadCount);
    }

    #[test]
    fn padding_on_last_packet() {
        let mut d = serialize_compound(&compound()[..1]).to_vec();
        let mut bye = serialize_compound(&[RtcpPacket::Bye(Bye::new(vec![7], None))]).to_vec();
        bye[0] |= 0x20;
        bye[3] += 1; // one more word: the padding
        bye.extend_from_slice(&[0, 0, 0, 4]);
        d.extend_from_slice(&bye);
        let parsed = parse_compound(&Bytes::from(d.clone())).unwrap();
        assert_eq!(parsed[1], RtcpPacket::Bye(Bye::new(vec![7], None)));
        let n = d.len();
        d[n - 1] = 9;
        assert_eq!(
            parse_compound(&Bytes::from(d)).unwrap_err().kind,
            RtcpErrorKind::BadPadding
        );
    }

    #[test]
    fn malformed_sdes_and_bye() {
        let rr = serialize_compound(&[RtcpPacket::ReceiverReport(ReceiverReport::new(1, vec![]))])
            .to_vec();
        // SDES chunk whose item length runs past the packet.
        let mut d = rr.clone();
        d.extend_from_slice(&[0x81, PT_SDES, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0]);
        assert_eq!(
            parse_compound(&Bytes::from(d)).unwrap_err().kind,
            RtcpErrorKind::BadSdes
        );
        // BYE reason longer than the packet.
        let mut d = rr;
        d.extend_from_slice(&[0x81, PT_BYE, 0, 2, 0, 0, 0, 1, 10, b'a', 0, 0]);
        assert_eq!(
            parse_compound(&Bytes::from(d)).unwrap_err().kind,
            RtcpErrorKind::BadBye
        );
    }

    #[test]
    fn ntp_helpers() {
        let ntp = ntp_from_unix(Duration::from_millis(1500));
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
        assert_eq!(
            ntp_add(ntp, Duration::from_millis(500)) >> 32,
            NTP_UNIX_OFFSET + 2
        );
        assert_eq!(ntp_middle(0x1122_3344_5566_7788), 0x3344_5566);
        assert_eq!(to_dlsr(Duration::from_secs(2)), 131072);
        assert_eq!(from_dlsr(32768), Duration::from_millis(500));
    }
}
