//! linphone (Debian's `linphone-cli`, the `linphonec` console client of
//! liblinphone 5.1) as a real peer for calls, hold, transfer and reliable
//! provisionals (RFC 3262), on loopback. linphone runs headless
//! (`parrot_tests::linphone`): it plays a WAV file into its calls and
//! records what it hears into another, takes its commands on standard
//! input, and logs every SIP message it sends and receives, which the tests
//! read back to see what went over the wire.
//!
//! Each test checks what really happened: audio by frequency (Parrot plays
//! 1000 Hz, linphone 440 Hz), media by Parrot's counts, SIP by what Parrot's
//! handles and handlers saw and by linphone's own log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, AudioSink, LiveSink, MediaHandler, Play, PlaySource};
use parrot_core::message::StatusCode;
use parrot_core::transport::TransportKind;
use parrot_core::ua::{
    CallEvent, CallHandle, EndReason, Endpoint, Incoming, OutgoingCall, Reply, SipHandler, UaError,
};
use parrot_tests::linphone::{Linphone, LinphoneOptions, Rel100, SipSeen};
use parrot_tests::{TempDir, free_addr, heard, heard_mostly, write_tone};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Parrot's tone (Hz).
const PARROT_TONE: f64 = 1000.0;
/// linphone's tone (Hz).
const LINPHONE_TONE: f64 = 440.0;

/// What a server saw, in order, shared with the test.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn position(&self, prefix: &str) -> Option<usize> {
        self.events().iter().position(|e| e.starts_with(prefix))
    }
    async fn wait_for(&self, prefix: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.position(prefix).is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The frames Parrot received, each with when it arrived and whether it was
/// loud (a peak above 1000: linphone's tone, not silence or the fading
/// concealment after the last packet).
#[derive(Clone, Default)]
struct Frames(Arc<Mutex<Vec<(Instant, bool)>>>);

impl Frames {
    fn loud_between(&self, from: Instant, to: Instant) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, loud)| *loud && *at >= from && *at < to)
            .count()
    }
    /// Loud frames in the next `span`.
    async fn loud_over(&self, span: Duration) -> usize {
        let from = Instant::now();
        tokio::time::sleep(span).await;
        self.loud_between(from, Instant::now())
    }
}

impl AudioSink for Frames {
    fn write(&mut self, samples: &[i16]) {
        let loud = samples.iter().any(|s| s.unsigned_abs() > 1000);
        self.0.lock().unwrap().push((Instant::now(), loud));
    }
}

/// Plays Parrot's tone for `seconds` (looped for the whole call when
/// `looped`), records what it hears to `record`, and notes each frame it
/// hears in `frames`.
struct ToneEar {
    seconds: f64,
    looped: bool,
    record: Option<PathBuf>,
    frames: Frames,
    log: Log,
}

impl ToneEar {
    fn new(log: &Log) -> ToneEar {
        ToneEar {
            seconds: 2.0,
            looped: false,
            record: None,
            frames: Frames::default(),
            log: log.clone(),
        }
    }
}

impl MediaHandler for ToneEar {
    fn stream_started(&mut self) -> Action {
        self.log.push("media started");
        let tone = Action::Play(Play {
            source: PlaySource::Tone(PARROT_TONE, self.seconds),
            looped: self.looped,
            volume: 1.0,
        });
        let listen = Action::Listen(LiveSink::new(self.frames.clone()));
        match &self.record {
            Some(path) => tone.also(listen).also(Action::Record(path.clone())),
            None => tone.also(listen),
        }
    }
    fn play_complete(&mut self, _played: &PlaySource) -> Action {
        self.log.push("tone played");
        Action::Nothing
    }
    fn session_stopped(&mut self) {
        self.log.push("media stopped");
    }
}

/// What the test needs of a server's calls.
#[derive(Clone)]
struct Shared {
    log: Log,
    record: Option<PathBuf>,
    frames: Frames,
    handles: mpsc::UnboundedSender<CallHandle>,
    /// Where a transfer goes (the IVR's agent), and its outcome.
    transfer_to: Option<String>,
    outcome: mpsc::UnboundedSender<Result<StatusCode, UaError>>,
}

/// Parrot's server. By the called user: `service` answers with a 2 s tone
/// and records; `hold` answers with a looping tone and hands the call's
/// handle to the test; `ivr` answers, then transfers the caller (REFER)
/// after 1.5 s and hangs up once it worked; `early` plays its tone as early
/// media (a 183 with SDP: reliable when the caller supports 100rel) for
/// 2.5 s, then answers.
struct Server(Shared);

