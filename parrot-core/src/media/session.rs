//! A media session on tokio: one RTP/RTCP socket pair, paced sending, a jitter
//! buffer on the playout path, RFC 4733 DTMF both ways, RTCP reports, all
//! driven by a [`MediaEngine`] around the call's [`MediaHandler`].

use super::handler::{Action, MediaEngine, MediaHandler, Output};
use crate::codec::{AudioDecoder, AudioEncoder, Codec, G711, decoder_for, encoder_for};
use crate::rtp::srtp::{SRTCP_MAX_OVERHEAD, SrtpContext, SrtpError};
use crate::rtp::{
    DtmfReceiver, DtmfSender, Frame, JitterBuffer, JitterConfig, RtpSession, SessionConfig,
};
use crate::sdp::{Direction, NegotiatedSrtp};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

/// Where a session sends and receives: a socket pair of its own, or a port it
/// shares with the other sessions of its media thread.
#[derive(Debug)]
pub enum MediaSockets {
    /// Sockets of the session's own ([`bind_pair`]).
    Pair {
        /// The RTP socket (even port).
        rtp: UdpSocket,
        /// The RTCP socket (RTP port + 1); closed at the start when
        /// [`MediaConfig::rtcp_mux`].
        rtcp: UdpSocket,
        /// The reservation of the sockets' ports in the endpoint's range ([`bind_pair`]'s
        /// lease): kept as long as the session (and so the sockets), released when it ends.
        lease: Option<crate::rtp::PortLease>,
    },
    /// A port shared with other sessions ([`bind_shared`](super::bind_shared)): its
    /// media thread reads and writes it for all of them, in batches.
    Shared(super::SharedPort),
}

impl From<(UdpSocket, UdpSocket, crate::rtp::PortLease)> for MediaSockets {
    /// [`bind_pair`]'s sockets and lease.
    fn from((rtp, rtcp, lease): (UdpSocket, UdpSocket, crate::rtp::PortLease)) -> Self {
        MediaSockets::Pair {
            rtp,
            rtcp,
            lease: Some(lease),
        }
    }
}

impl MediaSockets {
    /// The RTP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            MediaSockets::Pair { rtp, .. } => rtp.local_addr(),
            MediaSockets::Shared(port) => Ok(port.local_addr()),
        }
    }
}

/// What a session needs to run: sockets, the negotiated codec and where to send.
#[derive(Debug)]
pub struct MediaConfig {
    /// Where it sends and receives.
    pub sockets: MediaSockets,
    /// The negotiated audio codec, with the payload type to send it on.
    pub codec: Codec,
    /// Telephone events (RFC 4733), if negotiated.
    pub telephone_event: Option<Codec>,
    /// Packet duration in milliseconds.
    pub ptime: u32,
    /// Where the peer receives RTP (its RTCP is the next port).
    pub remote: Option<SocketAddr>,
    /// Whether we send and/or receive.
    pub direction: Direction,
    /// Seed of the RTP session's random values (SSRC, first sequence number and
    /// timestamp, RTCP interval jitter, [`SessionConfig::seed`]); drawn from the
    /// process-wide [`entropy::global`](crate::entropy::global) source if `None`. Set it
    /// from a seeded [`Entropy`](crate::entropy::Entropy) to replay a call's RTP.
    pub rtp_seed: Option<u64>,
    /// SRTP (RFC 3711) as the SDP exchange agreed it, or none for plain RTP: every RTP and
    /// RTCP datagram sent is protected with our key, every one received is authenticated,
    /// replay-checked and decrypted with the peer's (and dropped, counted, if it fails).
    pub srtp: Option<NegotiatedSrtp>,
    /// Our SSRC, if it was chosen before the session (to announce it in the SDP,
    /// `a=ssrc`, RFC 5576); else drawn from the seed.
    pub ssrc: Option<u32>,
    /// The SSRC the peer announced (`a=ssrc`), if any: how a shared port tells this
    /// session's datagrams from those of other sessions with the same peer address.
    pub remote_ssrc: Option<u32>,
    /// RTCP goes to and comes from the RTP ports (RFC 5761, as the SDP exchange agreed:
    /// [`Negotiated::rtcp_mux`](crate::sdp::Negotiated::rtcp_mux)): the RTCP socket is
    /// closed and what the RTP socket receives is told apart by its packet type (§4).
    pub rtcp_mux: bool,
}

/// Counts of a session, as it goes and at the end.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MediaStats {
    /// RTP packets sent (audio and events).
    pub packets_sent: u64,
    /// RTP packets received and accepted (audio and events).
    pub packets_received: u64,
    /// Packets the peer's sequence numbers say are missing.
    pub packets_lost: i64,
    /// Interarrival jitter in milliseconds (RFC 3550 §A.8).
    pub jitter_ms: f64,
    /// Frames played out as concealment (lost or late).
    pub concealed: u64,
    /// Seconds of audio received and played out.
    pub seconds_received: f64,
    /// DTMF digits received.
    pub digits_received: String,
    /// The codec in use.
    pub codec: String,
    /// The worst lateness of a send tick, in milliseconds (pacing quality).
    pub max_send_lateness_ms: f64,
    /// Datagrams dropped, by reason (unexpected source or SSRC, malformed, …).
    pub dropped: crate::rtp::DropCounts,
    /// RTCP compound packets received and read (after SRTCP, on an SRTP call).
    pub rtcp_received: u64,
    /// The SRTP suite protecting the call's RTP and RTCP, or `None` for plain RTP.
    pub srtp: Option<crate::rtp::SrtpProfile>,
    /// SRTP and SRTCP datagrams dropped because their authentication tag did not match:
    /// forged, corrupted, or protected with another key.
    pub srtp_auth_failures: u64,
    /// SRTP and SRTCP datagrams dropped as replays, or as older than the replay window
    /// (RFC 3711 §3.3.2).
    pub srtp_replays: u64,
    /// Datagrams that could not be SRTP-unprotected for any other reason (too short to hold
    /// a tag, not version 2).
    pub srtp_malformed: u64,
}

/// What the session tells the call around it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// The handler asked to hang up.
    Hangup,
    /// The session stopped (handler's `Stop`, or the peer's RTCP BYE).
    Stopped,
}

enum Control {
    Apply(Action),
    Update {
        remote: Option<SocketAddr>,
        direction: Direction,
    },
    Dtmf(char),
    Rekey(Option<NegotiatedSrtp>),
    Stop(oneshot::Sender<MediaStats>),
}

/// A running media session. Dropping it stops the session (at its next tick).
///
/// Sessions are driven by the process's media threads (one per CPU, outside
/// tokio), which step each one at its packet times; a control call (`apply`,
/// `stop`, …) takes effect at the session's next tick, within one ptime.
#[derive(Debug)]
pub struct MediaSession {
    control: Arc<Mailbox>,
    stats: watch::Receiver<MediaStats>,
    local: SocketAddr,
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.control.close();
    }
}

/// The most control messages waiting for a session's next tick; a sender
/// waits for room beyond that.
const MAILBOX: usize = 32;

