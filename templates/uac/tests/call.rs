//! Runs the phone's call logic headless against an in-process parrot-core
//! server on a free loopback port{% if media %}; the call's audio (`Audio`) is
//! also driven on its own, frame by frame on virtual time, with
//! `parrot_core::testing::MediaHarness`{% endif %}.
{% if media %}
use parrot_core::media::{
    Action, AudioSink, AudioSource, LiveSink, LiveSource, MediaHandler, PlaySource, WavRecorder,
    WavSource, tone_present,
};
use parrot_core::testing::{self, MediaHarness};
{%- endif %}
use parrot_core::transport::TransportKind;
{%- if media %}
use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler, SrtpMode};
{%- else %}
use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
{%- endif %}
use std::net::SocketAddr;
{%- if media %}
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
{%- endif %}
use std::time::Duration;
use tokio::sync::mpsc;
{% if media %}
use {{crate_name}}::{Audio, CallOptions, Control, Progress, Srtp};
{%- else %}
use {{crate_name}}::{CallOptions, Control, Progress};
{%- endif %}

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

/// SRTP both ways (RFC 3711, keys in SDP per RFC 4568, in clear over UDP as
/// `--srtp mandatory --srtp-keys-in-clear` allows): the call is encrypted and
/// the tone still heard; a phone that keeps its keys to itself gets 488.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mandatory_srtp_call_is_encrypted_and_heard() {
    let server = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .srtp(SrtpMode::Mandatory)
        .srtp_keys_over_insecure_transports(true)
        .handler(|| Server)
        .build()
        .await
        .expect("the server starts");
    let addr = server
        .local_addr(TransportKind::Udp)
        .expect("a UDP address");
    let srtp = Srtp {
        mode: SrtpMode::Mandatory,
        keys_in_clear: true,
    };
    let secure = {{module}}::start_with("127.0.0.1:0".parse().expect("an address"), None, srtp)
        .await
        .expect("the phone starts");
    let recording = temp_wav("heard-srtp");
    let options = CallOptions {
        uri: format!("sip:service@{addr}"),
        duration: Some(Duration::from_millis(1500)),
        record: Some(recording.clone()),
        ..CallOptions::default()
    };
    let (_keep, control) = mpsc::channel::<Control>(1);
    let report = secure
        .call(&options, control, |_| {})
        .await
        .expect("the call goes through");
    secure.shutdown().await;
    assert!(report.answered && report.completed, "{report:?}");
    let media = report.media.expect("media counts");
    assert!(media.srtp.is_some(), "{media:?}");
    assert!(media.packets_received > 40, "{media:?}");
    assert_eq!(media.srtp_auth_failures, 0, "{media:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sound = heard(&recording);
    let _ = std::fs::remove_file(&recording);
    assert!(sound.len() >= 8000, "only {} samples heard", sound.len());
    assert!(
        tone_present(&sound[..8000], TONE_HZ, 8000, 0.8),
        "the {TONE_HZ} Hz tone was not heard"
    );

    // The default phone: best effort, no keys over UDP, so a plain offer.
    let plain = phone().await;
    let (_keep, control) = mpsc::channel::<Control>(1);
    let refused = plain
        .call(&options, control, |_| {})
        .await
        .expect("the call is placed");
    plain.shutdown().await;
    server.shutdown(Duration::from_millis(500)).await;
    assert!(!refused.answered);
    assert_eq!(refused.status, 488);
}

#[test]
fn mandatory_srtp_needs_keys_in_clear_here() {
    let srtp = Srtp {
        mode: Srtp::parse_mode("mandatory").expect("a mode"),
        keys_in_clear: false,
    };
    let refused = srtp.check().expect_err("no TLS here");
    assert!(refused.contains("--srtp-keys-in-clear"), "{refused}");
    assert!(
        Srtp {
            keys_in_clear: true,
            ..srtp
        }
        .check()
        .is_ok()
    );
    assert_eq!(Srtp::parse_mode("off"), Ok(SrtpMode::Off));
    assert_eq!(Srtp::parse_mode("best-effort"), Ok(SrtpMode::BestEffort));
    assert!(Srtp::parse_mode("maybe").is_err());
}

/// A file in the temporary folder.
fn temp_wav(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "{}-{what}-{}.wav",
        env!("CARGO_PKG_NAME"),
        std::process::id()
    ))
}

/// Writes `seconds` of `hz` to `path`.
fn write_tone(path: &Path, hz: f64, seconds: f64) {
    let mut wav = WavRecorder::create(path).expect("the file can be written");
    wav.write(&testing::tone(hz, seconds))
        .expect("the file can be written");
    wav.finish().expect("the file can be written");
}

