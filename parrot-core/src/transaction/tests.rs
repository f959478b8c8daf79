//! Transaction layer tests, on a virtual clock: instants are a base plus
//! offsets, nothing sleeps.

use super::layer::{LAZY_BATCH, LAZY_GRAIN};
use super::*;
use crate::message::{HeaderName, Message, Method, Request, Response, StatusCode};
use bytes::Bytes;
use std::time::{Duration, Instant};

type Layer = Transactions<&'static str>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn layer() -> Layer {
    Transactions::new(TimerConfig::default())
}

fn parse(s: &str) -> Message {
    Message::parse(Bytes::from(s.to_owned())).expect("test message parses")
}

/// A request from Alice to Bob through two Route entries, with a second Via.
fn request_with(method: &str, branch: &str, cseq: u32, to_tag: &str) -> Request {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let branch = if branch.is_empty() {
        String::new()
    } else {
        format!(";branch={branch}")
    };
    let msg = parse(&format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP pc33.example.com:5060{branch}\r\n\
         Via: SIP/2.0/UDP relay.example.com;branch=z9hG4bKrelay\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:p1.example.com;lr>\r\n\
         Route: <sip:p2.example.com;lr>\r\n\
         To: Bob <sip:bob@example.com>{to_tag}\r\n\
         From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@pc33.example.com>\r\n\
         Content-Length: 0\r\n\r\n"
    ));
    match msg {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!("a request"),
    }
}

fn request(method: &str, branch: &str) -> Request {
    request_with(method, branch, 1, "")
}

fn response(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut r = req.response(StatusCode::new(status).expect("valid status"));
    if let Some(tag) = to_tag {
        r.set_to_tag(tag);
    }
    r
}

fn transmits(l: &mut Layer) -> Vec<Transmit<&'static str>> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut Layer) -> Vec<Event<&'static str>> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn first_line(data: &Bytes) -> String {
    let s = String::from_utf8_lossy(data);
    s.lines().next().unwrap_or_default().to_owned()
}

type Sent = Vec<(Duration, String)>;
type Timed = Vec<(Duration, Event<&'static str>)>;

/// Fires timers up to `end`, each when the layer asks (a timer that only ends
/// a finished transaction, [`Timer::is_lazy`], a grain after its deadline); returns (offset from t0, first line) of every
/// transmission and the events, each with the offset at which it happened.
fn run(l: &mut Layer, t0: Instant, end: Duration) -> (Sent, Timed) {
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    while let Some(at) = l.poll_timeout() {
        if at > t0 + end {
            break;
        }
        l.handle_timeout(at);
        sent.extend(transmits(l).iter().map(|t| (at - t0, first_line(&t.data))));
        evs.extend(events(l).into_iter().map(|e| (at - t0, e)));
    }
    (sent, evs)
}

fn offsets(sent: &[(Duration, String)]) -> Vec<u64> {
    sent.iter().map(|(d, _)| d.as_millis() as u64).collect()
}

fn is_timeout(e: &Event<&'static str>) -> bool {
    matches!(e, Event::Timeout { .. })
}

fn is_terminated(e: &Event<&'static str>) -> bool {
    matches!(e, Event::Terminated { .. })
}

/// The header lines of a message, without the start line and Content-Length.
fn header_lines(data: &Bytes) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------------ client INVITE

#[test]
fn invite_client_udp_schedule_and_timer_b() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, request("INVITE", "z9hG4bKinv1"), "bob", false)
        .expect("sent");
    let first = transmits(&mut l);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].dest, "bob");
    assert_eq!(first[0].key.as_ref(), Some(&key));
    assert!(!first[0].reliable);
    assert_eq!(l.state(&key), Some(State::Calling));
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (Timer A, no cap), Timer B at 32 s.
    assert_eq!(offsets(&sent), [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent.iter().all(|(_, l)| l.starts_with("INVITE ")));
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].0, Duration::from_secs(32));
    assert!(is_timeout(&evs[0].1));
    assert!(is_terminated(&evs[1].1));
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_client_reliable_no_retransmission() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, request("INVITE", "z9hG4bKinv2"), "bob", true)
        .expect("sent");
    assert_eq!(transmits(&mut l).len(), 1);
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty());
    assert_eq!(evs[0].0, Duration::from_secs(32));
    assert!(is_timeout(&evs[0].1));
    assert!(l.is_empty());
}

