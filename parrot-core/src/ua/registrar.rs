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
#[derive(Debug, Clone, Default)]
pub struct Registrar {
    inner: Arc<Mutex<HashMap<String, Vec<Binding>>>>,
    min_expires: u32,
    default_expires: u32,
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
    /// The transport.
    pub transport: TransportKind,
    /// The peer's address as it reached us (its NAT's public side).
    pub remote: SocketAddr,
    /// Our address it reached.
    pub local: SocketAddr,
    /// The request's far end as the transport saw it (its connection, the
    /// address it arrived on for a wildcard UDP socket).
    pub(crate) peer: Peer,
}

impl PartialEq for Flow {
    fn eq(&self, other: &Flow) -> bool {
        (self.transport, self.remote, self.local) == (other.transport, other.remote, other.local)
    }
}

impl Flow {
    pub(crate) fn from_peer(peer: &Peer) -> Flow {
        Flow {
            transport: peer.target.kind,
            remote: peer.target.addr,
            local: peer.local,
            peer: peer.clone(),
        }
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

impl Registrar {
    /// A registrar with a minimum expiry of 60 s and a default of 3600 s.
    pub fn new() -> Registrar {
        Registrar {
            inner: Arc::default(),
            min_expires: 60,
            default_expires: 3600,
        }
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
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .flat_map(|(_, b)| b.iter().filter(|b| b.expires_at > now).cloned())
            .collect();
        v.sort_by(|a, b| b.q.unwrap_or(1.0).total_cmp(&a.q.unwrap_or(1.0)));
        v
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
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let list = map.entry(key.clone()).or_default();
        list.retain(|b| b.expires_at > now);
        match req.headers().contacts() {
            Contacts::Any => {
                // `*` only with Expires: 0 (§10.3 step 6).
                if header_expires != Some(0) {
                    return Reply::new(StatusCode::BAD_REQUEST)
                        .reason("Bad Request (Contact: * needs Expires: 0)");
                }
                list.clear();
            }
            Contacts::List(contacts) => {
                for c in contacts {
                    let expires = c
                        .expires()
                        .or(header_expires)
                        .unwrap_or(self.default_expires);
                    if expires != 0 && expires < self.min_expires {
                        return Reply::new(StatusCode::new(423).unwrap_or(StatusCode::BAD_REQUEST))
                            .header(HeaderName::MinExpires, self.min_expires.to_string());
                    }
                    if let Some(existing) = list.iter().position(|b| b.contact == c.uri) {
                        // §10.3 step 7: an older request for the same Call-ID is not applied.
                        if list[existing].call_id == call_id && list[existing].cseq >= cseq {
                            continue;
                        }
                        list.remove(existing);
                    }
                    if expires > 0 {
                        list.push(Binding {
                            contact: c.uri.clone(),
                            expires_at: now + u64::from(expires),
                            q: c.q(),
                            flow: flow.clone(),
                            call_id: call_id.clone(),
                            cseq,
                        });
                    }
                }
            }
        }
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
            map.remove(&key);
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
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{cseq}\r\nTo: <sip:alice@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\nCall-ID: reg1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n"
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
}
