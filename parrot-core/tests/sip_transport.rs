//! The SIP side of the transports on real loopback sockets: parsing, Via
//! stamping, responses routed back, and 400 for malformed requests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code unwraps what it built itself

use bytes::Bytes;
use parrot_core::message::StatusCode;
use parrot_core::transport::{Target, TransportConfig, TransportKind, Transports};
use std::time::Duration;

fn options(branch: &str, via_host: &str, transport: &str) -> Bytes {
    Bytes::from(format!(
        "OPTIONS sip:service@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via_host};rport;branch={branch}\r\n\
         Max-Forwards: 70\r\nTo: <sip:service@127.0.0.1>\r\n\
         From: <sip:test@client.invalid>;tag=t1\r\nCall-ID: {branch}@client\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ))
}

async fn exchange(kind: TransportKind) {
    let server = Transports::new(TransportConfig::default());
    let client = Transports::new(TransportConfig::default());
    let any = "127.0.0.1:0".parse().unwrap();
    let addr = match kind {
        TransportKind::Udp => {
            client.bind_udp(any).await.unwrap();
            server.bind_udp(any).await.unwrap()
        }
        TransportKind::Tcp => server.bind_tcp(any).await.unwrap(),
        _ => unreachable!(),
    };
    let target = Target::new(kind, addr);
    let via = kind.as_via_str();

    // The server answers 200 to every request and reports what it saw.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let srv = server.clone();
    tokio::spawn(async move {
        while let Some(got) = srv.recv_message().await {
            if let Some(req) = got.message.as_request() {
                let mut ok = req.response(StatusCode::OK);
                ok.set_to_tag("srv");
                srv.send(&got.reply_target(), ok.to_bytes()).await.unwrap();
            }
            let _ = seen_tx.send(got);
        }
    });
    let wait = Duration::from_secs(5);

    // A malformed request (CSeq method differs) is answered 400 with the reason.
    let bad = String::from_utf8(options("z9hG4bKbad", "client.invalid", via).to_vec())
        .unwrap()
        .replace("1 OPTIONS", "1 INVITE");
    client.send(&target, Bytes::from(bad)).await.unwrap();
    let r = tokio::time::timeout(wait, client.recv_message())
        .await
        .unwrap()
        .unwrap();
    let resp = r.message.as_response().unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.reason().contains("CSeq"), "{}", resp.reason());

    // A good one arrives parsed and stamped; the answer goes back where it came from.
    client
        .send(&target, options("z9hG4bKgood", "client.invalid", via))
        .await
        .unwrap();
    let got = tokio::time::timeout(wait, seen.recv())
        .await
        .unwrap()
        .unwrap();
    let top = got.message.headers().top_via().unwrap();
    assert_eq!(top.received(), Some("127.0.0.1"));
    assert_eq!(top.rport(), Some(Some(got.source.port())));
    let r = tokio::time::timeout(wait, client.recv_message())
        .await
        .unwrap()
        .unwrap();
    let resp = r.message.as_response().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().top_via().unwrap().branch(),
        Some("z9hG4bKgood")
    );
    assert_eq!(resp.headers().to().unwrap().tag(), Some("srv"));

    // Garbage with nothing to answer is dropped; the next good message still flows.
    client
        .send(
            &target,
            Bytes::from_static(b"NOT SIP AT ALL\r\nContent-Length: 0\r\n\r\n"),
        )
        .await
        .unwrap();
    client
        .send(&target, options("z9hG4bKnext", "client.invalid", via))
        .await
        .unwrap();
    let got = tokio::time::timeout(wait, seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.message.headers().top_via().unwrap().branch(),
        Some("z9hG4bKnext")
    );
    let r = tokio::time::timeout(wait, client.recv_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.message.headers().top_via().unwrap().branch(),
        Some("z9hG4bKnext")
    );
    server.shutdown();
}

