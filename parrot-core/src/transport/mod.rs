//! SIP transports on tokio: UDP, TCP, TLS and WebSocket.
//!
//! This layer moves raw SIP message bytes; it does not parse SIP. Every
//! [`Inbound`] holds one whole message: a UDP datagram, one
//! Content-Length-framed message from a TCP or TLS stream (RFC 3261 §18.3), or
//! one WebSocket text or binary frame (RFC 7118). CRLF keep-alives
//! (RFC 5626 §3.5.1) are answered and never delivered.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parrot_core::transport::TransportError> {
//! use parrot_core::transport::{Target, TransportConfig, Transports};
//!
//! let transports = Transports::new(TransportConfig::default());
//! transports.bind_udp("127.0.0.1:5060".parse().unwrap()).await?;
//! transports.bind_tcp("127.0.0.1:5060".parse().unwrap()).await?;
//! while let Some(incoming) = transports.recv().await {
//!     // ... parse, build a response ...
//!     # let response = incoming.data.clone();
//!     // RFC 3261 §18.2.2: back on the connection the request came on.
//!     transports.send(&Target::reply_to(&incoming), response).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! Stream connections are bounded by [`TransportConfig`]: in number
//! (`max_connections` in all, `max_connections_per_source` accepted from one
//! IP address), in idleness (`idle_timeout`: only whole messages and
//! keep-alives count, so RFC 5626 keep-alives keep a flow open), in how long
//! one message may take to arrive (`message_timeout`, against slowloris), and
//! in handshake time (`connect_timeout` for TLS and WebSocket handshakes).
//! WebSocket upgrades are checked as RFC 6455 §4.2.1 asks (400, or 426 for a
//! version other than 13).
//!
//! Every connection is a file descriptor, so the total cap also stays below
//! the process's limit (`RLIMIT_NOFILE`, `ulimit -n`): on Linux, [`Transports::new`]
//! first raises the soft limit to the hard one (as servers commonly do, and Go's
//! runtime does for every program; [`TransportConfig::raise_fd_limit`] turns it
//! off), then caps stream connections at `max_connections` or three quarters of
//! the soft limit, whichever is lower. The quarter kept back (at least 64, at most
//! half) is for everything else a SIP process opens: UDP sockets, two per call
//! for RTP and RTCP, WAV files, the resolver. So with a limit of 1,024 a process
//! takes at most 768 connections and keeps 256 descriptors, enough for about a
//! hundred calls' RTP; raise the hard limit for more. [`TransportStats::connection_cap`]
//! says what the cap came to.
//!
//! At the cap, a new accepted connection is not refused while an accepted one
//! has never sent a whole SIP message: of those, the one idle the longest is
//! closed to make room (a little like Apache's event MPM, which closes idle
//! keep-alive connections when it is full). So connections that only squat
//! (idle, or trickling a slowloris header) cannot lock new clients out for
//! `idle_timeout`, while flows that have carried a message (a phone's
//! registered flow, kept by RFC 5626 keep-alives) are never closed for a
//! newcomer ([`TransportStats::evicted_connections`]). When every connection
//! has carried a message, a new one is refused.
//! If descriptors run out anyway (accept fails with `EMFILE`/`ENFILE`, say with
//! many calls' RTP sockets open), the listener logs it once, closes the waiting
//! connection with a descriptor it keeps spare (the client hears a close instead
//! of hanging in the backlog; counted in `rejected_connections`), backs off for
//! 50 ms and tries again; open connections and UDP go on being served.
//!
//! # Shutdown
//!
//! [`Transports`] is a cheap handle (an `Arc` inside). UDP sockets have no
//! task: [`Transports::recv`] reads them itself. Every background task
//! (listeners, connections) ends when [`Transports::shutdown`]
//! is called or when the last clone of the handle is dropped; sockets and
//! connections are closed as their tasks end.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

pub use sip::Received;
use tokio::sync::{mpsc, watch};

mod sip;
mod stream;
mod tcp;
mod tls;
mod udp;
mod ws;

