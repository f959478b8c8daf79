//! Where requests go, on the virtual clock: NAT, keep-alives, RFC 3263
//! failover, the outbound proxy.

use super::*;

#[test]
fn in_dialog_requests_to_a_phone_behind_nat_follow_its_flow() {
    let mut net = Net::new(Config::default());
    // Its packets come from the NAT's public address; its Contact names its LAN.
    let nat = "203.0.113.5:40001";
    let offer = invite("nat1", "nat1").replace(
        &format!("Contact: <sip:alice@{ALICE}>"),
        "Contact: <sip:alice@10.0.0.5:5060>",
    );
    net.recv_from(nat, &offer);
    let (call, key, _task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    let ok = net.responses();
    assert_eq!(ok.len(), 1);
    net.sent.clear();
    net.command(Command::InDialog {
        call,
        method: Method::Bye,
        headers: Vec::new(),
        body: None,
        reply: None,
    });
    let (to, bye) = net.sent.pop().expect("the BYE");
    assert!(matches!(bye, Message::Request(r) if *r.method() == Method::Bye));
    assert_eq!(to, addr(nat), "to the flow, not to 10.0.0.5");
}

#[test]
fn a_public_contact_is_used_as_it_is() {
    let mut net = Net::new(Config::default());
    let (call, _task, _tag) = answered_call(&mut net, "pub1");
    net.sent.clear();
    net.command(Command::InDialog {
        call,
        method: Method::Bye,
        headers: Vec::new(),
        body: None,
        reply: None,
    });
    let (to, _) = net.sent.pop().expect("the BYE");
    assert_eq!(to, addr(ALICE), "the Contact");
}

#[test]
fn behind_a_nat_the_contact_follows_what_responses_show() {
    let mut net = Net::new(Config::default());
    let (reply, _wait) = oneshot::channel();
    net.command(Command::Send {
        request: register_request("nat-reg", 1),
        reply,
    });
    let first = net.requests().pop().expect("the REGISTER");
    let contact = |r: &Request| {
        String::from_utf8_lossy(
            r.headers()
                .get(&crate::message::HeaderName::Contact)
                .unwrap(),
        )
        .into_owned()
    };
    assert_eq!(
        contact(&first),
        "<sip:bob@192.0.2.1:5060>",
        "0.0.0.0 filled in"
    );
    // The registrar saw us come from a NAT's public address (RFC 3581).
    let ok = response_to(&first, 200, Some("reg"))
        .replace(";rport", ";received=203.0.113.9;rport=40400");
    net.recv(&ok);
    let (reply, _wait) = oneshot::channel();
    net.command(Command::Send {
        request: register_request("nat-reg", 2),
        reply,
    });
    let second = net.requests().pop().expect("the second REGISTER");
    assert_eq!(contact(&second), "<sip:bob@203.0.113.9:40400>");
    // And so does a call's Contact.
    let (_events, _id) = dial(&mut net, &format!("sip:carol@{ALICE}"));
    let invite = net.requests().pop().expect("the INVITE");
    assert!(
        contact(&invite).contains("@203.0.113.9:40400"),
        "{}",
        contact(&invite)
    );
}

#[test]
fn a_keep_alive_goes_on_the_registrars_flow() {
    let mut net = Net::new(Config::default());
    let registrar = crate::message::Uri::parse(&format!("sip:{ALICE}")).unwrap();
    // Nothing registered there yet: nothing to keep alive.
    net.command(Command::KeepAlive {
        registrar: registrar.clone(),
    });
    assert!(net.raw.is_empty());
    let (reply, _wait) = oneshot::channel();
    net.command(Command::Send {
        request: register_request("ka", 1),
        reply,
    });
    net.command(Command::KeepAlive { registrar });
    assert_eq!(
        net.raw,
        [(addr(ALICE), Bytes::from_static(b"\r\n\r\n"))],
        "RFC 5626 §4.4.1: a CRLF pair to the registrar"
    );
}

/// RFC 3263 §4.3: a dial resolved to two destinations; the first never
/// answers, so after Timer B the INVITE goes to the second (a new
/// transaction: new branch, same Call-ID and From tag, CSeq + 1), which
/// answers.
#[test]
fn a_dial_fails_over_to_the_next_destination_after_timer_b() {
    const DOWN: &str = "192.0.2.30:5060";
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, "sip:bob@example.test");
    net.resolve_first(vec![peer_at(DOWN), peer_at(ALICE)], None);
    id.try_recv().unwrap().unwrap();
    let (to, first) = net.sent.pop().expect("the first INVITE");
    assert_eq!(to, addr(DOWN));
    let Message::Request(first) = first else {
        panic!("a request")
    };
    net.advance(Duration::from_millis(31_900));
    assert!(
        net.sent.iter().all(|(to, _)| *to == addr(DOWN)),
        "retransmissions only"
    );
    net.sent.clear();
    net.advance(Duration::from_millis(200));
    assert!(
        events.try_recv().is_err(),
        "no failure while a destination is left"
    );
    let (to, second) = net
        .sent
        .pop()
        .expect("the INVITE to the second destination");
    assert_eq!(to, addr(ALICE));
    let Message::Request(second) = second else {
        panic!("a request")
    };
    let (h1, h2) = (first.headers(), second.headers());
    assert_eq!(*second.method(), Method::Invite);
    assert_ne!(
        h1.top_via().unwrap().branch(),
        h2.top_via().unwrap().branch(),
        "a new transaction"
    );
    assert_eq!(h1.call_id(), h2.call_id());
    assert_eq!(h1.from().unwrap().tag(), h2.from().unwrap().tag());
    assert_eq!(h2.cseq().unwrap().seq, h1.cseq().unwrap().seq + 1);
    net.recv(&response_to(&second, 200, Some("b2")));
    let ev = events.try_recv().unwrap();
    assert!(matches!(*ev, CallEvent::Answered(_)), "{ev:?}");
    let acks = net.requests();
    assert!(acks.iter().any(|r| *r.method() == Method::Ack));
}

