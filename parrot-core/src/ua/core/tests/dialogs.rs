//! One INVITE at a time in a dialog (RFC 3261 §14), early dialogs, merged
//! requests (§8.2.2.2), and finals the core sends itself to an INVITE.

use super::*;

/// Rings a new call: its handle, task, INVITE transaction and our tag.
fn ringing_call(
    net: &mut Net,
    call_id: &str,
) -> (CallId, TransactionKey, mpsc::Receiver<ToCall>, String) {
    net.recv(&invite(call_id, call_id));
    let (call, key, task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key: key.clone(),
        reply: Reply::ringing(),
    });
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status().as_u16(), 180);
    (call, key, task, to_tag(&rs[0]))
}

#[test]
fn an_invite_in_the_early_dialog_gets_500_with_retry_after() {
    let mut net = Net::new(Config::default());
    let (_call, _key, _task, tag) = ringing_call(&mut net, "e1");
    net.recv(&in_dialog("INVITE", 2, "e1", &tag, "e1b"));
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(
        rs[0].status().as_u16(),
        500,
        "not 481: the dialog exists (§14.2)"
    );
    assert!(retry_after(&rs[0]) <= 10);
    assert_eq!(net.spawned.len(), 0, "no second call");
}

#[test]
fn a_bye_in_the_early_dialog_ends_the_ringing_call() {
    let mut net = Net::new(Config::default());
    let (call, key, mut task, tag) = ringing_call(&mut net, "e2");
    net.recv(&in_dialog("BYE", 2, "e2", &tag, "e2b"));
    let got: Vec<(u16, Method)> = net
        .responses()
        .iter()
        .map(|r| {
            (
                r.status().as_u16(),
                r.headers().cseq().unwrap().method.clone(),
            )
        })
        .collect();
    assert_eq!(got, [(200, Method::Bye), (487, Method::Invite)]);
    assert!(matches!(task.try_recv(), Ok(ToCall::Cancelled)));
    // The handler's late answer goes nowhere; the early dialog is gone.
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    assert_eq!(net.codes(), Vec::<u16>::new());
    net.recv(&in_dialog("BYE", 3, "e2", &tag, "e2c"));
    assert_eq!(net.codes(), [481]);
}

#[test]
fn a_second_reinvite_before_the_first_is_answered_gets_500() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "r2");
    net.recv(&in_dialog("ACK", 1, "r2", &tag, "ack"));
    let _ = task.try_recv();
    net.recv(&in_dialog("INVITE", 2, "r2", &tag, "re1"));
    let Ok(ToCall::Request(first)) = task.try_recv() else {
        panic!("the first re-INVITE goes to the task");
    };
    net.recv(&in_dialog("INVITE", 3, "r2", &tag, "re2"));
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status().as_u16(), 500);
    assert!(retry_after(&rs[0]) <= 10);
    assert!(task.try_recv().is_err(), "the second is not delivered");
    // Once the first is answered, the next is taken.
    let (key, _) = *first;
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    assert_eq!(net.codes(), [200]);
    net.recv(&in_dialog("INVITE", 4, "r2", &tag, "re3"));
    assert!(matches!(task.try_recv(), Ok(ToCall::Request(_))));
}

#[test]
fn a_reinvite_while_ours_is_pending_gets_491() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "g1");
    net.recv(&in_dialog("ACK", 1, "g1", &tag, "ack"));
    let _ = task.try_recv();
    net.command(Command::InDialog {
        call,
        method: Method::Invite,
        headers: Vec::new(),
        body: None,
        reply: None,
    });
    let ours = net.requests();
    assert_eq!(ours.len(), 1);
    assert_eq!(*ours[0].method(), Method::Invite);
    net.recv(&in_dialog("INVITE", 2, "g1", &tag, "glare"));
    assert_eq!(net.codes(), [491], "glare (§14.2)");
    assert!(task.try_recv().is_err());
    // Our re-INVITE answered: theirs is welcome again.
    net.recv(&response_to(&ours[0], 200, Some("a1")));
    net.recv(&in_dialog("INVITE", 3, "g1", &tag, "after"));
    assert!(matches!(task.try_recv(), Ok(ToCall::Request(_))));
}

#[test]
fn a_merged_request_gets_482_and_starts_no_second_call() {
    let mut net = Net::new(Config::default());
    net.recv(&invite("m1", "path1"));
    assert_eq!(net.spawned.len(), 1);
    // The same INVITE forked back to us on another path: another branch.
    net.recv(&invite("m1", "path2"));
    assert_eq!(net.codes(), [482]);
    assert_eq!(net.spawned.len(), 1, "no second call");
    // A third path: still the first's copy.
    net.recv(&invite("m1", "path3"));
    assert_eq!(net.codes(), [482]);
    // A retransmission of the first is the transaction's business, not 482.
    net.recv(&invite("m1", "path1"));
    assert!(!net.codes().contains(&482));
}

#[test]
fn a_420_to_an_invite_over_udp_is_retransmitted_until_the_ack() {
    let mut net = Net::new(Config::default());
    let req = invite("x1", "x1").replace("Max-Forwards: 70\n", "Max-Forwards: 70\nRequire: foo\n");
    net.recv(&req);
    assert_eq!(net.codes(), [420]);
    assert!(net.spawned.is_empty());
    // Timer G: the final response again after T1, 2·T1, …
    net.advance(Duration::from_millis(1600));
    let again = net.codes();
    assert!(
        again.len() >= 2 && again.iter().all(|c| *c == 420),
        "{again:?}"
    );
    let ack = invite("x1", "x1")
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:bob@192.0.2.1:5060>",
            &format!("To: <sip:bob@{US}>;tag=t"),
        );
    net.recv(&ack);
    net.advance(Duration::from_secs(10));
    assert_eq!(net.codes(), Vec::<u16>::new(), "the ACK stops them");
}

#[test]
fn options_lists_info_among_what_is_allowed() {
    let mut net = Net::new(Config::default());
    let options = invite("o1", "o1")
        .replacen("INVITE sip", "OPTIONS sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    net.recv(&options);
    let Some(Spawn::Request { key, .. }) = net.spawned.pop() else {
        panic!("OPTIONS goes to a handler");
    };
    net.command(Command::Reply {
        call: None,
        key,
        reply: Reply::ok(),
    });
    let rs = net.responses();
    let allow = rs[0]
        .headers()
        .get(&crate::message::HeaderName::Allow)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    assert!(allow.contains("INFO"), "{allow}");
    assert!(!allow.contains("MESSAGE"), "{allow}");
}

#[test]
fn an_update_in_the_early_dialog_refreshes_or_is_refused_with_an_offer() {
    let mut net = Net::new(Config::default());
    let (_call, _key, _task, tag) = ringing_call(&mut net, "u1");
    net.recv(&in_dialog("UPDATE", 2, "u1", &tag, "u1a"));
    assert_eq!(net.codes(), [200], "no offer: a refresh (RFC 3311 §5.2)");
    let offer = in_dialog("UPDATE", 3, "u1", &tag, "u1b").replace(
        "Content-Length: 0\n",
        "Content-Type: application/sdp\nContent-Length: 4\n\nv=0\n",
    );
    net.recv(&offer);
    assert_eq!(
        net.codes(),
        [488],
        "no offer/answer before the answer without PRACK"
    );
}
