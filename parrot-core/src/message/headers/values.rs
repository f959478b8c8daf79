//! Single-value headers: CSeq (§20.16), Call-ID (§20.8), Max-Forwards (§20.22),
//! Content-Length (§20.14), Expires (§20.19), Retry-After (§20.33), Content-Type
//! (§20.15) and the option-tag / method lists (Allow, Supported, Require, Unsupported).

use crate::message::method::Method;
use crate::message::scan::{Cursor, Params, Pos, class};
use crate::message::text::Text;
use bytes::Bytes;
use std::fmt;

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number: a 32-bit unsigned integer below 2³¹ (RFC 3261 §8.1.1.5);
    /// parsing refuses larger values.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Largest CSeq number accepted: 2³¹ − 1 (RFC 3261 §8.1.1.5).
pub(crate) const CSEQ_MAX: u32 = (1 << 31) - 1;

pub(crate) fn parse_cseq(buf: &Bytes, start: usize, end: usize) -> Result<CSeq, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    // RFC 3261 §8.1.1.5: the number MUST be less than 2³¹ (so a value above
    // 2³²−1, RFC 4475 §3.1.2.4, is an error too).
    let seq = c.number(u64::from(CSEQ_MAX))? as u32;
    let (s, e) = c.take_while(crate::message::scan::is_ws);
    if s == e {
        return c.err();
    }
    let (ms, me) = c.take(class::TOKEN);
    if ms == me {
        return c.err();
    }
    let name = c.bytes(ms, me);
    let method = Method::known(name).unwrap_or_else(|| Method::Extension(c.ascii(ms, me)));
    c.ws();
    if !c.at_end() {
        return c.err();
    }
    Ok(CSeq { seq, method })
}

/// Call-ID: `word ["@" word]`.
pub(crate) fn parse_call_id(buf: &Bytes, start: usize, end: usize) -> Result<Text, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    let (s, e) = c.take(class::WORD);
    if s == e {
        return c.err();
    }
    if c.eat(b'@') {
        let (hs, he) = c.take(class::WORD);
        if hs == he {
            return c.err();
        }
    }
    let e = c.pos();
    c.ws();
    if !c.at_end() {
        return c.err();
    }
    Ok(c.ascii(s, e))
}

/// A bare decimal number no larger than `max`, with optional surrounding whitespace.
pub(crate) fn parse_number(buf: &Bytes, start: usize, end: usize, max: u64) -> Result<u64, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    let n = c.number(max)?;
    c.ws();
    if !c.at_end() {
        return c.err();
    }
    Ok(n)
}

/// Retry-After: seconds, optional comment, optional parameters (`duration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// Seconds to wait.
    pub seconds: u32,
    /// The comment, without parentheses.
    pub comment: Option<Text>,
    /// Parameters such as `duration`.
    pub params: Params,
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.seconds)?;
        if let Some(c) = &self.comment {
            write!(f, " ({c})")?;
        }
        write!(f, "{}", self.params)
    }
}

pub(crate) fn parse_retry_after(buf: &Bytes, start: usize, end: usize) -> Result<RetryAfter, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    let seconds = c.number(u64::from(u32::MAX))? as u32;
    c.ws();
    let mut comment = None;
    if c.eat(b'(') {
        let s = c.pos();
        let mut depth = 1;
        while let Some(b) = c.peek() {
            c.set_pos(c.pos() + 1);
            match b {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        if depth != 0 {
            return c.err();
        }
        comment = Some(c.utf8(s, c.pos() - 1)?);
    }
    let params = c.params(false)?;
    c.ws();
    if !c.at_end() {
        return c.err();
    }
    Ok(RetryAfter {
        seconds,
        comment,
        params,
    })
}

/// A media type: `type/subtype;params` (Content-Type, Accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Top-level type, e.g. `application`.
    pub kind: Text,
    /// Subtype, e.g. `sdp`.
    pub subtype: Text,
    /// Parameters, e.g. `;boundary=…`.
    pub params: Params,
}

