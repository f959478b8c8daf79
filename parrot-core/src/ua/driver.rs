//! The tokio driver of the UA core: the only place that awaits. It feeds what
//! the transports receive, what the handles and call tasks send, and the
//! clock into the [`UaCore`], and carries out what the core asks for: bytes
//! sent (UDP at once; streams through one writer task per destination, so a
//! connect or a full connection waits there, in order, and not here), names
//! looked up and RTP bound in tasks of their own, and handler tasks started
//! and supervised.

use super::call_handle::CallHandle;
use super::call_task::{UacMedia, UasChannels, uac_media, uas_call};
use super::command::{Command, QueryId, Resolved};
use super::core::{OfferWanted, Output, Spawn, UaCore};
use super::counters::Counters;
use super::endpoint::Endpoint;
use super::handler::{Incoming, SipHandler, dispatch};
use super::media::MediaContext;
use super::pool::Pool;
use super::route::{self, Peer};
use crate::message::Uri;
use crate::transaction::{TransactionKey, Transmit};
use crate::transport::{ConnectionId, TransportKind, Transports};
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span};

/// A stream writer's queue: messages for one destination, in order.
type Writer = mpsc::UnboundedSender<(Bytes, Option<TransactionKey>)>;

/// A stream destination: transport, address, and the connection if known.
type WriterKey = (TransportKind, SocketAddr, Option<ConnectionId>);

/// How long a stream writer with nothing to send lives on.
const WRITER_IDLE: Duration = Duration::from_secs(30);

/// A handler future's poll longer than this moves the future off the driver
/// to a task of its own ([`Pool`]): signaling waits while handler code runs.
const SLOW_POLL: Duration = Duration::from_millis(1);

/// Handler code as the driver keeps it: type-erased, supervised.
type Handled = Supervise<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>;

pub(crate) struct Driver<F> {
    core: UaCore,
    transports: Transports,
    addrs: Arc<Vec<(TransportKind, SocketAddr)>>,
    factory: Arc<F>,
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    writers: HashMap<WriterKey, Writer>,
    /// RFC 3263 lookups, shared by the lookup tasks.
    resolver: route::Resolver,
    /// Handed to handlers ([`Incoming::endpoint`]): to dial a second leg.
    endpoint: Endpoint,
    /// The handler futures still pending after their first poll.
    pool: Pool<Handled>,
}