#[test]
fn invite_client_provisional_stops_retransmission_then_2xx_accepted() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKinv3");
    let key = l.send_request(t0, inv.clone(), "bob", false).expect("sent");
    let _ = transmits(&mut l);
    let (sent, _) = run(&mut l, t0, ms(600));
    assert_eq!(offsets(&sent), [500]);
    l.handle_message(
        t0 + ms(700),
        response(&inv, 180, Some("b1")).into(),
        "bob",
        false,
    );
    assert_eq!(l.state(&key), Some(State::Proceeding));
    assert!(
        matches!(&events(&mut l)[..], [Event::Response { response, .. }] if response.status().as_u16() == 180)
    );
    // No Timer A nor B in Proceeding.
    assert_eq!(l.poll_timeout(), None);
    let ok = response(&inv, 200, Some("b1"));
    l.handle_message(t0 + ms(5000), ok.clone().into(), "bob", false);
    assert_eq!(l.state(&key), Some(State::Accepted));
    assert!(
        matches!(&events(&mut l)[..], [Event::Response { response, .. }] if response.status().is_success())
    );
    // No ACK from the transaction for a 2xx: that is the TU's.
    assert!(transmits(&mut l).is_empty());
    // 2xx retransmissions in Accepted go to the TU (RFC 6026 §7.2).
    l.handle_message(t0 + ms(5500), ok.clone().into(), "bob", false);
    assert!(matches!(&events(&mut l)[..], [Event::Response { .. }]));
    // Timer M = 64*T1.
    assert_eq!(
        l.poll_timeout(),
        Some(t0 + ms(5000) + Duration::from_secs(32) + LAZY_GRAIN)
    );
    let (_, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(matches!(&evs[..], [(_, Event::Terminated { .. })]));
    assert!(l.is_empty());
    // Afterwards a 2xx is stray: the UA still ACKs it.
    l.handle_message(t0 + ms(40_000), ok.into(), "bob", false);
    assert!(matches!(
        &events(&mut l)[..],
        [Event::StrayResponse { source: "bob", .. }]
    ));
}

#[test]
fn invite_client_487_ack_every_header_and_completed_absorbs() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKinv4");
    let key = l.send_request(t0, inv.clone(), "bob", false).expect("sent");
    let _ = transmits(&mut l);
    let r487 = response(&inv, 487, Some("bobtag"));
    l.handle_message(t0 + ms(100), r487.clone().into(), "bob", false);
    assert_eq!(l.state(&key), Some(State::Completed));
    let evs = events(&mut l);
    assert!(
        matches!(&evs[..], [Event::Response { response, .. }] if response.status().as_u16() == 487)
    );
    let acks = transmits(&mut l);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].dest, "bob");
    let ack_bytes = acks[0].data.clone();
    assert_eq!(first_line(&ack_bytes), "ACK sip:bob@example.com SIP/2.0");
    // §17.1.1.3: exactly these headers; To is the response's, with its tag
    // (set_to_tag kept the request's bytes and appended the tag).
    let to = r487.headers().get_str(&HeaderName::To).unwrap_or_default();
    assert_eq!(to, "Bob <sip:bob@example.com>;tag=bobtag");
    assert_eq!(
        header_lines(&ack_bytes),
        [
            "Via: SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bKinv4",
            "Max-Forwards: 70",
            "From: Alice <sip:alice@example.com>;tag=1928301774",
            "To: Bob <sip:bob@example.com>;tag=bobtag",
            "Call-ID: a84b4c76e66710@pc33.example.com",
            "CSeq: 1 ACK",
            "Route: <sip:p1.example.com;lr>",
            "Route: <sip:p2.example.com;lr>",
            "Content-Length: 0",
        ]
    );
    let ack = parse(&String::from_utf8_lossy(&ack_bytes));
    let ack = ack.as_request().expect("a request");
    assert_eq!(*ack.method(), Method::Ack);
    assert_eq!(ack.headers().vias().len(), 1);
    assert_eq!(ack.headers().cseq().map(|c| c.seq), Some(1));
    // A retransmitted 487: ACK again, nothing for the TU.
    l.handle_message(t0 + ms(600), r487.clone().into(), "bob", false);
    let again = transmits(&mut l);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].data, ack_bytes);
    assert!(events(&mut l).is_empty());
    // No more INVITE retransmissions; Timer D at 32 s.
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty());
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, ms(100) + Duration::from_secs(32) + LAZY_GRAIN);
    assert!(is_terminated(&evs[0].1));
    assert!(l.is_empty());
}

#[test]
fn invite_client_non_2xx_on_reliable_terminates_at_once() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKinv5");
    l.send_request(t0, inv.clone(), "bob", true).expect("sent");
    let _ = transmits(&mut l);
    l.handle_message(
        t0 + ms(10),
        response(&inv, 486, Some("x")).into(),
        "bob",
        true,
    );
    let tx = transmits(&mut l);
    assert_eq!(tx.len(), 1);
    assert!(tx[0].reliable);
    assert!(first_line(&tx[0].data).starts_with("ACK "));
    let evs = events(&mut l);
    assert!(matches!(
        &evs[..],
        [Event::Response { .. }, Event::Terminated { .. }]
    ));
    assert!(l.is_empty());
}

#[test]
fn invite_client_cancel_request() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKinv6");
    let key = l.send_request(t0, inv.clone(), "bob", false).expect("sent");
    let cancel = l.cancel_request(&key).expect("a CANCEL");
    assert_eq!(
        first_line(&cancel.to_bytes()),
        "CANCEL sip:bob@example.com SIP/2.0"
    );
    assert_eq!(
        header_lines(&cancel.to_bytes()),
        [
            "Via: SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bKinv6",
            "Max-Forwards: 70",
            "From: Alice <sip:alice@example.com>;tag=1928301774",
            "To: Bob <sip:bob@example.com>",
            "Call-ID: a84b4c76e66710@pc33.example.com",
            "CSeq: 1 CANCEL",
            "Route: <sip:p1.example.com;lr>",
            "Route: <sip:p2.example.com;lr>",
            "Content-Length: 0",
        ]
    );
    let ckey = l
        .send_request(t0, cancel, "bob", false)
        .expect("CANCEL sent");
    assert_eq!(*ckey.method(), Method::Cancel);
    assert_eq!(ckey.branch(), key.branch());
    assert_eq!(l.cancel_request(&ckey), Err(TransactionError::InvalidState));
}

