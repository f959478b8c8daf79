//! A blind transfer (RFC 3515) with a real transferee: baresip calls a
//! Parrot server, the server's handler transfers it (`CallHandle::transfer`)
//! to a second Parrot endpoint (the agent), baresip calls the agent and
//! reports it in NOTIFYs; the server then hangs up its own leg.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, MediaHandler};
use parrot_core::message::StatusCode;
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallHandle, Endpoint, Incoming, Reply, SipHandler, UaError};
use parrot_tests::{BaresipConfig, TempDir, baresip, baresip_available, free_addr, free_port};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Quiet;
impl MediaHandler for Quiet {
    fn stream_started(&mut self) -> Action {
        Action::tone(660.0, 1.0)
    }
}

/// Answers, then transfers the caller to `agent` from a task of its own and
/// hangs up once the transfer succeeded.
struct Ivr {
    agent: String,
    outcome: mpsc::UnboundedSender<Result<StatusCode, UaError>>,
}

impl SipHandler for Ivr {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let handle: CallHandle = call.handle().cloned().unwrap();
        let (agent, outcome) = (self.agent.clone(), self.outcome.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let r = handle.transfer(&agent).await;
            if r.is_ok() {
                let _ = handle.hangup().await;
            }
            let _ = outcome.send(r);
        });
        call.answer(Quiet).await
    }
}

/// The calls the agent took: From, Referred-By.
type Calls = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// The agent: answers, and notes who called and who referred them.
struct Agent {
    calls: Calls,
}

impl SipHandler for Agent {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let from = call.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let referred = call.header("Referred-By").map(str::to_owned);
        self.calls.lock().unwrap().push((from, referred));
        call.answer(Quiet).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_is_transferred_to_the_agent() {
    assert!(
        baresip_available(),
        "baresip-core is installed by cargo xtask test"
    );
    let tmp = TempDir::new("transfer");
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let agent = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Agent { calls: c.clone() })
        .build()
        .await
        .unwrap();
    let agent_uri = format!(
        "sip:agent@{}",
        agent.local_addr(TransportKind::Udp).unwrap()
    );
    let (tx, mut outcome) = mpsc::unbounded_channel();
    let server = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Ivr {
            agent: agent_uri.clone(),
            outcome: tx.clone(),
        })
        .build()
        .await
        .unwrap();
    let addr = server.local_addr(TransportKind::Udp).unwrap();

    let caller_wav = tmp.join("caller.wav");
    parrot_tests::write_tone(&caller_wav, 440.0, 6.0, 0.0);
    let config = BaresipConfig {
        sip_port: free_port(),
        source_wav: caller_wav,
        dump_dir: tmp.join("dump"),
    };
    let conf_dir = tmp.join("conf");
    config.write(&conf_dir);
    // A transferee holds two calls for a moment (the old one, the new one).
    let text = config
        .config()
        .replace("call_max_calls\t\t1", "call_max_calls\t\t4");
    std::fs::write(conf_dir.join("config"), text).unwrap();

    let dial = format!("/dial sip:service@{addr}");
    let run = baresip(
        &conf_dir,
        &[&dial],
        Duration::from_secs(8),
        Duration::from_secs(25),
    )
    .await;
    let got = tokio::time::timeout(Duration::from_secs(1), outcome.recv())
        .await
        .ok()
        .flatten();
    assert!(
        matches!(got, Some(Ok(s)) if s == StatusCode::OK),
        "the transfer's outcome: {got:?}\n{}",
        run.output
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        1,
        "the agent got one call: {calls:?}\n{}",
        run.output
    );
    assert!(
        calls[0].0.contains("test@"),
        "from baresip's account: {calls:?}"
    );
    agent.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// Plays a looping tone and records what it hears.
struct ToneEar {
    freq: f64,
    record: Option<std::path::PathBuf>,
}

impl MediaHandler for ToneEar {
    fn stream_started(&mut self) -> Action {
        let tone = Action::Play(parrot_core::media::Play {
            source: parrot_core::media::PlaySource::Tone(self.freq, 60.0),
            looped: true,
            volume: 1.0,
        });
        match &self.record {
            Some(r) => Action::Record(r.clone()).also(tone),
            None => tone,
        }
    }
}

/// The transferee: answers with 440 Hz; a REFER is accepted (202) and
/// followed from a task of its own (`CallHandle::follow_transfer`: dial the
/// target, report, hang up).
struct Transferee {
    handle: Option<CallHandle>,
    endpoint: Option<Endpoint>,
    followed: mpsc::UnboundedSender<Result<String, UaError>>,
}

