//! Calls with audio between Parrot and real peers, on loopback:
//!
//! - baresip (a softphone, run headless: a WAV file as microphone, WAV dumps
//!   of what it sends and receives) calls Parrot's UAS; each side must hear
//!   the other's tone; once with G.711 and once with G.722 only, where both
//!   tones are above 4 kHz (which 8 kHz sampling cannot carry) and must arrive
//!   in 16 kHz audio on both sides;
//! - sipp's built-in `uac` with `-rtp_echo` calls Parrot's UAS, which plays a
//!   tone and must hear it come back.
//!
//! Recordings are checked by frequency (Goertzel) and length. Both peers are
//! installed by `cargo xtask test`; without them the tests fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, MediaHandler, PlaySource};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, EndReason, Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::{
    BaresipConfig, TempDir, baresip, free_addr, free_port, heard, loopback_any, sipp,
};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Parrot's tone (Hz) and how long it plays it (s).
const PARROT_TONE: f64 = 1000.0;
const PARROT_SECS: f64 = 2.0;
/// The caller's tone in the baresip test (Hz) and the length of its WAV (s):
/// baresip hangs up when its `aufile` source reaches the end.
const CALLER_TONE: f64 = 440.0;
const CALLER_SECS: f64 = 3.0;

/// What the server saw, in order, shared with the test.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn has(&self, prefix: &str) -> bool {
        self.events().iter().any(|e| e.starts_with(prefix))
    }
    /// Waits up to `within` for an event starting with `prefix`.
    async fn wait_for(&self, prefix: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.has(prefix) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.has(prefix)
    }
}

/// Records what comes in to `record`, plays a tone.
struct ToneAndRecord {
    freq: f64,
    seconds: f64,
    record: PathBuf,
    log: Log,
}

impl MediaHandler for ToneAndRecord {
    fn stream_started(&mut self) -> Action {
        self.log.push("media started");
        Action::Record(self.record.clone()).also(Action::tone(self.freq, self.seconds))
    }
    fn play_complete(&mut self, _played: &PlaySource) -> Action {
        self.log.push("tone played");
        Action::Nothing
    }
    fn session_stopped(&mut self) {
        self.log.push("media stopped");
    }
}

/// A media handler that does nothing.
struct Silent;
impl MediaHandler for Silent {}

/// The UAS: answers every INVITE with [`ToneAndRecord`] (to `early`: plays it
/// as early media for 2.5 s, then answers).
struct Uas {
    record: PathBuf,
    log: Log,
}

impl SipHandler for Uas {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        self.log.push(format!(
            "INVITE from {} with {} bytes of SDP",
            call.source(),
            call.body().len()
        ));
        let media = ToneAndRecord {
            freq: PARROT_TONE,
            seconds: PARROT_SECS,
            record: self.record.clone(),
            log: self.log.clone(),
        };
        if call.to_user() == Some("early") {
            // The tone plays in the early media, before the answer.
            if let Err(reply) = call.early_media(media).await {
                return reply;
            }
            self.log.push("183 sent");
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let reply = call.answer(Silent).await;
            self.log.push(format!("answered {}", reply.status()));
            return reply;
        }
        let reply = call.answer(media).await;
        self.log.push(format!("answered {}", reply.status()));
        reply
    }
    async fn ack(&mut self, _call: &Incoming) {
        self.log.push("ACK");
    }
    async fn ended(&mut self, reason: EndReason) {
        self.log.push(format!("ended {reason:?}"));
    }
}

async fn uas(record: &Path, log: &Log) -> Endpoint {
    let (record, log) = (record.to_path_buf(), log.clone());
    Endpoint::builder()
        .udp(loopback_any())
        .handler(move || Uas {
            record: record.clone(),
            log: log.clone(),
        })
        .build()
        .await
        .unwrap()
}

