//! Subscriptions we serve (RFC 6665, as the notifier): the message-summary
//! package (RFC 3842, message waiting indication) of the registrar's users.
//!
//! A SUBSCRIBE for `Event: message-summary` to a user (its Request-URI) gets
//! 200 with the granted Expires and a To tag: a dialog, kept here rather
//! than with the calls, and at once a NOTIFY with the user's counts (RFC
//! 6665 §4.2.1.2). A refresh in the dialog restarts the expiry and gets a
//! NOTIFY too; `Expires: 0` ends it (the last NOTIFY says `terminated`), as
//! does the expiry (`reason=timeout`). A 481 or 408 to a NOTIFY, or none,
//! drops the subscription (RFC 6665 §4.2.2). A mailbox changed by the
//! application ([`Registrar::set_mailbox`](crate::ua::Registrar::set_mailbox))
//! is NOTIFYed to each subscriber of its user.

use super::{Owner, UaCore};
use crate::dialog::{Dialog, DialogId};
use crate::message::{HeaderName, Method, Request, StatusCode};
use crate::ua::reply::Reply;
use crate::ua::route::{Peer, in_dialog_peer};
use std::time::{Duration, Instant};
use tracing::debug;

/// The package served.
const PACKAGE: &str = "message-summary";
/// The subscription length granted when none is asked, and the longest.
const DEFAULT_EXPIRES: u32 = 3600;
/// The shortest accepted (423 below it, RFC 6665 §4.2.1.1).
const MIN_EXPIRES: u32 = 60;
/// The most subscriptions kept at once (a SUBSCRIBE beyond gets 503).
const MAX_SUBSCRIPTIONS: usize = 10_000;

/// One subscriber to one user's mailbox.
#[derive(Debug)]
pub(super) struct Subscription {
    dialog: Dialog,
    peer: Peer,
    /// The mailbox's user (lower case), and its account URI for the body.
    user: String,
    account: String,
    expires_at: Instant,
}

