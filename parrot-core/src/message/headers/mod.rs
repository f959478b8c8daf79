//! Header fields: the ordered raw list, and typed views of what the stack interprets.
//!
//! Every header is kept in order with its value as received (and its original
//! line, for byte-exact re-serialization). The headers a SIP stack reads on
//! every message — Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length,
//! Contact, Route, Record-Route — are parsed once when the message is parsed
//! (a malformed one makes the message invalid) and cached; the mutating methods
//! of [`Headers`] keep that cache in step. The rest are typed on demand.

pub mod addr;
pub mod auth;
pub mod name;
pub mod values;
pub mod via;

pub use addr::{Contacts, NameAddr};
pub use auth::{AuthParams, Challenge, Credentials};
pub use name::HeaderName;
pub use values::{CSeq, MediaType, RetryAfter};
pub use via::{MAGIC_COOKIE, Via};

use super::error::ErrorKind;
use super::scan::Pos;
use super::text::Text;
use super::uri::Host;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// One header field as it appears in the message.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderField {
    name: HeaderName,
    /// The value, whitespace-trimmed and unfolded; usually a slice of the received buffer.
    value: Bytes,
    /// The whole original line(s) without the final CRLF, while unmodified.
    raw: Option<Bytes>,
}

impl HeaderField {
    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The value as received (trimmed, with line folding removed).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// The original line, if the field came from a parsed message.
    pub fn raw(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    pub(crate) fn write(&self, out: &mut BytesMut) {
        match &self.raw {
            Some(raw) => out.put_slice(raw),
            None => {
                out.put_slice(self.name.as_str().as_bytes());
                out.put_slice(b": ");
                out.put_slice(&self.value);
            }
        }
        out.put_slice(b"\r\n");
    }

    pub(crate) fn wire_len(&self) -> usize {
        self.raw
            .as_ref()
            .map_or(self.name.as_str().len() + 2 + self.value.len(), Bytes::len)
            + 2
    }
}

impl fmt::Debug for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, String::from_utf8_lossy(&self.value))
    }
}

/// A malformed header value, found when typing it or when adding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {name} header (at byte {offset} of its value)")]
#[non_exhaustive]
pub struct HeaderError {
    /// Which header.
    pub name: HeaderName,
    /// Where in its value.
    pub offset: usize,
}

/// The typed values of the headers parsed with the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Core {
    vias: Vec<Via>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    call_id: Option<Text>,
    cseq: Option<CSeq>,
    max_forwards: Option<u8>,
    content_length: Option<usize>,
    contact_any: bool,
    contacts: Vec<NameAddr>,
    routes: Vec<NameAddr>,
    record_routes: Vec<NameAddr>,
}

/// Why a field could not be indexed: a malformed value (offset into the value) or a duplicate.
pub(crate) enum IndexError {
    Malformed(Pos),
    Duplicate,
}

impl Core {
    /// Adds one field's contribution. Only the headers the stack interprets are touched.
    fn index(&mut self, name: &HeaderName, v: &Bytes) -> Result<(), IndexError> {
        use IndexError::{Duplicate, Malformed};
        let end = v.len();
        fn once<T>(slot: &mut Option<T>, val: Result<T, Pos>) -> Result<(), IndexError> {
            if slot.is_some() {
                return Err(Duplicate);
            }
            *slot = Some(val.map_err(Malformed)?);
            Ok(())
        }
        match name {
            HeaderName::Via => via::parse_list(v, 0, end, &mut self.vias).map_err(Malformed),
            HeaderName::From => once(&mut self.from, addr::parse_one(v, 0, end)),
            HeaderName::To => once(&mut self.to, addr::parse_one(v, 0, end)),
            HeaderName::CallId => once(&mut self.call_id, values::parse_call_id(v, 0, end)),
            HeaderName::CSeq => once(&mut self.cseq, values::parse_cseq(v, 0, end)),
            // Max-Forwards is 0..=255 (RFC 4475 §3.1.2.4 treats larger values as errors).
            HeaderName::MaxForwards => once(
                &mut self.max_forwards,
                values::parse_number(v, 0, end, 255).map(|n| n as u8),
            ),
            HeaderName::ContentLength => once(
                &mut self.content_length,
                values::parse_number(v, 0, end, u64::from(u32::MAX)).map(|n| n as usize),
            ),
            HeaderName::Contact => {
                let before = self.contacts.len();
                let any = addr::parse_contacts(v, 0, end, &mut self.contacts).map_err(Malformed)?;
                // `*` stands alone (§10.2.2): not beside addresses, not twice.
                if self.contact_any || (any && before > 0) {
                    return Err(Malformed(0));
                }
                self.contact_any = any;
                Ok(())
            }
            HeaderName::Route => addr::parse_list(v, 0, end, &mut self.routes).map_err(Malformed),
            HeaderName::RecordRoute => {
                addr::parse_list(v, 0, end, &mut self.record_routes).map_err(Malformed)
            }
            _ => Ok(()),
        }
    }

