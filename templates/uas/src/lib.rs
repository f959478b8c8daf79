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
    /// The prompts of [`default_assets`], and no recording.
    pub fn new() -> Config {
        Config {
            registrar: Registrar::new(),
            assets: default_assets(),
            record: None,
            counts: Counts::default(),
        }
    }
}

/// The prompts built into the program: this project's `assets/welcome.wav`
/// and `assets/menu.wav` as they were when it was compiled.
pub const PROMPTS: [(&str, &[u8]); 2] = [
    ("welcome.wav", include_bytes!("../assets/welcome.wav")),
    ("menu.wav", include_bytes!("../assets/menu.wav")),
];

/// Where the prompts are when `--assets DIR` does not say: an `assets/`
/// folder next to the executable when it holds both (ship your own prompts
/// there), else the built-in [`PROMPTS`], written once into the user's cache
/// (`$XDG_CACHE_HOME` or `~/.cache`, `%LOCALAPPDATA%` on Windows, the OS temp
/// folder failing those) in a folder named after their content, which every
/// run of this build shares: nothing is left behind per run, even by a killed
/// one. The binary needs no project folder: move it, or ship it alone.
pub fn default_assets() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("assets")));
    match beside {
        Some(dir) if PROMPTS.iter().all(|(name, _)| dir.join(name).is_file()) => dir,
        _ => built_in_prompts().clone(),
    }
}

/// The folder [`default_assets`] writes the built-in prompts to, once per process.
fn built_in_prompts() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // FNV-1a of the prompts: other prompts, another folder.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in PROMPTS.iter().flat_map(|(_, bytes)| bytes.iter()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache = var("XDG_CACHE_HOME")
            .or_else(|| var("LOCALAPPDATA"))
            .or_else(|| var("HOME").map(|home| home.join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        let dir = cache
            .join(env!("CARGO_PKG_NAME"))
            .join(format!("prompts-{hash:016x}"));
        if let Err(e) = write_prompts(&dir) {
            eprintln!(
                "{}: cannot write the built-in prompts to {}: {e}",
                env!("CARGO_PKG_NAME"),
                dir.display()
            );
        }
        dir
    })
}

/// Writes each prompt that is missing or differs, through a temporary file
/// and a rename: a run starting at the same time never reads half a prompt.
fn write_prompts(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in PROMPTS {
        let file = dir.join(name);
        if std::fs::read(&file).is_ok_and(|have| have == bytes) {
            continue;
        }
        let part = dir.join(format!("{name}.{}.part", std::process::id()));
        std::fs::write(&part, bytes)?;
        std::fs::rename(&part, &file)?;
    }
    Ok(())
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
        let record = self
            .config
            .record
            .as_ref()
            .map(|dir| call.recording_path(dir));
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