#[test]
fn zero_t1_is_clamped() {
    let mut l = Layer::new(TimerConfig::default().with_t1(Duration::ZERO));
    let t0 = Instant::now();
    l.send_request(t0, request("INVITE", "z9hG4bKz"), "bob", false)
        .expect("sent");
    l.handle_timeout(t0 + Duration::from_secs(1));
    assert!(transmits(&mut l).len() > 1);
}

// -------------------------------------------------------- client non-INVITE

#[test]
fn non_invite_client_schedule_capped_at_t2_and_timer_f() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, request("OPTIONS", "z9hG4bKopt1"), "bob", false)
        .expect("sent");
    assert_eq!(transmits(&mut l).len(), 1);
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert_eq!(
        offsets(&sent),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(evs[0].0, Duration::from_secs(32));
    assert!(is_timeout(&evs[0].1));
    assert!(is_terminated(&evs[1].1));
    assert!(l.is_empty());
}

#[test]
fn non_invite_client_provisional_sets_t2_then_final_and_timer_k() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request("REGISTER", "z9hG4bKreg1");
    let key = l.send_request(t0, req.clone(), "reg", false).expect("sent");
    let _ = transmits(&mut l);
    let (sent, _) = run(&mut l, t0, ms(600));
    assert_eq!(offsets(&sent), [500]);
    l.handle_message(t0 + ms(700), response(&req, 100, None).into(), "reg", false);
    assert_eq!(l.state(&key), Some(State::Proceeding));
    assert!(matches!(&events(&mut l)[..], [Event::Response { .. }]));
    // E armed for 1.5 s still fires; from then on every T2.
    let (sent, _) = run(&mut l, t0, ms(10_000));
    assert_eq!(offsets(&sent), [1500, 5500, 9500]);
    l.handle_message(
        t0 + ms(10_000),
        response(&req, 200, Some("r")).into(),
        "reg",
        false,
    );
    assert_eq!(l.state(&key), Some(State::Completed));
    assert!(matches!(&events(&mut l)[..], [Event::Response { .. }]));
    // Retransmitted final: absorbed.
    l.handle_message(
        t0 + ms(11_000),
        response(&req, 200, Some("r")).into(),
        "reg",
        false,
    );
    assert!(events(&mut l).is_empty());
    // Timer K = T4.
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty());
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, ms(15_000) + LAZY_GRAIN);
    assert!(l.is_empty());
}

#[test]
fn non_invite_client_reliable() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKopt2");
    l.send_request(t0, req.clone(), "bob", true).expect("sent");
    let _ = transmits(&mut l);
    let (sent, _) = run(&mut l, t0, ms(5000));
    assert!(sent.is_empty());
    l.handle_message(
        t0 + ms(5000),
        response(&req, 200, Some("t")).into(),
        "bob",
        true,
    );
    // K = 0 on reliable transports.
    assert!(matches!(
        &events(&mut l)[..],
        [Event::Response { .. }, Event::Terminated { .. }]
    ));
    assert!(l.is_empty());
}

#[test]
fn send_request_refusals() {
    let mut l = layer();
    let t0 = Instant::now();
    assert_eq!(
        l.send_request(t0, request("ACK", "z9hG4bKa"), "bob", false),
        Err(TransactionError::AckNotAllowed)
    );
    assert_eq!(
        l.send_request(t0, request("INVITE", "old-branch"), "bob", false),
        Err(TransactionError::MissingBranch)
    );
    assert_eq!(
        l.send_request(t0, request("INVITE", ""), "bob", false),
        Err(TransactionError::MissingBranch)
    );
    assert!(
        l.send_request(t0, request("INVITE", "z9hG4bKdup"), "bob", false)
            .is_ok()
    );
    assert_eq!(
        l.send_request(t0, request("INVITE", "z9hG4bKdup"), "bob", false),
        Err(TransactionError::Duplicate)
    );
    // A CANCEL shares the INVITE's branch but is its own transaction.
    assert!(
        l.send_request(t0, request("CANCEL", "z9hG4bKdup"), "bob", false)
            .is_ok()
    );
    assert_eq!(l.len(), 2);
    assert_eq!(l.server_len(), 0);
}

// ------------------------------------------------------------ server INVITE

fn incoming(l: &mut Layer, now: Instant, req: &Request, reliable: bool) -> TransactionKey {
    l.handle_message(now, req.clone().into(), "alice", reliable);
    match events(l).pop() {
        Some(Event::Request { key, source, .. }) => {
            assert_eq!(source, "alice");
            key
        }
        other => panic!("expected a request event, got {other:?}"),
    }
}

#[test]
fn invite_server_100_trying_after_200ms() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs1");
    let key = incoming(&mut l, t0, &inv, false);
    assert!(key.is_server());
    assert_eq!(l.server_len(), 1);
    assert_eq!(l.state(&key), Some(State::Proceeding));
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), Some(t0 + ms(200)));
    l.handle_timeout(t0 + ms(199));
    assert!(transmits(&mut l).is_empty());
    l.handle_timeout(t0 + ms(200));
    let tx = transmits(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dest, "alice");
    assert_eq!(first_line(&tx[0].data), "SIP/2.0 100 Trying");
    // A retransmitted INVITE gets the 100 again.
    l.handle_message(t0 + ms(500), inv.into(), "alice", false);
    assert_eq!(first_line(&transmits(&mut l)[0].data), "SIP/2.0 100 Trying");
    assert!(events(&mut l).is_empty());
}

