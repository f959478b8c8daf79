//! A tiny cursor over one header value (or start-line part), producing
//! zero-copy [`Text`] slices of the shared buffer. Errors are byte offsets
//! in that buffer.

use super::text::Text;
use bytes::Bytes;

/// `token` characters (RFC 3261 §25.1): alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
const fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Character classes of the grammar, one bit each, looked up in [`CLASS`]:
/// one load and one mask per byte in the scanning loops.
pub(crate) mod class {
    /// `token`.
    pub(crate) const TOKEN: u16 = 1;
    /// `word` (Call-ID).
    pub(crate) const WORD: u16 = 1 << 1;
    /// `paramchar` of URI parameters.
    pub(crate) const URI_PARAM: u16 = 1 << 2;
    /// SIP URI user part.
    pub(crate) const USER: u16 = 1 << 3;
    /// SIP URI password.
    pub(crate) const PASSWORD: u16 = 1 << 4;
    /// URI header characters.
    pub(crate) const HCHAR: u16 = 1 << 5;
    /// Host name characters (alphanum, `-`, `.`, `_`).
    pub(crate) const HOST: u16 = 1 << 6;
    /// URI scheme characters.
    pub(crate) const SCHEME: u16 = 1 << 7;
    /// Decimal digits.
    pub(crate) const DIGIT: u16 = 1 << 8;
    /// SP and HTAB.
    pub(crate) const WS: u16 = 1 << 9;
    /// IPv6 reference content (hex digits, `:`, `.`).
    pub(crate) const V6: u16 = 1 << 10;
    /// gen-value of header parameters: token, or a host with `[`, `]`, `:`.
    pub(crate) const GEN_VALUE: u16 = 1 << 11;
}

const fn classes(b: u8) -> u16 {
    let mut c = 0;
    if token_char(b) {
        c |= class::TOKEN | class::GEN_VALUE;
    }
    if is_word(b) {
        c |= class::WORD;
    }
    if is_uri_param(b) {
        c |= class::URI_PARAM;
    }
    if is_unreserved(b)
        || matches!(
            b,
            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
        )
    {
        c |= class::USER;
    }
    if is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
        c |= class::PASSWORD;
    }
    if is_unreserved(b)
        || matches!(
            b,
            b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
        )
    {
        c |= class::HCHAR;
    }
    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
        c |= class::HOST;
    }
    if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') {
        c |= class::SCHEME;
    }
    if b.is_ascii_digit() {
        c |= class::DIGIT;
    }
    if b == b' ' || b == b'\t' {
        c |= class::WS;
    }
    if b.is_ascii_hexdigit() || b == b':' || b == b'.' {
        c |= class::V6;
    }
    if matches!(b, b'[' | b']' | b':') {
        c |= class::GEN_VALUE;
    }
    c
}

/// The class bits of every byte.
pub(crate) static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = classes(i as u8);
        i += 1;
    }
    t
};

/// True if `b` is in any of the classes of `mask`.
#[inline(always)]
pub(crate) fn is(b: u8, mask: u16) -> bool {
    CLASS[usize::from(b)] & mask != 0
}

/// The first `byte` in `s`, eight bytes a step: on the few dozen bytes of a
/// header value this beats both a byte loop and a vector search's set-up.
#[inline]
pub(crate) fn find_byte(s: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = u64::from_ne_bytes([byte; 8]);
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let x = u64::from_le_bytes(word) ^ pattern;
        // A byte of `x` is zero where `byte` is; the lowest flagged byte is
        // always a true one (borrows only run upwards).
        let found = x.wrapping_sub(ONES) & !x & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| at + i)
}

/// `token` characters (RFC 3261 §25.1).
#[inline(always)]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, class::TOKEN)
}

