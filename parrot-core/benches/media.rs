//! `cargo xtask bench media`: G.711 and G.722 throughput, RTP packetize (+ send) cost per
//! packet, how many paced PCMU streams one core sustains with p99 send
//! lateness under 5 ms, and (Linux) the kernel's price per media datagram at thousands of
//! calls with a socket per call side (as sessions have by default) beside one shared socket per
//! thread with `sendmmsg`/`recvmmsg`. Writes `target/bench/media.json` and prints a table.
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
use parrot_core::rtp::{PortAllocator, RtpPacket, RtpSession, SessionConfig};
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

/// CPU (ns) this thread has run, from the scheduler's own count.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What the kernel charges for a call's media datagrams under two socket layouts, side by
/// side: `calls` calls, one side of each on each of two threads (as the two media threads
/// drive the two sides of a call in one process), every side sending one datagram a 20 ms
/// tick (its SSRC in it), the ticks spread over ten 2 ms wake-ups:
///
/// - `socket per side`: what sessions do by default: each side has its own socket, connected to
///   its peer's; a tick is one `send` and one `recv`.
/// - `shared, mmsg`: one socket per thread; a wake-up sends its sides' datagrams with
///   `sendmmsg` (32 at most a call) and reads what came with `recvmmsg` (quinn-udp), each
///   datagram handed to its side by (source, SSRC), the demultiplexing a shared port needs.
///
/// Each layout runs `rounds` times, alternated; each round gives the two threads' CPU per
/// datagram carried (its send, its loopback delivery and its read) in ns.
#[cfg(target_os = "linux")]
fn udp_layouts(calls: usize, secs: f64, rounds: usize) -> Vec<UdpLayout> {
    let layouts: [(&'static str, LayoutRun); 2] = [
        ("socket per side", socket_per_side),
        ("shared, mmsg", shared_mmsg),
    ];
    let mut results: Vec<UdpLayout> = layouts
        .iter()
        .map(|(name, _)| UdpLayout {
            name,
            calls,
            ns_per_datagram: Vec::new(),
            read: 0,
        })
        .collect();
    // Alternated, so a drift of the host's speed touches both alike.
    for _ in 0..rounds {
        for ((_, run), result) in layouts.iter().zip(&mut results) {
            let (cpu_ns, read) = run(calls, secs);
            result
                .ns_per_datagram
                .push(cpu_ns as f64 / read.max(1) as f64);
            result.read += read;
        }
    }
    results
}

/// Drives `calls` calls for `secs` under one layout: (CPU ns of both threads, datagrams read).
#[cfg(target_os = "linux")]
type LayoutRun = fn(usize, f64) -> (u64, u64);

/// One layout's rounds ([`udp_layouts`]).
struct UdpLayout {
    name: &'static str,
    calls: usize,
    ns_per_datagram: Vec<f64>,
    /// Datagrams read, over all rounds.
    read: u64,
}

impl UdpLayout {
    fn median_ns(&self) -> f64 {
        let mut v = self.ns_per_datagram.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    /// A call carries 100 datagrams a second (50 each way): its share of a core, in %.
    fn core_percent_per_call(&self) -> f64 {
        self.median_ns() * 100.0 / 1e9 * 100.0
    }
}

/// Whether `calls` calls' sockets (two a call, one layout at a time) fit under the
/// process's open-file limit; a step that does not is left out, and says so.
#[cfg(target_os = "linux")]
fn fits_descriptors(calls: usize) -> bool {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            let line = l.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(usize::MAX);
    let fits = 2 * calls + 256 <= soft;
    if !fits {
        println!("UDP layouts at {calls} calls left out: {soft} open files allowed (ulimit -n)");
    }
    fits
}

/// The datagram side `i` sends each tick: 20 ms of PCMU in RTP (172 bytes), `i` its SSRC.
#[cfg(target_os = "linux")]
fn tick_datagram(i: usize) -> Bytes {
    let ssrc = u32::try_from(i).unwrap();
    RtpPacket::new(0, 0, 0, ssrc, Bytes::from_static(&[0xff; 160])).to_bytes()
}

/// Runs `work(wake-up)` every 2 ms for `secs` on a thread of its own; returns that
/// thread's CPU time and what `work` returned, summed.
#[cfg(target_os = "linux")]
fn paced_thread<F>(secs: f64, mut work: F) -> std::thread::JoinHandle<(u64, u64)>
where
    F: FnMut(usize) -> u64 + Send + 'static,
{
    std::thread::spawn(move || {
        let cpu = thread_cpu_ns();
        let start = Instant::now();
        let (mut wake, mut total) = (0usize, 0u64);
        while start.elapsed().as_secs_f64() < secs {
            total += work(wake % 10);
            wake += 1;
            let next = start + Duration::from_millis(2 * wake as u64);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        (thread_cpu_ns() - cpu, total)
    })
}

/// The [`paced_thread`]s' CPU time and counts, summed.
#[cfg(target_os = "linux")]
fn joined(threads: Vec<std::thread::JoinHandle<(u64, u64)>>) -> (u64, u64) {
    threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(c, r), (tc, tr)| (c + tc, r + tr))
}

#[cfg(target_os = "linux")]
fn socket_per_side(calls: usize, secs: f64) -> (u64, u64) {
    let bind = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        let (x, y) = (bind(), bind());
        x.connect(y.local_addr().unwrap()).unwrap();
        y.connect(x.local_addr().unwrap()).unwrap();
        x.set_nonblocking(true).unwrap();
        y.set_nonblocking(true).unwrap();
        a.push(x);
        b.push(y);
    }
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|sockets| {
            let datagrams: Vec<_> = (0..sockets.len()).map(tick_datagram).collect();
            let mut buf = [0u8; 2048];
            paced_thread(secs, move |slot| {
                let mut read = 0;
                for (s, d) in sockets.iter().zip(&datagrams).skip(slot).step_by(10) {
                    let _ = s.send(d);
                    read += u64::from(s.recv(&mut buf).is_ok());
                }
                read
            })
        })
        .collect();
    joined(threads)
}

