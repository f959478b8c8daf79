//! Reliable provisional responses (RFC 3262) on the virtual clock: both
//! sides, retransmission, the PRACK's match, a 2xx held for it, and the 500
//! when it never comes.

use super::*;
use crate::message::HeaderName;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// An INVITE with `extra` headers, its call and transaction.
fn incoming(
    net: &mut Net,
    call_id: &str,
    extra: &str,
) -> (CallId, TransactionKey, mpsc::Receiver<ToCall>) {
    let req = invite(call_id, call_id)
        .replace("Max-Forwards: 70\n", &format!("Max-Forwards: 70\n{extra}"));
    net.recv(&req);
    net.take_call()
}

fn prack(call_id: &str, tag: &str, rack: &str, branch: &str) -> String {
    in_dialog("PRACK", 2, call_id, tag, branch).replace(
        "Content-Length: 0\n",
        &format!("RAck: {rack}\nContent-Length: 0\n"),
    )
}

fn rseq(r: &Response) -> u32 {
    header(r, "RSeq").expect("an RSeq").trim().parse().unwrap()
}

#[test]
fn a_required_180_is_retransmitted_until_its_prack() {
    let mut net = Net::new(Config::default());
    let (call, key, _task) = incoming(&mut net, "p1", "Require: 100rel\nSupported: 100rel\n");
    net.command(Command::Reply {
        call: Some(call),
        key: key.clone(),
        reply: Reply::ringing(),
    });
    let first = net.responses();
    assert_eq!(first.len(), 1);
    assert_eq!(header(&first[0], "Require").as_deref(), Some("100rel"));
    let n = rseq(&first[0]);
    assert!((1..1 << 31).contains(&n), "§3: RSeq in 1..2^31-1");
    // T1, then 2·T1 later: the same response again.
    net.advance(Duration::from_millis(500));
    let again = net.responses();
    assert_eq!(again.len(), 1, "retransmitted at T1");
    assert_eq!(rseq(&again[0]), n);
    net.advance(Duration::from_millis(999));
    assert!(net.responses().is_empty(), "not before 2·T1 more");
    net.advance(Duration::from_millis(2));
    assert_eq!(net.responses().len(), 1, "and at 1.5 s");
    let tag = to_tag(&first[0]);
    net.recv(&prack("p1", &tag, &format!("{n} 1 INVITE"), "pr1"));
    assert_eq!(net.codes(), [200], "the PRACK matched");
    net.advance(Duration::from_secs(10));
    assert!(
        net.responses().is_empty(),
        "no retransmission after the PRACK"
    );
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    assert_eq!(net.codes(), [200]);
}

#[test]
fn a_prack_that_matches_nothing_gets_481() {
    let mut net = Net::new(Config::default());
    let (call, key, _task) = incoming(&mut net, "p2", "Require: 100rel\n");
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ringing(),
    });
    let r = net.responses().pop().unwrap();
    let (n, tag) = (rseq(&r), to_tag(&r));
    net.recv(&prack("p2", &tag, &format!("{} 1 INVITE", n + 1), "pr2"));
    assert_eq!(net.codes(), [481], "§3: wrong RSeq");
    net.recv(&prack("p2", &tag, &format!("{n} 7 INVITE"), "pr3"));
    assert_eq!(net.codes(), [481], "wrong CSeq");
    net.recv(&prack("p2", &tag, "garbage", "pr4"));
    assert_eq!(net.codes(), [481], "no usable RAck");
    net.advance(Duration::from_millis(501));
    assert_eq!(net.responses().len(), 1, "still unacknowledged");
}

