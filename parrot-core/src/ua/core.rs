//! The endpoint's core task: it owns the transports, the transaction layer and
//! the dialogs, and talks to one task per call through channels. Handler code
//! never runs here, so a slow or panicking handler cannot stall the stack.

use super::UaError;
use super::endpoint::Counters;
use super::handler::{EndReason, Incoming, SipHandler, dispatch};
use super::media::{MediaContext, PendingMedia};
use super::registrar::Registrar;
use super::reply::Reply;
use super::uac::{CallEvent, DialSpec, EventSender, UacCall};
use crate::dialog::{Dialog, DialogId, new_branch, new_tag};
use crate::media::{MediaEvent, MediaSession, Ports};
use crate::message::{
    HeaderName, Headers, Host, Message, Method, NameAddr, Request, Response, SipUri, StatusCode,
    Uri, Via,
};
use crate::transaction::shrink_if_sparse;
use crate::transaction::{Event, TimerConfig, TransactionKey, Transactions};
use crate::transport::{Received, Target, TransportKind, Transports};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// Endpoint settings.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) timers: TimerConfig,
    pub(crate) max_server_transactions: usize,
    pub(crate) allow: Vec<Method>,
    pub(crate) user: String,
    pub(crate) registrar: Option<Registrar>,
    pub(crate) auth: Option<ServerAuth>,
    /// RTP ports for calls with media (even RTP, odd RTCP).
    pub(crate) ports: Ports,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timers: TimerConfig::default(),
            max_server_transactions: 10_000,
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Options,
            ],
            user: "parrot".to_owned(),
            registrar: None,
            auth: None,
            ports: default_ports(),
        }
    }
}

/// Finds the password of a user name.
pub(crate) type PasswordLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The default RTP port range, 16384–32767 (the range many SIP devices use).
pub(crate) fn default_ports() -> Ports {
    let range = crate::rtp::PortAllocator::new(16384..=32767).expect("a constant, valid range");
    Arc::new(std::sync::Mutex::new(range))
}

/// The address our media is reached at for a call with `peer`: the local address
/// the signaling used, or, when bound to a wildcard, the one the OS routes to the peer.
pub(crate) fn media_ip(peer: &Peer) -> std::net::IpAddr {
    let local = peer.local.ip();
    if !local.is_unspecified() {
        return local;
    }
    let any: SocketAddr = if peer.target.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(any)
        .and_then(|s| s.connect(peer.target.addr).and_then(|()| s.local_addr()))
        .map_or(local, |a| a.ip())
}

/// Digest challenge settings for the UAS side.
#[derive(Clone)]
pub(crate) struct ServerAuth {
    server: Arc<std::sync::Mutex<crate::auth::DigestServer>>,
    lookup: PasswordLookup,
}

impl ServerAuth {
    pub(crate) fn new(realm: &str, lookup: PasswordLookup) -> Self {
        ServerAuth {
            server: Arc::new(std::sync::Mutex::new(crate::auth::DigestServer::new(realm))),
            lookup,
        }
    }
}

/// Messages from the handles and call tasks to the core.
pub(crate) enum Command {
    /// A handler's reply for a server transaction.
    Reply {
        call: Option<u64>,
        key: TransactionKey,
        reply: Reply,
    },
    /// A call task ended normally.
    CallDone { call: u64 },
    /// A handler task panicked.
    Crashed {
        call: Option<u64>,
        key: Option<TransactionKey>,
    },
    /// Place a call.
    Dial {
        spec: DialSpec,
        media: Option<Box<dyn crate::media::MediaHandler>>,
        events: EventSender,
        reply: oneshot::Sender<Result<u64, UaError>>,
    },
    /// Cancel an outgoing call that has no final response yet.
    Cancel { call: u64 },
    /// Send a request in a call's dialog (BYE, INFO, MESSAGE, re-INVITE, …).
    InDialog {
        call: u64,
        method: Method,
        headers: Vec<(HeaderName, String)>,
        body: Option<(String, bytes::Bytes)>,
        reply: oneshot::Sender<Result<Response, UaError>>,
    },
    /// Apply a media action to a call we placed.
    Media {
        call: u64,
        action: crate::media::Action,
    },
    /// Send a request outside any dialog (the core adds the Via) and pass on its final response.
    Send {
        request: Request,
        reply: oneshot::Sender<Result<Response, UaError>>,
    },
    /// Shut down.
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// A request passed on to a call task, with where it came from.
#[derive(Debug)]
pub(crate) struct Delivered {
    request: Request,
    source: SocketAddr,
    kind: TransportKind,
}

/// Messages from the core to a UAS call task. Requests are boxed: the
/// channel's slots are allocated 32 at a time whatever its capacity, and the
/// message is as large as its largest variant.
#[derive(Debug)]
pub(crate) enum ToCall {
    /// An in-dialog request (its transaction key, to reply on).
    Request(Box<(TransactionKey, Delivered)>),
    /// The ACK for our 2xx.
    Ack(Box<Delivered>),
    /// CANCEL arrived (the core already answered 200 and 487).
    Cancelled,
    /// Our 2xx was never acknowledged; the core sent BYE.
    AckTimeout,
    /// A BYE we sent was answered (or timed out): the call is over.
    HungUp,
    /// The endpoint is shutting down.
    Shutdown,
    /// The INVITE's server transaction failed; the core sent BYE if the call
    /// was answered.
    Failed,
}

/// A transaction's far end as the transaction layer sees it: where to send,
/// and which of our addresses the exchange uses (for Via and Contact).
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) target: Target,
    pub(crate) local: SocketAddr,
}

/// Who waits for what a transaction produces.
enum Owner {
    /// An INVITE server transaction of a UAS call.
    UasInvite { call: u64 },
    /// The INVITE client transaction of an outgoing call.
    UacInvite { call: u64 },
    /// A non-INVITE client transaction whose response someone awaits.
    Request {
        reply: Option<oneshot::Sender<Result<Response, UaError>>>,
        call: Option<u64>,
        method: Method,
    },
}

/// A server request waiting for its final response: what is needed to build
/// it. Forgotten once the final response is sent (the transaction then
/// answers retransmissions by itself).
struct Pending {
    request: Request,
    peer: Peer,
}

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
}

pub(crate) struct Core<F> {
    transports: Transports,
    addrs: Arc<Vec<(TransportKind, SocketAddr)>>,
    txns: Transactions<Peer>,
    config: Config,
    factory: Arc<F>,
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    owners: HashMap<TransactionKey, Owner>,
    pending: HashMap<TransactionKey, Pending>,
    calls: HashMap<u64, Call>,
    dialogs: HashMap<DialogId, u64>,
    next_call: u64,
    shutting_down: Option<(Instant, oneshot::Sender<()>)>,
}

