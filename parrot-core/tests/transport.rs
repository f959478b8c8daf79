//! Transport layer tests on real loopback sockets.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parrot_core::transport::{Inbound, Target, TransportConfig, TransportKind, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const REQUEST: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@example.com>\r\n\
From: <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Content-Length: 4\r\n\
\r\n\
body";

const RESPONSE: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
To: <sip:bob@example.com>;tag=93810874\r\n\
From: <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Content-Length: 0\r\n\
\r\n";

/// Generous bound so that a broken test fails instead of hanging; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(10);

fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

async fn recv(t: &Transports) -> Inbound {
    tokio::time::timeout(LIMIT, t.recv())
        .await
        .expect("timed out")
        .expect("recv ended")
}

/// Reads from `s` until EOF or error; true if the peer closed.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

async fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(LIMIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

fn self_signed() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

// ---------------------------------------------------------------- kinds

#[test]
fn kind_names() {
    assert_eq!(TransportKind::Udp.as_via_str(), "UDP");
    assert_eq!(TransportKind::Wss.to_string(), "WSS");
    assert!(!TransportKind::Udp.is_reliable());
    assert!(TransportKind::Ws.is_reliable());
    assert!(TransportKind::Tls.is_secure());
}

// ---------------------------------------------------------------- UDP

async fn udp_round_trip(bind: SocketAddr) {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_udp(bind).await.unwrap();
    assert_ne!(local.port(), 0);
    let peer = UdpSocket::bind(bind).await.unwrap();
    peer.send_to(REQUEST, local).await.unwrap();
    let got = recv(&t).await;
    assert_eq!(&got.data[..], REQUEST);
    assert_eq!(got.kind, TransportKind::Udp);
    assert_eq!(got.source, peer.local_addr().unwrap());
    assert_eq!(got.local, local);
    assert_eq!(got.conn, None);
    t.send(&Target::reply_to(&got), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(LIMIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], RESPONSE);
    assert_eq!(from, local);
}

#[tokio::test]
async fn udp_round_trip_v4() {
    udp_round_trip(v4()).await;
}

#[tokio::test]
async fn udp_round_trip_v6() {
    udp_round_trip(v6()).await;
}

#[tokio::test]
async fn udp_oversize_datagram_dropped() {
    let cfg = TransportConfig {
        max_message_size: 512,
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_udp(v4()).await.unwrap();
    let peer = UdpSocket::bind(v4()).await.unwrap();
    let mut big = REQUEST.to_vec();
    big.resize(600, b'x');
    peer.send_to(&big, local).await.unwrap();
    peer.send_to(REQUEST, local).await.unwrap();
    let got = recv(&t).await;
    assert_eq!(&got.data[..], REQUEST);
    assert_eq!(t.stats().oversize_datagrams, 1);
}

#[tokio::test]
async fn udp_send_without_socket_of_family_fails() {
    let t = Transports::new(TransportConfig::default());
    t.bind_udp(v4()).await.unwrap();
    let target = Target::new(TransportKind::Udp, "[::1]:5060".parse().unwrap());
    assert!(t.send(&target, Bytes::from_static(REQUEST)).await.is_err());
}

// ---------------------------------------------------------------- TCP

#[tokio::test]
async fn tcp_split_at_every_byte_arrives_whole_once() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.set_nodelay(true).unwrap();
    for cut in 1..REQUEST.len() {
        c.write_all(&REQUEST[..cut]).await.unwrap();
        c.flush().await.unwrap();
        tokio::task::yield_now().await;
        c.write_all(&REQUEST[cut..]).await.unwrap();
        c.flush().await.unwrap();
        let got = recv(&t).await;
        assert_eq!(&got.data[..], REQUEST, "cut at {cut}");
        assert_eq!(got.kind, TransportKind::Tcp);
    }
    // Exactly once: the next message is the sentinel, not a duplicate.
    c.write_all(RESPONSE).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], RESPONSE);
}

