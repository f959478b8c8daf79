//! The transaction layer: the state machines of RFC 3261 §17 (with RFC 6026)
//! and the timer wheel that drives them.

use super::key::TransactionKey;
use super::timer::{Timer, TimerConfig};
use super::{Event, State, TransactionError, Transmit};
use crate::message::{HeaderName, Message, Method, Request, Response, StatusCode};
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::shard_map::{Prehashed, ShardMap};
use std::fmt::Debug;
use std::time::{Duration, Instant};
use tracing::debug;

type Id = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

/// What matches an ACK to the 2xx it acknowledges (§13.3.1.4, §12.2.1.1):
/// Call-ID, CSeq number, From tag, To tag.
///
/// The three strings are kept in one allocation (one made per 2xx, one per
/// copy, one per ACK looked up, instead of three each): each followed by a
/// newline, which none of them can hold (a Call-ID is `word ["@" word]`, a
/// tag a `token`, RFC 3261 §25.1), a tag marked present (`+`) or absent (`-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckId {
    cseq: u32,
    text: Box<str>,
}

impl AckId {
    fn of(h: &crate::message::Headers) -> Option<AckId> {
        let call_id = h.call_id()?;
        let cseq = h.cseq()?.seq;
        let from = h.from().and_then(|f| f.tag());
        let to = h.to().and_then(|t| t.tag());
        let call_id = call_id.as_str();
        let len = call_id.len() + 5 + from.map_or(0, str::len) + to.map_or(0, str::len);
        let mut text = String::with_capacity(len);
        text.push_str(call_id);
        text.push('\n');
        for tag in [from, to] {
            match tag {
                Some(t) => {
                    text.push('+');
                    text.push_str(t);
                }
                None => text.push('-'),
            }
            text.push('\n');
        }
        Some(AckId {
            cseq,
            text: text.into_boxed_str(),
        })
    }
}

/// One armed timer of a transaction: which, and its slot in the wheel.
type Armed = (Timer, (Instant, u64));

/// A transaction's armed timers, inline: it has two at most at once (A and
/// B, E and F, G and H, the 2xx retransmission and L; the 100 Trying one
/// ends with any response), and should that change they spill to the heap.
/// A `Vec` was an allocation per transaction and one more cold read for
/// each timer fired.
type ArmedList = SmallVec<[Armed; 2]>;

#[derive(Debug)]
struct Txn<D> {
    key: TransactionKey,
    kind: Kind,
    state: State,
    /// Client: where the request goes. Server: where the request came from.
    peer: D,
    reliable: bool,
    /// The request that created the transaction, until a final response
    /// (after which nothing needs it: records in Completed, Accepted or
    /// Confirmed linger for up to 64*T1 to absorb retransmissions, and at a
    /// thousand calls a second there are tens of thousands of them).
    request: Option<Box<Request>>,
    /// Client: the request in wire format, for retransmission (emptied with
    /// `request`).
    request_bytes: Bytes,
    /// Server: the last response sent. Client INVITE: the ACK for a non-2xx.
    last: Option<Bytes>,
    /// The current interval of the retransmission timer (A, E, G or 2xx).
    interval: Duration,
    /// Server INVITE: the To tag of the final response (RFC 2543 ACK matching).
    final_to_tag: Option<Box<str>>,
    /// Server INVITE in Accepted: the ACK arrived (or the TU said so).
    acked: bool,
    /// Server INVITE in Accepted: its entry in the ACK index.
    ack_id: Option<AckId>,
    armed: ArmedList,
}

impl<D> Txn<D> {
    /// Drops what only an unanswered transaction needs: from its final
    /// response on, it answers retransmissions with `last` and nothing else.
    fn release_request(&mut self) {
        self.request = None;
        self.request_bytes = Bytes::new();
    }
}

/// How late the layer lets a [lazy](Timer::is_lazy) timer fire: its wake-up
/// comes at most this long after the first one due, and fires every timer
/// due by then. A busy endpoint ends thousands of transactions a second (each
/// 64·T1 after it began); woken for each, its runtime thread did little else
/// between messages and went on doing it for 32 s after the last call (the
/// cps bench: a fifth of the CPU per call was spent after the calls).
/// (20 ms: at most 50 such wake-ups a second, and a few hundred ends each at
/// 7000 calls/s, where 100 ms made bursts of over a thousand.)
pub(crate) const LAZY_GRAIN: Duration = Duration::from_millis(20);

