//! `cargo xtask bench concurrency`: how many long calls with paced PCMU both
//! ways a Parrot UAS holds. Parrot UAC endpoints dial a Parrot UAS endpoint;
//! each side's media handler plays an endless tone (20 ms PCMU packets both
//! ways). N is stepped up (100, 250, 500, 1000 …; calls are added to the ones
//! already up) and each step is held `HOLD` seconds; it holds while fewer than
//! 1 % of send ticks are more than 5 ms late (p99 lateness ≤ 5 ms, from
//! `pacing_counters()`, both sides), no tick of either side was late by more
//! than one ptime (20 ms, `pacing_worst_ms()` over the hold) and every call
//! receives.
//!
//! Three modes, one after the other in one run:
//! - **same process**: callers and server in this process, on one tokio
//!   runtime (what one machine does when it is both ends);
//! - **shared**: the same, with every call's media on ports shared per media
//!   thread (`media::set_shared_ports`: batched `recvmmsg`, `sendmmsg` and GSO, streams
//!   told apart by the SSRCs both ends announce);
//! - **callers in another process**: this binary started again as the
//!   callers (`--callers URI`, driven over its stdin/stdout), so the server's
//!   own CPU and RSS per call are measured alone.
//!
//! Each step also reports the server's OPTIONS round trip (an OPTIONS every
//! 100 ms from a plain UDP socket during the hold: worst and p99) — signaling
//! must stay responsive however busy media is — and each ramp how long
//! hanging all its calls up took.
//!
//! RSS per call is (VmRSS at N − VmRSS at 0) / N and CPU per call (utime +
//! stime over the hold) / hold / N as a share of one core; in the same-process
//! mode both include the callers.
//!
//! Writes `target/bench/concurrency.json` and prints a table.
//! `PARROT_CONCURRENCY_STEPS=300,600` runs just those sizes;
//! `PARROT_CONCURRENCY_MODES=same,shared` (of `same`, `shared`, `separate`) just
//! those modes. Without
//! `--bench` it holds 4 calls for a moment in each mode and checks that audio
//! flows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use parrot_core::media::{
    Action, MediaHandler, pacing_counters, pacing_worst_ms, reset_pacing_counters,
};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, Endpoint, Incoming, OutgoingCall, Reply, SipHandler};
use parrot_tests::free_addr;
use parrot_tests::load::{bench_dir, cpu_seconds, machine_json, quantile, rss_kib};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Plays a tone for an hour: a call that talks until hung up.
struct Talk(f64);

impl MediaHandler for Talk {
    /// PCMU only: the benchmark measures G.711 calls (both ends would take G.722).
    fn codecs(&self) -> Vec<parrot_core::codec::Codec> {
        vec![parrot_core::codec::Codec::PCMU]
    }
    fn stream_started(&mut self) -> Action {
        Action::tone(self.0, 3600.0)
    }
}

struct Answer;

impl SipHandler for Answer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        call.answer(Talk(1000.0)).await
    }
}

/// Dials one call and waits until its media runs.
async fn dial(phone: Endpoint, uri: String) -> Option<OutgoingCall> {
    let mut call = phone
        .dial(&uri)
        .ok()?
        .media(Talk(440.0))
        .send()
        .await
        .ok()?;
    call.answered().await.ok()?;
    let started = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = call.next_event().await {
            if matches!(ev, CallEvent::MediaStarted { .. }) {
                return true;
            }
        }
        false
    })
    .await;
    matches!(started, Ok(true)).then_some(call)
}

/// The callers' side: an endpoint and its calls, wherever it runs.
struct Callers {
    phone: Endpoint,
    uri: String,
    calls: Vec<OutgoingCall>,
    before_lateness: Vec<f64>,
    before_received: Vec<u64>,
}

/// What the callers saw over a hold.
#[derive(Debug, Clone, Copy, Default)]
struct CallerReport {
    ticks: u64,
    late: u64,
    worst_ms: f64,
    receiving: usize,
}

impl Callers {
    async fn new(uri: String) -> Callers {
        let phone = Endpoint::builder()
            .udp(free_addr())
            .rtp_ports(22000..=32767)
            .unwrap()
            .build()
            .await
            .unwrap();
        Callers {
            phone,
            uri,
            calls: Vec::new(),
            before_lateness: Vec::new(),
            before_received: Vec::new(),
        }
    }

