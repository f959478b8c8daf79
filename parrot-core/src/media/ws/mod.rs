//! WebSocket media bridges: a call's audio streamed to a speech or AI
//! service and the service's audio played back into the call, in the two
//! shapes platforms use: Twilio Media Streams ([`twilio`]; JSON frames,
//! base64 µ-law, copied by Telnyx, SignalWire and others) and the Jambonz
//! `listen` verb ([`jambonz`]; a metadata frame, then binary L16, mono or
//! stereo). Each is a [`MediaHandler`], picked in one line:
//!
//! ```no_run
//! # use parrot_core::ua::{Incoming, Reply};
//! # async fn invite(call: &mut Incoming) -> Reply {
//! use parrot_core::media::ws;
//! call.answer(ws::twilio("ws://127.0.0.1:8080/media").call_id(call.call_id().unwrap_or(""))).await
//! # }
//! ```
//!
//! It lives in `media` because it is a media handler built on
//! [`audio_stream`](super::audio_stream()) (frames in, PCM out, marks,
//! `clear`) and needs nothing from the UA: the same bridge serves a call we
//! answer, one we place, or a [`testing`](crate::testing) harness.
//!
//! **When it starts.** The bridge connects when the call's audio starts
//! (after the ACK); the caller's first frames wait in the stream's queue
//! (2 s) meanwhile and go out once connected.
//!
//! **When the service goes away.** A connection that fails, or ends without
//! a normal close, is retried with exponential backoff ([`Reconnect`]:
//! by default 3 more attempts, 200 ms doubling to 2 s); each new connection
//! is a new stream to the service (Twilio's `connected`/`start`, jambonz's
//! metadata frame again). Once the attempts are spent, or when the service
//! ends the stream itself (a close frame with code 1000, or jambonz's
//! `disconnect`), the bridge is [`BridgeState::Lost`] with the reason,
//! logs it at `warn`, and does what [`OnLost`] says: the call goes on with
//! silence (the default), or hangs up (a BYE). What the caller says while
//! no connection is up is dropped and counted ([`BridgeStatus::frames_dropped`]).
//!
//! **Bounded both ways.** Towards the service, frames wait in the stream's
//! queue (2 s) and then in the connection's send queue ([`SEND_QUEUE`]
//! messages, 1 s of frames); when the service reads too slowly the newest
//! frames are dropped and counted, and the call's audio never waits for
//! the network. Towards the call, audio waits in the stream's play queue
//! ([`OUT_SAMPLES`](super::OUT_SAMPLES), 10 s); what does not fit is
//! dropped and counted ([`AudioOut::dropped`]). One message from the
//! service is at most [`MAX_MESSAGE`] bytes; a larger one ends the
//! connection (and is retried like any failure).
//!
//! Messages the service sends that cannot be used (not JSON, a payload that
//! is not base64, an odd number of L16 bytes, an unknown event) are skipped,
//! logged at `debug` and counted ([`BridgeStatus::malformed`]); they never
//! end the call.

mod jambonz;
mod twilio;

pub use jambonz::Listen;

