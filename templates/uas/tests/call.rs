//! The server's logic through `parrot_core::testing`: requests built in
//! memory, no sockets, no sleeps{% if media %}, and the menu driven frame by
//! frame on virtual time{% endif %}. Then one real call over loopback with
//! parrot-core's own UAC.
{% if media %}
use parrot_core::media::{Action, AudioSource, MediaHandler, PlaySource, WavSource, tone_present};
use parrot_core::testing::{self, MediaHarness};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, EndReason, Endpoint, SipHandler, SrtpMode};
use std::path::{Path, PathBuf};
{%- else %}
use parrot_core::testing;
use parrot_core::transport::TransportKind;
use parrot_core::ua::{EndReason, Endpoint, SipHandler};
{%- endif %}
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use {{crate_name}}::Config;
{%- if media %}
use {{crate_name}}::Menu;
{%- endif %}

use {{crate_name}}::{{module}};
{%- if media %}

/// The welcome chime's frequency (see assets/welcome.wav).
const WELCOME_HZ: f64 = 660.0;
{%- endif %}

/// The final status `{{module}}` gives an INVITE from `from` to `to`.
async fn status_of(config: &Arc<Config>, from: &str, to: &str) -> u16 {
    let mut handler = {{module}}::new(config.clone());
    testing::call(&mut handler, testing::invite(from, to).build())
        .await
        .code()
}