/// Capacity of the channel that carries messages received on streams to [`Transports::recv`].
const INCOMING_QUEUE: usize = 1024;
/// Capacity of each connection's queue of messages to write.
const OUTGOING_QUEUE: usize = 64;

/// A SIP transport protocol, as named in the Via header (RFC 3261 §18, RFC 7118).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP datagrams.
    Udp,
    /// TCP stream, messages framed by Content-Length.
    Tcp,
    /// TLS over TCP, messages framed by Content-Length.
    Tls,
    /// WebSocket (RFC 7118), one message per frame.
    Ws,
    /// WebSocket over TLS (RFC 7118).
    Wss,
}

impl TransportKind {
    /// The transport token for a Via header: `"UDP"`, `"TCP"`, `"TLS"`, `"WS"` or `"WSS"`.
    pub const fn as_via_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }

    /// True for connection-oriented transports that deliver reliably (all but UDP).
    pub const fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// True for transports protected by TLS (TLS and WSS).
    pub const fn is_secure(self) -> bool {
        matches!(self, TransportKind::Tls | TransportKind::Wss)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_via_str())
    }
}

/// Limits and client settings for [`Transports`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Largest message accepted: bigger UDP datagrams are dropped, and a stream
    /// announcing a bigger message is closed before the message is buffered.
    pub max_message_size: usize,
    /// Most stream connections (TCP, TLS, WS, WSS; accepted and outgoing) open at once.
    /// Default 10,000. The cap in force is lower if the process's file descriptor
    /// limit asks for it: three quarters of `RLIMIT_NOFILE` (see the [module
    /// docs](self#limits); [`TransportStats::connection_cap`]). An accepted
    /// connection beyond it closes an accepted connection that has sent no
    /// message yet (the one idle the longest) to make room, or is closed at once
    /// when there is none.
    pub max_connections: usize,
    /// Most accepted stream connections open at once from one source IP address
    /// (all listeners together; outgoing connections do not count). Connections
    /// beyond this are closed at once. Default 32.
    pub max_connections_per_source: usize,
    /// A stream connection on which nothing completes for this long is closed:
    /// each whole message or keep-alive received (a CRLF pair, RFC 5626
    /// §3.5.1; a WebSocket ping) and each message sent starts it again, bytes
    /// that do not complete a message do not. Default 180 s, above the 95–120 s
    /// interval at which RFC 5626 §4.4.1 clients send keep-alives on a flow.
    pub idle_timeout: Duration,
    /// Time allowed from the first byte of a message on a stream connection to
    /// its last (header and body on TCP and TLS, a frame on WS and WSS): a
    /// peer trickling a message that never completes (slowloris) is closed
    /// then. Default 10 s.
    pub message_timeout: Duration,
    /// Time allowed for an outgoing connect, and for a TLS or WebSocket handshake.
    pub connect_timeout: Duration,
    /// Client configuration for outgoing TLS and WSS connections; without it they fail.
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Receive buffer asked for each UDP socket (`SO_RCVBUF`; Linux caps it at
    /// `net.core.rmem_max`). Datagrams that arrive while the stack is busy
    /// wait there; when it is full the kernel drops them and the peer has to
    /// retransmit, 500 ms later. The default (4 MiB) holds thousands of SIP
    /// messages, enough to ride out a short pause of the stack under load; a
    /// system's usual default holds a few hundred. 0 keeps the system's default.
    pub udp_recv_buffer: usize,
    /// Raise the process's soft `RLIMIT_NOFILE` to its hard limit when the
    /// transports are made (Linux; default true), so that `max_connections`
    /// connections fit. Turn it off in a process that still uses `select(2)`,
    /// which cannot watch descriptors above 1,023.
    pub raise_fd_limit: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_message_size: 65_536,
            max_connections: 10_000,
            max_connections_per_source: 32,
            idle_timeout: Duration::from_secs(180),
            message_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            tls_client: None,
            udp_recv_buffer: 4 << 20,
            raise_fd_limit: true,
        }
    }
}

