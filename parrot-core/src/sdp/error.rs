//! SDP parse errors, with the line (and byte offset) where the problem was found.

/// Why a session description could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// The input holds no lines.
    #[error("empty session description")]
    Empty,
    /// A line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// A line is not `<type>=<value>` with a single-letter type (RFC 4566 §5).
    #[error("malformed line: expected <letter>=<value>")]
    BadLine,
    /// The first line is not `v=` (RFC 4566 §5: v=, o= and s= come first, in that order).
    #[error("missing v= line")]
    MissingVersion,
    /// The `v=` value is not a number.
    #[error("malformed v= line")]
    BadVersion,
    /// The second line is not `o=` (RFC 4566 §5).
    #[error("missing o= line")]
    MissingOrigin,
    /// The `o=` line does not have its six fields (RFC 4566 §5.2).
    #[error("malformed o= line")]
    BadOrigin,
    /// The third line is not `s=` (RFC 4566 §5).
    #[error("missing s= line")]
    MissingSessionName,
    /// The `c=` line does not have its three fields (RFC 4566 §5.7).
    #[error("malformed c= line")]
    BadConnection,
    /// The `t=` line is not two decimal numbers (RFC 4566 §5.9).
    #[error("malformed t= line")]
    BadTiming,
    /// The `m=` line lacks a field (RFC 4566 §5.14).
    #[error("malformed m= line")]
    BadMedia,
    /// The `m=` port (or port count) is not a number in 0..=65535.
    #[error("malformed port in m= line")]
    BadPort,
    /// An RTP `m=` line lists a format that is not a payload type in 0..=127 (RFC 3551 §6).
    #[error("malformed payload type in m= line")]
    BadFormat,
    /// An `a=` line has an empty name.
    #[error("malformed a= line")]
    BadAttribute,
    /// A line of this type may not appear here (a second `v=`, `t=` inside a media section,
    /// `r=` before any `t=`).
    #[error("{0}= line not allowed here")]
    Misplaced(char),
    /// More `m=` lines than [`MAX_MEDIA`](super::MAX_MEDIA).
    #[error("too many m= lines")]
    TooManyMedia,
    /// An `m=` line lists more formats than [`MAX_FORMATS`](super::MAX_FORMATS).
    #[error("too many formats in m= line")]
    TooManyFormats,
    /// More `a=` lines than [`MAX_ATTRIBUTES`](super::MAX_ATTRIBUTES).
    #[error("too many a= lines")]
    TooManyAttributes,
}

/// A parse error: what went wrong and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (line {line})")]
#[non_exhaustive]
pub struct SdpError {
    /// What went wrong.
    pub kind: SdpErrorKind,
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the start of that line in the input.
    pub offset: usize,
}

impl SdpError {
    pub(crate) fn new(kind: SdpErrorKind, line: usize, offset: usize) -> Self {
        SdpError { kind, line, offset }
    }
}
