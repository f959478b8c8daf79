//! Placing calls: [`Dial`] builds the INVITE, [`OutgoingCall`] follows it.

use super::UaError;
use super::core::Command;
use super::endpoint::Endpoint;
use crate::message::{HeaderName, Method, Request, Response, StatusCode, Uri};
use crate::transaction::TransactionKey;
use crate::transport::TransportKind;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// What happens to a call placed with [`Endpoint::dial`].
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
    /// The call is over: the peer hung up, or the endpoint shut down.
    Ended,
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
}

/// A call to place: set headers, body, credentials, then [`Dial::send`].
pub struct Dial {
    endpoint: Endpoint,
    spec: DialSpec,
    media: Option<Box<dyn crate::media::MediaHandler>>,
}

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dial")
            .field("spec", &self.spec)
            .field("media", &self.media.is_some())
            .finish()
    }
}

impl Dial {
    pub(crate) fn new(endpoint: Endpoint, uri: Uri) -> Dial {
        Dial {
            endpoint,
            spec: DialSpec {
                uri,
                from_user: None,
                headers: Vec::new(),
                body: None,
                credentials: None,
                follow_redirects: false,
                transport: None,
            },
            media: None,
        }
    }

    /// Calls with audio: an SDP offer (PCMU, PCMA, telephone-event) goes in the
    /// INVITE, and once answered `media` drives the call's audio (play a file,
    /// record, DTMF). Replaces any body set with [`Dial::body`].
    pub fn media(mut self, media: impl crate::media::MediaHandler) -> Dial {
        self.media = Some(Box::new(media));
        self
    }

    /// The user part of our From URI (default: the endpoint's user).
    pub fn from_user(mut self, user: &str) -> Dial {
        self.spec.from_user = Some(user.to_owned());
        self
    }

    /// Adds a header to the INVITE.
    pub fn header(mut self, name: impl Into<HeaderName>, value: impl Into<String>) -> Dial {
        self.spec.headers.push((name.into(), value.into()));
        self
    }

    /// The INVITE's body (an SDP offer, typically) and its Content-Type.
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Dial {
        self.spec.body = Some((content_type.into(), body.into()));
        self
    }