/// Identifies one stream connection (TCP, TLS, WS or WSS) for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One received SIP message, still unparsed.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The whole message (start line, headers, body).
    pub data: Bytes,
    /// The peer's address (for Via `received` / `rport`).
    pub source: SocketAddr,
    /// Our address the message arrived on.
    pub local: SocketAddr,
    /// The transport it arrived over.
    pub kind: TransportKind,
    /// The connection it arrived on (`None` for UDP).
    pub conn: Option<ConnectionId>,
}

/// Where to send a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// The transport to use.
    pub kind: TransportKind,
    /// The peer's address.
    pub addr: SocketAddr,
    /// A connection to prefer (for responses: the one the request came on).
    pub conn: Option<ConnectionId>,
    /// TLS server name (SNI and certificate check) for new TLS / WSS connections;
    /// the IP address of `addr` when `None`.
    pub server_name: Option<String>,
    /// UDP: our address to send from (the one a request arrived on), for a
    /// socket bound to the wildcard; the kernel's choice when `None`.
    pub source: Option<IpAddr>,
}

impl Target {
    /// A target with no connection preference.
    pub fn new(kind: TransportKind, addr: SocketAddr) -> Self {
        Target {
            kind,
            addr,
            conn: None,
            server_name: None,
            source: None,
        }
    }

    /// Back to where `incoming` came from, on the same connection if it is still open.
    pub fn reply_to(incoming: &Inbound) -> Self {
        Target {
            kind: incoming.kind,
            addr: incoming.source,
            conn: incoming.conn,
            server_name: None,
            source: Some(incoming.local.ip()),
        }
    }

    /// Prefers the connection `conn`.
    #[must_use]
    pub fn with_conn(mut self, conn: ConnectionId) -> Self {
        self.conn = Some(conn);
        self
    }

    /// Sends from our address `source` (UDP on a wildcard-bound socket).
    #[must_use]
    pub fn with_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Sets the TLS server name for new TLS / WSS connections.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No UDP socket of the target's address family is bound.
    #[error("no UDP socket bound for {0}")]
    NoUdpSocket(SocketAddr),
    /// Connecting (or the TLS / WebSocket handshake) took longer than `connect_timeout`.
    #[error("connecting to {0} timed out")]
    ConnectTimeout(SocketAddr),
    /// The connection cap is reached (`max_connections`, or less for the
    /// file descriptor limit).
    #[error("too many open connections")]
    TooManyConnections,
    /// A TLS or WSS connection is needed but no `tls_client` is configured.
    #[error("no TLS client configuration")]
    NoTlsClientConfig,
    /// The TLS server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// The peer.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake with {addr} failed: {message}")]
    WebSocket {
        /// The peer.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// The connection closed before the message could be queued.
    #[error("connection closed")]
    ConnectionClosed,
    /// The transports were shut down.
    #[error("transports shut down")]
    Shutdown,
}

/// Counters, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// UDP datagrams dropped for exceeding `max_message_size`.
    pub oversize_datagrams: u64,
    /// Accepted connections closed at once because the total cap was reached and
    /// none open could make room, or `max_connections_per_source` were open from
    /// their source, or the process ran out of file descriptors.
    pub rejected_connections: u64,
    /// Accepted connections that had sent no message, closed to make room for a
    /// new one at the total cap.
    pub evicted_connections: u64,
    /// Stream connections closed by `idle_timeout` or `message_timeout`.
    pub timed_out_connections: u64,
    /// Stream connections closed for a framing error (including too large messages).
    pub framing_errors: u64,
    /// Stream connections open now (including those still handshaking).
    pub open_connections: usize,
    /// The total cap in force: `max_connections`, or less for the file
    /// descriptor limit (see the [module docs](self#limits)).
    pub connection_cap: usize,
}

/// The set of bound transports and open connections; cheap to clone.
///
/// Received messages from every transport arrive through [`Transports::recv`].
/// All background tasks end on [`Transports::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transports")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Owned by the handles only: dropping it stops every task.
struct Inner {
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<Receiving>,
    shutdown_tx: watch::Sender<bool>,
}

/// What [`Transports::recv`] reads from: the channel the stream tasks
/// deliver on, and the UDP sockets themselves (read in the receiving task).
struct Receiving {
    streams: mpsc::Receiver<Inbound>,
    udp: udp::UdpReader,
    /// Whose turn it is to be looked at first (streams or UDP), so that
    /// neither starves the other.
    udp_first: bool,
}

