//! TLS handshakes: the client side, and the server side over an accepted TCP connection.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Shared, Target, TransportError};

/// The TLS server name for `target`: its `server_name`, else its IP address.
fn server_name(target: &Target) -> Result<ServerName<'static>, TransportError> {
    match &target.server_name {
        Some(name) => ServerName::try_from(name.clone())
            .map_err(|_| TransportError::InvalidServerName(name.clone())),
        None => Ok(ServerName::IpAddress(target.addr.ip().into())),
    }
}

/// Runs the client handshake over `io`.
pub(crate) async fn connect<IO>(
    shared: &Shared,
    io: IO,
    target: &Target,
) -> Result<TlsStream<IO>, TransportError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let config = shared
        .config
        .tls_client
        .clone()
        .ok_or(TransportError::NoTlsClientConfig)?;
    let name = server_name(target)?;
    TlsConnector::from(Arc::clone(&config))
        .connect(name, io)
        .await
        .map_err(|source| TransportError::Tls {
            addr: target.addr,
            source,
        })
}

/// Runs the server handshake over an accepted connection from `remote` (TLS and WSS listeners).
pub(crate) async fn accept<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    remote: std::net::SocketAddr,
) -> Result<tokio_rustls::server::TlsStream<IO>, TransportError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    acceptor
        .accept(io)
        .await
        .map_err(|source| TransportError::Tls {
            addr: remote,
            source,
        })
}
