//! An in-memory harness for handlers: no sockets, no sleeps.
//!
//! - [`invite`] and [`request`] build valid SIP requests (Via, Max-Forwards,
//!   From with a tag, To, Call-ID, CSeq, Contact), optionally with an SDP
//!   offer ([`default_offer`]: PCMU, PCMA and telephone-event; [`srtp_offer`]:
//!   the same with SDES keys, RFC 4568);
//! - [`call`] runs a [`SipHandler`] on one, the way the endpoint would, and
//!   returns an [`Outcome`]: the final [`Reply`], the provisional replies the
//!   handler sent ([`Incoming::ring`]) and, when it answered with
//!   [`Incoming::answer`], the SDP answer (from the real offer/answer code) and
//!   the media handler. No RTP socket is bound: the answer names
//!   [`SERVER`]'s address and the placeholder port [`MEDIA_PORT`]. SRTP offers
//!   are answered as an endpoint with the default [`SrtpMode::BestEffort`]
//!   answers them over TLS (with keys, [`Outcome::srtp`] names the suite);
//!   [`call_with_srtp`] takes another mode;
//! - [`MediaHarness`] drives a [`MediaHandler`] frame by frame on virtual
//!   time (a frame counter, 20 ms a frame): what it plays, the digits it
//!   receives, what it hears, whether it hangs up.
//!
//! ```
//! use parrot_core::media::{Action, MediaHandler, PlaySource};
//! use parrot_core::testing::{self, MediaHarness};
//! use parrot_core::ua::{Incoming, Reply, SipHandler};
//! use std::time::Duration;
//!
//! /// Alice may call Bob; Bob finds Alice busy; anyone may call the menu.
//! struct Router;
//!
//! impl SipHandler for Router {
//!     async fn invite(&mut self, call: &mut Incoming) -> Reply {
//!         match (call.from_user(), call.to_user()) {
//!             (Some("alice"), Some("bob")) => Reply::ok(),
//!             (Some("bob"), Some("alice")) => Reply::busy_here(),
//!             (_, Some("menu")) => {
//!                 let _ = call.ring().await;
//!                 call.answer(Menu).await
//!             }
//!             _ => Reply::forbidden(),
//!         }
//!     }
//! }
//!
//! /// A tone, then digits: 1 a higher tone, 9 hangs up.
//! struct Menu;
//!
//! impl MediaHandler for Menu {
//!     fn stream_started(&mut self) -> Action {
//!         Action::tone(440.0, 0.5)
//!     }
//!     fn dtmf(&mut self, digit: char) -> Action {
//!         match digit {
//!             '1' => Action::tone(880.0, 0.5),
//!             '9' => Action::Hangup,
//!             _ => Action::Nothing,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Signaling: build the INVITE, run the handler, read the reply.
//! let ok = testing::call(&mut Router, testing::invite("alice", "bob").build()).await;
//! assert_eq!(ok.code(), 200);
//! let busy = testing::call(&mut Router, testing::invite("bob", "alice").build()).await;
//! assert_eq!(busy.code(), 486);
//!
//! // With audio: the offer is answered (no socket bound), the media handler comes back.
//! let mut menu = testing::call(&mut Router, testing::invite("carol", "menu").offer().build()).await;
//! assert_eq!(menu.code(), 200);
//! assert_eq!(menu.provisional_codes(), [180]);
//! assert!(menu.sdp_answer().is_some_and(|sdp| !sdp.media.is_empty()));
//! let mut media = menu.take_media().expect("answered with audio");
//!
//! // Frame by frame: what it plays, what a digit does.
//! media.start();
//! assert_eq!(media.now_playing(), Some(&PlaySource::Tone(440.0, 0.5)));
//! assert!(testing::has_tone(media.run_for(Duration::from_millis(200)), 440.0));
//! media.dtmf('1');
//! assert!(testing::has_tone(media.run_for(Duration::from_millis(200)), 880.0));
//! media.dtmf('9');
//! assert!(media.hung_up());
//!
//! // Or a media handler on its own.
//! let mut alone = MediaHarness::new(Menu);
//! alone.start().run_for(Duration::from_secs(1));
//! assert_eq!(alone.completed(), [PlaySource::Tone(440.0, 0.5)]);
//! assert_eq!(alone.now_playing(), None);
//! # }
//! ```

