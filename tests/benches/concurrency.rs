//! `cargo xtask bench concurrency`: how many long calls with paced PCMU both
//! ways one process holds. A Parrot UAC endpoint dials a Parrot UAS endpoint,
//! both in this process on one multi-thread runtime; each side's media handler
//! plays an endless tone (20 ms PCMU packets both ways). N is stepped up (100,
//! 250, 500, 1000 …; calls are added to the ones already up) and each step is
//! held `HOLD` seconds; it holds while fewer than 1 % of send ticks are more
//! than 5 ms late (p99 lateness ≤ 5 ms, from `pacing_counters()`, both sides)
//! and no caller's packet was late by more than one ptime (20 ms, from the
//! callers' `max_send_lateness_ms`). Reports the largest N held, RSS per call
//! ((VmRSS at N − VmRSS at 0) / N) and CPU per call (utime + stime over the
//! hold / hold / N, as a share of one core).
//!
//! Writes `target/bench/concurrency.json` and prints a table.
//! `PARROT_CONCURRENCY_STEPS=300,600` runs just those sizes. Without
//! `--bench` it holds 4 calls for a moment and checks that audio flows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use parrot_core::media::{Action, MediaHandler, pacing_counters, reset_pacing_counters};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, Endpoint, Incoming, OutgoingCall, Reply, SipHandler};
use parrot_tests::free_addr;
use parrot_tests::load::{bench_dir, cpu_seconds, machine_json, rss_kib};
use std::fmt::Write as _;
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
    held: bool,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // PARROT_CONCURRENCY_STEPS=200,400 replaces the ramp (for profiling one size).
    let chosen: Option<Vec<usize>> = std::env::var("PARROT_CONCURRENCY_STEPS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let (steps, hold, budget): (&[usize], f64, Duration) = match (&chosen, bench) {
        (Some(s), _) if !s.is_empty() => (s, 4.0, Duration::from_secs(600)),
        (_, true) => (
            &[100, 250, 500, 750, 1000, 1500, 2000, 2500],
            4.0,
            Duration::from_secs(150),
        ),
        (_, false) => (&[4], 1.0, Duration::from_secs(30)),
    };
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ramp, rss0) = rt.block_on(async {
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
        let phone = Endpoint::builder()
            .udp(free_addr())
            .rtp_ports(22000..=32767)
            .unwrap()
            .build()
            .await
            .unwrap();
        let uri = format!(
            "sip:service@{}",
            server.local_addr(TransportKind::Udp).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss0 = rss_kib();
        let mut calls: Vec<OutgoingCall> = Vec::new();
        let mut ramp: Vec<Step> = Vec::new();
        for &n in steps {
            if started.elapsed() > budget {
                eprintln!("time budget spent before {n} calls");
                break;
            }
            // Add calls up to n, 50 dialing at a time.
            let t = Instant::now();
            let mut failed_dials = 0;
            while calls.len() < n && failed_dials < 50 {
                let batch = (n - calls.len()).min(50);
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..batch {
                    set.spawn(dial(phone.clone(), uri.clone()));
                }
                while let Some(r) = set.join_next().await {
                    match r {
                        Ok(Some(c)) => calls.push(c),
                        _ => failed_dials += 1,
                    }
                }
            }
            let setup_s = t.elapsed().as_secs_f64();
            if calls.len() < n {
                eprintln!(
                    "{n} calls: only {} set up ({failed_dials} dials failed)",
                    calls.len()
                );
            }
            // Settle, then measure over the hold.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let before: Vec<f64> = calls
                .iter()
                .map(|c| c.media_stats().map_or(0.0, |s| s.max_send_lateness_ms))
                .collect();
            let received_before: Vec<u64> = calls
                .iter()
                .map(|c| c.media_stats().map_or(0, |s| s.packets_received))
                .collect();
            reset_pacing_counters();
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(hold)).await;
            let (ticks, late) = pacing_counters();
            let cpu = cpu_seconds() - cpu0;
            let wall = t0.elapsed().as_secs_f64();
            // Counts are published once a second: let the last second's arrive.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let rss = rss_kib();
            let mut worst = 0.0f64;
            let mut receiving = 0;
            for (i, c) in calls.iter().enumerate() {
                if let Some(s) = c.media_stats() {
                    // The per-call maximum only grows: a new maximum is from the hold.
                    if s.max_send_lateness_ms > before[i] {
                        worst = worst.max(s.max_send_lateness_ms);
                    }
                    if s.packets_received > received_before[i] {
                        receiving += 1;
                    }
                }
            }
            let late_share = late as f64 / ticks.max(1) as f64;
            let held = calls.len() == n
                && ticks > 0
                && late_share < 0.01
                && worst <= 20.0
                && receiving == n;
            let s = Step {
                calls: calls.len(),
                setup_s,
                ticks,
                late,
                late_share,
                worst_ms: worst,
                rss_kib: rss,
                cpu_share: cpu / wall,
                receiving,
                held,
            };
            eprintln!("{s:?}");
            ramp.push(s);
            if !held {
                break;
            }
        }
        let n = calls.len();
        let t = Instant::now();
        while !calls.is_empty() {
            let mut set = tokio::task::JoinSet::new();
            for mut c in calls.drain(..calls.len().min(100)) {
                set.spawn(async move { c.hangup().await.is_ok() });
            }
            while set.join_next().await.is_some() {}
        }
        phone.shutdown(Duration::from_millis(500)).await;
        server.shutdown(Duration::from_millis(500)).await;
        eprintln!(
            "{n} calls hung up in {:.1} s; server {:?}",
            t.elapsed().as_secs_f64(),
            server.stats()
        );
        drop(calls);
        (ramp, rss0)
    });
    drop(rt);

    if !bench {
        let s = ramp.first().expect("one step");
        assert!(
            s.calls == 4 && s.ticks > 0 && s.receiving == 4,
            "calls did not carry audio both ways: {s:?}"
        );
        println!("concurrency bench: calls carry paced audio (run with --bench to measure)");
        return;
    }

    let best = ramp.iter().rev().find(|s| s.held);
    let per_call = |s: &Step| {
        (
            s.rss_kib.saturating_sub(rss0) as f64 / s.calls.max(1) as f64,
            s.cpu_share / s.calls.max(1) as f64,
        )
    };
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:>6} {:>8} {:>9} {:>8} {:>9} {:>10} {:>10} {:>11}  held",
        "calls", "setup s", "ticks", ">5ms %", "worst ms", "RSS MiB", "KiB/call", "core%/call"
    );
    for s in &ramp {
        let (kib, cpu) = per_call(s);
        let _ = writeln!(
            table,
            "{:>6} {:>8.1} {:>9} {:>8.2} {:>9.1} {:>10.1} {:>10.1} {:>11.3}  {}",
            s.calls,
            s.setup_s,
            s.ticks,
            s.late_share * 100.0,
            s.worst_ms,
            s.rss_kib as f64 / 1024.0,
            kib,
            cpu * 100.0,
            if s.held { "yes" } else { "NO" }
        );
    }
    let _ = writeln!(table, "RSS with no call: {:.1} MiB", rss0 as f64 / 1024.0);
    match best {
        Some(s) => {
            let (kib, cpu) = per_call(s);
            let _ = writeln!(
                table,
                "largest N held: {} calls (2 PCMU streams each, {} streams); {kib:.1} KiB RSS and {:.3} % of a core per call",
                s.calls,
                s.calls * 2,
                cpu * 100.0
            );
        }
        None => {
            let _ = writeln!(table, "no step held");
        }
    }
    if ramp.last().is_some_and(|s| s.held) {
        let _ = writeln!(
            table,
            "(the top of the ramp held: not saturated, or the time budget ran out)"
        );
    }
    let _ = writeln!(
        table,
        "held: < 1 % of ticks > 5 ms late, no caller tick > 20 ms late, every call receiving; {hold} s hold; took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    print!("{table}");

    let mut json = String::from("{\n  \"bench\": \"concurrency\",\n");
    let _ = writeln!(json, "  \"machine\": {},", machine_json());
    let _ = writeln!(
        json,
        "  \"method\": {{ \"calls\": \"parrot UAC endpoint -> parrot UAS endpoint, one process, tokio multi-thread runtime\", \"media\": \"PCMU 20 ms both ways, a tone each side\", \"hold_s\": {hold}, \"held\": \"late(>5 ms) ticks < 1% (p99 <= 5 ms), no caller tick > 20 ms late, every call receiving\", \"cpu_share\": \"(utime+stime) / wall over the hold, 1.0 = one core\" }},"
    );
    let _ = writeln!(json, "  \"rss_at_zero_kib\": {rss0},");
    json.push_str("  \"ramp\": [\n");
    for (i, s) in ramp.iter().enumerate() {
        let (kib, cpu) = per_call(s);
        let _ = write!(
            json,
            "    {{ \"calls\": {}, \"setup_s\": {:.2}, \"ticks\": {}, \"late_over_5ms\": {}, \"late_share\": {:.5}, \"worst_caller_lateness_ms\": {:.2}, \"receiving\": {}, \"rss_kib\": {}, \"rss_kib_per_call\": {kib:.1}, \"cpu_share\": {:.3}, \"cpu_share_per_call\": {cpu:.6}, \"held\": {} }}",
            s.calls,
            s.setup_s,
            s.ticks,
            s.late,
            s.late_share,
            s.worst_ms,
            s.receiving,
            s.rss_kib,
            s.cpu_share,
            s.held
        );
        json.push_str(if i + 1 < ramp.len() { ",\n" } else { "\n" });
    }
    json.push_str("  ],\n");
    match best {
        Some(s) => {
            let (kib, cpu) = per_call(s);
            let _ = writeln!(
                json,
                "  \"largest_n_held\": {},\n  \"rss_kib_per_call\": {kib:.1},\n  \"cpu_share_per_call\": {cpu:.6}\n}}",
                s.calls
            );
        }
        None => json.push_str(
            "  \"largest_n_held\": 0,\n  \"rss_kib_per_call\": null,\n  \"cpu_share_per_call\": null\n}\n",
        ),
    }
    let path = bench_dir().join("concurrency.json");
    std::fs::write(&path, json).unwrap();
    println!("wrote {}", path.display());
}
