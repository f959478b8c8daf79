//! Transfers on the virtual clock: our REFER and its NOTIFYs, a REFER
//! accepted with or without a subscription (RFC 4488), and an INVITE with
//! Replaces (RFC 3891).

use super::*;
use crate::message::HeaderName;

fn header(r: &Request, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn rheader(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A NOTIFY of the refer package from the peer of UAS call `call_id`.
fn notify(call_id: &str, tag: &str, cseq: u32, status: &str, state: &str) -> String {
    let body = format!("SIP/2.0 {status}\r\n");
    in_dialog("NOTIFY", cseq, call_id, tag, &format!("n{cseq}")).replace(
        "Content-Length: 0\n",
        &format!(
            "Event: refer\nSubscription-State: {state}\nContent-Type: message/sipfrag;version=2.0\nContent-Length: {}\n\n{body}",
            body.len()
        ),
    )
}

#[test]
fn our_transfer_ends_with_the_final_status_the_notifys_report() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "t1");
    net.recv(&in_dialog("ACK", 1, "t1", &tag, "ack"));
    let (reply, mut outcome) = oneshot::channel();
    net.command(Command::Transfer {
        call,
        refer_to: "<sip:carol@192.0.2.9>".into(),
        subscribe: true,
        reply,
    });
    let refer = net.requests().pop().expect("the REFER");
    assert_eq!(*refer.method(), Method::Refer);
    assert_eq!(
        header(&refer, "Refer-To").as_deref(),
        Some("<sip:carol@192.0.2.9>")
    );
    net.recv(&response_to(&refer, 202, None));
    assert!(outcome.try_recv().is_err(), "the 202 is not the outcome");
    net.recv(&notify("t1", &tag, 2, "100 Trying", "active;expires=60"));
    assert_eq!(net.codes(), [200]);
    assert!(outcome.try_recv().is_err());
    net.recv(&notify(
        "t1",
        &tag,
        3,
        "200 OK",
        "terminated;reason=noresource",
    ));
    assert_eq!(net.codes(), [200]);
    assert_eq!(outcome.try_recv().unwrap().unwrap().as_u16(), 200);
    // The NOTIFYs were the core's: the call's task saw none.
    while let Ok(m) = task.try_recv() {
        assert!(
            !matches!(m, ToCall::Request(_)),
            "a NOTIFY reached the task"
        );
    }
}

#[test]
fn a_refused_refer_is_the_outcome() {
    let mut net = Net::new(Config::default());
    let (call, _task, _tag) = answered_call(&mut net, "t2");
    let (reply, mut outcome) = oneshot::channel();
    net.command(Command::Transfer {
        call,
        refer_to: "<sip:carol@192.0.2.9>".into(),
        subscribe: false,
        reply,
    });
    let refer = net.requests().pop().unwrap();
    assert_eq!(
        header(&refer, "Refer-Sub").as_deref(),
        Some("false"),
        "RFC 4488"
    );
    net.recv(&response_to(&refer, 603, None));
    assert!(matches!(
        outcome.try_recv().unwrap(),
        Err(UaError::Rejected(s)) if s.as_u16() == 603
    ));
}

#[test]
fn refer_sub_false_granted_ends_the_transfer_at_the_2xx() {
    let mut net = Net::new(Config::default());
    let (call, _task, _tag) = answered_call(&mut net, "t3");
    let (reply, mut outcome) = oneshot::channel();
    net.command(Command::Transfer {
        call,
        refer_to: "<sip:carol@192.0.2.9>".into(),
        subscribe: false,
        reply,
    });
    let refer = net.requests().pop().unwrap();
    net.recv(&response_to(&refer, 202, None).replace(
        "Content-Length: 0\n",
        "Refer-Sub: false\nContent-Length: 0\n",
    ));
    assert_eq!(outcome.try_recv().unwrap().unwrap().as_u16(), 202);
}

/// A REFER from the peer of UAS call `call_id`, with `extra` headers.
fn refer_from_peer(call_id: &str, tag: &str, extra: &str) -> String {
    in_dialog("REFER", 2, call_id, tag, "rf").replace(
        "Content-Length: 0\n",
        &format!("Refer-To: <sip:dave@192.0.2.30>\n{extra}Content-Length: 0\n"),
    )
}

