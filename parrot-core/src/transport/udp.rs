//! UDP: one message per datagram (RFC 3261 §18.1).
//!
//! Sockets go through `quinn-udp`, which asks the kernel for each datagram's
//! destination address (IP_PKTINFO / IPV6_RECVPKTINFO) and sends with a
//! chosen source address. On a socket bound to the wildcard that is what
//! keeps 0.0.0.0 off the wire: a request is known to have arrived on
//! 192.0.2.1, and its responses leave from 192.0.2.1.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
#[cfg(not(unix))]
use tokio::net::UdpSocket;

use super::{Inbound, Shared, TransportKind, lock};

/// Largest UDP payload there can be.
const MAX_DATAGRAM: usize = 65_535;

/// A bound UDP socket with its `quinn-udp` state.
#[derive(Debug)]
pub(crate) struct UdpEndpoint {
    socket: Registered,
    state: UdpSocketState,
    /// The address it is bound to (maybe a wildcard).
    pub(crate) local: SocketAddr,
}

/// The socket as the reactor knows it. On Unix it is registered for reading
/// only: tokio's `UdpSocket` also asks for writability, and with that the
/// kernel wakes a thread parked in `epoll_wait` each time a sent datagram's
/// buffer is freed (`sock_wfree`), a context switch per datagram sent for
/// nothing (a UDP socket is writable but for brief moments of a full send
/// buffer). Writability is waited for only then ([`UdpEndpoint::send`]).
#[cfg(unix)]
type Registered = tokio::io::unix::AsyncFd<std::net::UdpSocket>;
#[cfg(not(unix))]
type Registered = tokio::net::UdpSocket;

