//! {{project-name}}: a SIP phone built on Parrot.
//!
//! [`{{module}}`] owns a SIP endpoint and places calls with [`{{module}}::call`]:
//! it reports progress as it goes, hangs up when told to (or after a set
//! time), and returns a [`Report`]. Started with [`{{module}}::start_answering`]
//! it also takes calls, and [`{{module}}::register`] makes it reachable
//! through a registrar (the generated server, or a provider).
{%- if media %} [`Audio`] is what a call does with its sound.
{%- endif %} `src/main.rs` is the command line around it.
{% if media %}
use parrot_core::media::{Action, LiveSink, LiveSource, MediaHandler, MediaStats};
{%- endif %}
use parrot_core::message::StatusCode;
{%- if media %}
use parrot_core::ua::SrtpMode;
{%- endif %}
use parrot_core::ua::{
    CallEvent, CallHandle, DefaultHandler, EndReason, Endpoint, EndpointBuilder, Incoming,
    Registration, Reply, SipHandler, UaError,
};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
{%- if media %}
use std::path::PathBuf;
{%- endif %}
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a call should be.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Whom to call: `sip:service@127.0.0.1:5060` (`;transport=tcp` for TCP).
    pub uri: String,
    /// The user part of our From (default: the endpoint's).
    pub from_user: Option<String>,
    /// Hang up after this long once answered; `None`: when told to, or when the peer does.
    pub duration: Option<Duration>,
    /// User name and password for a server that challenges the INVITE (digest).
    pub credentials: Option<(String, String)>,
{%- if media %}
    /// Send this WAV file (unless a microphone is given).
    pub play: Option<PathBuf>,
    /// Record what we hear into this WAV file (8 kHz mono).
    pub record: Option<PathBuf>,
    /// Send this live source (a microphone, see [`open_microphone`]).
    pub microphone: Option<LiveSource>,
    /// Play what we hear on this live sink (speakers, see [`open_speaker`]).
    pub speaker: Option<LiveSink>,
{%- endif %}
}

{%- if media %}
/// How calls protect their audio: SRTP (RFC 3711), its keys carried in the
/// SDP (SDES, RFC 4568). The default is best effort without keys in clear,
/// which over this phone's UDP and TCP means plain RTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Srtp {
    /// `Off`, `BestEffort` (when the peer offers or accepts it) or
    /// `Mandatory` (SRTP or no call: a plain answer is hung up, a plain
    /// offer gets 488).
    pub mode: SrtpMode,
    /// Put the keys in SDP over UDP and TCP, where anyone who can read the
    /// SIP traffic can read them and decrypt the call. Without it keys only
    /// travel over TLS, which this phone does not speak: `BestEffort` then
    /// calls in plain RTP and `Mandatory` cannot call at all.
    pub keys_in_clear: bool,
}

impl Srtp {
    /// Parses `--srtp`'s value: `off`, `best-effort` or `mandatory`.
    pub fn parse_mode(value: &str) -> Result<SrtpMode, String> {
        match value {
            "off" => Ok(SrtpMode::Off),
            "best-effort" => Ok(SrtpMode::BestEffort),
            "mandatory" => Ok(SrtpMode::Mandatory),
            other => Err(format!(
                "--srtp wants off, best-effort or mandatory, got {other:?}"
            )),
        }
    }

    /// An error for a setting that cannot work here: mandatory SRTP with
    /// its keys kept off UDP and TCP, the only transports this phone has.
    pub fn check(&self) -> Result<(), String> {
        if self.mode == SrtpMode::Mandatory && !self.keys_in_clear {
            return Err(
                "--srtp mandatory: this phone speaks UDP and TCP, not TLS, so the \
                 SRTP keys in its SDP would cross the network in clear; add \
                 --srtp-keys-in-clear to accept that (anyone who can read the SIP \
                 traffic can then decrypt the calls)"
                    .into(),
            );
        }
        Ok(())
    }
}
{%- endif %}

