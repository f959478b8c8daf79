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
        let mut lower = [0u8; 24];
        if name.is_empty() || name.len() > lower.len() {
            return None;
        }
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        // A match on byte strings compiles to a switch on length, then compares.
        Some(match &lower[..name.len()] {
            b"via" | b"v" => HeaderName::Via,
            b"from" | b"f" => HeaderName::From,
            b"to" | b"t" => HeaderName::To,
            b"call-id" | b"i" => HeaderName::CallId,
            b"cseq" => HeaderName::CSeq,
            b"max-forwards" => HeaderName::MaxForwards,
            b"contact" | b"m" => HeaderName::Contact,
            b"route" => HeaderName::Route,
            b"record-route" => HeaderName::RecordRoute,
            b"content-type" | b"c" => HeaderName::ContentType,
            b"content-length" | b"l" => HeaderName::ContentLength,
            b"content-encoding" | b"e" => HeaderName::ContentEncoding,
            b"content-disposition" => HeaderName::ContentDisposition,
            b"expires" => HeaderName::Expires,
            b"min-expires" => HeaderName::MinExpires,
            b"allow" => HeaderName::Allow,
            b"supported" | b"k" => HeaderName::Supported,
            b"require" => HeaderName::Require,
            b"proxy-require" => HeaderName::ProxyRequire,
            b"unsupported" => HeaderName::Unsupported,
            b"www-authenticate" => HeaderName::WwwAuthenticate,
            b"proxy-authenticate" => HeaderName::ProxyAuthenticate,
            b"authorization" => HeaderName::Authorization,
            b"proxy-authorization" => HeaderName::ProxyAuthorization,
            b"retry-after" => HeaderName::RetryAfter,
            b"user-agent" => HeaderName::UserAgent,
            b"server" => HeaderName::Server,
            b"accept" => HeaderName::Accept,
            b"subject" | b"s" => HeaderName::Subject,
            b"event" | b"o" => HeaderName::Event,
            b"allow-events" | b"u" => HeaderName::AllowEvents,
            b"refer-to" | b"r" => HeaderName::ReferTo,
            b"referred-by" | b"b" => HeaderName::ReferredBy,
            b"session-expires" | b"x" => HeaderName::SessionExpires,
            b"date" => HeaderName::Date,
            b"timestamp" => HeaderName::Timestamp,
            b"warning" => HeaderName::Warning,
            b"rseq" => HeaderName::RSeq,
            b"rack" => HeaderName::RAck,
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
