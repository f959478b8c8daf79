//! The tasks that run handler code for a call: a call we answer (its
//! `SipHandler`, its dialog's requests, its media session) and the media of a
//! call we placed. Each runs in a task of its own, supervised by the driver,
//! so a slow or panicking handler ends its own call only.

use super::call_event::{CallEvent, EventSender};
use super::call_handle::{CallStatus, HandleCommand, HandleEnds};
use super::command::{Command, Delivered, ToCall, ToMedia};
use super::driver::to_core_now;
use super::handler::{EndReason, Incoming, SipHandler, dispatch};
use super::media::PendingMedia;
use super::reply::Reply;
use super::slab::CallId;
use crate::media::{Action, MediaEvent, MediaSession};
use crate::message::{Method, Request, Response};
use crate::transaction::TransactionKey;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// One UAS call: the handler's INVITE, then the dialog's requests until BYE;
/// with the call's media session (if the handler answered with media) from the
/// ACK until the end.
pub(crate) async fn uas_call<H: SipHandler>(
    mut handler: H,
    // Boxed, as the `Incoming`s below: a value held across an await is kept in
    // the task's future for the whole call, and an `Incoming` is 570 bytes.
    mut incoming: Box<Incoming>,
    key: TransactionKey,
    call: CallId,
    core: mpsc::Sender<Command>,
    channels: UasChannels,
) {
    let UasChannels {
        mut rx,
        mut provisional,
        mut early,
        handle:
            HandleEnds {
                mut control,
                status,
                events,
            },
    } = channels;
    let mut media = CallMedia::default();
    let (media_tx, mut media_rx) = mpsc::channel(4);
    // However the task ends (a panic too), the handles see the call over.
    let status = EndedOnDrop(status, events.clone());
    // Media actions from handles before audio flows, applied when it does.
    let mut queued: Vec<Action> = Vec::new();
    let reply = 'answer: {
        // Handler futures are boxed here and below: the call task lives as long
        // as the call, and an inline future would keep the largest of them
        // (often an answer with media setup, kilobytes) for all that time.
        // So are the other awaits that run once or twice a call (sends to the
        // core, media start and stop, hang-up): a box for a moment each,
        // where inline each is room in this future for the whole call.
        let mut fut = Box::pin(handler.invite(&mut incoming));
        loop {
            tokio::select! {
                biased;
                msg = rx.recv() => match msg {
                    Some(ToCall::Cancelled) => break 'answer Err(EndReason::Cancelled),
                    Some(ToCall::Shutdown) | None => break 'answer Err(EndReason::Shutdown),
                    Some(ToCall::Failed) => break 'answer Err(EndReason::TransportError),
                    Some(_) => {}
                },
                Some(p) = provisional.recv() => {
                    if let Some(wait) = reply_to_core(&core, call, key.clone(), *p) {
                        wait.await;
                    }
                }
                Some(e) = early.recv() => {
                    // Early media: the 183 with our answer, and the audio from now on.
                    // (What starts the audio stays boxed across the send: a
                    // local would be room in this future all call long.)
                    let (reply, pending) = {
                        let EarlyMedia { reply, media } = *e;
                        (reply, Box::new(media))
                    };
                    if let Some(wait) = reply_to_core(&core, call, key.clone(), reply) {
                        wait.await;
                    }
                    if let Some(ev) = media.start(*pending, media_tx.clone()) {
                        events.emit(ev);
                    }
                    for a in queued.drain(..) {
                        let _ = Box::pin(media.apply(a)).await;
                    }
                }
                Some(c) = control.recv() => match c {
                    // At once if early media plays, else when audio flows.
                    HandleCommand::Media(a) => match Box::pin(media.apply(*a)).await {
                        Some(a) if queued.len() < 64 => queued.push(a),
                        Some(_) => warn!("media action dropped: 64 already wait for the audio"),
                        None => {}
                    },
                    HandleCommand::Hangup(done) | HandleCommand::Direction(_, done) => {
                        let _ = done.send(Err(super::UaError::InvalidState("not answered yet")));
                    }
                },
                r = &mut fut => break 'answer Ok(r),
            }
        }
    };
    let mut pending = incoming.take_media();
    let mut late = incoming.take_late_offer();
    drop(incoming);
    // Provisional replies and early media end with the answer: their
    // channels go now (both ends: the senders were in `incoming`), not with
    // the call.
    drop(provisional);
    drop(early);
    let reply = match reply {
        Ok(r) => r,
        Err(reason) => {
            Box::pin(media.stop()).await;
            return Box::pin(handler.ended(reason)).await;
        }
    };
    let answered = reply.status().is_success();
    // Answered in the driver's first poll of this task (the usual case), the
    // reply goes straight to the core (see `to_core`).
    if let Some(wait) = reply_to_core(&core, call, key, reply) {
        wait.await;
    }
    if !answered {
        Box::pin(media.stop()).await;
        return Box::pin(handler.ended(EndReason::Rejected)).await;
    }
    status.0.send_replace(CallStatus::Answered);
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            Some(c) = control.recv() => {
                match c {
                    HandleCommand::Media(a) => {
                        if let Some(a) = Box::pin(media.apply(*a)).await {
                            if queued.len() < 64 {
                                queued.push(a);
                            }
                        }
                    }
                    HandleCommand::Hangup(done) => {
                        let r = Box::pin(hang_up(&core, call)).await;
                        Box::pin(media.stop()).await;
                        let _ = done.send(r);
                        return Box::pin(handler.ended(EndReason::LocalHangup)).await;
                    }
                    HandleCommand::Direction(direction, done) => {
                        let _ = done.send(Box::pin(media.reoffer(direction, &core, call)).await);
                    }
                }
                continue;
            }
            Some(ev) = media_rx.recv() => {
                if ev == MediaEvent::Hangup {
                    // The media handler hangs up: BYE, then the end.
                    let _ = Box::pin(hang_up(&core, call)).await;
                    Box::pin(media.stop()).await;
                    return Box::pin(handler.ended(EndReason::LocalHangup)).await;
                }
                continue;
            }
        };
        let Some(msg) = msg else { break };
        match msg {
            ToCall::Ack(ack) => {
                // The ACK stays boxed until the handler's `Incoming` takes it
                // (see the early media above).
                // Our offer was in the 2xx: the answer is in this ACK.
                if let Some(offer) = late.take() {
                    // Boxed before the match: a scrutinee lives across the
                    // awaits of its arms, and unboxed it is a kilobyte.
                    let answered = offer.answered(ack.request.body()).map(|p| p.map(Box::new));
                    match answered {
                        Ok(p) => pending = p,
                        Err(why) => {
                            // RFC 3264 §4 leaves no way to go on without an answer.
                            warn!(%why, "no answer to our offer: hanging up");
                            let _ = Box::pin(hang_up(&core, call)).await;
                            return Box::pin(handler.ended(EndReason::LocalHangup)).await;
                        }
                    }
                }
                // Audio flows once the caller has our answer and acknowledged it.
                if let Some(p) = pending.take() {
                    if let Some(ev) = media.start(*p, media_tx.clone()) {
                        events.emit(ev);
                    }
                    for a in queued.drain(..) {
                        let _ = Box::pin(media.apply(a)).await;
                    }
                } else if media.answer_in_ack {
                    // A re-INVITE without an offer got ours: its answer is here.
                    Box::pin(media.ack(&ack.request)).await;
                }
                let ack = incoming_of(ack);
                Box::pin(handler.ack(&ack)).await;
            }
            ToCall::Request(delivered) => {
                // Kept in its box until the handler's `Incoming` takes it.
                let key = delivered.0.clone();
                let method = delivered.1.request.method().clone();
                // Boxed only when it may answer (most requests, a BYE
                // always, it would not): a box past glibc's per-thread cache.
                let by_media = if media.may_answer(&delivered.1.request) {
                    Box::pin(media.in_dialog(&delivered.1.request)).await
                } else {
                    None
                };
                let reply = match by_media {
                    Some(reply) => {
                        if let Some(ev) = media.hold_event() {
                            events.emit(ev);
                        }
                        reply
                    }
                    None => {
                        let mut inc = {
                            let (_, d) = *delivered;
                            Box::new(Incoming::new(d.request, d.source, d.kind, None))
                        };
                        if method == Method::Invite {
                            Box::pin(handler.invite(&mut inc)).await
                        } else {
                            Box::pin(dispatch(&mut handler, &inc)).await
                        }
                    }
                };
                if method == Method::Bye {
                    Box::pin(media.stop()).await;
                }
                // Polled on the driver (the usual case), straight to the
                // core in this turn, as the answer was.
                if let Some(wait) = reply_to_core(&core, call, key, reply) {
                    wait.await;
                }
                if method == Method::Bye {
                    return Box::pin(handler.ended(EndReason::PeerHangup)).await;
                }
            }
            ToCall::AckTimeout => {
                Box::pin(media.stop()).await;
                return Box::pin(handler.ended(EndReason::AckTimeout)).await;
            }
            ToCall::Expired => {
                Box::pin(media.stop()).await;
                return Box::pin(handler.ended(EndReason::SessionExpired)).await;
            }
            ToCall::HungUp | ToCall::Shutdown => {
                Box::pin(media.stop()).await;
                return Box::pin(handler.ended(EndReason::Shutdown)).await;
            }
            ToCall::Failed => {
                Box::pin(media.stop()).await;
                return Box::pin(handler.ended(EndReason::TransportError)).await;
            }
            ToCall::Replaced => {
                Box::pin(media.stop()).await;
                return Box::pin(handler.ended(EndReason::Replaced)).await;
            }
            ToCall::Cancelled => {}
        }
    }
    Box::pin(media.stop()).await;
    Box::pin(handler.ended(EndReason::Shutdown)).await;
}