/// What the application can tell a call in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Hang up (CANCEL before the answer, BYE after).
    Hangup,
{%- if media %}
    /// Send these DTMF digits (RFC 4733).
    Dtmf(String),
{%- endif %}
}

/// How a call is going, as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The INVITE is out.
    Calling(String),
    /// A provisional response (180 Ringing, 183 Session Progress).
    Provisional(u16, String),
    /// The 2xx: the call is up.
    Answered(u16, String),
{%- if media %}
    /// Audio flows with this codec.
    Audio(String),
{%- endif %}
    /// The peer transferred us (REFER): we call this target, and hang up
    /// the first call once it answers.
    Transferred(String),
    /// The transfer's call failed: we stay on the first call.
    TransferFailed(String),
    /// We are hanging up.
    HangingUp,
    /// The peer hung up.
    PeerHungUp,
}

/// How a call went.
#[derive(Debug, Clone)]
pub struct Report {
    /// The final response to the INVITE (200, 486, 487 when cancelled, …).
    pub status: u16,
    /// Its reason phrase.
    pub reason: String,
    /// True if the call was answered.
    pub answered: bool,
    /// True if the call was answered and our BYE got a 2xx, or the peer hung up.
    pub completed: bool,
    /// Time from the answer to the end.
    pub talk_time: Duration,
{%- if media %}
    /// The media counts at the end (packets, loss, jitter), if audio flowed.
    pub media: Option<MediaStats>,
{%- endif %}
}

/// Why a call could not be placed.
#[derive(Debug)]
pub enum PhoneError {
    /// The SIP side: the endpoint, the URI, no response…
    Sip(UaError),
{%- if media %}
    /// An audio device could not be opened.
    Device(String),
{%- endif %}
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneError::Sip(e) => write!(f, "{e}"),
{%- if media %}
            PhoneError::Device(e) => write!(f, "audio device: {e}"),
{%- endif %}
        }
    }
}

impl std::error::Error for PhoneError {}

impl From<UaError> for PhoneError {
    fn from(e: UaError) -> PhoneError {
        PhoneError::Sip(e)
    }
}

/// What happens to calls made to the phone ([`{{module}}::start_answering`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PhoneEvent {
    /// A call from this URI: answered at once.
    Incoming(String),
    /// The caller transferred us (REFER) to this URI: we call it, then hang
    /// up its call.
    Transferred(String),
    /// That transfer failed, for this reason.
    TransferFailed(String),
    /// The call is over, for this reason.
    Ended(String),
}

/// Takes every call made to the phone: answers it{% if media %} with the audio of
/// its [`CallOptions`] (microphone or file; speaker and/or recording){% endif %},
/// and reports it.
struct Answerer {
{%- if media %}
    audio: CallOptions,
{%- endif %}
    events: mpsc::UnboundedSender<PhoneEvent>,
    /// The call's handle and the endpoint, kept for a transfer.
    call: Option<(CallHandle, Endpoint)>,
}