/// The most lazy timers one [`Transactions::handle_timeout`] fires; the rest
/// of those due wait for the next call, which [`Transactions::poll_timeout`]
/// asks for at once. A backlog (a grain's worth at the top of the ramp, more
/// after the thread was held up) is hundreds of ends of cold records, a
/// millisecond or more that messages arriving meanwhile would wait behind;
/// in slices, they go in between.
pub(crate) const LAZY_BATCH: usize = 128;

/// Timers of all transactions, ordered by deadline then by arming order:
/// the [lazy](Timer::is_lazy) ones apart, since they wake the layer later.
#[derive(Debug, Default)]
struct Wheel {
    exact: BTreeMap<(Instant, u64), (Id, Timer)>,
    lazy: BTreeMap<(Instant, u64), (Id, Timer)>,
    seq: u64,
    /// The last firing stopped at [`LAZY_BATCH`] with lazy timers still due.
    lazy_behind: bool,
}

impl Wheel {
    fn map(&mut self, timer: Timer) -> &mut BTreeMap<(Instant, u64), (Id, Timer)> {
        if timer.is_lazy() {
            &mut self.lazy
        } else {
            &mut self.exact
        }
    }

    /// Arms `timer` at `at`, replacing the same timer if armed.
    fn arm(&mut self, armed: &mut ArmedList, id: Id, timer: Timer, at: Instant) {
        self.cancel(armed, timer);
        self.seq += 1;
        let slot = (at, self.seq);
        self.map(timer).insert(slot, (id, timer));
        armed.push((timer, slot));
    }

    fn cancel(&mut self, armed: &mut ArmedList, timer: Timer) {
        if let Some(i) = armed.iter().position(|(t, _)| *t == timer) {
            let (_, slot) = armed.swap_remove(i);
            self.map(timer).remove(&slot);
        }
    }

    /// Takes the earliest timer due at `now`: lazy or not, or exact only.
    fn pop_due(&mut self, now: Instant, lazy_too: bool) -> Option<((Instant, u64), (Id, Timer))> {
        let exact = self.exact.first_key_value().map(|(k, _)| *k);
        let lazy = self
            .lazy
            .first_key_value()
            .map(|(k, _)| *k)
            .filter(|_| lazy_too);
        let map = match (exact, lazy) {
            (Some(e), Some(l)) if l < e => &mut self.lazy,
            (Some(_), _) => &mut self.exact,
            (None, Some(_)) => &mut self.lazy,
            (None, None) => return None,
        };
        let entry = map.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove_entry())
    }

    /// When to fire timers next: the first exact one's deadline, or a grain
    /// after the first lazy one's, whichever comes first.
    fn next_wake(&self) -> Option<Instant> {
        let exact = self.exact.first_key_value().map(|((at, _), _)| *at);
        let lazy = self.lazy.first_key_value().map(|((at, _), _)| {
            if self.lazy_behind {
                *at
            } else {
                *at + LAZY_GRAIN
            }
        });
        match (exact, lazy) {
            (Some(e), Some(l)) => Some(e.min(l)),
            (e, l) => e.or(l),
        }
    }

    fn cancel_all(&mut self, armed: &mut ArmedList) {
        for (timer, slot) in armed.drain(..) {
            self.map(timer).remove(&slot);
        }
    }
}

/// The transaction layer of one endpoint (RFC 3261 §17, RFC 6026).
///
/// `D` is the caller's destination type; see the [module docs](super).
#[derive(Debug)]
pub struct Transactions<D> {
    config: TimerConfig,
    /// A busy endpoint keeps hundreds of thousands of transactions (each
    /// lingers up to 64*T1 after its final response). The tables are
    /// [`ShardMap`]s, so a growth moves a 64th of their entries while the
    /// endpoint waits, and the records are boxed, so it moves 24-byte entries,
    /// not whole records.
    txns: ShardMap<Id, Box<Txn<D>>, Prehashed>,
    index: ShardMap<TransactionKey, Id, Prehashed>,
    /// INVITE server transactions in Accepted waiting for the ACK of their 2xx.
    acks: ShardMap<AckId, Id>,
    wheel: Wheel,
    next_id: Id,
    servers: usize,
    /// INVITE server transactions in Accepted whose ACK has not come.
    unacked: usize,
    transmits: VecDeque<Transmit<D>>,
    events: VecDeque<Event<D>>,
}