#[test]
fn invite_server_no_100_when_tu_answers_in_time_or_option_off() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs2");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0 + ms(50), &key, response(&inv, 180, Some("b")))
        .expect("respond");
    assert_eq!(
        first_line(&transmits(&mut l)[0].data),
        "SIP/2.0 180 Ringing"
    );
    l.handle_timeout(t0 + ms(300));
    assert!(transmits(&mut l).is_empty());

    let mut l = Layer::new(TimerConfig::default().with_auto_trying(None));
    let _ = incoming(&mut l, t0, &inv, false);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_server_retransmitted_invite_gets_last_provisional() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs3");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &key, response(&inv, 180, Some("b")))
        .expect("respond");
    l.respond(t0, &key, response(&inv, 183, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    l.handle_message(t0 + ms(500), inv.into(), "alice", false);
    let tx = transmits(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(first_line(&tx[0].data), "SIP/2.0 183 Session Progress");
    assert!(events(&mut l).is_empty());
}

#[test]
fn a_final_response_releases_the_request_and_retransmissions_still_get_it() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKrel");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &key, response(&inv, 180, Some("b")))
        .expect("respond");
    assert!(l.request(&key).is_some(), "kept while unanswered");
    l.respond(t0, &key, response(&inv, 200, Some("b")))
        .expect("respond");
    assert!(l.request(&key).is_none(), "released at the final response");
    assert_eq!(l.state(&key), Some(State::Accepted));
    let _ = transmits(&mut l);
    // RFC 6026 §7.1: a retransmitted INVITE in Accepted is absorbed, and the
    // 2xx goes on being retransmitted from the kept bytes.
    l.handle_message(t0 + ms(100), inv.into(), "alice", false);
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    let (sent, _) = run(&mut l, t0, ms(1000));
    assert!(
        sent.iter().any(|(_, line)| line == "SIP/2.0 200 OK"),
        "{sent:?}"
    );
}

#[test]
fn invite_server_timer_g_and_h() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs4");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &key, response(&inv, 486, Some("b")))
        .expect("respond");
    assert_eq!(l.state(&key), Some(State::Completed));
    assert_eq!(transmits(&mut l).len(), 1);
    // A second final response is refused.
    assert_eq!(
        l.respond(t0, &key, response(&inv, 500, Some("b"))),
        Err(TransactionError::InvalidState)
    );
    // A retransmitted INVITE in Completed gets the final again.
    l.handle_message(t0 + ms(100), inv.clone().into(), "alice", false);
    assert_eq!(
        first_line(&transmits(&mut l)[0].data),
        "SIP/2.0 486 Busy Here"
    );
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    // G: T1 doubling up to T2; H at 64*T1.
    assert_eq!(
        offsets(&sent),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(sent.iter().all(|(_, l)| l == "SIP/2.0 486 Busy Here"));
    assert_eq!(evs[0].0, Duration::from_secs(32));
    assert!(is_timeout(&evs[0].1));
    assert!(is_terminated(&evs[1].1));
    assert!(l.is_empty());
    assert_eq!(l.server_len(), 0);
}

#[test]
fn invite_server_ack_confirms_and_timer_i() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs5");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &key, response(&inv, 486, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    let (sent, _) = run(&mut l, t0, ms(1000));
    assert_eq!(offsets(&sent), [500]);
    let ack = request_with("ACK", "z9hG4bKs5", 1, "b");
    l.handle_message(t0 + ms(1000), ack.clone().into(), "alice", false);
    assert_eq!(l.state(&key), Some(State::Confirmed));
    assert!(
        events(&mut l).is_empty(),
        "the ACK for a non-2xx is absorbed"
    );
    l.handle_message(t0 + ms(1100), ack.into(), "alice", false);
    assert!(events(&mut l).is_empty());
    // No more G; I = T4 after the ACK.
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty());
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, ms(6000) + LAZY_GRAIN);
    assert!(l.is_empty());
}

#[test]
fn invite_server_reliable_no_g_and_i_zero() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs6");
    let key = incoming(&mut l, t0, &inv, true);
    l.respond(t0, &key, response(&inv, 603, Some("b")))
        .expect("respond");
    assert!(transmits(&mut l)[0].reliable);
    assert_eq!(
        l.poll_timeout(),
        Some(t0 + Duration::from_secs(32)),
        "only H"
    );
    l.handle_message(
        t0 + ms(50),
        request_with("ACK", "z9hG4bKs6", 1, "b").into(),
        "alice",
        true,
    );
    assert!(matches!(&events(&mut l)[..], [Event::Terminated { .. }]));
    assert!(l.is_empty());
}