impl UaCore {
    /// A SUBSCRIBE outside any dialog: answered here when the endpoint has
    /// a registrar (message-summary, or 489 for another package), and true;
    /// false leaves it to the handler.
    pub(super) fn on_subscribe(
        &mut self,
        key: &crate::transaction::TransactionKey,
        request: &Request,
        source: &Peer,
    ) -> bool {
        if self.config.registrar.is_none() {
            return false;
        }
        let package = super::refer::event_package(request.headers());
        if package.as_deref() != Some(PACKAGE) {
            // RFC 6665 §4.2.1.1: a package we do not serve.
            let reply = Reply::new(StatusCode::new(489).unwrap_or(StatusCode::BAD_REQUEST))
                .header("Allow-Events", PACKAGE);
            self.reply_now(key, request, reply);
            return true;
        }
        let Some(user) = mailbox_user(request) else {
            self.reply_now(key, request, Reply::not_found());
            return true;
        };
        let expires = match granted(request) {
            Ok(e) => e,
            Err(reply) => {
                self.reply_now(key, request, reply);
                return true;
            }
        };
        if expires > 0 && self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            self.reply_now(key, request, Reply::new(StatusCode::SERVICE_UNAVAILABLE));
            return true;
        }
        let mut resp = Reply::ok()
            .header(HeaderName::Expires, expires.to_string())
            .to_response(request);
        resp.set_to_tag(&self.config.entropy.tag());
        let contact = self.contact(source.local, source.target.kind);
        super::precheck::decorate(&self.config, &mut resp, request, Some(contact));
        let dialog = match Dialog::uas_from_request(request, &resp) {
            Ok(d) => d,
            Err(e) => {
                let reply =
                    Reply::new(StatusCode::BAD_REQUEST).reason(format!("Bad Request ({e})"));
                self.reply_now(key, request, reply);
                return true;
            }
        };
        self.respond(key, resp);
        let account = request.uri().to_string();
        let id = dialog.id().clone();
        self.subscriptions.insert(
            id.clone(),
            Subscription {
                dialog,
                peer: in_dialog_peer(source, request.headers()),
                user,
                account,
                expires_at: self.now,
            },
        );
        // A fetch (Expires: 0) gets one NOTIFY, terminated (§4.4.1).
        self.renew(&id, expires);
        true
    }

    /// A request in one of our subscriptions' dialogs: a refresh or an
    /// unsubscribe. False when `id` is no subscription of ours.
    pub(super) fn on_subscription_request(
        &mut self,
        key: &crate::transaction::TransactionKey,
        request: &Request,
        id: &DialogId,
    ) -> bool {
        let Some(sub) = self.subscriptions.get_mut(id) else {
            return false;
        };
        if *request.method() != Method::Subscribe {
            let reply = Reply::new(StatusCode::METHOD_NOT_ALLOWED);
            self.reply_now(key, request, reply);
            return true;
        }
        if let Err(status) = sub.dialog.check_remote_cseq(request) {
            self.reply_now(key, request, Reply::new(status));
            return true;
        }
        let expires = match granted(request) {
            Ok(e) => e,
            Err(reply) => {
                self.reply_now(key, request, reply);
                return true;
            }
        };
        let reply = Reply::ok().header(HeaderName::Expires, expires.to_string());
        self.reply_now(key, request, reply);
        self.renew(id, expires);
        true
    }

    /// Sets a subscription's expiry to `expires` seconds from now and
    /// NOTIFYs the current state (the last NOTIFY when 0).
    fn renew(&mut self, id: &DialogId, expires: u32) {
        let now = self.now;
        let Some(sub) = self.subscriptions.get_mut(id) else {
            return;
        };
        self.sub_deadlines.remove(&(sub.expires_at, id.clone()));
        sub.expires_at = now + Duration::from_secs(u64::from(expires));
        if expires == 0 {
            self.notify(id, Some("timeout"));
            return self.drop_subscription(id);
        }
        self.sub_deadlines.insert((sub.expires_at, id.clone()));
        self.notify(id, None);
    }

    /// Sends the subscription's NOTIFY with the user's mailbox: active with
    /// the time left, or `terminated` with `reason`.
    fn notify(&mut self, id: &DialogId, terminated: Option<&str>) {
        let now = self.now;
        let via_config = &self.config;
        let Some(sub) = self.subscriptions.get_mut(id) else {
            return;
        };
        let mailbox = via_config
            .registrar
            .as_ref()
            .map(|r| r.mailbox(&sub.user))
            .unwrap_or_default();
        let state = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!(
                "active;expires={}",
                sub.expires_at.saturating_duration_since(now).as_secs()
            ),
        };
        let mut req = sub.dialog.request(Method::Notify);
        let peer = sub.peer.clone();
        let h = req.headers_mut();
        let _ = h.prepend(
            HeaderName::Via,
            Self::via(via_config, peer.local, peer.target.kind),
        );
        let _ = h.push(HeaderName::Event, PACKAGE);
        let _ = h.push(HeaderName::from("Subscription-State"), state);
        let _ = h.push(
            HeaderName::ContentType,
            "application/simple-message-summary",
        );
        req.set_body(bytes::Bytes::from(mailbox.summary(&sub.account)));
        let reliable = peer.target.kind.is_reliable();
        match self.txns.send_request(now, req, peer, reliable) {
            Ok(key) => self.set_owner(
                key,
                Owner::Notify {
                    sub: Box::new(id.clone()),
                },
            ),
            Err(e) => debug!(error = %e, "NOTIFY not sent"),
        }
    }

    /// The final response to a NOTIFY of ours, or none (`None`): 481, 408
    /// or silence end the subscription (RFC 6665 §4.2.2).
    pub(super) fn on_notify_answer(&mut self, id: &DialogId, status: Option<StatusCode>) {
        let gone = status.is_none_or(|s| matches!(s.as_u16(), 408 | 481));
        if gone && self.subscriptions.contains_key(id) {
            debug!("subscriber gone: subscription dropped");
            self.drop_subscription(id);
        }
    }

    fn drop_subscription(&mut self, id: &DialogId) {
        if let Some(sub) = self.subscriptions.remove(id) {
            self.sub_deadlines.remove(&(sub.expires_at, id.clone()));
        }
        crate::transaction::shrink_if_sparse(&mut self.subscriptions);
    }

    /// `user`'s mailbox changed: its subscribers are told.
    pub(super) fn mailbox_changed(&mut self, user: &str) {
        let ids: Vec<DialogId> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.notify(&id, None);
        }
    }

    /// When the next subscription expires.
    pub(super) fn next_subscription_timer(&self) -> Option<Instant> {
        self.sub_deadlines.first().map(|(at, _)| *at)
    }

    /// Subscriptions expired at `now`: the last NOTIFY, and gone.
    pub(super) fn on_subscription_timers(&mut self) {
        while let Some((at, id)) = self.sub_deadlines.first().cloned() {
            if at > self.now {
                break;
            }
            self.sub_deadlines.pop_first();
            self.notify(&id, Some("timeout"));
            self.drop_subscription(&id);
        }
    }
}

/// The user whose mailbox a SUBSCRIBE asks for: its Request-URI's user
/// part (RFC 3842 §4: the subscription is to the account's URI).
fn mailbox_user(request: &Request) -> Option<String> {
    let sip = request.uri().as_sip()?;
    let user = sip.user.as_deref().filter(|u| !u.is_empty())?;
    Some(user.to_ascii_lowercase())
}

/// The subscription length granted for a SUBSCRIBE, or the reply refusing
/// it: 423 with Min-Expires below the shortest (RFC 6665 §4.2.1.1), longer
/// ones shortened.
fn granted(request: &Request) -> Result<u32, Reply> {
    let asked = match request.headers().expires() {
        Ok(Some(e)) => e,
        Ok(None) => DEFAULT_EXPIRES,
        Err(_) => return Err(Reply::new(StatusCode::BAD_REQUEST).reason("Bad Request (Expires)")),
    };
    if asked != 0 && asked < MIN_EXPIRES {
        return Err(
            Reply::new(StatusCode::new(423).unwrap_or(StatusCode::BAD_REQUEST))
                .header(HeaderName::MinExpires, MIN_EXPIRES.to_string()),
        );
    }
    Ok(asked.min(DEFAULT_EXPIRES))
}