impl SipHandler for Server {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let s = &self.0;
        s.log.push(format!(
            "INVITE to {} (Supported: {})",
            call.to_user().unwrap_or_default(),
            call.header("Supported").unwrap_or_default()
        ));
        let mut media = ToneEar::new(&s.log);
        media.record = s.record.clone();
        media.frames = s.frames.clone();
        let handle = call.handle().cloned().expect("an INVITE has a handle");
        match call.to_user() {
            Some("hold") => {
                media.looped = true;
                let _ = s.handles.send(handle);
            }
            Some("ivr") => {
                let (agent, outcome) = (s.transfer_to.clone().unwrap(), s.outcome.clone());
                let log = s.log.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    log.push("transferring");
                    let r = handle.transfer(&agent).await;
                    log.push(format!("transfer: {r:?}"));
                    if r.is_ok() {
                        let _ = handle.hangup().await;
                    }
                    let _ = outcome.send(r);
                });
            }
            Some("early") => {
                if let Err(reply) = call.early_media(media).await {
                    return reply;
                }
                s.log.push("183 sent");
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let reply = call.answer(ToneEar::new(&s.log)).await;
                s.log.push(format!("answered {}", reply.status()));
                return reply;
            }
            _ => {}
        }
        let reply = call.answer(media).await;
        s.log.push(format!("answered {}", reply.status()));
        reply
    }
    async fn ack(&mut self, _call: &Incoming) {
        self.0.log.push("ACK");
    }
    async fn ended(&mut self, reason: EndReason) {
        self.0.log.push(format!("ended {reason:?}"));
    }
}

/// A server endpoint on a free loopback port, and the test's ends of it.
struct Rig {
    server: Endpoint,
    addr: SocketAddr,
    log: Log,
    frames: Frames,
    handles: mpsc::UnboundedReceiver<CallHandle>,
    outcome: mpsc::UnboundedReceiver<Result<StatusCode, UaError>>,
}

async fn rig(record: Option<PathBuf>, transfer_to: Option<String>) -> Rig {
    let (handles_tx, handles) = mpsc::unbounded_channel();
    let (outcome_tx, outcome) = mpsc::unbounded_channel();
    let shared = Shared {
        log: Log::default(),
        record,
        frames: Frames::default(),
        handles: handles_tx,
        transfer_to,
        outcome: outcome_tx,
    };
    let (log, frames) = (shared.log.clone(), shared.frames.clone());
    let server = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Server(shared.clone()))
        .build()
        .await
        .unwrap();
    let addr = server.local_addr(TransportKind::Udp).unwrap();
    Rig {
        server,
        addr,
        log,
        frames,
        handles,
        outcome,
    }
}

/// A WAV of linphone's tone: `seconds` of 440 Hz, then as long again of
/// silence (so that a file player that loops would be heard doing it).
fn linphone_tone(tmp: &TempDir, seconds: f64) -> PathBuf {
    let path = tmp.join("linphone-sends.wav");
    write_tone(&path, LINPHONE_TONE, seconds, seconds);
    path
}

