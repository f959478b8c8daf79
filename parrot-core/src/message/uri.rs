//! URIs: SIP and SIPS (RFC 3261 §19.1), TEL (RFC 3966) and any other absolute URI,
//! plus hosts (domain names, IPv4, IPv6 references).

use super::scan::{Cursor, Params, Pos, class};
use super::text::Text;
use bytes::Bytes;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URI as found in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other scheme, kept opaque (`isbn:…`, `http://…`).
    Other {
        /// The scheme, as received.
        scheme: Text,
        /// Everything after the colon.
        rest: Text,
    },
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    /// True for `sips:`.
    pub secure: bool,
    /// The user part, still %-escaped as received.
    pub user: Option<Text>,
    /// The host.
    pub host: Host,
    /// The port, if given.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params,
    /// The parts few URIs have ([`SipUri::password`], [`SipUri::headers`]),
    /// boxed: a URI is in every name-addr, and moved and dropped with it.
    rare: Option<Box<Rare>>,
}

/// The password and headers of a [`SipUri`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Rare {
    password: Option<Text>,
    headers: Option<Text>,
}

/// A `tel:` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TelUri {
    /// The telephone subscriber (`+1-201-555-0123`).
    pub number: Text,
    /// Parameters (`;phone-context=…`).
    pub params: Params,
}

