//! A handle on a call we answer, for code outside the handler's methods: a
//! task that hangs up after a while, plays a prompt when a lookup returns,
//! sends INFO or MESSAGE in the dialog.

use super::UaError;
use super::call_event::{CallEvent, EventSender};
use super::command::{Command, CoreHandle};
use super::slab::CallId;
use crate::media::Action;
use crate::message::{HeaderName, Method, Response};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

/// Where a call we answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallStatus {
    /// The INVITE has no final answer yet.
    Ringing,
    /// Answered (2xx sent); audio flows once the ACK arrives.
    Answered,
    /// Over (either side hung up, cancelled, rejected, failed).
    Ended,
}

/// What a handle asks of its call's task.
#[derive(Debug)]
pub(crate) enum HandleCommand {
    /// A media action, applied once audio flows (queued until then). Boxed,
    /// so a message is 16 bytes: the channel's first block (32 slots) is
    /// kept by every call answered, for the few commands a handle sends.
    Media(Box<Action>),
    /// Hang up with BYE; the answer says when it is done.
    Hangup(oneshot::Sender<Result<(), UaError>>),
    /// Re-INVITE with our offer in this direction (hold, resume).
    Direction(crate::sdp::Direction, oneshot::Sender<Result<(), UaError>>),
}

/// A handle on a call we answer ([`Incoming::handle`](super::Incoming::handle)):
/// cheap to clone, usable from any task, for as long as the call lasts
/// (afterwards every method fails with [`UaError::CallGone`]).
#[derive(Debug, Clone)]
pub struct CallHandle {
    core: CoreHandle,
    call: CallId,
    control: mpsc::Sender<HandleCommand>,
    status: watch::Receiver<CallStatus>,
    /// Shared by the clones: each event goes to one of them.
    events: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Box<CallEvent>>>>,
}

/// The call task's ends of a [`CallHandle`].
pub(crate) struct HandleEnds {
    pub(crate) control: mpsc::Receiver<HandleCommand>,
    pub(crate) status: watch::Sender<CallStatus>,
    pub(crate) events: EventSender,
}

impl CallHandle {
    /// A handle for `call`, and the ends its task keeps.
    pub(crate) fn new(core: mpsc::Sender<Command>, call: CallId) -> (CallHandle, HandleEnds) {
        let (control_tx, control) = mpsc::channel(16);
        let (status_tx, status) = watch::channel(CallStatus::Ringing);
        let (events_tx, events) = mpsc::channel(16);
        (
            CallHandle {
                core: CoreHandle(core),
                call,
                control: control_tx,
                status,
                events: std::sync::Arc::new(tokio::sync::Mutex::new(events)),
            },
            HandleEnds {
                control,
                status: status_tx,
                events: EventSender(events_tx),
            },
        )
    }

    /// The next thing the peer did to the call: [`CallEvent::Held`],
    /// [`CallEvent::Resumed`], [`CallEvent::MediaStarted`], and
    /// [`CallEvent::Ended`] last (then `None`). Requests (INFO, MESSAGE,
    /// REFER…) go to the [`SipHandler`](super::SipHandler)'s methods instead.
    /// With several clones of the handle, each event reaches the one that
    /// asks first; 16 events not taken are kept, later ones dropped.
    pub async fn next_event(&self) -> Option<CallEvent> {
        self.events.lock().await.recv().await.map(|e| *e)
    }

    /// Where the call is now.
    pub fn status(&self) -> CallStatus {
        *self.status.borrow()
    }

    /// Waits until the call is over.
    pub async fn ended(&self) {
        let mut rx = self.status.clone();
        // A closed channel: the call's task is gone, so is the call.
        let _ = rx.wait_for(|s| *s == CallStatus::Ended).await;
    }

    /// Hangs up an answered call with BYE and waits until it is done (the
    /// handler's `ended` then hears [`EndReason::LocalHangup`](super::EndReason)).
    /// Before the answer there is nothing to hang up: the INVITE's reply is
    /// the handler's to give (`InvalidState`).
    pub async fn hangup(&self) -> Result<(), UaError> {
        match self.status() {
            CallStatus::Ringing => {
                return Err(UaError::InvalidState(
                    "not answered: reply to the INVITE instead",
                ));
            }
            CallStatus::Ended => return Err(UaError::CallGone),
            CallStatus::Answered => {}
        }
        let (reply, wait) = oneshot::channel();
        self.control
            .send(HandleCommand::Hangup(reply))
            .await
            .map_err(|_| UaError::CallGone)?;
        wait.await.map_err(|_| UaError::CallGone)?
    }

    /// Transfers the peer to `target` (a blind transfer, RFC 3515): a REFER
    /// asks the peer to call `target`; its NOTIFYs tell how that call goes.
    /// Returns the final status of the peer's call to the target (200: it is
    /// connected there, and this call can be hung up), or an error: the
    /// REFER refused (`Rejected(405)`, …), or no outcome within 64 s.
    pub async fn transfer(&self, target: &str) -> Result<crate::message::StatusCode, UaError> {
        let uri = crate::message::Uri::parse(target)
            .ok_or_else(|| UaError::Unroutable(target.to_owned()))?;
        self.refer(&format!("<{uri}>"), true).await
    }

