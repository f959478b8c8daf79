//! The messages into the UA core: from the endpoint's handles, from the call
//! tasks, and from the driver (lookups done, sends failed); and the messages
//! from the core to a server-side call's task.

use super::UaError;
use super::call_event::EventSender;
use super::media::Offered;
use super::reply::Reply;
use super::route::Peer;
use super::slab::CallId;
use crate::media::{Action, MediaHandler};
use crate::message::{HeaderName, Method, Request, Response, Uri};
use crate::transaction::TransactionKey;
use crate::transport::TransportKind;
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The way into the UA core for handles: a clone per handle, no endpoint needed.
#[derive(Clone, Debug)]
pub(crate) struct CoreHandle(pub(crate) mpsc::Sender<Command>);

impl CoreHandle {
    /// Sends a command; fails once the endpoint has stopped.
    pub(crate) async fn command(&self, cmd: Command) -> Result<(), UaError> {
        self.0.send(cmd).await.map_err(|_| UaError::Shutdown)
    }
}

/// Where the answer to a request sent for a handle goes.
pub(crate) type ResponseSender = oneshot::Sender<Result<Response, UaError>>;

/// Inputs of the UA core other than received messages and timeouts.
pub(crate) enum Command {
    /// A handler's reply for a server transaction.
    Reply {
        call: Option<CallId>,
        key: TransactionKey,
        reply: Reply,
    },
    /// A call task ended normally.
    CallDone { call: CallId },
    /// A handler task panicked.
    Crashed {
        call: Option<CallId>,
        key: Option<TransactionKey>,
    },
    /// Place a call.
    Dial {
        spec: DialSpec,
        media: Option<DialMedia>,
        events: EventSender,
        reply: oneshot::Sender<Result<CallId, UaError>>,
    },
    /// Cancel an outgoing call that has no final response yet.
    Cancel { call: CallId },
    /// Send a request in a call's dialog (BYE, INFO, MESSAGE, re-INVITE, …).
    InDialog {
        call: CallId,
        method: Method,
        headers: Vec<(HeaderName, String)>,
        body: Option<(String, Bytes)>,
        reply: Option<ResponseSender>,
    },
    /// Send a request outside any dialog (the core adds the Via) and pass on its final response.
    Send {
        request: Request,
        reply: ResponseSender,
    },
    /// Shut down.
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
    /// The driver looked up what [`Output::Resolve`](super::core::Output::Resolve) asked for.
    Resolved {
        query: QueryId,
        /// Boxed: the channel's slots are as large as its largest command.
        result: Box<Result<Resolved, UaError>>,
    },
    /// The driver could not send a transaction's message (RFC 3261 §17.1.4, §17.2.4).
    TransportError { key: TransactionKey },
    /// Transfer the peer of `call` (REFER with `refer_to`, RFC 3515); with
    /// `subscribe` false, `Refer-Sub: false` (RFC 4488).
    Transfer {
        call: CallId,
        refer_to: String,
        subscribe: bool,
        reply: oneshot::Sender<Result<crate::message::StatusCode, UaError>>,
    },
    /// Tell the transferor of `call` how our call to its target goes (a
    /// NOTIFY of the refer subscription).
    TransferProgress {
        call: CallId,
        status: crate::message::StatusCode,
        reply: ResponseSender,
    },
    /// Which dialog `call` is (for an attended transfer).
    DialogOf {
        call: CallId,
        reply: oneshot::Sender<Option<super::transfer::DialogRef>>,
    },
    /// The registrar's mailbox of `user` changed: NOTIFY its subscribers.
    MailboxChanged { user: String },
    /// Send a keep-alive (RFC 5626 §4.4.1: a CRLF pair) on the flow our last
    /// REGISTER to `registrar` used, so a NAT keeps its binding open.
    KeepAlive { registrar: Uri },
}

/// A lookup the core asked the driver for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct QueryId(pub(crate) u64);

