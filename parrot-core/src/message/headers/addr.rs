//! name-addr / addr-spec headers: From, To (§20.20, §20.39), Contact (§20.10),
//! Route and Record-Route (§20.34, §20.30).

use crate::message::scan::{Cursor, Params, Pos, class, find_byte, is_ws};
use crate::message::text::Text;
use crate::message::uri::{Host, Uri, UriContext, parse_uri};
use bytes::Bytes;
use std::fmt;

/// `[display-name] <uri>;params` or `uri;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name: the content of a quoted string (escapes kept) or the tokens.
    pub display: Option<Text>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, …).
    pub params: Params,
}

impl NameAddr {
    /// A name-addr for `uri`, without display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    /// The `tag` parameter (From, To).
    pub fn tag(&self) -> Option<&str> {
        self.params.tag()
    }

    /// This address with `tag` set.
    pub fn with_tag(mut self, tag: &str) -> NameAddr {
        self.params = self.params.with("tag", Some(tag));
        self
    }

    /// The URI's user part (SIP) or number (TEL).
    pub fn user(&self) -> Option<&str> {
        self.uri.user()
    }

    /// The URI's host (SIP).
    pub fn host(&self) -> Option<&Host> {
        self.uri.host()
    }

    /// The `expires` parameter (Contact, §20.10), saturating at 2³²−1.
    pub fn expires(&self) -> Option<u32> {
        self.params.value("expires").and_then(parse_delta)
    }

    /// The `q` parameter (Contact), 0.0 to 1.0.
    pub fn q(&self) -> Option<f32> {
        self.params
            .value("q")
            .and_then(|q| q.parse().ok())
            .filter(|q| (0.0..=1.0).contains(q))
    }
}

/// delta-seconds; values beyond 2³²−1 saturate (RFC 3261 §20.19 asks to treat
/// malformed values as the default, which the caller applies on `None`).
pub(crate) fn parse_delta(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
    )
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{d}\" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The value of a Contact header: `*` or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (REGISTER removing all bindings).
    Any,
    /// One or more addresses.
    List(Vec<NameAddr>),
}

/// Parses one name-addr or addr-spec with its parameters at the cursor.
// Inlined (always: a hint was not taken) into its two callers, so that the
// name-addr is built where they keep it instead of copied out of a returned
// `Result` (216 B a move).
#[inline(always)]
pub(crate) fn parse_name_addr(c: &mut Cursor<'_>, buf: &Bytes) -> Result<NameAddr, Pos> {
    c.ws();
    let mut display = None;
    let angle = if c.peek() == Some(b'"') {
        display = Some(c.quoted()?);
        c.ws();
        if !c.eat(b'<') {
            return c.err();
        }
        true
    } else {
        let save = c.pos();
        let (s, e) = c.take(class::TOKEN | class::WS);
        if c.peek() == Some(b'<') {
            let words = c.bytes(s, e);
            let len = words.iter().rposition(|&b| !is_ws(b)).map_or(0, |p| p + 1);
            if len > 0 {
                display = Some(c.ascii(s, s + len));
            }
            c.eat(b'<');
            true
        } else {
            c.set_pos(save);
            false
        }
    };
    let uri = if angle {
        let start = c.pos();
        // Up to the `>`. Whitespace inside the brackets (RFC 4475 §3.1.2.13
        // badaspec) is refused by the URI parser, which must take all of it:
        // no URI character is whitespace.
        let gt = match find_byte(c.rest(), b'>') {
            Some(gt) if gt > 0 => gt,
            _ => return c.err(),
        };
        let uri = parse_uri(buf, start, start + gt, UriContext::Full)?;
        c.set_pos(start + gt + 1);
        uri
    } else {
        let start = c.pos();
        let len = c
            .rest()
            .iter()
            .position(|&b| matches!(b, b';' | b',' | b' ' | b'\t'))
            .unwrap_or(c.rest().len());
        // An addr-spec holding `?` or `,` must be in angle brackets (§20).
        if len == 0 || c.bytes(start, start + len).contains(&b'?') {
            return c.err();
        }
        let uri = parse_uri(buf, start, start + len, UriContext::Bare)?;
        c.set_pos(start + len);
        uri
    };
    let params = c.params(false)?;
    Ok(NameAddr {
        display,
        uri,
        params,
    })
}

