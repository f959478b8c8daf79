//! Instant messages outside any call (RFC 3428 MESSAGE, the "pager model").

use super::{Endpoint, UaError};
use crate::auth::{DigestClient, authorize};
use crate::message::{HeaderName, Method, Request, Response, Uri};
use bytes::Bytes;

/// A MESSAGE to send ([`Endpoint::message`]): set who it is from, its body
/// and credentials, then [`MessageRequest::send`].
#[derive(Debug)]
pub struct MessageRequest {
    endpoint: Endpoint,
    to: Uri,
    from: Option<Uri>,
    body: (String, Bytes),
    credentials: Option<(String, String)>,
}

impl Endpoint {
    /// A MESSAGE (RFC 3428) to `to` (e.g. `sip:bob@example.com`), sent
    /// outside any call; the text is `text/plain` until
    /// [`MessageRequest::body`] says otherwise. It is routed like a dial (RFC
    /// 3263, the outbound proxy).
    pub fn message(&self, to: &str, text: &str) -> Result<MessageRequest, UaError> {
        let to = Uri::parse(to).ok_or_else(|| UaError::Unroutable(to.to_owned()))?;
        Ok(MessageRequest {
            endpoint: self.clone(),
            to,
            from: None,
            body: ("text/plain".to_owned(), Bytes::from(text.to_owned())),
            credentials: None,
        })
    }
}

impl MessageRequest {
    /// Our address of record in From (default: `sip:parrot@` the
    /// recipient's host).
    pub fn from(mut self, aor: &str) -> Result<MessageRequest, UaError> {
        self.from = Some(Uri::parse(aor).ok_or_else(|| UaError::BadRequest(aor.to_owned()))?);
        Ok(self)
    }

    /// The body and its Content-Type (RFC 3428 §7: any MIME type).
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> MessageRequest {
        self.body = (content_type.to_owned(), body.into());
        self
    }

    /// Answers a 401/407 challenge with these credentials.
    pub fn credentials(mut self, user: &str, password: &str) -> MessageRequest {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Sends it and waits for the final response (a 2xx means delivered to
    /// the recipient or accepted by a server for it).
    pub async fn send(self) -> Result<Response, UaError> {
        let entropy = crate::entropy::global();
        let from = match self.from {
            Some(f) => f,
            None => {
                let host = self
                    .to
                    .as_sip()
                    .map(|s| s.host.to_string())
                    .ok_or_else(|| UaError::Unroutable(self.to.to_string()))?;
                Uri::parse(&format!("sip:parrot@{host}"))
                    .ok_or_else(|| UaError::Unroutable(self.to.to_string()))?
            }
        };
        let bad = |e: crate::message::HeaderError| UaError::BadRequest(e.to_string());
        let mut req = Request::new(Method::Message, self.to.clone());
        let h = req.headers_mut();
        h.push(HeaderName::MaxForwards, "70").map_err(bad)?;
        h.push(HeaderName::From, format!("<{from}>;tag={}", entropy.tag()))
            .map_err(bad)?;
        h.push(HeaderName::To, format!("<{}>", self.to))
            .map_err(bad)?;
        h.push(HeaderName::CallId, entropy.call_id("parrot"))
            .map_err(bad)?;
        h.push(HeaderName::CSeq, "1 MESSAGE").map_err(bad)?;
        h.push(HeaderName::ContentType, self.body.0.clone())
            .map_err(bad)?;
        req.set_body(self.body.1.clone());
        let resp = self.endpoint.send_request(req.clone()).await?;
        let Some((user, password)) = self.credentials else {
            return Ok(resp);
        };
        if !matches!(resp.status().as_u16(), 401 | 407) {
            return Ok(resp);
        }
        let mut client = DigestClient::new(user, password);
        authorize(&mut req, &resp, &mut client)
            .map_err(|e| UaError::BadRequest(format!("challenge: {e}")))?;
        let _ = req.headers_mut().remove(&HeaderName::Via);
        self.endpoint.send_request(req).await
    }
}
