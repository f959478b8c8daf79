//! Calls across a lab of network namespaces (see `parrot_tests::netns`):
//! server host A, phone host B on a link with A (IPv4 and IPv6), phone host
//! C behind router R's masquerade. Unlike loopback, a wrong address here
//! (0.0.0.0 or 127.0.0.1 in a Contact, a socket bound to loopback) breaks
//! the call.
//!
//! Each call checks audio both ways (each side's recording holds the other
//! side's tone), that RTP crossed the wire both ways, and that no SIP
//! message on the wire (captured on A) names 0.0.0.0, `::` or a loopback
//! address. The `uas` and `uac` examples are built once per run (release).
//! Two calls without the wildcard or the uac (baresip to baresip, baresip to
//! a uas bound to its own address) check the rig itself.
//!
//! Needs root (`ip netns`); `nftables`, `iproute2`, `python3` and
//! `baresip-core` are installed by `cargo xtask test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_tests::netns::{
    ANSWER_SECS, ANSWER_TONE, CALL_SECS, CALLER_SECS, CALLER_TONE, Host, Lab, Verdict, addr,
    bounded, examples, spawn_caller, start_uas, uac_bin,
};
use parrot_tests::{BaresipConfig, TempDir};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// No test runs longer.
const LIMIT: Duration = Duration::from_secs(30);