/// Waits until a WAV file is complete (its writer closed it) and longer
/// than `secs`.
async fn wait_for_wav(path: &Path, secs: f64) {
    for _ in 0..50 {
        if parrot_core::media::WavSource::open(path).is_ok_and(|w| w.duration() > secs) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `within` until linphone's log shows a SIP message for which
/// `pred` holds; returns it.
async fn wait_for_sip(
    lp: &Linphone,
    within: Duration,
    pred: impl Fn(&SipSeen) -> bool,
) -> Option<SipSeen> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(m) = lp.sip_messages().into_iter().find(|m| pred(m)) {
            return Some(m);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A one-line summary of the SIP linphone saw, for failure messages.
fn sip_summary(lp: &Linphone) -> String {
    lp.sip_messages()
        .iter()
        .map(|m| {
            format!(
                "{} {} [{}]",
                if m.sent { ">>" } else { "<<" },
                m.start_line(),
                m.header("CSeq").unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// linphone calls Parrot's server (`service`): Parrot answers with 2 s of
/// 1000 Hz and records; linphone plays 3 s of 440 Hz and records. Each hears
/// the other, for as long as the other played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_calls_parrot_and_both_hear_each_other() {
    let tmp = TempDir::new("linphone-call");
    let parrot_heard = tmp.join("parrot-heard.wav");
    let linphone_heard = tmp.join("linphone-heard.wav");
    let rig = rig(Some(parrot_heard.clone()), None).await;
    let mut lp = Linphone::start(LinphoneOptions {
        play: Some(linphone_tone(&tmp, 3.0)),
        record: Some(linphone_heard.clone()),
        ..LinphoneOptions::default()
    })
    .await;
    lp.command(&format!("call sip:service@{}", rig.addr)).await;
    assert!(
        lp.wait_for("Media streams established", Duration::from_secs(10))
            .await,
        "linphone's call did not start: {:?}\n{}",
        rig.log.events(),
        lp.output()
    );
    tokio::time::sleep(Duration::from_millis(4000)).await;
    lp.command("terminate").await;
    assert!(
        rig.log
            .wait_for("ended PeerHangup", Duration::from_secs(5))
            .await,
        "linphone's BYE: {:?}\n{}",
        rig.log.events(),
        lp.output()
    );
    assert!(
        rig.log
            .wait_for("media stopped", Duration::from_secs(3))
            .await
    );
    let events = rig.log.events();
    eprintln!("Parrot saw: {events:?}");
    assert!(rig.log.position("ACK").is_some(), "{events:?}");
    assert!(rig.log.position("tone played").is_some(), "{events:?}");

    wait_for_wav(&parrot_heard, 2.0).await;
    let (secs, ok) = heard(&parrot_heard, LINPHONE_TONE);
    eprintln!("Parrot heard {secs:.2} s from linphone; {LINPHONE_TONE} Hz: {ok}");
    assert!(
        ok && (2.6..3.3).contains(&secs),
        "Parrot heard {secs:.2} s of linphone's 3 s, {LINPHONE_TONE} Hz: {ok}"
    );
    lp.quit().await;
    wait_for_wav(&linphone_heard, 1.5).await;
    let (secs, ok) = heard(&linphone_heard, PARROT_TONE);
    eprintln!("linphone heard {secs:.2} s from Parrot; {PARROT_TONE} Hz: {ok}");
    assert!(
        ok && (1.7..2.3).contains(&secs),
        "linphone heard {secs:.2} s of Parrot's 2 s, {PARROT_TONE} Hz: {ok}"
    );
    assert_eq!(rig.server.stats().panics, 0);
    rig.server.shutdown(Duration::from_millis(300)).await;
}

/// Parrot puts linphone on hold (`CallHandle::hold`: a re-INVITE with
/// `a=sendonly`) and takes it off (`resume`): linphone answers `recvonly`
/// and stops sending, then sends again; Parrot's tone goes on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_holds_linphone_and_resumes() {
    let tmp = TempDir::new("linphone-held");
    let linphone_heard = tmp.join("linphone-heard.wav");
    let mut rig = rig(None, None).await;
    let mut lp = Linphone::start(LinphoneOptions {
        play: Some(linphone_tone(&tmp, 30.0)),
        record: Some(linphone_heard.clone()),
        ..LinphoneOptions::default()
    })
    .await;
    lp.command(&format!("call sip:hold@{}", rig.addr)).await;
    let handle = tokio::time::timeout(Duration::from_secs(10), rig.handles.recv())
        .await
        .expect("the call reaches Parrot")
        .unwrap();
    assert!(
        lp.wait_for("Media streams established", Duration::from_secs(10))
            .await,
        "{}",
        lp.output()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = rig.frames.loud_over(Duration::from_secs(2)).await;

    handle.hold().await.expect("linphone answers the hold");
    assert!(
        lp.wait_for("has been paused by", Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = rig.frames.loud_over(Duration::from_secs(2)).await;

    handle.resume().await.expect("linphone answers the resume");
    assert!(
        lp.wait_for_count("Media streams established", 2, Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resumed = rig.frames.loud_over(Duration::from_secs(2)).await;
    eprintln!(
        "frames of linphone's tone Parrot heard in 2 s: before {before}, held {held}, resumed {resumed}"
    );
    assert!(
        before > 60,
        "linphone sends before the hold: {before} frames"
    );
    assert!(held < 15, "held: linphone stops sending ({held} frames)");
    assert!(
        resumed > 60,
        "resumed: linphone sends again ({resumed} frames)"
    );

    // On the wire: our offers and linphone's answers.
    let msgs = lp.sip_messages();
    let offers: Vec<&SipSeen> = msgs
        .iter()
        .filter(|m| {
            !m.sent && m.is_request("INVITE") && m.header("To").is_some_and(|t| t.contains("tag="))
        })
        .collect();
    let answers: Vec<&SipSeen> = msgs
        .iter()
        .filter(|m| m.sent && m.is_response(200) && m.cseq_method() == Some("INVITE"))
        .collect();
    assert!(
        offers.len() == 2
            && offers[0].text.contains("a=sendonly")
            && offers[1].text.contains("a=sendrecv"),
        "Parrot's two re-INVITEs: sendonly then sendrecv\n{}",
        sip_summary(&lp)
    );
    assert!(
        answers.len() >= 2 && answers[answers.len() - 2].text.contains("a=recvonly"),
        "linphone answered the hold recvonly\n{}",
        sip_summary(&lp)
    );

    lp.command("terminate").await;
    assert!(
        rig.log
            .wait_for("ended PeerHangup", Duration::from_secs(5))
            .await,
        "{:?}",
        rig.log.events()
    );
    lp.quit().await;
    // Parrot kept sending while linphone was held: linphone heard its tone
    // before, during and after the hold.
    wait_for_wav(&linphone_heard, 4.0).await;
    let (secs, ok) = heard_mostly(&linphone_heard, PARROT_TONE);
    eprintln!("linphone heard {secs:.2} s of Parrot's tone; {PARROT_TONE} Hz: {ok}");
    assert!(
        ok && secs > 6.0,
        "linphone heard {secs:.2} s, {PARROT_TONE} Hz: {ok}"
    );
    rig.server.shutdown(Duration::from_millis(300)).await;
}

/// Plays Parrot's tone for as long as the call lasts.
struct Hum;

impl MediaHandler for Hum {
    fn stream_started(&mut self) -> Action {
        Action::Play(Play {
            source: PlaySource::Tone(PARROT_TONE, 60.0),
            looped: true,
            volume: 1.0,
        })
    }
}

/// Waits for a placed call's media counts (they come with MediaStarted).
async fn wait_for_media(call: &mut OutgoingCall) {
    while call.media_stats().is_none() {
        match tokio::time::timeout(Duration::from_secs(5), call.next_event()).await {
            Ok(Some(_)) => {}
            other => panic!("no media: {other:?}"),
        }
    }
}

/// The next `Held` or `Resumed` of a placed call, within 5 s.
async fn next_held_or_resumed(call: &mut OutgoingCall) -> Option<CallEvent> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(e @ (CallEvent::Held | CallEvent::Resumed)) => break Some(e),
                Some(_) => {}
                None => break None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// linphone pauses a call Parrot placed (`pause`: its re-INVITE offers
/// `a=sendonly`) and resumes it: Parrot's side of the call, answering
/// `recvonly`, hears `Held` and stops sending, then `Resumed` and sends
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_pauses_a_call_parrot_placed() {
    let tmp = TempDir::new("linphone-pauses");
    let mut lp = Linphone::start(LinphoneOptions {
        play: Some(linphone_tone(&tmp, 30.0)),
        auto_answer: true,
        ..LinphoneOptions::default()
    })
    .await;
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = client
        .dial(&lp.uri())
        .unwrap()
        .media(Hum)
        .send()
        .await
        .unwrap();
    call.answered().await.expect("linphone answers by itself");
    wait_for_media(&mut call).await;
    let counts = |call: &OutgoingCall| {
        let m = call.media_stats().unwrap();
        (m.packets_sent, m.packets_received)
    };
    // The counts are published every second: compare across 2.2 s.
    let settle = || tokio::time::sleep(Duration::from_millis(2200));
    settle().await;
    let (sent0, recv0) = counts(&call);

    lp.command("pause").await;
    assert!(
        lp.wait_for("is now paused", Duration::from_secs(5)).await,
        "{}",
        lp.output()
    );
    assert!(
        next_held_or_resumed(&mut call)
            .await
            .is_some_and(|e| matches!(e, CallEvent::Held)),
        "Parrot's call hears it is held"
    );
    settle().await;
    let (sent1, recv1) = counts(&call);
    settle().await;
    let (sent2, recv2) = counts(&call);

    lp.command("resume").await;
    assert!(
        lp.wait_for_count("Media streams established", 2, Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    assert!(
        next_held_or_resumed(&mut call)
            .await
            .is_some_and(|e| matches!(e, CallEvent::Resumed)),
        "Parrot's call hears it is resumed"
    );
    settle().await;
    let (sent3, recv3) = counts(&call);
    settle().await;
    let (sent4, recv4) = counts(&call);
    eprintln!(
        "Parrot's packets sent/received: before {sent0}/{recv0}; paused {sent1}/{recv1} → {sent2}/{recv2}; resumed {sent3}/{recv3} → {sent4}/{recv4}"
    );
    assert!(sent0 > 50 && recv0 > 50, "audio both ways before the pause");
    assert!(
        sent2 - sent1 < 10,
        "paused: Parrot stops sending ({sent1} then {sent2})"
    );
    assert!(
        sent4 - sent3 > 50,
        "resumed: Parrot sends again ({sent3} then {sent4})"
    );
    assert!(recv4 - recv3 > 50, "resumed: linphone sends again");

    let msgs = lp.sip_messages();
    let offer = msgs
        .iter()
        .find(|m| m.sent && m.is_request("INVITE"))
        .expect("linphone's re-INVITE");
    assert!(offer.text.contains("a=sendonly"), "{}", offer.text);
    let answer = msgs
        .iter()
        .find(|m| !m.sent && m.is_response(200) && m.cseq_method() == Some("INVITE"))
        .expect("Parrot's answer to it");
    assert!(answer.text.contains("a=recvonly"), "{}", answer.text);

    call.hangup().await.unwrap();
    assert!(
        lp.wait_for(" ended (", Duration::from_secs(5)).await,
        "{}",
        lp.output()
    );
    lp.quit().await;
    client.shutdown(Duration::from_secs(1)).await;
}

/// Parrot holds a call it placed to linphone (`OutgoingCall::hold`: a
/// re-INVITE with `a=sendonly`) and resumes it: linphone, answering
/// `recvonly`, stops sending while Parrot goes on, then sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_holds_a_call_it_placed_to_linphone() {
    let tmp = TempDir::new("linphone-held-out");
    let lp = Linphone::start(LinphoneOptions {
        play: Some(linphone_tone(&tmp, 30.0)),
        auto_answer: true,
        ..LinphoneOptions::default()
    })
    .await;
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = client
        .dial(&lp.uri())
        .unwrap()
        .media(Hum)
        .send()
        .await
        .unwrap();
    call.answered().await.expect("linphone answers by itself");
    wait_for_media(&mut call).await;
    let counts = |call: &OutgoingCall| {
        let m = call.media_stats().unwrap();
        (m.packets_sent, m.packets_received)
    };
    let settle = || tokio::time::sleep(Duration::from_millis(2200));
    settle().await;
    let (sent0, recv0) = counts(&call);
    call.hold().await.expect("linphone answers the hold");
    assert!(
        lp.wait_for("has been paused by", Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    settle().await;
    let (sent1, recv1) = counts(&call);
    settle().await;
    let (sent2, recv2) = counts(&call);
    call.resume().await.expect("linphone answers the resume");
    settle().await;
    let (sent3, recv3) = counts(&call);
    settle().await;
    let (sent4, recv4) = counts(&call);
    eprintln!(
        "Parrot's packets sent/received: before {sent0}/{recv0}; held {sent1}/{recv1} → {sent2}/{recv2}; resumed {sent3}/{recv3} → {sent4}/{recv4}"
    );
    assert!(sent0 > 50 && recv0 > 50, "audio both ways before the hold");
    assert!(
        recv2 - recv1 < 10,
        "held: linphone stops sending ({recv1} then {recv2})"
    );
    assert!(
        sent2 - sent1 > 50,
        "held: Parrot goes on sending ({sent1} then {sent2})"
    );
    assert!(
        recv4 - recv3 > 50,
        "resumed: linphone sends again ({recv3} then {recv4})"
    );
    let answers: Vec<SipSeen> = lp
        .sip_messages()
        .into_iter()
        .filter(|m| m.sent && m.is_response(200) && m.cseq_method() == Some("INVITE"))
        .collect();
    assert!(
        answers.len() == 3 && answers[1].text.contains("a=recvonly"),
        "linphone answered the hold recvonly\n{}",
        sip_summary(&lp)
    );
    call.hangup().await.unwrap();
    lp.quit().await;
    client.shutdown(Duration::from_secs(1)).await;
}

/// The calls an agent took: From, Referred-By.
type Calls = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A transfer target: answers with Parrot's tone and notes who called and
/// who referred them.
struct Agent {
    calls: Calls,
    log: Log,
}

impl SipHandler for Agent {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let from = call.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let referred = call.header("Referred-By").map(str::to_owned);
        self.calls.lock().unwrap().push((from, referred));
        call.answer(ToneEar::new(&self.log)).await
    }
}

async fn agent() -> (Endpoint, String, Calls) {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let agent = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Agent {
            calls: c.clone(),
            log: Log::default(),
        })
        .build()
        .await
        .unwrap();
    let uri = format!(
        "sip:agent@{}",
        agent.local_addr(TransportKind::Udp).unwrap()
    );
    (agent, uri, calls)
}

/// Parrot transfers linphone (a blind REFER from `CallHandle::transfer`) to
/// a second Parrot endpoint: linphone puts Parrot on hold, calls the agent
/// (with Referred-By), reports the answer in a NOTIFY, and Parrot's
/// `transfer()` returns 200; Parrot then hangs up its leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_transfers_linphone_to_an_agent() {
    let (agent, agent_uri, calls) = agent().await;
    let mut rig = rig(None, Some(agent_uri.clone())).await;
    let mut lp = Linphone::start(LinphoneOptions::default()).await;
    lp.command(&format!("call sip:ivr@{}", rig.addr)).await;
    let outcome = tokio::time::timeout(Duration::from_secs(20), rig.outcome.recv())
        .await
        .ok()
        .flatten();
    eprintln!("Parrot saw: {:?}", rig.log.events());
    assert!(
        matches!(outcome, Some(Ok(s)) if s == StatusCode::OK),
        "the transfer's outcome: {outcome:?}\n{}\n{}",
        lp.output(),
        sip_summary(&lp)
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "the agent got one call: {calls:?}");
    assert!(calls[0].0.contains("linphone@"), "from linphone: {calls:?}");
    // Parrot's REFER carries no Referred-By (RFC 3892 is optional), and
    // linphone adds none of its own.
    eprintln!(
        "the agent's call: From {}, Referred-By {:?}",
        calls[0].0, calls[0].1
    );
    assert!(
        rig.log
            .wait_for("ended LocalHangup", Duration::from_secs(5))
            .await,
        "Parrot hung up its leg: {:?}",
        rig.log.events()
    );
    // What linphone did: REFER answered 202, a re-INVITE holding Parrot,
    // NOTIFYs with the agent's answer.
    let msgs = lp.sip_messages();
    let has = |pred: &dyn Fn(&SipSeen) -> bool| msgs.iter().any(pred);
    assert!(
        has(&|m| !m.sent
            && m.is_request("REFER")
            && m.header("Refer-To").is_some_and(|t| t.contains(&agent_uri))),
        "Parrot's REFER names the agent\n{}",
        sip_summary(&lp)
    );
    let hold = msgs
        .iter()
        .find(|m| {
            m.sent
                && m.is_request("INVITE")
                && m.header("To").is_some_and(|t| t.contains("tag="))
                && m.text.contains("a=sendonly")
        })
        .unwrap_or_else(|| {
            panic!(
                "linphone held Parrot's call before calling the agent\n{}",
                sip_summary(&lp)
            )
        });
    // Parrot's call task answered that hold while its transfer was pending.
    assert!(
        has(&|m| !m.sent
            && m.is_response(200)
            && m.header("CSeq") == hold.header("CSeq")
            && m.text.contains("a=recvonly")),
        "Parrot answered linphone's hold recvonly\n{}",
        sip_summary(&lp)
    );
    assert!(
        has(&|m| m.sent && m.is_response(202) && m.cseq_method() == Some("REFER")),
        "linphone accepted the REFER\n{}",
        sip_summary(&lp)
    );
    assert!(
        has(&|m| m.sent && m.is_request("NOTIFY") && m.text.contains("SIP/2.0 200")),
        "linphone's NOTIFY reported the agent's 200\n{}",
        sip_summary(&lp)
    );
    eprintln!("linphone's side:\n{}", sip_summary(&lp));
    lp.command("terminate all").await;
    lp.quit().await;
    agent.shutdown(Duration::from_secs(1)).await;
    rig.server.shutdown(Duration::from_millis(300)).await;
}

/// linphone transfers a call Parrot placed (`transfer URI`: a REFER):
/// Parrot's call hears `CallEvent::Transfer`, Parrot dials the agent and
/// reports the answer (`transfer_progress`), which linphone takes as the
/// transfer done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_transfers_a_call_parrot_placed() {
    let (agent, agent_uri, calls) = agent().await;
    let mut lp = Linphone::start(LinphoneOptions {
        auto_answer: true,
        ..LinphoneOptions::default()
    })
    .await;
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = client
        .dial(&lp.uri())
        .unwrap()
        .media(Hum)
        .send()
        .await
        .unwrap();
    call.answered().await.expect("linphone answers by itself");
    assert!(
        lp.wait_for("Media streams established", Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    lp.command(&format!("transfer {agent_uri}")).await;
    let mut seen = Vec::new();
    let target = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Transfer { target }) => break target,
                Some(other) => seen.push(format!("{other:?}")),
                None => panic!("the call ended before the transfer: {seen:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no REFER from linphone: {seen:?}\n{}", lp.output()));
    assert_eq!(target.to_string(), agent_uri);
    let mut second = client
        .dial(&target.to_string())
        .unwrap()
        .media(Hum)
        .send()
        .await
        .unwrap();
    let ok = second.answered().await.expect("the agent answers");
    let notified = call.transfer_progress(ok.status()).await;
    assert!(
        notified.as_ref().is_ok_and(|r| r.status().is_success()),
        "linphone took our NOTIFY: {notified:?}"
    );
    assert!(
        lp.wait_for("has been transfered", Duration::from_secs(5))
            .await,
        "linphone saw the transfer succeed\n{}",
        lp.output()
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].0.contains("parrot@"), "from Parrot: {calls:?}");
    // linphone's REFER, as sent.
    let refer = lp
        .sip_messages()
        .into_iter()
        .find(|m| m.sent && m.is_request("REFER"))
        .expect("linphone's REFER in its log");
    eprintln!(
        "linphone's REFER: Refer-To {:?}, Referred-By {:?}",
        refer.header("Refer-To"),
        refer.header("Referred-By")
    );
    // linphone leaves the old call for us to end ("you can safely close
    // the call"), or ends it itself.
    let ended_by_linphone = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Ended) | None => break,
                Some(_) => {}
            }
        }
    })
    .await
    .is_ok();
    eprintln!("linphone hung up the transferred call itself: {ended_by_linphone}");
    eprintln!("linphone's side:\n{}", sip_summary(&lp));
    if !ended_by_linphone {
        call.hangup().await.unwrap();
    }
    second.hangup().await.unwrap();
    lp.quit().await;
    client.shutdown(Duration::from_secs(1)).await;
    agent.shutdown(Duration::from_secs(1)).await;
}

/// The target of an attended transfer: answers with Parrot's tone, notes
/// each INVITE (and whether it replaces a call, RFC 3891) and each end,
/// and records the call that replaced another.
struct Target {
    log: Log,
    record: PathBuf,
}

impl SipHandler for Target {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let replaces = call.replaces();
        let from = call.from().map(|f| f.uri.to_string()).unwrap_or_default();
        self.log
            .push(format!("INVITE from {from} replaces={replaces}"));
        let mut media = ToneEar::new(&self.log);
        if replaces {
            media.record = Some(self.record.clone());
        }
        call.answer(media).await
    }
    async fn ended(&mut self, reason: EndReason) {
        self.log.push(format!("ended {reason:?}"));
    }
}

/// An attended transfer by linphone (`transfer 1 --to-call 2`, RFC 3891):
/// linphone talks to Parrot A (a call A placed) and to Parrot C (a call
/// linphone placed, its consultation), then REFERs A to C with Replaces
/// naming the linphone–C dialog. A follows (`follow_transfer`: the
/// Replaces goes into its INVITE), C's new call replaces its call with
/// linphone (C hangs that one up), A hangs up its call with linphone, and
/// C hears A's tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_attended_transfer_replaces_its_consultation_call() {
    let tmp = TempDir::new("linphone-attended");
    let c_log = Log::default();
    let (l, record) = (c_log.clone(), tmp.join("c-heard.wav"));
    let rec = record.clone();
    // linphone's Refer-To names the consultation call's To URI, and
    // linphone writes To without the port it dialed: C must be on 5060,
    // here of a loopback address of its own.
    let c_addr = (2..=254u8)
        .map(|n| SocketAddr::from(([127, 0, 0, n], 5060)))
        .find(|a| std::net::UdpSocket::bind(a).is_ok())
        .expect("a loopback address with port 5060 free");
    let c = Endpoint::builder()
        .udp(c_addr)
        .handler(move || Target {
            log: l.clone(),
            record: rec.clone(),
        })
        .build()
        .await
        .unwrap();
    let c_uri = format!("sip:agent@{c_addr}");
    let mut lp = Linphone::start(LinphoneOptions::default()).await;
    let a = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = a.dial(&lp.uri()).unwrap().media(Hum).send().await.unwrap();
    assert!(
        lp.wait_for("assigned id 1", Duration::from_secs(5)).await,
        "{}",
        lp.output()
    );
    lp.command("answer 1").await;
    call.answered().await.expect("linphone answers");
    // The consultation call: linphone puts A's call on hold (linphonec
    // wants that first) and calls C.
    lp.command("pause").await;
    assert!(
        lp.wait_for("is now paused", Duration::from_secs(5)).await,
        "{}",
        lp.output()
    );
    lp.command(&format!("call {c_uri}")).await;
    assert!(
        c_log
            .wait_for("media started", Duration::from_secs(10))
            .await,
        "C answered linphone: {:?}\n{}",
        c_log.events(),
        lp.output()
    );
    assert!(
        lp.wait_for_count("Media streams established", 2, Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    lp.command("transfer 1 --to-call 2").await;
    let mut seen = Vec::new();
    let target = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Transfer { target }) => break target,
                Some(other) => seen.push(format!("{other:?}")),
                None => panic!("the call ended before the transfer: {seen:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no REFER from linphone: {seen:?}\n{}", lp.output()));
    eprintln!("linphone's Refer-To: {target}");
    assert!(
        target.to_string().contains("Replaces="),
        "an attended transfer: {target}"
    );
    let dial = a.dial(&target.to_string()).unwrap().media(Hum);
    let mut new = tokio::time::timeout(Duration::from_secs(10), call.follow_transfer(dial))
        .await
        .expect("the transfer is followed within 10 s")
        .expect("C answers A");
    assert!(
        c_log
            .wait_for("ended Replaced", Duration::from_secs(5))
            .await,
        "C's call with linphone was replaced: {:?}",
        c_log.events()
    );
    // linphone: both its calls end (C's BYE, A's BYE), the transfer done.
    assert!(
        lp.wait_for_count(" ended (", 2, Duration::from_secs(5))
            .await,
        "{}",
        lp.output()
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    new.hangup().await.unwrap();
    let events = c_log.events();
    eprintln!("C saw: {events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("INVITE"))
            .map(|e| e.ends_with("replaces=true"))
            .collect::<Vec<_>>(),
        [false, true],
        "linphone's call, then A's with Replaces: {events:?}"
    );
    let refer = lp
        .sip_messages()
        .into_iter()
        .find(|m| m.sent && m.is_request("REFER"))
        .expect("linphone's REFER");
    eprintln!(
        "linphone's REFER: Refer-To {:?}, Referred-By {:?}\nlinphone's side:\n{}",
        refer.header("Refer-To"),
        refer.header("Referred-By"),
        sip_summary(&lp)
    );
    lp.quit().await;
    a.shutdown(Duration::from_secs(1)).await;
    c.shutdown(Duration::from_secs(1)).await;
    wait_for_wav(&record, 1.5).await;
    let (secs, tone) = heard_mostly(&record, PARROT_TONE);
    assert!(
        tone && secs > 1.5,
        "C heard A: {secs:.2} s of {PARROT_TONE} Hz: {tone}"
    );
}

/// linphone with 100rel supported calls Parrot's early-media user: Parrot's
/// 183 with SDP goes reliably (Require: 100rel, RSeq), linphone PRACKs it
/// (RAck matching), Parrot's tone plays in the early media and is heard by
/// linphone, and Parrot's 200 follows the PRACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_pracks_parrots_reliable_183() {
    let tmp = TempDir::new("linphone-prack");
    let linphone_heard = tmp.join("linphone-heard.wav");
    let rig = rig(None, None).await;
    let mut lp = Linphone::start(LinphoneOptions {
        record: Some(linphone_heard.clone()),
        rel100: Rel100::Supported,
        ..LinphoneOptions::default()
    })
    .await;
    lp.command(&format!("call sip:early@{}", rig.addr)).await;
    assert!(
        lp.wait_for("Media streams established", Duration::from_secs(10))
            .await,
        "{:?}\n{}",
        rig.log.events(),
        lp.output()
    );
    let events = rig.log.events();
    eprintln!("Parrot saw: {events:?}");
    assert!(
        events[0].contains("100rel"),
        "linphone's INVITE supports 100rel: {events:?}"
    );
    let at = |e: &str| rig.log.position(e);
    assert!(
        at("tone played").is_some() && at("tone played") < at("answered 200"),
        "the tone played in the early media: {events:?}"
    );
    let msgs = lp.sip_messages();
    let i183 = msgs
        .iter()
        .position(|m| !m.sent && m.is_response(183))
        .unwrap_or_else(|| panic!("no 183\n{}", sip_summary(&lp)));
    let r183 = &msgs[i183];
    assert!(
        r183.header("Require").is_some_and(|r| r.contains("100rel")),
        "{}",
        r183.text
    );
    let rseq = r183.header("RSeq").expect("an RSeq").to_owned();
    let invite_cseq = r183
        .header("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap()
        .to_owned();
    let iprack = msgs
        .iter()
        .position(|m| m.sent && m.is_request("PRACK"))
        .unwrap_or_else(|| panic!("no PRACK\n{}", sip_summary(&lp)));
    assert_eq!(
        msgs[iprack].header("RAck"),
        Some(format!("{rseq} {invite_cseq} INVITE").as_str()),
        "RAck names the 183"
    );
    assert!(
        msgs.iter()
            .any(|m| !m.sent && m.is_response(200) && m.cseq_method() == Some("PRACK")),
        "Parrot answered the PRACK 200\n{}",
        sip_summary(&lp)
    );
    let i200 = msgs
        .iter()
        .position(|m| !m.sent && m.is_response(200) && m.cseq_method() == Some("INVITE"))
        .expect("the 200 to the INVITE");
    assert!(
        i183 < iprack && iprack < i200,
        "183, PRACK, then 200\n{}",
        sip_summary(&lp)
    );
    lp.command("terminate").await;
    assert!(
        rig.log
            .wait_for("ended PeerHangup", Duration::from_secs(5))
            .await,
        "{:?}",
        rig.log.events()
    );
    lp.quit().await;
    wait_for_wav(&linphone_heard, 1.5).await;
    let (secs, ok) = heard(&linphone_heard, PARROT_TONE);
    eprintln!("linphone heard {secs:.2} s of early media; {PARROT_TONE} Hz: {ok}");
    assert!(
        ok && secs > 1.5,
        "linphone heard Parrot's early tone: {secs:.2} s, {ok}"
    );
    rig.server.shutdown(Duration::from_millis(300)).await;
}

/// Parrot calls linphone set to send reliable provisionals: linphone's 180
/// carries Require: 100rel and RSeq 1, Parrot's call sees it and PRACKs it
/// (linphone's log shows the PRACK and its 200), then linphone answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_pracks_linphones_reliable_180() {
    let tmp = TempDir::new("linphone-180");
    let mut lp = Linphone::start(LinphoneOptions {
        // Without a file to play, linphone sends no RTP at all.
        play: Some(linphone_tone(&tmp, 10.0)),
        rel100: Rel100::Mandatory,
        ..LinphoneOptions::default()
    })
    .await;
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = client
        .dial(&lp.uri())
        .unwrap()
        .media(Hum)
        .send()
        .await
        .unwrap();
    let ringing = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Provisional(r)) if r.status().as_u16() == 180 => break r,
                Some(CallEvent::Provisional(_)) => {}
                other => panic!("before the 180: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no 180 from linphone\n{}", lp.output()));
    let header = |name: &str| {
        ringing
            .headers()
            .get(&name.into())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("RSeq").as_deref(), Some("1"), "{ringing:?}");
    assert!(
        header("Require").is_some_and(|r| r.contains("100rel")),
        "{ringing:?}"
    );
    let prack = wait_for_sip(&lp, Duration::from_secs(3), |m| {
        !m.sent && m.is_request("PRACK")
    })
    .await
    .unwrap_or_else(|| panic!("no PRACK reached linphone\n{}", sip_summary(&lp)));
    let invite_cseq = lp
        .sip_messages()
        .into_iter()
        .find(|m| !m.sent && m.is_request("INVITE"))
        .and_then(|m| m.header("CSeq").map(str::to_owned))
        .unwrap();
    let n = invite_cseq.split_whitespace().next().unwrap();
    assert_eq!(prack.header("RAck"), Some(format!("1 {n} INVITE").as_str()));
    assert!(
        wait_for_sip(&lp, Duration::from_secs(2), |m| {
            m.sent && m.is_response(200) && m.cseq_method() == Some("PRACK")
        })
        .await
        .is_some(),
        "linphone answered the PRACK\n{}",
        sip_summary(&lp)
    );
    lp.command("answer").await;
    tokio::time::timeout(Duration::from_secs(5), call.answered())
        .await
        .expect("linphone answers")
        .unwrap();
    wait_for_media(&mut call).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let m = call.media_stats().unwrap();
    eprintln!(
        "Parrot's call to linphone: {} sent, {} received",
        m.packets_sent, m.packets_received
    );
    assert!(m.packets_sent > 50 && m.packets_received > 50, "{m:?}");
    let pracks = lp
        .sip_messages()
        .iter()
        .filter(|m| !m.sent && m.is_request("PRACK"))
        .count();
    assert_eq!(pracks, 1, "one PRACK for the one 180\n{}", sip_summary(&lp));
    call.hangup().await.unwrap();
    lp.quit().await;
    client.shutdown(Duration::from_secs(1)).await;
}
