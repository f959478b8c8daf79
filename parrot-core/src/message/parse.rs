//! The message parser: start line, header lines, body (RFC 3261 §7, §25).

use super::error::{ErrorKind, ParseError};
use super::headers::values::parse_number;
use super::headers::{Chunk, Field, HeaderName, Headers};
use super::method::Method;
use super::scan::is_token;
use super::status::StatusCode;
use super::text::Text;
use super::uri::{Uri, UriContext, parse_uri};
use super::{Message, Request, Response, Version};
use bytes::{BufMut, Bytes, BytesMut};

fn err<T>(kind: ErrorKind, offset: usize) -> Result<T, ParseError> {
    Err(ParseError::new(kind, offset))
}

/// The end (the CR) of the start line beginning at `from`.
fn line_end(buf: &[u8], from: usize) -> Result<usize, ParseError> {
    match memchr::memchr(b'\n', &buf[from..]) {
        Some(i) if i > 0 && buf[from + i - 1] == b'\r' => Ok(from + i - 1),
        Some(i) => err(ErrorKind::BadStartLine, from + i),
        None => err(ErrorKind::Incomplete, buf.len()),
    }
}

const fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a message; with `strict`, also types every interpreted header now
/// (reporting the first malformed one after any framing error).
pub(super) fn parse(buf: Bytes, strict: bool) -> Result<Message, ParseError> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let mut pos = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if pos >= buf.len() {
        return err(ErrorKind::Empty, pos);
    }
    let start = pos;
    let start_end = line_end(&buf, start)?;
    let line = &buf[start..start_end];

    #[allow(clippy::large_enum_variant)] // lives for one function call
    enum Start {
        Req(Method, Uri, Version),
        Resp(Version, StatusCode, Bytes),
    }
    let is_response = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/");
    let first = if is_response {
        let sp = memchr::memchr(b' ', line)
            .ok_or(ParseError::new(ErrorKind::BadStartLine, start_end))?;
        let version =
            parse_version(&line[..sp]).ok_or(ParseError::new(ErrorKind::BadVersion, start))?;
        let code_at = start + sp + 1;
        let rest = &line[sp + 1..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits != 3 || (rest.len() > 3 && rest[3] != b' ') {
            return err(ErrorKind::BadStatus, code_at);
        }
        let code = rest[..3]
            .iter()
            .fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
        let status = StatusCode::new(code).ok_or(ParseError::new(ErrorKind::BadStatus, code_at))?;
        // Reason-Phrase may be empty (RFC 4475 §3.1.1.13); a missing SP before it is tolerated.
        let reason_at = (code_at + 4).min(start_end);
        if buf[reason_at..start_end]
            .iter()
            .any(|&b| b < 0x20 && b != b'\t')
        {
            return err(ErrorKind::BadStartLine, reason_at);
        }
        Start::Resp(version, status, buf.slice(reason_at..start_end))
    } else {
        // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces
        // (RFC 4475 §3.1.2.9–11: extra whitespace is malformed).
        let sp1 = memchr::memchr(b' ', line)
            .ok_or(ParseError::new(ErrorKind::BadStartLine, start_end))?;
        let sp2 = memchr::memchr(b' ', &line[sp1 + 1..])
            .map(|i| sp1 + 1 + i)
            .ok_or(ParseError::new(ErrorKind::BadStartLine, start_end))?;
        if line[sp2 + 1..].contains(&b' ') {
            return err(ErrorKind::BadStartLine, start + sp2 + 1);
        }
        let m = &line[..sp1];
        if m.is_empty() || !m.iter().all(|&b| is_token(b)) {
            return err(ErrorKind::BadMethod, start);
        }
        let method = Method::known(m)
            .unwrap_or_else(|| Method::Extension(Text::copy_of(&buf, start, start + sp1)));
        let (us, ue) = (start + sp1 + 1, start + sp2);
        let uri = parse_uri(&buf, us, ue, UriContext::Full)
            .map_err(|p| ParseError::new(ErrorKind::BadRequestUri, p))?;
        // Headers are not allowed in a Request-URI (RFC 3261 §19.1.1 table; RFC 4475 §3.1.2.12).
        if uri.as_sip().is_some_and(|u| u.headers().is_some()) {
            return err(ErrorKind::BadRequestUri, us);
        }
        let version = parse_version(&line[sp2 + 1..])
            .ok_or(ParseError::new(ErrorKind::BadVersion, start + sp2 + 1))?;
        Start::Req(method, uri, version)
    };

    // Header lines, taken in order: each call to `next_end` finds the end of
    // the line starting at `from`.
    let hs = start_end + 2;
    let mut fields: Vec<Field> = Vec::with_capacity(16);
    // The values of folded lines, unfolded (referenced by `Chunk::Owned`).
    let mut owned: Vec<Bytes> = Vec::new();
    let mut content_length = None;
    let mut seen = 0u8;
    let next_end = |from: usize| -> Result<Option<usize>, ParseError> {
        match find_lf(&buf, from) {
            Some(i) => {
                // Lines end in CRLF; a bare LF is malformed.
                if i == from || buf[i - 1] != b'\r' {
                    return err(ErrorKind::BadHeaderLine, i);
                }
                Ok(Some(i - 1))
            }
            None => Ok(None),
        }
    };
    pos = hs;
    loop {
        if pos == buf.len() {
            // The datagram ends right after a header line, without the empty
            // line RFC 3261 §7 asks for: tolerated, with an empty body.
            break;
        }
        let end = next_end(pos)?.ok_or(ParseError::new(ErrorKind::Incomplete, buf.len()))?;
        if end == pos {
            pos += 2;
            break;
        }
        if is_ws(buf[pos]) {
            return err(ErrorKind::BadFolding, pos);
        }
        let line_start = pos;
        // field-name HCOLON, with HCOLON = *( SP / HTAB ) ":" SWS: the common
        // names as they are usually written are recognised whole; any other
        // is scanned in one pass over the name rather than searching for the
        // colon first.
        let (name_end, known) = match HeaderName::canonical_prefix(&buf[pos..end]) {
            Some((name, len)) => (pos + len, Some(name)),
            None => {
                let mut name_end = pos;
                while name_end < end && is_token(buf[name_end]) {
                    name_end += 1;
                }
                (name_end, None)
            }
        };
        let mut colon = name_end;
        while colon < end && is_ws(buf[colon]) {
            colon += 1;
        }
        if name_end == pos || colon >= end || buf[colon] != b':' {
            return err(ErrorKind::BadHeaderLine, pos);
        }
        // Continuation lines (folding, §7.3.1): the value goes on while lines start with whitespace.
        let mut last = end;
        let mut folded = false;
        while last + 2 < buf.len() && is_ws(buf[last + 2]) {
            folded = true;
            last = next_end(last + 2)?.ok_or(ParseError::new(ErrorKind::Incomplete, buf.len()))?;
        }
        let mut vs = colon + 1;
        while vs < last && is_ws(buf[vs]) {
            vs += 1;
        }
        let mut ve = last;
        while ve > vs && is_ws(buf[ve - 1]) {
            ve -= 1;
        }
        // An unknown name is kept as received, so it is its own canonical form.
        let (name, exact_name) = match known {
            Some(name) => (name, true),
            None => HeaderName::lookup_exact(&buf[pos..name_end]).unwrap_or_else(|| {
                (
                    HeaderName::Other(Text::copy_of(&buf, line_start, name_end)),
                    true,
                )
            }),
        };
        // Keep the original line only where it differs from the canonical
        // `Name: value` (compact form, other case, odd spacing, folding): that
        // is all byte-exact re-serialization needs.
        let canonical = !folded
            && ve == last
            && name_end == colon
            && vs == colon + 2
            && buf[colon + 1] == b' '
            && exact_name;
        let raw = (!canonical).then_some(Chunk::span(line_start, last));
        // Single-valued headers may not repeat (RFC 4475 §3.3.9, §3.3.10).
        let bit = match name {
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 4,
            HeaderName::CSeq => 8,
            HeaderName::MaxForwards => 16,
            HeaderName::ContentLength => 32,
            _ => 0,
        };
        if seen & bit != 0 {
            return err(ErrorKind::DuplicateHeader(name), line_start);
        }
        seen |= bit;
        let value = if folded {
            owned.push(unfold(&buf[vs..last]));
            Chunk::Owned((owned.len() - 1) as u32)
        } else {
            Chunk::span(vs, ve)
        };
        if name == HeaderName::ContentLength {
            // Parsed now: it frames the body.
            let (b, s, e) = match owned.last() {
                Some(b) if folded => (b, 0, b.len()),
                _ => (&buf, vs, ve),
            };
            let n = parse_number(b, s, e, u64::from(u32::MAX)).map_err(|p| {
                ParseError::new(
                    ErrorKind::BadHeader(HeaderName::ContentLength),
                    if folded { vs } else { p },
                )
            })?;
            content_length = Some(n as usize);
        }
        fields.push(Field { name, value, raw });
        pos = last + 2;
    }

    // Body (RFC 3261 §18.3): exactly Content-Length bytes; extra bytes in a datagram are ignored.
    let available = buf.len() - pos;
    let body = match content_length {
        Some(cl) if cl > available => {
            return err(
                ErrorKind::BodyTooShort {
                    announced: cl,
                    got: available,
                },
                buf.len(),
            );
        }
        Some(cl) => buf.slice(pos..pos + cl),
        None => buf.slice(pos..),
    };
    let start_raw = Some(buf.slice(start..start_end));
    // The buffer itself goes to the headers, whose spans point into it: moved,
    // not cloned (a clone and a drop are two atomic operations).
    let headers = if strict {
        Headers::parsed_strict(buf, fields, owned, content_length)
            .map_err(|(name, at)| ParseError::new(ErrorKind::BadHeader(name), at))?
    } else {
        Headers::parsed(buf, fields, owned, content_length)
    };
    // A request's CSeq method must be its method (RFC 3261 §8.1.1.5; RFC 4475
    // §3.1.2.17–18), checked here rather than after: the message is then built
    // once, where the caller keeps it.
    if let (true, Start::Req(method, ..)) = (strict, &first) {
        if headers.cseq().is_some_and(|c| c.method != *method) {
            return err(ErrorKind::CSeqMismatch, 0);
        }
    }

    Ok(match first {
        Start::Req(method, uri, version) => Message::Request(Request {
            method,
            uri,
            version,
            headers,
            body,
            start_raw,
        }),
        Start::Resp(version, status, reason) => Message::Response(Response {
            version,
            status,
            reason,
            headers,
            body,
            start_raw,
        }),
    })
}

