//! The UA core as a sans-IO state machine, like the transaction layer under
//! it (and quinn-proto's `Endpoint` or str0m's `Rtc`): inputs take `now`
//! ([`UaCore::handle_message`], [`UaCore::handle_command`],
//! [`UaCore::handle_timeout`]); what to do comes out of
//! [`UaCore::poll_output`] (send bytes, look a name up, start a handler task)
//! and [`UaCore::poll_timeout`]. Nothing here awaits, reads a clock or touches
//! a socket: the driver (`super::driver`) does, and feeds the results back in.
//! Messages to call tasks and handles go on channels with `try_send`, which
//! never waits.
//!
//! - `precheck.rs`: checks before a transaction exists, and the headers every
//!   response of ours carries;
//! - `server.rs`: requests we receive (calls we answer, CANCEL, ACK, in-dialog
//!   requests, replies from handlers, panics);
//! - `client.rs`: calls we place (dial, CANCEL, in-dialog requests, their
//!   responses, authentication and redirects);
//! - `destinations.rs`: where requests go (lookups and their answers,
//!   requests outside any dialog, RFC 3263 failover, the outbound proxy).

mod client;
mod destinations;
mod precheck;
mod refer;
mod reliable;
mod server;
mod subscriptions;
mod timers;

pub(crate) use refer::refer_target;
pub(crate) use timers::{DEFAULT_MIN_SE, DEFAULT_SESSION_EXPIRES};
#[cfg(test)]
mod tests;

use super::call_event::{CallEvent, EventSender};
use super::command::{Command, QueryId, ToCall};
use super::config::Config;
use super::counters::EndpointStats;
use super::media::Offered;
use super::reply::Reply;
use super::route::Peer;
use super::slab::{CallId, Slab};
use crate::dialog::{Dialog, DialogId};
use crate::media::{MediaHandler, Ports};
use crate::message::{Host, Message, Request, Response, SipUri, Uri, Via};
use crate::shard_map::{Prehashed, ShardMap};
use crate::transaction::{Event, TransactionKey, Transactions, Transmit, shrink_if_sparse};
use crate::transport::{Received, Target, TransportKind};
use client::UacCall;
use destinations::Query;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

/// What the core wants done.
// Outputs are moved once, from the core's queue to the driver; boxing the
// larger ones would add an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Output {
    /// Send these bytes (a transaction's, or a stateless message). A failed
    /// send of a transaction's message is fed back as
    /// [`Command::TransportError`].
    Transmit(Transmit<Peer>),
    /// Look `uri` up (RFC 3263: transport, port, A/AAAA) and, when `media` is
    /// set, bind RTP sockets for the address that reaches it and make the SDP
    /// offer; answer with [`Command::Resolved`]. The core gives up on the
    /// query after 64·T1 by itself, so a lookup that never returns fails one
    /// dial and stalls nothing else.
    Resolve {
        query: QueryId,
        uri: Uri,
        transport: Option<TransportKind>,
        media: Option<OfferWanted>,
    },
    /// Start a task for handler code.
    Spawn(Spawn),
}

/// Sockets to bind and an offer to make for a dial with audio.
pub(crate) struct OfferWanted {
    pub(crate) handler: Box<dyn MediaHandler>,
    pub(crate) ports: Ports,
    pub(crate) public_ip: Option<std::net::IpAddr>,
    pub(crate) entropy: crate::entropy::Entropy,
    pub(crate) srtp: crate::ua::media::SrtpPolicy,
    pub(crate) rtcp_mux: bool,
}