#[tokio::test]
async fn tcp_three_messages_in_one_write() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    let mut three = REQUEST.to_vec();
    three.extend_from_slice(RESPONSE);
    three.extend_from_slice(REQUEST);
    c.write_all(&three).await.unwrap();
    let a = recv(&t).await;
    let b = recv(&t).await;
    let d = recv(&t).await;
    assert_eq!(&a.data[..], REQUEST);
    assert_eq!(&b.data[..], RESPONSE);
    assert_eq!(&d.data[..], REQUEST);
    assert_eq!(a.conn, b.conn);
    assert_eq!(b.conn, d.conn);
}

#[tokio::test]
async fn tcp_crlf_ping_gets_pong_and_is_not_delivered() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact_n(&mut c, 2).await, b"\r\n");
    c.write_all(REQUEST).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
    // A ping right after a message, in the same write.
    let mut both = REQUEST.to_vec();
    both.extend_from_slice(b"\r\n\r\n");
    c.write_all(&both).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
    assert_eq!(read_exact_n(&mut c, 2).await, b"\r\n");
}

#[tokio::test]
async fn tcp_oversized_message_closes_connection() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(b"INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_peer(&mut c).await);
    assert_eq!(t.stats().framing_errors, 1);
    // Nothing was delivered: the next message is from a fresh connection.
    let mut c2 = TcpStream::connect(local).await.unwrap();
    c2.write_all(REQUEST).await.unwrap();
    let got = recv(&t).await;
    assert_eq!(&got.data[..], REQUEST);
    assert_eq!(got.source, c2.local_addr().unwrap());
}

#[tokio::test]
async fn tcp_header_without_end_beyond_max_closes_connection() {
    let cfg = TransportConfig {
        max_message_size: 1024,
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    let mut junk = b"INVITE sip:bob@example.com SIP/2.0\r\nX: ".to_vec();
    junk.resize(4096, b'a');
    // The server may close while we are still writing.
    let _ = c.write_all(&junk).await;
    assert!(closed_by_peer(&mut c).await);
}

#[tokio::test]
async fn tcp_response_goes_back_on_the_same_connection() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(REQUEST).await.unwrap();
    let req = recv(&t).await;
    assert!(req.conn.is_some());
    assert_eq!(req.source, c.local_addr().unwrap());
    t.send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    assert_eq!(read_exact_n(&mut c, RESPONSE.len()).await, RESPONSE);
    assert_eq!(t.stats().open_connections, 1);
}

async fn tcp_client_connects(bind: SocketAddr) {
    let server = Transports::new(TransportConfig::default());
    let local = server.bind_tcp(bind).await.unwrap();
    let client = Transports::new(TransportConfig::default());
    let target = Target::new(TransportKind::Tcp, local);
    client
        .send(&target, Bytes::from_static(REQUEST))
        .await
        .unwrap();
    let req = recv(&server).await;
    assert_eq!(&req.data[..], REQUEST);
    server
        .send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    let resp = recv(&client).await;
    assert_eq!(&resp.data[..], RESPONSE);
    assert_eq!(resp.source, local);
    // A second request reuses the open connection.
    client
        .send(&target, Bytes::from_static(REQUEST))
        .await
        .unwrap();
    let again = recv(&server).await;
    assert_eq!(again.conn, req.conn);
    assert_eq!(client.stats().open_connections, 1);
}

#[tokio::test]
async fn tcp_client_connects_and_reuses_v4() {
    tcp_client_connects(v4()).await;
}

#[tokio::test]
async fn tcp_client_connects_and_reuses_v6() {
    tcp_client_connects(v6()).await;
}