use super::handler::{Action, MediaHandler};
use super::stream::{AudioEvent, AudioIn, AudioOut, AudioStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Messages waiting to be written to the service (50: 1 s of 20 ms frames).
pub const SEND_QUEUE: usize = 50;
/// The largest message accepted from the service (2 MiB: a minute of 16 kHz
/// L16 in one `playAudio`, base64-encoded, fits).
pub const MAX_MESSAGE: usize = 2 << 20;

/// A connection that stayed up this long resets the reconnect attempts.
const STABLE: Duration = Duration::from_secs(10);

/// How a lost connection is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Attempts after a failure before giving up (0: never retry).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each next one.
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect {
            attempts: 3,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl Reconnect {
    /// No retries: the first failure is final.
    pub fn never() -> Reconnect {
        Reconnect {
            attempts: 0,
            ..Reconnect::default()
        }
    }

    /// The wait before retry `n` (1 is the first).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// What the call does once the service is gone for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLost {
    /// The call goes on; the caller hears silence.
    #[default]
    Silence,
    /// The call is hung up (a BYE).
    Hangup,
}

/// Where a bridge is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeState {
    /// The call's audio has not started yet.
    Idle,
    /// Connecting (attempt 1 is the first; more after a failure).
    Connecting {
        /// Which attempt.
        attempt: u32,
    },
    /// Streaming; `connects` counts the connections made so far.
    Connected {
        /// Connections so far (1 unless it reconnected).
        connects: u32,
    },
    /// Given up: the service is gone, [`OnLost`] was applied.
    Lost {
        /// Why (the last error, or how the service ended the stream).
        reason: String,
    },
    /// The call's audio is over and the stream was closed.
    Ended,
}

#[derive(Debug, Default)]
struct Counts {
    frames_sent: AtomicU64,
    frames_dropped: AtomicU64,
    malformed: AtomicU64,
}

/// A bridge's state and counts, for logs and tests (cheap to clone).
#[derive(Debug, Clone)]
pub struct BridgeStatus {
    state: watch::Receiver<BridgeState>,
    counts: Arc<Counts>,
}

impl BridgeStatus {
    /// Where the bridge is now.
    pub fn state(&self) -> BridgeState {
        self.state.borrow().clone()
    }

    /// Waits until the state satisfies `f` (or the bridge is gone), and
    /// returns it.
    pub async fn wait_for(&mut self, mut f: impl FnMut(&BridgeState) -> bool) -> BridgeState {
        let found = self.state.wait_for(|s| f(s)).await.map(|s| s.clone());
        found.unwrap_or_else(|_| self.state())
    }

    /// Frames of the caller's audio sent to the service.
    pub fn frames_sent(&self) -> u64 {
        self.counts.frames_sent.load(Ordering::Relaxed)
    }

    /// Frames of the caller's audio not sent: no connection up, or the
    /// service reading too slowly (its send queue full).
    pub fn frames_dropped(&self) -> u64 {
        self.counts.frames_dropped.load(Ordering::Relaxed)
    }

    /// Messages from the service that could not be used and were skipped.
    pub fn malformed(&self) -> u64 {
        self.counts.malformed.load(Ordering::Relaxed)
    }
}

/// Which protocol a bridge speaks.
#[derive(Debug, Clone)]
enum Kind {
    Twilio,
    Jambonz(Listen),
}

/// What the call is, for the service (Twilio's `start`, jambonz's metadata).
#[derive(Debug, Clone, Default)]
struct CallInfo {
    call_id: String,
    from: String,
    to: String,
    parameters: Vec<(String, String)>,
}

/// A bridge between a call and a WebSocket service: a [`MediaHandler`] for
/// `Incoming::answer` or `Dial::media`. Made by [`twilio`] or [`jambonz`].
pub struct WsBridge {
    url: String,
    kind: Kind,
    call: CallInfo,
    reconnect: Reconnect,
    on_lost: OnLost,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    stream: AudioStream,
    /// The ends the bridge's task takes when the audio starts.
    ends: Option<(AudioIn, AudioOut)>,
    state: Arc<watch::Sender<BridgeState>>,
    status: BridgeStatus,
    /// Dropped (or set) when the call's media stops: the task closes the stream.
    stopped: watch::Sender<bool>,
}

impl std::fmt::Debug for WsBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsBridge")
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("state", &self.status.state())
            .finish_non_exhaustive()
    }
}

/// A bridge speaking Twilio Media Streams to `url` (`ws://` or `wss://`):
/// the caller's audio as `media` events (base64 µ-law, 8 kHz, 20 ms
/// each), digits as `dtmf`; the service's `media` is played, its `mark`s
/// come back once played, `clear` empties what is queued (barge-in).
pub fn twilio(url: impl Into<String>) -> WsBridge {
    WsBridge::new(url.into(), Kind::Twilio, false)
}

