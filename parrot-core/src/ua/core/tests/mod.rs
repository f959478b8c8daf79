//! The UA core on a virtual clock: each test plays the network and the driver
//! by hand (messages in, outputs read, commands fed back), so Timer B's 32 s
//! or an ACK timeout take no time at all. Here: the harness and the calls we
//! answer; `client.rs`: the calls we place; `destinations.rs`: lookups,
//! failover, NAT and keep-alives.

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

    /// Answers the first lookup the core asked for with these destinations
    /// (and, for a dial with audio, the driver's offer).
    fn resolve_first(
        &mut self,
        targets: Vec<crate::ua::route::Peer>,
        offer: Option<crate::ua::media::Offered>,
    ) {
        let query = self.resolves[0];
        self.command(Command::Resolved {
            query,
            result: Box::new(Ok(Resolved { targets, offer })),
        });
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

/// A response's Retry-After, in seconds (it must have one).
fn retry_after(r: &Response) -> u64 {
    r.headers()
        .get(&crate::message::HeaderName::RetryAfter)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .expect("a Retry-After in seconds")
}

/// What the core sent is one 503 with a Retry-After (an INVITE refused as overload).
fn refused_overloaded(net: &mut Net) {
    let rs = net.responses();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status(), StatusCode::SERVICE_UNAVAILABLE);
    retry_after(&rs[0]);
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
    refused_overloaded(&mut net);
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
fn media_behind_refuses_new_calls_but_not_options_or_the_calls_up() {
    let mut net = Net::new(Config::default());
    let (_call, _task, tag) = answered_call(&mut net, "m1");
    net.core.set_media_behind(true);
    net.recv(&invite("m2", "m2"));
    refused_overloaded(&mut net);
    let options = invite("m3", "m3")
        .replacen("INVITE sip", "OPTIONS sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    net.recv(&options);
    assert!(net.codes().is_empty(), "OPTIONS is not refused");
    assert!(
        matches!(net.spawned.pop(), Some(Spawn::Request { .. })),
        "OPTIONS goes to its handler while media is behind"
    );
    // The call already up goes on: its ACK is taken and nothing else is sent.
    net.recv(&in_dialog("ACK", 1, "m1", &tag, "ackm1"));
    assert!(net.responses().is_empty(), "no response to an ACK");
    net.core.set_media_behind(false);
    net.recv(&invite("m4", "m4"));
    assert_eq!(net.codes(), Vec::<u16>::new(), "m4 goes to its handler");
    let stats = net.core.stats();
    assert_eq!(stats.rejected_overload, 1);
    assert_eq!(
        (stats.rejected_media_late, stats.rejected_media_room),
        (1, 0)
    );
}

#[test]
fn media_room_refuses_the_call_that_would_fill_it() {
    let mut net = Net::new(Config::default());
    // Room for one more session: the first INVITE is taken, and while it is
    // in progress (not ACKed) the second would take that room too.
    net.core.set_media_room(Some(1));
    net.recv(&invite("r1", "r1"));
    let c = net.codes();
    assert!(c.is_empty(), "r1 goes to its handler: {c:?}");
    net.recv(&invite("r2", "r2"));
    refused_overloaded(&mut net);
    let stats = net.core.stats();
    assert_eq!(stats.rejected_overload, 1);
    assert_eq!(
        (stats.rejected_media_late, stats.rejected_media_room),
        (0, 1)
    );
    // Room not known (too few sessions to tell): no limit from it.
    net.core.set_media_room(None);
    net.recv(&invite("r3", "r3"));
    assert!(net.codes().is_empty(), "r3 goes to its handler");
    assert_eq!(net.spawned.len(), 2, "r1 and r3 got call tasks");
}

#[test]
fn a_2xx_not_acked_counts_against_the_cap_until_its_ack_or_64_t1() {
    let config = Config {
        max_server_transactions: 2,
        ..Config::default()
    };
    let mut net = Net::new(config);
    let (_c1, _t1, tag1) = answered_call(&mut net, "u1");
    let (_c2, _t2, _tag2) = answered_call(&mut net, "u2");
    // Neither 2xx is ACKed: both calls still hold what their answer set up.
    net.recv(&invite("u3", "u3"));
    assert_eq!(net.codes(), [503], "two un-ACKed calls fill a cap of 2");
    // u1's ACK comes: the cap has room for one again.
    net.recv(&in_dialog("ACK", 1, "u1", &tag1, "acku1"));
    let _ = net.take_sent();
    net.recv(&invite("u4", "u4"));
    assert_eq!(net.codes(), Vec::<u16>::new(), "u4 goes to its handler");
    net.recv(&invite("u5", "u5"));
    assert_eq!(net.codes(), [503]);
    // u2 never gets its ACK: after 64·T1 it is hung up and stops counting.
    net.advance(Duration::from_secs(33));
    let _ = net.take_sent();
    net.recv(&invite("u6", "u6"));
    assert!(
        !net.codes().contains(&503),
        "u2's slot is free after Timer L"
    );
    assert_eq!(net.core.stats().rejected_overload, 2);
}

#[test]
fn calls_in_progress_take_at_most_half_the_rtp_port_pairs() {
    let ports = crate::rtp::PortAllocator::new(40000..=40007).unwrap();
    let config = Config {
        ports: Arc::new(std::sync::Mutex::new(ports)),
        ..Config::default()
    };
    let mut net = Net::new(config);
    // 4 pairs: 2 calls may be in progress (answered but not ACKed, or not
    // answered yet), whatever `max_server_transactions` says.
    let (_c1, _t1, _) = answered_call(&mut net, "p1");
    net.recv(&invite("p2", "p2"));
    assert_eq!(net.codes(), Vec::<u16>::new());
    net.recv(&invite("p3", "p3"));
    assert_eq!(net.codes(), [503]);
    assert_eq!(net.core.stats().rejected_overload, 1);
}

#[test]
fn rtp_pairs_held_by_calls_leave_room_for_as_many_new_ones() {
    // Established calls hold their pairs (a lease each, as `bind_pair` gives
    // them) until their media ends. Before, the allocator released every pair
    // right after binding and the cap only knew the range's size: an INVITE
    // got a task and a handler, whose answer then failed for want of a port.
    let ports = Arc::new(std::sync::Mutex::new(
        crate::rtp::PortAllocator::new(40000..=40015).unwrap(),
    ));
    let config = Config {
        ports: Arc::clone(&ports),
        ..Config::default()
    };
    let mut net = Net::new(config);
    let hold = || {
        crate::rtp::PortLease::allocate(&ports, |_| Some(()))
            .unwrap()
            .0
    };
    // 8 pairs, 7 held: one INVITE may wait for its answer, not two.
    let mut held: Vec<_> = (0..7).map(|_| hold()).collect();
    net.recv(&invite("h1", "h1"));
    assert_eq!(net.codes(), Vec::<u16>::new(), "h1 goes to its handler");
    net.recv(&invite("h2", "h2"));
    assert_eq!(net.codes(), [503], "one pair left, h1 will take it");
    assert_eq!(net.spawned.len(), 1);
    // Every pair held: refused before any task.
    let (call, key, _task) = net.take_call();
    net.command(Command::Reply {
        call: Some(call),
        key,
        reply: Reply::busy_here(),
    });
    assert_eq!(net.codes(), [486]);
    held.push(hold());
    net.recv(&invite("h3", "h3"));
    assert_eq!(net.codes(), [503]);
    // A call ends, its pair comes back: the next INVITE is served.
    held.pop();
    net.recv(&invite("h4", "h4"));
    assert_eq!(net.codes(), Vec::<u16>::new());
    assert_eq!(net.core.stats().rejected_overload, 2);
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

/// A lookup's answer: `to` over UDP, from our address.
fn peer_at(to: &str) -> crate::ua::route::Peer {
    crate::ua::route::Peer {
        target: crate::transport::Target::new(TransportKind::Udp, addr(to)),
        local: addr(US),
    }
}

mod auth;
mod client;
mod destinations;
mod dialogs;
mod prack;
mod refer;
mod subscriptions;
mod timers;
