//! G.722 (ITU-T G.722, 7 kHz audio within 64 kbit/s), mode 1: 64 kbit/s, the mode RTP
//! carries as `G722/8000` (RFC 3551 §4.5.2).
//!
//! The codec is sub-band ADPCM. A quadrature mirror filter pair (QMF, 24 taps) splits each pair
//! of 16 kHz input samples into one lower-band (0–4 kHz) and one higher-band (4–8 kHz) sample at
//! 8 kHz. The lower band is coded with 6 bits by an adaptive quantizer with 60 levels, the higher
//! band with 2 bits; each band predicts its next sample from the ones it reconstructed (two poles,
//! six zeros) and adapts its step size to the signal. One octet per pair: the higher band's two
//! bits on top of the lower band's six (G.722 §1.4.4; RFC 3551 §4.5.2 sends the octets in order,
//! most significant bit first). So a 20 ms packet is 320 samples in, 160 octets out, and 160 RTP
//! timestamp units: the clock rate of the payload format stays 8000 for historical reasons.
//!
//! Everything is integer arithmetic as the Recommendation specifies it (block names in comments
//! are those of G.722 §3 and §4), so the output is bit-exact: the tests compare it with Debian's
//! spandsp, whose G.722 passes the ITU-T digital test sequences (G.722 Appendix II).
//!
//! ```
//! use parrot_core::codec::g722::{G722Decoder, G722Encoder};
//! use parrot_core::codec::{AudioDecoder, AudioEncoder};
//! let mut encoder = G722Encoder::new();
//! let mut decoder = G722Decoder::new();
//! let tone: Vec<i16> = (0..320).map(|n| ((n as f64 * 0.3).sin() * 8000.0) as i16).collect();
//! let mut payload = Vec::new();
//! encoder.encode(&tone, &mut payload);
//! assert_eq!(payload.len(), 160);
//! let mut pcm = Vec::new();
//! decoder.decode(&payload, &mut pcm);
//! assert_eq!(pcm.len(), 320);
//! ```

use super::{AudioDecoder, AudioEncoder, Codec};

/// The PCM sampling rate of G.722.
pub const SAMPLE_RATE: u32 = 16_000;

/// The QMF coefficients h0..h23 (G.722 Table 11/G.722, scaled by 2^13; symmetric).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower-band quantizer decision levels (G.722 Table 6, the 30 magnitude intervals of the 6-bit
/// quantizer), scaled by 2^12 against the scale factor.
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// The 6-bit code of magnitude interval `i` (1..=30) for a negative difference (G.722 Table 6).
const CODE_NEGATIVE: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];

/// The same for a positive (or zero) difference.
const CODE_POSITIVE: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];

/// Output levels of the lower band's 6-bit inverse quantizer, by code (G.722 Table 7; what the
/// decoder reconstructs in mode 1).
const INV_Q6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];

/// Output levels of the 4-bit inverse quantizer the predictors use in every mode, by the code's
/// four high bits (G.722 Table 7, column for 4-bit codes).
const INV_Q4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// The magnitude class (0..=7) of a 4-bit code, for the lower band's scale adaptation.
const CLASS_Q4: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Log scale factor multipliers of the lower band, by magnitude class (G.722 Table 8).
const W_LOW: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// The higher band's 2-bit inverse quantizer (G.722 Table 9), by code.
const INV_Q2: [i32; 4] = [-7408, -1616, 7408, 1616];

/// Log scale factor multipliers of the higher band, by code (G.722 Table 10; codes 0 and 2 are
/// the outer levels).
const W_HIGH: [i32; 4] = [798, -214, 798, -214];

/// The higher band's decision level, scaled by 2^12 against the scale factor.
const Q2: i32 = 564;

/// Antilog table of the scale factor computation (G.722 Table 12, `ILB`): 2^(i/32), scaled.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// Limits a value to 16 bits, as the Recommendation's arithmetic does on every add.
#[inline]
fn sat16(v: i32) -> i32 {
    v.clamp(-32768, 32767)
}

/// `a·b >> 15`, the Recommendation's fractional multiply.
#[inline]
fn mul15(a: i32, b: i32) -> i32 {
    (a * b) >> 15
}

