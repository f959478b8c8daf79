//! A handle on a call we answer (`Incoming::handle`), used from tasks of
//! their own: play, hang up, send a MESSAGE in the dialog; on loopback with
//! two endpoints in one process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, MediaHandler, WavSource};
use parrot_core::message::Method;
use parrot_core::ua::{
    CallEvent, CallHandle, CallStatus, EndReason, Endpoint, Incoming, Reply, SipHandler, UaError,
};
use parrot_tests::{TempDir, free_addr, heard, heard_at_start};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Records what it hears; plays nothing unless told.
struct Ear(Option<PathBuf>);

impl MediaHandler for Ear {
    fn stream_started(&mut self) -> Action {
        self.0.clone().map_or(Action::Nothing, Action::Record)
    }
}

/// Answers, and gives the test the call's handle (and what `invite` saw of it
/// before answering) and how the call ended.
struct Server {
    handles: mpsc::UnboundedSender<(CallHandle, Result<(), String>)>,
    ended: Arc<Mutex<Vec<EndReason>>>,
}

impl SipHandler for Server {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let handle = call.handle().cloned().expect("an INVITE has a handle");
        // Nothing to hang up before the answer.
        let early = match handle.hangup().await {
            Err(UaError::InvalidState(_)) if handle.status() == CallStatus::Ringing => Ok(()),
            other => Err(format!(
                "before the answer: {other:?}, {:?}",
                handle.status()
            )),
        };
        let reply = call.answer(Ear(None)).await;
        let _ = self.handles.send((handle, early));
        reply
    }
    async fn ended(&mut self, reason: EndReason) {
        self.ended.lock().unwrap().push(reason);
    }
}

/// A server endpoint on a free loopback port with handlers from `factory`,
/// its address, and a client endpoint to call it from.
async fn server_and_client<F, H>(factory: F) -> (Endpoint, std::net::SocketAddr, Endpoint)
where
    F: Fn() -> H + Send + Sync + 'static,
    H: SipHandler,
{
    let addr = free_addr();
    let server = Endpoint::builder()
        .udp(addr)
        .handler(factory)
        .build()
        .await
        .unwrap();
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    (server, addr, client)
}

struct Rig {
    server: Endpoint,
    client: Endpoint,
    uri: String,
    handles: mpsc::UnboundedReceiver<(CallHandle, Result<(), String>)>,
    ended: Arc<Mutex<Vec<EndReason>>>,
}

async fn rig() -> Rig {
    let (tx, handles) = mpsc::unbounded_channel();
    let ended = Arc::new(Mutex::new(Vec::new()));
    let e = ended.clone();
    let (server, addr, client) = server_and_client(move || Server {
        handles: tx.clone(),
        ended: e.clone(),
    })
    .await;
    Rig {
        server,
        client,
        uri: format!("sip:service@{addr}"),
        handles,
        ended,
    }
}

impl Rig {
    async fn stop(self) {
        self.client.shutdown(Duration::from_secs(1)).await;
        self.server.shutdown(Duration::from_secs(1)).await;
    }
}

