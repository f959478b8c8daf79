//! Authentication headers (RFC 3261 §20.7, §20.27, §20.28, §20.44; RFC 7616/8760):
//! WWW-Authenticate and Proxy-Authenticate carry a [`Challenge`]; Authorization and
//! Proxy-Authorization carry [`Credentials`]. Both are `scheme param=value, …`.

use crate::message::scan::{Cursor, Pos, is_token, unquote};
use crate::message::text::Text;
use bytes::Bytes;
use std::fmt;

/// A scheme followed by comma-separated `name=value` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// The scheme, normally `Digest`.
    pub scheme: Text,
    /// Parameters in order; values keep their quotes as received.
    pub params: Vec<(Text, Text)>,
}

/// A challenge (WWW-Authenticate / Proxy-Authenticate).
pub type Challenge = AuthParams;
/// Credentials (Authorization / Proxy-Authorization).
pub type Credentials = AuthParams;

impl AuthParams {
    /// The value of parameter `name` (case-insensitive), quotes removed.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_case(name))
            .map(|(_, v)| unquote(v))
    }

    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// `nonce`.
    pub fn nonce(&self) -> Option<&str> {
        self.param("nonce")
    }

    /// `algorithm` (MD5 when absent, RFC 2617).
    pub fn algorithm(&self) -> &str {
        self.param("algorithm").unwrap_or("MD5")
    }
}

impl fmt::Display for AuthParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, (n, v)) in self.params.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { " " } else { ", " })?;
        }
        Ok(())
    }
}

pub(crate) fn parse_auth(buf: &Bytes, start: usize, end: usize) -> Result<AuthParams, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    let scheme = c.token()?;
    let mut params = Vec::new();
    let (s, e) = c.take_while(crate::message::scan::is_ws);
    if s == e {
        c.ws();
        if c.at_end() {
            return Ok(AuthParams { scheme, params });
        }
        return c.err();
    }
    loop {
        c.ws();
        let name = c.token()?;
        c.sep(b'=')?;
        let value = if c.peek() == Some(b'"') {
            let s = c.pos();
            c.quoted()?;
            c.utf8(s, c.pos())?
        } else {
            let (s, e) = c.take_while(|b| is_token(b) || b == b'/' || b == b':');
            if s == e {
                return c.err();
            }
            c.ascii(s, e)
        };
        params.push((name, value));
        c.ws();
        if c.at_end() {
            return Ok(AuthParams { scheme, params });
        }
        if !c.eat(b',') {
            return c.err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest() {
        let v = Bytes::from_static(b"Digest username=\"user\", realm=\"example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\", uri=\"sip:example.com\", response=\"dfe56131d1958046689d83306477ecc\", algorithm=MD5, qop=auth, nc=00000001");
        let a = parse_auth(&v, 0, v.len()).unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.realm(), Some("example.com"));
        assert_eq!(a.param("NC"), Some("00000001"));
        assert_eq!(a.param("opaque"), Some(""));
        assert_eq!(a.algorithm(), "MD5");
        let again = Bytes::from(a.to_string());
        assert_eq!(parse_auth(&again, 0, again.len()).unwrap(), a);
        let bad = Bytes::from_static(b"Digest realm=");
        assert!(parse_auth(&bad, 0, bad.len()).is_err());
    }
}
