//! Dialogs (RFC 3261 §12), sans-IO: identifiers, state, route set, remote target
//! and CSeq spaces, the construction of in-dialog requests and the checks on
//! incoming ones.
//!
//! A UAC creates its [`Dialog`] from the INVITE it sent and a 1xx-with-tag or 2xx
//! ([`Dialog::uac_from_response`]); a UAS from the INVITE it received and the
//! 1xx/2xx it sends ([`Dialog::uas_from_request`]). [`DialogId::from_request`] and
//! [`DialogId::from_response`] name the dialog a message belongs to; a request that
//! claims one ([`is_in_dialog`]) and matches none deserves 481.
//!
//! ```
//! use parrot_core::dialog::{Dialog, DialogState};
//! use parrot_core::message::{Message, Method};
//! use bytes::Bytes;
//!
//! let invite = Message::parse(Bytes::from_static(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
//!     Max-Forwards: 70\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
//!     To: Bob <sip:bob@biloxi.example.com>\r\nCall-ID: 3848276298220188511@atlanta.example.com\r\n\
//!     CSeq: 1 INVITE\r\nContact: <sip:alice@client.atlanta.example.com>\r\nContent-Length: 0\r\n\r\n"))?;
//! let ok = Message::parse(Bytes::from_static(b"SIP/2.0 200 OK\r\n\
//!     Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
//!     From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
//!     To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
//!     Call-ID: 3848276298220188511@atlanta.example.com\r\nCSeq: 1 INVITE\r\n\
//!     Contact: <sip:bob@client.biloxi.example.com>\r\nContent-Length: 0\r\n\r\n"))?;
//! let (invite, ok) = (invite.as_request().expect("request"), ok.as_response().expect("response"));
//! let mut dialog = Dialog::uac_from_response(invite, ok).expect("a dialog");
//! assert_eq!(dialog.state(), DialogState::Confirmed);
//! let ack = dialog.ack_for(1);
//! let bye = dialog.request(Method::Bye);
//! assert_eq!(bye.headers().cseq().map(|c| c.seq), Some(2));
//! assert_eq!(bye.uri().to_string(), "sip:bob@client.biloxi.example.com");
//! # let _ = ack;
//! # Ok::<(), parrot_core::message::ParseError>(())
//! ```

mod id;
mod table;

pub use id::{DialogId, new_branch, new_call_id, new_tag};
pub use table::is_in_dialog;

use crate::message::{HeaderName, Method, NameAddr, Request, Response, StatusCode, Text, Uri};

/// The state of a dialog (RFC 3261 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    /// Created by a provisional response with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended: by a non-2xx final response to the INVITE while early, a BYE, a
    /// 481/408 to an in-dialog request, or the UA.
    Terminated,
}

/// Which side of the dialog-creating transaction we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the dialog-creating request.
    Uac,
    /// We received it.
    Uas,
}

/// Why a dialog could not be created from a pair of messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("missing or malformed {0} header")]
    MissingHeader(HeaderName),
    /// The To tag of the response (ours as UAS, the peer's as UAC) is missing.
    #[error("the response has no To tag")]
    MissingToTag,
    /// The From tag is missing (ours as UAC).
    #[error("the request has no From tag")]
    MissingFromTag,
    /// The response does not create a dialog (100, or 3xx–6xx).
    #[error("a {0} response does not create a dialog")]
    NotDialogCreating(StatusCode),
}

/// The state of one dialog (RFC 3261 §12): what a UA needs to build requests
/// within it and to check the requests it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    role: Role,
    state: DialogState,
    local_uri: NameAddr,
    remote_uri: NameAddr,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    route_set: Vec<NameAddr>,
    remote_target: Uri,
    local_contact: Option<NameAddr>,
    secure: bool,
}

fn missing(name: HeaderName) -> DialogError {
    DialogError::MissingHeader(name)
}

fn state_for(status: StatusCode) -> Result<DialogState, DialogError> {
    if status.is_success() {
        Ok(DialogState::Confirmed)
    } else if status.is_provisional() && status.as_u16() > 100 {
        Ok(DialogState::Early)
    } else {
        Err(DialogError::NotDialogCreating(status))
    }
}

/// The name-addr without its `tag` (the dialog keeps tags in its id).
fn untagged(a: &NameAddr) -> NameAddr {
    NameAddr {
        display: a.display.clone(),
        uri: a.uri.clone(),
        params: a.params.without("tag"),
    }
}

fn tag_text(tag: &str) -> Text {
    Text::from(tag.to_owned())
}