/// The uac example on `caller` calls `uri` (the uas on A), playing the
/// caller's tone and recording what it hears; each side must hear the
/// other. `peer` is the caller's address as A sees it; `extra`: arguments
/// for both (`--transport tcp`, `--media-ports shared`).
async fn uac_calls_uas(
    caller: Host,
    bind: &str,
    uri: &str,
    extra: &[&str],
    server: IpAddr,
    peer: IpAddr,
) {
    parrot_tests::netns::require_root();
    let _ = examples();
    bounded(uri, LIMIT, async {
        let lab = Lab::standard();
        let tmp = TempDir::new("netns");
        let cap = lab.capture(Host::A).await;
        let (mut uas, record) = start_uas(&lab, &tmp, bind, extra).await;
        let uac = uac_bin();
        let (mut call, heard_wav) = spawn_caller(&lab, &tmp, caller, "uac", &[&uac, uri], extra);

        let mut v = Verdict::default();
        v.exited_ok(&mut call, Duration::from_secs(15)).await;
        v.printed(&call, "call completed");
        v.heard_each_other(&heard_wav, &record).await;
        uas.stop(Duration::from_secs(4)).await;
        v.wire(&cap, server, peer);
        v.output(&call);
        v.output(&uas);
        v.check(&format!("{caller:?} calls {uri} with the uac {extra:?}"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_hosts_reach_each_other_only_as_designed() {
    bounded("the lab sanity check", LIMIT, async {
        let lab = Lab::standard();
        let echo = lab.spawn(Host::A, "echo", &["python3", "-u", "-c", ECHO_PY, "7000"]);
        echo.wait_for_line(|l| l == "ready", Duration::from_secs(5))
            .await
            .unwrap();
        let send = |host: Host, to: &str| {
            let out = lab.output(host, &["python3", "-c", SEND_PY, to, "7000"]);
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        };
        // Reachable, and A sees the source it should.
        for (host, to, seen) in [
            (Host::B, "192.0.2.1", "192.0.2.2"),
            (Host::B, "2001:db8::1", "2001:db8::2"),
            (Host::C, "203.0.113.1", "203.0.113.2"),
        ] {
            let (ok, out) = send(host, to);
            assert!(
                ok,
                "{host:?} cannot reach A at {to}: {out}\n{}",
                echo.output()
            );
            let line = echo
                .wait_for_line(
                    |l| l.starts_with(&format!("from {seen} ")),
                    Duration::from_secs(2),
                )
                .await;
            assert!(
                line.is_ok(),
                "A did not see {host:?}'s datagram to {to} come from {seen}: {line:?}"
            );
        }
        // Not reachable: other links, and C's LAN from A (only the NAT gets through).
        for (host, to) in [
            (Host::B, "203.0.113.1"),
            (Host::B, "198.51.100.2"),
            (Host::C, "192.0.2.1"),
            (Host::C, "2001:db8::1"),
            (Host::A, "198.51.100.2"),
        ] {
            let (ok, out) = send(host, to);
            assert!(!ok, "{host:?} reached {to}, which it should not: {out}");
        }
        // No route out of the lab.
        for host in lab.hosts() {
            for family in ["-4", "-6"] {
                let routes = lab.ip(*host, &[family, "route", "show", "default"]);
                assert!(
                    routes.trim().is_empty(),
                    "{host:?} has a default route: {routes}"
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_deletes_its_namespaces() {
    let lab = Lab::standard();
    let names: Vec<String> = lab.hosts().iter().map(|h| lab.ns(*h)).collect();
    let list = || {
        String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    let before = list();
    for n in &names {
        assert!(before.contains(n.as_str()), "{n} missing in {before}");
    }
    drop(lab);
    let after = list();
    for n in &names {
        assert!(!after.contains(n.as_str()), "{n} still there: {after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_b_calls_uas_on_a_over_udp() {
    uac_calls_uas(
        Host::B,
        "0.0.0.0:5060",
        "sip:service@192.0.2.1:5060",
        &[],
        addr::A.into(),
        addr::B.into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_b_calls_uas_on_a_over_tcp() {
    uac_calls_uas(
        Host::B,
        "0.0.0.0:5060",
        "sip:service@192.0.2.1:5060",
        &["--transport", "tcp"],
        addr::A.into(),
        addr::B.into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_b_calls_uas_on_a_over_ipv6() {
    uac_calls_uas(
        Host::B,
        "[::]:5060",
        "sip:service@[2001:db8::1]:5060",
        &[],
        addr::A6.into(),
        addr::B6.into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_c_behind_nat_calls_uas_on_a() {
    uac_calls_uas(
        Host::C,
        "0.0.0.0:5060",
        "sip:service@203.0.113.1:5060",
        &[],
        addr::A_WAN.into(),
        addr::R_WAN.into(),
    )
    .await;
}

/// Both ends on shared media ports (`media::set_shared_ports`), the caller
/// behind R's masquerade: its RTP reaches A from R's address, which its SDP
/// does not name, and only the SSRC it announced (`a=ssrc`) tells the uas's
/// shared port which call it is for; the uas's answer latches to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_c_behind_nat_calls_uas_on_a_on_shared_media_ports() {
    uac_calls_uas(
        Host::C,
        "0.0.0.0:5060",
        "sip:service@203.0.113.1:5060",
        &["--media-ports", "shared"],
        addr::A_WAN.into(),
        addr::R_WAN.into(),
    )
    .await;
}

/// A headless baresip on `host` at `ip:5060`, auto-answering, playing
/// `source`; its dumps go to `dir/dump`.
fn baresip_config(dir: &Path, ip: &str, source: PathBuf) -> (PathBuf, PathBuf) {
    let config = BaresipConfig {
        sip_port: 5060,
        source_wav: source,
        dump_dir: dir.join("dump"),
    };
    let conf = dir.join("conf");
    config.write(&conf);
    std::fs::write(
        conf.join("config"),
        config.config().replace("127.0.0.1", ip),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!("<sip:test@{ip}>;regint=0;audio_codecs=pcmu;answermode=auto\n"),
    )
    .unwrap();
    (conf, config.dump_dir)
}

/// baresip on `caller` (at `ip`) calls the uas on A at `uri`; it hangs up
/// when its WAV ends. `peer` is the caller's address as A sees it.
async fn baresip_calls_uas(
    caller: Host,
    ip: &str,
    (bind, uas_extra): (&str, &[&str]),
    uri: &str,
    server: IpAddr,
    peer: IpAddr,
) {
    parrot_tests::netns::require_root();
    let _ = examples();
    bounded(uri, LIMIT, async {
        let lab = Lab::standard();
        let tmp = TempDir::new("netns-baresip");
        let cap = lab.capture(Host::A).await;
        let (mut uas, record) = start_uas(&lab, &tmp, bind, uas_extra).await;
        let tone = tmp.join("caller.wav");
        parrot_tests::write_tone(&tone, CALLER_TONE, CALLER_SECS, 0.5);
        let (conf, dump) = baresip_config(tmp.path(), ip, tone);
        let conf_arg = conf.to_string_lossy().into_owned();
        let dial = format!("/dial {uri}");
        let mut phone = lab.spawn(
            caller,
            "baresip",
            &["baresip", "-f", &conf_arg, "-e", &dial, "-t", "8"],
        );
        let status = phone.wait(Duration::from_secs(15)).await;

        let mut v = Verdict::default();
        if status.is_none() {
            v.fail("baresip did not quit within 15 s");
        }
        if !phone.lines().iter().any(|l| l.contains("Call established")) {
            v.fail("baresip did not establish the call (no `Call established`)");
        }
        v.heard(
            "baresip (caller)",
            &dump,
            "-dec.wav",
            ANSWER_TONE,
            ANSWER_SECS,
        )
        .await;
        v.heard(
            "the uas (answerer)",
            &record,
            ".wav",
            CALLER_TONE,
            CALLER_SECS,
        )
        .await;
        uas.stop(Duration::from_secs(4)).await;
        v.wire(&cap, server, peer);
        v.output(&phone);
        v.output(&uas);
        v.check(&format!(
            "baresip on {caller:?} calls {uri} (uas bound to {bind}, {uas_extra:?})"
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_on_b_calls_uas_on_a() {
    baresip_calls_uas(
        Host::B,
        "192.0.2.2",
        ("0.0.0.0:5060", &[]),
        "sip:service@192.0.2.1:5060",
        addr::A.into(),
        addr::B.into(),
    )
    .await;
}

/// The uas bound to its address on the A–B link rather than the wildcard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_on_b_calls_uas_bound_to_its_address() {
    baresip_calls_uas(
        Host::B,
        "192.0.2.2",
        ("192.0.2.1:5060", &[]),
        "sip:service@192.0.2.1:5060",
        addr::A.into(),
        addr::B.into(),
    )
    .await;
}

/// A phone that announces no SSRC, sending from the address its SDP names,
/// to a uas on shared media ports: its stream is the one the port expects
/// from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_on_b_calls_uas_on_a_on_shared_media_ports() {
    baresip_calls_uas(
        Host::B,
        "192.0.2.2",
        ("0.0.0.0:5060", &["--media-ports", "shared"]),
        "sip:service@192.0.2.1:5060",
        addr::A.into(),
        addr::B.into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_on_c_behind_nat_calls_uas_on_a() {
    baresip_calls_uas(
        Host::C,
        "198.51.100.2",
        ("0.0.0.0:5060", &[]),
        "sip:service@203.0.113.1:5060",
        addr::A_WAN.into(),
        addr::R_WAN.into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_on_a_calls_baresip_on_b() {
    parrot_tests::netns::require_root();
    let _ = examples();
    bounded("the uac on A calling baresip on B", LIMIT, async {
        let lab = Lab::standard();
        let tmp = TempDir::new("netns-to-baresip");
        let cap = lab.capture(Host::A).await;
        // baresip answers with the answerer's tone, then silence: it would
        // hang up at the end of its WAV, and the uac is to hang up first.
        let tone = tmp.join("answer.wav");
        parrot_tests::write_tone(&tone, ANSWER_TONE, ANSWER_SECS, 6.0);
        let (conf, dump) = baresip_config(tmp.path(), "192.0.2.2", tone);
        let conf_arg = conf.to_string_lossy().into_owned();
        let mut phone = lab.spawn(
            Host::B,
            "baresip",
            &["baresip", "-f", &conf_arg, "-t", "20"],
        );
        if let Err(e) = phone
            .wait_for_line(|l| l.contains("baresip is ready"), Duration::from_secs(5))
            .await
        {
            panic!("baresip did not start: {e}");
        }

        let uac = uac_bin();
        let (mut call, heard_wav) = spawn_caller(
            &lab,
            &tmp,
            Host::A,
            "uac",
            &[&uac, "sip:test@192.0.2.2:5060"],
            &[],
        );

        let mut v = Verdict::default();
        v.exited_ok(&mut call, Duration::from_secs(15)).await;
        v.printed(&call, "call completed");
        v.heard("the uac (caller)", &heard_wav, "", ANSWER_TONE, ANSWER_SECS)
            .await;
        v.heard(
            "baresip (answerer)",
            &dump,
            "-dec.wav",
            CALLER_TONE,
            CALLER_SECS,
        )
        .await;
        phone.stop(Duration::from_secs(3)).await;
        v.wire(&cap, addr::A.into(), addr::B.into());
        v.output(&call);
        v.output(&phone);
        v.check("the uac on A calls baresip on B");
    })
    .await;
}

/// The rig itself, without Parrot: baresip on B calls baresip on A. The
/// same checks as the Parrot calls (audio both ways in the recordings, RTP
/// both ways on the wire, no unusable address in SIP) must pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_on_b_calls_baresip_on_a() {
    bounded("baresip on B calling baresip on A", LIMIT, async {
        let lab = Lab::standard();
        let tmp = TempDir::new("netns-baresips");
        let cap = lab.capture(Host::A).await;
        let answer_tone = tmp.join("answer.wav");
        parrot_tests::write_tone(&answer_tone, ANSWER_TONE, ANSWER_SECS, 6.0);
        let a_dir = tmp.join("a");
        let (a_conf, a_dump) = baresip_config(&a_dir, "192.0.2.1", answer_tone);
        let a_conf = a_conf.to_string_lossy().into_owned();
        let mut answerer = lab.spawn(Host::A, "baresip", &["baresip", "-f", &a_conf, "-t", "20"]);
        if let Err(e) = answerer
            .wait_for_line(|l| l.contains("baresip is ready"), Duration::from_secs(5))
            .await
        {
            panic!("baresip on A did not start: {e}");
        }
        let caller_tone = tmp.join("caller.wav");
        parrot_tests::write_tone(&caller_tone, CALLER_TONE, CALLER_SECS, 0.5);
        let b_dir = tmp.join("b");
        let (b_conf, b_dump) = baresip_config(&b_dir, "192.0.2.2", caller_tone);
        let b_conf = b_conf.to_string_lossy().into_owned();
        let mut caller = lab.spawn(
            Host::B,
            "baresip",
            &[
                "baresip",
                "-f",
                &b_conf,
                "-e",
                "/dial sip:test@192.0.2.1:5060",
                "-t",
                "8",
            ],
        );
        let status = caller.wait(Duration::from_secs(15)).await;

        let mut v = Verdict::default();
        if status.is_none() {
            v.fail("baresip on B did not quit within 15 s");
        }
        if !caller
            .lines()
            .iter()
            .any(|l| l.contains("Call established"))
        {
            v.fail("baresip on B did not establish the call (no `Call established`)");
        }
        v.heard(
            "baresip on B (caller)",
            &b_dump,
            "-dec.wav",
            ANSWER_TONE,
            ANSWER_SECS,
        )
        .await;
        v.heard(
            "baresip on A (answerer)",
            &a_dump,
            "-dec.wav",
            CALLER_TONE,
            CALLER_SECS,
        )
        .await;
        answerer.stop(Duration::from_secs(3)).await;
        v.wire(&cap, addr::A.into(), addr::B.into());
        v.output(&caller);
        v.output(&answerer);
        v.check("baresip on B calls baresip on A");
    })
    .await;
}

/// A UDP echo on port argv[1], IPv4 and IPv6: prints `ready`, then `from IP
/// PORT` for each datagram it echoes.
const ECHO_PY: &str = r#"
import select, socket, sys
port = int(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.bind(("0.0.0.0", port))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("::", port))
print("ready", flush=True)
while True:
    for s in select.select([s4, s6], [], [])[0]:
        data, peer = s.recvfrom(2048)
        print("from", peer[0], peer[1], flush=True)
        s.sendto(data, peer)
"#;

/// Sends a datagram to argv[1]:argv[2] and waits 2 s for the echo; exits 0
/// if it came back.
const SEND_PY: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b"lab", (host, port))
data, peer = s.recvfrom(2048)
print("echo from", peer[0])
"#;

/// A phone on C (behind R's NAT) registers to the uas on A, keeps its
/// registration alive past the NAT's UDP timeout (shortened to 3 s on R),
/// and is called by the uac on B through the uas, which bridges the call to
/// the flow the REGISTER came on. Audio crosses both legs both ways.
/// Without the keep-alives (`--keepalive 30`) the call fails: R has
/// forgotten the mapping and drops the uas's INVITE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_behind_nat_registers_and_is_called_through_uas_on_a() {
    parrot_tests::netns::require_root();
    let _ = examples();
    bounded("the NAT phone case", LIMIT, async {
        let lab = Lab::standard();
        // A NAT that forgets idle UDP mappings after 3 s: only keep-alives
        // keep the phone reachable for the call that comes 6 s later.
        lab.sysctl(Host::R, "net.netfilter.nf_conntrack_udp_timeout", "3");
        lab.sysctl(
            Host::R,
            "net.netfilter.nf_conntrack_udp_timeout_stream",
            "3",
        );
        let tmp = TempDir::new("netns-nat-phone");
        let cap = lab.capture(Host::A).await;
        let (mut uas, _record) = start_uas(&lab, &tmp, "0.0.0.0:5060", &[]).await;

        // Carol's phone on C: answers with the answerer's tone.
        let carol_tone = tmp.join("carol.wav");
        parrot_tests::write_tone(&carol_tone, ANSWER_TONE, ANSWER_SECS, 0.0);
        let carol_heard = tmp.join("carol-heard");
        std::fs::create_dir_all(&carol_heard).unwrap();
        let (uac, carol_tone_arg, carol_dir) = (
            uac_bin(),
            carol_tone.to_string_lossy().into_owned(),
            carol_heard.to_string_lossy().into_owned(),
        );
        let registrar = format!("sip:{}:5060", addr::A_WAN);
        let mut carol = lab.spawn(
            Host::C,
            "carol",
            &[
                uac.as_str(),
                "--register",
                &registrar,
                "--user",
                "carol",
                "--keepalive",
                "1",
                "--play",
                &carol_tone_arg,
                "--record",
                &carol_dir,
            ],
        );
        if let Err(e) = carol
            .wait_for_line(|l| l.contains("waiting for calls"), Duration::from_secs(10))
            .await
        {
            panic!("carol did not register: {e}\n{}", carol.output());
        }
        tokio::time::sleep(Duration::from_secs(6)).await;

        let tone = tmp.join("caller.wav");
        parrot_tests::write_tone(&tone, CALLER_TONE, CALLER_SECS, 0.0);
        let heard_wav = tmp.join("b-heard.wav");
        let (tone_arg, heard_arg) = (
            tone.to_string_lossy().into_owned(),
            heard_wav.to_string_lossy().into_owned(),
        );
        let uri = format!("sip:carol@{}:5060", addr::A);
        let mut call = lab.spawn(
            Host::B,
            "uac",
            &[
                uac.as_str(),
                &uri,
                "--play",
                &tone_arg,
                "--record",
                &heard_arg,
                "--duration",
                CALL_SECS,
            ],
        );
        let status = call.wait(Duration::from_secs(15)).await;

        let mut v = Verdict::default();
        match status {
            Some(s) if s.success() => {}
            Some(s) => v.fail(format!("the uac on B exited with {s}")),
            None => v.fail("the uac on B did not finish within 15 s"),
        }
        if !uas
            .lines()
            .iter()
            .any(|l| l.contains("carol is registered"))
        {
            v.fail("the uas did not bridge to carol's registration");
        }
        // Relayed by the uas's bridge: each tone mostly there (heard_mostly).
        let mostly = parrot_tests::heard_mostly;
        v.heard_with(
            "B (caller)",
            &heard_wav,
            "",
            ANSWER_TONE,
            ANSWER_SECS,
            mostly,
        )
        .await;
        v.heard_with(
            "carol on C",
            &carol_heard,
            ".wav",
            CALLER_TONE,
            CALLER_SECS,
            mostly,
        )
        .await;
        if !carol.lines().iter().any(|l| l.contains("call ended")) {
            v.fail("carol's call did not end when B hung up");
        }
        // Keep-alives crossed the NAT: CRLF pairs from R's public address.
        let keepalives = cap
            .packets()
            .iter()
            .filter(|p| {
                p.src.ip() == IpAddr::from(addr::R_WAN)
                    && (p.payload.as_slice() == b"\r\n\r\n" || p.payload.as_slice() == b"\r\n")
            })
            .count();
        eprintln!("keep-alives from {}: {keepalives}", addr::R_WAN);
        if keepalives < 3 {
            v.fail(format!("{keepalives} keep-alives from the phone seen on A"));
        }
        carol.stop(Duration::from_secs(4)).await;
        uas.stop(Duration::from_secs(4)).await;
        v.wire(&cap, addr::A.into(), addr::B.into());
        v.wire(&cap, addr::A_WAN.into(), addr::R_WAN.into());
        v.output(&call);
        v.output(&carol);
        v.output(&uas);
        v.check("B calls carol (registered from behind the NAT on C) through the uas on A");
    })
    .await;
}
