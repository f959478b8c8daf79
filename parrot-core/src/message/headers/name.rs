//! Header names: the ones the stack knows (with their compact forms, RFC 3261 §7.3.3)
//! and any other, kept as received.

use crate::message::text::Text;
use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Known names compare case-insensitively and
        /// include their compact forms; others keep the name as received.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// Any other header, with its name as received.
            Other(Text),
        }

        impl HeaderName {
            /// The canonical spelling (long form).
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(t) => t.as_str(),
                }
            }

        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", "m";
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentType => "Content-Type", "c";
    ContentLength => "Content-Length", "l";
    ContentEncoding => "Content-Encoding", "e";
    ContentDisposition => "Content-Disposition";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Allow => "Allow";
    Supported => "Supported", "k";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    RetryAfter => "Retry-After";
    UserAgent => "User-Agent";
    Server => "Server";
    Accept => "Accept";
    Subject => "Subject", "s";
    Event => "Event", "o";
    AllowEvents => "Allow-Events", "u";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    SessionExpires => "Session-Expires", "x";
    Date => "Date";
    Timestamp => "Timestamp";
    Warning => "Warning";
    RSeq => "RSeq";
    RAck => "RAck";
}

impl HeaderName {
    /// Parses a name as received, copying it only when it is not a known one.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        Self::lookup(name).unwrap_or_else(|| match std::str::from_utf8(name) {
            // Short names are kept inline: no allocation at all.
            Ok(s) if s.len() <= crate::message::text::INLINE => {
                HeaderName::Other(Text::inline(s.as_bytes()))
            }
            _ => HeaderName::Other(Text::from(String::from_utf8_lossy(name).into_owned())),
        })
    }

    /// Looks a name up among the known ones (case-insensitive, compact forms included).
    pub(crate) fn lookup(name: &[u8]) -> Option<HeaderName> {
        Self::lookup_exact(name).map(|(n, _)| n)
    }

    /// [`HeaderName::lookup`], and whether `name` is spelled exactly as the
    /// canonical form (then the parser need not keep the original line).
    pub(crate) fn lookup_exact(name: &[u8]) -> Option<(HeaderName, bool)> {
        // The exact spelling is the usual case on the wire, and with the length
        // known a comparison with a literal is a few integer compares; the
        // case-insensitive one, a loop, runs only when that fails.
        #[inline(always)]
        fn eq(name: &[u8], canonical: &[u8], exact: &mut bool) -> bool {
            if name == canonical {
                *exact = true;
                return true;
            }
            name.eq_ignore_ascii_case(canonical)
        }
        let mut exact = false;
        let first = name.first()?.to_ascii_lowercase();
        // Dispatch on length and first letter, then one case-insensitive compare:
        // no copy, no chain of comparisons.
        let known = match (name.len(), first) {
            (1, b'b') => HeaderName::ReferredBy,
            (1, b'c') => HeaderName::ContentType,
            (1, b'e') => HeaderName::ContentEncoding,
            (1, b'f') => HeaderName::From,
            (1, b'i') => HeaderName::CallId,
            (1, b'k') => HeaderName::Supported,
            (1, b'l') => HeaderName::ContentLength,
            (1, b'm') => HeaderName::Contact,
            (1, b'o') => HeaderName::Event,
            (1, b'r') => HeaderName::ReferTo,
            (1, b's') => HeaderName::Subject,
            (1, b't') => HeaderName::To,
            (1, b'u') => HeaderName::AllowEvents,
            (1, b'v') => HeaderName::Via,
            (1, b'x') => HeaderName::SessionExpires,
            (2, b't') if eq(name, b"To", &mut exact) => HeaderName::To,
            (3, b'v') if eq(name, b"Via", &mut exact) => HeaderName::Via,
            (4, b'c') if eq(name, b"CSeq", &mut exact) => HeaderName::CSeq,
            (4, b'd') if eq(name, b"Date", &mut exact) => HeaderName::Date,
            (4, b'f') if eq(name, b"From", &mut exact) => HeaderName::From,
            (4, b'r') if eq(name, b"RSeq", &mut exact) => HeaderName::RSeq,
            (4, b'r') if eq(name, b"RAck", &mut exact) => HeaderName::RAck,
            (5, b'a') if eq(name, b"Allow", &mut exact) => HeaderName::Allow,
            (5, b'e') if eq(name, b"Event", &mut exact) => HeaderName::Event,
            (5, b'r') if eq(name, b"Route", &mut exact) => HeaderName::Route,
            (6, b'a') if eq(name, b"Accept", &mut exact) => HeaderName::Accept,
            (6, b's') if eq(name, b"Server", &mut exact) => HeaderName::Server,
            (7, b'c') if eq(name, b"Call-ID", &mut exact) => HeaderName::CallId,
            (7, b'c') if eq(name, b"Contact", &mut exact) => HeaderName::Contact,
            (7, b'e') if eq(name, b"Expires", &mut exact) => HeaderName::Expires,
            (7, b'r') if eq(name, b"Require", &mut exact) => HeaderName::Require,
            (7, b's') if eq(name, b"Subject", &mut exact) => HeaderName::Subject,
            (7, b'w') if eq(name, b"Warning", &mut exact) => HeaderName::Warning,
            (8, b'r') if eq(name, b"Refer-To", &mut exact) => HeaderName::ReferTo,
            (9, b's') if eq(name, b"Supported", &mut exact) => HeaderName::Supported,
            (9, b't') if eq(name, b"Timestamp", &mut exact) => HeaderName::Timestamp,
            (10, b'u') if eq(name, b"User-Agent", &mut exact) => HeaderName::UserAgent,
            (11, b'm') if eq(name, b"Min-Expires", &mut exact) => HeaderName::MinExpires,
            (11, b'r') if eq(name, b"Retry-After", &mut exact) => HeaderName::RetryAfter,
            (11, b'r') if eq(name, b"Referred-By", &mut exact) => HeaderName::ReferredBy,
            (11, b'u') if eq(name, b"Unsupported", &mut exact) => HeaderName::Unsupported,
            (12, b'a') if eq(name, b"Allow-Events", &mut exact) => HeaderName::AllowEvents,
            (12, b'c') if eq(name, b"Content-Type", &mut exact) => HeaderName::ContentType,
            (12, b'm') if eq(name, b"Max-Forwards", &mut exact) => HeaderName::MaxForwards,
            (12, b'r') if eq(name, b"Record-Route", &mut exact) => HeaderName::RecordRoute,
            (13, b'a') if eq(name, b"Authorization", &mut exact) => HeaderName::Authorization,
            (13, b'p') if eq(name, b"Proxy-Require", &mut exact) => HeaderName::ProxyRequire,
            (14, b'c') if eq(name, b"Content-Length", &mut exact) => HeaderName::ContentLength,
            (15, b's') if eq(name, b"Session-Expires", &mut exact) => HeaderName::SessionExpires,
            (16, b'c') if eq(name, b"Content-Encoding", &mut exact) => HeaderName::ContentEncoding,
            (16, b'w') if eq(name, b"WWW-Authenticate", &mut exact) => HeaderName::WwwAuthenticate,
            (18, b'p') if eq(name, b"Proxy-Authenticate", &mut exact) => {
                HeaderName::ProxyAuthenticate
            }
            (19, b'c') if eq(name, b"Content-Disposition", &mut exact) => {
                HeaderName::ContentDisposition
            }
            (19, b'p') if eq(name, b"Proxy-Authorization", &mut exact) => {
                HeaderName::ProxyAuthorization
            }
            _ => return None,
        };
        Some((known, exact))
    }

    /// The header a line starts with, if it is a name of the common ones
    /// spelled canonically and directly followed by its colon (`Via:`,
    /// `Call-ID:`): nearly every line a SIP stack receives. Gives the name and
    /// its length; for anything else (`None`) the caller scans the name and
    /// asks [`HeaderName::lookup_exact`]. A few integer compares, where the
    /// scan looks at each byte and the lookup compares again.
    #[inline]
    pub(crate) fn canonical_prefix(line: &[u8]) -> Option<(HeaderName, usize)> {
        let hit = |canonical: &[u8]| {
            line.get(canonical.len()) == Some(&b':') && line.starts_with(canonical)
        };
        let (name, len) = match *line.first()? {
            b'V' if hit(b"Via") => (HeaderName::Via, 3),
            b'F' if hit(b"From") => (HeaderName::From, 4),
            b'T' if hit(b"To") => (HeaderName::To, 2),
            b'C' if hit(b"Call-ID") => (HeaderName::CallId, 7),
            b'C' if hit(b"CSeq") => (HeaderName::CSeq, 4),
            b'C' if hit(b"Contact") => (HeaderName::Contact, 7),
            b'C' if hit(b"Content-Length") => (HeaderName::ContentLength, 14),
            b'C' if hit(b"Content-Type") => (HeaderName::ContentType, 12),
            b'M' if hit(b"Max-Forwards") => (HeaderName::MaxForwards, 12),
            b'R' if hit(b"Route") => (HeaderName::Route, 5),
            b'R' if hit(b"Record-Route") => (HeaderName::RecordRoute, 12),
            b'E' if hit(b"Expires") => (HeaderName::Expires, 7),
            b'A' if hit(b"Allow") => (HeaderName::Allow, 5),
            b'S' if hit(b"Supported") => (HeaderName::Supported, 9),
            b'U' if hit(b"User-Agent") => (HeaderName::UserAgent, 10),
            _ => return None,
        };
        Some((name, len))
    }

    /// True if `other` names the same header (case-insensitive for unknown names).
    pub fn matches(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_case(b.as_str()),
            (a, b) => a == b,
        }
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        HeaderName::from_bytes(s.as_bytes())
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_compact() {
        assert_eq!(HeaderName::from_bytes(b"via"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_bytes(b"WWW-Authenticate"),
            HeaderName::WwwAuthenticate
        );
        // The canonical spellings with their colon, and what is not one.
        for line in [
            "Via:",
            "From:",
            "To:",
            "Call-ID:",
            "CSeq:",
            "Contact:",
            "Content-Length:",
            "Content-Type:",
            "Max-Forwards:",
            "Route:",
            "Record-Route:",
            "Expires:",
            "Allow:",
            "Supported:",
            "User-Agent:",
        ] {
            let (name, len) = HeaderName::canonical_prefix(line.as_bytes()).expect(line);
            assert_eq!(len, line.len() - 1);
            assert_eq!(name.as_str(), &line[..len]);
            assert_eq!(
                HeaderName::lookup_exact(&line.as_bytes()[..len]),
                Some((name, true))
            );
        }
        for line in [
            "via:",
            "Via :",
            "Via",
            "Vias:",
            "V:",
            "Call-Id:",
            "Contacts:",
            "T:",
            "",
            ":",
        ] {
            assert_eq!(
                HeaderName::canonical_prefix(line.as_bytes()),
                None,
                "{line:?}"
            );
        }
        let x = HeaderName::from_bytes(b"X-Custom");
        assert_eq!(x.as_str(), "X-Custom");
        assert!(x.matches(&HeaderName::from("x-custom")));
    }
}
