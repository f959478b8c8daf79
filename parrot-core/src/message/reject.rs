//! Answering what could not be parsed: a 400 built from the raw header lines
//! of a malformed request, so the sender learns what was wrong (RFC 3261 §8.2,
//! §21.4.1) instead of retransmitting into silence.

use super::error::ParseError;
use super::headers::HeaderName;
use bytes::{BufMut, Bytes, BytesMut};

/// Builds `400 Bad Request` for a request that failed to parse with `err`, by
/// copying its Via, From, To, Call-ID and CSeq lines as they are (§8.2.6.2)
/// and adding a To tag if there is none. The reason phrase names the problem.
///
/// Returns `None` when no response is possible: the input is a response, or
/// one of those five headers is missing, so the sender could not match it.
pub fn bad_request_for(buf: &[u8], err: &ParseError) -> Option<Bytes> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let buf = &buf[start..];
    let head_end = memchr::memmem::find(buf, b"\r\n\r\n").map_or(buf.len(), |e| e + 2);
    let head = &buf[..head_end];
    let first_end = memchr::memmem::find(head, b"\r\n")?;
    if head.len() >= 4 && head[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let mut via = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    let mut pos = first_end + 2;
    while pos < head.len() {
        let mut end = memchr::memmem::find(&head[pos..], b"\r\n").map_or(head.len(), |e| pos + e);
        // Keep folded continuation lines with their header.
        while end + 2 < head.len() && matches!(head[end + 2], b' ' | b'\t') {
            end =
                memchr::memmem::find(&head[end + 2..], b"\r\n").map_or(head.len(), |e| end + 2 + e);
        }
        let line = &head[pos..end];
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = line[..colon].trim_ascii();
            match HeaderName::lookup(name) {
                Some(HeaderName::Via) => via.push(line),
                Some(HeaderName::From) => from = from.or(Some(line)),
                Some(HeaderName::To) => to = to.or(Some(line)),
                Some(HeaderName::CallId) => call_id = call_id.or(Some(line)),
                Some(HeaderName::CSeq) => cseq = cseq.or(Some(line)),
                _ => {}
            }
        }
        pos = end + 2;
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if via.is_empty() {
        return None;
    }
    let reason = format!("Bad Request ({})", err.kind);
    let mut out = BytesMut::with_capacity(head_end + 96);
    out.put_slice(b"SIP/2.0 400 ");
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
    for v in via {
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.put_slice(from);
    out.put_slice(b"\r\n");
    out.put_slice(to);
    let lower = to.to_ascii_lowercase();
    if !lower.windows(4).any(|w| w == b"tag=") {
        out.put_slice(format!(";tag={}", crate::entropy::global().tag()).as_bytes());
    }
    out.put_slice(b"\r\n");
    out.put_slice(call_id);
    out.put_slice(b"\r\n");
    out.put_slice(cseq);
    out.put_slice(b"\r\nContent-Length: 0\r\n\r\n");
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ErrorKind, Message, StatusCode};

    #[test]
    fn answers_a_malformed_request() {
        let wire = b"INVITE sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: \"Mr. J. User <sip:j.user@example.com>\r\nFrom: <sip:c@example.net>;tag=9\r\nCall-ID: q\r\nCSeq: 8 INVITE\r\nContent-Length: 0\r\n\r\n";
        let err = Message::parse(Bytes::from_static(wire)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadHeader(HeaderName::To));
        let resp = bad_request_for(wire, &err).unwrap();
        let m = Message::parse(resp.clone());
        // The To line was malformed and is copied as it is, so the response does
        // not parse strictly either; check its shape instead.
        assert!(m.is_err());
        let text = String::from_utf8_lossy(&resp);
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request (malformed To header)\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"));
        assert!(text.contains("CSeq: 8 INVITE\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn response_parses_when_the_copied_lines_are_fine() {
        let wire = b"OPTIONS sip:u@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nt: <sip:u@example.com>\r\nf: <sip:c@example.net>;tag=9\r\ni: q\r\nCSeq: 8 INVITE\r\nl: 0\r\n\r\n";
        let err = Message::parse(Bytes::from_static(wire)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::CSeqMismatch);
        let m = Message::parse(bad_request_for(wire, &err).unwrap()).unwrap();
        let r = m.as_response().unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            r.headers().to().unwrap().tag().is_some(),
            "a To tag is added"
        );
        assert_eq!(r.headers().top_via().unwrap().branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn no_answer_without_the_headers_to_match() {
        let wire = b"INVITE sip:u@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\nl: -1\r\n\r\n";
        let err = Message::parse(Bytes::from_static(wire)).unwrap_err();
        assert!(bad_request_for(wire, &err).is_none());
        let resp = b"SIP/2.0 4294967301 x\r\n\r\n";
        let err = Message::parse(Bytes::from_static(resp)).unwrap_err();
        assert!(bad_request_for(resp, &err).is_none());
    }
}