impl SipHandler for Transferee {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        self.handle = call.handle().cloned();
        self.endpoint = call.endpoint().cloned();
        call.answer(ToneEar {
            freq: 440.0,
            record: None,
        })
        .await
    }
    async fn refer(&mut self, req: &Incoming) -> Reply {
        let (Some(target), Some(handle), Some(endpoint)) =
            (req.refer_to(), self.handle.clone(), self.endpoint.clone())
        else {
            return Reply::new(StatusCode::BAD_REQUEST);
        };
        let followed = self.followed.clone();
        tokio::spawn(async move {
            let r = match endpoint.dial(&target.to_string()) {
                Ok(dial) => {
                    let dial = dial.media(ToneEar {
                        freq: 440.0,
                        record: None,
                    });
                    handle.follow_transfer(dial).await.map(|mut call| {
                        tokio::spawn(async move { while call.next_event().await.is_some() {} });
                        target.to_string()
                    })
                }
                Err(e) => Err(e),
            };
            let _ = followed.send(r);
        });
        Reply::new(StatusCode::ACCEPTED)
    }
}

/// The target: answers with 1000 Hz and records each call; notes how each
/// ended and whether it came with Replaces.
struct Target {
    record: std::path::PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl SipHandler for Target {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let replaces = call.replaces();
        self.log
            .lock()
            .unwrap()
            .push(format!("INVITE replaces={replaces}"));
        let record = replaces.then(|| self.record.clone());
        call.answer(ToneEar {
            freq: 1000.0,
            record,
        })
        .await
    }
    async fn ended(&mut self, reason: parrot_core::ua::EndReason) {
        self.log.lock().unwrap().push(format!("ended {reason:?}"));
    }
}

async fn endpoint_with<F, H>(factory: F) -> (Endpoint, String)
where
    F: Fn() -> H + Send + Sync + 'static,
    H: SipHandler,
{
    let ep = Endpoint::builder()
        .udp(free_addr())
        .handler(factory)
        .build()
        .await
        .unwrap();
    let uri = format!("sip:peer@{}", ep.local_addr(TransportKind::Udp).unwrap());
    (ep, uri)
}

/// An attended transfer (RFC 3891) among three Parrot endpoints: A talks
/// to B (the transferee) and to C (the target), then REFERs B to C with
/// Replaces naming the A–C dialog. B's handler accepts and follows; C's
/// call from B replaces A's (C hangs A up, `EndReason::Replaced`), A's
/// `transfer_attended` returns 200, and C hears B's 440 Hz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attended_transfer_replaces_the_consultation_call() {
    let tmp = TempDir::new("attended");
    let (followed_tx, mut followed) = mpsc::unbounded_channel();
    let (b, b_uri) = endpoint_with(move || Transferee {
        handle: None,
        endpoint: None,
        followed: followed_tx.clone(),
    })
    .await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (record, l) = (tmp.join("c-heard.wav"), log.clone());
    let (c, c_uri) = endpoint_with(move || Target {
        record: record.clone(),
        log: l.clone(),
    })
    .await;
    let a = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let quiet = || ToneEar {
        freq: 300.0,
        record: None,
    };
    let mut ab = a.dial(&b_uri).unwrap().media(quiet()).send().await.unwrap();
    ab.answered().await.unwrap();
    let mut ac = a.dial(&c_uri).unwrap().media(quiet()).send().await.unwrap();
    ac.answered().await.unwrap();
    let consultation = ac.dialog().await.unwrap();
    let outcome =
        tokio::time::timeout(Duration::from_secs(10), ab.transfer_attended(&consultation))
            .await
            .expect("the transfer has an outcome within 10 s");
    assert_eq!(outcome.unwrap().as_u16(), 200);
    let followed = followed.recv().await.unwrap();
    assert!(followed.is_ok(), "B followed the transfer: {followed:?}");
    // C hung up the consultation call: A's leg to C ends.
    let mut ac_events = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = ac.next_event().await {
            ac_events.push(format!("{ev:?}"));
        }
    })
    .await
    .expect("A's call to C ends");
    assert_eq!(
        ac_events.last().map(String::as_str),
        Some("Ended"),
        "{ac_events:?}"
    );
    // B hung up its leg to A after the transfer (follow_transfer).
    tokio::time::timeout(Duration::from_secs(5), async {
        while ab.next_event().await.is_some() {}
    })
    .await
    .expect("A's call to B ends");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("INVITE replaces=false"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| e == "INVITE replaces=true"), "{seen:?}");
    assert!(seen.iter().any(|e| e == "ended Replaced"), "{seen:?}");
    for ep in [&a, &b, &c] {
        ep.shutdown(Duration::from_secs(1)).await;
    }
    let (secs, tone) = parrot_tests::heard_mostly(&tmp.join("c-heard.wav"), 440.0);
    assert!(
        tone && secs > 1.5,
        "C heard B: {secs:.2} s of 440 Hz: {tone}"
    );
}
