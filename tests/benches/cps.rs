//! `cargo xtask bench cps`: SIP responders under sipp `uac` load on
//! loopback, side by side in one run: Parrot (a `parrot_core` `Endpoint`
//! answering 200, run as a process of its own), sipp's own `uas`, and
//! Kamailio 5.6 as a stateful responder (`docs/kamailio/responder.cfg`).
//! Every call is sipp's built-in `uac` scenario: INVITE, 200, ACK, BYE, 200.
//!
//! Two modes, both run by default (`PARROT_CPS_MODE=fixed|ramp|both`):
//!
//! - **fixed**: the same rate (`PARROT_CPS_RATE`, default 2000 calls/s) for
//!   the same time (`PARROT_CPS_SECS`, default 10 s) against Parrot (a tokio
//!   runtime with one worker per CPU, the system allocator), the same
//!   Parrot with jemalloc as its allocator (`parrot-je`: what a generated
//!   server built with `--features jemalloc` runs; the difference is what
//!   glibc's malloc costs per call), Parrot on a runtime with one worker
//!   (`parrot-1w`: the difference is what cross-thread wake-ups cost), and
//!   Kamailio, each a fresh process. For each: calls completed and failed,
//!   sipp's retransmissions, the kernel's UDP receive-buffer drops, INVITE→200
//!   p50/p99/max, the responder's context switches per call (all its
//!   threads, `/proc/PID/task/*/status`) and its CPU (utime + stime of its
//!   processes: every Kamailio child, Parrot's thread group; `/proc/PID/stat`)
//!   per 1,000 calls, over the calls and again after `PARROT_CPS_LINGER` s
//!   (default 33: 64·T1 + 1 s, when every transaction of the run has ended
//!   in both), since a transaction's end is part of its cost. This runs in
//!   `PARROT_CPS_ROUNDS` rounds (default 3), each running every responder
//!   once, the order rotated a place a round; the goal is judged on the
//!   median of the rounds' Parrot/Kamailio ratios. (On a shared VM the
//!   machine's speed drifts by ±15 % over minutes, sipp's own CPU for the same
//!   work with it: run once each, one after the other, two responders
//!   differed by as much as the drift.)
//! - **ramp**: 500, 1000, 2000 … calls/s (`PARROT_CPS_RATES`), each held
//!   `HOLD` seconds (`-m rate·HOLD`, `-l 2·rate` concurrent calls), until a
//!   step fails: a failed or unfinished call, retransmissions above 1 % of
//!   the calls, or fewer than 95 % of the offered calls per second completed.
//!   The knee is the highest rate held. Each step also has p50/p99/max and
//!   the responder's CPU per 1,000 calls.
//!
//! `PARROT_CPS_RESPONDERS=parrot,kamailio` picks responders (default:
//! parrot,parrot-je,parrot-1w,sipp-uas,kamailio; parrot-1w only runs the fixed rate,
//! sipp-uas only ramps; `PARROT_CPS_WORKERS=N` sets the worker threads of
//! the `parrot` responder). INVITE→200 is sipp's `-trace_rtt`: INVITE
//! sent to 200 received as sipp sees it, on its millisecond clock (0 means
//! under 1 ms; a value is ±1 ms). sipp runs on the same cores as the
//! responder, so its own CPU (`cutime` of this process across the run) is
//! printed too.
//!
//! The Parrot responder is the `cps_responder` binary (`parrot-je`: this
//! binary again, whose allocator is jemalloc; the same code), started with
//! `PARROT_CPS_RESPONDER=IP:PORT` (it serves until its stdin closes, then
//! prints its endpoint's counts); `PARROT_CPS_WRAP="valgrind --tool=callgrind"`
//! (or `perf record -g --`) puts a profiler in front of it.
//!
//! Writes `target/bench/cps.json` and `target/bench/cps.svg` (offered vs
//! completed cps per contender) and prints the tables and the issue's goals
//! (met or not; nothing is asserted on timings). Without `--bench` (as
//! `cargo test --all-targets` runs it) it runs one tiny step of each mode per
//! contender (Kamailio only if installed) and checks that the numbers come out.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use parrot_tests::load::{
    CPS_RESPONDER_ENV, bench_dir, children_cpu_seconds, cps_responder, json_str, machine_json,
    quantile, tree_context_switches, tree_cpu_seconds, udp_rcvbuf_errors, udp_socket_drops,
};
use parrot_tests::{TempDir, free_addr, free_port};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// jemalloc: the allocator of the `parrot-je` responder (this binary started
/// again). The sipp driving and the measuring here are not measured.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One run of sipp at one rate.
#[derive(Debug, Clone, Default)]
struct Step {
    offered: u32,
    created: u64,
    successful: u64,
    failed: u64,
    retransmissions: u64,
    /// Datagrams the kernel dropped for a full receive buffer (any UDP
    /// socket on the machine) during the step.
    kernel_drops: Option<u64>,
    /// Of those, the ones on the responder's own socket (the rest were
    /// sipp's, or other programs').
    responder_drops: Option<u64>,
    elapsed: f64,
    completed_cps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    rtt_samples: usize,
    /// The responder's CPU seconds (all its processes) during the step.
    cpu_s: Option<f64>,
    /// The responder's context switches (all its threads) during the step.
    switches: Option<u64>,
    /// sipp's CPU seconds.
    sipp_cpu_s: f64,
    held: bool,
}

impl Step {
    fn cpu_per_1000(&self) -> Option<f64> {
        per_1000(self.cpu_s, self.successful)
    }

    fn switches_per_call(&self) -> Option<f64> {
        self.switches
            .filter(|_| self.successful > 0)
            .map(|n| n as f64 / self.successful as f64)
    }
}

