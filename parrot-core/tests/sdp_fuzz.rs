//! SDP offer → answer → media session setup, fuzzed on stable Rust within a plain `cargo test`.
//!
//! The seeds are the files in `parrot-core/fuzz/seeds/sdp/`: offers as real peers send them
//! (sipp's two built-in scenarios, a baresip 1.0.0 INVITE captured on loopback, linphone- and
//! WebRTC-shaped ones, RFC 4317's) and one `hostile_*.sdp` per number or count a peer once got
//! past the parser. [`mutated_offers_never_panic`] mutates them with a fixed-seed PRNG (byte
//! flips, inserted and deleted bytes, truncation, duplicated and dropped lines, numbers replaced
//! by 0, -1, 2³¹, 2³², 2⁶⁴ and the like, tokens replaced by long strings, hostile lines spliced
//! in) and runs each mutant through what an INVITE's body goes through: the parser, the
//! answerer (the default codec choice and a handler that takes whatever the peer lists first),
//! the offerer reading it as an answer, and the sans-IO pieces a media session is built from
//! (RTP session, encoder and decoder, frame buffer, DTMF sender), as `media::session` builds
//! them. It asserts that nothing panics and that what comes out is bounded: payload types
//! below 128, ptime within `PTIME_RANGE`, clock rate and channels within the SDP caps, an
//! answer with one `m=` per offered one that parses back to itself.
//!
//! Environment:
//! - `PARROT_FUZZ_CASES`: mutants to run (default 20,000; about 5 s in a debug build).
//! - `PARROT_FUZZ_SEED`: the PRNG seed (default fixed, so a failure repeats). A failing case
//!   prints the seed, its number and the input, and saves the input under the target
//!   directory (`tmp/sdp_fuzz_failure.sdp`); add it to `fuzz/seeds/sdp/`, and a test where the
//!   fix is.

use bytes::Bytes;
use parrot_core::codec::{Codec, decoder_for, encoder_for};
use parrot_core::rtp::{DtmfSender, RtpSession, SessionConfig};
use parrot_core::sdp::{
    LocalMedia, MAX_ATTRIBUTES, MAX_CHANNELS, MAX_CLOCK_RATE, MAX_FORMATS, MAX_MEDIA, Negotiated,
    Negotiator, PTIME_RANGE, SdpErrorKind, SessionDescription, send_ptime,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a SIP message may carry (the transport's default `max_message_size`).
const MAX_BODY: usize = 65_536;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sdp");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".sdp")?.to_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "seeds missing from {}", dir.display());
    seeds
}

// ---- the pipeline -----------------------------------------------------------------------------

/// How far an input got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The parser refused it: the UA answers 488.
    Unreadable(SdpErrorKindTag),
    /// It parsed and nothing could be agreed: 488 too.
    Refused,
    /// An answer, and the media session it configures.
    Answered,
}

/// `SdpErrorKind` without its payload, to count outcomes.
type SdpErrorKindTag = std::mem::Discriminant<SdpErrorKind>;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

/// A media handler's hook that takes the peer's first audio codec, whatever it is.
fn first_offered(offered: &[Codec], _: &[Codec]) -> Option<Codec> {
    offered.first().cloned()
}

fn exercise(data: &[u8]) -> Outcome {
    let offer = match SessionDescription::parse(data) {
        Ok(sdp) => sdp,
        Err(e) => return Outcome::Unreadable(std::mem::discriminant(&e.kind)),
    };
    check_description(&offer);

    let mut outcome = Outcome::Refused;
    // The answerer, as `ua::media` runs it: default choice, then a permissive handler.
    for hook in [0, 1] {
        let mut bob = Negotiator::new(LocalMedia::new(ip(2), 5000), 7);
        let answered = if hook == 0 {
            bob.answer(&offer)
        } else {
            bob.answer_with(&offer, first_offered)
        };
        let Ok(answer) = answered else { continue };
        assert_eq!(answer.sdp.media.len(), offer.media.len(), "one m= per m=");
        check_description(&answer.sdp);
        let text = answer.sdp.to_string();
        assert_eq!(
            SessionDescription::parse(text.as_bytes()).as_ref(),
            Ok(&answer.sdp),
            "the answer does not parse back: {text:?}"
        );
        if let Some(n) = &answer.negotiated {
            assert!(n.media_index < offer.media.len());
            check_negotiated(n);
            media_session(n);
            outcome = Outcome::Answered;
        }
    }
    // The offerer, reading the input as the answer to its offer.
    let mut alice = Negotiator::new(LocalMedia::new(ip(1), 4000), 9);
    let _ = alice.create_offer();
    if let Ok(n) = alice.accept_answer(&offer) {
        check_negotiated(&n);
        media_session(&n);
    }
    outcome
}

