//! Via (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

use crate::message::scan::{Cursor, Params, Pos};
use crate::message::text::Text;
use crate::message::uri::{Host, parse_host, parse_port};
use bytes::Bytes;
use std::fmt;

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name, normally `SIP`.
    pub protocol: Text,
    /// Protocol version, normally `2.0`.
    pub version: Text,
    /// Transport: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS` or another token.
    pub transport: Text,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters: branch, received, rport, maddr, ttl, …
    pub params: Params,
}

impl Via {
    /// A `SIP/2.0/<transport>` Via for `host[:port]` with the given branch.
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Via {
        Via {
            protocol: Text::from_static("SIP"),
            version: Text::from_static("2.0"),
            transport: Text::from(transport.to_owned()),
            host,
            port,
            params: Params::new().with("branch", Some(branch)),
        }
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.branch()
    }

    /// True if the branch starts with the RFC 3261 magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter (§18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|v| v.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params.value("ttl").and_then(|v| v.parse().ok())
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        self.params = self.params.with(name, value);
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} {}",
            self.protocol, self.version, self.transport, self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// Parses a comma-separated list of Via entries occupying `buf[start..end]`.
pub(crate) fn parse_list(
    buf: &Bytes,
    start: usize,
    end: usize,
    out: &mut Vec<Via>,
) -> Result<(), Pos> {
    let mut c = Cursor::sub(buf, start, end);
    loop {
        c.ws();
        out.push(parse_one(&mut c)?);
        c.ws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return c.err();
        }
    }
}

/// Parses only the first Via entry of `buf[start..end]` (the rest is not checked).
pub(crate) fn parse_first(buf: &Bytes, start: usize, end: usize) -> Result<Via, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    c.ws();
    let via = parse_one(&mut c)?;
    c.ws();
    if !c.at_end() && c.peek() != Some(b',') {
        return c.err();
    }
    Ok(via)
}

// Inlined into its two callers: the Via (208 B) is then built in place
// rather than copied out of a returned `Result`.
#[inline(always)]
fn parse_one(c: &mut Cursor<'_>) -> Result<Via, Pos> {
    // `SIP/2.0/`, spelled so, is in nearly every Via: matched whole, it is
    // what the grammar below reads from it, without two scans and copies.
    let (protocol, version) = if c.rest().starts_with(b"SIP/2.0/") {
        c.set_pos(c.pos() + 8);
        c.ws();
        (Text::from_static("SIP"), Text::from_static("2.0"))
    } else {
        let protocol = c.token()?;
        c.sep(b'/')?;
        let version = c.token()?;
        c.sep(b'/')?;
        (protocol, version)
    };
    let transport = c.token()?;
    let (s, e) = c.take_while(crate::message::scan::is_ws);
    if s == e {
        return c.err();
    }
    let host = parse_host(c)?;
    c.ws();
    let port = if c.peek() == Some(b':') {
        c.eat(b':');
        c.ws();
        let n = c.number(u64::from(u16::MAX))?;
        Some(n as u16)
    } else {
        parse_port(c)?
    };
    let params = c.params(false)?;
    Ok(Via {
        protocol,
        version,
        transport,
        host,
        port,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &'static str) -> Result<Vec<Via>, Pos> {
        let b = Bytes::from_static(s.as_bytes());
        let mut v = Vec::new();
        parse_list(&b, 0, b.len(), &mut v).map(|()| v)
    }

    #[test]
    fn torture_spacing() {
        let v = list("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "TCP");
        assert_eq!(v[0].host, Host::Domain(Text::from("spindle.example.com")));
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].branch(), Some("z9hG4bK30239"));
        assert_eq!(v[1].host.ip(), Some("192.168.255.111".parse().unwrap()));
    }

    #[test]
    fn params_and_ipv6() {
        let v = list("SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKx;received=[2001:db8::10];rport=5061;maddr=224.2.0.1;ttl=16").unwrap();
        let v = &v[0];
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("[2001:db8::10]"));
        assert_eq!(v.rport(), Some(Some(5061)));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
        assert_eq!(v.ttl(), Some(16));
        assert!(v.has_rfc3261_branch());
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKx;received=[2001:db8::10];rport=5061;maddr=224.2.0.1;ttl=16"
        );
    }

    #[test]
    fn the_usual_prefix_reads_as_the_grammar_reads_it() {
        let fast = &list("SIP/2.0/UDP h:5060;branch=z9hG4bK1").unwrap()[0];
        let slow = &list("SIP / 2.0 / UDP h:5060;branch=z9hG4bK1").unwrap()[0];
        assert_eq!(fast, slow);
        assert_eq!(
            (fast.protocol.as_str(), fast.version.as_str()),
            ("SIP", "2.0")
        );
        let spaced = &list("SIP/2.0/  TCP h").unwrap()[0];
        assert_eq!(spaced.transport, "TCP");
        assert_eq!(list("sip/2.0/udp h").unwrap()[0].protocol, "sip");
        assert!(list("SIP/2.0/").is_err());
        assert!(list("SIP/2.0/ h").is_err());
    }

    #[test]
    fn bad() {
        assert!(list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(list("SIP/2.0/UDP").is_err());
        assert!(list("SIP/2.0 host").is_err());
        assert!(list("SIP/2.0/UDP host,").is_err());
        assert!(list("SIP/2.0/UDP host:70000").is_err());
    }
}
