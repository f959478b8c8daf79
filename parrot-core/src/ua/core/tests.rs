//! The UA core on a virtual clock: each test plays the network and the driver
//! by hand (messages in, outputs read, commands fed back), so Timer B's 32 s
//! or an ACK timeout take no time at all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use super::{Output, Spawn, UaCore};
use crate::message::{Message, Method, Request, Response, StatusCode};
use crate::transaction::TransactionKey;
use crate::transport::{Received, TransportKind};
use crate::ua::call_event::{CallEvent, EventSender};
use crate::ua::command::{Command, DialSpec, QueryId, Resolved, ToCall};
use crate::ua::config::{Config, ServerAuth};
use crate::ua::reply::Reply;
use crate::ua::slab::CallId;
use crate::ua::{Registrar, UaError};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const US: &str = "192.0.2.1:5060";
const ALICE: &str = "192.0.2.20:5070";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The core, the clock, and what the "driver" has seen so far.
struct Net {
    core: UaCore,
    now: Instant,
    /// Messages the core sent, in order, with their destinations.
    sent: Vec<(SocketAddr, Message)>,
    /// Handler tasks the core asked for.
    spawned: Vec<Spawn>,
    /// Lookups the core asked for.
    resolves: Vec<QueryId>,
    /// Bytes sent that are no SIP message (keep-alives).
    raw: Vec<(SocketAddr, Bytes)>,
}

impl Net {
    fn new(config: Config) -> Net {
        let now = Instant::now();
        let core = UaCore::new(
            config,
            vec![(TransportKind::Udp, addr(US))],
            now,
            1_700_000_000,
        );
        Net {
            core,
            now,
            sent: Vec::new(),
            spawned: Vec::new(),
            resolves: Vec::new(),
            raw: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit(t) => match Message::parse(t.data.clone()) {
                    Ok(msg) => self.sent.push((t.dest.target.addr, msg)),
                    Err(_) => self.raw.push((t.dest.target.addr, t.data)),
                },
                Output::Resolve { query, .. } => self.resolves.push(query),
                Output::Spawn(s) => self.spawned.push(s),
            }
        }
    }

    fn recv_from(&mut self, from: &str, text: &str) {
        let message = Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap();
        let r = Received {
            message,
            source: addr(from),
            local: addr(US),
            kind: TransportKind::Udp,
            conn: None,
        };
        self.core.handle_message(self.now, r);
        self.pump();
    }

    fn recv(&mut self, text: &str) {
        self.recv_from(ALICE, text);
    }

    fn command(&mut self, cmd: Command) {
        self.core.handle_command(self.now, cmd);
        self.pump();
    }

    /// Moves the clock forward by `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let mut fired = 0;
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            fired += 1;
            assert!(fired < 10_000, "a timer that does not move on");
            self.now = self.now.max(t);
            self.core.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    /// Responses sent since the last call, as (code, message).
    fn responses(&mut self) -> Vec<Response> {
        self.take_sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                Message::Request(_) => None,
            })
            .collect()
    }

    fn requests(&mut self) -> Vec<Request> {
        self.take_sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }

    fn take_sent(&mut self) -> Vec<Message> {
        self.sent.drain(..).map(|(_, m)| m).collect()
    }

    fn codes(&mut self) -> Vec<u16> {
        self.responses()
            .iter()
            .map(|r| r.status().as_u16())
            .collect()
    }

    /// The one UAS call the core started: its handle, transaction and task channel.
    fn take_call(&mut self) -> (CallId, TransactionKey, mpsc::Receiver<ToCall>) {
        let i = self
            .spawned
            .iter()
            .position(|s| matches!(s, Spawn::Call { .. }))
            .expect("a call task was started");
        match self.spawned.remove(i) {
            Spawn::Call {
                call, key, task, ..
            } => (call, key, task),
            _ => unreachable!(),
        }
    }
}

fn invite(call_id: &str, branch: &str) -> String {
    format!(
        "INVITE sip:bob@{US} SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bK{branch}\n\
         Max-Forwards: 70\n\
         From: <sip:alice@{ALICE}>;tag=a1\n\
         To: <sip:bob@{US}>\n\
         Call-ID: {call_id}\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:alice@{ALICE}>\n\
         Content-Length: 0\n\n"
    )
}