fn check_description(sdp: &SessionDescription) {
    assert!(sdp.media.len() <= MAX_MEDIA);
    let attributes =
        sdp.attributes.len() + sdp.media.iter().map(|m| m.attributes.len()).sum::<usize>();
    assert!(attributes <= MAX_ATTRIBUTES, "{attributes} attributes");
    let text = sdp.to_string();
    assert_eq!(
        SessionDescription::parse(text.as_bytes()).as_ref(),
        Ok(sdp),
        "does not round-trip: {text:?}"
    );
    for m in &sdp.media {
        assert!(m.formats.len() <= MAX_FORMATS);
        for pt in m.payload_types() {
            assert!(pt < 128, "payload type {pt}");
            let _ = (m.rtpmap(pt), m.fmtp(pt));
        }
        for c in m.codecs() {
            check_codec(&c);
        }
        assert!(PTIME_RANGE.contains(&send_ptime(m)));
        let _ = (m.ptime(), m.maxptime(), m.rtcp_port(), m.direction());
        let _ = (
            sdp.is_hold(m),
            sdp.media_direction(m),
            sdp.connection_for(m),
        );
    }
}

fn check_codec(c: &Codec) {
    assert!(c.payload_type < 128, "{c:?}");
    assert!((1..=MAX_CLOCK_RATE).contains(&c.clock_rate), "{c:?}");
    assert!((1..=MAX_CHANNELS).contains(&c.channels), "{c:?}");
}

fn check_negotiated(n: &Negotiated) {
    check_codec(&n.codec);
    if let Some(te) = &n.telephone_event {
        check_codec(te);
    }
    assert!(PTIME_RANGE.contains(&n.ptime), "ptime {}", n.ptime);
    let _ = n.remote_addr();
}

/// What `media::session` builds from a negotiated stream before the first packet, with the
/// same arithmetic, then one frame sent and received and one digit sent.
fn media_session(n: &Negotiated) {
    let codec = &n.codec;
    let units = u64::from(n.ptime) * u64::from(codec.clock_rate) / 1000;
    // 120 ms at the highest clock rate: the timestamp increment fits 32 bits.
    let increment = u32::try_from(units).expect("a frame's timestamp increment fits u32");
    let now = Instant::now();
    let config = SessionConfig::new(codec.clock_rate, codec.payload_type).with_seed(1);
    let mut rtp = RtpSession::new(config, now);
    if let (Some(mut encoder), Some(mut decoder)) = (encoder_for(codec), decoder_for(codec)) {
        let samples = encoder.samples_per_frame(n.ptime).max(1);
        let most = u64::from(MAX_CLOCK_RATE) * u64::from(*PTIME_RANGE.end()) / 1000
            * u64::from(MAX_CHANNELS);
        assert!(samples as u64 <= most, "a frame of {samples} samples");
        let frame = vec![0i16; samples];
        let mut payload = Vec::new();
        encoder.encode(&frame, &mut payload);
        let packet = rtp.packetize(now, Bytes::from(payload.clone()), increment, true);
        let mut peer = RtpSession::new(
            SessionConfig::new(codec.clock_rate, codec.payload_type)
                .with_seed(2)
                .with_min_sequential(1),
            now,
        );
        let from = n
            .remote_addr()
            .unwrap_or(SocketAddr::new(ip(3), n.remote_port));
        if let Ok(got) = peer.receive(now, from, packet) {
            let mut pcm = Vec::new();
            decoder.decode(&got.packet.payload, &mut pcm);
            assert_eq!(pcm.len(), frame.len());
        }
    }
    if let Some(te) = &n.telephone_event {
        let te_units = u64::from(n.ptime) * u64::from(te.clock_rate) / 1000;
        let mut dtmf = DtmfSender::new(u32::try_from(te_units).unwrap_or(u32::MAX), 10);
        dtmf.send_digit('5', 800).expect("a digit");
        let mut packets = 0;
        while let Some(p) = dtmf.next_packet(rtp.timestamp()) {
            let _ =
                rtp.packetize_with(te.payload_type, p.payload.to_bytes(), p.timestamp, p.marker);
            packets += 1;
            assert!(packets < 1000, "a digit that does not end");
        }
    }
}

