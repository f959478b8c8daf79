//! What happens to a call we placed, as its handle hears it.

use super::UaError;
use crate::message::{Request, Response};
use tokio::sync::mpsc;

/// What happens to a call placed with [`Endpoint::dial`](super::Endpoint::dial).
// Every variant but `Ended` carries a message; boxing them would cost an
// allocation per event for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum CallEvent {
    /// A provisional response (180 Ringing, 183 Session Progress with early media, …).
    Provisional(Response),
    /// The 2xx: the call is up (the ACK has been sent).
    Answered(Response),
    /// A final non-2xx response (after any authentication retry or redirect).
    Rejected(Response),
    /// No response, or the request could not be sent.
    Failed(UaError),
    /// A request from the peer inside the call (it has been answered 200).
    Request(Request),
    /// Audio flows: the codec, and the session's counts as they change.
    MediaStarted {
        /// The negotiated codec (`PCMU/8000`, …).
        codec: String,
        /// The counts, updated every second and at the end.
        stats: tokio::sync::watch::Receiver<crate::media::MediaStats>,
    },
    /// The peer asks us to call `target` instead (a REFER, RFC 3515): the
    /// endpoint has accepted it (202) and told the peer "100 Trying". Dial
    /// the target, report how it goes with
    /// [`OutgoingCall::transfer_progress`](super::OutgoingCall::transfer_progress),
    /// and hang this call up once connected (or let the peer do it).
    Transfer {
        /// The Refer-To URI.
        target: crate::message::Uri,
    },
    /// The peer put the call on hold: its re-INVITE (or UPDATE) asked us
    /// not to send (`a=sendonly`/`a=inactive`, RFC 3264 §8.4). The media
    /// session has stopped sending.
    Held,
    /// The peer took the call off hold: we send again.
    Resumed,
    /// An attended transfer's new call (its INVITE named this dialog in
    /// Replaces, RFC 3891) was answered: this call is hung up (BYE sent),
    /// [`CallEvent::Ended`] follows.
    Replaced,
    /// The call is over: the peer hung up, or the endpoint shut down.
    Ended,
}

/// Where the core sends a placed call's events. They travel boxed: a tokio
/// channel allocates its slots 32 at a time, and unboxed events (a `Request`
/// is 384 bytes) would make every call hold room for 32 of them, for the
/// handful it gets.
#[derive(Debug, Clone)]
pub(crate) struct EventSender(pub(crate) mpsc::Sender<Box<CallEvent>>);

impl EventSender {
    /// Queues an event without waiting; dropped if the call's owner is not
    /// listening (gone, or 32 events behind).
    pub(crate) fn emit(&self, event: CallEvent) {
        let _ = self.0.try_send(Box::new(event));
    }
}
