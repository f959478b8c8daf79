//! Session timers (RFC 4028): an answered call is refreshed by one side every
//! half interval; the other side hangs up when no refresh came in time, so a
//! call whose BYE was lost (or whose peer died) ends by itself.
//!
//! The refresher's refresh is a re-INVITE carrying the SDP we last sent
//! (unchanged, so the same `o=` version: no renegotiation, RFC 3264 §8); a
//! 481 or 408 to it ends the dialog (RFC 3261 §12.2.1.2), any refresh that
//! succeeds, ours or the peer's, restarts the interval.

use super::{CallState, UaCore};
use crate::message::{HeaderName, Method, Request, Response};
use crate::ua::call_event::CallEvent;
use crate::ua::command::ToCall;
use crate::ua::slab::CallId;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// The interval we ask for (RFC 4028 §4 recommends 1800 s).
pub(crate) const DEFAULT_SESSION_EXPIRES: u32 = 1800;
/// The shortest interval we accept (RFC 4028 §4: at least 90 s).
pub(crate) const DEFAULT_MIN_SE: u32 = 90;

/// A call's session timer.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionTimer {
    /// The interval (Session-Expires), in seconds.
    pub(super) interval: u32,
    /// We send the refreshes; else we watch for the peer's.
    pub(super) we_refresh: bool,
    /// When to refresh, or to give up on the peer.
    pub(super) due: Instant,
}

impl SessionTimer {
    fn new(interval: u32, we_refresh: bool, now: Instant) -> SessionTimer {
        let mut t = SessionTimer {
            interval,
            we_refresh,
            due: now,
        };
        t.restart(now);
        t
    }

    /// A refresh happened at `now`: the refresher's next at half the
    /// interval; the other side's deadline at the interval less
    /// min(32 s, a third of it) (RFC 4028 §10).
    fn restart(&mut self, now: Instant) {
        let i = u64::from(self.interval);
        let wait = if self.we_refresh {
            i / 2
        } else {
            i - (i / 3).min(32)
        };
        self.due = now + Duration::from_secs(wait.max(1));
    }

    /// The header for our requests and responses: who refreshes, in the
    /// roles of this transaction (`uac`: the one that sent the request).
    fn header(&self, we_sent_the_request: bool) -> String {
        let refresher = if self.we_refresh == we_sent_the_request {
            "uac"
        } else {
            "uas"
        };
        format!("{};refresher={refresher}", self.interval)
    }
}

/// A Session-Expires value: the interval and the refresher, if named.
fn session_expires(h: &crate::message::Headers) -> Option<(u32, Option<bool>)> {
    let raw = h.get(&HeaderName::SessionExpires)?;
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split(';');
    let interval: u32 = parts.next()?.trim().parse().ok().filter(|s| *s > 0)?;
    let mut refresher_is_uac = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("refresher") {
                refresher_is_uac = match v.trim() {
                    v if v.eq_ignore_ascii_case("uac") => Some(true),
                    v if v.eq_ignore_ascii_case("uas") => Some(false),
                    _ => None,
                };
            }
        }
    }
    Some((interval, refresher_is_uac))
}

