//! {{project-name}}: a SIP phone.
//!
//! ```text
//! cargo run -- call SIP-URI [--from USER] [--user USER --password SECRET] [--duration SECS]
//!     [--local ADDR:PORT] [--public-ip IP]{% if media %} [--play FILE.wav] [--record FILE.wav]
//!     [--input-device SEL] [--output-device SEL]
//!     [--srtp off|best-effort|mandatory] [--srtp-keys-in-clear]{% endif %}
//! cargo run -- listen [--register REGISTRAR --user USER [--password SECRET]]
//!     [--local ADDR:PORT] [--public-ip IP]{% if media %} [--play FILE.wav] [--record FILE-OR-DIR]
//!     [--input-device SEL] [--output-device SEL]
//!     [--srtp off|best-effort|mandatory] [--srtp-keys-in-clear]
//! cargo run -- devices{% endif %}
//! ```
//! `call` calls SIP-URI and prints how it goes; Enter or Ctrl-C hangs up (or
//! `--duration` does). `--user`/`--password` answer a server's challenge.
//! `listen` takes calls: it registers USER at REGISTRAR (`sip:HOST[:PORT]`,
//! e.g. the generated server; kept alive through a NAT), answers every
//! call, and unregisters on Ctrl-C.
{%- if media %} Digits typed before Enter are sent as DTMF. With the
//! `device` feature (on by default) the call uses the default microphone and
//! speakers unless `--play`/`--record` or other devices are given; `devices`
//! lists them.
//!
//! `--srtp` says whether calls encrypt their audio (SRTP, RFC 3711, keys in
//! the SDP per RFC 4568): `best-effort` (the default), `mandatory` (SRTP or
//! no call) or `off`. This phone speaks UDP and TCP, not TLS, so it puts keys
//! in its SDP only with `--srtp-keys-in-clear` (anyone who can read the SIP
//! traffic can then decrypt the call); without it `best-effort` calls in
//! plain RTP and `mandatory` is refused before anything is sent.
{%- endif %}
//!
//! Its progress goes to stdout; logs go to stderr, by default only warnings
//! (the terminal is the phone's screen). `RUST_LOG=info` adds what parrot-core
//! reports (media starting and stopping with packet counts; the calls `listen`
//! answers inside a `call{call_id=...}` span), `RUST_LOG=debug` much more.

use std::io::BufRead;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
{%- if media %}
use std::path::PathBuf;
{%- endif %}
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;
{% if media %}
use {{crate_name}}::{CallOptions, Control, PhoneEvent, Progress, Srtp};
{%- else %}
use {{crate_name}}::{CallOptions, Control, PhoneEvent, Progress};
{%- endif %}

use {{crate_name}}::{{module}};

/// The program's name, for messages.
const NAME: &str = env!("CARGO_PKG_NAME");
/// The log filter when `RUST_LOG` is not set: warnings (this project's own
/// `info` too). The progress lines on stdout are the phone's display; per-call
/// library lines would bury them.
const DEFAULT_LOG: &str = "warn,{{crate_name}}=info";
const USAGE: &str = "\
usage: {{project-name}} call SIP-URI [--from USER] [--user USER --password SECRET] [--duration SECS] [--local ADDR:PORT] [--public-ip IP]{% if media %} [--play FILE.wav] [--record FILE.wav] [--input-device SEL] [--output-device SEL] [--srtp off|best-effort|mandatory] [--srtp-keys-in-clear]{% endif %}
       {{project-name}} listen [--register REGISTRAR --user USER [--password SECRET]] [--local ADDR:PORT] [--public-ip IP]{% if media %} [--play FILE.wav] [--record FILE-OR-DIR] [--input-device SEL] [--output-device SEL] [--srtp off|best-effort|mandatory] [--srtp-keys-in-clear]
       {{project-name}} devices{% endif %}";

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

/// The `call` command's arguments.
struct Args {
    options: CallOptions,
    local: SocketAddr,
    /// PARROT_PUBLIC_IP or --public-ip: named instead of our address.
    public_ip: Option<std::net::IpAddr>,
    /// `listen --register`: the registrar.
    register: Option<String>,
    user: Option<String>,
    password: Option<String>,
{%- if media %}
    input_device: Option<String>,
    output_device: Option<String>,
    /// `--srtp`, `--srtp-keys-in-clear`.
    srtp: Srtp,
{%- endif %}
}

