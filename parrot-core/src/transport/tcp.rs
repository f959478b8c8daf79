//! TCP listeners (also carrying TLS, WS and WSS) and outgoing stream connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{
    NoSlot, Shared, Slot, Target, TransportError, TransportKind, out_of_fds, stream, tls,
    wait_shutdown, ws,
};

/// Connections waiting to be accepted, per listener (Linux caps it at
/// `net.core.somaxconn`, 4,096 by default).
const LISTEN_BACKLOG: u32 = 4096;

/// What runs on top of an accepted TCP connection.
#[derive(Clone)]
pub(crate) enum Mode {
    Tcp,
    Tls(TlsAcceptor),
    Ws,
    Wss(TlsAcceptor),
}

impl Mode {
    fn kind(&self) -> TransportKind {
        match self {
            Mode::Tcp => TransportKind::Tcp,
            Mode::Tls(_) => TransportKind::Tls,
            Mode::Ws => TransportKind::Ws,
            Mode::Wss(_) => TransportKind::Wss,
        }
    }
}

/// Listens on `addr` and starts the accept task.
pub(crate) async fn bind(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    mode: Mode,
) -> io::Result<SocketAddr> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does, but with a longer queue of connections
    // waiting to be accepted: when it is full the kernel drops their SYNs
    // and the clients retry only after a second (then two, four ...).
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let local = listener.local_addr()?;
    tracing::info!(%local, kind = %mode.kind(), "listening");
    tokio::spawn(accept_loop(Arc::clone(shared), listener, local, mode));
    Ok(local)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, local: SocketAddr, mode: Mode) {
    let kind = mode.kind();
    let mut shutdown = shared.shutdown_signal();
    // Out of file descriptors since the last accept that worked: said once.
    let mut starved = false;
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => {
                    if starved {
                        starved = false;
                        tracing::info!(%local, %kind, "accepting connections again");
                    }
                    x
                }
                Err(e) => {
                    if out_of_fds(&e) {
                        if !starved {
                            starved = true;
                            tracing::warn!(%local, %kind, error = %e,
                                "out of file descriptors: new connections are closed until some are free");
                        }
                        if shared.shed_with_spare(&listener) {
                            shared.count_rejected();
                        }
                    } else {
                        tracing::warn!(%local, %kind, error = %e, "accept failed");
                    }
                    // Back off a little instead of spinning on the same error.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                        () = wait_shutdown(&mut shutdown) => break,
                    }
                }
            },
            () = wait_shutdown(&mut shutdown) => break,
        };
        let slot = match shared.try_accept_slot(remote.ip()) {
            Ok(slot) => slot,
            Err(NoSlot::Total) => {
                shared.count_rejected();
                tracing::warn!(%local, %remote, %kind, cap = shared.stats_cap(),
                    "connection cap reached and no connection idle to close: connection closed");
                drop(tcp);
                continue;
            }
            Err(NoSlot::Source) => {
                shared.count_rejected();
                tracing::debug!(%local, %remote, %kind, max = shared.config.max_connections_per_source,
                    "max_connections_per_source reached, connection closed");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(local);
        tokio::spawn(serve(
            Arc::clone(&shared),
            tcp,
            remote,
            local,
            mode.clone(),
            slot,
        ));
    }
    tracing::debug!(%local, %kind, "listener stopped");
}

/// Handshakes an accepted connection, then runs it.
async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    mode: Mode,
    slot: Slot,
) {
    let kind = mode.kind();
    let timeout = shared.config.connect_timeout;
    let mut shutdown = shared.shutdown_signal();
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, accept_handshake(&shared, tcp, remote, local, mode, slot)) => r,
        () = wait_shutdown(&mut shutdown) => return,
    };
    match result {
        Ok(Ok(run)) => run.await,
        Ok(Err(e)) => tracing::debug!(%remote, %kind, error = %e, "handshake failed"),
        Err(_) => tracing::debug!(%remote, %kind, "handshake timed out"),
    }
}

type Runner = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

async fn accept_handshake(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    mode: Mode,
    slot: Slot,
) -> Result<Runner, TransportError> {
    let kind = mode.kind();
    Ok(match mode {
        Mode::Tcp => {
            let (reg, _tx, rx) = shared.register(slot, kind, remote, local);
            Box::pin(stream::run(Arc::clone(shared), tcp, reg, rx))
        }
        Mode::Tls(acceptor) => {
            let tls = tls::accept(&acceptor, tcp, remote).await?;
            let (reg, _tx, rx) = shared.register(slot, kind, remote, local);
            Box::pin(stream::run(Arc::clone(shared), tls, reg, rx))
        }
        Mode::Ws => {
            let ws = ws::accept(shared, tcp, remote).await?;
            let (reg, _tx, rx) = shared.register(slot, kind, remote, local);
            Box::pin(ws::run(Arc::clone(shared), ws, reg, rx))
        }
        Mode::Wss(acceptor) => {
            let tls = tls::accept(&acceptor, tcp, remote).await?;
            let ws = ws::accept(shared, tls, remote).await?;
            let (reg, _tx, rx) = shared.register(slot, kind, remote, local);
            Box::pin(ws::run(Arc::clone(shared), ws, reg, rx))
        }
    })
}

/// Opens a new client connection for `target` (any stream kind) and starts its task.
/// Returns the connection's queue of messages to write.
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    target: &Target,
) -> Result<mpsc::Sender<Bytes>, TransportError> {
    let slot = shared
        .try_slot()
        .ok_or(TransportError::TooManyConnections)?;
    let addr = target.addr;
    let timeout = shared.config.connect_timeout;
    let (runner, tx) = tokio::time::timeout(timeout, connect_inner(shared, target, slot))
        .await
        .map_err(|_| TransportError::ConnectTimeout(addr))??;
    tokio::spawn(runner);
    Ok(tx)
}

async fn connect_inner(
    shared: &Arc<Shared>,
    target: &Target,
    slot: Slot,
) -> Result<(Runner, mpsc::Sender<Bytes>), TransportError> {
    let addr = target.addr;
    let kind = target.kind;
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr()?;
    Ok(match kind {
        TransportKind::Tcp | TransportKind::Udp => {
            let (reg, tx, rx) = shared.register(slot, TransportKind::Tcp, addr, local);
            (
                Box::pin(stream::run(Arc::clone(shared), tcp, reg, rx)) as Runner,
                tx,
            )
        }
        TransportKind::Tls => {
            let tls = tls::connect(shared, tcp, target).await?;
            let (reg, tx, rx) = shared.register(slot, kind, addr, local);
            (
                Box::pin(stream::run(Arc::clone(shared), tls, reg, rx)) as Runner,
                tx,
            )
        }
        TransportKind::Ws => {
            let ws = ws::connect(shared, tcp, target).await?;
            let (reg, tx, rx) = shared.register(slot, kind, addr, local);
            (
                Box::pin(ws::run(Arc::clone(shared), ws, reg, rx)) as Runner,
                tx,
            )
        }
        TransportKind::Wss => {
            let tls = tls::connect(shared, tcp, target).await?;
            let ws = ws::connect(shared, tls, target).await?;
            let (reg, tx, rx) = shared.register(slot, kind, addr, local);
            (
                Box::pin(ws::run(Arc::clone(shared), ws, reg, rx)) as Runner,
                tx,
            )
        }
    })
}