impl<F, H> Driver<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: SipHandler,
{
    /// The driver of `endpoint`'s core (the endpoint's handle is shared with
    /// handlers: [`Incoming::endpoint`]).
    pub(crate) fn new(
        core: UaCore,
        transports: Transports,
        factory: Arc<F>,
        resolver: route::Resolver,
        endpoint: Endpoint,
    ) -> Self {
        Driver {
            core,
            transports,
            addrs: endpoint.addrs.clone(),
            factory,
            commands: endpoint.commands.clone(),
            counters: endpoint.counters.clone(),
            writers: HashMap::new(),
            resolver,
            endpoint,
            pool: Pool::new(SLOW_POLL),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // One timer for the core's next deadline, moved only when that
        // deadline comes earlier than the one it is set for (or it fired): a
        // new timer per turn of the loop, or one moved at every change, cost
        // a timer-wheel registration per message and, when earlier than what
        // the parked runtime thread sleeps until, a wake-up of that thread.
        // A deadline that moved later fires early; `handle_timeout` then
        // finds nothing due and the timer is set again.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            self.drain().await;
            // Handler futures woken during the turn (by the core handing a
            // call its ACK or BYE, mostly): polled now, on this thread.
            if self.run_pool() {
                self.drain().await;
            }
            self.counters.publish(&self.core.stats());
            if self.core.is_done(Instant::now()) {
                break;
            }
            if let Some(wake) = self.core.poll_timeout() {
                if armed.is_none_or(|at| wake < at) {
                    timer.as_mut().reset(tokio::time::Instant::from_std(wake));
                    armed = Some(wake);
                }
            }
            tokio::select! {
                received = self.transports.recv_message() => match received {
                    Some(r) => {
                        self.core.set_media_behind(crate::media::pacing_behind());
                        self.core.set_media_room(crate::media::media_room());
                        self.core.handle_message(Instant::now(), r);
                    }
                    None => break,
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.core.handle_command(Instant::now(), cmd),
                    None => break,
                },
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.core.handle_timeout(Instant::now());
                }
                () = self.pool.ready(), if self.pool.len() > 0 => {
                    // Polled at the top of the loop. A future woken again and
                    // again (tokio's budget for this task spent: its channels
                    // report pending and wake it at once) must not keep this
                    // task from yielding, which is what renews the budget.
                    tokio::task::consume_budget().await;
                }
            }
            self.pool.disarm();
        }
        let done = self.core.close();
        self.drain().await;
        // The driver stops; handler code still running goes on in tasks.
        self.pool.spawn_all();
        self.transports.shutdown();
        if let Some(done) = done {
            let _ = done.send(());
        }
        info!("endpoint stopped");
    }

    /// Polls the pool's woken futures, handing what they have for the core
    /// to it; true if any was polled.
    fn run_pool(&mut self) -> bool {
        let (polled, mut captured) = run_pool(&mut self.pool);
        for cmd in captured.drain(..) {
            self.core.handle_command(Instant::now(), cmd);
        }
        recycle(captured);
        polled > 0
    }

    /// Carries out everything the core asks for.
    async fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit(t) => self.transmit(t).await,
                Output::Resolve {
                    query,
                    uri,
                    transport,
                    media,
                } => self.resolve(query, uri, transport, media),
                Output::Spawn(s) => {
                    let mut captured = self.spawn(s);
                    for cmd in captured.drain(..) {
                        self.core.handle_command(Instant::now(), cmd);
                    }
                    recycle(captured);
                }
            }
        }
    }

    /// UDP goes out at once (a datagram socket does not make us wait); a
    /// stream message goes to its destination's writer task.
    async fn transmit(&mut self, t: Transmit<Peer>) {
        let mut target = t.dest.target;
        // From the address the exchange uses: a request's arrival address, or
        // the one chosen towards the peer (on a wildcard socket, IP_PKTINFO).
        if !t.dest.local.ip().is_unspecified() {
            target.source = Some(t.dest.local.ip());
        }
        if target.kind == TransportKind::Udp {
            if let Err(e) = self.transports.send(&target, t.data).await {
                debug!(dest = %target.addr, error = %e, "send failed");
                if let Some(key) = t.key {
                    self.core
                        .handle_command(Instant::now(), Command::TransportError { key });
                }
            }
            return;
        }
        let wkey = (target.kind, target.addr, target.conn);
        let mut item = (t.data, t.key);
        if let Some(w) = self.writers.get(&wkey) {
            match w.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => item = back,
            }
        }
        if self.writers.len() >= 1024 {
            self.writers.retain(|_, w| !w.is_closed());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(item);
        self.writers.insert(wkey, tx);
        tokio::spawn(write_stream(
            self.transports.clone(),
            target,
            rx,
            self.commands.clone(),
        ));
    }

    /// Looks a name up (and binds RTP and makes the offer for a dial with
    /// audio) in a task of its own; the answer comes back as a command.
    fn resolve(
        &self,
        query: QueryId,
        uri: Uri,
        transport: Option<TransportKind>,
        media: Option<OfferWanted>,
    ) {
        let commands = self.commands.clone();
        let addrs = self.addrs.clone();
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            let result = async {
                let targets: Vec<Peer> = route::peers_towards(
                    &addrs,
                    route::resolve_all(&resolver, &uri, transport).await?,
                );
                let first = targets
                    .first()
                    .ok_or_else(|| super::UaError::Unroutable(uri.to_string()))?;
                let offer = match media {
                    None => None,
                    Some(m) => {
                        let first_ip = route::media_ip(first);
                        // SDES keys travel in the SDP: only if every destination
                        // the INVITE may go to is reached over TLS (RFC 4568 §8).
                        let secure = targets.iter().all(|t| t.target.kind.is_secure());
                        // Destinations reached from different addresses of
                        // ours (a multihomed host): RTP on the wildcard, so
                        // that a fail-over can offer the next one's address.
                        let multihomed = m.public_ip.is_none()
                            && targets.iter().any(|t| {
                                let ip = t.local.ip();
                                ip.is_ipv4() == first_ip.is_ipv4() && ip != first_ip
                            });
                        let ctx = if multihomed {
                            let any = if first_ip.is_ipv4() {
                                std::net::IpAddr::from([0, 0, 0, 0])
                            } else {
                                std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
                            };
                            MediaContext {
                                ports: m.ports,
                                local_ip: any,
                                public_ip: Some(first_ip),
                                entropy: m.entropy,
                                srtp: m.srtp,
                                rtcp_mux: m.rtcp_mux,
                                secure,
                            }
                        } else {
                            MediaContext {
                                ports: m.ports,
                                local_ip: first_ip,
                                public_ip: m.public_ip,
                                entropy: m.entropy,
                                srtp: m.srtp,
                                rtcp_mux: m.rtcp_mux,
                                secure,
                            }
                        };
                        let offered = super::media::offer(&ctx, m.handler)
                            .await
                            .map_err(|e| super::UaError::BadRequest(format!("media: {e}")))?;
                        Some(offered)
                    }
                };
                Ok(Resolved { targets, offer })
            }
            .await;
            let _ = commands
                .send(Command::Resolved {
                    query,
                    result: Box::new(result),
                })
                .await;
        });
    }

    /// Starts the handler code of `s` (see [`supervise`]); returns what it
    /// had for the core by the end of its first poll.
    fn spawn(&mut self, s: Spawn) -> Vec<Command> {
        let commands = self.commands.clone();
        match s {
            Spawn::Request { key, request, peer } => {
                let mut handler = (self.factory)();
                let incoming = Incoming::new(request, peer.target.addr, peer.target.kind, None)
                    .with_endpoint(self.endpoint.clone());
                let span = info_span!(
                    "request",
                    method = %incoming.method(),
                    call_id = incoming.call_id().unwrap_or("-").to_owned()
                );
                let core = commands.clone();
                let k = key.clone();
                let task = async move {
                    let reply = dispatch(&mut handler, &incoming).await;
                    let reply = Command::Reply {
                        call: None,
                        key: k,
                        reply,
                    };
                    to_core(&core, reply).await;
                };
                supervise(
                    &mut self.pool,
                    Box::pin(task.instrument(span)),
                    commands,
                    Supervised::Request(key),
                )
            }
            Spawn::Call {
                call,
                key,
                request,
                peer,
                task,
                provisional: (prov_tx, prov_rx),
                ports,
                public_ip,
                entropy,
                srtp,
                rtcp_mux,
            } => {
                let handler = (self.factory)();
                let ctx = MediaContext {
                    ports,
                    local_ip: route::media_ip(&peer),
                    public_ip,
                    entropy,
                    srtp,
                    rtcp_mux,
                    // The INVITE came over TLS (or WSS): our answer's keys go back on it.
                    secure: peer.target.kind.is_secure(),
                };
                let (handle, handle_ends) = CallHandle::new(commands.clone(), call);
                let (early_tx, early_rx) = mpsc::channel(1);
                let incoming =
                    Incoming::new(request, peer.target.addr, peer.target.kind, Some(prov_tx))
                        .with_media_context(ctx)
                        .with_endpoint(self.endpoint.clone())
                        .with_handle(handle)
                        .with_early_media(early_tx);
                let span = info_span!(
                    "call",
                    call_id = incoming.call_id().unwrap_or("-").to_owned()
                );
                let fut = uas_call(
                    handler,
                    Box::new(incoming),
                    key,
                    call,
                    commands.clone(),
                    UasChannels {
                        rx: task,
                        provisional: prov_rx,
                        early: early_rx,
                        handle: handle_ends,
                    },
                );
                // Boxed where it is made: a call task's future is ~15 KB, and
                // every move on the way into the runtime's task cell copied
                // all of it (~60 KB of memcpy per call in callgrind).
                supervise(
                    &mut self.pool,
                    Box::pin(Box::pin(fut).instrument(span)),
                    commands,
                    Supervised::Call(call),
                )
            }
            Spawn::UacMedia {
                call,
                offer,
                answer,
                control,
                events,
                stop,
                requests,
                entropy,
            } => {
                let media = UacMedia {
                    offer,
                    answer,
                    call,
                    control,
                    events,
                    stop,
                    requests,
                    entropy,
                };
                let span = info_span!(
                    "call",
                    call_id = media
                        .answer
                        .headers()
                        .call_id()
                        .map_or_else(|| "-".to_owned(), |c| c.to_string())
                );
                let fut = uac_media(Box::new(media), commands.clone());
                supervise(
                    &mut self.pool,
                    Box::pin(Box::pin(fut).instrument(span)),
                    commands,
                    Supervised::Media(call),
                )
            }
        }
    }
}

