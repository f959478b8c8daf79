//! `cargo xtask bench media`: G.711 and G.722 throughput, RTP packetize (+ send) cost per
//! packet, and how many paced PCMU streams one core sustains with p99 send
//! lateness under 5 ms. Writes `target/bench/media.json` and prints a table.
//! Without `--bench` (as `cargo test --all-targets` runs it) it only checks
//! that every part works, on tiny sizes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use bytes::Bytes;
use parrot_core::codec::{Codec, alaw, mulaw};
use parrot_core::media::{
    Action, MediaConfig, MediaHandler, MediaSession, bind_pair, pacing_counters,
    reset_pacing_counters,
};
use parrot_core::rtp::{PortAllocator, RtpSession, SessionConfig};
use parrot_core::sdp::Direction;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Samples per second through a G.711 law, encode and decode.
fn g711(samples: usize) -> [(String, f64); 4] {
    let pcm: Vec<i16> = (0..samples)
        .map(|i| ((i as f64 * 0.3).sin() * 20000.0) as i16)
        .collect();
    let mut out = Vec::with_capacity(samples);
    let mut back = Vec::with_capacity(samples);
    let mut results = Vec::new();
    for (name, enc, dec) in [
        (
            "mulaw",
            mulaw::encode as fn(&[i16], &mut Vec<u8>),
            mulaw::decode as fn(&[u8], &mut Vec<i16>),
        ),
        ("alaw", alaw::encode, alaw::decode),
    ] {
        out.clear();
        let t = Instant::now();
        enc(black_box(&pcm), &mut out);
        results.push((format!("{name} encode"), rate(samples as u64, t.elapsed())));
        back.clear();
        let t = Instant::now();
        dec(black_box(&out), &mut back);
        results.push((format!("{name} decode"), rate(samples as u64, t.elapsed())));
        assert_eq!(back.len(), samples);
    }
    [
        results[0].clone(),
        results[1].clone(),
        results[2].clone(),
        results[3].clone(),
    ]
}

/// Samples per second through G.722 (16 kHz), encode and decode.
fn g722(samples: usize) -> [(String, f64); 2] {
    use parrot_core::codec::{AudioDecoder, AudioEncoder, g722};
    let pcm: Vec<i16> = (0..samples)
        .map(|i| ((i as f64 * 0.3).sin() * 20000.0) as i16)
        .collect();
    let mut out = Vec::with_capacity(samples / 2);
    let mut back = Vec::with_capacity(samples);
    let t = Instant::now();
    g722::G722Encoder::new().encode(black_box(&pcm), &mut out);
    let enc = rate(samples as u64, t.elapsed());
    let t = Instant::now();
    g722::G722Decoder::new().decode(black_box(&out), &mut back);
    let dec = rate(samples as u64, t.elapsed());
    assert_eq!(back.len(), samples);
    [("encode".into(), enc), ("decode".into(), dec)]
}

/// Nanoseconds per RTP packet: packetize only, and packetize + UDP send on loopback.
fn rtp_cost(packets: u32) -> (f64, f64) {
    let mut s = RtpSession::new(SessionConfig::new(8000, 0), std::time::Instant::now());
    let payload = Bytes::from_static(&[0xffu8; 160]);
    let t = Instant::now();
    for _ in 0..packets {
        black_box(s.packetize(std::time::Instant::now(), payload.clone(), 160, false));
    }
    let packetize = t.elapsed().as_nanos() as f64 / f64::from(packets);
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sink.local_addr().unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let drain = std::thread::spawn(move || {
        sink.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).is_ok() {}
    });
    let t = Instant::now();
    for _ in 0..packets {
        let p = s.packetize(std::time::Instant::now(), payload.clone(), 160, false);
        let _ = tx.send_to(&p, to);
    }
    let with_send = t.elapsed().as_nanos() as f64 / f64::from(packets);
    let _ = drain.join();
    (packetize, with_send)
}

struct Endless;
impl MediaHandler for Endless {
    fn stream_started(&mut self) -> Action {
        Action::tone(440.0, 3600.0)
    }
}

