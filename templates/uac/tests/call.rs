//! Runs the phone's call logic headless against an in-process parrot-core
//! server on a free loopback port.
{% if media %}
use parrot_core::media::{Action, AudioSource, MediaHandler, WavSource, tone_present};
{%- endif %}
use parrot_core::transport::TransportKind;
use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
use std::net::SocketAddr;
{%- if media %}
use std::path::PathBuf;
{%- endif %}
use std::time::Duration;
use tokio::sync::mpsc;

use {{crate_name}}::{CallOptions, Control, Progress};

use {{crate_name}}::{{module}};
{%- if media %}

/// What the server plays to callers.
const TONE_HZ: f64 = 1000.0;

/// The server's audio: three seconds of the tone.
struct Tone;

impl MediaHandler for Tone {
    fn stream_started(&mut self) -> Action {
        Action::tone(TONE_HZ, 3.0)
    }
}
{%- endif %}

/// A server that answers `service` and is busy for anyone else.
struct Server;

impl SipHandler for Server {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        if call.to_user() != Some("service") {
            return Reply::busy_here();
        }
        let _ = call.ring().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
{%- if media %}
        call.answer(Tone).await
{%- else %}
        Reply::ok()
{%- endif %}
    }
}

async fn server() -> (Endpoint, SocketAddr) {
    let endpoint = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .handler(|| Server)
        .build()
        .await
        .expect("the server starts");
    let addr = endpoint
        .local_addr(TransportKind::Udp)
        .expect("a UDP address");
    (endpoint, addr)
}

async fn phone() -> {{module}} {
    {{module}}::start("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the phone starts")
}
{%- if media %}

/// The sound in a recording, from its first loud sample on.
fn heard(path: &PathBuf) -> Vec<i16> {
    let mut wav = WavSource::open(path).expect("the recording exists");
    let mut samples = vec![0i16; (wav.duration() * 8000.0) as usize];
    let n = wav.read(&mut samples);
    samples.truncate(n);
    let first = samples
        .iter()
        .position(|s| s.unsigned_abs() > 1000)
        .expect("the phone heard something");
    samples.split_off(first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_is_answered_and_the_tone_recorded() {
    let (server, addr) = server().await;
    let phone = phone().await;
    let recording = std::env::temp_dir().join(format!(
        "{}-heard-{}.wav",
        env!("CARGO_PKG_NAME"),
        std::process::id()
    ));
    let options = CallOptions {
        uri: format!("sip:service@{addr}"),
        duration: Some(Duration::from_millis(1500)),
        record: Some(recording.clone()),
        ..CallOptions::default()
    };
    let (_keep, control) = mpsc::channel::<Control>(1);
    let mut seen = Vec::new();
    let report = phone
        .call(&options, control, |p| seen.push(p))
        .await
        .expect("the call goes through");
    phone.shutdown().await;
    server.shutdown(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(report.answered && report.completed, "{report:?}");
    assert_eq!(report.status, 200);
    assert!(
        seen.contains(&Progress::Provisional(180, "Ringing".into())),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|p| matches!(p, Progress::Audio(_))),
        "{seen:?}"
    );
    let media = report.media.expect("media counts");
    assert!(media.packets_received > 40, "{media:?}");
    let sound = heard(&recording);
    let _ = std::fs::remove_file(&recording);
    assert!(sound.len() >= 8000, "only {} samples heard", sound.len());
    assert!(
        tone_present(&sound[..8000], TONE_HZ, 8000, 0.8),
        "the {TONE_HZ} Hz tone was not heard"
    );
}
{%- else %}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_is_answered_and_hung_up() {
    let (server, addr) = server().await;
    let phone = phone().await;
    let options = CallOptions {
        uri: format!("sip:service@{addr}"),
        ..CallOptions::default()
    };
    // Hang up as Enter would, half a second after the answer.
    let (tx, control) = mpsc::channel(1);
    let mut seen = Vec::new();
    let hangup = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(Control::Hangup).await.expect("the call listens");
    };
    let (report, ()) = tokio::join!(phone.call(&options, control, |p| seen.push(p)), hangup);
    let report = report.expect("the call goes through");
    phone.shutdown().await;
    server.shutdown(Duration::from_millis(500)).await;

    assert!(report.answered && report.completed, "{report:?}");
    assert_eq!(report.status, 200);
    assert_eq!(seen.last(), Some(&Progress::HangingUp), "{seen:?}");
}
{%- endif %}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_reported() {
    let (server, addr) = server().await;
    let phone = phone().await;
    let options = CallOptions {
        uri: format!("sip:alice@{addr}"),
        duration: Some(Duration::from_secs(1)),
        ..CallOptions::default()
    };
    let (_keep, control) = mpsc::channel(1);
    let report = phone
        .call(&options, control, |_| {})
        .await
        .expect("the call is placed");
    phone.shutdown().await;
    server.shutdown(Duration::from_millis(500)).await;
    assert!(!report.answered);
    assert_eq!(report.status, 486);
}