    fn clear(&mut self, name: &HeaderName) {
        match name {
            HeaderName::Via => self.vias.clear(),
            HeaderName::From => self.from = None,
            HeaderName::To => self.to = None,
            HeaderName::CallId => self.call_id = None,
            HeaderName::CSeq => self.cseq = None,
            HeaderName::MaxForwards => self.max_forwards = None,
            HeaderName::ContentLength => self.content_length = None,
            HeaderName::Contact => {
                self.contacts.clear();
                self.contact_any = false;
            }
            HeaderName::Route => self.routes.clear(),
            HeaderName::RecordRoute => self.record_routes.clear(),
            _ => {}
        }
    }
}

/// The header fields of a message, in order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<HeaderField>,
    core: Core,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Headers {
        Headers {
            fields: Vec::with_capacity(n),
            core: Core::default(),
        }
    }

    /// Adds a parsed field (parser use): indexes it, keeps the original line if given.
    pub(crate) fn push_parsed(
        &mut self,
        name: HeaderName,
        value: Bytes,
        raw: Option<Bytes>,
    ) -> Result<(), (ErrorKind, Pos)> {
        self.core.index(&name, &value).map_err(|e| match e {
            IndexError::Malformed(p) => (ErrorKind::BadHeader(name.clone()), p),
            IndexError::Duplicate => (ErrorKind::DuplicateHeader(name.clone()), 0),
        })?;
        self.fields.push(HeaderField { name, value, raw });
        Ok(())
    }

    /// Copies every field named in `names` from `other`, in `other`'s order,
    /// keeping their original bytes.
    pub(crate) fn copy_from(&mut self, other: &Headers, names: &[HeaderName]) {
        for f in other.fields.iter().filter(|f| names.contains(&f.name)) {
            self.fields.push(f.clone());
        }
        for n in names {
            let _ = self.reindex(n);
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True if there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, HeaderField> {
        self.fields.iter()
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name.matches(name))
            .map(|f| f.value())
    }

    /// The first value of `name` as text.
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.matches(name))
            .map(|f| f.value())
    }

    /// True if a field named `name` is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.fields.iter().any(|f| f.name.matches(name))
    }

    fn check(name: &HeaderName, value: &Bytes) -> Result<(), HeaderError> {
        if value.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(HeaderError {
                name: name.clone(),
                offset: 0,
            });
        }
        Ok(())
    }

    fn reindex(&mut self, name: &HeaderName) -> Result<(), HeaderError> {
        self.core.clear(name);
        for f in self.fields.iter().filter(|f| f.name == *name) {
            if let Err(e) = self.core.index(&f.name, &f.value) {
                let offset = if let IndexError::Malformed(p) = e {
                    p
                } else {
                    0
                };
                return Err(HeaderError {
                    name: name.clone(),
                    offset,
                });
            }
        }
        Ok(())
    }

    fn insert_at(&mut self, at: usize, name: HeaderName, value: Bytes) -> Result<(), HeaderError> {
        Self::check(&name, &value)?;
        self.fields.insert(
            at,
            HeaderField {
                name: name.clone(),
                value,
                raw: None,
            },
        );
        if let Err(e) = self.reindex(&name) {
            self.fields.remove(at);
            // The previous state was consistent, so this cannot fail.
            let _ = self.reindex(&name);
            return Err(e);
        }
        Ok(())
    }

    /// Appends a field. Values of interpreted headers are checked (a second
    /// From, or a malformed Via, is refused).
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) -> Result<(), HeaderError> {
        let at = self.fields.len();
        self.insert_at(at, name, value.into())
    }

    /// Inserts a field before all others (a new top Via, a Record-Route).
    pub fn prepend(
        &mut self,
        name: HeaderName,
        value: impl Into<Bytes>,
    ) -> Result<(), HeaderError> {
        self.insert_at(0, name, value.into())
    }

    /// Replaces every field named `name` with one field holding `value`, at the
    /// position of the first one (or at the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) -> Result<(), HeaderError> {
        let value = value.into();
        Self::check(&name, &value)?;
        let saved = self.fields.clone();
        let at = self.fields.iter().position(|f| f.name.matches(&name));
        self.fields.retain(|f| !f.name.matches(&name));
        let at = at.unwrap_or(self.fields.len());
        self.fields.insert(
            at,
            HeaderField {
                name: name.clone(),
                value,
                raw: None,
            },
        );
        if let Err(e) = self.reindex(&name) {
            self.fields = saved;
            let _ = self.reindex(&name);
            return Err(e);
        }
        Ok(())
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !f.name.matches(name));
        self.core.clear(name);
        before - self.fields.len()
    }

    /// Replaces the top Via (the first entry of the first Via field). Used to stamp
    /// `received`/`rport` on arrival (RFC 3261 §18.2.1, RFC 3581 §4).
    pub fn set_top_via(&mut self, via: &Via) -> Result<(), HeaderError> {
        let Some(i) = self.fields.iter().position(|f| f.name == HeaderName::Via) else {
            return self.prepend(HeaderName::Via, via.to_string());
        };
        let mut entries = Vec::new();
        let v = &self.fields[i].value;
        via::parse_list(v, 0, v.len(), &mut entries).map_err(|offset| HeaderError {
            name: HeaderName::Via,
            offset,
        })?;
        let mut out = via.to_string();
        for e in entries.iter().skip(1) {
            out.push_str(", ");
            out.push_str(&e.to_string());
        }
        self.fields[i] = HeaderField {
            name: HeaderName::Via,
            value: Bytes::from(out),
            raw: None,
        };
        self.reindex(&HeaderName::Via)
    }

    /// Stamps the top Via of a received request with where it really came from:
    /// `received` when the sent-by host is not the source address (RFC 3261
    /// §18.2.1), and `rport` filled in (plus `received`, always) when the client
    /// asked for it with an empty `rport` (RFC 3581 §4). Returns true if changed.
    pub fn stamp_via(&mut self, source: std::net::SocketAddr) -> Result<bool, HeaderError> {
        let Some(top) = self.top_via() else {
            return Ok(false);
        };
        let ip = source.ip();
        let wants_rport = top.rport() == Some(None);
        if top.host.ip() == Some(ip) && !wants_rport {
            return Ok(false);
        }
        let mut via = top.clone();
        let received = match Host::from(ip) {
            // The received parameter carries a bare IPv6 address per RFC 3261's
            // grammar (`received = IPv4address / IPv6address`), no brackets.
            Host::Ipv6(a) => a.to_string(),
            other => other.to_string(),
        };
        via.set_param("received", Some(&received));
        if wants_rport {
            via.set_param("rport", Some(&source.port().to_string()));
        }
        self.set_top_via(&via)?;
        Ok(true)
    }

    /// Removes the top Via entry (a response travelling back, §18.1.2).
    pub fn pop_via(&mut self) -> Option<Via> {
        let i = self.fields.iter().position(|f| f.name == HeaderName::Via)?;
        let top = self.core.vias.first().cloned()?;
        let mut entries = Vec::new();
        let v = &self.fields[i].value;
        via::parse_list(v, 0, v.len(), &mut entries).ok()?;
        if entries.len() <= 1 {
            self.fields.remove(i);
        } else {
            let rest: Vec<String> = entries.iter().skip(1).map(Via::to_string).collect();
            self.fields[i] = HeaderField {
                name: HeaderName::Via,
                value: Bytes::from(rest.join(", ")),
                raw: None,
            };
        }
        let _ = self.reindex(&HeaderName::Via);
        Some(top)
    }

    // ---- typed access: cached ----

    /// All Via entries, top first (comma lists and repeated fields flattened).
    pub fn vias(&self) -> &[Via] {
        &self.core.vias
    }

    /// The top Via.
    pub fn top_via(&self) -> Option<&Via> {
        self.core.vias.first()
    }

    /// From.
    pub fn from(&self) -> Option<&NameAddr> {
        self.core.from.as_ref()
    }

    /// To.
    pub fn to(&self) -> Option<&NameAddr> {
        self.core.to.as_ref()
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&Text> {
        self.core.call_id.as_ref()
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<&CSeq> {
        self.core.cseq.as_ref()
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u8> {
        self.core.max_forwards
    }

    /// Content-Length.
    pub fn content_length(&self) -> Option<usize> {
        self.core.content_length
    }

    /// Contact: `*`, or the addresses (empty list when absent).
    pub fn contacts(&self) -> Contacts {
        if self.core.contact_any {
            Contacts::Any
        } else {
            Contacts::List(self.core.contacts.clone())
        }
    }

    /// The Contact addresses (empty for `*` or when absent).
    pub fn contact_list(&self) -> &[NameAddr] {
        &self.core.contacts
    }

    /// Route entries, in order.
    pub fn routes(&self) -> &[NameAddr] {
        &self.core.routes
    }

    /// Record-Route entries, in order.
    pub fn record_routes(&self) -> &[NameAddr] {
        &self.core.record_routes
    }

    // ---- typed access: on demand ----

    fn typed<T>(
        &self,
        name: HeaderName,
        f: impl Fn(&Bytes, usize, usize) -> Result<T, Pos>,
    ) -> Result<Option<T>, HeaderError> {
        match self.fields.iter().find(|x| x.name == name) {
            None => Ok(None),
            Some(x) => f(&x.value, 0, x.value.len())
                .map(Some)
                .map_err(|offset| HeaderError { name, offset }),
        }
    }

    fn token_list(&self, name: HeaderName) -> Result<Vec<Text>, HeaderError> {
        let mut out = Vec::new();
        for x in self.fields.iter().filter(|x| x.name == name) {
            values::parse_tokens(&x.value, 0, x.value.len(), &mut out).map_err(|offset| {
                HeaderError {
                    name: name.clone(),
                    offset,
                }
            })?;
        }
        Ok(out)
    }

    fn auth_list(&self, name: HeaderName) -> Result<Vec<AuthParams>, HeaderError> {
        self.fields
            .iter()
            .filter(|x| x.name == name)
            .map(|x| {
                auth::parse_auth(&x.value, 0, x.value.len()).map_err(|offset| HeaderError {
                    name: name.clone(),
                    offset,
                })
            })
            .collect()
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.typed(HeaderName::ContentType, values::parse_media_type)
    }

    /// Expires, saturating at 2³²−1.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.typed(HeaderName::Expires, |b, s, e| {
            values::parse_number(b, s, e, u64::MAX).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// Min-Expires.
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.typed(HeaderName::MinExpires, |b, s, e| {
            values::parse_number(b, s, e, u64::from(u32::MAX)).map(|n| n as u32)
        })
    }

    /// Retry-After.
    pub fn retry_after(&self) -> Result<Option<RetryAfter>, HeaderError> {
        self.typed(HeaderName::RetryAfter, values::parse_retry_after)
    }

    /// Allow: the methods, all fields combined.
    pub fn allow(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Allow)
    }

    /// Supported option tags.
    pub fn supported(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Supported)
    }

    /// Require option tags.
    pub fn require(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Require)
    }

    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::ProxyRequire)
    }

    /// Unsupported option tags.
    pub fn unsupported(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Unsupported)
    }

    /// WWW-Authenticate challenges.
    pub fn www_authenticate(&self) -> Result<Vec<Challenge>, HeaderError> {
        self.auth_list(HeaderName::WwwAuthenticate)
    }

    /// Proxy-Authenticate challenges.
    pub fn proxy_authenticate(&self) -> Result<Vec<Challenge>, HeaderError> {
        self.auth_list(HeaderName::ProxyAuthenticate)
    }

    /// Authorization credentials.
    pub fn authorization(&self) -> Result<Vec<Credentials>, HeaderError> {
        self.auth_list(HeaderName::Authorization)
    }

    /// Proxy-Authorization credentials.
    pub fn proxy_authorization(&self) -> Result<Vec<Credentials>, HeaderError> {
        self.auth_list(HeaderName::ProxyAuthorization)
    }

    /// User-Agent (product tokens and comments, as text).
    pub fn user_agent(&self) -> Option<&str> {
        self.get_str(&HeaderName::UserAgent)
    }

    /// Server (product tokens and comments, as text).
    pub fn server(&self) -> Option<&str> {
        self.get_str(&HeaderName::Server)
    }

    pub(crate) fn write(&self, out: &mut BytesMut) {
        for f in &self.fields {
            f.write(out);
        }
    }

    pub(crate) fn wire_len(&self) -> usize {
        self.fields.iter().map(HeaderField::wire_len).sum()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.fields).finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a HeaderField;
    type IntoIter = std::slice::Iter<'a, HeaderField>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use bytes::Bytes;

    fn req(via: &str) -> Message {
        Message::parse(Bytes::from(format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP second;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    #[test]
    fn stamps_received_when_host_differs() {
        let mut m = req("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1");
        assert!(
            m.headers_mut()
                .stamp_via("192.0.2.4:5060".parse().unwrap())
                .unwrap()
        );
        let v = m.headers().top_via().unwrap();
        assert_eq!(v.received(), Some("192.0.2.4"));
        assert_eq!(v.rport(), None);
        assert_eq!(m.headers().vias().len(), 2);
        assert_eq!(m.headers().vias()[1].branch(), Some("z9hG4bK2"));
    }

    #[test]
    fn no_stamp_when_sent_by_matches() {
        let mut m = req("SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK1");
        let before = m.to_bytes();
        assert!(
            !m.headers_mut()
                .stamp_via("192.0.2.4:5060".parse().unwrap())
                .unwrap()
        );
        assert_eq!(m.to_bytes(), before);
    }

    #[test]
    fn rport_filled_and_received_always_added() {
        // RFC 3581 §4: received is added even when it equals sent-by.
        let mut m = req("SIP/2.0/UDP 192.0.2.4:5060;rport;branch=z9hG4bK1");
        assert!(
            m.headers_mut()
                .stamp_via("192.0.2.4:61000".parse().unwrap())
                .unwrap()
        );
        let v = m.headers().top_via().unwrap();
        assert_eq!(v.rport(), Some(Some(61000)));
        assert_eq!(v.received(), Some("192.0.2.4"));
        let mut m6 = req("SIP/2.0/TCP [2001:db8::1];rport;branch=z9hG4bK1");
        m6.headers_mut()
            .stamp_via("[2001:db8::2]:5070".parse().unwrap())
            .unwrap();
        let again = Message::parse(m6.to_bytes()).unwrap();
        assert_eq!(
            again.headers().top_via().unwrap().received(),
            Some("2001:db8::2")
        );
    }
}