impl<D: Clone + Debug> Transactions<D> {
    /// An empty layer with these timer values. T1 is raised to 1 ms if
    /// smaller: a zero retransmission interval would never let time advance.
    pub fn new(mut config: TimerConfig) -> Self {
        config.t1 = config.t1.max(Duration::from_millis(1));
        config.t2 = config.t2.max(config.t1);
        Transactions {
            config,
            txns: ShardMap::new(),
            index: ShardMap::new(),
            acks: ShardMap::new(),
            wheel: Wheel::default(),
            next_id: 0,
            servers: 0,
            unacked: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer values.
    pub fn config(&self) -> &TimerConfig {
        &self.config
    }

    /// Number of live transactions, client and server.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// True if no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Number of live server transactions (for overload protection).
    pub fn server_len(&self) -> usize {
        self.servers
    }

    /// Number of INVITE server transactions that sent a 2xx and have not
    /// seen its ACK yet (RFC 6026 Accepted): calls answered but not
    /// confirmed, each holding what its answer set up (RTP sockets) until
    /// the ACK or 64*T1 ([`Event::AckTimeout`]).
    pub fn awaiting_ack(&self) -> usize {
        self.unacked
    }

    /// The state of a transaction, or `None` if it does not exist (any more).
    pub fn state(&self, key: &TransactionKey) -> Option<State> {
        self.index
            .get(key)
            .and_then(|id| self.txns.get(id))
            .map(|t| t.state)
    }

    /// The request that created a transaction, while it waits for its final
    /// response.
    pub fn request(&self, key: &TransactionKey) -> Option<&Request> {
        self.index
            .get(key)
            .and_then(|id| self.txns.get(id))
            .and_then(|t| t.request.as_deref())
    }

    /// The CANCEL for client INVITE transaction `key` (RFC 3261 §9.1):
    /// Request-URI, Call-ID, From, To, top Via (same branch) and Route of the
    /// INVITE, CSeq with its number and method CANCEL. Send it with
    /// [`Self::send_request`] (it is a transaction of its own), and only
    /// once a provisional response has arrived (state Proceeding).
    pub fn cancel_request(&self, key: &TransactionKey) -> Result<Request, TransactionError> {
        let t = self
            .index
            .get(key)
            .and_then(|id| self.txns.get(id))
            .ok_or(TransactionError::UnknownTransaction)?;
        let Some(invite) = t
            .request
            .as_deref()
            .filter(|_| t.kind == Kind::InviteClient)
        else {
            return Err(TransactionError::InvalidState);
        };
        Ok(derived_request(invite, Method::Cancel, invite.headers()))
    }

    // ---------------------------------------------------------------- inputs

    /// Starts a client transaction for `req` (INVITE §17.1.1 or non-INVITE
    /// §17.1.2) and queues its first transmission. The request must carry its
    /// top Via with a `z9hG4bK` branch and a CSeq matching its method. ACK is
    /// refused: the ACK for a 2xx is sent with [`Self::send_stateless`], the
    /// ACK for a non-2xx by the transaction itself.
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Request,
        dest: D,
        reliable: bool,
    ) -> Result<TransactionKey, TransactionError> {
        let method = req.method().clone();
        if method == Method::Ack {
            return Err(TransactionError::AckNotAllowed);
        }
        let h = req.headers();
        let via = h.top_via().ok_or(TransactionError::MissingBranch)?;
        let branch = match via.branch() {
            Some(b) if via.has_rfc3261_branch() => b,
            _ => return Err(TransactionError::MissingBranch),
        };
        if h.cseq().is_none_or(|c| c.method != method) {
            return Err(TransactionError::BadCSeq);
        }
        let key = TransactionKey::client(branch, method.clone());
        if self.index.contains_key(&key) {
            return Err(TransactionError::Duplicate);
        }
        let invite = method == Method::Invite;
        let (kind, state, retransmit, timeout) = if invite {
            (Kind::InviteClient, State::Calling, Timer::A, Timer::B)
        } else {
            (Kind::NonInviteClient, State::Trying, Timer::E, Timer::F)
        };
        let data = req.to_bytes();
        let id = self.insert(Txn {
            key: key.clone(),
            kind,
            state,
            peer: dest.clone(),
            reliable,
            request: Some(Box::new(req)),
            request_bytes: data.clone(),
            last: None,
            interval: self.config.t1,
            final_to_tag: None,
            acked: false,
            ack_id: None,
            armed: ArmedList::new(),
        });
        self.transmits.push_back(Transmit {
            dest,
            data,
            reliable,
            key: Some(key.clone()),
        });
        self.start(now, id, retransmit);
        self.start(now, id, timeout);
        Ok(key)
    }

    /// Sends a message outside any transaction: the ACK for a 2xx, or a
    /// response to a request that has no server transaction.
    pub fn send_stateless(&mut self, _now: Instant, msg: Message, dest: D, reliable: bool) {
        self.transmits.push_back(Transmit {
            dest,
            data: msg.to_bytes(),
            reliable,
            key: None,
        });
    }

    /// Feeds a received (parsed and validated) message. Messages without a top
    /// Via or a CSeq are dropped.
    pub fn handle_message(&mut self, now: Instant, msg: Message, source: D, reliable: bool) {
        match msg {
            Message::Request(r) => self.on_request(now, r, source, reliable),
            Message::Response(r) => self.on_response(now, r, source),
        }
    }

    /// Sends `resp` on server transaction `key` (§17.2.1, §17.2.2). A 2xx to
    /// INVITE moves the transaction to Accepted and is retransmitted by the
    /// layer until the ACK ([`Self::ack_received`] or matched by the layer) or
    /// 64*T1 ([`Event::AckTimeout`]), §13.3.1.4 and RFC 6026.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        resp: Response,
    ) -> Result<(), TransactionError> {
        let id = *self
            .index
            .get(key)
            .ok_or(TransactionError::UnknownTransaction)?;
        let t = self
            .txns
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        let status = resp.status();
        let next = match (t.kind, t.state) {
            (Kind::InviteServer, State::Proceeding) if status.is_provisional() => State::Proceeding,
            (Kind::InviteServer, State::Proceeding) if status.is_success() => State::Accepted,
            (Kind::InviteServer, State::Proceeding) => State::Completed,
            // RFC 6026 §7.1: further 2xx from the TU are sent in Accepted.
            (Kind::InviteServer, State::Accepted) if status.is_success() => State::Accepted,
            (Kind::NonInviteServer, State::Trying | State::Proceeding) if !status.is_final() => {
                State::Proceeding
            }
            (Kind::NonInviteServer, State::Trying | State::Proceeding) => State::Completed,
            _ => return Err(TransactionError::InvalidState),
        };
        let data = resp.to_bytes();
        let prev = t.state;
        t.state = next;
        if status.is_final() {
            t.release_request();
        }
        t.last = Some(data.clone());
        self.transmits.push_back(Transmit {
            dest: t.peer.clone(),
            data,
            reliable: t.reliable,
            key: Some(t.key.clone()),
        });
        self.wheel.cancel(&mut t.armed, Timer::Trying);
        match (t.kind, next) {
            (Kind::InviteServer, State::Accepted) if prev == State::Proceeding => {
                t.interval = self.config.t1;
                self.unacked += 1;
                if let Some(ack) = AckId::of(resp.headers()) {
                    self.acks.insert(ack.clone(), id);
                    t.ack_id = Some(ack);
                }
                self.start(now, id, Timer::Retransmit2xx);
                self.start(now, id, Timer::L);
            }
            (Kind::InviteServer, State::Completed) => {
                t.final_to_tag = resp.headers().to().and_then(|t| t.tag()).map(Into::into);
                t.interval = self.config.t1;
                self.start(now, id, Timer::G);
                self.start(now, id, Timer::H);
            }
            (Kind::NonInviteServer, State::Completed) => self.start(now, id, Timer::J),
            _ => {}
        }
        Ok(())
    }

