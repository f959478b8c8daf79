//! Message waiting indication (RFC 3842 over RFC 6665) served by the
//! registrar, on the virtual clock.

use super::*;
use crate::message::HeaderName;
use crate::ua::Mailbox;

fn header(r: &Request, name: &str) -> Option<String> {
    r.headers()
        .get(&HeaderName::from(name))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn subscribe(call_id: &str, extra: &str) -> String {
    format!(
        "SUBSCRIBE sip:alice@{US} SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bK{call_id}\n\
         Max-Forwards: 70\n\
         From: <sip:alice@{US}>;tag=s1\n\
         To: <sip:alice@{US}>\n\
         Call-ID: {call_id}\n\
         CSeq: 1 SUBSCRIBE\n\
         Contact: <sip:alice@{ALICE}>\n\
         {extra}Content-Length: 0\n\n"
    )
}

fn refresh(call_id: &str, tag: &str, cseq: u32, expires: u32) -> String {
    format!(
        "SUBSCRIBE sip:alice@{US} SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bK{call_id}r{cseq}\n\
         Max-Forwards: 70\n\
         From: <sip:alice@{US}>;tag=s1\n\
         To: <sip:alice@{US}>;tag={tag}\n\
         Call-ID: {call_id}\n\
         CSeq: {cseq} SUBSCRIBE\n\
         Contact: <sip:alice@{ALICE}>\n\
         Event: message-summary\n\
         Expires: {expires}\n\
         Content-Length: 0\n\n"
    )
}

fn with_registrar() -> (Net, Registrar) {
    let registrar = Registrar::new();
    let net = Net::new(Config {
        registrar: Some(registrar.clone()),
        ..Config::default()
    });
    (net, registrar)
}

/// Subscribes for 600 s: the 200 and our tag, and the first NOTIFY.
fn subscribed(net: &mut Net, call_id: &str) -> (String, Request) {
    net.recv(&subscribe(
        call_id,
        "Event: message-summary\nExpires: 600\n",
    ));
    let sent = net.take_sent();
    let Some(Message::Response(ok)) = sent.first() else {
        panic!("the 200 first: {sent:?}");
    };
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers().expires().unwrap(), Some(600));
    let Some(Message::Request(n)) = sent.get(1) else {
        panic!("then a NOTIFY: {sent:?}");
    };
    (to_tag(ok), n.clone())
}

#[test]
fn a_subscriber_hears_its_mailbox_now_and_when_it_changes() {
    let (mut net, registrar) = with_registrar();
    let (tag, first) = subscribed(&mut net, "m1");
    assert_eq!(*first.method(), Method::Notify);
    assert_eq!(header(&first, "Event").as_deref(), Some("message-summary"));
    assert_eq!(
        header(&first, "Subscription-State").as_deref(),
        Some("active;expires=600")
    );
    assert_eq!(
        header(&first, "Content-Type").as_deref(),
        Some("application/simple-message-summary")
    );
    let body = String::from_utf8_lossy(first.body()).into_owned();
    assert!(body.starts_with("Messages-Waiting: no\r\n"), "{body}");
    assert_eq!(
        first.headers().to().unwrap().tag(),
        Some("s1"),
        "in the dialog"
    );
    assert_eq!(first.headers().from().unwrap().tag(), Some(tag.as_str()));
    net.recv(&response_to(&first, 200, None));
    registrar.set_mailbox("alice", Mailbox { new: 2, old: 5 });
    net.command(Command::MailboxChanged {
        user: "alice".into(),
    });
    let n = net.requests().pop().expect("a NOTIFY for the change");
    let body = String::from_utf8_lossy(n.body()).into_owned();
    assert!(body.contains("Messages-Waiting: yes\r\n"), "{body}");
    assert!(body.contains("Voice-Message: 2/5 (0/0)\r\n"), "{body}");
    assert!(n.headers().cseq().unwrap().seq > first.headers().cseq().unwrap().seq);
}

#[test]
fn an_unsubscribe_gets_the_last_notify() {
    let (mut net, _r) = with_registrar();
    let (tag, first) = subscribed(&mut net, "m2");
    net.recv(&response_to(&first, 200, None));
    net.recv(&refresh("m2", &tag, 2, 0));
    let sent = net.take_sent();
    assert!(matches!(sent.first(), Some(Message::Response(r)) if r.status().as_u16() == 200));
    let Some(Message::Request(last)) = sent.get(1) else {
        panic!("a last NOTIFY: {sent:?}");
    };
    assert!(
        header(last, "Subscription-State")
            .unwrap()
            .starts_with("terminated")
    );
    net.recv(&refresh("m2", &tag, 3, 600));
    assert_eq!(net.codes(), [481], "the subscription is gone");
}

#[test]
fn a_subscription_not_refreshed_ends_at_its_expiry() {
    let (mut net, _r) = with_registrar();
    let (tag, first) = subscribed(&mut net, "m3");
    net.recv(&response_to(&first, 200, None));
    net.advance(Duration::from_secs(300));
    net.recv(&refresh("m3", &tag, 2, 600));
    let sent = net.take_sent();
    let Some(Message::Request(n)) = sent.get(1) else {
        panic!("a refresh gets a NOTIFY: {sent:?}");
    };
    assert_eq!(
        header(n, "Subscription-State").as_deref(),
        Some("active;expires=600")
    );
    net.recv(&response_to(n, 200, None));
    net.advance(Duration::from_secs(599));
    assert!(net.requests().is_empty());
    net.advance(Duration::from_secs(2));
    let last = net.requests().pop().expect("the expiry's NOTIFY");
    assert_eq!(
        header(&last, "Subscription-State").as_deref(),
        Some("terminated;reason=timeout")
    );
}

#[test]
fn a_481_to_a_notify_drops_the_subscription() {
    let (mut net, registrar) = with_registrar();
    let (_tag, first) = subscribed(&mut net, "m4");
    net.recv(&response_to(&first, 481, None));
    registrar.set_mailbox("alice", Mailbox { new: 1, old: 0 });
    net.command(Command::MailboxChanged {
        user: "alice".into(),
    });
    assert!(net.requests().is_empty(), "nobody left to tell");
}

#[test]
fn other_packages_and_brief_intervals_are_refused() {
    let (mut net, _r) = with_registrar();
    net.recv(&subscribe("m5", "Event: presence\n"));
    let r = net.responses().pop().unwrap();
    assert_eq!(r.status().as_u16(), 489, "RFC 6665 §4.2.1.1: Bad Event");
    assert_eq!(
        r.headers()
            .get(&HeaderName::from("Allow-Events"))
            .map(|v| v.to_vec()),
        Some(b"message-summary".to_vec())
    );
    net.recv(&subscribe("m6", "Event: message-summary\nExpires: 30\n"));
    let r = net.responses().pop().unwrap();
    assert_eq!(r.status().as_u16(), 423);
    net.recv(&subscribe("m7", "Event: message-summary\nExpires: 99999\n"));
    let r = net.responses().into_iter().next().unwrap();
    assert_eq!(r.headers().expires().unwrap(), Some(3600), "shortened");
}
