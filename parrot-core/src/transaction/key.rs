//! Transaction identifiers and matching (RFC 3261 §17.1.3, §17.2.3).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use crate::message::uri::Ipv4Text;
use crate::message::{Host, Method, Request, Response, Uri, Via};

/// Which side of a transaction this layer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies one transaction of a [`Transactions`](super::Transactions) layer.
///
/// Cheap to clone: the identifying strings are shared (a key is cloned into
/// every table and message that names its transaction, about a dozen times
/// per call; copying its strings was two allocations each time).
///
/// Its hash is computed once, when the key is made (SipHash with keys drawn
/// once per process, as the strings are chosen by peers), and kept beside the
/// strings: a call looks its keys up some thirty times in the layer's and the
/// UA core's tables, and hashing the branch and sent-by each time was 8 % of
/// a responder's instructions. `Hash` writes that one number, so the tables
/// keyed by it only mix that number.
#[derive(Debug, Clone)]
pub struct TransactionKey {
    side: Side,
    id: Arc<Hashed>,
}

/// A key's identifying strings and their hash.
struct Hashed {
    hash: u64,
    id: KeyId,
}

impl std::fmt::Debug for Hashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.id.fmt(f)
    }
}

impl PartialEq for TransactionKey {
    fn eq(&self, other: &Self) -> bool {
        self.side == other.side
            && (Arc::ptr_eq(&self.id, &other.id)
                || (self.id.hash == other.id.hash && self.id.id == other.id.id))
    }
}

impl Eq for TransactionKey {}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.id.hash);
    }
}

/// The SipHash keys of every [`TransactionKey`]'s hash, drawn once per process.
fn key_hasher() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    /// RFC 3261 branch (with the magic cookie): branch, sent-by (server side
    /// only, §17.2.3) and method, where ACK counts as INVITE. `text` is the
    /// branch followed by the sent-by, the first `split` bytes the branch.
    Branch {
        text: KeyText,
        split: u32,
        method: Method,
    },
    /// RFC 2543 peers (no magic cookie), §17.2.3 last paragraphs.
    Legacy(Box<Legacy>),
}

/// How many bytes of branch and sent-by a key keeps inside its own
/// allocation: a branch of 7 + 32 characters and an IPv4 sent-by with its
/// port fit.
const INLINE: usize = 78;