impl Receiving {
    fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
        shared: &Shared,
    ) -> std::task::Poll<Option<Inbound>> {
        use std::task::Poll;
        self.udp_first = !self.udp_first;
        if self.udp_first {
            if let Poll::Ready(m) = self.udp.poll_recv(cx, shared) {
                return Poll::Ready(Some(m));
            }
            return self.streams.poll_recv(cx);
        }
        if let Poll::Ready(m) = self.streams.poll_recv(cx) {
            return Poll::Ready(m);
        }
        self.udp.poll_recv(cx, shared).map(Some)
    }
}

/// State shared by the handles and the background tasks.
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    pub(crate) incoming: mpsc::Sender<Inbound>,
    shutdown: watch::Receiver<bool>,
    udp: Mutex<Vec<(SocketAddr, Arc<udp::UdpEndpoint>)>>,
    conns: Mutex<ConnTable>,
    open: AtomicUsize,
    /// The total cap in force (`max_connections`, or less for `RLIMIT_NOFILE`).
    cap: usize,
    /// What connections' activity times count from.
    epoch: tokio::time::Instant,
    /// A descriptor kept open to close one waiting connection with when accept
    /// fails for want of descriptors.
    spare_fd: Mutex<Option<std::fs::File>>,
    /// Accepted connections open (or handshaking) per source IP address.
    per_source: Mutex<HashMap<IpAddr, usize>>,
    next_id: AtomicU64,
    oversize_datagrams: AtomicU64,
    rejected_connections: AtomicU64,
    evicted_connections: AtomicU64,
    timed_out_connections: AtomicU64,
    framing_errors: AtomicU64,
}

#[derive(Default)]
struct ConnTable {
    by_id: HashMap<ConnectionId, ConnEntry>,
    by_addr: HashMap<(TransportKind, SocketAddr), ConnectionId>,
}

struct ConnEntry {
    tx: mpsc::Sender<Bytes>,
    activity: Arc<Activity>,
}

/// When a connection was last active, and the way to close it to make room.
pub(crate) struct Activity {
    /// Milliseconds from [`Shared::epoch`] to the last whole message or
    /// keep-alive received, or message sent.
    last: AtomicU64,
    /// Accepted (not opened by us): the only kind closed to make room.
    accepted: bool,
    /// A whole SIP message has arrived on it: never closed to make room.
    proven: std::sync::atomic::AtomicBool,
    evicted: std::sync::atomic::AtomicBool,
    evict: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until shutdown is requested or the owning [`Transports`] is gone.
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // Err means the sender (the last handle) was dropped: shut down too.
    let _ = rx.wait_for(|&stop| stop).await;
}

/// A reserved place among `max_connections` (and, for an accepted
/// connection, among `max_connections_per_source` of its source); released on drop.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    source: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.source {
            let mut per_source = lock(&self.shared.per_source);
            if let Some(n) = per_source.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_source.remove(&ip);
                }
            }
        }
    }
}

/// File descriptors never taken by stream connections: at least this many,
/// and a quarter of the limit (see the module docs, "Limits").
const FD_RESERVE_MIN: u64 = 64;

/// How far over the cap accepted connections may run while the connections
/// closed to make room for them are still closing (their tasks end a moment
/// after they are told to).
const EVICTION_SLACK: usize = 64;

/// The total connection cap for `max` and the soft `RLIMIT_NOFILE` (`None`:
/// unlimited): `max`, or three quarters of the limit if that is lower, a
/// quarter (at least [`FD_RESERVE_MIN`], at most half) kept for sockets and
/// files other than stream connections.
pub(crate) fn connection_cap(max: usize, soft_fd_limit: Option<u64>) -> usize {
    let Some(soft) = soft_fd_limit else {
        return max;
    };
    let reserve = (soft / 4).max(FD_RESERVE_MIN).min(soft / 2);
    let room = usize::try_from(soft - reserve).unwrap_or(usize::MAX);
    max.min(room)
}

