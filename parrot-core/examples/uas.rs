//! A SIP server that answers every call, and a registrar that connects calls
//! for registered users to them.
//!
//! ```text
//! cargo run --release -p parrot-core --example uas -- --bind 127.0.0.1:5080 \
//!     [--transport udp|tcp] [--ring-ms N] [--play FILE.wav] [--record DIR]
//! ```
//! REGISTER binds a user (any user, no password). An INVITE whose
//! Request-URI names a registered user is bridged to that user's phone, on
//! the flow its REGISTER came on (so a phone behind a NAT is reached too).
//! Any other INVITE gets 200 OK with an SDP answer (after 180 Ringing and N
//! ms with `--ring-ms`, so that CANCEL can be tried); the call plays FILE.wav
//! (default: a greeting chime made at start) and, with `--record`, records
//! the caller to DIR/CALL-ID.wav. BYE 200, OPTIONS 200; it runs until Ctrl-C
//! and then prints its counts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use parrot_core::media::{Action, AudioSource, MediaHandler, Tone, WavRecorder};
use parrot_core::ua::{Endpoint, Incoming, Registrar, Reply, SipHandler, bridge};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// jemalloc, with its background thread, as a server built from the template
/// has it: memory a flood of calls took goes back to the OS within seconds
/// of the calls ending (glibc's malloc kept 200 MiB after one).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Answer {
    registrar: Registrar,
    ring: Option<Duration>,
    play: PathBuf,
    record: Option<PathBuf>,
}

/// Plays the greeting; records the caller when asked.
struct Greeting {
    play: PathBuf,
    record: Option<PathBuf>,
}

impl MediaHandler for Greeting {
    fn stream_started(&mut self) -> Action {
        let play = Action::play(&self.play);
        match &self.record {
            Some(path) => Action::Record(path.clone()).also(play),
            None => play,
        }
    }
}

impl SipHandler for Answer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let user = call.uri_user().unwrap_or_default().to_owned();
        if let Some(phone) = self.registrar.contacts(&user).into_iter().next() {
            let Some(endpoint) = call.endpoint().cloned() else {
                return Reply::server_error();
            };
            println!(
                "uas: {user} is registered: bridging to {} via {}",
                phone.contact,
                phone.flow.remote()
            );
            return match endpoint.dial(&phone.contact.to_string()) {
                Ok(dial) => bridge(call, dial.flow(&phone.flow)).await,
                Err(_) => Reply::not_found(),
            };
        }
        if let Some(wait) = self.ring {
            if call.ring().await.is_err() {
                return Reply::server_error();
            }
            tokio::time::sleep(wait).await;
        }
        let record = self.record.as_ref().map(|dir| call.recording_path(dir));
        call.answer(Greeting {
            play: self.play.clone(),
            record,
        })
        .await
    }
}

/// A two-note chime (E5 then C5, 0.6 s each), written as an 8 kHz WAV.
/// A file of ours, deleted when this goes out of scope.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn make_greeting() -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("parrot-greeting-{}.wav", std::process::id()));
    let mut rec = WavRecorder::create(&path).map_err(|e| e.to_string())?;
    for freq in [659.25, 523.25] {
        let mut tone = Tone::new(freq, 0.4).lasting(0.6);
        let mut buf = [0i16; 160];
        loop {
            let n = tone.read(&mut buf);
            rec.write(&buf[..n]).map_err(|e| e.to_string())?;
            if n < buf.len() {
                break;
            }
        }
    }
    rec.finish().map_err(|e| e.to_string())
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "uas: {problem}\nusage: uas --bind ADDR:PORT [--transport udp|tcp] [--media-ports shared|own] [--ring-ms N] [--play FILE.wav] [--record DIR]"
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut bind: SocketAddr = ([127, 0, 0, 1], 5080).into();
    let mut tcp = false;
    let mut ring = None;
    let mut play = None;
    let mut record = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--bind", Some(v)) => match v.parse() {
                Ok(b) => bind = b,
                Err(_) => return usage(&format!("--bind wants ADDR:PORT, got {v:?}")),
            },
            ("--transport", Some(v)) if v == "udp" || v == "tcp" => tcp = v == "tcp",
            // Process-wide, before any call: media on ports shared per media thread.
            ("--media-ports", Some(v)) if v == "shared" || v == "own" => {
                parrot_core::media::set_shared_ports(v == "shared");
            }
            ("--ring-ms", Some(v)) => match v.parse() {
                Ok(ms) => ring = Some(Duration::from_millis(ms)),
                Err(_) => return usage(&format!("--ring-ms wants milliseconds, got {v:?}")),
            },
            ("--play", Some(v)) => {
                if let Err(e) = parrot_core::media::WavSource::open(&v) {
                    return usage(&format!("--play: {e}"));
                }
                play = Some(PathBuf::from(v));
            }
            ("--record", Some(v)) => {
                let dir = PathBuf::from(v);
                if !dir.is_dir() {
                    return usage(&format!(
                        "--record wants an existing directory, got {}",
                        dir.display()
                    ));
                }
                record = Some(dir);
            }
            (other, _) => return usage(&format!("unexpected argument {other:?}")),
        }
    }
    // The greeting made here is removed when main returns, however it does.
    let mut made = None;
    let play = match play {
        Some(p) => p,
        None => match make_greeting() {
            Ok(p) => made.insert(RemoveOnDrop(p)).0.clone(),
            Err(e) => {
                eprintln!("uas: cannot write the greeting: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let registrar = Registrar::new();
    let r = registrar.clone();
    let builder = Endpoint::builder()
        .registrar(registrar)
        .handler(move || Answer {
            registrar: r.clone(),
            ring,
            play: play.clone(),
            record: record.clone(),
        });
    let builder = if tcp {
        builder.tcp(bind)
    } else {
        builder.udp(bind)
    };
    let endpoint = match builder.build().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("uas: cannot start on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "uas: listening on {bind} ({}); Ctrl-C to stop",
        if tcp { "tcp" } else { "udp" }
    );
    let _ = tokio::signal::ctrl_c().await;
    endpoint.shutdown(Duration::from_secs(2)).await;
    println!("uas: stopped; {:?}", endpoint.stats());
    ExitCode::SUCCESS
}