/// Kernel receive-buffer drops in the step: all, and the responder's own socket's.
fn drops_str(s: &Step) -> String {
    let n = |v: Option<u64>| v.map_or("?".to_owned(), |d| d.to_string());
    format!("{}/{}", n(s.kernel_drops), n(s.responder_drops))
}

fn per_1000(cpu: Option<f64>, calls: u64) -> Option<f64> {
    cpu.filter(|_| calls > 0).map(|c| c * 1000.0 / calls as f64)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
}

fn json_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("null".to_owned(), |v| format!("{v:.digits$}"))
}

/// A ramp's results for one responder.
struct Contender {
    name: &'static str,
    about: String,
    steps: Vec<Step>,
    knee: u32,
    skipped: Option<String>,
}

/// A fixed-rate run's results for one responder.
struct Fixed {
    name: &'static str,
    about: String,
    /// Which round (0, 1, …): every round runs each responder once.
    round: u32,
    step: Step,
    /// CPU seconds from the first call until `PARROT_CPS_LINGER` s after sipp ended.
    cpu_with_linger_s: Option<f64>,
}

/// The last value of a column of sipp's `;`-separated statistics CSV.
fn column<'a>(header: &[&str], row: &[&'a str], name: &str) -> Option<&'a str> {
    header
        .iter()
        .position(|h| *h == name)
        .and_then(|i| row.get(i).copied())
}

/// sipp's time columns: `date<TAB>time<TAB>epoch.micros`; the epoch seconds.
fn epoch(field: &str) -> f64 {
    field
        .split('\t')
        .next_back()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs sipp's `uac` at `rate` cps for `secs` seconds against `target`,
/// reading the CPU of `responder` (a pid: it and its descendants) around it.
fn step(target: SocketAddr, rate: u32, secs: u32, responder: u32) -> Step {
    let tmp = TempDir::new("cps");
    let calls = u64::from(rate) * u64::from(secs);
    let port = free_port().to_string();
    let limit = (rate * 2).max(100).to_string();
    let timeout = format!("{}s", secs + 15);
    let cpu0 = tree_cpu_seconds(responder);
    let switches0 = tree_context_switches(responder);
    let sipp0 = children_cpu_seconds();
    let drops0 = udp_rcvbuf_errors();
    let own0 = udp_socket_drops(target.port());
    let out = Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &target.to_string(),
            "-s",
            "service",
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
            "-l",
            &limit,
            "-recv_timeout",
            "5000",
            "-timeout",
            &timeout,
            "-timeout_error",
            "-nostdin",
            "-trace_stat",
            "-stf",
            "stats.csv",
            "-fd",
            "1",
            "-trace_rtt",
            "-rtt_freq",
            // sipp writes the samples in batches of this size (a partial batch is lost).
            if calls < 1000 { "1" } else { "50" },
            "-max_socket",
            "1024",
            // sipp's socket buffers default to 64 KiB: a few tens of
            // datagrams. On this shared machine every kernel drop counted
            // in a run was on sipp's socket, none on the responder's
            // (`drops a/r`), and each came back as a retransmission and a
            // 500 ms response time charged to the responder. 4 MiB, as
            // Parrot asks for its own (capped at net.core.rmem_max).
            "-buff_size",
            "4194304",
        ])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run sipp");
    let cpu1 = tree_cpu_seconds(responder);
    let switches1 = tree_context_switches(responder);
    let sipp_cpu_s = children_cpu_seconds() - sipp0;
    let kernel_drops = match (drops0, udp_rcvbuf_errors()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let responder_drops = own0
        .zip(udp_socket_drops(target.port()))
        .map(|(a, b)| b.saturating_sub(a));
    let csv = std::fs::read_to_string(tmp.join("stats.csv")).unwrap_or_default();
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
    let row: Vec<&str> = lines.next_back().unwrap_or_default().split(';').collect();
    let num = |name: &str| -> u64 {
        column(&header, &row, name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let created = num("TotalCallCreated");
    let successful = num("SuccessfulCall(C)");
    // Calls sipp never finished (it was stopped by -timeout) count as failed.
    let failed = num("FailedCall(C)") + calls.saturating_sub(successful + num("FailedCall(C)"));
    let retransmissions = num("Retransmissions(C)");
    let elapsed = match (
        column(&header, &row, "StartTime"),
        column(&header, &row, "CurrentTime"),
    ) {
        (Some(a), Some(b)) => (epoch(b) - epoch(a)).max(0.001),
        _ => f64::from(secs),
    };
    let mut rtt: Vec<f64> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(tmp.path()) {
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                rtt.extend(
                    text.lines()
                        .skip(1)
                        .filter_map(|l| l.split(';').nth(1))
                        .filter_map(|v| v.trim().parse::<f64>().ok()),
                );
            }
        }
    }
    rtt.sort_by(f64::total_cmp);
    if header.len() < 2 {
        eprintln!(
            "sipp wrote no statistics (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let completed_cps = successful as f64 / elapsed;
    let held = failed == 0
        && successful == calls
        && (retransmissions as f64) <= 0.01 * calls as f64
        && completed_cps >= 0.95 * f64::from(rate);
    Step {
        offered: rate,
        created,
        successful,
        failed,
        retransmissions,
        kernel_drops,
        responder_drops,
        elapsed,
        completed_cps,
        p50_ms: quantile(&rtt, 0.50),
        p99_ms: quantile(&rtt, 0.99),
        max_ms: rtt.last().copied().unwrap_or(0.0),
        rtt_samples: rtt.len(),
        cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        switches: switches0.zip(switches1).map(|(a, b)| b.saturating_sub(a)),
        sipp_cpu_s,
        held,
    }
}

fn print_step(name: &str, s: &Step) {
    eprintln!(
        "{name:<10} {:>5} cps offered: {:>7.0} completed/s, {} failed, {} retrans, {} kernel drops (all/responder's), p50/p99/max {}/{}/{} ms, cpu {} s/1000 calls, {} switches/call (sipp {:.2} s){}",
        s.offered,
        s.completed_cps,
        s.failed,
        s.retransmissions,
        drops_str(s),
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        fmt_opt(s.cpu_per_1000(), 3),
        fmt_opt(s.switches_per_call(), 1),
        s.sipp_cpu_s,
        if s.held { "" } else { "  <- not held" }
    );
}

/// Steps `rates` against `target` until one fails or `budget` is spent.
fn ramp(
    name: &str,
    target: SocketAddr,
    responder: u32,
    rates: &[u32],
    secs: u32,
    budget: Duration,
) -> Vec<Step> {
    let started = Instant::now();
    let mut steps = Vec::new();
    for &rate in rates {
        if started.elapsed() + Duration::from_secs(u64::from(secs) + 2) > budget {
            eprintln!("{name}: time budget spent before {rate} cps");
            break;
        }
        let s = step(target, rate, secs, responder);
        print_step(name, &s);
        let held = s.held;
        steps.push(s);
        if !held {
            break;
        }
        // Let the responder's lingering transactions (and sipp's) settle.
        std::thread::sleep(Duration::from_millis(1000));
    }
    steps
}

/// How a fixed-rate run is made: the same for every responder and round.
#[derive(Clone, Copy)]
struct FixedPlan {
    rate: u32,
    secs: u32,
    linger_s: u32,
}

/// One fixed-rate run against `target`, then `linger_s` more seconds of
/// the responder's CPU while its transactions end.
fn fixed(
    name: &'static str,
    about: String,
    round: u32,
    target: SocketAddr,
    responder: u32,
    plan: FixedPlan,
) -> Fixed {
    let cpu0 = tree_cpu_seconds(responder);
    let step = step(target, plan.rate, plan.secs, responder);
    print_step(name, &step);
    std::thread::sleep(Duration::from_secs(u64::from(plan.linger_s)));
    let cpu1 = tree_cpu_seconds(responder);
    Fixed {
        name,
        about,
        round,
        step,
        cpu_with_linger_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
    }
}

/// `v`'s values with `digits` decimals, joined by `sep`.
fn fmt_list(v: &[f64], digits: usize, sep: &str) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// The median of `v` (the mean of the middle two for an even count); `None` if empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The responders a fixed-rate round runs, in that round's order: rotated one
/// place a round, so no responder always runs first (after the build) or
/// last (after the others' lingering transactions and sipp's heat).
fn round_order<'a>(names: &[&'a str], round: u32) -> Vec<&'a str> {
    let mut v = names.to_vec();
    if !v.is_empty() {
        let k = round as usize % v.len();
        v.rotate_left(k);
    }
    v
}

