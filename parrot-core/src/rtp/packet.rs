//! The RTP fixed header (RFC 3550 §5.1), zero-copy parse and serialize.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::Buf as _;
use bytes::{BufMut, Bytes, BytesMut};

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// The RTP version this stack speaks (RFC 3550 §5.1: "V ... is two (2)").
pub const RTP_VERSION: u8 = 2;

/// Why an RTP packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// The packet ends before the header (fixed part, CSRC list or extension) does.
    #[error("RTP packet too short: need {needed} bytes, got {got}")]
    TooShort {
        /// Bytes needed to hold the header part being read.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0} (only 2 is supported)")]
    BadVersion(u8),
    /// The P bit is set but the padding count is 0 or larger than what follows the header
    /// (RFC 3550 §5.1: the last octet "is a count of how many padding octets should be ignored,
    /// including itself").
    #[error("bad RTP padding length {len} ({available} bytes after the header)")]
    BadPadding {
        /// The padding count from the last octet.
        len: u8,
        /// Bytes after the header, padding included.
        available: usize,
    },
}

/// A header extension (RFC 3550 §5.3.1), kept raw: the stack does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The 16-bit profile-defined identifier (e.g. `0xBEDE` for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension data, without the 4-byte extension header. Its length is a multiple
    /// of 4 when parsed; when serialized it is zero-padded to a multiple of 4.
    pub data: Bytes,
}

/// An RTP packet: the header fields and the payload, which shares the received buffer.
///
/// Padding is stripped when parsing and not written when serializing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtpPacket {
    /// The marker bit (M); for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// The payload type (PT), 0..=127. Serializing keeps the low 7 bits only.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The RTP timestamp, in units of the payload's clock rate.
    pub timestamp: u32,
    /// The synchronization source.
    pub ssrc: u32,
    /// Contributing sources (at most 15 are serialized; CC is a 4-bit field).
    pub csrc: Vec<u32>,
    /// The header extension, if the X bit was set.
    pub extension: Option<Extension>,
    /// The payload, padding removed.
    pub payload: Bytes,
}

impl RtpPacket {
    /// A packet with no marker, CSRCs or extension.
    pub fn new(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: Bytes) -> Self {
        RtpPacket {
            marker: false,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrc: Vec::new(),
            extension: None,
            payload,
        }
    }

    /// This packet with the marker bit set to `marker`.
    pub fn with_marker(mut self, marker: bool) -> Self {
        self.marker = marker;
        self
    }

    /// This packet with these contributing sources.
    pub fn with_csrc(mut self, csrc: Vec<u32>) -> Self {
        self.csrc = csrc;
        self
    }

    /// This packet with a header extension.
    pub fn with_extension(mut self, extension: Extension) -> Self {
        self.extension = Some(extension);
        self
    }

    /// Parses a packet. The payload and extension share `data`'s buffer.
    ///
    /// Rejects anything but version 2, a truncated header, CSRC list or extension, and a
    /// padding count of 0 or larger than the bytes after the header (RFC 3550 §5.1, §A.1).
    pub fn parse(data: Bytes) -> Result<Self, RtpError> {
        let got = data.len();
        if got < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort {
                needed: FIXED_HEADER_LEN,
                got,
            });
        }
        let b0 = data[0];
        let version = b0 >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let cc = usize::from(b0 & 0x0f);
        let b1 = data[1];
        let marker = b1 & 0x80 != 0;
        let payload_type = b1 & 0x7f;
        let sequence = u16::from_be_bytes([data[2], data[3]]);
        let timestamp = be32(&data, 4);
        let ssrc = be32(&data, 8);

        let mut offset = FIXED_HEADER_LEN;
        let csrc_end = offset + 4 * cc;
        if got < csrc_end {
            return Err(RtpError::TooShort {
                needed: csrc_end,
                got,
            });
        }
        let csrc = (0..cc).map(|i| be32(&data, offset + 4 * i)).collect();
        offset = csrc_end;

        let extension = if has_extension {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words, then the data.
            if got < offset + 4 {
                return Err(RtpError::TooShort {
                    needed: offset + 4,
                    got,
                });
            }
            let profile = u16::from_be_bytes([data[offset], data[offset + 1]]);
            let words = usize::from(u16::from_be_bytes([data[offset + 2], data[offset + 3]]));
            let start = offset + 4;
            let end = start + 4 * words;
            if got < end {
                return Err(RtpError::TooShort { needed: end, got });
            }
            offset = end;
            Some(Extension {
                profile,
                data: data.slice(start..end),
            })
        } else {
            None
        };

        let mut end = got;
        if padding {
            // The last octet counts the padding, itself included (§5.1).
            let len = data[got - 1];
            let available = got - offset;
            if len == 0 || usize::from(len) > available {
                return Err(RtpError::BadPadding { len, available });
            }
            end -= usize::from(len);
        }

        // The payload is `data` itself, moved past the header, rather than a
        // slice of it: slicing a `Bytes` made from a `Vec` (as a received
        // datagram is) turns it shared, a second allocation every packet.
        let mut payload = data;
        // A no-op unless there is padding to cut.
        payload.truncate(end);
        payload.advance(offset);
        Ok(RtpPacket {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrc,
            extension,
            payload,
        })
    }

    /// Length of the serialized packet.
    pub fn serialized_len(&self) -> usize {
        let ext = self
            .extension
            .as_ref()
            .map_or(0, |e| 4 + e.data.len().div_ceil(4) * 4);
        FIXED_HEADER_LEN + 4 * self.csrc.len().min(15) + ext + self.payload.len()
    }

    /// Appends the packet in wire format to `buf`.
    pub fn write_to(&self, buf: &mut BytesMut) {
        buf.reserve(self.serialized_len());
        let csrc = &self.csrc[..self.csrc.len().min(15)];
        let mut b0 = RTP_VERSION << 6;
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        // `csrc.len() <= 15`, so the cast keeps every bit.
        b0 |= csrc.len() as u8;
        buf.put_u8(b0);
        buf.put_u8(u8::from(self.marker) << 7 | (self.payload_type & 0x7f));
        buf.put_u16(self.sequence);
        buf.put_u32(self.timestamp);
        buf.put_u32(self.ssrc);
        for c in csrc {
            buf.put_u32(*c);
        }
        if let Some(ext) = &self.extension {
            let words = ext.data.len().div_ceil(4);
            buf.put_u16(ext.profile);
            // The length field is 16 bits; longer data cannot be represented and is cut.
            let words16 = u16::try_from(words).unwrap_or(u16::MAX);
            buf.put_u16(words16);
            let len = usize::from(words16) * 4;
            let data = &ext.data[..ext.data.len().min(len)];
            buf.put_slice(data);
            buf.put_bytes(0, len - data.len());
        }
        buf.put_slice(&self.payload);
    }

    /// The packet in wire format.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.serialized_len());
        self.write_to(&mut buf);
        buf.freeze()
    }
}