async fn wait_for_end(call: &mut parrot_core::ua::OutgoingCall) -> Vec<CallEvent> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(ev) = call.next_event().await {
            let end = matches!(ev, CallEvent::Ended);
            seen.push(ev);
            if end {
                break;
            }
        }
    })
    .await
    .expect("the call ends within 6 s");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_plays_then_hangs_up_from_a_task_of_its_own() {
    let tmp = TempDir::new("call-control");
    let mut rig = rig().await;
    let heard_wav = tmp.join("heard.wav");
    let mut call = rig
        .client
        .dial(&rig.uri)
        .unwrap()
        .media(Ear(Some(heard_wav.clone())))
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    let (handle, early) = rig.handles.recv().await.unwrap();
    early.unwrap();
    assert_eq!(handle.status(), CallStatus::Answered);
    // Another task plays a tone, then hangs up: no handler method involved.
    let h = handle.clone();
    let driver = tokio::spawn(async move {
        h.media_action(Action::tone(1000.0, 1.5)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        h.hangup().await
    });
    let events = wait_for_end(&mut call).await;
    assert!(
        matches!(events.last(), Some(CallEvent::Ended)),
        "{events:?}"
    );
    driver.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(2), handle.ended())
        .await
        .expect("the handle sees the end");
    assert_eq!(handle.status(), CallStatus::Ended);
    assert!(matches!(handle.hangup().await, Err(UaError::CallGone)));
    assert_eq!(*rig.ended.lock().unwrap(), vec![EndReason::LocalHangup]);
    for _ in 0..30 {
        if WavSource::open(&heard_wav).is_ok_and(|w| w.duration() > 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (secs, tone) = heard(&heard_wav, 1000.0);
    assert!(
        tone && secs > 1.0,
        "the caller heard {secs:.2} s, 1000 Hz: {tone}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_sends_a_message_in_the_dialog() {
    let mut rig = rig().await;
    let mut call = rig.client.dial(&rig.uri).unwrap().send().await.unwrap();
    call.answered().await.unwrap();
    let (handle, _) = rig.handles.recv().await.unwrap();
    let resp = handle
        .request(
            Method::Message,
            Vec::new(),
            Some((
                "text/plain",
                bytes::Bytes::from_static(b"your table is ready"),
            )),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let got = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Request(r)) => break r,
                Some(_) => {}
                None => panic!("the call ended first"),
            }
        }
    })
    .await
    .expect("the MESSAGE arrives");
    assert_eq!(*got.method(), Method::Message);
    assert_eq!(got.body().as_ref(), b"your table is ready");
    assert!(matches!(
        handle.request(Method::Bye, Vec::new(), None).await,
        Err(UaError::InvalidState(_))
    ));
    call.hangup().await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), handle.ended())
        .await
        .expect("the handle sees the peer's hangup");
    assert!(
        handle
            .request(Method::Info, Vec::new(), None)
            .await
            .is_err()
    );
    rig.stop().await;
}

/// Plays a tone for as long as the call lasts.
struct Hum(f64);

impl MediaHandler for Hum {
    fn stream_started(&mut self) -> Action {
        Action::Play(parrot_core::media::Play {
            source: parrot_core::media::PlaySource::Tone(self.0, 60.0),
            looped: true,
            volume: 1.0,
        })
    }
}

/// Hold and resume from the side that answered (re-INVITEs with its offer,
/// `a=sendonly` then `a=sendrecv`), answered by the side that placed the
/// call (its media task answers the offers): while held the caller stops
/// sending and keeps receiving; resumed, it sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answering_side_holds_and_resumes_the_call() {
    let mut rig = rig().await;
    let mut call = rig
        .client
        .dial(&rig.uri)
        .unwrap()
        .media(Hum(440.0))
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    // The media counts come with MediaStarted.
    while call.media_stats().is_none() {
        match tokio::time::timeout(Duration::from_secs(3), call.next_event()).await {
            Ok(Some(_)) => {}
            other => panic!("no media: {other:?}"),
        }
    }
    let (handle, _) = rig.handles.recv().await.unwrap();
    let counts = |call: &parrot_core::ua::OutgoingCall| {
        let m = call.media_stats().unwrap();
        (m.packets_sent, m.packets_received)
    };
    // The stats are published every second: compare across 2.2 s.
    let settle = || tokio::time::sleep(Duration::from_millis(2200));
    settle().await;
    let (sent0, recv0) = counts(&call);
    assert!(sent0 > 50, "the caller sends before the hold: {sent0}");

    handle.hold().await.unwrap();
    settle().await;
    let (sent1, recv1) = counts(&call);
    settle().await;
    let (sent2, recv2) = counts(&call);
    assert!(
        sent2 - sent1 < 10,
        "held: the caller stops sending ({sent1} then {sent2})"
    );
    assert!(
        recv2 - recv1 > 50,
        "held: the caller still hears the held side ({recv1} then {recv2})"
    );

    handle.resume().await.unwrap();
    settle().await;
    let (sent3, _) = counts(&call);
    settle().await;
    let (sent4, recv4) = counts(&call);
    assert!(
        sent4 - sent3 > 50,
        "resumed: the caller sends again ({sent3} then {sent4})"
    );
    assert!(recv4 > recv2 && recv0 > 0);
    // The caller's handle was told, in order.
    let told: Vec<CallEvent> = pending_events(&mut call).await;
    let holds: Vec<&str> = told
        .iter()
        .filter_map(|e| match e {
            CallEvent::Held => Some("held"),
            CallEvent::Resumed => Some("resumed"),
            _ => None,
        })
        .collect();
    assert_eq!(holds, ["held", "resumed"], "{told:?}");
    call.hangup().await.unwrap();
    rig.stop().await;
}