/// The file in `dir` whose name ends with `suffix`.
fn find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_parrot_and_both_hear_each_other() {
    let tmp = TempDir::new("baresip");
    let recording = tmp.join("parrot-heard.wav");
    let caller_wav = tmp.join("caller.wav");
    parrot_tests::write_tone(&caller_wav, CALLER_TONE, CALLER_SECS, 0.0);
    let log = Log::default();
    let server = uas(&recording, &log).await;
    let addr = server.local_addr(TransportKind::Udp).unwrap();

    let config = BaresipConfig {
        sip_port: free_port(),
        source_wav: caller_wav,
        dump_dir: tmp.join("dump"),
    };
    let conf_dir = tmp.join("conf");
    config.write(&conf_dir);
    let dial = format!("/dial sip:service@{addr}");
    // The call lasts as long as the caller's WAV (baresip hangs up at its
    // end); `-t` makes baresip quit after it, the limit kills it if it hangs.
    let run = baresip(
        &conf_dir,
        &[&dial],
        Duration::from_secs(7),
        Duration::from_secs(20),
    )
    .await;
    let out = &run.output;
    assert!(
        out.contains("Call established"),
        "baresip did not establish the call (exit {:?}); server saw {:?}\n{out}",
        run.code,
        log.events()
    );
    assert!(
        log.wait_for("media stopped", Duration::from_secs(3)).await,
        "the media session did not end: {:?}\n{out}",
        log.events()
    );
    let events = log.events();
    eprintln!("server saw: {events:?}");
    assert!(log.has("answered 200"), "{events:?}");
    assert!(
        log.has("ACK"),
        "baresip's ACK reached the handler: {events:?}"
    );
    assert!(
        log.has("ended PeerHangup"),
        "baresip hung up with BYE when its WAV ended: {events:?}"
    );
    let stats = server.stats();
    assert_eq!(stats.panics, 0, "{stats:?}");

    let (secs, ok) = heard(&recording, CALLER_TONE);
    eprintln!("Parrot heard {secs:.2} s of audio from baresip; {CALLER_TONE} Hz: {ok}");
    assert!(
        ok && (CALLER_SECS - 0.6..CALLER_SECS + 0.2).contains(&secs),
        "Parrot recorded {secs:.2} s from baresip, {CALLER_TONE} Hz: {ok}"
    );

    let dump = find(&config.dump_dir, "-dec.wav")
        .unwrap_or_else(|| panic!("no sndfile dump of what baresip received\n{out}"));
    let (secs, ok) = heard(&dump, PARROT_TONE);
    eprintln!("baresip heard {secs:.2} s of audio from Parrot; {PARROT_TONE} Hz: {ok}");
    assert!(
        ok && (PARROT_SECS - 0.2..PARROT_SECS + 0.2).contains(&secs),
        "baresip received {secs:.2} s from Parrot, {PARROT_TONE} Hz: {ok}"
    );
    // The rig itself: baresip sent the caller's tone (the dump is of the encoder's input).
    let enc = find(&config.dump_dir, "-enc.wav")
        .unwrap_or_else(|| panic!("no sndfile dump of what baresip sent\n{out}"));
    let (secs, ok) = heard(&enc, CALLER_TONE);
    eprintln!("baresip sent {secs:.2} s; {CALLER_TONE} Hz: {ok}");
    assert!(
        ok && secs > CALLER_SECS - 0.2,
        "baresip sent {secs:.2} s, {CALLER_TONE} Hz: {ok}"
    );
    server.shutdown(Duration::from_millis(300)).await;
}

