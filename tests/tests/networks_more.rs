//! More calls across the lab of network namespaces (see
//! `parrot_tests::netns` and `networks.rs`):
//!
//! - a dial by domain name, resolved (RFC 3263) through dnsmasq inside the
//!   lab: the phone on B finds the name server through its namespace's own
//!   `/etc/resolv.conf`, the SRV records name two servers, the preferred one
//!   down, and the call must reach the other (the uas example on A);
//! - the projects `parrot new` generates, at their defaults (the server binds
//!   0.0.0.0:5060), the server on A and the phone on B.
//!
//! Each call checks audio both ways (each side's recording holds the other
//! side's tone), RTP both ways on the wire, and that no SIP message on the
//! wire names 0.0.0.0, `::` or a loopback address.
//!
//! Needs root (`ip netns`); `nftables`, `iproute2`, `python3` and `dnsmasq-base`
//! are installed by `cargo xtask test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_tests::netns::{
    ANSWER_SECS, ANSWER_TONE, CALLER_SECS, CALLER_TONE, Capture, Host, Lab, Packet, Proc, Verdict,
    addr, bounded, examples, spawn_caller, start_uas, uac_bin,
};
use parrot_tests::{TempDir, cargo_in_generated, generate_project, generated_bin};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The generated server's welcome prompt (templates/make_assets.py).
const WELCOME_TONE: f64 = 660.0;
const WELCOME_SECS: f64 = 1.5;
/// The test domain (RFC 2606) the SRV records are for.
const DOMAIN: &str = "parrot.test";
/// Where the live server (the uas on A, bound to 0.0.0.0) listens.
const LIVE_PORT: u16 = 5060;

// ----------------------------------------------------------- DNS failover

/// The preferred SRV target, the one that does not answer.
#[derive(Debug, Clone, Copy)]
enum Dead {
    /// A's own address, a port nothing listens on: A answers each INVITE
    /// with ICMP port unreachable, which an unconnected UDP socket is not
    /// told of; the INVITE times out (Timer B, 64·T1, T1 = 500 ms: 32 s).
    ClosedPort,
    /// An address B has no route to: the send itself fails at once.
    Unroutable,
}

impl Dead {
    fn addr(self) -> SocketAddr {
        match self {
            Dead::ClosedPort => (addr::A, 5070).into(),
            Dead::Unroutable => (Ipv4Addr::new(203, 0, 113, 99), 5060).into(),
        }
    }
}