/// RFC 3263 §4.3: 503 as the first answer of a destination sends the INVITE
/// to the next; 503 from the last one is the call's answer.
#[test]
fn a_503_fails_over_and_the_last_503_rejects() {
    const BUSY: &str = "192.0.2.31:5060";
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, "sip:bob@example.test");
    net.resolve_first(vec![peer_at(BUSY), peer_at(ALICE)], None);
    id.try_recv().unwrap().unwrap();
    let first = net.requests().pop().unwrap();
    net.recv_from(BUSY, &response_to(&first, 503, Some("x")));
    assert!(events.try_recv().is_err());
    let (to, second) = net.sent.pop().unwrap();
    assert_eq!(to, addr(ALICE));
    let Message::Request(second) = second else {
        panic!("a request")
    };
    assert_eq!(*second.method(), Method::Invite);
    net.recv(&response_to(&second, 503, Some("y")));
    let ev = events.try_recv().unwrap();
    assert!(
        matches!(&*ev, CallEvent::Rejected(r) if r.status().as_u16() == 503),
        "{ev:?}"
    );
}

/// RFC 3261 §8.1.2: a dial through an outbound proxy goes to the proxy with
/// the proxy as a loose-routing Route; the Request-URI stays the callee's.
#[test]
fn a_dial_through_an_outbound_proxy_carries_its_route() {
    const PROXY: &str = "192.0.2.40:5060";
    let mut net = Net::new(Config::default());
    let (events_tx, _events) = mpsc::channel(32);
    let (reply, mut id) = oneshot::channel();
    let spec = DialSpec {
        outbound_proxy: crate::message::Uri::parse(&format!("sip:{PROXY}")).map(Box::new),
        ..DialSpec::new(crate::message::Uri::parse("sip:bob@example.test").unwrap())
    };
    net.command(Command::Dial {
        spec,
        media: None,
        events: EventSender(events_tx),
        reply,
    });
    assert!(
        net.resolves.is_empty(),
        "an IP literal proxy needs no lookup"
    );
    id.try_recv().unwrap().unwrap();
    let (to, invite) = net.sent.pop().unwrap();
    assert_eq!(to, addr(PROXY));
    let Message::Request(invite) = invite else {
        panic!("a request")
    };
    assert_eq!(invite.uri().to_string(), "sip:bob@example.test");
    let route = invite.headers().routes();
    assert_eq!(route.len(), 1);
    assert_eq!(route[0].uri.to_string(), format!("sip:{PROXY};lr"));
}

/// RFC 3263 §4.3: a send error to the first destination (the driver's
/// `TransportError`) fails over at once.
#[test]
fn a_transport_error_fails_over_to_the_next_destination() {
    const BROKEN: &str = "192.0.2.32:5060";
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, "sip:bob@example.test");
    net.resolve_first(vec![peer_at(BROKEN), peer_at(ALICE)], None);
    id.try_recv().unwrap().unwrap();
    assert_eq!(net.sent.pop().unwrap().0, addr(BROKEN));
    let key = net.core.uses.keys().next().cloned().unwrap();
    net.command(Command::TransportError { key });
    assert!(
        events.try_recv().is_err(),
        "not failed: a destination is left"
    );
    let (to, msg) = net
        .sent
        .pop()
        .expect("the INVITE to the second destination");
    assert_eq!(to, addr(ALICE));
    assert!(matches!(msg, Message::Request(r) if *r.method() == Method::Invite));
}

