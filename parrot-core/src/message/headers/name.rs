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
        Self::lookup(name).unwrap_or_else(|| {
            HeaderName::Other(Text::from(String::from_utf8_lossy(name).into_owned()))
        })
    }

    /// Looks a name up among the known ones (case-insensitive, compact forms included).
    pub(crate) fn lookup(name: &[u8]) -> Option<HeaderName> {
        let first = name.first()?.to_ascii_lowercase();
        // Dispatch on length and first letter, then one case-insensitive compare:
        // no copy, no chain of comparisons.
        Some(match (name.len(), first) {
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
            (2, b't') if name.eq_ignore_ascii_case(b"To") => HeaderName::To,
            (3, b'v') if name.eq_ignore_ascii_case(b"Via") => HeaderName::Via,
            (4, b'c') if name.eq_ignore_ascii_case(b"CSeq") => HeaderName::CSeq,
            (4, b'd') if name.eq_ignore_ascii_case(b"Date") => HeaderName::Date,
            (4, b'f') if name.eq_ignore_ascii_case(b"From") => HeaderName::From,
            (4, b'r') if name.eq_ignore_ascii_case(b"RSeq") => HeaderName::RSeq,
            (4, b'r') if name.eq_ignore_ascii_case(b"RAck") => HeaderName::RAck,
            (5, b'a') if name.eq_ignore_ascii_case(b"Allow") => HeaderName::Allow,
            (5, b'e') if name.eq_ignore_ascii_case(b"Event") => HeaderName::Event,
            (5, b'r') if name.eq_ignore_ascii_case(b"Route") => HeaderName::Route,
            (6, b'a') if name.eq_ignore_ascii_case(b"Accept") => HeaderName::Accept,
            (6, b's') if name.eq_ignore_ascii_case(b"Server") => HeaderName::Server,
            (7, b'c') if name.eq_ignore_ascii_case(b"Call-ID") => HeaderName::CallId,
            (7, b'c') if name.eq_ignore_ascii_case(b"Contact") => HeaderName::Contact,
            (7, b'e') if name.eq_ignore_ascii_case(b"Expires") => HeaderName::Expires,
            (7, b'r') if name.eq_ignore_ascii_case(b"Require") => HeaderName::Require,
            (7, b's') if name.eq_ignore_ascii_case(b"Subject") => HeaderName::Subject,
            (7, b'w') if name.eq_ignore_ascii_case(b"Warning") => HeaderName::Warning,
            (8, b'r') if name.eq_ignore_ascii_case(b"Refer-To") => HeaderName::ReferTo,
            (9, b's') if name.eq_ignore_ascii_case(b"Supported") => HeaderName::Supported,
            (9, b't') if name.eq_ignore_ascii_case(b"Timestamp") => HeaderName::Timestamp,
            (10, b'u') if name.eq_ignore_ascii_case(b"User-Agent") => HeaderName::UserAgent,
            (11, b'm') if name.eq_ignore_ascii_case(b"Min-Expires") => HeaderName::MinExpires,
            (11, b'r') if name.eq_ignore_ascii_case(b"Retry-After") => HeaderName::RetryAfter,
            (11, b'r') if name.eq_ignore_ascii_case(b"Referred-By") => HeaderName::ReferredBy,
            (11, b'u') if name.eq_ignore_ascii_case(b"Unsupported") => HeaderName::Unsupported,
            (12, b'a') if name.eq_ignore_ascii_case(b"Allow-Events") => HeaderName::AllowEvents,
            (12, b'c') if name.eq_ignore_ascii_case(b"Content-Type") => HeaderName::ContentType,
            (12, b'm') if name.eq_ignore_ascii_case(b"Max-Forwards") => HeaderName::MaxForwards,
            (12, b'r') if name.eq_ignore_ascii_case(b"Record-Route") => HeaderName::RecordRoute,
            (13, b'a') if name.eq_ignore_ascii_case(b"Authorization") => HeaderName::Authorization,
            (13, b'p') if name.eq_ignore_ascii_case(b"Proxy-Require") => HeaderName::ProxyRequire,
            (14, b'c') if name.eq_ignore_ascii_case(b"Content-Length") => HeaderName::ContentLength,
            (15, b's') if name.eq_ignore_ascii_case(b"Session-Expires") => {
                HeaderName::SessionExpires
            }
            (16, b'c') if name.eq_ignore_ascii_case(b"Content-Encoding") => {
                HeaderName::ContentEncoding
            }
            (16, b'w') if name.eq_ignore_ascii_case(b"WWW-Authenticate") => {
                HeaderName::WwwAuthenticate
            }
            (18, b'p') if name.eq_ignore_ascii_case(b"Proxy-Authenticate") => {
                HeaderName::ProxyAuthenticate
            }
            (19, b'c') if name.eq_ignore_ascii_case(b"Content-Disposition") => {
                HeaderName::ContentDisposition
            }
            (19, b'p') if name.eq_ignore_ascii_case(b"Proxy-Authorization") => {
                HeaderName::ProxyAuthorization
            }
            _ => return None,
        })
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
        let x = HeaderName::from_bytes(b"X-Custom");
        assert_eq!(x.as_str(), "X-Custom");
        assert!(x.matches(&HeaderName::from("x-custom")));
    }
}