/// dnsmasq on A at 192.0.2.1:53, answering only from its command line.
async fn start_dnsmasq(lab: &Lab, tmp: &TempDir, dead: SocketAddr) -> Proc {
    let live: SocketAddr = (addr::A, LIVE_PORT).into();
    let pid = tmp.join("dnsmasq.pid");
    let args = [
        "dnsmasq".to_owned(),
        "--no-daemon".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        format!("--listen-address={}", addr::A),
        "--bind-interfaces".to_owned(),
        "--port=53".to_owned(),
        format!("--local=/{DOMAIN}/"),
        "--log-queries".to_owned(),
        "--log-facility=-".to_owned(),
        format!("--pid-file={}", pid.display()),
        // Priority 10 (preferred) is down, 20 is the uas.
        format!(
            "--srv-host=_sip._udp.{DOMAIN},dead.{DOMAIN},{},10,0",
            dead.port()
        ),
        format!(
            "--srv-host=_sip._udp.{DOMAIN},live.{DOMAIN},{},20,0",
            live.port()
        ),
        format!("--host-record=dead.{DOMAIN},{}", dead.ip()),
        format!("--host-record=live.{DOMAIN},{}", live.ip()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dns = lab.spawn(Host::A, "dnsmasq", &args);
    // dnsmasq binds its sockets before it logs that it started.
    if let Err(e) = dns
        .wait_for_line(|l| l.contains("started, version"), Duration::from_secs(5))
        .await
    {
        panic!("dnsmasq did not start (`apt-get install dnsmasq-base`?): {e}");
    }
    dns
}

/// What the capture on B shows of the failover: the INVITEs B sent to each
/// server, in order, and whether the live server answered 200.
fn failover_seen(v: &mut Verdict, cap: &Capture, dead: Dead) {
    let packets = cap.packets();
    let invite = |p: &Packet| p.sip().is_some_and(|s| s.starts_with("INVITE "));
    let to = |p: &Packet, a: SocketAddr| p.src.ip() == IpAddr::from(addr::B) && p.dst == a;
    let live: SocketAddr = (addr::A, LIVE_PORT).into();
    let dead_at: Vec<usize> = (0..packets.len())
        .filter(|&i| invite(&packets[i]) && to(&packets[i], dead.addr()))
        .collect();
    let live_at: Vec<usize> = (0..packets.len())
        .filter(|&i| invite(&packets[i]) && to(&packets[i], live))
        .collect();
    let ok_from_live = packets.iter().any(|p| {
        p.src == live
            && p.sip()
                .is_some_and(|s| s.starts_with("SIP/2.0 200") && s.contains(" INVITE\r\n"))
    });
    let answered_by_dead = packets
        .iter()
        .any(|p| p.src == dead.addr() && p.sip().is_some());
    // A failover INVITE is a new transaction: its CSeq follows the one
    // given up on (shown, not checked: the first CSeq is the stack's choice).
    let cseq = |i: &usize| {
        packets[*i]
            .sip()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("CSeq:"))
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    eprintln!(
        "failover on the wire: {} INVITE(s) to the dead {} (packets {dead_at:?}, {:?}), \
         {} to the live {live} (packets {live_at:?}, {:?}), 200 from the live one: {ok_from_live}",
        dead_at.len(),
        dead.addr(),
        dead_at.first().map(cseq),
        live_at.len(),
        live_at.first().map(cseq),
    );
    match dead {
        // It must have been tried first, and given up on before the live one.
        Dead::ClosedPort => {
            if dead_at.is_empty() {
                v.fail(format!("no INVITE went to the preferred {}", dead.addr()));
            }
            if let (Some(last_dead), Some(first_live)) = (dead_at.last(), live_at.first()) {
                if first_live < last_dead {
                    v.fail("an INVITE went to the live server before the dead one was given up");
                }
            }
        }
        // Nothing can leave B for it: the send failed.
        Dead::Unroutable => {
            if packets.iter().any(|p| p.dst.ip() == dead.addr().ip()) {
                v.fail(format!("a packet to the unroutable {} left B", dead.addr()));
            }
        }
    }
    if live_at.is_empty() {
        v.fail(format!("no INVITE went to the live {live}"));
    }
    if !ok_from_live {
        v.fail(format!("no 200 to the INVITE came from the live {live}"));
    }
    if answered_by_dead {
        v.fail(format!("the dead {} answered", dead.addr()));
    }
}

/// What dnsmasq's log shows: B asked for the SRV records through the name
/// server its resolv.conf names, and for both targets' addresses.
fn lookups_seen(v: &mut Verdict, dns: &Proc) {
    let log = dns.lines();
    let from_b = format!("from {}", addr::B);
    for want in [
        format!("query[SRV] _sip._udp.{DOMAIN} {from_b}"),
        format!("query[A] dead.{DOMAIN} {from_b}"),
        format!("query[A] live.{DOMAIN} {from_b}"),
    ] {
        let seen = log.iter().any(|l| l.contains(&want));
        eprintln!("dnsmasq: {want}: {seen}");
        if !seen {
            v.fail(format!("dnsmasq's log has no `{want}`"));
        }
    }
}

/// The uac example on B calls `sip:someone@parrot.test`; dnsmasq on A serves
/// the SRV records (the preferred target `dead`); the uas on A answers.
async fn dial_by_domain_fails_over(dead: Dead, limit: Duration) {
    parrot_tests::netns::require_root();
    let _ = examples();
    let uri = format!("sip:someone@{DOMAIN}");
    bounded(&uri, limit, async {
        let lab = Lab::standard();
        let tmp = TempDir::new("netns-dns");
        let dns = start_dnsmasq(&lab, &tmp, dead.addr()).await;
        lab.resolv_conf(Host::B, &format!("nameserver {}\n", addr::A));
        let resolv = lab.exec(Host::B, &["cat", "/etc/resolv.conf"]);
        assert_eq!(
            resolv.trim(),
            format!("nameserver {}", addr::A),
            "`ip netns exec` did not put B's resolv.conf in place"
        );
        let cap = lab.capture(Host::B).await;

        let bind = format!("0.0.0.0:{LIVE_PORT}");
        let (mut server, record) = start_uas(&lab, &tmp, &bind, &[]).await;

        let uac = uac_bin();
        let started = Instant::now();
        let (mut call, heard) = spawn_caller(&lab, &tmp, Host::B, "uac", &[&uac, &uri], &[]);
        let mut v = Verdict::default();
        match call.wait_for_line(|l| l.contains("answered"), limit).await {
            Ok(_) => eprintln!(
                "{uri}: answered {:?} after the uac started",
                started.elapsed()
            ),
            Err(e) => v.fail(format!("the uac's call was not answered: {e}")),
        }
        v.exited_ok(&mut call, Duration::from_secs(10)).await;
        v.printed(&call, "call completed");
        v.heard_each_other(&heard, &record).await;
        server.stop(Duration::from_secs(4)).await;
        failover_seen(&mut v, &cap, dead);
        lookups_seen(&mut v, &dns);
        v.wire(&cap, addr::B.into(), addr::A.into());
        v.note(&format!("B's /etc/resolv.conf: {resolv}"));
        v.output(&call);
        v.output(&server);
        v.output(&dns);
        v.check(&format!(
            "the uac on B dials {uri}, preferred SRV target {} ({dead:?})",
            dead.addr()
        ));
    })
    .await;
}

/// The preferred server's port is closed: the INVITE to it times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_b_dials_a_domain_and_fails_over_from_a_closed_port() {
    dial_by_domain_fails_over(Dead::ClosedPort, Duration::from_secs(50)).await;
}

/// The preferred server's address is unreachable from B: the send fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_b_dials_a_domain_and_fails_over_from_an_unroutable_address() {
    dial_by_domain_fails_over(Dead::Unroutable, Duration::from_secs(30)).await;
}