/// The soft `RLIMIT_NOFILE` (`None`: unlimited or unknown), first raised to the
/// hard limit if `raise` (once per process: the result is kept).
#[cfg(target_os = "linux")]
fn soft_fd_limit(raise: bool) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    static RAISED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if raise {
        RAISED.get_or_init(|| {
            let now = getrlimit(Resource::Nofile);
            if now.current != now.maximum {
                let raised = Rlimit {
                    current: now.maximum,
                    maximum: now.maximum,
                };
                match setrlimit(Resource::Nofile, raised) {
                    Ok(()) => tracing::debug!(from = ?now.current, to = ?now.maximum,
                        "raised the soft RLIMIT_NOFILE to the hard limit"),
                    Err(e) => tracing::debug!(error = %e, "cannot raise RLIMIT_NOFILE"),
                }
            }
        });
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(target_os = "linux"))]
fn soft_fd_limit(_raise: bool) -> Option<u64> {
    None
}

/// True for the accept errors that mean "out of file descriptors" (the
/// process's limit, or the system's).
pub(crate) fn out_of_fds(e: &std::io::Error) -> bool {
    // EMFILE 24, ENFILE 23 on Linux and the BSDs.
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Why an accepted connection gets no [`Slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_source` are open from this source.
    Source,
}

/// A connection listed in the table; removed on drop.
pub(crate) struct Registration {
    pub(crate) id: ConnectionId,
    pub(crate) kind: TransportKind,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    activity: Arc<Activity>,
    slot: Slot,
}

impl Registration {
    /// The connection was last active at `at` (a whole message or keep-alive
    /// received, or a message sent): what makes room at the cap looks at it.
    pub(crate) fn touch(&self, at: tokio::time::Instant) {
        let ms = at
            .saturating_duration_since(self.slot.shared.epoch)
            .as_millis();
        self.activity
            .last
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A whole SIP message arrived: the connection is no longer one that is
    /// closed to make room for another.
    pub(crate) fn proven(&self) {
        self.activity.proven.store(true, Ordering::Relaxed);
    }

    /// Resolves when the connection is to close to make room for a new one.
    pub(crate) async fn evicted(&self) {
        self.activity.evict.notified().await;
        self.slot
            .shared
            .evicted_connections
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(conn = %self.id, remote = %self.remote,
            "connection cap reached: closing a connection that has sent no message, to make room");
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let shared = &self.slot.shared;
        let mut table = lock(&shared.conns);
        table.by_id.remove(&self.id);
        let key = (self.kind, self.remote);
        if table.by_addr.get(&key) == Some(&self.id) {
            table.by_addr.remove(&key);
        }
        tracing::debug!(conn = %self.id, kind = %self.kind, remote = %self.remote, "connection closed");
    }
}

impl Shared {
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        // A dropped sender means the owner is gone.
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    /// Reserves a connection slot, or `None` when the cap is reached.
    pub(crate) fn try_slot(self: &Arc<Self>) -> Option<Slot> {
        self.try_slot_within(self.cap)
    }

    fn try_slot_within(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                shared: Arc::clone(self),
                source: None,
            })
    }

    /// Reserves a slot for a connection accepted from `source`, within both
    /// the total cap and `max_connections_per_source`. At the total cap, the
    /// accepted connection idle the longest of those that never sent a whole
    /// message is told to close, and the new one takes its place (over the cap until it has closed, by at most
    /// [`EVICTION_SLACK`]).
    pub(crate) fn try_accept_slot(self: &Arc<Self>, source: IpAddr) -> Result<Slot, NoSlot> {
        let ip = source.to_canonical();
        {
            let mut per_source = lock(&self.per_source);
            let n = per_source.entry(ip).or_insert(0);
            if *n >= self.config.max_connections_per_source {
                if *n == 0 {
                    per_source.remove(&ip);
                }
                return Err(NoSlot::Source);
            }
            *n += 1;
        }
        let slot = self.try_slot().or_else(|| {
            (self.evict_idlest() && self.cap > 0)
                .then(|| self.try_slot_within(self.cap + EVICTION_SLACK))
                .flatten()
        });
        match slot {
            Some(mut slot) => {
                slot.source = Some(ip);
                Ok(slot)
            }
            None => {
                let mut per_source = lock(&self.per_source);
                if let Some(n) = per_source.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        per_source.remove(&ip);
                    }
                }
                Err(NoSlot::Total)
            }
        }
    }

    /// The total cap in force.
    pub(crate) fn stats_cap(&self) -> usize {
        self.cap
    }

    /// Tells the accepted connection that has sent no message and is idle the
    /// longest to close; false if there is none (all have sent one, or are
    /// handshaking, outgoing, or already told).
    fn evict_idlest(&self) -> bool {
        let table = lock(&self.conns);
        let victim = table
            .by_id
            .values()
            .filter(|e| {
                let a = &e.activity;
                a.accepted
                    && !a.proven.load(Ordering::Relaxed)
                    && !a.evicted.load(Ordering::Relaxed)
            })
            .min_by_key(|e| e.activity.last.load(Ordering::Relaxed));
        let Some(victim) = victim else {
            return false;
        };
        victim.activity.evicted.store(true, Ordering::Relaxed);
        // A permit is stored if the task is not waiting right now.
        victim.activity.evict.notify_one();
        true
    }

    /// Accept failed for want of descriptors: frees the spare one, accepts a
    /// waiting connection with it and closes that at once, then takes the
    /// spare again. True if a connection was closed so (its client hears a
    /// close rather than waiting in the backlog).
    pub(crate) fn shed_with_spare(&self, listener: &tokio::net::TcpListener) -> bool {
        use futures_util::FutureExt;
        let mut spare = lock(&self.spare_fd);
        if spare.take().is_none() {
            return false;
        }
        // The listener just reported a connection waiting: accept is ready.
        let shed = matches!(listener.accept().now_or_never(), Some(Ok(_)));
        *spare = std::fs::File::open("/dev/null").ok();
        shed
    }

    pub(crate) fn count_timed_out(&self) {
        self.timed_out_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rejected(&self) {
        self.rejected_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_framing_error(&self) {
        self.framing_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_oversize_datagram(&self) {
        self.oversize_datagrams.fetch_add(1, Ordering::Relaxed);
    }

    /// Lists an established connection; its queue of messages to write is returned.
    pub(crate) fn register(
        &self,
        slot: Slot,
        kind: TransportKind,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> (Registration, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        let activity = Arc::new(Activity {
            last: AtomicU64::new(0),
            accepted: slot.source.is_some(),
            proven: std::sync::atomic::AtomicBool::new(false),
            evicted: std::sync::atomic::AtomicBool::new(false),
            evict: tokio::sync::Notify::new(),
        });
        let mut table = lock(&self.conns);
        table.by_id.insert(
            id,
            ConnEntry {
                tx: tx.clone(),
                activity: Arc::clone(&activity),
            },
        );
        table.by_addr.insert((kind, remote), id);
        drop(table);
        tracing::debug!(conn = %id, %kind, %remote, %local, "connection open");
        (
            Registration {
                id,
                kind,
                remote,
                local,
                activity,
                slot,
            },
            tx,
            rx,
        )
    }

    fn sender_by_id(&self, id: ConnectionId) -> Option<mpsc::Sender<Bytes>> {
        lock(&self.conns).by_id.get(&id).map(|e| e.tx.clone())
    }

    fn sender_by_addr(&self, kind: TransportKind, addr: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        let table = lock(&self.conns);
        let id = table.by_addr.get(&(kind, addr))?;
        table.by_id.get(id).map(|e| e.tx.clone())
    }

    pub(crate) fn add_udp(&self, local: SocketAddr, socket: Arc<udp::UdpEndpoint>) {
        lock(&self.udp).push((local, socket));
    }

    /// The socket to send to `target` from: of its address family, bound to
    /// `source` if one is, else a wildcard one, else any.
    fn udp_for(&self, target: SocketAddr, source: Option<IpAddr>) -> Option<Arc<udp::UdpEndpoint>> {
        let sockets = lock(&self.udp);
        let family = || {
            sockets
                .iter()
                .filter(|(local, _)| local.is_ipv4() == target.is_ipv4())
        };
        family()
            .find(|(local, _)| Some(local.ip()) == source)
            .or_else(|| family().find(|(local, _)| local.ip().is_unspecified()))
            .or_else(|| family().next())
            .map(|(_, s)| Arc::clone(s))
    }
}

impl Transports {
    /// Creates an empty set of transports; bind some with the `bind_*` methods.
    ///
    /// On Linux this reads the process's file descriptor limit, and first raises
    /// its soft limit to the hard one unless [`TransportConfig::raise_fd_limit`]
    /// is off (see the [module docs](self#limits)).
    pub fn new(config: TransportConfig) -> Self {
        let cap = connection_cap(config.max_connections, soft_fd_limit(config.raise_fd_limit));
        if cap < config.max_connections {
            tracing::info!(
                max_connections = config.max_connections,
                cap,
                "stream connections capped below max_connections by the file descriptor limit"
            );
        }
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            incoming: tx,
            shutdown: shutdown_rx,
            udp: Mutex::new(Vec::new()),
            conns: Mutex::new(ConnTable::default()),
            open: AtomicUsize::new(0),
            cap,
            epoch: tokio::time::Instant::now(),
            spare_fd: Mutex::new(std::fs::File::open("/dev/null").ok()),
            per_source: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            oversize_datagrams: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            evicted_connections: AtomicU64::new(0),
            timed_out_connections: AtomicU64::new(0),
            framing_errors: AtomicU64::new(0),
        });
        Transports {
            inner: Arc::new(Inner {
                shared,
                rx: tokio::sync::Mutex::new(Receiving {
                    streams: rx,
                    udp: udp::UdpReader::default(),
                    udp_first: false,
                }),
                shutdown_tx,
            }),
        }
    }

    /// The configuration these transports were built with.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.shared.config
    }

    fn check_running(&self) -> Result<(), TransportError> {
        if self.inner.shared.is_shut_down() {
            Err(TransportError::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Binds a UDP socket (port 0 picks a free port) and returns its local address.
    ///
    /// Outgoing UDP messages leave from the first bound socket of the target's address family.
    pub async fn bind_udp(&self, addr: SocketAddr) -> Result<SocketAddr, TransportError> {
        self.check_running()?;
        Ok(udp::bind(&self.inner.shared, addr).await?)
    }

    /// Listens for TCP connections and returns the local address.
    pub async fn bind_tcp(&self, addr: SocketAddr) -> Result<SocketAddr, TransportError> {
        self.check_running()?;
        Ok(tcp::bind(&self.inner.shared, addr, tcp::Mode::Tcp).await?)
    }

    /// Listens for TLS connections with the given server configuration.
    pub async fn bind_tls(
        &self,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<SocketAddr, TransportError> {
        self.check_running()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Ok(tcp::bind(&self.inner.shared, addr, tcp::Mode::Tls(acceptor)).await?)
    }

    /// Listens for SIP over WebSocket (RFC 7118) on plain TCP.
    ///
    /// The handshake is checked as RFC 6455 §4.2.1 asks: a `GET` in HTTP/1.1
    /// with CRLF line endings, one `Host`, `Upgrade: websocket`, `Connection:
    /// Upgrade`, one `Sec-WebSocket-Key` that is 16 bytes in base64, and the
    /// `sip` subprotocol offered (RFC 7118); anything else is refused with 400.
    /// A `Sec-WebSocket-Version` other than 13 gets 426 naming 13 (§4.2.2).
    /// The connection is closed after a refusal.
    pub async fn bind_ws(&self, addr: SocketAddr) -> Result<SocketAddr, TransportError> {
        self.check_running()?;
        Ok(tcp::bind(&self.inner.shared, addr, tcp::Mode::Ws).await?)
    }

    /// Listens for SIP over secure WebSocket (WSS) with the given TLS server configuration.
    pub async fn bind_wss(
        &self,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<SocketAddr, TransportError> {
        self.check_running()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Ok(tcp::bind(&self.inner.shared, addr, tcp::Mode::Wss(acceptor)).await?)
    }

    /// The next received message, from any transport or connection.
    ///
    /// Returns `None` once [`Transports::shutdown`] has been called. Concurrent
    /// callers take turns; each message goes to one of them.
    pub async fn recv(&self) -> Option<Inbound> {
        let mut shutdown = self.inner.shared.shutdown_signal();
        if self.inner.shared.is_shut_down() {
            return None;
        }
        let mut rx = self.inner.rx.lock().await;
        let shared = &self.inner.shared;
        tokio::select! {
            m = std::future::poll_fn(|cx| rx.poll_next(cx, shared)) => m,
            () = wait_shutdown(&mut shutdown) => None,
        }
    }

    /// Sends one whole message.
    ///
    /// UDP: sent from a bound UDP socket of the target's address family.
    /// Streams: on `target.conn` if it is still open (RFC 3261 §18.2.2), else on
    /// an open connection of that kind to `target.addr`, else on a new
    /// connection (TLS and WSS need [`TransportConfig::tls_client`]).
    /// For streams, `Ok` means the message was queued on an open connection;
    /// a later write failure closes that connection.
    pub async fn send(&self, target: &Target, data: Bytes) -> Result<(), TransportError> {
        self.check_running()?;
        let shared = &self.inner.shared;
        if target.kind == TransportKind::Udp {
            let socket = shared
                .udp_for(target.addr, target.source)
                .ok_or(TransportError::NoUdpSocket(target.addr))?;
            socket.send(&data, target.addr, target.source).await?;
            return Ok(());
        }
        if let Some(tx) = target.conn.and_then(|id| shared.sender_by_id(id)) {
            match tx.send(data).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(d)) => return self.send_new_or_reused(target, d).await,
            }
        }
        self.send_new_or_reused(target, data).await
    }

    async fn send_new_or_reused(&self, target: &Target, data: Bytes) -> Result<(), TransportError> {
        let shared = &self.inner.shared;
        let data = match shared.sender_by_addr(target.kind, target.addr) {
            Some(tx) => match tx.send(data).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(d)) => d,
            },
            None => data,
        };
        let tx = tcp::connect(shared, target).await?;
        tx.send(data)
            .await
            .map_err(|_| TransportError::ConnectionClosed)
    }

    /// Counters: dropped datagrams, rejected connections, open connections.
    pub fn stats(&self) -> TransportStats {
        let s = &self.inner.shared;
        TransportStats {
            oversize_datagrams: s.oversize_datagrams.load(Ordering::Relaxed),
            rejected_connections: s.rejected_connections.load(Ordering::Relaxed),
            evicted_connections: s.evicted_connections.load(Ordering::Relaxed),
            timed_out_connections: s.timed_out_connections.load(Ordering::Relaxed),
            framing_errors: s.framing_errors.load(Ordering::Relaxed),
            open_connections: s.open.load(Ordering::Relaxed),
            connection_cap: s.cap,
        }
    }

    /// Stops every listener, socket and connection task; [`recv`](Self::recv)
    /// then returns `None` and [`send`](Self::send) fails with [`TransportError::Shutdown`].
    ///
    /// Dropping the last clone has the same effect.
    pub fn shutdown(&self) {
        self.inner.shutdown_tx.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_cap_keeps_a_quarter_of_the_fd_limit() {
        // Unlimited, or a limit well above: max_connections itself.
        assert_eq!(connection_cap(10_000, None), 10_000);
        assert_eq!(connection_cap(10_000, Some(1_048_576)), 10_000);
        assert_eq!(connection_cap(10_000, Some(20_000)), 10_000);
        // The usual soft limit: three quarters.
        assert_eq!(connection_cap(10_000, Some(1024)), 768);
        assert_eq!(connection_cap(10_000, Some(4096)), 3072);
        // Small limits keep at least 64, but never more than half.
        assert_eq!(connection_cap(10_000, Some(200)), 136);
        assert_eq!(connection_cap(10_000, Some(100)), 50);
        assert_eq!(connection_cap(10_000, Some(0)), 0);
        // A small max_connections stays as it is.
        assert_eq!(connection_cap(2, Some(1024)), 2);
    }
}
