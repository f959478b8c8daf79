//! Reliable provisional responses (RFC 3262, "100rel"), the side of a call
//! we answer: a 1xx sent reliably carries `Require: 100rel` and an `RSeq`,
//! and is retransmitted until the caller's PRACK acknowledges it.
//!
//! Which provisionals go reliably: every one when the INVITE requires it
//! (§3: then none may go unreliably); when the INVITE only supports it, those
//! with a session description (early media: the answer in the 183 is then
//! known to have arrived) and those the handler marks with `Require: 100rel`;
//! none when the caller does not support it (a reply marked so is sent
//! unmarked: §3 forbids requiring what the caller does not support).
//!
//! §3 rules kept here: one reliable provisional unacknowledged at a time (the
//! next waits for the PRACK); retransmission at T1, doubling, for 64·T1, then
//! the INVITE gets a 5xx; a 2xx waits for the PRACK of a provisional that
//! carried SDP (the offer/answer it started must be complete first); a PRACK
//! that matches nothing gets 481.

use super::{CallState, UaCore};
use crate::message::{HeaderName, Headers, Method, Request, Response, StatusCode};
use crate::transaction::TransactionKey;
use crate::ua::command::ToCall;
use crate::ua::reply::Reply;
use crate::ua::slab::CallId;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// A call's reliable provisionals (the INVITE we answer).
#[derive(Debug)]
pub(super) struct Reliable {
    /// The RSeq of the next reliable provisional (§3: starts anywhere in
    /// 1..2^31-1, then goes up by one).
    next_rseq: u32,
    /// The one sent and not yet acknowledged.
    unacked: Option<Unacked>,
    /// Reliable provisionals waiting for `unacked`'s PRACK.
    queued: VecDeque<Response>,
    /// A 2xx held until the PRACK for a provisional with SDP.
    held_final: Option<Response>,
}

#[derive(Debug)]
struct Unacked {
    resp: Response,
    rseq: u32,
    /// The INVITE transaction it answers.
    key: TransactionKey,
    has_sdp: bool,
    /// The next retransmission, and the interval after it.
    due: Instant,
    interval: Duration,
    /// 64·T1 after the first send (§3).
    give_up: Instant,
}

fn requires(h: &Headers, tag: &str) -> bool {
    h.require()
        .is_ok_and(|l| l.iter().any(|t| t.as_str().eq_ignore_ascii_case(tag)))
}

/// An RAck value (RFC 3262 §7.2): response number, CSeq number, method.
fn rack(request: &Request) -> Option<(u32, u32, Method)> {
    let raw = request.headers().get(&HeaderName::RAck)?;
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    let method = Method::known(parts.next()?.as_bytes())?;
    parts.next().is_none().then_some((rseq, cseq, method))
}

impl UaCore {
    /// Does this provisional to `request` go reliably? Marks the response
    /// (`Require: 100rel`) when it does; strips a handler's mark when the
    /// caller cannot take it.
    fn wants_reliable(&self, request: &Request, resp: &mut Response) -> bool {
        let status = resp.status().as_u16();
        let marked = requires(resp.headers(), "100rel");
        if marked {
            // Set again below if it stays.
            strip_100rel(resp);
        }
        if !self.config.prack || !(101..200).contains(&status) {
            return false;
        }
        let h = request.headers();
        let wanted = requires(h, "100rel")
            || (super::precheck::offers_tag(h, "100rel") && (marked || !resp.body().is_empty()));
        if wanted {
            let _ = resp.headers_mut().push(HeaderName::Require, "100rel");
        }
        wanted
    }

