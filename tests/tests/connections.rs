//! Stream connections against the file descriptor limit, and the hardening
//! report's crowd of idle and slowloris connections (issue 13).
//!
//! The server is `src/bin/conn_server.rs`, a Parrot endpoint on UDP and TCP
//! with the library's default caps, in a process of its own: `prlimit` gives
//! it a descriptor limit, and `/proc/PID/fd` counts what it holds. The clients
//! connect from many 127.0.0.x addresses (Linux routes all of 127/8 on lo), so
//! that the per-source cap (32) is not what stops them. No timing assertion
//! beyond generous bounds: the machine is shared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // test code

use parrot_tests::free_port;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The server process; killed on drop.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Server {
    /// Starts `conn_server` on a free port, under `prlimit --nofile=N:N` if
    /// `fd_limit` is given, and waits for it to listen.
    fn start(fd_limit: Option<u64>, extra: &[&str]) -> Server {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let bin = env!("CARGO_BIN_EXE_conn_server");
        let mut cmd = match fd_limit {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--bind")
            .arg(addr.to_string())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env("RUST_LOG", "warn");
        let mut child = cmd
            .spawn()
            .expect("conn_server (and prlimit, util-linux) run");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server { child, lines, addr };
        server.expect_line("ready");
        server
    }

    fn expect_line(&self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("conn_server did not say {prefix:?}: {e}"));
        assert!(line.starts_with(prefix), "{line:?}, wanted {prefix:?}");
        line
    }

    fn command(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Descriptors the server holds now.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// The server's soft RLIMIT_NOFILE, from /proc/PID/limits.
    fn soft_fd_limit(&self) -> Option<u64> {
        soft_nofile(&format!("/proc/{}/limits", self.pid()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The soft "Max open files" of a /proc/*/limits file (`None`: unlimited).
fn soft_nofile(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().ok()
}

/// The test process opens thousands of sockets itself: its soft limit goes
/// to the hard one (`prlimit --pid`, util-linux).
fn raise_own_fd_limit(need: u64) {
    if soft_nofile("/proc/self/limits").is_none_or(|n| n >= need) {
        return;
    }
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={need}:"))
        .status()
        .unwrap();
    assert!(status.success(), "cannot raise the test's own fd limit");
}

/// What the server's cap comes to for its soft limit (the library's rule:
/// three quarters of the limit, a reserve of at least 64 and at most half).
fn expected_cap(soft: Option<u64>) -> usize {
    let max = 10_000;
    let Some(soft) = soft else { return max };
    let reserve = (soft / 4).max(64).min(soft / 2);
    max.min(usize::try_from(soft - reserve).unwrap())
}

fn options(transport: &str, from: SocketAddr, to: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:probe@{to} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {from};branch=z9hG4bK-conn-{n}\r\n\
         Max-Forwards: 70\r\nTo: <sip:probe@{to}>\r\n\
         From: <sip:test@{from}>;tag=t{n}\r\nCall-ID: conn-{n}@test\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A TCP connection to `to` from `source` (port chosen by the kernel).
async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((source, 0)))?;
    s.connect(to).await
}

/// A new client's OPTIONS over TCP: the status code of the answer, or why none came.
async fn tcp_options(source: Ipv4Addr, to: SocketAddr, n: u32) -> Result<u16, String> {
    let mut c = connect_from(source, to)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let from = c.local_addr().unwrap();
    c.write_all(options("TCP", from, to, n).as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    let read = async {
        loop {
            let k = c.read(&mut buf[got..]).await.map_err(|e| e.to_string())?;
            if k == 0 {
                return Err("closed by the server".to_owned());
            }
            got += k;
            let text = String::from_utf8_lossy(&buf[..got]);
            if let Some(line) = text.split("\r\n").next().filter(|_| text.contains("\r\n")) {
                let code = line.split(' ').nth(1).and_then(|c| c.parse().ok());
                return code.ok_or_else(|| format!("not a response: {line:?}"));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .unwrap_or_else(|_| Err("no answer within 3 s".to_owned()))
}

/// UDP OPTIONS every 50 ms until `stop`, from a thread of its own: how many
/// were sent and how many got a 200 within a second.
fn udp_probe(server: SocketAddr, stop: Arc<AtomicBool>) -> (u32, u32) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let (mut sent, mut answered) = (0, 0);
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        sent += 1;
        sock.send_to(options("UDP", local, server, sent).as_bytes(), server)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 200") && text.contains(&format!("z9hG4bK-conn-{sent}"))
                {
                    answered += 1;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (sent, answered)
}

/// `n` connections spread over sources 127.0.0.`first`.., `per_source` each.
async fn crowd(server: SocketAddr, first: u8, per_source: usize, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let source = Ipv4Addr::new(127, 0, 0, first + u8::try_from(i / per_source).unwrap());
        conns.push(connect_from(source, server).await.unwrap());
    }
    conns
}

/// How many of `conns` the server has closed (a read sees EOF or a reset
/// without waiting).
fn closed_count(conns: &[TcpStream]) -> usize {
    let mut buf = [0u8; 64];
    conns
        .iter()
        .filter(|c| match c.try_read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

/// At the process's descriptor limit, before: accept failed with EMFILE, the
/// listener retried (and logged) every 50 ms, and a new client's OPTIONS was
/// never answered. Now the cap stays below the limit and an idle connection
/// makes room for the new client; UDP is answered throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_fd_limit_a_new_client_is_still_served() {
    raise_own_fd_limit(4096);
    let mut server = Server::start(Some(256), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (addr, stop) = (server.addr, Arc::clone(&stop));
        std::thread::spawn(move || udp_probe(addr, stop))
    };
    let base_fds = server.fds();
    // 300 idle connections, 30 from each of 10 addresses: more than the 256
    // descriptors the server may have.
    let idle = crowd(server.addr, 2, 30, 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let full_fds = server.fds();
    let closed_at_once = closed_count(&idle);
    let answer = tcp_options(Ipv4Addr::new(127, 0, 0, 50), server.addr, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closed_then = closed_count(&idle);
    // Out of descriptors for other reasons (the server opens files until it
    // cannot): a new connection is closed, not left hanging, and UDP goes on.
    server.command("hog 100000");
    let hogging = server.expect_line("hogging");
    let starved = tcp_options(Ipv4Addr::new(127, 0, 0, 51), server.addr, 2).await;
    server.command("free");
    server.expect_line("freed");
    let after = tcp_options(Ipv4Addr::new(127, 0, 0, 52), server.addr, 3).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, answered) = prober.join().unwrap();
    println!(
        "fd limit 256: server fds {base_fds} at start, {full_fds} with 300 idle clients; \
         {closed_at_once} of them closed at once, {} more when a new client came; \
         new client over TCP: {answer:?}; out of fds ({hogging}): {starved:?}; \
         after freeing them: {after:?}; UDP OPTIONS answered {answered} of {sent}",
        closed_then - closed_at_once
    );
    assert_eq!(answer, Ok(200), "a new client at the fd limit");
    let cap = expected_cap(Some(256));
    assert!(full_fds <= 256, "{full_fds}");
    assert_eq!(closed_at_once, 300 - cap, "the cap is {cap}");
    assert!(closed_then > closed_at_once, "an idle connection made room");
    assert!(
        matches!(&starved, Err(e) if e.contains("closed") || e.contains("reset")),
        "out of descriptors, a new connection is closed at once: {starved:?}"
    );
    assert_eq!(after, Ok(200), "served again once descriptors are free");
    assert!(sent >= 5 && answered == sent, "UDP: {answered} of {sent}");
}

/// The hardening report's crowd at the library's defaults (caps and limits;
/// only the two timeouts shortened so the test ends in seconds): 3,000 idle
/// TCP connections from 100 addresses plus 200 slowloris from 10 more. All
/// are accepted (up to the cap the descriptor limit allows), a new client is
/// served among them, the slowloris ones close at the message deadline and
/// the idle ones at the idle timeout, and the descriptors come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_crowd_at_default_settings() {
    raise_own_fd_limit(8192);
    let idle_ms = 4000;
    let message_ms = 2000;
    let server = Server::start(
        None,
        &[
            "--idle-ms",
            &idle_ms.to_string(),
            "--message-ms",
            &message_ms.to_string(),
        ],
    );
    let cap = expected_cap(server.soft_fd_limit());
    let base_fds = server.fds();
    let t0 = Instant::now();
    // Each client connects, then (slowloris) trickles a header, a byte every
    // 300 ms, and reports how long after its connect the server closed it.
    let mut watchers = Vec::new();
    for i in 0..3200 {
        let slowloris = i >= 3000;
        let source = if slowloris {
            Ipv4Addr::new(127, 0, 0, 102 + u8::try_from((i - 3000) / 20).unwrap())
        } else {
            Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i / 30).unwrap())
        };
        let c = connect_from(source, server.addr).await.unwrap();
        let connected = Instant::now();
        watchers.push(tokio::spawn(async move {
            let (mut r, mut w) = c.into_split();
            let trickle = async move {
                if slowloris {
                    for b in b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP" {
                        if w.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
                std::future::pending::<()>().await;
            };
            let mut buf = [0u8; 64];
            let closed = async {
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            tokio::select! {
                () = closed => Some(connected.elapsed()),
                () = trickle => None,
                () = tokio::time::sleep(Duration::from_secs(30)) => None,
            }
        }));
    }
    let connected = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let crowd_fds = server.fds();
    let answer = tcp_options(Ipv4Addr::new(127, 0, 0, 200), server.addr, 1).await;
    let mut closed: Vec<(bool, Option<Duration>)> = Vec::new();
    for (i, w) in watchers.into_iter().enumerate() {
        closed.push((i >= 3000, w.await.unwrap()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end_fds = server.fds();
    let span = |slowloris: bool| {
        let times: Vec<Duration> = closed
            .iter()
            .filter(|(s, _)| *s == slowloris)
            .filter_map(|(_, t)| *t)
            .collect();
        // Closed well before either timeout: refused or made room for another.
        let early = times
            .iter()
            .filter(|t| **t < Duration::from_millis(message_ms / 2))
            .count();
        (
            times.len(),
            early,
            times.iter().min().copied(),
            times.iter().max().copied(),
        )
    };
    let (idle_closed, idle_early, idle_first, idle_last) = span(false);
    let (slow_closed, slow_early, slow_first, slow_last) = span(true);
    println!(
        "defaults (cap {cap}; idle_timeout {idle_ms} ms, message_timeout {message_ms} ms): \
         3,200 connected in {connected:?}; server fds {base_fds} before, {crowd_fds} with the \
         crowd, {end_fds} after; new client: {answer:?}; slowloris closed {slow_closed}/200 \
         ({slow_early} early) {slow_first:?}..{slow_last:?} after their connect; idle closed \
         {idle_closed}/3000 ({idle_early} early) {idle_first:?}..{idle_last:?} after"
    );
    assert_eq!(answer, Ok(200), "a new client among the crowd");
    assert_eq!((idle_closed, slow_closed), (3000, 200), "every one closed");
    if cap >= 3201 {
        // All accepted: none closed before the timeouts, and the server held them.
        assert_eq!((idle_early, slow_early), (0, 0));
        assert!(crowd_fds >= base_fds + 3200, "{crowd_fds}");
        let slow_last = slow_last.unwrap();
        assert!(slow_last < Duration::from_millis(idle_ms), "{slow_last:?}");
        // The server's clock starts at its accept, a little before the client
        // notes its connect: 10 % of slack.
        let idle_first = idle_first.unwrap();
        assert!(
            idle_first >= Duration::from_millis(idle_ms * 9 / 10),
            "{idle_first:?}"
        );
    } else {
        assert!(crowd_fds <= cap + base_fds + 64, "{crowd_fds}");
    }
    assert!(
        end_fds <= base_fds + 2,
        "descriptors back: {end_fds} vs {base_fds}"
    );
}