/// The wideband call: baresip offers only G.722 (its `g722.so`, on spandsp)
/// and sends a 6 kHz tone from a 16 kHz WAV; Parrot answers, plays 5 kHz and
/// records. Parrot's recording is at 16 kHz and holds the 6 kHz tone; the
/// dump of what baresip decoded holds Parrot's 5 kHz. G.711 (8 kHz sampling)
/// can carry neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_parrot_in_g722_and_both_hear_above_4_khz() {
    const CALLER_HZ: f64 = 6000.0;
    const PARROT_HZ: f64 = 5000.0;
    let tmp = TempDir::new("baresip-g722");
    let recording = tmp.join("parrot-heard.wav");
    let caller_wav = tmp.join("caller-16k.wav");
    parrot_tests::write_tone_at(&caller_wav, CALLER_HZ, CALLER_SECS, 0.0, 16_000);
    let log = Log::default();
    let (record, l) = (recording.clone(), log.clone());
    let server = Endpoint::builder()
        .udp(loopback_any())
        .handler(move || WidebandUas {
            record: record.clone(),
            log: l.clone(),
        })
        .build()
        .await
        .unwrap();
    let addr = server.local_addr(TransportKind::Udp).unwrap();
    let config = BaresipConfig {
        sip_port: free_port(),
        source_wav: caller_wav,
        dump_dir: tmp.join("dump"),
    };
    let conf_dir = tmp.join("conf");
    config.write_g722(&conf_dir);
    let dial = format!("/dial sip:service@{addr}");
    let run = baresip(
        &conf_dir,
        &[&dial],
        Duration::from_secs(7),
        Duration::from_secs(20),
    )
    .await;
    let out = &run.output;
    assert!(
        out.contains("Call established"),
        "baresip did not establish the call (exit {:?}); server saw {:?}\n{out}",
        run.code,
        log.events()
    );
    assert!(
        log.wait_for("media stopped", Duration::from_secs(3)).await,
        "the media session did not end: {:?}\n{out}",
        log.events()
    );
    let events = log.events();
    eprintln!("server saw: {events:?}");
    assert!(
        log.has("offered G722/8000"),
        "baresip offered G.722: {events:?}"
    );
    assert!(log.has("answered 200"), "{events:?}");

    let (rate, secs, ok) = heard_at_its_rate(&recording, CALLER_HZ);
    eprintln!("Parrot recorded {secs:.2} s at {rate} Hz from baresip; {CALLER_HZ} Hz: {ok}");
    assert_eq!(rate, 16_000, "Parrot recorded at the call's rate");
    assert!(
        ok && (CALLER_SECS - 0.6..CALLER_SECS + 0.2).contains(&secs),
        "Parrot recorded {secs:.2} s from baresip, {CALLER_HZ} Hz: {ok}"
    );
    let dump = find(&config.dump_dir, "-dec.wav")
        .unwrap_or_else(|| panic!("no sndfile dump of what baresip received\n{out}"));
    let (rate, secs, ok) = heard_at_its_rate(&dump, PARROT_HZ);
    eprintln!("baresip decoded {secs:.2} s at {rate} Hz from Parrot; {PARROT_HZ} Hz: {ok}");
    assert_eq!(rate, 16_000, "baresip decoded G.722 at 16 kHz");
    assert!(
        ok && (PARROT_SECS - 0.2..PARROT_SECS + 0.2).contains(&secs),
        "baresip received {secs:.2} s from Parrot, {PARROT_HZ} Hz: {ok}"
    );
    let stats = server.stats();
    assert_eq!(stats.panics, 0, "{stats:?}");
    server.shutdown(Duration::from_millis(300)).await;
}

/// The wideband test's server: notes the codecs offered, answers with a
/// 5 kHz tone and a recording.
struct WidebandUas {
    record: PathBuf,
    log: Log,
}

impl SipHandler for WidebandUas {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let offer = String::from_utf8_lossy(call.body()).into_owned();
        for line in offer.lines().filter(|l| l.starts_with("a=rtpmap:")) {
            if let Some((_, codec)) = line.split_once(' ') {
                self.log.push(format!("offered {codec}"));
            }
        }
        let media = ToneAndRecord {
            freq: 5000.0,
            seconds: PARROT_SECS,
            record: self.record.clone(),
            log: self.log.clone(),
        };
        let reply = call.answer(media).await;
        self.log.push(format!("answered {}", reply.status()));
        reply
    }
    async fn ended(&mut self, reason: EndReason) {
        self.log.push(format!("ended {reason:?}"));
    }
}

/// What a WAV file holds at its own rate: the rate, how long its sound lasts (|s| > 1000)
/// and whether `freq` carries most of it. Unlike `parrot_tests::heard` nothing is resampled, so a tone
/// above 4 kHz in a 16 kHz file is seen.
pub fn heard_at_its_rate(path: &Path, freq: f64) -> (u32, f64, bool) {
    let reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let all: Vec<i16> = reader
        .into_samples::<i16>()
        .map(|s| s.unwrap_or(0))
        .step_by(channels)
        .collect();
    let start = all
        .iter()
        .position(|&s| s.unsigned_abs() > 1000)
        .unwrap_or(0);
    let end = all
        .iter()
        .rposition(|&s| s.unsigned_abs() > 1000)
        .unwrap_or(0);
    let tone = &all[start..end.max(start)];
    let rate = spec.sample_rate;
    (
        rate,
        tone.len() as f64 / f64::from(rate.max(1)),
        parrot_core::media::tone_present(tone, freq, rate, 0.8),
    )
}

/// A free loopback UDP port `p` with `p + 2` free too (sipp's `-rtp_echo`
/// binds both).
fn free_media_port() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if p < u16::MAX - 2 && UdpSocket::bind(("127.0.0.1", p + 2)).is_ok() {
            return p;
        }
    }
    panic!("no free pair of media ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_echoes_parrots_tone_back() {
    // The built-in uac offers PCMU on -mp; the call lasts -d ms after the ACK.
    sipp_echo_call(&["-sn", "uac", "-d", "3000"]).await;
}

/// A late offer: sipp's INVITE has no SDP, Parrot's 200 carries the offer
/// and sipp's ACK the answer (RFC 3261 §13.2.1); the audio is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_offer_is_answered_in_the_ack() {
    let sf = parrot_tests::scenarios().join("late_offer.xml");
    sipp_echo_call(&["-sf", &sf.to_string_lossy()]).await;
}