// ---- the mutator ------------------------------------------------------------------------------

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Numbers at the edges of the types a parser might read them into.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "+1",
    "00",
    "127",
    "128",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "1e9",
    "0x10",
    "",
];

/// Lines a hostile or merely odd offer has.
const LINES: &[&str] = &[
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:96 PCMU/0",
    "a=rtpmap:0 PCMU/8000/65535",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:101 telephone-event/0",
    "a=rtpmap:127 PCMA/8000",
    "a=fmtp:101 0-15",
    "a=fmtp:101 0-4294967295",
    "a=fmtp:96 maxplaybackrate=4294967296",
    "a=ptime:0",
    "a=ptime:4294967295",
    "a=maxptime:18446744073709551616",
    "a=rtcp:65536 IN IP4 10.0.0.9",
    "a=sendonly",
    "a=inactive",
    "a=recvonly",
    "m=audio 0 RTP/AVP 0",
    "m=audio 4000 RTP/AVP 0 8 101",
    "m=audio 4000/65535 RTP/AVP 127",
    "m=video 5000 RTP/AVP 96",
    "m=image 6000 udptl t38",
    "c=IN IP4 0.0.0.0",
    "c=IN IP6 ::",
    "c=IN IP4 224.2.1.1/127/3",
    "b=AS:4294967296",
    "b=TIAS:18446744073709551616",
    "t=0 18446744073709551615",
    "r=604800 3600 0 90000",
    "z=2882844526 -1h 2898848070 0",
    "k=clear:x",
    "v=0",
];

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// Byte ranges of the lines of `bytes` (line end included).
fn lines(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push((start, bytes.len()));
    }
    out
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const ALPHABET: &[u8] = b"=\r\n :/-+0123456789amvostcrbkz*IP4RTPAVP\xff\x00\t";
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len);
        match rng.below(11) {
            0 if len > 0 => bytes.truncate(at),
            1 if len > 0 => bytes[at] = *rng.pick(ALPHABET),
            2 if len > 0 => {
                bytes.remove(at);
            }
            3 => bytes.insert(at.min(len), *rng.pick(ALPHABET)),
            4 | 5 => {
                // A number replaced by an edge value.
                let digits: Vec<usize> = (0..len).filter(|&i| is_digit(bytes[i])).collect();
                if digits.is_empty() {
                    continue;
                }
                let start = *rng.pick(&digits);
                let start = (0..=start)
                    .rev()
                    .take_while(|&i| is_digit(bytes[i]))
                    .last()
                    .unwrap_or(start);
                let end = (start..len).find(|&i| !is_digit(bytes[i])).unwrap_or(len);
                let with = rng.pick(NUMBERS).as_bytes();
                bytes.splice(start..end, with.iter().copied());
            }
            6 => {
                // A line repeated, sometimes past a cap.
                let ls = lines(bytes);
                if ls.is_empty() {
                    continue;
                }
                let (s, e) = *rng.pick(&ls);
                let line = bytes[s..e].to_vec();
                let times = *rng.pick(&[1, 2, 3, 64, 130, 1100]);
                let copies: Vec<u8> = line
                    .iter()
                    .copied()
                    .cycle()
                    .take(line.len() * times)
                    .collect();
                bytes.splice(e..e, copies);
            }
            7 => {
                // A line dropped.
                let ls = lines(bytes);
                if ls.is_empty() {
                    continue;
                }
                let (s, e) = *rng.pick(&ls);
                bytes.drain(s..e);
            }
            8 => {
                // A hostile line spliced in at a line start.
                let ls = lines(bytes);
                let to = ls.get(rng.below(ls.len() + 1)).map_or(len, |l| l.0);
                let mut line = rng.pick(LINES).as_bytes().to_vec();
                line.extend_from_slice(b"\r\n");
                bytes.splice(to..to, line);
            }
            9 => {
                // A token replaced by a long one.
                let spaces: Vec<usize> = (0..len).filter(|&i| bytes[i] == b' ').collect();
                if spaces.is_empty() {
                    continue;
                }
                let s = *rng.pick(&spaces) + 1;
                let e = (s..len)
                    .find(|&i| matches!(bytes[i], b' ' | b'\r' | b'\n'))
                    .unwrap_or(len);
                let n = *rng.pick(&[300, 5_000, 40_000]);
                let filler = if rng.below(2) == 0 { b'9' } else { b'A' };
                bytes.splice(s..e, std::iter::repeat_n(filler, n));
            }
            _ if len > 0 => {
                // A slice duplicated elsewhere.
                let end = (at + rng.below(60)).min(len);
                let piece = bytes[at..end].to_vec();
                let to = rng.below(len);
                bytes.splice(to..to, piece);
            }
            _ => {}
        }
    }
    bytes.truncate(MAX_BODY);
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Runs `exercise`, and on a panic says which input it was before failing.
fn exercise_or_report(data: &[u8], what: &dyn Fn() -> String) -> Outcome {
    match std::panic::catch_unwind(|| exercise(data)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sdp_fuzz_failure.sdp");
            let saved = std::fs::write(&path, data).map_or_else(
                |e| format!("not saved: {e}"),
                |()| format!("saved as {}", path.display()),
            );
            let text = String::from_utf8_lossy(data);
            let head: String = text.chars().take(1500).collect();
            eprintln!(
                "{}: this input ({} bytes, {saved}) panicked:\n{head:?}{}",
                what(),
                data.len(),
                if head.len() < text.len() { " …" } else { "" }
            );
            std::panic::resume_unwind(panic)
        }
    }
}