/// A request in the dialog of `call_id` with our tag `to_tag`.
fn in_dialog(method: &str, cseq: u32, call_id: &str, to_tag: &str, branch: &str) -> String {
    format!(
        "{method} sip:bob@{US} SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bK{branch}\n\
         Max-Forwards: 70\n\
         From: <sip:alice@{ALICE}>;tag=a1\n\
         To: <sip:bob@{US}>;tag={to_tag}\n\
         Call-ID: {call_id}\n\
         CSeq: {cseq} {method}\n\
         Content-Length: 0\n\n"
    )
}

fn to_tag(r: &Response) -> String {
    r.headers()
        .to()
        .and_then(|t| t.tag())
        .expect("a To tag")
        .to_owned()
}

/// An INVITE answered 200 by its handler: the call, its task, our tag.
fn answered_call(net: &mut Net, call_id: &str) -> (CallId, mpsc::Receiver<ToCall>, String) {
    net.recv(&invite(call_id, call_id));
    assert_eq!(net.codes(), Vec::<u16>::new(), "the handler decides");
    // §17.2.1: 100 Trying when the handler takes longer than 200 ms.
    net.advance(Duration::from_millis(250));
    assert_eq!(net.codes(), [100]);
    let (call, key, task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    let ok = net.responses();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].status(), StatusCode::OK);
    assert!(
        !ok[0].headers().contact_list().is_empty(),
        "a dialog-forming 2xx carries Contact"
    );
    (call, task, to_tag(&ok[0]))
}

#[test]
fn invite_ack_bye() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "c1");
    assert_eq!(net.core.stats().dialogs, 1);
    // §13.3.1.4: the 2xx is retransmitted at T1, 2·T1, … until the ACK.
    net.advance(Duration::from_millis(500));
    assert_eq!(net.codes(), [200]);
    net.advance(Duration::from_millis(1000));
    assert_eq!(net.codes(), [200]);
    net.recv(&in_dialog("ACK", 1, "c1", &tag, "ack1"));
    assert!(matches!(task.try_recv(), Ok(ToCall::Ack(_))));
    net.advance(Duration::from_secs(10));
    assert_eq!(
        net.codes(),
        Vec::<u16>::new(),
        "no retransmission after the ACK"
    );
    net.recv(&in_dialog("BYE", 2, "c1", &tag, "bye1"));
    let Ok(ToCall::Request(boxed)) = task.try_recv() else {
        panic!("the BYE goes to the call's task");
    };
    let (key, delivered) = *boxed;
    assert_eq!(*delivered.request.method(), Method::Bye);
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    assert_eq!(net.codes(), [200]);
    net.command(Command::CallDone { call });
    net.advance(Duration::from_secs(40));
    let s = net.core.stats();
    assert_eq!((s.calls, s.dialogs, s.transactions), (0, 0, 0), "{s:?}");
}