#[test]
fn audio_plays_the_file_and_records_what_it_hears() {
    let play = temp_wav("play");
    let record = temp_wav("record");
    write_tone(&play, 500.0, 0.5);
    let options = CallOptions {
        play: Some(play.clone()),
        record: Some(record.clone()),
        ..CallOptions::default()
    };
    let mut media = MediaHarness::new(Audio::new(&options));
    media.start();
    assert_eq!(media.now_playing(), Some(&PlaySource::File(play.clone())));
    assert!(media.is_recording());
    // What the call sends: the file, then silence.
    assert!(testing::has_tone(
        media.run_for(Duration::from_millis(500)),
        500.0
    ));
    assert!(media.run_until_idle(Duration::from_millis(40)));
    assert_eq!(media.completed(), [PlaySource::File(play.clone())]);
    // What the call hears goes to the recording.
    media.receive(&testing::tone(TONE_HZ, 0.5));
    media.end();
    let mut wav = WavSource::open(&record).expect("the recording exists");
    let mut sound = vec![0i16; 8000];
    let n = wav.read(&mut sound);
    sound.truncate(n);
    let _ = std::fs::remove_file(&play);
    let _ = std::fs::remove_file(&record);
    assert_eq!(sound.len(), 4000);
    assert!(testing::has_tone(&sound, TONE_HZ));
}

#[test]
fn audio_without_a_file_sends_silence() {
    let mut media = MediaHarness::new(Audio::new(&CallOptions::default()));
    media.start();
    assert_eq!(media.now_playing(), None);
    assert!(!media.is_recording());
    assert!(media.run(10).iter().all(|&s| s == 0));
}

/// A speaker that keeps what it is given.
#[derive(Clone, Default)]
struct Speaker(Arc<Mutex<Vec<i16>>>);

impl AudioSink for Speaker {
    fn write(&mut self, samples: &[i16]) {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(samples);
    }
}

#[test]
fn the_microphone_wins_over_the_file_and_the_speaker_hears() {
    let speaker = Speaker::default();
    let options = CallOptions {
        play: Some(PathBuf::from("unused.wav")),
        microphone: Some(LiveSource::new(parrot_core::media::Tone::new(700.0, 0.5))),
        speaker: Some(LiveSink::new(speaker.clone())),
        ..CallOptions::default()
    };
    let mut media = MediaHarness::new(Audio::new(&options));
    media.start();
    assert!(matches!(media.now_playing(), Some(PlaySource::Live(_))));
    assert!(testing::has_tone(
        media.run_for(Duration::from_millis(200)),
        700.0
    ));
    media.receive(&testing::tone(TONE_HZ, 0.2));
    let played = speaker.0.lock().expect("not poisoned").clone();
    assert_eq!(played.len(), 1600);
    assert!(testing::has_tone(&played, TONE_HZ));
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
    // Hang up as Enter would, as soon as the call is answered.
    let (tx, control) = mpsc::channel(1);
    let mut seen = Vec::new();
    let report = phone
        .call(&options, control, |p| {
            if matches!(p, Progress::Answered(..)) {
                tx.try_send(Control::Hangup).expect("room for one control");
            }
            seen.push(p);
        })
        .await
        .expect("the call goes through");
    phone.shutdown().await;
    server.shutdown(Duration::from_millis(500)).await;

    assert!(report.answered && report.completed, "{report:?}");
    assert_eq!(report.status, 200);
    assert_eq!(seen.last(), Some(&Progress::HangingUp), "{seen:?}");
}
{%- endif %}

/// Answers `transfer` and transfers the caller to `service` on the same
/// server half a second later (REFER); the outcome goes to `outcomes`.
struct Transferor(mpsc::UnboundedSender<Result<u16, String>>);

impl SipHandler for Transferor {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        if call.to_user() != Some("transfer") {
            return Server.invite(call).await;
        }
        let handle = call.handle().cloned().expect("a handle");
        let addr = call
            .endpoint()
            .and_then(|e| e.local_addr(TransportKind::Udp))
            .expect("the server's address");
        let outcomes = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let r = handle.transfer(&format!("sip:service@{addr}")).await;
            let _ = outcomes.send(r.map(|s| s.as_u16()).map_err(|e| e.to_string()));
        });
{%- if media %}
        call.answer(Tone).await
{%- else %}
        Reply::ok()
{%- endif %}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_is_followed() {
    let (tx, mut outcomes) = mpsc::unbounded_channel();
    let server = Endpoint::builder()
        .udp("127.0.0.1:0".parse().expect("an address"))
        .handler(move || Transferor(tx.clone()))
        .build()
        .await
        .expect("the server starts");
    let addr = server
        .local_addr(TransportKind::Udp)
        .expect("a UDP address");
    let phone = phone().await;
    let options = CallOptions {
        uri: format!("sip:transfer@{addr}"),
        duration: Some(Duration::from_secs(2)),
        ..CallOptions::default()
    };
    let (_keep, control) = mpsc::channel(1);
    let mut seen = Vec::new();
    let report = phone
        .call(&options, control, |p| seen.push(p))
        .await
        .expect("the call goes through");
    let outcome = tokio::time::timeout(Duration::from_secs(5), outcomes.recv())
        .await
        .expect("the transferor hears the outcome");
    phone.shutdown().await;
    server.shutdown(Duration::from_millis(500)).await;
    assert_eq!(outcome, Some(Ok(200)), "{seen:?}");
    assert!(
        seen.contains(&Progress::Transferred(format!("sip:service@{addr}"))),
        "{seen:?}"
    );
    assert!(report.answered && report.completed, "{report:?}");
}

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