/// A request delivered in a call, as its handler sees it.
fn incoming_of(delivered: Box<Delivered>) -> Box<Incoming> {
    let Delivered {
        request,
        source,
        kind,
    } = *delivered;
    Box::new(Incoming::new(request, source, kind, None))
}

/// What a call we answer listens to besides its handler: the core, the
/// handler's provisional replies, and its [`CallHandle`](super::CallHandle)s.
pub(crate) struct UasChannels {
    pub(crate) rx: mpsc::Receiver<ToCall>,
    pub(crate) provisional: mpsc::Receiver<Box<Reply>>,
    pub(crate) early: mpsc::Receiver<Box<EarlyMedia>>,
    pub(crate) handle: HandleEnds,
}

/// Early media from [`Incoming::early_media`]: the 183 to send and the media
/// to start with it.
pub(crate) struct EarlyMedia {
    pub(crate) reply: Reply,
    pub(crate) media: PendingMedia,
}

/// The call's `reply` to the request of `key`, handed to the core
/// ([`to_core_now`]): the wait for room, boxed, only if its queue is full.
fn reply_to_core(
    core: &mpsc::Sender<Command>,
    call: CallId,
    key: TransactionKey,
    reply: Reply,
) -> Option<std::pin::Pin<Box<impl Future<Output = ()> + Send + '_>>> {
    to_core_now(
        core,
        Command::Reply {
            call: Some(call),
            key,
            reply,
        },
    )
}