/// A host: domain name or IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as received.
    Domain(Text),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written as a `[…]` reference).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// The IP address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }

    /// Parses a host (`example.com`, `192.0.2.1`, `[2001:db8::1]`).
    pub fn parse(s: &str) -> Option<Host> {
        let b = Bytes::copy_from_slice(s.as_bytes());
        let mut c = Cursor::new(&b);
        let h = parse_host(&mut c).ok()?;
        c.at_end().then_some(h)
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => f.write_str(Ipv4Text::new(*a).as_str()),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// The dotted-quad text of an IPv4 address, written without the formatter:
/// `Ipv4Addr`'s `Display` formats each octet through `fmt` (about 1.4k
/// instructions an address), and a responder prints one into every key and
/// Contact it makes (four a call in the cps bench's profile).
pub(crate) struct Ipv4Text {
    buf: [u8; 15],
    len: u8,
}

impl Ipv4Text {
    pub(crate) fn new(a: Ipv4Addr) -> Ipv4Text {
        let mut buf = [0u8; 15];
        let mut len = 0;
        for (i, octet) in a.octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                buf[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                buf[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            buf[len] = b'0' + octet % 10;
            len += 1;
        }
        Ipv4Text {
            buf,
            len: len as u8,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Digits and dots only: always ASCII.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Dotted-quad IPv4 (`IPv4address` of RFC 3261 §25.1), as `Ipv4Addr`'s
/// `FromStr` reads it (four decimal octets up to 255, no leading zero), done
/// on the bytes: a message has a dozen addresses, and `FromStr` (a UTF-8
/// check, then a general parser) cost ~200 instructions each.
fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut n: u16 = 0;
        for &d in part {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u16::from(d - b'0');
        }
        *octet = u8::try_from(n).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Parses a host at the cursor: `[v6]`, dotted IPv4 or a domain name.
pub(crate) fn parse_host(c: &mut Cursor<'_>) -> Result<Host, Pos> {
    if c.eat(b'[') {
        let (s, e) = c.take(class::V6);
        let at = c.pos();
        if !c.eat(b']') {
            return c.err();
        }
        let text = std::str::from_utf8(c.bytes(s, e)).map_err(|_| at)?;
        return text.parse().map(Host::Ipv6).or_else(|_| c.err());
    }
    let (s, e) = c.take(class::HOST);
    let name = c.bytes(s, e);
    if name.is_empty() || name[0] == b'.' || name[0] == b'-' {
        return c.err();
    }
    if name.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        // All digits and dots: must be a valid IPv4 address.
        return match parse_ipv4(name) {
            Some(a) => Ok(Host::Ipv4(a)),
            None => c.err(),
        };
    }
    Ok(Host::Domain(c.ascii(s, e)))
}

/// Parses an optional `:port` at the cursor.
pub(crate) fn parse_port(c: &mut Cursor<'_>) -> Result<Option<u16>, Pos> {
    if !c.eat(b':') {
        return Ok(None);
    }
    // A port of 0 is accepted: it means "unspecified" in some deployments.
    c.number(u64::from(u16::MAX)).map(|p| Some(p as u16))
}

/// Where the URI being parsed sits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriContext {
    /// Request-URI or inside `<…>`: parameters and headers belong to the URI.
    Full,
    /// An addr-spec without angle brackets: `;` starts header parameters,
    /// and the URI may not contain `?` or `,` (RFC 3261 §20).
    Bare,
}

/// Parses a URI occupying `buf[start..end]`, which must be consumed whole
/// (for [`UriContext::Bare`], `end` is where the URI stops).
pub(crate) fn parse_uri(
    buf: &Bytes,
    start: usize,
    end: usize,
    ctx: UriContext,
) -> Result<Uri, Pos> {
    let mut c = Cursor::sub(buf, start, end);
    // The usual scheme, as it is usually written: no scan of it.
    if c.rest().starts_with(b"sip:") {
        c.set_pos(start + 4);
        let uri = Uri::Sip(parse_sip(&mut c, false, ctx)?);
        if !c.at_end() {
            return c.err();
        }
        return Ok(uri);
    }
    let (s, e) = c.take(class::SCHEME);
    if s == e || !c.bytes(s, s + 1)[0].is_ascii_alphabetic() || !c.eat(b':') {
        return Err(start);
    }
    let scheme = c.bytes(s, e);
    let uri = if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        Uri::Sip(parse_sip(&mut c, scheme.len() == 4, ctx)?)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        let (ns, ne) = c.take_while(|b| b != b';' && b > b' ' && b != b',' && b < 0x7f);
        if ns == ne {
            return c.err();
        }
        let number = c.ascii(ns, ne);
        let params = if ctx == UriContext::Full {
            c.params(true)?
        } else {
            Params::new()
        };
        Uri::Tel(TelUri { number, params })
    } else {
        let stop = |b: u8| {
            b > b' '
                && b < 0x7f
                && b != b'>'
                && !(ctx == UriContext::Bare && matches!(b, b';' | b','))
        };
        let (rs, re) = c.take_while(stop);
        if rs == re {
            return c.err();
        }
        Uri::Other {
            scheme: c.ascii(s, e),
            rest: c.ascii(rs, re),
        }
    };
    if !c.at_end() {
        return c.err();
    }
    Ok(uri)
}

// Inlined into `parse_uri`, its only caller (twice), which wraps it in `Uri::Sip`:
// the URI is then built in place instead of copied (136 B) per URI parsed.
#[inline(always)]
fn parse_sip(c: &mut Cursor<'_>, secure: bool, ctx: UriContext) -> Result<SipUri, Pos> {
    let mut user = None;
    let mut password = None;
    // (A plain search: the `@` is a few bytes in, where memchr's set-up costs more.)
    if let Some(at) = c.rest().iter().position(|&b| b == b'@') {
        let ustart = c.pos();
        let (us, ue) = c.take(class::USER);
        if us == ue {
            return c.err();
        }
        user = Some(c.ascii(us, ue));
        if c.eat(b':') {
            let (ps, pe) = c.take(class::PASSWORD);
            password = Some(c.ascii(ps, pe));
        }
        if c.pos() != ustart + at || !c.eat(b'@') {
            return c.err();
        }
    }
    let host = parse_host(c)?;
    let port = parse_port(c)?;
    let (params, headers) = match ctx {
        UriContext::Full => {
            let params = c.params(true)?;
            let headers = if c.eat(b'?') {
                let (hs, he) = c.take(class::HCHAR);
                if hs == he {
                    return c.err();
                }
                Some(c.ascii(hs, he))
            } else {
                None
            };
            (params, headers)
        }
        UriContext::Bare => (Params::new(), None),
    };
    let rare =
        (password.is_some() || headers.is_some()).then(|| Box::new(Rare { password, headers }));
    Ok(SipUri {
        secure,
        user,
        host,
        port,
        params,
        rare,
    })
}

impl Uri {
    /// Parses a URI from a string (the whole string must be the URI).
    pub fn parse(s: &str) -> Option<Uri> {
        let b = Bytes::copy_from_slice(s.as_bytes());
        parse_uri(&b, 0, b.len(), UriContext::Full).ok()
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI, or the number of a TEL URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other { .. } => None,
        }
    }

    /// The host of a SIP URI.
    pub fn host(&self) -> Option<&Host> {
        self.as_sip().map(|u| &u.host)
    }

    /// The scheme, lower-case for the known ones.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }
}

impl SipUri {
    /// A `sip:` URI for `user@host`.
    pub fn new(user: Option<&str>, host: Host) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(|u| Text::from(u.to_owned())),
            host,
            port: None,
            params: Params::new(),
            rare: None,
        }
    }

    /// The password (deprecated by RFC 3261 but still grammar).
    pub fn password(&self) -> Option<&Text> {
        self.rare.as_ref()?.password.as_ref()
    }

    /// URI headers, without the leading `?` (`Route=%3Csip:x%3E&…`).
    pub fn headers(&self) -> Option<&Text> {
        self.rare.as_ref()?.headers.as_ref()
    }

    /// Sets or removes the password.
    pub fn set_password(&mut self, password: Option<Text>) {
        self.rare_mut().password = password;
        self.tidy();
    }

    /// Sets or removes the URI headers (given without the leading `?`).
    pub fn set_headers(&mut self, headers: Option<Text>) {
        self.rare_mut().headers = headers;
        self.tidy();
    }

    /// Removes the URI headers and returns them.
    pub fn take_headers(&mut self) -> Option<Text> {
        let taken = self.rare.as_mut()?.headers.take();
        self.tidy();
        taken
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(|| {
            Box::new(Rare {
                password: None,
                headers: None,
            })
        })
    }

    /// Drops the box once it holds nothing, so that equal URIs compare equal.
    fn tidy(&mut self) {
        if self
            .rare
            .as_ref()
            .is_some_and(|r| r.password.is_none() && r.headers.is_none())
        {
            self.rare = None;
        }
    }

    /// The `transport` URI parameter.
    pub fn transport(&self) -> Option<&str> {
        self.params.value("transport")
    }

    /// The user part with %-escapes decoded (lossy on invalid UTF-8).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }
}

