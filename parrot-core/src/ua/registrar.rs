//! A minimal registrar (RFC 3261 §10.3) with bindings kept in memory, and
//! location lookup for routing calls to registered users.

use super::reply::Reply;
use super::route::Peer;
use crate::message::{Contacts, HeaderName, Request, StatusCode, Uri};
use crate::transport::TransportKind;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// One contact bound to an address of record.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The contact URI.
    pub contact: Uri,
    /// When it expires (seconds since the Unix epoch).
    pub expires_at: u64,
    /// The `q` preference, if given.
    pub q: Option<f32>,
    /// The flow the REGISTER came on: where a phone behind a NAT can be
    /// reached when its Contact cannot (pass it to
    /// [`Dial::flow`](super::Dial::flow)).
    pub flow: Flow,
    /// Call-ID and CSeq of the REGISTER that set it (§10.3 step 7).
    call_id: String,
    cseq: u32,
}

/// Bindings from address-of-record (`user@host`) to contacts. Cheap to clone
/// (shared); give one to [`EndpointBuilder::registrar`](super::EndpointBuilder::registrar)
/// and keep one to look users up.
#[derive(Debug, Clone)]
pub struct Registrar {
    inner: Arc<Mutex<Bindings>>,
    /// Voice mail counts by user, and the endpoints to tell when one changes.
    mail: Arc<Mutex<Mail>>,
    min_expires: u32,
    default_expires: u32,
    max_expires: u32,
    max_contacts_per_aor: usize,
    max_bindings: usize,
}

/// Every binding, by address of record, and how many there are.
#[derive(Debug, Default)]
struct Bindings {
    by_aor: HashMap<String, Vec<Binding>>,
    /// Bindings in `by_aor`, expired ones not yet swept included.
    total: usize,
    /// When every address of record was last swept of expired bindings
    /// (Unix seconds): at most once a second, and only at the limit.
    swept_at: Option<u64>,
}

impl Bindings {
    /// Drops the expired bindings of every address of record.
    fn sweep(&mut self, now: u64) {
        self.swept_at = Some(now);
        self.by_aor.retain(|_, list| {
            list.retain(|b| b.expires_at > now);
            !list.is_empty()
        });
        self.total = self.by_aor.values().map(Vec::len).sum();
    }
}

/// The voice messages a user has (RFC 3842 message-summary), as the
/// registrar serves them to subscribers: new and old messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// Messages not heard yet.
    pub new: u32,
    /// Messages already heard, kept.
    pub old: u32,
}

impl Mailbox {
    /// The `application/simple-message-summary` body for `account` (RFC 3842 §5).
    pub(crate) fn summary(&self, account: &str) -> String {
        let waiting = if self.new > 0 { "yes" } else { "no" };
        format!(
            "Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n",
            self.new, self.old
        )
    }
}

#[derive(Debug, Default)]
struct Mail {
    boxes: HashMap<String, Mailbox>,
    /// The cores serving this registrar: told a user's mailbox changed.
    watchers: Vec<tokio::sync::mpsc::WeakSender<super::command::Command>>,
}

/// Where a request came from and the address it arrived on: a transport,
/// the peer's address as we see it (after any NAT), our address, and for
/// TCP/TLS/WS the connection itself.
///
/// A phone behind a NAT registers a Contact naming its private address, or
/// one that its NAT mapping outlives only as long as the phone keeps the
/// flow alive (RFC 5626 §4.4 keep-alives); requests sent back on the flow
/// the REGISTER came on reach it either way (RFC 5626 §5.3, what Kamailio's
/// `fix_nated_register` and `received` do).
#[derive(Debug, Clone)]
pub struct Flow {
    /// The request's far end as the transport saw it (its connection, the
    /// address it arrived on for a wildcard UDP socket).
    pub(crate) peer: Peer,
}

impl PartialEq for Flow {
    fn eq(&self, other: &Flow) -> bool {
        (self.transport(), self.remote(), self.local())
            == (other.transport(), other.remote(), other.local())
    }
}

impl Flow {
    pub(crate) fn from_peer(peer: &Peer) -> Flow {
        Flow { peer: peer.clone() }
    }

    /// The transport.
    pub fn transport(&self) -> TransportKind {
        self.peer.target.kind
    }

    /// The peer's address as it reached us (its NAT's public side).
    pub fn remote(&self) -> SocketAddr {
        self.peer.target.addr
    }

