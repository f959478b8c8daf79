//! G.722 against a reference implementation: Debian's spandsp (package `libspandsp2`, the
//! library baresip's g722 module uses), driven through `tests/g722_spandsp.py`.
//!
//! spandsp's G.722 is checked against the ITU-T digital test sequences (G.722 Appendix II) by
//! its own test suite; those sequences bypass the QMF filters, which this comparison covers too.
//! The same PCM is encoded by both and the octets must be equal; the same octets are decoded by
//! both and the samples must be equal. The signals are generated here (sweeps, tones in both
//! sub-bands, noise at several levels, silence, speech-like bursts) and kept below the level at
//! which the decoder's output must saturate: spandsp 0.0.6 wraps such a sample around where
//! Parrot clips it, so the two are compared only where the Recommendation's result fits.
//!
//! `cargo xtask test` installs python3 and libspandsp2; without them this test fails and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::codec::g722::{G722Decoder, G722Encoder};
use parrot_core::codec::{AudioDecoder, AudioEncoder};
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parrot-g722-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the reference on `input` (bytes), returns its output bytes.
fn spandsp(mode: &str, input: &[u8], dir: &Path) -> Vec<u8> {
    let src = dir.join(format!("{mode}.in"));
    let dst = dir.join(format!("{mode}.out"));
    std::fs::write(&src, input).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/g722_spandsp.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(mode)
        .arg(&src)
        .arg(&dst)
        .output()
        .expect("python3 runs (installed by `cargo xtask test`)");
    assert!(
        out.status.success(),
        "the spandsp reference failed (is libspandsp2 installed? `cargo xtask test` installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&dst).unwrap()
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Noise(u32);
impl Noise {
    fn next(&mut self) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 >> 16) as i32 - 32768
    }
}

/// Ten seconds or so of varied 16 kHz audio.
fn signals() -> Vec<(&'static str, Vec<i16>)> {
    let rate = 16_000.0;
    let tau = std::f64::consts::TAU;
    let mut all = Vec::new();
    // A sweep over the whole band, 50 Hz to 7.9 kHz, at half scale.
    let n = 32_000;
    let sweep = (0..n)
        .map(|i| {
            let t = f64::from(i) / rate;
            let f = 50.0 + (7900.0 - 50.0) * t / 4.0; // instantaneous: 50 + 7850 t / 2
            (((tau * f * t).sin()) * 16_000.0) as i16
        })
        .collect();
    all.push(("sweep", sweep));
    // Tones in the lower and the higher band together, then each alone.
    let tones = (0..24_000)
        .map(|i| {
            let t = f64::from(i) / rate;
            let low = (tau * 440.0 * t).sin() * 9000.0;
            let high = (tau * 6000.0 * t).sin() * 6000.0;
            let v = match i / 8000 {
                0 => low + high,
                1 => low,
                _ => high,
            };
            v as i16
        })
        .collect();
    all.push(("tones", tones));
    // White noise at three levels, with silence between.
    let mut noise = Noise(0x9E37_79B9);
    let mut white = Vec::new();
    for level in [200, 4000, 14_000] {
        white.extend((0..8000).map(|_| (noise.next() * level / 32768) as i16));
        white.extend(std::iter::repeat_n(0, 1600));
    }
    all.push(("noise", white));
    // Speech-like: a harmonic buzz under a syllable-rate envelope.
    let speech = (0..32_000)
        .map(|i| {
            let t = f64::from(i) / rate;
            let envelope = (tau * 4.0 * t).sin().max(0.0);
            let buzz: f64 = (1..20)
                .map(|k| (tau * 120.0 * f64::from(k) * t).sin() / f64::from(k))
                .sum();
            (buzz * envelope * 7000.0) as i16
        })
        .collect();
    all.push(("speech", speech));
    all
}

#[test]
fn encoder_and_decoder_match_spandsp_bit_for_bit() {
    let dir = temp_dir();
    let mut samples = 0;
    for (name, pcm) in signals() {
        // Encode: the same octets.
        let mut ours = Vec::new();
        G722Encoder::new().encode(&pcm, &mut ours);
        let raw: Vec<u8> = pcm.iter().flat_map(|s| s.to_ne_bytes()).collect();
        let theirs = spandsp("encode", &raw, &dir);
        assert_eq!(ours.len(), pcm.len() / 2, "{name}");
        if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            panic!(
                "{name}: octet {at} differs: ours {:#04x}, spandsp {:#04x}",
                ours[at], theirs[at]
            );
        }
        assert_eq!(ours.len(), theirs.len(), "{name}");
        // Decode those octets: the same samples.
        let mut decoded = Vec::new();
        G722Decoder::new().decode(&ours, &mut decoded);
        let reference: Vec<i16> = spandsp("decode", &ours, &dir)
            .chunks_exact(2)
            .map(|b| i16::from_ne_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(decoded.len(), reference.len(), "{name}");
        if let Some(at) = decoded.iter().zip(&reference).position(|(a, b)| a != b) {
            panic!(
                "{name}: sample {at} differs: ours {}, spandsp {}",
                decoded[at], reference[at]
            );
        }
        samples += pcm.len();
    }
    eprintln!("{samples} samples encoded and decoded bit-exactly as spandsp does");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn arbitrary_octets_decode_as_spandsp_decodes_them() {
    // A decoder sees whatever the network brings: every octet value, in a random order.
    let dir = temp_dir().join("octets");
    std::fs::create_dir_all(&dir).unwrap();
    let mut noise = Noise(0x1234_5678);
    let octets: Vec<u8> = (0..16_000).map(|_| (noise.next() & 0xFF) as u8).collect();
    let mut decoded = Vec::new();
    G722Decoder::new().decode(&octets, &mut decoded);
    let reference: Vec<i16> = spandsp("decode", &octets, &dir)
        .chunks_exact(2)
        .map(|b| i16::from_ne_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(decoded.len(), reference.len());
    let differ: Vec<usize> = (0..decoded.len())
        .filter(|&i| decoded[i] != reference[i])
        .collect();
    // Where they differ, ours is at a limit (clipped) and spandsp's wrapped around.
    for &i in &differ {
        assert!(
            decoded[i] == i16::MAX || decoded[i] == i16::MIN,
            "sample {i}: ours {}, spandsp {}",
            decoded[i],
            reference[i]
        );
    }
    eprintln!(
        "{} of {} samples equal; {} clipped where spandsp wraps",
        decoded.len() - differ.len(),
        decoded.len(),
        differ.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
