//! G.711 µ-law (ITU-T G.711 §3; the North American and Japanese companding law).
//!
//! Linear input is 16-bit PCM. As in the reference implementations (Sun's `g711.c`, the ITU-T
//! G.191 software tools) the magnitude is clipped to 32635, biased by 0x84 (132) so that every
//! segment starts on a power of two, and split into a 3-bit segment (exponent) and a 4-bit
//! step (mantissa). All bits of the code word are inverted on the wire (G.711 Table 2a), so
//! digital silence is 0xFF.
//!
//! ```
//! use parrot_core::codec::mulaw;
//! assert_eq!(mulaw::encode_sample(0), 0xFF);
//! assert_eq!(mulaw::decode_sample(0x00), -32124);
//! ```

/// Added to the magnitude before the segment search (G.711 Table 2a, shifted to 16 bits).
const BIAS: i32 = 0x84;
/// The largest magnitude that can be encoded: 8159 in G.711's 14-bit scale, times 4, minus the bias.
const CLIP: i32 = 32635;

/// Decoded value of every code word, built at compile time.
static DECODE: [i16; 256] = build_decode_table();

const fn decode_formula(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    // The middle of the step: ((mantissa << 3) + bias) << exponent, then the bias removed.
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_formula(i as u8);
        i += 1;
    }
    table
}

/// Segment and step of a magnitude (0..=CLIP), as G.711 Table 2a has them:
/// what [`encode_sample`] is checked against.
#[cfg(test)]
const fn segment_and_step(magnitude: i32) -> u8 {
    let biased = magnitude + BIAS; // 0x84..=0x7FFF
    // Segment = position of the highest set bit above bit 7 (biased >= 0x80, so 0..=7).
    let exponent = (31 - biased.leading_zeros()) as i32 - 7;
    let mantissa = ((biased >> (exponent + 3)) & 0x0F) as u8;
    ((exponent as u8) << 4) | mantissa
}

/// Encodes one 16-bit linear sample to a µ-law code word.
///
/// The segment and step come from the biased magnitude converted to `f32`
/// (exact: it is below 2^15): its exponent field is 127 + 7 + the segment and
/// its top four fraction bits are the step, so `(bits >> 19) - (134 << 4)` is
/// the segment and step of G.711 Table 2a (`encode_matches_formula` checks
/// every sample against the bit search). No branch and no table: a loop of
/// these compiles to SIMD (SSE2 converts four at a time), where an 8 KB table
/// look-up cannot, and its cache lines compete with every call's state (in a
/// media thread at 1000 calls the look-up cost 3 ns a sample).
#[inline]
pub fn encode_sample(sample: i16) -> u8 {
    let value = i32::from(sample);
    // 0x80 for a negative sample (its top bits are ones).
    let sign = ((value >> 24) as u8) & 0x80;
    let biased = value.unsigned_abs().min(CLIP as u32) as i32 + BIAS;
    let bits = (biased as f32).to_bits();
    !(sign | ((bits >> 19) - (134 << 4)) as u8)
}

/// Decodes one µ-law code word to a 16-bit linear sample (table look-up).
#[inline]
pub fn decode_sample(code: u8) -> i16 {
    DECODE[usize::from(code)]
}

/// Encodes `pcm`, appending one code word per sample to `out`.
pub fn encode(pcm: &[i16], out: &mut Vec<u8>) {
    super::encode_each(pcm, out, encode_sample);
}

/// Decodes `codes`, appending one linear sample per code word to `out`.
pub fn decode(codes: &[u8], out: &mut Vec<i16>) {
    out.reserve(codes.len());
    out.extend(codes.iter().map(|&c| decode_sample(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float-exponent encoding gives what the formula gives, for every 16-bit sample.
    #[test]
    fn encode_matches_formula() {
        for s in i16::MIN..=i16::MAX {
            let v = i32::from(s);
            let sign = if v < 0 { 0x80u8 } else { 0 };
            let formula = !(sign | segment_and_step(v.abs().min(CLIP)));
            assert_eq!(encode_sample(s), formula, "sample {s}");
        }
    }

    /// The quantisation step of the segment a code word belongs to, in 16-bit units.
    fn step(code: u8) -> i32 {
        8 << ((!code >> 4) & 0x07)
    }

    #[test]
    fn reference_values() {
        // Silence: both zeros of µ-law; +0 is 0xFF on the wire, -0 is 0x7F.
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(-1), 0x7F);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x7F), 0);
        // Full scale: segment 7, step 15: ((15 << 3) + 132) << 7 - 132 = 32124.
        assert_eq!(decode_sample(0x00), -32124);
        assert_eq!(decode_sample(0x80), 32124);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        // The bias puts zero in the middle of the first step: 0..=3 stay on 0xFF, 4..=11
        // go to 0xFE, which decodes to 8.
        assert_eq!(encode_sample(3), 0xFF);
        assert_eq!(encode_sample(4), 0xFE);
        assert_eq!(encode_sample(11), 0xFE);
        assert_eq!(encode_sample(12), 0xFD);
        assert_eq!(decode_sample(0xFE), 8);
        // First code of segment 1 (inverted 0x10): (132 << 1) - 132.
        assert_eq!(decode_sample(0xEF), 132);
        // Last step of segment 0 (inverted 0x0F / 0x8F): 15 * 8.
        assert_eq!(decode_sample(0xF0), 120);
        assert_eq!(decode_sample(0x70), -120);
        // Segment 5, step 15 (inverted 0x5F): (252 << 5) - 132.
        assert_eq!(decode_sample(0xA0), 7932);
        assert_eq!(decode_sample(0x20), -7932);
    }

    #[test]
    fn table_matches_formula() {
        for code in 0..=255u8 {
            assert_eq!(decode_sample(code), decode_formula(code));
        }
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            let back = encode_sample(decode_sample(code));
            if code == 0x7F {
                // -0 decodes to 0, which encodes as +0.
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn error_bounded_by_step_for_all_inputs() {
        for sample in i16::MIN..=i16::MAX {
            let code = encode_sample(sample);
            let err = (i32::from(sample) - i32::from(decode_sample(code))).abs();
            if i32::from(sample).abs() <= CLIP {
                // Decoding gives the middle of the step.
                assert!(err <= step(code) / 2, "sample {sample}: error {err}");
            } else {
                assert!(err <= step(code), "clipped sample {sample}: error {err}");
            }
        }
    }

    #[test]
    fn monotonic() {
        let mut previous = i16::MIN;
        for sample in i16::MIN..=i16::MAX {
            let decoded = decode_sample(encode_sample(sample));
            assert!(decoded >= previous, "not monotonic at {sample}");
            previous = decoded;
        }
    }

    #[test]
    fn slices() {
        let mut codes = Vec::new();
        encode(&[0, -1, 1000, -1000], &mut codes);
        assert_eq!(codes.len(), 4);
        let mut pcm = vec![42];
        decode(&codes, &mut pcm);
        assert_eq!(pcm[0], 42, "decode appends");
        assert_eq!(&pcm[1..3], &[0, 0]);
        assert!((pcm[3] - 1000).abs() <= 32 && (pcm[4] + 1000).abs() <= 32);
    }
}