use crate::codec::Codec;
use crate::media::{
    Action, AudioSource, ErrorAction, MediaEngine, MediaError, MediaHandler, Output, PlaySource,
    RATE, Tone, tone_present,
};
use crate::message::{
    HeaderError, HeaderName, Host, Method, Request, Response, SipUri, StatusCode, Uri,
};
use crate::rtp::SrtpProfile;
use crate::sdp::{LocalMedia, LocalSrtp, Negotiated, Negotiator, SessionDescription, SrtpMode};
use crate::transport::TransportKind;
use crate::ua::{Incoming, Reply, SipHandler};
use bytes::Bytes;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where built requests come from: the caller, 192.0.2.10:5060 (TEST-NET-1, RFC 5737).
pub const CALLER: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 5060));

/// The server the requests are for, 192.0.2.1:5060; SDP answers name its address.
pub const SERVER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 5060));

/// The RTP port SDP answers name. Nothing is bound there.
pub const MEDIA_PORT: u16 = 40000;

/// The caller's RTP port in [`default_offer`].
pub const CALLER_MEDIA_PORT: u16 = 30000;

/// The To tag [`Outcome::response`] adds, as the endpoint would add its own.
pub const LOCAL_TAG: &str = "harness";

/// An INVITE from `from_user` to `to_user` (add [`RequestBuilder::offer`] for audio).
pub fn invite(from_user: &str, to_user: &str) -> RequestBuilder {
    request(Method::Invite, from_user, to_user)
}

/// A request of any method from `from_user` to `to_user`: OPTIONS, INFO,
/// MESSAGE, BYE (with [`RequestBuilder::to_tag`] for one inside a call), …
pub fn request(method: Method, from_user: &str, to_user: &str) -> RequestBuilder {
    RequestBuilder {
        method,
        from: from_user.to_owned(),
        to: to_user.to_owned(),
        uri: None,
        source: CALLER,
        server: SERVER,
        call_id: None,
        from_tag: crate::dialog::new_tag(),
        to_tag: None,
        cseq: 1,
        headers: Vec::new(),
        body: None,
    }
}

/// The offer a typical phone sends: PCMU, PCMA and telephone-event 101, 20 ms,
/// sendrecv, from [`CALLER`]'s address and [`CALLER_MEDIA_PORT`].
pub fn default_offer() -> Bytes {
    offer_with(vec![Codec::PCMU, Codec::PCMA])
}

/// An offer of these codecs (in this order) and telephone-event, e.g. only
/// G.729 to see a handler refuse it with 488, or G.722 for a wideband call.
pub fn offer_with(codecs: Vec<Codec>) -> Bytes {
    let local = LocalMedia::new(CALLER.ip(), CALLER_MEDIA_PORT).with_codecs(codecs);
    Negotiator::new(local, 1).create_offer().to_bytes()
}

/// [`default_offer`] with SRTP (RFC 3711) keyed by SDES (RFC 4568): one
/// `a=crypto` line per supported suite, strongest first, on `RTP/SAVP` for
/// [`SrtpMode::Mandatory`] (as baresip's `srtp-mand` offers) or `RTP/AVP` for
/// [`SrtpMode::BestEffort`] (as its `srtp` does); [`SrtpMode::Off`] gives
/// [`default_offer`]. The keys are fixed test values, the same in every
/// offer: never send this offer to a real peer.
pub fn srtp_offer(mode: SrtpMode) -> Bytes {
    let keys = SrtpProfile::ALL
        .iter()
        .zip(1u8..)
        .map(|(p, n)| (*p, vec![n; p.key_len() + p.salt_len()]))
        .collect();
    let srtp = LocalSrtp::with_keys(mode, keys);
    let local = LocalMedia::new(CALLER.ip(), CALLER_MEDIA_PORT)
        .with_codecs(vec![Codec::PCMU, Codec::PCMA])
        .with_srtp(srtp);
    Negotiator::new(local, 1).create_offer().to_bytes()
}

