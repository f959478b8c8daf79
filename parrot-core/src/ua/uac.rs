//! Placing calls: [`Dial`] builds the INVITE, [`OutgoingCall`] follows it.

use super::UaError;
use super::call_event::{CallEvent, EventSender};
use super::command::{Command, CoreHandle, DialMedia, DialSpec, MediaControl};
use super::slab::CallId;
use crate::message::{HeaderName, Method, Response, Uri};
use crate::transport::TransportKind;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// A call to place ([`Endpoint::dial`](super::Endpoint::dial)): set headers, body, credentials, then [`Dial::send`].
pub struct Dial {
    core: CoreHandle,
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
    /// A dial to `uri`; headers in it (`?Replaces=…`, RFC 3261 §19.1.5)
    /// go into the INVITE, except those the endpoint sets itself.
    pub(crate) fn new(core: CoreHandle, mut uri: Uri) -> Dial {
        let headers = super::transfer::take_uri_headers(&mut uri);
        let mut spec = DialSpec::new(uri);
        spec.headers = headers;
        Dial {
            core,
            spec,
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

    /// Sends the INVITE through an outbound proxy (e.g. `sip:proxy.example.com`,
    /// looked up like any URI): the request goes there with a pre-loaded
    /// `Route: <proxy;lr>` (RFC 3261 §8.1.2). Overrides the endpoint's
    /// [`outbound_proxy`](super::EndpointBuilder::outbound_proxy).
    pub fn outbound_proxy(mut self, uri: &str) -> Result<Dial, UaError> {
        let uri = Uri::parse(uri).ok_or_else(|| UaError::Unroutable(uri.to_owned()))?;
        self.spec.outbound_proxy = Some(Box::new(uri));
        Ok(self)
    }

    /// Sends the INVITE on `flow` (a [`Binding`](super::Binding)'s, from the
    /// endpoint's [`Registrar`](super::Registrar)) rather than where the URI
    /// points: a phone behind a NAT is reached back through the mapping its
    /// REGISTER opened, on the same connection for TCP/TLS/WS (RFC 5626 §5.3).
    /// The Request-URI stays the dialed one (the binding's Contact). Any
    /// outbound proxy is bypassed.
    pub fn flow(mut self, flow: &super::Flow) -> Dial {
        self.spec.flow = Some(Box::new(flow.clone()));
        self
    }

    /// Sends the INVITE.
    pub async fn send(self) -> Result<OutgoingCall, UaError> {
        let (events_tx, events) = mpsc::channel(32);
        let events_tx = EventSender(events_tx);
        let (reply, wait) = oneshot::channel();
        let (media, control) = match self.media {
            Some(handler) => {
                let (tx, rx) = mpsc::channel(16);
                (
                    Some(DialMedia {
                        handler,
                        control: rx,
                    }),
                    Some(tx),
                )
            }
            None => (None, None),
        };
        self.core
            .command(Command::Dial {
                spec: self.spec,
                media,
                events: events_tx,
                reply,
            })
            .await?;
        let id = wait.await.map_err(|_| UaError::Shutdown)??;
        Ok(OutgoingCall {
            core: self.core,
            id,
            events,
            answered: None,
            over: false,
            media: None,
            control,
        })
    }
}

/// A call we placed. Events arrive in order; the call ends with
/// [`CallEvent::Rejected`], [`CallEvent::Failed`] or [`CallEvent::Ended`].
#[derive(Debug)]
pub struct OutgoingCall {
    core: CoreHandle,
    id: CallId,
    events: mpsc::Receiver<Box<CallEvent>>,
    answered: Option<Response>,
    over: bool,
    media: Option<(
        String,
        tokio::sync::watch::Receiver<crate::media::MediaStats>,
    )>,
    /// To the call's media task: actions queue here until audio flows.
    control: Option<mpsc::Sender<MediaControl>>,
}

impl OutgoingCall {
    pub(crate) fn core_handle(&self) -> CoreHandle {
        CoreHandle(self.core.0.clone())
    }

    pub(crate) fn id(&self) -> CallId {
        self.id
    }

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
                | CallEvent::Transfer { .. }
                | CallEvent::Held
                | CallEvent::Resumed
                | CallEvent::Replaced
                | CallEvent::MediaStarted { .. } => {}
            }
        }
        Err(UaError::CallGone)
    }

    /// The media counts (packets, loss, jitter, seconds heard), once audio flows.
    pub fn media_stats(&self) -> Option<crate::media::MediaStats> {
        self.media.as_ref().map(|(_, s)| s.borrow().clone())
    }

    /// Applies a media action (play, record, send DTMF, …): at once while
    /// audio flows, else as soon as it does. Waits only if sixteen actions are
    /// already queued; a call without audio ignores it.
    pub async fn media_action(&self, action: crate::media::Action) -> Result<(), UaError> {
        if let Some(control) = &self.control {
            // A closed channel means the call's audio is over: nothing to apply.
            let _ = control.send(MediaControl::Action(Box::new(action))).await;
        }
        Ok(())
    }

    /// Puts the call on hold: a re-INVITE offering `a=sendonly` (RFC 3264
    /// §8.4); we keep sending and the peer stops. Returns once the peer has
    /// answered; a 491 (both sides re-INVITing at once, RFC 3261 §14.1) is an
    /// error to retry after a moment.
    pub async fn hold(&self) -> Result<(), UaError> {
        self.direction(crate::sdp::Direction::SendOnly).await
    }

    /// Takes the call off hold: a re-INVITE offering `a=sendrecv`.
    pub async fn resume(&self) -> Result<(), UaError> {
        self.direction(crate::sdp::Direction::SendRecv).await
    }

    /// A re-INVITE offering `direction` for the audio (`Inactive`: both
    /// sides silent); the local media session follows the answer. Only for
    /// a call placed with [`Dial::media`] once its audio flows.
    pub async fn direction(&self, direction: crate::sdp::Direction) -> Result<(), UaError> {
        let control = self
            .control
            .as_ref()
            .ok_or(UaError::InvalidState("the call has no audio"))?;
        let (reply, wait) = oneshot::channel();
        control
            .send(MediaControl::Direction(direction, reply))
            .await
            .map_err(|_| UaError::CallGone)?;
        // Unanswered until the audio flows (the media task reads it then).
        wait.await.map_err(|_| UaError::CallGone)?
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
        self.core.command(Command::Cancel { call: self.id }).await
    }

    /// Tells the peer that asked for a transfer ([`CallEvent::Transfer`]) how
    /// our call to the target goes: a NOTIFY with `status` (RFC 3515
    /// §2.4.5); a final status (≥ 200) ends the refer subscription. An
    /// error when there is none (the REFER said `Refer-Sub: false`).
    pub async fn transfer_progress(
        &self,
        status: crate::message::StatusCode,
    ) -> Result<Response, UaError> {
        super::transfer::progress(&self.core, self.id, status).await
    }

    /// Follows a transfer the peer asked for ([`CallEvent::Transfer`]):
    /// places `dial` (to its target; a `Replaces` in the target is sent
    /// along), tells the peer how it goes (180 when it rings, then the
    /// final status), and once it is answered hangs this call up and
    /// returns the new one.
    pub async fn follow_transfer(&mut self, dial: Dial) -> Result<OutgoingCall, UaError> {
        let (core, id) = (self.core_handle(), self.id);
        let report = |status| {
            let core = core.clone();
            async move {
                // Nothing to tell without a refer subscription.
                let _ = super::transfer::progress(&core, id, status).await;
            }
        };
        let new = super::transfer::follow(dial, report).await?;
        let _ = self.hangup().await;
        Ok(new)
    }

    /// Transfers the peer to `target` (a blind transfer, RFC 3515): the
    /// final status of its call there (200: connected; hang this call up),
    /// or the REFER's refusal, or `Timeout` after 64 s without an outcome.
    pub async fn transfer(&self, target: &str) -> Result<crate::message::StatusCode, UaError> {
        let uri = Uri::parse(target).ok_or_else(|| UaError::Unroutable(target.to_owned()))?;
        super::transfer::refer(&self.core, self.id, format!("<{uri}>"), true).await
    }

    /// An attended transfer (RFC 3891 §6.1): the peer calls `other`'s peer
    /// with Replaces, taking `other`'s place; the outcome as for
    /// [`OutgoingCall::transfer`].
    pub async fn transfer_attended(
        &self,
        other: &super::DialogRef,
    ) -> Result<crate::message::StatusCode, UaError> {
        super::transfer::refer(&self.core, self.id, other.refer_to(), true).await
    }

    /// A REFER with this Refer-To value (`<uri>`); without `subscribe`,
    /// `Refer-Sub: false` (RFC 4488) asks for no progress: the 2xx is then
    /// the outcome.
    pub async fn refer(
        &self,
        refer_to: &str,
        subscribe: bool,
    ) -> Result<crate::message::StatusCode, UaError> {
        super::transfer::refer(&self.core, self.id, refer_to.to_owned(), subscribe).await
    }

    /// Which dialog this call is (for [`transfer_attended`](Self::transfer_attended)
    /// on another call), once answered.
    pub async fn dialog(&self) -> Result<super::DialogRef, UaError> {
        super::transfer::dialog(&self.core, self.id).await
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
        self.core
            .command(Command::InDialog {
                call: self.id,
                method,
                headers: Vec::new(),
                body,
                reply: Some(reply),
            })
            .await?;
        wait.await.map_err(|_| UaError::CallGone)?
    }
}
