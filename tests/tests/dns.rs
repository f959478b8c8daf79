//! RFC 3263 name resolution against a real DNS server: dnsmasq (started by
//! the test, on a free loopback port) serves SRV records for two Parrot
//! servers on loopback, priorities 10 and 20; the priority-10 one is not
//! running (its port closed). A Parrot endpoint dialing by domain name must
//! fail over to the second, which answers.
//!
//! Which failure the first server produces depends on the kernel: a UDP
//! datagram to a closed loopback port draws an ICMP port unreachable, but an
//! unconnected UDP socket (ours) is not told of it, so the INVITE times out
//! (Timer B, 64·T1: T1 is 50 ms here, so 3.2 s). The test reports which path
//! it saw (a send error would fail over at once) and accepts both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::transaction::TimerConfig;
use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::{TempDir, free_addr, free_port};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const T1: Duration = Duration::from_millis(50);

/// dnsmasq in the foreground for one test; killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free loopback port, answering only from its
    /// command line (`records`: `--srv-host=…`, `--host-record=…`, …) and
    /// NXDOMAIN for anything else under `parrot.test`; waits until it answers.
    fn start(dir: &TempDir, records: &[String]) -> Dnsmasq {
        let port = free_port();
        let log = dir.join("dnsmasq.log");
        let file = std::fs::File::create(&log).expect("dnsmasq log");
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--local=/parrot.test/",
                "--log-queries",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .args(records)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dnsmasq log"))
            .stderr(file)
            .spawn()
            .expect("dnsmasq is not installed: `apt-get install dnsmasq-base`");
        let d = Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        d.wait_ready();
        d
    }

    /// Waits (5 s at most) until a DNS query for `a.parrot.test` gets an answer.
    fn wait_ready(&self) {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A query for a.parrot.test A, id 0x5054, recursion desired.
        let mut q = vec![0x50, 0x54, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["a", "parrot", "test"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            let _ = sock.send_to(&q, self.addr);
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n >= 2 && buf[..2] == q[..2] {
                    return;
                }
            }
        }
        panic!("dnsmasq did not answer within 5 s:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers every INVITE with 200 and counts them.
#[derive(Clone)]
struct Answer(Arc<AtomicUsize>);

impl SipHandler for Answer {
    async fn invite(&mut self, _call: &mut Incoming) -> Reply {
        self.0.fetch_add(1, Ordering::SeqCst);
        Reply::ok()
    }
}

/// One dnsmasq, two SRV servers (the first down), and a dial of `uri`
/// that must be answered by the second.
/// Returns dnsmasq's log of the queries.
async fn fail_over(uri: &str, extra_records: &[String]) -> String {
    let dir = TempDir::new("dns");
    let down = free_port(); // nothing listens there
    let up = free_addr();
    let mut records = vec![
        format!("--srv-host=_sip._udp.parrot.test,a.parrot.test,{down},10,0"),
        format!(
            "--srv-host=_sip._udp.parrot.test,b.parrot.test,{},20,0",
            up.port()
        ),
        "--host-record=a.parrot.test,127.0.0.1".to_owned(),
        "--host-record=b.parrot.test,127.0.0.1".to_owned(),
    ];
    records.extend_from_slice(extra_records);
    let dns = Dnsmasq::start(&dir, &records);

    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let server = Endpoint::builder()
        .udp(up)
        .handler(move || Answer(count.clone()))
        .build()
        .await
        .unwrap();
    let client = Endpoint::builder()
        .udp(free_addr())
        .timers(TimerConfig::default().with_t1(T1))
        .dns_server(dns.addr)
        .build()
        .await
        .unwrap();

    let started = Instant::now();
    let mut call = client.dial(uri).unwrap().send().await.unwrap();
    let ok = tokio::time::timeout(Duration::from_secs(20), call.answered())
        .await
        .unwrap_or_else(|_| panic!("no answer within 20 s; dnsmasq:\n{}", dns.log()))
        .unwrap_or_else(|e| panic!("the call failed: {e}; dnsmasq:\n{}", dns.log()));
    let took = started.elapsed();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "the second server answered"
    );
    let path = if took >= T1 * 64 {
        "Timer B (no answer from the closed port)"
    } else {
        "a transport error (the send to the closed port failed)"
    };
    eprintln!("{uri}: failed over after {took:?}: {path}");
    let log = dns.log();
    assert!(
        log.contains("_sip._udp.parrot.test"),
        "SRV was asked:\n{log}"
    );

    tokio::time::timeout(Duration::from_secs(10), call.hangup())
        .await
        .expect("BYE answered in time")
        .expect("BYE answered");
    client.shutdown(Duration::from_secs(2)).await;
    server.shutdown(Duration::from_secs(2)).await;
    log
}

/// No NAPTR: SRV for the transports we speak (RFC 3263 §4.1), then A.
#[tokio::test]
async fn a_dial_by_domain_fails_over_to_the_second_srv_target() {
    let log = fail_over("sip:service@parrot.test", &[]).await;
    assert!(log.contains("query[NAPTR] parrot.test"), "{log}");
    assert!(log.contains("query[SRV] _sip._tcp.parrot.test"), "{log}");
}

/// NAPTR (SIP+D2U) leading to the same SRV records (RFC 3263 §4.1).
#[tokio::test]
async fn a_dial_through_naptr_fails_over_to_the_second_srv_target() {
    let log = fail_over(
        "sip:service@naptr.parrot.test",
        &["--naptr-record=naptr.parrot.test,10,10,S,SIP+D2U,,_sip._udp.parrot.test".to_owned()],
    )
    .await;
    assert!(log.contains("config naptr.parrot.test is <NAPTR>"), "{log}");
    assert!(
        !log.contains("_sip._tcp"),
        "the NAPTR record names UDP only:\n{log}"
    );
}
