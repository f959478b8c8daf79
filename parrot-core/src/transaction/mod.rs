//! The transaction layer (RFC 3261 §17, RFC 6026), sans-IO.
//!
//! [`Transactions`] holds every client and server transaction of an endpoint.
//! It reads no clock and owns no socket: each input carries `now`, and the
//! caller pulls what to send ([`Transactions::poll_transmit`]), what happened
//! ([`Transactions::poll_event`]) and when to call
//! [`Transactions::handle_timeout`] next ([`Transactions::poll_timeout`]).
//!
//! The destination type `D` is the caller's (a socket address, a connection
//! id…); the layer only hands it back in [`Transmit`]s.
//!
//! ```
//! use parrot_core::message::Message;
//! use parrot_core::transaction::{Event, TimerConfig, Transactions};
//! use bytes::Bytes;
//! use std::time::{Duration, Instant};
//!
//! let mut layer: Transactions<&'static str> = Transactions::new(TimerConfig::default());
//! let t0 = Instant::now();
//! let invite = Message::parse(Bytes::from_static(b"INVITE sip:bob@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
//!     Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\n\
//!     From: <sip:alice@example.com>;tag=1928301774\r\n\
//!     Call-ID: a84b4c76e66710\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))?;
//! layer.handle_message(t0, invite, "alice", false);
//! let Some(Event::Request { key, .. }) = layer.poll_event() else { panic!() };
//! // The TU is slow: after 200 ms the layer answers 100 Trying itself (§17.2.1).
//! assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_millis(200)));
//! layer.handle_timeout(t0 + Duration::from_millis(200));
//! let trying = layer.poll_transmit().expect("100 Trying");
//! assert!(trying.data.starts_with(b"SIP/2.0 100 Trying"));
//! assert!(key.is_server());
//! # Ok::<(), parrot_core::message::ParseError>(())
//! ```

mod key;
mod layer;
pub(crate) use layer::shrink_if_sparse;
mod timer;

#[cfg(test)]
mod tests;

pub use key::{Side, TransactionKey};
pub use layer::Transactions;
pub use timer::{Timer, TimerConfig};

use crate::message::{Request, Response};
use bytes::Bytes;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<D> {
    /// Where to (as given with the request, or the source of a received request).
    pub dest: D,
    /// The message, in wire format.
    pub data: Bytes,
    /// Whether the transport is reliable (as given by the caller).
    pub reliable: bool,
    /// The transaction that sent it; pass it to
    /// [`Transactions::transport_error`] if sending fails. `None` for
    /// stateless sends.
    pub key: Option<TransactionKey>,
}

/// What the layer reports to the transaction user (TU).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<D> {
    /// A new request (not ACK, not CANCEL); answer with [`Transactions::respond`].
    Request {
        /// The new server transaction.
        key: TransactionKey,
        /// The request.
        request: Request,
        /// Where it came from; responses go back there.
        source: D,
    },
    /// A response for a client transaction (retransmissions of a final
    /// response are absorbed, except 2xx to INVITE, which the TU ACKs).
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// A CANCEL (RFC 3261 §9.2). It has its own server transaction, `cancel`,
    /// that the TU answers (200, or 481 without INVITE); the TU answers the
    /// INVITE with 487 if it still can.
    Cancel {
        /// The CANCEL's own server transaction.
        cancel: TransactionKey,
        /// The INVITE server transaction it cancels, if one matches.
        invite: Option<TransactionKey>,
        /// The CANCEL request.
        request: Request,
        /// Where it came from.
        source: D,
    },
    /// An ACK that no transaction absorbed: the ACK for a 2xx (§13.3.1.4),
    /// which belongs to the dialog.
    Ack {
        /// The INVITE server transaction whose 2xx it acknowledges, if the
        /// layer matched it (the 2xx is no longer retransmitted).
        invite: Option<TransactionKey>,
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: D,
    },
    /// A response that matches no client transaction, e.g. a 2xx
    /// retransmission after the INVITE transaction ended (§13.2.2.4).
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        source: D,
    },
    /// Timer B, F or H fired: no (final) response or no ACK came in time.
    Timeout {
        /// The transaction, now terminated.
        key: TransactionKey,
    },
    /// A 2xx to INVITE was retransmitted for 64*T1 without an ACK
    /// (§13.3.1.4): the UAS should end the session with BYE.
    AckTimeout {
        /// The INVITE server transaction, now terminated.
        key: TransactionKey,
    },
    /// The transport reported a failure (§17.1.4, §17.2.4).
    TransportError {
        /// The transaction, now terminated.
        key: TransactionKey,
    },
    /// The transaction is gone; its key will not be reported again.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Transaction states (RFC 3261 §17 figures 5–8; RFC 6026 Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// INVITE client: request sent, nothing heard.
    Calling,
    /// Non-INVITE client or server: request sent or received, no response yet.
    Trying,
    /// A provisional response was received or sent (INVITE server: request received).
    Proceeding,
    /// A final (non-2xx for INVITE) response was received or sent.
    Completed,
    /// INVITE server: the ACK for a non-2xx final response arrived.
    Confirmed,
    /// INVITE: a 2xx was received or sent (RFC 6026).
    Accepted,
}

/// Errors of the transaction API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The request has no top Via with an RFC 3261 branch (§8.1.1.7).
    #[error("request has no top Via with a z9hG4bK branch")]
    MissingBranch,
    /// The message has no (valid) CSeq, or its method is not the request's.
    #[error("missing or mismatched CSeq")]
    BadCSeq,
    /// ACK is not sent in a client transaction: use `send_stateless`.
    #[error("ACK is sent without a client transaction")]
    AckNotAllowed,
    /// A transaction with this key exists already (a reused branch).
    #[error("a transaction with this key exists already")]
    Duplicate,
    /// No such transaction (it may have terminated).
    #[error("no such transaction")]
    UnknownTransaction,
    /// The operation does not fit the transaction's kind or state (e.g. a
    /// second final response, or a response on a client transaction).
    #[error("not allowed in this transaction state")]
    InvalidState,
}