#[tokio::test]
async fn tcp_max_connections_enforced() {
    let cfg = TransportConfig {
        max_connections: 2,
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    assert_eq!(t.stats().connection_cap, 2);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut a = TcpStream::connect(local).await.unwrap();
    let mut b = TcpStream::connect(local).await.unwrap();
    a.write_all(REQUEST).await.unwrap();
    recv(&t).await;
    // At the cap, a new client is served: b, which has sent nothing, is closed
    // to make room; a, which has, is kept. Before, c was closed at once.
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(REQUEST).await.unwrap();
    assert_eq!(recv(&t).await.source, c.local_addr().unwrap());
    assert!(closed_by_peer(&mut b).await);
    assert_eq!(t.stats().evicted_connections, 1);
    assert_eq!(t.stats().rejected_connections, 0);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while t.stats().open_connections > 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", t.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // a still works; a and c have both sent a message, so a fourth is refused.
    a.write_all(REQUEST).await.unwrap();
    assert_eq!(recv(&t).await.source, a.local_addr().unwrap());
    let mut d = TcpStream::connect(local).await.unwrap();
    let _ = d.write_all(REQUEST).await;
    assert!(closed_by_peer(&mut d).await);
    assert_eq!(t.stats().rejected_connections, 1);
    assert_eq!(t.stats().open_connections, 2);
    // An outgoing connection is refused at the cap: only accepted ones make room.
    let target = Target::new(TransportKind::Tcp, local);
    assert!(t.send(&target, Bytes::from_static(REQUEST)).await.is_err());
}

#[tokio::test]
async fn tcp_cap_held_by_outgoing_connections_refuses_new_ones() {
    // Nothing accepted to close: the new connection is closed at once.
    let far = Transports::new(TransportConfig::default());
    let far_addr = far.bind_tcp(v4()).await.unwrap();
    let t = Transports::new(TransportConfig {
        max_connections: 1,
        ..TransportConfig::default()
    });
    let local = t.bind_tcp(v4()).await.unwrap();
    t.send(
        &Target::new(TransportKind::Tcp, far_addr),
        Bytes::from_static(REQUEST),
    )
    .await
    .unwrap();
    assert_eq!(&recv(&far).await.data[..], REQUEST);
    let mut c = TcpStream::connect(local).await.unwrap();
    let _ = c.write_all(REQUEST).await;
    assert!(closed_by_peer(&mut c).await);
    assert_eq!(t.stats().rejected_connections, 1);
    assert_eq!(t.stats().evicted_connections, 0);
    assert_eq!(t.stats().open_connections, 1);
}

#[tokio::test]
async fn tcp_idle_timeout_closes() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_millis(200),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(REQUEST).await.unwrap();
    recv(&t).await;
    assert!(closed_by_peer(&mut c).await);
}