/// Tells the call's handles it is over when the task ends, however it ends.
struct EndedOnDrop(tokio::sync::watch::Sender<CallStatus>, EventSender);

impl Drop for EndedOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(CallStatus::Ended);
        self.1.emit(CallEvent::Ended);
    }
}

/// BYE through the core, waiting (at most 32 s, Timer F) for its answer.
async fn hang_up(core: &mpsc::Sender<Command>, call: CallId) -> Result<(), super::UaError> {
    let (reply, wait) = oneshot::channel();
    let bye = Command::InDialog {
        call,
        method: Method::Bye,
        headers: Vec::new(),
        body: None,
        reply: Some(reply),
    };
    Box::pin(core.send(bye))
        .await
        .map_err(|_| super::UaError::Shutdown)?;
    match tokio::time::timeout(Duration::from_secs(32), wait).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(super::UaError::Shutdown),
        Err(_) => Err(super::UaError::Timeout),
    }
}

/// A call's media session and the SDP state to renegotiate it.
#[derive(Default)]
struct CallMedia {
    session: Option<MediaSession>,
    /// Boxed: it is most of a call's media state, and lives in the call task's future.
    negotiator: Option<Box<crate::sdp::Negotiator>>,
    /// A re-INVITE without an offer got ours in its 2xx: the ACK answers it.
    answer_in_ack: bool,
    /// The peer has put us on hold: its last offer asked us not to send
    /// (`a=sendonly` or `a=inactive` from it, RFC 3264 §8.4).
    held: bool,
    /// `held` changed with the last offer answered, not told yet.
    hold_changed: bool,
}

