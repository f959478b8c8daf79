//! L16: uncompressed 16-bit linear PCM (RFC 3551 §4.5.11), for links where bandwidth is free
//! (a media bridge on the same host or LAN) and nothing may be lost to a codec.
//!
//! Samples travel as two's complement, most significant byte first (network byte order); the
//! RTP clock rate is the sampling rate, and a dynamic payload type names the rate in SDP
//! (`a=rtpmap:96 L16/16000`). Static types 10 and 11 are 44.1 kHz, which telephony has no use
//! for. This implementation is mono, at 8 to 48 kHz.
//!
//! ```
//! use parrot_core::codec::{AudioEncoder, l16::L16};
//! let mut l16 = L16::new(16_000, 96).expect("16 kHz mono");
//! let mut out = Vec::new();
//! l16.encode(&[1, -2], &mut out);
//! assert_eq!(out, [0x00, 0x01, 0xFF, 0xFE]);
//! ```

use super::{AudioDecoder, AudioEncoder, Codec, CodecKind};

/// The sampling rates accepted, in Hz.
pub const RATES: std::ops::RangeInclusive<u32> = 8000..=48_000;

/// L16 encoder and decoder (stateless, so one value does both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L16 {
    codec: Codec,
}

impl L16 {
    /// L16 mono at `rate` Hz on `payload_type` (normally dynamic, 96..=127); `None` for a rate
    /// outside [`RATES`].
    pub fn new(rate: u32, payload_type: u8) -> Option<L16> {
        L16::for_codec(&Codec::new("L16", rate, payload_type))
    }

    /// L16 for `codec` if it is `L16/<rate>` mono with a rate in [`RATES`].
    pub fn for_codec(codec: &Codec) -> Option<L16> {
        (codec.kind() == CodecKind::L16 && codec.channels == 1 && RATES.contains(&codec.clock_rate))
            .then(|| L16 {
                codec: codec.clone(),
            })
    }
}

impl AudioEncoder for L16 {
    fn codec(&self) -> &Codec {
        &self.codec
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len() * 2);
        for s in pcm {
            out.extend_from_slice(&s.to_be_bytes());
        }
    }
}

impl AudioDecoder for L16 {
    fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Decodes pairs of octets; an odd octet at the end (a malformed payload) is ignored.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() / 2);
        out.extend(
            payload
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]])),
        );
    }

    /// Two octets per sample, and no state to keep.
    fn skip(&mut self, payload: &[u8], _scratch: &mut Vec<i16>) -> usize {
        payload.len() / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_byte_order_both_ways() {
        let mut l = L16::new(16_000, 97).unwrap();
        let pcm = [0, 1, -1, i16::MAX, i16::MIN, 0x1234];
        let mut bytes = Vec::new();
        l.encode(&pcm, &mut bytes);
        assert_eq!(&bytes[..6], &[0, 0, 0, 1, 0xFF, 0xFF]);
        assert_eq!(&bytes[10..], &[0x12, 0x34]);
        let mut back = Vec::new();
        l.decode(&bytes, &mut back);
        assert_eq!(back, pcm);
        // An odd trailing octet is dropped, not read past.
        back.clear();
        l.decode(&[0x12, 0x34, 0x56], &mut back);
        assert_eq!(back, [0x1234]);
        assert_eq!(AudioEncoder::samples_per_frame(&l, 20), 320);
        assert_eq!(AudioEncoder::codec(&l).payload_type, 97);
    }

    #[test]
    fn only_mono_telephony_rates() {
        assert!(L16::new(48_000, 96).is_some());
        assert!(L16::new(4000, 96).is_none());
        assert!(L16::for_codec(&Codec::new("L16", 16_000, 96).with_channels(2)).is_none());
        assert!(L16::for_codec(&Codec::PCMU).is_none());
        assert!(crate::codec::encoder_for(&Codec::new("l16", 16_000, 99)).is_some());
    }
}