/// A session's control messages, from its handle to its media thread.
///
/// A queue under a lock rather than a tokio channel: a call sends a handful
/// of these in its life, and a channel's first block (32 slots, ~2 KB with
/// its header) is memory every session would hold for them. The queue's
/// storage is made by the first message and sized to what waits; a tick
/// that finds nothing reads one atomic.
#[derive(Default)]
struct Mailbox {
    queue: std::sync::Mutex<std::collections::VecDeque<Control>>,
    /// Messages wait in `queue`.
    pending: std::sync::atomic::AtomicBool,
    /// The handle is gone: the session stops once it has read what waits.
    closed: std::sync::atomic::AtomicBool,
    /// Wakes senders waiting for room.
    room: tokio::sync::Notify,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Control>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `c` for the session's next tick, waiting while [`MAILBOX`]
    /// messages wait already. `Err` once the session has ended.
    async fn send(&self, c: Control) -> Result<(), Control> {
        let mut c = Some(c);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut q = self.lock();
                if self.closed.load(Ordering::Acquire) {
                    return c.map_or(Ok(()), Err);
                }
                if q.len() < MAILBOX {
                    if let Some(c) = c.take() {
                        q.push_back(c);
                    }
                    self.pending.store(true, Ordering::Release);
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// The session's end or the handle's: nothing more is taken.
    fn close(&self) {
        // Under the lock: a sender that saw the mailbox open has queued its
        // message before this, and the session reads it.
        let _q = self.lock();
        self.closed.store(true, Ordering::Release);
        self.room.notify_waiters();
    }

    /// The session's end: nothing more is taken, and what waits is dropped
    /// with it. A `stop` queued just before a handler's panic (read by no
    /// tick) held its reply's sender in the queue, and its handle, which
    /// keeps the mailbox, waited for that reply for ever.
    fn end(&self) {
        let left = {
            let mut q = self.lock();
            self.closed.store(true, Ordering::Release);
            self.pending.store(false, Ordering::Release);
            std::mem::take(&mut *q)
        };
        self.room.notify_waiters();
        drop(left);
    }

    /// What waits, oldest first, and whether the handle is gone (then after
    /// these messages nothing more comes).
    fn take(&self) -> (std::collections::VecDeque<Control>, bool) {
        // Closed is read first: a message queued before the close is in
        // the queue read after it.
        let closed = self.closed.load(Ordering::Acquire);
        if !self.pending.load(Ordering::Acquire) {
            return (std::collections::VecDeque::new(), closed);
        }
        let taken = {
            let mut q = self.lock();
            self.pending.store(false, Ordering::Release);
            std::mem::take(&mut *q)
        };
        self.room.notify_waiters();
        (taken, closed)
    }
}

/// Pacing across every media session of the process: (send ticks, ticks more
/// than 5 ms late); [`reset_pacing_counters`] starts over.
///
/// For the project's benchmarks; not part of the supported API (hidden from the
/// docs, and it may change or go without notice).
#[doc(hidden)]
pub fn pacing_counters() -> (u64, u64) {
    shard::totals()
}

/// How late the most late send tick of any session of the process was since
/// [`reset_pacing_counters`], in milliseconds.
///
/// For the project's benchmarks; not part of the supported API (hidden from the
/// docs, and it may change or go without notice).
#[doc(hidden)]
pub fn pacing_worst_ms() -> f64 {
    shard::worst_us() as f64 / 1000.0
}

/// Zeroes [`pacing_counters`] and [`pacing_worst_ms`].
///
/// For the project's benchmarks; not part of the supported API (hidden from the
/// docs, and it may change or go without notice).
#[doc(hidden)]
pub fn reset_pacing_counters() {
    shard::reset();
}

impl MediaSession {
    /// Starts the session (called in a tokio runtime, whose blocking pool reads
    /// and creates its files; the sockets leave its reactor for a media
    /// thread): audio flows at once; `events` hears about hang-ups.
    pub fn start<H: MediaHandler>(
        config: MediaConfig,
        handler: H,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<MediaSession, String> {
        let mut coder = Coder::for_codec(&config.codec)?;
        let local = config.sockets.local_addr().map_err(|e| e.to_string())?;
        let lane = match &config.sockets {
            MediaSockets::Shared(port) => Some(port.pair.lane),
            MediaSockets::Pair { .. } => None,
        };
        let srtp = match &config.srtp {
            Some(agreed) => Some(Box::new(
                SrtpState::new(agreed.clone()).map_err(|e| format!("SRTP: {e}"))?,
            )),
            None => None,
        };
        let control = Arc::new(Mailbox::default());
        let (stats_tx, stats) = watch::channel(MediaStats {
            codec: config.codec.name.to_string(),
            srtp: config.srtp.as_ref().map(|s| s.profile),
            ..MediaStats::default()
        });
        // Frames are at the codec's PCM rate (16 kHz for G.722), whatever its RTP clock.
        let rate = coder.encoder().sample_rate();
        let mut task = Task::new(
            config,
            MediaEngine::new(handler)
                .with_deferred_files()
                .with_rate(rate),
            coder,
            stats_tx,
            events,
        )
        .map_err(|e| format!("media sockets: {e}"))?;
        task.srtp = srtp;
        shard::add(Box::new(Running::new(task, Arc::clone(&control))), lane)?;
        Ok(MediaSession {
            control,
            stats,
            local,
        })
    }

    /// Our RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A receiver of the counts, updated every second and at the end.
    pub fn watch_stats(&self) -> watch::Receiver<MediaStats> {
        self.stats.clone()
    }

    /// The counts as of the last second.
    pub fn stats(&self) -> MediaStats {
        self.stats.borrow().clone()
    }

    /// Applies an action as if the handler had returned it (play, record, …).
    pub async fn apply(&self, action: Action) {
        let _ = self.control.send(Control::Apply(action)).await;
    }

    /// A DTMF digit received out of band (SIP INFO): the handler hears it.
    pub async fn dtmf_received(&self, digit: char) {
        let _ = self.control.send(Control::Dtmf(digit)).await;
    }

    /// Follows a re-INVITE: a new remote address (or none) and direction (hold, resume).
    pub async fn update(&self, remote: Option<SocketAddr>, direction: Direction) {
        let _ = self
            .control
            .send(Control::Update { remote, direction })
            .await;
    }

    /// Follows a new SDP exchange's SRTP (re-INVITE, UPDATE): a direction whose suite and key
    /// are unchanged keeps its context (rollover counter and replay window); a new key gets a
    /// new context; `None` turns SRTP off (a best-effort call renegotiated to plain RTP).
    pub async fn rekey(&self, srtp: Option<NegotiatedSrtp>) {
        let _ = self.control.send(Control::Rekey(srtp)).await;
    }

    /// Stops the session (RTCP BYE sent, recording closed) and returns the final counts.
    pub async fn stop(self) -> MediaStats {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Stop(tx)).await.is_err() {
            return self.stats.borrow().clone();
        }
        rx.await.unwrap_or_else(|_| self.stats.borrow().clone())
    }
}

/// What the SDP exchange fixed for the session (the parts of [`MediaConfig`] a step reads).
struct Params {
    codec: Codec,
    telephone_event: Option<Codec>,
    ptime: u32,
    direction: Direction,
}

/// Where a session's datagrams go and come from.
enum Io {
    /// Sockets of its own, read at its ticks.
    Own(Sockets),
    /// A shared port: its media thread reads it for every session on it and
    /// hands each its datagrams ([`shard::Driven::deliver`]); what a session
    /// sends waits in the thread's [`Outbox`](super::shared::Outbox).
    Shared {
        pair: Arc<super::shared::SharedPair>,
        /// RTCP goes out from the RTP port (RFC 5761), else from the RTCP one.
        mux: bool,
    },
}

impl Io {
    fn new(
        sockets: MediaSockets,
        mux: bool,
    ) -> std::io::Result<(Io, Option<crate::rtp::PortLease>)> {
        Ok(match sockets {
            MediaSockets::Pair { rtp, rtcp, lease } => {
                (Io::Own(Sockets::new(rtp, rtcp, mux)?), lease)
            }
            MediaSockets::Shared(port) => (
                Io::Shared {
                    pair: port.pair,
                    mux,
                },
                None,
            ),
        })
    }

    /// Where a datagram goes out: RTCP (`rtcp`) or RTP.
    fn out<'a>(&'a self, rtcp: bool, outbox: &'a mut super::shared::Outbox) -> Out<'a> {
        match self {
            Io::Own(s) if rtcp => {
                let (socket, peer) = s.rtcp_out();
                Out::Socket(socket, peer)
            }
            Io::Own(s) => Out::Socket(&s.rtp, s.rtp_peer),
            Io::Shared { pair, mux } => Out::Queue(outbox, pair.key(), rtcp && !mux),
        }
    }
}

/// A datagram's way out ([`send_media`]).
enum Out<'a> {
    /// Sent at once from this socket, connected to this address if any.
    Socket(&'a std::net::UdpSocket, Option<SocketAddr>),
    /// Queued for this shared pair's RTCP (`true`) or RTP socket.
    Queue(&'a mut super::shared::Outbox, usize, bool),
}

/// The session's sockets, taken out of tokio: a media thread reads and writes
/// them without the reactor (no epoll event per datagram, no readiness
/// bookkeeping), at the session's own ticks.
struct Sockets {
    rtp: std::net::UdpSocket,
    /// None when RTCP is multiplexed on the RTP socket (RFC 5761).
    rtcp: Option<std::net::UdpSocket>,
    /// The address the RTP socket is connected to ([`Sockets::settle`]).
    rtp_peer: Option<SocketAddr>,
}

impl Sockets {
    fn new(rtp: UdpSocket, rtcp: UdpSocket, mux: bool) -> std::io::Result<Sockets> {
        Ok(Sockets {
            rtp: rtp.into_std()?,
            // Multiplexed: the RTCP socket is closed here (its port stays
            // reserved by the session's lease).
            rtcp: if mux { None } else { Some(rtcp.into_std()?) },
            rtp_peer: None,
        })
    }

    /// The socket RTCP is sent from, and the address it is connected to.
    fn rtcp_out(&self) -> (&std::net::UdpSocket, Option<SocketAddr>) {
        match &self.rtcp {
            Some(rtcp) => (rtcp, None),
            None => (&self.rtp, self.rtp_peer),
        }
    }

    /// Connects the RTP socket to the one address RTP is now accepted from
    /// ([`RtpSession::settled_remote_addr`]: confirmed or latched, RFC 4961
    /// symmetric RTP), and disconnects it when learning starts again (a new
    /// address from a re-INVITE). A connected socket's sends skip the route
    /// lookup each `sendto` makes (the kernel keeps the route), about a tenth
    /// of the kernel's cost of a datagram sent and received on loopback; and
    /// the kernel drops what comes from elsewhere, which the session would
    /// drop anyway (such datagrams are then not counted in
    /// [`MediaStats::dropped`]). Linux only; a failure leaves the socket as
    /// it was, and sends keep naming their destination.
    fn settle(&mut self, settled: Option<SocketAddr>) {
        #[cfg(target_os = "linux")]
        {
            // Never connected to a wildcard: Linux would take 0.0.0.0 for loopback.
            let settled = settled.filter(|a| !a.ip().is_unspecified() && a.port() != 0);
            if settled == self.rtp_peer {
                return;
            }
            if self.rtp_peer.is_some() {
                let Ok(local) = self.rtp.local_addr() else {
                    return;
                };
                if let Err(e) = rustix::net::connect_unspec(&self.rtp) {
                    tracing::debug!(error = %e, "RTP socket not disconnected");
                    return;
                }
                self.rtp_peer = None;
                // A socket bound to port 0 loses the port the kernel chose when it
                // disconnects (one bound to a port of the range keeps it): bind it
                // to that port again.
                if self.rtp.local_addr().map(|a| a.port()).ok() != Some(local.port()) {
                    if let Err(e) = rustix::net::bind(&self.rtp, &local) {
                        tracing::warn!(error = %e, %local, "RTP socket lost its port");
                    }
                }
            }
            if let Some(peer) = settled {
                match self.rtp.connect(peer) {
                    Ok(()) => self.rtp_peer = Some(peer),
                    Err(e) => tracing::debug!(error = %e, %peer, "RTP socket not connected"),
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = settled;
    }

    /// Sends every datagram with don't-fragment set (IPv4; `IP_PMTUDISC_PROBE`:
    /// DF without the path-MTU bookkeeping), for a session whose datagrams are
    /// all far below any path's MTU (see [`ATOMIC_DATAGRAM_MAX`]). Such a
    /// datagram is atomic and needs no unique IP ID (RFC 6864 §4): the kernel
    /// sends 0 instead of drawing one from its shared, hashed ID table
    /// (`__ip_select_ident`: 2.8 % of the media threads' time at 4000 calls,
    /// and a cache line every CPU's sends write). A failure just leaves the
    /// default.
    fn dont_fragment(&self) {
        #[cfg(target_os = "linux")]
        for socket in std::iter::once(&self.rtp).chain(&self.rtcp) {
            if socket.local_addr().is_ok_and(|a| a.is_ipv4()) {
                use rustix::net::sockopt;
                let _ = sockopt::set_ip_mtu_discover(socket, sockopt::Ipv4PathMtuDiscovery::PROBE);
            }
        }
    }
}

/// A session's encoder and decoder. G.711, the common case, is held in the
/// session: every tick encodes a frame and decodes (or counts) one, and a
/// codec in a box of its own is one more cache line each tick finds cold (at
/// 1000 calls the read of the G.711 encoder's box alone was 2.2 % of the media
/// threads' profile). Other codecs keep state and are boxed.
enum Coder {
    G711(G711),
    Boxed(Box<dyn AudioEncoder>, Box<dyn AudioDecoder>),
}

impl Coder {
    fn for_codec(codec: &Codec) -> Result<Coder, String> {
        if let Some(g) = G711::for_codec(codec) {
            return Ok(Coder::G711(g));
        }
        let encoder = encoder_for(codec).ok_or_else(|| format!("no encoder for {}", codec.name))?;
        let decoder = decoder_for(codec).ok_or_else(|| format!("no decoder for {}", codec.name))?;
        Ok(Coder::Boxed(encoder, decoder))
    }

    fn encoder(&mut self) -> &mut dyn AudioEncoder {
        match self {
            Coder::G711(g) => g,
            Coder::Boxed(encoder, _) => encoder.as_mut(),
        }
    }

    fn decoder(&mut self) -> &mut dyn AudioDecoder {
        match self {
            Coder::G711(g) => g,
            Coder::Boxed(_, decoder) => decoder.as_mut(),
        }
    }

    /// Per tick, G.711 called directly (not through a `dyn`, which the
    /// compiler cannot see through).
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Coder::G711(g) => AudioEncoder::encode(g, pcm, out),
            Coder::Boxed(encoder, _) => encoder.encode(pcm, out),
        }
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match self {
            Coder::G711(g) => AudioDecoder::decode(g, payload, out),
            Coder::Boxed(_, decoder) => decoder.decode(payload, out),
        }
    }

    fn skip(&mut self, payload: &[u8], scratch: &mut Vec<i16>) -> usize {
        match self {
            Coder::G711(g) => AudioDecoder::skip(g, payload, scratch),
            Coder::Boxed(_, decoder) => decoder.skip(payload, scratch),
        }
    }
}

/// Datagrams up to this size go out with don't-fragment ([`Sockets::dont_fragment`]):
/// under the 1280 bytes every IPv6 link carries and the 1500 of Ethernet, with room
/// for tunnels (a path that cannot carry 1200 bytes whole is broken for RTP anyway).
const ATOMIC_DATAGRAM_MAX: usize = 1200;

/// A packet buffer kept for the next datagram received, so that a session
/// allocates a packet's buffer once, not once a packet (freed after its
/// 20 ms in the jitter buffer, and past the allocator's per-thread cache,
/// a packet's `free` alone was ~3 % of the media threads' time at 2500
/// calls).
#[derive(Default)]
struct Spare(Option<BytesMut>);

impl Spare {
    /// `datagram` in a buffer of its own: the spare one if there is one.
    fn fill(&mut self, datagram: &[u8]) -> Bytes {
        let mut buf = self.0.take().unwrap_or_default();
        buf.clear();
        // A spare from a played payload starts past the header it was
        // sliced from; growing it back to a datagram's size moves it to the
        // start of its own allocation, which nothing else holds.
        buf.extend_from_slice(datagram);
        buf.freeze()
    }

    /// Keeps `data`'s buffer for the next [`fill`](Self::fill), if nothing
    /// else holds any of it (a clone still in use is never written over).
    fn keep(&mut self, data: Bytes) {
        if let Ok(buf) = data.try_into_mut() {
            self.0 = Some(buf);
        }
    }
}

struct Task<H> {
    cfg: Params,
    io: Io,
    /// RTCP is multiplexed on the RTP port (RFC 5761).
    mux: bool,
    /// The SSRC the peer announced in its SDP, for a shared port's [`Demux`](super::shared::Demux).
    announced: Option<u32>,
    /// The runtime the session was started in: a step runs inside it (a media
    /// thread is no runtime's), and file reads and recordings run as its
    /// blocking tasks.
    runtime: Option<tokio::runtime::Handle>,
    engine: MediaEngine<H>,
    coder: Coder,
    /// 1 / the decoder's rate: what a decoded sample adds to the seconds received.
    seconds_per_sample: f64,
    rtp: RtpSession,
    jitter: JitterBuffer,
    dtmf_tx: DtmfSender,
    dtmf_rx: DtmfReceiver,
    dtmf_queue: std::collections::VecDeque<char>,
    stats_tx: watch::Sender<MediaStats>,
    stats: MediaStats,
    events: mpsc::Sender<MediaEvent>,
    /// Samples in a frame we send (the frame itself is the media thread's
    /// [`Scratch`]).
    samples: usize,
    last_played: Vec<i16>,
    /// The buffer of the last packet played (or RTCP datagram read), for the
    /// next datagram received.
    spare: Spare,
    /// RTP timestamp units per frame: ptime at the codec's clock rate, which for G.722 is
    /// half its sample count (RFC 3551 §4.5.2).
    timestamp_step: u32,
    ticks: u64,
    /// Files read and recordings created by blocking tasks, back to the
    /// engine: a media thread's step never touches the file system.
    /// Made at the first file (most calls play from memory or not at all:
    /// a channel is kilobytes a call would hold for nothing).
    files: Option<(
        mpsc::UnboundedSender<FileDone>,
        mpsc::UnboundedReceiver<FileDone>,
    )>,
    /// SRTP contexts, if the call has SRTP (boxed: a plain call keeps a pointer).
    srtp: Option<Box<SrtpState>>,
    /// The sockets' port pair, held in the endpoint's range as long as they are open.
    _port_lease: Option<crate::rtp::PortLease>,
}

/// The two SRTP contexts of a call and what they were built from.
struct SrtpState {
    agreed: NegotiatedSrtp,
    /// Protects what we send (our key).
    tx: SrtpContext,
    /// Unprotects what we receive (the peer's key).
    rx: SrtpContext,
}

impl SrtpState {
    fn new(agreed: NegotiatedSrtp) -> Result<SrtpState, SrtpError> {
        Ok(SrtpState {
            tx: agreed.outbound()?,
            rx: agreed.inbound()?,
            agreed,
        })
    }

    /// Takes a new agreement: only a direction whose key or suite changed starts over.
    fn rekey(&mut self, agreed: NegotiatedSrtp) -> Result<(), SrtpError> {
        let tx = if self.agreed.same_outbound(&agreed) {
            None
        } else {
            Some(agreed.outbound()?)
        };
        let rx = if self.agreed.same_inbound(&agreed) {
            None
        } else {
            Some(agreed.inbound()?)
        };
        if let Some(tx) = tx {
            tracing::info!(suite = %agreed.profile, "SRTP: new outbound key");
            self.tx = tx;
        }
        if let Some(rx) = rx {
            tracing::info!(suite = %agreed.profile, "SRTP: new inbound key");
            self.rx = rx;
        }
        self.agreed = agreed;
        Ok(())
    }
}

/// The largest RTP or RTCP datagram a session sends or reads (the size of a media
/// thread's datagram buffer, [`Scratch`]).
const MAX_DATAGRAM: usize = 2048;

/// Buffers a media thread lends to each session it steps: the frame a tick
/// fills, its encoding, and the datagram it sends or reads. What one step
/// leaves in them is dead by the next session's, so one set per thread
/// serves all its sessions. Kept in the session, they were memory every
/// call held for its whole length, and cold cache lines every tick touched
/// (at thousands of sessions a thread's cache holds none of them from one
/// tick to the next); a stack array instead was zeroed every tick.
pub(super) struct Scratch {
    frame: Vec<i16>,
    payload: Vec<u8>,
    datagram: Box<[u8]>,
    /// What the thread's sessions on shared ports sent this wake-up.
    pub(super) outbox: super::shared::Outbox,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            frame: Vec::new(),
            payload: Vec::new(),
            datagram: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            outbox: super::shared::Outbox::default(),
        }
    }
}

/// A session reads its RTP socket until it is empty every this many ticks
/// at first, and again as soon as such a look found more than one datagram
/// waiting; the other ticks read one ([`Task::drain`]).
const FULL_DRAIN_MIN: u64 = 4;

/// Looks that find no backlog double the ticks to the next, up to this many.
const FULL_DRAIN_MAX: u64 = 16;

/// RTCP is read about this often (ms): reports come every few seconds (RFC
/// 3550 §6.2) and wait in the socket's buffer meanwhile; nothing in a session
/// acts on them sooner than their counts are published (once a second), and
/// each look, most of them at an empty socket, is a system call.
const RTCP_READ_MS: u32 = 500;

/// Sends an RTP (`rtcp` false) or RTCP datagram to `to`, SRTP-protected if the call has
/// SRTP. The protected copy is made in a stack buffer, so nothing is allocated per packet.
/// A datagram that cannot be protected (larger than [`MAX_DATAGRAM`], or its key worn out
/// after 2^48 packets) is not sent: it is never sent in clear.
fn send_media(
    out: Out<'_>,
    srtp: Option<&mut SrtpState>,
    rtcp: bool,
    data: &[u8],
    to: SocketAddr,
) -> bool {
    let Some(srtp) = srtp else {
        return send_now(out, data, to);
    };
    let mut buf = [0u8; MAX_DATAGRAM + SRTCP_MAX_OVERHEAD];
    let Some(room) = buf.get_mut(..data.len()) else {
        return false;
    };
    room.copy_from_slice(data);
    let protected = if rtcp {
        srtp.tx.protect_rtcp_in_place(&mut buf, data.len())
    } else {
        srtp.tx.protect_rtp_in_place(&mut buf, data.len())
    };
    match protected {
        Ok(n) => send_now(out, &buf[..n], to),
        Err(e) => {
            tracing::debug!(error = %e, rtcp, "SRTP: not sent");
            false
        }
    }
}

/// What a blocking file task did for the engine.
enum FileDone {
    Read(std::path::PathBuf, Result<(), super::MediaError>),
    Created(
        std::path::PathBuf,
        Result<super::WavRecorder, super::MediaError>,
    ),
}

impl<H: MediaHandler> Task<H> {
    fn new(
        mut cfg: MediaConfig,
        engine: MediaEngine<H>,
        mut coder: Coder,
        stats_tx: watch::Sender<MediaStats>,
        events: mpsc::Sender<MediaEvent>,
    ) -> std::io::Result<Self> {
        // Whatever built the config, a frame is 10-120 ms: buffers are sized from it.
        cfg.ptime = cfg.ptime.clamp(
            *crate::sdp::PTIME_RANGE.start(),
            *crate::sdp::PTIME_RANGE.end(),
        );
        let mut sc =
            SessionConfig::new(cfg.codec.clock_rate, cfg.codec.payload_type).with_min_sequential(1);
        if let Some(seed) = cfg.rtp_seed {
            sc = sc.with_seed(seed);
        }
        sc.ssrc = cfg.ssrc;
        if let Some(r) = cfg.remote {
            sc = sc
                .with_remote_addr(r)
                .with_remote_rtcp_addr(rtcp_of(r, cfg.rtcp_mux));
        }
        let rtp = RtpSession::new(sc, std::time::Instant::now());
        let samples = coder.encoder().samples_per_frame(cfg.ptime).max(1);
        let stats = stats_tx.borrow().clone();
        let timestamp_step =
            u32::try_from(u64::from(cfg.ptime) * u64::from(cfg.codec.clock_rate) / 1000)
                .unwrap_or(u32::MAX);
        let announced = cfg.remote_ssrc;
        let MediaConfig {
            sockets,
            codec,
            telephone_event,
            ptime,
            direction,
            rtcp_mux,
            ..
        } = cfg;
        let (io, port_lease) = Io::new(sockets, rtcp_mux)?;
        // The largest datagram this session sends: a frame at 2 bytes a
        // sample (L16; G.711 and G.722 take less), the RTP header and the
        // most SRTP adds. (A shared port has it from the start.)
        let largest = samples * 2 + 12 + SRTCP_MAX_OVERHEAD;
        if let (Io::Own(own), true) = (&io, largest <= ATOMIC_DATAGRAM_MAX) {
            own.dont_fragment();
        }
        let seconds_per_sample = 1.0 / f64::from(coder.decoder().sample_rate().max(1));
        Ok(Task {
            seconds_per_sample,
            io,
            mux: rtcp_mux,
            announced,
            runtime: tokio::runtime::Handle::try_current().ok(),
            // RFC 4733 events count in the audio's RTP clock (§2.1; telephone-event/8000 with
            // G.722, whose RTP clock is 8000 too).
            dtmf_tx: DtmfSender::new(timestamp_step, 10),
            timestamp_step,
            cfg: Params {
                codec,
                telephone_event,
                ptime,
                direction,
            },
            engine,
            coder,
            rtp,
            jitter: JitterBuffer::new(JitterConfig::new()),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_queue: std::collections::VecDeque::new(),
            stats_tx,
            stats,
            events,
            samples,
            last_played: vec![0; samples],
            spare: Spare::default(),
            ticks: 0,
            files: None,
            srtp: None,
            _port_lease: port_lease,
        })
    }

    /// Reads a file or creates a recording in a blocking task; the result
    /// reaches the engine at a later step.
    fn file_io(&mut self, out: Output) {
        let tx = self
            .files
            .get_or_insert_with(mpsc::unbounded_channel)
            .0
            .clone();
        let rate = self.engine.rate();
        let work = move || {
            let done = match out {
                Output::ReadFile(path) => {
                    let r = super::WavSource::open_at(&path, rate).map(drop);
                    FileDone::Read(path, r)
                }
                Output::CreateRecording(path) => {
                    let r = super::WavRecorder::create_at(&path, rate);
                    FileDone::Created(path, r)
                }
                Output::CreateStereoRecording(path) => {
                    let r = super::WavRecorder::create_stereo_at(&path, rate);
                    FileDone::Created(path, r)
                }
                _ => return,
            };
            let _ = tx.send(done);
        };
        match &self.runtime {
            Some(rt) => {
                // On a runtime that has shut down the work is dropped: the
                // engine never hears back, as for a file that takes forever.
                rt.spawn_blocking(work);
            }
            // Started outside a runtime (cannot happen: sockets need one).
            None => work(),
        }
    }

    /// Hands the engine what the file tasks finished.
    fn files_done(&mut self) {
        let Some((_, files)) = self.files.as_mut() else {
            return;
        };
        while let Ok(done) = files.try_recv() {
            match done {
                FileDone::Read(path, r) => self.engine.file_ready(&path, r),
                FileDone::Created(path, r) => self.engine.recording_ready(&path, r),
            }
        }
    }

    /// The session's end: RTCP BYE (RFC 3550 §6.6), the handler's goodbye,
    /// the last counts, and word to whoever waits.
    fn finish(
        &mut self,
        reply: Option<oneshot::Sender<MediaStats>>,
        outbox: &mut super::shared::Outbox,
    ) {
        let bye = self.rtp.bye(std::time::Instant::now(), None);
        if let Some(r) = self.rtp.remote_rtcp_addr() {
            send_media(
                self.io.out(true, outbox),
                self.srtp.as_deref_mut(),
                true,
                &bye,
                r,
            );
        }
        self.engine.stop();
        self.publish();
        if let Some(reply) = reply {
            let _ = reply.send(self.stats.clone());
        }
        let _ = self.events.try_send(MediaEvent::Stopped);
    }

    /// Applies one control message; `Err` to stop (with whom to tell).
    fn control(&mut self, c: Control) -> Result<(), Option<oneshot::Sender<MediaStats>>> {
        match c {
            Control::Apply(a) => self.engine.apply(a),
            Control::Dtmf(d) => self.digit(d),
            Control::Update { remote, direction } => {
                self.cfg.direction = direction;
                if let Some(r) = remote {
                    self.rtp.set_remote_addr(r, Some(rtcp_of(r, self.mux)));
                    // Learning again: any source may latch, the socket must hear it.
                    if let Io::Own(own) = &mut self.io {
                        own.settle(self.rtp.settled_remote_addr());
                    }
                }
            }
            Control::Rekey(agreed) => self.rekey(agreed),
            Control::Stop(reply) => return Err(Some(reply)),
        }
        Ok(())
    }

    fn rekey(&mut self, agreed: Option<NegotiatedSrtp>) {
        let result = match (self.srtp.as_deref_mut(), agreed) {
            (_, None) => {
                if self.srtp.take().is_some() {
                    tracing::info!("SRTP off: the new exchange agreed plain RTP");
                }
                Ok(())
            }
            (Some(state), Some(agreed)) => state.rekey(agreed),
            (None, Some(agreed)) => SrtpState::new(agreed).map(|s| self.srtp = Some(Box::new(s))),
        };
        if let Err(e) = result {
            // Cannot happen for keys the negotiator checked; the old contexts stay.
            tracing::warn!(error = %e, "SRTP: new keys not usable, keeping the old ones");
        }
        self.stats.srtp = self.srtp.as_ref().map(|s| s.agreed.profile);
    }

    /// Authenticates, replay-checks and decrypts a received datagram where it lies (SRTP
    /// calls only), counting what fails; the length of the plain packet, or `None` to drop.
    fn unprotect(&mut self, rtcp: bool, datagram: &mut [u8]) -> Option<usize> {
        let Some(srtp) = self.srtp.as_deref_mut() else {
            return Some(datagram.len());
        };
        let result = if rtcp {
            srtp.rx.unprotect_rtcp_in_place(datagram)
        } else {
            srtp.rx.unprotect_rtp_in_place(datagram)
        };
        match result {
            Ok(n) => Some(n),
            Err(SrtpError::Authentication) => {
                self.stats.srtp_auth_failures += 1;
                None
            }
            Err(SrtpError::Replayed { .. } | SrtpError::TooOld { .. }) => {
                self.stats.srtp_replays += 1;
                None
            }
            Err(_) => {
                self.stats.srtp_malformed += 1;
                None
            }
        }
    }

    /// Reads up to `max` datagrams from the RTP (or RTCP) socket into `buf`
    /// (the media thread's, [`Scratch`]), stopping when it is empty; more
    /// wait in the kernel for the next look.
    ///
    /// A stream at our ptime brings one RTP datagram a tick, so a tick reads
    /// one, and only now and then up to 32 ([`Running::step`]): the call that
    /// finds a socket empty costs a system call as dear as a read, and most
    /// ticks would waste it (at 1000 calls, before, 30 % of all `recvfrom`s
    /// found nothing). A peer sending faster than our ptime, or a burst,
    /// waits at most [`FULL_DRAIN_MAX`] ticks in the kernel (after a look
    /// that found a backlog, [`FULL_DRAIN_MIN`]), and the jitter buffer
    /// absorbs it. RTCP is read every [`RTCP_READ_MS`]. Returns the number
    /// of datagrams read.
    fn drain(&mut self, now: Instant, rtcp: bool, max: usize, buf: &mut [u8]) -> usize {
        let mux = self.mux;
        if rtcp && mux {
            // RTCP comes in on the RTP socket, read with RTP.
            return 0;
        }
        // Multiplexed RTCP read from the RTP socket does not count as one of
        // the `max` (a tick's one read still finds its RTP packet), up to a
        // few more looks.
        let (mut read, mut looks) = (0, 0);
        while read < max && looks < max + 4 {
            looks += 1;
            let Io::Own(io) = &self.io else {
                // A shared port's datagrams are handed over by its thread.
                return read;
            };
            let socket = match &io.rtcp {
                Some(s) if rtcp => s,
                _ => &io.rtp,
            };
            let (n, from) = match socket.recv_from(buf) {
                Ok(r) => r,
                // WouldBlock: empty. Other errors (an ICMP report on some
                // systems) are per datagram: stop here, the next look tells.
                Err(_) => return read,
            };
            let datagram = &mut buf[..n];
            let muxed = !rtcp && mux && is_muxed_rtcp(datagram);
            read += usize::from(!muxed);
            self.datagram(now, rtcp || muxed, from, datagram);
        }
        read
    }

    /// One datagram read from the RTP or RTCP socket (or its shared port).
    fn datagram(&mut self, now: Instant, rtcp: bool, from: SocketAddr, datagram: &mut [u8]) {
        // SRTP before anything reads the packet: a forged one never
        // latches the source or moves the statistics.
        let Some(n) = self.unprotect(rtcp, datagram) else {
            return;
        };
        let data = self.spare.fill(&datagram[..n]);
        if rtcp {
            if self.rtp.handle_rtcp(now, from, &data).is_ok() {
                self.stats.rtcp_received += 1;
            }
            self.spare.keep(data);
        } else {
            self.on_rtp(now, from, data);
        }
    }

    fn digit(&mut self, d: char) {
        self.stats.digits_received.push(d);
        self.engine.dtmf(d);
    }

    fn on_rtp(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        let Ok(rec) = self.rtp.receive(now, from, data) else {
            return;
        };
        self.stats.packets_received += 1;
        let te = self.cfg.telephone_event.as_ref().map(|c| c.payload_type);
        if Some(rec.packet.payload_type) == te {
            if let Some(d) = self.dtmf_rx.receive(&rec.packet).and_then(|e| e.digit()) {
                self.digit(d);
            }
        } else if rec.packet.payload_type == self.cfg.codec.payload_type
            && self.cfg.direction.receives()
        {
            let _ = self.jitter.push(rec.packet);
        }
    }

    /// One ptime: send a frame, play one out, pass on the engine's wishes. True to stop.
    fn on_tick(&mut self, now: Instant, scratch: &mut Scratch) -> bool {
        let increment = self.timestamp_step;
        if self.dtmf_tx.is_idle() {
            if let Some(d) = self.dtmf_queue.pop_front() {
                let _ = self.dtmf_tx.send_digit(d, 800);
            }
        }
        let Scratch {
            frame,
            payload,
            datagram,
            outbox,
        } = scratch;
        // Every sample of the frame is written (silence where nothing
        // plays): nothing of the session stepped before is left in it.
        frame.resize(self.samples, 0);
        self.engine.next_frame(frame);
        if let (true, Some(remote)) = (self.cfg.direction.sends(), self.rtp.remote_addr()) {
            let te = self.cfg.telephone_event.as_ref().map(|c| c.payload_type);
            // An event packet (rare) is built as `Bytes`; audio is sent in the arm.
            let event = match (self.dtmf_tx.next_packet(self.rtp.timestamp()), te) {
                (Some(ev), Some(pt)) => {
                    self.rtp.advance_timestamp(increment);
                    Some(self.rtp.packetize_with(
                        pt,
                        ev.payload.to_bytes(),
                        ev.timestamp,
                        ev.marker,
                    ))
                }
                _ => {
                    // Encoded and packetized into the thread's buffers: no
                    // allocation per packet.
                    payload.clear();
                    self.coder.encode(frame, payload);
                    let sent = self
                        .rtp
                        .packetize_to(now, payload, increment, false, datagram)
                        .is_some_and(|n| {
                            send_media(
                                self.io.out(false, outbox),
                                self.srtp.as_deref_mut(),
                                false,
                                &datagram[..n],
                                remote,
                            )
                        });
                    if sent {
                        self.stats.packets_sent += 1;
                    }
                    None
                }
            };
            if let Some(packet) = event {
                if send_media(
                    self.io.out(false, outbox),
                    self.srtp.as_deref_mut(),
                    false,
                    &packet,
                    remote,
                ) {
                    self.stats.packets_sent += 1;
                }
            }
        }
        // Playout: one frame per tick, concealment (the last frame, faded) where one is missing.
        match self.jitter.pop() {
            Some(Frame::Packet(p)) => {
                let samples = if self.engine.hears() {
                    self.last_played.clear();
                    self.coder.decode(&p.payload, &mut self.last_played);
                    self.engine.received(&self.last_played);
                    self.last_played.len()
                } else {
                    // Nobody listens: count the audio, decode none (G.711's
                    // decoder has no state to keep), and leave nothing to
                    // conceal with but silence.
                    let n = self.coder.skip(&p.payload, &mut self.last_played);
                    self.last_played.clear();
                    n
                };
                self.stats.seconds_received += samples as f64 * self.seconds_per_sample;
                // Played: its buffer takes the next packet received.
                self.spare.keep(p.payload);
            }
            Some(Frame::Lost { .. }) => {
                if self.last_played.is_empty() {
                    // The last frame was not decoded (see above).
                    self.last_played.resize(self.samples, 0);
                }
                for s in &mut self.last_played {
                    *s /= 2;
                }
                self.engine.received(&self.last_played);
                self.stats.concealed += 1;
                self.stats.seconds_received +=
                    self.last_played.len() as f64 * self.seconds_per_sample;
            }
            _ => {}
        }
        if let Some(rtcp) = self.rtp.poll_rtcp(now) {
            if let Some(r) = self.rtp.remote_rtcp_addr() {
                send_media(
                    self.io.out(true, outbox),
                    self.srtp.as_deref_mut(),
                    true,
                    &rtcp,
                    r,
                );
            }
        }
        let mut stop = false;
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::SendDtmf(d) => self.dtmf_queue.push_back(d),
                Output::Hangup => {
                    let _ = self.events.try_send(MediaEvent::Hangup);
                }
                Output::Stop => stop = true,
                io @ (Output::ReadFile(_)
                | Output::CreateRecording(_)
                | Output::CreateStereoRecording(_)) => self.file_io(io),
            }
        }
        // The counts go out once a second (and at the end): a clone per tick
        // costs more than the rest of the tick.
        self.ticks += 1;
        if self.ticks % 50 == 0 {
            self.publish();
        }
        stop
    }