impl<F, H> Core<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: SipHandler,
{
    pub(crate) fn new(
        transports: Transports,
        addrs: Arc<Vec<(TransportKind, SocketAddr)>>,
        config: Config,
        factory: Arc<F>,
        commands: mpsc::Sender<Command>,
        counters: Arc<Counters>,
    ) -> Self {
        Core {
            transports,
            addrs,
            txns: Transactions::new(config.timers),
            config,
            factory,
            commands,
            counters,
            owners: HashMap::new(),
            pending: HashMap::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            next_call: 1,
            shutting_down: None,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            self.flush().await;
            self.publish_counts();
            if let Some((deadline, _)) = &self.shutting_down {
                if (self.calls.is_empty() && self.txns.is_empty()) || Instant::now() >= *deadline {
                    break;
                }
            }
            let wake = match (
                self.txns.poll_timeout().map(Instant::from_std),
                self.shutting_down.as_ref().map(|(d, _)| *d),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                received = self.transports.recv_message() => match received {
                    Some(r) => self.on_received(r),
                    None => break,
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                () = sleep_until(wake) => self.txns.handle_timeout(now()),
            }
        }
        for call in self.calls.values() {
            if let CallState::Uas { task, .. } = &call.state {
                let _ = task.try_send(ToCall::Shutdown);
            }
            if let CallState::Uac(u) = &call.state {
                u.events.emit(CallEvent::Ended);
            }
        }
        self.transports.shutdown();
        if let Some((_, done)) = self.shutting_down.take() {
            let _ = done.send(());
        }
        info!("endpoint stopped");
    }

    fn publish_counts(&self) {
        let c = &self.counters;
        c.transactions.store(self.txns.len(), Ordering::Relaxed);
        c.server_transactions
            .store(self.txns.server_len(), Ordering::Relaxed);
        c.dialogs.store(self.dialogs.len(), Ordering::Relaxed);
        c.calls.store(self.calls.len(), Ordering::Relaxed);
    }

    /// Sends what the transaction layer wants sent, and handles its events.
    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.txns.poll_transmit() {
                progressed = true;
                if let Err(e) = self.transports.send(&t.dest.target, t.data).await {
                    debug!(dest = %t.dest.target.addr, error = %e, "send failed");
                    // §17.1.4 / §17.2.4: the transaction learns of it and ends.
                    if let Some(key) = t.key {
                        self.txns.transport_error(now(), &key);
                    }
                }
            }
            while let Some(ev) = self.txns.poll_event() {
                progressed = true;
                self.on_event(ev).await;
            }
            if !progressed {
                return;
            }
        }
    }

    fn local_for(&self, kind: TransportKind) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(k, _)| *k == kind)
            .or_else(|| self.addrs.first())
            .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)), |(_, a)| *a)
    }

    fn contact(&self, local: SocketAddr, kind: TransportKind) -> String {
        let mut uri = SipUri::new(Some(&self.config.user), Host::from(local.ip()));
        uri.port = Some(local.port());
        if kind != TransportKind::Udp {
            uri.params = uri
                .params
                .with("transport", Some(&kind.as_via_str().to_ascii_lowercase()));
        }
        format!("<{uri}>")
    }

    fn via(local: SocketAddr, kind: TransportKind) -> String {
        let mut via = Via::new(
            kind.as_via_str(),
            Host::from(local.ip()),
            Some(local.port()),
            &new_branch(),
        );
        via.set_param("rport", None);
        via.to_string()
    }

    fn allow(&self) -> String {
        self.config
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    // ------------------------------------------------------------------ inbound

    fn on_received(&mut self, r: Received) {
        let mut target = Target::new(r.kind, r.source);
        if let Some(c) = r.conn {
            target = target.with_conn(c);
        }
        let peer = Peer {
            target,
            local: r.local,
        };
        if let Message::Request(req) = &r.message {
            if let Some(resp) = self.precheck(req) {
                // A request we will not process: answered outside any transaction (§8.2).
                {
                    let reliable = peer.target.kind.is_reliable();
                    self.txns
                        .send_stateless(now(), Message::Response(resp), peer, reliable);
                }
                return;
            }
        }
        self.txns
            .handle_message(now(), r.message, peer, r.kind.is_reliable());
    }

    /// Checks made before a transaction exists (§8.2.1–§8.2.3, RFC 4475 §3.3).
    fn precheck(&self, req: &Request) -> Option<Response> {
        let m = req.method();
        if *m == Method::Ack {
            return None;
        }
        if let Err(missing) = Message::Request(req.clone()).check_mandatory() {
            let reply = Reply::new(StatusCode::BAD_REQUEST)
                .reason(format!("Bad Request (missing {missing})"));
            return Some(stateless(req, reply));
        }
        if req.version() != crate::message::Version::SIP_2_0 {
            return Some(stateless(
                req,
                Reply::new(StatusCode::VERSION_NOT_SUPPORTED),
            ));
        }
        if !matches!(req.uri(), Uri::Sip(_) | Uri::Tel(_)) {
            return Some(stateless(
                req,
                Reply::new(StatusCode::UNSUPPORTED_URI_SCHEME),
            ));
        }
        // Max-Forwards 0 is not refused here: 483 is a proxy's answer (§16.3 step 2);
        // an endpoint processes the request (RFC 4475 §3.3.12).
        // §8.2.3: a body we cannot read gets 415 with what we accept. The
        // endpoint reads SDP in INVITE, UPDATE and PRACK; other methods' bodies
        // are the handler's to judge.
        if matches!(m, Method::Invite | Method::Update | Method::Prack) && !req.body().is_empty() {
            let understood = match req.headers().content_type() {
                Ok(Some(ct)) => ct.is("application", "sdp"),
                // §20.15: a body must come with its Content-Type; one without cannot be read.
                _ => false,
            };
            if !understood {
                let reply = Reply::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                    .header(HeaderName::Accept, "application/sdp");
                return Some(stateless(req, reply));
            }
        }
        if *m != Method::Cancel {
            // §8.2.2.3: no extension we implement can be required of us.
            if let Ok(required) = req.headers().require() {
                if !required.is_empty() {
                    let list: Vec<&str> = required.iter().map(|t| t.as_str()).collect();
                    let reply = Reply::new(StatusCode::BAD_EXTENSION)
                        .header("Unsupported", list.join(", "));
                    return Some(stateless(req, reply));
                }
            }
        }
        None
    }

    async fn on_event(&mut self, ev: Event<Peer>) {
        match ev {
            Event::Request {
                key,
                request,
                source,
            } => self.on_request(key, request, source).await,
            Event::Cancel {
                cancel,
                invite,
                request,
                source,
            } => self.on_cancel(cancel, invite, request, source),
            Event::Ack {
                request, source, ..
            } => self.on_ack(request, source),
            Event::Response { key, response } => self.on_response(key, response).await,
            Event::StrayResponse { response, .. } => self.on_stray(&response),
            Event::Timeout { key } | Event::TransportError { key } => self.on_failure(&key),
            Event::AckTimeout { key } => self.on_ack_timeout(&key),
            Event::Terminated { key } => {
                self.owners.remove(&key);
                self.drop_pending(&key);
                shrink_if_sparse(&mut self.owners);
                shrink_if_sparse(&mut self.pending);
            }
        }
    }

    /// Server requests still waiting for their final response.
    fn in_progress(&self) -> usize {
        self.pending.len()
    }

    /// The local tag of a call we answer (None for a call we placed).
    fn uas_tag(&self, call: Option<u64>) -> Option<String> {
        match &self.calls.get(&call?)?.state {
            CallState::Uas { local_tag, .. } => Some(local_tag.clone()),
            CallState::Uac(_) => None,
        }
    }

    /// Forgets a server request (answered, or its transaction ended).
    fn drop_pending(&mut self, key: &TransactionKey) {
        self.pending.remove(key);
        shrink_if_sparse(&mut self.pending);
    }

    fn respond(&mut self, key: &TransactionKey, resp: Response) {
        if resp.status().is_final() {
            self.drop_pending(key);
        }
        if let Err(e) = self.txns.respond(now(), key, resp) {
            debug!(error = %e, "respond failed");
        }
    }

    /// Answers a server transaction directly (not through a handler).
    fn answer(&mut self, key: &TransactionKey, request: &Request, reply: Reply) {
        let mut resp = reply.to_response(request);
        if resp.status().as_u16() != 100
            && request.headers().to().is_some_and(|t| t.tag().is_none())
        {
            resp.set_to_tag(&new_tag());
        }
        self.decorate(&mut resp, request, None);
        self.respond(key, resp);
    }

    /// Headers every response of ours carries where due: Server, Allow on 405
    /// and OPTIONS, Accept and Supported on OPTIONS, Contact and the request's
    /// Record-Route on dialog-forming responses (`contact` is set for those).
    fn decorate(&self, resp: &mut Response, request: &Request, contact: Option<String>) {
        let code = resp.status();
        let allow = self.allow();
        let h = resp.headers_mut();
        let wants_allow = code == StatusCode::METHOD_NOT_ALLOWED
            || (*request.method() == Method::Options && code.is_success());
        if wants_allow && !h.contains(&HeaderName::Allow) {
            let _ = h.push(HeaderName::Allow, allow);
        }
        if *request.method() == Method::Options && code.is_success() {
            if !h.contains(&HeaderName::Accept) {
                let _ = h.push(HeaderName::Accept, "application/sdp");
            }
            if !h.contains(&HeaderName::Supported) {
                let _ = h.push(HeaderName::Supported, "");
            }
        }
        if code == StatusCode::SERVICE_UNAVAILABLE && !h.contains(&HeaderName::RetryAfter) {
            let _ = h.push(HeaderName::RetryAfter, "5");
        }
        if let Some(c) = contact {
            if !h.contains(&HeaderName::Contact) {
                let _ = h.push(HeaderName::Contact, c);
            }
            // A dialog-forming response carries the request's Record-Route,
            // in order (§12.1.1), so the caller's in-dialog requests (ACK,
            // BYE) go through the proxies that asked to stay in the path.
            if !h.contains(&HeaderName::RecordRoute) {
                for v in request.headers().get_all(&HeaderName::RecordRoute) {
                    let _ = h.push(HeaderName::RecordRoute, bytes::Bytes::copy_from_slice(v));
                }
            }
        }
        if !h.contains(&HeaderName::Server) {
            let _ = h.push(
                HeaderName::Server,
                concat!("parrot/", env!("CARGO_PKG_VERSION")),
            );
        }
    }

    /// A digest check for INVITE and REGISTER when the endpoint authenticates.
    fn challenge(&self, request: &Request) -> Option<Reply> {
        let auth = self.config.auth.as_ref()?;
        if !matches!(request.method(), Method::Invite | Method::Register) {
            return None;
        }
        let secs = unix_now();
        let mut server = auth
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = match server.verify_request(request, false, |user| (auth.lookup)(user), secs) {
            Ok(()) => return None,
            Err(f) => f.is_stale(),
        };
        let challenge = server.challenge(stale, secs);
        Some(
            Reply::new(StatusCode::UNAUTHORIZED)
                .header(HeaderName::WwwAuthenticate, challenge.to_string()),
        )
    }

    fn incoming(request: Request, peer: &Peer, prov: Option<mpsc::Sender<Box<Reply>>>) -> Incoming {
        Incoming::new(request, peer.target.addr, peer.target.kind, prov)
    }

    async fn on_request(&mut self, key: TransactionKey, request: Request, source: Peer) {
        self.pending.insert(
            key.clone(),
            Pending {
                request: request.clone(),
                peer: source.clone(),
            },
        );
        let in_dialog = request.headers().to().and_then(NameAddr::tag).is_some();
        if in_dialog {
            return self.on_in_dialog(key, request, source);
        }
        if *request.method() == Method::Invite {
            // Overload protection: refuse with 503 + Retry-After rather than go silent.
            // The load is the requests still waiting for a final answer: finished
            // transactions lingering to absorb retransmissions (Timer J, L, I)
            // cost nothing and must not keep the endpoint refusing calls.
            if self.shutting_down.is_some()
                || self.in_progress() >= self.config.max_server_transactions
            {
                self.counters
                    .rejected_overload
                    .fetch_add(1, Ordering::Relaxed);
                return self.answer(&key, &request, Reply::new(StatusCode::SERVICE_UNAVAILABLE));
            }
        }
        if let Some(reply) = self.challenge(&request) {
            return self.answer(&key, &request, reply);
        }
        if *request.method() == Method::Register {
            if let Some(registrar) = &self.config.registrar {
                let reply = registrar.handle(&request, unix_now());
                return self.answer(&key, &request, reply);
            }
        }
        if *request.method() == Method::Invite {
            return self.start_uas_call(key, request, source);
        }
        // A request outside any dialog: a handler value of its own, in a task of its own.
        let mut handler = (self.factory)();
        let incoming = Self::incoming(request, &source, None);
        let core = self.commands.clone();
        let k = key.clone();
        let span = info_span!("request", method = %incoming.method(), call_id = incoming.call_id().unwrap_or("-").to_owned());
        let task = tokio::spawn(
            async move {
                let reply = dispatch(&mut handler, &incoming).await;
                let _ = core
                    .send(Command::Reply {
                        call: None,
                        key: k,
                        reply,
                    })
                    .await;
            }
            .instrument(span),
        );
        let core = self.commands.clone();
        tokio::spawn(async move {
            if let Err(e) = task.await {
                if e.is_panic() {
                    let _ = core
                        .send(Command::Crashed {
                            call: None,
                            key: Some(key),
                        })
                        .await;
                }
            }
        });
    }

    fn start_uas_call(&mut self, key: TransactionKey, request: Request, source: Peer) {
        let id = self.next_call;
        self.next_call += 1;
        let (task_tx, task_rx) = mpsc::channel(16);
        let (prov_tx, prov_rx) = mpsc::channel(4);
        let local_tag = new_tag();
        self.owners
            .insert(key.clone(), Owner::UasInvite { call: id });
        self.calls.insert(
            id,
            Call {
                state: CallState::Uas {
                    task: task_tx,
                    local_tag,
                    answered: false,
                },
                dialog: None,
                peer: source.clone(),
                ended: false,
            },
        );
        let handler = (self.factory)();
        let ctx = MediaContext {
            ports: self.config.ports.clone(),
            local_ip: media_ip(&source),
            entropy: crate::entropy::global().clone(),
        };
        let incoming = Self::incoming(request, &source, Some(prov_tx)).with_media_context(ctx);
        let span = info_span!(
            "call",
            call_id = incoming.call_id().unwrap_or("-").to_owned()
        );
        let core = self.commands.clone();
        let task = tokio::spawn(
            uas_call(handler, incoming, key, id, core, task_rx, prov_rx).instrument(span),
        );
        let core = self.commands.clone();
        tokio::spawn(async move {
            let msg = match task.await {
                Err(e) if e.is_panic() => Command::Crashed {
                    call: Some(id),
                    key: None,
                },
                _ => Command::CallDone { call: id },
            };
            let _ = core.send(msg).await;
        });
    }

    /// A request carrying a To tag: it belongs to a dialog, or gets 481 (§12.2.2).
    fn on_in_dialog(&mut self, key: TransactionKey, request: Request, source: Peer) {
        let Some(id) = DialogId::from_request(&request) else {
            return self.answer(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        };
        let Some(&call_id) = self.dialogs.get(&id) else {
            return self.answer(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return self.answer(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        };
        // §12.2.2: a CSeq lower than the last one seen is answered 500.
        if let Some(dialog) = call.dialog.as_mut() {
            if let Err(status) = dialog.check_remote_cseq(&request) {
                return self.answer(
                    &key,
                    &request,
                    Reply::new(status).reason("Server Internal Error (CSeq out of order)"),
                );
            }
            if matches!(request.method(), Method::Invite | Method::Update) {
                dialog.refresh_target(&request);
            }
        }
        let is_bye = *request.method() == Method::Bye;
        enum Route {
            Uas(mpsc::Sender<ToCall>),
            Uac(EventSender),
        }
        let route = match &call.state {
            CallState::Uas { task, .. } => Route::Uas(task.clone()),
            CallState::Uac(u) => Route::Uac(u.events.clone()),
        };
        if is_bye {
            call.ended = true;
            self.dialogs.remove(&id);
        }
        match route {
            Route::Uas(task) => {
                let msg = ToCall::Request(Box::new((
                    key.clone(),
                    Delivered {
                        request: request.clone(),
                        source: source.target.addr,
                        kind: source.target.kind,
                    },
                )));
                if task.try_send(msg).is_err() {
                    // The task is gone or stuck: answer for it.
                    let status = if is_bye {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVER_INTERNAL_ERROR
                    };
                    self.answer(&key, &request, Reply::new(status));
                }
            }
            Route::Uac(events) => {
                // A caller's handle: BYE ends the call; other requests are accepted.
                self.answer(&key, &request, Reply::ok());
                if is_bye {
                    events.emit(CallEvent::Ended);
                    self.calls.remove(&call_id);
                } else {
                    events.emit(CallEvent::Request(request));
                }
            }
        }
    }

    fn on_cancel(
        &mut self,
        cancel: TransactionKey,
        invite: Option<TransactionKey>,
        request: Request,
        _source: Peer,
    ) {
        let Some(invite) = invite else {
            // §9.2: no matching INVITE transaction: 481.
            return self.answer(
                &cancel,
                &request,
                Reply::new(StatusCode::CALL_DOES_NOT_EXIST),
            );
        };
        let call_id = match self.owners.get(&invite) {
            Some(Owner::UasInvite { call }) => Some(*call),
            _ => None,
        };
        let tag = self.uas_tag(call_id);
        let mut ok = Reply::ok().to_response(&request);
        ok.set_to_tag(tag.as_deref().unwrap_or(&new_tag()));
        self.respond(&cancel, ok);
        // §9.2: an INVITE still without final response gets 487 Request
        // Terminated; one already answered is left alone.
        let Some(p) = self.pending.get(&invite) else {
            return;
        };
        let mut resp = Reply::new(StatusCode::REQUEST_TERMINATED).to_response(&p.request);
        resp.set_to_tag(tag.as_deref().unwrap_or(&new_tag()));
        self.respond(&invite, resp);
        if let Some(call) = call_id.and_then(|c| self.calls.get(&c)) {
            if let CallState::Uas { task, .. } = &call.state {
                let _ = task.try_send(ToCall::Cancelled);
            }
        }
    }

    fn on_ack(&mut self, request: Request, source: Peer) {
        let Some(id) = DialogId::from_request(&request) else {
            return;
        };
        let Some(call) = self.dialogs.get(&id).and_then(|c| self.calls.get(c)) else {
            debug!("ACK for no dialog, dropped");
            return;
        };
        if let CallState::Uas { task, .. } = &call.state {
            let _ = task.try_send(ToCall::Ack(Box::new(Delivered {
                request,
                source: source.target.addr,
                kind: source.target.kind,
            })));
        }
    }

    fn on_ack_timeout(&mut self, key: &TransactionKey) {
        let Some(Owner::UasInvite { call }) = self.owners.get(key) else {
            return;
        };
        let call = *call;
        warn!("no ACK for our 2xx within 64*T1: hanging up (RFC 3261 §13.3.1.4)");
        self.send_bye(call);
        if let Some(CallState::Uas { task, .. }) = self.calls.get(&call).map(|c| &c.state) {
            let _ = task.try_send(ToCall::AckTimeout);
        }
    }

    /// Sends BYE in a call's dialog without anyone awaiting the answer (nothing
    /// to do when the call has no dialog or is already over).
    fn send_bye(&mut self, call_id: u64) {
        if let Err(e) = self.in_dialog(call_id, Method::Bye, Vec::new(), None, None) {
            debug!(error = %e, "BYE not sent");
        }
    }

    // ------------------------------------------------------------------ commands

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Reply { call, key, reply } => self.on_reply(call, key, reply),
            Command::CallDone { call } => self.end_call(call),
            Command::Crashed { call, key } => self.on_crash(call, key),
            Command::Dial {
                spec,
                media,
                events,
                reply,
            } => {
                let r = self.dial(spec, media, events).await;
                let _ = reply.send(r);
            }
            Command::Cancel { call } => self.cancel(call),
            Command::InDialog {
                call,
                method,
                headers,
                body,
                reply,
            } => {
                if let Err(e) = self.in_dialog(call, method, headers, body, Some(reply)) {
                    debug!(error = %e, "in-dialog request refused");
                }
            }
            Command::Send { request, reply } => self.send_out_of_dialog(request, reply).await,
            Command::Media { call, action } => {
                if let Some(CallState::Uac(uac)) = self.calls.get(&call).map(|c| &c.state) {
                    if let Some(s) = &uac.session {
                        s.apply(action).await;
                    }
                }
            }
            Command::Shutdown { grace, done } => {
                info!("shutting down: new calls get 503, calls in progress are hung up");
                self.shutting_down = Some((Instant::now() + grace, done));
                let ids: Vec<u64> = self.calls.keys().copied().collect();
                for id in ids {
                    let uac_early = matches!(self.calls.get(&id).map(|c| &c.state), Some(CallState::Uac(u)) if !u.final_received);
                    if uac_early {
                        self.cancel(id);
                    } else {
                        self.send_bye(id);
                    }
                }
            }
        }
    }

    fn on_reply(&mut self, call: Option<u64>, key: TransactionKey, reply: Reply) {
        let Some(p) = self.pending.get(&key) else {
            debug!("reply for a finished transaction dropped");
            return;
        };
        let request = p.request.clone();
        let peer = p.peer.clone();
        let mut resp = reply.to_response(&request);
        let is_invite = *request.method() == Method::Invite;
        let tag = self.uas_tag(call);
        if resp.status().as_u16() != 100 {
            match &tag {
                Some(t) => {
                    resp.set_to_tag(t);
                }
                None => {
                    resp.set_to_tag(&new_tag());
                }
            }
        }
        let dialog_forming =
            is_invite && resp.status().as_u16() > 100 && resp.status().as_u16() < 300;
        let contact = dialog_forming.then(|| self.contact(peer.local, peer.target.kind));
        self.decorate(&mut resp, &request, contact);
        // A 2xx to an initial INVITE makes the dialog (§12.1.1).
        if let Some(c) = call {
            let is_initial = request.headers().to().and_then(NameAddr::tag).is_none();
            if is_invite && is_initial && resp.status().is_success() {
                match Dialog::uas_from_request(&request, &resp) {
                    Ok(dialog) => {
                        self.dialogs.insert(dialog.id().clone(), c);
                        if let Some(call) = self.calls.get_mut(&c) {
                            call.peer = in_dialog_peer(&peer, request.headers());
                            call.dialog = Some(dialog);
                            if let CallState::Uas { answered, .. } = &mut call.state {
                                *answered = true;
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "no dialog from this INVITE"),
                }
            }
        }
        self.respond(&key, resp);
    }

    fn end_call(&mut self, id: u64) {
        if let Some(call) = self.calls.remove(&id) {
            if let Some(d) = call.dialog {
                self.dialogs.remove(d.id());
            }
        }
        shrink_if_sparse(&mut self.calls);
        shrink_if_sparse(&mut self.dialogs);
    }

    fn on_crash(&mut self, call: Option<u64>, key: Option<TransactionKey>) {
        self.counters.panics.fetch_add(1, Ordering::Relaxed);
        error!(call = ?call, "handler panicked; that call ends, the endpoint goes on");
        // A request still waiting for its final answer gets 500.
        let mut keys: Vec<TransactionKey> = key.into_iter().collect();
        if let Some(c) = call {
            keys.extend(self.owners.iter().filter_map(|(k, o)| match o {
                Owner::UasInvite { call } if *call == c => Some(k.clone()),
                _ => None,
            }));
            keys.extend(self.pending.iter().filter_map(|(k, p)| {
                let in_call = self
                    .calls
                    .get(&c)
                    .and_then(|cl| cl.dialog.as_ref())
                    .is_some_and(|d| DialogId::from_request(&p.request).as_ref() == Some(d.id()));
                in_call.then(|| k.clone())
            }));
        }
        for k in keys {
            if let Some(p) = self.pending.get(&k) {
                let request = p.request.clone();
                let tag = self.uas_tag(call);
                let mut resp = Reply::server_error().to_response(&request);
                if request.headers().to().and_then(NameAddr::tag).is_none() {
                    resp.set_to_tag(tag.as_deref().unwrap_or(&new_tag()));
                }
                self.respond(&k, resp);
            }
        }
        // An answered call is hung up.
        if let Some(c) = call {
            self.send_bye(c);
            self.end_call(c);
        }
    }
}

/// Where in-dialog requests go: back on the same connection for streams; for
/// UDP to the peer's Contact (the INVITE's, or the 2xx's for a call we placed)
/// when it is an IP address and port, otherwise where the peer sent from.
fn in_dialog_peer(peer: &Peer, contact_from: &Headers) -> Peer {
    if peer.target.kind.is_reliable() {
        return peer.clone();
    }
    let contact = contact_from
        .contact_list()
        .first()
        .and_then(|c| c.uri.as_sip())
        .and_then(|u| {
            let ip = u.host.ip()?;
            Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
        });
    match contact {
        Some(addr) => Peer {
            target: Target::new(peer.target.kind, addr),
            local: peer.local,
        },
        None => peer.clone(),
    }
}

/// A response built outside any transaction: To tag added.
fn stateless(req: &Request, reply: Reply) -> Response {
    let mut r = reply.to_response(req);
    r.set_to_tag(&new_tag());
    r
}

fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One UAS call: the handler's INVITE, then the dialog's requests until BYE;
/// with the call's media session (if the handler answered with media) from the
/// ACK until the end.
async fn uas_call<H: SipHandler>(
    mut handler: H,
    mut incoming: Incoming,
    key: TransactionKey,
    call: u64,
    core: mpsc::Sender<Command>,
    mut rx: mpsc::Receiver<ToCall>,
    mut provisional: mpsc::Receiver<Box<Reply>>,
) {
    let reply = 'answer: {
        // Handler futures are boxed here and below: the call task lives as long
        // as the call, and an inline future would keep the largest of them
        // (often an answer with media setup, kilobytes) for all that time.
        let mut fut = Box::pin(handler.invite(&mut incoming));
        loop {
            tokio::select! {
                biased;
                msg = rx.recv() => match msg {
                    Some(ToCall::Cancelled) => break 'answer Err(EndReason::Cancelled),
                    Some(ToCall::Shutdown) | None => break 'answer Err(EndReason::Shutdown),
                    Some(ToCall::Failed) => break 'answer Err(EndReason::TransportError),
                    Some(_) => {}
                },
                Some(p) = provisional.recv() => {
                    let _ = core.send(Command::Reply { call: Some(call), key: key.clone(), reply: *p }).await;
                }
                r = &mut fut => break 'answer Ok(r),
            }
        }
    };
    let mut pending = incoming.take_media();
    drop(incoming);
    let reply = match reply {
        Ok(r) => r,
        Err(reason) => return Box::pin(handler.ended(reason)).await,
    };
    let answered = reply.status().is_success();
    let _ = core
        .send(Command::Reply {
            call: Some(call),
            key,
            reply,
        })
        .await;
    if !answered {
        return Box::pin(handler.ended(EndReason::Rejected)).await;
    }
    let mut media = CallMedia::default();
    let (media_tx, mut media_rx) = mpsc::channel(4);
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            Some(ev) = media_rx.recv() => {
                if ev == MediaEvent::Hangup {
                    // The media handler hangs up: BYE, then the end.
                    let (reply, wait) = oneshot::channel();
                    let bye = Command::InDialog { call, method: Method::Bye, headers: Vec::new(), body: None, reply };
                    if core.send(bye).await.is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(32), wait).await;
                    }
                    media.stop().await;
                    return Box::pin(handler.ended(EndReason::LocalHangup)).await;
                }
                continue;
            }
        };
        let Some(msg) = msg else { break };
        match msg {
            ToCall::Ack(ack) => {
                let Delivered {
                    request,
                    source,
                    kind,
                } = *ack;
                // Audio flows once the caller has our answer and acknowledged it.
                if let Some(p) = pending.take() {
                    media.start(p, media_tx.clone());
                }
                Box::pin(handler.ack(&Incoming::new(request, source, kind, None))).await;
            }
            ToCall::Request(delivered) => {
                let (
                    key,
                    Delivered {
                        request,
                        source,
                        kind,
                    },
                ) = *delivered;
                let method = request.method().clone();
                let reply = match Box::pin(media.in_dialog(&request)).await {
                    Some(reply) => reply,
                    None => {
                        let mut inc = Incoming::new(request, source, kind, None);
                        if method == Method::Invite {
                            Box::pin(handler.invite(&mut inc)).await
                        } else {
                            Box::pin(dispatch(&mut handler, &inc)).await
                        }
                    }
                };
                if method == Method::Bye {
                    media.stop().await;
                }
                let _ = core
                    .send(Command::Reply {
                        call: Some(call),
                        key,
                        reply,
                    })
                    .await;
                if method == Method::Bye {
                    return Box::pin(handler.ended(EndReason::PeerHangup)).await;
                }
            }
            ToCall::AckTimeout => {
                media.stop().await;
                return Box::pin(handler.ended(EndReason::AckTimeout)).await;
            }
            ToCall::HungUp | ToCall::Shutdown => {
                media.stop().await;
                return Box::pin(handler.ended(EndReason::Shutdown)).await;
            }
            ToCall::Failed => {
                media.stop().await;
                return Box::pin(handler.ended(EndReason::TransportError)).await;
            }
            ToCall::Cancelled => {}
        }
    }
    media.stop().await;
    Box::pin(handler.ended(EndReason::Shutdown)).await;
}

