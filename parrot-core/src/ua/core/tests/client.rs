//! Calls we place, on the virtual clock.

use super::*;

#[test]
fn a_dial_rings_is_answered_acknowledged_and_hung_up() {
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, &format!("sip:bob@{ALICE}"));
    let call = id.try_recv().unwrap().unwrap();
    let invite = net.requests().pop().expect("the INVITE");
    assert_eq!(*invite.method(), Method::Invite);
    net.recv(&response_to(&invite, 180, Some("b1")));
    assert!(matches!(
        events.try_recv().as_deref(),
        Ok(CallEvent::Provisional(_))
    ));
    net.recv(&response_to(&invite, 200, Some("b1")));
    assert!(matches!(
        events.try_recv().as_deref(),
        Ok(CallEvent::Answered(_))
    ));
    let ack = net.requests();
    assert_eq!(ack.len(), 1);
    assert_eq!(*ack[0].method(), Method::Ack);
    // A retransmitted 2xx gets the same ACK again (§13.2.2.4).
    net.recv(&response_to(&invite, 200, Some("b1")));
    assert_eq!(net.requests().len(), 1);
    let (reply, mut hung_up) = oneshot::channel();
    net.command(Command::InDialog {
        call,
        method: Method::Bye,
        headers: Vec::new(),
        body: None,
        reply: Some(reply),
    });
    let bye = net.requests().pop().unwrap();
    assert_eq!(*bye.method(), Method::Bye);
    net.recv(&response_to(&bye, 200, None));
    assert_eq!(
        hung_up.try_recv().unwrap().unwrap().status(),
        StatusCode::OK
    );
    assert!(matches!(events.try_recv().as_deref(), Ok(CallEvent::Ended)));
    assert_eq!(net.core.stats().calls, 0);
}

#[test]
fn a_cancel_waits_for_the_first_provisional() {
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, &format!("sip:bob@{ALICE}"));
    let call = id.try_recv().unwrap().unwrap();
    let invite = net.requests().pop().unwrap();
    net.command(Command::Cancel { call });
    assert!(
        net.requests().is_empty(),
        "§9.1: no CANCEL before a provisional"
    );
    net.recv(&response_to(&invite, 180, Some("b2")));
    let cancel = net.requests();
    assert_eq!(cancel.len(), 1);
    assert_eq!(*cancel[0].method(), Method::Cancel);
    net.recv(&response_to(&cancel[0], 200, Some("b2")));
    net.recv(&response_to(&invite, 487, Some("b2")));
    let mut last = None;
    while let Ok(ev) = events.try_recv() {
        last = Some(ev);
    }
    let Some(ev) = last else { panic!("events") };
    let CallEvent::Rejected(r) = *ev else {
        panic!("expected the 487, got {ev:?}");
    };
    assert_eq!(r.status().as_u16(), 487);
}

#[test]
fn a_dial_without_any_response_fails_after_timer_b() {
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, &format!("sip:bob@{ALICE}"));
    id.try_recv().unwrap().unwrap();
    net.advance(Duration::from_millis(31_900));
    assert!(events.try_recv().is_err());
    net.advance(Duration::from_millis(200));
    let ev = events.try_recv().unwrap();
    assert!(
        matches!(*ev, CallEvent::Failed(UaError::Timeout)),
        "Timer B: {ev:?}"
    );
}

#[test]
fn a_lookup_that_never_answers_fails_its_dial_only() {
    let mut net = Net::new(Config::default());
    let (_events, mut id) = dial(&mut net, "sip:bob@never.invalid");
    assert_eq!(
        net.resolves.len(),
        1,
        "the driver is asked to look the name up"
    );
    assert!(id.try_recv().is_err(), "the dial waits for the lookup");
    // Meanwhile the endpoint goes on answering calls.
    let (call, _task, _tag) = answered_call(&mut net, "meanwhile");
    let _ = call;
    net.advance(Duration::from_secs(33));
    assert!(matches!(id.try_recv(), Ok(Err(UaError::Timeout))));
    // A late answer from the resolver is ignored.
    net.sent.clear();
    let query = net.resolves[0];
    net.command(Command::Resolved {
        query,
        result: Box::new(Err(UaError::Unroutable("late".into()))),
    });
    assert!(net.sent.is_empty());
}

#[test]
fn a_resolved_dial_goes_to_the_address_found() {
    let mut net = Net::new(Config::default());
    let (_events, mut id) = dial(&mut net, "sip:bob@example.test");
    net.resolve_first(vec![peer_at(ALICE)], None);
    assert!(id.try_recv().unwrap().is_ok());
    let (to, msg) = net.sent.pop().expect("the INVITE");
    assert_eq!(to, addr(ALICE));
    assert!(matches!(msg, Message::Request(r) if *r.method() == Method::Invite));
}

#[test]
fn a_transport_error_is_reported_as_such() {
    let mut net = Net::new(Config::default());
    let (mut events, mut id) = dial(&mut net, &format!("sip:bob@{ALICE}"));
    id.try_recv().unwrap().unwrap();
    let key = net
        .core
        .uses
        .keys()
        .next()
        .cloned()
        .expect("the INVITE's transaction");
    net.command(Command::TransportError { key });
    let ev = events.try_recv().unwrap();
    assert!(
        matches!(*ev, CallEvent::Failed(UaError::SendFailed)),
        "not a timeout: {ev:?}"
    );
}

#[test]
fn shutdown_refuses_new_calls_and_hangs_up_the_others() {
    let mut net = Net::new(Config::default());
    let (_call, _task, tag) = answered_call(&mut net, "s1");
    net.recv(&in_dialog("ACK", 1, "s1", &tag, "a"));
    let (done, _wait) = oneshot::channel();
    net.command(Command::Shutdown {
        grace: Duration::from_secs(2),
        done,
    });
    let byes = net.requests();
    assert_eq!(byes.len(), 1);
    assert_eq!(*byes[0].method(), Method::Bye);
    net.recv(&invite("s2", "s2"));
    let codes = net.codes();
    assert_eq!(codes.last(), Some(&503));
    assert!(!net.core.is_done(net.now));
    net.advance(Duration::from_secs(3));
    assert!(net.core.is_done(net.now));
}

#[test]
fn a_seeded_core_replays_byte_for_byte() {
    let run = |seed: u64| {
        let config = Config {
            entropy: crate::entropy::Entropy::seeded(seed),
            ..Config::default()
        };
        let mut net = Net::new(config);
        let (call, _task, tag) = answered_call(&mut net, "replay");
        net.recv(&in_dialog("ACK", 1, "replay", &tag, "ack"));
        let (_events, _id) = dial(&mut net, &format!("sip:carol@{ALICE}"));
        net.command(Command::InDialog {
            call,
            method: Method::Bye,
            headers: Vec::new(),
            body: None,
            reply: None,
        });
        net.advance(Duration::from_secs(2));
        net.take_sent()
            .into_iter()
            .map(|m| m.to_bytes())
            .collect::<Vec<_>>()
    };
    let first = run(7);
    assert!(first.len() >= 4, "responses, the INVITE and the BYE");
    assert_eq!(first, run(7), "same seed, same bytes");
    assert_ne!(first, run(8), "another seed, other tags and branches");
}