// ------------------------------------------------- the generated projects

/// `parrot new uas lab-server` and `parrot new uac lab-client` at their
/// defaults, rendered and built once per test run (debug, in the generated
/// projects' shared target directory): the server's directory and binary,
/// the phone's binary.
fn generated() -> &'static (PathBuf, PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let server = generate_project("uas", "lab-server", &[]);
        cargo_in_generated(&server, "build");
        let phone = generate_project("uac", "lab-client", &[]);
        cargo_in_generated(&phone, "build");
        (
            server,
            generated_bin("lab-server"),
            generated_bin("lab-client"),
        )
    })
}

/// The generated server on A at its defaults (it must say it listens on
/// 0.0.0.0:5060), recording its callers; the generated phone on B calls it
/// over UDP, playing the caller's tone and recording what it hears (the
/// server's welcome first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_phone_on_b_calls_generated_server_on_a_at_their_defaults() {
    parrot_tests::netns::require_root();
    let _ = generated();
    bounded(
        "the generated phone calling the generated server",
        Duration::from_secs(30),
        generated_call(),
    )
    .await;
}

async fn generated_call() {
    let (_, server_bin, phone_bin) = generated();
    let lab = Lab::standard();
    let tmp = TempDir::new("netns-generated");
    let cap = lab.capture(Host::A).await;
    let record = tmp.join("server-heard");
    let (server_bin, dir) = (
        server_bin.to_string_lossy().into_owned(),
        record.to_string_lossy().into_owned(),
    );
    let mut server = lab.spawn(Host::A, "lab-server", &[&server_bin, "--record", &dir]);
    let listening = server
        .wait_for_line(|l| l.contains("listening on"), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the generated server did not start: {e}"));
    assert!(
        listening.contains("listening on 0.0.0.0:5060 "),
        "the generated server's default is 0.0.0.0:5060: {listening}"
    );

    let uri = format!("sip:service@{}", addr::A);
    let phone_bin = phone_bin.to_string_lossy().into_owned();
    let started = Instant::now();
    let (mut phone, heard) = spawn_caller(
        &lab,
        &tmp,
        Host::B,
        "lab-client",
        &[&phone_bin, "call", &uri],
        &[],
    );
    let mut v = Verdict::default();
    v.exited_ok(&mut phone, Duration::from_secs(15)).await;
    eprintln!("the generated phone's call took {:?}", started.elapsed());
    v.printed(&phone, ": answered");
    // Both ends offer G.722 first (RFC 3551 §4.5.2: its RTP clock is 8000).
    v.printed(&phone, "audio: G722/8000");
    v.heard_with(
        "the phone (caller), the welcome",
        &heard,
        "",
        WELCOME_TONE,
        WELCOME_SECS,
        parrot_tests::heard_at_start,
    )
    .await;
    v.heard(
        "the server (answerer)",
        &record,
        ".wav",
        CALLER_TONE,
        CALLER_SECS,
    )
    .await;
    server.stop(Duration::from_secs(4)).await;
    v.wire(&cap, addr::A.into(), addr::B.into());
    v.output(&phone);
    v.output(&server);
    v.check(&format!("the generated phone on B calls {uri}"));
}

/// The generated projects as a small PBX, across the lab: the server on A at
/// its defaults with `--users` (digest for REGISTER and INVITE), carol's
/// generated phone on C (behind R's NAT) `listen --register`s with her
/// password, and the generated phone on B calls `sip:carol@A` with its own
/// credentials: the server bridges the call to carol's flow. Each phone
/// hears the other's tone; RTP crosses both legs both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_phones_talk_through_the_generated_server() {
    parrot_tests::netns::require_root();
    let _ = generated();
    bounded(
        "two generated phones through the generated server",
        Duration::from_secs(40),
        generated_pbx_call(),
    )
    .await;
}