fn min_se(h: &crate::message::Headers) -> Option<u32> {
    let raw = h.get(&HeaderName::from("Min-SE"))?;
    std::str::from_utf8(raw)
        .ok()?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

impl UaCore {
    /// RFC 4028 §9 (step 1 for a UAS): an initial INVITE asking for a
    /// session interval shorter than our Min-SE gets 422 with it.
    pub(super) fn session_too_brief(&self, request: &Request) -> Option<u32> {
        let config = self.config.session_timer?;
        let (interval, _) = session_expires(request.headers())?;
        (interval < config.min_se).then_some(config.min_se)
    }

    /// The 2xx to an initial INVITE we answer: the session interval and its
    /// refresher (RFC 4028 §9), in the response and armed for the call.
    pub(super) fn arm_uas_timer(&mut self, id: CallId, request: &Request, resp: &mut Response) {
        let Some(config) = self.config.session_timer else {
            return;
        };
        let h = request.headers();
        let supports = super::precheck::offers_tag(h, "timer");
        let (interval, uac_refreshes) = match session_expires(h) {
            // §9: without a refresher named, the UAC if it can, else us.
            Some((i, named)) => (i.max(config.min_se), named.unwrap_or(supports)),
            // The caller asked for none: we want one, and refresh it ourselves
            // (re-INVITEs work with any peer).
            None => (config.expires, false),
        };
        let timer = SessionTimer::new(interval, !uac_refreshes, self.now);
        let rh = resp.headers_mut();
        let _ = rh.set(HeaderName::SessionExpires, timer.header(false));
        if uac_refreshes {
            // §9: the UAC must know it is to refresh.
            let _ = rh.push(HeaderName::Require, "timer");
        }
        self.set_timer(id, timer);
    }

    /// Our INVITE asks for a session timer (RFC 4028 §7.1; `timer` is in
    /// its Supported, with the endpoint's other option tags).
    pub(super) fn session_headers(&self) -> Vec<(HeaderName, String)> {
        match self.config.session_timer {
            Some(c) => vec![(HeaderName::SessionExpires, c.expires.to_string())],
            None => Vec::new(),
        }
    }

    /// The 2xx to an initial INVITE of ours: what the answerer chose (RFC
    /// 4028 §7.2), or, if it says nothing, our interval with us refreshing.
    pub(super) fn arm_uac_timer(&mut self, id: CallId, invite: &Request, resp: &Response) {
        if self.config.session_timer.is_none() {
            return;
        }
        let timer = match session_expires(resp.headers()) {
            Some((i, refresher_is_uac)) => {
                SessionTimer::new(i, refresher_is_uac.unwrap_or(true), self.now)
            }
            None => match session_expires(invite.headers()) {
                Some((i, _)) => SessionTimer::new(i, true, self.now),
                None => return,
            },
        };
        self.set_timer(id, timer);
    }

    fn set_timer(&mut self, id: CallId, timer: SessionTimer) {
        if let Some(call) = self.calls.get_mut(id) {
            if let Some(old) = call.timer.replace(timer) {
                self.session_deadlines.remove(&(old.due, id));
            }
            self.session_deadlines.insert((timer.due, id));
        }
    }

    /// A refresh of `id` succeeded (a re-INVITE either way): the interval
    /// starts again.
    pub(super) fn refreshed(&mut self, id: CallId) {
        let now = self.now;
        let Some(mut t) = self.calls.get(id).and_then(|c| c.timer) else {
            return;
        };
        t.restart(now);
        self.set_timer(id, t);
    }

    /// Our 2xx to the peer's re-INVITE names the session interval (RFC 4028
    /// §9), and the refresh restarts it.
    pub(super) fn on_refresh_answered(&mut self, id: CallId, resp: &mut Response) {
        let Some(t) = self.calls.get(id).and_then(|c| c.timer) else {
            return;
        };
        let _ = resp
            .headers_mut()
            .set(HeaderName::SessionExpires, t.header(false));
        self.refreshed(id);
    }

    /// The next session timer due.
    pub(super) fn next_session_timer(&self) -> Option<Instant> {
        self.session_deadlines.first().map(|(at, _)| *at)
    }

    /// Session timers due at `now`: refresh, or give up on a silent peer.
    pub(super) fn on_session_timers(&mut self) {
        while let Some(&(at, id)) = self.session_deadlines.first() {
            if at > self.now {
                break;
            }
            self.session_deadlines.pop_first();
            let Some(call) = self.calls.get_mut(id) else {
                continue;
            };
            let Some(mut timer) = call.timer.filter(|t| t.due == at) else {
                continue;
            };
            if call.ended || call.dialog.is_none() {
                call.timer = None;
                continue;
            }
            if !timer.we_refresh {
                info!(
                    interval = timer.interval,
                    "no session refresh from the peer in time: hanging up (RFC 4028 §10)"
                );
                call.timer = None;
                match &call.state {
                    CallState::Uas { task, .. } => {
                        let _ = task.try_send(ToCall::Expired);
                    }
                    CallState::Uac(u) => u.events.emit(CallEvent::Ended),
                }
                self.send_bye(id);
                continue;
            }
            if call.invites.ours.is_some() || call.invites.theirs.is_some() {
                // An INVITE is in progress in the dialog (§14): try again soon.
                timer.due = self.now + Duration::from_secs(2);
                call.timer = Some(timer);
                self.session_deadlines.insert((timer.due, id));
                continue;
            }
            let sdp = call.local_sdp.clone();
            let headers = vec![(HeaderName::SessionExpires, timer.header(true))];
            timer.restart(self.now);
            call.timer = Some(timer);
            self.session_deadlines.insert((timer.due, id));
            debug!(interval = timer.interval, "session refresh (re-INVITE)");
            let body = sdp.map(|b| ("application/sdp".to_owned(), b));
            if let Err(e) = self.in_dialog(id, Method::Invite, headers, body, None) {
                debug!(error = %e, "session refresh not sent");
            }
        }
    }

    /// Forgets a call's session timer (the call is over).
    pub(super) fn drop_timer(&mut self, id: CallId, timer: Option<SessionTimer>) {
        if let Some(t) = timer {
            self.session_deadlines.remove(&(t.due, id));
        }
    }
}

/// A 422 to our INVITE: the same INVITE again asking for the answerer's
/// Min-SE (RFC 4028 §7.4), or `None` to give up.
pub(super) fn retry_too_brief(invite: &Request, resp: &Response) -> Option<Request> {
    let asked = session_expires(invite.headers()).map_or(0, |(i, _)| i);
    let wanted = min_se(resp.headers())?;
    if wanted <= asked {
        return None;
    }
    let mut next = invite.clone();
    let _ = next
        .headers_mut()
        .set(HeaderName::SessionExpires, wanted.to_string());
    let _ = next
        .headers_mut()
        .set(HeaderName::from("Min-SE"), wanted.to_string());
    Some(next)
}
