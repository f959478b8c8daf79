//! Audio codecs: G.711 µ-law and A-law (ITU-T G.711), G.722 (wideband, 16 kHz), L16 (linear
//! PCM, RFC 3551 §4.5.11), and the seam for more.
//!
//! A [`Codec`] describes a payload format as SDP names it (`a=rtpmap:<pt> <name>/<rate>`, RFC 4566
//! §6, RFC 3551 §6). [`AudioEncoder`] and [`AudioDecoder`] turn 16-bit linear PCM into RTP
//! payloads and back; [`encoder_for`] and [`decoder_for`] find an implementation for a negotiated
//! codec. Everything here is pure computation: no I/O, no clocks.
//!
//! ```
//! use parrot_core::codec::{Codec, encoder_for};
//! let mut encoder = encoder_for(&Codec::PCMU).expect("G.711 is built in");
//! let frame = vec![0i16; encoder.samples_per_frame(20)];
//! let mut payload = Vec::new();
//! encoder.encode(&frame, &mut payload);
//! assert_eq!(payload, vec![0xFF; 160]);
//! ```

pub mod alaw;
pub mod g722;
pub mod l16;
pub mod mulaw;

use std::borrow::Cow;
use std::fmt;

/// What a [`Codec`] is, as far as this stack knows: the encoding name mapped to an enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// G.711 µ-law (`PCMU/8000`, static payload type 0).
    Pcmu,
    /// G.711 A-law (`PCMA/8000`, static payload type 8).
    Pcma,
    /// G.722 (`G722/8000`, static payload type 9; sampled at 16 kHz, RFC 3551 §4.5.2).
    G722,
    /// Opus (`opus/48000/2`, RFC 7587).
    Opus,
    /// Linear 16-bit PCM, network byte order (`L16/<rate>`, RFC 3551 §4.5.11).
    L16,
    /// DTMF and other named events (`telephone-event`, RFC 4733).
    TelephoneEvent,
    /// Comfort noise (`CN`, RFC 3389).
    ComfortNoise,
    /// Any other encoding; see [`Codec::name`].
    Other,
}

/// A payload format: encoding name, clock rate, channels and the payload type it travels as.
///
/// Two codecs are the same format when [`Codec::same_format`] says so; the payload type is the
/// number one particular session uses for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Codec {
    /// Encoding name as in `a=rtpmap` (case-insensitive, RFC 4855 §3).
    pub name: Cow<'static, str>,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Number of audio channels (1 unless the rtpmap says otherwise).
    pub channels: u16,
    /// RTP payload type (0..=127; 96..=127 are dynamic, RFC 3551 §6).
    pub payload_type: u8,
    /// Format parameters (`a=fmtp:<pt> <params>`), if any.
    pub fmtp: Option<Cow<'static, str>>,
}

