//! The server side of the UA core: requests we receive, calls we answer, and
//! the replies that handler tasks send back.

use super::precheck::{challenge, decorate};
use super::{Call, CallState, Output, Owner, Pending, Spawn, UaCore};
use crate::dialog::{Dialog, DialogId};
use crate::message::{HeaderName, Method, NameAddr, Request, Response, StatusCode};
use crate::transaction::TransactionKey;
use crate::ua::call_event::CallEvent;
use crate::ua::command::{Delivered, ToCall, ToMedia};
use crate::ua::reply::Reply;
use crate::ua::route::{Peer, in_dialog_peer};
use crate::ua::slab::CallId;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

impl UaCore {
    pub(super) fn respond(&mut self, key: &TransactionKey, resp: Response) {
        if resp.status().is_final() {
            self.drop_pending(key);
            self.invite_answered(key);
        }
        if let Err(e) = self.txns.respond(self.now, key, resp) {
            debug!(error = %e, "respond failed");
        }
    }

    /// A final response went to `key`: if it was a call's INVITE, the call
    /// may take the next one (§14.2); a call's early dialog ends with the
    /// initial INVITE (confirmed by a 2xx, or gone with anything else).
    fn invite_answered(&mut self, key: &TransactionKey) {
        let call = match self.owner(key) {
            Some(Owner::UasInvite { call }) => Some(*call),
            _ => None,
        };
        let found = call.or_else(|| self.pending_call.remove(key));
        let Some(id) = found else {
            return;
        };
        // RFC 3262: the final response ends the reliable provisionals. A 2xx
        // held for a PRACK that lost to this one (a CANCEL's 487) never goes:
        // the call the handler answered is over.
        if self.reliable_done(id) {
            if let Some(call) = self.calls.get_mut(id) {
                if let Some(d) = call.dialog.take() {
                    self.dialogs.remove(d.id());
                }
                call.ended = true;
                if let CallState::Uas { task, .. } = &call.state {
                    let _ = task.try_send(ToCall::Failed);
                }
            }
        }
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.invites.theirs.as_ref() == Some(key) {
            call.invites.theirs = None;
        }
        if call.invites.initial.as_ref().is_some_and(|(k, _)| k == key) {
            if let Some((_, early)) = call.invites.initial.take() {
                let confirmed = call.dialog.as_ref().is_some_and(|d| *d.id() == early);
                if !confirmed && self.dialogs.get(&early) == Some(&id) {
                    self.dialogs.remove(&early);
                }
            }
        }
    }

    /// Replies to a server transaction from the core itself (no handler involved).
    pub(super) fn reply_now(&mut self, key: &TransactionKey, request: &Request, reply: Reply) {
        let mut resp = reply.to_response(request);
        if resp.status().as_u16() != 100
            && request.headers().to().is_some_and(|t| t.tag().is_none())
        {
            resp.set_to_tag(&self.config.entropy.tag());
        }
        decorate(&self.config, &mut resp, request, None);
        self.respond(key, resp);
    }