#[tokio::test]
async fn routes_by_user() {
    let config = Arc::new(Config::new());
    assert_eq!(status_of(&config, "alice", "bob").await, 200);
    assert_eq!(status_of(&config, "bob", "alice").await, 486);
    assert_eq!(status_of(&config, "carol", "service").await, 200);
    assert_eq!(status_of(&config, "mallory", "bob").await, 403);
    assert_eq!(status_of(&config, "alice", "carol").await, 403);
    assert_eq!(config.counts.answered.load(Ordering::Relaxed), 2);
    assert_eq!(config.counts.rejected.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn only_answered_calls_count_as_ended() {
    let config = Arc::new(Config::new());
    let mut answered = {{module}}::new(config.clone());
    let ok = testing::call(&mut answered, testing::invite("alice", "bob").build()).await;
    assert_eq!(ok.code(), 200);
    answered.ended(EndReason::PeerHangup).await;
    let mut refused = {{module}}::new(config.clone());
    let busy = testing::call(&mut refused, testing::invite("bob", "alice").build()).await;
    assert_eq!(busy.code(), 486);
    refused.ended(EndReason::Rejected).await;
    assert_eq!(config.counts.ended.load(Ordering::Relaxed), 1);
    assert_eq!(config.counts.to_string(), "1 answered, 1 rejected, 1 ended");
}
{%- if media %}

#[tokio::test]
async fn service_answers_with_audio() {
    let mut handler = {{module}}::new(Arc::new(Config::new()));
    let invite = testing::invite("carol", "service").offer().build();
    let outcome = testing::call(&mut handler, invite).await;
    assert_eq!(outcome.code(), 200);
    let sdp = outcome.sdp_answer().expect("an SDP answer in the 200");
    assert_eq!(sdp.media.len(), 1, "one audio stream");
    assert_eq!(
        outcome.codec().map(|c| c.name.to_string()),
        Some("PCMU".to_owned())
    );
    // An INVITE without an offer is answered without audio.
    let plain = testing::call(&mut handler, testing::invite("carol", "service").build()).await;
    assert_eq!(plain.code(), 200);
    assert!(!plain.has_media());
}

/// An offer with SRTP keys (RFC 4568) is answered with keys of the server's
/// own; with `--srtp mandatory`, a plain offer is refused.
#[tokio::test]
async fn service_answers_srtp_offers() {
    let mut handler = {{module}}::new(Arc::new(Config::new()));
    let invite = testing::invite("carol", "service")
        .srtp_offer(SrtpMode::Mandatory)
        .build();
    let outcome = testing::call(&mut handler, invite).await;
    assert_eq!(outcome.code(), 200);
    assert!(outcome.srtp().is_some(), "{outcome:?}");
    let sdp = outcome.sdp_answer().expect("an SDP answer in the 200");
    assert_eq!(sdp.media[0].protocol, "RTP/SAVP");
    let plain = testing::invite("carol", "service").offer().build();
    let refused = testing::call_with_srtp(&mut handler, plain, SrtpMode::Mandatory).await;
    assert_eq!(refused.code(), 488);
    assert!(!refused.has_media());
}

/// The menu with this project's prompts, started as when the caller's ACK arrives.
fn menu() -> (MediaHarness<Menu>, PathBuf, PathBuf) {
    let assets = Config::new().assets;
    let mut media = MediaHarness::new(Menu::new(&assets, None));
    media.start();
    (media, assets.join("welcome.wav"), assets.join("menu.wav"))
}

#[test]
fn callers_hear_the_welcome_then_the_menu() {
    let (mut media, welcome, menu) = menu();
    assert_eq!(
        media.now_playing(),
        Some(&PlaySource::File(welcome.clone()))
    );
    let first_second = media.run_for(Duration::from_secs(1));
    assert!(
        testing::has_tone(first_second, WELCOME_HZ),
        "the welcome chime ({WELCOME_HZ} Hz) is not what plays"
    );
    // The welcome (1.5 s), then the menu (2 s), then silence until a digit.
    assert!(media.run_until_idle(Duration::from_secs(10)));
    assert_eq!(
        media.completed(),
        [PlaySource::File(welcome), PlaySource::File(menu)]
    );
    let elapsed = media.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(!media.hung_up());
}

#[test]
fn digits_choose() {
    let (mut media, welcome, menu) = menu();
    // 1: a 440 Hz tone for a second, then the menu.
    media.dtmf('1');
    assert_eq!(media.now_playing(), Some(&PlaySource::Tone(440.0, 1.0)));
    let tone = media.run_for(Duration::from_millis(500));
    assert!(testing::has_tone(tone, 440.0));
    media.run_for(Duration::from_millis(520));
    assert_eq!(media.now_playing(), Some(&PlaySource::File(menu.clone())));
    // 2: the welcome again; anything else: the menu.
    media.dtmf('2');
    assert_eq!(media.now_playing(), Some(&PlaySource::File(welcome)));
    media.dtmf('7');
    assert_eq!(media.now_playing(), Some(&PlaySource::File(menu)));
    assert!(!media.hung_up());
    // 9: hang up (the endpoint sends BYE).
    media.dtmf('9');
    assert!(media.hung_up() && media.is_ended());
    assert_eq!(media.received_dtmf(), "1279");
}

#[tokio::test]
async fn answered_callers_are_recorded_when_asked() {
    let dir = std::env::temp_dir().join(format!(
        "{}-recordings-{}",
        env!("CARGO_PKG_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let config = Config {
        record: Some(dir.clone()),
        ..Config::new()
    };
    let mut handler = {{module}}::new(Arc::new(config));
    let invite = testing::invite("alice", "bob")
        .call_id("call-1@example")
        .offer()
        .build();
    let mut outcome = testing::call(&mut handler, invite).await;
    let mut media = outcome.take_media().expect("answered with audio");
    media.start();
    assert!(media.is_recording());
    media.receive(&testing::tone(700.0, 0.5));
    media.end();
    let file = dir.join("call-1example.wav");
    let heard = read_wav(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(heard.len(), 4000);
    assert!(testing::has_tone(&heard, 700.0));
}

/// All the samples of a WAV file.
fn read_wav(path: &Path) -> Vec<i16> {
    let mut wav = WavSource::open(path).expect("the recording exists");
    let mut samples = vec![0i16; (wav.duration() * 8000.0) as usize + 160];
    let n = wav.read(&mut samples);
    samples.truncate(n);
    samples
}

/// The caller's media: records what it hears.
struct Recorder(PathBuf);

impl MediaHandler for Recorder {
    fn stream_started(&mut self) -> Action {
        Action::Record(self.0.clone())
    }
}

/// One real call: the server on a free loopback port, parrot-core's UAC as
/// the caller, RTP both ways; the caller hears the welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_call_hears_the_welcome() {
    let config = Arc::new(Config::new());
    let handlers = config.clone();
    let server = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .handler(move || {{module}}::new(handlers.clone()))
        .build()
        .await
        .expect("the server starts");
    let addr = server
        .local_addr(TransportKind::Udp)
        .expect("a UDP address");
    let phone = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .build()
        .await
        .expect("the phone starts");
    let recording = std::env::temp_dir().join(format!(
        "{}-heard-{}.wav",
        env!("CARGO_PKG_NAME"),
        std::process::id()
    ));
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
    let started = tokio::time::timeout(Duration::from_secs(2), call.next_event()).await;
    assert!(
        matches!(started, Ok(Some(CallEvent::MediaStarted { .. }))),
        "no audio: {started:?}"
    );
    // Real audio takes real time: a second of the welcome, and some slack.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let bye = call.hangup().await.expect("BYE is answered");
    assert!(bye.status().is_success());
    phone.shutdown(Duration::from_millis(500)).await;
    server.shutdown(Duration::from_millis(500)).await;
    // The caller's recording is closed as its media session ends.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let samples = read_wav(&recording);
    let _ = std::fs::remove_file(&recording);
    let first = samples
        .iter()
        .position(|s| s.unsigned_abs() > 1000)
        .expect("the caller heard something");
    let sound = &samples[first..(first + 8000).min(samples.len())];
    assert!(sound.len() >= 6000, "only {} samples heard", sound.len());
    assert!(
        tone_present(sound, WELCOME_HZ, 8000, 0.6),
        "the welcome chime ({WELCOME_HZ} Hz) was not heard"
    );
    assert_eq!(config.counts.answered.load(Ordering::Relaxed), 1);
}
{%- else %}

#[tokio::test]
async fn service_answers_without_audio() {
    let mut handler = {{module}}::new(Arc::new(Config::new()));
    let invite = testing::invite("carol", "service").offer().build();
    let outcome = testing::call(&mut handler, invite).await;
    assert_eq!(outcome.code(), 200);
    assert!(outcome.sdp_answer().is_none() && !outcome.has_media());
}

/// One real call: the server on a free loopback port, parrot-core's UAC as the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_call_is_answered_and_hung_up() {
    let config = Arc::new(Config::new());
    let handlers = config.clone();
    let server = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .handler(move || {{module}}::new(handlers.clone()))
        .build()
        .await
        .expect("the server starts");
    let addr = server
        .local_addr(TransportKind::Udp)
        .expect("a UDP address");
    let phone = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .build()
        .await
        .expect("the phone starts");
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
