//! The client side of the UA core: calls we place, requests we send in and
//! out of dialogs, and their responses (authentication retries, redirects,
//! the ACK for a 2xx).

use super::destinations::{Query, route_to};
use super::{Call, CallState, OfferWanted, Output, Owner, Spawn, UaCore};
use crate::dialog::{Dialog, DialogId};
use crate::message::{HeaderName, Host, Message, Method, Request, Response, SipUri, StatusCode};
use crate::transaction::TransactionKey;
use crate::ua::UaError;
use crate::ua::call_event::{CallEvent, EventSender};
use crate::ua::command::ToMedia;
use crate::ua::command::{DialMedia, DialSpec, ResponseSender};
use crate::ua::media::Offered;
use crate::ua::route::{Peer, in_dialog_peer, literal_target};
use crate::ua::slab::CallId;
use std::collections::VecDeque;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// The core's state for a call we placed.
#[derive(Debug)]
pub(super) struct UacCall {
    pub(super) events: EventSender,
    pub(super) spec: DialSpec,
    /// The INVITE last sent (after authentication or redirection, the new one).
    pub(super) invite: Request,
    auth_attempts: u8,
    redirects: u8,
    pub(super) provisional_seen: bool,
    pub(super) final_received: bool,
    pub(super) cancel_requested: bool,
    /// The ACK for the 2xx, re-sent for each retransmitted 2xx (§13.2.2.4).
    ack: Option<Request>,
    /// Digest state (nonce counts) once challenged.
    digest: Option<crate::auth::DigestClient>,
    /// Our SDP offer and its sockets, until the answer comes (boxed: a
    /// kilobyte the call would keep all its life after the answer took it).
    pub(super) offer: Option<Box<Offered>>,
    /// The handle's media actions, for the media task once audio flows.
    control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
    /// Dropped with the call: tells its media task to stop.
    _media_stop: Option<oneshot::Sender<()>>,
    /// To the call's media task: in-dialog requests it answers (a re-INVITE's
    /// offer, DTMF by INFO) and the ACK of a re-INVITE it offered in.
    pub(super) media_requests: Option<mpsc::Sender<ToMedia>>,
    /// The destinations still to try if the current one fails (RFC 3263 §4.3).
    pub(super) alternates: VecDeque<Peer>,
    /// The INVITE goes through an outbound proxy (it carries its Route).
    pub(super) proxied: bool,
    /// Early dialogs whose reliable provisionals we acknowledged (RFC 3262
    /// §4), with the last RSeq of each; a 2xx confirms its own.
    early: Vec<(Dialog, u32)>,
}

/// The most early dialogs (forks) a call keeps for PRACK.
const MAX_EARLY: usize = 8;

/// Who waits for a dial to start: its handle's channels and the answer.
struct PendingDial {
    control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
    events: EventSender,
    reply: oneshot::Sender<Result<CallId, UaError>>,
}

fn status_is_auth(s: StatusCode) -> bool {
    matches!(s.as_u16(), 401 | 407)
}

impl UaCore {
    /// A dial: sent at once to an IP literal without audio, else after the
    /// driver has resolved the host and (with audio) bound RTP and made the offer.
    pub(super) fn dial(
        &mut self,
        spec: DialSpec,
        media: Option<DialMedia>,
        events: EventSender,
        reply: oneshot::Sender<Result<CallId, UaError>>,
    ) {
        let mut spec = spec;
        let (handler, control) = match media {
            Some(m) => (Some(m.handler), Some(m.control)),
            None => (None, None),
        };
        let pending = PendingDial {
            control,
            events,
            reply,
        };
        if let Some(flow) = &spec.flow {
            // A registered flow: the peer is known, nothing to look up. With
            // audio the driver still binds RTP and makes the offer (as for an
            // IP literal); `on_resolved` then sends on the flow.
            let peer = flow.peer.clone();
            if handler.is_none() {
                return self.dial_now(spec, peer, pending);
            }
            let uri = crate::message::Uri::from(crate::message::SipUri::new(
                None,
                Host::from(peer.target.addr.ip()),
            ));
            let transport = Some(peer.target.kind);
            return self.dial_after_lookup(spec, uri, transport, handler, pending);
        }
        // RFC 3261 §8.1.2: through an outbound proxy, the request goes to the
        // proxy with the proxy as its first Route.
        let proxy = spec
            .outbound_proxy
            .as_deref()
            .or(self.config.outbound_proxy.as_ref())
            .cloned();
        if let Some(p) = &proxy {
            spec.headers.push((HeaderName::Route, route_to(p)));
        }
        let hop = proxy.unwrap_or_else(|| spec.uri.clone());
        let literal = match literal_target(&hop, spec.transport) {
            Ok(t) => t,
            Err(e) => {
                let _ = pending.reply.send(Err(e));
                return;
            }
        };
        let local = literal.as_ref().and_then(|t| self.specific_local(t.kind));
        if let (Some(target), None, Some(local)) = (&literal, &handler, local) {
            let peer = Peer {
                target: target.clone(),
                local,
            };
            return self.dial_now(spec, peer, pending);
        }
        let transport = spec.transport;
        self.dial_after_lookup(spec, hop, transport, handler, pending);
    }

