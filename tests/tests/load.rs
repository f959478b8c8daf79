//! Scaled-down load tests (the benches are `cargo xtask bench cps|concurrency`):
//! no leak over a few thousand calls, no failed call under packet loss, and
//! overload answered with 503 + Retry-After, then recovered from. No timing
//! assertions: the machine may be shared and slow.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::transaction::TimerConfig;
use parrot_core::transport::TransportKind;
use parrot_core::ua::{Endpoint, EndpointStats, Incoming, Reply, SipHandler};
use parrot_tests::load::rss_kib;
use parrot_tests::{SippRun, free_addr, scenarios, wait_for_stats};
use std::net::SocketAddr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// One test at a time: the leak check reads the process's RSS, which the
/// other tests (same process) would move.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Answers 200, after holding the INVITE for `hold` if set.
#[derive(Clone, Copy)]
struct Answer {
    hold: Option<Duration>,
}

impl SipHandler for Answer {
    async fn invite(&mut self, _call: &mut Incoming) -> Reply {
        if let Some(hold) = self.hold {
            tokio::time::sleep(hold).await;
        }
        Reply::ok()
    }
}

async fn sipp_uac(addr: SocketAddr, extra: &[&str]) -> SippRun {
    parrot_tests::sipp_uac(addr, "100s", LIMIT, extra).await
}

fn report(what: &str, run: &SippRun, ep: &EndpointStats) {
    eprintln!(
        "{what}: successful {:?}, failed {:?}, retransmissions {:?}; endpoint {ep:?}",
        run.stat("SuccessfulCall(C)"),
        run.stat("FailedCall(C)"),
        run.stat("Retransmissions(C)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_calls_leave_no_state_and_no_memory_growth() {
    let _serial = SERIAL.lock().await;
    // T1 = 20 ms: Timer J and L (64·T1) end 1.3 s after their call, so the
    // first 300 calls (1.5 s at 200 cps) already reach the steady number of
    // lingering transactions, and the baseline is not below the run's peak.
    let ep = Endpoint::builder()
        .udp(free_addr())
        .handler(|| Answer { hold: None })
        .timers(TimerConfig::default().with_t1(Duration::from_millis(20)))
        .build()
        .await
        .unwrap();
    let addr = ep.local_addr(TransportKind::Udp).unwrap();
    eprintln!("RSS before any call: {} KiB", rss_kib());
    let drained = |s: &EndpointStats| s.transactions == 0 && s.dialogs == 0 && s.calls == 0;

    let warm = sipp_uac(addr, &["-m", "300", "-r", "200", "-l", "400"]).await;
    let s = wait_for_stats(&ep, Duration::from_secs(15), drained).await;
    report("first 300 calls", &warm, &s);
    assert_eq!(warm.code, Some(0), "{}", warm.output);
    assert_eq!(warm.stat("SuccessfulCall(C)"), Some(300));
    assert!(drained(&s), "state left after 300 calls: {s:?}");
    let rss_warm = rss_kib();

    let run = sipp_uac(addr, &["-m", "2700", "-r", "200", "-l", "400"]).await;
    let s = wait_for_stats(&ep, Duration::from_secs(15), drained).await;
    report("2,700 more calls", &run, &s);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(2700));
    assert_eq!(run.stat("FailedCall(C)"), Some(0));
    assert_eq!(s.dialogs, 0, "dialogs left: {s:?}");
    assert_eq!(s.calls, 0, "calls left: {s:?}");
    assert_eq!(
        s.transactions, 0,
        "transactions left after the timers: {s:?}"
    );
    let rss_end = rss_kib();
    let allowed = rss_warm + rss_warm / 10 + 2048;
    eprintln!(
        "RSS: {rss_warm} KiB after 300 calls, {rss_end} KiB after 3,000 (allowed up to {allowed} KiB)"
    );
    assert!(
        rss_end <= allowed,
        "RSS grew from {rss_warm} KiB to {rss_end} KiB over 2,700 calls"
    );
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_fails_no_call() {
    let _serial = SERIAL.lock().await;
    let ep = Endpoint::builder()
        .udp(free_addr())
        .handler(|| Answer { hold: None })
        .build()
        .await
        .unwrap();
    let addr = ep.local_addr(TransportKind::Udp).unwrap();
    let run = sipp_uac(addr, &["-m", "100", "-r", "20", "-lost", "5"]).await;
    report("sipp uac -lost 5, 100 calls at 20 cps", &run, &ep.stats());
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(100));
    assert_eq!(run.stat("FailedCall(C)"), Some(0));
    assert!(
        run.stat("Retransmissions(C)").unwrap_or(0) > 0,
        "5 % loss on 100 calls should cost retransmissions"
    );
    ep.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_gets_503_with_retry_after_then_recovers() {
    let _serial = SERIAL.lock().await;
    // 5 INVITEs at once, each held 500 ms: about 10 calls/s of capacity.
    let ep = Endpoint::builder()
        .udp(free_addr())
        .handler(|| Answer {
            hold: Some(Duration::from_millis(500)),
        })
        .max_server_transactions(5)
        .build()
        .await
        .unwrap();
    let addr = ep.local_addr(TransportKind::Udp).unwrap();
    let sf = scenarios().join("uac_overload.xml");
    let sf = sf.to_string_lossy().to_string();
    // 100 calls at 50 cps: five times the capacity.
    let run = sipp_uac(addr, &["-sf", &sf, "-m", "100", "-r", "50"]).await;
    let s = ep.stats();
    report("100 calls at 50 cps, capacity ~10 cps", &run, &s);
    assert_eq!(run.code, Some(0), "{}", run.output);
    // Every call ended as one of the two outcomes: 503 (with Retry-After,
    // checked by the scenario) or a completed call.
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(100), "{}", run.output);
    assert_eq!(run.stat("FailedCall(C)"), Some(0));
    assert!(s.rejected_overload > 0, "nothing refused: {s:?}");
    assert!(s.rejected_overload < 100, "nothing accepted: {s:?}");
    eprintln!(
        "refused with 503: {}, accepted and completed: {}",
        s.rejected_overload,
        100 - s.rejected_overload
    );
    let calls = wait_for_stats(&ep, Duration::from_secs(10), |s| {
        s.calls == 0 && s.dialogs == 0
    })
    .await;
    assert_eq!(calls.calls, 0, "calls left: {calls:?}");

    // The load has dropped: a new run within capacity has no failure, no 503.
    let rejected = s.rejected_overload;
    let after = sipp_uac(addr, &["-m", "10", "-r", "5"]).await;
    let s = ep.stats();
    report("10 calls at 5 cps afterwards", &after, &s);
    assert_eq!(after.code, Some(0), "{}", after.output);
    assert_eq!(after.stat("SuccessfulCall(C)"), Some(10));
    assert_eq!(after.stat("FailedCall(C)"), Some(0));
    assert_eq!(s.rejected_overload, rejected, "503s after the load dropped");
    ep.shutdown(Duration::from_secs(1)).await;
}
