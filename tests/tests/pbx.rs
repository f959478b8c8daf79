//! A small PBX on loopback, three endpoints in one process: a server with a
//! registrar that bridges calls for registered users to their flow
//! (`ua::bridge`, `Dial::flow`), a phone registered as carol, and a caller.
//! Audio both ways through the bridge, DTMF across it, hangups propagated,
//! a cancel while the callee rings, an unknown user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, MediaHandler, WavSource};
use parrot_core::ua::{
    CallEvent, CallHandle, EndReason, Endpoint, Incoming, Registrar, Reply, SipHandler, bridge,
};
use parrot_tests::{TempDir, free_addr, heard_mostly};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Routes every INVITE to the registered user named in the Request-URI.
struct Pbx {
    registrar: Registrar,
}

impl SipHandler for Pbx {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let user = call.uri_user().unwrap_or_default().to_owned();
        let Some(binding) = self.registrar.contacts(&user).into_iter().next() else {
            return Reply::not_found();
        };
        let Some(endpoint) = call.endpoint().cloned() else {
            return Reply::server_error();
        };
        match endpoint.dial(&binding.contact.to_string()) {
            Ok(dial) => bridge(call, dial.flow(&binding.flow)).await,
            Err(_) => Reply::not_found(),
        }
    }
}

/// Plays a tone, records what it hears, reports digits.
struct Talk {
    freq: f64,
    record: PathBuf,
    digits: Option<mpsc::UnboundedSender<char>>,
}

impl MediaHandler for Talk {
    fn stream_started(&mut self) -> Action {
        Action::Record(self.record.clone()).also(Action::tone(self.freq, 2.0))
    }
    fn dtmf(&mut self, digit: char) -> Action {
        if let Some(d) = &self.digits {
            let _ = d.send(digit);
        }
        Action::Nothing
    }
}

/// Carol's phone: answers with a 1000 Hz tone after ringing `ring`, records
/// into `record`, reports how its calls end.
struct Phone {
    ring: Duration,
    record: PathBuf,
    digits: mpsc::UnboundedSender<char>,
    ended: Arc<Mutex<Vec<EndReason>>>,
    handles: mpsc::UnboundedSender<CallHandle>,
}

impl SipHandler for Phone {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        if let Some(h) = call.handle() {
            let _ = self.handles.send(h.clone());
        }
        if call.ring().await.is_err() {
            return Reply::server_error();
        }
        tokio::time::sleep(self.ring).await;
        call.answer(Talk {
            freq: 1000.0,
            record: self.record.clone(),
            digits: Some(self.digits.clone()),
        })
        .await
    }
    async fn ended(&mut self, reason: EndReason) {
        self.ended.lock().unwrap().push(reason);
    }
}

struct Rig {
    pbx: Endpoint,
    pbx_addr: SocketAddr,
    carol: Endpoint,
    caller: Endpoint,
    digits: mpsc::UnboundedReceiver<char>,
    ended: Arc<Mutex<Vec<EndReason>>>,
    /// The handles of carol's calls.
    carol_calls: mpsc::UnboundedReceiver<CallHandle>,
    carol_heard: PathBuf,
    _reg: parrot_core::ua::Registration,
}

async fn rig(tmp: &TempDir, ring: Duration) -> Rig {
    let registrar = Registrar::new();
    let pbx_addr = free_addr();
    let r = registrar.clone();
    let pbx = Endpoint::builder()
        .udp(pbx_addr)
        .registrar(registrar.clone())
        .handler(move || Pbx {
            registrar: r.clone(),
        })
        .build()
        .await
        .unwrap();
    let (digits_tx, digits) = mpsc::unbounded_channel();
    let ended = Arc::new(Mutex::new(Vec::new()));
    let carol_heard = tmp.join("carol-heard.wav");
    let (record, e) = (carol_heard.clone(), ended.clone());
    let (handles, carol_calls) = mpsc::unbounded_channel();
    let carol = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Phone {
            ring,
            record: record.clone(),
            digits: digits_tx.clone(),
            ended: e.clone(),
            handles: handles.clone(),
        })
        .build()
        .await
        .unwrap();
    let reg = carol
        .register(&format!("sip:{pbx_addr}"), "sip:carol@parrot.test")
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(registrar.contacts("carol").len(), 1);
    let caller = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    Rig {
        pbx,
        pbx_addr,
        carol,
        caller,
        digits,
        ended,
        carol_calls,
        carol_heard,
        _reg: reg,
    }
}

impl Rig {
    async fn stop(self) {
        for ep in [&self.caller, &self.carol, &self.pbx] {
            ep.shutdown(Duration::from_secs(1)).await;
        }
    }
}