fn knee(steps: &[Step]) -> u32 {
    steps
        .iter()
        .take_while(|s| s.held)
        .map(|s| s.offered)
        .max()
        .unwrap_or(0)
}

/// A responder process: stopped when dropped by closing its stdin (the
/// Parrot responder's cue), then SIGTERM, then SIGKILL.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stdin.take().is_some() && self.exited_within(Duration::from_secs(5)) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if self.exited_within(Duration::from_secs(3)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Waits until `addr` answers an OPTIONS (sipp's `-sn` has none: a raw UDP probe).
fn wait_ready(addr: SocketAddr, within: Duration) -> bool {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let deadline = Instant::now() + within;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let msg = format!(
            "OPTIONS sip:probe@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-probe-{n}\r\n\
             From: <sip:probe@{me}>;tag=p{n}\r\nTo: <sip:probe@{addr}>\r\nCall-ID: probe-{n}@{me}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(msg.as_bytes(), addr);
        let mut buf = [0u8; 4096];
        if sock.recv(&mut buf).is_ok() {
            return true;
        }
    }
    false
}

/// The Parrot responder on `addr`: with `jemalloc` this binary again (its
/// allocator is jemalloc), else the `cps_responder` binary (the same code on
/// the system allocator). `PARROT_CPS_WRAP` is put in front of either.
fn start_parrot(addr: SocketAddr, workers: Option<&str>, jemalloc: bool) -> Server {
    let exe = if jemalloc {
        std::env::current_exe().expect("the bench's own path")
    } else {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_cps_responder"))
    };
    let wrap = std::env::var("PARROT_CPS_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    if let Some(n) = workers {
        cmd.env("PARROT_CPS_WORKERS", n);
    }
    let mut child = cmd
        .env(CPS_RESPONDER_ENV, addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the parrot responder");
    let stdin = child.stdin.take();
    let server = Server { child, stdin };
    // Under valgrind the start takes a while.
    assert!(
        wait_ready(addr, Duration::from_secs(60)),
        "the parrot responder did not answer on {addr}"
    );
    server
}

fn start_sipp_uas(addr: SocketAddr) -> Server {
    let child = Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-nostdin",
            "-max_socket",
            "1024",
            "-buff_size",
            "4194304",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp uas");
    // sipp's uas answers an OPTIONS outside its scenario with nothing useful:
    // give it a moment to bind instead.
    std::thread::sleep(Duration::from_millis(500));
    Server { child, stdin: None }
}

fn start_kamailio(addr: SocketAddr, run_dir: &Path) -> Server {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kamailio/responder.cfg");
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "1024", "-M", "16", "-l"])
        .arg(format!("udp:{addr}"))
        .arg("-Y")
        .arg(run_dir)
        .arg("-P")
        .arg(run_dir.join("kamailio.pid"))
        .arg("-w")
        .arg(run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(run_dir.join("kamailio.log")).unwrap())
        .spawn()
        .expect("start kamailio");
    let server = Server { child, stdin: None };
    assert!(
        wait_ready(addr, Duration::from_secs(10)),
        "kamailio did not answer on {addr}: {}",
        std::fs::read_to_string(run_dir.join("kamailio.log")).unwrap_or_default()
    );
    server
}