#[tokio::test]
async fn udp_request_response_and_400() {
    exchange(TransportKind::Udp).await;
}

#[tokio::test]
async fn tcp_request_response_and_400() {
    exchange(TransportKind::Tcp).await;
}

/// Whatever comes back to `sock` within 300 ms, if anything.
async fn reply_within_300ms(sock: &tokio::net::UdpSocket) -> Option<String> {
    let mut buf = vec![0u8; 65_536];
    match tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(Err(e)) => panic!("recv failed: {e}"),
        Err(_) => None,
    }
}

/// Never a response to an ACK, and nothing for a request without a usable Via
/// (RFC 3261 §17.1.1.1, §18.2.2); a request with a good Via and a bad To still gets 400.
#[tokio::test]
async fn udp_no_answer_to_malformed_ack_or_request_without_via() {
    let server = Transports::new(TransportConfig::default());
    let addr = server
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // A test responder: 200 to every request it is handed, and a record of them.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let srv = server.clone();
    tokio::spawn(async move {
        while let Some(got) = srv.recv_message().await {
            if let Some(req) = got.message.as_request() {
                let mut ok = req.response(StatusCode::OK);
                ok.set_to_tag("srv");
                let _ = srv.send(&got.reply_target(), ok.to_bytes()).await;
            }
            let _ = seen_tx.send(got);
        }
    });
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(addr).await.unwrap();
    let good = String::from_utf8(options("z9hG4bKgood", "client.invalid", "UDP").to_vec()).unwrap();

    // A malformed ACK (a To that does not parse): no 400, nothing at all.
    let ack = good
        .replacen("OPTIONS sip:", "ACK sip:", 1)
        .replace("1 OPTIONS", "1 ACK")
        .replace(
            "To: <sip:service@127.0.0.1>",
            "To: \"broken <sip:service@127.0.0.1>",
        );
    sock.send(ack.as_bytes()).await.unwrap();
    assert_eq!(
        reply_within_300ms(&sock).await,
        None,
        "malformed ACK answered"
    );

    // A request without Via (well-formed otherwise): dropped, not handed up, no answer.
    let no_via: String = good
        .split("\r\n")
        .filter(|l| !l.starts_with("Via:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    sock.send(no_via.as_bytes()).await.unwrap();
    assert_eq!(
        reply_within_300ms(&sock).await,
        None,
        "request without Via answered"
    );

    // A malformed Via (and a bad To, which alone would earn a 400): dropped too.
    let bad_via = good
        .replace(
            "Via: SIP/2.0/UDP client.invalid;rport;branch=z9hG4bKgood",
            "Via: not a Via",
        )
        .replace(
            "To: <sip:service@127.0.0.1>",
            "To: \"broken <sip:service@127.0.0.1>",
        );
    sock.send(bad_via.as_bytes()).await.unwrap();
    assert_eq!(
        reply_within_300ms(&sock).await,
        None,
        "request with a bad Via answered"
    );
    assert!(seen.try_recv().is_err(), "a dropped request was handed up");

    // A good Via and a bad To: still 400, as before.
    let bad_to = good.replace(
        "To: <sip:service@127.0.0.1>",
        "To: \"broken <sip:service@127.0.0.1>",
    );
    sock.send(bad_to.as_bytes()).await.unwrap();
    let resp = reply_within_300ms(&sock)
        .await
        .expect("no 400 for a bad To");
    assert!(resp.starts_with("SIP/2.0 400 "), "{resp}");
    assert!(resp.contains("branch=z9hG4bKgood"), "{resp}");

    // And a valid request still reaches the responder and is answered.
    sock.send(good.as_bytes()).await.unwrap();
    let resp = reply_within_300ms(&sock)
        .await
        .expect("no 200 for a good OPTIONS");
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    let got = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.message.headers().top_via().unwrap().branch(),
        Some("z9hG4bKgood")
    );
    server.shutdown();
}