/// The tasks the driver starts for the core, each supervised: its end (or
/// panic) comes back as a [`Command`].
#[allow(clippy::large_enum_variant)] // moved once, like `Output`
pub(crate) enum Spawn {
    /// A request outside any dialog: a handler value of its own answers it
    /// ([`Command::Reply`] with `call: None`).
    Request {
        key: TransactionKey,
        request: Request,
        peer: Peer,
    },
    /// A call we answer: the handler's INVITE, then its dialog, in one task
    /// that hears from the core on `task` and sends provisional replies on
    /// `provisional`.
    Call {
        call: CallId,
        key: TransactionKey,
        request: Request,
        peer: Peer,
        task: mpsc::Receiver<ToCall>,
        provisional: (mpsc::Sender<Box<Reply>>, mpsc::Receiver<Box<Reply>>),
        ports: Ports,
        public_ip: Option<std::net::IpAddr>,
        entropy: crate::entropy::Entropy,
        srtp: crate::ua::media::SrtpPolicy,
        rtcp_mux: bool,
    },
    /// A call we placed was answered: its media session, driven by the
    /// offer's sockets and the 2xx's answer, controlled from its handle, and
    /// stopped when `stop` closes (the call ended).
    UacMedia {
        call: CallId,
        offer: Offered,
        answer: Response,
        control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
        events: EventSender,
        stop: oneshot::Receiver<()>,
        /// In-dialog requests for the media task to answer.
        requests: mpsc::Receiver<crate::ua::command::ToMedia>,
        entropy: crate::entropy::Entropy,
    },
}

/// Who waits for what a transaction produces.
enum Owner {
    /// An INVITE server transaction of a UAS call.
    UasInvite { call: CallId },
    /// The INVITE client transaction of an outgoing call.
    UacInvite { call: CallId },
    /// A NOTIFY of a subscription we serve (boxed: the other owners are a
    /// few words, and every transaction's entry has room for the largest).
    Notify { sub: Box<DialogId> },
    /// A non-INVITE client transaction (or a re-INVITE) whose response someone awaits.
    Request {
        reply: Option<super::command::ResponseSender>,
        call: Option<CallId>,
        method: crate::message::Method,
    },
}

/// A server request waiting for its final response: what is needed to build
/// it. Forgotten once the final response is sent (the transaction then
/// answers retransmissions by itself).
struct Pending {
    request: Request,
    peer: Peer,
}

/// What the UA keeps about one transaction of the layer's: who waits for it,
/// and (server side) the request still to be answered.
#[derive(Default)]
struct Use {
    owner: Option<Owner>,
    /// Boxed: a `Request` is hundreds of bytes, and a use outlives its
    /// request's answer by up to 64*T1 (the transaction lingers), so inline
    /// it would make every entry of the table that large for the whole time.
    pending: Option<Box<Pending>>,
}

// Tables of uses hold one per transaction for 64*T1: keep an entry small.
const _: () = assert!(std::mem::size_of::<Use>() <= 96);

enum CallState {
    Uas {
        task: mpsc::Sender<ToCall>,
        local_tag: String,
        answered: bool,
    },
    Uac(Box<UacCall>),
}

struct Call {
    state: CallState,
    dialog: Option<Dialog>,
    /// Where in-dialog requests go, and our side of the exchange.
    peer: Peer,
    /// A BYE went out or came in: no more requests in this dialog.
    ended: bool,
    /// Our INVITE transactions in this call that have no final response
    /// yet: the initial one we answer (its early dialog is in `dialogs`
    /// until then), a re-INVITE from the peer, a re-INVITE of ours. §14:
    /// one INVITE at a time in a dialog.
    invites: Invites,
    /// The RFC 4028 session timer, once the call is answered.
    timer: Option<timers::SessionTimer>,
    /// The SDP we last sent in the dialog (offer or answer): what a session
    /// refresh re-INVITE carries.
    local_sdp: Option<bytes::Bytes>,
    /// Reliable provisionals of the INVITE we answer (RFC 3262).
    reliable: Option<Box<reliable::Reliable>>,
    /// A REFER of ours waits for its outcome (RFC 3515).
    transferring: Option<refer::TransferWait>,
    /// We accepted a REFER with a subscription: its progress goes out as
    /// NOTIFYs until a final status.
    refer_sub: bool,
    /// The call this one replaces once answered (RFC 3891).
    replaces: Option<CallId>,
    /// The CSeq of a re-INVITE of ours without an offer (a call without
    /// media refreshed): an offer in its 2xx gets a refusing answer.
    bodyless_invite: Option<u32>,
}

