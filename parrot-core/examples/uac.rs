//! Places one call, holds it, hangs up.
//!
//! ```text
//! cargo run --release -p parrot-core --example uac -- sip:service@127.0.0.1:5080 \
//!     [--duration 2] [--transport udp|tcp] [--play FILE.wav] [--record FILE.wav] \
//!     [--input-device SEL] [--output-device SEL]
//! ```
//! The call carries audio: it plays FILE.wav (or the microphone chosen with
//! `--input-device`, or silence), plays what it hears on `--output-device`, and
//! records it with `--record`. Devices need `--features parrot-core/device`;
//! SEL is `default`, an index or a name (see `parrot devices`). Prints the progress, the codec and the media counts,
//! and exits 0 only if the call was answered and hung up cleanly.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use parrot_core::media::{Action, MediaHandler};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, Endpoint};
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
        "uac: {problem}\nusage: uac SIP-URI [--duration SECONDS] [--transport udp|tcp] [--play FILE.wav] [--record FILE.wav] [--input-device SEL] [--output-device SEL]"
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
            _ if uri.is_none() && !a.starts_with("--") => uri = Some(a),
            other => return usage(&format!("unexpected argument {other:?}")),
        }
    }
    let Some(uri) = uri else {
        return usage("a SIP URI to call is needed");
    };
    // The wildcard of the callee's family: the stack names the address it
    // really sends from (never 0.0.0.0), so the phone reaches other hosts.
    let any: std::net::SocketAddr = if uri.contains('[') {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    };
    let mut builder = Endpoint::builder().udp(any);
    if transport == Some(TransportKind::Tcp) {
        builder = builder.tcp(any);
    }
    let endpoint = match builder.build().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("uac: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut dial = match endpoint.dial(&uri) {
        Ok(d) => d,
        Err(e) => return usage(&e.to_string()),
    };
    if let Some(t) = transport {
        dial = dial.transport(t);
    }
    let (mic, speaker) = match devices(input, output) {
        Ok(d) => d,
        Err(e) => return usage(&e),
    };
    dial = dial.media(Media {
        play,
        record,
        mic,
        speaker,
    });
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
