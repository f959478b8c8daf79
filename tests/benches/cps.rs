//! `cargo xtask bench cps`: the knee of a SIP responder under sipp `uac` load
//! on loopback, for three contenders in one run: Parrot (an in-process
//! `Endpoint` answering 200 on a multi-thread runtime), sipp's own `uas`, and
//! Kamailio 5.6 as a stateful responder (`docs/kamailio/responder.cfg`).
//!
//! Each contender gets the same ramp: sipp's built-in `uac` scenario (INVITE,
//! 200, ACK, BYE, 200) at 500, 1000, 2000 … cps, each rate held `HOLD` seconds
//! (`-m rate·HOLD`, `-l 2·rate` concurrent calls), until a step fails: a failed
//! or unfinished call, retransmissions above 1 % of the calls, or fewer than
//! 95 % of the offered calls per second completed. The knee is the highest
//! rate held. From sipp's `-trace_stat` CSV: failed calls and retransmissions;
//! from `-trace_rtt`: INVITE→200 response times (p50/p99, 1 ms resolution).
//!
//! Writes `target/bench/cps.json` and `target/bench/cps.svg` (offered vs
//! completed cps per contender) and prints a table. Without `--bench` (as
//! `cargo test --all-targets` runs it) it runs one tiny step per contender
//! (Kamailio only if installed) and checks that the numbers come out.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use parrot_core::transport::TransportKind;
use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::load::{bench_dir, json_str, machine_json, quantile};
use parrot_tests::{TempDir, free_addr, free_port};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Answers every INVITE with 200 at once (no media: sipp sends none either).
#[derive(Clone, Copy)]
struct Answer;

impl SipHandler for Answer {
    async fn invite(&mut self, _call: &mut Incoming) -> Reply {
        Reply::ok()
    }
}

/// One step of a ramp.
#[derive(Debug, Clone, Default)]
struct Step {
    offered: u32,
    created: u64,
    successful: u64,
    failed: u64,
    retransmissions: u64,
    elapsed: f64,
    completed_cps: f64,
    p50_ms: f64,
    p99_ms: f64,
    rtt_samples: usize,
    held: bool,
}

struct Contender {
    name: &'static str,
    about: String,
    steps: Vec<Step>,
    knee: u32,
    skipped: Option<String>,
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

/// Runs sipp's `uac` at `rate` cps for `secs` seconds against `target`.
fn step(target: SocketAddr, rate: u32, secs: u32) -> Step {
    let tmp = TempDir::new("cps");
    let calls = u64::from(rate) * u64::from(secs);
    let port = free_port().to_string();
    let limit = (rate * 2).max(100).to_string();
    let timeout = format!("{}s", secs + 15);
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
        ])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run sipp");
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
        elapsed,
        completed_cps,
        p50_ms: quantile(&rtt, 0.50),
        p99_ms: quantile(&rtt, 0.99),
        rtt_samples: rtt.len(),
        held,
    }
}