/// `word` characters (Call-ID, §25.1): token characters plus `( ) < > : \ " / [ ] ? { }`.
pub(crate) const fn is_word(b: u8) -> bool {
    token_char(b)
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

/// Characters of a URI parameter name or value (`paramchar`, §25.1), `%` escapes included.
pub(crate) const fn is_uri_param(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `unreserved` (RFC 2396): alphanum / mark.
pub(crate) const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

pub(crate) const fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A position-tracking reader over `buf[start..end]`.
pub(crate) struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

pub(crate) type Pos = usize;

impl<'a> Cursor<'a> {
    /// A cursor over the whole of `buf`.
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Cursor {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    /// A cursor over `buf[start..end]`. Error positions are offsets in `buf`.
    pub(crate) fn sub(buf: &'a Bytes, start: usize, end: usize) -> Self {
        Cursor {
            buf,
            pos: start,
            end,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.end);
    }

    /// An error at the current position (an offset in the whole buffer).
    pub(crate) fn err<T>(&self) -> Result<T, Pos> {
        Err(self.pos)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.buf[self.pos])
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..self.end).unwrap_or(&[])
    }

    pub(crate) fn bytes(&self, start: usize, end: usize) -> &'a [u8] {
        &self.buf[start..end]
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while self.pos < self.end && is_ws(self.buf[self.pos]) {
            self.pos += 1;
        }
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips whitespace, then expects `b` and skips whitespace after it (`SWS b SWS`).
    pub(crate) fn sep(&mut self, b: u8) -> Result<(), Pos> {
        self.ws();
        if !self.eat(b) {
            return self.err();
        }
        self.ws();
        Ok(())
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> (usize, usize) {
        let start = self.pos;
        while self.pos < self.end && f(self.buf[self.pos]) {
            self.pos += 1;
        }
        (start, self.pos)
    }

    /// Advances over bytes in the classes of `mask`; returns the span covered.
    #[inline]
    pub(crate) fn take(&mut self, mask: u16) -> (usize, usize) {
        let start = self.pos;
        let rest = self.buf.get(start..self.end).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| CLASS[usize::from(b)] & mask == 0)
            .unwrap_or(rest.len());
        self.pos = start + n;
        (start, self.pos)
    }

    /// Text of `buf[start..end]`, which the caller has checked is ASCII.
    pub(crate) fn ascii(&self, start: usize, end: usize) -> Text {
        Text::copy_of(self.buf, start, end)
    }

    /// Text of `buf[start..end]`, checked to be UTF-8.
    pub(crate) fn utf8(&self, start: usize, end: usize) -> Result<Text, Pos> {
        std::str::from_utf8(&self.buf[start..end]).map_err(|_| start)?;
        Ok(Text::copy_of(self.buf, start, end))
    }

    /// One or more `token` characters.
    pub(crate) fn token(&mut self) -> Result<Text, Pos> {
        let (s, e) = self.take(class::TOKEN);
        if s == e {
            return self.err();
        }
        Ok(self.ascii(s, e))
    }

    /// A decimal number of at most `max`.
    pub(crate) fn number(&mut self, max: u64) -> Result<u64, Pos> {
        let (s, e) = self.take(class::DIGIT);
        if s == e {
            return self.err();
        }
        let mut n: u64 = 0;
        for &d in &self.buf[s..e] {
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
            {
                Some(n) if n <= max => n,
                _ => return Err(s),
            };
        }
        Ok(n)
    }

    /// A quoted string starting at the cursor (which must be on `"`).
    /// Returns the content between the quotes, escapes left as they are.
    pub(crate) fn quoted(&mut self) -> Result<Text, Pos> {
        let open = self.pos;
        if !self.eat(b'"') {
            return self.err();
        }
        let start = self.pos;
        while self.pos < self.end {
            match self.buf[self.pos] {
                b'"' => {
                    let text = self.utf8(start, self.pos)?;
                    self.pos += 1;
                    return Ok(text);
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    let next = (self.pos + 1 < self.end).then(|| self.buf[self.pos + 1]);
                    match next {
                        Some(c) if c != b'\n' && c != b'\r' && c < 0x80 => self.pos += 2,
                        _ => return self.err(),
                    }
                }
                b'\r' | b'\n' => return self.err(),
                _ => self.pos += 1,
            }
        }
        Err(open)
    }

    /// Skips a run of `;name[=value]` parameters (header or URI parameters) and
    /// returns their raw text, from the first `;` to the end of the last one.
    /// `uri` selects the URI character set (no quoted values, no whitespace).
    pub(crate) fn params(&mut self, uri: bool) -> Result<Params, Pos> {
        let start = self.pos;
        // Most URIs, and many headers, have none: then there is nothing to copy.
        let mut first = start;
        if !uri {
            while first < self.end && is_ws(self.buf[first]) {
                first += 1;
            }
        }
        if first >= self.end || self.buf[first] != b';' {
            return Ok(Params::new());
        }
        let mut last = self.pos;
        // Where the first `branch` and `tag` are, as offsets from `start`
        // (each position fits a `u8` if the whole run does; checked at the end).
        let (mut branch, mut tag) = (Known::Absent, Known::Absent);
        loop {
            if !uri {
                self.ws();
            }
            if !self.eat(b';') {
                break;
            }
            if !uri {
                self.ws();
            }
            let (s, e) = self.take(if uri { class::URI_PARAM } else { class::TOKEN });
            if s == e {
                return self.err();
            }
            let slot = match self.bytes(s, e) {
                n if n.len() == 6 && n.eq_ignore_ascii_case(b"branch") => Some(&mut branch),
                n if n.len() == 3 && n.eq_ignore_ascii_case(b"tag") => Some(&mut tag),
                _ => None,
            }
            .filter(|k| **k == Known::Absent);
            last = self.pos;
            let save = self.pos;
            if !uri {
                self.ws();
            }
            if self.eat(b'=') {
                let vs;
                if uri {
                    let (s, e) = self.take(class::URI_PARAM);
                    if s == e {
                        return self.err();
                    }
                    vs = s;
                } else {
                    self.ws();
                    vs = self.pos;
                    if self.peek() == Some(b'"') {
                        self.quoted()?;
                    } else {
                        let (s, e) = self.take(class::GEN_VALUE);
                        if s == e {
                            return self.err();
                        }
                    }
                }
                last = self.pos;
                if let Some(k) = slot {
                    *k = Known::Value((vs - start) as u8, (last - start) as u8);
                }
            } else {
                self.pos = save;
                if let Some(k) = slot {
                    *k = Known::Flag;
                }
            }
        }
        self.pos = last;
        if last - start > usize::from(u8::MAX) {
            (branch, tag) = (Known::Unknown, Known::Unknown);
        }
        Ok(Params::parsed(self.buf, start, last, branch, tag))
    }
}

/// What the parser learned of one parameter the stack reads on every message
/// (a Via's `branch`, a From's or To's `tag`), so that reading it is no search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    /// Not looked for (parameters built rather than parsed): search the text.
    Unknown,
    /// Not among the parameters.
    Absent,
    /// Present without a value.
    Flag,
    /// The first one's value is `text[start..end]` (quotes kept, as [`Params::get`] gives it).
    Value(u8, u8),
}

