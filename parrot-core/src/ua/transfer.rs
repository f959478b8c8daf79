//! What transfers share between calls we place and calls we answer: which
//! dialog a call is ([`DialogRef`], for an attended transfer with RFC 3891
//! Replaces), and following a transfer we were asked for (dial the target,
//! report its progress to the transferor, hang up).

use super::UaError;
use super::call_event::CallEvent;
use super::command::{Command, CoreHandle};
use super::slab::CallId;
use super::uac::{Dial, OutgoingCall};
use crate::message::{HeaderName, Response, StatusCode, Uri};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a transfer's outcome is awaited once the REFER is accepted.
const OUTCOME_WAIT: Duration = Duration::from_secs(64);

/// Sends REFER in `call` with `refer_to` (a header value): the REFER's
/// refusal, or with `subscribe` the final status the NOTIFYs report (at
/// most 64 s after the 202), without it the 2xx.
pub(crate) async fn refer(
    core: &CoreHandle,
    call: CallId,
    refer_to: String,
    subscribe: bool,
) -> Result<StatusCode, UaError> {
    let (reply, wait) = oneshot::channel();
    core.command(Command::Transfer {
        call,
        refer_to,
        subscribe,
        reply,
    })
    .await?;
    // Timer F bounds the REFER itself; then the NOTIFYs' wait.
    match tokio::time::timeout(OUTCOME_WAIT + Duration::from_secs(32), wait).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(UaError::CallGone),
        Err(_) => Err(UaError::Timeout),
    }
}

/// A NOTIFY with `status` to the transferor of `call`.
pub(crate) async fn progress(
    core: &CoreHandle,
    call: CallId,
    status: StatusCode,
) -> Result<Response, UaError> {
    let (reply, wait) = oneshot::channel();
    core.command(Command::TransferProgress {
        call,
        status,
        reply,
    })
    .await?;
    wait.await.map_err(|_| UaError::Shutdown)?
}

/// Which dialog `call` is.
pub(crate) async fn dialog(core: &CoreHandle, call: CallId) -> Result<DialogRef, UaError> {
    let (reply, wait) = oneshot::channel();
    core.command(Command::DialogOf { call, reply }).await?;
    wait.await
        .map_err(|_| UaError::Shutdown)?
        .ok_or(UaError::InvalidState("the call is not answered, or over"))
}

/// Which dialog a call is, and where its peer is reached: what an attended
/// transfer names so that the transferee's new call replaces this one
/// (RFC 3891). From [`OutgoingCall::dialog`] or
/// [`CallHandle::dialog`](super::CallHandle::dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogRef {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// The peer's Contact (where in-dialog requests go).
    pub remote_target: Uri,
    /// The peer's address of record (its From or To URI).
    pub remote_uri: Uri,
}

impl DialogRef {
    /// The Refer-To value of an attended transfer: the peer's Contact with
    /// a `Replaces` header (RFC 3891 §6.1) naming this dialog with its tags
    /// as the peer sees them (its tag is `to-tag`, ours `from-tag`, §3).
    pub fn refer_to(&self) -> String {
        let replaces = format!(
            "{};to-tag={};from-tag={}",
            self.call_id, self.remote_tag, self.local_tag
        );
        let mut target = self.remote_target.clone();
        if let Uri::Sip(u) = &mut target {
            u.set_headers(Some(
                format!("Replaces={}", escape_hvalue(&replaces)).into(),
            ));
        }
        format!("<{target}>")
    }
}

/// A Replaces header value (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replaces {
    pub(crate) call_id: String,
    pub(crate) to_tag: String,
    pub(crate) from_tag: String,
    pub(crate) early_only: bool,
}

impl Replaces {
    /// `callid;to-tag=…;from-tag=…[;early-only]`: None without both tags.
    pub(crate) fn parse(v: &str) -> Option<Replaces> {
        let mut parts = v.trim().split(';');
        let call_id = parts.next()?.trim();
        if call_id.is_empty() {
            return None;
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "to-tag" => to_tag = Some(v.trim().to_owned()),
                "from-tag" => from_tag = Some(v.trim().to_owned()),
                "early-only" => early_only = true,
                _ => {}
            }
        }
        Some(Replaces {
            call_id: call_id.to_owned(),
            to_tag: to_tag?,
            from_tag: from_tag?,
            early_only,
        })
    }
}