/// A bridge speaking the Jambonz `listen` protocol to `url` with these
/// options (subprotocol `audio.jambonz.org`; a metadata text frame, then
/// binary L16 at [`Listen::sample_rate`], mono or stereo).
pub fn jambonz(url: impl Into<String>, listen: Listen) -> WsBridge {
    let stereo = listen.is_stereo();
    WsBridge::new(url.into(), Kind::Jambonz(listen), stereo)
}

impl WsBridge {
    fn new(url: String, kind: Kind, both_ways: bool) -> WsBridge {
        let (stream, input, output) = if both_ways {
            super::audio_stream_both_ways()
        } else {
            super::audio_stream()
        };
        let (tx, rx) = watch::channel(BridgeState::Idle);
        WsBridge {
            url,
            kind,
            call: CallInfo::default(),
            reconnect: Reconnect::default(),
            on_lost: OnLost::default(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            stream,
            ends: Some((input, output)),
            state: Arc::new(tx),
            status: BridgeStatus {
                state: rx,
                counts: Arc::new(Counts::default()),
            },
            stopped: watch::channel(false).0,
        }
    }

    /// The call's id for the service (Twilio `callSid`, jambonz `callSid`
    /// and `callId`): the SIP Call-ID, say.
    pub fn call_id(mut self, id: &str) -> WsBridge {
        id.clone_into(&mut self.call.call_id);
        self
    }

    /// Who calls (jambonz `from`; Twilio `customParameters.from`).
    pub fn from(mut self, from: &str) -> WsBridge {
        from.clone_into(&mut self.call.from);
        self
    }

    /// Who is called (jambonz `to`; Twilio `customParameters.to`).
    pub fn to(mut self, to: &str) -> WsBridge {
        to.clone_into(&mut self.call.to);
        self
    }

    /// One more value for the service: in Twilio's `customParameters`, or
    /// jambonz's metadata (the verb's `metadata` property).
    pub fn parameter(mut self, name: &str, value: &str) -> WsBridge {
        self.call
            .parameters
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// How a lost connection is retried (default [`Reconnect::default`]).
    pub fn reconnect(mut self, reconnect: Reconnect) -> WsBridge {
        self.reconnect = reconnect;
        self
    }

    /// What the call does once the service is gone (default: silence).
    pub fn on_lost(mut self, on_lost: OnLost) -> WsBridge {
        self.on_lost = on_lost;
        self
    }

    /// The TLS client configuration for `wss://` URLs (roots, ALPN); without
    /// it a `wss://` URL fails with [`BridgeError::NoTlsConfig`].
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> WsBridge {
        self.tls = Some(config);
        self
    }

    /// The longest a TCP connect, TLS and WebSocket handshake may take
    /// (default 5 s); longer is a failure like any other.
    pub fn connect_timeout(mut self, timeout: Duration) -> WsBridge {
        self.connect_timeout = timeout;
        self
    }

    /// The bridge's state and counts (a handle that stays valid after the
    /// bridge is given to the call).
    pub fn status(&self) -> BridgeStatus {
        self.status.clone()
    }

    fn protocol(&self) -> Box<dyn Protocol> {
        let c = &self.call;
        match &self.kind {
            Kind::Twilio => {
                let mut params = Map::new();
                for (k, v) in [("from", &c.from), ("to", &c.to)] {
                    if !v.is_empty() {
                        params.insert(k.into(), Value::String(v.clone()));
                    }
                }
                for (k, v) in &c.parameters {
                    params.insert(k.clone(), Value::String(v.clone()));
                }
                Box::new(twilio::Twilio::new(
                    stream_sid(&c.call_id),
                    c.call_id.clone(),
                    Value::Object(params),
                ))
            }
            Kind::Jambonz(listen) => {
                let mut m = Map::new();
                for (k, v) in [
                    ("callSid", &c.call_id),
                    ("callId", &c.call_id),
                    ("from", &c.from),
                    ("to", &c.to),
                ] {
                    m.insert(k.into(), Value::String(v.clone()));
                }
                m.insert("direction".into(), Value::String("inbound".into()));
                for (k, v) in &c.parameters {
                    m.insert(k.clone(), Value::String(v.clone()));
                }
                Box::new(jambonz::Jambonz::new(listen.clone(), m))
            }
        }
    }

    /// Starts the bridge's task (once).
    fn start(&mut self) {
        let Some((input, output)) = self.ends.take() else {
            return;
        };
        let runner = Runner {
            target: Target {
                url: self.url.clone(),
                tls: self.tls.clone(),
                connect_timeout: self.connect_timeout,
            },
            reconnect: self.reconnect,
            on_lost: self.on_lost,
            protocol: self.protocol(),
            input,
            output,
            state: self.state.clone(),
            counts: self.status.counts.clone(),
            stopped: self.stopped.subscribe(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(runner.run());
            }
            Err(_) => {
                let reason = BridgeError::NoRuntime.to_string();
                tracing::warn!(url = %self.url, %reason, "WebSocket bridge not started");
                if self.on_lost == OnLost::Hangup {
                    runner.output.hang_up();
                }
                self.state.send_replace(BridgeState::Lost { reason });
            }
        }
    }
}

impl Drop for WsBridge {
    fn drop(&mut self) {
        let _ = self.stopped.send(true);
    }
}

impl MediaHandler for WsBridge {
    fn stream_started(&mut self) -> Action {
        self.start();
        self.stream.stream_started()
    }

    fn dtmf(&mut self, digit: char) -> Action {
        self.stream.dtmf(digit)
    }

    fn poll(&mut self) -> Action {
        self.stream.poll()
    }

    fn session_stopped(&mut self) {
        let _ = self.stopped.send(true);
        self.stream.session_stopped();
    }
}

/// A Twilio-style stream id: `MZ` and 32 hex digits, from the call's id and
/// a process-wide counter (unique per bridge, no randomness needed).
fn stream_sid(call_id: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    let mut h = state.build_hasher();
    h.write(call_id.as_bytes());
    h.write_u64(n);
    format!("MZ{:016x}{n:016x}", h.finish())
}

/// Why a connection to the service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `wss://` URL, but no TLS client configuration ([`WsBridge::tls`]).
    #[error("{0} needs TLS: give the bridge a rustls ClientConfig (WsBridge::tls)")]
    NoTlsConfig(String),
    /// TCP connect, TLS or WebSocket handshake failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The service did not accept the subprotocol the protocol needs.
    #[error("{url} did not accept the WebSocket subprotocol {subprotocol}")]
    Subprotocol {
        /// The URL.
        url: String,
        /// The subprotocol asked for.
        subprotocol: &'static str,
    },
    /// The bridge was started outside a tokio runtime.
    #[error("no tokio runtime to run the WebSocket bridge in")]
    NoRuntime,
}

/// What a protocol asks of the call.
#[derive(Debug)]
pub(crate) enum ToCall {
    /// Play these samples (mono, at this rate).
    Audio(Vec<i16>, u32),
    /// Tell the service when what is queued now has played.
    Mark(String),
    /// Drop what is queued (barge-in).
    Clear,
    /// The service ends the stream.
    End,
}

/// One wire protocol, sans-IO: the messages for what the call does, and
/// what the service's messages ask for.
pub(crate) trait Protocol: Send {
    /// The WebSocket subprotocol to ask for, if any.
    fn subprotocol(&self) -> Option<&'static str>;
    /// The first messages of a connection (state restarts).
    fn opening(&mut self) -> Vec<Message>;
    /// A frame the call played to the caller.
    fn played(&mut self, samples: &[i16]) {
        let _ = samples;
    }
    /// A frame the caller said (8 kHz), at this position in samples.
    fn heard(&mut self, samples: &[i16], at: u64) -> Option<Message>;
    /// A digit the caller pressed.
    fn dtmf(&mut self, digit: char) -> Option<Message>;
    /// A mark the service asked for has played.
    fn mark_done(&mut self, name: &str) -> Option<Message>;
    /// The last messages when the call's audio ends.
    fn closing(&mut self) -> Vec<Message>;
    /// A message from the service; `Err` when it cannot be used.
    fn receive(&mut self, msg: &Message, out: &mut Vec<ToCall>) -> Result<(), String>;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// Where to connect.
struct Target {
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
}

impl Target {
    async fn connect(&self, subprotocol: Option<&'static str>) -> Result<Ws, BridgeError> {
        let url = &self.url;
        let invalid = |reason: &str| BridgeError::InvalidUrl {
            url: url.clone(),
            reason: reason.to_owned(),
        };
        let failed = |reason: String| BridgeError::Connect {
            url: url.clone(),
            reason,
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| invalid(&e.to_string()))?;
        let uri = request.uri().clone();
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(invalid("the scheme must be ws or wss")),
        };
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host"))?;
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        if let Some(p) = subprotocol {
            request
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        let tls = match (secure, &self.tls) {
            (false, _) => None,
            (true, Some(c)) => Some(c.clone()),
            (true, None) => return Err(BridgeError::NoTlsConfig(url.clone())),
        };
        let deadline = Instant::now() + self.connect_timeout;
        let timed_out = || failed(format!("no answer within {:?}", self.connect_timeout));
        let tcp = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect((&*host, port)))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| failed(e.to_string()))?;
        // Small frames every 20 ms: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if let Some(config) = tls {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| invalid(&e.to_string()))?;
            let tls = tokio::time::timeout_at(
                deadline,
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| failed(format!("TLS: {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (ws, response) = tokio::time::timeout_at(
            deadline,
            tokio_tungstenite::client_async_with_config(request, io, Some(config)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| failed(e.to_string()))?;
        if let Some(p) = subprotocol {
            let accepted = response
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(p));
            if !accepted {
                return Err(BridgeError::Subprotocol {
                    url: url.clone(),
                    subprotocol: p,
                });
            }
        }
        Ok(ws)
    }
}

/// How a connection ended.
enum Ended {
    /// The call's audio is over (we closed the stream).
    Call,
    /// The service ended the stream on purpose: not retried.
    Service(String),
    /// It failed: retried.
    Failed(String),
}

/// The bridge's task: connects, streams, reconnects, gives up.
struct Runner {
    target: Target,
    reconnect: Reconnect,
    on_lost: OnLost,
    protocol: Box<dyn Protocol>,
    input: AudioIn,
    output: AudioOut,
    state: Arc<watch::Sender<BridgeState>>,
    counts: Arc<Counts>,
    stopped: watch::Receiver<bool>,
}

impl Runner {
    async fn run(mut self) {
        let url = self.target.url.clone();
        let mut failures = 0u32;
        let mut connects = 0u32;
        let reason = loop {
            self.state.send_replace(BridgeState::Connecting {
                attempt: failures + 1,
            });
            let subprotocol = self.protocol.subprotocol();
            let connected = tokio::select! {
                r = self.target.connect(subprotocol) => r,
                () = stopped(&mut self.stopped) => break None,
            };
            let outcome = match connected {
                Ok(ws) => {
                    connects += 1;
                    tracing::debug!(%url, connects, "WebSocket bridge connected");
                    self.state.send_replace(BridgeState::Connected { connects });
                    let began = Instant::now();
                    let ended = self.stream(ws).await;
                    if began.elapsed() >= STABLE {
                        failures = 0;
                    }
                    ended
                }
                Err(e @ (BridgeError::InvalidUrl { .. } | BridgeError::NoTlsConfig(_))) => {
                    // Retrying cannot fix the configuration.
                    break Some(e.to_string());
                }
                Err(e) => Ended::Failed(e.to_string()),
            };
            match outcome {
                Ended::Call => break None,
                Ended::Service(why) => break Some(why),
                Ended::Failed(why) => {
                    failures += 1;
                    if failures > self.reconnect.attempts {
                        break Some(why);
                    }
                    let wait = self.reconnect.delay(failures);
                    tracing::info!(%url, error = %why, retry_in = ?wait, "WebSocket bridge lost its connection");
                    if !self.idle_for(wait).await {
                        break None;
                    }
                }
            }
        };
        if let Some(reason) = reason {
            tracing::warn!(%url, %reason, on_lost = ?self.on_lost, "WebSocket service gone");
            if self.on_lost == OnLost::Hangup {
                self.output.hang_up();
            }
            self.state.send_replace(BridgeState::Lost { reason });
            // The call goes on (or is being hung up): keep its queue drained.
            while self.idle_for(Duration::from_secs(3600)).await {}
        }
        self.state.send_replace(BridgeState::Ended);
    }