#[test]
fn no_ack_for_the_2xx_ends_the_call_with_bye() {
    let mut net = Net::new(Config::default());
    let (_call, mut task, _tag) = answered_call(&mut net, "c2");
    net.advance(Duration::from_secs(31));
    assert!(task.try_recv().is_err(), "still waiting for the ACK");
    net.advance(Duration::from_secs(2));
    assert!(matches!(task.try_recv(), Ok(ToCall::AckTimeout)));
    let byes: std::collections::HashSet<String> = net
        .requests()
        .into_iter()
        .filter(|r| *r.method() == Method::Bye)
        .filter_map(|r| {
            r.headers()
                .top_via()
                .and_then(|v| v.branch())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(byes.len(), 1, "§13.3.1.4: one BYE after 64·T1 without ACK");
}

#[test]
fn cancel_before_the_answer_gets_200_and_487() {
    let mut net = Net::new(Config::default());
    net.recv(&invite("c3", "inv3"));
    let (call, key, mut task) = net.take_call();
    let cancel = invite("c3", "inv3")
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    net.recv(&cancel);
    let rs = net.responses();
    let got: Vec<(u16, Method)> = rs
        .iter()
        .map(|r| {
            (
                r.status().as_u16(),
                r.headers().cseq().unwrap().method.clone(),
            )
        })
        .collect();
    assert_eq!(got, [(200, Method::Cancel), (487, Method::Invite)]);
    assert_eq!(to_tag(&rs[0]), to_tag(&rs[1]), "one To tag for both (§9.2)");
    assert!(matches!(task.try_recv(), Ok(ToCall::Cancelled)));
    // The handler's late 200 is dropped: the INVITE is already answered.
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    assert_eq!(net.codes(), Vec::<u16>::new());
    // A CANCEL for nothing: 481.
    let stray = invite("c9", "nothing")
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    net.recv(&stray);
    assert_eq!(net.codes(), [481]);
}

#[test]
fn a_request_for_an_unknown_dialog_gets_481_and_an_ack_gets_nothing() {
    let mut net = Net::new(Config::default());
    net.recv(&in_dialog("BYE", 2, "ghost", "nosuch", "b1"));
    assert_eq!(net.codes(), [481]);
    net.recv(&in_dialog("ACK", 1, "ghost", "nosuch", "b2"));
    assert!(net.sent.is_empty(), "an ACK is never answered");
    assert!(net.spawned.is_empty());
}

#[test]
fn overload_gets_503_with_retry_after_until_a_call_is_answered() {
    let config = Config {
        max_server_transactions: 2,
        ..Config::default()
    };
    let mut net = Net::new(config);
    net.recv(&invite("o1", "o1"));
    net.recv(&invite("o2", "o2"));
    assert_eq!(
        net.codes(),
        Vec::<u16>::new(),
        "two calls fit under a cap of 2"
    );
    net.recv(&invite("o3", "o3"));
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        rs[0]
            .headers()
            .get(&crate::message::HeaderName::RetryAfter)
            .is_some()
    );
    assert_eq!(net.core.stats().rejected_overload, 1);
    // An answered call no longer counts: the next INVITE is served.
    let (call, key, _task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::busy_here(),
    });
    assert_eq!(net.codes(), [486]);
    net.recv(&invite("o4", "o4"));
    assert_eq!(net.codes(), Vec::<u16>::new());
    assert_eq!(net.spawned.len(), 2, "o4 got a call task");
}

#[test]
fn a_digest_challenge_comes_before_any_handler() {
    let lookup = Arc::new(|user: &str| (user == "alice").then(|| "secret".to_owned()));
    let config = Config {
        auth: Some(ServerAuth::new("parrot.test", lookup)),
        ..Config::default()
    };
    let mut net = Net::new(config);
    net.recv(&invite("d1", "d1"));
    let rs = net.responses();
    let last = rs.last().expect("a response");
    assert_eq!(last.status(), StatusCode::UNAUTHORIZED);
    let challenge = last
        .headers()
        .get(&crate::message::HeaderName::WwwAuthenticate)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    assert!(challenge.contains("realm=\"parrot.test\""), "{challenge}");
    assert!(
        net.spawned.is_empty(),
        "no handler sees an unauthenticated INVITE"
    );
}

#[test]
fn a_registrar_answers_register_itself() {
    let config = Config {
        registrar: Some(Registrar::new()),
        ..Config::default()
    };
    let mut net = Net::new(config);
    let register = format!(
        "REGISTER sip:{US} SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKreg1\n\
         Max-Forwards: 70\n\
         From: <sip:alice@{US}>;tag=r1\n\
         To: <sip:alice@{US}>\n\
         Call-ID: reg1\n\
         CSeq: 1 REGISTER\n\
         Contact: <sip:alice@{ALICE}>\n\
         Expires: 600\n\
         Content-Length: 0\n\n"
    );
    net.recv(&register);
    assert_eq!(net.codes(), [200]);
    assert!(net.spawned.is_empty());
}

#[test]
fn a_reinvite_goes_to_the_calls_task() {
    let mut net = Net::new(Config::default());
    let (call, mut task, tag) = answered_call(&mut net, "r1");
    net.recv(&in_dialog("ACK", 1, "r1", &tag, "ack"));
    assert!(matches!(task.try_recv(), Ok(ToCall::Ack(_))));
    net.recv(&in_dialog("INVITE", 2, "r1", &tag, "re"));
    assert_eq!(net.codes(), Vec::<u16>::new());
    let Ok(ToCall::Request(boxed)) = task.try_recv() else {
        panic!("the re-INVITE goes to the call's task");
    };
    let (key, delivered) = *boxed;
    assert_eq!(*delivered.request.method(), Method::Invite);
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::ok(),
    });
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(to_tag(&rs[0]), tag, "the same dialog");
    // §12.2.2: a CSeq lower than the last is answered 500.
    net.recv(&in_dialog("INFO", 1, "r1", &tag, "old"));
    assert_eq!(net.codes(), [500]);
}