impl CallMedia {
    /// Starts the session; the event that tells the call's handles.
    fn start(&mut self, p: PendingMedia, events: mpsc::Sender<MediaEvent>) -> Option<CallEvent> {
        let codec = p.config.codec.to_string();
        match MediaSession::start(p.config, p.handler, events) {
            Ok(s) => {
                info!(local = %s.local_addr(), "media started");
                let stats = s.watch_stats();
                self.session = Some(s);
                self.negotiator = Some(Box::new(p.negotiator));
                Some(CallEvent::MediaStarted { codec, stats })
            }
            Err(e) => {
                warn!(error = %e, "media not started");
                None
            }
        }
    }

    /// Whether [`CallMedia::in_dialog`] may answer `request`; when not, it
    /// would return `None` at once.
    fn may_answer(&self, request: &Request) -> bool {
        match request.method() {
            Method::Update if request.body().is_empty() => true,
            Method::Info | Method::Invite | Method::Update => self.session.is_some(),
            _ => false,
        }
    }

    /// Requests the media layer answers by itself: DTMF by INFO
    /// (`application/dtmf-relay`), and a re-INVITE with a new offer (hold,
    /// resume, a new address: RFC 3264 §8).
    async fn in_dialog(&mut self, request: &Request) -> Option<Reply> {
        // The same decision the caller makes before boxing this step.
        if !self.may_answer(request) {
            return None;
        }
        if *request.method() == Method::Update && request.body().is_empty() {
            // An UPDATE without an offer changes nothing but refreshes the
            // session (RFC 3311 §5.2, RFC 4028 §10).
            return Some(Reply::ok());
        }
        let session = self.session.as_ref()?;
        let content = request.headers().content_type().ok().flatten();
        match request.method() {
            Method::Info
                if content
                    .as_ref()
                    .is_some_and(|c| c.is("application", "dtmf-relay")) =>
            {
                let digit = super::media::dtmf_relay_digit(request.body())?;
                session.dtmf_received(digit).await;
                Some(Reply::ok())
            }
            // RFC 3311: an UPDATE's offer is answered in its 2xx, like a
            // re-INVITE's (hold, resume, a new address), without a 3-way
            // handshake.
            Method::Invite | Method::Update if !request.body().is_empty() => {
                let negotiator = self.negotiator.as_mut()?;
                let reply = match crate::sdp::SessionDescription::parse(request.body()) {
                    Err(e) => super::media::unreadable_offer(&e),
                    Ok(offer) => match negotiator.answer(&offer) {
                        Ok(answer) => {
                            if let Some(n) = &answer.negotiated {
                                session.update(n.remote_addr(), n.direction).await;
                                // Our key is kept; a new one of the peer's is followed.
                                session.rekey(n.srtp.clone()).await;
                                let held = !n.direction.sends();
                                self.hold_changed = held != self.held;
                                self.held = held;
                            }
                            Reply::ok().body("application/sdp", answer.sdp.to_bytes())
                        }
                        Err(e) => super::media::unanswerable_offer(&e),
                    },
                };
                Some(reply)
            }
            Method::Invite => {
                // No offer: ours goes in the 2xx, the answer comes in the ACK
                // (RFC 3261 §14.2, RFC 3264 §8).
                let negotiator = self.negotiator.as_mut()?;
                let offer = negotiator.create_offer().to_bytes();
                self.answer_in_ack = true;
                Some(Reply::ok().body("application/sdp", offer))
            }
            _ => None,
        }
    }

    /// What the last offer answered did to the call: the peer put us on
    /// hold or took us off it (once per change).
    fn hold_event(&mut self) -> Option<CallEvent> {
        if !std::mem::take(&mut self.hold_changed) {
            return None;
        }
        Some(if self.held {
            CallEvent::Held
        } else {
            CallEvent::Resumed
        })
    }