impl MediaType {
    /// True if this is `kind/subtype` (case-insensitive).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_case(kind) && self.subtype.eq_ignore_case(subtype)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.kind, self.subtype, self.params)
    }
}

pub(crate) fn parse_media_type(buf: &Bytes, start: usize, end: usize) -> Result<MediaType, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    let kind = c.token()?;
    c.sep(b'/')?;
    let subtype = c.token()?;
    let params = c.params(false)?;
    c.ws();
    if !c.at_end() {
        return c.err();
    }
    Ok(MediaType {
        kind,
        subtype,
        params,
    })
}

/// A comma-separated list of tokens (Allow, Supported, Require, Unsupported, Proxy-Require).
/// An empty value is an empty list (`Supported:` is legal).
pub(crate) fn parse_tokens(
    buf: &Bytes,
    start: usize,
    end: usize,
    out: &mut Vec<Text>,
) -> Result<(), Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    if c.at_end() {
        return Ok(());
    }
    loop {
        c.ws();
        out.push(c.token()?);
        c.ws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return c.err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn cseq() {
        let v = b("0009  INVITE");
        assert_eq!(
            parse_cseq(&v, 0, v.len()).unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        let v = b("139122385 !interesting-Method0123456789_*+`.%indeed'~");
        let c = parse_cseq(&v, 0, v.len()).unwrap();
        assert_eq!(
            c.method.as_str(),
            "!interesting-Method0123456789_*+`.%indeed'~"
        );
        // RFC 3261 §8.1.1.5: below 2³¹.
        let v = b("2147483647 ACK");
        assert_eq!(parse_cseq(&v, 0, v.len()).unwrap().seq, CSEQ_MAX);
        // Message::parse refuses it, so the transports answer 400 naming CSeq.
        let wire = "OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    To: <sip:u@h>\r\nFrom: <sip:c@h>;tag=1\r\nCall-ID: x\r\n\
                    CSeq: 2147483648 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let err = crate::message::Message::parse(Bytes::from(wire)).unwrap_err();
        assert_eq!(
            err.kind,
            crate::message::ErrorKind::BadHeader(crate::message::HeaderName::CSeq)
        );
        let ok = wire.replace("2147483648", "2147483647");
        assert!(crate::message::Message::parse(Bytes::from(ok)).is_ok());
        for bad in [
            "2147483648 INVITE",
            "4294967295 BYE",
            "4294967296 INVITE",
            "-1 INVITE",
            "1",
            "1 INVITE x",
            "INVITE 1",
        ] {
            let v = Bytes::from(bad);
            assert!(parse_cseq(&v, 0, v.len()).is_err(), "{bad}");
        }
    }

    #[test]
    fn call_id() {
        let v = b("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
        assert_eq!(parse_call_id(&v, 0, v.len()).unwrap().len(), v.len());
        for bad in ["", "a b", "a@", "a@b@c", "a;b"] {
            let v = Bytes::from(bad);
            assert!(parse_call_id(&v, 0, v.len()).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_and_media_type() {
        let v = b("120 (I'm in a meeting) ;duration=3600");
        let r = parse_retry_after(&v, 0, v.len()).unwrap();
        assert_eq!(
            (r.seconds, r.comment.as_deref(), r.params.value("duration")),
            (120, Some("I'm in a meeting"), Some("3600"))
        );
        let v = b("multipart/mixed;boundary=7a9cbec02ceef655");
        let m = parse_media_type(&v, 0, v.len()).unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.params.value("boundary"), Some("7a9cbec02ceef655"));
        let v = b("INVITE, ACK ,BYE");
        let mut t = Vec::new();
        parse_tokens(&v, 0, v.len(), &mut t).unwrap();
        assert_eq!(t, ["INVITE", "ACK", "BYE"]);
    }
}