#[cfg(target_os = "linux")]
fn shared_mmsg(calls: usize, secs: f64) -> (u64, u64) {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    use std::collections::HashMap;
    use std::io::{IoSlice, IoSliceMut};

    const BATCH: usize = 32;
    let bind = || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        // A wake-up's datagrams for a few thousand sides wait here at once.
        let r = socket2::SockRef::from(&s);
        r.set_recv_buffer_size(4 << 20).unwrap();
        r.set_send_buffer_size(4 << 20).unwrap();
        s
    };
    let (a, b) = (bind(), bind());
    let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let threads: Vec<_> = [(a, b_at), (b, a_at)]
        .into_iter()
        .map(|(socket, peer)| {
            let state = quinn_udp::UdpSocketState::new((&socket).into()).unwrap();
            let datagrams: Vec<_> = (0..calls).map(tick_datagram).collect();
            // The peer's sides, by (source, SSRC); what each has received.
            let sides: HashMap<(std::net::SocketAddr, u32), usize> = (0..calls)
                .map(|i| ((peer, u32::try_from(i).unwrap()), i))
                .collect();
            let mut received = vec![0u32; calls];
            let to = SocketAddrAny::from(peer);
            let mut bufs = vec![[0u8; 2048]; BATCH];
            let mut meta = vec![quinn_udp::RecvMeta::default(); BATCH];
            paced_thread(secs, move |slot| {
                let due: Vec<&Bytes> = datagrams.iter().skip(slot).step_by(10).collect();
                for chunk in due.chunks(BATCH) {
                    let iovs: Vec<[IoSlice<'_>; 1]> =
                        chunk.iter().map(|d| [IoSlice::new(&d[..])]).collect();
                    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
                        .iter()
                        .map(|_| SendAncillaryBuffer::default())
                        .collect();
                    let mut hdrs: Vec<MMsgHdr<'_>> = iovs
                        .iter()
                        .zip(&mut controls)
                        .map(|(iov, c)| MMsgHdr::new_with_addr(&to, iov, c))
                        .collect();
                    let mut sent = 0;
                    while sent < hdrs.len() {
                        match sendmmsg(&socket, &mut hdrs[sent..], SendFlags::empty()) {
                            Ok(n) if n > 0 => sent += n,
                            _ => break,
                        }
                    }
                }
                let mut read = 0;
                loop {
                    let mut slices: Vec<IoSliceMut<'_>> =
                        bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                    let Ok(n) = state.recv((&socket).into(), &mut slices, &mut meta) else {
                        break;
                    };
                    for (m, buf) in meta[..n].iter().zip(&bufs) {
                        // GRO may coalesce a flow's datagrams: one each `stride` bytes.
                        for d in buf[..m.len].chunks(m.stride.max(1)) {
                            let Some(ssrc) = d.get(8..12) else { continue };
                            let ssrc = u32::from_be_bytes(ssrc.try_into().unwrap());
                            if let Some(&i) = sides.get(&(m.addr, ssrc)) {
                                // The side's own state is touched, as a session's would be.
                                *std::hint::black_box(&mut received[i]) += 1;
                                read += 1;
                            }
                        }
                    }
                    if n < BATCH {
                        break;
                    }
                }
                read
            })
        })
        .collect();
    joined(threads)
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
                sockets: (rtp, rtcp, lease).into(),
                ssrc: None,
                remote_ssrc: None,
                codec: Codec::PCMU,
                telephone_event: None,
                ptime: 20,
                remote: Some(to),
                direction: Direction::SendRecv,
                rtp_seed: None,
                srtp: None,
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
    let (udp_steps, udp_secs, udp_rounds): (&[usize], f64, usize) = if bench {
        (&[2000, 4000], 3.0, 3)
    } else {
        (&[8], 0.2, 1)
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
    // Two threads of their own, after the paced streams (which use one core).
    #[cfg(target_os = "linux")]
    let udp: Vec<UdpLayout> = udp_steps
        .iter()
        .filter(|&&calls| fits_descriptors(calls))
        .flat_map(|&calls| udp_layouts(calls, udp_secs, udp_rounds))
        .collect();
    #[cfg(not(target_os = "linux"))]
    let udp: Vec<UdpLayout> = Vec::new();
    if !bench {
        assert!(
            ramp.iter().all(|r| r.1 > 0),
            "sessions sent nothing: {ramp:?}"
        );
        #[cfg(target_os = "linux")]
        for l in &udp {
            assert!(l.read > 0, "{}: nothing read", l.name);
        }
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
    for l in &udp {
        let _ = writeln!(
            table,
            "{:<28} {:>13.0} ns/datagram ({:.4} % of a core per call; rounds {})",
            format!("UDP {} calls, {}", l.calls, l.name),
            l.median_ns(),
            l.core_percent_per_call(),
            l.ns_per_datagram
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join("/")
        );
    }
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
    let _ = writeln!(
        json,
        "  \"udp_layouts\": [{}],",
        udp.iter()
            .map(|l| format!(
                "{{ \"layout\": \"{}\", \"calls\": {}, \"ns_per_datagram_median\": {:.1}, \"ns_per_datagram_rounds\": [{}], \"core_percent_per_call\": {:.5} }}",
                l.name,
                l.calls,
                l.median_ns(),
                l.ns_per_datagram.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(", "),
                l.core_percent_per_call()
            ))
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