/// The arguments of `call` (`listening` false: a URI is needed) or of `listen`.
fn parse_args(mut args: impl Iterator<Item = String>, listening: bool) -> Result<Args, String> {
    let mut parsed = Args {
        options: CallOptions::default(),
        local: SocketAddr::from(([0, 0, 0, 0], 0)),
        public_ip: None,
        register: None,
        user: None,
        password: None,
{%- if media %}
        input_device: None,
        output_device: None,
        srtp: Srtp::default(),
{%- endif %}
    };
    match std::env::var("PARROT_PUBLIC_IP") {
        Ok(v) if !v.is_empty() => {
            parsed.public_ip = Some(
                v.parse()
                    .map_err(|_| format!("PARROT_PUBLIC_IP wants an IP address, got {v:?}"))?,
            );
        }
        _ => {}
    }
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--from" => parsed.options.from_user = Some(value()?),
            "--user" => parsed.user = Some(value()?),
            "--password" => parsed.password = Some(value()?),
            "--register" if listening => parsed.register = Some(value()?),
            "--duration" => {
                let v = value()?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--duration wants seconds, got {v:?}"))?;
                parsed.options.duration = Some(Duration::from_secs_f64(secs));
            }
            "--public-ip" => {
                let v = value()?;
                parsed.public_ip = Some(
                    v.parse()
                        .map_err(|_| format!("--public-ip wants an IP address, got {v:?}"))?,
                );
            }
            "--local" => {
                let v = value()?;
                parsed.local = v
                    .parse()
                    .map_err(|_| format!("--local wants ADDR:PORT, got {v:?}"))?;
            }
{%- if media %}
            "--play" => {
                let file = PathBuf::from(value()?);
                parrot_core::media::WavSource::open(&file)
                    .map_err(|e| format!("--play {}: {e}", file.display()))?;
                parsed.options.play = Some(file);
            }
            "--record" => parsed.options.record = Some(PathBuf::from(value()?)),
            "--input-device" => parsed.input_device = Some(value()?),
            "--output-device" => parsed.output_device = Some(value()?),
            "--srtp" => parsed.srtp.mode = Srtp::parse_mode(&value()?)?,
            "--srtp-keys-in-clear" => parsed.srtp.keys_in_clear = true,
{%- endif %}
            _ if !listening && parsed.options.uri.is_empty() && !arg.starts_with('-') => {
                parsed.options.uri = arg;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if !listening && parsed.options.uri.is_empty() {
        return Err("whom to call? (a SIP URI such as sip:service@127.0.0.1:5060)".into());
    }
    if parsed.register.is_some() && parsed.user.is_none() {
        return Err("--register needs --user (the name to register)".into());
    }
    if parsed.password.is_some() && parsed.user.is_none() {
        return Err("--password needs --user".into());
    }
{%- if media %}
    parsed.srtp.check()?;
{%- endif %}
    match &parsed.user {
        Some(user) if !listening => {
            let password = parsed.password.clone().ok_or("--user needs --password")?;
            parsed.options.credentials = Some((user.clone(), password));
        }
        _ => {}
    }
    Ok(parsed)
}
{%- if media %}

/// The microphone and speakers: those asked for (an error if they cannot be
/// opened), else the defaults when no file takes their place (a warning if
/// there are none, and the call goes on without).
#[cfg(feature = "device")]
fn open_devices(args: &mut Args) -> Result<(), String> {
    let mic = match (&args.input_device, &args.options.play) {
        (Some(sel), _) => Some((sel.clone(), true)),
        (None, None) => Some(("default".to_owned(), false)),
        (None, Some(_)) => None,
    };
    if let Some((sel, asked)) = mic {
        match {{crate_name}}::open_microphone(&sel) {
            Ok(m) => args.options.microphone = Some(m),
            Err(e) if asked => return Err(e.to_string()),
            Err(e) => eprintln!("{NAME}: no microphone ({e}); sending silence"),
        }
    }
    let speaker = match (&args.output_device, &args.options.record) {
        (Some(sel), _) => Some((sel.clone(), true)),
        (None, None) => Some(("default".to_owned(), false)),
        (None, Some(_)) => None,
    };
    if let Some((sel, asked)) = speaker {
        match {{crate_name}}::open_speaker(&sel) {
            Ok(s) => args.options.speaker = Some(s),
            Err(e) if asked => return Err(e.to_string()),
            Err(e) => eprintln!("{NAME}: no speakers ({e})"),
        }
    }
    Ok(())
}

#[cfg(not(feature = "device"))]
fn open_devices(args: &mut Args) -> Result<(), String> {
    if args.input_device.is_some() || args.output_device.is_some() {
        return Err("audio devices need the `device` feature (on by default)".into());
    }
    Ok(())
}

#[cfg(feature = "device")]
fn devices() -> ExitCode {
    match parrot_core::device::list() {
        Ok(list) => {
            print!("{list}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{NAME}: cannot list audio devices: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "device"))]
fn devices() -> ExitCode {
    eprintln!("{NAME}: built without the `device` feature: no audio devices");
    ExitCode::FAILURE
}
{%- endif %}

/// Enter (an empty line) hangs up{% if media %}, digits are sent as DTMF{% endif %}; Ctrl-C hangs up.
fn controls() -> mpsc::Receiver<Control> {
    let (tx, rx) = mpsc::channel(8);
    let keys = tx.clone();
    // Reading stdin blocks: a thread of its own, left behind when the program ends.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
{%- if media %}
            let control = if line.is_empty() {
                Control::Hangup
            } else {
                Control::Dtmf(line.to_owned())
            };
{%- else %}
            let _ = line;
            let control = Control::Hangup;
{%- endif %}
            if keys.blocking_send(control).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(Control::Hangup).await.is_err() {
                break;
            }
        }
    });
    rx
}

fn print_progress(p: Progress) {
    match p {
        Progress::Calling(uri) => println!("calling {uri} (Enter or Ctrl-C hangs up)"),
        Progress::Provisional(status, reason) => println!("{status} {reason}"),
        Progress::Answered(status, reason) => println!("{status} {reason}: answered"),
{%- if media %}
        Progress::Audio(codec) => println!("audio: {codec}"),
{%- endif %}
        Progress::Transferred(target) => println!("transferred to {target}"),
        Progress::TransferFailed(why) => println!("the transfer failed ({why}): still in the call"),
        Progress::HangingUp => println!("hanging up"),
        Progress::PeerHungUp => println!("the other side hung up"),
    }
}

async fn call(args: Args) -> ExitCode {
{%- if media %}
    let started = {{module}}::start_with(args.local, args.public_ip, args.srtp).await;
{%- else %}
    let started = {{module}}::start_with(args.local, args.public_ip).await;
{%- endif %}
    let phone = match started {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{NAME}: cannot start on {}: {e}", args.local);
            return ExitCode::FAILURE;
        }
    };
    let result = phone.call(&args.options, controls(), print_progress).await;
    phone.shutdown().await;
    match result {
        Ok(report) if report.answered => {
{%- if media %}
            if let Some(m) = &report.media {
                let protection = m
                    .srtp
                    .map_or_else(|| "plain RTP".to_owned(), |suite| format!("SRTP {suite}"));
                println!(
                    "media: {} packets sent, {} received, {} lost, jitter {:.1} ms, {:.1} s heard, {protection}",
                    m.packets_sent,
                    m.packets_received,
                    m.packets_lost,
                    m.jitter_ms,
                    m.seconds_received
                );
            }
{%- endif %}
            println!("call over after {:.1} s", report.talk_time.as_secs_f64());
            if report.completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(report) => {
            println!("not answered: {} {}", report.status, report.reason);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{NAME}: the call failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `listen`: registers if asked, answers calls until Ctrl-C.
async fn listen(args: Args) -> ExitCode {
    let (events_tx, mut events) = mpsc::unbounded_channel();
{%- if media %}
    let audio = args.options.clone();
    let started =
        {{module}}::start_answering(args.local, args.public_ip, args.srtp, audio, events_tx).await;
{%- else %}
    let started = {{module}}::start_answering(args.local, args.public_ip, events_tx).await;
{%- endif %}
    let phone = match started {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{NAME}: cannot start on {}: {e}", args.local);
            return ExitCode::FAILURE;
        }
    };
    let registration = match (&args.register, &args.user) {
        (Some(registrar), Some(user)) => {
            match phone
                .register(registrar, user, args.password.as_deref())
                .await
            {
                Ok(r) => {
                    println!("registered {user} at {registrar}");
                    Some(r)
                }
                Err(e) => {
                    eprintln!("{NAME}: cannot register {user} at {registrar}: {e}");
                    phone.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let udp = phone
        .endpoint()
        .local_addr(parrot_core::transport::TransportKind::Udp);
    match udp {
        Some(a) => println!("waiting for calls on {a}; Ctrl-C to stop"),
        None => println!("waiting for calls; Ctrl-C to stop"),
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(PhoneEvent::Incoming(from)) => println!("call from {from}: answered"),
                Some(PhoneEvent::Ended(why)) => println!("call ended ({why})"),
                Some(PhoneEvent::Transferred(to)) => println!("transferred: calling {to}"),
                Some(PhoneEvent::TransferFailed(why)) => println!("the transfer failed ({why})"),
                None => break,
            },
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    eprintln!("{NAME}: cannot wait for Ctrl-C: {e}");
                }
                break;
            }
        }
    }
    if let Some(Err(e)) = match registration {
        Some(r) => Some(r.unregister().await),
        None => None,
    } {
        eprintln!("{NAME}: unregister failed: {e}");
    }
    phone.shutdown().await;
    println!("stopped");
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(command @ ("call" | "listen")) => match parse_args(args, command == "listen") {
{%- if media %}
            Ok(mut a) => {
                if let Err(e) = open_devices(&mut a) {
                    eprintln!("{NAME}: {e}");
                    return ExitCode::FAILURE;
                }
                if command == "listen" {
                    listen(a).await
                } else {
                    call(a).await
                }
            }
{%- else %}
            Ok(a) if command == "listen" => listen(a).await,
            Ok(a) => call(a).await,
{%- endif %}
            Err(e) => {
                eprintln!("{NAME}: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
{%- if media %}
        Some("devices") => devices(),
{%- endif %}
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