    /// A re-INVITE with our offer in `direction` (hold, resume), waiting
    /// for its answer (at most Timer B, 32 s); the session follows it.
    async fn reoffer(
        &mut self,
        direction: crate::sdp::Direction,
        core: &mpsc::Sender<Command>,
        call: CallId,
    ) -> Result<(), super::UaError> {
        let (Some(session), Some(negotiator)) = (&self.session, self.negotiator.as_mut()) else {
            return Err(super::UaError::InvalidState("the call has no audio yet"));
        };
        let before = negotiator.local().direction;
        negotiator.set_direction(direction);
        let offer = negotiator.create_offer().to_bytes();
        let (reply, wait) = oneshot::channel();
        Box::pin(core.send(Command::InDialog {
            call,
            method: Method::Invite,
            headers: Vec::new(),
            body: Some(("application/sdp".to_owned(), offer)),
            reply: Some(reply),
        }))
        .await
        .map_err(|_| super::UaError::Shutdown)?;
        let resp = match tokio::time::timeout(Duration::from_secs(32), wait).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(super::UaError::Shutdown),
            Err(_) => return Err(super::UaError::Timeout),
        };
        if !resp.status().is_success() {
            // RFC 3264 §8: a refused offer changes nothing.
            negotiator.set_direction(before);
            return Err(super::UaError::Rejected(resp.status()));
        }
        let answer = crate::sdp::SessionDescription::parse(resp.body())
            .map_err(|e| super::UaError::BadRequest(format!("the 2xx's SDP answer: {e}")))?;
        let n = negotiator
            .accept_answer(&answer)
            .map_err(|e| super::UaError::BadRequest(format!("the 2xx's SDP answer: {e}")))?;
        session.update(n.remote_addr(), n.direction).await;
        session.rekey(n.srtp).await;
        Ok(())
    }

    /// The ACK of a re-INVITE whose 2xx carried our offer: its answer.
    async fn ack(&mut self, ack: &Request) {
        if !std::mem::take(&mut self.answer_in_ack) {
            return;
        }
        let (Some(session), Some(negotiator)) = (&self.session, self.negotiator.as_mut()) else {
            return;
        };
        let answered = crate::sdp::SessionDescription::parse(ack.body())
            .map_err(|e| e.to_string())
            .and_then(|a| negotiator.accept_answer(&a).map_err(|e| e.to_string()));
        match answered {
            Ok(n) => {
                session.update(n.remote_addr(), n.direction).await;
                session.rekey(n.srtp).await;
            }
            // The session goes on as it was (RFC 3264 §8: an offer not answered
            // changes nothing).
            Err(why) => warn!(%why, "no usable answer in the ACK: media unchanged"),
        }
    }

    /// Applies `action` to the session; gives it back if there is none yet.
    async fn apply(&self, action: Action) -> Option<Action> {
        match &self.session {
            Some(s) => {
                s.apply(action).await;
                None
            }
            None => Some(action),
        }
    }

    async fn stop(&mut self) {
        if let Some(s) = self.session.take() {
            let stats = s.stop().await;
            info!(
                sent = stats.packets_sent,
                received = stats.packets_received,
                lost = stats.packets_lost,
                jitter_ms = stats.jitter_ms,
                srtp = stats.srtp.map(|p| p.sdes_name()),
                srtp_auth_failures = stats.srtp_auth_failures,
                srtp_replays = stats.srtp_replays,
                "media stopped"
            );
        }
    }
}

/// What the media task of a call we placed starts from.
pub(crate) struct UacMedia {
    pub(crate) offer: super::media::Offered,
    pub(crate) answer: Response,
    pub(crate) call: CallId,
    pub(crate) control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
    pub(crate) events: EventSender,
    pub(crate) stop: oneshot::Receiver<()>,
    /// In-dialog requests it answers (re-INVITE offers, DTMF by INFO).
    pub(crate) requests: mpsc::Receiver<ToMedia>,
    /// The RTP seed's source.
    pub(crate) entropy: crate::entropy::Entropy,
}

