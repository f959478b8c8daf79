//! Calls with audio between Parrot endpoints: the UAS answers with a media
//! handler that plays a greeting and records the caller; the UAC plays a tone
//! and records what it hears. Recordings are checked by frequency and length.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, MediaHandler, PlaySource};
use parrot_core::transport::TransportKind;
use parrot_core::ua::{CallEvent, Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::{free_addr, heard};
use std::path::PathBuf;
use std::time::Duration;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("parrot-mc-{}-{name}", std::process::id()))
}

/// Plays a tone for `seconds`, records what comes in to `record`.
struct ToneAndRecord {
    freq: f64,
    seconds: f64,
    record: PathBuf,
}

impl MediaHandler for ToneAndRecord {
    fn stream_started(&mut self) -> Action {
        Action::Record(self.record.clone()).then(Action::tone(self.freq, self.seconds))
    }
    fn play_complete(&mut self, _played: &PlaySource) -> Action {
        Action::Nothing
    }
}

struct Greeter {
    record: PathBuf,
}

impl SipHandler for Greeter {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        call.answer(ToneAndRecord {
            freq: 1000.0,
            seconds: 1.0,
            record: self.record.clone(),
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_carries_audio_both_ways() {
    let uas_rec = temp("uas-heard.wav");
    let uac_rec = temp("uac-heard.wav");
    let r = uas_rec.clone();
    let server = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Greeter { record: r.clone() })
        .build()
        .await
        .unwrap();
    let addr = server.local_addr(TransportKind::Udp).unwrap();
    let phone = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = phone
        .dial(&format!("sip:service@{addr}"))
        .unwrap()
        .media(ToneAndRecord {
            freq: 440.0,
            seconds: 1.0,
            record: uac_rec.clone(),
        })
        .send()
        .await
        .unwrap();
    let answer = call.answered().await.unwrap();
    assert!(
        String::from_utf8_lossy(answer.body()).contains("m=audio"),
        "the 200 carries the SDP answer"
    );
    // The MediaStarted event follows the answer.
    match tokio::time::timeout(Duration::from_secs(2), call.next_event()).await {
        Ok(Some(CallEvent::MediaStarted { codec, .. })) => assert_eq!(codec, "PCMU/8000"),
        other => panic!("expected MediaStarted, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    call.hangup().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The final counts, published when the session stopped.
    let stats = call.media_stats().unwrap();
    eprintln!("caller's media: {stats:?}");
    assert!(
        stats.packets_received > 50 && stats.packets_sent > 50,
        "{stats:?}"
    );
    let (secs, ok) = heard(&uac_rec, 1000.0);
    assert!(
        ok && (0.9..1.1).contains(&secs),
        "the caller heard {secs:.2} s of 1 kHz: {ok}"
    );
    let (secs, ok) = heard(&uas_rec, 440.0);
    assert!(
        ok && (0.9..1.1).contains(&secs),
        "the server recorded {secs:.2} s of 440 Hz: {ok}"
    );
    phone.shutdown(Duration::from_millis(300)).await;
    server.shutdown(Duration::from_millis(300)).await;
    let _ = std::fs::remove_file(uas_rec);
    let _ = std::fs::remove_file(uac_rec);
}

/// An IVR: the caller sends DTMF '9' (RFC 4733), the server's media handler hangs up.
struct HangsUpOnNine;

impl MediaHandler for HangsUpOnNine {
    fn dtmf(&mut self, digit: char) -> Action {
        if digit == '9' {
            Action::Hangup
        } else {
            Action::Nothing
        }
    }
}

struct Ivr;

impl SipHandler for Ivr {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        call.answer(HangsUpOnNine).await
    }
}

struct Quiet;
impl MediaHandler for Quiet {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_drives_the_server_to_hang_up() {
    let server = Endpoint::builder()
        .udp(free_addr())
        .handler(|| Ivr)
        .build()
        .await
        .unwrap();
    let addr = server.local_addr(TransportKind::Udp).unwrap();
    let phone = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let mut call = phone
        .dial(&format!("sip:ivr@{addr}"))
        .unwrap()
        .media(Quiet)
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.send_dtmf("9").await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Ended) | None => return true,
                Some(_) => {}
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true), "the server hung up after DTMF 9");
    phone.shutdown(Duration::from_millis(300)).await;
    server.shutdown(Duration::from_millis(300)).await;
}