/// The events a call has queued (none new for 200 ms).
async fn pending_events(call: &mut parrot_core::ua::OutgoingCall) -> Vec<CallEvent> {
    let mut seen = Vec::new();
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(200), call.next_event()).await
    {
        seen.push(ev);
    }
    seen
}

/// Hold and resume from the side that placed the call (`OutgoingCall::hold`,
/// answered by the call we answer's media): while held the answering side
/// stops sending; its handle hears `Held`, then `Resumed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calling_side_holds_and_resumes_the_call() {
    let (tx, mut handles) = mpsc::unbounded_channel();
    let (server, addr, client) = server_and_client(move || HumServer(tx.clone())).await;
    let mut call = client
        .dial(&format!("sip:service@{addr}"))
        .unwrap()
        .media(Ear(None))
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    let handle = handles.recv().await.unwrap();
    while call.media_stats().is_none() {
        match tokio::time::timeout(Duration::from_secs(3), call.next_event()).await {
            Ok(Some(_)) => {}
            other => panic!("no media: {other:?}"),
        }
    }
    let received =
        |call: &parrot_core::ua::OutgoingCall| call.media_stats().unwrap().packets_received;
    let settle = || tokio::time::sleep(Duration::from_millis(2200));
    settle().await;
    assert!(received(&call) > 50, "the server's tone arrives");
    call.hold().await.unwrap();
    settle().await;
    let r1 = received(&call);
    settle().await;
    let r2 = received(&call);
    assert!(
        r2 - r1 < 10,
        "held: the server stops sending ({r1} then {r2})"
    );
    call.resume().await.unwrap();
    settle().await;
    let r3 = received(&call);
    settle().await;
    let r4 = received(&call);
    assert!(
        r4 - r3 > 50,
        "resumed: the server sends again ({r3} then {r4})"
    );
    let mut told = Vec::new();
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(200), handle.next_event()).await
    {
        told.push(
            format!("{ev:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(
        told,
        ["MediaStarted", "Held", "Resumed"],
        "the handle was told"
    );
    call.hangup().await.unwrap();
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// Answers with a looping 660 Hz tone; hands the test the call's handle.
struct HumServer(mpsc::UnboundedSender<CallHandle>);

impl SipHandler for HumServer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let handle = call.handle().cloned().expect("a handle");
        let reply = call.answer(Hum(660.0)).await;
        let _ = self.0.send(handle);
        reply
    }
}

/// Answers with a keypad; a task of its own reads a PIN (RFC 4733 digits
/// from the caller), "looks it up" (an await), and plays 1000 Hz for the
/// right PIN, 300 Hz for a wrong one, through the call's handle.
struct PinServer {
    pins: mpsc::UnboundedSender<Option<String>>,
}