    /// Drops what the caller says for `wait`; false when the call ended.
    async fn idle_for(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                ev = self.input.recv() => match ev {
                    None => return false,
                    Some(AudioEvent::Audio { .. }) => {
                        self.counts.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                },
                () = stopped(&mut self.stopped) => return false,
                () = tokio::time::sleep_until(until) => return true,
            }
        }
    }

    /// One connection, until it or the call ends.
    async fn stream(&mut self, ws: Ws) -> Ended {
        let (sink, mut source) = ws.split();
        let (tx, rx) = mpsc::channel::<Message>(SEND_QUEUE);
        let writer = tokio::spawn(write_all(sink, rx));
        let mut commands = Vec::new();
        // The service gets whole 20 ms frames at the stream's rate, whatever
        // the call's frames come as (a G.722 call resampled to an 8 kHz
        // stream gives 152, then 160, …): samples wait here for the rest.
        let frame = usize::try_from(self.input.rate() / 50)
            .unwrap_or(160)
            .max(1);
        let mut pending: Vec<i16> = Vec::with_capacity(2 * frame);
        let mut pending_at = 0u64;
        let ended = 'conn: {
            for m in self.protocol.opening() {
                if tx.send(m).await.is_err() {
                    break 'conn Ended::Failed("the connection closed at once".into());
                }
            }
            loop {
                tokio::select! {
                    ev = self.input.recv() => {
                        let msg = match ev {
                            None => break 'conn Ended::Call,
                            Some(AudioEvent::Audio { samples, at }) => {
                                if pending.is_empty() {
                                    pending_at = at;
                                }
                                pending.extend_from_slice(&samples);
                                while pending.len() >= frame {
                                    let m = self.protocol.heard(&pending[..frame], pending_at);
                                    pending.drain(..frame);
                                    pending_at += frame as u64;
                                    match m.map(|m| tx.try_send(m)) {
                                        Some(Ok(())) => {
                                            self.counts.frames_sent.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Some(Err(mpsc::error::TrySendError::Full(_))) => {
                                            self.counts.frames_dropped.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                                            break 'conn Ended::Failed(String::new());
                                        }
                                        None => {}
                                    }
                                }
                                continue;
                            }
                            Some(AudioEvent::Played { samples, .. }) => {
                                self.protocol.played(&samples);
                                continue;
                            }
                            Some(AudioEvent::Dtmf(d)) => self.protocol.dtmf(d),
                            Some(AudioEvent::Mark(name)) => self.protocol.mark_done(&name),
                        };
                        // Digits and marks are few: they wait for room.
                        if let Some(m) = msg {
                            if tx.send(m).await.is_err() {
                                break 'conn Ended::Failed(String::new());
                            }
                        }
                    }
                    msg = source.next() => {
                        let msg = match msg {
                            None => break 'conn Ended::Failed("the connection closed without a close frame".into()),
                            Some(Err(e)) => break 'conn Ended::Failed(e.to_string()),
                            Some(Ok(Message::Close(frame))) => {
                                break 'conn match frame {
                                    Some(f) if f.code == CloseCode::Normal => Ended::Service(format!(
                                        "the service closed the stream (1000 {})", f.reason
                                    )),
                                    Some(f) => Ended::Failed(format!(
                                        "the service closed the connection ({} {})",
                                        u16::from(f.code), f.reason
                                    )),
                                    None => Ended::Failed("the service closed the connection (no status)".into()),
                                };
                            }
                            Some(Ok(m)) => m,
                        };
                        commands.clear();
                        if let Err(e) = self.protocol.receive(&msg, &mut commands) {
                            self.counts.malformed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(url = %self.target.url, error = %e, "unusable message from the service, skipped");
                        }
                        for c in commands.drain(..) {
                            match c {
                                ToCall::Audio(pcm, rate) => self.output.send(&pcm, rate),
                                ToCall::Mark(name) => self.output.mark(&name),
                                ToCall::Clear => self.output.clear(),
                                ToCall::End => break 'conn Ended::Service(
                                    "the service ended the stream (disconnect)".into(),
                                ),
                            }
                        }
                    }
                    () = stopped(&mut self.stopped) => break 'conn Ended::Call,
                }
            }
        };
        if matches!(ended, Ended::Call) {
            for m in self.protocol.closing() {
                let _ = tx.send(m).await;
            }
            let _ = tx
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "call ended".into(),
                })))
                .await;
        }
        drop(tx);
        // The writer flushes what is queued (and the close), at most 1 s.
        let written = tokio::time::timeout(Duration::from_secs(1), writer).await;
        match ended {
            Ended::Failed(why) if why.is_empty() => match written {
                Ok(Ok(Err(e))) => Ended::Failed(e),
                _ => Ended::Failed("the connection failed".into()),
            },
            other => other,
        }
    }
}