    /// Adds calls up to `n`, 50 dialing at a time; (calls up, seconds taken).
    async fn dial_up_to(&mut self, n: usize) -> (usize, f64) {
        let t = Instant::now();
        let mut failed = 0;
        while self.calls.len() < n && failed < 50 {
            let batch = (n - self.calls.len()).min(50);
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..batch {
                set.spawn(dial(self.phone.clone(), self.uri.clone()));
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Some(c)) => self.calls.push(c),
                    _ => failed += 1,
                }
            }
        }
        if self.calls.len() < n {
            eprintln!(
                "{n} calls: only {} set up ({failed} dials failed)",
                self.calls.len()
            );
        }
        (self.calls.len(), t.elapsed().as_secs_f64())
    }

    /// Start of a hold: the counts the hold is measured from.
    fn mark(&mut self) {
        self.before_lateness = self
            .calls
            .iter()
            .map(|c| c.media_stats().map_or(0.0, |s| s.max_send_lateness_ms))
            .collect();
        self.before_received = self
            .calls
            .iter()
            .map(|c| c.media_stats().map_or(0, |s| s.packets_received))
            .collect();
    }

    /// End of a hold (the counts are published once a second: called a
    /// second after it). `ticks`/`late` are this process's pacing counters.
    fn report(&self, ticks: u64, late: u64) -> CallerReport {
        let mut r = CallerReport {
            ticks,
            late,
            ..CallerReport::default()
        };
        for (i, c) in self.calls.iter().enumerate() {
            if let Some(s) = c.media_stats() {
                // The per-call maximum only grows: a new maximum is from the hold.
                if s.max_send_lateness_ms > self.before_lateness.get(i).copied().unwrap_or(0.0) {
                    r.worst_ms = r.worst_ms.max(s.max_send_lateness_ms);
                }
                if s.packets_received > self.before_received.get(i).copied().unwrap_or(0) {
                    r.receiving += 1;
                }
            }
        }
        r
    }

    /// Hangs every call up, 100 at a time; seconds taken.
    async fn hang_up(&mut self) -> f64 {
        let t = Instant::now();
        while !self.calls.is_empty() {
            let mut set = tokio::task::JoinSet::new();
            let n = self.calls.len().min(100);
            for mut c in self.calls.drain(..n) {
                set.spawn(async move { c.hangup().await.is_ok() });
            }
            while set.join_next().await.is_some() {}
        }
        let s = t.elapsed().as_secs_f64();
        self.phone.shutdown(Duration::from_millis(500)).await;
        s
    }
}

/// `--callers URI`: this binary as the other process. Reads commands on
/// stdin, answers each with one line on stdout.
fn callers_process(uri: String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut callers = Callers::new(uri).await;
        let mut snap = (0, 0);
        let mut snap_worst = 0.0f64;
        let stdin = std::io::stdin();
        let mut out = std::io::stdout();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let reply = match (words.next(), words.next()) {
                (Some("dial"), Some(n)) => {
                    let (up, secs) = callers.dial_up_to(n.parse().unwrap_or(0)).await;
                    format!("up {up} {secs}")
                }
                (Some("mark"), _) => {
                    callers.mark();
                    reset_pacing_counters();
                    "marked".to_owned()
                }
                (Some("snap"), _) => {
                    // The hold's end: its ticks (the report comes a second
                    // later, when the calls' counts of the hold are published).
                    snap = pacing_counters();
                    snap_worst = pacing_worst_ms();
                    "snapped".to_owned()
                }
                (Some("report"), _) => {
                    let mut r = callers.report(snap.0, snap.1);
                    r.worst_ms = r.worst_ms.max(snap_worst);
                    format!(
                        "report {} {} {} {}",
                        r.ticks, r.late, r.worst_ms, r.receiving
                    )
                }
                (Some("hangup"), _) => {
                    let secs = callers.hang_up().await;
                    let _ = writeln!(out, "done {secs}");
                    let _ = out.flush();
                    return;
                }
                _ => format!("error unknown command `{line}`"),
            };
            let _ = writeln!(out, "{reply}");
            let _ = out.flush();
        }
    });
}