/// The media of a call we placed, from its 2xx to its end: reads the SDP
/// answer, starts the session, applies the handle's actions, turns the media
/// handler's hang-up into a BYE through the core, and stops the session when
/// the call ends (`stop` closes).
pub(crate) async fn uac_media(media: Box<UacMedia>, commands: mpsc::Sender<Command>) {
    // The answer is read and the session started in a plain function: the
    // offer, the answer and what they negotiate are kilobytes, and locals of
    // this async fn would stay in its future for the whole call.
    let call = media.call;
    let UacRunning {
        mut control,
        events,
        mut stop,
        mut requests,
        mut media,
        mut media_rx,
    } = match start_uac_media(media) {
        Ok(running) => running,
        Err(hang_up) => {
            if hang_up {
                let _ = Box::pin(commands.send(bye(call))).await;
            }
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(c) = recv_or_pending(&mut control) => match c {
                crate::ua::command::MediaControl::Action(action) => {
                    let _ = Box::pin(media.apply(*action)).await;
                }
                crate::ua::command::MediaControl::Direction(direction, done) => {
                    let _ = done.send(Box::pin(media.reoffer(direction, &commands, call)).await);
                }
            },
            Some(msg) = requests.recv() => match msg {
                ToMedia::Request(key, request) => {
                    let reply = match Box::pin(media.in_dialog(&request)).await {
                        Some(r) => r,
                        None if *request.method() == Method::Invite => {
                            Reply::new(crate::message::StatusCode::NOT_ACCEPTABLE_HERE)
                        }
                        None => Reply::ok(),
                    };
                    let _ = Box::pin(commands.send(Command::Reply { call: Some(call), key, reply })).await;
                    if let Some(ev) = media.hold_event() {
                        events.emit(ev);
                    }
                }
                ToMedia::Ack(ack) => Box::pin(media.ack(&ack)).await,
            },
            ev = media_rx.recv() => match ev {
                Some(MediaEvent::Hangup) => {
                    let _ = Box::pin(commands.send(bye(call))).await;
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    Box::pin(media.stop()).await;
}

/// A placed call's media once started: what [`uac_media`] listens to.
struct UacRunning {
    control: Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
    events: EventSender,
    stop: oneshot::Receiver<()>,
    requests: mpsc::Receiver<ToMedia>,
    media: CallMedia,
    media_rx: mpsc::Receiver<MediaEvent>,
}

/// The BYE of a placed call whose media ends it.
fn bye(call: CallId) -> Command {
    Command::InDialog {
        call,
        method: Method::Bye,
        headers: Vec::new(),
        body: None,
        reply: None,
    }
}

/// Reads a placed call's SDP answer and starts its media session; `Err(true)`
/// when the call is to be hung up (no usable SRTP in the answer), `Err(false)`
/// when it goes on without audio.
fn start_uac_media(media: Box<UacMedia>) -> Result<UacRunning, bool> {
    let UacMedia {
        offer,
        answer,
        call: _,
        control,
        events,
        stop,
        requests,
        entropy,
    } = *media;
    let super::media::Offered {
        bound,
        mut negotiator,
        handler,
        ..
    } = offer;
    let sdp = match crate::sdp::SessionDescription::parse(answer.body()) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "2xx without a readable SDP answer: no audio");
            return Err(false);
        }
    };
    drop(answer);
    let negotiated = match negotiator.accept_answer(&sdp) {
        Ok(n) => n,
        Err(crate::sdp::NegotiationError::NoSrtp) => {
            // RFC 4568 §7.1.3: the crypto negotiation failed; SRTP or nothing.
            warn!("the answer has no usable SRTP crypto: hanging up");
            return Err(true);
        }
        Err(e) => {
            warn!(error = %e, "SDP answer not acceptable: no audio");
            return Err(false);
        }
    };
    let (media_tx, media_rx) = mpsc::channel(4);
    let session = match MediaSession::start(
        super::media::config_with(&negotiated, bound, &entropy),
        handler,
        media_tx,
    ) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "media not started");
            return Err(false);
        }
    };
    events.emit(CallEvent::MediaStarted {
        codec: negotiated.codec.to_string(),
        stats: session.watch_stats(),
    });
    // The same renegotiation as a call we answer: a re-INVITE's offer is
    // answered (hold, resume, a new address), an offer-less one gets ours.
    let media = CallMedia {
        session: Some(session),
        negotiator: Some(Box::new(negotiator)),
        ..CallMedia::default()
    };
    Ok(UacRunning {
        control,
        events,
        stop,
        requests,
        media,
        media_rx,
    })
}

/// The next request from a handle, or never once there is none.
async fn recv_or_pending(
    control: &mut Option<mpsc::Receiver<crate::ua::command::MediaControl>>,
) -> Option<crate::ua::command::MediaControl> {
    match control {
        Some(rx) => match rx.recv().await {
            Some(a) => Some(a),
            None => {
                *control = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}