/// Parameter texts up to this many bytes are stored inline.
const PARAMS_INLINE: usize = 32;

/// Parameters in their raw form (`;a=b;c`), looked up by name on demand.
///
/// Keeping the raw text avoids an allocation per header and makes
/// re-serialization byte-exact; lookups scan a few dozen bytes, except for
/// `branch` and `tag`, whose place the parser notes. Like [`Text`], short
/// texts are copied inline and long ones share the message buffer; the notes
/// sit beside them in the same 40 bytes (a [`Text`] and the notes would take
/// 48, in every Via, name-addr and URI).
#[derive(Clone)]
pub struct Params(Raw);

#[derive(Clone)]
enum Raw {
    Inline {
        len: u8,
        branch: Known,
        tag: Known,
        data: [u8; PARAMS_INLINE],
    },
    /// Valid UTF-8, like the inline bytes.
    Shared {
        bytes: Bytes,
        branch: Known,
        tag: Known,
    },
}

const _: () = assert!(std::mem::size_of::<Params>() == 40);

impl Default for Params {
    fn default() -> Self {
        Params::new()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        // The notes are derived from the text.
        self.bytes() == other.bytes()
    }
}

impl Eq for Params {}

impl std::hash::Hash for Params {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl Params {
    /// No parameters.
    pub const fn new() -> Self {
        Params(Raw::Inline {
            len: 0,
            branch: Known::Absent,
            tag: Known::Absent,
            data: [0; PARAMS_INLINE],
        })
    }