/// The INVITE transactions of a call still without a final response.
#[derive(Default)]
struct Invites {
    /// The initial INVITE of a call we answer, and its early dialog.
    initial: Option<(TransactionKey, DialogId)>,
    /// A re-INVITE from the peer, not answered yet.
    theirs: Option<TransactionKey>,
    /// A re-INVITE we sent, not answered yet.
    ours: Option<TransactionKey>,
}

/// The headers of a NOTIFY for the refer event package (RFC 3515 §2.4.5):
/// the subscription active until the final status, then terminated.
pub(crate) fn refer_notify_headers(last: bool) -> Vec<(crate::message::HeaderName, String)> {
    let state = if last {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    };
    vec![
        (crate::message::HeaderName::Event, "refer".to_owned()),
        (
            crate::message::HeaderName::from("Subscription-State"),
            state.to_owned(),
        ),
    ]
}

/// A `message/sipfrag` body with a status line (RFC 3420).
pub(crate) fn sipfrag(status: crate::message::StatusCode) -> (String, bytes::Bytes) {
    (
        "message/sipfrag;version=2.0".to_owned(),
        bytes::Bytes::from(format!(
            "SIP/2.0 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason()
        )),
    )
}

/// What identifies a request outside a dialog for the merged-request check
/// (§8.2.2.2): its Call-ID, From tag and CSeq number, borrowed from the
/// request (a lookup allocates nothing; an entry owns a copy, [`MergeKey`]).
/// CANCEL and ACK share them with their INVITE by design and are left out.
fn merge_key(request: &Request) -> Option<MergeRef<'_>> {
    use crate::message::Method;
    if matches!(request.method(), Method::Cancel | Method::Ack) {
        return None;
    }
    let h = request.headers();
    if h.to().and_then(|t| t.tag()).is_some() {
        return None;
    }
    Some(MergeRef {
        call_id: h.call_id()?.as_str(),
        from_tag: h.from()?.tag()?,
        cseq: h.cseq()?.seq,
    })
}

/// A [`merge_key`] as the table keeps it.
#[derive(Debug)]
struct MergeKey {
    call_id: Box<str>,
    from_tag: Box<str>,
    cseq: u32,
}

/// A [`merge_key`] borrowed from its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MergeRef<'a> {
    call_id: &'a str,
    from_tag: &'a str,
    cseq: u32,
}

impl MergeKey {
    fn as_ref(&self) -> MergeRef<'_> {
        MergeRef {
            call_id: &self.call_id,
            from_tag: &self.from_tag,
            cseq: self.cseq,
        }
    }
}

impl MergeRef<'_> {
    fn to_owned(self) -> MergeKey {
        MergeKey {
            call_id: self.call_id.into(),
            from_tag: self.from_tag.into(),
            cseq: self.cseq,
        }
    }
}

// A key hashes and compares as its borrowed form, so a `MergeRef` finds it.
impl std::hash::Hash for MergeKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl PartialEq for MergeKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for MergeKey {}

impl hashbrown::Equivalent<MergeKey> for MergeRef<'_> {
    fn equivalent(&self, key: &MergeKey) -> bool {
        *self == key.as_ref()
    }
}

/// Wall-clock seconds (for digest nonces and registration expiry) derived
/// from the monotonic `now` the inputs carry, so the core reads no clock.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    unix_at_start: u64,
}

impl Clock {
    fn unix(&self, now: Instant) -> u64 {
        self.unix_at_start + now.saturating_duration_since(self.start).as_secs()
    }
}