    /// Sends the INVITE to `peer` now: no lookup, no destination to fail
    /// over to.
    fn dial_now(&mut self, spec: DialSpec, peer: Peer, pending: PendingDial) {
        let r = self.start_dial(spec, peer, None, pending.control, pending.events);
        if let Ok(id) = &r {
            self.set_alternates(*id, VecDeque::new());
        }
        let _ = pending.reply.send(r);
    }

    /// Asks the driver to look `uri` up (and, with audio, to bind RTP and
    /// make the offer); the dial goes on in `on_resolved`.
    fn dial_after_lookup(
        &mut self,
        spec: DialSpec,
        uri: crate::message::Uri,
        transport: Option<crate::transport::TransportKind>,
        handler: Option<Box<dyn crate::media::MediaHandler>>,
        pending: PendingDial,
    ) {
        let query = self.query(Query::Dial {
            spec,
            control: pending.control,
            events: pending.events,
            reply: pending.reply,
        });
        self.out.push_back(Output::Resolve {
            query,
            uri,
            transport,
            media: handler.map(|handler| self.offer_wanted(handler)),
        });
    }

    /// What the driver needs to bind RTP and make our SDP offer.
    fn offer_wanted(&self, handler: Box<dyn crate::media::MediaHandler>) -> OfferWanted {
        OfferWanted {
            handler,
            ports: self.config.ports.clone(),
            public_ip: self.config.advertise_media,
            entropy: self.config.entropy.fork(),
            srtp: self.config.srtp,
            rtcp_mux: self.config.rtcp_mux,
        }
    }

