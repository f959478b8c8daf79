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
    /// only, §17.2.3) and method, where ACK counts as INVITE.
    Branch {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Method,
    },
    /// RFC 2543 peers (no magic cookie), §17.2.3 last paragraphs.
    Legacy(Box<Legacy>),
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
            KeyId::Branch { branch, .. } => Some(branch),
            KeyId::Legacy(_) => None,
        }
    }

    /// The key of a client transaction (§17.1.3: branch and CSeq method).
    pub(crate) fn client(branch: &str, method: Method) -> TransactionKey {
        TransactionKey::new(
            Side::Client,
            KeyId::Branch {
                branch: branch.into(),
                sent_by: "".into(),
                method,
            },
        )
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
            Some(branch) if via.has_rfc3261_branch() => KeyId::Branch {
                branch: branch.into(),
                sent_by: sent_by(via),
                method,
            },
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
/// transport (RFC 3261 §18.2.1, §19.1.2: 5060, or 5061 for TLS).
fn sent_by(via: &Via) -> Box<str> {
    let default = if via.transport.eq_ignore_case("TLS") {
        5061
    } else {
        5060
    };
    let port = via.port.unwrap_or(default);
    // Written piece by piece into a string of the exact length (boxed without
    // a reallocation), not through `fmt`: this runs for every request
    // received, and formatting an address cost ten times the rest.
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
    let mut s = String::with_capacity(host.len() + 1 + n);
    s.push_str(host);
    s.make_ascii_lowercase();
    s.push(':');
    for &d in digits[..n].iter().rev() {
        s.push(char::from(d));
    }
    s.into_boxed_str()
}