    pub(super) fn on_request(&mut self, key: TransactionKey, request: Request, source: Peer) {
        if self.merged_with(&key, &request).is_some() {
            // §8.2.2.2: the same request by another path: one of them is
            // processed, the other gets 482 (without becoming pending).
            self.set_pending(
                key.clone(),
                Pending {
                    request: request.clone(),
                    peer: source,
                },
            );
            return self.reply_now(&key, &request, Reply::new(StatusCode::LOOP_DETECTED));
        }
        if *request.method() == Method::Invite {
            // Refused before a transaction existed (a Require we do not
            // support, a body we cannot read…): the INVITE transaction now
            // retransmits that final response until the ACK (§17.2.1).
            if let Some(resp) = super::precheck::precheck(&request, &self.config) {
                self.set_pending(
                    key.clone(),
                    Pending {
                        request: request.clone(),
                        peer: source,
                    },
                );
                return self.respond(&key, resp);
            }
        }
        self.set_pending(
            key.clone(),
            Pending {
                request: request.clone(),
                peer: source.clone(),
            },
        );
        if crate::dialog::is_in_dialog(&request) {
            return self.on_in_dialog(key, request, source);
        }
        if *request.method() == Method::Invite {
            // Overload protection: refuse with 503 + Retry-After rather than go silent.
            // The load is the requests still waiting for a final answer and the
            // calls whose 2xx is not ACKed yet (`in_progress`): finished
            // transactions lingering to absorb retransmissions (Timer J, L, I)
            // cost nothing and must not keep the endpoint refusing calls.
            if self.shutting_down.is_some() || self.overloaded() {
                self.count_overload();
                return self.reply_now(&key, &request, Reply::new(StatusCode::SERVICE_UNAVAILABLE));
            }
        }
        if let Some(reply) = challenge(
            &self.config,
            &request,
            source.target.addr.ip(),
            self.clock.unix(self.now),
        ) {
            return self.reply_now(&key, &request, reply);
        }
        if *request.method() == Method::Register {
            if let Some(registrar) = &self.config.registrar {
                let reply = registrar.handle(
                    &request,
                    self.clock.unix(self.now),
                    &super::super::registrar::Flow::from_peer(&source),
                );
                return self.reply_now(&key, &request, reply);
            }
        }
        if *request.method() == Method::Invite {
            if let Some(min) = self.session_too_brief(&request) {
                // RFC 4028 §9: 422 Session Interval Too Small, with our Min-SE.
                let too_small = StatusCode::new(422).unwrap_or(StatusCode::BAD_REQUEST);
                let reply = Reply::new(too_small).header("Min-SE", min.to_string());
                return self.reply_now(&key, &request, reply);
            }
            // RFC 3891: an INVITE that replaces one of our calls.
            let replaces = match self.replaced_call(&request) {
                Ok(r) => r,
                Err(reply) => return self.reply_now(&key, &request, reply),
            };
            return self.start_uas_call(key, request, source, replaces);
        }
        // RFC 3842: the registrar's users' voice mail, served by the core.
        if *request.method() == Method::Subscribe && self.on_subscribe(&key, &request, &source) {
            return;
        }
        // A request outside any dialog: a handler value of its own, in a task of its own.
        self.out.push_back(Output::Spawn(Spawn::Request {
            key,
            request,
            peer: source,
        }));
    }

    fn start_uas_call(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: Peer,
        replaces: Option<CallId>,
    ) {
        let (task_tx, task_rx) = mpsc::channel(16);
        let id = self.calls.insert(Call {
            state: CallState::Uas {
                task: task_tx,
                local_tag: self.config.entropy.tag(),
                answered: false,
            },
            dialog: None,
            peer: source.clone(),
            ended: false,
            invites: Default::default(),
            timer: None,
            local_sdp: None,
            reliable: None,
            transferring: None,
            refer_sub: false,
            replaces,
            bodyless_invite: None,
        });
        // The early dialog our provisional responses create (§12.1.1): a
        // request in it finds this call (§14.2 and §15 say what to do).
        if let (Some(local_tag), Some(call_id), Some(from_tag)) = (
            self.uas_tag(Some(id)),
            request.headers().call_id(),
            request.headers().from().and_then(NameAddr::tag),
        ) {
            let early = DialogId::new(call_id.clone(), local_tag, from_tag.to_owned());
            self.dialogs.insert(early.clone(), id);
            if let Some(call) = self.calls.get_mut(id) {
                call.invites.initial = Some((key.clone(), early));
            }
        }
        self.set_owner(key.clone(), Owner::UasInvite { call: id });
        self.out.push_back(Output::Spawn(Spawn::Call {
            call: id,
            key,
            request,
            peer: source,
            task: task_rx,
            provisional: mpsc::channel(4),
            ports: self.config.ports.clone(),
            public_ip: self.config.advertise_media,
            // One source per call, forked in the core's order: a seeded run replays.
            entropy: self.config.entropy.fork(),
            srtp: self.config.srtp,
            rtcp_mux: self.config.rtcp_mux,
        }));
    }