#[test]
fn early_media_goes_reliably_and_the_2xx_waits_for_its_prack() {
    let mut net = Net::new(Config::default());
    let (call, key, _task) = incoming(&mut net, "p3", "Supported: 100rel, timer\n");
    net.command(Command::Reply {
        call: Some(call),
        key: key.clone(),
        reply: Reply::new(StatusCode::SESSION_PROGRESS).body("application/sdp", SDP),
    });
    let early = net.responses().pop().unwrap();
    assert_eq!(
        header(&early, "Require").as_deref(),
        Some("100rel"),
        "SDP in a 183: reliable"
    );
    let (n, tag) = (rseq(&early), to_tag(&early));
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok().body("application/sdp", SDP),
    });
    assert!(
        net.responses().is_empty(),
        "§3: no 2xx before the PRACK of a provisional with SDP"
    );
    net.recv(&prack("p3", &tag, &format!("{n} 1 INVITE"), "pr5"));
    let rs = net.responses();
    let codes: Vec<u16> = rs.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [200, 200], "the PRACK's 200, then the INVITE's");
    assert_eq!(rs[1].headers().cseq().unwrap().method, Method::Invite);
    net.recv(&in_dialog("ACK", 1, "p3", &tag, "ack3"));
    net.recv(&in_dialog("BYE", 3, "p3", &tag, "bye3"));
}

#[test]
fn a_second_reliable_provisional_waits_for_the_first_prack() {
    let mut net = Net::new(Config::default());
    let (call, key, _task) = incoming(&mut net, "p4", "Require: 100rel\n");
    for code in [180, 182] {
        net.command(Command::Reply {
            call: Some(call),
            key: key.clone(),
            reply: Reply::new(StatusCode::new(code).unwrap()),
        });
    }
    let rs = net.responses();
    assert_eq!(rs.len(), 1, "§3: one unacknowledged at a time");
    let (n, tag) = (rseq(&rs[0]), to_tag(&rs[0]));
    net.recv(&prack("p4", &tag, &format!("{n} 1 INVITE"), "pr6"));
    let rs = net.responses();
    let codes: Vec<u16> = rs.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [200, 182]);
    assert_eq!(rseq(&rs[1]), n + 1, "§3: the next RSeq is one more");
}

#[test]
fn no_prack_in_64_t1_gets_the_invite_a_500() {
    let mut net = Net::new(Config::default());
    let (call, key, mut task) = incoming(&mut net, "p5", "Require: 100rel\n");
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ringing(),
    });
    assert_eq!(net.codes(), [180]);
    net.advance(Duration::from_secs(31));
    let resent = net.codes();
    assert!(
        !resent.is_empty() && resent.iter().all(|c| *c == 180),
        "{resent:?}"
    );
    net.advance(Duration::from_millis(999));
    assert_eq!(net.codes(), [180], "the last retransmission, at 31.5 s");
    net.advance(Duration::from_millis(2));
    assert_eq!(net.codes(), [500], "§3: 5xx after 64·T1");
    assert!(
        std::iter::from_fn(|| task.try_recv().ok()).any(|m| matches!(m, ToCall::Cancelled)),
        "the call's task hears it is over"
    );
}

#[test]
fn what_the_caller_does_not_support_goes_unreliably() {
    let mut net = Net::new(Config::default());
    // Supported only: a 180 without SDP needs no PRACK.
    let (call, key, _t) = incoming(&mut net, "p6", "Supported: 100rel\n");
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ringing(),
    });
    let r = net.responses().pop().unwrap();
    assert_eq!(header(&r, "RSeq"), None);
    // Not supported: a handler's Require: 100rel is not sent (§3).
    let (call, key, _t) = incoming(&mut net, "p7", "");
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::new(StatusCode::SESSION_PROGRESS)
            .header("Require", "100rel")
            .body("application/sdp", SDP),
    });
    let r = net.responses().pop().unwrap();
    assert_eq!(header(&r, "RSeq"), None);
    assert_eq!(header(&r, "Require"), None);
    net.advance(Duration::from_secs(2));
    assert!(net.responses().is_empty(), "nothing retransmitted");
}

