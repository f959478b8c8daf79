//! The dialogs of a UA, by identifier.

use super::{Dialog, DialogId};
use crate::message::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::collections::hash_map;

/// True if `req` claims to be inside a dialog: its To header has a tag
/// (RFC 3261 §12.2.2). Such a request that matches no dialog gets 481.
pub fn is_in_dialog(req: &Request) -> bool {
    req.headers().to().and_then(|t| t.tag()).is_some()
}

/// A UA's dialogs, keyed by [`DialogId`].
#[derive(Debug, Clone, Default)]
pub struct Dialogs {
    map: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// An empty table.
    pub fn new() -> Dialogs {
        Dialogs::default()
    }

    /// Adds a dialog; returns the one it replaces, if any.
    pub fn insert(&mut self, dialog: Dialog) -> Option<Dialog> {
        self.map.insert(dialog.id().clone(), dialog)
    }

    /// Removes and returns a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.map.remove(id)
    }

    /// The dialog with this identifier.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.map.get(id)
    }

    /// The dialog with this identifier, to modify.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.map.get_mut(id)
    }

    /// The dialog an incoming request belongs to (UAS view: local tag = To tag,
    /// remote tag = From tag).
    pub fn find_for_request(&mut self, req: &Request) -> Option<&mut Dialog> {
        let id = DialogId::from_request(req)?;
        self.map.get_mut(&id)
    }

    /// The dialog a response to one of our requests belongs to (UAC view:
    /// local tag = From tag, remote tag = To tag).
    pub fn find_for_response(&mut self, resp: &Response) -> Option<&mut Dialog> {
        let id = DialogId::from_response(resp)?;
        self.map.get_mut(&id)
    }

    /// The response an incoming request gets when it claims a dialog we do not
    /// have: `Some(481 Call/Transaction Does Not Exist)` for a request with a To
    /// tag that matches no dialog (§12.2.2), except ACK, which is never answered
    /// (the caller drops it). `None` when the request is outside any dialog or
    /// matches one.
    pub fn unmatched(&self, req: &Request) -> Option<StatusCode> {
        let id = DialogId::from_request(req)?;
        if self.map.contains_key(&id) || *req.method() == Method::Ack {
            return None;
        }
        Some(StatusCode::CALL_DOES_NOT_EXIST)
    }

    /// Removes every terminated dialog; returns how many.
    pub fn remove_terminated(&mut self) -> usize {
        let before = self.map.len();
        self.map.retain(|_, d| !d.is_terminated());
        before - self.map.len()
    }

    /// How many dialogs there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All dialogs, in no particular order.
    pub fn iter(&self) -> hash_map::Values<'_, DialogId, Dialog> {
        self.map.values()
    }
}
