//! A minimal registrar (RFC 3261 §10.3) with bindings kept in memory, and
//! location lookup for routing calls to registered users.

use super::reply::Reply;
use crate::message::{Contacts, HeaderName, Request, StatusCode, Uri};
use std::collections::HashMap;
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

    /// Handles a REGISTER (§10.3 steps 5–8) at time `now` (Unix seconds).
    pub(crate) fn handle(&self, req: &Request, now: u64) -> Reply {
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
            r.handle(&register("<sip:alice@10.0.0.1:5060>", "3600", 1), 1000)
                .status(),
            StatusCode::OK
        );
        assert_eq!(r.lookup(&aor, 1000).len(), 1);
        assert!(r.lookup(&aor, 4601).is_empty(), "expired");
        assert_eq!(
            r.handle(&register("<sip:alice@10.0.0.2>;q=0.9", "3600", 2), 1000)
                .status(),
            StatusCode::OK
        );
        assert_eq!(r.lookup(&aor, 1000).len(), 2);
        assert_eq!(
            r.handle(&register("<sip:alice@10.0.0.1:5060>", "30", 3), 1000)
                .status()
                .as_u16(),
            423
        );
        assert_eq!(
            r.handle(&register("*", "0", 4), 1000).status(),
            StatusCode::OK
        );
        assert!(r.lookup(&aor, 1000).is_empty());
        assert_eq!(
            r.handle(&register("*", "60", 5), 1000).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
