//! SIP messages: model, parser and serializer (RFC 3261 §7, §20, §25).
//!
//! ```
//! use parrot_core::message::{Message, Method};
//! use bytes::Bytes;
//!
//! let wire = Bytes::from_static(b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
//!     Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\n\
//!     From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
//!     Call-ID: a84b4c76e66710\r\nCSeq: 63104 OPTIONS\r\nContent-Length: 0\r\n\r\n");
//! let msg = Message::parse(wire.clone())?;
//! let req = msg.as_request().expect("a request");
//! assert_eq!(*req.method(), Method::Options);
//! assert_eq!(req.headers().from().and_then(|f| f.tag()), Some("1928301774"));
//! assert_eq!(req.headers().top_via().and_then(|v| v.branch()), Some("z9hG4bK776asdhds"));
//! assert_eq!(msg.to_bytes(), wire); // unmodified: byte-exact
//! # Ok::<(), parrot_core::message::ParseError>(())
//! ```

pub mod error;
pub mod framing;
pub mod headers;
pub mod method;
mod parse;
mod reject;
mod scan;
pub(crate) use scan::is_token;
pub mod status;
pub mod text;
pub mod uri;

pub use error::{ErrorKind, ParseError};
pub use framing::{Framed, frame};
pub use headers::{
    AuthParams, CSeq, Challenge, Contacts, Credentials, HeaderError, HeaderField, HeaderName,
    Headers, MediaType, NameAddr, RetryAfter, Via,
};
pub use method::Method;
pub use reject::bad_request_for;
pub use scan::{ParamIter, Params};
pub use status::StatusCode;
pub use text::Text;
pub use uri::{Host, SipUri, TelUri, Uri};

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

/// The SIP version of a message (`SIP/2.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
}

impl Version {
    /// SIP/2.0, the only version this stack speaks. Others are parsed so that
    /// a UA can answer 505 (RFC 4475 §3.1.2.16).
    pub const SIP_2_0: Version = Version { major: 2, minor: 0 };
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/{}.{}", self.major, self.minor)
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Headers,
    body: Bytes,
    /// The received Request-Line, while unmodified.
    start_raw: Option<Bytes>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    version: Version,
    status: StatusCode,
    reason: Bytes,
    headers: Headers,
    body: Bytes,
    start_raw: Option<Bytes>,
}

/// A SIP message: a request or a response.
// Requests are larger (the Request-URI); both variants are common, and boxing
// would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Request {
    /// A new SIP/2.0 request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            version: Version::SIP_2_0,
            headers: Headers::with_capacity(10),
            body: Bytes::new(),
            start_raw: None,
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Replaces the Request-URI.
    pub fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
        self.start_raw = None;
    }

    /// The SIP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to modify.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Sets the body and its Content-Length.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
        set_content_length(&mut self.headers, self.body.len());
    }

    /// The message in wire format.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.wire_len_hint());
        match &self.start_raw {
            Some(raw) => out.put_slice(raw),
            None => {
                out.put_slice(self.method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(self.uri.to_string().as_bytes());
                out.put_u8(b' ');
                out.put_slice(self.version.to_string().as_bytes());
            }
        }
        out.put_slice(b"\r\n");
        finish(&mut out, &self.headers, &self.body);
        out.freeze()
    }

    /// A response to this request: Via, From, To, Call-ID and CSeq copied as
    /// RFC 3261 §8.2.6.2 requires. The caller adds the To tag where one is due
    /// (every response but 100 outside a dialog) with [`Response::set_to_tag`].
    pub fn response(&self, status: StatusCode) -> Response {
        let mut r = Response::new(status);
        r.headers.copy_from(
            &self.headers,
            &[
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
            ],
        );
        r
    }

    fn wire_len_hint(&self) -> usize {
        self.start_raw.as_ref().map_or(96, Bytes::len)
            + self.headers.wire_len()
            + self.body.len()
            + 32
    }
}

impl Response {
    /// A new SIP/2.0 response with the canonical reason phrase.
    pub fn new(status: StatusCode) -> Response {
        Response {
            version: Version::SIP_2_0,
            status,
            reason: Bytes::from_static(status.canonical_reason().as_bytes()),
            headers: Headers::with_capacity(10),
            body: Bytes::new(),
            start_raw: None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason phrase (lossy if it is not UTF-8).
    pub fn reason(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.reason)
    }

    /// Replaces the reason phrase (CR and LF are removed).
    pub fn set_reason(&mut self, reason: &str) {
        let clean: String = reason
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect();
        self.reason = Bytes::from(clean);
        self.start_raw = None;
    }

    /// Adds `tag` to the To header unless it already has one. Returns false if
    /// there is no To header.
    ///
    /// The value keeps the request's bytes, with `;tag=` appended (RFC 3261
    /// §8.2.6.2: the response's To is the request's, plus the tag): header
    /// parameters come last in both forms of the value, after the `>` of a
    /// name-addr or the URI of an addr-spec (§20, §25.1). Should the result
    /// not parse, the value is printed anew from its parsed form.
    pub fn set_to_tag(&mut self, tag: &str) -> bool {
        let Some(to) = self.headers.to() else {
            return false;
        };
        if to.tag().is_some() {
            return true;
        }
        let fallback = to.clone();
        let plain = to.params.is_empty() && !tag.is_empty() && tag.bytes().all(is_token);
        if let Some(raw) = self.headers.get(&HeaderName::To) {
            let raw = raw.trim_ascii_end();
            let mut tagged = Vec::with_capacity(raw.len() + 5 + tag.len());
            tagged.extend_from_slice(raw);
            tagged.extend_from_slice(b";tag=");
            tagged.extend_from_slice(tag.as_bytes());
            if plain {
                // No parameters before: the tag is the only one after, so the
                // value parses to the request's To with the tag (a test holds
                // the two side by side), and is not parsed again.
                self.headers
                    .set_to_parsed(Bytes::from(tagged), fallback.with_tag(tag));
                return true;
            }
            if self.headers.set(HeaderName::To, tagged).is_ok() {
                return true;
            }
        }
        // A name-addr we printed ourselves is always a valid To value.
        let _ = self
            .headers
            .set(HeaderName::To, fallback.with_tag(tag).to_string());
        true
    }

    /// The SIP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to modify.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Sets the body and its Content-Length.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
        set_content_length(&mut self.headers, self.body.len());
    }