/// A request to build; see [`invite`] and [`request`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RequestBuilder {
    method: Method,
    from: String,
    to: String,
    uri: Option<Uri>,
    source: SocketAddr,
    server: SocketAddr,
    call_id: Option<String>,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    headers: Vec<(HeaderName, String)>,
    body: Option<(String, Bytes)>,
}

impl RequestBuilder {
    /// The Request-URI (default: `sip:TO_USER@` [`SERVER`]).
    pub fn uri(mut self, uri: Uri) -> RequestBuilder {
        self.uri = Some(uri);
        self
    }

    /// Where the request comes from (default [`CALLER`]): the Via, the
    /// Contact, the From host and [`Incoming::source`].
    pub fn source(mut self, source: SocketAddr) -> RequestBuilder {
        self.source = source;
        self
    }

    /// The Call-ID (default: a new one).
    pub fn call_id(mut self, call_id: impl Into<String>) -> RequestBuilder {
        self.call_id = Some(call_id.into());
        self
    }

    /// The From tag (default: a new one).
    pub fn from_tag(mut self, tag: impl Into<String>) -> RequestBuilder {
        self.from_tag = tag.into();
        self
    }

    /// A To tag: the request belongs to a call (a BYE, a re-INVITE, an INFO in it).
    pub fn to_tag(mut self, tag: impl Into<String>) -> RequestBuilder {
        self.to_tag = Some(tag.into());
        self
    }

    /// The CSeq number (default 1).
    pub fn cseq(mut self, cseq: u32) -> RequestBuilder {
        self.cseq = cseq;
        self
    }

