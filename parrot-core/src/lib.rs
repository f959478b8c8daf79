//! Parrot core: a SIP/RTP stack.
//!
//! Layers (see `ARCHITECTURE.md`):
//! - [`message`]: SIP messages, zero-copy parse and serialize (RFC 3261 §7, §20, §25);
//! - [`transport`]: UDP, TCP, TLS and WebSocket transports on tokio (feature `runtime`).
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "device")]
pub mod device;
pub mod dialog;
pub mod media;
pub mod message;
pub mod transaction;
#[cfg(feature = "runtime")]
pub mod transport;
#[cfg(feature = "runtime")]
pub mod ua;

pub use message::ParseError;
