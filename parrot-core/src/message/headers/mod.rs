//! Header fields: the ordered raw list, and typed views of what the stack interprets.
//!
//! Every header is kept in order with its value as received (and its original
//! line, for byte-exact re-serialization). The headers a SIP stack reads on
//! every message — Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length,
//! Contact, Route, Record-Route — are parsed once when the message is parsed
//! (a malformed one makes the message invalid) and cached; the mutating methods
//! of [`Headers`] keep that cache in step. The rest are typed on demand.

pub mod addr;
pub mod auth;
pub mod name;
pub mod values;
pub mod via;

pub use addr::{Contacts, NameAddr};
pub use auth::{AuthParams, Challenge, Credentials};
pub use name::HeaderName;
pub use values::{CSeq, MediaType, RetryAfter};
pub use via::{MAGIC_COOKIE, Via};

use super::scan::Pos;
use super::text::Text;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A header value or line: a span of the received message, or bytes of its own
/// (an index into [`Fields::owned`]).
///
/// Spans cost nothing to make or drop; a slice of [`Bytes`] per field would be
/// two atomic operations each, on every field of every message parsed. Owned
/// bytes live beside the list, so that a field stays small (64 bytes: sixteen
/// fit an allocation the allocator serves from its per-thread cache).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Chunk {
    Span(u32, u32),
    Owned(u32),
}

/// The fields in order, the bytes of those not spans of the message, and
/// their typed values: one allocation, shared by clones until one changes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    list: Vec<Field>,
    /// Referenced by [`Chunk::Owned`]; entries of removed fields stay until
    /// [`Headers::compact`] drops them.
    owned: Vec<Bytes>,
    /// Changed with the fields: a change resets the typed values of its name.
    cache: Cache,
}

impl std::ops::Deref for Fields {
    type Target = Vec<Field>;
    fn deref(&self) -> &Vec<Field> {
        &self.list
    }
}

/// For a chunk whose bytes are missing (never, by construction).
static NO_BYTES: Bytes = Bytes::new();

/// A chunk as buffer and range, for the typed parsers.
fn resolve_in<'a>(src: &'a Bytes, owned: &'a [Bytes], c: &Chunk) -> (&'a Bytes, usize, usize) {
    match *c {
        Chunk::Span(s, e) => (src, s as usize, e as usize),
        Chunk::Owned(i) => {
            let b = owned.get(i as usize).unwrap_or(&NO_BYTES);
            (b, 0, b.len())
        }
    }
}

impl Chunk {
    pub(crate) fn span(start: usize, end: usize) -> Chunk {
        // Messages are bounded far below 4 GiB (transports cap them at 64 KiB by default).
        Chunk::Span(start as u32, end as u32)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Field {
    pub(crate) name: HeaderName,
    /// The value, whitespace-trimmed and unfolded.
    pub(crate) value: Chunk,
    /// The whole original line(s) without the final CRLF, where it differs
    /// from the canonical `Name: value`.
    pub(crate) raw: Option<Chunk>,
}

// Sixteen fields (the parser's first allocation) in at most 1 KiB, which glibc's
// per-thread cache serves; see `Chunk`.
const _: () = assert!(std::mem::size_of::<Field>() <= 64);
// The fields with their typed cache and the `Arc` counts, for the same reason.
// (glibc's largest cached request is 1032 bytes, on 64-bit targets.)
const _: () = assert!(std::mem::size_of::<Fields>() + 16 <= 1032);

/// One header field as it appears in the message (a view into [`Headers`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    name: &'a HeaderName,
    value: &'a [u8],
    raw: Option<&'a [u8]>,
}

impl<'a> HeaderField<'a> {
    /// The header's name.
    pub fn name(&self) -> &'a HeaderName {
        self.name
    }

    /// The value as received (trimmed, with line folding removed).
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }

    /// The original line, where it differs from the canonical `Name: value`.
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }

    fn write(&self, out: &mut BytesMut) {
        match self.raw {
            Some(raw) => out.put_slice(raw),
            None => {
                out.put_slice(self.name.as_str().as_bytes());
                out.put_slice(b": ");
                out.put_slice(self.value);
            }
        }
        out.put_slice(b"\r\n");
    }

    fn wire_len(&self) -> usize {
        self.raw
            .map_or(self.name.as_str().len() + 2 + self.value.len(), <[u8]>::len)
            + 2
    }
}

impl fmt::Debug for HeaderField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, String::from_utf8_lossy(self.value))
    }
}

/// Iterator over the fields of [`Headers`], in order.
pub struct Iter<'a> {
    headers: &'a Headers,
    inner: std::slice::Iter<'a, Field>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = HeaderField<'a>;

    fn next(&mut self) -> Option<HeaderField<'a>> {
        self.inner.next().map(|f| self.headers.view(f))
    }
}

/// A malformed header value, found when typing it or when adding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {name} header (at byte {offset})")]
#[non_exhaustive]
pub struct HeaderError {
    /// Which header.
    pub name: HeaderName,
    /// Where: the offset in the message for a parsed field, in the value for an added one.
    pub offset: usize,
}