impl Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §4.5.14, Table 4).
    pub const PCMU: Codec = Codec::from_static("PCMU", 8000, 0);
    /// G.711 A-law, static payload type 8 (RFC 3551 §4.5.14, Table 4).
    pub const PCMA: Codec = Codec::from_static("PCMA", 8000, 8);
    /// G.722, static payload type 9. Its RTP clock is 8000 although it samples at 16 kHz
    /// (RFC 3551 §4.5.2).
    pub const G722: Codec = Codec::from_static("G722", 8000, 9);
    /// RFC 4733 telephone events (DTMF 0–9, *, #, A–D and flash: events 0–16) on the
    /// conventional dynamic payload type 101; use [`Codec::with_payload_type`] to move it.
    pub const TELEPHONE_EVENT: Codec = Codec {
        name: Cow::Borrowed("telephone-event"),
        clock_rate: 8000,
        channels: 1,
        payload_type: 101,
        fmtp: Some(Cow::Borrowed("0-16")),
    };

    const fn from_static(name: &'static str, clock_rate: u32, payload_type: u8) -> Codec {
        Codec {
            name: Cow::Borrowed(name),
            clock_rate,
            channels: 1,
            payload_type,
            fmtp: None,
        }
    }

    /// A mono codec without format parameters.
    pub fn new(name: impl Into<Cow<'static, str>>, clock_rate: u32, payload_type: u8) -> Codec {
        Codec {
            name: name.into(),
            clock_rate,
            channels: 1,
            payload_type,
            fmtp: None,
        }
    }

    /// The same codec on another payload type.
    #[must_use]
    pub fn with_payload_type(mut self, payload_type: u8) -> Codec {
        self.payload_type = payload_type;
        self
    }

    /// The same codec with `channels` channels.
    #[must_use]
    pub fn with_channels(mut self, channels: u16) -> Codec {
        self.channels = channels;
        self
    }

    /// The same codec with format parameters (`a=fmtp`).
    #[must_use]
    pub fn with_fmtp(mut self, fmtp: impl Into<Cow<'static, str>>) -> Codec {
        self.fmtp = Some(fmtp.into());
        self
    }

    /// The codec a static payload type stands for when no `a=rtpmap` names it (RFC 3551 §6,
    /// Tables 4 and 5). Reserved, unassigned and dynamic numbers give `None`.
    pub fn from_static_payload_type(payload_type: u8) -> Option<Codec> {
        let (name, clock_rate, channels) = match payload_type {
            0 => ("PCMU", 8000, 1),
            3 => ("GSM", 8000, 1),
            4 => ("G723", 8000, 1),
            5 => ("DVI4", 8000, 1),
            6 => ("DVI4", 16000, 1),
            7 => ("LPC", 8000, 1),
            8 => ("PCMA", 8000, 1),
            9 => ("G722", 8000, 1),
            10 => ("L16", 44100, 2),
            11 => ("L16", 44100, 1),
            12 => ("QCELP", 8000, 1),
            13 => ("CN", 8000, 1),
            14 => ("MPA", 90000, 1),
            15 => ("G728", 8000, 1),
            16 => ("DVI4", 11025, 1),
            17 => ("DVI4", 22050, 1),
            18 => ("G729", 8000, 1),
            25 => ("CelB", 90000, 1),
            26 => ("JPEG", 90000, 1),
            28 => ("nv", 90000, 1),
            31 => ("H261", 90000, 1),
            32 => ("MPV", 90000, 1),
            33 => ("MP2T", 90000, 1),
            34 => ("H263", 90000, 1),
            _ => return None,
        };
        Some(Codec::new(name, clock_rate, payload_type).with_channels(channels))
    }

    /// What this codec is, from its encoding name.
    pub fn kind(&self) -> CodecKind {
        let name = &*self.name;
        if name.eq_ignore_ascii_case("PCMU") {
            CodecKind::Pcmu
        } else if name.eq_ignore_ascii_case("PCMA") {
            CodecKind::Pcma
        } else if name.eq_ignore_ascii_case("G722") {
            CodecKind::G722
        } else if name.eq_ignore_ascii_case("opus") {
            CodecKind::Opus
        } else if name.eq_ignore_ascii_case("L16") {
            CodecKind::L16
        } else if name.eq_ignore_ascii_case("telephone-event") {
            CodecKind::TelephoneEvent
        } else if name.eq_ignore_ascii_case("CN") {
            CodecKind::ComfortNoise
        } else {
            CodecKind::Other
        }
    }

    /// Whether `other` is the same format: same encoding name (ignoring case), clock rate and
    /// channel count. Payload types and format parameters are not compared.
    pub fn same_format(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && self.channels == other.channels
    }

    /// Whether the payload type is in the dynamic range 96..=127 (RFC 3551 §6).
    pub fn is_dynamic(&self) -> bool {
        (96..=127).contains(&self.payload_type)
    }
}

impl fmt::Display for Codec {
    /// The `a=rtpmap` value without the payload type: `PCMU/8000`, `opus/48000/2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.clock_rate)?;
        if self.channels != 1 {
            write!(f, "/{}", self.channels)?;
        }
        Ok(())
    }
}

/// Samples (per channel, times channels) in `ptime_ms` milliseconds at `sample_rate` Hz.
/// Appends one G.711 code word per sample of `pcm` to `out`, through a slice
/// of the right length: a loop the compiler vectorizes, where an `extend` of
/// a mapped iterator it does not.
#[inline]
fn encode_each(pcm: &[i16], out: &mut Vec<u8>, encode_sample: impl Fn(i16) -> u8) {
    let start = out.len();
    out.resize(start + pcm.len(), 0);
    for (code, &sample) in out[start..].iter_mut().zip(pcm) {
        *code = encode_sample(sample);
    }
}

fn samples_in(sample_rate: u32, channels: u16, ptime_ms: u32) -> usize {
    let per_channel = u64::from(sample_rate) * u64::from(ptime_ms) / 1000;
    usize::try_from(per_channel * u64::from(channels)).unwrap_or(usize::MAX)
}

/// Turns 16-bit linear PCM into RTP payloads of one codec.
pub trait AudioEncoder: Send {
    /// The codec produced, with the payload type negotiated for it.
    fn codec(&self) -> &Codec;

    /// The PCM sampling rate expected, in Hz. This is the RTP clock rate except for codecs
    /// such as G.722 whose clock rate is historical (RFC 3551 §4.5.2).
    fn sample_rate(&self) -> u32 {
        self.codec().clock_rate
    }