    fn publish(&mut self) {
        // The source's counters restart when it changes (or says BYE): keep the last ones.
        if let Some(r) = self.rtp.receiver_stats().filter(|r| r.received > 0) {
            self.stats.packets_lost = i64::from(r.lost);
            self.stats.jitter_ms =
                f64::from(r.jitter) * 1000.0 / f64::from(self.cfg.codec.clock_rate.max(1));
        }
        self.stats.dropped = *self.rtp.drops();
        self.stats_tx.send_replace(self.stats.clone());
    }
}

/// A session as a media thread drives it: the task, its control channel and
/// its next send time.
struct Running<H> {
    task: Task<H>,
    control: Arc<Mailbox>,
    ptime: Duration,
    /// Ticks stay on start + n·ptime: a late tick is followed at once by the
    /// ones it owes, so the stream keeps its rate and a 60 s file takes 60 s.
    next: Instant,
    /// The handler has been told the stream started (on the first step, in
    /// the media thread, where a panic of the handler is contained).
    started: bool,
    /// The id of `task.runtime`, to tell whether the thread is inside it.
    runtime: Option<tokio::runtime::Id>,
    /// RTCP is read every this many ticks ([`RTCP_READ_MS`]).
    rtcp_every: u64,
    /// The tick of the next read of the RTP socket until it is empty, and
    /// the ticks from one such read to the next ([`FULL_DRAIN_MIN`] to
    /// [`FULL_DRAIN_MAX`]).
    full_drain_at: u64,
    full_drain_every: u64,
}