/// The typed values of the headers the stack interprets, each parsed from all
/// fields of its name on first use and kept. `validate` forces them all.
#[derive(Debug, Clone, Default)]
struct Cells {
    vias: OnceLock<Result<Vec<Via>, HeaderError>>,
    /// The top Via alone, for readers that need no more (a UA, a transaction);
    /// boxed, so that the whole cache fits 1 KiB (which glibc serves from its
    /// per-thread cache) and the strict parse, which never fills it, allocates little.
    top_via: OnceLock<Box<Result<Option<Via>, HeaderError>>>,
    from: OnceLock<Result<Option<NameAddr>, HeaderError>>,
    to: OnceLock<Result<Option<NameAddr>, HeaderError>>,
    call_id: OnceLock<Result<Option<Text>, HeaderError>>,
    cseq: OnceLock<Result<Option<CSeq>, HeaderError>>,
    max_forwards: OnceLock<Result<Option<u8>, HeaderError>>,
    contacts: OnceLock<Result<(bool, Vec<NameAddr>), HeaderError>>,
    routes: OnceLock<Result<Vec<NameAddr>, HeaderError>>,
    record_routes: OnceLock<Result<Vec<NameAddr>, HeaderError>>,
}

impl Cells {
    fn reset(&mut self, name: &HeaderName) {
        match name {
            HeaderName::Via => {
                drop(self.vias.take());
                drop(self.top_via.take());
            }
            HeaderName::From => drop(self.from.take()),
            HeaderName::To => drop(self.to.take()),
            HeaderName::CallId => drop(self.call_id.take()),
            HeaderName::CSeq => drop(self.cseq.take()),
            HeaderName::MaxForwards => drop(self.max_forwards.take()),
            HeaderName::Contact => drop(self.contacts.take()),
            HeaderName::Route => drop(self.routes.take()),
            HeaderName::RecordRoute => drop(self.record_routes.take()),
            _ => {}
        }
    }
}

/// Every interpreted header typed, as [`Message::parse`](crate::message::Message::parse)
/// leaves them: all well-formed (the `Result`s are `Ok`, the shape the accessors return).
#[derive(Debug, Clone)]
struct Typed {
    vias: Result<Vec<Via>, HeaderError>,
    from: Result<Option<NameAddr>, HeaderError>,
    to: Result<Option<NameAddr>, HeaderError>,
    call_id: Result<Option<Text>, HeaderError>,
    cseq: Result<Option<CSeq>, HeaderError>,
    max_forwards: Result<Option<u8>, HeaderError>,
    contacts: Result<(bool, Vec<NameAddr>), HeaderError>,
    routes: Result<Vec<NameAddr>, HeaderError>,
    record_routes: Result<Vec<NameAddr>, HeaderError>,
}

/// The typed headers: filled on first use, or all at once by the strict parse
/// (plain values: setting a `OnceLock` goes through its synchronisation).
// Behind an `Arc` already: boxing a variant would cost an allocation more.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Cache {
    Lazy(Cells),
    Eager(Typed),
}

impl Default for Cache {
    fn default() -> Self {
        Cache::Lazy(Cells::default())
    }
}

impl Cache {
    fn reset(&mut self, name: &HeaderName) {
        if let Cache::Eager(_) = self {
            let Cache::Eager(t) = std::mem::take(self) else {
                unreachable!("checked above")
            };
            *self = Cache::Lazy(Cells {
                vias: OnceLock::from(t.vias),
                top_via: OnceLock::new(),
                from: OnceLock::from(t.from),
                to: OnceLock::from(t.to),
                call_id: OnceLock::from(t.call_id),
                cseq: OnceLock::from(t.cseq),
                max_forwards: OnceLock::from(t.max_forwards),
                contacts: OnceLock::from(t.contacts),
                routes: OnceLock::from(t.routes),
                record_routes: OnceLock::from(t.record_routes),
            });
        }
        if let Cache::Lazy(c) = self {
            c.reset(name);
        }
    }
}

/// Headers that may appear at most once (RFC 3261 §7.3.1: only list headers repeat).
pub(crate) fn single_valued(name: &HeaderName) -> bool {
    matches!(
        name,
        HeaderName::From
            | HeaderName::To
            | HeaderName::CallId
            | HeaderName::CSeq
            | HeaderName::MaxForwards
            | HeaderName::ContentLength
    )
}

/// Parses one value of an interpreted header, to check it before it is added.
fn check_value(name: &HeaderName, v: &Bytes) -> Result<(), Pos> {
    let end = v.len();
    match name {
        HeaderName::Via => via::parse_list(v, 0, end, &mut Vec::new()),
        HeaderName::From | HeaderName::To => addr::parse_one(v, 0, end).map(drop),
        HeaderName::CallId => values::parse_call_id(v, 0, end).map(drop),
        HeaderName::CSeq => values::parse_cseq(v, 0, end).map(drop),
        HeaderName::MaxForwards => values::parse_number(v, 0, end, 255).map(drop),
        HeaderName::ContentLength => values::parse_number(v, 0, end, u64::from(u32::MAX)).map(drop),
        HeaderName::Contact => addr::parse_contacts(v, 0, end, &mut Vec::new()).map(drop),
        HeaderName::Route | HeaderName::RecordRoute => addr::parse_list(v, 0, end, &mut Vec::new()),
        _ => Ok(()),
    }
}

impl Typed {
    /// Nothing typed yet, with room for the lists of `fields`: their exact
    /// size when each field holds one entry (the usual case).
    fn for_fields(fields: &[Field]) -> Typed {
        let (mut n_via, mut n_contact, mut n_route, mut n_rr) = (0, 0, 0, 0);
        for f in fields {
            match f.name {
                HeaderName::Via => n_via += 1,
                HeaderName::Contact => n_contact += 1,
                HeaderName::Route => n_route += 1,
                HeaderName::RecordRoute => n_rr += 1,
                _ => {}
            }
        }
        Typed {
            vias: Ok(Vec::with_capacity(n_via)),
            from: Ok(None),
            to: Ok(None),
            call_id: Ok(None),
            cseq: Ok(None),
            max_forwards: Ok(None),
            contacts: Ok((false, Vec::with_capacity(n_contact))),
            routes: Ok(Vec::with_capacity(n_route)),
            record_routes: Ok(Vec::with_capacity(n_rr)),
        }
    }
}