    /// A request carrying a To tag: it belongs to a dialog, or gets 481 (§12.2.2).
    fn on_in_dialog(&mut self, key: TransactionKey, request: Request, source: Peer) {
        let found = DialogId::from_request(&request)
            .and_then(|id| Some((self.dialogs.get(&id).copied()?, id)));
        if found.is_none() {
            // A subscription we serve (RFC 6665 §4.2.1.2: a refresh).
            if let Some(id) = DialogId::from_request(&request) {
                if self.on_subscription_request(&key, &request, &id) {
                    return;
                }
            }
        }
        let Some((call_id, id)) = found else {
            return self.reply_now(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        };
        if self.calls.get(call_id).is_none() {
            return self.reply_now(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        }
        if *request.method() == Method::Prack {
            // RFC 3262 §3: early or confirmed, it acknowledges a reliable
            // provisional of ours, or gets 481.
            return self.on_prack(key, request, call_id);
        }
        if self.on_refer_notify(&key, &request, call_id) {
            // The progress of a transfer of ours (RFC 3515 §2.4.5).
            return;
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return self.reply_now(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        };
        if call.dialog.is_none() {
            return self.on_early_dialog(key, request, call_id);
        }
        if *request.method() == Method::Invite {
            if call.invites.theirs.is_some() {
                // §14.2: a second re-INVITE while the first is unanswered.
                let wait = self.config.entropy.next_u64() % 11;
                return self.reply_now(
                    &key,
                    &request,
                    Reply::server_error().header(HeaderName::RetryAfter, wait.to_string()),
                );
            }
            if call.invites.ours.is_some() {
                // §14.2: both sides re-INVITE at once (glare).
                let pending = StatusCode::new(491).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
                return self.reply_now(&key, &request, Reply::new(pending));
            }
        }
        // §12.2.2: a CSeq lower than the last one seen is answered 500.
        if let Some(dialog) = call.dialog.as_mut() {
            if let Err(status) = dialog.check_remote_cseq(&request) {
                return self.reply_now(
                    &key,
                    &request,
                    Reply::new(status).reason("Server Internal Error (CSeq out of order)"),
                );
            }
            if matches!(request.method(), Method::Invite | Method::Update) {
                dialog.refresh_target(&request);
            }
        }
        let is_bye = *request.method() == Method::Bye;
        if is_bye {
            call.ended = true;
        }
        if *request.method() == Method::Invite && matches!(call.state, CallState::Uas { .. }) {
            call.invites.theirs = Some(key.clone());
            self.pending_call.insert(key.clone(), call_id);
        }
        match &call.state {
            CallState::Uas { task, .. } => {
                let msg = ToCall::Request(Box::new((
                    key.clone(),
                    Delivered {
                        request: request.clone(),
                        source: source.target.addr,
                        kind: source.target.kind,
                    },
                )));
                let delivered = task.try_send(msg).is_ok();
                if is_bye {
                    self.dialogs.remove(&id);
                }
                if !delivered {
                    // The task is gone or stuck: answer for it.
                    let status = if is_bye {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVER_INTERNAL_ERROR
                    };
                    self.reply_now(&key, &request, Reply::new(status));
                }
            }
            CallState::Uac(u) => {
                let events = u.events.clone();
                let media = u.media_requests.clone();
                let method = request.method().clone();
                let for_media = match method {
                    Method::Invite | Method::Update => true,
                    Method::Info => request
                        .headers()
                        .content_type()
                        .ok()
                        .flatten()
                        .is_some_and(|c| c.is("application", "dtmf-relay")),
                    _ => false,
                };
                if for_media {
                    if *request.method() == Method::Invite {
                        call.invites.theirs = Some(key.clone());
                        self.pending_call.insert(key.clone(), call_id);
                    }
                    // The media task answers (an SDP answer, a digit played).
                    let sent = media.is_some_and(|m| {
                        m.try_send(ToMedia::Request(key.clone(), Box::new(request.clone())))
                            .is_ok()
                    });
                    if !sent {
                        // No audio in this call: nothing to renegotiate (§14.2
                        // still wants a final answer); an UPDATE or INVITE
                        // without an offer is a refresh.
                        let status = if request.body().is_empty() || method == Method::Info {
                            StatusCode::OK
                        } else {
                            StatusCode::NOT_ACCEPTABLE_HERE
                        };
                        self.reply_now(&key, &request, Reply::new(status));
                    }
                    return;
                }
                match method {
                    Method::Bye => {
                        self.reply_now(&key, &request, Reply::ok());
                        events.emit(CallEvent::Ended);
                        self.end_call(call_id);
                    }
                    // Told to the handle; accepted (RFC 3428 §7, RFC 6086 §4.2,
                    // RFC 6665 §4.1.3: an unknown package's NOTIFY is the
                    // handle's to judge, 200 keeps the subscription).
                    Method::Options | Method::Info | Method::Message | Method::Notify => {
                        self.reply_now(&key, &request, Reply::ok());
                        events.emit(CallEvent::Request(request));
                    }
                    // RFC 3515: a transfer. Accepted at once, the first NOTIFY
                    // follows (§2.4.4); the handle dials and reports.
                    Method::Refer => self.on_uac_refer(&key, &request, call_id),
                    // Not something a call we placed can do (an UPDATE outside
                    // media, a subscription): 405 with what we take (§8.2.1),
                    // not a 200 that promises it.
                    _ => self.reply_now(&key, &request, Reply::new(StatusCode::METHOD_NOT_ALLOWED)),
                }
            }
        }
    }

    /// A request in the early dialog of a call we have not answered yet.
    fn on_early_dialog(&mut self, key: TransactionKey, request: Request, call: CallId) {
        match request.method() {
            Method::Invite => {
                // §14.2: an INVITE before the final response to the first.
                let wait = self.config.entropy.next_u64() % 11;
                self.reply_now(
                    &key,
                    &request,
                    Reply::server_error().header(HeaderName::RetryAfter, wait.to_string()),
                );
            }
            Method::Bye => {
                // §15: a caller may end an early dialog with BYE; §15.1.2: the
                // pending INVITE then gets 487, as for CANCEL.
                self.reply_now(&key, &request, Reply::ok());
                let invite = self
                    .calls
                    .get(call)
                    .and_then(|c| c.invites.initial.as_ref().map(|(k, _)| k.clone()));
                if let Some(invite) = invite {
                    if let Some(p) = self.pending(&invite) {
                        let invite_req = p.request.clone();
                        self.reply_now(
                            &invite,
                            &invite_req,
                            Reply::new(StatusCode::REQUEST_TERMINATED),
                        );
                    }
                }
                if let Some(CallState::Uas { task, .. }) = self.calls.get(call).map(|c| &c.state) {
                    let _ = task.try_send(ToCall::Cancelled);
                }
            }
            // An UPDATE without an offer refreshes (RFC 3311 §5.2); a new offer
            // before the answer is not something we negotiate (no early
            // offer/answer in the early dialog): 488.
            Method::Update if request.body().is_empty() => {
                self.reply_now(&key, &request, Reply::ok());
            }
            Method::Update => {
                self.reply_now(&key, &request, Reply::new(StatusCode::NOT_ACCEPTABLE_HERE));
            }
            // Nothing else is handled before the answer (PRACK is taken by `on_in_dialog`).
            _ => self.reply_now(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST)),
        }
    }

    pub(super) fn on_cancel(
        &mut self,
        cancel: TransactionKey,
        invite: Option<TransactionKey>,
        request: Request,
    ) {
        let Some(invite) = invite else {
            // §9.2: no matching INVITE transaction: 481.
            return self.reply_now(
                &cancel,
                &request,
                Reply::new(StatusCode::CALL_DOES_NOT_EXIST),
            );
        };
        let call_id = match self.owner(&invite) {
            Some(Owner::UasInvite { call }) => Some(*call),
            _ => None,
        };
        let tag = self
            .uas_tag(call_id)
            .unwrap_or_else(|| self.config.entropy.tag());
        let mut ok = Reply::ok().to_response(&request);
        ok.set_to_tag(&tag);
        self.respond(&cancel, ok);
        // §9.2: an INVITE still without final response gets 487 Request
        // Terminated; one already answered is left alone.
        let Some(p) = self.pending(&invite) else {
            return;
        };
        let mut resp = Reply::new(StatusCode::REQUEST_TERMINATED).to_response(&p.request);
        resp.set_to_tag(&tag);
        self.respond(&invite, resp);
        if let Some(call) = call_id.and_then(|c| self.calls.get(c)) {
            if let CallState::Uas { task, .. } = &call.state {
                let _ = task.try_send(ToCall::Cancelled);
            }
        }
    }

    pub(super) fn on_ack(&mut self, request: Request, source: Peer) {
        let Some(id) = DialogId::from_request(&request) else {
            return;
        };
        let Some(call) = self.dialogs.get(&id).and_then(|c| self.calls.get(*c)) else {
            debug!("ACK for no dialog, dropped");
            return;
        };
        match &call.state {
            CallState::Uas { task, .. } => {
                let _ = task.try_send(ToCall::Ack(Box::new(Delivered {
                    request,
                    source: source.target.addr,
                    kind: source.target.kind,
                })));
            }
            CallState::Uac(u) => {
                if let Some(m) = &u.media_requests {
                    let _ = m.try_send(ToMedia::Ack(Box::new(request)));
                }
            }
        }
    }

    pub(super) fn on_ack_timeout(&mut self, key: &TransactionKey) {
        let Some(Owner::UasInvite { call }) = self.owner(key) else {
            return;
        };
        let call = *call;
        warn!("no ACK for our 2xx within 64*T1: hanging up (RFC 3261 §13.3.1.4)");
        self.send_bye(call);
        if let Some(CallState::Uas { task, .. }) = self.calls.get(call).map(|c| &c.state) {
            let _ = task.try_send(ToCall::AckTimeout);
        }
    }

    /// Sends BYE in a call's dialog without anyone awaiting the answer (nothing
    /// to do when the call has no dialog or is already over).
    pub(super) fn send_bye(&mut self, call: CallId) {
        if let Err(e) = self.in_dialog(call, Method::Bye, Vec::new(), None, None) {
            debug!(error = %e, "BYE not sent");
        }
    }

    /// A handler's reply to a server transaction.
    pub(super) fn on_reply(&mut self, call: Option<CallId>, key: TransactionKey, reply: Reply) {
        let Some(p) = self.pending(&key) else {
            debug!("reply for a finished transaction dropped");
            return;
        };
        let request = p.request.clone();
        let peer = p.peer.clone();
        let mut resp = reply.to_response(&request);
        let is_invite = *request.method() == Method::Invite;
        let has_tag = request.headers().to().and_then(NameAddr::tag).is_some();
        if resp.status().as_u16() != 100 && !has_tag {
            let tag = self
                .uas_tag(call)
                .unwrap_or_else(|| self.config.entropy.tag());
            resp.set_to_tag(&tag);
        }
        let dialog_forming =
            is_invite && resp.status().as_u16() > 100 && resp.status().as_u16() < 300;
        let contact = dialog_forming.then(|| self.contact(peer.local, peer.target.kind));
        decorate(&self.config, &mut resp, &request, contact);
        // A 2xx to an initial INVITE makes the dialog (§12.1.1).
        if let Some(c) = call {
            let is_initial = request.headers().to().and_then(NameAddr::tag).is_none();
            let is_update = *request.method() == Method::Update;
            if (is_invite || is_update) && resp.status().is_success() {
                if is_initial && is_invite {
                    self.arm_uas_timer(c, &request, &mut resp);
                } else {
                    self.on_refresh_answered(c, &mut resp);
                }
                if !resp.body().is_empty() {
                    if let Some(call) = self.calls.get_mut(c) {
                        call.local_sdp = Some(resp.body().clone());
                    }
                }
            }
            if is_invite && is_initial && resp.status().is_success() {
                match Dialog::uas_from_request(&request, &resp) {
                    Ok(dialog) => {
                        if let Some(call) = self.calls.get_mut(c) {
                            self.dialogs.insert(dialog.id().clone(), c);
                            call.peer = in_dialog_peer(&peer, request.headers());
                            call.dialog = Some(dialog);
                            if let CallState::Uas { answered, .. } = &mut call.state {
                                *answered = true;
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "no dialog from this INVITE"),
                }
                // RFC 3891 §3: the new call is up, the one it replaces goes.
                if let Some(old) = self.calls.get_mut(c).and_then(|cl| cl.replaces.take()) {
                    self.end_replaced(old);
                }
            }
            // RFC 3515 §2.4.4: a REFER the handler accepted starts the refer
            // subscription (unless RFC 4488's Refer-Sub: false is granted).
            if *request.method() == Method::Refer
                && resp.status().is_success()
                && self.refer_accepted(c, &request, &mut resp)
            {
                self.respond(&key, resp);
                self.refer_progress(c, StatusCode::TRYING, None);
                return;
            }
            if is_invite && !has_tag {
                // RFC 3262: provisionals may go reliably, and a 2xx may wait
                // for the PRACK of one.
                if resp.status().is_provisional() && resp.status().as_u16() > 100 {
                    return self.send_provisional(c, &key, &request, resp);
                }
                match self.final_after_reliable(c, resp) {
                    Some(r) => resp = r,
                    None => return,
                }
            }
        }
        self.respond(&key, resp);
    }

    /// A handler task panicked: what it owed gets 500, its call ends (BYE if answered).
    pub(super) fn on_crash(&mut self, call: Option<CallId>, key: Option<TransactionKey>) {
        self.panics += 1;
        error!(call = ?call.map(|c| c.to_string()), "handler panicked; that call ends, the endpoint goes on");
        // A request still waiting for its final answer gets 500.
        let mut keys: Vec<TransactionKey> = key.into_iter().collect();
        if let Some(c) = call {
            let dialog = self
                .calls
                .get(c)
                .and_then(|cl| cl.dialog.as_ref())
                .map(|d| d.id().clone());
            keys.extend(self.uses.iter().filter_map(|(k, u)| {
                let invite = matches!(u.owner, Some(Owner::UasInvite { call }) if call == c);
                let in_call = u.pending.as_ref().is_some_and(|p| {
                    dialog.is_some() && DialogId::from_request(&p.request) == dialog
                });
                (invite || in_call).then(|| k.clone())
            }));
        }
        let tag = self.uas_tag(call);
        for k in keys {
            if let Some(p) = self.pending(&k) {
                let request = p.request.clone();
                let mut resp = Reply::server_error().to_response(&request);
                if request.headers().to().and_then(NameAddr::tag).is_none() {
                    resp.set_to_tag(&tag.clone().unwrap_or_else(|| self.config.entropy.tag()));
                }
                self.respond(&k, resp);
            }
        }
        // An answered call is hung up.
        if let Some(c) = call {
            self.send_bye(c);
            self.end_call(c);
        }
    }
}