    /// Encodes `pcm` (interleaved if multi-channel), appending the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);

    /// PCM samples (all channels) in one packet of `ptime_ms` milliseconds (`a=ptime`).
    fn samples_per_frame(&self, ptime_ms: u32) -> usize {
        samples_in(self.sample_rate(), self.codec().channels, ptime_ms)
    }
}

/// Turns RTP payloads of one codec back into 16-bit linear PCM.
pub trait AudioDecoder: Send {
    /// The codec consumed, with the payload type negotiated for it.
    fn codec(&self) -> &Codec;

    /// The PCM sampling rate produced, in Hz (see [`AudioEncoder::sample_rate`]).
    fn sample_rate(&self) -> u32 {
        self.codec().clock_rate
    }

    /// Decodes one payload, appending the PCM samples to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);

    /// Takes one payload whose audio nobody hears (no recording, no
    /// listener): the decoder's state moves on as [`decode`](Self::decode)
    /// would move it, and the count of PCM samples it holds is returned.
    /// `scratch` may be overwritten. The default decodes into `scratch`; a
    /// stateless codec counts instead.
    fn skip(&mut self, payload: &[u8], scratch: &mut Vec<i16>) -> usize {
        scratch.clear();
        self.decode(payload, scratch);
        scratch.len()
    }

    /// PCM samples (all channels) in one packet of `ptime_ms` milliseconds (`a=ptime`).
    fn samples_per_frame(&self, ptime_ms: u32) -> usize {
        samples_in(self.sample_rate(), self.codec().channels, ptime_ms)
    }
}

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Law {
    /// µ-law (PCMU).
    MuLaw,
    /// A-law (PCMA).
    ALaw,
}

/// G.711 encoder and decoder; stateless, so one value does both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G711 {
    codec: Codec,
    law: Law,
}

impl G711 {
    /// µ-law on payload type 0.
    pub fn mulaw() -> G711 {
        G711 {
            codec: Codec::PCMU,
            law: Law::MuLaw,
        }
    }

    /// A-law on payload type 8.
    pub fn alaw() -> G711 {
        G711 {
            codec: Codec::PCMA,
            law: Law::ALaw,
        }
    }

    /// G.711 for `codec` if it is PCMU or PCMA at 8000 Hz mono, keeping its payload type.
    pub fn for_codec(codec: &Codec) -> Option<G711> {
        let law = match codec.kind() {
            CodecKind::Pcmu => Law::MuLaw,
            CodecKind::Pcma => Law::ALaw,
            _ => return None,
        };
        (codec.clock_rate == 8000 && codec.channels == 1).then(|| G711 {
            codec: codec.clone(),
            law,
        })
    }

    /// The companding law.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl AudioEncoder for G711 {
    fn codec(&self) -> &Codec {
        &self.codec
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        match self.law {
            Law::MuLaw => mulaw::encode(pcm, out),
            Law::ALaw => alaw::encode(pcm, out),
        }
    }
}

impl AudioDecoder for G711 {
    fn codec(&self) -> &Codec {
        &self.codec
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match self.law {
            Law::MuLaw => mulaw::decode(payload, out),
            Law::ALaw => alaw::decode(payload, out),
        }
    }

    /// One sample per octet, and no state to keep.
    fn skip(&mut self, payload: &[u8], _scratch: &mut Vec<i16>) -> usize {
        payload.len()
    }
}

/// An encoder for `codec`, or `None` if this build has no implementation for it: G.711
/// (`PCMU/8000`, `PCMA/8000`), G.722 (`G722/8000`) and L16 (`L16/<rate>` mono, 8–48 kHz).
pub fn encoder_for(codec: &Codec) -> Option<Box<dyn AudioEncoder>> {
    if let Some(g) = G711::for_codec(codec) {
        return Some(Box::new(g));
    }
    if let Some(g) = g722::encoder_for(codec) {
        return Some(Box::new(g));
    }
    l16::L16::for_codec(codec).map(|l| Box::new(l) as Box<dyn AudioEncoder>)
}

/// A decoder for `codec`, or `None` if this build has no implementation for it (the same
/// codecs as [`encoder_for`]).
pub fn decoder_for(codec: &Codec) -> Option<Box<dyn AudioDecoder>> {
    if let Some(g) = G711::for_codec(codec) {
        return Some(Box::new(g));
    }
    if let Some(g) = g722::decoder_for(codec) {
        return Some(Box::new(g));
    }
    l16::L16::for_codec(codec).map(|l| Box::new(l) as Box<dyn AudioDecoder>)
}

