//! G.711 A-law (ITU-T G.711 §2; the European companding law).
//!
//! Linear input is 16-bit PCM, of which A-law keeps 13 bits (the three low bits are dropped). The
//! magnitude is split into a 3-bit segment and a 4-bit step; segments 0 and 1 share the same step
//! size (the linear part of the curve). Negative values are coded as one's complement
//! (`-x - 1`), so A-law has no code for zero: silence is ±8. The even bits of the code word are
//! inverted on the wire (XOR 0x55, G.711 Table 1a), and the sign bit is set for positive values.
//!
//! ```
//! use parrot_core::codec::alaw;
//! assert_eq!(alaw::encode_sample(0), 0xD5);
//! assert_eq!(alaw::decode_sample(0xD5), 8);
//! ```

/// The even-bit inversion applied on the wire (G.711 Table 1a, note 1).
const EVEN_BITS: u8 = 0x55;

/// Decoded value of every code word, built at compile time.
static DECODE: [i16; 256] = build_decode_table();

const fn decode_formula(code: u8) -> i16 {
    let a = code ^ EVEN_BITS;
    let segment = ((a >> 4) & 0x07) as i32;
    let mut magnitude = ((a & 0x0F) as i32) << 4;
    // The middle of the step: half a step (8) in segment 0, the segment start (0x100) plus half
    // a step in the others, scaled by the segment.
    magnitude = match segment {
        0 => magnitude + 8,
        1 => magnitude + 0x108,
        _ => (magnitude + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
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

/// The code word of a 13-bit value (-4096..=4095), as G.711 Table 1a has it:
/// what [`encode_sample`] is checked against.
#[cfg(test)]
const fn encode_formula(value: i32) -> u8 {
    // One's complement for negatives.
    let (mask, magnitude) = if value >= 0 {
        (0x80 | EVEN_BITS, value)
    } else {
        (EVEN_BITS, -value - 1)
    }; // magnitude is 0..=4095
    let code = if magnitude < 0x20 {
        // Segment 0: linear, step 2 in 13-bit units.
        (magnitude >> 1) as u8
    } else {
        // Segment = position of the highest set bit minus 4 (bit 5 → segment 1 … bit 11 → 7).
        let segment = (31 - magnitude.leading_zeros()) as i32 - 4;
        ((segment as u8) << 4) | ((magnitude >> segment) & 0x0F) as u8
    };
    code ^ mask
}

/// Encodes one 16-bit linear sample to an A-law code word.
///
/// By G.711 Table 1a, without a bit search or a table: from segment 1 up,
/// the magnitude converted to `f32` (exact) has 127 + 4 + the segment in its
/// exponent field and the step in its top four fraction bits, so
/// `(bits >> 19) - (131 << 4)` is the code; segment 0 is picked by a select.
/// A loop of these compiles to SIMD (see [`super::mulaw::encode_sample`]);
/// `encode_matches_formula` checks every sample.
#[inline]
pub fn encode_sample(sample: i16) -> u8 {
    // 13 significant bits (arithmetic shift: floor).
    let value = i32::from(sample) >> 3;
    let negative = value >> 31; // 0, or -1 for a negative value
    // One's complement for negatives: -value - 1.
    let magnitude = value ^ negative;
    let mask = EVEN_BITS | (!negative as u8 & 0x80);
    let logarithmic = (((magnitude as f32).to_bits() >> 19) as i32 - (131 << 4)) as u8;
    let code = if magnitude < 0x20 {
        // Segment 0: linear, step 2 in 13-bit units.
        (magnitude >> 1) as u8
    } else {
        logarithmic
    };
    code ^ mask
}

/// Decodes one A-law code word to a 16-bit linear sample (table look-up).
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
            assert_eq!(
                encode_sample(s),
                encode_formula(i32::from(s) >> 3),
                "sample {s}"
            );
        }
    }

    /// The quantisation step of the segment a code word belongs to, in 16-bit units.
    fn step(code: u8) -> i32 {
        let segment = ((code ^ EVEN_BITS) >> 4) & 0x07;
        if segment <= 1 {
            16
        } else {
            16 << (segment - 1)
        }
    }

    #[test]
    fn reference_values() {
        // Smallest magnitudes: no zero code, ±8.
        assert_eq!(decode_sample(0xD5), 8);
        assert_eq!(decode_sample(0x55), -8);
        assert_eq!(encode_sample(0), 0xD5);
        assert_eq!(encode_sample(-1), 0x55);
        assert_eq!(encode_sample(15), 0xD5);
        assert_eq!(encode_sample(16), 0xD4);
        assert_eq!(decode_sample(0xD4), 24);
        // Full scale: segment 7, step 15: (0xF0 + 0x108) << 6 = 32256.
        assert_eq!(decode_sample(0x2A), -32256);
        assert_eq!(decode_sample(0xAA), 32256);
        assert_eq!(encode_sample(i16::MAX), 0xAA);
        assert_eq!(encode_sample(i16::MIN), 0x2A);
        // First code of segment 1 (0x90 before inversion): 0x108.
        assert_eq!(decode_sample(0x90 ^ 0x55), 264);
        // Segment 2, step 0: 0x108 << 1.
        assert_eq!(decode_sample(0xA0 ^ 0x55), 528);
        assert_eq!(encode_sample(528), 0xA0 ^ 0x55);
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
            assert_eq!(encode_sample(decode_sample(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn error_bounded_by_half_step_for_all_inputs() {
        for sample in i16::MIN..=i16::MAX {
            let code = encode_sample(sample);
            let err = (i32::from(sample) - i32::from(decode_sample(code))).abs();
            assert!(err <= step(code) / 2, "sample {sample}: error {err}");
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
        assert_eq!(
            codes,
            vec![0xD5, 0x55, encode_sample(1000), encode_sample(-1000)]
        );
        let mut pcm = Vec::new();
        decode(&codes, &mut pcm);
        assert_eq!(&pcm[..2], &[8, -8]);
        assert!((pcm[2] - 1000).abs() <= 16 && (pcm[3] + 1000).abs() <= 16);
    }
}