    /// An attended transfer (RFC 3891 §6.1): the peer calls `other`'s peer
    /// with Replaces, taking `other`'s place (that call is then hung up by
    /// its peer); the outcome as for [`CallHandle::transfer`].
    pub async fn transfer_attended(
        &self,
        other: &super::DialogRef,
    ) -> Result<crate::message::StatusCode, UaError> {
        self.refer(&other.refer_to(), true).await
    }

    /// A REFER with this Refer-To value (`<uri>`); without `subscribe`,
    /// `Refer-Sub: false` (RFC 4488) asks for no progress: the 2xx is then
    /// the outcome.
    pub async fn refer(
        &self,
        refer_to: &str,
        subscribe: bool,
    ) -> Result<crate::message::StatusCode, UaError> {
        if self.status() != CallStatus::Answered {
            return Err(UaError::InvalidState("the call is not answered, or over"));
        }
        super::transfer::refer(&self.core, self.call, refer_to.to_owned(), subscribe).await
    }

    /// Which dialog this call is (for [`transfer_attended`](Self::transfer_attended)
    /// on another call), once answered.
    pub async fn dialog(&self) -> Result<super::DialogRef, UaError> {
        super::transfer::dialog(&self.core, self.call).await
    }

    /// Tells the peer whose REFER the handler accepted (202 from
    /// [`SipHandler::refer`](super::SipHandler::refer)) how the call to its
    /// target goes: a NOTIFY with `status` (RFC 3515 §2.4.5); a final one
    /// ends the refer subscription. An error when there is none.
    pub async fn transfer_progress(
        &self,
        status: crate::message::StatusCode,
    ) -> Result<Response, UaError> {
        super::transfer::progress(&self.core, self.call, status).await
    }

    /// Follows a transfer the peer asked for (a REFER the handler accepted;
    /// its target from [`Incoming::refer_to`](super::Incoming::refer_to)):
    /// places `dial`, tells the peer how it goes (180 when it rings, then
    /// the final status), and once it is answered hangs this call up and
    /// returns the new one.
    pub async fn follow_transfer(&self, dial: super::Dial) -> Result<super::OutgoingCall, UaError> {
        let (core, id) = (self.core.clone(), self.call);
        let report = |status| {
            let core = core.clone();
            async move {
                let _ = super::transfer::progress(&core, id, status).await;
            }
        };
        let new = super::transfer::follow(dial, report).await?;
        let _ = self.hangup().await;
        Ok(new)
    }

    /// Puts the call on hold: a re-INVITE offering `a=sendonly` (RFC 3264
    /// §8.4); we keep sending (music on hold, a prompt) and the peer stops.
    /// Returns once the peer has answered; a 491 (both sides re-INVITing at
    /// once, RFC 3261 §14.1) is an error to retry after a moment.
    pub async fn hold(&self) -> Result<(), UaError> {
        self.direction(crate::sdp::Direction::SendOnly).await
    }

    /// Takes the call off hold: a re-INVITE offering `a=sendrecv`.
    pub async fn resume(&self) -> Result<(), UaError> {
        self.direction(crate::sdp::Direction::SendRecv).await
    }

    /// A re-INVITE offering `direction` for the audio (`Inactive`: both
    /// sides silent); the local media session follows the answer.
    pub async fn direction(&self, direction: crate::sdp::Direction) -> Result<(), UaError> {
        if self.status() != CallStatus::Answered {
            return Err(UaError::InvalidState("the call is not answered, or over"));
        }
        let (reply, wait) = oneshot::channel();
        self.control
            .send(HandleCommand::Direction(direction, reply))
            .await
            .map_err(|_| UaError::CallGone)?;
        wait.await.map_err(|_| UaError::CallGone)?
    }

    /// Applies a media action (play, record, stop, send DTMF…): at once while
    /// audio flows, else as soon as it does. A call answered without audio
    /// ignores it.
    pub async fn media_action(&self, action: Action) -> Result<(), UaError> {
        self.control
            .send(HandleCommand::Media(Box::new(action)))
            .await
            .map_err(|_| UaError::CallGone)
    }

    /// Sends DTMF digits in the audio (RFC 4733).
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), UaError> {
        self.media_action(Action::SendDtmf(digits.to_owned())).await
    }

    /// Sends a request in the call's dialog (INFO, MESSAGE, NOTIFY, …) with
    /// extra headers and a body, and waits for its final response. BYE is
    /// [`CallHandle::hangup`]'s; (re-)INVITE, ACK and CANCEL are the
    /// endpoint's.
    pub async fn request(
        &self,
        method: Method,
        headers: Vec<(HeaderName, String)>,
        body: Option<(&str, Bytes)>,
    ) -> Result<Response, UaError> {
        if matches!(
            method,
            Method::Bye | Method::Invite | Method::Ack | Method::Cancel
        ) {
            return Err(UaError::InvalidState(
                "BYE is hangup(); INVITE, ACK and CANCEL are the endpoint's",
            ));
        }
        if self.status() != CallStatus::Answered {
            return Err(UaError::InvalidState("the call is not answered, or over"));
        }
        let (reply, wait) = oneshot::channel();
        self.core
            .command(Command::InDialog {
                call: self.call,
                method,
                headers,
                body: body.map(|(ct, b)| (ct.to_owned(), b)),
                reply: Some(reply),
            })
            .await?;
        wait.await.map_err(|_| UaError::Shutdown)?
    }
}