/// Whose task [`supervise`] runs, for what its end tells the core. Small on
/// purpose: the task keeps it all its life, where the `Command`s it becomes
/// are hundreds of bytes each.
enum Supervised {
    /// A call we answer: `CallDone` when its task returns.
    Call(super::slab::CallId),
    /// A placed call's media task: nothing when it returns.
    Media(super::slab::CallId),
    /// A request outside a call: nothing when it returns.
    Request(TransactionKey),
}

impl Supervised {
    fn on_exit(self) -> Option<Command> {
        match self {
            Supervised::Call(call) => Some(Command::CallDone { call }),
            Supervised::Media(_) | Supervised::Request(_) => None,
        }
    }

    fn on_panic(self) -> Command {
        match self {
            Supervised::Call(call) | Supervised::Media(call) => Command::Crashed {
                call: Some(call),
                key: None,
            },
            Supervised::Request(key) => Command::Crashed {
                call: None,
                key: Some(key),
            },
        }
    }
}

/// Runs handler code and tells the core how it ended
/// ([`Supervised::on_exit`] when it returns, [`Supervised::on_panic`] when it
/// panics: the panic ends this future only; "let it crash").
///
/// The future stays with the driver, in its [`Pool`]: polled first here and
/// then whenever it is woken, on the driver's thread. A handler that answers
/// without waiting (a 200 to an OPTIONS, a call answered at once) has its
/// reply in the core's queue before the driver's next turn, and the ACK and
/// BYE the core hands a call later wake nothing but a queue entry. Handler
/// code therefore runs on the driver and must not block, which no async code
/// may do on a tokio worker anyway; a poll that takes longer than
/// [`SLOW_POLL`] moves its future to a task of its own.
///
/// What the future has for the core during a poll on the driver is handed
/// to the driver at once ([`capture_inline`]): returned here for the first
/// poll, handled by [`Driver::run_pool`] for later ones. Sent on the core's
/// channel instead, it would wake the driver, the task running now, and a
/// task woken while it runs is put at the back of the runtime's queue and
/// wakes an idle worker to take it (with two workers, about one more thread
/// switch per call).
fn supervise(
    pool: &mut Pool<Handled>,
    fut: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    commands: mpsc::Sender<Command>,
    whose: Supervised,
) -> Vec<Command> {
    let task = Supervise {
        fut: Some(fut),
        whose: Some(whose),
        commands,
        sending: None,
    };
    capturing(|| pool.add(task)).1
}

