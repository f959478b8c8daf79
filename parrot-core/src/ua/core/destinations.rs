//! Where the UA core's requests go: the lookups it asks the driver for and
//! what comes back (RFC 3263 targets, each with our address towards it),
//! requests outside any dialog, failover to the next target (§4.3), the
//! outbound proxy's Route, and the Contact of a request a handle built.

use super::client::bump_cseq;
use super::{CallState, Output, Owner, UaCore};
use crate::message::{HeaderName, Host, Method, Request};
use crate::transaction::TransactionKey;
use crate::ua::UaError;
use crate::ua::call_event::EventSender;
use crate::ua::command::{DialSpec, QueryId, Resolved, ResponseSender};
use crate::ua::route::{Peer, literal_target};
use crate::ua::slab::CallId;
use std::collections::VecDeque;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// What a lookup the core asked the driver for is for.
pub(super) enum Query {
    /// A dial waiting for its destination (and, with audio, its offer).
    Dial {
        spec: DialSpec,
        control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
        events: EventSender,
        reply: oneshot::Sender<Result<CallId, UaError>>,
    },
    /// A request outside any dialog waiting for its destination.
    Send {
        request: Request,
        reply: ResponseSender,
    },
    /// A call's next INVITE after a 3xx, to the Contact it names.
    Redirect { call: CallId, next: Request },
}