impl SipHandler for Answerer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let from = call.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let _ = self.events.send(PhoneEvent::Incoming(from));
        self.call = call.handle().cloned().zip(call.endpoint().cloned());
{%- if media %}
        let mut audio = self.audio.clone();
        // A folder: one recording per call, named by its Call-ID.
        if let Some(dir) = audio.record.as_ref().filter(|r| r.is_dir()) {
            audio.record = Some(call.recording_path(dir));
        }
        call.answer(Audio::new(&audio)).await
{%- else %}
        let _ = call;
        Reply::ok()
{%- endif %}
    }

    /// A transfer (REFER, RFC 3515): accepted; the target is called from a
    /// task of its own, the caller told how it goes, and its call hung up
    /// once the new one answers.
    async fn refer(&mut self, req: &Incoming) -> Reply {
        let (Some(target), Some((handle, endpoint))) = (req.refer_to(), self.call.clone()) else {
            return Reply::new(StatusCode::BAD_REQUEST);
        };
        let target = target.to_string();
        let _ = self.events.send(PhoneEvent::Transferred(target.clone()));
        let events = self.events.clone();
{%- if media %}
        let audio = self.audio.clone();
{%- endif %}
        tokio::spawn(async move {
            let dial = match endpoint.dial(&target) {
{%- if media %}
                Ok(dial) => dial.media(Audio::new(&audio)),
{%- else %}
                Ok(dial) => dial,
{%- endif %}
                Err(e) => {
                    let _ = events.send(PhoneEvent::TransferFailed(e.to_string()));
                    return;
                }
            };
            match handle.follow_transfer(dial).await {
                // The new call lives until either side hangs up.
                Ok(mut call) => while call.next_event().await.is_some() {},
                Err(e) => {
                    let _ = events.send(PhoneEvent::TransferFailed(e.to_string()));
                }
            }
        });
        Reply::new(StatusCode::ACCEPTED)
    }

    async fn ended(&mut self, reason: EndReason) {
        let _ = self.events.send(PhoneEvent::Ended(format!("{reason:?}")));
    }
}

/// The phone's endpoint: UDP and TCP on `local`, `public_ip` named instead of
/// ours{% if media %}, SRTP as `srtp` says{% endif %}.
fn builder(
    local: SocketAddr,
    public_ip: Option<IpAddr>,
{%- if media %}
    srtp: Srtp,
{%- endif %}
) -> EndpointBuilder<fn() -> DefaultHandler> {
    let mut builder = Endpoint::builder().udp(local).tcp(local);
    if let Some(ip) = public_ip {
        builder = builder.advertise(ip).advertise_media(ip);
    }
{%- if media %}
    builder = builder
        .srtp(srtp.mode)
        .srtp_keys_over_insecure_transports(srtp.keys_in_clear);
{%- endif %}
    builder
}

/// A phone: a SIP endpoint that places calls. Started with
/// [`{{module}}::start`] calls to it get the endpoint's default answer (480
/// Temporarily Unavailable); with [`{{module}}::start_answering`] it answers them.
#[derive(Debug)]
pub struct {{module}} {
    endpoint: Endpoint,
}

impl {{module}} {
    /// Starts the phone's endpoint on `local` over UDP and TCP (port 0: any free
    /// port; `0.0.0.0` lets it reach other hosts).
    pub async fn start(local: SocketAddr) -> Result<Self, PhoneError> {
{%- if media %}
        Self::start_with(local, None, Srtp::default()).await
{%- else %}
        Self::start_with(local, None).await
{%- endif %}
    }

    /// The same, naming `public_ip` in Via, Contact and SDP instead of our own
    /// address (a phone behind a NAT that forwards its ports){% if media %}, with
    /// `srtp` for its calls' audio{% endif %}.
    pub async fn start_with(
        local: SocketAddr,
        public_ip: Option<IpAddr>,
{%- if media %}
        srtp: Srtp,
{%- endif %}
    ) -> Result<Self, PhoneError> {
{%- if media %}
        let endpoint = builder(local, public_ip, srtp).build().await?;
{%- else %}
        let endpoint = builder(local, public_ip).build().await?;
{%- endif %}
        Ok({{module}} { endpoint })
    }

    /// A phone that answers every call made to it{% if media %} with `audio`'s sound (its
    /// `play`/`microphone`, `record` (a file, or a folder for one file per
    /// call), `speaker`; its `uri` is unused){% endif %}, telling `events` about each.
    pub async fn start_answering(
        local: SocketAddr,
        public_ip: Option<IpAddr>,
{%- if media %}
        srtp: Srtp,
        audio: CallOptions,
{%- endif %}
        events: mpsc::UnboundedSender<PhoneEvent>,
    ) -> Result<Self, PhoneError> {
        // One handler value per call, each with a copy of the options.
        let answerer = move || Answerer {
{%- if media %}
            audio: audio.clone(),
{%- endif %}
            events: events.clone(),
            call: None,
        };
{%- if media %}
        let builder = builder(local, public_ip, srtp);
{%- else %}
        let builder = builder(local, public_ip);
{%- endif %}
        let endpoint = builder.handler(answerer).build().await?;
        Ok({{module}} { endpoint })
    }

