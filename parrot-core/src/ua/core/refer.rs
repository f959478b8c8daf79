//! Transfers (RFC 3515 REFER, RFC 4488 Refer-Sub, RFC 3891 Replaces), both
//! sides, for calls we place and calls we answer alike.
//!
//! Sending: [`UaCore::transfer`] sends the REFER and keeps who waits for the
//! outcome; the refer subscription's NOTIFYs are taken here (not passed to
//! handlers) and their `message/sipfrag` status ends the wait when final.
//! With `Refer-Sub: false` granted (RFC 4488 §4), the 2xx to the REFER is
//! the outcome.
//!
//! Receiving: a REFER accepted with 2xx (by the core for a call we placed,
//! by the handler for a call we answer) gets the subscription's first NOTIFY
//! at once ("100 Trying", RFC 3515 §2.4.4), unless the REFER asked for none
//! (`Refer-Sub: false`, which we grant: the 2xx says so); the progress the
//! application reports goes out as NOTIFYs until a final status ends it.
//!
//! Replaces: an INVITE naming one of our dialogs takes its place; the old
//! call is hung up once the new one is answered (RFC 3891 §3).

use super::{CallState, UaCore};
use crate::dialog::DialogId;
use crate::message::{HeaderName, Headers, Method, Request, Response, StatusCode, Uri};
use crate::ua::UaError;
use crate::ua::call_event::CallEvent;
use crate::ua::reply::Reply;
use crate::ua::slab::CallId;
use crate::ua::transfer::{DialogRef, Replaces};
use tokio::sync::oneshot;
use tracing::debug;

/// Who waits for the outcome of a REFER we sent.
pub(super) type TransferWait = oneshot::Sender<Result<StatusCode, UaError>>;

/// The Refer-To URI of a REFER (RFC 3515 §2.1), inside `<…>` or bare.
pub(crate) fn refer_target(request: &Request) -> Option<Uri> {
    let v = request.headers().get(&HeaderName::from("Refer-To"))?;
    let v = std::str::from_utf8(v).ok()?.trim();
    let inner = v
        .strip_prefix('<')
        .and_then(|r| r.split('>').next())
        .unwrap_or(v);
    Uri::parse(inner)
}