    /// Adds a header.
    pub fn header(
        mut self,
        name: impl Into<HeaderName>,
        value: impl Into<String>,
    ) -> RequestBuilder {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body and its Content-Type.
    pub fn body(
        mut self,
        content_type: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> RequestBuilder {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// An SDP offer as the body (`application/sdp`).
    pub fn sdp(self, offer: impl Into<Bytes>) -> RequestBuilder {
        self.body("application/sdp", offer)
    }

    /// [`default_offer`] as the body.
    pub fn offer(self) -> RequestBuilder {
        self.sdp(default_offer())
    }

    /// [`srtp_offer`] as the body: an offer with SDES keys.
    pub fn srtp_offer(self, mode: SrtpMode) -> RequestBuilder {
        self.sdp(srtp_offer(mode))
    }

    /// The request, or the header that could not be added (a value with CR or LF).
    pub fn try_build(self) -> Result<Request, HeaderError> {
        let uri = self
            .uri
            .unwrap_or_else(|| addr_uri(&self.to, self.server, true));
        let from = addr_uri(&self.from, self.source, false);
        let to = addr_uri(&self.to, self.server, false);
        let mut req = Request::new(self.method.clone(), uri);
        let h = req.headers_mut();
        h.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/UDP {};branch={}",
                self.source,
                crate::dialog::new_branch()
            ),
        )?;
        h.push(HeaderName::MaxForwards, "70")?;
        h.push(HeaderName::From, format!("<{from}>;tag={}", self.from_tag))?;
        match &self.to_tag {
            Some(tag) => h.push(HeaderName::To, format!("<{to}>;tag={tag}"))?,
            None => h.push(HeaderName::To, format!("<{to}>"))?,
        }
        let call_id = self
            .call_id
            .unwrap_or_else(|| crate::dialog::new_call_id(&self.source.ip().to_string()));
        h.push(HeaderName::CallId, call_id)?;
        h.push(
            HeaderName::CSeq,
            format!("{} {}", self.cseq, self.method.as_str()),
        )?;
        h.push(
            HeaderName::Contact,
            format!("<{}>", addr_uri(&self.from, self.source, true)),
        )?;
        for (name, value) in self.headers {
            h.push(name, value)?;
        }
        match self.body {
            Some((content_type, body)) => {
                h.set(HeaderName::ContentType, content_type)?;
                req.set_body(body);
            }
            None => req.set_body(Bytes::new()),
        }
        Ok(req)
    }

    /// The request.
    ///
    /// # Panics
    ///
    /// If a header value holds CR or LF ([`RequestBuilder::try_build`] says which).
    pub fn build(self) -> Request {
        match self.try_build() {
            Ok(req) => req,
            Err(e) => panic!("testing::RequestBuilder: {e}"),
        }
    }
}

/// `sip:user@ip[:port]`.
fn addr_uri(user: &str, addr: SocketAddr, with_port: bool) -> Uri {
    let mut uri = SipUri::new(Some(user), Host::from(addr.ip()));
    if with_port {
        uri.port = Some(addr.port());
    }
    Uri::Sip(uri)
}

/// Where a request came from: its top Via's sent-by when that is an address.
fn source_of(request: &Request) -> SocketAddr {
    request
        .headers()
        .top_via()
        .and_then(|v| Some(SocketAddr::new(v.host.ip()?, v.port.unwrap_or(5060))))
        .unwrap_or(CALLER)
}

/// The request as a handler gets it, from [`Incoming::source`] (its top Via)
/// over UDP, with no provisional replies and no media: for calling handler
/// methods directly, e.g. `handler.ack(&testing::incoming(ack)).await`.
pub fn incoming(request: Request) -> Incoming {
    let source = source_of(&request);
    Incoming::new(request, source, TransportKind::Udp, None)
}

/// Runs `handler` on `request` as the endpoint would: an INVITE goes to
/// [`SipHandler::invite`] (with provisional replies collected and offers
/// answered without sockets when it is not in a call), other methods to
/// their handler method. SRTP is answered as with the endpoint's default
/// [`SrtpMode::BestEffort`] over TLS: an offer with `a=crypto` gets SRTP, a
/// plain one plain RTP. See [`call_with_srtp`] for the other modes.
///
/// # Panics
///
/// For ACK (it gets no reply: use [`ack`]) and CANCEL (the endpoint answers
/// it, never the handler).
pub async fn call<H: SipHandler>(handler: &mut H, request: Request) -> Outcome {
    call_with_srtp(handler, request, SrtpMode::BestEffort).await
}

/// [`call`], with offers answered as an endpoint whose
/// [`EndpointBuilder::srtp`](crate::ua::EndpointBuilder::srtp) is `srtp`
/// answers them over TLS: [`SrtpMode::Mandatory`] gives 488 to a plain offer,
/// [`SrtpMode::Off`] 488 to an `RTP/SAVP` one (and plain RTP to `RTP/AVP`
/// with `a=crypto`). Over UDP or TCP an endpoint sends no keys unless
/// [`srtp_keys_over_insecure_transports`](crate::ua::EndpointBuilder::srtp_keys_over_insecure_transports)
/// allows it; the harness sends nothing anywhere, so it does not model that.
///
/// # Panics
///
/// As [`call`].
pub async fn call_with_srtp<H: SipHandler>(
    handler: &mut H,
    request: Request,
    srtp: SrtpMode,
) -> Outcome {
    let source = source_of(&request);
    let kept = request.clone();
    match request.method() {
        Method::Ack => panic!("testing::call: an ACK gets no reply; use testing::ack"),
        Method::Cancel => {
            panic!(
                "testing::call: CANCEL is answered by the endpoint (200, then 487 for the INVITE)"
            )
        }
        Method::Invite => {
            let in_call = request.headers().to().and_then(|t| t.tag()).is_some();
            // Larger than any handler needs: sends never wait on the receiving loop below.
            let (tx, mut rx) = mpsc::channel::<Box<Reply>>(16);
            let mut inc = Incoming::new(request, source, TransportKind::Udp, Some(tx));
            if !in_call {
                // As the endpoint does: re-INVITEs get no media context.
                inc = inc.with_offline_media(SERVER.ip(), MEDIA_PORT, srtp);
            }
            let mut provisional = Vec::new();
            let reply = {
                let fut = handler.invite(&mut inc);
                tokio::pin!(fut);
                loop {
                    tokio::select! {
                        biased;
                        Some(p) = rx.recv() => provisional.push(*p),
                        r = &mut fut => break r,
                    }
                }
            };
            while let Ok(p) = rx.try_recv() {
                provisional.push(*p);
            }
            let media = inc.take_offline_media();
            let (negotiated, media) = match media {
                Some(m) if reply.status().is_success() => (Some(m.negotiated), Some(m.handler)),
                _ => (None, None),
            };
            Outcome {
                request: kept,
                reply,
                provisional,
                negotiated,
                media,
            }
        }
        _ => {
            let inc = Incoming::new(request, source, TransportKind::Udp, None);
            let reply = crate::ua::dispatch(handler, &inc).await;
            Outcome {
                request: kept,
                reply,
                provisional: Vec::new(),
                negotiated: None,
                media: None,
            }
        }
    }
}

/// Gives `handler` an ACK ([`SipHandler::ack`]); build it with
/// `testing::request(Method::Ack, …).to_tag(…)`.
pub async fn ack<H: SipHandler>(handler: &mut H, request: Request) {
    handler.ack(&incoming(request)).await;
}

/// What a handler did with a request: see [`call`].
pub struct Outcome {
    request: Request,
    reply: Reply,
    provisional: Vec<Reply>,
    negotiated: Option<Negotiated>,
    media: Option<Box<dyn MediaHandler>>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("reply", &self.reply)
            .field("provisional", &self.provisional)
            .field("negotiated", &self.negotiated)
            .field("media", &self.media.is_some())
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// The final reply.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// The final status.
    pub fn status(&self) -> StatusCode {
        self.reply.status()
    }