/// What the driver found: where to send, best first (RFC 3263 §4: the next
/// ones are for failing over), and, for a dial with audio, the sockets bound
/// and the offer made for the first destination.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// In the order to try them (RFC 3263 §4.3), each with our address towards
    /// it: the bound one, or for a wildcard-bound transport the one the kernel
    /// routes to it from.
    pub(crate) targets: Vec<Peer>,
    pub(crate) offer: Option<Offered>,
}

/// A dial's audio: the handler, and the channel its handle's media actions
/// come on (read by the call's media task once audio flows).
pub(crate) struct DialMedia {
    pub(crate) handler: Box<dyn MediaHandler>,
    pub(crate) control: mpsc::Receiver<MediaControl>,
}

/// What a placed call's handle asks of its media task.
#[derive(Debug)]
pub(crate) enum MediaControl {
    /// A media action (play, record, DTMF…); boxed, so a message is 16
    /// bytes: the channel's first block (32 slots) is kept by every call
    /// placed with audio, for the few actions a call sends.
    Action(Box<Action>),
    /// A re-INVITE with our offer in this direction (hold, resume); the
    /// answer says how it went.
    Direction(crate::sdp::Direction, oneshot::Sender<Result<(), UaError>>),
}

impl std::fmt::Debug for DialMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialMedia").finish_non_exhaustive()
    }
}

/// The parts of a dial the core needs.
#[derive(Debug, Clone)]
pub(crate) struct DialSpec {
    pub(crate) uri: Uri,
    pub(crate) from_user: Option<String>,
    pub(crate) headers: Vec<(HeaderName, String)>,
    pub(crate) body: Option<(String, Bytes)>,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) follow_redirects: bool,
    pub(crate) transport: Option<TransportKind>,
    /// Where the INVITE goes first, with a pre-loaded Route (RFC 3261 §8.1.2).
    /// Boxed: commands are as large as their largest variant.
    pub(crate) outbound_proxy: Option<Box<Uri>>,
    /// Sent on this flow (a registered phone's), whatever the URI says.
    pub(crate) flow: Option<Box<super::registrar::Flow>>,
}

impl DialSpec {
    /// A dial to `uri` with nothing else set.
    pub(crate) fn new(uri: Uri) -> DialSpec {
        DialSpec {
            uri,
            from_user: None,
            headers: Vec::new(),
            body: None,
            credentials: None,
            follow_redirects: false,
            transport: None,
            outbound_proxy: None,
            flow: None,
        }
    }
}

/// What the core passes to the media task of a call we placed.
#[derive(Debug)]
pub(crate) enum ToMedia {
    /// A request in the dialog to answer (on its transaction): a re-INVITE,
    /// an INFO.
    Request(TransactionKey, Box<Request>),
    /// The ACK of a re-INVITE whose 2xx carried our offer.
    Ack(Box<Request>),
}

/// A request passed on to a call task, with where it came from.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) request: Request,
    pub(crate) source: SocketAddr,
    pub(crate) kind: TransportKind,
}

/// Messages from the core to a UAS call task. Requests are boxed: the
/// channel's slots are allocated 32 at a time whatever its capacity, and the
/// message is as large as its largest variant.
#[derive(Debug)]
pub(crate) enum ToCall {
    /// An in-dialog request (its transaction key, to reply on).
    Request(Box<(TransactionKey, Delivered)>),
    /// The ACK for our 2xx.
    Ack(Box<Delivered>),
    /// CANCEL arrived (the core already answered 200 and 487).
    Cancelled,
    /// Our 2xx was never acknowledged; the core sent BYE.
    AckTimeout,
    /// A BYE we sent was answered (or timed out): the call is over.
    HungUp,
    /// The endpoint is shutting down.
    Shutdown,
    /// No session refresh came in time (RFC 4028 §10); the core sent BYE.
    Expired,
    /// The INVITE's server transaction failed; the core sent BYE if the call
    /// was answered.
    Failed,
    /// Another call replaced this one (RFC 3891); the core sent BYE.
    Replaced,
}