/// The UA core: transactions, dialogs, calls.
pub(crate) struct UaCore {
    txns: Transactions<Peer>,
    config: Config,
    addrs: Vec<(TransportKind, SocketAddr)>,
    calls: Slab<Call>,
    dialogs: HashMap<DialogId, CallId>,
    /// What each live transaction is for; as many entries as the
    /// transaction layer's tables, so sharded the same way.
    uses: ShardMap<TransactionKey, Use, Prehashed>,
    /// How many of `uses` have a request pending: with the 2xx awaiting
    /// their ACK, the overload measure.
    pending_count: usize,
    /// Half the RTP port pairs: the most calls in progress (not yet ACKed)
    /// we let hold RTP sockets.
    rtp_budget: usize,
    /// Requests outside a dialog waiting for their final response, by what
    /// §8.2.2.2 compares to find a merged request (Call-ID, From tag, CSeq).
    merging: hashbrown::HashMap<MergeKey, TransactionKey, RandomState>,
    /// A peer's re-INVITEs not answered yet, and their calls.
    pending_call: HashMap<TransactionKey, CallId>,
    /// Session timers (RFC 4028), by when they are due.
    session_deadlines: BTreeSet<(Instant, CallId)>,
    /// Reliable provisionals to send again (RFC 3262), by when.
    prack_deadlines: BTreeSet<(Instant, CallId)>,
    /// Subscriptions we serve (RFC 6665), by dialog, and their expiries.
    subscriptions: HashMap<DialogId, subscriptions::Subscription>,
    sub_deadlines: BTreeSet<(Instant, DialogId)>,
    queries: HashMap<QueryId, Query>,
    /// Requests outside a dialog with destinations left to fail over to
    /// (RFC 3263 §4.3): the request as it was before its Via, and those
    /// destinations.
    failover: HashMap<TransactionKey, (Request, VecDeque<Peer>)>,
    query_deadlines: BTreeSet<(Instant, QueryId)>,
    next_query: u64,
    out: VecDeque<Output>,
    now: Instant,
    clock: Clock,
    /// The flow each registrar was last sent a REGISTER on (keep-alives go there).
    flows: HashMap<String, Peer>,
    /// Our public address as responses' Via `received`/`rport` show it (RFC
    /// 3581 §4), per local address: a NAT between us and the peers.
    learned: HashMap<SocketAddr, SocketAddr>,
    panics: usize,
    rejected_overload: usize,
    rejected_media_late: usize,
    rejected_media_room: usize,
    /// The media threads are behind their packet times (the driver says so,
    /// from [`crate::media::pacing_behind`]): new calls would make every
    /// call's audio worse.
    media_behind: bool,
    /// How many more sessions the media threads can take (the driver says
    /// so, from [`crate::media::media_room`]); `None`: too few run to tell.
    media_room: Option<usize>,
    shutting_down: Option<(Instant, oneshot::Sender<()>)>,
}

impl UaCore {
    /// A core for an endpoint bound to `addrs`; `now` and `unix_now` (seconds
    /// since 1970) are the same moment on the two clocks.
    pub(crate) fn new(
        config: Config,
        addrs: Vec<(TransportKind, SocketAddr)>,
        now: Instant,
        unix_now: u64,
    ) -> UaCore {
        let rtp_budget = config
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .capacity()
            / 2;
        UaCore {
            rtp_budget: rtp_budget.max(1),
            txns: Transactions::new(config.timers),
            config,
            addrs,
            calls: Slab::default(),
            dialogs: HashMap::new(),
            uses: ShardMap::new(),
            pending_count: 0,
            merging: hashbrown::HashMap::with_hasher(RandomState::new()),
            pending_call: HashMap::new(),
            session_deadlines: BTreeSet::new(),
            prack_deadlines: BTreeSet::new(),
            subscriptions: HashMap::new(),
            sub_deadlines: BTreeSet::new(),
            queries: HashMap::new(),
            failover: HashMap::new(),
            query_deadlines: BTreeSet::new(),
            next_query: 0,
            out: VecDeque::new(),
            now,
            clock: Clock {
                start: now,
                unix_at_start: unix_now,
            },
            learned: HashMap::new(),
            flows: HashMap::new(),
            panics: 0,
            rejected_overload: 0,
            rejected_media_late: 0,
            rejected_media_room: 0,
            media_behind: false,
            media_room: None,
            shutting_down: None,
        }
    }

    // ------------------------------------------------------------------ inputs

    /// Whether media pacing is behind: while it is, new INVITEs get 503 with
    /// Retry-After, like any other overload; calls up and cheap requests
    /// (OPTIONS, BYE, REGISTER) are served as before.
    pub(crate) fn set_media_behind(&mut self, behind: bool) {
        self.media_behind = behind;
    }

