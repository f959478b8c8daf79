//! {{project-name}}: a SIP phone server.
//!
//! ```text
//! cargo run -- [--bind ADDR] [--port PORT] [--public-ip IP] [--users FILE]{% if media %} [--record DIR] [--assets DIR]
//!     [--srtp off|best-effort|mandatory] [--srtp-keys-in-clear]{% endif %}
//! ```
//! Listens on ADDR:PORT over UDP and TCP (default {{bind}}:{{port}}; the
//! environment variables PARROT_BIND, PARROT_PORT and PARROT_PUBLIC_IP override
//! the defaults, the flags override both) until Ctrl-C, then prints its counts.
//! Bound to 0.0.0.0, it answers each request from (and names in Contact and
//! SDP) the address the request came to. `--public-ip` is for a host behind a
//! NAT that forwards the SIP port and the RTP ports (16384-32767/udp) to it:
//! that address goes in Via, Contact and SDP instead.
//!
//! Phones register with it (`REGISTER`); with `--users FILE` (lines of
//! `user password`) REGISTER and INVITE need those credentials (digest),
//! without it anyone may register as anyone: use it on a public host.
//!
//! It logs to stderr: by default what parrot-core reports at `info` (the
//! sockets it listens on, each call's media starting and stopping with its
//! packet counts, inside a `call{call_id=...}` span) and every warning; set
//! `RUST_LOG` to choose (`RUST_LOG=debug`, `RUST_LOG=parrot_core=warn`).
{%- if media %}
//!
//! `--srtp` says whether calls encrypt their audio (SRTP, RFC 3711, with the
//! keys in the SDP, RFC 4568): `best-effort` (the default) when the caller
//! offers or accepts it, `mandatory` or no call (488), `off` never. Keys in
//! SDP are as secret as the signaling that carries them, and this server
//! speaks UDP and TCP, not TLS: it puts keys in its SDP only with
//! `--srtp-keys-in-clear`, which says what it costs (anyone who can read the
//! SIP traffic can decrypt the calls; it still keeps out whoever sees only
//! the media). `mandatory` without it is refused at startup; `best-effort`
//! without it answers in plain RTP.
//!
//! The welcome and menu prompts are built into the binary, which can be moved
//! or shipped alone (see `default_assets`); `--assets DIR` plays
//! `DIR/welcome.wav` and `DIR/menu.wav` instead.
{%- endif %}

use parrot_core::ua::Endpoint;
{%- if media %}
use parrot_core::ua::SrtpMode;
{%- endif %}
use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr};
{%- if media %}
use std::path::PathBuf;
{%- endif %}
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

use {{crate_name}}::Config;

use {{crate_name}}::{{module}};

/// jemalloc, with its background thread: memory a flood of calls took goes
/// back to the OS within seconds of the calls ending (glibc's malloc kept
/// 200 MiB after one). With the `jemalloc` feature (`--features jemalloc`).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEFAULT_BIND: &str = "{{bind}}";
const DEFAULT_PORT: &str = "{{port}}";
/// The program's name, for messages.
const NAME: &str = env!("CARGO_PKG_NAME");
/// The log filter when `RUST_LOG` is not set. A server's operator wants one
/// line per call event with its Call-ID (parrot-core at `info`: a few lines a
/// call) and every warning; other libraries (DNS, TLS) only when they warn.
const DEFAULT_LOG: &str = "warn,parrot_core=info,{{crate_name}}=info";
const USAGE: &str = "\
usage: {{project-name}} [--bind ADDR] [--port PORT] [--public-ip IP] [--users FILE]{% if media %} [--record DIR] [--assets DIR]
       [--srtp off|best-effort|mandatory] [--srtp-keys-in-clear]{% endif %}";

/// The command line, after the environment and the defaults.
struct Options {
    addr: SocketAddr,
    public_ip: Option<IpAddr>,
    /// User name → password, from `--users FILE`.
    users: Option<HashMap<String, String>>,
{%- if media %}
    record: Option<PathBuf>,
    assets: PathBuf,
    /// `--srtp`: whether calls use SRTP.
    srtp: SrtpMode,
    /// `--srtp-keys-in-clear`: SRTP keys may go in SDP over UDP and TCP.
    srtp_keys_in_clear: bool,
{%- endif %}
}