    /// The message in wire format.
    pub fn to_bytes(&self) -> Bytes {
        let hint = self.start_raw.as_ref().map_or(64, Bytes::len)
            + self.headers.wire_len()
            + self.body.len()
            + 32;
        let mut out = BytesMut::with_capacity(hint);
        match &self.start_raw {
            Some(raw) => out.put_slice(raw),
            None => {
                // Written into the buffer, not through two `to_string`s
                // (two allocations for every response we send).
                let _ = write!(out, "{} {} ", self.version, self.status);
                out.put_slice(&self.reason);
            }
        }
        out.put_slice(b"\r\n");
        finish(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

fn set_content_length(headers: &mut Headers, len: usize) {
    // A decimal number is always a valid Content-Length value.
    let _ = headers.set(HeaderName::ContentLength, len.to_string());
}

/// Writes the headers, a Content-Length if none is there (RFC 3261 §18.3 requires
/// it on streams; §20.14 recommends it everywhere), the blank line and the body.
fn finish(out: &mut BytesMut, headers: &Headers, body: &Bytes) {
    headers.write(out);
    if headers.content_length().is_none() {
        // Formatted into the buffer itself, not into a string first.
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

impl Message {
    /// Parses one message occupying `buf` (a datagram, or one frame of a stream
    /// as cut by [`frame`]).
    ///
    /// Without Content-Length the body is the rest of the buffer; with it, the
    /// body is exactly that long and bytes after it are ignored (RFC 3261 §18.3),
    /// and a shorter body is an error.
    ///
    /// Every header the stack interprets (Via, From, To, Call-ID, CSeq,
    /// Max-Forwards, Content-Length, Contact, Route, Record-Route) is parsed and
    /// checked, and a request's CSeq method must match its method; the typed
    /// values are kept for the accessors. This is what the transports use.
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        // Headers typed and checked, and the CSeq method (what `validate` checks).
        parse::parse(buf, true)
    }

    /// A request's CSeq method must be its method (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.17–18).
    fn check_cseq_method(&self) -> Result<(), ParseError> {
        if let Message::Request(r) = self {
            if r.headers.cseq().is_some_and(|c| c.method != r.method) {
                return Err(ParseError::new(ErrorKind::CSeqMismatch, 0));
            }
        }
        Ok(())
    }

    /// Parses the start line, the header lines and the body, but types the
    /// interpreted headers only when first read. Cheaper where a message is
    /// only routed or only a few headers are read (a proxy, a load balancer);
    /// a malformed value then reads as absent, and [`Message::validate`]
    /// reports it.
    pub fn parse_lazy(buf: Bytes) -> Result<Message, ParseError> {
        parse::parse(buf, false)
    }

    /// Checks what [`Message::parse`] checks beyond the framing: every
    /// interpreted header well-formed, and the CSeq method equal to the
    /// request method (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.17–18).
    pub fn validate(&self) -> Result<(), ParseError> {
        self.headers()
            .validate()
            .map_err(|(name, at)| ParseError::new(ErrorKind::BadHeader(name), at))?;
        self.check_cseq_method()
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => r.headers(),
            Message::Response(r) => r.headers(),
        }
    }

    /// The headers, to modify.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => r.headers_mut(),
            Message::Response(r) => r.headers_mut(),
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => r.body(),
            Message::Response(r) => r.body(),
        }
    }

    /// The SIP version.
    pub fn version(&self) -> Version {
        match self {
            Message::Request(r) => r.version(),
            Message::Response(r) => r.version(),
        }
    }

    /// The message in wire format. A parsed, unmodified message comes out
    /// byte for byte as it came in (given it carried Content-Length).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    /// Checks the headers RFC 3261 §8.1.1 makes mandatory in every request and
    /// response: To, From, CSeq, Call-ID and Via. A request failing this gets 400
    /// (RFC 4475 §3.3.1). Max-Forwards is not required: RFC 2543 peers omit it.
    pub fn check_mandatory(&self) -> Result<(), HeaderName> {
        check_mandatory(self.headers())
    }
}

/// [`Message::check_mandatory`] of a message's headers (a request checked
/// where it is borrowed, without a copy to make it a [`Message`]).
pub(crate) fn check_mandatory(h: &Headers) -> Result<(), HeaderName> {
    let missing = if h.to().is_none() {
        Some(HeaderName::To)
    } else if h.from().is_none() {
        Some(HeaderName::From)
    } else if h.call_id().is_none() {
        Some(HeaderName::CallId)
    } else if h.cseq().is_none() {
        Some(HeaderName::CSeq)
    } else if h.vias().is_empty() {
        Some(HeaderName::Via)
    } else {
        None
    };
    match missing {
        Some(name) => Err(name),
        None => Ok(()),
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}