    /// The final status code as a number.
    pub fn code(&self) -> u16 {
        self.reply.status().as_u16()
    }

    /// The provisional replies (180, 183, …) the handler sent, in order.
    pub fn provisional(&self) -> &[Reply] {
        &self.provisional
    }

    /// Their status codes.
    pub fn provisional_codes(&self) -> Vec<u16> {
        self.provisional
            .iter()
            .map(|r| r.status().as_u16())
            .collect()
    }

    /// The request the handler got.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The final reply as the response to the request: Via, From, To (with
    /// [`LOCAL_TAG`]), Call-ID and CSeq copied, then the reply's headers and
    /// body. The endpoint adds more (Allow for OPTIONS and 405, Contact,
    /// Server).
    pub fn response(&self) -> Response {
        let mut r = self.reply.to_response(&self.request);
        if self.request.headers().to().and_then(|t| t.tag()).is_none() {
            r.set_to_tag(LOCAL_TAG);
        }
        r
    }

    /// The SDP in the final reply, if it has an `application/sdp` body that parses.
    pub fn sdp_answer(&self) -> Option<SessionDescription> {
        let (content_type, body) = self.reply.body_ref()?;
        if !content_type.eq_ignore_ascii_case("application/sdp") {
            return None;
        }
        SessionDescription::parse(body).ok()
    }

    /// What the offer/answer agreed, if the handler answered with audio.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The codec the call's audio uses, if it has audio.
    pub fn codec(&self) -> Option<&Codec> {
        self.negotiated.as_ref().map(|n| &n.codec)
    }

    /// The SRTP suite the answer agreed, if the call's audio is encrypted.
    pub fn srtp(&self) -> Option<SrtpProfile> {
        self.negotiated.as_ref()?.srtp.as_ref().map(|s| s.profile)
    }

