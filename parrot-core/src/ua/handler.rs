//! The `SipHandler` trait: one instance per call, one method per SIP method.

use super::UaError;
use super::media::{self, LateOffer, MediaContext, OfflineMedia, PendingMedia};
use super::reply::Reply;
use crate::media::MediaHandler;
use crate::message::{HeaderName, Method, NameAddr, Request, Uri};
use crate::transport::TransportKind;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::mpsc;

/// A request delivered to a handler, with where it came from.
///
/// Pattern matching reads naturally:
/// ```
/// # use parrot_core::ua::{Incoming, Reply};
/// fn route(call: &Incoming) -> Reply {
///     match (call.from_user(), call.to_user()) {
///         (Some("alice"), Some("bob")) => Reply::ok(),
///         (Some("bob"), Some("alice")) => Reply::busy_here(),
///         _ => Reply::forbidden(),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Incoming {
    request: Request,
    source: SocketAddr,
    transport: TransportKind,
    /// Boxed: the channel allocates 32 slots whatever its capacity.
    provisional: Option<mpsc::Sender<Box<Reply>>>,
    media_ctx: Option<MediaContext>,
    /// Answer offers without binding sockets (the test harness): our address,
    /// the port to name in the SDP answer, and the SRTP mode to answer with.
    offline: Option<(IpAddr, u16, crate::sdp::SrtpMode)>,
    /// In a mutex only so that `&Incoming` is `Sync` (handlers hold it across awaits).
    media: std::sync::Mutex<Option<Answered>>,
    /// The endpoint the request reached (none under [`crate::testing`]).
    endpoint: Option<super::Endpoint>,
    /// For a call's INVITE: a handle on the call.
    handle: Option<super::CallHandle>,
    /// Where early media goes to its call's task.
    early: Option<mpsc::Sender<Box<super::call_task::EarlyMedia>>>,
    /// The answer sent in a 183 for early media: the 2xx repeats it.
    early_sdp: Option<bytes::Bytes>,
}

// An `Incoming` is boxed a few times a call: small enough for glibc's
// per-thread cache (requests up to 1032 bytes), see `Answered`.
const _: () = assert!(std::mem::size_of::<Incoming>() <= 1032);

/// The media an [`Incoming::answer`] agreed.
// Boxed variants: unboxed, the 1.2 KB of a bound session made every
// `Incoming` 1.75 KB, boxed three times a call whether it had media or not,
// each past glibc's per-thread cache (1032 bytes); now an `Incoming` is about
// 570 bytes. The box a call with media takes here is the one the call task
// keeps its pending session in (`take_media`), so that costs nothing more.
#[derive(Debug)]
enum Answered {
    /// Sockets bound: for the endpoint to start when the ACK arrives.
    Bound(Box<PendingMedia>),
    /// Our offer went in the 2xx; the ACK brings the answer.
    Late(Box<LateOffer>),
    /// Negotiated only, for [`crate::testing`].
    Offline(Box<OfflineMedia>),
}

impl Incoming {
    pub(crate) fn new(
        request: Request,
        source: SocketAddr,
        transport: TransportKind,
        provisional: Option<mpsc::Sender<Box<Reply>>>,
    ) -> Incoming {
        Incoming {
            request,
            source,
            transport,
            provisional,
            media_ctx: None,
            offline: None,
            media: std::sync::Mutex::new(None),
            endpoint: None,
            handle: None,
            early: None,
            early_sdp: None,
        }
    }

    pub(crate) fn with_early_media(
        mut self,
        early: mpsc::Sender<Box<super::call_task::EarlyMedia>>,
    ) -> Incoming {
        self.early = Some(early);
        self
    }

    /// Early media (RFC 3960): answers the INVITE's SDP offer in a 183
    /// Session Progress and starts `media` at once, before the call is
    /// answered (an announcement, a ringback tone, an IVR that never
    /// answers). Return [`Incoming::answer`] later to answer the call (its
    /// 200 repeats the 183's SDP, and `media` goes on; the handler given to
    /// `answer` is then unused), or any other reply to refuse it (the audio
    /// stops). `Err` is the reply to give instead: 488 for an offer that
    /// cannot be answered, or 500 if there is no offer (early media needs one:
    /// without PRACK an offer in a 183 cannot be answered).
    pub async fn early_media(&mut self, media: impl MediaHandler) -> Result<(), Reply> {
        let (Some(ctx), Some(early)) = (&self.media_ctx, &self.early) else {
            return Err(Reply::server_error().reason("Server Internal Error (no early media here)"));
        };
        if self.request.body().is_empty() {
            return Err(
                Reply::server_error().reason("Server Internal Error (no offer for early media)")
            );
        }
        let (sdp, pending) = media::answer(ctx, self.request.body(), Box::new(media)).await?;
        self.early_sdp = Some(sdp.clone());
        let reply =
            Reply::new(crate::message::StatusCode::SESSION_PROGRESS).body("application/sdp", sdp);
        early
            .send(Box::new(super::call_task::EarlyMedia {
                reply,
                media: pending,
            }))
            .await
            .map_err(|_| Reply::server_error())
    }