/// Whether a datagram on a multiplexed port is RTCP rather than RTP (RFC 5761 §4: the second
/// octet of RTCP, its packet type, is 192..=223, which RTP payload types do not use with
/// the marker bit).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (192..=223).contains(&data[1])
}

/// Big-endian u32 at `at`; the caller has checked the length.
pub(crate) fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        vec![
            0x80, 0x08, 0x12, 0x34, // V=2, PT=8 (PCMA), seq 0x1234
            0x00, 0x00, 0x03, 0x20, // ts 800
            0xde, 0xad, 0xbe, 0xef, // ssrc
            1, 2, 3, 4, // payload
        ]
    }

    #[test]
    fn parses_minimal_packet() {
        let p = RtpPacket::parse(Bytes::from(sample())).unwrap();
        assert!(!p.marker);
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 800);
        assert_eq!(p.ssrc, 0xdeadbeef);
        assert!(p.csrc.is_empty());
        assert!(p.extension.is_none());
        assert_eq!(&p.payload[..], &[1, 2, 3, 4]);
        assert_eq!(p.to_bytes(), Bytes::from(sample()));
    }

    #[test]
    fn payload_is_zero_copy() {
        let data = Bytes::from(sample());
        let p = RtpPacket::parse(data.clone()).unwrap();
        assert_eq!(p.payload.as_ptr(), data[12..].as_ptr());
    }

    #[test]
    fn round_trip_with_everything() {
        let p = RtpPacket::new(0, 65535, u32::MAX, 1, Bytes::from_static(b"hello"))
            .with_marker(true)
            .with_csrc(vec![7, 8, 9])
            .with_extension(Extension {
                profile: 0xbede,
                data: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
            });
        let wire = p.to_bytes();
        assert_eq!(wire.len(), p.serialized_len());
        assert_eq!(wire[0], 0x80 | 0x10 | 3);
        assert_eq!(wire[1], 0x80);
        let q = RtpPacket::parse(wire).unwrap();
        assert_eq!(p, q);
    }

    #[test]
    fn extension_data_is_padded_to_words() {
        let p = RtpPacket::new(0, 1, 2, 3, Bytes::new()).with_extension(Extension {
            profile: 1,
            data: Bytes::from_static(&[9, 9, 9]),
        });
        let q = RtpPacket::parse(p.to_bytes()).unwrap();
        assert_eq!(&q.extension.unwrap().data[..], &[9, 9, 9, 0]);
    }

    #[test]
    fn padding_is_stripped() {
        let mut d = sample();
        d[0] |= 0x20;
        d.extend_from_slice(&[0, 0, 3]);
        let p = RtpPacket::parse(Bytes::from(d)).unwrap();
        assert_eq!(&p.payload[..], &[1, 2, 3, 4]);
        // Padding with no payload at all: the whole rest is padding.
        let mut d = sample();
        d.truncate(12);
        d[0] |= 0x20;
        d.extend_from_slice(&[0, 0, 0, 4]);
        assert!(RtpPacket::parse(Bytes::from(d)).unwrap().payload.is_empty());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for n in 0..12 {
            assert_eq!(
                RtpPacket::parse(Bytes::from(sample()[..n].to_vec())),
                Err(RtpError::TooShort { needed: 12, got: n })
            );
        }
        for v in [0u8, 1, 3] {
            let mut d = sample();
            d[0] = (d[0] & 0x3f) | (v << 6);
            assert_eq!(
                RtpPacket::parse(Bytes::from(d)),
                Err(RtpError::BadVersion(v))
            );
        }
        // CC = 2 but no room for the CSRCs.
        let mut d = sample();
        d[0] |= 2;
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::TooShort {
                needed: 20,
                got: 16
            })
        );
        // X set, extension length runs past the end.
        let mut d = sample();
        d[0] |= 0x10;
        d[12..16].copy_from_slice(&[0xbe, 0xde, 0x00, 0x02]);
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::TooShort {
                needed: 24,
                got: 16
            })
        );
        // Padding count 0, and larger than the rest.
        let mut d = sample();
        d[0] |= 0x20;
        d[15] = 0;
        assert_eq!(
            RtpPacket::parse(Bytes::from(d.clone())),
            Err(RtpError::BadPadding {
                len: 0,
                available: 4
            })
        );
        d[15] = 5;
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::BadPadding {
                len: 5,
                available: 4
            })
        );
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 201]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8]));
        assert!(!is_rtcp(&[0x80]));
    }
}