    /// True if the handler answered with audio (and the media handler is
    /// still here: see [`Outcome::take_media`]).
    pub fn has_media(&self) -> bool {
        self.media.is_some()
    }

    /// The answered call's media handler in a [`MediaHarness`] (with the
    /// negotiated ptime), not yet started: call [`MediaHarness::start`], as
    /// the endpoint does when the ACK arrives.
    pub fn take_media(&mut self) -> Option<MediaHarness<Box<dyn MediaHandler>>> {
        let handler = self.media.take()?;
        let ptime = self.negotiated.as_ref().map_or(20, |n| n.ptime);
        Some(MediaHarness::new(handler).with_ptime(ptime))
    }
}

/// True if `frequency` (Hz) carries most of the energy of `samples` (8 kHz):
/// "is this tone playing".
pub fn has_tone(samples: &[i16], frequency: f64) -> bool {
    tone_present(samples, frequency, RATE, 0.5)
}

/// `seconds` of a sine at `frequency` (Hz), half scale, 8 kHz: audio for
/// [`MediaHarness::receive`].
pub fn tone(frequency: f64, seconds: f64) -> Vec<i16> {
    let mut samples = vec![0i16; (seconds * f64::from(RATE)) as usize];
    let n = Tone::new(frequency, 0.5)
        .lasting(seconds)
        .read(&mut samples);
    samples.truncate(n);
    samples
}

/// Wraps the user's handler to see what it asks for.
struct Spy<H> {
    inner: H,
    plays: Vec<PlaySource>,
    completed: Vec<PlaySource>,
    errors: Vec<String>,
    received_dtmf: String,
}

impl<H> Spy<H> {
    fn note(&mut self, action: &Action) {
        match action {
            Action::Play(p) => self.plays.push(p.source.clone()),
            Action::Several(list) => {
                for a in list {
                    self.note(a);
                }
            }
            _ => {}
        }
    }

