//! UDP: one message per datagram (RFC 3261 §18.1).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::{Inbound, Shared, TransportKind, wait_shutdown};

/// Largest UDP payload there can be.
const MAX_DATAGRAM: usize = 65_535;

/// Binds a socket and starts its receive task.
pub(crate) async fn bind(shared: &Arc<Shared>, addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = Arc::new(bind_socket(addr, shared.config.udp_recv_buffer)?);
    let local = socket.local_addr()?;
    shared.add_udp(local, Arc::clone(&socket));
    tracing::info!(%local, "UDP bound");
    tokio::spawn(recv_loop(Arc::clone(shared), socket, local));
    Ok(local)
}

/// A non-blocking UDP socket bound to `addr`, with its receive buffer set
/// first (a failure to enlarge it is logged, not fatal).
fn bind_socket(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
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

async fn recv_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>, local: SocketAddr) {
    let max = shared.config.max_message_size;
    // One byte more than allowed, so that an oversize datagram is seen as such.
    let mut buf = vec![0u8; max.saturating_add(1).min(MAX_DATAGRAM + 1)];
    let mut shutdown = shared.shutdown_signal();
    loop {
        let (n, source) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // E.g. ICMP errors reported on some systems: not fatal for the socket.
                    tracing::debug!(%local, error = %e, "UDP receive error");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(10)) => continue,
                        () = wait_shutdown(&mut shutdown) => break,
                    }
                }
            },
            () = wait_shutdown(&mut shutdown) => break,
        };
        if n > max {
            shared.count_oversize_datagram();
            tracing::warn!(%local, %source, max, "UDP datagram larger than max_message_size dropped");
            continue;
        }
        let data = &buf[..n];
        if data.iter().all(|&b| b == b'\r' || b == b'\n') {
            // Empty datagram or CRLF keep-alive: nothing to deliver.
            continue;
        }
        let incoming = Inbound {
            data: Bytes::copy_from_slice(data),
            source,
            local,
            kind: TransportKind::Udp,
            conn: None,
        };
        if !shared.deliver(incoming, &mut shutdown).await {
            break;
        }
    }
    tracing::debug!(%local, "UDP receiver stopped");
}