/// Polls the pool's woken futures: how many, and what they had for the core.
fn run_pool(pool: &mut Pool<Handled>) -> (usize, Vec<Command>) {
    capturing(|| pool.run_ready())
}

/// Runs `poll` (the driver polling handler futures) with what they have
/// for the core kept aside ([`capture_inline`]); returns that too. Give the
/// vector back with [`recycle`] once its commands are handled.
fn capturing<R>(poll: impl FnOnce() -> R) -> (R, Vec<Command>) {
    let room = SPARE.with(std::cell::Cell::take);
    let outer = INLINE.with(|i| i.replace(Some(room)));
    let r = poll();
    let captured = INLINE.with(|i| i.replace(outer)).unwrap_or_default();
    (r, captured)
}

/// Keeps an emptied vector of [`capturing`] for the next poll: a `Command`
/// is hundreds of bytes, and a fresh vector for each poll that captures one
/// was two allocations past glibc's per-thread cache a call (DHAT).
fn recycle(mut v: Vec<Command>) {
    // A burst's room is let go rather than kept for good.
    if v.capacity() <= 64 {
        v.clear();
        SPARE.with(|s| s.set(v));
    }
}

thread_local! {
    /// While the driver polls a handler future ([`supervise`], [`Driver::run_pool`]): what it has for the core.
    static INLINE: std::cell::RefCell<Option<Vec<Command>>> =
        const { std::cell::RefCell::new(None) };
    /// The room [`capturing`] reuses.
    static SPARE: std::cell::Cell<Vec<Command>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Keeps `cmd` for the driver if the driver is polling the future that
/// sends it ([`supervise`], [`Driver::run_pool`]); gives it back otherwise
/// (the future moved to a task), to send on the core's channel.
pub(crate) fn capture_inline(cmd: Command) -> Option<Command> {
    INLINE.with(|i| match i.borrow_mut().as_mut() {
        Some(kept) => {
            kept.push(cmd);
            None
        }
        None => Some(cmd),
    })
}

/// Hands `cmd` to the core: to the driver polling the future that sends it
/// ([`capture_inline`]), else on the core's channel.
pub(crate) async fn to_core(core: &mpsc::Sender<Command>, cmd: Command) {
    if let Some(c) = try_to_core(core, cmd) {
        let _ = core.send(c).await;
    }
}

/// [`to_core`] for a call task: hands `cmd` over now if it can, else gives
/// back the wait for room in the core's queue, boxed. The call's future
/// then holds a pointer across that wait, not the `Command` (hundreds of
/// bytes, for the whole call), and a box is made only when it waits.
pub(crate) fn to_core_now(
    core: &mpsc::Sender<Command>,
    cmd: Command,
) -> Option<std::pin::Pin<Box<impl Future<Output = ()> + Send + '_>>> {
    let c = try_to_core(core, cmd)?;
    Some(Box::pin(async move {
        let _ = core.send(c).await;
    }))
}