#[tokio::test]
async fn shutdown_stops_everything() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(REQUEST).await.unwrap();
    recv(&t).await;
    t.shutdown();
    assert!(closed_by_peer(&mut c).await);
    assert!(t.recv().await.is_none());
    assert!(
        t.send(
            &Target::new(TransportKind::Tcp, local),
            Bytes::from_static(REQUEST)
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn drop_stops_everything() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(REQUEST).await.unwrap();
    recv(&t).await;
    drop(t);
    assert!(closed_by_peer(&mut c).await);
}

// ---------------------------------------------------------------- TLS

#[tokio::test]
async fn tls_request_and_response_on_same_connection() {
    let (server_cfg, client_cfg) = self_signed();
    let server = Transports::new(TransportConfig::default());
    let local = server.bind_tls(v4(), server_cfg).await.unwrap();
    let client = Transports::new(TransportConfig {
        tls_client: Some(client_cfg),
        ..TransportConfig::default()
    });
    let target = Target::new(TransportKind::Tls, local).with_server_name("localhost");
    client
        .send(&target, Bytes::from_static(REQUEST))
        .await
        .unwrap();
    let req = recv(&server).await;
    assert_eq!(&req.data[..], REQUEST);
    assert_eq!(req.kind, TransportKind::Tls);
    server
        .send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    let resp = recv(&client).await;
    assert_eq!(&resp.data[..], RESPONSE);
    assert_eq!(resp.kind, TransportKind::Tls);
    assert_eq!(resp.source, local);
    assert_eq!(server.stats().open_connections, 1);
}

#[tokio::test]
async fn tls_by_ip_address_and_untrusted_refused() {
    let (server_cfg, client_cfg) = self_signed();
    let server = Transports::new(TransportConfig::default());
    let local = server.bind_tls(v4(), server_cfg).await.unwrap();
    // The certificate names 127.0.0.1 too.
    let client = Transports::new(TransportConfig {
        tls_client: Some(client_cfg),
        ..TransportConfig::default()
    });
    let target = Target::new(TransportKind::Tls, local);
    client
        .send(&target, Bytes::from_static(REQUEST))
        .await
        .unwrap();
    assert_eq!(&recv(&server).await.data[..], REQUEST);
    // A client trusting another certificate fails the handshake.
    let (_, other) = self_signed();
    let stranger = Transports::new(TransportConfig {
        tls_client: Some(other),
        ..TransportConfig::default()
    });
    assert!(
        stranger
            .send(&target, Bytes::from_static(REQUEST))
            .await
            .is_err()
    );
    // And without any client configuration.
    let none = Transports::new(TransportConfig::default());
    assert!(
        none.send(&target, Bytes::from_static(REQUEST))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------- WebSocket

fn ws_request(
    addr: SocketAddr,
    protocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn ws_request_response() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_ws(v4()).await.unwrap();
    let tcp = TcpStream::connect(local).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(ws_request(local, Some("sip")), tcp)
        .await
        .unwrap();
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), "sip");
    ws.send(Message::text(std::str::from_utf8(REQUEST).unwrap()))
        .await
        .unwrap();
    let req = recv(&t).await;
    assert_eq!(&req.data[..], REQUEST);
    assert_eq!(req.kind, TransportKind::Ws);
    t.send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    let got = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match got {
        Message::Text(text) => assert_eq!(text.as_bytes(), RESPONSE),
        other => panic!("expected a text frame, got {other:?}"),
    }
    // Binary frames are accepted too.
    ws.send(Message::binary(REQUEST.to_vec())).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
}

#[tokio::test]
async fn ws_without_sip_subprotocol_refused() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_ws(v4()).await.unwrap();
    let tcp = TcpStream::connect(local).await.unwrap();
    assert!(
        tokio_tungstenite::client_async(ws_request(local, None), tcp)
            .await
            .is_err()
    );
    let tcp = TcpStream::connect(local).await.unwrap();
    assert!(
        tokio_tungstenite::client_async(ws_request(local, Some("chat")), tcp)
            .await
            .is_err()
    );
    // Offered among others, it is selected.
    let tcp = TcpStream::connect(local).await.unwrap();
    let (_ws, resp) = tokio_tungstenite::client_async(ws_request(local, Some("chat, sip")), tcp)
        .await
        .unwrap();
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), "sip");
}

#[tokio::test]
async fn ws_client_via_send_v6() {
    let server = Transports::new(TransportConfig::default());
    let local = server.bind_ws(v6()).await.unwrap();
    let client = Transports::new(TransportConfig::default());
    client
        .send(
            &Target::new(TransportKind::Ws, local),
            Bytes::from_static(REQUEST),
        )
        .await
        .unwrap();
    let req = recv(&server).await;
    assert_eq!(&req.data[..], REQUEST);
    server
        .send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    let resp = recv(&client).await;
    assert_eq!(&resp.data[..], RESPONSE);
    assert_eq!(resp.kind, TransportKind::Ws);
}

#[tokio::test]
async fn wss_client_via_send() {
    let (server_cfg, client_cfg) = self_signed();
    let server = Transports::new(TransportConfig::default());
    let local = server.bind_wss(v4(), server_cfg).await.unwrap();
    let client = Transports::new(TransportConfig {
        tls_client: Some(client_cfg),
        ..TransportConfig::default()
    });
    let target = Target::new(TransportKind::Wss, local).with_server_name("localhost");
    client
        .send(&target, Bytes::from_static(REQUEST))
        .await
        .unwrap();
    let req = recv(&server).await;
    assert_eq!(req.kind, TransportKind::Wss);
    server
        .send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    assert_eq!(&recv(&client).await.data[..], RESPONSE);
}