/// A key's branch and sent-by, together: inline when short (nearly always),
/// else on the heap. A key was three allocations (its shared record, the
/// branch, the sent-by), each freed cold when the transaction ends 64·T1
/// later; now one. Compared and hashed by the bytes it holds, whichever form.
#[derive(Clone)]
enum KeyText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl KeyText {
    fn new(parts: [&str; 2]) -> KeyText {
        let len = parts[0].len() + parts[1].len();
        match u8::try_from(len) {
            Ok(n) if len <= INLINE => {
                let mut bytes = [0; INLINE];
                let (first, rest) = bytes.split_at_mut(parts[0].len());
                first.copy_from_slice(parts[0].as_bytes());
                rest[..parts[1].len()].copy_from_slice(parts[1].as_bytes());
                KeyText::Inline { len: n, bytes }
            }
            _ => KeyText::Heap(parts.concat().into_boxed_str()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyText::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        // Built from two `&str`s, so valid UTF-8 (checked, not assumed).
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }
}

impl PartialEq for KeyText {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for KeyText {}

impl Hash for KeyText {
    // The bytes in use, not the whole inline array.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl KeyId {
    fn branch(branch: &str, sent_by: &str, method: Method) -> KeyId {
        KeyId::Branch {
            text: KeyText::new([branch, sent_by]),
            split: u32::try_from(branch.len()).unwrap_or(u32::MAX),
            method,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Legacy {
    uri: Uri,
    call_id: Box<str>,
    from_tag: Option<Box<str>>,
    to_tag: Option<Box<str>>,
    cseq: u32,
    method: Method,
    via: Box<str>,
}

impl TransactionKey {
    fn new(side: Side, id: KeyId) -> TransactionKey {
        let hash = key_hasher().hash_one((side, &id));
        TransactionKey {
            side,
            id: Arc::new(Hashed { hash, id }),
        }
    }

    /// The hash kept with the key (what [`Hash`] writes).
    pub(crate) fn prehash(&self) -> u64 {
        self.id.hash
    }

    /// Client or server.
    pub fn side(&self) -> Side {
        self.side
    }

    /// True for a client transaction.
    pub fn is_client(&self) -> bool {
        self.side == Side::Client
    }

    /// True for a server transaction.
    pub fn is_server(&self) -> bool {
        self.side == Side::Server
    }

    /// The request method of the transaction (INVITE for an ACK's key).
    pub fn method(&self) -> &Method {
        match &self.id.id {
            KeyId::Branch { method, .. } => method,
            KeyId::Legacy(l) => &l.method,
        }
    }

    /// The Via branch, unless the peer is an RFC 2543 one.
    pub fn branch(&self) -> Option<&str> {
        match &self.id.id {
            KeyId::Branch { text, split, .. } => text.as_str().get(..*split as usize),
            KeyId::Legacy(_) => None,
        }
    }

    /// The key of a client transaction (§17.1.3: branch and CSeq method).
    pub(crate) fn client(branch: &str, method: Method) -> TransactionKey {
        TransactionKey::new(Side::Client, KeyId::branch(branch, "", method))
    }

    /// The client key a response belongs to, if it has a top Via branch and a CSeq.
    pub(crate) fn for_response(resp: &Response) -> Option<TransactionKey> {
        let h = resp.headers();
        let branch = h.top_via()?.branch()?;
        Some(Self::client(branch, h.cseq()?.method.clone()))
    }

    /// The server key of a request, as if its method were `method` (ACK and
    /// CANCEL are looked up as INVITE), with `to_tag` in place of the request's
    /// To tag for RFC 2543 matching. `None` without a top Via or CSeq.
    pub(crate) fn for_request(
        req: &Request,
        method: Method,
        to_tag: Option<Option<&str>>,
    ) -> Option<TransactionKey> {
        let h = req.headers();
        let via = h.top_via()?;
        let cseq = h.cseq()?;
        let id = match via.branch() {
            Some(branch) if via.has_rfc3261_branch() => {
                sent_by(via, |sent_by| KeyId::branch(branch, sent_by, method))
            }
            // §17.2.3: Request-URI, To tag, From tag, Call-ID, CSeq and top Via.
            _ => {
                let to_tag = to_tag.unwrap_or_else(|| h.to().and_then(|t| t.tag()));
                KeyId::Legacy(Box::new(Legacy {
                    uri: req.uri().clone(),
                    call_id: h.call_id().map_or("", |c| c.as_str()).into(),
                    from_tag: h.from().and_then(|f| f.tag()).map(Into::into),
                    to_tag: to_tag.map(Into::into),
                    cseq: cseq.seq,
                    method,
                    via: via.to_string().to_ascii_lowercase().into(),
                }))
            }
        };
        Some(TransactionKey::new(Side::Server, id))
    }

    /// True if this is an RFC 2543 (no magic cookie) key.
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(self.id.id, KeyId::Legacy(_))
    }
}

/// The sent-by of a Via, normalised: host in lower case, port defaulted by
/// transport (RFC 3261 §18.2.1, §19.1.2: 5060, or 5061 for TLS), handed to
/// `with`.
fn sent_by<T>(via: &Via, with: impl FnOnce(&str) -> T) -> T {
    let default = if via.transport.eq_ignore_case("TLS") {
        5061
    } else {
        5060
    };
    let port = via.port.unwrap_or(default);
    // Written piece by piece into a buffer on the stack, not through `fmt`
    // nor into a string: this runs for every request received, formatting
    // an address cost ten times the rest, and the key keeps its own copy.
    let v4;
    let v6;
    let host: &str = match &via.host {
        Host::Domain(d) => d,
        Host::Ipv4(a) => {
            v4 = Ipv4Text::new(*a);
            v4.as_str()
        }
        Host::Ipv6(a) => {
            v6 = format!("[{a}]");
            &v6
        }
    };
    let mut digits = [0u8; 5];
    let mut n = 0;
    let mut rest = port;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[..n].reverse();
    let len = host.len() + 1 + n;
    let mut stack = [0u8; INLINE];
    let mut heap;
    let text: &mut [u8] = if len <= INLINE {
        &mut stack[..len]
    } else {
        heap = vec![0u8; len];
        &mut heap
    };
    text[..host.len()].copy_from_slice(host.as_bytes());
    text[host.len()] = b':';
    text[host.len() + 1..].copy_from_slice(&digits[..n]);
    text.make_ascii_lowercase();
    // A `&str` and ASCII, case changed: valid UTF-8 (checked, not assumed).
    with(std::str::from_utf8(text).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;

    fn request(branch: &str, sent_by: &str) -> Request {
        let text = format!(
            "BYE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP {sent_by};branch={branch}\r\n\
             To: <sip:bob@example.com>;tag=b\r\n\
             From: <sip:alice@example.com>;tag=a\r\n\
             Call-ID: c1\r\n\
             CSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match Message::parse(Bytes::from(text)) {
            Ok(Message::Request(r)) => r,
            other => panic!("a request: {other:?}"),
        }
    }

    fn server_key(branch: &str, sent_by: &str) -> TransactionKey {
        TransactionKey::for_request(&request(branch, sent_by), Method::Bye, None)
            .expect("Via and CSeq present")
    }

    #[test]
    fn short_and_long_texts_key_the_same_way() {
        let long_branch = format!("z9hG4bK{}", "x".repeat(120));
        let long_host = format!("{}.example.com", "h".repeat(90));
        for (branch, host) in [
            ("z9hG4bK-1", "192.0.2.1"),
            (long_branch.as_str(), "192.0.2.1"),
            ("z9hG4bK-1", long_host.as_str()),
        ] {
            let a = server_key(branch, &format!("{}:5060", host.to_ascii_uppercase()));
            // §17.2.3: the port defaults to 5060, the host compares without case.
            let b = server_key(branch, host);
            assert_eq!(a, b, "{branch} {host}");
            assert_eq!(a.branch(), Some(branch));
            assert_ne!(a, server_key(branch, &format!("{host}:5070")));
            assert_ne!(a, server_key(&format!("{branch}y"), host));
        }
        let client = TransactionKey::client(&long_branch, Method::Invite);
        assert_eq!(client.branch(), Some(long_branch.as_str()));
        assert_eq!(client, TransactionKey::client(&long_branch, Method::Invite));
    }

    #[test]
    fn where_the_branch_ends_is_part_of_the_key() {
        let a = KeyId::branch("z9hG4bKab", "c:5060", Method::Bye);
        let b = KeyId::branch("z9hG4bKa", "bc:5060", Method::Bye);
        assert_ne!(a, b);
        assert_eq!(a, KeyId::branch("z9hG4bKab", "c:5060", Method::Bye));
    }
}