/// The PCM sampling rate of `codec` in Hz: its RTP clock rate, except for G.722, which samples
/// at 16 kHz on an 8 kHz RTP clock (RFC 3551 §4.5.2).
pub fn sample_rate(codec: &Codec) -> u32 {
    match codec.kind() {
        CodecKind::G722 => g722::SAMPLE_RATE,
        _ => codec.clock_rate,
    }
}

/// The codecs a call offers and accepts by default, most preferred first: G.722 (wideband),
/// then G.711 µ-law and A-law. L16 can be built ([`encoder_for`]) but is not offered unless
/// asked for ([`MediaHandler::codecs`](crate::media::MediaHandler::codecs)): at 256 kbit/s
/// for 16 kHz it is for local links, not for the open network.
pub fn supported() -> Vec<Codec> {
    vec![Codec::G722, Codec::PCMU, Codec::PCMA]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_codecs() {
        assert_eq!(Codec::PCMU.payload_type, 0);
        assert_eq!(Codec::PCMA.payload_type, 8);
        assert_eq!(Codec::PCMU.to_string(), "PCMU/8000");
        assert_eq!(Codec::from_static_payload_type(0), Some(Codec::PCMU));
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::PCMA));
        assert_eq!(
            Codec::from_static_payload_type(10)
                .map(|c| c.to_string())
                .as_deref(),
            Some("L16/44100/2")
        );
        assert_eq!(Codec::from_static_payload_type(96), None);
        assert_eq!(Codec::from_static_payload_type(2), None);
        assert!(Codec::TELEPHONE_EVENT.is_dynamic());
        assert_eq!(Codec::TELEPHONE_EVENT.kind(), CodecKind::TelephoneEvent);
        assert_eq!(Codec::new("pcmu", 8000, 0).kind(), CodecKind::Pcmu);
        assert!(Codec::new("pcma", 8000, 99).same_format(&Codec::PCMA));
        assert!(!Codec::new("PCMA", 16000, 8).same_format(&Codec::PCMA));
        assert!(
            !Codec::new("opus", 48000, 111)
                .with_channels(2)
                .same_format(&Codec::new("opus", 48000, 111))
        );
    }

    /// Skipping a payload counts what decoding it would give, and leaves a
    /// stateful decoder where decoding would have.
    #[test]
    fn skip_counts_what_decode_gives() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(320).collect();
        for codec in [
            Codec::PCMU,
            Codec::PCMA,
            Codec::G722,
            Codec::from_static_payload_type(11).expect("L16"),
        ] {
            let (mut decoding, mut skipping) = (
                decoder_for(&codec).expect("decoder"),
                decoder_for(&codec).expect("decoder"),
            );
            let (mut pcm, mut scratch) = (Vec::new(), Vec::new());
            decoding.decode(&payload, &mut pcm);
            assert_eq!(skipping.skip(&payload, &mut scratch), pcm.len(), "{codec}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            decoding.decode(&payload, &mut a);
            skipping.decode(&payload, &mut b);
            assert_eq!(a, b, "{codec}: the state after a skip");
        }
    }

    #[test]
    fn factory() {
        let mut enc = encoder_for(&Codec::PCMA).expect("PCMA");
        assert_eq!(enc.samples_per_frame(20), 160);
        assert_eq!(enc.samples_per_frame(30), 240);
        let mut out = Vec::new();
        enc.encode(&[0; 160], &mut out);
        assert_eq!(out, vec![0xD5; 160]);
        let mut dec = decoder_for(&Codec::PCMU.with_payload_type(0)).expect("PCMU");
        let mut pcm = Vec::new();
        dec.decode(&[0xFF, 0x00], &mut pcm);
        assert_eq!(pcm, vec![0, -32124]);
        assert_eq!(dec.codec().payload_type, 0);
        assert!(encoder_for(&Codec::TELEPHONE_EVENT).is_none());
        assert_eq!(
            encoder_for(&Codec::G722).map(|e| e.sample_rate()),
            Some(16_000)
        );
        assert_eq!(sample_rate(&Codec::G722), 16_000);
        assert_eq!(sample_rate(&Codec::PCMA), 8000);
        assert!(encoder_for(&Codec::new("opus", 48000, 111).with_channels(2)).is_none());
        assert!(decoder_for(&Codec::new("PCMU", 16000, 96)).is_none());
        // A dynamic payload type is kept.
        let g = G711::for_codec(&Codec::new("pcmu", 8000, 100)).expect("pcmu");
        assert_eq!(AudioEncoder::codec(&g).payload_type, 100);
        assert_eq!(g.law(), Law::MuLaw);
    }

    #[test]
    fn trait_objects_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let enc = encoder_for(&Codec::PCMU);
        is_send(&enc);
    }
}
