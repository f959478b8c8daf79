//! [`Text`]: a cheaply cloned, zero-copy UTF-8 string that shares the message buffer.

use bytes::Bytes;
use std::fmt;

/// An immutable UTF-8 string backed by [`Bytes`].
///
/// Values parsed from a message are slices of the received buffer: cloning is a
/// reference-count increment and no bytes are copied.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// A text from a static string.
    pub const fn from_static(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes that must be valid UTF-8.
    pub fn from_bytes(b: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&b)?;
        Ok(Text(b))
    }

    /// Wraps bytes already known to be ASCII or UTF-8 (checked again in debug builds).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&b).is_ok());
        Text(b)
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Valid by construction; the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying shared buffer.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Case-insensitive ASCII comparison.
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.as_bytes())
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
        Text(Bytes::from(s))
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