impl<H: MediaHandler> Running<H> {
    fn new(task: Task<H>, control: Arc<Mailbox>) -> Self {
        let ptime = Duration::from_millis(u64::from(task.cfg.ptime));
        let runtime = task.runtime.as_ref().map(tokio::runtime::Handle::id);
        Running {
            rtcp_every: u64::from((RTCP_READ_MS / task.cfg.ptime.max(1)).max(1)),
            full_drain_at: 0,
            full_drain_every: FULL_DRAIN_MIN,
            task,
            control,
            ptime,
            next: Instant::now(),
            started: false,
            runtime,
        }
    }
}

impl<H> Drop for Running<H> {
    /// However the session ends (its handler's stop or panic too), its
    /// handle's messages fail from now on, and those it did not read get
    /// no answer (a waiting `stop` returns the last counts).
    fn drop(&mut self) {
        self.control.end();
    }
}

impl<H: MediaHandler> shard::Driven for Running<H> {
    fn due(&self) -> Instant {
        self.next
    }

    fn warm(&self) -> u64 {
        let t = &self.task;
        u64::from(self.control.pending.load(Ordering::Relaxed))
            ^ t.ticks
            ^ u64::from(t.rtp.timestamp())
            ^ t.jitter.len() as u64
            ^ u64::from(t.engine.hears())
            ^ u64::from(self.started)
    }

    fn shared(&self) -> Option<&Arc<super::shared::SharedPair>> {
        match &self.task.io {
            Io::Shared { pair, .. } => Some(pair),
            Io::Own(_) => None,
        }
    }

    fn runtime_id(&self) -> Option<tokio::runtime::Id> {
        self.runtime
    }

    fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.task.runtime.as_ref()
    }

    fn route(&self) -> super::shared::Route {
        let rtp = &self.task.rtp;
        super::shared::Route {
            rtp: rtp.remote_addr(),
            rtcp: rtp.remote_rtcp_addr(),
            ssrc: self.task.announced,
        }
    }

    /// Everything that is due: control messages, what the sockets hold, and
    /// each tick owed. True once the session is over.
    fn step(
        &mut self,
        now: Instant,
        lanes: &shard::Pacing,
        scratch: &mut Scratch,
        inbox: &mut super::shared::Inbox,
    ) -> bool {
        let t = &mut self.task;
        if !self.started {
            self.started = true;
            t.engine.start();
        }
        let (messages, closed) = self.control.take();
        for c in messages {
            if let Err(reply) = t.control(c) {
                self.control.close();
                t.finish(reply, &mut scratch.outbox);
                return true;
            }
        }
        if closed {
            // The handle is gone: the session stops.
            t.finish(None, &mut scratch.outbox);
            return true;
        }
        t.files_done();
        // On a shared port, what its thread received for the session; the
        // drains below read only a socket of its own.
        inbox.drain(|rtcp, from, datagram| {
            t.datagram(now, rtcp, from, datagram);
        });
        if t.ticks % self.rtcp_every == 0 {
            t.drain(now, true, 32, &mut scratch.datagram);
        }
        if t.ticks >= self.full_drain_at {
            // More than this tick's datagram waited: look again soon;
            // nothing more: look less often.
            self.full_drain_every = if t.drain(now, false, 32, &mut scratch.datagram) > 1 {
                FULL_DRAIN_MIN
            } else {
                (self.full_drain_every * 2).min(FULL_DRAIN_MAX)
            };
            self.full_drain_at = t.ticks + self.full_drain_every;
        } else {
            t.drain(now, false, 1, &mut scratch.datagram);
        }
        if let Io::Own(own) = &mut t.io {
            own.settle(t.rtp.settled_remote_addr());
        }
        while self.next <= now {
            let behind = now.saturating_duration_since(self.next);
            let late = behind.as_secs_f64() * 1e3;
            if late > t.stats.max_send_lateness_ms {
                t.stats.max_send_lateness_ms = late;
            }
            lanes.tick(u64::try_from(behind.as_micros()).unwrap_or(u64::MAX));
            self.next += self.ptime;
            if t.on_tick(now, scratch) {
                t.finish(None, &mut scratch.outbox);
                return true;
            }
        }
        false
    }
}

/// Where the peer at `rtp` receives RTCP: the same port when multiplexed
/// (RFC 5761), else the next one (RFC 3550 §11).
fn rtcp_of(rtp: SocketAddr, mux: bool) -> SocketAddr {
    if mux {
        rtp
    } else {
        SocketAddr::new(rtp.ip(), rtp.port().saturating_add(1))
    }
}