/// [`to_core`] without waiting: gives `cmd` back only if the core's queue
/// is full, for the caller to `send(..).await`.
pub(crate) fn try_to_core(core: &mpsc::Sender<Command>, cmd: Command) -> Option<Command> {
    let cmd = capture_inline(cmd)?;
    match core.try_send(cmd) {
        // Closed: the core is gone, as `send` would have found.
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        Err(mpsc::error::TrySendError::Full(c)) => Some(c),
    }
}

/// The future [`supervise`] runs: the handler's, then the message its end
/// becomes. `Unpin` (its parts are boxed or plain), so that it can be kept
/// in the driver's pool and moved into a task between polls.
pub(crate) struct Supervise<Fut> {
    /// `fut` comes boxed (`Box::pin` where it is made, see the callers): a
    /// call task's future is kilobytes that stay for the whole call.
    fut: Option<Fut>,
    whose: Option<Supervised>,
    commands: mpsc::Sender<Command>,
    /// The end's message, when the core's queue was full.
    sending: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<Fut> Future for Supervise<Fut>
where
    Fut: Future<Output = ()> + Unpin,
{
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        let this = &mut *self;
        if let Some(fut) = this.fut.as_mut() {
            let ended =
                std::panic::catch_unwind(AssertUnwindSafe(|| std::pin::Pin::new(fut).poll(cx)));
            let whose = this.whose.take();
            let msg = match ended {
                Ok(Poll::Pending) => {
                    this.whose = whose;
                    return Poll::Pending;
                }
                Ok(Poll::Ready(())) => whose.and_then(Supervised::on_exit),
                Err(_) => whose.map(Supervised::on_panic),
            };
            // Dropped here, inside the guard too: a panic from a handler's
            // `Drop` must not end the driver when this runs on it.
            let fut = this.fut.take();
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(fut)));
            if let Some(m) = msg.and_then(capture_inline) {
                match this.commands.try_send(m) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(m)) => {
                        let commands = this.commands.clone();
                        this.sending = Some(Box::pin(async move {
                            let _ = commands.send(m).await;
                        }));
                    }
                }
            }
        }
        match this.sending.as_mut() {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

/// Writes a stream destination's messages in order (connecting first if
/// needed); a failure is the transaction's (§17.1.4, §17.2.4). Ends after
/// [`WRITER_IDLE`] without a message.
async fn write_stream(
    transports: Transports,
    target: crate::transport::Target,
    mut rx: mpsc::UnboundedReceiver<(Bytes, Option<TransactionKey>)>,
    commands: mpsc::Sender<Command>,
) {
    loop {
        let item = match tokio::time::timeout(WRITER_IDLE, rx.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => return,
            Err(_) => {
                // Idle: refuse new messages (the driver starts a new writer),
                // then send what came in meanwhile.
                rx.close();
                match rx.try_recv() {
                    Ok(item) => item,
                    Err(_) => return,
                }
            }
        };
        let (data, key) = item;
        if let Err(e) = transports.send(&target, data).await {
            debug!(dest = %target.addr, error = %e, "send failed");
            if let Some(key) = key {
                let _ = commands.send(Command::TransportError { key }).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::slab::{CallId, Slab};
    use super::*;

    fn a_call() -> CallId {
        Slab::default().insert(())
    }

    fn is_done(c: &Command, call: CallId) -> bool {
        matches!(c, Command::CallDone { call: c } if *c == call)
    }

    fn pool() -> Pool<Handled> {
        Pool::new(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_future_done_in_its_first_poll_gives_its_commands_back_and_no_task() {
        let (tx, mut rx) = mpsc::channel(4);
        let (call, other) = (a_call(), a_call());
        let mut pool = pool();
        let got = supervise(
            &mut pool,
            Box::pin(async move {
                assert!(capture_inline(Command::CallDone { call: other }).is_none());
            }),
            tx,
            Supervised::Call(call),
        );
        assert_eq!(got.len(), 2);
        assert!(is_done(&got[0], other) && is_done(&got[1], call));
        // Nothing went through the channel; and nothing holds its sender.
        assert_eq!(pool.len(), 0);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_panic_in_a_poll_or_in_drop_ends_that_future_only() {
        let (tx, mut rx) = mpsc::channel(4);
        let (call, later) = (a_call(), a_call());
        let mut pool = pool();
        let got = supervise(
            &mut pool,
            Box::pin(async { panic!("handler bug") }),
            tx.clone(),
            Supervised::Call(call),
        );
        assert!(matches!(got[..], [Command::Crashed { call: Some(c), key: None }] if c == call));

        // Done at once, and its drop (after the poll) panics.
        struct Bomb;
        impl Future for Bomb {
            type Output = ();
            fn poll(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<()> {
                std::task::Poll::Ready(())
            }
        }
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("drop bug");
            }
        }
        let got = supervise(
            &mut pool,
            Box::pin(Bomb),
            tx.clone(),
            Supervised::Call(call),
        );
        assert!(matches!(got[..], [Command::CallDone { .. }]));

        // A panic after an await, in a poll from the pool.
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let got = supervise(
            &mut pool,
            Box::pin(async move {
                let _ = wait.await;
                panic!("later bug");
            }),
            tx,
            Supervised::Call(later),
        );
        assert!(got.is_empty());
        let _ = go.send(());
        let (polled, got) = run_pool(&mut pool);
        assert_eq!(polled, 1);
        assert!(matches!(got[..], [Command::Crashed { call: Some(c), .. }] if c == later));
        assert_eq!(pool.len(), 0);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_pending_future_stays_on_the_driver_and_its_commands_come_back_from_the_pool() {
        let (tx, mut rx) = mpsc::channel(4);
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (call, other) = (a_call(), a_call());
        let mut pool = pool();
        let got = supervise(
            &mut pool,
            Box::pin(async move {
                let _ = wait.await;
                to_core(&mpsc::channel(1).0, Command::CallDone { call: other }).await;
            }),
            tx,
            Supervised::Call(call),
        );
        assert!(got.is_empty());
        assert_eq!(pool.len(), 1);
        // Woken from another task, as a call's channel would.
        tokio::spawn(async move {
            let _ = go.send(());
        });
        pool.ready().await;
        let (polled, got) = run_pool(&mut pool);
        assert_eq!(polled, 1);
        assert!(is_done(&got[0], other) && is_done(&got[1], call));
        assert_eq!(pool.len(), 0);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_slow_future_moves_to_a_task_that_sends_on_the_channel() {
        let (tx, mut rx) = mpsc::channel(4);
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (call, other) = (a_call(), a_call());
        // Every poll counts as slow.
        let mut pool = Pool::new(Duration::ZERO);
        let got = supervise(
            &mut pool,
            Box::pin(async move {
                let _ = wait.await;
                // Now in a task of its own: nothing to capture.
                let c = capture_inline(Command::CallDone { call: other });
                assert!(c.is_some());
            }),
            tx,
            Supervised::Call(call),
        );
        assert!(got.is_empty());
        assert_eq!(pool.len(), 0);
        let _ = go.send(());
        let end = rx.recv().await;
        assert!(end.is_some_and(|c| is_done(&c, call)));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_command_waits_for_room_only_when_the_core_s_queue_is_full() {
        let (tx, mut rx) = mpsc::channel(1);
        let (one, two) = (a_call(), a_call());
        // Room: sent at once, nothing to wait for.
        assert!(to_core_now(&tx, Command::CallDone { call: one }).is_none());
        // Full: the wait comes back, and sends once there is room.
        let wait = to_core_now(&tx, Command::CallDone { call: two });
        let wait = wait.expect("a full queue gives the wait back");
        assert!(rx.recv().await.is_some_and(|c| is_done(&c, one)));
        wait.await;
        assert!(rx.recv().await.is_some_and(|c| is_done(&c, two)));
        // While the driver polls: kept for it, the queue not touched.
        let (none, captured) =
            capturing(|| to_core_now(&tx, Command::CallDone { call: one }).is_none());
        assert!(none);
        assert!(matches!(captured[..], [Command::CallDone { call }] if call == one));
        recycle(captured);
        assert!(rx.try_recv().is_err());
        // The core gone: dropped, as `send` would have.
        drop(rx);
        assert!(to_core_now(&tx, Command::CallDone { call: two }).is_none());
    }
}
