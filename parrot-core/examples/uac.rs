//! Places one call, holds it, hangs up; or registers and takes calls.
//!
//! ```text
//! cargo run --release -p parrot-core --example uac -- sip:service@127.0.0.1:5080 \
//!     [--duration 2] [--transport udp|tcp] [--play FILE.wav] [--record FILE.wav] \
//!     [--input-device SEL] [--output-device SEL]
//! cargo run --release -p parrot-core --example uac -- --register sip:127.0.0.1:5080 \
//!     --user carol [--password SECRET] [--keepalive SECS] [--play FILE.wav] [--record DIR]
//! ```
//! With `--register` and no URI it is a phone: it registers USER at the
//! registrar (refreshing the registration, sending a keep-alive every SECS,
//! default 20, so that a NAT keeps its mapping), answers every call with the
//! same audio, records each to DIR/CALL-ID.wav, and unregisters on Ctrl-C.
//! The call carries audio: it plays FILE.wav (or the microphone chosen with
//! `--input-device`, or silence), plays what it hears on `--output-device`, and
//! records it with `--record`. Devices need `--features parrot-core/device`;
//! SEL is `default`, an index or a name (see `parrot devices`). Prints the progress, the codec and the media counts,
//! and exits 0 only if the call was answered and hung up cleanly.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use parrot_core::media::{Action, MediaHandler};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, EndReason, Endpoint, Incoming, Reply, SipHandler};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Plays the file or the microphone, records what comes in and plays it on the speaker (as asked).
struct Media {
    play: Option<PathBuf>,
    record: Option<PathBuf>,
    mic: Option<parrot_core::media::LiveSource>,
    speaker: Option<parrot_core::media::LiveSink>,
}

impl MediaHandler for Media {
    fn stream_started(&mut self) -> Action {
        let mut a = self.record.clone().map_or(Action::Nothing, Action::Record);
        if let Some(s) = &self.speaker {
            a = a.also(Action::Listen(s.clone()));
        }
        if let Some(m) = &self.mic {
            a = a.also(Action::play_live(m.clone()));
        } else if let Some(p) = &self.play {
            a = a.also(Action::play(p));
        }
        a
    }
}

/// Answers every call (the phone mode) with the same audio.
struct Phone {
    play: Option<PathBuf>,
    record: Option<PathBuf>,
    mic: Option<parrot_core::media::LiveSource>,
    speaker: Option<parrot_core::media::LiveSink>,
}

impl SipHandler for Phone {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let from = call.from().map(|f| f.uri.to_string()).unwrap_or_default();
        println!("uac: incoming call from {from}");
        // A directory: one recording per call, named by its Call-ID.
        let record = self.record.as_ref().map(|r| {
            if r.is_dir() {
                call.recording_path(r)
            } else {
                r.clone()
            }
        });
        let reply = call
            .answer(Media {
                play: self.play.clone(),
                record,
                mic: self.mic.clone(),
                speaker: self.speaker.clone(),
            })
            .await;
        println!("uac: answered {}", reply.status());
        reply
    }

    async fn ended(&mut self, reason: EndReason) {
        println!("uac: call ended ({reason:?})");
    }
}

#[cfg(feature = "device")]
fn devices(
    input: Option<String>,
    output: Option<String>,
) -> Result<
    (
        Option<parrot_core::media::LiveSource>,
        Option<parrot_core::media::LiveSink>,
    ),
    String,