/// Whether a datagram on a multiplexed RTP port is RTCP: its second octet
/// is an RTCP packet type, 192-223 (RFC 5761 §4). In RTP that octet is the
/// marker bit and the payload type, and it could only fall there with
/// payload types 64-95, which §4 keeps out of multiplexed sessions (the
/// ones this stack offers are static ones below 64 and dynamic ones from
/// 96). SRTP leaves the octet in clear, so this holds before decryption.
fn is_muxed_rtcp(datagram: &[u8]) -> bool {
    datagram.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// Sends a datagram now, without waiting: a full socket buffer drops it, as
/// the network would. True if it went out (or, on a shared port, was queued
/// for the end of the wake-up). A socket's `peer`: the address it is
/// connected to, if any ([`Sockets::settle`]).
fn send_now(out: Out<'_>, data: &[u8], to: SocketAddr) -> bool {
    match out {
        Out::Socket(socket, peer) if peer == Some(to) => socket.send(data).is_ok(),
        Out::Socket(socket, _) => socket.send_to(data, to).is_ok(),
        Out::Queue(outbox, key, rtcp) => {
            outbox.push(key, rtcp, to, data);
            true
        }
    }
}

/// Sets how many media threads drive the process's sessions (0: one per CPU,
/// the default). Takes effect only before the first session starts; `false`
/// if they have started already. For a process that shares its machine with
/// other work, or a benchmark of one core.
pub fn set_media_threads(n: usize) -> bool {
    shard::set_threads(n)
}

/// Whether media pacing is falling behind: over the last half second, more
/// than 1 % of the send ticks of some media thread were more than 5 ms late
/// (judged from 1,000 ticks up, 40 calls' worth: a handful of late calls on a
/// busy machine is not overload).
/// A server that starts more calls then would make every call worse; the UA
/// core refuses new calls (503 with Retry-After) while this is true.
pub fn pacing_behind() -> bool {
    shard::behind()
}

/// How many more sessions the media threads can take before they are
/// loaded past 60 % of their time each, going by what the sessions they
/// drive cost them over the last half second; `None` while too few run to
/// tell (100 sessions over all threads).
///
/// [`pacing_behind`] sees overload once packets are late already, and calls
/// that arrive faster than it judges (hundreds in a fraction of a second)
/// are all let in before it does. This looks ahead instead: the UA core
/// refuses a new call (503 with Retry-After) when the calls in progress (it
/// included: accepted, their media not started yet) outnumber the room left. The cost
/// per session is measured (on Linux in the threads' CPU time, elsewhere in
/// the wall time of their work), not configured, so a slower machine or a
/// costlier codec lowers the room by itself; other work that keeps the
/// threads from the cores shows in their late ticks ([`pacing_behind`]). (The
/// other 40 %: the signaling, the kernel's share of delivering packets
/// outside the media threads, and bursts.)
pub fn media_room() -> Option<usize> {
    shard::room()
}

/// How many media threads drive sessions (started with this call if they were not).
pub(super) fn media_thread_count() -> usize {
    shard::count()
}

/// The threads that drive media sessions: one per CPU the process may use
/// (`available_parallelism`), started with the first session, each with a
/// share of the sessions (a new one goes to the thread with fewest). A
/// thread sleeps until its earliest session is due, steps every session due
/// by then, and sleeps again. A session has no task, timer or wake-up of its
/// own (those would put most of the time in a scheduler): its 20 ms cost one
/// send, one read and its codec work.
///
/// They are not tokio's workers: media that falls behind cannot starve the
/// runtime's signaling tasks of their threads (the kernel shares the CPUs
/// between both), and sessions are spread over the CPUs by construction,
/// not by where tokio happened to run the code that started them.
mod shard {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock, PoisonError, mpsc};
    use std::time::{Duration, Instant};

    use super::Scratch;
    use crate::media::shared::{self, Demux, Inbox, Route, SharedPair};
    use crate::media::wheel::{Due, Wheel};
    use std::sync::Arc;

    /// Sessions due this soon after the earliest are stepped in the same
    /// wake-up (a packet goes out up to this much early, never late for it).
    /// (The wheel's bucket: a wake-up takes whole buckets.)
    const GATHER: Duration = crate::media::wheel::WIDTH;

    /// The window over which a thread's lateness is judged for [`behind`].
    const WINDOW: Duration = Duration::from_millis(500);

    /// Fewer ticks than this in a window (40 sessions at 20 ms) say nothing
    /// of overload: a few calls on a busy machine are late now and then, and
    /// refusing calls would not help them.
    const MIN_TICKS: u64 = 1000;

    /// A session a media thread can drive.
    pub(super) trait Driven: Send {
        /// When it next has something to do.
        fn due(&self) -> Instant;
        /// Reads a few of the fields a step reads first, for nothing but
        /// to bring them into the cache (see `run`); returns them mixed.
        fn warm(&self) -> u64;
        /// Does what is due at `now`; true once over.
        /// `inbox`: what its shared port received for it since its last step.
        fn step(
            &mut self,
            now: Instant,
            pacing: &Pacing,
            scratch: &mut Scratch,
            inbox: &mut Inbox,
        ) -> bool;
        /// The shared port it sends and receives on, if any.
        fn shared(&self) -> Option<&Arc<SharedPair>>;
        /// What its shared port's [`Demux`] knows it by.
        fn route(&self) -> Route;
        /// The runtime it was started in, which its steps run inside.
        fn runtime(&self) -> Option<&tokio::runtime::Handle>;
        /// That runtime's id (read without touching the session's state).
        fn runtime_id(&self) -> Option<tokio::runtime::Id>;
    }

    /// One media thread as the others see it. Aligned to its own cache
    /// lines: each thread writes its counters every tick, and two lanes
    /// sharing a line would make the cores fight over it.
    #[repr(align(128))]
    struct Lane {
        tx: Mutex<mpsc::Sender<Box<dyn Driven>>>,
        thread: std::thread::Thread,
        sessions: AtomicUsize,
        pacing: Pacing,
    }

    /// A thread's send ticks and late ones (since the last
    /// [`reset`]), how many of them its last judged window had seen, and
    /// its verdict on that window; the time it spent stepping sessions, and
    /// what share of its last window that was, with how many sessions. Only
    /// its thread writes the counts; the totals are read (and reset) from
    /// anywhere.
    #[derive(Default)]
    pub(super) struct Pacing {
        ticks: AtomicU64,
        late: AtomicU64,
        worst_us: AtomicU64,
        judged_ticks: AtomicU64,
        judged_late: AtomicU64,
        behind: AtomicBool,
        busy_ns: AtomicU64,
        judged_busy_ns: AtomicU64,
        /// The last window's busy share, in millionths of the thread's time.
        load_ppm: AtomicU64,
        /// The sessions it drove at the end of that window.
        load_sessions: AtomicUsize,
    }

    /// The share of each media thread's time that [`room`] fills up to, in millionths.
    const LOAD_CEILING_PPM: u64 = 600_000;

    /// Fewer sessions than this over all threads say too little of what one
    /// costs (a wake-up's fixed cost spread over few sessions overstates it).
    const MIN_SESSIONS: usize = 100;

    /// Room left for sessions, from each thread's (busy share, sessions at
    /// the end of its window, sessions now): as many sessions as the
    /// threads can drive at [`LOAD_CEILING_PPM`] each, at the average cost
    /// per session measured, less those they drive now.
    pub(super) fn room_of(lanes: impl Iterator<Item = (u64, usize, usize)>) -> Option<usize> {
        let (mut ppm, mut judged, mut now, mut n) = (0u64, 0usize, 0usize, 0u64);
        for (p, j, s) in lanes {
            ppm += p;
            judged += j;
            now += s;
            n += 1;
        }
        if judged < MIN_SESSIONS || ppm == 0 {
            return None;
        }
        let capacity = n * LOAD_CEILING_PPM * judged as u64 / ppm;
        Some(
            usize::try_from(capacity)
                .unwrap_or(usize::MAX)
                .saturating_sub(now),
        )
    }

    pub(super) fn room() -> Option<usize> {
        room_of(LANES.get()?.iter().map(|l| {
            (
                l.pacing.load_ppm.load(Ordering::Relaxed),
                l.pacing.load_sessions.load(Ordering::Relaxed),
                l.sessions.load(Ordering::Relaxed),
            )
        }))
    }

    /// A tick later than this is late.
    const LATE_US: u64 = 5_000;

    impl Pacing {
        /// One send tick, `behind_us` after its time.
        pub(super) fn tick(&self, behind_us: u64) {
            self.ticks.fetch_add(1, Ordering::Relaxed);
            if behind_us > LATE_US {
                self.late.fetch_add(1, Ordering::Relaxed);
            }
            if behind_us > self.worst_us.load(Ordering::Relaxed) {
                self.worst_us.fetch_max(behind_us, Ordering::Relaxed);
            }
        }

        /// Time spent stepping sessions.
        fn busy(&self, spent: Duration) {
            let ns = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
            self.busy_ns.fetch_add(ns, Ordering::Relaxed);
        }

        /// Closes a window of `length`, at whose end the thread drives
        /// `sessions`: behind if more than 1 % of its ticks were late, out of
        /// enough ticks to tell ([`MIN_TICKS`]); its busy share. A [`reset`]
        /// in the window makes it count from the reset.
        fn judge(&self, length: Duration, sessions: usize) {
            let window = |total: &AtomicU64, judged: &AtomicU64| {
                let now = total.load(Ordering::Relaxed);
                let before = judged.swap(now, Ordering::Relaxed);
                now.checked_sub(before).unwrap_or(now)
            };
            let ticks = window(&self.ticks, &self.judged_ticks);
            let late = window(&self.late, &self.judged_late);
            self.behind
                .store(ticks >= MIN_TICKS && late * 100 > ticks, Ordering::Relaxed);
            let busy = window(&self.busy_ns, &self.judged_busy_ns);
            let length = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX).max(1);
            let ppm = u64::try_from(u128::from(busy) * 1_000_000 / u128::from(length))
                .unwrap_or(u64::MAX);
            self.load_ppm.store(ppm, Ordering::Relaxed);
            self.load_sessions.store(sessions, Ordering::Relaxed);
        }
    }

    /// Send ticks and late ones over all threads.
    pub(super) fn totals() -> (u64, u64) {
        LANES.get().map_or((0, 0), |lanes| {
            lanes.iter().fold((0, 0), |(t, l), lane| {
                (
                    t + lane.pacing.ticks.load(Ordering::Relaxed),
                    l + lane.pacing.late.load(Ordering::Relaxed),
                )
            })
        })
    }

    /// The latest tick of any thread, in microseconds.
    pub(super) fn worst_us() -> u64 {
        LANES.get().map_or(0, |lanes| {
            lanes
                .iter()
                .map(|l| l.pacing.worst_us.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0)
        })
    }

    /// Zeroes every thread's counts (a window being judged restarts).
    pub(super) fn reset() {
        for lane in LANES.get().into_iter().flatten() {
            let p = &lane.pacing;
            for a in [
                &p.ticks,
                &p.late,
                &p.worst_us,
                &p.judged_ticks,
                &p.judged_late,
                &p.busy_ns,
                &p.judged_busy_ns,
                &p.load_ppm,
            ] {
                a.store(0, Ordering::Relaxed);
            }
            p.load_sessions.store(0, Ordering::Relaxed);
        }
    }

    static LANES: OnceLock<Vec<Lane>> = OnceLock::new();

    /// Threads asked for by [`super::set_media_threads`]; 0 for one per CPU.
    static THREADS: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn set_threads(n: usize) -> bool {
        THREADS.store(n, Ordering::Relaxed);
        LANES.get().is_none()
    }

    fn lanes() -> &'static [Lane] {
        LANES.get_or_init(|| {
            let n = match THREADS.load(Ordering::Relaxed) {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            };
            (0..n).filter_map(start_lane).collect()
        })
    }

    fn start_lane(i: usize) -> Option<Lane> {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("parrot-media-{i}"))
            .spawn(move || run(i, rx));
        match spawned {
            Ok(handle) => Some(Lane {
                tx: Mutex::new(tx),
                thread: handle.thread().clone(),
                sessions: AtomicUsize::new(0),
                pacing: Pacing::default(),
            }),
            Err(e) => {
                tracing::error!(error = %e, "media thread not started");
                None
            }
        }
    }

    /// How many media threads there are (started if they were not).
    pub(super) fn count() -> usize {
        lanes().len()
    }

    /// Hands a session to media thread `lane` (that of its shared port), or
    /// to the one with the fewest sessions.
    pub(super) fn add(session: Box<dyn Driven>, lane: Option<usize>) -> Result<(), String> {
        let lanes = lanes();
        let chosen = match lane {
            Some(i) => lanes.get(i),
            None => lanes
                .iter()
                .min_by_key(|l| l.sessions.load(Ordering::Relaxed)),
        };
        let Some(lane) = chosen else {
            return Err("no media thread could be started".into());
        };
        lane.sessions.fetch_add(1, Ordering::Relaxed);
        let sent = lane
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(session);
        if sent.is_err() {
            lane.sessions.fetch_sub(1, Ordering::Relaxed);
            return Err("the media thread has ended".into());
        }
        lane.thread.unpark();
        Ok(())
    }

    pub(super) fn behind() -> bool {
        LANES.get().is_some_and(|lanes| {
            lanes
                .iter()
                .any(|l| l.pacing.behind.load(Ordering::Relaxed))
        })
    }

    /// Steps one session; true when it is over — or when its media handler
    /// panicked: that session ends (its handle and its call see it gone), the
    /// thread and the other sessions go on ("let it crash").
    fn step_contained(
        session: &mut Box<dyn Driven>,
        due: Instant,
        pacing: &Pacing,
        scratch: &mut Scratch,
        inbox: &mut Inbox,
    ) -> bool {
        // A session gathered early is stepped as at its due time: its tick
        // goes out now, on time for it. (The time is the queue's copy: the
        // session's memory is first touched by its step.)
        let now = Instant::now().max(due);
        let step = std::panic::AssertUnwindSafe(|| session.step(now, pacing, scratch, inbox));
        match std::panic::catch_unwind(step) {
            Ok(over) => over,
            Err(_) => {
                tracing::error!("media handler panicked; its session ends, the others go on");
                true
            }
        }
    }

    /// A session a thread drives.
    struct Entry {
        session: Box<dyn Driven>,
        /// Its shared port, as an index into [`Sessions::ports`].
        port: Option<usize>,
        /// What the port's demultiplexer knows it by.
        route: Route,
        /// What the port received for it, until its next step.
        inbox: Inbox,
    }

    /// A shared port a thread reads for its sessions on it.
    struct Port {
        pair: Arc<SharedPair>,
        demux: Demux,
        users: usize,
    }

    /// What a thread drives: its sessions by slot, and the shared ports
    /// they use. A session's slot stays its own until it ends (the queue
    /// and the demultiplexers know it by its slot).
    #[derive(Default)]
    struct Sessions {
        slab: Vec<Option<Entry>>,
        free: Vec<usize>,
        ports: Vec<Option<Port>>,
    }

    impl Sessions {
        fn insert(&mut self, session: Box<dyn Driven>) -> usize {
            let port = session.shared().cloned().map(|pair| self.port_of(pair));
            let route = session.route();
            let entry = Entry {
                session,
                port,
                route,
                inbox: Inbox::default(),
            };
            let slot = match self.free.pop() {
                Some(i) => {
                    self.slab[i] = Some(entry);
                    i
                }
                None => {
                    self.slab.push(Some(entry));
                    self.slab.len() - 1
                }
            };
            if let Some(p) = port.and_then(|p| self.ports[p].as_mut()) {
                p.demux.add(slot, route);
            }
            slot
        }

        fn port_of(&mut self, pair: Arc<SharedPair>) -> usize {
            let known = self
                .ports
                .iter()
                .position(|p| p.as_ref().is_some_and(|p| Arc::ptr_eq(&p.pair, &pair)));
            if let Some(i) = known {
                if let Some(p) = self.ports[i].as_mut() {
                    p.users += 1;
                }
                return i;
            }
            let port = Some(Port {
                pair,
                demux: Demux::default(),
                users: 1,
            });
            match self.ports.iter().position(Option::is_none) {
                Some(i) => {
                    self.ports[i] = port;
                    i
                }
                None => {
                    self.ports.push(port);
                    self.ports.len() - 1
                }
            }
        }

        /// Ends the session in `slot`: its port forgets it, and the thread
        /// lets go of a port nobody of its uses any more.
        fn remove(&mut self, slot: usize) {
            let Some(e) = self.slab.get_mut(slot).and_then(Option::take) else {
                return;
            };
            self.free.push(slot);
            if let Some(i) = e.port {
                if let Some(p) = self.ports[i].as_mut() {
                    p.demux.remove(slot, e.route);
                    p.users -= 1;
                    if p.users == 0 {
                        self.ports[i] = None;
                    }
                }
            }
        }

        /// After a step: a session whose peer moved (re-INVITE, latching) is
        /// known by its new route.
        fn reroute(&mut self, slot: usize) {
            let Some(e) = self.slab.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let Some(p) = e.port.and_then(|i| self.ports[i].as_mut()) else {
                return;
            };
            let route = e.session.route();
            if route != e.route {
                p.demux.remove(slot, e.route);
                p.demux.add(slot, route);
                e.route = route;
            }
        }
    }

    /// A thread's read buffers for its shared ports.
    struct RecvBufs {
        bufs: Vec<Vec<u8>>,
        meta: Vec<quinn_udp::RecvMeta>,
        /// One batch's datagrams, while they are handed out ([`deliver`]).
        found: Vec<Found>,
    }

    /// A datagram of a batch: its buffer, where in it, whether it is RTCP,
    /// and the session slot it is for (if any).
    struct Found {
        buf: usize,
        range: std::ops::Range<usize>,
        rtcp: bool,
        slot: Option<usize>,
    }

    impl RecvBufs {
        fn new() -> RecvBufs {
            RecvBufs {
                bufs: Vec::new(),
                meta: vec![quinn_udp::RecvMeta::default(); shared::BATCH],
                found: Vec::new(),
            }
        }

        /// Room in each buffer for what GRO may coalesce into it.
        fn fit(&mut self, segments: usize) {
            let size = (super::MAX_DATAGRAM + 1) * segments;
            if self.bufs.first().is_none_or(|b| b.len() < size) {
                self.bufs = (0..shared::BATCH).map(|_| vec![0; size]).collect();
            }
        }
    }

    /// A thread reads its shared ports' RTCP sockets (used by sessions
    /// without rtcp-mux alone, and reports come every few seconds) once in
    /// this many wake-ups.
    const RTCP_WAKE_UPS: u64 = 64;

    /// Reads every shared port of the thread and puts each datagram in its
    /// session's inbox (or counts it unclaimed); RTCP sockets only now and
    /// then (`rtcp_too`).
    fn receive(sessions: &mut Sessions, bufs: &mut RecvBufs, rtcp_too: bool) {
        let Sessions { slab, ports, .. } = sessions;
        for port in ports.iter().flatten() {
            let pair = &port.pair;
            bufs.fit(pair.gro_segments());
            for rtcp in [false, true] {
                if rtcp && !rtcp_too {
                    continue;
                }
                let (socket, state) = pair.socket(rtcp);
                for _ in 0..shared::MAX_BATCHES {
                    let read = {
                        let mut slices: Vec<std::io::IoSliceMut<'_>> = bufs
                            .bufs
                            .iter_mut()
                            .map(|b| std::io::IoSliceMut::new(b))
                            .collect();
                        state.recv(socket.into(), &mut slices, &mut bufs.meta)
                    };
                    // WouldBlock: empty; another error is one datagram's.
                    let Ok(n) = read else { break };
                    deliver(slab, &port.demux, rtcp, bufs, n);
                    if n < bufs.bufs.len() {
                        break;
                    }
                }
            }
        }
    }

    /// The `n` buffers a read of a shared port filled, each datagram to the
    /// inbox of the session it is for (or counted unclaimed). In three
    /// passes, as a wake-up's sessions are stepped (see `run`): whose each
    /// datagram is, then a read of each one's entry, then the copies. Looked
    /// up and copied one by one, each datagram waited for its own cache
    /// misses (the demultiplexer's table, then the session's entry: together
    /// ~3 % of all samples at 2500 calls); these independent reads wait for
    /// memory together.
    fn deliver(
        slab: &mut [Option<Entry>],
        demux: &Demux,
        on_rtcp_port: bool,
        bufs: &mut RecvBufs,
        n: usize,
    ) {
        let RecvBufs { bufs, meta, found } = bufs;
        found.clear();
        for (i, (m, buf)) in meta[..n].iter().zip(bufs.iter()).enumerate() {
            let len = m.len.min(buf.len());
            // GRO may have put a flow's datagrams in one buffer, `stride`
            // bytes apart.
            let stride = if m.stride == 0 { len } else { m.stride }.max(1);
            for start in (0..len).step_by(stride) {
                let range = start..(start + stride).min(len);
                let d = &buf[range.clone()];
                let rtcp = on_rtcp_port || super::is_muxed_rtcp(d);
                let slot = shared::stream_ssrc(d, rtcp).and_then(|ssrc| demux.find(m.addr, ssrc));
                found.push(Found {
                    buf: i,
                    range,
                    rtcp,
                    slot,
                });
            }
        }
        let mut touched = 0;
        for f in found.iter() {
            if let Some(Some(e)) = f.slot.and_then(|s| slab.get(s)) {
                touched ^= e.inbox.waiting();
            }
        }
        std::hint::black_box(touched);
        for f in found.iter() {
            let datagram = &bufs[f.buf][f.range.clone()];
            let kept = f
                .slot
                .and_then(|slot| slab.get_mut(slot)?.as_mut())
                .is_some_and(|e| e.inbox.push(f.rtcp, meta[f.buf].addr, datagram));
            if !kept {
                shared::count_unclaimed();
            }
        }
    }

    /// Sends what the thread's sessions queued for their shared ports.
    fn flush(sessions: &Sessions, scratch: &mut Scratch) {
        if scratch.outbox.is_empty() {
            return;
        }
        let ports = &sessions.ports;
        scratch.outbox.flush(|key| {
            ports
                .iter()
                .flatten()
                .find(|p| p.pair.key() == key)
                .map(|p| &*p.pair)
        });
    }

    /// The CPU time a media thread has used, as its busy time for `room`,
    /// where the system tells it (Linux: `CLOCK_THREAD_CPUTIME_ID`, read once
    /// a window). The wall time of its wake-ups, the measure elsewhere,
    /// counts the time the thread waited for a core in the middle of one: a
    /// burst of call setups on the signaling threads made the sessions look
    /// costlier than they are, and the room refused calls it had room for
    /// (at 4000 calls asked on the AMD machine, 1383 admitted in one run of
    /// three). A machine too busy to give the threads their time shows in
    /// their late ticks instead ([`behind`]).
    struct CpuTime(Option<Duration>);

    impl CpuTime {
        fn start() -> CpuTime {
            CpuTime(Self::now())
        }

        #[cfg(target_os = "linux")]
        fn now() -> Option<Duration> {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            Some(Duration::new(
                u64::try_from(t.tv_sec).ok()?,
                u32::try_from(t.tv_nsec).ok()?,
            ))
        }

        #[cfg(not(target_os = "linux"))]
        fn now() -> Option<Duration> {
            None
        }

        /// Whether the thread's CPU time is known (else the wake-ups' wall time counts).
        fn known(&self) -> bool {
            self.0.is_some()
        }

        /// Counts the CPU time used since the last count as busy.
        fn count(&mut self, pacing: &Pacing) {
            let (Some(before), Some(now)) = (self.0, Self::now()) else {
                return;
            };
            pacing.busy(now.saturating_sub(before));
            self.0 = Some(now);
        }
    }

    fn run(i: usize, incoming: mpsc::Receiver<Box<dyn Driven>>) {
        // The lanes are being built while the first thread starts: wait for them.
        let me = loop {
            if let Some(lanes) = LANES.get() {
                break lanes.get(i);
            }
            std::thread::park_timeout(Duration::from_millis(1));
        };
        let Some(me) = me else { return };
        let mut queue = Wheel::new(Instant::now());
        let mut sessions = Sessions::default();
        let mut scratch = Scratch::new();
        let mut bufs = RecvBufs::new();
        let mut batch: Vec<Due> = Vec::new();
        let mut window = Instant::now();
        let mut cpu = CpuTime::start();
        let mut wake_ups: u64 = 0;
        fn take(s: Box<dyn Driven>, queue: &mut Wheel, all: &mut Sessions) {
            let due = s.due();
            queue.push(due, all.insert(s));
        }
        loop {
            // New sessions are due at once.
            loop {
                match incoming.try_recv() {
                    Ok(s) => take(s, &mut queue, &mut sessions),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        if queue.is_empty() {
                            return;
                        }
                        break;
                    }
                }
            }
            let now = Instant::now();
            if now.duration_since(window) >= WINDOW {
                cpu.count(&me.pacing);
                me.pacing.judge(now - window, queue.len());
                window = now;
            }
            let Some(first) = queue.earliest() else {
                // Nothing to step: not behind; sleep until a session comes.
                cpu.count(&me.pacing);
                me.pacing.judge(now - window, 0);
                me.pacing.behind.store(false, Ordering::Relaxed);
                // The next window starts here: its busy time counts from this judge.
                window = now;
                match incoming.recv() {
                    Ok(s) => take(s, &mut queue, &mut sessions),
                    Err(_) => return,
                }
                continue;
            };
            if first > now {
                // Asleep until the earliest is due, even when that is sooner
                // than `GATHER`: stepping it now instead would gather only
                // the sessions due in the time the last wake-up took, and in
                // a dense stretch of sessions the thread went round and round
                // on a few at a time, each round paying its socket reads and
                // sends (at 2500 calls, ~10,000 wake-ups a second a thread,
                // 3 datagrams a send). `add` unparks us for a new session; a
                // spurious wake-up just goes round again. (What came to a
                // shared port waits in its socket for the next sessions due.)
                std::thread::park_timeout(first - now);
                continue;
            }
            // The shared ports first: their datagrams are in the sessions'
            // jitter buffers before the sessions step.
            wake_ups += 1;
            receive(&mut sessions, &mut bufs, wake_ups % RTCP_WAKE_UPS == 0);
            let until = now + GATHER;
            // What is due is taken out first, and each session's first
            // fields read before any is stepped: with thousands of sessions
            // a session's memory is out of the caches by its next tick, and
            // these independent reads wait for memory together, where each
            // step in turn would wait for its own (a session's first read
            // was ~5 % of the media threads' time at 2500 calls).
            batch.clear();
            queue.take_due(until, &mut batch);
            let mut touched = 0;
            for (_, slot) in &batch {
                if let Some(Some(e)) = sessions.slab.get(*slot) {
                    touched ^= e.session.warm();
                }
            }
            std::hint::black_box(touched);
            // A handler runs in the runtime its session was started in, as
            // it would in a task of it: it may spawn (a WebSocket bridge
            // does) or use tokio's channels and timers. The runtime is
            // entered once for each run of sessions of one runtime (all of
            // them, as a rule), not once a session: entering clones the
            // runtime's handle, and that reference count is written by
            // every thread that enters it, a cache line the cores fight over.
            let id_of = |sessions: &Sessions, slot: usize| match sessions.slab.get(slot) {
                Some(Some(e)) => e.session.runtime_id(),
                _ => None,
            };
            let mut k = 0;
            while let Some(&(_, first)) = batch.get(k) {
                let (id, runtime) = match sessions.slab.get(first) {
                    Some(Some(e)) => (e.session.runtime_id(), e.session.runtime().cloned()),
                    _ => (None, None),
                };
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                let run = k;
                while let Some(&(due, slot)) = batch.get(k) {
                    if k > run && id_of(&sessions, slot) != id {
                        break;
                    }
                    k += 1;
                    let over = match sessions.slab.get_mut(slot) {
                        Some(Some(e)) => step_contained(
                            &mut e.session,
                            due,
                            &me.pacing,
                            &mut scratch,
                            &mut e.inbox,
                        ),
                        _ => continue,
                    };
                    if over {
                        me.sessions.fetch_sub(1, Ordering::Relaxed);
                        sessions.remove(slot);
                    } else if let Some(Some(e)) = sessions.slab.get(slot) {
                        queue.push(e.session.due(), slot);
                        sessions.reroute(slot);
                    }
                }
            }
            batch.clear();
            flush(&sessions, &mut scratch);
            if !cpu.known() {
                // One more clock read a wake-up (not a session): what its
                // sessions cost this thread, for `room`.
                me.pacing.busy(now.elapsed());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn judged(ticks: u64, late: u64) -> bool {
            let p = Pacing::default();
            for i in 0..ticks {
                p.tick(if i < late { 6_000 } else { 100 });
            }
            p.judge(WINDOW, 0);
            p.behind.load(Ordering::Relaxed)
        }

        #[test]
        fn a_window_s_busy_share_is_its_busy_time_over_its_length() {
            let p = Pacing::default();
            p.busy(Duration::from_millis(100));
            p.busy(Duration::from_millis(50));
            p.judge(Duration::from_millis(500), 700);
            assert_eq!(p.load_ppm.load(Ordering::Relaxed), 300_000);
            assert_eq!(p.load_sessions.load(Ordering::Relaxed), 700);
            // The next window counts from there.
            p.busy(Duration::from_millis(10));
            p.judge(Duration::from_millis(500), 650);
            assert_eq!(p.load_ppm.load(Ordering::Relaxed), 20_000);
            assert_eq!(p.load_sessions.load(Ordering::Relaxed), 650);
        }

        #[test]
        fn room_is_what_the_threads_can_drive_at_the_ceiling_less_what_they_drive() {
            // Two threads at 30 % each with 600 sessions: 0.1 % a session,
            // so 60 % each is 1200 sessions over both; 700 run now.
            let lanes = [(300_000, 300, 350), (300_000, 300, 350)];
            assert_eq!(room_of(lanes.into_iter()), Some(500));
            // Costlier sessions (60 % for the same 600): no room.
            let full = [(600_000, 300, 300), (600_000, 300, 310)];
            assert_eq!(room_of(full.into_iter()), Some(0));
            // Too few to tell, or nothing measured yet.
            assert_eq!(room_of([(900_000, 60, 60)].into_iter()), None);
            assert_eq!(room_of([(0, 500, 500)].into_iter()), None);
            assert_eq!(room_of(std::iter::empty()), None);
            // One idle thread still counts as a thread to put sessions on.
            let uneven = [(400_000, 400, 400), (0, 0, 0)];
            assert_eq!(room_of(uneven.into_iter()), Some(800));
        }

        #[test]
        fn behind_means_over_one_percent_late_out_of_enough_ticks() {
            assert!(judged(2000, 21), "1.05 % of 2000");
            assert!(!judged(2000, 20), "1 % is not over 1 %");
            assert!(!judged(999, 500), "too few ticks to tell");
            assert!(!judged(0, 0));
            // Each window is judged alone: a good one after a bad one clears it.
            let p = Pacing::default();
            for i in 0..2000 {
                p.tick(if i < 100 { 20_000 } else { 0 });
            }
            p.judge(WINDOW, 0);
            assert!(p.behind.load(Ordering::Relaxed));
            for _ in 0..2000 {
                p.tick(5_000);
            }
            p.judge(WINDOW, 0);
            assert!(!p.behind.load(Ordering::Relaxed), "5 ms is not late");
            assert_eq!(p.worst_us.load(Ordering::Relaxed), 20_000);
            assert_eq!(p.ticks.load(Ordering::Relaxed), 4000);
            assert_eq!(p.late.load(Ordering::Relaxed), 100);
        }
    }
}