fn parse_options() -> Result<Options, String> {
    let mut bind = std::env::var("PARROT_BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let mut port = std::env::var("PARROT_PORT").unwrap_or_else(|_| DEFAULT_PORT.to_owned());
    let mut public_ip = std::env::var("PARROT_PUBLIC_IP")
        .ok()
        .filter(|v| !v.is_empty());
    let mut users = None;
{%- if media %}
    let mut record = None;
    let mut assets = {{crate_name}}::default_assets();
    let mut srtp = SrtpMode::BestEffort;
    let mut srtp_keys_in_clear = false;
{%- endif %}
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => bind = value()?,
            "--port" => port = value()?,
            "--public-ip" => public_ip = Some(value()?),
            "--users" => users = Some(read_users(&value()?)?),
{%- if media %}
            "--record" => record = Some(PathBuf::from(value()?)),
            "--assets" => assets = PathBuf::from(value()?),
            "--srtp" => srtp = parse_srtp(&value()?)?,
            "--srtp-keys-in-clear" => srtp_keys_in_clear = true,
{%- endif %}
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let ip: IpAddr = bind
        .parse()
        .map_err(|_| format!("--bind wants an IP address, got {bind:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("--port wants a port number, got {port:?}"))?;
    let public_ip = match public_ip {
        Some(p) => Some(
            p.parse::<IpAddr>()
                .map_err(|_| format!("--public-ip wants an IP address, got {p:?}"))?,
        ),
        None => None,
    };
{%- if media %}
    if srtp == SrtpMode::Mandatory && !srtp_keys_in_clear {
        return Err(
            "--srtp mandatory: this server speaks UDP and TCP, not TLS, so the \
             SRTP keys in its SDP would cross the network in clear; add \
             --srtp-keys-in-clear to accept that (anyone who can read the SIP \
             traffic can then decrypt the calls)"
                .into(),
        );
    }
    if let Some(dir) = &record {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--record: cannot create {}: {e}", dir.display()))?;
    }
    for prompt in ["welcome.wav", "menu.wav"] {
        let file = assets.join(prompt);
        parrot_core::media::WavSource::open(&file)
            .map_err(|e| format!("cannot read {}: {e} (see --assets)", file.display()))?;
    }
{%- endif %}
    Ok(Options {
        addr: SocketAddr::new(ip, port),
        public_ip,
        users,
{%- if media %}
        record,
        assets,
        srtp,
        srtp_keys_in_clear,
{%- endif %}
    })
}
{%- if media %}

/// The value of `--srtp`.
fn parse_srtp(value: &str) -> Result<SrtpMode, String> {
    match value {
        "off" => Ok(SrtpMode::Off),
        "best-effort" => Ok(SrtpMode::BestEffort),
        "mandatory" => Ok(SrtpMode::Mandatory),
        other => Err(format!(
            "--srtp wants off, best-effort or mandatory, got {other:?}"
        )),
    }
}
{%- endif %}

/// Logs to stderr through `tracing-subscriber`, filtered by `RUST_LOG`
/// (else [`DEFAULT_LOG`]), with the spans each line happened in: parrot-core
/// runs each call in a span `call{call_id=...}`.
fn init_logging() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("{NAME}: RUST_LOG={v:?} ignored ({e}); logging {DEFAULT_LOG}");
            EnvFilter::new(DEFAULT_LOG)
        }),
        _ => EnvFilter::new(DEFAULT_LOG),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `user password` per line; blank lines and `#` comments are skipped.
fn read_users(path: &str) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--users {path}: {e}"))?;
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [user, password] => {
                users.insert(user.to_owned(), password.to_owned());
            }
            _ => {
                return Err(format!(
                    "--users {path}:{}: want `user password`, got {line:?}",
                    n + 1
                ));
            }
        }
    }
    Ok(users)
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let options = match parse_options() {
        Ok(o) => o,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{NAME}: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
{%- if media %}
    let config = Arc::new(Config {
        assets: options.assets,
        record: options.record,
        ..Config::new()
    });
{%- else %}
    let config = Arc::new(Config::new());
{%- endif %}
    let addr = options.addr;
    let handlers = config.clone();
    let mut builder = Endpoint::builder()
        .udp(addr)
        .tcp(addr)
        .registrar(config.registrar.clone());
{%- if media %}
    builder = builder
        .srtp(options.srtp)
        .srtp_keys_over_insecure_transports(options.srtp_keys_in_clear);
{%- endif %}
    if let Some(ip) = options.public_ip {
        builder = builder.advertise(ip).advertise_media(ip);
    }
    if let Some(users) = options.users {
        builder = builder.authenticate(NAME, move |user| users.get(user).cloned());
    }
    let endpoint = match builder
        .handler(move || {{module}}::new(handlers.clone()))
        .build()
        .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{NAME}: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut reach = addr;
    if let Some(ip) = options.public_ip {
        reach.set_ip(ip);
    } else if reach.ip().is_unspecified() {
        reach.set_ip(IpAddr::from([127, 0, 0, 1]));
    }
    println!("{NAME}: listening on {addr} (UDP and TCP); try sip:service@{reach}");
    println!("{NAME}: Ctrl-C to stop");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("{NAME}: cannot wait for Ctrl-C: {e}");
    }
    endpoint.shutdown(Duration::from_secs(2)).await;
    println!("{NAME}: stopped; calls: {}", config.counts);
    ExitCode::SUCCESS
}
