//! Session timers (RFC 4028) on the virtual clock: who refreshes, when, and
//! the hangup when no refresh comes.

use super::*;
use crate::message::HeaderName;

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// An INVITE with `extra` headers, answered 200 (with an SDP body) and
/// acknowledged: the 200, the call's task, our tag.
fn answered_with(
    net: &mut Net,
    call_id: &str,
    extra: &str,
) -> (Response, mpsc::Receiver<ToCall>, String, CallId) {
    let req = invite(call_id, call_id)
        .replace("Max-Forwards: 70\n", &format!("Max-Forwards: 70\n{extra}"));
    net.recv(&req);
    let (call, key, mut task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok().body("application/sdp", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"),
    });
    let ok = net.responses().pop().expect("the 200");
    let tag = to_tag(&ok);
    net.recv(&in_dialog("ACK", 1, call_id, &tag, "ack"));
    assert!(matches!(task.try_recv(), Ok(ToCall::Ack(_))));
    (ok, task, tag, call)
}

#[test]
fn a_caller_that_refreshes_is_hung_up_when_it_stops() {
    let mut net = Net::new(Config::default());
    let (ok, mut task, tag, call) = answered_with(
        &mut net,
        "st1",
        "Supported: timer\nSession-Expires: 90;refresher=uac\n",
    );
    assert_eq!(
        header(&ok, "Session-Expires").as_deref(),
        Some("90;refresher=uac")
    );
    assert_eq!(header(&ok, "Require").as_deref(), Some("timer"), "§9");
    // A refresh at 40 s restarts the interval.
    net.advance(Duration::from_secs(40));
    net.recv(&in_dialog("INVITE", 2, "st1", &tag, "refresh"));
    let Ok(ToCall::Request(re)) = task.try_recv() else {
        panic!("the refresh goes to the call's task");
    };
    let (key, _) = *re;
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    let refreshed = net.responses().pop().unwrap();
    assert_eq!(
        header(&refreshed, "Session-Expires").as_deref(),
        Some("90;refresher=uac")
    );
    net.recv(&in_dialog("ACK", 2, "st1", &tag, "ack2"));
    // 90 - min(32, 30) = 60 s after the refresh, not before.
    net.advance(Duration::from_secs(59));
    assert!(
        net.requests().iter().all(|r| *r.method() != Method::Bye),
        "not yet"
    );
    net.advance(Duration::from_secs(2));
    let sent = net.requests();
    assert!(
        sent.iter().any(|r| *r.method() == Method::Bye),
        "BYE at the deadline: {sent:?}"
    );
    assert!(
        std::iter::from_fn(|| task.try_recv().ok()).any(|m| matches!(m, ToCall::Expired)),
        "the call's task hears why"
    );
}

