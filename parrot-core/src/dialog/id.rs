//! Dialog identifiers (RFC 3261 §12) and the generators of tags, Call-IDs and
//! branches.

use crate::entropy;
use crate::message::{Request, Response, Text};
use std::fmt;

/// A dialog identifier: Call-ID, local tag and remote tag (RFC 3261 §12).
///
/// Tags compare exactly (they are tokens chosen by the UAs); a peer that sent
/// no tag (RFC 2543) has an empty tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: Text,
    /// Our tag.
    pub local_tag: Text,
    /// The peer's tag.
    pub remote_tag: Text,
}

impl DialogId {
    /// A dialog identifier from its parts.
    pub fn new(
        call_id: impl Into<Text>,
        local_tag: impl Into<Text>,
        remote_tag: impl Into<Text>,
    ) -> DialogId {
        DialogId {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
            remote_tag: remote_tag.into(),
        }
    }

    /// The identifier of the dialog an incoming request belongs to, seen by its
    /// UAS: local tag = To tag, remote tag = From tag (§12.2.2).
    ///
    /// `None` if the request has no Call-ID or no To tag (it is then outside any
    /// dialog). A missing From tag (RFC 2543 peer) is an empty remote tag.
    pub fn from_request(req: &Request) -> Option<DialogId> {
        let h = req.headers();
        let local = h.to()?.tag()?;
        let remote = h.from().and_then(|f| f.tag()).unwrap_or("");
        Some(DialogId::new(
            h.call_id()?.clone(),
            Text::from(local.to_owned()),
            Text::from(remote.to_owned()),
        ))
    }

    /// The identifier of the dialog a response belongs to, seen by the UAC that
    /// sent the request: local tag = From tag, remote tag = To tag (§12.1.2).
    ///
    /// `None` without Call-ID or From tag. A missing To tag is an empty remote tag.
    pub fn from_response(resp: &Response) -> Option<DialogId> {
        let h = resp.headers();
        let local = h.from()?.tag()?;
        let remote = h.to().and_then(|t| t.tag()).unwrap_or("");
        Some(DialogId::new(
            h.call_id()?.clone(),
            Text::from(local.to_owned()),
            Text::from(remote.to_owned()),
        ))
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};local={};remote={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

/// A new From/To tag: 64 bits, 16 hex digits (RFC 3261 §19.3 asks for at least 32
/// random bits), from the process-wide [`entropy::global`] source.
///
/// Tags, Call-IDs and branches are *unique*, not secret: see [`crate::entropy`]. Code
/// that is handed an [`Entropy`](crate::entropy::Entropy) draws from it instead
/// ([`Entropy::tag`](crate::entropy::Entropy::tag)), so that a run can be replayed.
pub fn new_tag() -> String {
    entropy::global().tag()
}

/// A new Call-ID, `128 bits in hex@host` (RFC 3261 §8.1.1.4), from the process-wide
/// source. Unique, not secret (see [`new_tag`]).
pub fn new_call_id(host: &str) -> String {
    entropy::global().call_id(host)
}

/// A new Via branch starting with the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7),
/// followed by 96 bits in hex, from the process-wide source. Unique, not secret (see
/// [`new_tag`]).
pub fn new_branch() -> String {
    entropy::global().branch()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_values_are_unique() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(new_tag()));
        }
        assert_eq!(new_tag().len(), 16);
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 7 + 24);
        let c = new_call_id("example.com");
        assert!(c.ends_with("@example.com") && c.len() == 32 + 12);
        assert_ne!(new_call_id("h"), new_call_id("h"));
    }
}