impl SipHandler for PinServer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let (media, mut digits) = parrot_core::media::keypad(Ear(None));
        let handle = call.handle().cloned().unwrap();
        let pins = self.pins.clone();
        tokio::spawn(async move {
            let pin = digits
                .read(
                    8,
                    Some('#'),
                    Duration::from_secs(10),
                    Duration::from_secs(3),
                )
                .await;
            // The lookup: anything that awaits, off the media session.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let freq = if pin.as_deref() == Some("1234") {
                1000.0
            } else {
                300.0
            };
            let _ = pins.send(pin);
            let _ = handle.media_action(Action::tone(freq, 1.5)).await;
        });
        call.answer(media).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_read_from_digits_chooses_the_prompt() {
    let tmp = TempDir::new("pin");
    let (tx, mut pins) = mpsc::unbounded_channel();
    let (server, addr, client) = server_and_client(move || PinServer { pins: tx.clone() }).await;
    let heard_wav = tmp.join("heard.wav");
    let mut call = client
        .dial(&format!("sip:service@{addr}"))
        .unwrap()
        .media(Ear(Some(heard_wav.clone())))
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.send_dtmf("12").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    call.send_dtmf("34#").await.unwrap();
    let pin = tokio::time::timeout(Duration::from_secs(6), pins.recv())
        .await
        .expect("the PIN is read within 6 s");
    assert_eq!(pin, Some(Some("1234".to_owned())));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    call.hangup().await.unwrap();
    for _ in 0..30 {
        if WavSource::open(&heard_wav).is_ok_and(|w| w.duration() > 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (secs, tone) = heard(&heard_wav, 1000.0);
    assert!(
        tone && secs > 1.0,
        "the right PIN's prompt: {secs:.2} s of 1000 Hz: {tone}"
    );
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// A transfer between two Parrot endpoints: the answering side transfers
/// (REFER), the calling side is told (`CallEvent::Transfer`, after the
/// endpoint's 202 and first NOTIFY), dials the target and reports the
/// answer (`transfer_progress`): the transferor's `transfer()` returns 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_we_placed_follows_a_transfer() {
    let mut rig = rig().await;
    let agent = Endpoint::builder()
        .udp(free_addr())
        .handler(|| AnswerAll)
        .build()
        .await
        .unwrap();
    let agent_uri = format!(
        "sip:agent@{}",
        agent
            .local_addr(parrot_core::transport::TransportKind::Udp)
            .unwrap()
    );
    let mut call = rig.client.dial(&rig.uri).unwrap().send().await.unwrap();
    call.answered().await.unwrap();
    let (handle, _) = rig.handles.recv().await.unwrap();
    let target = agent_uri.clone();
    let transferor = tokio::spawn(async move { handle.transfer(&target).await });
    let to = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Transfer { target }) => break target,
                Some(_) => {}
                None => panic!("the call ended before the transfer"),
            }
        }
    })
    .await
    .expect("the REFER arrives");
    assert_eq!(to.to_string(), agent_uri);
    let mut second = rig
        .client
        .dial(&to.to_string())
        .unwrap()
        .send()
        .await
        .unwrap();
    let ok = second.answered().await.unwrap();
    call.transfer_progress(ok.status()).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), transferor)
        .await
        .expect("the transferor hears the outcome")
        .unwrap();
    assert_eq!(outcome.unwrap().as_u16(), 200);
    call.hangup().await.unwrap();
    second.hangup().await.unwrap();
    agent.shutdown(Duration::from_secs(1)).await;
    rig.stop().await;
}

/// Answers every call, without audio.
struct AnswerAll;

impl SipHandler for AnswerAll {
    async fn invite(&mut self, _call: &mut Incoming) -> Reply {
        Reply::ok()
    }
}

/// Takes MESSAGEs and keeps what they said.
struct Inbox(Arc<Mutex<Vec<(String, String)>>>);

impl SipHandler for Inbox {
    async fn message(&mut self, req: &Incoming) -> Reply {
        let from = req.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let text = String::from_utf8_lossy(req.body()).into_owned();
        self.0.lock().unwrap().push((from, text));
        Reply::ok()
    }
}

/// A MESSAGE outside any call (RFC 3428): delivered to the handler's
/// `message` with its From and body; an endpoint that takes none says 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_outside_calls_reaches_the_handler() {
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let i = inbox.clone();
    let (server, addr, client) = server_and_client(move || Inbox(i.clone())).await;
    let resp = client
        .message(&format!("sip:bob@{addr}"), "your table is ready")
        .unwrap()
        .from("sip:alice@parrot.test")
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        *inbox.lock().unwrap(),
        vec![(
            "sip:alice@parrot.test".to_owned(),
            "your table is ready".to_owned()
        )]
    );
    // The client's endpoint has no `message` handler: 405.
    let back = server
        .message(
            &format!(
                "sip:alice@{}",
                client
                    .local_addr(parrot_core::transport::TransportKind::Udp)
                    .unwrap()
            ),
            "hi",
        )
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(back.status().as_u16(), 405);
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// What the streaming server saw, for the test.
#[derive(Debug, Default)]
struct Streamed {
    frames: usize,
    heard_caller: bool,
    mark_back: bool,
}

/// Answers with the call's audio as streams; a task of its own plays 3 s of
/// 1000 Hz (sent at 16 kHz) with a mark after it, listens to the caller for
/// 1 s, then clears (barge-in): the mark comes back at once.
struct Streamer {
    report: mpsc::UnboundedSender<Streamed>,
}

