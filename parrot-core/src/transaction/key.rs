//! Transaction identifiers and matching (RFC 3261 §17.1.3, §17.2.3).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::message::{Method, Request, Response, Uri, Via};

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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    side: Side,
    id: Arc<KeyId>,
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
        match &*self.id {
            KeyId::Branch { method, .. } => method,
            KeyId::Legacy(l) => &l.method,
        }
    }

    /// The Via branch, unless the peer is an RFC 2543 one.
    pub fn branch(&self) -> Option<&str> {
        match &*self.id {
            KeyId::Branch { branch, .. } => Some(branch),
            KeyId::Legacy(_) => None,
        }
    }

    /// The key of a client transaction (§17.1.3: branch and CSeq method).
    pub(crate) fn client(branch: &str, method: Method) -> TransactionKey {
        TransactionKey {
            side: Side::Client,
            id: Arc::new(KeyId::Branch {
                branch: branch.into(),
                sent_by: "".into(),
                method,
            }),
        }
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
                sent_by: sent_by(via).into(),
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
        Some(TransactionKey {
            side: Side::Server,
            id: Arc::new(id),
        })
    }

    /// True if this is an RFC 2543 (no magic cookie) key.
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(*self.id, KeyId::Legacy(_))
    }
}

/// The sent-by of a Via, normalised: host in lower case, port defaulted by
/// transport (RFC 3261 §18.2.1, §19.1.2: 5060, or 5061 for TLS).
fn sent_by(via: &Via) -> String {
    let default = if via.transport.eq_ignore_case("TLS") {
        5061
    } else {
        5060
    };
    let mut s = via.host.to_string();
    s.make_ascii_lowercase();
    let _ = write!(s, ":{}", via.port.unwrap_or(default));
    s
}