/// Parses a single name-addr occupying `buf[start..end]`.
// Inlined for the same reason as `parse_name_addr` (From and To, every message).
#[inline(always)]
pub(crate) fn parse_one(buf: &Bytes, start: usize, end: usize) -> Result<NameAddr, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    let na = parse_name_addr(&mut c, buf)?;
    c.ws();
    if !c.at_end() {
        return c.err();
    }
    Ok(na)
}

/// Parses a comma-separated list of name-addrs occupying `buf[start..end]`, appending to `out`.
pub(crate) fn parse_list(
    buf: &Bytes,
    start: usize,
    end: usize,
    out: &mut Vec<NameAddr>,
) -> Result<(), Pos> {
    let mut c = Cursor::sub(buf, start, end);
    loop {
        out.push(parse_name_addr(&mut c, buf)?);
        c.ws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return c.err();
        }
    }
}

/// Parses a Contact value: `*` or a list.
pub(crate) fn parse_contacts(
    buf: &Bytes,
    start: usize,
    end: usize,
    out: &mut Vec<NameAddr>,
) -> Result<bool, Pos> {
    let v = &buf[start..end];
    if v.iter().filter(|&&b| !is_ws(b)).eq(b"*".iter()) {
        return Ok(true);
    }
    parse_list(buf, start, end, out).map(|()| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &'static str) -> Result<NameAddr, Pos> {
        let b = Bytes::from_static(s.as_bytes());
        parse_one(&b, 0, b.len())
    }

    #[test]
    fn forms() {
        let a = one("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>  ;  tag = 98asjd8")
            .unwrap();
        assert_eq!(a.display.as_deref(), Some("J Rosenberg \\\\\\\""));
        assert_eq!(a.tag(), Some("98asjd8"));
        assert_eq!(a.user(), Some("jdrosen"));
        let b = one("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(b.display.as_deref(), Some("caller"));
        let c = one("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(c.params.contains("unknownparam"));
        assert!(c.uri.as_sip().unwrap().params.is_empty());
        let d =
            one("<sip:+1972@gw1.example.net;unknownparam>;expires=280297596632815;q=0.5").unwrap();
        assert!(d.uri.as_sip().unwrap().params.contains("unknownparam"));
        assert_eq!(d.expires(), Some(u32::MAX));
        assert_eq!(d.q(), Some(0.5));
        let e = one("isbn:2983792873").unwrap();
        assert_eq!(e.uri.scheme(), "isbn");
    }

    #[test]
    fn rejects() {
        assert!(one("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(one("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(one("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(one("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(one("\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(one("<sip:a@b> junk").is_err());
        // Whitespace anywhere inside the brackets, in any kind of URI.
        for inside in [
            "sip:a@b c",
            "sip:a@b\t",
            "sip:a @b",
            "tel:+1 2",
            "urn:x y",
            "sip:a@b;lr ",
        ] {
            assert!(one(&*format!("<{inside}>").leak()).is_err(), "{inside:?}");
        }
        assert!(one("<>").is_err());
        assert!(one("<sip:a@b").is_err());
    }

    #[test]
    fn lists_and_star() {
        let b = Bytes::from_static(b"<sip:a@b>;lr, \"x, y\" <sip:c@d;lr> ,sip:e@f");
        let mut v = Vec::new();
        parse_list(&b, 0, b.len(), &mut v).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].display.as_deref(), Some("x, y"));
        let star = Bytes::from_static(b" * ");
        assert!(parse_contacts(&star, 0, star.len(), &mut Vec::new()).unwrap());
    }
}