/// A burst larger than the receive queue, answered one by one by an application
/// that receives and sends from a single task: must not deadlock.
#[tokio::test]
async fn tcp_burst_answered_by_single_task_does_not_deadlock() {
    const TINY: &[u8] = b"A sip:a SIP/2.0\r\nl:0\r\n\r\n";
    const N: usize = 3000;
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let c = TcpStream::connect(local).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < N * TINY.len() {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    });
    let burst = TINY.repeat(N);
    let writer = tokio::spawn(async move { wr.write_all(&burst).await.map(|()| wr) });
    for _ in 0..N {
        let m = recv(&t).await;
        tokio::time::timeout(
            LIMIT,
            t.send(&Target::reply_to(&m), Bytes::from_static(TINY)),
        )
        .await
        .expect("send blocked")
        .unwrap();
    }
    let got = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    assert_eq!(got, N * TINY.len());
    let _wr = writer.await.unwrap().unwrap();
}

#[tokio::test]
async fn tcp_ping_split_across_writes_gets_pong() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.set_nodelay(true).unwrap();
    // Make sure the connection is being served before the halves go out.
    c.write_all(REQUEST).await.unwrap();
    recv(&t).await;
    c.write_all(b"\r\n").await.unwrap();
    tokio::task::yield_now().await;
    c.write_all(b"\r\n").await.unwrap();
    assert_eq!(read_exact_n(&mut c, 2).await, b"\r\n");
    c.write_all(REQUEST).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
}