    fn noted(&mut self, action: Action) -> Action {
        self.note(&action);
        action
    }
}

impl<H: MediaHandler> MediaHandler for Spy<H> {
    fn choose_codec(&mut self, offered: &[Codec], supported: &[Codec]) -> Option<Codec> {
        self.inner.choose_codec(offered, supported)
    }
    fn session_started(&mut self) {
        self.inner.session_started();
    }
    fn stream_started(&mut self) -> Action {
        let a = self.inner.stream_started();
        self.noted(a)
    }
    fn play_complete(&mut self, played: &PlaySource) -> Action {
        self.completed.push(played.clone());
        let a = self.inner.play_complete(played);
        self.noted(a)
    }
    fn dtmf(&mut self, digit: char) -> Action {
        self.received_dtmf.push(digit);
        let a = self.inner.dtmf(digit);
        self.noted(a)
    }
    fn stream_error(&mut self, error: &MediaError) -> ErrorAction {
        self.errors.push(error.to_string());
        self.inner.stream_error(error)
    }
    fn session_stopped(&mut self) {
        self.inner.session_stopped();
    }
}

/// Drives a [`MediaHandler`] as a call's media session would, on virtual
/// time: each [`step`](MediaHarness::step) is one frame (20 ms unless the SDP
/// said otherwise) of what the call sends. Digits and received audio go in
/// between steps. When the handler hangs up or stops, the session ends as in
/// a real call (recording closed, [`MediaHandler::session_stopped`]) and
/// further steps send silence.
///
/// ```
/// use parrot_core::media::{Action, MediaHandler, PlaySource};
/// use parrot_core::testing::MediaHarness;
/// use std::time::Duration;
///
/// struct Beep;
/// impl MediaHandler for Beep {
///     fn stream_started(&mut self) -> Action { Action::tone(1000.0, 0.09) }
///     fn dtmf(&mut self, _: char) -> Action { Action::Hangup }
/// }
///
/// let mut m = MediaHarness::new(Beep);
/// m.start();
/// assert!(m.run_until_idle(Duration::from_secs(1)));
/// // 90 ms of tone end in the fifth frame.
/// assert_eq!(m.elapsed(), Duration::from_millis(100));
/// m.press("5");
/// assert!(m.hung_up() && m.is_ended());
/// ```
pub struct MediaHarness<H: MediaHandler> {
    engine: MediaEngine<Spy<H>>,
    ptime: u32,
    rate: u32,
    frames: u64,
    audio: Vec<i16>,
    outputs: Vec<Output>,
    started: bool,
    ended: bool,
}

impl<H: MediaHandler> std::fmt::Debug for MediaHarness<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaHarness")
            .field("frames", &self.frames)
            .field("playing", &self.now_playing())
            .field("outputs", &self.outputs)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<H: MediaHandler> MediaHarness<H> {
    /// A harness for `handler`, 20 ms frames, not started.
    pub fn new(handler: H) -> MediaHarness<H> {
        MediaHarness {
            engine: MediaEngine::new(Spy {
                inner: handler,
                plays: Vec::new(),
                completed: Vec::new(),
                errors: Vec::new(),
                received_dtmf: String::new(),
            }),
            ptime: 20,
            rate: RATE,
            frames: 0,
            audio: Vec::new(),
            outputs: Vec::new(),
            started: false,
            ended: false,
        }
    }

    /// Frames of `ms` milliseconds (10..=120, else 20).
    #[must_use]
    pub fn with_ptime(mut self, ms: u32) -> MediaHarness<H> {
        self.ptime = if (10..=120).contains(&ms) { ms } else { 20 };
        self
    }

    /// Frames at `rate` Hz instead of 8 kHz (16 000: a G.722 call), for what the harness
    /// sends and what [`MediaHarness::receive`] takes. Before [`MediaHarness::start`].
    /// [`has_tone`] and [`tone`] are 8 kHz: use [`tone_present`] with the rate.
    #[must_use]
    pub fn with_rate(mut self, rate: u32) -> MediaHarness<H> {
        self.rate = rate.max(1);
        self.engine.set_rate(self.rate);
        self
    }

    /// The rate of the frames, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Audio starts flowing (the ACK arrived): [`MediaHandler::session_started`]
    /// and [`MediaHandler::stream_started`] run. Once only.
    pub fn start(&mut self) -> &mut Self {
        if !self.started && !self.ended {
            self.started = true;
            self.engine.start();
            self.drain();
        }
        self
    }

    fn samples_per_frame(&self) -> usize {
        (u64::from(self.rate) * u64::from(self.ptime) / 1000) as usize
    }

    fn drain(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            let ends = matches!(out, Output::Hangup | Output::Stop);
            self.outputs.push(out);
            if ends {
                self.end();
            }
        }
    }

    /// One frame: returns what the call sends in it.
    pub fn step(&mut self) -> &[i16] {
        self.run(1)
    }

    /// `frames` frames: returns what the call sends in them.
    pub fn run(&mut self, frames: usize) -> &[i16] {
        let from = self.audio.len();
        let n = self.samples_per_frame();
        for _ in 0..frames {
            let at = self.audio.len();
            self.audio.resize(at + n, 0);
            if !self.ended {
                self.engine.next_frame(&mut self.audio[at..]);
                self.drain();
            }
            self.frames += 1;
        }
        &self.audio[from..]
    }

    /// As many frames as `duration` takes (rounded up): returns what the call sends.
    pub fn run_for(&mut self, duration: Duration) -> &[i16] {
        let frame = u128::from(self.ptime) * 1000;
        let frames = duration.as_micros().div_ceil(frame);
        self.run(usize::try_from(frames).unwrap_or(usize::MAX))
    }