/// Decodes `%HH` escapes; invalid escapes are kept as they are.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = self.password() {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = self.headers() {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel(t) => write!(f, "tel:{}{}", t.number, t.params),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Uri::Sip(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &'static str) -> Result<Uri, Pos> {
        let b = Bytes::from_static(s.as_bytes());
        parse_uri(&b, 0, b.len(), UriContext::Full)
    }

    #[test]
    fn parse_ipv4_is_std_from_str() {
        // Every string of up to 7 characters over digits and dots that
        // matter here, and longer ones around the edges, against std.
        let alphabet = [b'0', b'1', b'2', b'5', b'9', b'.'];
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = cases.clone();
        for _ in 0..7 {
            let mut next = Vec::new();
            for c in &frontier {
                for &a in &alphabet {
                    let mut v = c.clone();
                    v.push(a);
                    next.push(v);
                }
            }
            cases.extend(next.iter().cloned());
            frontier = next;
        }
        for extra in [
            "255.255.255.255",
            "256.1.1.1",
            "1.1.1.256",
            "192.0.2.10",
            "01.2.3.4",
            "1.2.3.04",
            "0.0.0.0",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1000.1.1.1",
            "199.250.99.100",
        ] {
            cases.push(extra.as_bytes().to_vec());
        }
        for c in cases {
            let text = std::str::from_utf8(&c).unwrap();
            assert_eq!(parse_ipv4(&c), text.parse::<Ipv4Addr>().ok(), "{text:?}");
        }
    }

    #[test]
    fn ipv4_text_is_std_display() {
        // Every octet value in every position, against std's formatter.
        for o in 0..=255u8 {
            for a in [
                Ipv4Addr::new(o, 0, 255, 9),
                Ipv4Addr::new(10, o, 99, 100),
                Ipv4Addr::new(1, 200, o, 0),
                Ipv4Addr::new(255, 255, 255, o),
            ] {
                assert_eq!(Ipv4Text::new(a).as_str(), a.to_string());
                assert_eq!(Host::Ipv4(a).to_string(), a.to_string());
            }
        }
    }

    #[test]
    fn sip_uris() {
        let u = full("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=x&a=b").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.password().map(|p| p.as_str()), Some("secret"));
        assert_eq!(s.host, Host::Domain(Text::from("example.com")));
        assert_eq!(s.port, Some(5070));
        assert_eq!(s.transport(), Some("tcp"));
        assert!(s.params.contains("lr"));
        assert_eq!(s.headers().map(|h| h.as_str()), Some("subject=x&a=b"));
        assert_eq!(
            u.to_string(),
            "sip:alice:secret@example.com:5070;transport=tcp;lr?subject=x&a=b"
        );
    }

    #[test]
    fn the_usual_scheme_reads_as_any_spelling_of_it() {
        let fast = full("sip:bob@biloxi.com;lr").unwrap();
        assert_eq!(full("SIP:bob@biloxi.com;lr").unwrap(), fast);
        assert!(full("sip:").is_err());
        assert!(full("sip:bob@biloxi.com junk").is_err());
        let b = Bytes::from_static(b"sip:a@b;tag=1");
        let bare = parse_uri(&b, 0, 7, UriContext::Bare).unwrap();
        assert_eq!(bare.to_string(), "sip:a@b");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            full("sip:[2001:db8::10]:5060").unwrap().host(),
            Some(&Host::Ipv6("2001:db8::10".parse().unwrap()))
        );
        assert_eq!(
            full("sips:192.0.2.4").unwrap().host(),
            Some(&Host::Ipv4(Ipv4Addr::new(192, 0, 2, 4)))
        );
        assert!(full("sip:192.0.2.400").is_err());
        assert!(full("sip:[zz::1]").is_err());
        assert!(full("sip:user@").is_err());
        assert!(full("sip:a@b@c").is_err());
        assert!(full("sip:host:99999").is_err());
    }

    #[test]
    fn user_with_semicolon_and_escapes() {
        let u = full("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.as_sip().unwrap().user_unescaped().as_deref(),
            Some("user;par=u@example.net")
        );
        assert_eq!(unescape("null-%00-%zz%4"), "null-\0-%zz%4");
    }

    #[test]
    fn other_schemes() {
        assert_eq!(
            full("tel:+1-201-555-0123;phone-context=x").unwrap().user(),
            Some("+1-201-555-0123")
        );
        let u = full("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme(), "nobodyKnowsThisScheme");
        assert!(full("<sip:a@b>").is_err());
        assert!(full("sip:a@b c").is_err());
    }
}