/// The callers in another process, as the server side drives them.
struct RemoteCallers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl RemoteCallers {
    fn start(uri: &str) -> RemoteCallers {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--callers", uri])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the callers' process starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        RemoteCallers {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends a command and waits (off the runtime's threads) for its line.
    async fn ask(&mut self, command: &str) -> Vec<String> {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        tokio::task::block_in_place(|| self.stdout.read_line(&mut line)).unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    }
}

impl Drop for RemoteCallers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Either kind of callers, behind one face.
enum Side {
    Here(Callers),
    There(RemoteCallers),
}

impl Side {
    async fn dial_up_to(&mut self, n: usize) -> (usize, f64) {
        match self {
            Side::Here(c) => c.dial_up_to(n).await,
            Side::There(r) => {
                let w = r.ask(&format!("dial {n}")).await;
                (
                    w.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
                    w.get(2).and_then(|v| v.parse().ok()).unwrap_or(0.0),
                )
            }
        }
    }

    async fn mark(&mut self) {
        match self {
            Side::Here(c) => c.mark(),
            Side::There(r) => {
                r.ask("mark").await;
            }
        }
    }

    /// The hold's end (the callers' pacing counters are read now).
    async fn snap(&mut self) {
        if let Side::There(r) = self {
            r.ask("snap").await;
        }
    }

    /// The callers' report; in the same process, `here` are the pacing
    /// counters of the whole process (both sides).
    async fn report(&mut self, here: (u64, u64)) -> CallerReport {
        match self {
            Side::Here(c) => c.report(here.0, here.1),
            Side::There(r) => {
                let w = r.ask("report").await;
                let num = |i: usize| w.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                CallerReport {
                    ticks: num(1) as u64,
                    late: num(2) as u64,
                    worst_ms: num(3),
                    receiving: num(4) as usize,
                }
            }
        }
    }

    async fn hang_up(&mut self) -> f64 {
        match self {
            Side::Here(c) => c.hang_up().await,
            Side::There(r) => {
                let w = r.ask("hangup").await;
                w.get(1).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
            }
        }
    }
}

/// OPTIONS to the server every 100 ms until told to stop; the round trips in
/// milliseconds (a lost one counts as the 2 s it was waited for).
async fn probe_options(server: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> Vec<f64> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtts = Vec::new();
    let mut buf = [0u8; 4096];
    for i in 0u32.. {
        if *stop.borrow() {
            break;
        }
        let msg = format!(
            "OPTIONS sip:service@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bKprobe{i}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@{local}>;tag=probe\r\n\
             To: <sip:service@{server}>\r\n\
             Call-ID: probe-{i}@{local}\r\n\
             CSeq: {} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            i + 1
        );
        let t = Instant::now();
        socket.send_to(msg.as_bytes(), server).await.unwrap();
        let branch = format!("z9hG4bKprobe{i}");
        let got = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                let Ok((n, _)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if String::from_utf8_lossy(&buf[..n]).contains(&branch) {
                    return;
                }
            }
        })
        .await;
        rtts.push(if got.is_ok() {
            t.elapsed().as_secs_f64() * 1e3
        } else {
            2000.0
        });
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(t.elapsed())).await;
    }
    rtts
}

#[derive(Debug, Clone)]
struct Step {
    calls: usize,
    setup_s: f64,
    ticks: u64,
    late: u64,
    late_share: f64,
    worst_ms: f64,
    rss_kib: u64,
    cpu_share: f64,
    receiving: usize,
    options_p99_ms: f64,
    options_max_ms: f64,
    held: bool,
}

/// One ramp of one mode.
struct Ramp {
    mode: &'static str,
    steps: Vec<Step>,
    rss0: u64,
    hangup_s: f64,
    hung_up: usize,
}