    /// Our address it reached.
    pub fn local(&self) -> SocketAddr {
        self.peer.local
    }
}

/// Seconds since the Unix epoch, by the system clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn aor_key(uri: &Uri) -> Option<String> {
    let sip = uri.as_sip()?;
    Some(format!("{}@{}", sip.user.as_deref().unwrap_or(""), sip.host).to_ascii_lowercase())
}

impl Default for Registrar {
    /// The same as [`Registrar::new`].
    fn default() -> Registrar {
        Registrar::new()
    }
}

impl Registrar {
    /// The longest registration granted unless [`Registrar::with_max_expires`] says
    /// otherwise: a day.
    pub const DEFAULT_MAX_EXPIRES: u32 = 86_400;

    /// The most contacts bound to one address of record unless
    /// [`Registrar::with_max_contacts_per_aor`] says otherwise.
    pub const DEFAULT_MAX_CONTACTS_PER_AOR: usize = 10;

    /// The most bindings in all unless [`Registrar::with_max_bindings`] says otherwise.
    pub const DEFAULT_MAX_BINDINGS: usize = 100_000;

    /// A registrar with a minimum expiry of 60 s, a default of 3600 s and a maximum of
    /// [`Registrar::DEFAULT_MAX_EXPIRES`], and at most
    /// [`Registrar::DEFAULT_MAX_CONTACTS_PER_AOR`] contacts per address of record and
    /// [`Registrar::DEFAULT_MAX_BINDINGS`] in all.
    pub fn new() -> Registrar {
        Registrar {
            inner: Arc::default(),
            mail: Arc::default(),
            min_expires: 60,
            default_expires: 3600,
            max_expires: Registrar::DEFAULT_MAX_EXPIRES,
            max_contacts_per_aor: Registrar::DEFAULT_MAX_CONTACTS_PER_AOR,
            max_bindings: Registrar::DEFAULT_MAX_BINDINGS,
        }
    }

    /// The most contacts one address of record may have bound at once. A REGISTER
    /// that would add more gets 503 "Too Many Registered Contacts" (what Kamailio's
    /// registrar answers at its `max_contacts`) and changes nothing; refreshing or
    /// removing contacts already bound works at the limit.
    pub fn with_max_contacts_per_aor(mut self, n: usize) -> Registrar {
        self.max_contacts_per_aor = n;
        self
    }

    /// The most bindings kept in all (every address of record together), so that
    /// REGISTERs for ever new users cannot grow the table without bound. A REGISTER
    /// that would add bindings beyond it gets 503 with `Retry-After` (RFC 3261
    /// §21.5.4: the server is temporarily unable to take it) and changes nothing;
    /// refreshes and removals work at the limit.
    pub fn with_max_bindings(mut self, n: usize) -> Registrar {
        self.max_bindings = n;
        self
    }

    /// Bindings kept now (all addresses of record; expired ones not yet dropped count).
    pub fn binding_count(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// The longest expiry granted; longer requests are shortened to it (RFC 3261 §10.3
    /// step 7), and the 200 says so.
    pub fn with_max_expires(mut self, seconds: u32) -> Registrar {
        self.max_expires = seconds;
        self
    }

    /// The shortest expiry accepted; shorter requests get 423 Interval Too Brief.
    pub fn with_min_expires(mut self, seconds: u32) -> Registrar {
        self.min_expires = seconds;
        self
    }

    /// The live contacts of an address of record (e.g. `sip:alice@example.com`), best `q` first.
    pub fn lookup(&self, aor: &Uri, now: u64) -> Vec<Binding> {
        let Some(key) = aor_key(aor) else {
            return Vec::new();
        };
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<Binding> = map
            .by_aor
            .get(&key)
            .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.unwrap_or(1.0).total_cmp(&a.q.unwrap_or(1.0)));
        v
    }

    /// The live contacts of the user `user` at any domain, by the system
    /// clock, best `q` first: what a server looking up a callee by the
    /// Request-URI's user part wants.
    pub fn contacts(&self, user: &str) -> Vec<Binding> {
        let now = unix_now();
        let prefix = format!("{}@", user.to_ascii_lowercase());
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<Binding> = map
            .by_aor
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .flat_map(|(_, b)| b.iter().filter(|b| b.expires_at > now).cloned())
            .collect();
        v.sort_by(|a, b| b.q.unwrap_or(1.0).total_cmp(&a.q.unwrap_or(1.0)));
        v
    }