/// RFC 3263 §4.3 for a request outside any dialog: 503 from the first
/// destination, the same request (CSeq + 1, a new Via) to the next, whose
/// answer is the one passed on.
#[test]
fn an_out_of_dialog_request_fails_over_on_503() {
    use crate::message::HeaderName;
    const BUSY: &str = "192.0.2.33:5060";
    let mut net = Net::new(Config::default());
    let mut req = Request::new(
        Method::Options,
        crate::message::Uri::parse("sip:bob@example.test").unwrap(),
    );
    let h = req.headers_mut();
    h.push(HeaderName::MaxForwards, "70").unwrap();
    h.push(HeaderName::From, format!("<sip:parrot@{US}>;tag=o1"))
        .unwrap();
    h.push(HeaderName::To, "<sip:bob@example.test>").unwrap();
    h.push(HeaderName::CallId, "opt1").unwrap();
    h.push(HeaderName::CSeq, "7 OPTIONS").unwrap();
    req.set_body(Bytes::new());
    let (reply, mut wait) = oneshot::channel();
    net.command(Command::Send {
        request: req,
        reply,
    });
    net.resolve_first(vec![peer_at(BUSY), peer_at(ALICE)], None);
    let first = net.requests().pop().unwrap();
    net.recv_from(BUSY, &response_to(&first, 503, Some("x")));
    assert!(wait.try_recv().is_err(), "the 503 is not the answer");
    let (to, second) = net.sent.pop().unwrap();
    assert_eq!(to, addr(ALICE));
    let Message::Request(second) = second else {
        panic!("a request")
    };
    assert_eq!(second.headers().cseq().unwrap().seq, 8);
    assert_eq!(second.headers().vias().len(), 1, "one Via, ours");
    assert_ne!(
        first.headers().top_via().unwrap().branch(),
        second.headers().top_via().unwrap().branch()
    );
    net.recv(&response_to(&second, 200, Some("y")));
    let answer = wait.try_recv().unwrap().unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

/// A multihomed host fails over to a destination it reaches from another
/// address: the INVITE to it offers that address in SDP (a new version),
/// not the first destination's.
#[tokio::test]
async fn a_fail_over_offers_the_address_the_next_destination_is_reached_from() {
    const DOWN: &str = "192.0.2.30:5060";
    const OTHER: &str = "198.51.100.2:5060";
    let first_ip: std::net::IpAddr = addr(US).ip();
    let second_ip: std::net::IpAddr = "198.51.100.1".parse().unwrap();
    let ctx = crate::ua::media::MediaContext {
        ports: Config::default().ports,
        local_ip: std::net::IpAddr::from([0, 0, 0, 0]),
        public_ip: Some(first_ip),
        entropy: crate::entropy::Entropy::seeded(7),
        srtp: crate::ua::media::SrtpPolicy::default(),
        rtcp_mux: true,
        secure: false,
    };
    let offer = crate::ua::media::offer(&ctx, Box::new(crate::media::bridge().0))
        .await
        .unwrap();
    let mut net = Net::new(Config::default());
    let (_events, mut id) = dial(&mut net, "sip:bob@example.test");
    let mut other = peer_at(OTHER);
    other.local.set_ip(second_ip);
    net.resolve_first(vec![peer_at(DOWN), other], Some(offer));
    id.try_recv().unwrap().unwrap();
    let (_, first) = net.sent.pop().expect("the first INVITE");
    let Message::Request(first) = first else {
        panic!("a request")
    };
    let sdp1 = crate::sdp::SessionDescription::parse(first.body()).unwrap();
    let ip = |sdp: &crate::sdp::SessionDescription| sdp.connection.as_ref().and_then(|c| c.ip());
    assert_eq!(ip(&sdp1), Some(first_ip));
    net.sent.clear();
    net.advance(Duration::from_millis(32_100));
    let (to, second) = net
        .sent
        .pop()
        .expect("the INVITE to the second destination");
    assert_eq!(to, addr(OTHER));
    let Message::Request(second) = second else {
        panic!("a request")
    };
    let sdp2 = crate::sdp::SessionDescription::parse(second.body()).unwrap();
    assert_eq!(ip(&sdp2), Some(second_ip), "{sdp2:?}");
    assert_eq!(sdp1.media[0].port, sdp2.media[0].port, "the same RTP port");
    assert_eq!(sdp2.origin.session_version, sdp1.origin.session_version + 1);
}

/// A dial on a registered flow goes to the flow's address with the
/// binding's Contact as its Request-URI, from the address the flow reached.
#[test]
fn a_dial_on_a_flow_goes_where_the_register_came_from() {
    const NAT: &str = "203.0.113.2:40000";
    let mut net = Net::new(Config::default());
    let (events_tx, _events) = mpsc::channel(32);
    let (reply, mut id) = oneshot::channel();
    let mut spec =
        DialSpec::new(crate::message::Uri::parse("sip:carol@198.51.100.2:5060").unwrap());
    spec.flow = Some(Box::new(crate::ua::Flow::from_peer(&peer_at(NAT))));
    net.command(Command::Dial {
        spec,
        media: None,
        events: EventSender(events_tx),
        reply,
    });
    id.try_recv().unwrap().unwrap();
    assert!(net.resolves.is_empty(), "nothing to look up");
    let (to, invite) = net.sent.pop().expect("the INVITE");
    assert_eq!(to, addr(NAT));
    let Message::Request(invite) = invite else {
        panic!("a request")
    };
    assert_eq!(invite.uri().to_string(), "sip:carol@198.51.100.2:5060");
    assert!(
        invite
            .headers()
            .top_via()
            .unwrap()
            .to_string()
            .contains(&addr(US).ip().to_string())
    );
}