    /// Answers a 401/407 challenge with digest credentials (RFC 3261 §22.2).
    pub fn credentials(mut self, user: &str, password: &str) -> Dial {
        self.spec.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Follows 3xx redirects to the first Contact (up to five hops).
    pub fn follow_redirects(mut self, follow: bool) -> Dial {
        self.spec.follow_redirects = follow;
        self
    }

    /// The transport (default: the URI's `transport` parameter, else UDP; TLS for `sips:`).
    pub fn transport(mut self, kind: TransportKind) -> Dial {
        self.spec.transport = Some(kind);
        self
    }

    /// Sends the INVITE.
    pub async fn send(self) -> Result<OutgoingCall, UaError> {
        let (events_tx, events) = mpsc::channel(32);
        let events_tx = EventSender(events_tx);
        let (reply, wait) = oneshot::channel();
        self.endpoint
            .command(Command::Dial {
                spec: self.spec,
                media: self.media,
                events: events_tx,
                reply,
            })
            .await?;
        let id = wait.await.map_err(|_| UaError::Shutdown)??;
        Ok(OutgoingCall {
            endpoint: self.endpoint,
            id,
            events,
            answered: None,
            over: false,
            media: None,
        })
    }
}

/// A call we placed. Events arrive in order; the call ends with
/// [`CallEvent::Rejected`], [`CallEvent::Failed`] or [`CallEvent::Ended`].
#[derive(Debug)]
pub struct OutgoingCall {
    endpoint: Endpoint,
    id: u64,
    events: mpsc::Receiver<Box<CallEvent>>,
    answered: Option<Response>,
    over: bool,
    media: Option<(
        String,
        tokio::sync::watch::Receiver<crate::media::MediaStats>,
    )>,
}

impl OutgoingCall {
    /// The next event, or `None` once the call is over.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        if self.over {
            return None;
        }
        let ev = self.events.recv().await.map(|e| *e);
        match &ev {
            Some(CallEvent::MediaStarted { codec, stats }) => {
                self.media = Some((codec.clone(), stats.clone()));
            }
            Some(CallEvent::Answered(r)) => self.answered = Some(r.clone()),
            Some(CallEvent::Rejected(_) | CallEvent::Failed(_) | CallEvent::Ended) | None => {
                self.over = true
            }
            _ => {}
        }
        ev
    }

    /// Waits for the final response: the 2xx, or an error saying why not.
    pub async fn answered(&mut self) -> Result<Response, UaError> {
        if let Some(r) = &self.answered {
            return Ok(r.clone());
        }
        while let Some(ev) = self.next_event().await {
            match ev {
                CallEvent::Answered(r) => return Ok(r),
                CallEvent::Rejected(r) => return Err(UaError::Rejected(r.status())),
                CallEvent::Failed(e) => return Err(e),
                CallEvent::Ended => return Err(UaError::CallGone),
                CallEvent::Provisional(_)
                | CallEvent::Request(_)
                | CallEvent::MediaStarted { .. } => {}
            }
        }
        Err(UaError::CallGone)
    }

    /// The media counts (packets, loss, jitter, seconds heard), once audio flows.
    pub fn media_stats(&self) -> Option<crate::media::MediaStats> {
        self.media.as_ref().map(|(_, s)| s.borrow().clone())
    }

    /// Applies a media action now (play, record, send DTMF, …).
    pub async fn media_action(&self, action: crate::media::Action) -> Result<(), UaError> {
        self.endpoint
            .command(Command::Media {
                call: self.id,
                action,
            })
            .await
    }

    /// Sends DTMF digits in the audio (RFC 4733).
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), UaError> {
        self.media_action(crate::media::Action::SendDtmf(digits.to_owned()))
            .await
    }

    /// The 2xx, once answered.
    pub fn answer(&self) -> Option<&Response> {
        self.answered.as_ref()
    }

    /// Cancels the call before it is answered (RFC 3261 §9.1). The INVITE then
    /// ends with 487, seen as [`CallEvent::Rejected`].
    pub async fn cancel(&self) -> Result<(), UaError> {
        self.endpoint
            .command(Command::Cancel { call: self.id })
            .await
    }

    /// Hangs up an answered call with BYE and waits for its response.
    pub async fn hangup(&mut self) -> Result<Response, UaError> {
        let r = self.request(Method::Bye, None).await;
        self.over = true;
        r
    }

    /// Sends a request inside the call (INFO, MESSAGE, UPDATE, a re-INVITE, …)
    /// and waits for its final response.
    pub async fn request(
        &self,
        method: Method,
        body: Option<(&str, Bytes)>,
    ) -> Result<Response, UaError> {
        let (reply, wait) = oneshot::channel();
        let body = body.map(|(ct, b)| (ct.to_owned(), b));
        self.endpoint
            .command(Command::InDialog {
                call: self.id,
                method,
                headers: Vec::new(),
                body,
                reply,
            })
            .await?;
        wait.await.map_err(|_| UaError::CallGone)?
    }
}

/// Where the core sends a placed call's events. They travel boxed: a tokio
/// channel allocates its slots 32 at a time, and 32 unboxed events (a
/// `Request` is 384 bytes) were 12 KiB per call, for a handful of events.
#[derive(Debug, Clone)]
pub(crate) struct EventSender(mpsc::Sender<Box<CallEvent>>);

impl EventSender {
    /// Queues an event; dropped if the call's owner is not listening (gone,
    /// or 32 events behind).
    pub(crate) fn emit(&self, event: CallEvent) {
        let _ = self.0.try_send(Box::new(event));
    }
}

/// The core's state for a call we placed.
#[derive(Debug)]
pub(crate) struct UacCall {
    pub(crate) events: EventSender,
    pub(crate) spec: DialSpec,
    /// The INVITE last sent (after authentication or redirection, the new one).
    pub(crate) invite: Request,
    pub(crate) invite_key: Option<TransactionKey>,
    pub(crate) auth_attempts: u8,
    pub(crate) redirects: u8,
    pub(crate) provisional_seen: bool,
    pub(crate) final_received: bool,
    pub(crate) cancel_requested: bool,
    /// The ACK for the 2xx, re-sent for each retransmitted 2xx (§13.2.2.4).
    pub(crate) ack: Option<Request>,
    /// Digest state (nonce counts) once challenged.
    pub(crate) digest: Option<crate::auth::DigestClient>,
    /// Our SDP offer and its sockets, until the answer comes.
    pub(crate) offer: Option<super::media::Offered>,
    /// The running media session.
    pub(crate) session: Option<crate::media::MediaSession>,
}

impl UacCall {
    pub(crate) fn status_is_auth(s: StatusCode) -> bool {
        matches!(s.as_u16(), 401 | 407)
    }
}