> {
    use parrot_core::device::{DeviceSelector, open_input, open_output};
    let mic = match input {
        Some(sel) => Some(parrot_core::media::LiveSource::new(
            open_input(DeviceSelector::parse(&sel)).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let speaker = match output {
        Some(sel) => Some(parrot_core::media::LiveSink::new(
            open_output(DeviceSelector::parse(&sel)).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    Ok((mic, speaker))
}

#[cfg(not(feature = "device"))]
fn devices(
    input: Option<String>,
    output: Option<String>,
) -> Result<
    (
        Option<parrot_core::media::LiveSource>,
        Option<parrot_core::media::LiveSink>,
    ),
    String,
> {
    if input.is_some() || output.is_some() {
        return Err("audio devices need the device feature: cargo run -p parrot-core --features device --example uac -- …".into());
    }
    Ok((None, None))
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "uac: {problem}\nusage: uac SIP-URI [--duration SECONDS] [--transport udp|tcp] [--media-ports shared|own] [--play FILE.wav] [--record FILE.wav] [--input-device SEL] [--output-device SEL]\n       uac --register REGISTRAR-URI --user USER [--password SECRET] [--keepalive SECONDS] [--transport udp|tcp] [--play FILE.wav] [--record DIR] [--input-device SEL] [--output-device SEL]"
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut uri = None;
    let mut duration = Duration::from_secs(2);
    let mut transport = None;
    let mut play = None;
    let mut record = None;
    let mut input = None;
    let mut output = None;
    let mut registrar = None;
    let mut user = None;
    let mut password = None;
    let mut keepalive = Duration::from_secs(20);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--duration" => match args.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(s) if s >= 0.0 => duration = Duration::from_secs_f64(s),
                _ => return usage("--duration wants seconds"),
            },
            "--transport" => match args.next().as_deref() {
                Some("udp") => transport = Some(TransportKind::Udp),
                Some("tcp") => transport = Some(TransportKind::Tcp),
                _ => return usage("--transport wants udp or tcp"),
            },
            "--media-ports" => match args.next().as_deref() {
                Some(v @ ("shared" | "own")) => parrot_core::media::set_shared_ports(v == "shared"),
                _ => return usage("--media-ports wants shared or own"),
            },
            "--play" => match args.next() {
                Some(p) => match parrot_core::media::WavSource::open(&p) {
                    Ok(_) => play = Some(PathBuf::from(p)),
                    Err(e) => return usage(&format!("--play: {e}")),
                },
                None => return usage("--play wants a WAV file"),
            },
            "--record" => match args.next() {
                Some(p) => record = Some(PathBuf::from(p)),
                None => return usage("--record wants a file name"),
            },
            "--input-device" => match args.next() {
                Some(sel) => input = Some(sel),
                None => return usage("--input-device wants default, an index or a name"),
            },
            "--output-device" => match args.next() {
                Some(sel) => output = Some(sel),
                None => return usage("--output-device wants default, an index or a name"),
            },
            "--register" => match args.next() {
                Some(r) => registrar = Some(r),
                None => return usage("--register wants the registrar's URI (sip:HOST[:PORT])"),
            },
            "--user" => match args.next() {
                Some(u) => user = Some(u),
                None => return usage("--user wants a user name"),
            },
            "--password" => match args.next() {
                Some(p) => password = Some(p),
                None => return usage("--password wants the password"),
            },
            "--keepalive" => match args.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(s) if s >= 1.0 => keepalive = Duration::from_secs_f64(s),
                _ => return usage("--keepalive wants seconds (at least 1)"),
            },
            _ if uri.is_none() && !a.starts_with("--") => uri = Some(a),
            other => return usage(&format!("unexpected argument {other:?}")),
        }
    }
    if registrar.is_some() != user.is_some() {
        return usage("--register and --user go together");
    }
    let Some(target) = uri.clone().or(registrar.clone()) else {
        return usage("a SIP URI to call (or --register) is needed");
    };
    let (mic, speaker) = match devices(input, output) {
        Ok(d) => d,
        Err(e) => return usage(&e),
    };
    // The wildcard of the callee's family: the stack names the address it
    // really sends from (never 0.0.0.0), so the phone reaches other hosts.
    let any: std::net::SocketAddr = if target.contains('[') {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    };
    let dial_media = Media {
        play: play.clone(),
        record: record.clone(),
        mic: mic.clone(),
        speaker: speaker.clone(),
    };
    let phone = Phone {
        play: play.clone(),
        record: record.clone(),
        mic: mic.clone(),
        speaker: speaker.clone(),
    };
    let phone = std::sync::Mutex::new(Some(phone));
    let builder = Endpoint::builder().udp(any).handler(move || {
        // The first value is the phone; requests outside calls get a copy.
        phone
            .lock()
            .ok()
            .and_then(|mut p| p.take())
            .unwrap_or_else(|| Phone {
                play: play.clone(),
                record: record.clone(),
                mic: mic.clone(),
                speaker: speaker.clone(),
            })
    });
    let builder = if transport == Some(TransportKind::Tcp) {
        builder.tcp(any)
    } else {
        builder
    };
    let endpoint = match builder.build().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("uac: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Kept for as long as the call lasts: dropping it stops the refreshes.
    let mut _registration = None;
    if let (Some(registrar), Some(user)) = (registrar, user) {
        let mut at = registrar.clone();
        if transport == Some(TransportKind::Tcp) && !at.contains("transport=") {
            at.push_str(";transport=tcp");
        }
        let host = at
            .trim_start_matches("sip:")
            .split([';', ':'])
            .next()
            .unwrap_or("")
            .to_owned();
        let aor = format!("sip:{user}@{host}");
        let mut reg = match endpoint.register(&at, &aor) {
            Ok(r) => r.keepalive(keepalive).expires(300),
            Err(e) => return usage(&format!("--register: {e}")),
        };
        if let Some(p) = &password {
            reg = reg.credentials(&user, p);
        }
        let registration = match reg.send().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("uac: cannot register {aor} at {at}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("uac: registered {aor} at {at}: {:?}", registration.state());
        if uri.is_none() {
            println!("uac: waiting for calls; Ctrl-C to stop");
            let _ = tokio::signal::ctrl_c().await;
            if let Err(e) = registration.unregister().await {
                println!("uac: unregister failed: {e}");
            }
            endpoint.shutdown(Duration::from_secs(1)).await;
            println!("uac: stopped; {:?}", endpoint.stats());
            return ExitCode::SUCCESS;
        }
        _registration = Some(registration);
    }
    let Some(uri) = uri else {
        return usage("a SIP URI to call is needed");
    };
    let mut dial = match endpoint.dial(&uri) {
        Ok(d) => d,
        Err(e) => return usage(&e.to_string()),
    };
    if let Some(t) = transport {
        dial = dial.transport(t);
    }
    dial = dial.media(dial_media);
    let mut call = match dial.send().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uac: cannot call {uri}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("uac: calling {uri}");
    let answered = loop {
        match call.next_event().await {
            Some(CallEvent::Provisional(r)) => println!("uac: {} {}", r.status(), r.reason()),
            Some(CallEvent::Answered(r)) => {
                println!("uac: {} {} — answered", r.status(), r.reason());
                break true;
            }
            Some(CallEvent::Rejected(r)) => {
                println!("uac: rejected: {} {}", r.status(), r.reason());
                break false;
            }
            Some(CallEvent::Failed(e)) => {
                println!("uac: failed: {e}");
                break false;
            }
            Some(CallEvent::Ended) | None => break false,
            Some(CallEvent::MediaStarted { codec, .. }) => println!("uac: audio: {codec}"),
            Some(_) => {}
        }
    };
    let mut ok = false;
    if answered {
        // The MediaStarted event follows the answer closely.
        if let Ok(Some(CallEvent::MediaStarted { codec, .. })) =
            tokio::time::timeout(Duration::from_millis(500), call.next_event()).await
        {
            println!("uac: audio: {codec}");
        }
        tokio::time::sleep(duration).await;
        if let Some(m) = call.media_stats() {
            println!(
                "uac: media: {} packets sent, {} received, {} lost, jitter {:.1} ms, {:.1} s heard",
                m.packets_sent, m.packets_received, m.packets_lost, m.jitter_ms, m.seconds_received
            );
        }
        match call.hangup().await {
            Ok(r) if r.status().is_success() => {
                println!(
                    "uac: BYE → {} {}; call completed ({:.1} s)",
                    r.status(),
                    r.reason(),
                    duration.as_secs_f64()
                );
                ok = true;
            }
            Ok(r) => println!("uac: BYE → {} {}", r.status(), r.reason()),
            Err(e) => println!("uac: BYE failed: {e}"),
        }
    }
    endpoint.shutdown(Duration::from_secs(1)).await;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