/// `Refer-Sub: false` (RFC 4488 §4): no subscription wanted.
fn no_subscription(h: &Headers) -> bool {
    h.get(&HeaderName::from("Refer-Sub"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// The event package of a NOTIFY or SUBSCRIBE (`Event: refer;id=…` → `refer`).
pub(crate) fn event_package(h: &Headers) -> Option<String> {
    let v = std::str::from_utf8(h.get(&HeaderName::Event)?).ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

/// The status line of a `message/sipfrag` body (RFC 3420), as a NOTIFY of
/// the refer package carries it.
fn sipfrag_status(body: &[u8]) -> Option<StatusCode> {
    let line = std::str::from_utf8(body).ok()?.lines().next()?;
    let code: u16 = line
        .strip_prefix("SIP/2.0 ")?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    StatusCode::new(code)
}

impl UaCore {
    /// Sends REFER in call `id` for a transfer to `refer_to` (a header
    /// value, `<uri>`); `reply` gets the outcome.
    pub(super) fn transfer(
        &mut self,
        id: CallId,
        refer_to: String,
        subscribe: bool,
        reply: TransferWait,
    ) {
        let Some(call) = self.calls.get_mut(id) else {
            let _ = reply.send(Err(UaError::CallGone));
            return;
        };
        if call.transferring.is_some() {
            let _ = reply.send(Err(UaError::InvalidState("a transfer is under way")));
            return;
        }
        let mut headers = vec![(HeaderName::from("Refer-To"), refer_to)];
        if !subscribe {
            headers.push((HeaderName::from("Refer-Sub"), "false".to_owned()));
            headers.push((HeaderName::Supported, "norefersub".to_owned()));
        }
        call.transferring = Some(reply);
        if let Err(e) = self.in_dialog(id, Method::Refer, headers, None, None) {
            if let Some(w) = self.calls.get_mut(id).and_then(|c| c.transferring.take()) {
                let _ = w.send(Err(e));
            }
        }
    }

    /// The final response to our REFER in call `id`.
    pub(super) fn on_refer_response(&mut self, id: Option<CallId>, resp: &Response) {
        let Some(call) = id.and_then(|c| self.calls.get_mut(c)) else {
            return;
        };
        if !resp.status().is_success() {
            if let Some(w) = call.transferring.take() {
                let _ = w.send(Err(UaError::Rejected(resp.status())));
            }
        } else if no_subscription(resp.headers()) {
            // RFC 4488 §4: granted; no NOTIFY will tell more.
            if let Some(w) = call.transferring.take() {
                let _ = w.send(Ok(resp.status()));
            }
        }
    }

    /// Our REFER in call `id` got no response (`error`).
    pub(super) fn on_refer_failure(&mut self, id: Option<CallId>, error: UaError) {
        if let Some(w) = id
            .and_then(|c| self.calls.get_mut(c))
            .and_then(|c| c.transferring.take())
        {
            let _ = w.send(Err(error));
        }
    }

    /// A NOTIFY of the refer package while a transfer of ours is under way:
    /// answered 200 here, and a final status (or the subscription's end) is
    /// the outcome. False when it is not one (it goes on as any request).
    pub(super) fn on_refer_notify(
        &mut self,
        key: &crate::transaction::TransactionKey,
        request: &Request,
        id: CallId,
    ) -> bool {
        let ours = request.method() == &Method::Notify
            && event_package(request.headers()).as_deref() == Some("refer")
            && self.calls.get(id).is_some_and(|c| c.transferring.is_some());
        if !ours {
            return false;
        }
        self.reply_now(key, request, Reply::ok());
        let status = sipfrag_status(request.body());
        let terminated = request
            .headers()
            .get(&HeaderName::from("Subscription-State"))
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("terminated"));
        let outcome = match status {
            Some(s) if s.is_final() => Some(Ok(s)),
            _ if terminated => Some(Err(UaError::InvalidState(
                "the refer subscription ended without a final status",
            ))),
            _ => None,
        };
        if let Some(outcome) = outcome {
            if let Some(w) = self.calls.get_mut(id).and_then(|c| c.transferring.take()) {
                let _ = w.send(outcome);
            }
        }
        true
    }

    /// A REFER in call `id` is accepted with `resp` (2xx): `Refer-Sub:
    /// false` granted when asked (RFC 4488 §4), else the subscription
    /// starts. True when the first NOTIFY is to follow the response.
    pub(super) fn refer_accepted(
        &mut self,
        id: CallId,
        request: &Request,
        resp: &mut Response,
    ) -> bool {
        let Some(call) = self.calls.get_mut(id) else {
            return false;
        };
        if no_subscription(request.headers()) {
            let _ = resp
                .headers_mut()
                .set(HeaderName::from("Refer-Sub"), "false");
            call.refer_sub = false;
            return false;
        }
        call.refer_sub = true;
        true
    }

    /// The refer subscription's NOTIFY with `status` (RFC 3515 §2.4.5): a
    /// final one ends it. Nothing to send without a subscription.
    pub(super) fn refer_progress(
        &mut self,
        id: CallId,
        status: StatusCode,
        reply: Option<crate::ua::command::ResponseSender>,
    ) -> bool {
        let Some(call) = self.calls.get_mut(id) else {
            if let Some(r) = reply {
                let _ = r.send(Err(UaError::CallGone));
            }
            return false;
        };
        if !call.refer_sub {
            if let Some(r) = reply {
                let _ = r.send(Err(UaError::InvalidState(
                    "no refer subscription (none accepted, or Refer-Sub: false)",
                )));
            }
            return false;
        }
        if status.is_final() {
            call.refer_sub = false;
        }
        let r = self.in_dialog(
            id,
            Method::Notify,
            super::refer_notify_headers(status.is_final()),
            Some(super::sipfrag(status)),
            reply,
        );
        if let Err(e) = r {
            debug!(error = %e, "refer NOTIFY not sent");
        }
        true
    }

    /// A REFER to a call we placed: accepted by the core (202), the handle
    /// hears [`CallEvent::Transfer`] and dials.
    pub(super) fn on_uac_refer(
        &mut self,
        key: &crate::transaction::TransactionKey,
        request: &Request,
        id: CallId,
    ) {
        let Some(target) = refer_target(request) else {
            return self.reply_now(
                key,
                request,
                Reply::new(StatusCode::BAD_REQUEST).reason("Bad Request (no usable Refer-To)"),
            );
        };
        let mut resp = Reply::new(StatusCode::ACCEPTED).to_response(request);
        let notify = self.refer_accepted(id, request, &mut resp);
        super::precheck::decorate(&self.config, &mut resp, request, None);
        self.respond(key, resp);
        if notify {
            self.refer_progress(id, StatusCode::TRYING, None);
        }
        if let Some(CallState::Uac(u)) = self.calls.get(id).map(|c| &c.state) {
            u.events.emit(CallEvent::Transfer { target });
        }
    }

    /// What identifies call `id`'s dialog for an INVITE with Replaces, and
    /// where its peer is reached.
    pub(super) fn dialog_of(&self, id: CallId) -> Option<DialogRef> {
        let call = self.calls.get(id)?;
        let d = call.dialog.as_ref().filter(|_| !call.ended)?;
        Some(DialogRef {
            call_id: d.id().call_id.to_string(),
            local_tag: d.id().local_tag.to_string(),
            remote_tag: d.id().remote_tag.to_string(),
            remote_target: d.remote_target().clone(),
            remote_uri: d.remote_uri().uri.clone(),
        })
    }

    /// RFC 3891 §3: the call an INVITE's Replaces names, or the reply that
    /// refuses it. `Ok(None)`: no Replaces header.
    pub(super) fn replaced_call(&self, request: &Request) -> Result<Option<CallId>, Reply> {
        let Some(raw) = request.headers().get(&HeaderName::from("Replaces")) else {
            return Ok(None);
        };
        let Some(r) = std::str::from_utf8(raw).ok().and_then(Replaces::parse) else {
            return Err(Reply::new(StatusCode::BAD_REQUEST).reason("Bad Request (Replaces)"));
        };
        // Tags as the dialog has them at our side: to-tag is ours (§3).
        let id = DialogId::new(r.call_id.clone(), r.to_tag.clone(), r.from_tag.clone());
        let not_found = || Reply::new(StatusCode::CALL_DOES_NOT_EXIST);
        let call_id = *self.dialogs.get(&id).ok_or_else(not_found)?;
        let call = self.calls.get(call_id).ok_or_else(not_found)?;
        if call.ended {
            // §3: a dialog already terminated.
            return Err(Reply::new(StatusCode::DECLINE));
        }
        if call.dialog.is_none() {
            // An early dialog. Ours to replace only if we placed the call
            // (the new call would CANCEL it); we do not: 481 as for one
            // we did not initiate (§3).
            return Err(not_found());
        }
        if r.early_only {
            // §3: `early-only` and the dialog is confirmed.
            return Err(Reply::new(StatusCode::BUSY_HERE));
        }
        Ok(Some(call_id))
    }

    /// Call `id` was replaced by another that is now answered: BYE (§3),
    /// and its owner hears it is over.
    pub(super) fn end_replaced(&mut self, id: CallId) {
        self.send_bye(id);
        match self.calls.get(id).map(|c| &c.state) {
            Some(CallState::Uas { task, .. }) => {
                let _ = task.try_send(crate::ua::command::ToCall::Replaced);
            }
            Some(CallState::Uac(u)) => u.events.emit(CallEvent::Replaced),
            None => {}
        }
    }
}