fn kamailio_about() -> String {
    let version = Command::new("kamailio")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    format!(
        "{version}; docs/kamailio/responder.cfg (tm: t_newtran + t_reply 200), 2 UDP children, -m 1024"
    )
}

const PARROT_ABOUT: &str = "parrot_core Endpoint (200 to every INVITE) in a process of its own (parrot_tests::load::cps_responder), tokio multi-thread runtime";

/// A responder started for one mode, with its run directory (Kamailio's).
struct Running {
    server: Server,
    addr: SocketAddr,
    _dir: Option<TempDir>,
}

fn start(name: &str) -> Running {
    let addr = free_addr();
    match name {
        "parrot" => Running {
            server: start_parrot(addr, None, false),
            addr,
            _dir: None,
        },
        "parrot-je" => Running {
            server: start_parrot(addr, None, true),
            addr,
            _dir: None,
        },
        "parrot-1w" => Running {
            server: start_parrot(addr, Some("1"), false),
            addr,
            _dir: None,
        },
        "sipp-uas" => Running {
            server: start_sipp_uas(addr),
            addr,
            _dir: None,
        },
        _ => {
            let dir = TempDir::new("kamailio");
            Running {
                server: start_kamailio(addr, dir.path()),
                addr,
                _dir: Some(dir),
            }
        }
    }
}

fn env_u32(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v}: {e}")),
        Err(_) => default,
    }
}

/// Everything measured, for the tables and the JSON.
struct Report<'a> {
    fixed: &'a [Fixed],
    contenders: &'a [Contender],
    rates: &'a [u32],
    secs: u32,
    fixed_rate: u32,
    fixed_secs: u32,
    linger: u32,
    rounds: u32,
    took: Duration,
}

/// What a responder's fixed-rate runs give over the rounds.
struct FixedSummary {
    /// Median CPU s per 1,000 calls over the calls.
    cpu: Option<f64>,
    /// Median CPU s per 1,000 calls until the linger's end.
    cpu_linger: Option<f64>,
    /// Its worst p99 INVITE→200 over the rounds, ms.
    worst_p99: f64,
    /// Every run held.
    held: bool,
}

/// Parrot's CPU per call over Kamailio's, round by round (a round's two runs
/// are minutes apart, where the first and last runs of the bench are many:
/// this machine's speed drifts by more than the difference measured).
struct RoundRatios {
    /// Over the calls, each round's ratio.
    calls: Vec<f64>,
    /// With the linger.
    linger: Vec<f64>,
}

/// One of the issue's goals: what it says, whether it is met, the figures.
struct Goal {
    what: String,
    met: Option<bool>,
    figures: String,
}