    /// How many more media sessions the media threads can take before they
    /// are loaded past their ceiling (`None`: not known). A new INVITE is
    /// refused when the calls in progress, it included, are more than that:
    /// each may start a session.
    pub(crate) fn set_media_room(&mut self, room: Option<usize>) {
        self.media_room = room;
    }

    /// A message arrived (parsed and stamped by the transports).
    pub(crate) fn handle_message(&mut self, now: Instant, r: Received) {
        self.now = now;
        let mut target = Target::new(r.kind, r.source);
        if let Some(c) = r.conn {
            target = target.with_conn(c);
        }
        let peer = Peer {
            target,
            local: r.local,
        };
        if let Message::Response(resp) = &r.message {
            self.learn_public_address(r.local, resp);
        }
        if let Message::Request(req) = &r.message {
            if let Some(resp) = precheck::precheck(req, &self.config) {
                // An INVITE whose headers make a transaction: answered in one,
                // which retransmits the final until the ACK (`on_request`).
                let transactional = *req.method() == crate::message::Method::Invite
                    && resp.status() != crate::message::StatusCode::BAD_REQUEST;
                if transactional {
                    return self
                        .txns
                        .handle_message(now, r.message, peer, r.kind.is_reliable());
                }
                // A request we will not process: answered outside any transaction (§8.2).
                let reliable = peer.target.kind.is_reliable();
                self.txns
                    .send_stateless(now, Message::Response(resp), peer, reliable);
                return;
            }
        }
        self.txns
            .handle_message(now, r.message, peer, r.kind.is_reliable());
    }