/// Every interpreted header of `all` typed into `t` (made by
/// [`Typed::for_fields`]), as the cache holds them once [`Headers::validate`]
/// has run; or the error it would report.
fn typed(
    src: &Bytes,
    all: &[Field],
    owned: &[Bytes],
    t: &mut Typed,
) -> Result<(), (HeaderName, usize)> {
    // Each header's first error, if any; parsing of that header stops there,
    // as it does in the lazy accessors. Filled in place, where the message
    // keeps it: the values are large.
    fn list<T>(
        slot: &mut Result<Vec<T>, HeaderError>,
        name: HeaderName,
        parse: fn(&Bytes, usize, usize, &mut Vec<T>) -> Result<(), Pos>,
        (b, s, e): (&Bytes, usize, usize),
    ) {
        if let Ok(out) = slot {
            if let Err(offset) = parse(b, s, e, out) {
                *slot = Err(HeaderError { name, offset });
            }
        }
    }
    fn single<T>(
        slot: &mut Result<Option<T>, HeaderError>,
        name: HeaderName,
        parse: impl Fn(&Bytes, usize, usize) -> Result<T, Pos>,
        (b, s, e): (&Bytes, usize, usize),
    ) {
        // The first field of the name, as `Headers::single` reads it.
        if matches!(slot, Ok(None)) {
            *slot = match parse(b, s, e) {
                Ok(v) => Ok(Some(v)),
                Err(offset) => Err(HeaderError { name, offset }),
            };
        }
    }
    for f in all.iter() {
        let at = resolve_in(src, owned, &f.value);
        match f.name {
            HeaderName::Via => list(&mut t.vias, HeaderName::Via, via::parse_list, at),
            HeaderName::From => single(&mut t.from, HeaderName::From, addr::parse_one, at),
            HeaderName::To => single(&mut t.to, HeaderName::To, addr::parse_one, at),
            HeaderName::CallId => single(
                &mut t.call_id,
                HeaderName::CallId,
                values::parse_call_id,
                at,
            ),
            HeaderName::CSeq => single(&mut t.cseq, HeaderName::CSeq, values::parse_cseq, at),
            HeaderName::MaxForwards => single(
                &mut t.max_forwards,
                HeaderName::MaxForwards,
                |b, s, e| values::parse_number(b, s, e, 255).map(|n| n as u8),
                at,
            ),
            HeaderName::Contact => {
                if let Ok((any, out)) = &mut t.contacts {
                    let before = out.len();
                    let (b, s, e) = at;
                    let bad = match addr::parse_contacts(b, s, e, out) {
                        Err(p) => Some(p),
                        // `*` stands alone (§10.2.2): not beside addresses, not twice.
                        Ok(star) if *any || (star && before > 0) => Some(0),
                        Ok(star) => {
                            *any = star;
                            None
                        }
                    };
                    if let Some(offset) = bad {
                        t.contacts = Err(HeaderError {
                            name: HeaderName::Contact,
                            offset,
                        });
                    }
                }
            }
            HeaderName::Route => list(&mut t.routes, HeaderName::Route, addr::parse_list, at),
            HeaderName::RecordRoute => list(
                &mut t.record_routes,
                HeaderName::RecordRoute,
                addr::parse_list,
                at,
            ),
            _ => {}
        }
    }
    // Reported in the order `validate` checks them.
    fn ok<T>(r: &Result<T, HeaderError>) -> Result<(), (HeaderName, usize)> {
        r.as_ref().map(drop).map_err(|e| (e.name.clone(), e.offset))
    }
    ok(&t.vias)?;
    ok(&t.from)?;
    ok(&t.to)?;
    ok(&t.call_id)?;
    ok(&t.cseq)?;
    ok(&t.max_forwards)?;
    ok(&t.contacts)?;
    ok(&t.routes)?;
    ok(&t.record_routes)?;
    Ok(())
}

/// The header fields of a message, in order, with typed views of them.
///
/// The headers a SIP stack reads — Via, From, To, Call-ID, CSeq, Max-Forwards,
/// Contact, Route, Record-Route — are parsed on first access and cached;
/// Content-Length is parsed with the message (it frames the body). A message
/// from [`Message::parse`](crate::message::Message::parse) has had all of
/// them checked; one from `parse_lazy` has not, and its accessors return
/// `None` (or an empty list) for a malformed value: call
/// [`Headers::validate`] to learn which.
#[derive(Clone, Default)]
pub struct Headers {
    /// The received message the spans point into (empty for built messages).
    src: Bytes,
    /// Shared between clones until one of them changes (copy on write): a
    /// stack keeps a request in several places (its transaction, the code
    /// answering it), and a clone then costs a reference count, not copies.
    /// Behind a pointer also because a message moves several times on its
    /// way out of the parser, and the typed cache is large.
    fields: Arc<Fields>,
    content_length: Option<usize>,
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Headers {}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Headers {
        Headers {
            src: Bytes::new(),
            fields: Arc::new(Fields {
                list: Vec::with_capacity(n),
                owned: Vec::new(),
                cache: Cache::default(),
            }),
            content_length: None,
        }
    }