impl Query {
    /// Tells whoever waits that the lookup failed.
    pub(super) fn fail(self, e: UaError) {
        match self {
            Query::Dial { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Query::Send { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Query::Redirect { .. } => {}
        }
    }
}

impl UaCore {
    pub(super) fn on_resolved(&mut self, query: QueryId, result: Result<Resolved, UaError>) {
        let Some(q) = self.take_query(query) else {
            debug!("a lookup answered after it was given up");
            return;
        };
        match (q, result) {
            (
                Query::Dial {
                    spec,
                    control,
                    events,
                    reply,
                },
                Ok(r),
            ) => {
                let mut targets = match &spec.flow {
                    // Looked up only for the offer: the INVITE goes on the flow.
                    Some(flow) => VecDeque::from([flow.peer.clone()]),
                    None => VecDeque::from(r.targets),
                };
                let Some(first) = targets.pop_front() else {
                    let _ = reply.send(Err(UaError::Unroutable(spec.uri.to_string())));
                    return;
                };
                let id = self.start_dial(spec, first, r.offer, control, events);
                if let Ok(id) = &id {
                    self.set_alternates(*id, targets);
                }
                let _ = reply.send(id);
            }
            (Query::Send { request, reply }, Ok(r)) => {
                self.send_to_all(request, VecDeque::from(r.targets), reply);
            }
            (Query::Redirect { call, next }, r) => {
                let mut targets = match r {
                    Ok(r) => VecDeque::from(r.targets),
                    Err(_) => VecDeque::new(),
                };
                let peer = match targets.pop_front() {
                    Some(peer) => peer,
                    None => match self.calls.get(call) {
                        Some(c) => c.peer.clone(),
                        None => return,
                    },
                };
                self.set_alternates(call, targets);
                self.send_invite(call, next, peer);
            }
            (q, Err(e)) => q.fail(e),
        }
    }

    pub(super) fn on_query_timeout(&mut self, query: QueryId) {
        let Some(q) = self.queries.remove(&query) else {
            return;
        };
        warn!("no answer from the resolver within 64*T1");
        match q {
            Query::Redirect { call, next } => {
                // Nowhere new to go: try the current destination.
                if let Some(peer) = self.calls.get(call).map(|c| c.peer.clone()) {
                    self.send_invite(call, next, peer);
                }
            }
            q => q.fail(UaError::Timeout),
        }
    }

    pub(super) fn send_out_of_dialog(&mut self, mut request: Request, reply: ResponseSender) {
        // The endpoint's outbound proxy, unless the request has its own route
        // (RFC 3261 §8.1.2).
        let proxy = self
            .config
            .outbound_proxy
            .clone()
            .filter(|_| !request.headers().contains(&HeaderName::Route));
        if let Some(p) = &proxy {
            if let Err(e) = request.headers_mut().push(HeaderName::Route, route_to(p)) {
                let _ = reply.send(Err(UaError::BadRequest(e.to_string())));
                return;
            }
        }
        let hop = proxy.unwrap_or_else(|| request.uri().clone());
        match literal_target(&hop, None) {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok(Some(target)) if self.specific_local(target.kind).is_some() => {
                let local = self.local_for(target.kind);
                self.send_to(request, Peer { target, local }, reply);
            }
            Ok(_) => {
                let uri = hop;
                let query = self.query(Query::Send { request, reply });
                self.out.push_back(Output::Resolve {
                    query,
                    uri,
                    transport: None,
                    media: None,
                });
            }
        }
    }

    /// Sends a request outside any dialog to the first of `targets`, keeping
    /// the others to fail over to (RFC 3263 §4.3).
    pub(super) fn send_to_all(
        &mut self,
        request: Request,
        mut targets: VecDeque<Peer>,
        reply: ResponseSender,
    ) {
        let Some(first) = targets.pop_front() else {
            let _ = reply.send(Err(UaError::Unroutable(request.uri().to_string())));
            return;
        };
        let copy = (!targets.is_empty()).then(|| request.clone());
        if let (Some(key), Some(copy)) = (self.send_to(request, first, reply), copy) {
            self.failover.insert(key, (copy, targets));
        }
    }

    pub(super) fn send_to(
        &mut self,
        mut request: Request,
        peer: Peer,
        reply: ResponseSender,
    ) -> Option<TransactionKey> {
        let local = peer.local;
        // RFC 3261 §10.2.1: a REGISTER's Contact is ours; a handle that did not
        // know which of our addresses reaches the registrar left it unspecified.
        fill_contact(&mut request, local, self.contact_addr(local));
        if let Err(e) = request.headers_mut().prepend(
            HeaderName::Via,
            Self::via(&self.config, local, peer.target.kind),
        ) {
            let _ = reply.send(Err(UaError::BadRequest(e.to_string())));
            return None;
        }
        let method = request.method().clone();
        if method == Method::Register {
            self.flows.insert(request.uri().to_string(), peer.clone());
        }
        match self.txns.send_request(
            self.now,
            request,
            peer.clone(),
            peer.target.kind.is_reliable(),
        ) {
            Ok(key) => {
                self.set_owner(
                    key.clone(),
                    Owner::Request {
                        reply: Some(reply),
                        call: None,
                        method,
                    },
                );
                Some(key)
            }
            Err(e) => {
                let _ = reply.send(Err(UaError::BadRequest(e.to_string())));
                None
            }
        }
    }

    /// A request outside any dialog failed at its current destination (no
    /// answer, no way to send, or 503): sends it again, as a new transaction
    /// with CSeq + 1, to the next destination, if there is one (RFC 3263
    /// §4.3). Gives `reply` back when there is none.
    pub(super) fn send_fail_over(
        &mut self,
        key: &TransactionKey,
        reply: ResponseSender,
    ) -> Option<ResponseSender> {
        let Some((mut request, targets)) = self.failover.remove(key) else {
            return Some(reply);
        };
        debug!(uri = %request.uri(), "failing over to the next destination");
        bump_cseq(&mut request);
        self.send_to_all(request, targets, reply);
        None
    }

    /// The destinations a call fails over to (RFC 3263 §4.3), and whether it
    /// goes through an outbound proxy.
    pub(super) fn set_alternates(&mut self, id: CallId, targets: VecDeque<Peer>) {
        let proxied = self.config.outbound_proxy.is_some();
        if let Some(CallState::Uac(uac)) = self.calls.get_mut(id).map(|c| &mut c.state) {
            uac.proxied = proxied || uac.spec.outbound_proxy.is_some();
            uac.alternates = targets;
        }
    }

    /// A call's INVITE failed at its current destination before any response
    /// from there (no answer, no way to send, or 503 as the first): sends it
    /// to the next destination, if there is one (RFC 3263 §4.3), as a new
    /// transaction (new branch) with the same Call-ID and From tag and
    /// CSeq + 1 (as after a challenge, §8.1.3.5). False when there is none,
    /// or the call was cancelled.
    pub(super) fn fail_over(&mut self, id: CallId) -> bool {
        let Some(CallState::Uac(uac)) = self.calls.get_mut(id).map(|c| &mut c.state) else {
            return false;
        };
        if uac.final_received || uac.cancel_requested || uac.provisional_seen {
            return false;
        }
        let Some(peer) = uac.alternates.pop_front() else {
            return false;
        };
        debug!(dest = %peer.target.addr, "failing over to the next destination");
        let mut next = uac.invite.clone();
        bump_cseq(&mut next);
        // The offer names the address this destination is reached from
        // (unless an advertised one stands for all).
        if let Some(sdp) = uac.offer.as_mut().and_then(|o| o.move_to(peer.local.ip())) {
            next.set_body(sdp);
        }
        let _ = next.headers_mut().set(
            HeaderName::Contact,
            self.contact(peer.local, peer.target.kind),
        );
        self.send_invite(id, next, peer);
        true
    }
}

/// A pre-loaded Route to an outbound proxy, loose routing (`;lr`, RFC 3261
/// §8.1.2, §16.12).
pub(super) fn route_to(proxy: &crate::message::Uri) -> String {
    match proxy.as_sip() {
        Some(sip) if sip.params.get("lr").is_none() => {
            let mut sip = sip.clone();
            sip.params = sip.params.with("lr", None);
            format!("<{sip}>")
        }
        _ => format!("<{proxy}>"),
    }
}

/// Points a Contact that names an unspecified address (0.0.0.0, ::) or our own
/// `local` one at `shown` (our address as the peer must reach it: advertised,
/// learnt through a NAT, or `local`).
fn fill_contact(req: &mut Request, local: std::net::SocketAddr, shown: std::net::SocketAddr) {
    let Some(first) = req.headers().contact_list().first().cloned() else {
        return;
    };
    let Some(sip) = first.uri.as_sip() else {
        return;
    };
    let unspecified = sip.host.ip().is_some_and(|h| h.is_unspecified());
    let ours = unspecified || sip.host.ip() == Some(local.ip());
    if !ours || (shown == local && !unspecified) {
        return;
    }
    let mut uri = sip.clone();
    uri.host = Host::from(shown.ip());
    if shown != local {
        uri.port = Some(shown.port());
    }
    let mut contact = first.clone();
    contact.uri = crate::message::Uri::Sip(uri);
    let _ = req
        .headers_mut()
        .set(HeaderName::Contact, contact.to_string());
}