#[test]
fn a_required_100rel_is_refused_when_turned_off() {
    let mut net = Net::new(Config {
        prack: false,
        ..Config::default()
    });
    net.recv(
        &invite("p8", "p8").replace("Max-Forwards: 70\n", "Max-Forwards: 70\nRequire: 100rel\n"),
    );
    let r = net.responses().pop().unwrap();
    assert_eq!(r.status().as_u16(), 420);
    assert_eq!(header(&r, "Unsupported").as_deref(), Some("100rel"));
}

/// A 1xx from the callee that asks for PRACK with `rseq`.
fn reliable(invite: &Request, code: u16, rseq: u32) -> String {
    response_to(invite, code, Some("b1")).replace(
        "Content-Length: 0\n",
        &format!("Require: 100rel\nRSeq: {rseq}\nContent-Length: 0\n"),
    )
}

#[test]
fn a_call_we_place_pracks_each_new_reliable_provisional_once() {
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, &format!("sip:bob@{ALICE}"));
    let call = id.try_recv().unwrap().unwrap();
    let invite = net.requests().pop().unwrap();
    assert!(
        header_of(&invite, "Supported").is_some_and(|s| s.contains("100rel")),
        "we offer 100rel"
    );
    net.recv(&reliable(&invite, 180, 7));
    let pr = net.requests();
    assert_eq!(pr.len(), 1);
    assert_eq!(*pr[0].method(), Method::Prack);
    assert_eq!(header_of(&pr[0], "RAck").as_deref(), Some("7 1 INVITE"));
    assert_eq!(
        pr[0].headers().cseq().unwrap().seq,
        2,
        "in the early dialog"
    );
    assert_eq!(to_tag_req(&pr[0]), "b1");
    assert!(matches!(
        events.try_recv().as_deref(),
        Ok(CallEvent::Provisional(_))
    ));
    // The same 180 again (our PRACK crossed it): not processed (§4).
    net.recv(&reliable(&invite, 180, 7));
    assert!(net.requests().is_empty());
    assert!(events.try_recv().is_err());
    // Out of order: skipped too.
    net.recv(&reliable(&invite, 183, 9));
    assert!(net.requests().is_empty());
    net.recv(&reliable(&invite, 183, 8));
    assert_eq!(
        header_of(&net.requests()[0], "RAck").as_deref(),
        Some("8 1 INVITE")
    );
    net.recv(&response_to(&pr[0], 200, Some("b1")));
    net.recv(&response_to(&invite, 200, Some("b1")));
    let _ = net.requests(); // the ACK
    let (reply, _done) = oneshot::channel();
    net.command(Command::InDialog {
        call,
        method: Method::Bye,
        headers: Vec::new(),
        body: None,
        reply: Some(reply),
    });
    let bye = net.requests().pop().unwrap();
    assert_eq!(
        bye.headers().cseq().unwrap().seq,
        4,
        "the confirmed dialog goes on from the PRACKs' CSeq"
    );
}

fn header_of(r: &Request, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn to_tag_req(r: &Request) -> String {
    r.headers().to().and_then(|t| t.tag()).unwrap().to_owned()
}

#[test]
fn a_cancel_before_the_prack_voids_the_held_2xx() {
    let mut net = Net::new(Config::default());
    let (call, key, mut task) = incoming(&mut net, "p9", "Supported: 100rel\n");
    net.command(Command::Reply {
        call: Some(call),
        key: key.clone(),
        reply: Reply::new(StatusCode::SESSION_PROGRESS).body("application/sdp", SDP),
    });
    let _ = net.responses();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok().body("application/sdp", SDP),
    });
    assert!(net.responses().is_empty(), "held for the PRACK");
    let cancel = invite("p9", "p9")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    net.recv(&cancel);
    assert_eq!(net.codes(), [200, 487]);
    net.advance(Duration::from_secs(40));
    assert!(
        net.codes().iter().all(|c| *c == 487),
        "no 2xx and no 180 after the 487"
    );
    assert!(
        std::iter::from_fn(|| task.try_recv().ok()).any(|m| matches!(m, ToCall::Failed)),
        "the answered call's task hears it is over"
    );
}
