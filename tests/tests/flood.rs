//! A flood of INVITEs that are never ACKed (issue 13): the endpoint keeps
//! answering OPTIONS during it, the calls it accepts stay within its overload
//! cap (so their RTP ports do too), every call, transaction and port is
//! released once 64·T1 has passed, and the memory goes back.
//!
//! Bounded and loopback: sipp sends 2,000 INVITEs/s for 3 s from
//! `scenarios/flood_no_ack.xml`; a thread of its own (not a task of the
//! endpoint's runtime) sends an OPTIONS every 100 ms and times the 200. No
//! timing assertion beyond generous bounds: the machine is shared.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::MediaHandler;
use parrot_core::transaction::TimerConfig;
use parrot_core::transport::TransportKind;
use parrot_core::ua::{Endpoint, EndpointStats, Incoming, Reply, SipHandler};
use parrot_tests::load::rss_kib;
use parrot_tests::{free_addr, scenarios, wait_for_stats};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The allocator a server built from Parrot's template runs with (its
/// `jemalloc` feature): freed memory goes back to the OS after the flood.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// No audio of its own: the call only holds its RTP sockets.
struct Quiet;
impl MediaHandler for Quiet {}

/// Answers every INVITE with media, counting the 2xx and the refusals.
#[derive(Clone)]
struct Answer {
    answered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl SipHandler for Answer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let reply = call.answer(Quiet).await;
        if reply.status().is_success() {
            self.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        reply
    }
}

/// How long OPTIONS waited for its 200: the latencies, and how many got none
/// within `patience`.
#[derive(Default, Debug)]
struct Probes {
    waits: Vec<Duration>,
    unanswered: usize,
}

impl Probes {
    fn worst(&self) -> Duration {
        self.waits.iter().copied().max().unwrap_or_default()
    }
}

