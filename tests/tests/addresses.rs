//! The addresses an endpoint puts on the wire, on loopback's many addresses
//! (127.0.0.0/8 all reach this host, so a wildcard socket sees which one a
//! datagram came to): never 0.0.0.0; the address a request arrived on for
//! its responses and Contact; the source the kernel routes from for what we
//! send. Across real hosts: tests/networks.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::transport::TransportKind;
use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::free_port;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

struct Ok200;

impl SipHandler for Ok200 {
    async fn invite(&mut self, _call: &mut Incoming) -> Reply {
        Reply::ok()
    }
}

/// The value of header `name` in a raw message.
fn header(msg: &str, name: &str) -> String {
    msg.split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}

async fn recv(sock: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("an answer within 3 s")
        .unwrap();
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

/// A server bound to 0.0.0.0 answers a request sent to 127.0.0.2 from
/// 127.0.0.2, with 127.0.0.2 in its Contact (it used to say 0.0.0.0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_server_answers_from_and_as_the_address_called() {
    let port = free_port();
    let server = Endpoint::builder()
        .udp(SocketAddr::from(([0, 0, 0, 0], port)))
        .handler(|| Ok200)
        .build()
        .await
        .unwrap();
    let caller = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    let me = caller.local_addr().unwrap();
    for called in ["127.0.0.2", "127.0.0.3"] {
        let invite = format!(
            "INVITE sip:bob@{called}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{called}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a\r\nTo: <sip:bob@{called}>\r\n\
             Call-ID: wild-{called}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\nContent-Length: 0\r\n\r\n"
        );
        caller
            .send_to(invite.as_bytes(), format!("{called}:{port}"))
            .await
            .unwrap();
        let (ok, from) = loop {
            let (msg, from) = recv(&caller).await;
            if msg.starts_with("SIP/2.0 200") {
                break (msg, from);
            }
        };
        assert_eq!(
            from,
            format!("{called}:{port}").parse().unwrap(),
            "the response leaves from the address the request came to"
        );
        let contact = header(&ok, "Contact");
        assert!(
            contact.contains(&format!("@{called}:{port}")),
            "Contact names the address called: {contact}"
        );
        assert!(!ok.contains("0.0.0.0"), "no wildcard on the wire:\n{ok}");
    }
    server.shutdown(Duration::from_millis(200)).await;
}

/// An endpoint that only dials binds the wildcard (so it can reach other
/// hosts) and puts the address it really sends from in Via, From, Contact and
/// Call-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_only_endpoint_names_the_address_it_sends_from() {
    let phone = Endpoint::builder().build().await.unwrap();
    let bound = phone.local_addr(TransportKind::Udp).unwrap();
    assert!(
        bound.ip().is_unspecified(),
        "a dial-only endpoint binds the wildcard, not loopback: {bound}"
    );
    let callee = UdpSocket::bind("127.0.0.7:0").await.unwrap();
    let to = callee.local_addr().unwrap();
    let call = phone
        .dial(&format!("sip:bob@{to}"))
        .unwrap()
        .send()
        .await
        .unwrap();
    let (invite, from) = recv(&callee).await;
    assert!(invite.starts_with("INVITE "), "{invite}");
    let ip = from.ip().to_string();
    for name in ["Via", "From", "Contact", "Call-ID"] {
        let value = header(&invite, name);
        assert!(
            value.contains(&ip),
            "{name} names the source address {ip}: {value}"
        );
    }
    assert!(
        !invite.contains("0.0.0.0"),
        "no wildcard on the wire:\n{invite}"
    );
    call.cancel().await.unwrap();
    phone.shutdown(Duration::from_millis(200)).await;
}

/// An advertised address replaces ours in Via and Contact (a server behind a
/// NAT that forwards its port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertised_address_goes_in_contact() {
    let port = free_port();
    let server = Endpoint::builder()
        .udp(SocketAddr::from(([127, 0, 0, 1], port)))
        .advertise("203.0.113.9".parse().unwrap())
        .handler(|| Ok200)
        .build()
        .await
        .unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = caller.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKadv\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: adv\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\nContent-Length: 0\r\n\r\n"
    );
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .await
        .unwrap();
    let ok = loop {
        let (msg, _) = recv(&caller).await;
        if msg.starts_with("SIP/2.0 200") {
            break msg;
        }
    };
    let contact = header(&ok, "Contact");
    assert!(
        contact.contains(&format!("@203.0.113.9:{port}")),
        "the advertised address: {contact}"
    );
    server.shutdown(Duration::from_millis(200)).await;
}

/// Plays a tone and records what it hears.
struct ToneAndRecord {
    freq: f64,
    record: std::path::PathBuf,
}

impl parrot_core::media::MediaHandler for ToneAndRecord {
    fn stream_started(&mut self) -> parrot_core::media::Action {
        parrot_core::media::Action::Record(self.record.clone())
            .also(parrot_core::media::Action::tone(self.freq, 1.0))
    }
}

struct AnswerWithTone(std::path::PathBuf);

impl SipHandler for AnswerWithTone {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        call.answer(ToneAndRecord {
            freq: 1000.0,
            record: self.0.clone(),
        })
        .await
    }
}

/// IPv6 end to end on [::1]: brackets in Via and Contact, `IN IP6` in SDP,
/// RTP over IPv6, audio both ways; a server on `[::]` answers as `[::1]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_ipv6_carries_audio_both_ways() {
    let dir = parrot_tests::TempDir::new("ipv6");
    let (server_rec, phone_rec) = (dir.join("server.wav"), dir.join("phone.wav"));
    let port = free_port();
    let r = server_rec.clone();
    let server = Endpoint::builder()
        .udp(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))
        .handler(move || AnswerWithTone(r.clone()))
        .build()
        .await
        .unwrap();
    let phone = Endpoint::builder().build().await.unwrap();
    let mut call = phone
        .dial(&format!("sip:service@[::1]:{port}"))
        .unwrap()
        .media(ToneAndRecord {
            freq: 440.0,
            record: phone_rec.clone(),
        })
        .send()
        .await
        .unwrap();
    let ok = call.answered().await.unwrap();
    let text = String::from_utf8_lossy(&ok.to_bytes()).into_owned();
    assert!(
        header(&text, "Contact").contains(&format!("[::1]:{port}")),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 ::1"), "SDP over IPv6:\n{text}");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    call.hangup().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (secs, ok) = parrot_tests::heard(&phone_rec, 1000.0);
    assert!(ok && secs > 0.8, "the phone heard {secs:.2} s of 1 kHz");
    let (secs, ok) = parrot_tests::heard(&server_rec, 440.0);
    assert!(ok && secs > 0.8, "the server heard {secs:.2} s of 440 Hz");
    phone.shutdown(Duration::from_millis(200)).await;
    server.shutdown(Duration::from_millis(200)).await;
}