#[test]
fn a_refer_the_handler_accepts_starts_the_subscription() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "t4");
    net.recv(&refer_from_peer("t4", &tag, ""));
    let Ok(ToCall::Request(d)) = task.try_recv() else {
        panic!("the REFER goes to the handler");
    };
    let (key, _) = *d;
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::new(StatusCode::ACCEPTED),
    });
    let sent = net.take_sent();
    let Some(Message::Response(ok)) = sent.first() else {
        panic!("the 202 first: {sent:?}");
    };
    assert_eq!(ok.status().as_u16(), 202);
    let Some(Message::Request(n)) = sent.get(1) else {
        panic!("then the NOTIFY: {sent:?}");
    };
    assert_eq!(*n.method(), Method::Notify);
    assert_eq!(header(n, "Event").as_deref(), Some("refer"));
    assert_eq!(n.body().as_ref(), b"SIP/2.0 100 Trying\r\n");
    // The progress the application reports, until a final one.
    let (reply, _r) = oneshot::channel();
    net.command(Command::TransferProgress {
        call,
        status: StatusCode::OK,
        reply,
    });
    let last = net.requests().pop().unwrap();
    assert!(
        header(&last, "Subscription-State")
            .unwrap()
            .starts_with("terminated")
    );
    let (reply, mut r) = oneshot::channel();
    net.command(Command::TransferProgress {
        call,
        status: StatusCode::OK,
        reply,
    });
    assert!(net.requests().is_empty(), "the subscription is over");
    assert!(matches!(r.try_recv(), Ok(Err(UaError::InvalidState(_)))));
}

#[test]
fn refer_sub_false_is_granted_without_a_notify() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "t5");
    net.recv(&refer_from_peer("t5", &tag, "Refer-Sub: false\n"));
    let Ok(ToCall::Request(d)) = task.try_recv() else {
        panic!("the REFER goes to the handler");
    };
    let (key, _) = *d;
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::new(StatusCode::ACCEPTED),
    });
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(
        rheader(&rs[0], "Refer-Sub").as_deref(),
        Some("false"),
        "RFC 4488 §4"
    );
    assert!(net.requests().is_empty(), "no NOTIFY");
}

fn with_replaces(call_id: &str, replaces: &str) -> String {
    invite(call_id, call_id).replace(
        "Max-Forwards: 70\n",
        &format!("Max-Forwards: 70\nReplaces: {replaces}\n"),
    )
}

#[test]
fn an_invite_with_replaces_takes_the_place_of_a_confirmed_call() {
    let mut net = Net::new(Config::default());
    let (_old, mut old_task, tag) = answered_call(&mut net, "old1");
    net.recv(&in_dialog("ACK", 1, "old1", &tag, "ack"));
    // Tags as we see the dialog: ours is the to-tag.
    net.recv(&with_replaces(
        "new1",
        &format!("old1;to-tag={tag};from-tag=a1"),
    ));
    let (call, key, _task) = net.take_call();
    assert!(net.requests().is_empty(), "nothing ends before the answer");
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    let sent = net.take_sent();
    let bye = sent.iter().find_map(|m| match m {
        Message::Request(r) if *r.method() == Method::Bye => Some(r.clone()),
        _ => None,
    });
    let bye = bye.expect("the replaced call gets BYE");
    assert_eq!(bye.headers().call_id().unwrap().as_str(), "old1");
    assert!(
        std::iter::from_fn(|| old_task.try_recv().ok()).any(|m| matches!(m, ToCall::Replaced)),
        "the old call's task hears why"
    );
}

#[test]
fn a_replaces_that_matches_nothing_usable_is_refused() {
    let mut net = Net::new(Config::default());
    let (_c, _t, tag) = answered_call(&mut net, "old2");
    net.recv(&with_replaces("n2", "nosuch;to-tag=x;from-tag=y"));
    assert_eq!(net.codes(), [481], "§3: no such dialog");
    net.recv(&with_replaces(
        "n3",
        &format!("old2;to-tag=a1;from-tag={tag}"),
    ));
    assert_eq!(net.codes(), [481], "tags the wrong way round");
    net.recv(&with_replaces(
        "n4",
        &format!("old2;to-tag={tag};from-tag=a1;early-only"),
    ));
    assert_eq!(net.codes(), [486], "§3: early-only, and the call is up");
    net.recv(&with_replaces("n5", "old2;to-tag=1"));
    assert_eq!(net.codes(), [400]);
}