/// Writes messages until the channel closes or the connection fails.
async fn write_all(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<Message>,
) -> Result<(), String> {
    while let Some(m) = rx.recv().await {
        let close = matches!(m, Message::Close(_));
        sink.send(m).await.map_err(|e| e.to_string())?;
        if close {
            return Ok(());
        }
    }
    sink.close().await.map_err(|e| e.to_string())
}

/// Resolves once the call's media stopped (or the bridge was dropped).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let r = Reconnect::default();
        let ms = |n| r.delay(n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [200, 400, 800, 1600, 2000]
        );
        assert_eq!(r.delay(40), Duration::from_secs(2));
    }

    #[test]
    fn stream_sids_differ_per_bridge() {
        let (a, b) = (stream_sid("x"), stream_sid("x"));
        assert_ne!(a, b);
        assert!(a.starts_with("MZ") && a.len() == 34, "{a}");
    }

    #[tokio::test]
    async fn a_url_that_cannot_work_is_lost_at_once_with_the_reason() {
        for (url, needle) in [
            ("http://example.invalid/", "scheme"),
            ("wss://127.0.0.1:1/", "needs TLS"),
        ] {
            let bridge = twilio(url).on_lost(OnLost::Hangup);
            let mut status = bridge.status();
            let mut engine = crate::media::MediaEngine::new(bridge);
            engine.start();
            let state = status
                .wait_for(|s| matches!(s, BridgeState::Lost { .. }))
                .await;
            let BridgeState::Lost { reason } = state else {
                panic!("{state:?}")
            };
            assert!(reason.contains(needle), "{reason}");
            let mut f = [0i16; 160];
            engine.next_frame(&mut f);
            assert_eq!(engine.poll_output(), Some(crate::media::Output::Hangup));
        }
    }
}