impl SipHandler for Streamer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let (media, mut input, output) = parrot_core::media::audio_stream();
        let report = self.report.clone();
        tokio::spawn(async move {
            let tone: Vec<i16> = (0..48_000)
                .map(|i| {
                    let t = f64::from(i) / 16_000.0;
                    ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16
                })
                .collect();
            output.send(&tone, 16_000);
            output.mark("prompt");
            let mut seen = Streamed::default();
            let mut heard = Vec::new();
            while let Some(ev) = input.recv().await {
                match ev {
                    parrot_core::media::AudioEvent::Audio { samples, .. } => {
                        seen.frames += 1;
                        heard.extend_from_slice(&samples);
                        if seen.frames == 50 {
                            output.clear();
                        }
                    }
                    parrot_core::media::AudioEvent::Mark(m) if m == "prompt" => {
                        seen.mark_back = true;
                        break;
                    }
                    _ => {}
                }
            }
            let loud = heard
                .iter()
                .position(|s| s.unsigned_abs() > 800)
                .unwrap_or(0);
            seen.heard_caller = parrot_core::media::tone_present(&heard[loud..], 440.0, 8000, 0.5);
            let _ = report.send(seen);
        });
        call.answer(media).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_audio_as_streams_with_a_mark_and_barge_in() {
    let tmp = TempDir::new("streams");
    let (tx, mut reports) = mpsc::unbounded_channel();
    let (server, addr, client) = server_and_client(move || Streamer { report: tx.clone() }).await;
    let heard_wav = tmp.join("heard.wav");
    struct Caller(PathBuf);
    impl MediaHandler for Caller {
        fn stream_started(&mut self) -> Action {
            Action::Record(self.0.clone()).also(Action::tone(440.0, 3.0))
        }
    }
    let mut call = client
        .dial(&format!("sip:service@{addr}"))
        .unwrap()
        .media(Caller(heard_wav.clone()))
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(8), reports.recv())
        .await
        .expect("the server's task reports within 8 s")
        .unwrap();
    assert!(
        seen.mark_back,
        "the mark came back after the clear: {seen:?}"
    );
    assert!(seen.frames >= 50, "{seen:?}");
    assert!(
        seen.heard_caller,
        "the caller's 440 Hz in the frames: {seen:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.hangup().await.unwrap();
    for _ in 0..30 {
        if WavSource::open(&heard_wav).is_ok_and(|w| w.duration() > 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (secs, tone) = heard_at_start(&heard_wav, 1000.0);
    assert!(tone, "the caller heard the 1000 Hz prompt");
    assert!(
        (0.5..2.0).contains(&secs),
        "the clear cut the 3 s prompt after about 1 s: {secs:.2} s heard"
    );
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// Records both directions (stereo) and plays 1000 Hz.
struct BothWays(PathBuf);

impl MediaHandler for BothWays {
    fn stream_started(&mut self) -> Action {
        Action::RecordBoth(self.0.clone()).also(Action::tone(1000.0, 2.0))
    }
}

/// Answers with a two-way recording.
struct Recorder(PathBuf);

impl SipHandler for Recorder {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        call.answer(BothWays(self.0.clone())).await
    }
}

/// A call recorded both ways: a stereo WAV whose left channel is the caller
/// (440 Hz) and right channel the answerer (1000 Hz).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_recorded_both_ways_in_stereo() {
    let tmp = TempDir::new("both-ways");
    let file = tmp.join("call.wav");
    let f = file.clone();
    let (server, addr, client) = server_and_client(move || Recorder(f.clone())).await;
    let mut call = client
        .dial(&format!("sip:service@{addr}"))
        .unwrap()
        .media(Hum(440.0))
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    call.hangup().await.unwrap();
    let mut samples = Vec::new();
    // The call's rate: 16 kHz, as both ends have G.722.
    let mut rate = 0;
    for _ in 0..30 {
        if let Ok(r) = hound::WavReader::open(&file) {
            if r.spec().channels == 2 && r.duration() > r.spec().sample_rate {
                rate = r.spec().sample_rate;
                samples = r.into_samples::<i16>().map(Result::unwrap).collect();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !samples.is_empty(),
        "a stereo recording at {}",
        file.display()
    );
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let window = |ch: &[i16]| {
        let start = ch.iter().position(|s| s.unsigned_abs() > 800).unwrap_or(0);
        ch[start..(start + rate as usize).min(ch.len())].to_vec()
    };
    let tone = parrot_core::media::tone_present;
    assert_eq!(rate, 16_000, "recorded at the call's rate");
    assert!(tone(&window(&left), 440.0, rate, 0.5), "left: the caller");
    assert!(
        tone(&window(&right), 1000.0, rate, 0.5),
        "right: the answerer"
    );
    assert!(
        !tone(&window(&left), 1000.0, rate, 0.5),
        "no crosstalk on the left"
    );
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}