async fn ramp(mode: &'static str, steps: &[usize], hold: f64, budget: Duration) -> Ramp {
    let started = Instant::now();
    // RTP ports below the kernel's ephemeral range (32768–60999), one
    // range per side: 2 ports (RTP, RTCP) per session.
    let server = Endpoint::builder()
        .udp(free_addr())
        .handler(|| Answer)
        .rtp_ports(10000..=21999)
        .unwrap()
        .build()
        .await
        .unwrap();
    let server_addr = server.local_addr(TransportKind::Udp).unwrap();
    let uri = format!("sip:service@{server_addr}");
    let mut side = if mode != "separate" {
        Side::Here(Callers::new(uri.clone()).await)
    } else {
        Side::There(RemoteCallers::start(&uri))
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss0 = rss_kib();
    let mut out: Vec<Step> = Vec::new();
    let mut up = 0;
    for &n in steps {
        if started.elapsed() > budget {
            eprintln!("time budget spent before {n} calls");
            break;
        }
        let (now_up, setup_s) = side.dial_up_to(n).await;
        up = now_up;
        // Settle, then measure over the hold.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        side.mark().await;
        reset_pacing_counters();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let probe = tokio::spawn(probe_options(server_addr, stop_rx));
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(hold)).await;
        let here = pacing_counters();
        let here_worst = pacing_worst_ms();
        let cpu = cpu_seconds() - cpu0;
        let wall = t0.elapsed().as_secs_f64();
        side.snap().await;
        let _ = stop_tx.send(true);
        let mut rtts = probe.await.unwrap_or_default();
        rtts.sort_by(f64::total_cmp);
        // Counts are published once a second: let the last second's arrive.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let rss = rss_kib();
        let mut callers = side.report(here).await;
        // The latest tick of any session over the hold, both sides (a call's
        // own maximum counts from its start, and may hide the hold's).
        callers.worst_ms = callers.worst_ms.max(here_worst);
        // Both sides' ticks: in one process `here` holds them all; apart,
        // the server's are `here` and the callers' come from their process.
        let (ticks, late) = match side {
            Side::Here(_) => here,
            Side::There(_) => (here.0 + callers.ticks, here.1 + callers.late),
        };
        let late_share = late as f64 / ticks.max(1) as f64;
        let held = up == n
            && ticks > 0
            && late_share < 0.01
            && callers.worst_ms <= 20.0
            && callers.receiving == n;
        let s = Step {
            calls: up,
            setup_s,
            ticks,
            late,
            late_share,
            worst_ms: callers.worst_ms,
            rss_kib: rss,
            cpu_share: cpu / wall,
            receiving: callers.receiving,
            options_p99_ms: quantile(&rtts, 0.99),
            options_max_ms: rtts.last().copied().unwrap_or(f64::NAN),
            held,
        };
        eprintln!("{mode}: {s:?}");
        out.push(s);
        if !held {
            break;
        }
    }
    let hangup_s = side.hang_up().await;
    drop(side);
    server.shutdown(Duration::from_millis(500)).await;
    eprintln!(
        "{mode}: {up} calls hung up in {hangup_s:.1} s; server {:?}",
        server.stats()
    );
    Ramp {
        mode,
        steps: out,
        rss0,
        hangup_s,
        hung_up: up,
    }
}

fn per_call(r: &Ramp, s: &Step) -> (f64, f64) {
    (
        s.rss_kib.saturating_sub(r.rss0) as f64 / s.calls.max(1) as f64,
        s.cpu_share / s.calls.max(1) as f64,
    )
}

fn describe(mode: &str) -> &'static str {
    match mode {
        "same" => "callers and server in one process (figures per call include both sides)",
        "shared" => {
            "callers and server in one process, media on shared ports (figures per call include both sides)"
        }
        _ => "callers in another process (figures per call are the server's alone)",
    }
}

/// The modes, in the order they run.
const MODES: [&str; 3] = ["same", "shared", "separate"];