/// True if the two 16-bit values have different signs (zero counts as positive).
#[inline]
fn signs_differ(a: i32, b: i32) -> bool {
    (a < 0) != (b < 0)
}

/// One band's adaptive state: scale factor and predictor (blocks 3 and 4, the same in encoder
/// and decoder, which is what keeps the two in step).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Band {
    /// Predicted signal, `s = sp + sz` (PREDIC).
    s: i32,
    /// Output of the zero (FIR) section (FILTEZ).
    sz: i32,
    /// The last reconstructed signal, `r(n-1)` (RECONS, delayed).
    r1: i32,
    /// Pole coefficients `a1`, `a2`.
    a: [i32; 2],
    /// The last two partially reconstructed signals `p(n-1)`, `p(n-2)` (PARREC, delayed).
    p: [i32; 2],
    /// The last six quantized differences `d(n-1)`..`d(n-6)`.
    d: [i32; 6],
    /// Zero coefficients `b1`..`b6`.
    b: [i32; 6],
    /// Logarithmic scale factor (LOGSCL / LOGSCH).
    nb: i32,
    /// Scale factor (SCALEL / SCALEH).
    det: i32,
}

impl Band {
    /// A band reset as at the start of a call (G.722 §6.3: every state variable 0, the scale
    /// factors at their minimum).
    const fn new(det: i32) -> Band {
        Band {
            s: 0,
            sz: 0,
            r1: 0,
            a: [0; 2],
            p: [0; 2],
            d: [0; 6],
            b: [0; 6],
            nb: 0,
            det,
        }
    }

    /// LOGSCL/LOGSCH and SCALEL/SCALEH: the log scale factor leaks by 127/128 and moves by `w`
    /// within `0..=max`; the scale factor is its antilog, 2^(nb/2048) read from [`ILB`] and
    /// shifted by `shift` less the integer part.
    fn adapt_scale(&mut self, w: i32, max: i32, shift: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, max);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let exponent = shift - (self.nb >> 11);
        let det = if exponent >= 0 {
            mantissa >> exponent
        } else {
            mantissa << -exponent
        };
        self.det = det << 2;
    }

    /// Block 4: reconstruct with the quantized difference `dq`, adapt the predictor (UPPOL1,
    /// UPPOL2, UPZERO) and predict the next sample (FILTEP, FILTEZ, PREDIC).
    fn predict(&mut self, dq: i32) {
        // RECONS and PARREC.
        let r = sat16(self.s + dq);
        let p = sat16(self.sz + dq);

        // UPPOL2: a2 leaks by 127/128 and moves by the sign correlation of p with p(n-1)
        // (weighted by a1) and with p(n-2); |a2| <= 0.375.
        let a1x4 = sat16(self.a[0] << 2);
        let pull = if signs_differ(p, self.p[0]) {
            a1x4
        } else {
            -a1x4
        };
        let push = if signs_differ(p, self.p[1]) {
            -128
        } else {
            128
        };
        let a2 = ((pull.min(32767) >> 7) + push + mul15(self.a[1], 32512)).clamp(-12288, 12288);

        // UPPOL1: a1 leaks by 255/256 and moves by ±3/256; |a1| <= 1 - 2^-4 - a2.
        let step = if signs_differ(p, self.p[0]) {
            -192
        } else {
            192
        };
        let limit = sat16(15360 - a2);
        let a1 = sat16(step + mul15(self.a[0], 32640)).clamp(-limit, limit);

        // FILTEP: the pole section on the reconstructed signal.
        let sp = sat16(mul15(a1, sat16(r + r)) + mul15(a2, sat16(self.r1 + self.r1)));
        self.r1 = r;
        self.a = [a1, a2];
        self.p = [p, self.p[0]];

        // UPZERO with DELAYA: each b leaks by 255/256 and moves by ±1/256 with the sign
        // correlation of dq and the difference it weights (no move when dq is 0).
        let gain = if dq == 0 { 0 } else { 128 };
        for (b, d) in self.b.iter_mut().zip(&self.d) {
            let step = if signs_differ(dq, *d) { -gain } else { gain };
            *b = sat16(step + mul15(*b, 32640));
        }
        self.d.copy_within(0..5, 1);
        self.d[0] = dq;

        // FILTEZ: the zero section on the (now delayed) differences.
        let sz: i32 = self
            .b
            .iter()
            .zip(&self.d)
            .map(|(b, d)| mul15(*b, sat16(d + d)))
            .sum();
        self.sz = sat16(sz);

        // PREDIC.
        self.s = sat16(sp + self.sz);
    }
}