/// A call's media session and the SDP state to renegotiate it.
#[derive(Default)]
struct CallMedia {
    session: Option<MediaSession>,
    negotiator: Option<crate::sdp::Negotiator>,
}

impl CallMedia {
    fn start(&mut self, p: PendingMedia, events: mpsc::Sender<MediaEvent>) {
        match MediaSession::start(p.config, p.handler, events) {
            Ok(s) => {
                info!(local = %s.local_addr(), "media started");
                self.session = Some(s);
                self.negotiator = Some(p.negotiator);
            }
            Err(e) => warn!(error = %e, "media not started"),
        }
    }

    /// Requests the media layer answers by itself: DTMF by INFO
    /// (`application/dtmf-relay`), and a re-INVITE with a new offer (hold,
    /// resume, a new address: RFC 3264 §8).
    async fn in_dialog(&mut self, request: &Request) -> Option<Reply> {
        let session = self.session.as_ref()?;
        let content = request.headers().content_type().ok().flatten();
        match request.method() {
            Method::Info
                if content
                    .as_ref()
                    .is_some_and(|c| c.is("application", "dtmf-relay")) =>
            {
                let digit = super::media::dtmf_relay_digit(request.body())?;
                session.dtmf_received(digit).await;
                Some(Reply::ok())
            }
            Method::Invite if !request.body().is_empty() => {
                let negotiator = self.negotiator.as_mut()?;
                let reply = match crate::sdp::SessionDescription::parse(request.body()) {
                    Err(e) => Reply::new(StatusCode::NOT_ACCEPTABLE_HERE)
                        .reason(format!("Not Acceptable Here (bad SDP: {e})")),
                    Ok(offer) => match negotiator.answer(&offer) {
                        Ok(answer) => {
                            if let Some(n) = &answer.negotiated {
                                session.update(n.remote_addr(), n.direction).await;
                            }
                            Reply::ok().body("application/sdp", answer.sdp.to_bytes())
                        }
                        Err(e) => Reply::new(StatusCode::NOT_ACCEPTABLE_HERE)
                            .reason(format!("Not Acceptable Here ({e})")),
                    },
                };
                Some(reply)
            }
            _ => None,
        }
    }

