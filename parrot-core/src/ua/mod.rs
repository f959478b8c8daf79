//! The UA core: an [`Endpoint`] that answers requests with a [`SipHandler`]
//! (one handler value per call) and places calls ([`Endpoint::dial`]), on top
//! of the transaction layer (RFC 3261 §17) and dialogs (§12).
//!
//! ```no_run
//! use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
//!
//! #[derive(Default)]
//! struct PhoneServer;
//!
//! impl SipHandler for PhoneServer {
//!     async fn invite(&mut self, call: &mut Incoming) -> Reply {
//!         match (call.from_user(), call.to_user()) {
//!             (Some("alice"), Some("bob")) => Reply::ok(),
//!             (Some("bob"), Some("alice")) => Reply::busy_here(),
//!             _ => Reply::forbidden(),
//!         }
//!     }
//! }
//!
//! # async fn run() -> Result<(), parrot_core::ua::UaError> {
//! let endpoint = Endpoint::builder()
//!     .udp("127.0.0.1:5060".parse().expect("an address"))
//!     .handler(|| PhoneServer)
//!     .build()
//!     .await?;
//! endpoint.closed().await;
//! # Ok(()) }
//! ```

mod bridge;
mod call_event;
mod call_handle;
mod call_task;
mod command;
mod config;
mod core;
mod counters;
mod driver;
mod endpoint;
mod handler;
mod im;
mod media;
mod pool;
mod register;
mod registrar;
mod reply;
mod route;
mod slab;
mod transfer;
mod uac;

pub use bridge::bridge;
pub use call_event::CallEvent;
pub use call_handle::{CallHandle, CallStatus};
pub use counters::EndpointStats;
pub use endpoint::{Endpoint, EndpointBuilder};
// For `crate::testing`, which runs handlers without an endpoint.
pub use crate::sdp::SrtpMode;
pub(crate) use handler::dispatch;
pub use handler::{DefaultHandler, EndReason, Incoming, SipHandler};
pub use im::MessageRequest;
pub use register::{Register, Registration, RegistrationState};
pub use registrar::{Binding, Flow, Mailbox, Registrar};
pub use reply::Reply;
pub use transfer::DialogRef;
pub use uac::{Dial, OutgoingCall};

/// Errors of the UA core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// Binding or using a transport failed.
    #[error("transport: {0}")]
    Transport(#[from] crate::transport::TransportError),
    /// The endpoint has shut down.
    #[error("the endpoint has shut down")]
    Shutdown,
    /// The call this handle belongs to is over.
    #[error("the call is over")]
    CallGone,
    /// A reply that cannot be sent in this place.
    #[error("invalid reply: {0}")]
    InvalidReply(&'static str),
    /// A URI or address that cannot be dialled.
    #[error("cannot route to {0}")]
    Unroutable(String),
    /// The request timed out (Timer B/F, RFC 3261 §17.1).
    #[error("no response (timeout)")]
    Timeout,
    /// The request could not be sent.
    #[error("transport error while sending")]
    SendFailed,
    /// The operation does not apply in the call's state (e.g. hanging up twice).
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// The call was answered with a final non-2xx status.
    #[error("rejected with {0}")]
    Rejected(crate::message::StatusCode),
    /// Building the request failed (a malformed header value).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A registrar answered a REGISTER with 2xx but granted our binding no time
    /// (its Contact's `expires=0`, or `Expires: 0`): we are not registered.
    #[error("the registrar granted 0 s: not registered")]
    NotRegistered,
}