/// The lower band's half of the encoder (blocks 1L to 4L): codes the sub-band sample `xl`
/// (15-bit scale) and returns the 6-bit code.
fn encode_low(band: &mut Band, xl: i32) -> u8 {
    // SUBTRA.
    let el = sat16(xl - band.s);
    // QUANTL: the magnitude (ones' complement for negatives) against the scaled decision levels.
    let magnitude = if el >= 0 { el } else { !el };
    let interval = Q6[1..]
        .iter()
        .position(|q| magnitude < (q * band.det) >> 12)
        .map_or(30, |i| i + 1);
    let code = if el < 0 {
        CODE_NEGATIVE[interval]
    } else {
        CODE_POSITIVE[interval]
    };
    update_low(band, code);
    code
}

/// INVQAL, LOGSCL, SCALEL and block 4L for a lower-band 6-bit code: what encoder and decoder
/// both do with it.
fn update_low(band: &mut Band, code: u8) {
    let q4 = usize::from(code >> 2);
    let dq = mul15(band.det, INV_Q4[q4]);
    band.adapt_scale(W_LOW[CLASS_Q4[q4]], 18432, 8);
    band.predict(dq);
}

/// The higher band's half of the encoder (blocks 1H to 4H): the 2-bit code of `xh`.
fn encode_high(band: &mut Band, xh: i32) -> u8 {
    let eh = sat16(xh - band.s);
    let magnitude = if eh >= 0 { eh } else { !eh };
    let outer = magnitude >= (Q2 * band.det) >> 12;
    let code = match (eh < 0, outer) {
        (true, true) => 0,
        (true, false) => 1,
        (false, true) => 2,
        (false, false) => 3,
    };
    update_high(band, code);
    code
}

/// INVQAH, LOGSCH, SCALEH and block 4H for a higher-band code; returns the quantized
/// difference.
fn update_high(band: &mut Band, code: u8) -> i32 {
    let code = usize::from(code & 3);
    let dq = mul15(band.det, INV_Q2[code]);
    band.adapt_scale(W_HIGH[code], 22528, 10);
    band.predict(dq);
    dq
}

/// A G.722 encoder (mode 1, 64 kbit/s): 16 kHz PCM in, one octet per two samples out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    codec: Codec,
    /// The last 24 input samples, oldest first.
    history: [i32; 24],
    low: Band,
    high: Band,
    /// A sample left over from an odd-length input, coded with the next one.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        G722Encoder::new()
    }
}

impl G722Encoder {
    /// An encoder in its reset state, for payload type 9.
    pub fn new() -> G722Encoder {
        G722Encoder::for_codec(Codec::G722)
    }

    /// The same for `codec` (a `G722/8000` on another payload type).
    fn for_codec(codec: Codec) -> G722Encoder {
        G722Encoder {
            codec,
            history: [0; 24],
            low: Band::new(32),
            high: Band::new(8),
            pending: None,
        }
    }

    /// Codes two consecutive 16 kHz samples (`first` the earlier) into one octet.
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF (G.722 §3.2): with j the newer sample, xA sums the even taps over
        // x(j - 2i) and xB the odd taps over x(j - 2i - 1); the lower band is (xA + xB), the
        // higher (xA - xB), both scaled to the 15-bit range the ADPCM works in.
        self.history.copy_within(2.., 0);
        self.history[22] = i32::from(first);
        self.history[23] = i32::from(second);
        let (mut xa, mut xb) = (0i32, 0i32);
        for i in 0..12 {
            xa += QMF[2 * i] * self.history[23 - 2 * i];
            xb += QMF[2 * i + 1] * self.history[22 - 2 * i];
        }
        self.encode_subbands(sat16((xa + xb) >> 14), sat16((xa - xb) >> 14))
    }

    /// Codes one lower-band and one higher-band sample (15-bit scale) without the QMF, as the
    /// ITU-T test sequences exercise the ADPCM (G.722 Appendix II, configuration 1).
    pub(crate) fn encode_subbands(&mut self, xl: i32, xh: i32) -> u8 {
        let low = encode_low(&mut self.low, xl);
        let high = encode_high(&mut self.high, xh);
        (high << 6) | low
    }
}