/// Methods whose requests refresh the remote target (RFC 3261 §12.2, RFC 3311,
/// RFC 6665, RFC 3515) and so must carry a Contact.
fn is_target_refresh(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

impl Dialog {
    /// The dialog a UAC creates from the INVITE (or other dialog-creating
    /// request) it sent and a response to it (§12.1.2): a 1xx with a To tag makes
    /// an early dialog, a 2xx a confirmed one.
    ///
    /// Route set = the response's Record-Route in reverse order; remote target =
    /// the response's Contact (a 1xx without one uses the Request-URI until the
    /// 2xx brings one); local CSeq continues after the request's; the local
    /// contact is the request's Contact. The secure flag is set when the
    /// Request-URI is a SIPS URI (the transport, TLS, is the caller's business).
    /// A 2xx without To tag (RFC 2543 peer) gives an empty remote tag.
    pub fn uac_from_response(req: &Request, resp: &Response) -> Result<Dialog, DialogError> {
        let state = state_for(resp.status())?;
        let rh = resp.headers();
        let qh = req.headers();
        let call_id = rh
            .call_id()
            .or_else(|| qh.call_id())
            .ok_or(missing(HeaderName::CallId))?;
        let from = qh.from().ok_or(missing(HeaderName::From))?;
        let local_tag = from.tag().ok_or(DialogError::MissingFromTag)?;
        let to = rh.to().ok_or(missing(HeaderName::To))?;
        let remote_tag = match (to.tag(), state) {
            (Some(t), _) => t,
            (None, DialogState::Confirmed) => "",
            (None, _) => return Err(DialogError::MissingToTag),
        };
        let cseq = qh.cseq().ok_or(missing(HeaderName::CSeq))?;
        let remote_target = match rh.contact_list().first() {
            Some(c) => c.uri.clone(),
            None if state == DialogState::Early => req.uri().clone(),
            None => return Err(missing(HeaderName::Contact)),
        };
        Ok(Dialog {
            id: DialogId::new(call_id.clone(), tag_text(local_tag), tag_text(remote_tag)),
            role: Role::Uac,
            state,
            local_uri: untagged(from),
            remote_uri: untagged(qh.to().unwrap_or(to)),
            local_cseq: cseq.seq.wrapping_add(1),
            remote_cseq: None,
            route_set: rh.record_routes().iter().rev().cloned().collect(),
            remote_target,
            local_contact: qh.contact_list().first().cloned(),
            secure: req.uri().scheme() == "sips",
        })
    }

    /// The dialog a UAS creates from the request it received and the 1xx (with
    /// our To tag) or 2xx it sends (§12.1.1).
    ///
    /// Route set = the request's Record-Route in order; remote target = the
    /// request's Contact; remote CSeq = the request's; the local CSeq starts at
    /// 1; the local contact is the response's Contact. Secure when the
    /// Request-URI is a SIPS URI.
    pub fn uas_from_request(req: &Request, resp: &Response) -> Result<Dialog, DialogError> {
        let state = state_for(resp.status())?;
        let qh = req.headers();
        let call_id = qh.call_id().ok_or(missing(HeaderName::CallId))?;
        let from = qh.from().ok_or(missing(HeaderName::From))?;
        let to = qh.to().ok_or(missing(HeaderName::To))?;
        let local_tag = resp
            .headers()
            .to()
            .and_then(NameAddr::tag)
            .ok_or(DialogError::MissingToTag)?;
        let cseq = qh.cseq().ok_or(missing(HeaderName::CSeq))?;
        let remote_target = qh
            .contact_list()
            .first()
            .map(|c| c.uri.clone())
            .ok_or(missing(HeaderName::Contact))?;
        Ok(Dialog {
            id: DialogId::new(
                call_id.clone(),
                tag_text(local_tag),
                tag_text(from.tag().unwrap_or("")),
            ),
            role: Role::Uas,
            state,
            local_uri: untagged(to),
            remote_uri: untagged(from),
            local_cseq: 1,
            remote_cseq: Some(cseq.seq),
            route_set: qh.record_routes().to_vec(),
            remote_target,
            local_contact: resp.headers().contact_list().first().cloned(),
            secure: req.uri().scheme() == "sips",
        })
    }

    /// The dialog identifier.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Whether we created the dialog as UAC or UAS.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The state.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Our URI (From of our requests), without tag.
    pub fn local_uri(&self) -> &NameAddr {
        &self.local_uri
    }

    /// The peer's URI (To of our requests), without tag.
    pub fn remote_uri(&self) -> &NameAddr {
        &self.remote_uri
    }

    /// The CSeq number the next request (other than ACK and CANCEL) will use.
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// The highest CSeq number seen from the peer, if any.
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// The route set, in the order our requests list it in Route.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// Where our requests go: the peer's Contact URI.
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The Contact our target-refresh requests carry.
    pub fn local_contact(&self) -> Option<&NameAddr> {
        self.local_contact.as_ref()
    }

    /// Replaces our Contact (after a change of address; sent in the next
    /// target refresh).
    pub fn set_local_contact(&mut self, contact: NameAddr) {
        self.local_contact = Some(contact);
    }

    /// The secure flag (§12.1): requests in this dialog must use SIPS and TLS.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Sets the secure flag, for a caller that knows the transport (the
    /// constructors only see the Request-URI scheme).
    pub fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
    }

    /// True in the early state.
    pub fn is_early(&self) -> bool {
        self.state == DialogState::Early
    }

    /// True in the confirmed state.
    pub fn is_confirmed(&self) -> bool {
        self.state == DialogState::Confirmed
    }

    /// True once terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == DialogState::Terminated
    }

    /// Confirms an early dialog (a UAS sending its 2xx; a UAC uses
    /// [`Dialog::on_response`]).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// Ends the dialog.
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// A new request within the dialog (§12.2.1.1), for `method`.
    ///
    /// - Request-URI and Route: with an empty route set or a first route with
    ///   `lr` (loose routing), the Request-URI is the remote target and Route is
    ///   the route set; otherwise (strict routing) the Request-URI is the first
    ///   route's URI (less the `method` parameter and URI headers) and Route is
    ///   the rest of the route set followed by the remote target.
    /// - From = local URI with our tag, To = remote URI with the peer's tag,
    ///   the Call-ID, Max-Forwards 70.
    /// - CSeq: the local CSeq, which then advances; ACK and CANCEL reuse the
    ///   number of the last request sent and advance nothing (for the ACK of a
    ///   2xx prefer [`Dialog::ack_for`]; a CANCEL is built from the INVITE's
    ///   transaction, §9.1).
    /// - Contact: our contact, on target-refresh requests (INVITE, UPDATE,
    ///   SUBSCRIBE, NOTIFY, REFER) and ACK; BYE and CANCEL must not carry one.
    ///
    /// The caller adds the Via (only the transport knows the sent-by, and every
    /// new transaction needs a new branch: [`new_branch`]) and any body.
    pub fn request(&mut self, method: Method) -> Request {
        let seq = match method {
            Method::Ack | Method::Cancel => self.local_cseq.wrapping_sub(1),
            _ => {
                let seq = self.local_cseq;
                self.local_cseq = seq.wrapping_add(1);
                seq
            }
        };
        self.build(method, seq)
    }

    /// The ACK for a 2xx to the INVITE whose CSeq number was `invite_cseq`
    /// (§13.2.2.4): same routing and headers as any in-dialog request, CSeq
    /// `invite_cseq ACK`. The local CSeq does not change. The caller adds the
    /// Via (a new branch) and, if the offer was in the 2xx, the SDP answer.
    pub fn ack_for(&self, invite_cseq: u32) -> Request {
        self.build(Method::Ack, invite_cseq)
    }

    fn build(&self, method: Method, seq: u32) -> Request {
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| r.uri.as_sip().is_none_or(|u| u.params.contains("lr")));
        let (uri, routes): (Uri, Vec<String>) = if loose {
            (
                self.remote_target.clone(),
                self.route_set.iter().map(NameAddr::to_string).collect(),
            )
        } else {
            let first = &self.route_set[0].uri;
            let uri = match first {
                Uri::Sip(s) => {
                    let mut s = s.clone();
                    s.params = s.params.without("method");
                    s.set_headers(None);
                    Uri::Sip(s)
                }
                other => other.clone(),
            };
            let mut routes: Vec<String> = self.route_set[1..]
                .iter()
                .map(NameAddr::to_string)
                .collect();
            routes.push(NameAddr::new(self.remote_target.clone()).to_string());
            (uri, routes)
        };
        let mut req = Request::new(method.clone(), uri);
        let h = req.headers_mut();
        // Every value below is printed from parsed, typed values: each is a valid
        // value for its header, so `push` cannot refuse it.
        for r in routes {
            let _ = h.push(HeaderName::Route, r);
        }
        let _ = h.push(HeaderName::MaxForwards, "70");
        let from = self.local_uri.clone().with_tag(&self.id.local_tag);
        let _ = h.push(HeaderName::From, from.to_string());
        let to = if self.id.remote_tag.is_empty() {
            self.remote_uri.clone()
        } else {
            self.remote_uri.clone().with_tag(&self.id.remote_tag)
        };
        let _ = h.push(HeaderName::To, to.to_string());
        let _ = h.push(HeaderName::CallId, self.id.call_id.to_bytes());
        let _ = h.push(HeaderName::CSeq, format!("{seq} {method}"));
        if is_target_refresh(&method) || method == Method::Ack {
            if let Some(c) = &self.local_contact {
                let _ = h.push(HeaderName::Contact, c.to_string());
            }
        }
        req
    }

    /// Checks the CSeq of an incoming in-dialog request (§12.2.2): lower than
    /// the last one seen → `Err(500 Server Internal Error)`, to be sent as the
    /// response; otherwise the number is recorded. ACK and CANCEL are exempt
    /// (they carry the CSeq of the request they refer to). A missing CSeq is
    /// `Err(400)`.
    pub fn check_remote_cseq(&mut self, req: &Request) -> Result<(), StatusCode> {
        if matches!(req.method(), Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let seq = req
            .headers()
            .cseq()
            .map(|c| c.seq)
            .ok_or(StatusCode::BAD_REQUEST)?;
        if self.remote_cseq.is_some_and(|last| seq < last) {
            return Err(StatusCode::SERVER_INTERNAL_ERROR);
        }
        self.remote_cseq = Some(seq);
        Ok(())
    }

    /// Everything a UAS does with an incoming in-dialog request before handing
    /// it to the application (§12.2.2): the CSeq check of
    /// [`Dialog::check_remote_cseq`], then the target refresh of
    /// [`Dialog::refresh_target`].
    pub fn on_request(&mut self, req: &Request) -> Result<(), StatusCode> {
        self.check_remote_cseq(req)?;
        self.refresh_target(req);
        Ok(())
    }

    /// Target refresh from an incoming request (§12.2.2): a re-INVITE, UPDATE,
    /// SUBSCRIBE, NOTIFY or REFER with a Contact replaces the remote target.
    /// Returns true if the target changed.
    pub fn refresh_target(&mut self, req: &Request) -> bool {
        if !is_target_refresh(req.method()) {
            return false;
        }
        self.take_contact(req.headers().contact_list())
    }

    fn take_contact(&mut self, contacts: &[NameAddr]) -> bool {
        match contacts.first() {
            Some(c) if c.uri != self.remote_target => {
                self.remote_target = c.uri.clone();
                true
            }
            _ => false,
        }
    }

    /// Updates the dialog with a response received to a request we sent in it
    /// (or to the dialog-creating request):
    ///
    /// - early, 2xx to the INVITE → confirmed; as UAC the route set is
    ///   recomputed from the 2xx's Record-Route (§12.1.2, §13.2.2.4);
    /// - early, final non-2xx to the INVITE → terminated (§12.3);
    /// - 2xx to a target refresh (re-INVITE, UPDATE, …) → the remote target
    ///   becomes its Contact (§12.2.1.2);
    /// - 481 or 408 to an in-dialog request → terminated (§12.2.1.2).
    pub fn on_response(&mut self, resp: &Response) {
        let status = resp.status();
        let method = resp.headers().cseq().map(|c| c.method.clone());
        let h = resp.headers();
        if self.state == DialogState::Early && method == Some(Method::Invite) {
            if status.is_success() {
                self.state = DialogState::Confirmed;
                if self.role == Role::Uac {
                    self.route_set = h.record_routes().iter().rev().cloned().collect();
                }
            } else if status.is_final() {
                self.state = DialogState::Terminated;
                return;
            }
        }
        if status.is_success() && method.as_ref().is_some_and(is_target_refresh) {
            self.take_contact(h.contact_list());
        }
        if matches!(status.as_u16(), 408 | 481) {
            self.state = DialogState::Terminated;
        }
    }

    /// Updates the dialog with a response we send as UAS to the
    /// dialog-creating INVITE: a 2xx confirms an early dialog, a final non-2xx
    /// terminates it.
    pub fn on_sent_response(&mut self, resp: &Response) {
        let invite = resp
            .headers()
            .cseq()
            .is_some_and(|c| c.method == Method::Invite);
        if self.state != DialogState::Early || !invite {
            return;
        }
        if resp.status().is_success() {
            self.state = DialogState::Confirmed;
        } else if resp.status().is_final() {
            self.state = DialogState::Terminated;
        }
    }
}

#[cfg(test)]
mod tests;