/// Runs `n` paced PCMU sessions on one media thread for `secs` seconds, all sending to one
/// draining socket. Returns (ticks, late ticks, p99 ok).
fn paced(n: usize, secs: f64, ports: &Arc<Mutex<PortAllocator>>) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = sink.local_addr().unwrap();
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while sink.recv(&mut buf).await.is_ok() {}
        });
        let ip = "127.0.0.1".parse().unwrap();
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let (rtp, rtcp, lease) = bind_pair(ip, ports).await.unwrap();
            let (events, _) = tokio::sync::mpsc::channel(1);
            let cfg = MediaConfig {
                rtp,
                rtcp,
                codec: Codec::PCMU,
                telephone_event: None,
                ptime: 20,
                remote: Some(to),
                direction: Direction::SendRecv,
                rtp_seed: None,
                srtp: None,
                port_lease: Some(lease),
                rtcp_mux: false,
            };
            sessions.push(MediaSession::start(cfg, Endless, events).unwrap());
        }
        // Let every session start, then measure.
        tokio::time::sleep(Duration::from_millis(300)).await;
        reset_pacing_counters();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let counts = pacing_counters();
        for s in sessions {
            let _ = s.stop().await;
        }
        drain.abort();
        counts
    })
}

fn main() {
    // The paced streams are measured on one core: one media thread drives
    // them all (the default is one per CPU).
    assert!(parrot_core::media::set_media_threads(1), "no session yet");
    let bench = std::env::args().any(|a| a == "--bench");
    let (samples, packets, secs, steps): (usize, u32, f64, &[usize]) = if bench {
        (
            20_000_000,
            200_000,
            3.0,
            &[100, 250, 500, 1000, 1500, 2000, 3000, 4000],
        )
    } else {
        (16_000, 100, 0.3, &[4])
    };
    let codec = g711(samples);
    let wide = g722(samples);
    let (packetize, with_send) = rtp_cost(packets);
    let ports = Arc::new(Mutex::new(PortAllocator::new(30000..=59999).unwrap()));
    let mut ramp = Vec::new();
    let mut sustained = 0;
    for &n in steps {
        let (ticks, late) = paced(n, secs, &ports);
        let late_share = if ticks == 0 {
            1.0
        } else {
            late as f64 / ticks as f64
        };
        // p99 lateness under 5 ms ⟺ under 1 % of ticks later than 5 ms.
        let ok = ticks > 0 && late_share < 0.01;
        ramp.push((n, ticks, late, ok));
        if ok {
            sustained = n;
        } else {
            break;
        }
    }
    if !bench {
        assert!(
            ramp.iter().all(|r| r.1 > 0),
            "sessions sent nothing: {ramp:?}"
        );
        println!("media bench: every part ran (run with --bench to measure)");
        return;
    }
    let mut table = String::new();
    let _ = writeln!(table, "{:<28} {:>16}", "measure", "value");
    for (name, r) in &codec {
        let _ = writeln!(
            table,
            "{:<28} {:>13.1} M samples/s",
            format!("G.711 {name}"),
            r / 1e6
        );
    }
    for (name, r) in &wide {
        let _ = writeln!(
            table,
            "{:<28} {:>13.1} M samples/s",
            format!("G.722 {name}"),
            r / 1e6
        );
    }
    let _ = writeln!(
        table,
        "{:<28} {:>13.0} ns/packet",
        "RTP packetize", packetize
    );
    let _ = writeln!(
        table,
        "{:<28} {:>13.0} ns/packet",
        "RTP packetize + UDP send", with_send
    );
    for (n, ticks, late, ok) in &ramp {
        let _ = writeln!(
            table,
            "{:<28} {:>7} ticks, {:>5.2}% late >5 ms {}",
            format!("{n} paced PCMU streams, 1 core"),
            ticks,
            *late as f64 * 100.0 / (*ticks).max(1) as f64,
            if *ok { "ok" } else { "p99 over 5 ms" }
        );
    }
    let _ = writeln!(
        table,
        "{:<28} {:>16}",
        "streams sustained on 1 core", sustained
    );
    print!("{table}");
    let mut json = String::from("{\n  \"bench\": \"media\",\n");
    let _ = writeln!(
        json,
        "  \"cpus\": {},",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        json,
        "  \"g711_samples_per_second\": {{ {} }},",
        codec
            .iter()
            .map(|(n, r)| format!("\"{n}\": {r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        json,
        "  \"g722_samples_per_second\": {{ {} }},",
        wide.iter()
            .map(|(n, r)| format!("\"{n}\": {r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(json, "  \"rtp_packetize_ns\": {packetize:.1},");
    let _ = writeln!(json, "  \"rtp_packetize_send_ns\": {with_send:.1},");
    let _ = writeln!(
        json,
        "  \"paced_streams\": [{}],",
        ramp.iter()
            .map(|(n, t, l, ok)| format!("{{ \"streams\": {n}, \"ticks\": {t}, \"late_over_5ms\": {l}, \"p99_under_5ms\": {ok} }}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(json, "  \"streams_sustained_one_core\": {sustained}\n}}");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("media.json");
    std::fs::write(&path, json).unwrap();
    println!("wrote {}", path.display());
}