    /// Headers of the message in `src`, as the parser found them (`owned`:
    /// the values of [`Chunk::Owned`], unfolded lines).
    pub(crate) fn parsed(
        src: Bytes,
        list: Vec<Field>,
        owned: Vec<Bytes>,
        content_length: Option<usize>,
    ) -> Headers {
        Headers {
            src,
            fields: Arc::new(Fields {
                list,
                owned,
                cache: Cache::default(),
            }),
            content_length,
        }
    }

    /// The fields, to change: copied first if a clone shares them.
    fn fields_mut(&mut self) -> &mut Vec<Field> {
        &mut Arc::make_mut(&mut self.fields).list
    }

    /// Keeps `b` beside the fields, for a field to refer to.
    fn own(&mut self, b: Bytes) -> Chunk {
        let owned = &mut Arc::make_mut(&mut self.fields).owned;
        owned.push(b);
        Chunk::Owned((owned.len() - 1) as u32)
    }

    /// Drops owned bytes no field refers to any more, once they are many.
    fn compact(&mut self) {
        if self.fields.owned.len() <= 2 * self.fields.list.len() + 4 {
            return;
        }
        let Fields { list, owned, .. } = Arc::make_mut(&mut self.fields);
        let mut kept = Vec::with_capacity(list.len());
        for f in list.iter_mut() {
            for c in std::iter::once(&mut f.value).chain(f.raw.as_mut()) {
                if let Chunk::Owned(i) = c {
                    kept.push(owned.get(*i as usize).cloned().unwrap_or_default());
                    *i = (kept.len() - 1) as u32;
                }
            }
        }
        *owned = kept;
    }

    /// The bytes of a chunk.
    fn bytes_of(&self, c: &Chunk) -> &[u8] {
        match *c {
            Chunk::Span(s, e) => self.src.get(s as usize..e as usize).unwrap_or_default(),
            Chunk::Owned(i) => self.fields.owned.get(i as usize).map_or(&[], |b| b),
        }
    }

    /// Headers of the message in `src` with every interpreted header typed now,
    /// in one pass over the fields: what [`Headers::validate`] checks, and the
    /// same error (the first in its order of headers), without initialising
    /// the lazy cells one by one.
    pub(crate) fn parsed_strict(
        src: Bytes,
        list: Vec<Field>,
        owned: Vec<Bytes>,
        content_length: Option<usize>,
    ) -> Result<Headers, (HeaderName, usize)> {
        let typed_now = Typed::for_fields(&list);
        let mut fields = Arc::new(Fields {
            list,
            owned,
            cache: Cache::Eager(typed_now),
        });
        let Some(Fields {
            list,
            owned,
            cache: Cache::Eager(t),
        }) = Arc::get_mut(&mut fields)
        else {
            unreachable!("made above, not shared, eager")
        };
        typed(&src, list, owned, t)?;
        Ok(Headers {
            src,
            fields,
            content_length,
        })
    }