fn table(r: &Ramp, hold: f64) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "mode {}: {}", r.mode, describe(r.mode));
    let _ = writeln!(
        t,
        "{:>6} {:>8} {:>9} {:>8} {:>9} {:>9} {:>10} {:>11} {:>12}  held",
        "calls",
        "setup s",
        "ticks",
        ">5ms %",
        "worst ms",
        "RSS MiB",
        "KiB/call",
        "core%/call",
        "OPTIONS p99/max ms"
    );
    for s in &r.steps {
        let (kib, cpu) = per_call(r, s);
        let _ = writeln!(
            t,
            "{:>6} {:>8.1} {:>9} {:>8.2} {:>9.1} {:>9.1} {:>10.1} {:>11.3} {:>8.1}/{:<7.1}  {}",
            s.calls,
            s.setup_s,
            s.ticks,
            s.late_share * 100.0,
            s.worst_ms,
            s.rss_kib as f64 / 1024.0,
            kib,
            cpu * 100.0,
            s.options_p99_ms,
            s.options_max_ms,
            if s.held { "yes" } else { "NO" }
        );
    }
    let _ = writeln!(
        t,
        "RSS with no call: {:.1} MiB; {} calls hung up in {:.1} s",
        r.rss0 as f64 / 1024.0,
        r.hung_up,
        r.hangup_s
    );
    match r.steps.iter().rev().find(|s| s.held) {
        Some(s) => {
            let (kib, cpu) = per_call(r, s);
            let _ = writeln!(
                t,
                "largest N held: {} calls ({} PCMU streams); {kib:.1} KiB RSS and {:.3} % of a core per call",
                s.calls,
                s.calls * 2,
                cpu * 100.0
            );
        }
        None => {
            let _ = writeln!(t, "no step held");
        }
    }
    if r.steps.last().is_some_and(|s| s.held) {
        let _ = writeln!(
            t,
            "(the top of the ramp held: not saturated, or the time budget ran out)"
        );
    }
    let _ = writeln!(
        t,
        "held: < 1 % of ticks > 5 ms late, no tick of either side > 20 ms late, every call receiving; {hold} s hold"
    );
    t
}

