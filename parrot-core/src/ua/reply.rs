//! Replies as values: what a handler returns for a request.

use crate::message::{HeaderName, Request, Response, StatusCode};
use bytes::Bytes;

/// A response to build: status, optional reason, extra headers, optional body.
///
/// ```
/// use parrot_core::ua::Reply;
/// use parrot_core::message::StatusCode;
/// let busy = Reply::busy_here();
/// let ok = Reply::ok().header("X-Served-By", "parrot").body("text/plain", "hello");
/// let custom: Reply = StatusCode::DECLINE.into();
/// # let _ = (busy, ok, custom);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: StatusCode,
    reason: Option<String>,
    headers: Vec<(HeaderName, String)>,
    body: Option<(String, Bytes)>,
}

macro_rules! shortcuts {
    ($($(#[$doc:meta])* $name:ident => $code:ident;)*) => {
        impl Reply {
            $( $(#[$doc])* pub fn $name() -> Reply { Reply::new(StatusCode::$code) } )*
        }
    };
}

shortcuts! {
    /// 200 OK.
    ok => OK;
    /// 180 Ringing (as a provisional reply).
    ringing => RINGING;
    /// 486 Busy Here.
    busy_here => BUSY_HERE;
    /// 403 Forbidden.
    forbidden => FORBIDDEN;
    /// 404 Not Found.
    not_found => NOT_FOUND;
    /// 480 Temporarily Unavailable.
    temporarily_unavailable => TEMPORARILY_UNAVAILABLE;
    /// 603 Decline.
    decline => DECLINE;
    /// 500 Server Internal Error.
    server_error => SERVER_INTERNAL_ERROR;
    /// 488 Not Acceptable Here.
    not_acceptable_here => NOT_ACCEPTABLE_HERE;
}

impl Reply {
    /// A reply with `status` and its canonical reason phrase.
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            reason: None,
            headers: Vec::new(),
            body: None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body's content type and bytes, if any.
    pub fn body_ref(&self) -> Option<(&str, &Bytes)> {
        self.body.as_ref().map(|(t, b)| (t.as_str(), b))
    }

    /// Uses `reason` instead of the canonical reason phrase.
    pub fn reason(mut self, reason: impl Into<String>) -> Reply {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a header (added as is; CR/LF are refused when the response is built).
    pub fn header(mut self, name: impl Into<HeaderName>, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Reply {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// Builds the response to `req`: the §8.2.6.2 headers copied, then this
    /// reply's headers and body. Headers that would be malformed are skipped
    /// with a log line rather than sent.
    pub(crate) fn to_response(&self, req: &Request) -> Response {
        let mut r = req.response(self.status);
        if let Some(reason) = &self.reason {
            r.set_reason(reason);
        }
        for (name, value) in &self.headers {
            if let Err(e) = r.headers_mut().push(name.clone(), value.clone()) {
                tracing::warn!(error = %e, "reply header dropped");
            }
        }
        if let Some((ct, body)) = &self.body {
            if let Err(e) = r.headers_mut().set(HeaderName::ContentType, ct.clone()) {
                tracing::warn!(error = %e, "reply Content-Type dropped");
            }
            r.set_body(body.clone());
        }
        r
    }
}

impl From<StatusCode> for Reply {
    fn from(status: StatusCode) -> Self {
        Reply::new(status)
    }
}

impl<E: std::fmt::Display> From<Result<Reply, E>> for Reply {
    /// `Ok(reply)` is that reply; an error becomes 500 Server Internal Error. The
    /// error is logged (`warn`), not sent: it is the application's text, not a
    /// reason phrase for the peer.
    fn from(r: Result<Reply, E>) -> Self {
        r.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "handler failed; answering 500");
            Reply::server_error()
        })
    }
}
