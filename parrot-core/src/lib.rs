//! Parrot core: a SIP/RTP stack.
//!
//! Layers (see `ARCHITECTURE.md`), bottom up:
//! - sans-IO: [`message`] (SIP parse/serialize, RFC 3261 §7, §20, §25), [`transaction`] (§17),
//!   [`dialog`] (§12), [`auth`] (digest), [`entropy`] (tags, branches, Call-IDs, SSRCs), [`sdp`] (RFC 4566/3264), [`rtp`] (RFC 3550, RFC 4733
//!   DTMF), [`codec`] (G.711), [`media`] (sources, recorder, resampler, the media handler engine);
//! - runtime (feature `runtime`, default): `transport` (UDP, TCP, TLS, WebSocket), `ua` (the
//!   endpoint, `SipHandler`, calls), media sessions;
//! - testing (feature `runtime`): `testing`, an in-memory harness that runs a
//!   `SipHandler` on built requests and drives a `MediaHandler` frame by frame;
//! - devices (feature `device`): `device` (cpal microphone and speaker).
#![warn(missing_docs)]

pub mod auth;
pub mod codec;
#[cfg(feature = "device")]
pub mod device;
pub mod dialog;
pub mod entropy;
pub mod media;
pub mod message;
pub mod rtp;
pub mod sdp;
mod shard_map;
#[cfg(feature = "runtime")]
pub mod testing;
pub mod transaction;
#[cfg(feature = "runtime")]
pub mod transport;
#[cfg(feature = "runtime")]
pub mod ua;

pub use message::ParseError;