    /// `buf[start..end]`, known to be UTF-8, with the parser's notes.
    fn parsed(buf: &Bytes, start: usize, end: usize, branch: Known, tag: Known) -> Self {
        debug_assert!(std::str::from_utf8(&buf[start..end]).is_ok());
        let len = end - start;
        if len > PARAMS_INLINE {
            return Params(Raw::Shared {
                bytes: buf.slice(start..end),
                branch,
                tag,
            });
        }
        let mut data = [0u8; PARAMS_INLINE];
        // A fixed-size copy is a few vector moves, where a variable one is a
        // memcpy call; the bytes past `len` are never read.
        match buf.get(start..start + PARAMS_INLINE) {
            Some(window) => data.copy_from_slice(window),
            None => data[..len].copy_from_slice(&buf[start..end]),
        }
        Params(Raw::Inline {
            len: len as u8,
            branch,
            tag,
            data,
        })
    }

    /// Parameters of a text built here (not parsed): looked up by searching.
    fn built(text: String) -> Self {
        let (branch, tag) = (Known::Unknown, Known::Unknown);
        if text.len() > PARAMS_INLINE {
            return Params(Raw::Shared {
                bytes: Bytes::from(text),
                branch,
                tag,
            });
        }
        let mut data = [0u8; PARAMS_INLINE];
        data[..text.len()].copy_from_slice(text.as_bytes());
        Params(Raw::Inline {
            len: text.len() as u8,
            branch,
            tag,
            data,
        })
    }

    /// The raw text's bytes.
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Raw::Inline { len, data, .. } => &data[..usize::from(*len)],
            Raw::Shared { bytes, .. } => bytes,
        }
    }

    /// Where `branch` and `tag` are.
    fn notes(&self) -> (Known, Known) {
        match self.0 {
            Raw::Inline { branch, tag, .. } | Raw::Shared { branch, tag, .. } => (branch, tag),
        }
    }

    /// The raw text, starting with `;` (or empty).
    pub fn as_str(&self) -> &str {
        // Valid UTF-8 by construction; the fallback is unreachable.
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Each parameter as `(name, value)`, whitespace trimmed; quoted values keep their quotes.
    pub fn iter(&self) -> ParamIter<'_> {
        ParamIter {
            s: self.bytes(),
            text: self.as_str(),
            pos: 0,
        }
    }

    /// The parameter named `name` (case-insensitive): `Some(None)` for a flag
    /// parameter without value.
    #[inline]
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        let want = name.as_bytes();
        let known = if want.len() == 6 && want.eq_ignore_ascii_case(b"branch") {
            self.notes().0
        } else if want.len() == 3 && want.eq_ignore_ascii_case(b"tag") {
            self.notes().1
        } else {
            Known::Unknown
        };
        match known {
            Known::Absent => None,
            Known::Flag => Some(None),
            Known::Value(s, e) => Some(
                self.bytes()
                    .get(usize::from(s)..usize::from(e))
                    .and_then(|v| std::str::from_utf8(v).ok()),
            ),
            Known::Unknown => self.search(want),
        }
    }

    /// The first `branch` value ([`Params::value`] without comparing names).
    pub(crate) fn branch(&self) -> Option<&str> {
        self.noted(self.notes().0, b"branch")
    }

    /// The first `tag` value ([`Params::value`] without comparing names).
    pub(crate) fn tag(&self) -> Option<&str> {
        self.noted(self.notes().1, b"tag")
    }

    fn noted(&self, known: Known, name: &[u8]) -> Option<&str> {
        let raw = match known {
            Known::Absent | Known::Flag => return None,
            Known::Value(s, e) => self
                .bytes()
                .get(usize::from(s)..usize::from(e))
                .and_then(|v| std::str::from_utf8(v).ok()),
            Known::Unknown => self.search(name).flatten(),
        };
        raw.map(unquote)
    }

    /// [`Params::get`] by scanning the text.
    fn search(&self, want: &[u8]) -> Option<Option<&str>> {
        // Bytes, not `as_str`: only the value found is checked as UTF-8, not
        // the whole text on every lookup. Its ends are ASCII bytes (or the
        // text's ends) of valid UTF-8, so the check cannot fail.
        let b = self.bytes();
        let mut pos = 0;
        while let Some(semi) = next_separator(b, pos) {
            let mut s = semi + 1;
            while s < b.len() && is_ws(b[s]) {
                s += 1;
            }
            let name_end = s + want.len();
            if b.get(s..name_end)
                .is_some_and(|n| n.eq_ignore_ascii_case(want))
            {
                let mut e = name_end;
                while e < b.len() && is_ws(b[e]) {
                    e += 1;
                }
                if e == b.len() || b[e] == b';' {
                    return Some(None);
                }
                if b[e] == b'=' {
                    let mut vs = e + 1;
                    while vs < b.len() && is_ws(b[vs]) {
                        vs += 1;
                    }
                    let mut ve = next_separator(b, vs).unwrap_or(b.len());
                    while ve > vs && is_ws(b[ve - 1]) {
                        ve -= 1;
                    }
                    return Some(std::str::from_utf8(&b[vs..ve]).ok());
                }
            }
            pos = semi + 1;
        }
        None
    }

    /// The value of `name`, without surrounding quotes.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(unquote)
    }

    /// True if a parameter `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// These parameters with `name` set to `value` (replacing any previous one).
    pub fn with(&self, name: &str, value: Option<&str>) -> Params {
        let mut out = String::with_capacity(self.bytes().len() + name.len() + 16);
        let mut replaced = false;
        for (n, v) in self.iter() {
            out.push(';');
            if n.eq_ignore_ascii_case(name) {
                if replaced {
                    continue;
                }
                replaced = true;
                push_param(&mut out, name, value);
            } else {
                push_param(&mut out, n, v);
            }
        }
        if !replaced {
            out.push(';');
            push_param(&mut out, name, value);
        }
        Params::built(out)
    }

    /// These parameters without any named `name`.
    pub fn without(&self, name: &str) -> Params {
        let mut out = String::with_capacity(self.bytes().len());
        for (n, v) in self.iter().filter(|(n, _)| !n.eq_ignore_ascii_case(name)) {
            out.push(';');
            push_param(&mut out, n, v);
        }
        Params::built(out)
    }
}