#[tokio::test]
async fn ws_oversized_frame_closes_connection() {
    let cfg = TransportConfig {
        max_message_size: 1024,
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_ws(v4()).await.unwrap();
    let tcp = TcpStream::connect(local).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(ws_request(local, Some("sip")), tcp)
        .await
        .unwrap();
    let _ = ws.send(Message::binary(vec![b'x'; 4096])).await;
    // The server closes: the stream ends (with a close frame or an error).
    loop {
        match tokio::time::timeout(LIMIT, ws.next()).await.unwrap() {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => {}
        }
    }
}

// ---------------------------------------------------------------- stream limits

/// Waits for the server to close `s`, draining what it sends; the time it took.
async fn time_to_close(s: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Writes `data` one byte every 50 ms until it is all sent or a write fails.
fn trickle(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    data: &'static [u8],
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for b in data {
            if w.write_all(std::slice::from_ref(b)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test]
async fn tcp_connection_that_never_sends_is_closed_when_idle() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let (mut r, _w) = TcpStream::connect(local).await.unwrap().into_split();
    let took = time_to_close(&mut r)
        .await
        .expect("idle connection kept open");
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert_eq!(t.stats().timed_out_connections, 1);
    assert_eq!(t.stats().open_connections, 0);
}

#[tokio::test]
async fn tcp_keepalives_keep_a_connection_open() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_millis(800),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    // A CRLF pair every 150 ms for 1.8 s, over two idle timeouts: each is answered.
    for _ in 0..12 {
        c.write_all(b"\r\n\r\n").await.unwrap();
        assert_eq!(read_exact_n(&mut c, 2).await, b"\r\n");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Still served.
    c.write_all(REQUEST).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
    // Then silence: closed.
    assert!(closed_by_peer(&mut c).await);
}

/// Bytes that never complete a message do not count as activity.
#[tokio::test]
async fn tcp_trickled_bytes_do_not_reset_the_idle_timeout() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_millis(400),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let (mut r, w) = TcpStream::connect(local).await.unwrap().into_split();
    let writer = trickle(w, REQUEST);
    let took = time_to_close(&mut r)
        .await
        .expect("a trickling connection was kept open");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    writer.abort();
    assert_eq!(t.stats().timed_out_connections, 1);
}

/// Slowloris: a byte every 50 ms, never a whole header, is closed at `message_timeout`.
#[tokio::test]
async fn tcp_slowloris_closed_at_the_message_deadline() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_secs(60),
        message_timeout: Duration::from_millis(500),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let (mut r, w) = TcpStream::connect(local).await.unwrap().into_split();
    // A whole message first, then the slow one.
    let mut w = w;
    w.write_all(REQUEST).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
    let writer = trickle(w, REQUEST);
    let took = time_to_close(&mut r)
        .await
        .expect("slowloris connection kept open");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    writer.abort();
    assert_eq!(t.stats().timed_out_connections, 1);
    assert_eq!(t.stats().open_connections, 0);
}

/// A message that arrives slowly but within `message_timeout` is fine.
#[tokio::test]
async fn tcp_slow_message_within_the_deadline_arrives() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_secs(60),
        message_timeout: Duration::from_secs(60),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut c = TcpStream::connect(local).await.unwrap();
    for chunk in REQUEST.chunks(REQUEST.len() / 4 + 1) {
        c.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(&recv(&t).await.data[..], REQUEST);
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{source}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

#[tokio::test]
async fn tcp_connections_per_source_capped() {
    let cfg = TransportConfig {
        max_connections_per_source: 3,
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut first = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.1", local).await;
        c.write_all(REQUEST).await.unwrap();
        assert_eq!(recv(&t).await.source, c.local_addr().unwrap());
        first.push(c);
    }
    // The fourth from the same address is refused ...
    let mut extra = connect_from("127.0.0.1", local).await;
    let _ = extra.write_all(REQUEST).await;
    assert!(closed_by_peer(&mut extra).await);
    assert_eq!(t.stats().rejected_connections, 1);
    assert_eq!(t.stats().open_connections, 3);
    // ... while another source still gets in.
    let mut other = connect_from("127.0.0.2", local).await;
    other.write_all(REQUEST).await.unwrap();
    assert_eq!(recv(&t).await.source, other.local_addr().unwrap());
    // The first three still work; closing one makes room for another.
    first[0].write_all(REQUEST).await.unwrap();
    assert_eq!(recv(&t).await.source, first[0].local_addr().unwrap());
    let mut gone = first.pop().unwrap();
    gone.shutdown().await.unwrap();
    assert!(closed_by_peer(&mut gone).await);
    drop(gone);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while t.stats().open_connections > 3 {
        assert!(tokio::time::Instant::now() < deadline, "slot not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut again = connect_from("127.0.0.1", local).await;
    again.write_all(REQUEST).await.unwrap();
    assert_eq!(recv(&t).await.source, again.local_addr().unwrap());
    assert_eq!(t.stats().rejected_connections, 1);
}

/// The hardening report's scenario, scaled down: slowloris and idle connections
/// together are all closed in time, and a new client is still served.
#[tokio::test]
async fn tcp_slowloris_and_idle_crowd_is_cleared() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_millis(800),
        message_timeout: Duration::from_millis(400),
        max_connections_per_source: 1000,
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_tcp(v4()).await.unwrap();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for i in 0..300 {
        let (r, w) = TcpStream::connect(local).await.unwrap().into_split();
        if i % 3 == 0 {
            writers.push(trickle(w, REQUEST)); // 100 slowloris
        } else {
            writers.push(tokio::spawn(async move {
                let _w = w; // 200 idle: connected, silent
                tokio::time::sleep(LIMIT).await;
            }));
        }
        readers.push(r);
    }
    for mut r in readers {
        assert!(
            time_to_close(&mut r).await.is_some(),
            "a connection was kept open"
        );
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    while t.stats().open_connections > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", t.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(t.stats().timed_out_connections, 300);
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(REQUEST).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
    for w in writers {
        w.abort();
    }
}

// ---------------------------------------------------------------- WebSocket handshake (RFC 6455 §4.2.1)

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A handshake request with `replace` applied to the good one's lines; `\n`-separated
/// here, each line sent with CRLF.
fn ws_handshake(lines: &[&str]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

fn good_lines() -> Vec<String> {
    vec![
        "GET / HTTP/1.1".to_owned(),
        "Host: 127.0.0.1".to_owned(),
        "Upgrade: websocket".to_owned(),
        "Connection: Upgrade".to_owned(),
        format!("Sec-WebSocket-Key: {WS_KEY}"),
        "Sec-WebSocket-Version: 13".to_owned(),
        "Sec-WebSocket-Protocol: sip".to_owned(),
    ]
}

/// Sends `request` raw and reads the response header; whether the server closed after it.
async fn raw_ws_handshake(local: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn ws_handshakes_refused_per_rfc6455() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_ws(v4()).await.unwrap();
    let good = good_lines();
    let without = |name: &str| -> Vec<String> {
        good.iter()
            .filter(|l| !l.starts_with(name))
            .cloned()
            .collect()
    };
    let with = |name: &str, line: String| -> Vec<String> {
        good.iter()
            .map(|l| {
                if l.starts_with(name) {
                    line.clone()
                } else {
                    l.clone()
                }
            })
            .collect()
    };
    let plus = |line: &str| -> Vec<String> {
        let mut v = good.clone();
        v.push(line.to_owned());
        v
    };
    let long_key = format!("Sec-WebSocket-Key: {}", "QUFB".repeat(512));
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "empty key",
            with("Sec-WebSocket-Key", "Sec-WebSocket-Key: ".into()),
            "400",
        ),
        (
            "non-base64 key",
            with(
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==".into(),
            ),
            "400",
        ),
        (
            "15-byte key",
            with(
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA".into(),
            ),
            "400",
        ),
        ("2 KiB key", with("Sec-WebSocket-Key", long_key), "400"),
        (
            "two keys",
            plus("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
            "400",
        ),
        ("no key", without("Sec-WebSocket-Key"), "400"),
        ("no Host", without("Host"), "400"),
        ("two Hosts", plus("Host: example.com"), "400"),
        ("POST", with("GET", "POST / HTTP/1.1".into()), "400"),
        ("HTTP/1.0", with("GET", "GET / HTTP/1.0".into()), "400"),
        ("no Upgrade", without("Upgrade"), "400"),
        (
            "no Connection: Upgrade",
            with("Connection", "Connection: keep-alive".into()),
            "400",
        ),
        (
            "no sip subprotocol",
            with(
                "Sec-WebSocket-Protocol",
                "Sec-WebSocket-Protocol: chat".into(),
            ),
            "400",
        ),
        (
            "version 8",
            with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8".into()),
            "426",
        ),
        ("no version", without("Sec-WebSocket-Version"), "426"),
    ];
    let mut wrong = Vec::new();
    let mut check = |name: &str, resp: &str, closed: bool, want: &str| {
        let ok = resp.starts_with(&format!("HTTP/1.1 {want} "))
            && !resp.contains(" 101 ")
            && closed
            && (want != "426" || resp.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        if !ok {
            let first = resp.lines().next().unwrap_or("(nothing)").to_owned();
            wrong.push(format!(
                "{name}: want {want}, got {first:?}, closed {closed}"
            ));
        }
    };
    for (name, lines, want) in &cases {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (resp, closed) = raw_ws_handshake(local, ws_handshake(&lines).as_bytes()).await;
        check(name, &resp, closed, want);
    }
    // Bare LF line endings: all of them, or just one.
    let lines: Vec<&str> = good.iter().map(String::as_str).collect();
    let all_lf = ws_handshake(&lines).replace("\r\n", "\n");
    let (resp, closed) = raw_ws_handshake(local, all_lf.as_bytes()).await;
    check("bare LF lines", &resp, closed, "400");
    let one_lf = ws_handshake(&lines).replacen("Upgrade: websocket\r\n", "Upgrade: websocket\n", 1);
    let (resp, closed) = raw_ws_handshake(local, one_lf.as_bytes()).await;
    check("one bare LF", &resp, closed, "400");
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(t.stats().open_connections, 0);
}

#[tokio::test]
async fn ws_good_raw_handshake_gets_101_and_carries_sip() {
    let t = Transports::new(TransportConfig::default());
    let local = t.bind_ws(v4()).await.unwrap();
    let good = good_lines();
    let lines: Vec<&str> = good.iter().map(String::as_str).collect();
    // The first frame in the same write as the handshake: a masked text frame
    // (mask 0, so the payload is as it is).
    let mut wire = ws_handshake(&lines).into_bytes();
    wire.push(0x81);
    wire.push(0x80 | 126);
    wire.extend_from_slice(&u16::try_from(REQUEST.len()).unwrap().to_be_bytes());
    wire.extend_from_slice(&[0, 0, 0, 0]);
    wire.extend_from_slice(REQUEST);
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(&wire).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_exact_n(&mut c, 1).await);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: sip\r\n"),
        "{head}"
    );
    // RFC 6455 §1.3's example key and accept value.
    assert!(
        head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    let req = recv(&t).await;
    assert_eq!(&req.data[..], REQUEST);
    assert_eq!(req.kind, TransportKind::Ws);
    // The connection goes on as a WebSocket both ways.
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        c,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    t.send(&Target::reply_to(&req), Bytes::from_static(RESPONSE))
        .await
        .unwrap();
    let got = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.into_data(), Bytes::from_static(RESPONSE));
    ws.send(Message::text(std::str::from_utf8(REQUEST).unwrap()))
        .await
        .unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
}

/// Slowloris on WebSocket: a frame trickled a byte every 50 ms is closed at `message_timeout`.
#[tokio::test]
async fn ws_slowloris_frame_closed_at_the_message_deadline() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_secs(60),
        message_timeout: Duration::from_millis(500),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let local = t.bind_ws(v4()).await.unwrap();
    let good = good_lines();
    let lines: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(ws_handshake(&lines).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_exact_n(&mut c, 1).await);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    // A whole frame first: delivered.
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&u16::try_from(REQUEST.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(REQUEST);
    c.write_all(&frame).await.unwrap();
    assert_eq!(&recv(&t).await.data[..], REQUEST);
    // Then the same frame a byte at a time.
    let frame: &'static [u8] = Box::leak(frame.into_boxed_slice());
    let (mut r, w) = c.into_split();
    let writer = trickle(w, frame);
    let took = time_to_close(&mut r)
        .await
        .expect("slowloris WebSocket kept open");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    writer.abort();
    assert_eq!(t.stats().timed_out_connections, 1);
}

/// A TLS or WebSocket handshake that does not finish within `connect_timeout` is closed
/// (a trickled WebSocket upgrade request, a TLS client that never says hello).
#[tokio::test]
async fn slow_handshakes_closed_at_connect_timeout() {
    let cfg = TransportConfig {
        connect_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_secs(60),
        ..TransportConfig::default()
    };
    let t = Transports::new(cfg);
    let ws = t.bind_ws(v4()).await.unwrap();
    let (server, _) = self_signed();
    let tls = t.bind_tls(v4(), server).await.unwrap();
    let good = good_lines();
    let lines: Vec<&str> = good.iter().map(String::as_str).collect();
    let upgrade: &'static [u8] = Box::leak(ws_handshake(&lines).into_bytes().into_boxed_slice());
    let (mut r, w) = TcpStream::connect(ws).await.unwrap().into_split();
    let writer = trickle(w, upgrade);
    let took = time_to_close(&mut r).await.expect("slow upgrade kept open");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    writer.abort();
    let (mut r, _w) = TcpStream::connect(tls).await.unwrap().into_split();
    let took = time_to_close(&mut r)
        .await
        .expect("silent TLS client kept open");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    let deadline = tokio::time::Instant::now() + LIMIT;
    while t.stats().open_connections > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", t.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