    async fn stop(&mut self) {
        if let Some(s) = self.session.take() {
            let stats = s.stop().await;
            info!(
                sent = stats.packets_sent,
                received = stats.packets_received,
                lost = stats.packets_lost,
                jitter_ms = stats.jitter_ms,
                "media stopped"
            );
        }
    }
}

// ---------------------------------------------------------------------- UAC side

impl<F, H> Core<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: SipHandler,
{
    /// Where a URI leads: transport and address (IP literals, or a DNS A/AAAA lookup).
    async fn resolve(&self, uri: &Uri, forced: Option<TransportKind>) -> Result<Target, UaError> {
        let sip = uri
            .as_sip()
            .ok_or_else(|| UaError::Unroutable(uri.to_string()))?;
        let kind = forced.unwrap_or(
            match sip.transport().map(str::to_ascii_lowercase).as_deref() {
                Some("tcp") => TransportKind::Tcp,
                Some("tls") => TransportKind::Tls,
                Some("ws") => TransportKind::Ws,
                Some("wss") => TransportKind::Wss,
                _ if sip.secure => TransportKind::Tls,
                _ => TransportKind::Udp,
            },
        );
        let port = sip.port.unwrap_or(if kind == TransportKind::Tls {
            5061
        } else {
            5060
        });
        let addr = match sip.host.ip() {
            Some(ip) => SocketAddr::new(ip, port),
            None => {
                let host = sip.host.to_string();
                tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| UaError::Unroutable(uri.to_string()))?
            }
        };
        let mut target = Target::new(kind, addr);
        if let Host::Domain(d) = &sip.host {
            target = target.with_server_name(d.as_str());
        }
        Ok(target)
    }

    async fn dial(
        &mut self,
        spec: DialSpec,
        media: Option<Box<dyn crate::media::MediaHandler>>,
        events: EventSender,
    ) -> Result<u64, UaError> {
        let target = self.resolve(&spec.uri, spec.transport).await?;
        let local = self.local_for(target.kind);
        let peer = Peer { target, local };
        let offer = match media {
            Some(handler) => {
                let ctx = MediaContext {
                    ports: self.config.ports.clone(),
                    local_ip: media_ip(&peer),
                    entropy: crate::entropy::global().clone(),
                };
                let offered = super::media::offer(&ctx, handler)
                    .await
                    .map_err(|e| UaError::BadRequest(format!("no RTP port: {e}")))?;
                Some(offered)
            }
            None => None,
        };
        let user = spec
            .from_user
            .clone()
            .unwrap_or_else(|| self.config.user.clone());
        let mut req = Request::new(Method::Invite, spec.uri.clone());
        let from_uri = SipUri::new(Some(&user), Host::from(local.ip()));
        let call_id = crate::dialog::new_call_id(&local.ip().to_string());
        let h = req.headers_mut();
        let bad = |e: crate::message::HeaderError| UaError::BadRequest(e.to_string());
        h.push(HeaderName::Via, Self::via(local, peer.target.kind))
            .map_err(bad)?;
        h.push(HeaderName::MaxForwards, "70").map_err(bad)?;
        h.push(HeaderName::From, format!("<{from_uri}>;tag={}", new_tag()))
            .map_err(bad)?;
        h.push(HeaderName::To, format!("<{}>", spec.uri))
            .map_err(bad)?;
        h.push(HeaderName::CallId, call_id).map_err(bad)?;
        h.push(HeaderName::CSeq, "1 INVITE").map_err(bad)?;
        h.push(HeaderName::Contact, self.contact(local, peer.target.kind))
            .map_err(bad)?;
        h.push(
            HeaderName::UserAgent,
            concat!("parrot/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(bad)?;
        for (n, v) in &spec.headers {
            h.push(n.clone(), v.clone()).map_err(bad)?;
        }
        if let Some(o) = &offer {
            h.set(HeaderName::ContentType, "application/sdp")
                .map_err(bad)?;
            req.set_body(o.sdp.clone());
        } else if let Some((ct, body)) = &spec.body {
            h.set(HeaderName::ContentType, ct.clone()).map_err(bad)?;
            req.set_body(body.clone());
        } else {
            req.set_body(bytes::Bytes::new());
        }
        let key = self
            .txns
            .send_request(
                now(),
                req.clone(),
                peer.clone(),
                peer.target.kind.is_reliable(),
            )
            .map_err(|e| UaError::BadRequest(e.to_string()))?;
        let id = self.next_call;
        self.next_call += 1;
        self.owners
            .insert(key.clone(), Owner::UacInvite { call: id });
        let uac = UacCall {
            events,
            spec,
            invite: req,
            invite_key: Some(key),
            auth_attempts: 0,
            redirects: 0,
            provisional_seen: false,
            final_received: false,
            cancel_requested: false,
            ack: None,
            digest: None,
            offer,
            session: None,
        };
        self.calls.insert(
            id,
            Call {
                state: CallState::Uac(Box::new(uac)),
                dialog: None,
                peer,
                ended: false,
            },
        );
        Ok(id)
    }

    async fn send_out_of_dialog(
        &mut self,
        mut request: Request,
        reply: oneshot::Sender<Result<Response, UaError>>,
    ) {
        let target = match self.resolve(request.uri(), None).await {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let local = self.local_for(target.kind);
        let peer = Peer { target, local };
        if let Err(e) = request
            .headers_mut()
            .prepend(HeaderName::Via, Self::via(local, peer.target.kind))
        {
            let _ = reply.send(Err(UaError::BadRequest(e.to_string())));
            return;
        }
        let method = request.method().clone();
        match self
            .txns
            .send_request(now(), request, peer.clone(), peer.target.kind.is_reliable())
        {
            Ok(key) => {
                self.owners.insert(
                    key,
                    Owner::Request {
                        reply: Some(reply),
                        call: None,
                        method,
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(UaError::BadRequest(e.to_string())));
            }
        }
    }

    /// Sends CANCEL for a call's pending INVITE (§9.1): same Request-URI,
    /// Call-ID, From, To, CSeq number and top Via as the INVITE.
    fn cancel(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let CallState::Uac(uac) = &mut call.state else {
            return;
        };
        if uac.final_received {
            return;
        }
        uac.cancel_requested = true;
        // §9.1: not before a provisional response has arrived.
        if !uac.provisional_seen {
            return;
        }
        let cancel = cancel_for(&uac.invite);
        let peer = call.peer.clone();
        match self
            .txns
            .send_request(now(), cancel, peer.clone(), peer.target.kind.is_reliable())
        {
            Ok(key) => {
                self.owners.insert(
                    key,
                    Owner::Request {
                        reply: None,
                        call: Some(id),
                        method: Method::Cancel,
                    },
                );
            }
            Err(e) => debug!(error = %e, "CANCEL not sent"),
        }
    }

    fn in_dialog(
        &mut self,
        id: u64,
        method: Method,
        headers: Vec<(HeaderName, String)>,
        body: Option<(String, bytes::Bytes)>,
        reply: Option<oneshot::Sender<Result<Response, UaError>>>,
    ) -> Result<(), UaError> {
        let fail = |reply: Option<oneshot::Sender<Result<Response, UaError>>>, e: UaError| {
            if let Some(r) = reply {
                let _ = r.send(Err(e));
            }
        };
        let Some(call) = self.calls.get_mut(&id) else {
            fail(reply, UaError::CallGone);
            return Err(UaError::CallGone);
        };
        let (Some(dialog), false) = (call.dialog.as_mut(), call.ended) else {
            fail(
                reply,
                UaError::InvalidState("the call is not answered, or already over"),
            );
            return Err(UaError::InvalidState("no dialog"));
        };
        let mut req = dialog.request(method.clone());
        let peer = call.peer.clone();
        let h = req.headers_mut();
        let mut problem = h
            .prepend(HeaderName::Via, Self::via(peer.local, peer.target.kind))
            .err();
        for (n, v) in headers {
            if let Err(e) = h.push(n, v) {
                problem = Some(e);
            }
        }
        if let Some((ct, b)) = body {
            if let Err(e) = req.headers_mut().set(HeaderName::ContentType, ct) {
                problem = Some(e);
            }
            req.set_body(b);
        }
        if let Some(e) = problem {
            fail(reply, UaError::BadRequest(e.to_string()));
            return Err(UaError::BadRequest("header".into()));
        }
        if method == Method::Bye {
            call.ended = true;
            let did = dialog.id().clone();
            self.dialogs.remove(&did);
        }
        match self
            .txns
            .send_request(now(), req, peer.clone(), peer.target.kind.is_reliable())
        {
            Ok(key) => {
                self.owners.insert(
                    key,
                    Owner::Request {
                        reply,
                        call: Some(id),
                        method,
                    },
                );
                Ok(())
            }
            Err(e) => {
                fail(reply, UaError::BadRequest(e.to_string()));
                Err(UaError::SendFailed)
            }
        }
    }

    async fn on_response(&mut self, key: TransactionKey, resp: Response) {
        match self.owners.get_mut(&key) {
            Some(Owner::UacInvite { call }) => {
                let call = *call;
                self.on_invite_response(call, &key, resp).await;
            }
            Some(Owner::Request {
                reply,
                call,
                method,
            }) => {
                if !resp.status().is_final() {
                    return;
                }
                let (call, method) = (*call, method.clone());
                if let Some(r) = reply.take() {
                    let _ = r.send(Ok(resp.clone()));
                }
                if method == Method::Invite && resp.status().is_success() {
                    // A re-INVITE's 2xx is acknowledged like the first (§14.1).
                    if let Some(c) = call {
                        self.ack_2xx(c, &resp);
                    }
                }
                // §12.2.1.2: 481 or 408 to a request in a dialog ends the dialog.
                let gone = matches!(resp.status().as_u16(), 408 | 481);
                if method == Method::Bye || gone {
                    if let Some(c) = call {
                        if let Some(d) = self.calls.get_mut(&c).and_then(|cl| {
                            cl.ended = true;
                            cl.dialog.as_ref().map(|d| d.id().clone())
                        }) {
                            self.dialogs.remove(&d);
                        }
                        self.bye_done(c);
                    }
                }
            }
            _ => {}
        }
    }

    fn bye_done(&mut self, id: u64) {
        if let Some(call) = self.calls.get(&id) {
            match &call.state {
                CallState::Uas { task, .. } => {
                    let _ = task.try_send(ToCall::HungUp);
                }
                CallState::Uac(u) => {
                    u.events.emit(CallEvent::Ended);
                    self.end_call(id);
                }
            }
        }
    }

    async fn on_invite_response(&mut self, id: u64, key: &TransactionKey, resp: Response) {
        let status = resp.status();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let CallState::Uac(uac) = &mut call.state else {
            return;
        };
        if status.is_provisional() {
            let first = !uac.provisional_seen;
            uac.provisional_seen = true;
            uac.events.emit(CallEvent::Provisional(resp));
            if first && uac.cancel_requested {
                self.cancel(id);
            }
            return;
        }
        if status.is_success() {
            if call.dialog.is_none() {
                match Dialog::uac_from_response(&uac.invite, &resp) {
                    Ok(d) => {
                        self.dialogs.insert(d.id().clone(), id);
                        call.peer = in_dialog_peer(&call.peer, resp.headers());
                        call.dialog = Some(d);
                    }
                    Err(e) => warn!(error = %e, "2xx without a usable dialog"),
                }
            }
            let already = uac.final_received;
            let cancelled = uac.cancel_requested;
            uac.final_received = true;
            if !already && !cancelled {
                uac.events.emit(CallEvent::Answered(resp.clone()));
                if let Some(offer) = uac.offer.take() {
                    uac.session = start_uac_media(offer, &resp, id, &self.commands, &uac.events);
                }
            }
            self.ack_2xx(id, &resp);
            if cancelled && !already {
                // The 2xx crossed our CANCEL: the call is up, so end it with BYE (§9.1).
                self.send_bye(id);
            }
            return;
        }
        // A final non-2xx: the transaction layer has sent the ACK (§17.1.1.3).
        let retry = if UacCall::status_is_auth(status) && uac.auth_attempts < 2 {
            match uac.spec.credentials.clone() {
                Some((user, pass)) => {
                    let client = uac
                        .digest
                        .get_or_insert_with(|| crate::auth::DigestClient::new(user, pass));
                    let mut next = uac.invite.clone();
                    crate::auth::authorize(&mut next, &resp, client)
                        .ok()
                        .map(|()| next)
                }
                None => None,
            }
        } else if status.class() == 3 && uac.spec.follow_redirects && uac.redirects < 5 {
            resp.headers().contact_list().first().map(|c| {
                let mut next = uac.invite.clone();
                next.set_uri(c.uri.clone());
                bump_cseq(&mut next);
                next
            })
        } else {
            None
        };
        let _ = key;
        if let Some(mut next) = retry {
            if UacCall::status_is_auth(status) {
                uac.auth_attempts += 1;
            } else {
                uac.redirects += 1;
            }
            let transport = uac.spec.transport;
            let current = call.peer.clone();
            // A new transaction: a new branch (§8.1.3.5).
            let peer = if status.class() == 3 {
                match self.resolve(next.uri(), transport).await {
                    Ok(t) => Peer {
                        local: self.local_for(t.kind),
                        target: t,
                    },
                    Err(_) => current,
                }
            } else {
                current
            };
            let _ = next.headers_mut().pop_via();
            let _ = next
                .headers_mut()
                .prepend(HeaderName::Via, Self::via(peer.local, peer.target.kind));
            let sent = self.txns.send_request(
                now(),
                next.clone(),
                peer.clone(),
                peer.target.kind.is_reliable(),
            );
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            call.peer = peer;
            let CallState::Uac(uac) = &mut call.state else {
                return;
            };
            uac.invite = next;
            match sent {
                Ok(k) => {
                    uac.invite_key = Some(k.clone());
                    self.owners.insert(k, Owner::UacInvite { call: id });
                }
                Err(e) => {
                    uac.events
                        .emit(CallEvent::Failed(UaError::BadRequest(e.to_string())));
                    self.end_call(id);
                }
            }
            return;
        }
        uac.final_received = true;
        uac.events.emit(CallEvent::Rejected(resp));
        self.end_call(id);
    }

    /// Sends (or re-sends) the ACK for a 2xx, built in the dialog (§13.2.2.4):
    /// a request of its own, through the route set, with the INVITE's CSeq number.
    fn ack_2xx(&mut self, id: u64, resp: &Response) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(dialog) = call.dialog.as_ref() else {
            return;
        };
        let Some(cseq) = resp.headers().cseq().map(|c| c.seq) else {
            return;
        };
        let peer = call.peer.clone();
        let mut ack = dialog.ack_for(cseq);
        let _ = ack
            .headers_mut()
            .prepend(HeaderName::Via, Self::via(peer.local, peer.target.kind));
        if let CallState::Uac(uac) = &mut call.state {
            uac.ack = Some(ack.clone());
        }
        {
            let reliable = peer.target.kind.is_reliable();
            self.txns
                .send_stateless(now(), Message::Request(ack), peer, reliable);
        }
    }

    /// A response no transaction wants: a retransmitted 2xx after the INVITE
    /// transaction ended. Re-send the ACK (§13.2.2.4).
    fn on_stray(&mut self, resp: &Response) {
        if !resp.status().is_success()
            || resp
                .headers()
                .cseq()
                .is_none_or(|c| c.method != Method::Invite)
        {
            return;
        }
        let Some(id) = DialogId::from_response(resp) else {
            return;
        };
        let Some(&call) = self.dialogs.get(&id) else {
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if let CallState::Uac(uac) = &c.state {
            if let Some(ack) = uac.ack.clone() {
                let peer = c.peer.clone();
                {
                    let reliable = peer.target.kind.is_reliable();
                    self.txns
                        .send_stateless(now(), Message::Request(ack), peer, reliable);
                }
            }
        }
    }

    fn on_failure(&mut self, key: &TransactionKey) {
        match self.owners.remove(key) {
            Some(Owner::UacInvite { call }) => {
                if let Some(CallState::Uac(uac)) = self.calls.get(&call).map(|c| &c.state) {
                    if !uac.final_received {
                        uac.events.emit(CallEvent::Failed(UaError::Timeout));
                    }
                }
                self.end_call(call);
            }
            Some(Owner::Request {
                reply,
                call,
                method,
            }) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(UaError::Timeout));
                }
                if method == Method::Bye {
                    if let Some(c) = call {
                        self.bye_done(c);
                    }
                }
            }
            Some(Owner::UasInvite { call }) => {
                // §17.2.4: a response to the INVITE could not be sent. Nothing
                // can answer that INVITE any more, and a reply still to come
                // would be dropped, leaving the call's task waiting for an ACK
                // that cannot come: the call ends (with BYE if it was answered).
                self.send_bye(call);
                if let Some(CallState::Uas { task, .. }) = self.calls.get(&call).map(|c| &c.state) {
                    let _ = task.try_send(ToCall::Failed);
                }
            }
            _ => {}
        }
        self.drop_pending(key);
    }
}