async fn finished_wav(path: &std::path::Path) {
    for _ in 0..50 {
        if WavSource::open(path).is_ok_and(|w| w.duration() > 0.5) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no recording at {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_phone_is_called_through_the_bridge() {
    let tmp = TempDir::new("pbx");
    let mut rig = rig(&tmp, Duration::from_millis(100)).await;
    let caller_heard = tmp.join("caller-heard.wav");
    let mut call = rig
        .caller
        .dial(&format!("sip:carol@{}", rig.pbx_addr))
        .unwrap()
        .media(Talk {
            freq: 440.0,
            record: caller_heard.clone(),
            digits: None,
        })
        .send()
        .await
        .unwrap();
    let mut ringing = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), call.next_event())
            .await
            .expect("the call is answered within 5 s")
        {
            Some(CallEvent::Provisional(r)) if r.status().as_u16() == 180 => ringing = true,
            Some(CallEvent::Answered(_)) => break,
            Some(CallEvent::Provisional(_) | CallEvent::MediaStarted { .. }) => {}
            other => panic!("not answered: {other:?}"),
        }
    }
    assert!(ringing, "carol's 180 reached the caller");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    call.send_dtmf("7").await.unwrap();
    let digit = tokio::time::timeout(Duration::from_secs(3), rig.digits.recv())
        .await
        .expect("the digit crossed the bridge within 3 s");
    assert_eq!(digit, Some('7'));
    tokio::time::sleep(Duration::from_millis(800)).await;
    call.hangup().await.unwrap();
    // Carol's leg is hung up by the bridge.
    for _ in 0..50 {
        if !rig.ended.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*rig.ended.lock().unwrap(), vec![EndReason::PeerHangup]);
    finished_wav(&caller_heard).await;
    finished_wav(&rig.carol_heard).await;
    // Relayed between two calls: each tone mostly there (heard_mostly).
    let (secs, tone) = heard_mostly(&caller_heard, 1000.0);
    assert!(
        tone && secs > 1.0,
        "caller heard carol: {secs:.2} s, 1000 Hz {tone}"
    );
    let (secs, tone) = heard_mostly(&rig.carol_heard, 440.0);
    assert!(
        tone && secs > 1.0,
        "carol heard the caller: {secs:.2} s, 440 Hz {tone}"
    );
    rig.stop().await;
}

/// A hold crosses the bridge both ways: the caller holds (a re-INVITE with
/// `a=sendonly` to the PBX), the PBX holds carol's leg, and carol's handle
/// hears `Held`, then `Resumed`; carol's own hold reaches the caller the
/// same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_crosses_the_bridge() {
    let tmp = TempDir::new("pbx");
    let mut rig = rig(&tmp, Duration::ZERO).await;
    let mut call = rig
        .caller
        .dial(&format!("sip:carol@{}", rig.pbx_addr))
        .unwrap()
        .media(Talk {
            freq: 440.0,
            record: tmp.join("caller-heard.wav"),
            digits: None,
        })
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    let carol = rig.carol_calls.recv().await.unwrap();
    let next = |h: CallHandle| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), h.next_event()).await {
                Ok(Some(CallEvent::MediaStarted { .. })) => {}
                Ok(Some(ev)) => return format!("{ev:?}"),
                other => panic!("no event on carol's leg: {other:?}"),
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.hold().await.unwrap();
    assert_eq!(
        next(carol.clone()).await,
        "Held",
        "carol's phone shows the hold"
    );
    call.resume().await.unwrap();
    assert_eq!(next(carol.clone()).await, "Resumed");
    // And from carol's side to the caller.
    carol.hold().await.unwrap();
    let mut told = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(2), call.next_event()).await {
        let held = matches!(ev, CallEvent::Held);
        told.push(format!("{ev:?}"));
        if held {
            break;
        }
    }
    assert!(
        told.iter().any(|e| e == "Held"),
        "the caller is told: {told:?}"
    );
    call.hangup().await.unwrap();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callee_hanging_up_ends_the_callers_leg() {
    let tmp = TempDir::new("pbx");
    let rig = rig(&tmp, Duration::ZERO).await;
    struct HangUpSoon;
    impl MediaHandler for HangUpSoon {
        fn stream_started(&mut self) -> Action {
            Action::tone(440.0, 0.5)
        }
        fn play_complete(&mut self, _: &parrot_core::media::PlaySource) -> Action {
            Action::Nothing
        }
    }
    let mut call = rig
        .caller
        .dial(&format!("sip:carol@{}", rig.pbx_addr))
        .unwrap()
        .media(HangUpSoon)
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    // Carol's endpoint goes away: its shutdown hangs its call up with BYE.
    rig.carol.shutdown(Duration::from_secs(2)).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = call.next_event().await {
            if matches!(ev, CallEvent::Ended) {
                return true;
            }
        }
        false
    })
    .await
    .expect("the caller's leg ends within 5 s");
    assert!(ended, "the PBX sent BYE to the caller");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_caller_cancels_the_ringing_leg() {
    let tmp = TempDir::new("pbx");
    let rig = rig(&tmp, Duration::from_secs(10)).await;
    let mut call = rig
        .caller
        .dial(&format!("sip:carol@{}", rig.pbx_addr))
        .unwrap()
        .send()
        .await
        .unwrap();
    loop {
        match call.next_event().await {
            Some(CallEvent::Provisional(r)) if r.status().as_u16() == 180 => break,
            Some(CallEvent::Provisional(_)) => {}
            other => panic!("no ringing: {other:?}"),
        }
    }
    call.cancel().await.unwrap();
    let status = call.answered().await.unwrap_err();
    assert!(status.to_string().contains("487"), "{status}");
    for _ in 0..50 {
        if !rig.ended.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        *rig.ended.lock().unwrap(),
        vec![EndReason::Cancelled],
        "carol's ringing call was cancelled"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_user_is_not_found() {
    let tmp = TempDir::new("pbx");
    let rig = rig(&tmp, Duration::ZERO).await;
    let mut call = rig
        .caller
        .dial(&format!("sip:dave@{}", rig.pbx_addr))
        .unwrap()
        .send()
        .await
        .unwrap();
    let e = call.answered().await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    rig.stop().await;
}