    /// Sets `user`'s voice mail counts; the phones subscribed to its
    /// message-summary (RFC 3842, message waiting indication) get a NOTIFY.
    pub fn set_mailbox(&self, user: &str, mailbox: Mailbox) {
        let user = user.to_ascii_lowercase();
        let mut mail = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
        if mail.boxes.insert(user.clone(), mailbox) == Some(mailbox) {
            return;
        }
        // An endpoint gone (its core dropped) is forgotten.
        mail.watchers.retain(|w| w.strong_count() > 0);
        for w in mail.watchers.iter().filter_map(|w| w.upgrade()) {
            let _ = w.try_send(super::command::Command::MailboxChanged { user: user.clone() });
        }
    }

    /// `user`'s voice mail counts (none set: zero).
    pub fn mailbox(&self, user: &str) -> Mailbox {
        let mail = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
        mail.boxes
            .get(&user.to_ascii_lowercase())
            .copied()
            .unwrap_or_default()
    }

    /// An endpoint's core serves this registrar: it hears of mailbox changes.
    pub(crate) fn watch(&self, core: tokio::sync::mpsc::WeakSender<super::command::Command>) {
        let mut mail = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
        mail.watchers.push(core);
    }

    /// Handles a REGISTER (§10.3 steps 5–8) at time `now` (Unix seconds)
    /// that came on `flow`.
    pub(crate) fn handle(&self, req: &Request, now: u64, flow: &Flow) -> Reply {
        let Some(key) = req.headers().to().and_then(|t| aor_key(&t.uri)) else {
            return Reply::new(StatusCode::BAD_REQUEST).reason("Bad Request (To is not a SIP URI)");
        };
        let call_id = req
            .headers()
            .call_id()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let cseq = req.headers().cseq().map_or(0, |c| c.seq);
        let header_expires = match req.headers().expires() {
            Ok(e) => e,
            Err(_) => Some(self.default_expires),
        };
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let map = &mut *guard;
        let list = map.by_aor.entry(key.clone()).or_default();
        let before = list.len();
        list.retain(|b| b.expires_at > now);
        map.total -= before - list.len();
        match req.headers().contacts() {
            Contacts::Any => {
                // `*` only with Expires: 0 (§10.3 step 6).
                if header_expires != Some(0) {
                    return Reply::new(StatusCode::BAD_REQUEST)
                        .reason("Bad Request (Contact: * needs Expires: 0)");
                }
                map.total -= list.len();
                list.clear();
            }
            Contacts::List(contacts) => {
                // Each contact's expiry, checked before anything changes (§10.3 step 7
                // processes the request as a whole: a 423 binds nothing).
                let mut updates: Vec<(&Uri, u32, Option<f32>)> = Vec::with_capacity(contacts.len());
                for c in &contacts {
                    let expires = c
                        .expires()
                        .or(header_expires)
                        .unwrap_or(self.default_expires);
                    if expires != 0 && expires < self.min_expires {
                        return Reply::new(StatusCode::new(423).unwrap_or(StatusCode::BAD_REQUEST))
                            .header(HeaderName::MinExpires, self.min_expires.to_string());
                    }
                    // §10.3 step 7: the registrar may shorten the interval. Expires
                    // saturates at 2³²−1 (§20.19), a binding for 136 years without this.
                    let expires = expires.min(self.max_expires.max(self.min_expires));
                    if let Some(existing) = list.iter().find(|b| b.contact == c.uri) {
                        // §10.3 step 7: an older request for the same Call-ID is not applied.
                        if existing.call_id == call_id && existing.cseq >= cseq {
                            continue;
                        }
                    }
                    if let Some(u) = updates.iter_mut().find(|(uri, ..)| *uri == &c.uri) {
                        *u = (&c.uri, expires, c.q()); // the last one for a URI counts
                    } else {
                        updates.push((&c.uri, expires, c.q()));
                    }
                }
                // What the bindings would come to: the limits are checked first, so a
                // refused REGISTER changes nothing.
                let bound = |uri: &Uri| list.iter().any(|b| &b.contact == uri);
                let added = updates
                    .iter()
                    .filter(|(uri, e, _)| *e > 0 && !bound(uri))
                    .count();
                let removed = updates
                    .iter()
                    .filter(|(uri, e, _)| *e == 0 && bound(uri))
                    .count();
                if added > 0 && list.len() + added - removed > self.max_contacts_per_aor {
                    tracing::info!(aor = %key, max = self.max_contacts_per_aor,
                        "REGISTER refused: too many contacts for one address of record");
                    if list.is_empty() {
                        map.by_aor.remove(&key);
                    }
                    return Reply::new(StatusCode::SERVICE_UNAVAILABLE)
                        .reason("Too Many Registered Contacts");
                }
                let growth = added.saturating_sub(removed);
                if growth > 0 && map.total + growth > self.max_bindings {
                    // Expired bindings of other users may make room (swept at most once a
                    // second, so a flood at the limit costs one pass a second).
                    if map.swept_at != Some(now) {
                        map.sweep(now);
                    }
                    if map.total + growth > self.max_bindings {
                        tracing::warn!(
                            max = self.max_bindings,
                            "REGISTER refused: the registrar holds its maximum of bindings"
                        );
                        if map.by_aor.get(&key).is_some_and(Vec::is_empty) {
                            map.by_aor.remove(&key);
                        }
                        return Reply::new(StatusCode::SERVICE_UNAVAILABLE)
                            .reason("Service Unavailable (too many registrations)")
                            .header(HeaderName::RetryAfter, "60");
                    }
                }
                let list = map.by_aor.entry(key.clone()).or_default();
                for (uri, expires, q) in updates {
                    if let Some(existing) = list.iter().position(|b| &b.contact == uri) {
                        list.remove(existing);
                        map.total -= 1;
                    }
                    if expires > 0 {
                        list.push(Binding {
                            contact: uri.clone(),
                            expires_at: now.saturating_add(u64::from(expires)),
                            q,
                            flow: flow.clone(),
                            call_id: call_id.clone(),
                            cseq,
                        });
                        map.total += 1;
                    }
                }
            }
        }
        let list = map.by_aor.entry(key.clone()).or_default();
        // §10.3 step 8: the 200 lists every current binding with its expiry.
        let mut reply = Reply::ok();
        for b in list.iter() {
            reply = reply.header(
                HeaderName::Contact,
                format!(
                    "<{}>;expires={}",
                    b.contact,
                    b.expires_at.saturating_sub(now)
                ),
            );
        }
        if list.is_empty() {
            map.by_aor.remove(&key);
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;

    fn flow() -> Flow {
        Flow::from_peer(&Peer {
            target: crate::transport::Target::new(
                TransportKind::Udp,
                "203.0.113.2:40000".parse().unwrap(),
            ),
            local: "192.0.2.1:5060".parse().unwrap(),
        })
    }

    fn register(contact: &str, expires: &str, cseq: u32) -> Request {
        register_as("alice", contact, expires, cseq)
    }

    fn register_as(user: &str, contact: &str, expires: &str, cseq: u32) -> Request {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{cseq}\r\nTo: <sip:{user}@example.com>\r\nFrom: <sip:{user}@example.com>;tag=1\r\nCall-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(Bytes::from(text)).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn bind_lookup_refresh_remove() {
        let r = Registrar::new();
        let aor = Uri::parse("sip:alice@example.com").unwrap();
        assert_eq!(
            r.handle(
                &register("<sip:alice@10.0.0.1:5060>", "3600", 1),
                1000,
                &flow()
            )
            .status(),
            StatusCode::OK
        );
        assert_eq!(r.lookup(&aor, 1000).len(), 1);
        assert!(r.lookup(&aor, 4601).is_empty(), "expired");
        assert_eq!(
            r.handle(
                &register("<sip:alice@10.0.0.2>;q=0.9", "3600", 2),
                1000,
                &flow()
            )
            .status(),
            StatusCode::OK
        );
        assert_eq!(r.lookup(&aor, 1000).len(), 2);
        assert_eq!(
            r.handle(
                &register("<sip:alice@10.0.0.1:5060>", "30", 3),
                1000,
                &flow()
            )
            .status()
            .as_u16(),
            423
        );
        assert_eq!(
            r.handle(&register("*", "0", 4), 1000, &flow()).status(),
            StatusCode::OK
        );
        assert!(r.lookup(&aor, 1000).is_empty());
        assert_eq!(
            r.handle(&register("*", "60", 5), 1000, &flow()).status(),
            StatusCode::BAD_REQUEST
        );
    }

    /// The `expires` of each Contact in the 200 to `req`.
    fn granted(reply: &Reply, req: &Request) -> Vec<Option<u32>> {
        let response = reply.to_response(req);
        assert_eq!(response.status(), StatusCode::OK);
        response
            .headers()
            .contact_list()
            .iter()
            .map(|c| c.expires())
            .collect()
    }

    #[test]
    fn a_huge_expires_is_shortened_to_the_maximum() {
        // RFC 3261 §10.3 step 7: the registrar may shorten the interval. Before, 2^32-1
        // (and anything larger, which the header saturates to) was granted: a binding for
        // 136 years.
        let r = Registrar::new();
        let aor = Uri::parse("sip:alice@example.com").unwrap();
        for (contact, expires) in [
            ("<sip:alice@10.0.0.1>", "4294967295"),
            ("<sip:alice@10.0.0.1>", "10000000000000"), // RFC 4475 scalar02's
            ("<sip:alice@10.0.0.1>;expires=4294967296", "60"),
        ] {
            let req = register(contact, expires, 1);
            let reply = r.handle(&req, 1000, &flow());
            assert_eq!(
                granted(&reply, &req),
                vec![Some(Registrar::DEFAULT_MAX_EXPIRES)],
                "{contact} {expires}"
            );
            let bindings = r.lookup(&aor, 1000);
            assert_eq!(
                bindings.iter().map(|b| b.expires_at).collect::<Vec<_>>(),
                vec![1000 + u64::from(Registrar::DEFAULT_MAX_EXPIRES)]
            );
            r.handle(&register("*", "0", 2), 1000, &flow());
        }
        // Beyond u64 the header does not read as a number at all: malformed, so the default
        // (RFC 3261 §20.19; RFC 4475 §3.1.2.4 suggests the same).
        let req = register("<sip:alice@10.0.0.1>", "99999999999999999999999", 1);
        assert_eq!(
            granted(&r.handle(&req, 1000, &flow()), &req),
            vec![Some(3600)]
        );
        let r = Registrar::new().with_max_expires(120);
        let req = register("<sip:alice@10.0.0.1>", "3600", 1);
        assert_eq!(
            granted(&r.handle(&req, 1000, &flow()), &req),
            vec![Some(120)]
        );
        // A maximum below the minimum does not make every request too brief.
        let r = Registrar::new().with_min_expires(600).with_max_expires(120);
        let req = register("<sip:alice@10.0.0.1>", "3600", 1);
        assert_eq!(
            granted(&r.handle(&req, 1000, &flow()), &req),
            vec![Some(600)]
        );
    }

    #[test]
    fn expiry_arithmetic_does_not_overflow() {
        // `now + expires` overflowed (a panic in debug builds) with a clock near the end of u64.
        let r = Registrar::new();
        let now = u64::MAX - 10;
        let req = register("<sip:alice@10.0.0.1>", "3600", 1);
        let reply = r.handle(&req, now, &flow());
        assert_eq!(reply.status(), StatusCode::OK);
        let aor = Uri::parse("sip:alice@example.com").unwrap();
        assert_eq!(r.lookup(&aor, now).len(), 1);
    }

    #[test]
    fn contacts_per_aor_are_bounded_and_refreshes_work_at_the_limit() {
        // Before there was no bound: one user could bind any number of contacts.
        let r = Registrar::new().with_max_contacts_per_aor(3);
        let aor = Uri::parse("sip:alice@example.com").unwrap();
        let code = |req: &Request| r.handle(req, 1000, &flow()).status().as_u16();
        for i in 1..=3 {
            assert_eq!(
                code(&register(&format!("<sip:alice@10.0.0.{i}>"), "600", i)),
                200
            );
        }
        let fourth = register("<sip:alice@10.0.0.4>", "600", 4);
        let reply = r.handle(&fourth, 1000, &flow());
        assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = reply.to_response(&fourth);
        assert_eq!(response.reason(), "Too Many Registered Contacts");
        assert_eq!(r.lookup(&aor, 1000).len(), 3, "nothing changed");
        // Refreshing one already bound works at the limit.
        assert_eq!(code(&register("<sip:alice@10.0.0.2>", "900", 5)), 200);
        // A REGISTER that removes one and adds another keeps the count: fine.
        assert_eq!(
            code(&register(
                "<sip:alice@10.0.0.1>;expires=0, <sip:alice@10.0.0.4>",
                "600",
                6
            )),
            200
        );
        let mut hosts: Vec<String> = r
            .lookup(&aor, 1000)
            .iter()
            .map(|b| b.contact.to_string())
            .collect();
        hosts.sort();
        assert_eq!(
            hosts,
            [
                "sip:alice@10.0.0.2",
                "sip:alice@10.0.0.3",
                "sip:alice@10.0.0.4"
            ]
        );
        // Two new at once when one place is left: refused as a whole.
        assert_eq!(
            code(&register("<sip:alice@10.0.0.3>;expires=0", "600", 7)),
            200
        );
        assert_eq!(
            code(&register(
                "<sip:alice@10.0.0.5>, <sip:alice@10.0.0.6>",
                "600",
                8
            )),
            503
        );
        assert_eq!(r.lookup(&aor, 1000).len(), 2);
        assert_eq!(r.binding_count(), 2);
        // Other users have their own limit.
        assert_eq!(
            code(&register_as("bob", "<sip:bob@10.0.1.1>", "600", 1)),
            200
        );
    }

    #[test]
    fn bindings_in_all_are_bounded_and_expired_ones_make_room() {
        let r = Registrar::new().with_max_bindings(5);
        let ok = |user: &str, expires: &str, now: u64| {
            let req = register_as(user, &format!("<sip:{user}@10.0.0.1>"), expires, 1);
            r.handle(&req, now, &flow())
        };
        for i in 0..5 {
            assert_eq!(ok(&format!("u{i}"), "60", 1000).status(), StatusCode::OK);
        }
        assert_eq!(r.binding_count(), 5);
        // A sixth user: 503 with Retry-After, nothing bound.
        let sixth = register_as("u5", "<sip:u5@10.0.0.1>", "600", 1);
        let reply = r.handle(&sixth, 1000, &flow());
        let response = reply.to_response(&sixth);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(&HeaderName::RetryAfter)
                .map(<[u8]>::to_vec),
            Some(b"60".to_vec())
        );
        assert_eq!(r.binding_count(), 5);
        assert!(r.contacts("u5").is_empty());
        // Refreshing a user already bound works at the limit.
        let refresh = register_as("u0", "<sip:u0@10.0.0.1>", "60", 2);
        assert_eq!(r.handle(&refresh, 1010, &flow()).status(), StatusCode::OK);
        // Once the others have expired, their places are free again.
        assert_eq!(ok("u5", "600", 1065).status(), StatusCode::OK);
        assert_eq!(r.binding_count(), 2, "u0 (refreshed) and u5");
        // Removing frees a place at once.
        let gone = register_as("u0", "*", "0", 3);
        assert_eq!(r.handle(&gone, 1066, &flow()).status(), StatusCode::OK);
        assert_eq!(r.binding_count(), 1);
    }

    #[test]
    fn a_423_for_one_contact_binds_none() {
        // Before, the contacts before the too-brief one were bound anyway.
        let r = Registrar::new();
        let aor = Uri::parse("sip:alice@example.com").unwrap();
        let req = register(
            "<sip:alice@10.0.0.1>, <sip:alice@10.0.0.2>;expires=5",
            "600",
            1,
        );
        assert_eq!(r.handle(&req, 1000, &flow()).status().as_u16(), 423);
        assert!(r.lookup(&aor, 1000).is_empty());
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn the_default_registrar_is_the_new_one() {
        // `Default` was derived: min 0 and default 0, so a REGISTER without Expires removed
        // the binding it asked for.
        let r = Registrar::default();
        let req = register("<sip:alice@10.0.0.1>", "3600", 1);
        let text = String::from_utf8_lossy(&req.to_bytes()).replace("Expires: 3600\r\n", "");
        let Ok(Message::Request(req)) = Message::parse(Bytes::from(text)) else {
            panic!("REGISTER without Expires");
        };
        assert_eq!(
            granted(&r.handle(&req, 1000, &flow()), &req),
            vec![Some(3600)]
        );
        assert_eq!(
            r.handle(&register("<sip:alice@10.0.0.1>", "30", 2), 1000, &flow())
                .status()
                .as_u16(),
            423
        );
    }
}
