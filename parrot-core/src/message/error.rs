//! Parse errors, with the byte offset where the problem was found.

use super::headers::name::HeaderName;

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The buffer held no message (only whitespace or nothing).
    #[error("empty message")]
    Empty,
    /// The header section is not terminated by an empty line.
    #[error("header section not terminated by an empty line")]
    Incomplete,
    /// The first line is neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
    #[error("malformed start line")]
    BadStartLine,
    /// The method is not a token.
    #[error("malformed method")]
    BadMethod,
    /// The Request-URI could not be parsed, or holds what a Request-URI may not (§19.1.1).
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// The SIP-Version is not `SIP/<digits>.<digits>`.
    #[error("malformed SIP version")]
    BadVersion,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code")]
    BadStatus,
    /// A header line has no colon or its name is not a token.
    #[error("malformed header line")]
    BadHeaderLine,
    /// A line starts with whitespace but there is no header to continue.
    #[error("continuation line without a header")]
    BadFolding,
    /// The value of a header the stack interprets is malformed.
    #[error("malformed {0} header")]
    BadHeader(HeaderName),
    /// A header that may appear only once appears more than once with different values.
    #[error("more than one {0} header")]
    DuplicateHeader(HeaderName),
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// The body is shorter than Content-Length announced.
    #[error("body shorter than Content-Length: announced {announced}, got {got}")]
    BodyTooShort {
        /// Bytes announced by Content-Length.
        announced: usize,
        /// Bytes present.
        got: usize,
    },
    /// A stream message has no Content-Length (RFC 3261 §18.3).
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
    /// The message exceeds the configured maximum size.
    #[error("message larger than the allowed maximum")]
    TooLarge,
}

/// A parse error: what went wrong and at which byte of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
#[non_exhaustive]
pub struct ParseError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Offset in the input where the problem was found.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, offset: usize) -> Self {
        ParseError { kind, offset }
    }
}