    pub(crate) fn with_handle(mut self, handle: super::CallHandle) -> Incoming {
        self.handle = Some(handle);
        self
    }

    /// A handle on this call (for the INVITE that starts it): keep a clone
    /// to hang up, play, record or send INFO/MESSAGE from other tasks, during
    /// and after [`SipHandler::invite`]. `None` for requests outside a call,
    /// in-dialog requests (keep the INVITE's), and under [`crate::testing`].
    pub fn handle(&self) -> Option<&super::CallHandle> {
        self.handle.as_ref()
    }

    pub(crate) fn with_endpoint(mut self, endpoint: super::Endpoint) -> Incoming {
        self.endpoint = Some(endpoint);
        self
    }

    /// The endpoint this request reached: to place a second call from a
    /// handler (a forward, a bridge: see [`bridge`](super::bridge)). `None`
    /// only under [`crate::testing`], which has no endpoint.
    pub fn endpoint(&self) -> Option<&super::Endpoint> {
        self.endpoint.as_ref()
    }

    pub(crate) fn with_media_context(mut self, ctx: MediaContext) -> Incoming {
        self.media_ctx = Some(ctx);
        self
    }

    pub(crate) fn take_media(&mut self) -> Option<Box<PendingMedia>> {
        let slot = self
            .media
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.take() {
            Some(Answered::Bound(p)) => Some(p),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// The offer made in the 2xx to an INVITE without one.
    pub(crate) fn take_late_offer(&mut self) -> Option<Box<LateOffer>> {
        let slot = self
            .media
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.take() {
            Some(Answered::Late(o)) => Some(o),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Offers are answered without sockets: the SDP answer names `local_ip`
    /// and `port`, SRTP as `srtp` says, and nothing is bound (for [`crate::testing`]).
    pub(crate) fn with_offline_media(
        mut self,
        local_ip: IpAddr,
        port: u16,
        srtp: crate::sdp::SrtpMode,
    ) -> Incoming {
        self.offline = Some((local_ip, port, srtp));
        self
    }

    /// The media agreed by an [`Incoming::answer`] in offline mode.
    pub(crate) fn take_offline_media(&mut self) -> Option<OfflineMedia> {
        let slot = self
            .media
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.take() {
            Some(Answered::Offline(m)) => Some(*m),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Answers the call with audio: the SDP offer is answered (the codec chosen
    /// by `media`'s [`MediaHandler::choose_codec`]), RTP sockets are bound, and
    /// once the caller's ACK arrives `media` drives the audio (play, record,
    /// DTMF). Returns the 200 to give back from [`SipHandler::invite`]; an offer
    /// that cannot be read or shares no codec gives 488 instead. An INVITE
    /// without an offer gets ours in the 200 (RFC 3261 §13.2.1), and the
    /// caller's answer in the ACK starts the audio; an ACK without a usable
    /// answer ends the call with BYE.
    ///
    /// Under [`crate::testing`] the offer is negotiated the same way but no
    /// socket is bound; the harness hands the media handler back to the test
    /// (an INVITE without an offer is answered 200 without audio there).
    pub async fn answer(&mut self, media: impl MediaHandler) -> Reply {
        if let Some(sdp) = &self.early_sdp {
            // The early media's session goes on; the 2xx repeats its answer
            // (RFC 3261 §13.2.1: one answer per offer).
            drop(media);
            return Reply::ok().body("application/sdp", sdp.clone());
        }
        if self.media_ctx.is_none() && self.offline.is_none() {
            return Reply::ok();
        }
        if self.request.body().is_empty() {
            let Some(ctx) = &self.media_ctx else {
                return Reply::ok();
            };
            return match LateOffer::make(ctx, Box::new(media)).await {
                Ok(late) => {
                    let sdp = late.offered.sdp.clone();
                    *self
                        .media
                        .get_mut()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Answered::Late(Box::new(late)));
                    Reply::ok().body("application/sdp", sdp)
                }
                Err(_) => Reply::new(crate::message::StatusCode::SERVICE_UNAVAILABLE)
                    .reason("Service Unavailable (no RTP port free)"),
            };
        }
        let answered = match (self.offline, &self.media_ctx) {
            (Some((ip, port, srtp)), _) => {
                media::answer_offline(ip, port, srtp, self.request.body(), Box::new(media))
                    .map(|(sdp, m)| (sdp, Answered::Offline(Box::new(m))))
            }
            (None, Some(ctx)) => media::answer(ctx, self.request.body(), Box::new(media))
                .await
                .map(|(sdp, p)| (sdp, Answered::Bound(Box::new(p)))),
            (None, None) => return Reply::ok(),
        };
        match answered {
            Ok((sdp, answered)) => {
                *self
                    .media
                    .get_mut()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(answered);
                Reply::ok().body("application/sdp", sdp)
            }
            Err(reply) => reply,
        }
    }

    /// `dir/CALL-ID.wav`, the Call-ID kept to letters, digits and `-` so
    /// that it is a safe file name: where to record this call in a folder
    /// of recordings.
    pub fn recording_path(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let id: String = self
            .call_id()
            .unwrap_or("call")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        dir.join(format!("{id}.wav"))
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The method.
    pub fn method(&self) -> &Method {
        self.request.method()
    }

    /// The Request-URI.
    pub fn uri(&self) -> &Uri {
        self.request.uri()
    }

    /// From.
    pub fn from(&self) -> Option<&NameAddr> {
        self.request.headers().from()
    }

    /// To.
    pub fn to(&self) -> Option<&NameAddr> {
        self.request.headers().to()
    }

    /// The user part of the From URI.
    pub fn from_user(&self) -> Option<&str> {
        self.from().and_then(NameAddr::user)
    }

    /// The user part of the To URI.
    pub fn to_user(&self) -> Option<&str> {
        self.to().and_then(NameAddr::user)
    }

    /// The user part of the Request-URI.
    pub fn uri_user(&self) -> Option<&str> {
        self.request.uri().user()
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.request.headers().call_id().map(|c| c.as_str())
    }

    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers().get_str(&HeaderName::from(name))
    }

    /// The target a REFER asks us to call (its Refer-To, RFC 3515 §2.1);
    /// a `Replaces` header in it (an attended transfer) stays on the URI
    /// and goes into the INVITE when dialled.
    pub fn refer_to(&self) -> Option<crate::message::Uri> {
        super::core::refer_target(&self.request)
    }

    /// True for an INVITE that replaces one of our calls (an attended
    /// transfer's, RFC 3891): the endpoint checked that the dialog it names
    /// is one of ours and confirmed; once this call is answered, that one
    /// is hung up. Such a call is usually answered without ringing.
    pub fn replaces(&self) -> bool {
        self.request
            .headers()
            .get(&crate::message::HeaderName::from("Replaces"))
            .is_some()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.request.body()
    }

    /// Where the request came from.
    pub fn source(&self) -> SocketAddr {
        self.source
    }

    /// The transport it came on.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Sends a provisional response (1xx, e.g. 180 Ringing or 183 with early
    /// media) while the handler decides. Only for INVITE.
    ///
    /// It goes reliably (RFC 3262: `RSeq`, retransmitted until the caller's
    /// PRACK) when the caller requires that, or supports it and the reply has
    /// a body or `Require: 100rel`; see
    /// [`EndpointBuilder::reliable_provisionals`](super::EndpointBuilder::reliable_provisionals).
    pub async fn provisional(&self, reply: Reply) -> Result<(), UaError> {
        if !reply.status().is_provisional() || reply.status().as_u16() == 100 {
            return Err(UaError::InvalidReply("a provisional reply is 101..=199"));
        }
        let tx = self
            .provisional
            .as_ref()
            .ok_or(UaError::InvalidReply("provisional replies are for INVITE"))?;
        tx.send(Box::new(reply))
            .await
            .map_err(|_| UaError::CallGone)
    }

    /// Sends 180 Ringing.
    pub async fn ring(&self) -> Result<(), UaError> {
        self.provisional(Reply::ringing()).await
    }
}

/// Why a call ended, as told to [`SipHandler::ended`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The peer sent BYE.
    PeerHangup,
    /// The caller cancelled before the answer.
    Cancelled,
    /// The handler rejected the INVITE.
    Rejected,
    /// We hung up (the media handler asked to, or the application did).
    LocalHangup,
    /// The ACK for our 2xx never came (RFC 3261 §13.3.1.4); a BYE was sent.
    AckTimeout,
    /// The session timer ran out without a refresh from the peer (RFC 4028
    /// §10: it is gone, or its BYE was lost); a BYE was sent.
    SessionExpired,
    /// The endpoint shut down.
    Shutdown,
    /// An attended transfer's new call replaced this one (RFC 3891): a BYE
    /// was sent.
    Replaced,
    /// The INVITE's transaction failed before the call was over (a response
    /// could not be sent, RFC 3261 §17.2.4): the caller cannot be reached
    /// through it; an answered call was hung up with BYE.
    TransportError,
}

/// What a SIP server does with requests. One value per call (dialog), made by
/// the endpoint's handler factory, so `&mut self` is that call's state; a
/// request outside any dialog (OPTIONS, REGISTER, MESSAGE) gets a value of
/// its own too.
///
/// Every method has a default that answers what a good SIP citizen answers:
/// INVITE 480 (override it to take calls), BYE 200, OPTIONS 200 (the endpoint
/// adds Allow, Accept and Supported), other known methods 405 with Allow,
/// unknown methods 501. CANCEL, ACK matching, 481 for unknown dialogs, 2xx
/// retransmission and the rest of RFC 3261 are the endpoint's job.
///
/// A panic in a method ends that call only: the endpoint answers 500 (or sends
/// BYE if the call was answered), logs it, and carries on.
///
/// The methods' futures are polled by the endpoint's driver, on its task,
/// not each in a task of its own (a wake-up of another task per ACK and BYE
/// cost more than the rest of the call). Like any async code on tokio, they
/// must not block: await, or use `tokio::task::spawn_blocking`. One whose
/// poll takes more than a millisecond is moved to a task of its own, so that
/// heavy code holds signaling up once, not at every poll.
pub trait SipHandler: Send + 'static {
    /// An INVITE that creates a call, or a re-INVITE in one.
    fn invite(&mut self, call: &mut Incoming) -> impl Future<Output = Reply> + Send {
        let _ = call;
        async { Reply::temporarily_unavailable() }
    }

    /// The ACK for our 2xx arrived: the call is up.
    fn ack(&mut self, call: &Incoming) -> impl Future<Output = ()> + Send {
        let _ = call;
        async {}
    }

    /// BYE: the peer hangs up. The reply is sent, then [`SipHandler::ended`] is called.
    fn bye(&mut self, call: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = call;
        async { Reply::ok() }
    }

    /// OPTIONS.
    fn options(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::ok() }
    }

    /// REGISTER (when the endpoint has no registrar configured).
    fn register(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// INFO (RFC 6086), e.g. `application/dtmf-relay`.
    fn info(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// MESSAGE (RFC 3428).
    fn message(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// REFER (RFC 3515): the peer asks us to call
    /// [`Incoming::refer_to`]. The default refuses (405). To take it, return
    /// 202 and dial the target (often with the call's handle, kept from
    /// `invite`: [`CallHandle::follow_transfer`](super::CallHandle::follow_transfer)
    /// dials, reports and hangs up): the endpoint then sends the refer
    /// subscription's first NOTIFY itself, or none if the REFER said
    /// `Refer-Sub: false` (RFC 4488, granted).
    fn refer(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// NOTIFY (RFC 6665).
    fn notify(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// SUBSCRIBE (RFC 6665).
    fn subscribe(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// UPDATE (RFC 3311).
    fn update(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// PRACK (RFC 3262).
    fn prack(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::METHOD_NOT_ALLOWED) }
    }

    /// Any other method: 501 Not Implemented (RFC 3261 §8.2.1).
    fn fallback(&mut self, req: &Incoming) -> impl Future<Output = Reply> + Send {
        let _ = req;
        async { Reply::new(crate::message::StatusCode::NOT_IMPLEMENTED) }
    }

    /// The call is over (after BYE either way, CANCEL, rejection or a timeout).
    fn ended(&mut self, reason: EndReason) -> impl Future<Output = ()> + Send {
        let _ = reason;
        async {}
    }
}

/// Dispatches a non-INVITE, non-ACK request to the handler method for its method.
pub(crate) async fn dispatch<H: SipHandler>(h: &mut H, req: &Incoming) -> Reply {
    match req.method() {
        Method::Bye => h.bye(req).await,
        Method::Options => h.options(req).await,
        Method::Register => h.register(req).await,
        Method::Info => h.info(req).await,
        Method::Message => h.message(req).await,
        Method::Refer => h.refer(req).await,
        Method::Notify => h.notify(req).await,
        Method::Subscribe => h.subscribe(req).await,
        Method::Update => h.update(req).await,
        Method::Prack => h.prack(req).await,
        _ => h.fallback(req).await,
    }
}

/// A handler that takes no calls: the defaults only. For endpoints that only dial.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHandler;

impl SipHandler for DefaultHandler {}