    /// Tells the layer that the TU received the ACK for the 2xx sent on INVITE
    /// server transaction `key`: 2xx retransmission stops. The transaction
    /// stays in Accepted, absorbing INVITE retransmissions, until Timer L.
    pub fn ack_received(&mut self, _now: Instant, key: &TransactionKey) {
        if let Some(&id) = self.index.get(key) {
            self.acked(id);
        }
    }

    /// Reports that sending for transaction `key` failed (§17.1.4, §17.2.4):
    /// the transaction ends with [`Event::TransportError`].
    pub fn transport_error(&mut self, _now: Instant, key: &TransactionKey) {
        if let Some(&id) = self.index.get(key) {
            self.events
                .push_back(Event::TransportError { key: key.clone() });
            self.terminate(id);
        }
    }

    /// Fires every timer due at `now`, except that of the timers that only
    /// end a finished transaction (D, I, J, K, L, M) it fires 128 at most:
    /// the rest are due again at once.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.warm_lazy(now);
        let mut lazy = 0;
        while let Some((slot, (id, timer))) = self.wheel.pop_due(now, lazy < LAZY_BATCH) {
            lazy += usize::from(timer.is_lazy());
            if let Some(t) = self.txns.get_mut(&id) {
                t.armed.retain(|(_, s)| *s != slot);
                self.on_timer(now, id, timer);
            }
        }
        self.wheel.lazy_behind = lazy >= LAZY_BATCH
            && self
                .wheel
                .lazy
                .first_key_value()
                .is_some_and(|((at, _), _)| *at <= now);
    }

    /// Reads, for each lazy timer due at `now` (as many as one call fires),
    /// what ending its transaction will read: the record, its key and its
    /// entry in the index. They went cold in the 64·T1 since the call; read
    /// one after the other in a short loop, the misses overlap, where the
    /// ends themselves, long and each waiting on its own misses, would take
    /// them one at a time. Returns what it read (so that it is read).
    fn warm_lazy(&self, now: Instant) -> u64 {
        let mut warm = 0;
        let due = self.wheel.lazy.iter().take(LAZY_BATCH);
        for (_, (id, _)) in due.take_while(|((at, _), _)| *at <= now) {
            if let Some(t) = self.txns.get(id) {
                warm ^= t.key.prehash() ^ t.armed.len() as u64;
                warm ^= self.index.get(&t.key).copied().unwrap_or_default();
            }
        }
        std::hint::black_box(warm)
    }

    // --------------------------------------------------------------- outputs

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<D>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<D>> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next: a timer's deadline,
    /// or up to 20 ms after it for a timer that only ends a finished
    /// transaction (D, I, J, K, L, M), so that those end in batches.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wheel.next_wake()
    }

    // ------------------------------------------------------------- internals

    fn insert(&mut self, txn: Txn<D>) -> Id {
        let id = self.next_id;
        self.next_id += 1;
        if matches!(txn.kind, Kind::InviteServer | Kind::NonInviteServer) {
            self.servers += 1;
        }
        self.index.insert(txn.key.clone(), id);
        self.txns.insert(id, Box::new(txn));
        id
    }

    fn terminate(&mut self, id: Id) {
        let Some(mut t) = self.txns.remove(&id) else {
            return;
        };
        self.wheel.cancel_all(&mut t.armed);
        self.index.remove(&t.key);
        if let Some(ack) = &t.ack_id {
            self.acks.remove(ack);
        }
        if t.kind == Kind::InviteServer && t.state == State::Accepted && !t.acked {
            self.unacked -= 1;
        }
        if matches!(t.kind, Kind::InviteServer | Kind::NonInviteServer) {
            self.servers -= 1;
        }
        self.events.push_back(Event::Terminated { key: t.key });
    }

    /// Starts `timer` with its initial value (timer table); a zero value
    /// (D, I, J, K on reliable transports) ends the transaction at once.
    fn start(&mut self, now: Instant, id: Id, timer: Timer) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        match timer.initial(&self.config, t.reliable) {
            None => {}
            Some(Duration::ZERO) => self.terminate(id),
            Some(d) => self.wheel.arm(&mut t.armed, id, timer, now + d),
        }
    }

    /// Re-arms a retransmission timer with its next interval.
    fn backoff(&mut self, now: Instant, id: Id, timer: Timer, next: Option<Duration>) {
        if let Some(t) = self.txns.get_mut(&id) {
            t.interval = next.unwrap_or_else(|| timer.backoff(&self.config, t.interval));
            self.wheel.arm(&mut t.armed, id, timer, now + t.interval);
        }
    }

    /// Queues the transaction's request (client) or last response (server),
    /// or the ACK of a client INVITE in Completed.
    fn resend(&mut self, id: Id, what: Resend) {
        let Some(t) = self.txns.get(&id) else {
            return;
        };
        let data = match what {
            Resend::Request => Some(t.request_bytes.clone()),
            Resend::Last => t.last.clone(),
        };
        if let Some(data) = data {
            self.transmits.push_back(Transmit {
                dest: t.peer.clone(),
                data,
                reliable: t.reliable,
                key: Some(t.key.clone()),
            });
        }
    }

    fn acked(&mut self, id: Id) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if t.kind == Kind::InviteServer && t.state == State::Accepted {
            if !t.acked {
                self.unacked -= 1;
            }
            t.acked = true;
            self.wheel.cancel(&mut t.armed, Timer::Retransmit2xx);
        }
    }

    fn on_timer(&mut self, now: Instant, id: Id, timer: Timer) {
        let Some(t) = self.txns.get(&id) else {
            return;
        };
        let (kind, state, key) = (t.kind, t.state, t.key.clone());
        match (timer, state) {
            // §17.1.1.2: retransmit, double the interval (no cap for INVITE).
            (Timer::A, State::Calling) => {
                self.resend(id, Resend::Request);
                self.backoff(now, id, timer, None);
            }
            // §17.1.2.2: E doubles up to T2 in Trying, is T2 in Proceeding.
            (Timer::E, State::Trying | State::Proceeding) => {
                self.resend(id, Resend::Request);
                let next = (state == State::Proceeding).then_some(self.config.t2);
                self.backoff(now, id, timer, next);
            }
            // §17.2.1: G retransmits the final response, doubling up to T2.
            (Timer::G, State::Completed) => {
                self.resend(id, Resend::Last);
                self.backoff(now, id, timer, None);
            }
            // §13.3.1.4: the 2xx, until the ACK.
            (Timer::Retransmit2xx, State::Accepted) => {
                self.resend(id, Resend::Last);
                self.backoff(now, id, timer, None);
            }
            (Timer::B, State::Calling)
            | (Timer::F, State::Trying | State::Proceeding)
            | (Timer::H, State::Completed) => {
                self.events.push_back(Event::Timeout { key });
                self.terminate(id);
            }
            (Timer::L, State::Accepted) => {
                if kind == Kind::InviteServer && !self.txns.get(&id).is_some_and(|t| t.acked) {
                    self.events.push_back(Event::AckTimeout { key });
                }
                self.terminate(id);
            }
            (Timer::D | Timer::K | Timer::J, State::Completed)
            | (Timer::I, State::Confirmed)
            | (Timer::M, State::Accepted) => self.terminate(id),
            // §17.2.1: the TU has not answered within 200 ms.
            (Timer::Trying, State::Proceeding) => {
                if let Some(t) = self.txns.get_mut(&id) {
                    if let (None, Some(req)) = (&t.last, &t.request) {
                        t.last = Some(req.response(StatusCode::TRYING).to_bytes());
                        self.resend(id, Resend::Last);
                    }
                }
            }
            _ => debug!(?timer, ?state, "stale transaction timer ignored"),
        }
    }

    fn on_response(&mut self, now: Instant, resp: Response, source: D) {
        let Some(key) = TransactionKey::for_response(&resp) else {
            debug!("response without top Via branch or CSeq dropped");
            return;
        };
        let Some(&id) = self.index.get(&key) else {
            self.events.push_back(Event::StrayResponse {
                response: resp,
                source,
            });
            return;
        };
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        let status = resp.status();
        match (t.kind, t.state) {
            (Kind::InviteClient, State::Calling | State::Proceeding) => {
                if status.is_provisional() {
                    // §17.1.1.2: no more retransmissions, and no Timer B
                    // (RFC 3261 figure 5): the TU cancels if it waits too long.
                    t.state = State::Proceeding;
                    self.wheel.cancel(&mut t.armed, Timer::A);
                    self.wheel.cancel(&mut t.armed, Timer::B);
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                } else if status.is_success() {
                    // RFC 6026 §7.2: Accepted, 2xx retransmissions to the TU.
                    t.state = State::Accepted;
                    t.release_request();
                    self.wheel.cancel_all(&mut t.armed);
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                    self.start(now, id, Timer::M);
                } else {
                    // §17.1.1.3: the transaction ACKs a non-2xx itself.
                    t.state = State::Completed;
                    self.wheel.cancel_all(&mut t.armed);
                    if let Some(invite) = t.request.as_deref() {
                        t.last = Some(build_ack(invite, &resp).to_bytes());
                    }
                    t.release_request();
                    self.resend(id, Resend::Last);
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                    self.start(now, id, Timer::D);
                }
            }
            (Kind::InviteClient, State::Completed) => {
                if status.is_final() && !status.is_success() {
                    // A retransmitted final response: ACK again, absorb.
                    self.resend(id, Resend::Last);
                }
            }
            (Kind::InviteClient, State::Accepted) => {
                if status.is_success() {
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                }
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding) => {
                if status.is_provisional() {
                    t.state = State::Proceeding;
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                } else {
                    t.state = State::Completed;
                    t.release_request();
                    self.wheel.cancel_all(&mut t.armed);
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                    self.start(now, id, Timer::K);
                }
            }
            _ => debug!(?key, %status, "response absorbed"),
        }
    }

    fn on_request(&mut self, now: Instant, req: Request, source: D, reliable: bool) {
        let method = req.method().clone();
        if req.headers().cseq().is_none_or(|c| c.method != method) {
            debug!(%method, "request without matching CSeq dropped");
            return;
        }
        if method == Method::Ack {
            return self.on_ack(now, req, source);
        }
        let Some(key) = TransactionKey::for_request(&req, method.clone(), None) else {
            debug!(%method, "request without top Via dropped");
            return;
        };
        if let Some(&id) = self.index.get(&key) {
            return self.on_retransmission(id);
        }
        let invite = method == Method::Invite;
        let id = self.insert(Txn {
            key: key.clone(),
            kind: if invite {
                Kind::InviteServer
            } else {
                Kind::NonInviteServer
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            peer: source.clone(),
            reliable,
            request: Some(Box::new(req.clone())),
            request_bytes: Bytes::new(),
            last: None,
            interval: self.config.t1,
            final_to_tag: None,
            acked: false,
            ack_id: None,
            armed: ArmedList::new(),
        });
        if invite {
            self.start(now, id, Timer::Trying);
        }
        if method == Method::Cancel {
            // §9.2: the INVITE matched as in §17.2.3, except for the method.
            let invite = TransactionKey::for_request(&req, Method::Invite, None)
                .filter(|k| self.index.contains_key(k));
            self.events.push_back(Event::Cancel {
                cancel: key,
                invite,
                request: req,
                source,
            });
        } else {
            self.events.push_back(Event::Request {
                key,
                request: req,
                source,
            });
        }
    }

    /// A request matching a live server transaction (§17.2.1, §17.2.2).
    fn on_retransmission(&mut self, id: Id) {
        let Some(t) = self.txns.get(&id) else {
            return;
        };
        match (t.kind, t.state) {
            // The last provisional (if any) or the final response again.
            (Kind::InviteServer, State::Proceeding | State::Completed)
            | (Kind::NonInviteServer, State::Proceeding | State::Completed) => {
                self.resend(id, Resend::Last)
            }
            // Trying, Confirmed; Accepted: RFC 6026 §7.1 absorbs them.
            _ => debug!(key = ?t.key, state = ?t.state, "request retransmission absorbed"),
        }
    }

    fn on_ack(&mut self, now: Instant, req: Request, source: D) {
        let Some(key) = TransactionKey::for_request(&req, Method::Invite, None) else {
            debug!("ACK without top Via dropped");
            return;
        };
        let mut found = self.index.get(&key).copied();
        if found.is_none() && key.is_legacy() {
            // RFC 2543 (§17.2.3): the ACK's To tag is the one of our response,
            // which the INVITE did not have.
            let untagged = TransactionKey::for_request(&req, Method::Invite, Some(None));
            let to_tag = req.headers().to().and_then(|t| t.tag());
            found = untagged
                .and_then(|k| self.index.get(&k).copied())
                .filter(|id| {
                    self.txns
                        .get(id)
                        .is_some_and(|t| t.final_to_tag.as_deref() == to_tag)
                });
        }
        if let Some(id) = found {
            let Some(t) = self.txns.get_mut(&id) else {
                return;
            };
            match t.state {
                // §17.2.1: the ACK for our non-2xx.
                State::Completed => {
                    t.state = State::Confirmed;
                    self.wheel.cancel(&mut t.armed, Timer::G);
                    self.wheel.cancel(&mut t.armed, Timer::H);
                    self.start(now, id, Timer::I);
                    return;
                }
                State::Confirmed => return,
                State::Accepted => {
                    self.acked(id);
                    self.events.push_back(Event::Ack {
                        invite: Some(key),
                        request: req,
                        source,
                    });
                    return;
                }
                _ => {
                    debug!(?key, "ACK before a final response dropped");
                    return;
                }
            }
        }
        // The ACK for a 2xx has its own branch (§13.2.2.4); match it to the
        // retransmitting INVITE transaction by dialog and CSeq (§13.3.1.4).
        let invite = AckId::of(req.headers())
            .and_then(|a| self.acks.get(&a).copied())
            .and_then(|id| {
                self.acked(id);
                self.txns.get(&id).map(|t| t.key.clone())
            });
        self.events.push_back(Event::Ack {
            invite,
            request: req,
            source,
        });
    }
}