    /// Sends a provisional to the initial INVITE of call `id`: reliably when
    /// due (queued behind an unacknowledged one), else as it is.
    pub(super) fn send_provisional(
        &mut self,
        id: CallId,
        key: &TransactionKey,
        request: &Request,
        mut resp: Response,
    ) {
        if !self.wants_reliable(request, &mut resp) {
            return self.respond(key, resp);
        }
        let first = self.config.entropy.next_u64();
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let state = call.reliable.get_or_insert_with(|| {
            Box::new(Reliable {
                // §3: the first RSeq is chosen uniformly in 1..2^31-1; kept
                // below 2^30 so a call's increments never reach 2^31.
                next_rseq: 1 + (first % (1 << 30)) as u32,
                unacked: None,
                queued: VecDeque::new(),
                held_final: None,
            })
        });
        if state.unacked.is_some() {
            if state.queued.len() >= 8 {
                debug!("reliable provisional dropped: 8 wait for a PRACK");
            } else {
                state.queued.push_back(resp);
            }
            return;
        }
        self.send_reliable(id, key.clone(), resp);
    }

    /// Sends `resp` as the call's next reliable provisional and arms its
    /// retransmission.
    fn send_reliable(&mut self, id: CallId, key: TransactionKey, mut resp: Response) {
        let now = self.now;
        let t1 = self.config.timers.t1;
        let Some(state) = self.calls.get_mut(id).and_then(|c| c.reliable.as_mut()) else {
            return;
        };
        let rseq = state.next_rseq;
        state.next_rseq = rseq.saturating_add(1);
        let _ = resp.headers_mut().set(HeaderName::RSeq, rseq.to_string());
        state.unacked = Some(Unacked {
            resp: resp.clone(),
            rseq,
            key: key.clone(),
            has_sdp: !resp.body().is_empty(),
            due: now + t1,
            interval: t1 * 2,
            give_up: now + t1 * 64,
        });
        self.prack_deadlines.insert((now + t1, id));
        self.respond(&key, resp);
    }

    /// A final response to the initial INVITE of call `id` is ready: sent
    /// now, or held until the PRACK (a 2xx after a provisional with SDP).
    /// Returns the response when the caller is to send it now.
    pub(super) fn final_after_reliable(&mut self, id: CallId, resp: Response) -> Option<Response> {
        let Some(state) = self.calls.get_mut(id).and_then(|c| c.reliable.as_mut()) else {
            return Some(resp);
        };
        let hold = resp.status().is_success() && state.unacked.as_ref().is_some_and(|u| u.has_sdp);
        if hold {
            state.held_final = Some(resp);
            return None;
        }
        // §3: a final response may go before the PRACKs; nothing more is
        // retransmitted after it.
        if let Some(u) = state.unacked.take() {
            self.prack_deadlines.remove(&(u.due, id));
        }
        state.queued.clear();
        Some(resp)
    }

    /// The INVITE of call `id` got its final response some other way (487
    /// after CANCEL, 500 after a crash): nothing more to retransmit, and a
    /// 2xx still held for a PRACK is void; true if one was.
    pub(super) fn reliable_done(&mut self, id: CallId) -> bool {
        let Some(state) = self.calls.get_mut(id).and_then(|c| c.reliable.as_mut()) else {
            return false;
        };
        state.queued.clear();
        let held = state.held_final.take().is_some();
        if let Some(u) = state.unacked.take() {
            self.prack_deadlines.remove(&(u.due, id));
        }
        held
    }

    /// A PRACK in the dialog (early or confirmed) of call `id`.
    pub(super) fn on_prack(&mut self, key: TransactionKey, request: Request, id: CallId) {
        let matched = rack(&request).is_some_and(|(rseq, cseq, method)| {
            self.calls
                .get(id)
                .and_then(|c| c.reliable.as_ref())
                .and_then(|r| r.unacked.as_ref())
                .is_some_and(|u| {
                    let invite_cseq = u.resp.headers().cseq().map(|c| c.seq);
                    u.rseq == rseq && invite_cseq == Some(cseq) && method == Method::Invite
                })
        });
        if !matched {
            // §3: a PRACK for no unacknowledged reliable provisional.
            return self.reply_now(&key, &request, Reply::new(StatusCode::CALL_DOES_NOT_EXIST));
        }
        let Some(state) = self.calls.get_mut(id).and_then(|c| c.reliable.as_mut()) else {
            return;
        };
        let Some(u) = state.unacked.take() else {
            return;
        };
        self.prack_deadlines.remove(&(u.due, id));
        if request.body().is_empty() {
            self.reply_now(&key, &request, Reply::ok());
        } else {
            // A new offer in the PRACK would need our answer in its 2xx; the
            // early dialog negotiates only in the INVITE and its answer. The
            // provisional is acknowledged all the same (the RAck matched).
            self.reply_now(
                &key,
                &request,
                Reply::new(StatusCode::NOT_ACCEPTABLE_HERE)
                    .reason("Not Acceptable Here (no offer in PRACK)"),
            );
        }
        let Some(state) = self.calls.get_mut(id).and_then(|c| c.reliable.as_mut()) else {
            return;
        };
        if let Some(next) = state.queued.pop_front() {
            return self.send_reliable(id, u.key, next);
        }
        if let Some(held) = state.held_final.take() {
            self.respond(&u.key, held);
        }
    }