async fn generated_pbx_call() {
    let (_, server_bin, phone_bin) = generated();
    let lab = Lab::standard();
    let tmp = TempDir::new("netns-generated-pbx");
    let cap = lab.capture(Host::A).await;
    let users = tmp.join("users.txt");
    std::fs::write(&users, "# user password\ncarol c4r0l\nbob b0b\n").unwrap();
    let (server_bin, users_arg) = (
        server_bin.to_string_lossy().into_owned(),
        users.to_string_lossy().into_owned(),
    );
    let mut server = lab.spawn(Host::A, "lab-server", &[&server_bin, "--users", &users_arg]);
    server
        .wait_for_line(|l| l.contains("listening on"), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the generated server did not start: {e}"));

    // Carol on C answers with the answerer's tone and records what she hears.
    let phone_bin = phone_bin.to_string_lossy().into_owned();
    let carol_tone = tmp.join("carol-says.wav");
    parrot_tests::write_tone(&carol_tone, ANSWER_TONE, ANSWER_SECS, 0.0);
    let carol_heard = tmp.join("carol-heard");
    std::fs::create_dir_all(&carol_heard).unwrap();
    let (tone_arg, dir_arg) = (
        carol_tone.to_string_lossy().into_owned(),
        carol_heard.to_string_lossy().into_owned(),
    );
    let registrar = format!("sip:{}", addr::A_WAN);
    let mut carol = lab.spawn(
        Host::C,
        "carol",
        &[
            &phone_bin,
            "listen",
            "--register",
            &registrar,
            "--user",
            "carol",
            "--password",
            "c4r0l",
            "--play",
            &tone_arg,
            "--record",
            &dir_arg,
        ],
    );
    if let Err(e) = carol
        .wait_for_line(|l| l.contains("waiting for calls"), Duration::from_secs(10))
        .await
    {
        panic!(
            "carol did not register: {e}\n{}\n{}",
            carol.output(),
            server.output()
        );
    }

    let uri = format!("sip:carol@{}", addr::A);
    let (mut bob, bob_heard) = spawn_caller(
        &lab,
        &tmp,
        Host::B,
        "bob",
        &[
            &phone_bin,
            "call",
            &uri,
            "--user",
            "bob",
            "--password",
            "b0b",
        ],
        &[],
    );
    let mut v = Verdict::default();
    v.exited_ok(&mut bob, Duration::from_secs(15)).await;
    v.printed(&bob, ": answered");
    v.printed(&carol, "call from");
    v.heard_each_other_bridged(&bob_heard, &carol_heard).await;
    carol.stop(Duration::from_secs(4)).await;
    v.printed(&carol, "stopped");
    server.stop(Duration::from_secs(4)).await;
    // A challenged both: 401s on the wire to each phone.
    let challenges = cap
        .sip()
        .iter()
        .filter(|(_, _, m)| m.starts_with("SIP/2.0 401"))
        .count();
    if challenges < 2 {
        v.fail(format!(
            "{challenges} digest challenges seen; REGISTER and INVITE each need one"
        ));
    }
    v.wire(&cap, addr::A.into(), addr::B.into());
    v.wire(&cap, addr::A_WAN.into(), addr::R_WAN.into());
    v.output(&bob);
    v.output(&carol);
    v.output(&server);
    v.check(&format!(
        "bob on B calls {uri}, carol registered from C behind the NAT"
    ));
}