    /// A command from a handle, a call task or the driver.
    pub(crate) fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.now = now;
        match cmd {
            Command::Reply { call, key, reply } => self.on_reply(call, key, reply),
            Command::CallDone { call } => self.end_call(call),
            Command::Crashed { call, key } => self.on_crash(call, key),
            Command::Dial {
                spec,
                media,
                events,
                reply,
            } => self.dial(spec, media, events, reply),
            Command::Cancel { call } => self.cancel(call),
            Command::InDialog {
                call,
                method,
                headers,
                body,
                reply,
            } => {
                if let Err(e) = self.in_dialog(call, method, headers, body, reply) {
                    tracing::debug!(error = %e, "in-dialog request refused");
                }
            }
            Command::Send { request, reply } => self.send_out_of_dialog(request, reply),
            Command::Shutdown { grace, done } => self.shutdown(now + grace, done),
            Command::Resolved { query, result } => self.on_resolved(query, *result),
            Command::TransportError { key } => self.txns.transport_error(now, &key),
            Command::KeepAlive { registrar } => self.keep_alive(&registrar),
            Command::Transfer {
                call,
                refer_to,
                subscribe,
                reply,
            } => self.transfer(call, refer_to, subscribe, reply),
            Command::TransferProgress {
                call,
                status,
                reply,
            } => {
                self.refer_progress(call, status, Some(reply));
            }
            Command::DialogOf { call, reply } => {
                let _ = reply.send(self.dialog_of(call));
            }
            Command::MailboxChanged { user } => self.mailbox_changed(&user),
        }
    }

    /// Time has come to `now`: transaction timers, lookups given up.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.txns.handle_timeout(now);
        while let Some(&(at, query)) = self.query_deadlines.first() {
            if at > now {
                break;
            }
            self.query_deadlines.pop_first();
            self.on_query_timeout(query);
        }
        self.on_session_timers();
        self.on_prack_timers();
        self.on_subscription_timers();
    }

    // ------------------------------------------------------------------ outputs

    /// The next thing to do, until `None`; call after every input.
    #[must_use]
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(o) = self.out.pop_front() {
                return Some(o);
            }
            if let Some(t) = self.txns.poll_transmit() {
                return Some(Output::Transmit(t));
            }
            let ev = self.txns.poll_event()?;
            self.on_event(ev);
        }
    }

    /// When to call [`UaCore::handle_timeout`] next.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.txns.poll_timeout(),
            self.query_deadlines.first().map(|(at, _)| *at),
            self.next_session_timer(),
            self.next_prack_timer(),
            self.next_subscription_timer(),
            // Once passed, the deadline is the driver's cue to stop (`is_done`), not a timer.
            self.shutting_down
                .as_ref()
                .map(|(d, _)| *d)
                .filter(|d| *d > self.now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// True once a shutdown has finished (everything drained or the grace
    /// period over): the driver then calls [`UaCore::close`].
    pub(crate) fn is_done(&self, now: Instant) -> bool {
        self.shutting_down.as_ref().is_some_and(|(deadline, _)| {
            (self.calls.is_empty() && self.txns.is_empty()) || now >= *deadline
        })
    }

    /// Tells every call still there that the endpoint stops; returns who
    /// waits for the shutdown to finish.
    pub(crate) fn close(&mut self) -> Option<oneshot::Sender<()>> {
        for (_, call) in self.calls.iter() {
            match &call.state {
                CallState::Uas { task, .. } => {
                    let _ = task.try_send(ToCall::Shutdown);
                }
                CallState::Uac(u) => u.events.emit(CallEvent::Ended),
            }
        }
        for (_, q) in self.queries.drain() {
            q.fail(super::UaError::Shutdown);
        }
        self.shutting_down.take().map(|(_, done)| done)
    }

    /// A CRLF pair on the registrar's flow (RFC 5626 §4.4.1; UDP and streams
    /// alike: the transports answer a CRLF pair on a stream with a CRLF).
    fn keep_alive(&mut self, registrar: &Uri) {
        let Some(peer) = self.flows.get(&registrar.to_string()) else {
            return;
        };
        let reliable = peer.target.kind.is_reliable();
        self.out.push_back(Output::Transmit(Transmit {
            dest: peer.clone(),
            data: bytes::Bytes::from_static(b"\r\n\r\n"),
            reliable,
            key: None,
        }));
    }

    /// The counts, for the endpoint's handles.
    pub(crate) fn stats(&self) -> EndpointStats {
        EndpointStats {
            transactions: self.txns.len(),
            server_transactions: self.txns.server_len(),
            dialogs: self.dialogs.len(),
            calls: self.calls.len(),
            panics: self.panics,
            rejected_overload: self.rejected_overload,
            rejected_media_late: self.rejected_media_late,
            rejected_media_room: self.rejected_media_room,
            ..precheck::auth_stats(&self.config)
        }
    }

    // ------------------------------------------------------------------ events

    fn on_event(&mut self, ev: Event<Peer>) {
        match ev {
            Event::Request {
                key,
                request,
                source,
            } => self.on_request(key, request, source),
            Event::Cancel {
                cancel,
                invite,
                request,
                ..
            } => self.on_cancel(cancel, invite, request),
            Event::Ack {
                request, source, ..
            } => self.on_ack(request, source),
            Event::Response { key, response } => self.on_response(key, response),
            Event::StrayResponse { response, .. } => self.on_stray(&response),
            Event::Timeout { key } => self.on_failure(&key, super::UaError::Timeout),
            Event::TransportError { key } => self.on_failure(&key, super::UaError::SendFailed),
            Event::AckTimeout { key } => self.on_ack_timeout(&key),
            Event::Terminated { key } => {
                self.drop_pending(&key);
                self.pending_call.remove(&key);
                self.uses.remove(&key);
            }
        }
    }

    fn shutdown(&mut self, deadline: Instant, done: oneshot::Sender<()>) {
        info!("shutting down: new calls get 503, calls in progress are hung up");
        self.shutting_down = Some((deadline, done));
        let ids: Vec<CallId> = self.calls.iter().map(|(id, _)| id).collect();
        for id in ids {
            let uac_early = matches!(self.calls.get(id).map(|c| &c.state), Some(CallState::Uac(u)) if !u.final_received);
            if uac_early {
                self.cancel(id);
            } else {
                self.send_bye(id);
            }
        }
    }

    // ------------------------------------------------------------------ tables

    fn owner(&self, key: &TransactionKey) -> Option<&Owner> {
        self.uses.get(key)?.owner.as_ref()
    }

    fn set_owner(&mut self, key: TransactionKey, owner: Owner) {
        self.uses.get_or_insert_with(key, Use::default).owner = Some(owner);
    }

    fn take_owner(&mut self, key: &TransactionKey) -> Option<Owner> {
        self.uses.get_mut(key)?.owner.take()
    }

    fn pending(&self, key: &TransactionKey) -> Option<&Pending> {
        self.uses.get(key)?.pending.as_deref()
    }

    fn set_pending(&mut self, key: TransactionKey, pending: Pending) {
        if let Some(m) = merge_key(&pending.request) {
            // The first of merged requests keeps the entry (a 482'd copy must
            // not take it over).
            if !self.merging.contains_key(&m) {
                self.merging.insert(m.to_owned(), key.clone());
            }
        }
        let u = self.uses.get_or_insert_with(key, Use::default);
        if u.pending.replace(Box::new(pending)).is_none() {
            self.pending_count += 1;
        }
    }

    /// §8.2.2.2: a request outside a dialog with the Call-ID, From tag and
    /// CSeq of one still in progress but another transaction (it reached us
    /// twice, forked by a proxy): the transaction it duplicates.
    fn merged_with(&self, key: &TransactionKey, request: &Request) -> Option<&TransactionKey> {
        let m = merge_key(request)?;
        self.merging.get(&m).filter(|k| *k != key)
    }

    /// The load the overload cap measures: server requests still waiting for
    /// their final response, and calls whose 2xx has not been ACKed yet.
    /// Those hold what their answer set up (RTP sockets, a call task) until
    /// the ACK or 64·T1 (§13.3.1.4): a flood that never ACKs must not take
    /// more than the cap allows.
    fn in_progress(&self) -> usize {
        self.pending_count + self.txns.awaiting_ack()
    }

    /// True when a new INVITE is to be refused with 503 (and Retry-After):
    /// more in progress than `max_server_transactions`, or than half the RTP
    /// port pairs (each call in progress may hold one; the other half stays
    /// for the calls that complete their handshake), or more requests waiting
    /// for their answer than pairs left free (each answer with audio binds
    /// one; calls hold theirs until their media ends, so a range that
    /// established calls fill refuses here, before any task, rather than in
    /// the handler's answer), or media that is already late for the calls it
    /// has, or media threads whose room the calls in progress fill (each
    /// may start a session: judged before they do, where lateness shows
    /// only after).
    fn overloaded(&self) -> bool {
        let load = self.in_progress();
        self.media_behind
            || self.media_room_full()
            || load > self.config.max_server_transactions
            || load > self.rtp_budget
            || self.pending_count > self.free_rtp_pairs()
    }

    /// The calls in progress (this INVITE counted too) outnumber the room
    /// the media threads have left.
    fn media_room_full(&self) -> bool {
        let load = self.in_progress();
        self.media_room.is_some_and(|room| load > room)
    }

    /// Counts a refusal for overload, and the media guard behind it if any.
    pub(super) fn count_overload(&mut self) {
        self.rejected_overload += 1;
        if self.media_behind {
            self.rejected_media_late += 1;
        } else if self.media_room_full() {
            self.rejected_media_room += 1;
        }
    }

    /// RTP port pairs no call holds now.
    fn free_rtp_pairs(&self) -> usize {
        let ports = self
            .config
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ports.capacity() - ports.in_use()
    }

    /// Forgets a server request (answered, or its transaction ended).
    fn drop_pending(&mut self, key: &TransactionKey) {
        let Some(u) = self.uses.get_mut(key) else {
            return;
        };
        let Some(p) = u.pending.take() else {
            return;
        };
        self.pending_count -= 1;
        if let Some(m) = merge_key(&p.request) {
            if self.merging.get(&m) == Some(key) {
                self.merging.remove(&m);
            }
        }
        if self.merging.capacity() > 1024 && self.merging.len() < self.merging.capacity() / 8 {
            self.merging.shrink_to(self.merging.len() * 2);
        }
    }

    /// The local tag of a call we answer (None for a call we placed).
    fn uas_tag(&self, call: Option<CallId>) -> Option<String> {
        match &self.calls.get(call?)?.state {
            CallState::Uas { local_tag, .. } => Some(local_tag.clone()),
            CallState::Uac(_) => None,
        }
    }

    fn end_call(&mut self, id: CallId) {
        if let Some(call) = self.calls.remove(id) {
            self.drop_timer(id, call.timer);
            if let Some(d) = call.dialog {
                self.dialogs.remove(d.id());
            }
            if let Some((_, early)) = call.invites.initial {
                if self.dialogs.get(&early) == Some(&id) {
                    self.dialogs.remove(&early);
                }
            }
        }
        shrink_if_sparse(&mut self.dialogs);
    }

    /// A new query for the driver, given up on after 64·T1.
    fn query(&mut self, query: Query) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query += 1;
        let give_up = self.now + self.config.timers.t1 * 64;
        self.query_deadlines.insert((give_up, id));
        self.queries.insert(id, query);
        id
    }

    fn take_query(&mut self, id: QueryId) -> Option<Query> {
        let q = self.queries.remove(&id)?;
        self.query_deadlines.retain(|(_, q)| *q != id);
        shrink_if_sparse(&mut self.queries);
        Some(q)
    }

    // ------------------------------------------------------------------ addresses

    fn local_for(&self, kind: TransportKind) -> SocketAddr {
        super::route::local_for(&self.addrs, kind)
    }

    /// Our bound address for `kind` if it is a specific one; a wildcard-bound
    /// transport needs the driver to find the address that routes to a peer.
    fn specific_local(&self, kind: TransportKind) -> Option<SocketAddr> {
        Some(self.local_for(kind)).filter(|a| !a.ip().is_unspecified())
    }

    /// What a response says about how the peer sees us: its top Via's
    /// `received` and `rport` (RFC 3581 §4), when they differ from our sent-by.
    fn learn_public_address(&mut self, local: SocketAddr, resp: &Response) {
        let Some(via) = resp.headers().top_via() else {
            return;
        };
        let Some(ip) = via
            .received()
            .and_then(|r| r.parse::<std::net::IpAddr>().ok())
        else {
            return;
        };
        let port = via.rport().flatten().or(via.port).unwrap_or(local.port());
        let public = SocketAddr::new(ip, port);
        if public.ip() == local.ip() && public.port() == local.port() {
            self.learned.remove(&local);
            return;
        }
        if self.learned.insert(local, public) != Some(public) {
            info!(%local, %public, "a NAT is in the way: our public address");
        }
    }

    /// The address our Contact names for `local`: the advertised one, else the
    /// public one responses showed, else `local`.
    fn contact_addr(&self, local: SocketAddr) -> SocketAddr {
        match (self.config.advertise, self.learned.get(&local)) {
            (Some(ip), _) => SocketAddr::new(ip, local.port()),
            (None, Some(public)) => *public,
            (None, None) => local,
        }
    }

    fn contact(&self, local: SocketAddr, kind: TransportKind) -> String {
        let shown = self.contact_addr(local);
        let mut uri = SipUri::new(Some(&self.config.user), Host::from(shown.ip()));
        uri.port = Some(shown.port());
        if kind != TransportKind::Udp {
            uri.params = uri
                .params
                .with("transport", Some(&kind.as_via_str().to_ascii_lowercase()));
        }
        // Written into a string sized for it: `format!` grew its string
        // step by step (five allocations for one Contact, now two, on every
        // dialog-forming answer).
        let mut out = String::with_capacity(96);
        let _ = write!(out, "<{uri}>");
        out
    }

    /// Our Via for a request: sent-by (our address, or the advertised one), a
    /// new branch, and `rport` (RFC 3581).
    fn via(config: &Config, local: SocketAddr, kind: TransportKind) -> String {
        let ip = config.advertise.unwrap_or(local.ip());
        let mut via = Via::new(
            kind.as_via_str(),
            Host::from(ip),
            Some(local.port()),
            &config.entropy.branch(),
        );
        via.set_param("rport", None);
        via.to_string()
    }
}
