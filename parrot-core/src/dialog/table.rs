//! Whether a request claims a dialog. The UA core keeps its dialogs in its
//! calls and finds them by [`DialogId`](super::DialogId).

use crate::message::Request;

/// True if `req` claims to be inside a dialog: its To header has a tag
/// (RFC 3261 §12.2.2). Such a request that matches no dialog gets 481.
pub fn is_in_dialog(req: &Request) -> bool {
    req.headers().to().and_then(|t| t.tag()).is_some()
}