    /// The next retransmission of a reliable provisional.
    pub(super) fn next_prack_timer(&self) -> Option<Instant> {
        self.prack_deadlines.first().map(|(at, _)| *at)
    }

    /// Reliable provisionals due at `now`: sent again, or given up on after
    /// 64·T1 without PRACK, when the INVITE gets a 5xx (§3).
    pub(super) fn on_prack_timers(&mut self) {
        while let Some(&(at, id)) = self.prack_deadlines.first() {
            if at > self.now {
                break;
            }
            self.prack_deadlines.pop_first();
            let now = self.now;
            let Some(state) = self.calls.get_mut(id).and_then(|c| c.reliable.as_mut()) else {
                continue;
            };
            let Some(u) = state.unacked.as_mut().filter(|u| u.due == at) else {
                continue;
            };
            if now < u.give_up {
                u.due = (now + u.interval).min(u.give_up);
                u.interval *= 2;
                let (key, resp, due) = (u.key.clone(), u.resp.clone(), u.due);
                self.prack_deadlines.insert((due, id));
                if let Err(e) = self.txns.respond(now, &key, resp) {
                    debug!(error = %e, "reliable provisional not re-sent");
                }
                continue;
            }
            let key = u.key.clone();
            state.unacked = None;
            state.queued.clear();
            let answered = state.held_final.take().is_some();
            warn!(
                "no PRACK for a reliable provisional within 64*T1: the INVITE gets 500 (RFC 3262 §3)"
            );
            self.give_up_invite(id, &key, answered);
        }
    }

    /// The INVITE of call `id` gets 500 (no PRACK came); the call's task
    /// hears that the call is over, and a dialog the held 2xx made is gone.
    fn give_up_invite(&mut self, id: CallId, key: &TransactionKey, answered: bool) {
        if let Some(p) = self.pending(key) {
            let request = p.request.clone();
            self.reply_now(
                key,
                &request,
                Reply::server_error().reason("Server Internal Error (no PRACK)"),
            );
        }
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if answered {
            if let Some(d) = call.dialog.take() {
                self.dialogs.remove(d.id());
            }
            call.ended = true;
        }
        if let CallState::Uas { task, .. } = &call.state {
            let msg = if answered {
                ToCall::Failed
            } else {
                ToCall::Cancelled
            };
            let _ = task.try_send(msg);
        }
    }
}

fn strip_100rel(resp: &mut Response) {
    let kept: Vec<String> = resp
        .headers()
        .require()
        .unwrap_or_default()
        .iter()
        .map(|t| t.as_str().to_owned())
        .filter(|t| !t.eq_ignore_ascii_case("100rel"))
        .collect();
    let h = resp.headers_mut();
    h.remove(&HeaderName::Require);
    if !kept.is_empty() {
        let _ = h.push(HeaderName::Require, kept.join(", "));
    }
}

/// The 1xx of a call we placed that asks for a PRACK: its RSeq (RFC 3262 §4).
pub(super) fn reliable_rseq(resp: &Response) -> Option<u32> {
    let status = resp.status().as_u16();
    if !(101..200).contains(&status) || !requires(resp.headers(), "100rel") {
        return None;
    }
    let raw = resp.headers().get(&HeaderName::RSeq)?;
    std::str::from_utf8(raw)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..1 << 31).contains(n))
}
