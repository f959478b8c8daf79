//! [`Text`]: an immutable UTF-8 string that is cheap to make from a slice of a
//! received message and cheap to clone.
//!
//! Short strings (hosts, tags, branches, tokens: almost everything a SIP
//! header holds) are copied inline; longer ones share the message buffer
//! through [`Bytes`]. Copying twenty bytes is cheaper than a reference-counted
//! slice per field, whose every clone and drop is an atomic read-modify-write.

use bytes::Bytes;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Strings up to this many bytes are stored inline.
pub(crate) const INLINE: usize = 38;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE] },
    Shared(Bytes),
}

/// An immutable UTF-8 string: inline when short, sharing a [`Bytes`] buffer when long.
#[derive(Clone)]
pub struct Text(Repr);

impl Text {
    /// A text from a static string (no copy, no allocation).
    pub const fn from_static(s: &'static str) -> Self {
        Text(Repr::Shared(Bytes::from_static(s.as_bytes())))
    }

    /// Wraps bytes that must be valid UTF-8.
    pub fn from_bytes(b: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&b)?;
        Ok(Self::from_checked(b))
    }

    /// Wraps bytes already known to be UTF-8 (checked again in debug builds).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&b).is_ok());
        if b.len() <= INLINE {
            Self::inline(&b)
        } else {
            Text(Repr::Shared(b))
        }
    }

    /// `buf[start..end]`, known to be UTF-8: copied if short, shared if long.
    pub(crate) fn copy_of(buf: &Bytes, start: usize, end: usize) -> Self {
        debug_assert!(std::str::from_utf8(&buf[start..end]).is_ok());
        let len = end - start;
        if len <= INLINE {
            // A fixed-size copy is a few vector moves, where a variable one is a
            // memcpy call; the bytes past `len` are never read.
            match buf.get(start..start + INLINE) {
                Some(window) => {
                    let mut data = [0u8; INLINE];
                    data.copy_from_slice(window);
                    Text(Repr::Inline {
                        len: len as u8,
                        data,
                    })
                }
                None => Self::inline(&buf[start..end]),
            }
        } else {
            Text(Repr::Shared(buf.slice(start..end)))
        }
    }

    pub(crate) fn inline(s: &[u8]) -> Self {
        let mut data = [0u8; INLINE];
        data[..s.len()].copy_from_slice(s);
        Text(Repr::Inline {
            len: s.len() as u8,
            data,
        })
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Valid UTF-8 by construction; the fallback is unreachable.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }

    /// The bytes as a [`Bytes`] (shared when long, copied when short).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_bytes()),
            Repr::Shared(b) => b.clone(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Case-insensitive ASCII comparison.
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.as_bytes().eq_ignore_ascii_case(other.as_bytes())
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::from_static("")
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::from_static(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            Text::inline(s.as_bytes())
        } else {
            Text(Repr::Shared(Bytes::from(s)))
        }
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_shared_compare_by_content() {
        let long = "x".repeat(INLINE + 5);
        let buf = Bytes::from(format!("ab{long}"));
        let short = Text::copy_of(&buf, 0, 2);
        let shared = Text::copy_of(&buf, 2, buf.len());
        assert_eq!(short, "ab");
        assert_eq!(shared.as_str(), long);
        assert_eq!(Text::from(long.clone()), shared);
        assert_eq!(Text::from_static("ab"), short);
        assert!(Text::from_bytes(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(short.to_bytes(), Bytes::from_static(b"ab"));
    }
}