/// A re-INVITE without an offer: Parrot's 200 offers, sipp's ACK answers
/// (RFC 3261 §14.2); the audio goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offerless_reinvite_gets_our_offer_and_the_ack_answers_it() {
    let sf = parrot_tests::scenarios().join("reinvite_late_offer.xml");
    sipp_echo_call(&["-sf", &sf.to_string_lossy()]).await;
}

/// An UPDATE with an offer (RFC 3311) in a call: answered in its 200 like a
/// re-INVITE's (here a hold: sendonly gets recvonly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_an_offer_is_answered() {
    let sf = parrot_tests::scenarios().join("update_offer.xml");
    sipp_call(&["-sf", &sf.to_string_lossy()]).await;
}

/// Reliable early media (RFC 3262): sipp's INVITE requires 100rel, so
/// Parrot's 183 with the answer carries Require: 100rel and an RSeq, and its
/// 200 waits for sipp's PRACK (with the right RAck, which sipp sends after
/// checking both headers); the tone plays before the answer as without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_requires_100rel_gets_a_reliable_183() {
    let sf = parrot_tests::scenarios().join("uac_prack.xml");
    let log = sipp_echo_call_to("early", &["-sf", &sf.to_string_lossy()]).await;
    let events = log.events();
    let at = |e: &str| events.iter().position(|x| x.starts_with(e));
    assert!(
        at("tone played") < at("answered 200"),
        "the tone played before the answer: {events:?}"
    );
}

/// Early media from the side that answers: Parrot's handler sends a 183
/// with its SDP answer and plays its tone there (sipp echoes it back) for
/// 2.5 s before its 200, which repeats the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_early_media_plays_before_the_answer() {
    let sf = parrot_tests::scenarios().join("uac_early_media.xml");
    let log = sipp_echo_call_to("early", &["-sf", &sf.to_string_lossy()]).await;
    let events = log.events();
    let at = |e: &str| events.iter().position(|x| x.starts_with(e));
    assert!(
        at("media started") < at("answered 200") && at("tone played") < at("answered 200"),
        "the tone played before the answer: {events:?}"
    );
}

/// sipp (`scenario`: the arguments choosing its scenario) calls Parrot's UAS
/// and echoes its audio back (`-rtp_echo`): Parrot's recording holds its own
/// tone.
async fn sipp_echo_call(scenario: &[&str]) {
    sipp_echo_call_to("service", scenario).await;
}

/// [`sipp_echo_call`] without the echo checks, for a scenario that holds the
/// audio (what comes back is then cut short): what the server saw.
async fn sipp_call(scenario: &[&str]) -> Log {
    sipp_call_to("service", scenario, false).await
}

/// [`sipp_echo_call`] to `user`; what the server saw.
async fn sipp_echo_call_to(user: &str, scenario: &[&str]) -> Log {
    sipp_call_to(user, scenario, true).await
}

/// sipp calls `user` at Parrot's UAS with `scenario`; with `echo`, Parrot
/// must hear its whole tone back.
async fn sipp_call_to(user: &str, scenario: &[&str], echo: bool) -> Log {
    let tmp = TempDir::new("sipp-echo");
    let recording = tmp.join("parrot-heard.wav");
    let log = Log::default();
    let server = uas(&recording, &log).await;
    let addr = server.local_addr(TransportKind::Udp).unwrap();

    let target = addr.to_string();
    let port = free_port().to_string();
    let media_port = free_media_port().to_string();
    let mut args = scenario.to_vec();
    args.extend([
        target.as_str(),
        "-s",
        user,
        "-i",
        "127.0.0.1",
        "-p",
        port.as_str(),
        "-mi",
        "127.0.0.1",
        "-mp",
        media_port.as_str(),
        "-rtp_echo",
        "-m",
        "1",
        "-timeout",
        "20s",
    ]);
    let run = sipp(&args, Duration::from_secs(30)).await;
    eprintln!(
        "sipp: exit {:?}, successful {:?}, failed {:?}, retransmissions {:?}",
        run.code,
        run.stat("SuccessfulCall(C)"),
        run.stat("FailedCall(C)"),
        run.stat("Retransmissions(C)")
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(1), "{}", run.output);
    assert_eq!(run.stat("FailedCall(C)"), Some(0), "{}", run.output);
    assert!(
        log.wait_for("media stopped", Duration::from_secs(3)).await,
        "the media session did not end: {:?}",
        log.events()
    );
    let events = log.events();
    eprintln!("server saw: {events:?}");
    assert!(log.has("ACK"), "{events:?}");
    assert!(log.has("ended PeerHangup"), "{events:?}");
    if !echo {
        server.shutdown(Duration::from_millis(300)).await;
        return log;
    }
    assert!(log.has("tone played"), "{events:?}");
    let (secs, ok) = heard(&recording, PARROT_TONE);
    eprintln!("Parrot heard {secs:.2} s of its own tone back; {PARROT_TONE} Hz: {ok}");
    assert!(
        ok && (PARROT_SECS - 0.2..PARROT_SECS + 0.2).contains(&secs),
        "Parrot recorded {secs:.2} s echoed by sipp, {PARROT_TONE} Hz: {ok}"
    );
    server.shutdown(Duration::from_millis(300)).await;
    log
}