fn push_param(out: &mut String, name: &str, value: Option<&str>) {
    out.push_str(name);
    if let Some(v) = value {
        out.push('=');
        out.push_str(v);
    }
}

/// The next `;` at or after `from` that is not inside a quoted string.
fn next_separator(b: &[u8], from: usize) -> Option<usize> {
    let mut quoted = false;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b';' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Removes one pair of surrounding double quotes, if present.
pub(crate) fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Iterator over [`Params`].
pub struct ParamIter<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        // Skip to the next top-level ';'.
        while self.pos < self.s.len() && self.s[self.pos] != b';' {
            self.pos += 1;
        }
        if self.pos >= self.s.len() {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        let mut quoted = false;
        let mut eq = None;
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'\\' if quoted => self.pos += 1,
                b'"' => quoted = !quoted,
                b'=' if !quoted && eq.is_none() => eq = Some(self.pos),
                b';' if !quoted => break,
                _ => {}
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.s.len());
        let piece =
            |a: usize, b: usize| self.text.get(a..b).unwrap_or("").trim_matches([' ', '\t']);
        Some(match eq {
            Some(e) => (piece(start, e), Some(piece(e + 1, end))),
            None => (piece(start, end), None),
        })
    }
}

impl std::fmt::Display for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &'static str, uri: bool) -> Result<(Params, usize), Pos> {
        let b = Bytes::from_static(s.as_bytes());
        let mut c = Cursor::new(&b);
        let p = c.params(uri)?;
        Ok((p, c.pos()))
    }

    #[test]
    fn header_params_with_whitespace_and_quotes() {
        let (p, end) = params(
            " ;  tag = 98asjd8 ; q=0.33;x=\"a;b\\\"c\" ;lr , next",
            false,
        )
        .unwrap();
        assert_eq!(p.value("tag"), Some("98asjd8"));
        assert_eq!(p.value("Q"), Some("0.33"));
        assert_eq!(p.value("x"), Some("a;b\\\"c"));
        assert_eq!(p.get("lr"), Some(None));
        assert!(p.get("nope").is_none());
        assert_eq!(
            &" ;  tag = 98asjd8 ; q=0.33;x=\"a;b\\\"c\" ;lr , next"[end..],
            " , next"
        );
    }

    #[test]
    fn noted_branch_and_tag_read_as_a_search_finds_them() {
        for text in [
            ";branch=z9hG4bK1",
            " ; Branch = z9hG4bK1 ;tag=x",
            ";rport;branch=z9hG4bK1;branch=second",
            ";tag",
            ";tag ;x=1",
            ";tag=\"a;b\\\"c\" ;branch",
            ";branchx=1;tagx=2;x=branch",
            ";lr",
            ";TAG=Upper",
        ] {
            for uri in [false, true] {
                let Ok((p, _)) = params(text, uri) else {
                    continue;
                };
                for name in ["branch", "tag", "BRANCH", "Tag", "x", "lr"] {
                    assert_eq!(
                        p.get(name),
                        p.search(name.as_bytes()),
                        "{text:?} {name} uri={uri}"
                    );
                }
                assert_eq!(p.branch(), p.value("branch"), "{text:?}");
                assert_eq!(p.tag(), p.value("tag"), "{text:?}");
                assert_ne!(p.notes().0, Known::Unknown);
            }
        }
        // Longer than a `u8` offset reaches: searched.
        let long: &'static str = format!(";x={};tag=t", "a".repeat(300)).leak();
        let (p, _) = params(long, false).unwrap();
        assert_eq!(p.notes().1, Known::Unknown);
        assert_eq!(p.value("tag"), Some("t"));
        assert_eq!(p.tag(), Some("t"));
        // Past the inline size: shared with the buffer, equal to the same text built.
        let shared = ";branch=z9hG4bK-long-enough-to-share;rport";
        let (p, _) = params(shared, false).unwrap();
        assert!(matches!(p.0, Raw::Shared { .. }));
        assert_eq!(p.as_str(), shared);
        assert_eq!(p.branch(), Some("z9hG4bK-long-enough-to-share"));
        let rebuilt = Params::new()
            .with("branch", Some("z9hG4bK-long-enough-to-share"))
            .with("rport", None);
        assert_eq!(rebuilt, p);
        assert_eq!(rebuilt.branch(), p.branch());
        // Built parameters are searched.
        let built = Params::new().with("tag", Some("b"));
        assert_eq!(built.notes().1, Known::Unknown);
        assert_eq!(built.value("tag"), Some("b"));
        assert_eq!(built.tag(), Some("b"));
        assert_eq!(built.branch(), None);
        assert_eq!(built, params(";tag=b", false).unwrap().0);
    }

    #[test]
    fn find_byte_finds_the_first_at_any_length() {
        for len in 0..30 {
            for at in 0..=len {
                let mut b: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                // Bytes one above and one below, to tempt the word trick.
                if len > 2 {
                    b[0] = b'>' + 1;
                    b[1] = b'>' - 1;
                }
                if at < len {
                    b[at] = b'>';
                    b[len - 1] = b'>';
                }
                let want = b.iter().position(|&c| c == b'>');
                assert_eq!(find_byte(&b, b'>'), want, "len {len} at {at}");
            }
        }
    }

    #[test]
    fn empty_param_is_an_error() {
        assert!(params(";;", false).is_err());
        assert!(params(";a=", false).is_err());
        assert!(params(";a=;b", true).is_err());
    }

    #[test]
    fn with_and_without() {
        let (p, _) = params(";branch=z9hG4bK1;rport", false).unwrap();
        let p2 = p
            .with("rport", Some("5060"))
            .with("received", Some("10.0.0.1"));
        assert_eq!(p2.as_str(), ";branch=z9hG4bK1;rport=5060;received=10.0.0.1");
        assert_eq!(
            p2.without("branch").as_str(),
            ";rport=5060;received=10.0.0.1"
        );
    }
}