    pub(super) fn start_dial(
        &mut self,
        spec: DialSpec,
        peer: Peer,
        offer: Option<Offered>,
        control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
        events: EventSender,
    ) -> Result<CallId, UaError> {
        let local = peer.local;
        let user = spec
            .from_user
            .clone()
            .unwrap_or_else(|| self.config.user.clone());
        let mut req = Request::new(Method::Invite, spec.uri.clone());
        let from_uri = SipUri::new(Some(&user), Host::from(local.ip()));
        let call_id = self.config.entropy.call_id(&local.ip().to_string());
        let h = req.headers_mut();
        let bad = |e: crate::message::HeaderError| UaError::BadRequest(e.to_string());
        h.push(
            HeaderName::Via,
            Self::via(&self.config, local, peer.target.kind),
        )
        .map_err(bad)?;
        h.push(HeaderName::MaxForwards, "70").map_err(bad)?;
        h.push(
            HeaderName::From,
            format!("<{from_uri}>;tag={}", self.config.entropy.tag()),
        )
        .map_err(bad)?;
        h.push(HeaderName::To, format!("<{}>", spec.uri))
            .map_err(bad)?;
        h.push(HeaderName::CallId, call_id).map_err(bad)?;
        h.push(HeaderName::CSeq, "1 INVITE").map_err(bad)?;
        h.push(HeaderName::Contact, self.contact(local, peer.target.kind))
            .map_err(bad)?;
        h.push(
            HeaderName::UserAgent,
            concat!("parrot/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(bad)?;
        let supported = super::precheck::supported(&self.config);
        if !supported.is_empty() {
            h.push(HeaderName::Supported, supported.join(", "))
                .map_err(bad)?;
        }
        for (n, v) in self.session_headers() {
            h.push(n, v).map_err(bad)?;
        }
        for (n, v) in &spec.headers {
            h.push(n.clone(), v.clone()).map_err(bad)?;
        }
        if let Some(o) = &offer {
            h.set(HeaderName::ContentType, "application/sdp")
                .map_err(bad)?;
            req.set_body(o.sdp.clone());
        } else if let Some((ct, body)) = &spec.body {
            h.set(HeaderName::ContentType, ct.clone()).map_err(bad)?;
            req.set_body(body.clone());
        } else {
            req.set_body(bytes::Bytes::new());
        }
        let key = self
            .txns
            .send_request(
                self.now,
                req.clone(),
                peer.clone(),
                peer.target.kind.is_reliable(),
            )
            .map_err(|e| UaError::BadRequest(e.to_string()))?;
        let uac = UacCall {
            events,
            spec,
            invite: req,
            auth_attempts: 0,
            redirects: 0,
            provisional_seen: false,
            final_received: false,
            cancel_requested: false,
            ack: None,
            digest: None,
            offer: offer.map(Box::new),
            control,
            _media_stop: None,
            media_requests: None,
            alternates: VecDeque::new(),
            proxied: false,
            early: Vec::new(),
        };
        let id = self.calls.insert(Call {
            state: CallState::Uac(Box::new(uac)),
            dialog: None,
            peer,
            ended: false,
            invites: Default::default(),
            timer: None,
            local_sdp: None,
            reliable: None,
            transferring: None,
            refer_sub: false,
            replaces: None,
            bodyless_invite: None,
        });
        self.set_owner(key, Owner::UacInvite { call: id });
        Ok(id)
    }

    /// Sends CANCEL for a call's pending INVITE (§9.1): same Request-URI,
    /// Call-ID, From, To, CSeq number and top Via as the INVITE.
    pub(super) fn cancel(&mut self, id: CallId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let CallState::Uac(uac) = &mut call.state else {
            return;
        };
        if uac.final_received {
            return;
        }
        uac.cancel_requested = true;
        // §9.1: not before a provisional response has arrived.
        if !uac.provisional_seen {
            return;
        }
        let cancel = cancel_for(&uac.invite);
        let peer = call.peer.clone();
        let reliable = peer.target.kind.is_reliable();
        match self.txns.send_request(self.now, cancel, peer, reliable) {
            Ok(key) => self.set_owner(
                key,
                Owner::Request {
                    reply: None,
                    call: Some(id),
                    method: Method::Cancel,
                },
            ),
            Err(e) => debug!(error = %e, "CANCEL not sent"),
        }
    }

    /// Sends a request in a call's dialog; its final response goes to `reply`.
    pub(super) fn in_dialog(
        &mut self,
        id: CallId,
        method: Method,
        headers: Vec<(HeaderName, String)>,
        body: Option<(String, bytes::Bytes)>,
        reply: Option<ResponseSender>,
    ) -> Result<(), UaError> {
        let fail = |reply: Option<ResponseSender>, e: UaError| {
            if let Some(r) = reply {
                let _ = r.send(Err(e));
            }
        };
        let Some(call) = self.calls.get_mut(id) else {
            fail(reply, UaError::CallGone);
            return Err(UaError::CallGone);
        };
        let (Some(dialog), false) = (call.dialog.as_mut(), call.ended) else {
            fail(
                reply,
                UaError::InvalidState("the call is not answered, or already over"),
            );
            return Err(UaError::InvalidState("no dialog"));
        };
        let mut req = dialog.request(method.clone());
        let peer = call.peer.clone();
        let h = req.headers_mut();
        let mut problem = h
            .prepend(
                HeaderName::Via,
                Self::via(&self.config, peer.local, peer.target.kind),
            )
            .err();
        for (n, v) in headers {
            if let Err(e) = h.push(n, v) {
                problem = Some(e);
            }
        }
        if let Some((ct, b)) = body {
            if let Err(e) = req.headers_mut().set(HeaderName::ContentType, ct) {
                problem = Some(e);
            }
            req.set_body(b);
        }
        if let Some(e) = problem {
            fail(reply, UaError::BadRequest(e.to_string()));
            return Err(UaError::BadRequest("header".into()));
        }
        if method == Method::Bye {
            call.ended = true;
            let did = dialog.id().clone();
            self.dialogs.remove(&did);
        }
        if method == Method::Invite && !req.body().is_empty() {
            // What a session refresh re-offers from now on.
            call.local_sdp = Some(req.body().clone());
        }
        if method == Method::Invite && req.body().is_empty() {
            // A refresh without an offer: an offer in its 2xx is refused in the ACK.
            call.bodyless_invite = req.headers().cseq().map(|c| c.seq);
        }
        let reliable = peer.target.kind.is_reliable();
        match self.txns.send_request(self.now, req, peer, reliable) {
            Ok(key) => {
                if method == Method::Invite {
                    if let Some(call) = self.calls.get_mut(id) {
                        call.invites.ours = Some(key.clone());
                    }
                }
                self.set_owner(
                    key,
                    Owner::Request {
                        reply,
                        call: Some(id),
                        method,
                    },
                );
                Ok(())
            }
            Err(e) => {
                fail(reply, UaError::BadRequest(e.to_string()));
                Err(UaError::SendFailed)
            }
        }
    }

    pub(super) fn on_response(&mut self, key: TransactionKey, resp: Response) {
        let Some(owner) = self.uses.get_mut(&key).and_then(|u| u.owner.as_mut()) else {
            return;
        };
        match owner {
            Owner::UacInvite { call } => {
                let call = *call;
                self.on_invite_response(call, resp);
            }
            Owner::Request {
                reply,
                call,
                method,
            } => {
                if !resp.status().is_final() {
                    return;
                }
                let (call, method) = (*call, method.clone());
                let mut reply = reply.take();
                if method == Method::Invite {
                    self.our_invite_over(call, &key);
                }
                if method == Method::Refer {
                    self.on_refer_response(call, &resp);
                }
                if call.is_none() {
                    // RFC 3263 §4.3: 503 from this destination: the next one.
                    reply = match reply {
                        Some(r) if resp.status().as_u16() == 503 => self.send_fail_over(&key, r),
                        r => {
                            self.failover.remove(&key);
                            r
                        }
                    };
                }
                if let Some(r) = reply {
                    let _ = r.send(Ok(resp.clone()));
                }
                if method == Method::Invite && resp.status().is_success() {
                    // A re-INVITE's 2xx is acknowledged like the first (§14.1),
                    // and refreshes the session (RFC 4028 §10).
                    if let Some(c) = call {
                        self.ack_2xx(c, &resp);
                        self.refreshed(c);
                    }
                }
                // §12.2.1.2: 481 or 408 to a request in a dialog ends the
                // dialog (a PRACK's is in an early dialog: the INVITE's final
                // response says how that ends).
                let gone = matches!(resp.status().as_u16(), 408 | 481) && method != Method::Prack;
                if method == Method::Bye || gone {
                    if let Some(c) = call {
                        if let Some(d) = self.calls.get_mut(c).and_then(|cl| {
                            cl.ended = true;
                            cl.dialog.as_ref().map(|d| d.id().clone())
                        }) {
                            self.dialogs.remove(&d);
                        }
                        self.bye_done(c);
                    }
                }
            }
            Owner::Notify { sub } => {
                if resp.status().is_final() {
                    let sub = sub.clone();
                    self.on_notify_answer(&sub, Some(resp.status()));
                }
            }
            Owner::UasInvite { .. } => {}
        }
    }

    /// Our re-INVITE `key` has its final response (or failed): the call may
    /// take the peer's next one (§14.2).
    fn our_invite_over(&mut self, call: Option<CallId>, key: &TransactionKey) {
        if let Some(c) = call.and_then(|c| self.calls.get_mut(c)) {
            if c.invites.ours.as_ref() == Some(key) {
                c.invites.ours = None;
            }
        }
    }

    fn bye_done(&mut self, id: CallId) {
        if let Some(call) = self.calls.get(id) {
            match &call.state {
                CallState::Uas { task, .. } => {
                    let _ = task.try_send(crate::ua::command::ToCall::HungUp);
                }
                CallState::Uac(u) => {
                    u.events.emit(CallEvent::Ended);
                    self.end_call(id);
                }
            }
        }
    }

    fn on_invite_response(&mut self, id: CallId, resp: Response) {
        let status = resp.status();
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let CallState::Uac(uac) = &mut call.state else {
            return;
        };
        if status.is_provisional() {
            if let Some(rseq) = super::reliable::reliable_rseq(&resp) {
                if !self.prack(id, &resp, rseq) {
                    return;
                }
            }
            let Some(CallState::Uac(uac)) = self.calls.get_mut(id).map(|c| &mut c.state) else {
                return;
            };
            let first = !uac.provisional_seen;
            uac.provisional_seen = true;
            // Early media (RFC 3960 §3, the gateway model): a 1xx with the
            // answer to our offer starts the audio now (ringback, an
            // announcement); the 2xx then carries the same answer.
            let early = status.as_u16() > 100
                && !resp.body().is_empty()
                && !uac.cancel_requested
                && uac.offer.is_some();
            if early {
                self.start_uac_media(id, &resp);
            }
            let Some(CallState::Uac(uac)) = self.calls.get_mut(id).map(|c| &mut c.state) else {
                return;
            };
            uac.events.emit(CallEvent::Provisional(resp));
            if first && uac.cancel_requested {
                self.cancel(id);
            }
            return;
        }
        if status.is_success() {
            // The early dialog this 2xx confirms (we sent PRACKs in it: its
            // CSeq goes on), with the route set and target of the 2xx
            // (§13.2.2.4).
            let remote_tag = resp.headers().to().and_then(|t| t.tag()).unwrap_or("");
            if let Some(i) = uac
                .early
                .iter()
                .position(|(d, _)| d.id().remote_tag.as_str() == remote_tag)
                .filter(|_| call.dialog.is_none())
            {
                let (mut d, _) = uac.early.swap_remove(i);
                d.on_response(&resp);
                self.dialogs.insert(d.id().clone(), id);
                call.peer = in_dialog_peer(&call.peer, resp.headers());
                call.dialog = Some(d);
            }
            uac.early.clear();
            if call.dialog.is_none() {
                match Dialog::uac_from_response(&uac.invite, &resp) {
                    Ok(d) => {
                        self.dialogs.insert(d.id().clone(), id);
                        call.peer = in_dialog_peer(&call.peer, resp.headers());
                        call.dialog = Some(d);
                    }
                    Err(e) => warn!(error = %e, "2xx without a usable dialog"),
                }
            }
            let already = uac.final_received;
            let cancelled = uac.cancel_requested;
            uac.final_received = true;
            if !already {
                if !uac.invite.body().is_empty() {
                    call.local_sdp = Some(uac.invite.body().clone());
                }
                let invite = uac.invite.clone();
                self.arm_uac_timer(id, &invite, &resp);
            }
            let Some(call) = self.calls.get_mut(id) else {
                return;
            };
            let CallState::Uac(uac) = &mut call.state else {
                return;
            };
            if !already && !cancelled {
                uac.events.emit(CallEvent::Answered(resp.clone()));
                // Unless early media already started it.
                self.start_uac_media(id, &resp);
            }
            self.ack_2xx(id, &resp);
            if cancelled && !already {
                // The 2xx crossed our CANCEL: the call is up, so end it with BYE (§9.1).
                self.send_bye(id);
            }
            return;
        }
        // A final non-2xx: the transaction layer has sent the ACK (§17.1.1.3).
        // RFC 3263 §4.3: 503 as the first answer of a destination: the next one.
        if status.as_u16() == 503
            && !uac.provisional_seen
            && !uac.alternates.is_empty()
            && self.fail_over(id)
        {
            return;
        }
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let CallState::Uac(uac) = &mut call.state else {
            return;
        };
        let retry = if status_is_auth(status) && uac.auth_attempts < 2 {
            match uac.spec.credentials.clone() {
                Some((user, pass)) => {
                    let client = uac
                        .digest
                        .get_or_insert_with(|| crate::auth::DigestClient::new(user, pass));
                    let mut next = uac.invite.clone();
                    crate::auth::authorize(&mut next, &resp, client)
                        .ok()
                        .map(|()| next)
                }
                None => None,
            }
        } else if status.as_u16() == 422 && uac.redirects < 5 {
            // RFC 4028 §7.4: our interval was too brief: again with theirs.
            super::timers::retry_too_brief(&uac.invite, &resp).map(|mut next| {
                bump_cseq(&mut next);
                next
            })
        } else if status.class() == 3 && uac.spec.follow_redirects && uac.redirects < 5 {
            resp.headers().contact_list().first().map(|c| {
                let mut next = uac.invite.clone();
                next.set_uri(c.uri.clone());
                bump_cseq(&mut next);
                next
            })
        } else {
            None
        };
        let Some(next) = retry else {
            uac.final_received = true;
            uac.events.emit(CallEvent::Rejected(resp));
            self.end_call(id);
            return;
        };
        if status_is_auth(status) {
            uac.auth_attempts += 1;
            let peer = call.peer.clone();
            return self.send_invite(id, next, peer);
        }
        if status.as_u16() == 422 {
            uac.redirects += 1;
            let peer = call.peer.clone();
            return self.send_invite(id, next, peer);
        }
        uac.redirects += 1;
        if uac.proxied {
            // Through the outbound proxy still: its Route stays (§8.1.2).
            let peer = call.peer.clone();
            return self.send_invite(id, next, peer);
        }
        // A new destination: the old one's alternates are no longer its.
        uac.alternates.clear();
        let transport = uac.spec.transport;
        let current = call.peer.clone();
        match literal_target(next.uri(), transport) {
            Ok(Some(target)) if self.specific_local(target.kind).is_some() => {
                let peer = Peer {
                    local: self.local_for(target.kind),
                    target,
                };
                self.send_invite(id, next, peer);
            }
            Ok(_) => {
                let uri = next.uri().clone();
                let query = self.query(Query::Redirect { call: id, next });
                self.out.push_back(Output::Resolve {
                    query,
                    uri,
                    transport,
                    media: None,
                });
            }
            Err(_) => self.send_invite(id, next, current),
        }
    }

    /// RFC 3262 §4: a reliable provisional (`rseq`) to our INVITE gets a
    /// PRACK in its early dialog. False when it is not the next one of that
    /// dialog (a retransmission, or out of order): it is then not processed
    /// further.
    fn prack(&mut self, id: CallId, resp: &Response, rseq: u32) -> bool {
        let via_config = &self.config;
        let Some(call) = self.calls.get_mut(id) else {
            return false;
        };
        let CallState::Uac(uac) = &mut call.state else {
            return false;
        };
        if uac.final_received {
            return false;
        }
        let Some(tag) = resp.headers().to().and_then(|t| t.tag()) else {
            return true;
        };
        let i = match uac
            .early
            .iter()
            .position(|(d, _)| d.id().remote_tag.as_str() == tag)
        {
            Some(i) => {
                if uac.early[i].1.checked_add(1) != Some(rseq) {
                    return false;
                }
                uac.early[i].1 = rseq;
                i
            }
            None => {
                if uac.early.len() >= MAX_EARLY {
                    debug!("reliable provisional from a fork too many: not acknowledged");
                    return false;
                }
                match Dialog::uac_from_response(&uac.invite, resp) {
                    Ok(d) => uac.early.push((d, rseq)),
                    Err(e) => {
                        warn!(error = %e, "reliable provisional without an early dialog");
                        return true;
                    }
                }
                uac.early.len() - 1
            }
        };
        let invite_cseq = uac.invite.headers().cseq().map_or(1, |c| c.seq);
        let peer = in_dialog_peer(&call.peer, resp.headers());
        let mut prack = uac.early[i].0.request(Method::Prack);
        let h = prack.headers_mut();
        let _ = h.prepend(
            HeaderName::Via,
            Self::via(via_config, peer.local, peer.target.kind),
        );
        let _ = h.push(HeaderName::RAck, format!("{rseq} {invite_cseq} INVITE"));
        let reliable = peer.target.kind.is_reliable();
        match self.txns.send_request(self.now, prack, peer, reliable) {
            Ok(key) => self.set_owner(
                key,
                Owner::Request {
                    reply: None,
                    call: Some(id),
                    method: Method::Prack,
                },
            ),
            Err(e) => debug!(error = %e, "PRACK not sent"),
        }
        true
    }

    /// Starts the media of a call we placed with the answer in `resp` (a 2xx,
    /// or a 1xx for early media), once: the offer goes to the media task.
    fn start_uac_media(&mut self, id: CallId, resp: &Response) {
        let entropy = self.config.entropy.fork();
        let Some(CallState::Uac(uac)) = self.calls.get_mut(id).map(|c| &mut c.state) else {
            return;
        };
        let Some(offer) = uac.offer.take() else {
            return;
        };
        let (stop_tx, stop) = oneshot::channel();
        uac._media_stop = Some(stop_tx);
        let (requests_tx, requests) = mpsc::channel(8);
        uac.media_requests = Some(requests_tx);
        self.out.push_back(Output::Spawn(Spawn::UacMedia {
            call: id,
            offer: *offer,
            answer: resp.clone(),
            control: uac.control.take(),
            events: uac.events.clone(),
            stop,
            requests,
            entropy,
        }));
    }

    /// Sends a call's next INVITE (after a challenge or a redirect) to `peer`:
    /// a new transaction, so a new branch (§8.1.3.5).
    pub(super) fn send_invite(&mut self, id: CallId, mut next: Request, peer: Peer) {
        let _ = next.headers_mut().pop_via();
        let _ = next.headers_mut().prepend(
            HeaderName::Via,
            Self::via(&self.config, peer.local, peer.target.kind),
        );
        let sent = self.txns.send_request(
            self.now,
            next.clone(),
            peer.clone(),
            peer.target.kind.is_reliable(),
        );
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.peer = peer;
        let CallState::Uac(uac) = &mut call.state else {
            return;
        };
        uac.invite = next;
        uac.early.clear();
        match sent {
            Ok(k) => self.set_owner(k, Owner::UacInvite { call: id }),
            Err(e) => {
                uac.events
                    .emit(CallEvent::Failed(UaError::BadRequest(e.to_string())));
                self.end_call(id);
            }
        }
    }

    /// Sends (or re-sends) the ACK for a 2xx, built in the dialog (§13.2.2.4):
    /// a request of its own, through the route set, with the INVITE's CSeq number.
    fn ack_2xx(&mut self, id: CallId, resp: &Response) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let Some(dialog) = call.dialog.as_ref() else {
            return;
        };
        let Some(cseq) = resp.headers().cseq().map(|c| c.seq) else {
            return;
        };
        let peer = call.peer.clone();
        let mut ack = dialog.ack_for(cseq);
        let _ = ack.headers_mut().prepend(
            HeaderName::Via,
            Self::via(&self.config, peer.local, peer.target.kind),
        );
        // Our INVITE had no offer and the 2xx has one: the ACK must answer it
        // (RFC 3261 §13.2.2.4). Without media of ours (a call placed without
        // it, a session refresh of a call that has none) every stream is
        // refused.
        let refuse = match &call.state {
            CallState::Uac(uac) => {
                let initial = uac.invite.headers().cseq().is_some_and(|c| c.seq == cseq);
                initial && uac.invite.body().is_empty() && uac.offer.is_none()
            }
            CallState::Uas { .. } => false,
        } || call.bodyless_invite == Some(cseq);
        if refuse {
            if let Ok(offer) = crate::sdp::SessionDescription::parse(resp.body()) {
                let mut n = crate::sdp::Negotiator::new(
                    crate::sdp::LocalMedia::new(peer.local.ip(), 0),
                    self.config.entropy.sdp_session_id(),
                );
                let answer = n.reject_all(&offer).to_bytes();
                let _ = ack
                    .headers_mut()
                    .set(HeaderName::ContentType, "application/sdp");
                ack.set_body(answer);
            }
        }
        if let CallState::Uac(uac) = &mut call.state {
            uac.ack = Some(ack.clone());
        }
        let reliable = peer.target.kind.is_reliable();
        self.txns
            .send_stateless(self.now, Message::Request(ack), peer, reliable);
    }

    /// A response no transaction wants: a retransmitted 2xx after the INVITE
    /// transaction ended. Re-send the ACK (§13.2.2.4).
    pub(super) fn on_stray(&mut self, resp: &Response) {
        if !resp.status().is_success()
            || resp
                .headers()
                .cseq()
                .is_none_or(|c| c.method != Method::Invite)
        {
            return;
        }
        let Some(call) = DialogId::from_response(resp).and_then(|id| self.dialogs.get(&id)) else {
            return;
        };
        let Some(c) = self.calls.get(*call) else {
            return;
        };
        if let CallState::Uac(uac) = &c.state {
            if let Some(ack) = uac.ack.clone() {
                let peer = c.peer.clone();
                let reliable = peer.target.kind.is_reliable();
                self.txns
                    .send_stateless(self.now, Message::Request(ack), peer, reliable);
            }
        }
    }

    /// A transaction timed out (Timer B/F) or could not send: `error` says which.
    pub(super) fn on_failure(&mut self, key: &TransactionKey, error: UaError) {
        match self.take_owner(key) {
            // RFC 3263 §4.3: sent to the next destination, if there is one.
            Some(Owner::UacInvite { call }) if self.fail_over(call) => {}
            Some(Owner::UacInvite { call }) => {
                if let Some(CallState::Uac(uac)) = self.calls.get(call).map(|c| &c.state) {
                    if !uac.final_received {
                        uac.events.emit(CallEvent::Failed(error));
                    }
                }
                self.end_call(call);
            }
            Some(Owner::Request {
                reply,
                call,
                method,
            }) => {
                if method == Method::Invite {
                    self.our_invite_over(call, key);
                }
                if method == Method::Refer {
                    let e = match &error {
                        UaError::Timeout => UaError::Timeout,
                        _ => UaError::SendFailed,
                    };
                    self.on_refer_failure(call, e);
                }
                let reply = match reply {
                    Some(r) if call.is_none() => self.send_fail_over(key, r),
                    r => r,
                };
                if let Some(r) = reply {
                    let _ = r.send(Err(error));
                }
                if method == Method::Bye {
                    if let Some(c) = call {
                        self.bye_done(c);
                    }
                }
            }
            Some(Owner::UasInvite { call }) => {
                // §17.2.4: a response to the INVITE could not be sent. Nothing
                // can answer that INVITE any more, and a reply still to come
                // would be dropped, leaving the call's task waiting for an ACK
                // that cannot come: the call ends (with BYE if it was answered).
                self.send_bye(call);
                if let Some(CallState::Uas { task, .. }) = self.calls.get(call).map(|c| &c.state) {
                    let _ = task.try_send(crate::ua::command::ToCall::Failed);
                }
            }
            Some(Owner::Notify { sub }) => self.on_notify_answer(&sub, None),
            None => {}
        }
        self.drop_pending(key);
    }
}

/// CANCEL for an INVITE (§9.1).
fn cancel_for(invite: &Request) -> Request {
    let mut c = Request::new(Method::Cancel, invite.uri().clone());
    let src = invite.headers();
    let h = c.headers_mut();
    if let Some(v) = src.top_via() {
        let _ = h.push(HeaderName::Via, v.to_string());
    }
    for name in [
        HeaderName::Route,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
    ] {
        for v in src.get_all(&name) {
            let _ = h.push(name.clone(), bytes::Bytes::copy_from_slice(v));
        }
    }
    if let Some(cs) = src.cseq() {
        let _ = h.push(HeaderName::CSeq, format!("{} CANCEL", cs.seq));
    }
    let _ = h.push(HeaderName::MaxForwards, "70");
    c.set_body(bytes::Bytes::new());
    c
}

pub(super) fn bump_cseq(req: &mut Request) {
    if let Some(cs) = req.headers().cseq() {
        let next = format!("{} {}", cs.seq.saturating_add(1), cs.method);
        let _ = req.headers_mut().set(HeaderName::CSeq, next);
    }
}