    /// A chunk as buffer and range, for the typed parsers (whose error
    /// positions are then offsets in the message for parsed fields).
    pub(crate) fn resolve<'a>(&'a self, c: &Chunk) -> (&'a Bytes, usize, usize) {
        resolve_in(&self.src, &self.fields.owned, c)
    }

    /// The bytes of a chunk, to keep in other headers (spans become shared slices).
    fn detach(&self, c: &Chunk) -> Bytes {
        match *c {
            Chunk::Span(s, e) => self.src.slice(s as usize..e as usize),
            Chunk::Owned(i) => self
                .fields
                .owned
                .get(i as usize)
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn view<'a>(&'a self, f: &'a Field) -> HeaderField<'a> {
        HeaderField {
            name: &f.name,
            value: self.bytes_of(&f.value),
            raw: f.raw.as_ref().map(|r| self.bytes_of(r)),
        }
    }

    /// Parses every interpreted header, so that malformed values are found now.
    /// The error names the header and the offset in the message.
    pub fn validate(&self) -> Result<(), (HeaderName, usize)> {
        fn first<T>(r: &Result<T, HeaderError>, _: &Headers) -> Result<(), (HeaderName, usize)> {
            r.as_ref().map(drop).map_err(|e| (e.name.clone(), e.offset))
        }
        first(self.vias_cached(), self)?;
        first(self.cached_from(), self)?;
        first(self.cached_to(), self)?;
        first(self.call_id_cached(), self)?;
        first(self.cseq_cached(), self)?;
        first(self.max_forwards_cached(), self)?;
        first(self.contacts_cached(), self)?;
        first(self.routes_cached(), self)?;
        first(self.record_routes_cached(), self)?;
        Ok(())
    }

    /// Copies every field named in `names` from `other`, in `other`'s order,
    /// keeping their original bytes.
    pub(crate) fn copy_from(&mut self, other: &Headers, names: &[HeaderName]) {
        // Room for a field of each name reserved at once: pushed one by
        // one, the owned list grew (and moved) two or three times for each
        // response.
        let fields = Arc::make_mut(&mut self.fields);
        fields.list.reserve(names.len());
        fields.owned.reserve(names.len());
        for f in other.fields.iter().filter(|f| names.contains(&f.name)) {
            let value = self.own(other.detach(&f.value));
            let raw = f.raw.as_ref().map(|r| self.own(other.detach(r)));
            self.fields_mut().push(Field {
                name: f.name.clone(),
                value,
                raw,
            });
        }
        for n in names {
            self.changed(n);
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True if there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All fields in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            headers: self,
            inner: self.fields.iter(),
        }
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name.matches(name))
            .map(|f| self.bytes_of(&f.value))
    }

    /// The first value of `name` as text.
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.matches(name))
            .map(move |f| self.bytes_of(&f.value))
    }

    /// True if a field named `name` is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.fields.iter().any(|f| f.name.matches(name))
    }

    /// Checks a value before it is added: no CR/LF (no header injection), a
    /// well-formed value for interpreted headers, and no second single-valued header.
    fn check(&self, name: &HeaderName, value: &Bytes, replacing: bool) -> Result<(), HeaderError> {
        let err = |offset| HeaderError {
            name: name.clone(),
            offset,
        };
        if let Some(p) = value.iter().position(|&b| b == b'\r' || b == b'\n') {
            return Err(err(p));
        }
        check_value(name, value).map_err(err)?;
        if !replacing && single_valued(name) && self.contains(name) {
            return Err(err(0));
        }
        Ok(())
    }

    /// Forgets cached typed values of `name` after a change.
    fn changed(&mut self, name: &HeaderName) {
        Arc::make_mut(&mut self.fields).cache.reset(name);
        if *name == HeaderName::ContentLength {
            let n = self
                .fields
                .iter()
                .find(|f| f.name == HeaderName::ContentLength)
                .and_then(|f| {
                    let (b, st, e) = self.resolve(&f.value);
                    values::parse_number(b, st, e, u64::from(u32::MAX)).ok()
                });
            self.content_length = n.map(|n| n as usize);
        }
    }

    fn insert_at(&mut self, at: usize, name: HeaderName, value: Bytes) -> Result<(), HeaderError> {
        self.check(&name, &value, false)?;
        let value = self.own(value);
        self.fields_mut().insert(
            at,
            Field {
                name: name.clone(),
                value,
                raw: None,
            },
        );
        self.changed(&name);
        Ok(())
    }

    /// Appends a field. Values of interpreted headers are checked (a second
    /// From, or a malformed Via, is refused), and so is any CR or LF.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) -> Result<(), HeaderError> {
        let at = self.fields.len();
        self.insert_at(at, name, value.into())
    }

    /// Inserts a field before all others (a new top Via, a Record-Route).
    pub fn prepend(
        &mut self,
        name: HeaderName,
        value: impl Into<Bytes>,
    ) -> Result<(), HeaderError> {
        self.insert_at(0, name, value.into())
    }

    /// Replaces every field named `name` with one field holding `value`, at the
    /// position of the first one (or at the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) -> Result<(), HeaderError> {
        let value = value.into();
        self.check(&name, &value, true)?;
        self.replace_fields(&name, value);
        self.changed(&name);
        Ok(())
    }

    /// Puts one field named `name` with `value` where the first of that name
    /// was (or last), and removes the others.
    fn replace_fields(&mut self, name: &HeaderName, value: Bytes) {
        let at = self.fields.iter().position(|f| f.name.matches(name));
        self.fields_mut().retain(|f| !f.name.matches(name));
        let at = at.unwrap_or(self.fields.len());
        let value = self.own(value);
        self.fields_mut().insert(
            at,
            Field {
                name: name.clone(),
                value,
                raw: None,
            },
        );
        self.compact();
    }

    /// Replaces the To fields with one whose bytes are `raw` and whose
    /// parsed form is `to`, which the caller vouches is what `raw` parses to
    /// ([`Response::set_to_tag`](crate::message::Response::set_to_tag): the
    /// request's To plus a tag). Parsing it again to check would cost more
    /// than the rest of the answer's headers.
    pub(crate) fn set_to_parsed(&mut self, raw: Bytes, to: NameAddr) {
        self.replace_fields(&HeaderName::To, raw);
        match &mut Arc::make_mut(&mut self.fields).cache {
            Cache::Eager(t) => t.to = Ok(Some(to)),
            Cache::Lazy(c) => c.to = OnceLock::from(Ok(Some(to))),
        }
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.fields.len();
        self.fields_mut().retain(|f| !f.name.matches(name));
        self.compact();
        self.changed(name);
        before - self.fields.len()
    }

    /// The Via entries of the first Via field (a field may hold a comma list).
    fn first_via_field(&self) -> Option<(usize, Vec<Via>)> {
        let i = self.fields.iter().position(|f| f.name == HeaderName::Via)?;
        let (b, st, e) = self.resolve(&self.fields[i].value);
        let mut entries = Vec::new();
        via::parse_list(b, st, e, &mut entries).ok()?;
        Some((i, entries))
    }

    fn replace_via_field(&mut self, i: usize, entries: &[Via]) {
        if entries.is_empty() {
            self.fields_mut().remove(i);
        } else {
            let joined: Vec<String> = entries.iter().map(Via::to_string).collect();
            let value = self.own(Bytes::from(joined.join(", ")));
            self.fields_mut()[i] = Field {
                name: HeaderName::Via,
                value,
                raw: None,
            };
        }
        self.compact();
        self.changed(&HeaderName::Via);
    }

    /// Replaces the top Via (the first entry of the first Via field).
    pub fn set_top_via(&mut self, via: &Via) -> Result<(), HeaderError> {
        match self.first_via_field() {
            Some((i, mut entries)) => {
                entries[0] = via.clone();
                self.replace_via_field(i, &entries);
                Ok(())
            }
            None if self.contains(&HeaderName::Via) => Err(HeaderError {
                name: HeaderName::Via,
                offset: 0,
            }),
            None => self.prepend(HeaderName::Via, via.to_string()),
        }
    }

    /// Stamps the top Via of a received request with where it really came from:
    /// `received` when the sent-by host is not the source address (RFC 3261
    /// §18.2.1), and `rport` filled in (plus `received`, always) when the client
    /// asked for it with an empty `rport` (RFC 3581 §4). Returns true if changed.
    pub fn stamp_via(&mut self, source: std::net::SocketAddr) -> Result<bool, HeaderError> {
        let Some(top) = self.top_via() else {
            return Ok(false);
        };
        let ip = source.ip();
        let wants_rport = top.rport() == Some(None);
        if top.host.ip() == Some(ip) && !wants_rport {
            return Ok(false);
        }
        let mut via = top.clone();
        // `received` carries a bare IPv6 address (RFC 3261 §25.1: IPv6address), no brackets.
        via.set_param("received", Some(&ip.to_string()));
        if wants_rport {
            via.set_param("rport", Some(&source.port().to_string()));
        }
        self.set_top_via(&via)?;
        Ok(true)
    }

    /// Removes the top Via entry (a response travelling back, §18.1.2).
    pub fn pop_via(&mut self) -> Option<Via> {
        let (i, mut entries) = self.first_via_field()?;
        let top = entries.remove(0);
        self.replace_via_field(i, &entries);
        Some(top)
    }

    // ---- typed access: parsed on first use, cached ----

    fn err(name: HeaderName) -> impl Fn(Pos) -> HeaderError {
        move |offset| HeaderError {
            name: name.clone(),
            offset,
        }
    }

    fn single<T>(
        &self,
        name: HeaderName,
        f: impl Fn(&Bytes, usize, usize) -> Result<T, Pos>,
    ) -> Result<Option<T>, HeaderError> {
        match self.fields.iter().find(|x| x.name == name) {
            None => Ok(None),
            Some(x) => {
                let (b, st, e) = self.resolve(&x.value);
                f(b, st, e)
            }
            .map(Some)
            .map_err(Self::err(name)),
        }
    }

    fn list<T>(
        &self,
        name: HeaderName,
        f: impl Fn(&Bytes, usize, usize, &mut Vec<T>) -> Result<(), Pos>,
    ) -> Result<Vec<T>, HeaderError> {
        let mut out = Vec::new();
        for x in self.fields.iter().filter(|x| x.name == name) {
            {
                let (b, st, e) = self.resolve(&x.value);
                f(b, st, e, &mut out)
            }
            .map_err(Self::err(name.clone()))?;
        }
        Ok(out)
    }

    /// The typed value of one header: the strict parse's, or the lazy cell's
    /// (filled by `init` on first use).
    fn cached<'a, T>(
        &'a self,
        eager: impl FnOnce(&'a Typed) -> &'a T,
        cell: impl FnOnce(&'a Cells) -> &'a OnceLock<T>,
        init: impl FnOnce() -> T,
    ) -> &'a T {
        match &self.fields.cache {
            Cache::Eager(t) => eager(t),
            Cache::Lazy(c) => cell(c).get_or_init(init),
        }
    }

    fn vias_cached(&self) -> &Result<Vec<Via>, HeaderError> {
        self.cached(
            |t| &t.vias,
            |c| &c.vias,
            || self.list(HeaderName::Via, via::parse_list),
        )
    }

    fn cached_from(&self) -> &Result<Option<NameAddr>, HeaderError> {
        self.cached(
            |t| &t.from,
            |c| &c.from,
            || self.single(HeaderName::From, addr::parse_one),
        )
    }

    fn cached_to(&self) -> &Result<Option<NameAddr>, HeaderError> {
        self.cached(
            |t| &t.to,
            |c| &c.to,
            || self.single(HeaderName::To, addr::parse_one),
        )
    }

    fn call_id_cached(&self) -> &Result<Option<Text>, HeaderError> {
        self.cached(
            |t| &t.call_id,
            |c| &c.call_id,
            || self.single(HeaderName::CallId, values::parse_call_id),
        )
    }

    fn cseq_cached(&self) -> &Result<Option<CSeq>, HeaderError> {
        self.cached(
            |t| &t.cseq,
            |c| &c.cseq,
            || self.single(HeaderName::CSeq, values::parse_cseq),
        )
    }

    fn max_forwards_cached(&self) -> &Result<Option<u8>, HeaderError> {
        // 0..=255: RFC 4475 §3.1.2.4 treats larger values as errors.
        self.cached(
            |t| &t.max_forwards,
            |c| &c.max_forwards,
            || {
                self.single(HeaderName::MaxForwards, |b, s, e| {
                    values::parse_number(b, s, e, 255).map(|n| n as u8)
                })
            },
        )
    }

    fn contacts_cached(&self) -> &Result<(bool, Vec<NameAddr>), HeaderError> {
        self.cached(
            |t| &t.contacts,
            |c| &c.contacts,
            || {
                let mut out = Vec::new();
                let mut any = false;
                for x in self.fields.iter().filter(|x| x.name == HeaderName::Contact) {
                    let before = out.len();
                    let star = {
                        let (b, st, e) = self.resolve(&x.value);
                        addr::parse_contacts(b, st, e, &mut out)
                    }
                    .map_err(Self::err(HeaderName::Contact))?;
                    // `*` stands alone (§10.2.2): not beside addresses, not twice.
                    if any || (star && before > 0) {
                        return Err(HeaderError {
                            name: HeaderName::Contact,
                            offset: 0,
                        });
                    }
                    any = star;
                }
                Ok((any, out))
            },
        )
    }

    fn routes_cached(&self) -> &Result<Vec<NameAddr>, HeaderError> {
        self.cached(
            |t| &t.routes,
            |c| &c.routes,
            || self.list(HeaderName::Route, addr::parse_list),
        )
    }

    fn record_routes_cached(&self) -> &Result<Vec<NameAddr>, HeaderError> {
        self.cached(
            |t| &t.record_routes,
            |c| &c.record_routes,
            || self.list(HeaderName::RecordRoute, addr::parse_list),
        )
    }

    /// All Via entries, top first (comma lists and repeated fields flattened).
    pub fn vias(&self) -> &[Via] {
        self.vias_cached().as_deref().unwrap_or(&[])
    }

    /// The top Via. Parses only the first entry unless all were parsed already.
    pub fn top_via(&self) -> Option<&Via> {
        let cells = match &self.fields.cache {
            Cache::Eager(t) => return t.vias.as_ref().ok()?.first(),
            Cache::Lazy(c) => c,
        };
        if let Some(all) = cells.vias.get() {
            return all.as_ref().ok()?.first();
        }
        cells
            .top_via
            .get_or_init(|| Box::new(self.single(HeaderName::Via, via::parse_first)))
            .as_ref()
            .as_ref()
            .ok()?
            .as_ref()
    }

    /// From.
    pub fn from(&self) -> Option<&NameAddr> {
        self.cached_from().as_ref().ok()?.as_ref()
    }

    /// To.
    pub fn to(&self) -> Option<&NameAddr> {
        self.cached_to().as_ref().ok()?.as_ref()
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&Text> {
        self.call_id_cached().as_ref().ok()?.as_ref()
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<&CSeq> {
        self.cseq_cached().as_ref().ok()?.as_ref()
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u8> {
        *self.max_forwards_cached().as_ref().ok()?
    }

    /// Content-Length.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length
    }

    /// Contact: `*`, or the addresses (empty list when absent).
    pub fn contacts(&self) -> Contacts {
        match self.contacts_cached() {
            Ok((true, _)) => Contacts::Any,
            Ok((false, list)) => Contacts::List(list.clone()),
            Err(_) => Contacts::List(Vec::new()),
        }
    }

    /// The Contact addresses (empty for `*` or when absent).
    pub fn contact_list(&self) -> &[NameAddr] {
        self.contacts_cached()
            .as_ref()
            .map_or(&[], |(_, l)| l.as_slice())
    }

    /// Route entries, in order.
    pub fn routes(&self) -> &[NameAddr] {
        self.routes_cached().as_deref().unwrap_or(&[])
    }

    /// Record-Route entries, in order.
    pub fn record_routes(&self) -> &[NameAddr] {
        self.record_routes_cached().as_deref().unwrap_or(&[])
    }

    // ---- typed access: on demand ----

    fn token_list(&self, name: HeaderName) -> Result<Vec<Text>, HeaderError> {
        self.list(name, values::parse_tokens)
    }

    fn auth_list(&self, name: HeaderName) -> Result<Vec<AuthParams>, HeaderError> {
        self.list(name, |b, st, e, out| {
            out.push(auth::parse_auth(b, st, e)?);
            Ok(())
        })
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.single(HeaderName::ContentType, values::parse_media_type)
    }

    /// Expires, saturating at 2³²−1.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.single(HeaderName::Expires, |b, s, e| {
            values::parse_number(b, s, e, u64::MAX).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// Min-Expires.
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.single(HeaderName::MinExpires, |b, s, e| {
            values::parse_number(b, s, e, u64::from(u32::MAX)).map(|n| n as u32)
        })
    }

    /// Retry-After.
    pub fn retry_after(&self) -> Result<Option<RetryAfter>, HeaderError> {
        self.single(HeaderName::RetryAfter, values::parse_retry_after)
    }

    /// Allow: the methods, all fields combined.
    pub fn allow(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Allow)
    }

    /// Supported option tags.
    pub fn supported(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Supported)
    }

    /// Require option tags.
    pub fn require(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Require)
    }

    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::ProxyRequire)
    }

    /// Unsupported option tags.
    pub fn unsupported(&self) -> Result<Vec<Text>, HeaderError> {
        self.token_list(HeaderName::Unsupported)
    }

    /// WWW-Authenticate challenges.
    pub fn www_authenticate(&self) -> Result<Vec<Challenge>, HeaderError> {
        self.auth_list(HeaderName::WwwAuthenticate)
    }

    /// Proxy-Authenticate challenges.
    pub fn proxy_authenticate(&self) -> Result<Vec<Challenge>, HeaderError> {
        self.auth_list(HeaderName::ProxyAuthenticate)
    }

    /// Authorization credentials.
    pub fn authorization(&self) -> Result<Vec<Credentials>, HeaderError> {
        self.auth_list(HeaderName::Authorization)
    }

    /// Proxy-Authorization credentials.
    pub fn proxy_authorization(&self) -> Result<Vec<Credentials>, HeaderError> {
        self.auth_list(HeaderName::ProxyAuthorization)
    }

    /// User-Agent (product tokens and comments, as text).
    pub fn user_agent(&self) -> Option<&str> {
        self.get_str(&HeaderName::UserAgent)
    }

    /// Server (product tokens and comments, as text).
    pub fn server(&self) -> Option<&str> {
        self.get_str(&HeaderName::Server)
    }

    pub(crate) fn write(&self, out: &mut BytesMut) {
        for f in self.iter() {
            f.write(out);
        }
    }

    pub(crate) fn wire_len(&self) -> usize {
        self.iter().map(|f| f.wire_len()).sum()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = HeaderField<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use crate::message::{ErrorKind, HeaderName, Message};
    use bytes::Bytes;

    fn req(via: &str) -> Message {
        Message::parse(Bytes::from(format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP second;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    #[test]
    fn max_forwards_is_0_to_255_or_the_message_is_malformed() {
        // RFC 3261 §20.22 and §25.1 (1*DIGIT); RFC 4475 §3.1.2.4 takes 256 and up as errors,
        // so a request gets a 400 rather than a number that wraps in a u8.
        let with = |mf: &str| {
            Message::parse(Bytes::from(format!(
                "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 Max-Forwards: {mf}\r\nContent-Length: 0\r\n\r\n"
            )))
        };
        for (mf, want) in [("0", 0), ("70", 70), ("255", 255), ("0255", 255)] {
            let m = with(mf).unwrap_or_else(|e| panic!("{mf}: {e}"));
            assert_eq!(m.headers().max_forwards(), Some(want));
        }
        for mf in [
            "256",
            "-1",
            "+1",
            "1.5",
            "70 70",
            "99999999999999999999999",
            "",
        ] {
            let e = with(mf).expect_err(mf);
            assert_eq!(
                e.kind,
                ErrorKind::BadHeader(HeaderName::MaxForwards),
                "{mf}"
            );
        }
    }

    #[test]
    fn a_changed_clone_leaves_the_original_and_its_cache_alone() {
        let original = req("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1");
        // Fill the typed cache first, so that the clone starts out sharing it.
        assert_eq!(
            original.headers().top_via().unwrap().branch(),
            Some("z9hG4bK1")
        );
        let mut copy = original.clone();
        copy.headers_mut()
            .stamp_via("192.0.2.4:5060".parse().unwrap())
            .unwrap();
        copy.headers_mut()
            .push(HeaderName::Subject, "changed")
            .unwrap();
        assert_eq!(
            copy.headers().top_via().unwrap().received(),
            Some("192.0.2.4")
        );
        assert_eq!(original.headers().top_via().unwrap().received(), None);
        assert_eq!(
            copy.headers().get_str(&HeaderName::Subject),
            Some("changed")
        );
        assert!(!original.headers().contains(&HeaderName::Subject));
        assert_eq!(original.headers().len() + 1, copy.headers().len());
    }

    #[test]
    fn values_of_their_own_survive_many_changes_and_copies() {
        // A folded line (an unfolded value of its own) among parsed spans.
        let m = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
              Subject: one\r\n two\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let mut h = m.headers().clone();
        assert_eq!(h.get_str(&HeaderName::Subject), Some("one two"));
        // Many replacements: the bytes of replaced fields are dropped on the way.
        for i in 0..50 {
            h.set(HeaderName::CallId, format!("call-{i}")).unwrap();
            h.push(HeaderName::Other("X-N".into()), format!("{i}"))
                .unwrap();
            if i % 3 == 0 {
                h.remove(&HeaderName::Other("X-N".into()));
            }
        }
        assert!(h.fields.owned.len() <= 2 * h.len() + 4 + 2);
        assert_eq!(h.call_id().map(|c| c.as_str()), Some("call-49"));
        assert_eq!(h.get_str(&HeaderName::Subject), Some("one two"));
        let x_n = HeaderName::Other("X-N".into());
        let xs: Vec<&[u8]> = h.get_all(&x_n).collect();
        assert_eq!(xs, [b"49".as_slice()]);
        // Copied into other headers, values of both kinds keep their bytes.
        let mut copy = super::Headers::new();
        copy.copy_from(
            &h,
            &[HeaderName::Via, HeaderName::Subject, HeaderName::CallId],
        );
        let mut out = bytes::BytesMut::new();
        copy.write(&mut out);
        assert_eq!(
            &out[..],
            b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: one\r\n two\r\nCall-ID: call-49\r\n"
        );
        assert_eq!(m.headers().call_id().map(|c| c.as_str()), Some("c1"));
    }

    #[test]
    fn stamps_received_when_host_differs() {
        let mut m = req("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1");
        assert!(
            m.headers_mut()
                .stamp_via("192.0.2.4:5060".parse().unwrap())
                .unwrap()
        );
        let v = m.headers().top_via().unwrap();
        assert_eq!(v.received(), Some("192.0.2.4"));
        assert_eq!(v.rport(), None);
        assert_eq!(m.headers().vias().len(), 2);
        assert_eq!(m.headers().vias()[1].branch(), Some("z9hG4bK2"));
    }

    #[test]
    fn no_stamp_when_sent_by_matches() {
        let mut m = req("SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK1");
        let before = m.to_bytes();
        assert!(
            !m.headers_mut()
                .stamp_via("192.0.2.4:5060".parse().unwrap())
                .unwrap()
        );
        assert_eq!(m.to_bytes(), before);
    }

    #[test]
    fn rport_filled_and_received_always_added() {
        // RFC 3581 §4: received is added even when it equals sent-by.
        let mut m = req("SIP/2.0/UDP 192.0.2.4:5060;rport;branch=z9hG4bK1");
        assert!(
            m.headers_mut()
                .stamp_via("192.0.2.4:61000".parse().unwrap())
                .unwrap()
        );
        let v = m.headers().top_via().unwrap();
        assert_eq!(v.rport(), Some(Some(61000)));
        assert_eq!(v.received(), Some("192.0.2.4"));
        let mut m6 = req("SIP/2.0/TCP [2001:db8::1];rport;branch=z9hG4bK1");
        m6.headers_mut()
            .stamp_via("[2001:db8::2]:5070".parse().unwrap())
            .unwrap();
        let again = Message::parse(m6.to_bytes()).unwrap();
        assert_eq!(
            again.headers().top_via().unwrap().received(),
            Some("2001:db8::2")
        );
    }
}
