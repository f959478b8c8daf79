//! The SIP side of the transport layer: parse what arrives, stamp requests with
//! where they came from, and answer what cannot be parsed.

use super::{Inbound, Target, TransportKind, Transports};
use crate::message::{Message, bad_request_for};
use std::net::SocketAddr;

use super::ConnectionId;

/// A parsed message and where it came from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Received {
    /// The message; a request's top Via is already stamped with `received`/`rport`.
    pub message: Message,
    /// The peer's address.
    pub source: SocketAddr,
    /// Our address it arrived on.
    pub local: SocketAddr,
    /// The transport.
    pub kind: TransportKind,
    /// The connection, for stream transports.
    pub conn: Option<ConnectionId>,
}

impl Received {
    /// Where a response to this message goes: back on the same connection
    /// (RFC 3261 §18.2.2), or to the source address and port of a datagram
    /// (which is what `rport` asks for, RFC 3581 §4).
    pub fn reply_target(&self) -> Target {
        let mut t = Target::new(self.kind, self.source);
        if let Some(c) = self.conn {
            t = t.with_conn(c);
        }
        t
    }
}

impl Transports {
    /// Receives the next SIP message that parses.
    ///
    /// Requests get their top Via stamped (RFC 3261 §18.2.1, RFC 3581). A
    /// malformed request is answered with `400 Bad Request` naming the problem
    /// when it carries enough to be answered, and dropped otherwise; a malformed
    /// response is dropped (§18.1.2). Returns `None` after shutdown.
    pub async fn recv_message(&self) -> Option<Received> {
        loop {
            let incoming = self.recv().await?;
            if let Some(r) = self.accept(incoming).await {
                return Some(r);
            }
        }
    }

    async fn accept(&self, incoming: Inbound) -> Option<Received> {
        match Message::parse(incoming.data.clone()) {
            Ok(mut message) => {
                if let Message::Request(req) = &mut message {
                    if let Err(e) = req.headers_mut().stamp_via(incoming.source) {
                        tracing::debug!(source = %incoming.source, error = %e, "cannot stamp Via");
                    }
                }
                Some(Received {
                    message,
                    source: incoming.source,
                    local: incoming.local,
                    kind: incoming.kind,
                    conn: incoming.conn,
                })
            }
            Err(err) => {
                tracing::debug!(source = %incoming.source, kind = %incoming.kind, error = %err, "malformed message");
                if let Some(resp) = bad_request_for(&incoming.data, &err) {
                    if let Err(e) = self.send(&Target::reply_to(&incoming), resp).await {
                        tracing::debug!(source = %incoming.source, error = %e, "could not send 400");
                    }
                }
                None
            }
        }
    }
}
