//! Calls the server in-process: the handler on a free loopback port, and
//! parrot-core's own UAC as the caller.
{% if media %}
use parrot_core::media::{Action, AudioSource, MediaHandler, WavSource, tone_present};
{%- endif %}
use parrot_core::transport::TransportKind;
{%- if media %}
use parrot_core::ua::{CallEvent, Endpoint, UaError};
{%- else %}
use parrot_core::ua::{Endpoint, UaError};
{%- endif %}
{%- if media %}
use std::path::PathBuf;
{%- endif %}
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use {{crate_name}}::Config;

use {{crate_name}}::{{module}};
{%- if media %}

/// The welcome chime's frequency (see assets/welcome.wav).
const WELCOME_HZ: f64 = 660.0;
{%- endif %}

/// The server on 127.0.0.1 with a free UDP port, and that address.
async fn server() -> (Endpoint, Arc<Config>, String) {
    let config = Arc::new(Config::new());
    let handlers = config.clone();
    let endpoint = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .handler(move || {{module}}::new(handlers.clone()))
        .build()
        .await
        .expect("the server starts");
    let addr = endpoint
        .local_addr(TransportKind::Udp)
        .expect("a UDP address");
    (endpoint, config, addr.to_string())
}

/// A caller that only dials.
async fn phone() -> Endpoint {
    Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .build()
        .await
        .expect("the phone starts")
}
{%- if media %}

/// The caller's media: records what it hears.
struct Recorder(PathBuf);

impl MediaHandler for Recorder {
    fn stream_started(&mut self) -> Action {
        Action::Record(self.0.clone())
    }
}

/// A file in the temporary folder for a recording.
fn temp_wav(what: &str) -> PathBuf {
    let name = format!(
        "{}-{what}-{}.wav",
        env!("CARGO_PKG_NAME"),
        std::process::id()
    );
    std::env::temp_dir().join(name)
}

/// The first `seconds` of sound in a recording (from the first loud sample).
fn heard(path: &PathBuf, seconds: f64) -> Vec<i16> {
    let mut wav = WavSource::open(path).expect("the recording exists");
    let mut samples = vec![0i16; (wav.duration() * 8000.0) as usize];
    let n = wav.read(&mut samples);
    samples.truncate(n);
    let first = samples
        .iter()
        .position(|s| s.unsigned_abs() > 1000)
        .expect("the caller heard something");
    let end = (first + (seconds * 8000.0) as usize).min(samples.len());
    samples[first..end].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_answers_and_the_caller_hears_the_welcome() {
    let (server, config, addr) = server().await;
    let phone = phone().await;
    let recording = temp_wav("heard");
    let mut call = phone
        .dial(&format!("sip:service@{addr}"))
        .expect("a valid URI")
        .from_user("carol")
        .media(Recorder(recording.clone()))
        .send()
        .await
        .expect("the INVITE is sent");
    let ok = call.answered().await.expect("the call is answered");
    assert_eq!(ok.status().as_u16(), 200);
    // The codec and the counts come with the MediaStarted event, just after the answer.
    let started = tokio::time::timeout(Duration::from_secs(2), call.next_event()).await;
    assert!(
        matches!(started, Ok(Some(CallEvent::MediaStarted { .. }))),
        "no audio: {started:?}"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let stats = call.media_stats().expect("audio flowed");
    assert!(stats.packets_received > 40, "{stats:?}");
    let bye = call.hangup().await.expect("BYE is answered");
    assert!(bye.status().is_success());
    phone.shutdown(Duration::from_millis(500)).await;
    server.shutdown(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let sound = heard(&recording, 1.0);
    let _ = std::fs::remove_file(&recording);
    assert!(sound.len() >= 6000, "only {} samples heard", sound.len());
    assert!(
        tone_present(&sound, WELCOME_HZ, 8000, 0.6),
        "the welcome chime ({WELCOME_HZ} Hz) was not heard"
    );
    assert_eq!(config.counts.answered.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digit_nine_hangs_up() {
    let (server, _, addr) = server().await;
    let phone = phone().await;
    let recording = temp_wav("nine");
    let mut call = phone
        .dial(&format!("sip:service@{addr}"))
        .expect("a valid URI")
        .media(Recorder(recording.clone()))
        .send()
        .await
        .expect("the INVITE is sent");
    call.answered().await.expect("the call is answered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.send_dtmf("9").await.expect("the digit is sent");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Ended) | None => break true,
                Some(_) => {}
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true), "the server did not hang up after 9");
    phone.shutdown(Duration::from_millis(500)).await;
    server.shutdown(Duration::from_millis(500)).await;
    let _ = std::fs::remove_file(&recording);
}
{%- else %}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_answers() {
    let (server, config, addr) = server().await;
    let phone = phone().await;
    let mut call = phone
        .dial(&format!("sip:service@{addr}"))
        .expect("a valid URI")
        .from_user("carol")
        .send()
        .await
        .expect("the INVITE is sent");
    let ok = call.answered().await.expect("the call is answered");
    assert_eq!(ok.status().as_u16(), 200);
    let bye = call.hangup().await.expect("BYE is answered");
    assert!(bye.status().is_success());
    phone.shutdown(Duration::from_millis(500)).await;
    server.shutdown(Duration::from_millis(500)).await;
    assert_eq!(config.counts.answered.load(Ordering::Relaxed), 1);
}
{%- endif %}

/// Places a call from `from` to `to` and returns its final status.
async fn status_of(from: &str, to: &str) -> u16 {
    let (server, _, addr) = server().await;
    let phone = phone().await;
    let mut call = phone
        .dial(&format!("sip:{to}@{addr}"))
        .expect("a valid URI")
        .from_user(from)
        .send()
        .await
        .expect("the INVITE is sent");
    let status = match call.answered().await {
        Ok(ok) => {
            let bye = call.hangup().await.expect("BYE is answered");
            assert!(bye.status().is_success());
            ok.status().as_u16()
        }
        Err(UaError::Rejected(status)) => status.as_u16(),
        Err(e) => panic!("{from} → {to}: {e}"),
    };
    phone.shutdown(Duration::from_millis(500)).await;
    server.shutdown(Duration::from_millis(500)).await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes() {
    assert_eq!(status_of("alice", "bob").await, 200);
    assert_eq!(status_of("bob", "alice").await, 486);
    assert_eq!(status_of("mallory", "bob").await, 403);
}
