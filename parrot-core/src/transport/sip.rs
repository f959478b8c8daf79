//! The SIP side of the transport layer: parse what arrives, stamp requests with
//! where they came from, and answer what cannot be parsed.

use super::{Inbound, Target, TransportKind, Transports};
use crate::message::{ErrorKind, HeaderName, Message, ParseError, bad_request_for};
use bytes::Bytes;
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
    /// response is dropped (§18.1.2). Never answered, only dropped (logged at
    /// debug): a malformed ACK (an ACK gets no response, §17.1.1.1), and a
    /// request whose Via is missing or malformed, well-formed otherwise or not,
    /// since a response is routed by its Via (§18.2.2). Returns `None` after
    /// shutdown.
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
                    if req.headers().top_via().is_none() {
                        tracing::debug!(source = %incoming.source, kind = %incoming.kind,
                            method = %req.method(), "request without Via dropped");
                        return None;
                    }
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
                if is_ack(&incoming.data) {
                    tracing::debug!(source = %incoming.source, "malformed ACK dropped: an ACK gets no response");
                    return None;
                }
                if !has_usable_via(&incoming.data, &err) {
                    tracing::debug!(source = %incoming.source, "missing or malformed Via: no response can be routed, dropped");
                    return None;
                }
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

/// False when a request that failed to parse with `err` has no top Via that
/// parses, so that a response could not be routed (RFC 3261 §18.2.2). When not
/// even the header lines can be read, [`bad_request_for`] decides alone.
///
/// A Via whose parameters are broken but whose sent-protocol and sent-by read
/// (`SIP/2.0/UDP 192.0.2.15;;,;,,`, RFC 4475 `badinv01`) is usable: the 400 goes
/// back to the source, as RFC 4475 asks for that message.
fn has_usable_via(data: &Bytes, err: &ParseError) -> bool {
    if err.kind == ErrorKind::BadHeader(HeaderName::Via) {
        return raw_top_via_sent_by(data);
    }
    match Message::parse_lazy(data.clone()) {
        Ok(m) => m.headers().top_via().is_some(),
        Err(_) => true,
    }
}

/// True when the first Via header line of `data` starts with a readable
/// `SIP/2.0/TRANSPORT sent-by`, whatever follows it.
fn raw_top_via_sent_by(data: &[u8]) -> bool {
    let head = data.split(|&b| b == b'\n').skip(1);
    for line in head {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v")) {
            continue;
        }
        let value = &line[colon + 1..];
        let mut words = value
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let protocol_ok = words
            .next()
            .is_some_and(|p| p.len() > 8 && p[..8].eq_ignore_ascii_case(b"SIP/2.0/"));
        let sent_by_ok = words.next().is_some_and(|w| {
            let host = w.split(|&b| b == b';' || b == b',').next().unwrap_or(&[]);
            !host.is_empty()
                && host
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(b))
        });
        return protocol_ok && sent_by_ok;
    }
    false
}

/// True when the request line of `data` names the method ACK (leading CRLFs
/// skipped, as a parser does, RFC 3261 §7.5). Methods are case-sensitive (§7.1).
fn is_ack(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    let line = &data[start..];
    line.strip_prefix(b"ACK")
        .is_some_and(|rest| matches!(rest.first(), Some(b' ' | b'\t')))
}

#[cfg(test)]
mod tests {
    use super::is_ack;

    #[test]
    fn a_via_with_broken_parameters_still_names_its_sender() {
        use super::raw_top_via_sent_by;
        let with = |via: &str| format!("OPTIONS sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n{via}\r\n\r\n");
        assert!(raw_top_via_sent_by(
            with("Via: SIP/2.0/UDP 192.0.2.15;;,;,,").as_bytes()
        ));
        assert!(raw_top_via_sent_by(
            with("v: SIP/2.0/TCP host.example:5060;branch").as_bytes()
        ));
        assert!(!raw_top_via_sent_by(with("Via: garbage").as_bytes()));
        assert!(!raw_top_via_sent_by(with("Via: SIP/2.0/UDP").as_bytes()));
        assert!(!raw_top_via_sent_by(
            with("Via: SIP/2.0/UDP <>;x").as_bytes()
        ));
        assert!(!raw_top_via_sent_by(with("Max-Forwards: 70").as_bytes()));
    }

    #[test]
    fn ack_detected_from_the_request_line() {
        assert!(is_ack(b"ACK sip:a@b SIP/2.0\r\n"));
        assert!(is_ack(b"\r\nACK sip:a@b SIP/2.0\r\n"));
        assert!(is_ack(b"ACK\tsip:a@b"));
        assert!(!is_ack(b"ACKS sip:a@b SIP/2.0\r\n"));
        assert!(!is_ack(b"ack sip:a@b SIP/2.0\r\n"));
        assert!(!is_ack(b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 ACK\r\n"));
        assert!(!is_ack(b"ACK"));
        assert!(!is_ack(b""));
    }
}