impl AudioEncoder for G722Encoder {
    fn codec(&self) -> &Codec {
        &self.codec
    }

    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    /// Appends one octet per two samples. An odd sample at the end is kept and coded with the
    /// first sample of the next call.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len() / 2 + 1);
        let mut rest = pcm;
        if let Some(first) = self.pending.take() {
            let Some((&second, tail)) = rest.split_first() else {
                self.pending = Some(first);
                return;
            };
            out.push(self.encode_pair(first, second));
            rest = tail;
        }
        let mut pairs = rest.chunks_exact(2);
        for pair in &mut pairs {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        self.pending = pairs.remainder().first().copied();
    }
}

/// A G.722 decoder (mode 1, 64 kbit/s): one octet in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    codec: Codec,
    /// The last 12 sums `rl + rh` and differences `rl - rh`, oldest first.
    sums: [i32; 12],
    differences: [i32; 12],
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        G722Decoder::new()
    }
}

impl G722Decoder {
    /// A decoder in its reset state, for payload type 9.
    pub fn new() -> G722Decoder {
        G722Decoder::for_codec(Codec::G722)
    }

    fn for_codec(codec: Codec) -> G722Decoder {
        G722Decoder {
            codec,
            sums: [0; 12],
            differences: [0; 12],
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Decodes one octet into two consecutive 16 kHz samples, the earlier first.
    pub fn decode_octet(&mut self, octet: u8) -> [i16; 2] {
        let (rl, rh) = self.decode_subbands(octet);
        // Receive QMF (G.722 §4.4): the earlier output weighs the differences with the even
        // taps, the later the sums with the odd taps, newest first.
        self.sums.copy_within(1.., 0);
        self.differences.copy_within(1.., 0);
        self.sums[11] = rl + rh;
        self.differences[11] = rl - rh;
        let (mut earlier, mut later) = (0i32, 0i32);
        for i in 0..12 {
            earlier += QMF[2 * i] * self.differences[11 - i];
            later += QMF[2 * i + 1] * self.sums[11 - i];
        }
        // The taps' gain (2^12) less one for the 15-bit sub-bands, twice for the interpolation.
        [sat16(earlier >> 11) as i16, sat16(later >> 11) as i16]
    }

    /// Decodes one octet into the reconstructed lower- and higher-band samples (15-bit scale),
    /// without the QMF (G.722 Appendix II, configuration 2).
    pub(crate) fn decode_subbands(&mut self, octet: u8) -> (i32, i32) {
        // INVQBL and LIMIT: the 6-bit level for the output, then the 4-bit update.
        let low = octet & 0x3F;
        let rl = (self.low.s + mul15(self.low.det, INV_Q6[usize::from(low)])).clamp(-16384, 16383);
        update_low(&mut self.low, low);
        let predicted = self.high.s;
        let rh = (predicted + update_high(&mut self.high, octet >> 6)).clamp(-16384, 16383);
        (rl, rh)
    }
}

impl AudioDecoder for G722Decoder {
    fn codec(&self) -> &Codec {
        &self.codec
    }

    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &octet in payload {
            out.extend_from_slice(&self.decode_octet(octet));
        }
    }
}

/// An encoder for `codec` if it is G.722 (`G722/8000`, mono), keeping its payload type.
pub(crate) fn encoder_for(codec: &Codec) -> Option<G722Encoder> {
    is_g722(codec).then(|| G722Encoder::for_codec(codec.clone()))
}

/// A decoder for `codec` if it is G.722, keeping its payload type.
pub(crate) fn decoder_for(codec: &Codec) -> Option<G722Decoder> {
    is_g722(codec).then(|| G722Decoder::for_codec(codec.clone()))
}

fn is_g722(codec: &Codec) -> bool {
    codec.kind() == super::CodecKind::G722 && codec.clock_rate == 8000 && codec.channels == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{goertzel_power, tone_present};

    fn sine(freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(SAMPLE_RATE);
                ((std::f64::consts::TAU * freq * t).sin() * amplitude) as i16
            })
            .collect()
    }

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = Vec::new();
        enc.encode(pcm, &mut bytes);
        let mut out = Vec::new();
        dec.decode(&bytes, &mut out);
        out
    }

    /// Signal-to-noise ratio in dB of `got` against `want`, `delay` samples late.
    fn snr(want: &[i16], got: &[i16], delay: usize) -> f64 {
        let (mut signal, mut noise) = (0.0f64, 0.0f64);
        for (w, g) in want.iter().zip(&got[delay..]) {
            signal += f64::from(*w).powi(2);
            noise += (f64::from(*w) - f64::from(*g)).powi(2);
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    #[test]
    fn silence_codes_to_the_reset_octet_and_back_to_silence() {
        // Zero in, from reset (scale factor 32): the decision levels below 128/4096 of the
        // scale round to 0, so zero falls in interval 4, positive code 58 (0x3A), and in the
        // higher band's inner positive level (3): 0xFA (spandsp agrees).
        let mut enc = G722Encoder::new();
        let mut bytes = Vec::new();
        enc.encode(&[0; 320], &mut bytes);
        assert_eq!(bytes.len(), 160);
        assert_eq!(bytes[..8], [0xFA; 8], "{:02x?}", &bytes[..8]);
        let out = round_trip(&[0; 3200]);
        assert!(out[320..].iter().all(|s| s.abs() < 8), "near silence");
    }

    #[test]
    fn a_tone_comes_back_with_its_frequency_and_level() {
        // 1 kHz (lower band) and 6 kHz (higher band, which G.711 cannot carry).
        for freq in [1000.0, 6000.0] {
            let pcm = sine(freq, 10_000.0, 16_000);
            let out = round_trip(&pcm);
            assert_eq!(out.len(), pcm.len());
            let tail = &out[4000..];
            assert!(tone_present(tail, freq, SAMPLE_RATE, 0.9), "{freq} Hz");
            let power_in = goertzel_power(&pcm[4000..], freq, SAMPLE_RATE);
            let power_out = goertzel_power(tail, freq, SAMPLE_RATE);
            assert!(
                (power_out / power_in - 1.0).abs() < 0.2,
                "{freq} Hz: power {power_out} vs {power_in}"
            );
        }
    }

    #[test]
    fn speech_band_signal_to_noise_is_that_of_a_64k_codec() {
        // A mix of tones across the lower band; the QMF pair delays by 22 samples.
        let n = 16_000;
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let v = [300.0, 770.0, 1850.0, 3100.0]
                    .iter()
                    .map(|f| (std::f64::consts::TAU * f * t).sin())
                    .sum::<f64>();
                (v * 3000.0) as i16
            })
            .collect();
        let out = round_trip(&pcm);
        let db = snr(&pcm[2000..n - 100], &out[2000..], 22);
        assert!(db > 20.0, "SNR {db:.1} dB");
    }

    #[test]
    fn odd_lengths_keep_the_stream_whole() {
        let pcm = sine(440.0, 8000.0, 641);
        let mut whole = G722Encoder::new();
        let mut expected = Vec::new();
        whole.encode(&pcm, &mut expected);
        let mut split = G722Encoder::new();
        let mut got = Vec::new();
        for chunk in pcm.chunks(7) {
            split.encode(chunk, &mut got);
        }
        split.encode(&[], &mut got);
        assert_eq!(got, expected);
        assert_eq!(got.len(), 320, "the last, unpaired sample waits");
    }

    #[test]
    fn extremes_do_not_overflow() {
        // Full-scale square waves and clipping noise: everything saturates, nothing panics
        // (debug builds check overflow), and the decoder stays bounded.
        let mut pcm = Vec::new();
        for i in 0..8000 {
            pcm.push(if (i / 3) % 2 == 0 { i16::MAX } else { i16::MIN });
        }
        let mut x = 0x1234_5678u32;
        for _ in 0..8000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pcm.push(x as i16);
        }
        let out = round_trip(&pcm);
        assert_eq!(out.len(), pcm.len());
        // Every octet decodes, whatever it is.
        let mut dec = G722Decoder::new();
        let mut all = Vec::new();
        for _ in 0..4 {
            dec.decode(&(0..=255u8).collect::<Vec<_>>(), &mut all);
        }
        assert_eq!(all.len(), 2048);
    }

    #[test]
    fn the_codec_seam_finds_it() {
        let mut enc = super::super::encoder_for(&Codec::G722).expect("G.722 is built in");
        assert_eq!(enc.sample_rate(), 16_000);
        assert_eq!(enc.samples_per_frame(20), 320);
        assert_eq!(enc.codec().clock_rate, 8000);
        let mut out = Vec::new();
        enc.encode(&[0; 320], &mut out);
        assert_eq!(out.len(), 160);
        let dec = super::super::decoder_for(&Codec::G722.with_payload_type(9)).expect("G.722");
        assert_eq!(dec.sample_rate(), 16_000);
        assert!(encoder_for(&Codec::new("G722", 16000, 9)).is_none());
    }

    /// The words of an ITU-T test sequence in its ASCII form (lines of sixteen 4-digit hex
    /// words and a check byte; `/*` comment lines).
    fn itu_words(dir: &std::path::Path, name: &str) -> Vec<u16> {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} in {}: {e}", dir.display()));
        text.lines()
            .filter(|l| !l.starts_with("/*"))
            .flat_map(|l| {
                (0..16).filter_map(move |i| {
                    l.get(4 * i..4 * i + 4)
                        .and_then(|w| u16::from_str_radix(w, 16).ok())
                })
            })
            .collect()
    }

    /// The data between the reset words (whose low bit is set) at each end.
    fn itu_data(words: &[u16]) -> std::ops::Range<usize> {
        let start = words.iter().position(|w| w & 1 == 0).unwrap_or(0);
        let end = words[start..]
            .iter()
            .position(|w| w & 1 == 1)
            .map_or(words.len(), |n| start + n);
        start..end
    }

    /// The ITU-T digital test sequences (G.722 Appendix II), which the ITU does not let us
    /// ship: run with `PARROT_G722_ITU_DIR=<dir with T1C2.XMT, T2R2.COD, T3L2.RC1, T3H2.RC0 and,
    /// if present, T1C1.XMT, T2R1.COD, T3L1.RC1, T3H1.RC0> cargo test -p parrot-core --lib
    /// g722 -- --ignored`. Configuration 1 (encoder without the QMF: each input word, halved,
    /// feeds both bands) and configuration 2 (decoder in mode 1 without the QMF: the two bands'
    /// outputs, doubled).
    #[test]
    #[ignore = "needs the ITU-T test sequences, which cannot be distributed"]
    fn itu_test_sequences() {
        let dir = std::path::PathBuf::from(
            std::env::var_os("PARROT_G722_ITU_DIR").expect("set PARROT_G722_ITU_DIR"),
        );
        let mut sets = vec![("T1C2.XMT", "T2R2.COD", "T3L2.RC1", "T3H2.RC0")];
        if dir.join("T1C1.XMT").exists() {
            sets.push(("T1C1.XMT", "T2R1.COD", "T3L1.RC1", "T3H1.RC0"));
        }
        for (input, coded, low, high) in sets {
            let x = itu_words(&dir, input);
            let code = itu_words(&dir, coded);
            let range = itu_data(&x);
            let mut enc = G722Encoder::new();
            for i in range.clone() {
                let v = i32::from(x[i] as i16) >> 1;
                let octet = enc.encode_subbands(v, v);
                assert_eq!(octet, (code[i] >> 8) as u8, "{input} word {i}");
            }
            let (rl, rh) = (itu_words(&dir, low), itu_words(&dir, high));
            let range = itu_data(&code);
            let mut dec = G722Decoder::new();
            for i in range.clone() {
                let (l, h) = dec.decode_subbands((code[i] >> 8) as u8);
                assert_eq!((l << 1) as u16, rl[i], "{low} word {i}");
                assert_eq!((h << 1) as u16, rh[i], "{high} word {i}");
            }
            eprintln!(
                "{input} -> {coded} -> {low} + {high}: {} words",
                range.len()
            );
        }
    }
}