#[test]
fn invite_server_2xx_retransmitted_until_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs7");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &key, response(&inv, 200, Some("b")))
        .expect("respond");
    assert_eq!(l.state(&key), Some(State::Accepted));
    assert_eq!(transmits(&mut l).len(), 1);
    assert_eq!(l.awaiting_ack(), 1);
    let (sent, _) = run(&mut l, t0, ms(12_000));
    assert_eq!(offsets(&sent), [500, 1500, 3500, 7500, 11500]);
    assert!(sent.iter().all(|(_, l)| l == "SIP/2.0 200 OK"));
    // A retransmitted INVITE in Accepted is absorbed (RFC 6026 §7.1).
    l.handle_message(t0 + ms(12_000), inv.clone().into(), "alice", false);
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    // The ACK for the 2xx has its own branch; the layer matches it by dialog.
    let ack = request_with("ACK", "z9hG4bKack7", 1, "b");
    l.handle_message(t0 + ms(12_500), ack.clone().into(), "alice", false);
    let evs = events(&mut l);
    assert!(matches!(&evs[..], [Event::Ack { invite: Some(k), source: "alice", .. }] if *k == key));
    assert_eq!(l.awaiting_ack(), 0, "the ACK came");
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty(), "no 2xx after the ACK");
    // Accepted lasts until Timer L; no AckTimeout.
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, Duration::from_secs(32) + LAZY_GRAIN);
    assert!(is_terminated(&evs[0].1));
    assert!(l.is_empty());
}

#[test]
fn invite_server_2xx_ack_timeout() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs8");
    let key = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &key, response(&inv, 200, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    // An ACK of another dialog does not stop it.
    l.handle_message(
        t0 + ms(100),
        request_with("ACK", "z9hG4bKx", 1, "other").into(),
        "alice",
        false,
    );
    assert!(matches!(
        &events(&mut l)[..],
        [Event::Ack { invite: None, .. }]
    ));
    assert_eq!(l.awaiting_ack(), 1);
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert_eq!(
        offsets(&sent),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].0, Duration::from_secs(32) + LAZY_GRAIN);
    assert!(matches!(&evs[0].1, Event::AckTimeout { key: k } if *k == key));
    assert!(is_terminated(&evs[1].1));
    assert!(l.is_empty());
    assert_eq!(l.awaiting_ack(), 0, "given up at Timer L");
}

#[test]
fn invite_server_ack_received_api_stops_2xx() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKs9");
    let key = incoming(&mut l, t0, &inv, true);
    l.respond(t0, &key, response(&inv, 200, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    // Reliable transports retransmit the 2xx too (§13.3.1.4).
    let (sent, _) = run(&mut l, t0, ms(600));
    assert_eq!(offsets(&sent), [500]);
    l.ack_received(t0 + ms(600), &key);
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty());
    assert!(matches!(&evs[..], [(_, Event::Terminated { .. })]));
}

// -------------------------------------------------------- server non-INVITE

#[test]
fn non_invite_server_retransmits_last_response_and_timer_j() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKn1");
    let key = incoming(&mut l, t0, &req, false);
    assert_eq!(l.state(&key), Some(State::Trying));
    assert_eq!(l.poll_timeout(), None, "no 100 Trying for non-INVITE");
    // Trying: a retransmission is absorbed.
    l.handle_message(t0 + ms(500), req.clone().into(), "alice", false);
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    l.respond(t0 + ms(600), &key, response(&req, 100, None))
        .expect("respond");
    assert_eq!(l.state(&key), Some(State::Proceeding));
    let _ = transmits(&mut l);
    l.handle_message(t0 + ms(1500), req.clone().into(), "alice", false);
    assert_eq!(first_line(&transmits(&mut l)[0].data), "SIP/2.0 100 Trying");
    l.respond(t0 + ms(2000), &key, response(&req, 200, Some("b")))
        .expect("respond");
    assert_eq!(l.state(&key), Some(State::Completed));
    let _ = transmits(&mut l);
    l.handle_message(t0 + ms(3500), req.clone().into(), "alice", false);
    assert_eq!(first_line(&transmits(&mut l)[0].data), "SIP/2.0 200 OK");
    assert!(events(&mut l).is_empty());
    assert_eq!(
        l.respond(t0, &key, response(&req, 200, Some("b"))),
        Err(TransactionError::InvalidState)
    );
    let (sent, evs) = run(&mut l, t0, Duration::from_secs(100));
    assert!(sent.is_empty());
    assert_eq!(evs[0].0, ms(2000) + Duration::from_secs(32) + LAZY_GRAIN);
    assert!(l.is_empty());
}

#[test]
fn non_invite_server_reliable_ends_with_final() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKn2");
    let key = incoming(&mut l, t0, &req, true);
    l.respond(t0, &key, response(&req, 200, Some("b")))
        .expect("respond");
    assert_eq!(transmits(&mut l).len(), 1);
    assert!(matches!(&events(&mut l)[..], [Event::Terminated { .. }]));
    assert!(l.is_empty());
    assert_eq!(
        l.respond(t0, &key, response(&req, 200, Some("b"))),
        Err(TransactionError::UnknownTransaction)
    );
}

// ----------------------------------------------------------------- CANCEL

