//! A back-to-back user agent in one call: the incoming call is connected to
//! one we place, and their audio is relayed between them.

use super::command::{Command, CoreHandle};
use super::handler::Incoming;
use super::reply::Reply;
use super::slab::CallId;
use super::uac::Dial;
use super::{CallEvent, UaError};
use crate::message::StatusCode;

/// Connects `call` (an INVITE being handled) to a new call placed with
/// `dial` (to a registered phone: [`Dial::flow`], another server, anyone):
/// the new call's 180 rings the caller, its answer answers the caller, its
/// failure status is the caller's (an authentication challenge meant for us
/// becomes 480), and once both are up their audio is relayed through a
/// [`media::bridge`](crate::media::bridge) (each leg with its own codec),
/// DTMF crosses, a hold (and resume) on either leg is put on the other, and
/// a hangup on either leg hangs up the other.
///
/// Returns the reply for [`SipHandler::invite`](super::SipHandler::invite).
/// If the caller cancels while the new call rings, the new call is
/// cancelled too. Any body or media set on `dial` is replaced.
///
/// ```no_run
/// # use parrot_core::ua::{Incoming, Reply, Registrar, bridge};
/// async fn forward(call: &mut Incoming, registrar: &Registrar) -> Reply {
///     let user = call.uri_user().unwrap_or_default().to_owned();
///     let Some(binding) = registrar.contacts(&user).into_iter().next() else {
///         return Reply::not_found();
///     };
///     let Some(endpoint) = call.endpoint() else { return Reply::server_error() };
///     match endpoint.dial(&binding.contact.to_string()) {
///         Ok(dial) => bridge(call, dial.flow(&binding.flow)).await,
///         Err(_) => Reply::not_found(),
///     }
/// }
/// ```
pub async fn bridge(call: &mut Incoming, dial: Dial) -> Reply {
    let (inbound, outbound) = crate::media::bridge();
    let mut out = match dial.media(outbound).send().await {
        Ok(out) => out,
        Err(e) => {
            tracing::info!(error = %e, "bridge: the second leg could not be placed");
            return Reply::temporarily_unavailable();
        }
    };
    // Dropped with this future (the caller cancelled, the endpoint stopped):
    // the second leg must not go on ringing.
    let mut guard = CancelOnDrop {
        core: out.core_handle(),
        call: out.id(),
        armed: true,
    };
    let mut rang = false;
    loop {
        match out.next_event().await {
            Some(CallEvent::Provisional(r)) if !rang && r.status().as_u16() > 100 => {
                rang = true;
                if call.ring().await.is_err() {
                    return Reply::server_error();
                }
            }
            Some(CallEvent::Answered(_)) => break,
            Some(CallEvent::Rejected(r)) => {
                guard.armed = false;
                return Reply::new(relayed_status(r.status()));
            }
            Some(CallEvent::Failed(e)) => {
                guard.armed = false;
                tracing::info!(error = %e, "bridge: the second leg failed");
                return Reply::new(match e {
                    UaError::Timeout => StatusCode::REQUEST_TIMEOUT,
                    _ => StatusCode::TEMPORARILY_UNAVAILABLE,
                });
            }
            Some(CallEvent::Ended) | None => {
                guard.armed = false;
                return Reply::temporarily_unavailable();
            }
            Some(_) => {}
        }
    }
    guard.armed = false;
    let reply = call.answer(inbound).await;
    if !reply.status().is_success() {
        // The caller's offer cannot be answered: the second leg goes too.
        let _ = out.hangup().await;
        return reply;
    }
    // The second leg lives on in its own task until it ends; its media leg
    // hangs up when the first leg's stops (and the other way round). A hold
    // on one leg is put on the other (a re-INVITE with `a=sendonly`), so
    // the far phone shows it, and so is the resume.
    let first = call.handle().cloned();
    tokio::spawn(async move {
        let Some(first) = first else {
            while out.next_event().await.is_some() {}
            return;
        };
        relay_holds(&first, &mut out).await;
    });
    reply
}

/// Puts each leg's hold and resume on the other until either ends.
async fn relay_holds(first: &super::CallHandle, out: &mut super::OutgoingCall) {
    loop {
        tokio::select! {
            ev = out.next_event() => match ev {
                Some(CallEvent::Held) => log_hold(first.hold().await),
                Some(CallEvent::Resumed) => log_hold(first.resume().await),
                Some(CallEvent::Ended) | None => return,
                Some(_) => {}
            },
            ev = first.next_event() => match ev {
                Some(CallEvent::Held) => log_hold(out.hold().await),
                Some(CallEvent::Resumed) => log_hold(out.resume().await),
                Some(CallEvent::Ended) | None => {
                    // Drain the second leg to its end (its media hangs it up).
                    while out.next_event().await.is_some() {}
                    return;
                }
                Some(_) => {}
            },
        }
    }
}

fn log_hold(r: Result<(), UaError>) {
    if let Err(e) = r {
        tracing::info!(error = %e, "bridge: the hold did not reach the other leg");
    }
}

/// The status the caller gets when the second leg is refused: the callee's,
/// except what only we could act on: a challenge (401/407) or 423 asks us
/// for credentials or a longer expiry, not the caller.
fn relayed_status(s: StatusCode) -> StatusCode {
    match s.as_u16() {
        401 | 407 | 423 => StatusCode::TEMPORARILY_UNAVAILABLE,
        // A 503 from the callee says it is overloaded, not that we are: passed
        // on, it would make the caller fail over away from us (RFC 3261 §16.7
        // step 6 tells proxies the same).
        503 => StatusCode::TEMPORARILY_UNAVAILABLE,
        _ => s,
    }
}

struct CancelOnDrop {
    core: CoreHandle,
    call: CallId,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.core.0.try_send(Command::Cancel { call: self.call });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_meant_for_us_are_not_relayed() {
        let s = |n| StatusCode::new(n).unwrap();
        assert_eq!(relayed_status(s(486)), s(486));
        assert_eq!(relayed_status(s(603)), s(603));
        assert_eq!(relayed_status(s(407)), s(480));
        assert_eq!(relayed_status(s(503)), s(480));
    }
}