/// The first LF at or after `from`. Header lines are a few dozen bytes: eight
/// at a time in a word beats a vector search's set-up per line.
fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    super::scan::find_byte(buf.get(from..)?, b'\n').map(|i| from + i)
}

/// `SIP/<digits>.<digits>`, case-insensitive (§7.1).
fn parse_version(v: &[u8]) -> Option<Version> {
    if v == b"SIP/2.0" {
        return Some(Version::SIP_2_0);
    }
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let dot = v[4..].iter().position(|&b| b == b'.')? + 4;
    let num = |d: &[u8]| -> Option<u16> {
        if d.is_empty() || d.len() > 4 || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(d.iter().fold(0u16, |n, b| n * 10 + u16::from(b - b'0')))
    };
    Some(Version {
        major: num(&v[4..dot])?,
        minor: num(&v[dot + 1..])?,
    })
}

/// Removes the CRLFs of folded lines; the whitespace after each stays (it is LWS).
fn unfold(v: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\r' && v.get(i + 1) == Some(&b'\n') {
            i += 2;
            continue;
        }
        out.put_u8(v[i]);
        i += 1;
    }
    let mut end = out.len();
    while end > 0 && is_ws(out[end - 1]) {
        end -= 1;
    }
    out.truncate(end);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use bytes::Bytes;

    #[test]
    fn find_lf_finds_the_first_lf_at_any_offset() {
        for len in 0..40 {
            for lf in [
                None,
                Some(0),
                Some(7),
                Some(8),
                Some(len / 2),
                Some(len.max(1) - 1),
            ] {
                let mut b: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                // A byte one above LF and one below, to tempt the word trick.
                if len > 3 {
                    b[1] = b'\n' + 1;
                    b[2] = b'\n' - 1;
                }
                if let Some(i) = lf.filter(|&i| i < len) {
                    b[i] = b'\n';
                    if i + 1 < len {
                        b[len - 1] = b'\n';
                    }
                }
                for from in 0..=len {
                    let want = b[from..].iter().position(|&c| c == b'\n').map(|i| from + i);
                    assert_eq!(
                        super::find_lf(&b, from),
                        want,
                        "len {len} lf {lf:?} from {from}"
                    );
                }
            }
        }
        assert_eq!(super::find_lf(b"abc", 4), None);
    }

    /// `Message::parse` types the headers in one pass; it must accept, and
    /// reject with the same error, exactly what `parse_lazy` + `validate` does.
    #[test]
    fn strict_parse_reports_what_lazy_and_validate_report() {
        let lines = [
            "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
            "Via: SIP/2.0/UDP b.example.com:5060;branch=z9hG4bK2, SIP/2.0/TCP c;branch=z9hG4bK3",
            "From: Alice <sip:alice@atlanta.com>;tag=1",
            "To: <sip:bob@biloxi.com>",
            "Call-ID: abc@host",
            "CSeq: 1 OPTIONS",
            "Max-Forwards: 70",
            "Contact: <sip:a@b>, sip:c@d;expires=5",
            "Route: <sip:p1;lr>",
            "Record-Route: <sip:p2;lr>",
            "Contact: *",
        ];
        let bad = [
            "Via: SIP/2.0/UDP",
            "Via: nonsense",
            "From: <sip:a@b",
            "To: sip:a@b junk",
            "Call-ID: a b",
            "CSeq: x OPTIONS",
            "CSeq: 1 INVITE",
            "Max-Forwards: 256",
            "Contact: <sip:a@b>;;",
            "Contact: *",
            "Route: <sip:x",
            "Record-Route: junk junk",
            "Content-Length: 9",
        ];
        let parse_both = |msg: String| {
            let b = Bytes::from(msg);
            let strict = Message::parse(b.clone());
            let lazy = Message::parse_lazy(b).and_then(|m| m.validate().map(|()| m));
            match (&strict, &lazy) {
                (Ok(s), Ok(l)) => {
                    assert_eq!(s.to_bytes(), l.to_bytes());
                    let (sh, lh) = (s.headers(), l.headers());
                    assert_eq!(sh.vias(), lh.vias());
                    assert_eq!(sh.top_via(), lh.top_via());
                    assert_eq!(sh.from(), lh.from());
                    assert_eq!(sh.to(), lh.to());
                    assert_eq!(sh.call_id(), lh.call_id());
                    assert_eq!(sh.cseq(), lh.cseq());
                    assert_eq!(sh.max_forwards(), lh.max_forwards());
                    assert_eq!(sh.contacts(), lh.contacts());
                    assert_eq!(sh.routes(), lh.routes());
                    assert_eq!(sh.record_routes(), lh.record_routes());
                }
                (Err(s), Err(l)) => assert_eq!(s, l),
                _ => panic!("strict {strict:?} but lazy {lazy:?}"),
            }
            strict.is_ok()
        };
        let mut accepted = 0;
        // Every subset of up to two bad lines, in both orders, among the good ones.
        for i in 0..=bad.len() {
            for j in 0..=bad.len() {
                let mut msg = String::from("OPTIONS sip:bob@biloxi.com SIP/2.0\r\n");
                for (n, l) in lines.iter().enumerate() {
                    if n == 3 && i < bad.len() {
                        msg.push_str(bad[i]);
                        msg.push_str("\r\n");
                    }
                    // A second `Contact: *` beside addresses is itself an error; keep one case of it.
                    if n == 10 && (i, j) != (0, 0) {
                        continue;
                    }
                    msg.push_str(l);
                    msg.push_str("\r\n");
                }
                if j < bad.len() {
                    msg.push_str(bad[j]);
                    msg.push_str("\r\n");
                }
                msg.push_str("\r\n");
                accepted += usize::from(parse_both(msg));
            }
        }
        // Without the trailing `Contact: *` the good lines alone parse.
        let good: String = lines[..10].iter().map(|l| format!("{l}\r\n")).collect();
        assert!(parse_both(format!(
            "OPTIONS sip:bob@biloxi.com SIP/2.0\r\n{good}\r\n"
        )));
        assert!(accepted < (bad.len() + 1) * (bad.len() + 1));
    }
}
