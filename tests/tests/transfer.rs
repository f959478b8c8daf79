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