#[test]
fn a_panicking_handler_gets_its_invite_a_500_and_the_endpoint_goes_on() {
    let mut net = Net::new(Config::default());
    net.recv(&invite("p1", "p1"));
    net.recv(&invite("p2", "p2"));
    let (first, _, _) = net.take_call();
    let (second, key2, _) = net.take_call();
    net.command(Command::Crashed {
        call: Some(first),
        key: None,
    });
    assert_eq!(net.codes(), [500]);
    assert_eq!(net.core.stats().panics, 1);
    net.command(Command::Reply {
        call: Some(second),
        key: key2,
        reply: Reply::ok(),
    });
    assert_eq!(net.codes(), [200], "the other call is answered");
    assert_eq!(net.core.stats().calls, 1);
}

/// A dial towards `uri`, with the channels its handle would hold.
fn dial(
    net: &mut Net,
    uri: &str,
) -> (
    mpsc::Receiver<Box<CallEvent>>,
    oneshot::Receiver<Result<CallId, UaError>>,
) {
    let (events_tx, events) = mpsc::channel(32);
    let (reply, wait) = oneshot::channel();
    let spec = DialSpec::new(crate::message::Uri::parse(uri).unwrap());
    net.command(Command::Dial {
        spec,
        media: None,
        events: EventSender(events_tx),
        reply,
    });
    (events, wait)
}

fn response_to(req: &Request, code: u16, tag: Option<&str>) -> String {
    let h = req.headers();
    let via = h.top_via().unwrap().to_string();
    let from =
        String::from_utf8_lossy(h.get(&crate::message::HeaderName::From).unwrap()).into_owned();
    let to = String::from_utf8_lossy(h.get(&crate::message::HeaderName::To).unwrap()).into_owned();
    let to = match tag {
        Some(t) => format!("{to};tag={t}"),
        None => to,
    };
    let cseq = h.cseq().unwrap();
    format!(
        "SIP/2.0 {code} Whatever\n\
         Via: {via}\n\
         From: {from}\n\
         To: {to}\n\
         Call-ID: {}\n\
         CSeq: {} {}\n\
         Contact: <sip:bob@{ALICE}>\n\
         Content-Length: 0\n\n",
        h.call_id().unwrap(),
        cseq.seq,
        cseq.method
    )
}

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
    let query = net.resolves[0];
    net.command(Command::Resolved {
        query,
        result: Box::new(Ok(Resolved {
            targets: vec![peer_at(ALICE)],
            offer: None,
        })),
    });
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

/// A REGISTER with our Contact, as the REGISTER client builds it.
fn register_request(call_id: &str, cseq: u32) -> Request {
    let text = format!(
        "REGISTER sip:{ALICE} SIP/2.0\r\nMax-Forwards: 70\r\n\
         From: <sip:bob@{ALICE}>;tag=r\r\nTo: <sip:bob@{ALICE}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:bob@0.0.0.0:5060>\r\nContent-Length: 0\r\n\r\n"
    );
    match Message::parse(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
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
    let query = net.resolves[0];
    net.command(Command::Resolved {
        query,
        result: Box::new(Ok(Resolved {
            targets: vec![peer_at(DOWN), peer_at(ALICE)],
            offer: None,
        })),
    });
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
    let query = net.resolves[0];
    net.command(Command::Resolved {
        query,
        result: Box::new(Ok(Resolved {
            targets: vec![peer_at(BUSY), peer_at(ALICE)],
            offer: None,
        })),
    });
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
    let query = net.resolves[0];
    net.command(Command::Resolved {
        query,
        result: Box::new(Ok(Resolved {
            targets: vec![peer_at(BROKEN), peer_at(ALICE)],
            offer: None,
        })),
    });
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
    let query = net.resolves[0];
    net.command(Command::Resolved {
        query,
        result: Box::new(Ok(Resolved {
            targets: vec![peer_at(BUSY), peer_at(ALICE)],
            offer: None,
        })),
    });
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

/// A lookup's answer: `to` over UDP, from our address.
fn peer_at(to: &str) -> crate::ua::route::Peer {
    crate::ua::route::Peer {
        target: crate::transport::Target::new(TransportKind::Udp, addr(to)),
        local: addr(US),
    }
}