// ---- the tests --------------------------------------------------------------------------------

#[test]
fn seeds_get_the_answer_they_should() {
    let too_many = |kind: SdpErrorKind| Outcome::Unreadable(std::mem::discriminant(&kind));
    for (name, data) in seeds() {
        let outcome = exercise_or_report(&data, &|| format!("seed {name}"));
        let want = match name.as_str() {
            "hostile_65_m_lines" => too_many(SdpErrorKind::TooManyMedia),
            "hostile_129_formats" => too_many(SdpErrorKind::TooManyFormats),
            "hostile_1025_attributes" => too_many(SdpErrorKind::TooManyAttributes),
            // Only formats no codec can be made of (clock rate 0 or 2³²-1, 65535 channels).
            "hostile_clock_rate_zero" => Outcome::Refused,
            // Secure RTP, which this stack does not answer yet.
            "webrtc_like" => Outcome::Refused,
            _ => Outcome::Answered,
        };
        assert_eq!(outcome, want, "seed {name}");
    }
}

#[test]
fn mutated_offers_never_panic() {
    let cases = env_u64("PARROT_FUZZ_CASES", 20_000);
    let seed = env_u64("PARROT_FUZZ_SEED", 0x5D9_F00D_CAFE_0013);
    let seeds = seeds();
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();
    let (mut unreadable, mut refused, mut answered) = (0u64, 0u64, 0u64);
    let mut slowest = (Duration::ZERO, 0);
    for case in 0..cases {
        let (_, seed_bytes) = rng.pick(&seeds);
        let mut bytes = seed_bytes.clone();
        mutate(&mut rng, &mut bytes);
        let t = Instant::now();
        let what = || format!("PARROT_FUZZ_SEED={seed:#x}, case {case}");
        match exercise_or_report(&bytes, &what) {
            Outcome::Unreadable(_) => unreadable += 1,
            Outcome::Refused => refused += 1,
            Outcome::Answered => answered += 1,
        }
        slowest = slowest.max((t.elapsed(), case));
    }
    eprintln!(
        "{cases} mutants in {:.2?}: {unreadable} unreadable (488), {refused} refused (488), \
         {answered} answered; slowest case {} took {:.2?}",
        started.elapsed(),
        slowest.1,
        slowest.0
    );
    // A loop that only exercises the parser's error paths tests little.
    if cases >= 1000 {
        assert!(answered * 10 > cases, "only {answered} of {cases} answered");
        assert!(
            unreadable * 10 > cases,
            "only {unreadable} of {cases} refused by the parser"
        );
    }
    // Quadratic work (formats × attributes) cost 0.6 s per 64 KiB offer in a debug build
    // before the counts were capped; a capped one costs milliseconds.
    assert!(
        slowest.0 < Duration::from_secs(2),
        "case {} took {:?}",
        slowest.1,
        slowest.0
    );
}
