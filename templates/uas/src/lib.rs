//! {{project-name}}: a SIP phone server built on Parrot.
//!
//! [`{{module}}`] decides what happens to each call (one value per call, so
//! `&mut self` is that call's state). Phones register with the server's
//! registrar ([`Config::registrar`]){% if media %}, and a call to a registered user is bridged
//! to that user's phone{% endif %}.
{%- if media %} [`Menu`] is what an answered call hears: a welcome,
//! then a menu driven by DTMF digits.
{%- endif %} `src/main.rs` puts them on the network.
{% if media %}
use parrot_core::media::{Action, MediaHandler, PlaySource};
{%- endif %}
use parrot_core::ua::{EndReason, Incoming, Registrar, Reply, SipHandler};
use std::fmt;
{%- if media %}
use std::path::{Path, PathBuf};
{%- endif %}
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What every call shares.
#[derive(Debug)]
pub struct Config {
    /// Who is registered where (REGISTER binds a user to a phone).
    pub registrar: Registrar,
{%- if media %}
    /// The folder holding `welcome.wav` and `menu.wav`.
    pub assets: PathBuf,
    /// When set, each answered caller is recorded to `DIR/CALL-ID.wav`.
    pub record: Option<PathBuf>,
{%- endif %}
    /// Counts across all calls.
    pub counts: Counts,
}
{%- if media %}

impl Config {
    /// The prompts shipped with the project, and no recording.
    pub fn new() -> Config {
        Config {
            registrar: Registrar::new(),
            assets: default_assets(),
            record: None,
            counts: Counts::default(),
        }
    }
}

/// `assets/` in this project's folder, found at build time. Run the binary
/// from elsewhere (or ship it) with `--assets DIR`.
pub fn default_assets() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets"))
}
{%- else %}

impl Config {
    /// Fresh counts.
    pub fn new() -> Config {
        Config {
            registrar: Registrar::new(),
            counts: Counts::default(),
        }
    }
}
{%- endif %}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// Calls answered, calls refused, answered calls over.
#[derive(Debug, Default)]
pub struct Counts {
    /// INVITEs answered 2xx.
    pub answered: AtomicU64,
    /// INVITEs refused (486, 403, …).
    pub rejected: AtomicU64,
    /// Answered calls that have ended (BYE either way).
    pub ended: AtomicU64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered, {} rejected, {} ended",
            self.answered.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            self.ended.load(Ordering::Relaxed)
        )
    }
}

/// The call handler: routes each INVITE by who calls whom.
///
/// | From    | To                 | Reply                                   |
/// |---------|--------------------|-----------------------------------------|{% if media %}
/// | anyone  | a registered user  | bridged to the user's phone (its answer)|{% endif %}
/// | alice   | bob                | 200 OK (answered)                       |
/// | bob     | alice              | 486 Busy Here                           |
/// | anyone  | service            | 200 OK (answered)                       |
/// | anyone  | anyone             | 403 Forbidden                           |
///
/// Everything else is the defaults' and the endpoint's job: BYE gets 200,
/// CANCEL gets 200 and the INVITE 487, OPTIONS gets 200 with Allow, Accept and
/// Supported, ACKs and retransmissions are matched, DTMF sent as SIP INFO
/// (`application/dtmf-relay`) reaches the media handler. Override `bye`,
/// `options`, `info`, `message`, … from [`SipHandler`] to change them.
#[derive(Debug)]
pub struct {{module}} {
    config: Arc<Config>,
    answered: bool,
}

impl {{module}} {
    /// A handler for one call; the endpoint makes one per call with its factory.
    pub fn new(config: Arc<Config>) -> {{module}} {
        {{module}} {
            config,
            answered: false,
        }
    }

    fn count(&mut self, reply: &Reply) {
        let counts = &self.config.counts;
        if reply.status().is_success() {
            self.answered = true;
            counts.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers the call.
    async fn answer(&self, call: &mut Incoming) -> Reply {
{%- if media %}
        // 200 with the SDP answer; audio starts when the caller's ACK arrives.
        let record = self.config.record.as_ref().map(|dir| {
            let id: String = call
                .call_id()
                .unwrap_or("call")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            dir.join(format!("{id}.wav"))
        });
        call.answer(Menu::new(&self.config.assets, record)).await
{%- else %}
        // Signaling only: a 200 without SDP. A caller that put an SDP offer in
        // its INVITE expects an answer in the 200: use `call.answer(handler)`
        // with a `parrot_core::media::MediaHandler` for calls with audio.
        let _ = call;
        Reply::ok()
{%- endif %}
    }
}

impl SipHandler for {{module}} {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
{%- if media %}
        // A registered user's phone: the call is bridged to it, on the flow its
        // REGISTER came on (so that a phone behind a NAT is reached too).
        let callee = call.uri_user().unwrap_or_default().to_owned();
        if let Some(phone) = self.config.registrar.contacts(&callee).into_iter().next() {
            let reply = match call.endpoint().cloned() {
                Some(endpoint) => match endpoint.dial(&phone.contact.to_string()) {
                    Ok(dial) => parrot_core::ua::bridge(call, dial.flow(&phone.flow)).await,
                    Err(_) => Reply::not_found(),
                },
                None => Reply::server_error(),
            };
            self.count(&reply);
            return reply;
        }
{%- endif %}
        let reply = match (call.from_user(), call.to_user()) {
            (Some("alice"), Some("bob")) => self.answer(call).await,
            (Some("bob"), Some("alice")) => Reply::busy_here(),
            (_, Some("service")) => self.answer(call).await,
            _ => Reply::forbidden(),
        };
        self.count(&reply);
        reply
    }

    async fn ended(&mut self, reason: EndReason) {
        if self.answered {
            self.config.counts.ended.fetch_add(1, Ordering::Relaxed);
        }
        let _ = reason; // PeerHangup, LocalHangup (digit 9), Cancelled, AckTimeout, Shutdown…
    }
}
{%- if media %}

/// What an answered call hears: `welcome.wav`, then `menu.wav`; then digits
/// choose: 1 plays a tone, 2 the welcome again, 9 hangs up, anything else the
/// menu. Records the caller when given a file.
#[derive(Debug)]
pub struct Menu {
    welcome: PathBuf,
    menu: PathBuf,
    record: Option<PathBuf>,
}

impl Menu {
    /// The prompts from `assets`; the caller recorded to `record` if set.
    pub fn new(assets: &Path, record: Option<PathBuf>) -> Menu {
        Menu {
            welcome: assets.join("welcome.wav"),
            menu: assets.join("menu.wav"),
            record,
        }
    }
}

impl MediaHandler for Menu {
    fn stream_started(&mut self) -> Action {
        let welcome = Action::play(&self.welcome);
        match &self.record {
            Some(file) => Action::Record(file.clone()).also(welcome),
            None => welcome,
        }
    }

    fn play_complete(&mut self, played: &PlaySource) -> Action {
        match played {
            // After the welcome or the tone, the menu; after the menu, wait for a digit.
            PlaySource::File(f) if *f == self.welcome => Action::play(&self.menu),
            PlaySource::Tone(..) => Action::play(&self.menu),
            _ => Action::Nothing,
        }
    }

    fn dtmf(&mut self, digit: char) -> Action {
        match digit {
            '1' => Action::tone(440.0, 1.0),
            '2' => Action::play(&self.welcome),
            '9' => Action::Hangup, // BYE from our side
            _ => Action::play(&self.menu),
        }
    }
}
{%- endif %}