/// %-escapes what may not stand in a URI header value (RFC 3261 §25.1
/// `hvalue`: unreserved and `[]/?:+$` stay).
fn escape_hvalue(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes %-escapes; None for a broken escape or text that is not UTF-8.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The headers a URI carries (RFC 3261 §19.1.5, `?name=value&…`), taken off
/// it, for the request sent to it. Those the endpoint sets itself (Via,
/// From, To, Call-ID, CSeq, Contact, routing, lengths, credentials) are
/// dropped: a URI from a peer (a Refer-To) must not set them.
pub(crate) fn take_uri_headers(uri: &mut Uri) -> Vec<(HeaderName, String)> {
    let Uri::Sip(u) = uri else {
        return Vec::new();
    };
    let Some(raw) = u.take_headers() else {
        return Vec::new();
    };
    const OURS: &[&str] = &[
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "max-forwards",
        "route",
        "record-route",
        "content-length",
        "content-type",
        "authorization",
        "proxy-authorization",
        "body",
    ];
    raw.as_str()
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = unescape(name)?;
            let value = unescape(value)?;
            let ok = !name.is_empty()
                && name.bytes().all(crate::message::is_token)
                && !value.contains(['\r', '\n'])
                && !OURS.contains(&name.to_ascii_lowercase().as_str());
            ok.then(|| (HeaderName::from(name.as_str()), value))
        })
        .collect()
}

/// Places `dial` (to the target of a transfer we were asked for) and
/// reports how it goes with `report`: 180 when it rings, then its final
/// status. Returns the new call once answered.
pub(crate) async fn follow<F, Fut>(dial: Dial, report: F) -> Result<OutgoingCall, UaError>
where
    F: Fn(StatusCode) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut call = match dial.send().await {
        Ok(c) => c,
        Err(e) => {
            report(StatusCode::SERVICE_UNAVAILABLE).await;
            return Err(e);
        }
    };
    let mut rang = false;
    loop {
        match call.next_event().await {
            Some(CallEvent::Provisional(r)) if r.status().as_u16() > 100 && !rang => {
                rang = true;
                report(StatusCode::RINGING).await;
            }
            Some(CallEvent::Answered(r)) => {
                report(r.status()).await;
                return Ok(call);
            }
            Some(CallEvent::Rejected(r)) => {
                report(r.status()).await;
                return Err(UaError::Rejected(r.status()));
            }
            Some(CallEvent::Failed(e)) => {
                report(match e {
                    UaError::Timeout => StatusCode::REQUEST_TIMEOUT,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                })
                .await;
                return Err(e);
            }
            Some(CallEvent::Ended) | None => {
                report(StatusCode::SERVICE_UNAVAILABLE).await;
                return Err(UaError::CallGone);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_attended_refer_to_names_the_dialog_as_the_target_sees_it() {
        let d = DialogRef {
            call_id: "a84b4c76e66710@pc33.example.com".into(),
            local_tag: "ours".into(),
            remote_tag: "theirs".into(),
            remote_target: Uri::parse("sip:carol@192.0.2.4:5062").unwrap(),
            remote_uri: Uri::parse("sip:carol@example.com").unwrap(),
        };
        let r = d.refer_to();
        assert_eq!(
            r,
            "<sip:carol@192.0.2.4:5062?Replaces=a84b4c76e66710%40pc33.example.com%3Bto-tag%3Dtheirs%3Bfrom-tag%3Dours>"
        );
        // What the transferee does with it: the header, unescaped, for its INVITE.
        let mut uri = Uri::parse(r.trim_matches(['<', '>'])).unwrap();
        let h = take_uri_headers(&mut uri);
        assert_eq!(uri.to_string(), "sip:carol@192.0.2.4:5062");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, HeaderName::from("Replaces"));
        let rep = Replaces::parse(&h[0].1).unwrap();
        assert_eq!(rep.call_id, "a84b4c76e66710@pc33.example.com");
        assert_eq!(
            (rep.to_tag.as_str(), rep.from_tag.as_str()),
            ("theirs", "ours")
        );
        assert!(!rep.early_only);
    }

    #[test]
    fn uri_headers_the_endpoint_sets_are_dropped() {
        let mut uri = Uri::parse(
            "sip:b@192.0.2.1?Subject=hi%20there&Call-ID=x&Via=y&bad%0D%0Aname=z&Priority=urgent",
        )
        .unwrap();
        let h = take_uri_headers(&mut uri);
        let names: Vec<String> = h.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        assert_eq!(names, ["Subject: hi there", "Priority: urgent"]);
    }

    #[test]
    fn a_replaces_without_both_tags_is_refused() {
        assert!(Replaces::parse("abc;to-tag=1").is_none());
        assert!(Replaces::parse(";to-tag=1;from-tag=2").is_none());
        let r = Replaces::parse("abc; from-tag=2 ;to-tag=1;early-only").unwrap();
        assert!(r.early_only && r.to_tag == "1" && r.from_tag == "2");
    }
}