    /// Registers `user` at `registrar` (`sip:pbx.example.com`, `sip:192.0.2.1:5060`;
    /// `;transport=tcp` for TCP) with digest credentials if a password is
    /// given. The registration is refreshed before it expires, and a
    /// keep-alive goes to the registrar every 25 s so that a NAT between
    /// keeps the way back open (RFC 5626 §4.4.1); when the registrar sees us
    /// at another address (a NAT), we register again under that one. Keep the
    /// [`Registration`] while the phone should stay reachable, and
    /// `unregister` it at the end.
    pub async fn register(
        &self,
        registrar: &str,
        user: &str,
        password: Option<&str>,
    ) -> Result<Registration, PhoneError> {
        // The address of record: the user at the registrar's host.
        let host = registrar
            .trim_start_matches("sips:")
            .trim_start_matches("sip:")
            .split([';', '>'])
            .next()
            .unwrap_or_default();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        let aor = format!("sip:{user}@{host}");
        let mut register = self
            .endpoint
            .register(registrar, &aor)?
            .expires(600)
            .keepalive(Duration::from_secs(25));
        if let Some(password) = password {
            register = register.credentials(user, password);
        }
        Ok(register.send().await?)
    }

    /// The endpoint, for anything else (`dial` with credentials, `send_request`, …).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Places a call and follows it to its end: until the options' duration
    /// has passed, [`Control::Hangup`] arrives on `control`, or the peer hangs
    /// up. A closed `control` channel is no reason to hang up.
    pub async fn call(
        &self,
        options: &CallOptions,
        mut control: mpsc::Receiver<Control>,
        mut progress: impl FnMut(Progress),
    ) -> Result<Report, PhoneError> {
        let mut dial = self.endpoint.dial(&options.uri)?;
        if let Some(user) = &options.from_user {
            dial = dial.from_user(user);
        }
        if let Some((user, password)) = &options.credentials {
            dial = dial.credentials(user, password);
        }
{%- if media %}
        dial = dial.media(Audio::new(options));
{%- endif %}
        let mut call = dial.send().await?;
        progress(Progress::Calling(options.uri.clone()));
        let mut controls_open = true;

        // Until the final response.
        let answer = loop {
            tokio::select! {
                event = call.next_event() => match event {
                    Some(CallEvent::Provisional(r)) => {
                        let reason = r.reason().into_owned();
                        progress(Progress::Provisional(r.status().as_u16(), reason));
                    }
                    Some(CallEvent::Answered(r)) => break r,
                    Some(CallEvent::Rejected(r)) => {
                        return Ok(Report {
                            status: r.status().as_u16(),
                            reason: r.reason().into_owned(),
                            answered: false,
                            completed: false,
                            talk_time: Duration::ZERO,
{%- if media %}
                            media: None,
{%- endif %}
                        });
                    }
                    Some(CallEvent::Failed(e)) => return Err(e.into()),
{%- if media %}
                    Some(CallEvent::MediaStarted { codec, .. }) => progress(Progress::Audio(codec)),
{%- endif %}
                    Some(CallEvent::Ended) | None => return Err(UaError::CallGone.into()),
                    Some(_) => {}
                },
                c = control.recv(), if controls_open => match c {
                    // The INVITE then ends with 487, a Rejected event.
                    Some(Control::Hangup) => call.cancel().await?,
{%- if media %}
                    Some(Control::Dtmf(_)) => {}
{%- endif %}
                    None => controls_open = false,
                },
            }
        };
        let answered_at = Instant::now();
        let status = answer.status().as_u16();
        let reason = answer.reason().into_owned();
        progress(Progress::Answered(status, reason.clone()));

        // Until one side hangs up.
        let limit = async {
            match options.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(limit);
        let peer_hung_up = loop {
            tokio::select! {
                event = call.next_event() => match event {
{%- if media %}
                    Some(CallEvent::MediaStarted { codec, .. }) => progress(Progress::Audio(codec)),
{%- endif %}
                    // The peer hands us over (RFC 3515): the new call replaces
                    // this one once it answers.
                    Some(CallEvent::Transfer { target }) => {
                        let target = target.to_string();
                        progress(Progress::Transferred(target.clone()));
                        let mut dial = self.endpoint.dial(&target)?;
                        if let Some((user, password)) = &options.credentials {
                            dial = dial.credentials(user, password);
                        }
{%- if media %}
                        dial = dial.media(Audio::new(options));
{%- endif %}
                        match call.follow_transfer(dial).await {
                            Ok(new) => call = new,
                            Err(e) => progress(Progress::TransferFailed(e.to_string())),
                        }
                    }
                    Some(CallEvent::Ended) | None => break true,
                    Some(_) => {}
                },
                c = control.recv(), if controls_open => match c {
                    Some(Control::Hangup) => break false,
{%- if media %}
                    Some(Control::Dtmf(digits)) => call.send_dtmf(&digits).await?,
{%- endif %}
                    None => controls_open = false,
                },
                () = &mut limit => break false,
            }
        };
        let completed = if peer_hung_up {
            progress(Progress::PeerHungUp);
            true
        } else {
            progress(Progress::HangingUp);
            call.hangup().await?.status().is_success()
        };
        Ok(Report {
            status,
            reason,
            answered: true,
            completed,
            talk_time: answered_at.elapsed(),
{%- if media %}
            media: call.media_stats(),
{%- endif %}
        })
    }

    /// Stops the endpoint (open calls get BYE), waiting up to a second.
    pub async fn shutdown(&self) {
        self.endpoint.shutdown(Duration::from_secs(1)).await;
    }
}
{%- if media %}

/// A call's audio: sends the microphone, else the WAV file, else silence;
/// records what it hears and/or plays it on the speaker.
#[derive(Debug)]
pub struct Audio {
    play: Option<PathBuf>,
    record: Option<PathBuf>,
    microphone: Option<LiveSource>,
    speaker: Option<LiveSink>,
}

impl Audio {
    /// The audio for a call with these options (what [`{{module}}::call`] uses).
    pub fn new(options: &CallOptions) -> Audio {
        Audio {
            play: options.play.clone(),
            record: options.record.clone(),
            microphone: options.microphone.clone(),
            speaker: options.speaker.clone(),
        }
    }
}

impl MediaHandler for Audio {
    fn stream_started(&mut self) -> Action {
        let mut action = self.record.clone().map_or(Action::Nothing, Action::Record);
        if let Some(speaker) = &self.speaker {
            action = action.also(Action::Listen(speaker.clone()));
        }
        if let Some(mic) = &self.microphone {
            action = action.also(Action::play_live(mic.clone()));
        } else if let Some(file) = &self.play {
            action = action.also(Action::play(file));
        }
        action
    }
}

/// Opens an input device: `default`, an index or a name from `devices`.
#[cfg(feature = "device")]
pub fn open_microphone(selector: &str) -> Result<LiveSource, PhoneError> {
    use parrot_core::device::{DeviceSelector, open_input};
    let mic = open_input(DeviceSelector::parse(selector))
        .map_err(|e| PhoneError::Device(format!("input {selector:?}: {e}")))?;
    Ok(LiveSource::new(mic))
}

/// Opens an output device: `default`, an index or a name from `devices`.
#[cfg(feature = "device")]
pub fn open_speaker(selector: &str) -> Result<LiveSink, PhoneError> {
    use parrot_core::device::{DeviceSelector, open_output};
    let speaker = open_output(DeviceSelector::parse(selector))
        .map_err(|e| PhoneError::Device(format!("output {selector:?}: {e}")))?;
    Ok(LiveSink::new(speaker))
}
{%- endif %}