#[test]
fn a_caller_without_timers_is_refreshed_by_us() {
    let mut net = Net::new(Config::default());
    let (ok, _task, _tag, _) = answered_with(&mut net, "st2", "");
    assert_eq!(
        header(&ok, "Session-Expires").as_deref(),
        Some("1800;refresher=uas")
    );
    assert_eq!(
        header(&ok, "Require"),
        None,
        "nothing asked of a caller without timers"
    );
    net.advance(Duration::from_secs(899));
    assert!(net.requests().is_empty());
    net.advance(Duration::from_secs(2));
    let refresh = net.requests();
    let branches: std::collections::HashSet<String> = refresh
        .iter()
        .map(|r| {
            r.headers()
                .top_via()
                .unwrap()
                .branch()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        branches.len(),
        1,
        "one refresh (and its retransmissions): {refresh:?}"
    );
    assert_eq!(*refresh[0].method(), Method::Invite);
    assert_eq!(
        refresh[0].body().as_ref(),
        ok.body().as_ref(),
        "the refresh re-offers the SDP we sent, unchanged"
    );
    assert!(
        header_req(&refresh[0], "Session-Expires").is_some_and(|v| v.contains("refresher=uac"))
    );
    // Answered: ACKed, and the next refresh half an interval later.
    net.recv(&response_to(&refresh[0], 200, None));
    assert!(net.requests().iter().any(|r| *r.method() == Method::Ack));
    net.advance(Duration::from_secs(901));
    assert!(net.requests().iter().any(|r| *r.method() == Method::Invite));
}

#[test]
fn a_refresh_answered_481_ends_the_call() {
    let mut net = Net::new(Config::default());
    let (_ok, mut task, _tag, _) = answered_with(&mut net, "st3", "");
    net.advance(Duration::from_secs(901));
    let refresh = net.requests().pop().unwrap();
    net.recv(&response_to(&refresh, 481, None));
    assert!(
        std::iter::from_fn(|| task.try_recv().ok()).any(|m| matches!(m, ToCall::HungUp)),
        "the peer forgot the call: it ends (RFC 3261 §12.2.1.2)"
    );
}

#[test]
fn too_brief_an_interval_gets_422_with_min_se() {
    let mut net = Net::new(Config::default());
    let req = invite("st4", "st4").replace(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nSession-Expires: 30\n",
    );
    net.recv(&req);
    let rs = net.responses();
    assert_eq!(rs[0].status().as_u16(), 422);
    assert_eq!(header(&rs[0], "Min-SE").as_deref(), Some("90"));
    assert!(net.spawned.is_empty());
}

#[test]
fn our_invite_asks_for_timers_and_retries_a_422() {
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, &format!("sip:bob@{ALICE}"));
    id.try_recv().unwrap().unwrap();
    let first = net.requests().pop().unwrap();
    assert_eq!(
        header_req(&first, "Session-Expires").as_deref(),
        Some("1800")
    );
    assert!(header_req(&first, "Supported").is_some_and(|v| v.contains("timer")));
    let too_brief = response_to(&first, 422, Some("b1"))
        .replace("Content-Length: 0", "Min-SE: 3600\nContent-Length: 0");
    net.recv(&too_brief);
    let second = net
        .requests()
        .into_iter()
        .find(|r| *r.method() == Method::Invite)
        .expect("the INVITE again");
    assert_eq!(
        header_req(&second, "Session-Expires").as_deref(),
        Some("3600")
    );
    assert_eq!(
        second.headers().cseq().unwrap().seq,
        first.headers().cseq().unwrap().seq + 1
    );
    let ok = response_to(&second, 200, Some("b2")).replace(
        "Content-Length: 0",
        "Session-Expires: 3600;refresher=uac\nContent-Length: 0",
    );
    net.recv(&ok);
    assert!(
        events
            .try_recv()
            .is_ok_and(|e| matches!(*e, CallEvent::Answered(_)))
    );
    net.requests();
    // We are the refresher: a re-INVITE at half the interval.
    net.advance(Duration::from_secs(1801));
    assert!(net.requests().iter().any(|r| *r.method() == Method::Invite));
}

fn header_req(r: &Request, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A call answered without SDP (no audio) is refreshed without an offer; an
/// offer in the refresh's 2xx is answered in the ACK, refusing every stream
/// (RFC 3261 §13.2.2.4 wants an answer there).
#[test]
fn a_refresh_without_media_answers_an_offer_in_its_2xx_by_refusing_it() {
    let mut net = Net::new(Config::default());
    net.recv(&invite("st5", "st5"));
    let (call, key, _task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    let ok = net.responses().pop().unwrap();
    let tag = to_tag(&ok);
    net.recv(&in_dialog("ACK", 1, "st5", &tag, "ack"));
    net.advance(Duration::from_secs(901));
    let refresh = net.requests().pop().expect("the refresh");
    assert!(refresh.body().is_empty(), "no SDP of ours to re-offer");
    // The harness turns every \n into \r\n: the length counts both.
    let offer =
        "v=0\no=- 9 9 IN IP4 192.0.2.20\ns=-\nc=IN IP4 192.0.2.20\nt=0 0\nm=audio 5000 RTP/AVP 0\n";
    let with_offer = response_to(&refresh, 200, None).replace(
        "Content-Length: 0\n\n",
        &format!(
            "Content-Type: application/sdp\nContent-Length: {}\n\n{offer}",
            offer.len() + offer.matches('\n').count()
        ),
    );
    net.recv(&with_offer);
    let ack = net
        .requests()
        .into_iter()
        .find(|r| *r.method() == Method::Ack)
        .expect("the ACK");
    let answer = crate::sdp::SessionDescription::parse(ack.body())
        .unwrap_or_else(|e| panic!("{e:?}: {ack:?}"));
    assert_eq!(answer.media.len(), 1);
    assert_eq!(answer.media[0].port, 0, "the stream refused");
}
