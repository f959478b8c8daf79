//! Finding message boundaries in a byte stream (RFC 3261 §18.3).
//!
//! On TCP, TLS and other streams the only way to know where a message ends is
//! the Content-Length header, which is mandatory there. CRLF sequences between
//! messages are keep-alives (RFC 5626 §3.5.1) and are reported separately so
//! the transport can answer a double CRLF "ping" with a single CRLF "pong".

use super::error::{ErrorKind, ParseError};
use super::headers::name::HeaderName;

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// Not enough bytes yet to know; read more.
    Incomplete,
    /// `len` bytes of CRLF keep-alive. `ping` is true when they form a
    /// double-CRLF ping that must be answered with a CRLF pong.
    KeepAlive {
        /// Number of CR/LF bytes to consume.
        len: usize,
        /// A `CRLFCRLF` ping (RFC 5626 §3.5.1) was seen.
        ping: bool,
    },
    /// A whole message occupies the first `len` bytes.
    Message {
        /// Total length: start line, headers, blank line and body.
        len: usize,
    },
}

/// Looks at the front of `buf` (a stream's receive buffer) and says what is there.
///
/// `max_size` bounds a message: a header section or announced body that would
/// exceed it is an error ([`ErrorKind::TooLarge`]) before it is buffered whole.
pub fn frame(buf: &[u8], max_size: usize) -> Result<Framed, ParseError> {
    // Keep-alives: any run of CR and LF before a start line.
    let ws = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if ws > 0 {
        // A lone CRLF at the end of what was read may be the first half of a
        // CRLFCRLF ping split across reads: wait for more before deciding.
        if ws == buf.len() && ws < 4 {
            return Ok(Framed::Incomplete);
        }
        let ping = buf[..ws].windows(4).any(|w| w == b"\r\n\r\n");
        return Ok(Framed::KeepAlive { len: ws, ping });
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > max_size {
            return Err(ParseError::new(ErrorKind::TooLarge, max_size));
        }
        return Ok(Framed::Incomplete);
    };
    let body_start = head_end + 4;
    if body_start > max_size {
        return Err(ParseError::new(ErrorKind::TooLarge, max_size));
    }
    let content_length = find_content_length(&buf[..head_end + 2])?;
    let Some(cl) = content_length else {
        // RFC 3261 §18.3: Content-Length MUST be used with stream transports.
        return Err(ParseError::new(ErrorKind::MissingContentLength, 0));
    };
    let len = body_start
        .checked_add(cl)
        .filter(|&l| l <= max_size)
        .ok_or(ParseError::new(ErrorKind::TooLarge, max_size))?;
    if buf.len() < len {
        return Ok(Framed::Incomplete);
    }
    Ok(Framed::Message { len })
}

/// Scans a header section (ending with CRLF) for Content-Length / `l`.
fn find_content_length(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    let mut pos = match memchr::memmem::find(head, b"\r\n") {
        Some(p) => p + 2,
        None => return Ok(None),
    };
    while pos < head.len() {
        let end = memchr::memmem::find(&head[pos..], b"\r\n").map_or(head.len(), |e| pos + e);
        let line = &head[pos..end];
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = trim(&line[..colon]);
            if HeaderName::from_bytes(name) == HeaderName::ContentLength {
                let mut value = trim(&line[colon + 1..]);
                // A folded value continues on the next line(s).
                let mut next = end + 2;
                while next < head.len() && matches!(head[next], b' ' | b'\t') {
                    let e = memchr::memmem::find(&head[next..], b"\r\n")
                        .map_or(head.len(), |e| next + e);
                    if value.is_empty() {
                        value = trim(&head[next..e]);
                    }
                    next = e + 2;
                }
                let n = parse_len(value).ok_or(ParseError::new(
                    ErrorKind::BadHeader(HeaderName::ContentLength),
                    pos + colon + 1,
                ))?;
                if found.is_some_and(|f| f != n) {
                    return Err(ParseError::new(
                        ErrorKind::DuplicateHeader(HeaderName::ContentLength),
                        pos,
                    ));
                }
                found = Some(n);
            }
        }
        pos = end + 2;
    }
    Ok(found)
}

fn parse_len(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn whole_message() {
        assert_eq!(
            frame(MSG, 65536).unwrap(),
            Framed::Message { len: MSG.len() }
        );
    }

    #[test]
    fn every_split_is_incomplete_until_the_end() {
        for cut in 1..MSG.len() {
            assert_eq!(
                frame(&MSG[..cut], 65536).unwrap(),
                Framed::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn two_messages_in_one_buffer() {
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(
            frame(&two, 65536).unwrap(),
            Framed::Message { len: MSG.len() }
        );
    }

    #[test]
    fn keepalives() {
        assert_eq!(
            frame(b"\r\n\r\n", 100).unwrap(),
            Framed::KeepAlive { len: 4, ping: true }
        );
        // A lone CRLF may be half a ping: wait.
        assert_eq!(frame(b"\r\n", 100).unwrap(), Framed::Incomplete);
        assert_eq!(frame(b"\r\n\r", 100).unwrap(), Framed::Incomplete);
        assert_eq!(
            frame(b"\r\nOPTIONS", 100).unwrap(),
            Framed::KeepAlive {
                len: 2,
                ping: false
            }
        );
    }

    #[test]
    fn limits_and_errors() {
        assert_eq!(frame(MSG, 20).unwrap_err().kind, ErrorKind::TooLarge);
        assert_eq!(
            frame(&[b'a'; 200], 100).unwrap_err().kind,
            ErrorKind::TooLarge
        );
        let huge = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(frame(huge, 65536).unwrap_err().kind, ErrorKind::TooLarge);
        let none = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            frame(none, 65536).unwrap_err().kind,
            ErrorKind::MissingContentLength
        );
        let bad = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n";
        assert!(matches!(
            frame(bad, 65536).unwrap_err().kind,
            ErrorKind::BadHeader(_)
        ));
    }
}