/// Plays a looping tone and counts nothing: the call's stats tell.
struct Hum;

impl MediaHandler for Hum {
    fn stream_started(&mut self) -> Action {
        Action::Play(parrot_core::media::Play {
            source: parrot_core::media::PlaySource::Tone(PARROT_TONE, 30.0),
            looped: true,
            volume: 1.0,
        })
    }
}

/// Early media on a call we place: sipp answers our offer in a 183 and
/// echoes our audio for 2 s before its 200; the audio starts at the 183
/// (RFC 3960's gateway model), not at the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_183_with_sdp_starts_the_audio_before_the_answer() {
    let call = call_sipp_uas("uas_early_media.xml").await;
    assert!(call.media_before_answer, "the audio started with the 183");
    // The stats published during the early audio: sipp echoed it back.
    let early = call.at_answer.expect("stats from the early audio");
    eprintln!("at the 200: {early:?}");
    assert!(
        early.packets_received > 25,
        "early audio heard before the 200: {early:?}"
    );
}

/// A reliable provisional (RFC 3262) on a call we place: sipp's 180 requires
/// 100rel and is retransmitted until our PRACK, whose RAck it checks; one
/// PRACK only (sipp fails on a second), then the call is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reliable_180_gets_one_prack() {
    let call = call_sipp_uas("uas_prack.xml").await;
    let rseq: Vec<String> = call
        .provisionals
        .iter()
        .filter_map(|r| r.headers().get(&"RSeq".into()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(rseq, ["1"], "the 180 reached the handle once");
}

/// What a call to a sipp UAS showed.
struct SippUasCall {
    media_before_answer: bool,
    /// The media stats published by the answer (only early audio has any).
    at_answer: Option<parrot_core::media::MediaStats>,
    provisionals: Vec<parrot_core::message::Response>,
}

/// Parrot calls sipp playing `scenario` (a UAS echoing our audio), with a
/// looping tone; hangs up 0.5 s after the answer, and sipp must succeed.
async fn call_sipp_uas(scenario: &str) -> SippUasCall {
    let sipp_addr = free_addr();
    let media_port = free_media_port().to_string();
    let sf = parrot_tests::scenarios().join(scenario);
    let args: Vec<String> = [
        "-sf",
        &sf.to_string_lossy(),
        "-i",
        "127.0.0.1",
        "-p",
        &sipp_addr.port().to_string(),
        "-mi",
        "127.0.0.1",
        "-mp",
        &media_port,
        "-rtp_echo",
        "-m",
        "1",
        "-timeout",
        "20s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sipp_run = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sipp(&args, Duration::from_secs(30)).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ep = Endpoint::builder()
        .udp(loopback_any())
        .build()
        .await
        .unwrap();
    let mut call = ep
        .dial(&format!("sip:service@{sipp_addr}"))
        .unwrap()
        .media(Hum)
        .send()
        .await
        .unwrap();
    let mut media_before_answer = false;
    let mut provisionals = Vec::new();
    let answered = loop {
        match tokio::time::timeout(Duration::from_secs(10), call.next_event()).await {
            Ok(Some(CallEvent::MediaStarted { .. })) => media_before_answer = true,
            Ok(Some(CallEvent::Provisional(r))) => provisionals.push(r),
            Ok(Some(CallEvent::Answered(r))) => break r,
            Ok(Some(_)) => {}
            other => panic!("not answered: {other:?}"),
        }
    };
    assert!(answered.status().is_success());
    let at_answer = call.media_stats();
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.hangup().await.unwrap();
    let run = sipp_run.await.unwrap();
    assert_eq!(run.code, Some(0), "{}", run.output);
    ep.shutdown(Duration::from_secs(1)).await;
    SippUasCall {
        media_before_answer,
        at_answer,
        provisionals,
    }
}