/// Reads the SDP answer in our call's 2xx and starts its media. A media
/// handler's hang-up becomes a BYE through the core.
fn start_uac_media(
    offer: super::media::Offered,
    resp: &Response,
    call: u64,
    commands: &mpsc::Sender<Command>,
    events: &EventSender,
) -> Option<MediaSession> {
    let super::media::Offered {
        rtp,
        rtcp,
        mut negotiator,
        handler,
        ..
    } = offer;
    let answer = match crate::sdp::SessionDescription::parse(resp.body()) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "2xx without a readable SDP answer: no audio");
            return None;
        }
    };
    let negotiated = match negotiator.accept_answer(&answer) {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "SDP answer not acceptable: no audio");
            return None;
        }
    };
    let (media_tx, mut media_rx) = mpsc::channel(4);
    let handler = handler
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let session = match MediaSession::start(
        super::media::config(&negotiated, rtp, rtcp),
        handler,
        media_tx,
    ) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "media not started");
            return None;
        }
    };
    events.emit(CallEvent::MediaStarted {
        codec: negotiated.codec.to_string(),
        stats: session.watch_stats(),
    });
    let commands = commands.clone();
    tokio::spawn(async move {
        while let Some(ev) = media_rx.recv().await {
            if ev == MediaEvent::Hangup {
                let (reply, _wait) = oneshot::channel();
                let _ = commands
                    .send(Command::InDialog {
                        call,
                        method: Method::Bye,
                        headers: Vec::new(),
                        body: None,
                        reply,
                    })
                    .await;
            }
        }
    });
    Some(session)
}

/// CANCEL for an INVITE (§9.1).
fn cancel_for(invite: &Request) -> Request {
    let mut c = Request::new(Method::Cancel, invite.uri().clone());
    let src = invite.headers();
    let h = c.headers_mut();
    if let Some(v) = src.top_via() {
        let _ = h.push(HeaderName::Via, v.to_string());
    }
    for name in [
        HeaderName::Route,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
    ] {
        for v in src.get_all(&name) {
            let _ = h.push(name.clone(), bytes::Bytes::copy_from_slice(v));
        }
    }
    if let Some(cs) = src.cseq() {
        let _ = h.push(HeaderName::CSeq, format!("{} CANCEL", cs.seq));
    }
    let _ = h.push(HeaderName::MaxForwards, "70");
    c.set_body(bytes::Bytes::new());
    c
}

fn bump_cseq(req: &mut Request) {
    if let Some(cs) = req.headers().cseq() {
        let next = format!("{} {}", cs.seq.saturating_add(1), cs.method);
        let _ = req.headers_mut().set(HeaderName::CSeq, next);
    }
}