#[test]
fn cancel_matches_invite_server_transaction() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKc1");
    let ikey = incoming(&mut l, t0, &inv, false);
    l.respond(t0, &ikey, response(&inv, 180, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    let cancel = request("CANCEL", "z9hG4bKc1");
    l.handle_message(t0 + ms(1000), cancel.clone().into(), "alice", false);
    let evs = events(&mut l);
    let [
        Event::Cancel {
            cancel: ckey,
            invite,
            source,
            request: creq,
        },
    ] = &evs[..]
    else {
        panic!("expected Cancel, got {evs:?}");
    };
    assert_eq!(invite.as_ref(), Some(&ikey));
    assert_eq!(*source, "alice");
    assert_eq!(*creq.method(), Method::Cancel);
    assert_ne!(*ckey, ikey);
    assert_eq!(*ckey.method(), Method::Cancel);
    assert_eq!(l.server_len(), 2);
    l.respond(t0 + ms(1000), ckey, response(&cancel, 200, Some("b")))
        .expect("200 to CANCEL");
    l.respond(t0 + ms(1000), &ikey, response(&inv, 487, Some("b")))
        .expect("487");
    let tx = transmits(&mut l);
    assert_eq!(first_line(&tx[0].data), "SIP/2.0 200 OK");
    assert_eq!(first_line(&tx[1].data), "SIP/2.0 487 Request Terminated");
    // A retransmitted CANCEL gets its 200 again, no new event.
    l.handle_message(t0 + ms(1500), cancel.into(), "alice", false);
    assert_eq!(first_line(&transmits(&mut l)[0].data), "SIP/2.0 200 OK");
    assert!(events(&mut l).is_empty());
    // A CANCEL for nothing: the TU answers 481.
    l.handle_message(
        t0 + ms(2000),
        request("CANCEL", "z9hG4bKnothing").into(),
        "alice",
        false,
    );
    assert!(matches!(
        &events(&mut l)[..],
        [Event::Cancel { invite: None, .. }]
    ));
}

// ------------------------------------------------------------- RFC 2543

#[test]
fn rfc2543_matching_without_magic_cookie() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = request("INVITE", "old1");
    let key = incoming(&mut l, t0, &inv, false);
    assert_eq!(key.branch(), None);
    l.respond(t0, &key, response(&inv, 180, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    // The same request again: a retransmission.
    l.handle_message(t0 + ms(500), inv.clone().into(), "alice", false);
    assert_eq!(
        first_line(&transmits(&mut l)[0].data),
        "SIP/2.0 180 Ringing"
    );
    assert!(events(&mut l).is_empty());
    // No branch at all works too, and is another transaction (top Via differs).
    let bare = request("INVITE", "");
    let _ = incoming(&mut l, t0, &bare, false);
    assert_eq!(l.server_len(), 2);
    // Another CSeq: a new transaction.
    let _ = incoming(&mut l, t0, &request_with("INVITE", "old1", 2, ""), false);
    assert_eq!(l.server_len(), 3);
    // The ACK for a non-2xx carries our To tag; it matches the INVITE.
    l.respond(t0 + ms(600), &key, response(&inv, 486, Some("b")))
        .expect("respond");
    let _ = transmits(&mut l);
    l.handle_message(
        t0 + ms(700),
        request_with("ACK", "old1", 1, "wrong").into(),
        "alice",
        false,
    );
    assert!(matches!(
        &events(&mut l)[..],
        [Event::Ack { invite: None, .. }]
    ));
    assert_eq!(l.state(&key), Some(State::Completed));
    l.handle_message(
        t0 + ms(700),
        request_with("ACK", "old1", 1, "b").into(),
        "alice",
        false,
    );
    assert!(events(&mut l).is_empty());
    assert_eq!(l.state(&key), Some(State::Confirmed));
}

// -------------------------------------------------- errors and odd input

#[test]
fn transport_error_terminates_client_and_server() {
    let mut l = layer();
    let t0 = Instant::now();
    let ckey = l
        .send_request(t0, request("INVITE", "z9hG4bKt1"), "bob", false)
        .expect("sent");
    l.transport_error(t0 + ms(10), &ckey);
    assert!(
        matches!(&events(&mut l)[..], [Event::TransportError { key }, Event::Terminated { .. }] if *key == ckey)
    );
    let inv = request("INVITE", "z9hG4bKt2");
    let skey = incoming(&mut l, t0, &inv, false);
    l.transport_error(t0 + ms(10), &skey);
    assert!(matches!(
        &events(&mut l)[..],
        [Event::TransportError { .. }, Event::Terminated { .. }]
    ));
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
    // Unknown keys are ignored.
    l.transport_error(t0, &skey);
    assert!(events(&mut l).is_empty());
}

#[test]
fn messages_without_via_or_cseq_are_dropped() {
    let mut l = layer();
    let t0 = Instant::now();
    let no_via = parse(
        "OPTIONS sip:bob@example.com SIP/2.0\r\nTo: <sip:bob@example.com>\r\n\
         From: <sip:a@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    );
    l.handle_message(t0, no_via, "alice", false);
    let no_cseq = parse(
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
         To: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n",
    );
    l.handle_message(t0, no_cseq, "alice", false);
    let resp_no_via = parse(
        "SIP/2.0 200 OK\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n\
         Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    );
    l.handle_message(t0, resp_no_via, "alice", false);
    let ack_no_via = parse(
        "ACK sip:bob@example.com SIP/2.0\r\nTo: <sip:bob@example.com>\r\n\
         From: <sip:a@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
    );
    l.handle_message(t0, ack_no_via, "alice", false);
    assert!(events(&mut l).is_empty());
    assert!(transmits(&mut l).is_empty());
    assert!(l.is_empty());
}

#[test]
fn stray_response_and_stateless_send() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKst");
    l.handle_message(t0, response(&req, 200, Some("x")).into(), "bob", false);
    assert!(matches!(
        &events(&mut l)[..],
        [Event::StrayResponse { source: "bob", .. }]
    ));
    let ack = request_with("ACK", "z9hG4bKack", 1, "x");
    l.send_stateless(t0, ack.clone().into(), "bob", true);
    let tx = transmits(&mut l);
    assert_eq!(tx[0].data, ack.to_bytes());
    assert_eq!(tx[0].key, None);
    assert!(tx[0].reliable);
    assert!(l.is_empty());
}

#[test]
fn respond_on_client_transaction_is_refused() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKcl");
    let key = l.send_request(t0, req.clone(), "bob", false).expect("sent");
    assert_eq!(
        l.respond(t0, &key, response(&req, 200, Some("x"))),
        Err(TransactionError::InvalidState)
    );
}

// -------------------------------------------- a pair over a lossy network

/// xorshift64*: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Two layers, "uac" and "uas", wired by a network that drops, duplicates and
/// delays (hence reorders) datagrams.
struct Pair {
    t0: Instant,
    now: Instant,
    uac: Layer,
    uas: Layer,
    /// (delivery time, sequence, to "uac" or "uas", bytes)
    wire: Vec<(Instant, u64, &'static str, Bytes)>,
    seq: u64,
    rng: Rng,
    loss: u64,
    dup: u64,
    dropped: u64,
    duplicated: u64,
}

impl Pair {
    fn new(seed: u64, loss: u64, dup: u64) -> Pair {
        let t0 = Instant::now();
        Pair {
            t0,
            now: t0,
            uac: layer(),
            uas: layer(),
            wire: Vec::new(),
            seq: 0,
            rng: Rng(seed.max(1)),
            loss,
            dup,
            dropped: 0,
            duplicated: 0,
        }
    }

    /// Moves everything both layers want to send onto the wire.
    fn flush(&mut self) {
        let mut out = Vec::new();
        while let Some(t) = self.uac.poll_transmit() {
            out.push(t);
        }
        while let Some(t) = self.uas.poll_transmit() {
            out.push(t);
        }
        for t in out {
            let copies = if self.rng.chance(self.loss) {
                self.dropped += 1;
                0
            } else if self.rng.chance(self.dup) {
                self.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = ms(self.rng.next() % 150);
                self.seq += 1;
                self.wire
                    .push((self.now + delay, self.seq, t.dest, t.data.clone()));
            }
        }
    }

    /// Advances to the next delivery or timer; false when nothing is left.
    fn step(&mut self) -> bool {
        self.flush();
        let next_wire = self.wire.iter().map(|w| (w.0, w.1)).min();
        let next = [
            next_wire.map(|w| w.0),
            self.uac.poll_timeout(),
            self.uas.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = next;
        if let Some(w) = next_wire.filter(|w| w.0 <= next) {
            let i = self
                .wire
                .iter()
                .position(|x| (x.0, x.1) == w)
                .expect("present");
            let (_, _, to, data) = self.wire.remove(i);
            let msg = Message::parse(data).expect("our own output parses");
            match to {
                "uas" => self.uas.handle_message(self.now, msg, "uac", false),
                _ => self.uac.handle_message(self.now, msg, "uas", false),
            }
        }
        self.uac.handle_timeout(self.now);
        self.uas.handle_timeout(self.now);
        true
    }
}

fn ack_for(invite: &Request, ok: &Response) -> Request {
    let mut ack = request_with("ACK", "z9hG4bKack2xx", 1, "");
    ack.set_uri(invite.uri().clone());
    let to = ok
        .headers()
        .get_str(&HeaderName::To)
        .unwrap_or_default()
        .to_owned();
    ack.headers_mut().set(HeaderName::To, to).expect("valid To");
    ack
}

fn invite_call(seed: u64, loss: u64, dup: u64) -> (u64, u64) {
    let mut p = Pair::new(seed, loss, dup);
    let inv = request("INVITE", "z9hG4bKcall");
    let ikey = p
        .uac
        .send_request(p.now, inv.clone(), "uas", false)
        .expect("sent");
    let (mut ringing, mut answered, mut acked, mut acks_sent) = (false, false, false, 0);
    let mut steps = 0;
    while p.step() {
        steps += 1;
        assert!(steps < 100_000, "runaway");
        while let Some(e) = p.uas.poll_event() {
            match e {
                Event::Request { key, request, .. } => {
                    assert_eq!(*request.method(), Method::Invite);
                    p.uas
                        .respond(p.now, &key, response(&request, 180, Some("uas1")))
                        .expect("180");
                    p.uas
                        .respond(p.now, &key, response(&request, 200, Some("uas1")))
                        .expect("200");
                }
                Event::Ack { invite, .. } => acked |= invite.is_some(),
                Event::AckTimeout { .. } | Event::Timeout { .. } => panic!("seed {seed}: {e:?}"),
                _ => {}
            }
        }
        while let Some(e) = p.uac.poll_event() {
            match e {
                Event::Response { key, response } => {
                    assert_eq!(key, ikey);
                    let code = response.status().as_u16();
                    ringing |= code == 180;
                    if code == 200 {
                        answered = true;
                        // The UA ACKs every 2xx (§13.2.2.4).
                        p.uac
                            .send_stateless(p.now, ack_for(&inv, &response).into(), "uas", false);
                        acks_sent += 1;
                    }
                }
                Event::StrayResponse { response, .. } if response.status().is_success() => {
                    p.uac
                        .send_stateless(p.now, ack_for(&inv, &response).into(), "uas", false);
                }
                Event::Timeout { .. } => panic!("seed {seed}: INVITE timed out"),
                _ => {}
            }
        }
    }
    assert!(answered, "seed {seed}: no 200");
    assert!(acked, "seed {seed}: the UAS never matched the ACK");
    assert!(acks_sent >= 1);
    let _ = ringing; // 180 may be lost: it is not retransmitted.
    assert!(p.uac.is_empty() && p.uas.is_empty(), "seed {seed}: leaked");
    assert!(p.now - p.t0 < Duration::from_secs(100));
    (p.dropped, p.duplicated)
}

fn options_exchange(seed: u64, loss: u64, dup: u64) -> (u64, u64) {
    let mut p = Pair::new(seed, loss, dup);
    let req = request("OPTIONS", "z9hG4bKopts");
    let key = p.uac.send_request(p.now, req, "uas", false).expect("sent");
    let (mut finals, mut requests) = (0, 0);
    while p.step() {
        while let Some(e) = p.uas.poll_event() {
            if let Event::Request { key, request, .. } = e {
                requests += 1;
                p.uas
                    .respond(p.now, &key, response(&request, 200, Some("o")))
                    .expect("200");
            }
        }
        while let Some(e) = p.uac.poll_event() {
            match e {
                Event::Response { key: k, response } => {
                    assert_eq!(k, key);
                    assert_eq!(response.status(), StatusCode::OK);
                    finals += 1;
                }
                Event::Timeout { .. } => panic!("seed {seed}: OPTIONS timed out"),
                _ => {}
            }
        }
    }
    assert_eq!(requests, 1, "seed {seed}: the TU sees the request once");
    assert_eq!(finals, 1, "seed {seed}: the TU sees the final once");
    assert!(p.uac.is_empty() && p.uas.is_empty(), "seed {seed}: leaked");
    (p.dropped, p.duplicated)
}

#[test]
fn pair_invite_call_clean_network() {
    assert_eq!(invite_call(1, 0, 0), (0, 0));
}

#[test]
fn pair_invite_call_with_loss_duplication_reordering() {
    let (mut dropped, mut duplicated) = (0, 0);
    for seed in 1..=40 {
        let (d, u) = invite_call(seed * 7919, 25, 20);
        dropped += d;
        duplicated += u;
    }
    // The network really was hostile.
    assert!(dropped > 40 && duplicated > 20, "{dropped} {duplicated}");
}

#[test]
fn pair_non_invite_with_loss_duplication_reordering() {
    assert_eq!(options_exchange(3, 0, 0), (0, 0));
    let (mut dropped, mut duplicated) = (0, 0);
    for seed in 1..=40 {
        let (d, u) = options_exchange(seed * 104_729, 25, 20);
        dropped += d;
        duplicated += u;
    }
    assert!(dropped > 20 && duplicated > 10, "{dropped} {duplicated}");
}

/// Receives an OPTIONS over UDP at each of `times` and answers it 200 at
/// once (each a Timer J 64·T1 later); what that sent and told is discarded.
fn answer_options(l: &mut Layer, times: impl Iterator<Item = Instant>) {
    for (i, at) in times.enumerate() {
        let req = request("OPTIONS", &format!("z9hG4bKopt{i}"));
        let key = incoming(l, at, &req, false);
        l.respond(at, &key, response(&req, 200, Some("t")))
            .expect("respond");
    }
    transmits(l);
    events(l);
}

/// A timer that only ends a finished transaction (Timer J here) fires at its
/// deadline if the layer is woken then, never before; otherwise it wakes the
/// layer a grain after it, with every such timer due by then: one wake-up
/// for many transactions.
#[test]
fn lazy_timers_end_transactions_in_batches() {
    let mut l = layer();
    let t0 = Instant::now();
    // Ten OPTIONS answered 1 ms apart over UDP: ten Timer Js, 1 ms apart.
    answer_options(&mut l, (0..10).map(|i| t0 + ms(i)));
    let j = Duration::from_secs(32);
    assert_eq!(l.poll_timeout(), Some(t0 + j + LAZY_GRAIN));
    l.handle_timeout(t0 + j - ms(1));
    assert!(events(&mut l).is_empty(), "none before its deadline");
    l.handle_timeout(t0 + j);
    assert!(matches!(&events(&mut l)[..], [Event::Terminated { .. }]));
    // The other nine are due within a grain of the next: one wake ends them.
    assert_eq!(l.poll_timeout(), Some(t0 + j + ms(1) + LAZY_GRAIN));
    l.handle_timeout(t0 + j + ms(1) + LAZY_GRAIN);
    assert_eq!(events(&mut l).len(), 9);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

/// Lazy timers due together fire [`LAZY_BATCH`] at a time, and the layer
/// asks to be called again at once for the rest: a backlog of ends does not
/// hold up the messages that arrive meanwhile.
#[test]
fn a_backlog_of_lazy_timers_is_fired_in_slices() {
    let mut l = layer();
    let t0 = Instant::now();
    let n = LAZY_BATCH + LAZY_BATCH / 2;
    answer_options(&mut l, std::iter::repeat_n(t0, n));
    let late = t0 + Duration::from_secs(40);
    l.handle_timeout(late);
    assert_eq!(events(&mut l).len(), LAZY_BATCH);
    // The rest are due now: the layer asks for a call at their deadline.
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    l.handle_timeout(late);
    assert_eq!(events(&mut l).len(), n - LAZY_BATCH);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}