/// Steps `rates` against `target` until one fails or `budget` is spent.
fn ramp(name: &str, target: SocketAddr, rates: &[u32], secs: u32, budget: Duration) -> Vec<Step> {
    let started = Instant::now();
    let mut steps = Vec::new();
    for &rate in rates {
        if started.elapsed() + Duration::from_secs(u64::from(secs) + 2) > budget {
            eprintln!("{name}: time budget spent before {rate} cps");
            break;
        }
        let s = step(target, rate, secs);
        eprintln!(
            "{name:<10} {:>5} cps offered: {:>7.0} completed/s, {} failed, {} retrans, p50 {} ms, p99 {} ms{}",
            s.offered,
            s.completed_cps,
            s.failed,
            s.retransmissions,
            s.p50_ms,
            s.p99_ms,
            if s.held { "" } else { "  <- not held" }
        );
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

fn knee(steps: &[Step]) -> u32 {
    steps
        .iter()
        .take_while(|s| s.held)
        .map(|s| s.offered)
        .max()
        .unwrap_or(0)
}

/// A child process stopped with SIGTERM (then SIGKILL) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..30 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
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
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp uas");
    // sipp's uas answers an OPTIONS outside its scenario with nothing useful:
    // give it a moment to bind instead.
    std::thread::sleep(Duration::from_millis(500));
    Server(child)
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
    let server = Server(child);
    assert!(
        wait_ready(addr, Duration::from_secs(10)),
        "kamailio did not answer on {addr}: {}",
        std::fs::read_to_string(run_dir.join("kamailio.log")).unwrap_or_default()
    );
    server
}

/// The ramp as an SVG line chart: offered (x) vs completed (y) cps.
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
    let colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
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
    let bench = std::env::args().any(|a| a == "--bench");
    assert!(
        installed("sipp", "-v"),
        "sipp is not installed: `apt-get install sip-tester`"
    );
    let (rates, secs, budget): (&[u32], u32, Duration) = if bench {
        (
            &[500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000],
            8,
            Duration::from_secs(110),
        )
    } else {
        (&[20], 1, Duration::from_secs(30))
    };
    let started = Instant::now();
    let mut contenders = Vec::new();

    // Parrot: an in-process endpoint on a multi-thread runtime (one worker per CPU).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = rt.block_on(async {
        Endpoint::builder()
            .udp(free_addr())
            .handler(|| Answer)
            .build()
            .await
            .unwrap()
    });
    let addr = ep.local_addr(TransportKind::Udp).unwrap();
    let steps = ramp("parrot", addr, rates, secs, budget);
    eprintln!("parrot endpoint after the ramp: {:?}", ep.stats());
    rt.block_on(ep.shutdown(Duration::from_secs(1)));
    drop(rt);
    contenders.push(Contender {
        name: "parrot",
        about: "in-process parrot_core Endpoint (200 to every INVITE), tokio multi-thread runtime"
            .to_owned(),
        knee: knee(&steps),
        steps,
        skipped: None,
    });

    // sipp's own uas.
    let addr = free_addr();
    let server = start_sipp_uas(addr);
    let steps = ramp("sipp-uas", addr, rates, secs, budget);
    drop(server);
    contenders.push(Contender {
        name: "sipp-uas",
        about: "sipp -sn uas (single-threaded, no transaction layer)".to_owned(),
        knee: knee(&steps),
        steps,
        skipped: None,
    });

    // Kamailio, stateful (tm).
    if installed("kamailio", "-v") {
        let run_dir = TempDir::new("kamailio");
        let addr = free_addr();
        let server = start_kamailio(addr, run_dir.path());
        let steps = ramp("kamailio", addr, rates, secs, budget);
        drop(server);
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
        contenders.push(Contender {
            name: "kamailio",
            about: format!(
                "{version}; docs/kamailio/responder.cfg (tm: t_newtran + t_reply 200), 2 UDP children, -m 1024"
            ),
            knee: knee(&steps),
            steps,
            skipped: None,
        });
    } else {
        eprintln!("kamailio is not installed (apt-get install kamailio): skipped");
        contenders.push(Contender {
            name: "kamailio",
            about: "not installed".to_owned(),
            knee: 0,
            steps: Vec::new(),
            skipped: Some("kamailio not installed".to_owned()),
        });
    }
    let took = started.elapsed();

    if !bench {
        for c in contenders.iter().filter(|c| c.skipped.is_none()) {
            let s = c.steps.first().expect("one step");
            assert!(
                s.held && s.successful == 20 && s.rtt_samples > 0,
                "{}: {s:?}",
                c.name
            );
        }
        println!("cps bench: every contender answered (run with --bench to measure)");
        return;
    }

    let parrot_knee = f64::from(contenders[0].knee);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<10} {:>8} {:>10} {:>7} {:>8} {:>8} {:>8}  held",
        "responder", "offered", "completed", "failed", "retrans", "p50 ms", "p99 ms"
    );
    for c in &contenders {
        if let Some(why) = &c.skipped {
            let _ = writeln!(table, "{:<10} skipped: {why}", c.name);
        }
        for s in &c.steps {
            let _ = writeln!(
                table,
                "{:<10} {:>8} {:>10.0} {:>7} {:>8} {:>8} {:>8}  {}",
                c.name,
                s.offered,
                s.completed_cps,
                s.failed,
                s.retransmissions,
                s.p50_ms,
                s.p99_ms,
                if s.held { "yes" } else { "NO" }
            );
        }
    }
    let _ = writeln!(table);
    let _ = writeln!(
        table,
        "{:<10} {:>10} {:>14} {:>14}",
        "responder", "knee cps", "parrot/this", "p50/p99 @knee"
    );
    for c in &contenders {
        let at = c.steps.iter().find(|s| s.offered == c.knee);
        let _ = writeln!(
            table,
            "{:<10} {:>10} {:>14} {:>14}",
            c.name,
            c.knee,
            if c.knee > 0 {
                format!("{:.2}", parrot_knee / f64::from(c.knee))
            } else {
                "-".to_owned()
            },
            at.map_or("-".to_owned(), |s| format!("{}/{} ms", s.p50_ms, s.p99_ms))
        );
    }
    let top = *rates.last().unwrap_or(&0);
    if contenders.iter().any(|c| c.knee == top) {
        let _ = writeln!(
            table,
            "(a knee at {top} cps is the top of the ramp: that contender was not saturated)"
        );
    }
    let _ = writeln!(
        table,
        "held: no failed call, retransmissions <= 1 % of calls, completed >= 95 % of offered; {secs} s per step; took {:.0} s",
        took.as_secs_f64()
    );
    print!("{table}");

    let mut json = String::from("{\n  \"bench\": \"cps\",\n");
    let _ = writeln!(json, "  \"machine\": {},", machine_json());
    let _ = writeln!(
        json,
        "  \"method\": {{ \"load\": \"sipp -sn uac on 127.0.0.1/UDP\", \"seconds_per_step\": {secs}, \"concurrent_call_limit\": \"2 x rate\", \"recv_timeout_ms\": 5000, \"held\": \"0 failed calls, retransmissions <= 1% of calls, completed >= 95% of offered\", \"response_time\": \"INVITE sent to 200 received (sipp rtd, 1 ms resolution)\" }},"
    );
    json.push_str("  \"contenders\": [\n");
    for (i, c) in contenders.iter().enumerate() {
        let _ = writeln!(
            json,
            "    {{ \"name\": {}, \"about\": {}, \"knee_cps\": {}, \"parrot_over_this\": {}, \"skipped\": {},",
            json_str(c.name),
            json_str(&c.about),
            c.knee,
            if c.knee > 0 {
                format!("{:.3}", parrot_knee / f64::from(c.knee))
            } else {
                "null".to_owned()
            },
            c.skipped.as_deref().map_or("null".to_owned(), json_str)
        );
        json.push_str("      \"ramp\": [\n");
        for (j, s) in c.steps.iter().enumerate() {
            let _ = write!(
                json,
                "        {{ \"offered_cps\": {}, \"completed_cps\": {:.1}, \"calls_created\": {}, \"successful\": {}, \"failed\": {}, \"retransmissions\": {}, \"elapsed_s\": {:.2}, \"p50_ms\": {}, \"p99_ms\": {}, \"rtt_samples\": {}, \"held\": {} }}",
                s.offered,
                s.completed_cps,
                s.created,
                s.successful,
                s.failed,
                s.retransmissions,
                s.elapsed,
                s.p50_ms,
                s.p99_ms,
                s.rtt_samples,
                s.held
            );
            json.push_str(if j + 1 < c.steps.len() { ",\n" } else { "\n" });
        }
        json.push_str("      ]\n    }");
        json.push_str(if i + 1 < contenders.len() {
            ",\n"
        } else {
            "\n"
        });
    }
    json.push_str("  ]\n}\n");
    let dir = bench_dir();
    let path = dir.join("cps.json");
    std::fs::write(&path, json).unwrap();
    let chart = svg(
        &contenders,
        rates,
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