#[derive(Clone, Copy)]
enum Resend {
    Request,
    Last,
}

/// The ACK for a non-2xx final response (§17.1.1.3): the INVITE's
/// Request-URI, Call-ID, From, top Via (same branch) and Route headers, the
/// response's To (with its tag), and CSeq with the INVITE's number and ACK.
/// Gives memory back after a burst: a map that grew to hold a peak (tens of
/// thousands of transactions waiting out Timer J or L) keeps its capacity when
/// it empties, so it is shrunk once it is less than an eighth full. Amortized
/// O(1): each shrink moves at most a quarter of the entries removed since the
/// last resize.
pub(crate) fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 1024 && map.len() < map.capacity() / 8 {
        map.shrink_to(map.len() * 2);
    }
}

fn build_ack(invite: &Request, resp: &Response) -> Request {
    derived_request(invite, Method::Ack, resp.headers())
}

/// ACK (§17.1.1.3) or CANCEL (§9.1) for `invite`: its Request-URI, top Via,
/// From, Call-ID and Route, CSeq number with `method`, To from `to`.
fn derived_request(invite: &Request, method: Method, to: &crate::message::Headers) -> Request {
    let mut ack = Request::new(method.clone(), invite.uri().clone());
    let ih = invite.headers();
    let h = ack.headers_mut();
    if let Some(via) = ih.top_via() {
        // A Via we printed is always valid.
        let _ = h.push(HeaderName::Via, via.to_string());
    }
    let _ = h.push(HeaderName::MaxForwards, "70");
    h.copy_from(ih, &[HeaderName::From]);
    h.copy_from(to, &[HeaderName::To]);
    h.copy_from(ih, &[HeaderName::CallId]);
    if let Some(cseq) = ih.cseq() {
        let _ = h.push(HeaderName::CSeq, format!("{} {method}", cseq.seq));
    }
    h.copy_from(ih, &[HeaderName::Route]);
    ack
}

#[cfg(test)]
mod tests {
    use super::shrink_if_sparse;
    use std::collections::HashMap;

    #[test]
    fn a_map_emptied_after_a_peak_gives_its_memory_back() {
        let mut m: HashMap<u32, [u8; 64]> = (0..50_000).map(|i| (i, [0; 64])).collect();
        let peak = m.capacity();
        for i in 0..49_990 {
            m.remove(&i);
            shrink_if_sparse(&mut m);
        }
        assert_eq!(m.len(), 10);
        assert!(m.capacity() <= 2048, "{} of {peak} kept", m.capacity());
        // Small maps are left alone: no churn at low load.
        let mut small: HashMap<u32, u8> = HashMap::with_capacity(500);
        small.insert(1, 1);
        let cap = small.capacity();
        shrink_if_sparse(&mut small);
        assert_eq!(small.capacity(), cap);
    }
}