impl Report<'_> {
    fn contender(&self, name: &str) -> Option<&Contender> {
        self.contenders
            .iter()
            .find(|c| c.name == name && c.skipped.is_none())
    }

    fn fixed_of(&self, name: &str) -> Option<FixedSummary> {
        let runs: Vec<&Fixed> = self.fixed.iter().filter(|f| f.name == name).collect();
        if runs.is_empty() {
            return None;
        }
        Some(FixedSummary {
            cpu: median(runs.iter().filter_map(|f| f.step.cpu_per_1000()).collect()),
            cpu_linger: median(
                runs.iter()
                    .filter_map(|f| per_1000(f.cpu_with_linger_s, f.step.successful))
                    .collect(),
            ),
            worst_p99: runs.iter().map(|f| f.step.p99_ms).fold(0.0, f64::max),
            held: runs.iter().all(|f| f.step.held),
        })
    }

    /// The responders of the fixed-rate runs, in the order of their first run.
    fn fixed_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for f in self.fixed {
            if !names.contains(&f.name) {
                names.push(f.name);
            }
        }
        names
    }

    /// `name`'s CPU per call over Kamailio's in each round both ran (none for
    /// Kamailio itself).
    fn round_ratios(&self, name: &str) -> RoundRatios {
        let mut r = RoundRatios {
            calls: Vec::new(),
            linger: Vec::new(),
        };
        // Kamailio over itself says nothing.
        for p in self
            .fixed
            .iter()
            .filter(|f| f.name == name && name != "kamailio")
        {
            let Some(k) = self
                .fixed
                .iter()
                .find(|f| f.name == "kamailio" && f.round == p.round)
            else {
                continue;
            };
            let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0);
            if let Some((a, b)) = ratio(p.step.cpu_per_1000(), k.step.cpu_per_1000()) {
                r.calls.push(a / b);
            }
            if let Some((a, b)) = ratio(
                per_1000(p.cpu_with_linger_s, p.step.successful),
                per_1000(k.cpu_with_linger_s, k.step.successful),
            ) {
                r.linger.push(a / b);
            }
        }
        r
    }

    /// `name`'s knee over Kamailio's, when both ran.
    fn knee_ratio(&self, name: &str) -> Option<f64> {
        let (p, k) = (self.contender(name)?, self.contender("kamailio")?);
        (k.knee > 0).then(|| f64::from(p.knee) / f64::from(k.knee))
    }

    /// The ramp steps both `name` and Kamailio held: (rate, its step, Kamailio's).
    fn both_held(&self, name: &str) -> Vec<(u32, &Step, &Step)> {
        let (Some(p), Some(k)) = (self.contender(name), self.contender("kamailio")) else {
            return Vec::new();
        };
        p.steps
            .iter()
            .filter(|s| s.held)
            .filter_map(|ps| {
                k.steps
                    .iter()
                    .find(|ks| ks.held && ks.offered == ps.offered)
                    .map(|ks| (ps.offered, ps, ks))
            })
            .collect()
    }

    fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        // The system allocator (the default build) and jemalloc, each on its own.
        for name in ["parrot", "parrot-je"] {
            let (pf, kf) = (self.fixed_of(name), self.fixed_of("kamailio"));
            if let (Some(p), Some(k)) = (pf, kf) {
                let r = self.round_ratios(name);
                let (ml, mc) = (median(r.linger.clone()), median(r.calls.clone()));
                goals.push(Goal {
                    what: format!("fixed rate: {name} CPU per call <= kamailio's (with the linger; median of the rounds' ratios)"),
                    met: ml.map(|m| m <= 1.0),
                    figures: format!(
                        "{name}/kamailio {} (rounds: {}); during the calls only {} (rounds: {}); medians {} vs {} s per 1000 calls ({} vs {} during the calls)",
                        fmt_opt(ml, 2),
                        fmt_list(&r.linger, 2, " "),
                        fmt_opt(mc, 2),
                        fmt_list(&r.calls, 2, " "),
                        fmt_opt(p.cpu_linger, 3),
                        fmt_opt(k.cpu_linger, 3),
                        fmt_opt(p.cpu, 3),
                        fmt_opt(k.cpu, 3)
                    ),
                });
                goals.push(Goal {
                    what: format!("fixed rate: {name} p99 INVITE->200 <= 5 ms (every round)"),
                    met: Some(p.held && p.worst_p99 <= 5.0),
                    figures: format!(
                        "worst p99 of the rounds: {name} {} ms, kamailio {} ms",
                        p.worst_p99, k.worst_p99
                    ),
                });
            }
            if let Some(p) = self.contender(name) {
                let held: Vec<&Step> = p.steps.iter().filter(|s| s.held).collect();
                let worst = held.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
                goals.push(Goal {
                    what: format!("ramp: {name} p99 <= 5 ms at every held step"),
                    met: (!held.is_empty()).then_some(worst <= 5.0),
                    figures: format!(
                        "p99 per held step: {}",
                        held.iter()
                            .map(|s| format!("{}:{}", s.offered, s.p99_ms))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                });
                let both = self.both_held(name);
                let ratios: Vec<(u32, Option<f64>)> = both
                    .iter()
                    .map(|(rate, ps, ks)| {
                        let r = ps
                            .cpu_per_1000()
                            .zip(ks.cpu_per_1000())
                            .filter(|(_, k)| *k > 0.0)
                            .map(|(p, k)| p / k);
                        (*rate, r)
                    })
                    .collect();
                goals.push(Goal {
                    what: format!(
                        "ramp: {name} CPU per call <= kamailio's at every step both held"
                    ),
                    met: (!ratios.is_empty())
                        .then(|| ratios.iter().all(|(_, r)| r.is_some_and(|r| r <= 1.0))),
                    figures: format!(
                        "{name}/kamailio CPU per call: {}",
                        ratios
                            .iter()
                            .map(|(rate, r)| format!("{rate}:{}", fmt_opt(*r, 2)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                });
            }
            if let Some(r) = self.knee_ratio(name) {
                let top = self.rates.last().copied().unwrap_or(0);
                goals.push(Goal {
                    what: format!("ramp: {name} knee >= kamailio's"),
                    met: Some(r >= 1.0),
                    figures: format!(
                        "{name}/kamailio {r:.2} ({} vs {}){}",
                        self.contender(name).map_or(0, |c| c.knee),
                        self.contender("kamailio").map_or(0, |c| c.knee),
                        if self.contenders.iter().any(|c| c.knee == top) {
                            format!(" (a knee at {top} is the ramp's top: not saturated)")
                        } else {
                            String::new()
                        }
                    ),
                });
            }
        }
        goals
    }

    fn table(&self) -> String {
        let mut t = String::new();
        if !self.fixed.is_empty() {
            let _ = writeln!(
                t,
                "fixed rate: {} calls/s for {} s, {} rounds (each runs every responder once, a fresh process each, the order rotated a place a round); CPU = utime+stime of its processes, over the calls and until {} s after (its transactions ended)",
                self.fixed_rate, self.fixed_secs, self.rounds, self.linger
            );
            let _ = writeln!(
                t,
                "{:<10} {:>5} {:>7} {:>6} {:>7} {:>9} {:>9} {:>7} {:>11} {:>13} {:>11} {:>15}  {:>8}",
                "responder",
                "round",
                "ok",
                "failed",
                "retrans",
                "drops a/r",
                "completed",
                "cpu s",
                "cpu s/1k",
                "+linger s/1k",
                "switch/call",
                "p50/p99/max ms",
                "sipp cpu"
            );
            for f in self.fixed {
                let s = &f.step;
                let _ = writeln!(
                    t,
                    "{:<10} {:>5} {:>7} {:>6} {:>7} {:>9} {:>9.0} {:>7} {:>11} {:>13} {:>11} {:>15}  {:>8.2}",
                    f.name,
                    f.round + 1,
                    s.successful,
                    s.failed,
                    s.retransmissions,
                    drops_str(s),
                    s.completed_cps,
                    fmt_opt(s.cpu_s, 2),
                    fmt_opt(s.cpu_per_1000(), 3),
                    fmt_opt(per_1000(f.cpu_with_linger_s, s.successful), 3),
                    fmt_opt(s.switches_per_call(), 1),
                    format!("{}/{}/{}", s.p50_ms, s.p99_ms, s.max_ms),
                    s.sipp_cpu_s
                );
            }
            let _ = writeln!(
                t,
                "{:<10} {:>11} {:>13} {:>22} {:>22}",
                "median", "cpu s/1k", "+linger s/1k", "/kamailio per round", "+linger per round"
            );
            for name in self.fixed_names() {
                let Some(m) = self.fixed_of(name) else {
                    continue;
                };
                let r = self.round_ratios(name);
                let _ = writeln!(
                    t,
                    "{:<10} {:>11} {:>13} {:>22} {:>22}",
                    name,
                    fmt_opt(m.cpu, 3),
                    fmt_opt(m.cpu_linger, 3),
                    fmt_list(&r.calls, 2, " "),
                    fmt_list(&r.linger, 2, " ")
                );
            }
            let _ = writeln!(t);
        }
        if !self.contenders.is_empty() {
            let _ = writeln!(
                t,
                "ramp: {} s per step; held: no failed call, retransmissions <= 1 % of calls, completed >= 95 % of offered",
                self.secs
            );
            let _ = writeln!(
                t,
                "{:<10} {:>8} {:>10} {:>7} {:>8} {:>9} {:>15} {:>9} {:>8}  held",
                "responder",
                "offered",
                "completed",
                "failed",
                "retrans",
                "drops a/r",
                "p50/p99/max ms",
                "cpu s/1k",
                "sipp cpu"
            );
            for c in self.contenders {
                if let Some(why) = &c.skipped {
                    let _ = writeln!(t, "{:<10} skipped: {why}", c.name);
                }
                for s in &c.steps {
                    let _ = writeln!(
                        t,
                        "{:<10} {:>8} {:>10.0} {:>7} {:>8} {:>9} {:>15} {:>9} {:>8.2}  {}",
                        c.name,
                        s.offered,
                        s.completed_cps,
                        s.failed,
                        s.retransmissions,
                        drops_str(s),
                        format!("{}/{}/{}", s.p50_ms, s.p99_ms, s.max_ms),
                        fmt_opt(s.cpu_per_1000(), 3),
                        s.sipp_cpu_s,
                        if s.held { "yes" } else { "NO" }
                    );
                }
            }
            let _ = writeln!(t);
            let parrot_knee = self.contender("parrot").map(|c| f64::from(c.knee));
            let _ = writeln!(
                t,
                "{:<10} {:>10} {:>14} {:>16}",
                "responder", "knee cps", "parrot/this", "p50/p99 @knee"
            );
            for c in self.contenders {
                let at = c.steps.iter().find(|s| s.offered == c.knee);
                let _ = writeln!(
                    t,
                    "{:<10} {:>10} {:>14} {:>16}",
                    c.name,
                    c.knee,
                    match parrot_knee {
                        Some(p) if c.knee > 0 => format!("{:.2}", p / f64::from(c.knee)),
                        _ => "-".to_owned(),
                    },
                    at.map_or("-".to_owned(), |s| format!("{}/{} ms", s.p50_ms, s.p99_ms))
                );
            }
            let _ = writeln!(t);
        }
        let _ = writeln!(
            t,
            "issue 14 goals (not asserted; timings on a shared machine are noisy):"
        );
        for g in self.goals() {
            let _ = writeln!(
                t,
                "  [{}] {}: {}",
                match g.met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "n/a",
                },
                g.what,
                g.figures
            );
        }
        let _ = writeln!(
            t,
            "drops a/r: UDP datagrams the kernel dropped for a full receive buffer, on all sockets / on the responder's"
        );
        let _ = writeln!(
            t,
            "INVITE->200 from sipp's -trace_rtt (1 ms clock, 0 = under 1 ms); took {:.0} s, load average {}",
            self.took.as_secs_f64(),
            parrot_tests::load::loadavg()
        );
        t
    }

    fn step_json(s: &Step) -> String {
        format!(
            "{{ \"offered_cps\": {}, \"completed_cps\": {:.1}, \"calls_created\": {}, \"successful\": {}, \"failed\": {}, \"retransmissions\": {}, \"kernel_rcvbuf_drops\": {}, \"responder_rcvbuf_drops\": {}, \"elapsed_s\": {:.2}, \"p50_ms\": {}, \"p99_ms\": {}, \"max_ms\": {}, \"rtt_samples\": {}, \"cpu_s\": {}, \"cpu_s_per_1000_calls\": {}, \"context_switches\": {}, \"sipp_cpu_s\": {:.2}, \"held\": {} }}",
            s.offered,
            s.completed_cps,
            s.created,
            s.successful,
            s.failed,
            s.retransmissions,
            s.kernel_drops.map_or("null".to_owned(), |d| d.to_string()),
            s.responder_drops
                .map_or("null".to_owned(), |d| d.to_string()),
            s.elapsed,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.rtt_samples,
            json_opt(s.cpu_s, 2),
            json_opt(s.cpu_per_1000(), 4),
            s.switches.map_or("null".to_owned(), |n| n.to_string()),
            s.sipp_cpu_s,
            s.held
        )
    }

    /// Each responder's medians and per-round ratios, as JSON objects.
    fn medians_json(&self) -> String {
        let names = self.fixed_names();
        names
            .iter()
            .filter_map(|name| {
                let m = self.fixed_of(name)?;
                let r = self.round_ratios(name);
                Some(format!(
                    "{{ \"name\": {}, \"cpu_s_per_1000_calls\": {}, \"cpu_s_per_1000_calls_with_linger\": {}, \"worst_p99_ms\": {}, \"over_kamailio_per_round\": [{}], \"over_kamailio_with_linger_per_round\": [{}] }}",
                    json_str(name),
                    json_opt(m.cpu, 4),
                    json_opt(m.cpu_linger, 4),
                    m.worst_p99,
                    fmt_list(&r.calls, 3, ", "),
                    fmt_list(&r.linger, 3, ", ")
                ))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn json(&self) -> String {
        let mut json = String::from("{\n  \"bench\": \"cps\",\n");
        let _ = writeln!(json, "  \"machine\": {},", machine_json());
        let _ = writeln!(
            json,
            "  \"method\": {{ \"load\": \"sipp -sn uac on 127.0.0.1/UDP\", \"seconds_per_step\": {}, \"concurrent_call_limit\": \"2 x rate\", \"recv_timeout_ms\": 5000, \"held\": \"0 failed calls, retransmissions <= 1% of calls, completed >= 95% of offered\", \"response_time\": \"INVITE sent to 200 received (sipp -trace_rtt, 1 ms clock)\", \"cpu\": \"utime+stime of the responder's processes (/proc/PID/stat, it and its descendants)\", \"took_s\": {:.0} }},",
            self.secs,
            self.took.as_secs_f64()
        );
        let _ = writeln!(
            json,
            "  \"fixed\": {{ \"rate_cps\": {}, \"seconds\": {}, \"linger_s\": {}, \"rounds\": {}, \"medians\": [{}], \"runs\": [",
            self.fixed_rate,
            self.fixed_secs,
            self.linger,
            self.rounds,
            self.medians_json()
        );
        for (i, f) in self.fixed.iter().enumerate() {
            let _ = write!(
                json,
                "    {{ \"name\": {}, \"about\": {}, \"round\": {}, \"cpu_with_linger_s\": {}, \"cpu_s_per_1000_calls_with_linger\": {}, \"run\": {} }}",
                json_str(f.name),
                json_str(&f.about),
                f.round + 1,
                json_opt(f.cpu_with_linger_s, 2),
                json_opt(per_1000(f.cpu_with_linger_s, f.step.successful), 4),
                Self::step_json(&f.step)
            );
            json.push_str(if i + 1 < self.fixed.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        json.push_str("  ] },\n");
        let _ = writeln!(
            json,
            "  \"knee_ratio_parrot_over_kamailio\": {},\n  \"knee_ratio_parrot_je_over_kamailio\": {},",
            json_opt(self.knee_ratio("parrot"), 3),
            json_opt(self.knee_ratio("parrot-je"), 3)
        );
        json.push_str("  \"goals\": [\n");
        let goals = self.goals();
        for (i, g) in goals.iter().enumerate() {
            let _ = write!(
                json,
                "    {{ \"goal\": {}, \"met\": {}, \"figures\": {} }}",
                json_str(&g.what),
                g.met.map_or("null".to_owned(), |m| m.to_string()),
                json_str(&g.figures)
            );
            json.push_str(if i + 1 < goals.len() { ",\n" } else { "\n" });
        }
        json.push_str("  ],\n");
        let parrot_knee = self.contender("parrot").map(|c| f64::from(c.knee));
        json.push_str("  \"contenders\": [\n");
        for (i, c) in self.contenders.iter().enumerate() {
            let _ = writeln!(
                json,
                "    {{ \"name\": {}, \"about\": {}, \"knee_cps\": {}, \"parrot_over_this\": {}, \"skipped\": {},",
                json_str(c.name),
                json_str(&c.about),
                c.knee,
                match parrot_knee {
                    Some(p) if c.knee > 0 => format!("{:.3}", p / f64::from(c.knee)),
                    _ => "null".to_owned(),
                },
                c.skipped.as_deref().map_or("null".to_owned(), json_str)
            );
            json.push_str("      \"ramp\": [\n");
            for (j, s) in c.steps.iter().enumerate() {
                let _ = write!(json, "        {}", Self::step_json(s));
                json.push_str(if j + 1 < c.steps.len() { ",\n" } else { "\n" });
            }
            json.push_str("      ]\n    }");
            json.push_str(if i + 1 < self.contenders.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        json.push_str("  ]\n}\n");
        json
    }
}

fn svg(contenders: &[Contender], rates: &[u32], title: &str) -> String {
    let (w, h) = (720.0, 440.0);
    let (left, right, top, bottom) = (70.0, 170.0, 40.0, 50.0);
    let max = f64::from(*rates.iter().max().unwrap_or(&1000)).max(1.0);
    let x = |v: f64| left + v / max * (w - left - right);
    let y = |v: f64| h - bottom - v / max * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{title}</text>",
        (left + w - right) / 2.0
    );
    // Grid and ticks.
    let step = if max > 3000.0 { 1000.0 } else { 500.0 };
    let mut t = 0.0;
    while t <= max + 0.5 {
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{t}</text>",
            x(t),
            y(0.0),
            x(t),
            y(max),
            x(0.0),
            y(t),
            x(max),
            y(t),
            x(t),
            y(0.0) + 16.0,
            x(0.0) - 6.0,
            y(t) + 4.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>",
        x(0.0),
        y(0.0),
        x(max),
        y(max)
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">offered calls/s (sipp uac -r)</text>",
        (left + w - right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">completed calls/s</text>",
        (top + h - bottom) / 2.0
    );
    let colors = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd"];
    for (i, c) in contenders.iter().enumerate() {
        let color = colors[i % colors.len()];
        let points: Vec<String> = c
            .steps
            .iter()
            .map(|st| {
                format!(
                    "{:.1},{:.1}",
                    x(f64::from(st.offered)),
                    y(st.completed_cps.min(max))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for st in &c.steps {
            let (cx, cy) = (x(f64::from(st.offered)), y(st.completed_cps.min(max)));
            if st.held {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{color}\"/>"
                );
            } else {
                let _ = writeln!(
                    s,
                    "<path d=\"M{:.1} {:.1} l8 8 m0 -8 l-8 8\" stroke=\"{color}\" stroke-width=\"2\"/>",
                    cx - 4.0,
                    cy - 4.0
                );
            }
        }
        let ly = top + 20.0 + 22.0 * i as f64;
        let lx = w - right + 15.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{} (knee {})</text>",
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            c.name,
            c.knee
        );
    }
    let ly = top + 20.0 + 22.0 * contenders.len() as f64;
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{ly}\" fill=\"#555\">● held  ✕ not held</text>",
        w - right + 15.0
    );
    s.push_str("</svg>\n");
    s
}

fn main() {
    if let Ok(addr) = std::env::var(CPS_RESPONDER_ENV) {
        cps_responder(&addr);
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    assert!(
        installed("sipp", "-v"),
        "sipp is not installed: `apt-get install sip-tester`"
    );
    let mode = std::env::var("PARROT_CPS_MODE").unwrap_or_else(|_| "both".to_owned());
    assert!(
        matches!(mode.as_str(), "both" | "fixed" | "ramp"),
        "PARROT_CPS_MODE={mode}: fixed, ramp or both"
    );
    let (run_fixed, run_ramp) = (mode != "ramp", mode != "fixed");
    let default_rates = [500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000];
    let rates: Vec<u32> = match std::env::var("PARROT_CPS_RATES") {
        Ok(v) => v
            .split(',')
            .map(|r| {
                r.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("PARROT_CPS_RATES={v}: {e}"))
            })
            .collect(),
        Err(_) if bench => default_rates.to_vec(),
        Err(_) => vec![20],
    };
    let (secs, budget) = if bench {
        (env_u32("PARROT_CPS_HOLD", 8), Duration::from_secs(110))
    } else {
        (1, Duration::from_secs(30))
    };
    let (fixed_rate, fixed_secs, linger, rounds) = if bench {
        (
            env_u32("PARROT_CPS_RATE", 2000),
            env_u32("PARROT_CPS_SECS", 10),
            env_u32("PARROT_CPS_LINGER", 33),
            env_u32("PARROT_CPS_ROUNDS", 3).max(1),
        )
    } else {
        (20, 1, 0, 1)
    };
    let selected: Vec<String> = std::env::var("PARROT_CPS_RESPONDERS")
        .unwrap_or_else(|_| "parrot,parrot-je,parrot-1w,sipp-uas,kamailio".to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for s in &selected {
        assert!(
            matches!(
                s.as_str(),
                "parrot" | "parrot-je" | "parrot-1w" | "sipp-uas" | "kamailio"
            ),
            "PARROT_CPS_RESPONDERS: unknown responder {s} (parrot, parrot-je, parrot-1w, sipp-uas, kamailio)"
        );
    }
    let kamailio = installed("kamailio", "-v");
    if !kamailio {
        eprintln!("kamailio is not installed (apt-get install kamailio): skipped");
    }
    let about = |name: &str| match name {
        "parrot" => format!("{PARROT_ABOUT}, the system allocator (glibc)"),
        "parrot-je" => format!(
            "{PARROT_ABOUT}, jemalloc as its global allocator (the bench binary; a generated server built with --features jemalloc)"
        ),
        "parrot-1w" => format!("{PARROT_ABOUT}, 1 worker thread"),
        "sipp-uas" => "sipp -sn uas (single-threaded, no transaction layer)".to_owned(),
        _ => kamailio_about(),
    };
    let started = Instant::now();

    // Fixed rate: Parrot (a runtime with one worker per CPU, then with one
    // worker: what the scheduler's cross-thread wake-ups cost), then
    // Kamailio, each a fresh process.
    let mut fixed_runs: Vec<Fixed> = Vec::new();
    if run_fixed {
        let plan = FixedPlan {
            rate: fixed_rate,
            secs: fixed_secs,
            linger_s: linger,
        };
        let names: Vec<&str> = ["parrot", "parrot-je", "parrot-1w", "kamailio"]
            .into_iter()
            .filter(|name| selected.iter().any(|s| s == name) && (*name != "kamailio" || kamailio))
            .collect();
        for round in 0..rounds {
            for name in round_order(&names, round) {
                let r = start(name);
                let run = fixed(name, about(name), round, r.addr, r.server.pid(), plan);
                drop(r);
                fixed_runs.push(run);
            }
        }
    }

    // The ramp, each contender a fresh process.
    let mut contenders = Vec::new();
    if run_ramp {
        for name in ["parrot", "parrot-je", "sipp-uas", "kamailio"] {
            if !selected.iter().any(|s| s == name) {
                continue;
            }
            if name == "kamailio" && !kamailio {
                contenders.push(Contender {
                    name,
                    about: "not installed".to_owned(),
                    knee: 0,
                    steps: Vec::new(),
                    skipped: Some("kamailio not installed".to_owned()),
                });
                continue;
            }
            let r = start(name);
            let steps = ramp(name, r.addr, r.server.pid(), &rates, secs, budget);
            drop(r);
            contenders.push(Contender {
                name,
                about: about(name),
                knee: knee(&steps),
                steps,
                skipped: None,
            });
        }
    }
    let took = started.elapsed();

    if !bench {
        for c in contenders.iter().filter(|c| c.skipped.is_none()) {
            let s = c.steps.first().expect("one step");
            assert!(
                s.held && s.successful == 20 && s.rtt_samples > 0 && s.cpu_s.is_some(),
                "{}: {s:?}",
                c.name
            );
        }
        for f in &fixed_runs {
            let s = &f.step;
            assert!(
                s.held
                    && s.successful == 20
                    && s.rtt_samples > 0
                    && s.cpu_s.is_some()
                    && f.cpu_with_linger_s.is_some(),
                "{}: {s:?}",
                f.name
            );
        }
        println!("cps bench: every contender answered (run with --bench to measure)");
        return;
    }

    let report = Report {
        fixed: &fixed_runs,
        contenders: &contenders,
        rates: &rates,
        secs,
        fixed_rate,
        fixed_secs,
        linger,
        rounds,
        took,
    };
    let table = report.table();
    print!("{table}");
    let json = report.json();
    let dir = bench_dir();
    let path = dir.join("cps.json");
    std::fs::write(&path, json).unwrap();
    if contenders.is_empty() {
        println!("wrote {}", path.display());
        return;
    }
    let chart = svg(
        &contenders,
        &rates,
        "sipp uac → responder on loopback: offered vs completed calls/s",
    );
    std::fs::write(dir.join("cps.svg"), &chart).unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cps.svg");
    std::fs::write(&docs, &chart).unwrap();
    println!(
        "wrote {}, {} and {}",
        path.display(),
        dir.join("cps.svg").display(),
        docs.display()
    );
}