/// Sends an OPTIONS to `server` every 100 ms until `stop`, from a blocking
/// socket in a thread of its own, and times each 200 (up to `patience`).
fn probe(server: SocketAddr, stop: Arc<AtomicBool>, patience: Duration) -> Probes {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut probes = Probes::default();
    let mut n = 0u32;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let branch = format!("z9hG4bK-probe-{n}");
        let msg = format!(
            "OPTIONS sip:probe@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch}\r\n\
             From: <sip:probe@{local}>;tag=p{n}\r\n\
             To: <sip:probe@{server}>\r\n\
             Call-ID: probe-{n}@{local}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let sent = Instant::now();
        sock.send_to(msg.as_bytes(), server).unwrap();
        let mut answered = false;
        while sent.elapsed() < patience {
            let Ok((len, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..len]);
            if text.starts_with("SIP/2.0 200") && text.contains(&branch) {
                probes.waits.push(sent.elapsed());
                answered = true;
                break;
            }
        }
        if !answered {
            probes.unanswered += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    probes
}

/// The even ports of `range` that cannot be bound now (held by someone).
fn ports_held(range: std::ops::RangeInclusive<u16>) -> usize {
    range
        .step_by(2)
        .filter(|p| UdpSocket::bind(("127.0.0.1", *p)).is_err())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_flood_without_ack_leaves_options_answered_and_memory_freed() {
    let started = Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let handler = Answer {
        answered: answered.clone(),
        refused: refused.clone(),
    };
    // 500 RTP pairs: a flood of 2,000/s held for 64·T1 would take them all in
    // a quarter of a second without a cap. T1 = 20 ms: an un-ACKed 2xx is
    // given up after 1.28 s (§13.3.1.4), so the flood drains in seconds.
    let rtp = 41000..=41999;
    let ep = Endpoint::builder()
        .udp(free_addr())
        .handler(move || handler.clone())
        .rtp_ports(rtp.clone())
        .unwrap()
        .timers(TimerConfig::default().with_t1(Duration::from_millis(20)))
        .build()
        .await
        .unwrap();
    let addr = ep.local_addr(TransportKind::Udp).unwrap();
    let rss_before = rss_kib();
    let held_before = ports_held(rtp.clone());
    // The most calls the endpoint had at once, sampled every 10 ms.
    let most_calls = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (ep, most) = (ep.clone(), most_calls.clone());
        tokio::spawn(async move {
            loop {
                most.fetch_max(ep.stats().calls, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let stop = stop.clone();
        std::thread::spawn(move || probe(addr, stop, Duration::from_secs(5)))
    };
    let sf = scenarios().join("flood_no_ack.xml");
    let sf = sf.to_string_lossy().to_string();
    let flood_started = Instant::now();
    let run = parrot_tests::sipp_uac(
        addr,
        "30s",
        Duration::from_secs(60),
        &["-sf", &sf, "-m", "6000", "-r", "2000", "-l", "20000"],
    )
    .await;
    let flood_time = flood_started.elapsed();
    let rss_peak = rss_kib();
    let at_end = ep.stats();
    stop.store(true, Ordering::Relaxed);
    let during = during.join().unwrap();
    sampler.abort();

    let drained = |s: &EndpointStats| s.transactions == 0 && s.dialogs == 0 && s.calls == 0;
    let drain_started = Instant::now();
    let s = wait_for_stats(&ep, Duration::from_secs(20), drained).await;
    let drain_time = drain_started.elapsed();
    let after = {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || probe(addr, s2, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap()
    };
    // At least a third of what the flood took goes back within 20 s.
    // jemalloc's background thread purges dirty pages within its 10 s decay,
    // counted from when they were freed, partly after the state drained.
    // Measured: 15 MiB before, 41-50 at the flood's end, 21-26 six seconds
    // after the drain, about three quarters back; on 2026-12-03, with a
    // smaller flood peak (30 MiB), sometimes nothing more at 12 s and 8 of
    // 13 MiB back at 13.8 s, so 12 s was too short. glibc's malloc kept 39 of
    // 43 MiB (a tenth back), and 206 of 211 before the cap.
    let rss_allowed = rss_before + rss_peak.saturating_sub(rss_before) * 2 / 3;
    let drained_at = Instant::now();
    let mut rss_after = rss_kib();
    while rss_after > rss_allowed && drained_at.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_after = rss_kib();
    }
    let rss_wait = drained_at.elapsed();
    let held = ports_held(rtp);

    eprintln!(
        "flood: {flood_time:?}, sipp successful {:?} failed {:?}; answered 200: {}, refused by the handler: {}, 503 by the core: {}",
        run.stat("SuccessfulCall(C)"),
        run.stat("FailedCall(C)"),
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        at_end.rejected_overload,
    );
    eprintln!("at the flood's end: {at_end:?}");
    eprintln!(
        "OPTIONS during the flood: {} answered, worst {:?}, {} unanswered within 5 s",
        during.waits.len(),
        during.worst(),
        during.unanswered
    );
    eprintln!(
        "drained in {drain_time:?}: {s:?}; OPTIONS after: {} answered, worst {:?}, {} unanswered",
        after.waits.len(),
        after.worst(),
        after.unanswered
    );
    eprintln!(
        "RSS: {rss_before} KiB before, {rss_peak} KiB at the flood's end, {rss_after} KiB {rss_wait:?} after the drain (allowed {rss_allowed}); at most {} calls at once; RTP ports held: {held_before} before, {held} after; test ran {:?}",
        most_calls.load(Ordering::Relaxed),
        started.elapsed()
    );

    // Every INVITE got a final response (200 or 503) within 5 s, the 503s
    // from the core before any handler ran.
    assert_eq!(run.stat("FailedCall(C)"), Some(0), "{}", run.output);
    assert!(at_end.rejected_overload > 0, "the flood was not refused");
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "a handler failed to bind RTP: the cap let the calls take every port"
    );
    // Calls in progress (pending or not ACKed) are held to half the 500
    // pairs; the calls counted also include those hung up at 64·T1 whose
    // task has ended (sockets closed) but whose end the core has not read
    // yet (measured: at most 377). Before the cap: 2,219 at the flood's end.
    let most = most_calls.load(Ordering::Relaxed);
    assert!(most <= 1000, "{most} calls at once with 500 RTP pairs");
    // OPTIONS answered during the flood, each within 2 s (measured: at most
    // 0.15-0.23 s; before: up to 5 s, 6 answered in 10 s).
    assert_eq!(during.unanswered, 0, "OPTIONS lost during the flood");
    assert!(!during.waits.is_empty(), "no OPTIONS sent during the flood");
    assert!(
        during.worst() <= Duration::from_secs(2),
        "OPTIONS waited {:?} during the flood",
        during.worst()
    );
    assert_eq!(after.unanswered, 0, "OPTIONS lost after the flood");
    assert!(after.worst() <= Duration::from_secs(2));
    // Everything released once 64·T1 (1.28 s) has passed.
    assert!(drained(&s), "state left after the flood: {s:?}");
    assert!(
        held <= held_before,
        "RTP ports still held after the drain: {held} (before: {held_before})"
    );
    // Peak: the flood's state is bounded by the cap (measured +35 MiB;
    // +199 MiB before the cap).
    assert!(
        rss_peak <= rss_before + 128 * 1024,
        "RSS rose from {rss_before} KiB to {rss_peak} KiB"
    );
    assert!(
        rss_after <= rss_allowed,
        "RSS {rss_after} KiB {rss_wait:?} after the drain: {rss_before} KiB before, {rss_peak} KiB at the flood's end"
    );
    ep.shutdown(Duration::from_secs(1)).await;
}