/// Binds an RTP/RTCP socket pair on `ip`, even port first (RFC 3550 §11), from `ports`.
///
/// The pair stays marked in use in `ports` until the returned [`PortLease`] is dropped:
/// keep it in the [`MediaSockets::Pair`] (`.into()` does) and the session releases it
/// when it closes the sockets. So a pair a live call holds is not tried again, and
/// [`PortAllocator::in_use`](crate::rtp::PortAllocator::in_use) counts what calls hold.
/// Each free pair is tried at most once (round robin, so a just-closed pair is reused
/// last); one another program holds fails to bind and the next is tried.
///
/// [`PortLease`]: crate::rtp::PortLease
pub async fn bind_pair(
    ip: std::net::IpAddr,
    ports: &Ports,
) -> std::io::Result<(UdpSocket, UdpSocket, crate::rtp::PortLease)> {
    let (a, b, lease) = bind_std_pair(ip, ports)?;
    Ok((UdpSocket::from_std(a)?, UdpSocket::from_std(b)?, lease))
}

/// [`bind_pair`]'s sockets as std sockets (non-blocking), for a shared port too.
pub(super) fn bind_std_pair(
    ip: std::net::IpAddr,
    ports: &Ports,
) -> std::io::Result<(
    std::net::UdpSocket,
    std::net::UdpSocket,
    crate::rtp::PortLease,
)> {
    let bound = crate::rtp::PortLease::allocate(ports, |pair| {
        let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, pair.rtp)).ok()?;
        let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, pair.rtcp)).ok()?;
        Some((rtp, rtcp))
    });
    let Some((lease, (a, b))) = bound else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free RTP port pair in the range",
        ));
    };
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b, lease))
}