fn ramp_json(r: &Ramp) -> String {
    let mut json = String::new();
    let _ = writeln!(
        json,
        "{{ \"mode\": \"{}\", \"about\": \"{}\", \"rss_at_zero_kib\": {}, \"hangup_s\": {:.3}, \"hung_up\": {},",
        r.mode,
        describe(r.mode),
        r.rss0,
        r.hangup_s,
        r.hung_up
    );
    json.push_str("    \"ramp\": [\n");
    for (i, s) in r.steps.iter().enumerate() {
        let (kib, cpu) = per_call(r, s);
        let _ = write!(
            json,
            "      {{ \"calls\": {}, \"setup_s\": {:.2}, \"ticks\": {}, \"late_over_5ms\": {}, \"late_share\": {:.5}, \"worst_caller_lateness_ms\": {:.2}, \"receiving\": {}, \"rss_kib\": {}, \"rss_kib_per_call\": {kib:.1}, \"cpu_share\": {:.3}, \"cpu_share_per_call\": {cpu:.6}, \"options_p99_ms\": {:.2}, \"options_max_ms\": {:.2}, \"held\": {} }}",
            s.calls,
            s.setup_s,
            s.ticks,
            s.late,
            s.late_share,
            s.worst_ms,
            s.receiving,
            s.rss_kib,
            s.cpu_share,
            s.options_p99_ms,
            s.options_max_ms,
            s.held
        );
        json.push_str(if i + 1 < r.steps.len() { ",\n" } else { "\n" });
    }
    json.push_str("    ],\n");
    match r.steps.iter().rev().find(|s| s.held) {
        Some(s) => {
            let (kib, cpu) = per_call(r, s);
            let _ = write!(
                json,
                "    \"largest_n_held\": {}, \"rss_kib_per_call\": {kib:.1}, \"cpu_share_per_call\": {cpu:.6} }}",
                s.calls
            );
        }
        None => json.push_str(
            "    \"largest_n_held\": 0, \"rss_kib_per_call\": null, \"cpu_share_per_call\": null }",
        ),
    }
    json
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callers") {
        callers_process(args.get(i + 1).cloned().unwrap_or_default());
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    // PARROT_CONCURRENCY_STEPS=200,400 replaces the ramp (for profiling one size).
    let chosen: Option<Vec<usize>> = std::env::var("PARROT_CONCURRENCY_STEPS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let modes: Vec<&'static str> = match std::env::var("PARROT_CONCURRENCY_MODES") {
        Ok(chosen) => {
            let chosen: Vec<&str> = chosen.split(',').map(str::trim).collect();
            for c in &chosen {
                assert!(
                    MODES.contains(c),
                    "PARROT_CONCURRENCY_MODES: unknown mode {c:?} (modes: {})",
                    MODES.join(", ")
                );
            }
            MODES.into_iter().filter(|m| chosen.contains(m)).collect()
        }
        Err(_) => MODES.to_vec(),
    };
    let (steps, hold, budget): (&[usize], f64, Duration) = match (&chosen, bench) {
        // PARROT_CONCURRENCY_HOLD=30 holds each chosen step longer (for a profiler).
        (Some(s), _) if !s.is_empty() => {
            let hold = std::env::var("PARROT_CONCURRENCY_HOLD")
                .ok()
                .and_then(|h| h.parse().ok())
                .filter(|h: &f64| h.is_finite() && *h >= 1.0)
                .unwrap_or(4.0);
            (s, hold, Duration::from_secs(600))
        }
        (_, true) => (
            &[100, 250, 500, 1000, 1500, 2000, 2500, 3000, 4000],
            4.0,
            Duration::from_secs(200),
        ),
        (_, false) => (&[4], 1.0, Duration::from_secs(30)),
    };
    let started = Instant::now();
    // `--mode M --json-part PATH`: one ramp, run by the parent below in a
    // process of its own, so that one mode's memory and threads are not
    // counted in the next one's figures.
    if let Some(i) = args.iter().position(|a| a == "--mode") {
        let asked = args.get(i + 1).map(String::as_str);
        let mode = MODES
            .into_iter()
            .find(|m| Some(*m) == asked)
            .unwrap_or("separate");
        // Process-wide, before the first call: this process runs one mode.
        parrot_core::media::set_shared_ports(mode == "shared");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(ramp(mode, steps, hold, budget));
        drop(rt);
        if !bench {
            let s = r.steps.first().expect("one step");
            assert!(
                s.calls == 4 && s.ticks > 0 && s.receiving == 4,
                "{}: calls did not carry audio both ways: {s:?}",
                r.mode
            );
            return;
        }
        print!("{}", table(&r, hold));
        if let Some(path) = args
            .iter()
            .position(|a| a == "--json-part")
            .and_then(|j| args.get(j + 1))
        {
            std::fs::write(path, ramp_json(&r)).unwrap();
        }
        return;
    }
    let mut parts = Vec::new();
    for mode in modes {
        let part = bench_dir().join(format!("concurrency-{mode}.part"));
        let _ = std::fs::remove_file(&part);
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--mode", mode, "--json-part"]).arg(&part);
        if bench {
            cmd.arg("--bench");
        }
        let status = cmd.status().expect("the bench runs a mode");
        assert!(status.success(), "mode {mode} failed: {status}");
        if bench {
            parts.push(std::fs::read_to_string(&part).expect("the mode wrote its figures"));
            let _ = std::fs::remove_file(&part);
        }
    }

    if !bench {
        println!(
            "concurrency bench: calls carry paced audio in each mode (run with --bench to measure)"
        );
        return;
    }
    println!("took {:.0} s", started.elapsed().as_secs_f64());

    let mut json = String::from("{\n  \"bench\": \"concurrency\",\n");
    let _ = writeln!(json, "  \"machine\": {},", machine_json());
    let _ = writeln!(
        json,
        "  \"method\": {{ \"calls\": \"parrot UAC endpoint -> parrot UAS endpoint, tokio multi-thread runtimes; media on parrot's media threads\", \"media\": \"PCMU 20 ms both ways, a tone each side\", \"hold_s\": {hold}, \"held\": \"late(>5 ms) ticks < 1% (p99 <= 5 ms), no tick of either side > 20 ms late, every call receiving\", \"cpu_share\": \"(utime+stime) / wall over the hold, 1.0 = one core\", \"options\": \"OPTIONS every 100 ms to the server during the hold, round trip\" }},"
    );
    json.push_str("  \"modes\": [\n    ");
    json.push_str(&parts.join(",\n    "));
    json.push_str("\n  ]\n}\n");
    let path = bench_dir().join("concurrency.json");
    std::fs::write(&path, json).unwrap();
    println!("wrote {}", path.display());
}