    /// Steps until nothing plays (or the session ends), for at most `limit`;
    /// true if that happened in time. E.g. the prompts are over and the
    /// handler waits for a digit. As in a call, a source that ends exactly at
    /// a frame's end is seen to end (and [`MediaHandler::play_complete`] runs)
    /// when the next frame is read.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        let end = self.elapsed() + limit;
        loop {
            if self.ended || self.now_playing().is_none() {
                return true;
            }
            if self.elapsed() >= end {
                return false;
            }
            self.run(1);
        }
    }

    /// A DTMF digit arrives (RFC 4733 or SIP INFO): [`MediaHandler::dtmf`].
    pub fn dtmf(&mut self, digit: char) -> &mut Self {
        if !self.ended {
            self.engine.dtmf(digit);
            self.drain();
        }
        self
    }

    /// Each digit of `digits` arrives, in order.
    pub fn press(&mut self, digits: &str) -> &mut Self {
        for d in digits.chars() {
            self.dtmf(d);
        }
        self
    }

    /// The call receives `samples` (8 kHz, decoded), frame by frame; virtual
    /// time does not move.
    pub fn receive(&mut self, samples: &[i16]) -> &mut Self {
        let n = self.samples_per_frame();
        for frame in samples.chunks(n) {
            if self.ended {
                break;
            }
            self.engine.received(frame);
            self.drain();
        }
        self
    }

    /// Applies an action as the application would (`Action::Record`, …).
    pub fn apply(&mut self, action: Action) -> &mut Self {
        if !self.ended {
            self.engine.handler().note(&action);
            self.engine.apply(action);
            self.drain();
        }
        self
    }

    /// The session ends (the peer's BYE): the recording is closed and
    /// [`MediaHandler::session_stopped`] runs. Once only.
    pub fn end(&mut self) -> &mut Self {
        if !self.ended {
            self.ended = true;
            self.engine.stop();
        }
        self
    }

    /// What plays now.
    pub fn now_playing(&self) -> Option<&PlaySource> {
        self.engine.playing().map(|p| &p.source)
    }

    /// Everything the handler (or [`MediaHarness::apply`]) asked to play, in order.
    pub fn plays(&self) -> &[PlaySource] {
        &self.spy().plays
    }

    /// Everything that finished playing ([`MediaHandler::play_complete`]), in order.
    pub fn completed(&self) -> &[PlaySource] {
        &self.spy().completed
    }

    /// The stream errors the handler was told of (a file that cannot be read, …).
    pub fn errors(&self) -> &[String] {
        &self.spy().errors
    }

    /// The digits the handler received.
    pub fn received_dtmf(&self) -> &str {
        &self.spy().received_dtmf
    }

    /// True while a recording is open.
    pub fn is_recording(&self) -> bool {
        self.engine.is_recording()
    }

    /// The DTMF digits the handler sent (`Action::SendDtmf`).
    pub fn dtmf_sent(&self) -> String {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::SendDtmf(d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    /// Everything the engine asked of the session, in order.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// True if the handler hung up (`Action::Hangup`: the call would send BYE).
    pub fn hung_up(&self) -> bool {
        self.outputs.contains(&Output::Hangup)
    }

    /// True if the handler stopped the media (`Action::Stop`).
    pub fn is_stopped(&self) -> bool {
        self.engine.is_stopped()
    }

    /// True once the session is over (hang-up, stop or [`MediaHarness::end`]).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Frames stepped.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Virtual time: frames stepped × ptime.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.frames * u64::from(self.ptime))
    }

    /// Everything the call sent since the start (or [`MediaHarness::clear_audio`]).
    pub fn audio(&self) -> &[i16] {
        &self.audio
    }

    /// Forgets the audio sent so far.
    pub fn clear_audio(&mut self) {
        self.audio.clear();
    }

    /// The handler, to look at its state.
    pub fn handler(&mut self) -> &mut H {
        &mut self.engine.handler().inner
    }

    fn spy(&self) -> &Spy<H> {
        self.engine.handler_ref()
    }
}

impl<H: MediaHandler> Drop for MediaHarness<H> {
    /// Ends the session if the test did not (so that recordings are complete files).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.end();
        }
    }
}

#[cfg(test)]
mod tests;