/// The RTP port range shared by an endpoint's calls.
pub type Ports = Arc<std::sync::Mutex<crate::rtp::PortAllocator>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Binds a loopback UDP socket for the runtime of the test.
    async fn loopback() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    /// The source of the next datagram `socket` reads (blocking, bounded).
    fn next_from(socket: &std::net::UdpSocket) -> SocketAddr {
        socket.set_nonblocking(false).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        let from = socket.recv_from(&mut buf).unwrap().1;
        socket.set_nonblocking(true).unwrap();
        from
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_settled_socket_hears_its_peer_alone_until_learning_starts_again() {
        let mut io = Sockets::new(loopback().await, loopback().await, false).unwrap();
        let local = io.rtp.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_addr = peer.local_addr().unwrap();

        // Wildcards are never connected to.
        io.settle(Some(SocketAddr::from(([0, 0, 0, 0], 4000))));
        assert_eq!(io.rtp_peer, None);

        io.settle(Some(peer_addr));
        assert_eq!(io.rtp_peer, Some(peer_addr));
        // The stranger's datagram goes first and is dropped by the kernel.
        stranger.send_to(b"x", local).unwrap();
        peer.send_to(b"p", local).unwrap();
        assert_eq!(next_from(&io.rtp), peer_addr);
        // A send to the peer goes by the connection, one elsewhere still names its address.
        assert!(send_now(Out::Socket(&io.rtp, io.rtp_peer), b"1", peer_addr));
        assert_eq!(next_from(&peer), local);
        assert!(send_now(
            Out::Socket(&io.rtp, io.rtp_peer),
            b"2",
            stranger.local_addr().unwrap()
        ));
        assert_eq!(next_from(&stranger), local);

        // Learning again: every source is heard, from the same local port.
        io.settle(None);
        assert_eq!(io.rtp_peer, None);
        assert_eq!(io.rtp.local_addr().unwrap(), local);
        stranger.send_to(b"x", local).unwrap();
        assert_eq!(next_from(&io.rtp), stranger.local_addr().unwrap());
    }

    /// A played payload's buffer takes the next datagram without a new
    /// allocation (the address it lands at is the buffer's own); a buffer
    /// still held elsewhere is left alone and the datagram goes to a new one.
    #[test]
    fn a_played_packets_buffer_takes_the_next_datagram() {
        let mut spare = Spare::default();
        let a = [1u8; 172];
        let first = spare.fill(&a);
        let start = first.as_ptr();
        // What the jitter buffer plays: the payload, sliced past the header.
        let payload = first.slice(12..);
        drop(first);
        spare.keep(payload);
        assert!(spare.0.is_some(), "kept");
        let second = spare.fill(&[2u8; 172]);
        assert_eq!(second.as_ptr(), start, "the same allocation");
        assert_eq!(second[..], [2u8; 172]);

        let held = second.slice(12..);
        spare.keep(second);
        assert!(spare.0.is_none(), "a held buffer is not kept");
        let third = spare.fill(&[3u8; 172]);
        assert_ne!(third.as_ptr(), start);
        assert_eq!(held[..], [2u8; 160], "a held packet is never written over");
    }

    struct Panics;
    impl MediaHandler for Panics {
        fn stream_started(&mut self) -> Action {
            panic!("a media handler's bug");
        }
    }

    struct Talks;
    impl MediaHandler for Talks {
        fn stream_started(&mut self) -> Action {
            Action::tone(440.0, 60.0)
        }
    }

    async fn session(handler: impl MediaHandler, to: SocketAddr) -> MediaSession {
        let ports = Arc::new(std::sync::Mutex::new(
            crate::rtp::PortAllocator::new(47200..=47231).unwrap(),
        ));
        let pair = bind_pair(std::net::IpAddr::from([127, 0, 0, 1]), &ports)
            .await
            .unwrap();
        let (events, _) = mpsc::channel(4);
        MediaSession::start(pcmu(pair.into(), to, false), handler, events).unwrap()
    }

    /// 20 ms PCMU both ways on `sockets` to `to`, no SRTP.
    fn pcmu(sockets: MediaSockets, to: SocketAddr, rtcp_mux: bool) -> MediaConfig {
        MediaConfig {
            sockets,
            ssrc: None,
            remote_ssrc: None,
            codec: Codec::PCMU,
            telephone_event: None,
            ptime: 20,
            remote: Some(to),
            direction: Direction::SendRecv,
            rtp_seed: None,
            srtp: None,
            rtcp_mux,
        }
    }

    /// The wire path of an SRTP call across a sequence number wrap: packets from an
    /// `RtpSession` starting at 65,500, protected and unprotected in place as the session
    /// does, reach the receiving `RtpSession`; both rollover counters go to 1.
    #[test]
    fn srtp_in_place_across_the_sequence_wrap() {
        use crate::rtp::srtp::SrtpProfile;
        use crate::sdp::{LocalMedia, LocalSrtp, Negotiator, SrtpMode};
        let side = |mode, port| {
            let local = LocalMedia::new(std::net::IpAddr::from([127, 0, 0, 1]), port)
                .with_srtp(Some(LocalSrtp::random(mode).unwrap()));
            Negotiator::new(local, 1)
        };
        let (mut a, mut b) = (
            side(SrtpMode::Mandatory, 4000),
            side(SrtpMode::Mandatory, 5000),
        );
        let answer = b.answer(&a.create_offer()).unwrap();
        let at_b = answer.negotiated.unwrap().srtp.unwrap();
        let at_a = a.accept_answer(&answer.sdp).unwrap().srtp.unwrap();
        assert_eq!(at_a.profile, SrtpProfile::AeadAes128Gcm);
        let mut tx = SrtpState::new(at_a).unwrap();
        let mut rx = SrtpState::new(at_b).unwrap();

        let t0 = std::time::Instant::now();
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut sender =
            RtpSession::new(SessionConfig::new(8000, 0).with_initial(7, 65_500, 0), t0);
        let mut receiver = RtpSession::new(SessionConfig::new(8000, 0).with_min_sequential(1), t0);
        let mut got = 0;
        for _ in 0..100 {
            let packet = sender.packetize(t0, Bytes::from_static(&[0xd5; 160]), 160, false);
            let mut buf = [0u8; MAX_DATAGRAM];
            buf[..packet.len()].copy_from_slice(&packet);
            let n = tx.tx.protect_rtp_in_place(&mut buf, packet.len()).unwrap();
            assert_ne!(
                buf[12..packet.len()],
                packet[12..],
                "the payload is encrypted"
            );
            let n = rx.rx.unprotect_rtp_in_place(&mut buf[..n]).unwrap();
            assert_eq!(buf[..n], packet[..]);
            if receiver
                .receive(t0, from, Bytes::copy_from_slice(&buf[..n]))
                .is_ok()
            {
                got += 1;
            }
        }
        assert_eq!((tx.tx.roc(), rx.rx.roc()), (1, 1));
        assert!(got >= 99, "{got} of 100 accepted");
    }

    /// A handler that spawns (as the WebSocket bridges do) finds the runtime
    /// its session was started in, though a media thread runs it.
    #[tokio::test]
    async fn a_media_handler_runs_inside_its_sessions_runtime() {
        struct Spawns(Arc<std::sync::atomic::AtomicBool>);
        impl MediaHandler for Spawns {
            fn stream_started(&mut self) -> Action {
                let done = Arc::clone(&self.0);
                tokio::spawn(async move { done.store(true, Ordering::SeqCst) });
                Action::tone(440.0, 1.0)
            }
        }
        let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let spawned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = session(Spawns(Arc::clone(&spawned)), sink.local_addr().unwrap()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats = s.stop().await;
        assert!(spawned.load(Ordering::SeqCst), "the handler's task ran");
        assert!(stats.packets_sent > 0, "the session went on: {stats:?}");
    }

    /// Sessions of two runtimes on the media threads, in an order that puts
    /// both on each thread: every tick of each runs inside its own runtime
    /// (a thread enters a runtime once for a run of its sessions).
    #[test]
    fn each_session_steps_inside_its_own_runtime_when_runtimes_mix() {
        struct Checks {
            want: tokio::runtime::Id,
            polls: Arc<std::sync::atomic::AtomicU64>,
            wrong: Arc<std::sync::atomic::AtomicU64>,
        }
        impl MediaHandler for Checks {
            fn poll(&mut self) -> Action {
                let now = tokio::runtime::Handle::try_current().map(|h| h.id());
                let counter = if now.ok() == Some(self.want) {
                    &self.polls
                } else {
                    &self.wrong
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Action::Nothing
            }
        }
        let runtimes: Vec<tokio::runtime::Runtime> = (0..2)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .collect();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let wrong = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut sessions = Vec::new();
        for which in [0, 1, 1, 0, 0, 1, 1, 0] {
            let rt = &runtimes[which];
            let handler = Checks {
                want: rt.handle().id(),
                polls: Arc::clone(&polls),
                wrong: Arc::clone(&wrong),
            };
            sessions.push((which, rt.block_on(session(handler, to))));
        }
        std::thread::sleep(Duration::from_millis(300));
        for (which, s) in sessions {
            runtimes[which].block_on(s.stop());
        }
        assert_eq!(
            wrong.load(Ordering::Relaxed),
            0,
            "polls outside their runtime"
        );
        assert!(
            polls.load(Ordering::Relaxed) >= 8 * 5,
            "every session ticked"
        );
    }

    /// Media sockets of a session with small datagrams send with DF and no
    /// IP ID to draw (IPv4); an IPv6 socket is left alone.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn small_datagram_sessions_set_dont_fragment() {
        use rustix::net::sockopt;
        let bind = |a: &str| {
            let s = std::net::UdpSocket::bind(a).unwrap();
            s.set_nonblocking(true).unwrap();
            UdpSocket::from_std(s).unwrap()
        };
        let io = Sockets::new(bind("127.0.0.1:0"), bind("127.0.0.1:0"), false).unwrap();
        assert_eq!(
            sockopt::ip_mtu_discover(&io.rtp).unwrap(),
            sockopt::Ipv4PathMtuDiscovery::WANT
        );
        io.dont_fragment();
        let rtcp = io.rtcp.as_ref().unwrap();
        for s in [&io.rtp, rtcp] {
            assert_eq!(
                sockopt::ip_mtu_discover(s).unwrap(),
                sockopt::Ipv4PathMtuDiscovery::PROBE
            );
        }
    }

    /// A burst far beyond one datagram a tick (a peer's backlog after a
    /// network stall) is read within a few ticks, not at one a tick: the
    /// reads until empty come back to every few ticks once one finds more.
    #[tokio::test]
    async fn a_burst_of_rtp_is_read_within_a_few_ticks() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let s = session(Talks, peer.local_addr().unwrap()).await;
        // Let the drain back off to its longest interval first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for seq in 0..100u16 {
            let p = crate::rtp::RtpPacket::new(
                0,
                seq,
                u32::from(seq) * 160,
                42,
                Bytes::from_static(&[0xff; 160]),
            );
            peer.send_to(&p.to_bytes(), s.local_addr()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = s.stop().await;
        // 25 ticks after the burst at one a tick would read 25 of it; a
        // stalled machine owes ticks, and reads the backlog whole at its
        // next look anyway.
        assert_eq!(stats.packets_received, 100, "{stats:?}");
    }

    /// Two sessions on one shared port, whose peer sends both streams from one
    /// address (as a peer sharing its port does): each gets its own stream by
    /// the SSRC its peer announced, sends its own from the shared port, and a
    /// stream nobody announced is counted unclaimed.
    #[tokio::test]
    async fn sessions_on_a_shared_port_are_told_apart_by_announced_ssrc() {
        let ports = Arc::new(std::sync::Mutex::new(
            crate::rtp::PortAllocator::new(47300..=47331).unwrap(),
        ));
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        // The threads take new ports in turn: one more than there are
        // threads puts two on one of them.
        let bound: Vec<_> = (0..=shard::count())
            .map(|_| super::super::bind_shared(ip, &ports).unwrap())
            .collect();
        let (a, b) = bound
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                let b = bound[i + 1..]
                    .iter()
                    .find(|b| b.local_addr() == a.local_addr())?;
                Some((a.clone(), b.clone()))
            })
            .unwrap();
        drop(bound);
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        let start = |port: super::super::SharedPort, theirs: u32, ours: u32| {
            let cfg = MediaConfig {
                ssrc: Some(ours),
                remote_ssrc: Some(theirs),
                ..pcmu(MediaSockets::Shared(port), to, true)
            };
            let (events, _) = mpsc::channel(4);
            MediaSession::start(cfg, Talks, events).unwrap()
        };
        let local = a.local_addr();
        let first = start(a, 0xa, 0x1a);
        let second = start(b, 0xb, 0x1b);
        assert_eq!(first.local_addr(), second.local_addr());
        let unclaimed = super::super::shared_port_unclaimed();
        // 30 packets of stream A, 20 of B, 5 of a stream nobody announced.
        for (ssrc, count) in [(0xa, 30u16), (0xb, 20), (0xc, 5)] {
            for seq in 0..count {
                let p = crate::rtp::RtpPacket::new(
                    0,
                    seq,
                    u32::from(seq) * 160,
                    ssrc,
                    Bytes::from_static(&[0xff; 160]),
                );
                peer.send_to(&p.to_bytes(), local).await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (one, two) = (first.stop().await, second.stop().await);
        assert_eq!(one.packets_received, 30, "{one:?}");
        assert_eq!(two.packets_received, 20, "{two:?}");
        assert!(super::super::shared_port_unclaimed() >= unclaimed + 5);
        // Both streams came from the shared port, each with its own SSRC.
        let mut buf = [0u8; 2048];
        let mut seen = std::collections::HashMap::new();
        while let Ok((n, from)) = peer.try_recv_from(&mut buf) {
            assert_eq!(from, local);
            if let Ok(p) = crate::rtp::RtpPacket::parse(Bytes::copy_from_slice(&buf[..n])) {
                *seen.entry(p.ssrc).or_insert(0) += 1;
            }
        }
        assert!(seen.get(&0x1a).is_some_and(|n| *n >= 5), "{seen:?}");
        assert!(seen.get(&0x1b).is_some_and(|n| *n >= 5), "{seen:?}");
    }

    /// Sessions share their media thread's frame and datagram buffers
    /// (`Scratch`): a silent session stepped right after one playing a
    /// tone sends silence, not what the tone left in the buffers.
    #[tokio::test]
    async fn sessions_on_one_thread_send_their_own_audio() {
        struct Quiet;
        impl MediaHandler for Quiet {}
        let mut sinks = Vec::new();
        let mut sessions = Vec::new();
        // More sessions than media threads, in pairs (a new session goes to
        // the thread with fewest): each thread steps tones and silences in
        // turn.
        for i in 0..8 {
            let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let to = sink.local_addr().unwrap();
            sessions.push(if i / 2 % 2 == 0 {
                session(Talks, to).await
            } else {
                session(Quiet, to).await
            });
            sinks.push(sink);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for s in sessions {
            s.stop().await;
        }
        for (i, sink) in sinks.iter().enumerate() {
            let mut buf = [0u8; 2048];
            let mut packets = 0;
            let mut silent = 0;
            while let Ok((n, _)) = sink.try_recv_from(&mut buf) {
                let Ok(p) = crate::rtp::RtpPacket::parse(Bytes::copy_from_slice(&buf[..n])) else {
                    continue;
                };
                packets += 1;
                // µ-law silence is 0xFF.
                if p.payload.iter().all(|b| *b == 0xff) {
                    silent += 1;
                }
            }
            assert!(packets >= 5, "session {i}: {packets} packets");
            if i / 2 % 2 == 0 {
                assert_eq!(silent, 0, "session {i} plays a tone");
            } else {
                assert_eq!(silent, packets, "session {i} is quiet");
            }
        }
    }

    /// More control messages than the mailbox holds: the sender waits for the
    /// session's ticks to make room, and every one gets through.
    #[tokio::test]
    async fn control_messages_beyond_the_mailbox_wait_for_room() {
        let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let s = session(Talks, sink.local_addr().unwrap()).await;
        tokio::time::timeout(Duration::from_secs(10), async {
            for _ in 0..3 * MAILBOX {
                s.dtmf_received('5').await;
            }
        })
        .await
        .expect("room is made at each tick");
        let stats = s.stop().await;
        assert_eq!(stats.digits_received.len(), 3 * MAILBOX, "{stats:?}");
        assert!(stats.packets_sent > 0, "{stats:?}");
    }

    /// A stop queued when the session ends without reading it (its handler
    /// panicked in `stream_started`, before the first tick read the mailbox)
    /// is answered, not left waiting: the race that made
    /// `a_panicking_media_handler_ends_its_session_only` time out now and
    /// then on a loaded machine, whose first tick came after the stop.
    #[tokio::test]
    async fn a_stop_the_session_never_read_is_answered_when_it_ends() {
        let mailbox = Mailbox::default();
        let (tx, rx) = oneshot::channel();
        assert!(mailbox.send(Control::Stop(tx)).await.is_ok());
        mailbox.end();
        let reply = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the stop is not left waiting");
        assert!(reply.is_err(), "the reply's sender went with the session");
        assert!(mailbox.send(Control::Dtmf('1')).await.is_err());
    }

    #[tokio::test]
    async fn a_panicking_media_handler_ends_its_session_only() {
        let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = sink.local_addr().unwrap();
        // Both sessions may share a media thread: the panic ends only its own.
        let bad = session(Panics, to).await;
        let good = session(Talks, to).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bad = tokio::time::timeout(Duration::from_secs(2), bad.stop())
            .await
            .expect("the handle of a crashed session still answers");
        assert_eq!(bad.packets_sent, 0);
        let good = good.stop().await;
        assert!(good.packets_sent >= 10, "{good:?}");
    }

    #[tokio::test]
    async fn port_pairs_come_back_when_calls_end_and_busy_ones_are_skipped() {
        // Four pairs; many more calls than that, one after the other. Before the fix
        // the allocator kept every pair it ever handed out and ran dry after four.
        let ports = Arc::new(std::sync::Mutex::new(
            crate::rtp::PortAllocator::new(47100..=47107).unwrap(),
        ));
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let in_use = || ports.lock().unwrap().in_use();
        for _ in 0..20 {
            let (rtp, rtcp, lease) = bind_pair(ip, &ports).await.unwrap();
            let (a, b) = (rtp.local_addr().unwrap(), rtcp.local_addr().unwrap());
            assert_eq!(a.port() % 2, 0);
            assert_eq!(b.port(), a.port() + 1);
            assert_eq!(lease.pair().rtp, a.port());
            // Held while its sockets are: before, the pair went back at once (0).
            assert_eq!(in_use(), 1);
        }
        assert_eq!(in_use(), 0, "dropped with the sockets");
        // Live calls keep their ports: holding sockets, no pair is handed out twice.
        let mut held = Vec::new();
        while let Ok(pair) = bind_pair(ip, &ports).await {
            held.push(pair);
            assert!(held.len() <= 4, "a bound pair was handed out twice");
        }
        assert_eq!(held.len(), 4);
        assert_eq!(in_use(), 4);
        let mut seen: Vec<u16> = held
            .iter()
            .map(|p| p.0.local_addr().unwrap().port())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4);
        // A session holds its pair until it ends.
        let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (rtp, rtcp, lease) = held.pop().unwrap();
        let cfg = MediaConfig {
            sockets: (rtp, rtcp, lease).into(),
            ssrc: None,
            remote_ssrc: None,
            codec: Codec::PCMU,
            telephone_event: None,
            ptime: 20,
            remote: Some(sink.local_addr().unwrap()),
            direction: Direction::SendRecv,
            rtp_seed: None,
            srtp: None,
            rtcp_mux: false,
        };
        let (events, _) = mpsc::channel(4);
        let session = MediaSession::start(cfg, Talks, events).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(in_use(), 4, "the running session holds its pair");
        let _ = session.stop().await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while in_use() > 3 {
            assert!(Instant::now() < deadline, "released when the session ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The pair is free again: the next bind gets it.
        assert!(bind_pair(ip, &ports).await.is_ok());
    }
}