impl UdpEndpoint {
    /// Sends one datagram to `to`, from `source` when given (the address a
    /// request arrived on, or the one the kernel routes to `to` from).
    pub(crate) async fn send(
        &self,
        data: &[u8],
        to: SocketAddr,
        source: Option<IpAddr>,
    ) -> io::Result<()> {
        // A source of the other family, or a specific one on a socket bound
        // to another specific address, cannot be used: let the kernel choose.
        let source = source.filter(|s| {
            s.is_ipv4() == to.is_ipv4()
                && !s.is_unspecified()
                && (self.local.ip().is_unspecified() || self.local.ip() == *s)
        });
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents: data,
            segment_size: None,
            src_ip: source,
        };
        self.send_transmit(&transmit).await
    }

    #[cfg(unix)]
    async fn send_transmit(&self, transmit: &quinn_udp::Transmit<'_>) -> io::Result<()> {
        loop {
            match self
                .state
                .try_send(UdpSockRef::from(self.socket.get_ref()), transmit)
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                done => return done,
            }
        }
    }

    /// Waits until the send buffer has room: on a duplicate of the socket
    /// registered for writability, for this moment only (the socket itself
    /// stays registered for reading). Registering reports the present state,
    /// so room made in between is not missed.
    #[cfg(unix)]
    async fn writable(&self) -> io::Result<()> {
        let dup = self.socket.get_ref().try_clone()?;
        let writable = register(dup, Interest::WRITABLE)?;
        drop(writable.writable().await?);
        Ok(())
    }

    #[cfg(not(unix))]
    async fn send_transmit(&self, transmit: &quinn_udp::Transmit<'_>) -> io::Result<()> {
        self.socket
            .async_io(Interest::WRITABLE, || {
                self.state
                    .try_send(UdpSockRef::from(&self.socket), transmit)
            })
            .await
    }

    /// Reads one datagram into `buf` if one is there, else registers `cx`
    /// for the socket's readiness.
    #[cfg(unix)]
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<RecvMeta>> {
        loop {
            let mut ready = ready!(self.socket.poll_read_ready(cx))?;
            let mut meta = [RecvMeta::default()];
            let read = ready.try_io(|socket| {
                let mut bufs = [IoSliceMut::new(buf)];
                self.state
                    .recv(UdpSockRef::from(socket.get_ref()), &mut bufs, &mut meta)
            });
            match read {
                Ok(Ok(_)) => return Poll::Ready(Ok(meta[0])),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Readiness was stale (now cleared): poll again, which
                // registers the waker.
                Err(_would_block) => {}
            }
        }
    }

    #[cfg(not(unix))]
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<RecvMeta>> {
        loop {
            if let Err(e) = ready!(self.socket.poll_recv_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            let mut meta = [RecvMeta::default()];
            let read = self.socket.try_io(Interest::READABLE, || {
                let mut bufs = [IoSliceMut::new(buf)];
                self.state
                    .recv(UdpSockRef::from(&self.socket), &mut bufs, &mut meta)
            });
            match read {
                Ok(_) => return Poll::Ready(Ok(meta[0])),
                // Readiness was stale: poll again, which registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Binds a socket; its datagrams are read by [`UdpReader`].
pub(crate) async fn bind(shared: &Arc<Shared>, addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = bind_socket(addr, shared.config.udp_recv_buffer)?;
    let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
    allow_fragmentation(&socket, addr.is_ipv6());
    let local = socket.local_addr()?;
    #[cfg(unix)]
    let socket = register(socket, Interest::READABLE)?;
    #[cfg(not(unix))]
    let socket = UdpSocket::from_std(socket)?;
    let endpoint = Arc::new(UdpEndpoint {
        socket,
        state,
        local,
    });
    shared.add_udp(local, endpoint);
    tracing::info!(%local, "UDP bound");
    Ok(local)
}

/// `socket` in the reactor, for `interest` only.
///
/// tokio 1.54 deprecated its safe `AsyncFd` constructors (tokio#8587): for a
/// `T` whose `as_raw_fd` could change or whose descriptor could be closed
/// behind the reactor's back they are unsound, and their replacement is an
/// `unsafe fn` this crate (`forbid(unsafe_code)`) cannot call. A
/// `std::net::UdpSocket` owns its descriptor, returns the same one for its
/// whole life and closes it only when dropped, after the `AsyncFd` has
/// deregistered it: the condition the replacement states holds.
#[cfg(unix)]
fn register<T: std::os::fd::AsRawFd>(
    socket: T,
    interest: Interest,
) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    #[allow(deprecated)]
    tokio::io::unix::AsyncFd::with_interest(socket, interest)
}

/// A non-blocking UDP socket bound to `addr`, with its receive buffer set
/// first (a failure to enlarge it is logged, not fatal). An IPv6 socket is
/// IPv6 only: IPv4 has sockets of its own.
fn bind_socket(addr: SocketAddr, recv_buffer: usize) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if recv_buffer > 0 {
        if let Err(e) = socket.set_recv_buffer_size(recv_buffer) {
            tracing::warn!(%addr, error = %e, "UDP receive buffer not enlarged");
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let got = socket.recv_buffer_size().unwrap_or(0);
    tracing::debug!(%addr, asked = recv_buffer, got, "UDP receive buffer");
    Ok(socket.into())
}

/// quinn-udp sets don't-fragment (IP_PMTUDISC_PROBE) for QUIC's path-MTU
/// probing; SIP over UDP sends messages larger than the path MTU and relies on
/// IP fragmentation (RFC 3261 §18.1.1 only advises TCP above MTU - 200 bytes).
/// Back to the kernel's default, which fragments.
#[cfg(target_os = "linux")]
fn allow_fragmentation(socket: &std::net::UdpSocket, ipv6: bool) {
    use rustix::net::sockopt;
    let done = if ipv6 {
        sockopt::set_ipv6_mtu_discover(socket, sockopt::Ipv6PathMtuDiscovery::WANT)
    } else {
        sockopt::set_ip_mtu_discover(socket, sockopt::Ipv4PathMtuDiscovery::WANT)
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "UDP: large messages may not be fragmented");
    }
}

#[cfg(not(target_os = "linux"))]
fn allow_fragmentation(_socket: &std::net::UdpSocket, _ipv6: bool) {}

/// The receiving side of the UDP sockets, polled by whoever calls
/// [`Transports::recv`](super::Transports::recv): datagrams are read in that
/// task, when it asks for one, with no task and no channel in between (a
/// hop through a receive task cost a wake-up, often of another thread, per
/// datagram). The kernel's receive buffer is the queue: while nobody reads,
/// datagrams wait there, and what does not fit is dropped by the kernel
/// (`RcvbufErrors`; [`TransportConfig::udp_recv_buffer`](super::TransportConfig::udp_recv_buffer)).
#[derive(Default)]
pub(crate) struct UdpReader {
    /// Room for one read; grown to what the sockets' GRO may coalesce.
    buf: Vec<u8>,
    /// Datagrams of a GRO read not handed out yet.
    pending: VecDeque<Inbound>,
    /// The socket to try first next time, so that a busy one does not starve the others.
    next: usize,
}

/// Consecutive receive errors taken from one socket in one poll before the
/// reader yields (and asks to be polled again).
const MAX_ERRORS_PER_POLL: usize = 64;

impl UdpReader {
    /// The next datagram from any UDP socket, or `Pending` (with `cx`
    /// registered for readiness on every socket).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>, shared: &Shared) -> Poll<Inbound> {
        if let Some(m) = self.pending.pop_front() {
            return Poll::Ready(m);
        }
        let sockets = lock(&shared.udp);
        let n = sockets.len();
        // With GRO the kernel may hand over several datagrams of one size in
        // one buffer, `stride` bytes apart: room for as many as it may coalesce.
        let need = sockets
            .iter()
            .map(|(_, e)| (MAX_DATAGRAM + 1) * e.state.gro_segments().max(1))
            .max()
            .unwrap_or(0);
        if self.buf.len() < need {
            // Zeroed by the allocator, not written: 4 MiB with 64 GRO
            // segments, of which a SIP datagram touches a page or two, and
            // pages never written are not resident (`resize` wrote all of them:
            // 4 MiB of RSS per endpoint).
            self.buf = vec![0; need];
        }
        for i in 0..n {
            let idx = (self.next + i) % n;
            let endpoint = &sockets[idx].1;
            let mut errors = 0;
            loop {
                match endpoint.poll_recv(cx, &mut self.buf) {
                    Poll::Ready(Ok(meta)) => {
                        self.split(&meta, endpoint.local, shared);
                        if let Some(m) = self.pending.pop_front() {
                            self.next = idx + 1;
                            return Poll::Ready(m);
                        }
                        // A keep-alive or an oversized datagram: read on.
                    }
                    Poll::Ready(Err(e)) => {
                        // E.g. ICMP errors reported on some systems: not fatal for the socket.
                        tracing::debug!(local = %endpoint.local, error = %e, "UDP receive error");
                        errors += 1;
                        if errors >= MAX_ERRORS_PER_POLL {
                            cx.waker().wake_by_ref();
                            break;
                        }
                    }
                    Poll::Pending => break,
                }
            }
        }
        Poll::Pending
    }

    /// The datagrams of one read, as messages to deliver.
    fn split(&mut self, m: &RecvMeta, local: SocketAddr, shared: &Shared) {
        let max = shared.config.max_message_size;
        let source = normalize(m.addr);
        // The address it came to: ours, even on a wildcard socket.
        let to = SocketAddr::new(m.dst_ip.map_or(local.ip(), canonical), local.port());
        let stride = if m.stride == 0 { m.len } else { m.stride };
        let len = m.len.min(self.buf.len());
        let mut start = 0;
        while start < len {
            let end = (start + stride).min(len);
            let data = &self.buf[start..end];
            start = end;
            if data.len() > max {
                shared.count_oversize_datagram();
                tracing::warn!(%local, %source, max, "UDP datagram larger than max_message_size dropped");
                continue;
            }
            if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                // Empty datagram or CRLF keep-alive: nothing to deliver.
                continue;
            }
            self.pending.push_back(Inbound {
                data: Bytes::copy_from_slice(data),
                source,
                local: to,
                kind: TransportKind::Udp,
                conn: None,
            });
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn normalize(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(addr.ip()), addr.port())
}

#[cfg(test)]
mod tests {
    use super::canonical;
    use std::net::IpAddr;

    /// A datagram larger than the path MTU is fragmented, not refused: the
    /// socket keeps the kernel's default after quinn-udp set it up.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn large_datagrams_may_be_fragmented() {
        use rustix::net::sockopt;
        let socket =
            super::bind_socket(([127, 0, 0, 1], 0).into(), 0).unwrap_or_else(|e| panic!("{e}"));
        let _state = quinn_udp::UdpSocketState::new(quinn_udp::UdpSockRef::from(&socket))
            .unwrap_or_else(|e| panic!("{e}"));
        super::allow_fragmentation(&socket, false);
        let mode = sockopt::ip_mtu_discover(&socket).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode, sockopt::Ipv4PathMtuDiscovery::WANT);
    }

    /// The wait for room in the send buffer ends on a socket that has room,
    /// and the socket still reads afterwards: the duplicate's registration
    /// came and went beside the socket's own.
    #[cfg(unix)]
    #[tokio::test]
    async fn waiting_for_room_leaves_reading_alone() {
        use std::time::Duration;
        let transports = crate::transport::Transports::new(Default::default());
        let shared = &transports.inner.shared;
        let local = super::bind(shared, ([127, 0, 0, 1], 0).into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let endpoint = super::lock(&shared.udp)[0].1.clone();
        tokio::time::timeout(Duration::from_secs(5), endpoint.writable())
            .await
            .unwrap_or_else(|_| panic!("an idle socket is writable"))
            .unwrap_or_else(|e| panic!("{e}"));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        peer.send_to(b"OPTIONS", local)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0; 2048];
        let meta = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| endpoint.poll_recv(cx, &mut buf)),
        )
        .await
        .unwrap_or_else(|_| panic!("the datagram was not read"))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&buf[..meta.len], b"OPTIONS");
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(canonical(mapped), IpAddr::from([192, 0, 2, 1]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(canonical(v6), v6);
    }
}
