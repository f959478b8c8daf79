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
use tokio::net::UdpSocket;

use super::{Inbound, Shared, TransportKind, lock};

/// Largest UDP payload there can be.
const MAX_DATAGRAM: usize = 65_535;

/// A bound UDP socket with its `quinn-udp` state.
#[derive(Debug)]
pub(crate) struct UdpEndpoint {
    socket: UdpSocket,
    state: UdpSocketState,
    /// The address it is bound to (maybe a wildcard).
    pub(crate) local: SocketAddr,
}

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
        self.socket
            .async_io(Interest::WRITABLE, || {
                self.state
                    .try_send(UdpSockRef::from(&self.socket), &transmit)
            })
            .await
    }
}

impl UdpEndpoint {
    /// Reads one datagram into `buf` if one is there, else registers `cx`
    /// for the socket's readiness.
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
    let endpoint = Arc::new(UdpEndpoint {
        socket,
        state,
        local,
    });
    shared.add_udp(local, endpoint);
    tracing::info!(%local, "UDP bound");
    Ok(local)
}

/// A non-blocking UDP socket bound to `addr`, with its receive buffer set
/// first (a failure to enlarge it is logged, not fatal). An IPv6 socket is
/// IPv6 only: IPv4 has sockets of its own.
fn bind_socket(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
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
    UdpSocket::from_std(socket.into())
}

/// quinn-udp sets don't-fragment (IP_PMTUDISC_PROBE) for QUIC's path-MTU
/// probing; SIP over UDP sends messages larger than the path MTU and relies on
/// IP fragmentation (RFC 3261 §18.1.1 only advises TCP above MTU - 200 bytes).
/// Back to the kernel's default, which fragments.
#[cfg(target_os = "linux")]
fn allow_fragmentation(socket: &UdpSocket, ipv6: bool) {
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
fn allow_fragmentation(_socket: &UdpSocket, _ipv6: bool) {}

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
            self.buf.resize(need, 0);
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

    #[test]
    fn mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(canonical(mapped), IpAddr::from([192, 0, 2, 1]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(canonical(v6), v6);
    }
}
