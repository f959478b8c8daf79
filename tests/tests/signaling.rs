//! Signaling against real peers: sipp's built-in scenarios and our own XML
//! scenarios (`tests/scenarios/`) against Parrot's UAS, Parrot's UAC against
//! sipp's UAS, with and without packet loss; and a handler panic contained.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::message::StatusCode;
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::{free_addr, free_port, scenarios, sipp};
use std::net::SocketAddr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

#[derive(Clone)]
struct Answer {
    ring: Option<Duration>,
}

impl SipHandler for Answer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        if call.to_user() == Some("panic") {
            panic!("this handler panics on purpose");
        }
        if let Some(wait) = self.ring {
            call.ring().await.unwrap();
            tokio::time::sleep(wait).await;
        }
        Reply::ok()
    }
}

async fn uas(kind: TransportKind, ring: Option<Duration>) -> (Endpoint, SocketAddr) {
    let addr = free_addr();
    let b = Endpoint::builder().handler(move || Answer { ring });
    let b = if kind == TransportKind::Tcp {
        b.tcp(addr)
    } else {
        b.udp(addr)
    };
    (b.build().await.unwrap(), addr)
}

/// Waits until the endpoint holds no transaction and no dialog (timers run out).
async fn drained(ep: &Endpoint, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let s = ep.stats();
        if s.dialogs == 0 && s.calls == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn sipp_uac(addr: SocketAddr, extra: &[&str]) -> parrot_tests::SippRun {
    parrot_tests::sipp_uac(addr, "60s", LIMIT, extra).await
}

fn report(what: &str, run: &parrot_tests::SippRun) {
    eprintln!(
        "{what}: successful {:?}, failed {:?}, retransmissions {:?}",
        run.stat("SuccessfulCall(C)"),
        run.stat("FailedCall(C)"),
        run.stat("Retransmissions(C)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_calls_parrot_uas_over_udp() {
    let (ep, addr) = uas(TransportKind::Udp, None).await;
    let run = sipp_uac(addr, &["-m", "100", "-r", "50"]).await;
    report("sipp uac → parrot uas (udp)", &run);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(100));
    assert_eq!(run.stat("FailedCall(C)"), Some(0));
    assert!(
        drained(&ep, Duration::from_secs(10)).await,
        "calls left: {:?}",
        ep.stats()
    );
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_calls_parrot_uas_over_tcp() {
    let (ep, addr) = uas(TransportKind::Tcp, None).await;
    let run = sipp_uac(addr, &["-m", "50", "-r", "50", "-t", "t1"]).await;
    report("sipp uac → parrot uas (tcp)", &run);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(50));
    assert_eq!(run.stat("FailedCall(C)"), Some(0));
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_with_10_percent_loss_still_completes_every_call() {
    let (ep, addr) = uas(TransportKind::Udp, None).await;
    let run = sipp_uac(addr, &["-m", "30", "-r", "10", "-lost", "10"]).await;
    report("sipp uac -lost 10 → parrot uas", &run);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(30));
    assert_eq!(run.stat("FailedCall(C)"), Some(0));
    ep.shutdown(Duration::from_secs(1)).await;
}

/// Parrot's UAC against sipp's `uas`. With `lossy`, the INVITE transactions go
/// through a relay that drops every 10th datagram each way (sipp's own `-lost`
/// is not used here: when it drops the INVITE that creates a call, sipp treats
/// the retransmissions as duplicates of a message it never answered, and the
/// call cannot complete whatever the caller does).
async fn parrot_calls_sipp_uas(calls: usize, lossy: bool) {
    let addr = free_addr();
    let mut args: Vec<String> = ["-sn", "uas", "-i", "127.0.0.1", "-p"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push(addr.port().to_string());
    // Under loss sipp's own scenario can give up on a call (a lost ACK),
    // and `-m` would then make it exit before we are done: let it run, and
    // judge only Parrot's side (every call answered and hung up).
    let m = if lossy { 1000 } else { calls };
    args.extend([
        "-m".to_owned(),
        m.to_string(),
        "-timeout".to_owned(),
        "60s".to_owned(),
    ]);
    let sipp_run = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sipp(&args, LIMIT).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ep = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let via = if lossy {
        parrot_tests::lossy_relay(addr, 10).await
    } else {
        addr
    };
    let uri = format!("sip:service@{via}");
    let mut completed = 0;
    for _ in 0..calls {
        let mut call = ep.dial(&uri).unwrap().send().await.unwrap();
        let ok = call.answered().await;
        assert!(ok.is_ok(), "call not answered: {ok:?}");
        let bye = call.hangup().await.unwrap();
        assert_eq!(bye.status(), StatusCode::OK);
        completed += 1;
    }
    assert_eq!(completed, calls);
    if lossy {
        // Dropping the task kills sipp (kill_on_drop).
        sipp_run.abort();
    } else {
        let run = sipp_run.await.unwrap();
        report("parrot uac → sipp uas", &run);
        assert_eq!(run.code, Some(0), "{}", run.output);
    }
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_uac_calls_sipp_uas() {
    parrot_calls_sipp_uas(20, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_uac_calls_sipp_uas_with_10_percent_loss() {
    parrot_calls_sipp_uas(20, true).await;
}

async fn scenario(file: &str, ep_addr: SocketAddr, calls: &str) -> parrot_tests::SippRun {
    let sf = scenarios().join(file);
    let sf = sf.to_string_lossy().to_string();
    let target = ep_addr.to_string();
    let port = free_port().to_string();
    sipp(
        &[
            "-sf",
            sf.as_str(),
            target.as_str(),
            "-s",
            "service",
            "-i",
            "127.0.0.1",
            "-p",
            port.as_str(),
            "-m",
            calls,
            "-timeout",
            "30s",
        ],
        LIMIT,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_gets_487() {
    let (ep, addr) = uas(TransportKind::Udp, Some(Duration::from_secs(5))).await;
    let run = scenario("cancel.xml", addr, "5").await;
    report("CANCEL scenario", &run);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        drained(&ep, Duration::from_secs(10)).await,
        "calls left: {:?}",
        ep.stats()
    );
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_in_dialog() {
    let (ep, addr) = uas(TransportKind::Udp, None).await;
    let run = scenario("reinvite.xml", addr, "5").await;
    assert_eq!(run.code, Some(0), "{}", run.output);
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_for_unknown_dialog_gets_481() {
    let (ep, addr) = uas(TransportKind::Udp, None).await;
    let run = scenario("unknown_dialog.xml", addr, "3").await;
    assert_eq!(run.code, Some(0), "{}", run.output);
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_gets_200_with_allow() {
    let (ep, addr) = uas(TransportKind::Udp, None).await;
    let run = scenario("options.xml", addr, "3").await;
    assert_eq!(run.code, Some(0), "{}", run.output);
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_challenge_answered_by_sipp() {
    let addr = free_addr();
    let ep = Endpoint::builder()
        .udp(addr)
        .handler(|| Answer { ring: None })
        .authenticate("parrot.test", |user| {
            (user == "alice").then(|| "wonderland".to_owned())
        })
        .build()
        .await
        .unwrap();
    let run = scenario("auth.xml", addr, "3").await;
    assert_eq!(run.code, Some(0), "{}", run.output);
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_ends_only_its_call() {
    let (server, addr) = uas(TransportKind::Udp, None).await;
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..51 {
        let client = client.clone();
        let user = if i == 25 { "panic" } else { "service" };
        let uri = format!("sip:{user}@{addr}");
        tasks.push(tokio::spawn(async move {
            let mut call = client.dial(&uri).unwrap().send().await.unwrap();
            match call.answered().await {
                Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    call.hangup().await.map(|r| r.status())
                }
                Err(e) => Err(e),
            }
        }));
    }
    let mut ok = 0;
    let mut server_errors = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) if s == StatusCode::OK => ok += 1,
            Err(parrot_core::ua::UaError::Rejected(s))
                if s == StatusCode::SERVER_INTERNAL_ERROR =>
            {
                server_errors += 1
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((ok, server_errors), (50, 1));
    // The counts are published after each turn of the endpoint's loop: the
    // turn that sent the 500 may not have ended when it arrives here.
    let s = parrot_tests::wait_for_stats(&server, Duration::from_secs(5), |s| s.panics > 0).await;
    assert_eq!(s.panics, 1);
    assert!(
        drained(&server, Duration::from_secs(10)).await,
        "calls left: {:?}",
        server.stats()
    );
    let _ = CallEvent::Ended;
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}
