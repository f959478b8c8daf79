//! SIP methods (RFC 3261 §7.1 and the extensions a UA meets). Methods are case-sensitive.

use super::text::Text;
use std::fmt;

macro_rules! methods {
    ($( $variant:ident => $name:literal, $doc:literal; )*) => {
        /// A request method. Unknown methods are kept as [`Method::Extension`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Method {
            $( #[doc = $doc] $variant, )*
            /// Any other method (a `token`).
            Extension(Text),
        }

        impl Method {
            /// The method name as it goes on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Method::$variant => $name, )*
                    Method::Extension(t) => t.as_str(),
                }
            }

            /// A known method from its exact (case-sensitive) name.
            pub fn known(name: &[u8]) -> Option<Method> {
                match name {
                    $( n if n == $name.as_bytes() => Some(Method::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    Invite => "INVITE", "RFC 3261";
    Ack => "ACK", "RFC 3261";
    Bye => "BYE", "RFC 3261";
    Cancel => "CANCEL", "RFC 3261";
    Options => "OPTIONS", "RFC 3261";
    Register => "REGISTER", "RFC 3261";
    Info => "INFO", "RFC 6086";
    Message => "MESSAGE", "RFC 3428";
    Refer => "REFER", "RFC 3515";
    Notify => "NOTIFY", "RFC 6665";
    Subscribe => "SUBSCRIBE", "RFC 6665";
    Update => "UPDATE", "RFC 3311";
    Prack => "PRACK", "RFC 3262";
    Publish => "PUBLISH", "RFC 3903";
}

impl Method {
    /// Builds a method from a name; unknown names must be tokens.
    pub fn from_name(name: &str) -> Option<Method> {
        if let Some(m) = Method::known(name.as_bytes()) {
            return Some(m);
        }
        (!name.is_empty() && name.bytes().all(super::scan::is_token))
            .then(|| Method::Extension(Text::from(name.to_owned())))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
