#![allow(clippy::unwrap_used)] // test code

use super::*;
use crate::media::{WavRecorder, WavSource};
use crate::message::Message;
use crate::sdp::MediaKind;
use crate::ua::UaError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// alice→bob 200, bob→alice 486, anyone→menu answered with [`Menu`] after a 180.
#[derive(Default)]
struct Router {
    acked: bool,
    ring_error: Option<String>,
}

impl SipHandler for Router {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        match (call.from_user(), call.to_user()) {
            (Some("alice"), Some("bob")) => Reply::ok(),
            (Some("bob"), Some("alice")) => Reply::busy_here(),
            (_, Some("menu")) => {
                call.ring().await.unwrap();
                call.provisional(Reply::new(StatusCode::SESSION_PROGRESS))
                    .await
                    .unwrap();
                call.answer(Menu::default()).await
            }
            (_, Some("fickle")) => {
                // Answers, then changes its mind: no audio for a 486.
                let _ = call.answer(Menu::default()).await;
                Reply::busy_here()
            }
            _ => Reply::forbidden(),
        }
    }

    async fn ack(&mut self, _: &Incoming) {
        self.acked = true;
    }

    async fn message(&mut self, req: &Incoming) -> Reply {
        // Provisional replies are for INVITE only, as with the endpoint.
        self.ring_error = call_ring(req).await.err().map(|e| e.to_string());
        Reply::ok().body("text/plain", Bytes::copy_from_slice(req.body()))
    }
}

async fn call_ring(req: &Incoming) -> Result<(), UaError> {
    req.ring().await
}

/// Tone 440 then 1000 (50 ms each); 1 plays 600, 5 sends "12", 9 hangs up, 0 stops.
#[derive(Default)]
struct Menu {
    stopped: Option<Arc<AtomicBool>>,
}

impl MediaHandler for Menu {
    fn stream_started(&mut self) -> Action {
        Action::tone(440.0, 0.05)
    }
    fn play_complete(&mut self, played: &PlaySource) -> Action {
        match played {
            PlaySource::Tone(f, _) if *f == 440.0 => Action::tone(1000.0, 0.05),
            _ => Action::Nothing,
        }
    }
    fn dtmf(&mut self, digit: char) -> Action {
        match digit {
            '1' => Action::tone(600.0, 0.5),
            '5' => Action::SendDtmf("12".into()),
            '9' => Action::Hangup,
            '0' => Action::Stop,
            _ => Action::Nothing,
        }
    }
    fn session_stopped(&mut self) {
        if let Some(s) = &self.stopped {
            s.store(true, Ordering::SeqCst);
        }
    }
}

fn roundtrip(req: &Request) -> Request {
    let msg = Message::parse(req.to_bytes()).unwrap();
    msg.validate().unwrap();
    msg.check_mandatory().unwrap();
    msg.as_request().unwrap().clone()
}

#[test]
fn invite_is_valid_sip() {
    let req = invite("alice", "bob").build();
    let parsed = roundtrip(&req);
    assert_eq!(parsed.method(), &Method::Invite);
    assert_eq!(parsed.uri().to_string(), "sip:bob@192.0.2.1:5060");
    let h = parsed.headers();
    let via = h.top_via().unwrap();
    assert_eq!(via.host.ip(), Some(CALLER.ip()));
    assert!(via.params.value("branch").unwrap().starts_with("z9hG4bK"));
    assert_eq!(h.max_forwards(), Some(70));
    assert_eq!(h.from().unwrap().user(), Some("alice"));
    assert!(h.from().unwrap().tag().is_some());
    assert_eq!(h.to().unwrap().user(), Some("bob"));
    assert!(h.to().unwrap().tag().is_none());
    assert!(h.call_id().is_some());
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, &cseq.method), (1, &Method::Invite));
    assert_eq!(h.contact_list().len(), 1);
    assert_eq!(h.content_length(), Some(0));
    assert!(parsed.body().is_empty());
}

#[test]
fn offer_and_other_requests() {
    let req = invite("alice", "bob").offer().build();
    let parsed = roundtrip(&req);
    assert_eq!(
        parsed.headers().get_str(&HeaderName::ContentType),
        Some("application/sdp")
    );
    assert_eq!(parsed.headers().content_length(), Some(parsed.body().len()));
    let sdp = SessionDescription::parse(parsed.body()).unwrap();
    let audio = &sdp.media[0];
    assert_eq!(audio.kind, MediaKind::Audio);
    assert_eq!(audio.port, CALLER_MEDIA_PORT);
    let names: Vec<_> = audio.codecs().iter().map(|c| c.name.to_string()).collect();
    assert!(names.iter().any(|n| n == "PCMU"), "{names:?}");
    assert!(names.iter().any(|n| n == "PCMA"), "{names:?}");
    assert!(names.iter().any(|n| n == "telephone-event"), "{names:?}");

    let info = request(Method::Info, "alice", "bob")
        .to_tag("t1")
        .call_id("abc@192.0.2.10")
        .cseq(7)
        .header("X-Test", "yes")
        .body("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
        .build();
    let parsed = roundtrip(&info);
    let h = parsed.headers();
    assert_eq!(h.to().unwrap().tag(), Some("t1"));
    assert_eq!(h.call_id().unwrap().as_str(), "abc@192.0.2.10");
    assert_eq!(h.cseq().unwrap().seq, 7);
    assert_eq!(h.cseq().unwrap().method, Method::Info);
    assert_eq!(h.get_str(&HeaderName::from("X-Test")), Some("yes"));
    assert_eq!(parsed.body().as_ref(), b"Signal=5\r\nDuration=160\r\n");

    let from: SocketAddr = "198.51.100.7:5080".parse().unwrap();
    let moved = roundtrip(&request(Method::Options, "a", "b").source(from).build());
    assert_eq!(moved.headers().top_via().unwrap().port, Some(5080));
    assert_eq!(incoming(moved).source(), from);

    assert!(
        invite("a", "b")
            .header("X-Bad", "x\r\ny")
            .try_build()
            .is_err()
    );
}

#[tokio::test]
async fn routes_by_user() {
    let mut h = Router::default();
    assert_eq!(
        call(&mut h, invite("alice", "bob").build()).await.code(),
        200
    );
    assert_eq!(
        call(&mut h, invite("bob", "alice").build()).await.code(),
        486
    );
    let no = call(&mut h, invite("mallory", "bob").build()).await;
    assert_eq!(no.status(), StatusCode::FORBIDDEN);
    assert!(no.provisional().is_empty() && !no.has_media());
    let r = no.response();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.headers().to().unwrap().tag(), Some(LOCAL_TAG));
    assert_eq!(r.headers().call_id(), no.request().headers().call_id());
}

#[tokio::test]
async fn other_methods_go_to_their_handler_method() {
    let mut h = Router::default();
    let msg = call(
        &mut h,
        request(Method::Message, "alice", "bob")
            .body("text/plain", "hi")
            .build(),
    )
    .await;
    assert_eq!(msg.code(), 200);
    assert_eq!(msg.reply().body_ref().unwrap().1.as_ref(), b"hi");
    assert!(h.ring_error.is_some(), "ring outside an INVITE is an error");
    assert_eq!(
        call(&mut h, request(Method::Options, "a", "b").build())
            .await
            .code(),
        200
    );
    assert_eq!(
        call(&mut h, request(Method::Refer, "a", "b").build())
            .await
            .code(),
        405
    );
    let odd = Method::from_name("FROB").unwrap();
    assert_eq!(
        call(&mut h, request(odd, "a", "b").build()).await.code(),
        501
    );
    // The default INVITE answer.
    let mut plain = crate::ua::DefaultHandler;
    assert_eq!(call(&mut plain, invite("a", "b").build()).await.code(), 480);
    // ACK reaches `ack`.
    ack(&mut h, request(Method::Ack, "a", "b").to_tag("x").build()).await;
    assert!(h.acked);
}

#[tokio::test]
#[should_panic(expected = "testing::ack")]
async fn call_refuses_ack() {
    let _ = call(
        &mut Router::default(),
        request(Method::Ack, "a", "b").build(),
    )
    .await;
}

#[tokio::test]
async fn answer_with_media_gives_sdp_and_the_media_handler() {
    let mut h = Router::default();
    let mut out = call(&mut h, invite("carol", "menu").offer().build()).await;
    assert_eq!(out.code(), 200);
    assert_eq!(out.provisional_codes(), [180, 183]);
    let sdp = out.sdp_answer().expect("an SDP answer");
    let audio = &sdp.media[0];
    assert_eq!(audio.kind, MediaKind::Audio);
    assert_eq!(audio.port, MEDIA_PORT);
    let c = sdp
        .connection
        .as_ref()
        .or(audio.connection.as_ref())
        .unwrap();
    assert_eq!(c.ip(), Some(SERVER.ip()));
    assert_eq!(out.codec().map(|c| c.name.as_ref()), Some("PCMU"));
    let n = out.negotiated().unwrap();
    assert_eq!(n.remote_port, CALLER_MEDIA_PORT);
    assert!(n.telephone_event.is_some());

    let mut media = out.take_media().expect("media");
    assert!(!out.has_media() && out.take_media().is_none());
    media.start();
    // 50 ms of 440 Hz (2.5 frames), then 50 ms of 1000 Hz, in the same frame.
    assert!(has_tone(media.run(2), 440.0));
    media.step();
    assert_eq!(media.now_playing(), Some(&PlaySource::Tone(1000.0, 0.05)));
    assert!(has_tone(media.run(2), 1000.0), "440 then 1000");
    assert_eq!(media.completed(), [PlaySource::Tone(440.0, 0.05)]);
    media.press("5");
    assert_eq!(media.dtmf_sent(), "12");
    media.dtmf('1');
    assert_eq!(media.now_playing(), Some(&PlaySource::Tone(600.0, 0.5)));
    assert!(has_tone(media.run(5), 600.0));
    media.dtmf('9');
    assert!(media.hung_up() && media.is_ended());
    assert_eq!(media.received_dtmf(), "519");
    assert!(
        media.run(3).iter().all(|&s| s == 0),
        "silence after the end"
    );
}

#[tokio::test]
async fn offers_that_cannot_be_answered() {
    let mut h = Router::default();
    let g729 = offer_with(vec![Codec::new("G729", 8000, 18)]);
    let out = call(&mut h, invite("carol", "menu").sdp(g729).build()).await;
    assert_eq!(out.code(), 488);
    assert!(!out.has_media() && out.sdp_answer().is_none());
    let bad = call(
        &mut h,
        invite("carol", "menu").sdp("v=0\r\nnonsense").build(),
    )
    .await;
    assert_eq!(bad.code(), 488);
    // No offer: 200 without audio, as the endpoint does.
    let none = call(&mut h, invite("carol", "menu").build()).await;
    assert_eq!(none.code(), 200);
    assert!(none.reply().body_ref().is_none() && !none.has_media());
    // A re-INVITE (in a call) has no media context: 200 without SDP.
    let re = call(&mut h, invite("carol", "menu").to_tag("x").offer().build()).await;
    assert_eq!(re.code(), 200);
    assert!(!re.has_media());
    // Answered, then 486: no audio.
    let fickle = call(&mut h, invite("carol", "fickle").offer().build()).await;
    assert_eq!(fickle.code(), 486);
    assert!(!fickle.has_media() && fickle.negotiated().is_none());
}

/// The offerer's side of [`srtp_offer`]: the same fixed keys, so that it can
/// read the harness's answer and decrypt what the answerer sends.
fn srtp_offerer(mode: SrtpMode) -> Negotiator {
    let keys = SrtpProfile::ALL
        .iter()
        .zip(1u8..)
        .map(|(p, n)| (*p, vec![n; p.key_len() + p.salt_len()]))
        .collect();
    let local = LocalMedia::new(CALLER.ip(), CALLER_MEDIA_PORT)
        .with_codecs(vec![Codec::PCMU, Codec::PCMA])
        .with_srtp(LocalSrtp::with_keys(mode, keys));
    Negotiator::new(local, 1)
}

#[tokio::test]
async fn srtp_offers_are_answered_with_keys() {
    for (mode, proto) in [
        (SrtpMode::Mandatory, "RTP/SAVP"),
        (SrtpMode::BestEffort, "RTP/AVP"),
    ] {
        let offer = srtp_offer(mode);
        let text = String::from_utf8_lossy(&offer).into_owned();
        assert!(
            text.contains(&format!(" {proto} ")) && text.matches("a=crypto:").count() == 3,
            "{text}"
        );
        let out = call(
            &mut Router::default(),
            invite("carol", "menu").sdp(offer.clone()).build(),
        )
        .await;
        assert_eq!(out.code(), 200, "{mode:?}");
        // The strongest suite, on the offer's profile, with a key of the answer's own.
        assert_eq!(out.srtp(), Some(SrtpProfile::AeadAes128Gcm), "{mode:?}");
        let sdp = out.sdp_answer().unwrap();
        assert_eq!(sdp.media[0].protocol, proto);
        let answer = String::from_utf8_lossy(out.reply().body_ref().unwrap().1).into_owned();
        let crypto: Vec<&str> = answer
            .lines()
            .filter(|l| l.starts_with("a=crypto:"))
            .collect();
        assert_eq!(crypto.len(), 1, "{answer}");
        assert!(crypto[0].starts_with("a=crypto:1 AEAD_AES_128_GCM inline:"));
        assert!(!text.contains(&crypto[0]["a=crypto:1 AEAD_AES_128_GCM ".len()..]));

        // The caller reads the answer, and both directions decrypt at the other end.
        let mut offerer = srtp_offerer(mode);
        let _ = offerer.create_offer();
        let theirs = offerer.accept_answer(&sdp).unwrap().srtp.unwrap();
        let ours = out.negotiated().unwrap().srtp.clone().unwrap();
        let rtp = crate::rtp::RtpPacket::new(0, 7, 160, 0x1234, Bytes::from_static(&[0xd5; 160]))
            .to_bytes();
        let sent = ours.outbound().unwrap().protect_rtp(&rtp).unwrap();
        assert_ne!(sent[12..], rtp[12..], "encrypted");
        assert_eq!(theirs.inbound().unwrap().unprotect_rtp(&sent).unwrap(), rtp);
        let back = theirs.outbound().unwrap().protect_rtp(&rtp).unwrap();
        assert_eq!(ours.inbound().unwrap().unprotect_rtp(&back).unwrap(), rtp);
        // A forged packet is refused.
        let mut forged = sent.clone();
        forged[20] ^= 1;
        assert!(theirs.inbound().unwrap().unprotect_rtp(&forged).is_err());
    }
    // A plain offer stays plain.
    let plain = call(
        &mut Router::default(),
        invite("carol", "menu").offer().build(),
    )
    .await;
    assert_eq!(plain.code(), 200);
    assert_eq!(plain.srtp(), None);
    assert!(plain.negotiated().unwrap().srtp.is_none());
    assert_eq!(plain.sdp_answer().unwrap().media[0].protocol, "RTP/AVP");
}

#[tokio::test]
async fn srtp_modes_as_the_endpoint_has_them() {
    let menu = || invite("carol", "menu");
    // Mandatory: a plain offer is refused, an SRTP one answered.
    let plain = call_with_srtp(
        &mut Router::default(),
        menu().offer().build(),
        SrtpMode::Mandatory,
    )
    .await;
    assert_eq!(plain.code(), 488);
    assert!(!plain.has_media());
    let best = call_with_srtp(
        &mut Router::default(),
        menu().srtp_offer(SrtpMode::BestEffort).build(),
        SrtpMode::Mandatory,
    )
    .await;
    assert_eq!(
        (best.code(), best.srtp()),
        (200, Some(SrtpProfile::AeadAes128Gcm))
    );
    // Off: RTP/SAVP is refused, RTP/AVP with keys answered in plain.
    let savp = call_with_srtp(
        &mut Router::default(),
        menu().srtp_offer(SrtpMode::Mandatory).build(),
        SrtpMode::Off,
    )
    .await;
    assert_eq!(savp.code(), 488);
    assert!(
        savp.response().reason().contains("SRTP"),
        "{:?}",
        savp.reply()
    );
    let avp = call_with_srtp(
        &mut Router::default(),
        menu().srtp_offer(SrtpMode::BestEffort).build(),
        SrtpMode::Off,
    )
    .await;
    assert_eq!((avp.code(), avp.srtp()), (200, None));
    let answer = String::from_utf8_lossy(avp.reply().body_ref().unwrap().1).into_owned();
    assert!(!answer.contains("a=crypto"), "{answer}");
    // Off offers plain.
    assert_eq!(srtp_offer(SrtpMode::Off), default_offer());
}

/// A WAV of `seconds` of `hz` in the temp folder.
fn wav(name: &str, hz: f64, seconds: f64) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("parrot-testing-{}-{name}.wav", std::process::id()));
    let mut rec = WavRecorder::create(&path).unwrap();
    rec.write(&tone(hz, seconds)).unwrap();
    rec.finish().unwrap();
    path
}

/// Plays a.wav, then b.wav, then waits; 2 plays a.wav again.
struct Prompts {
    a: PathBuf,
    b: PathBuf,
}

impl MediaHandler for Prompts {
    fn stream_started(&mut self) -> Action {
        Action::play(&self.a)
    }
    fn play_complete(&mut self, played: &PlaySource) -> Action {
        match played {
            PlaySource::File(f) if *f == self.a => Action::play(&self.b),
            _ => Action::Nothing,
        }
    }
    fn dtmf(&mut self, digit: char) -> Action {
        match digit {
            '2' => Action::play(&self.a),
            _ => Action::Nothing,
        }
    }
}

#[test]
fn play_complete_chains_files_on_virtual_time() {
    let a = wav("a", 500.0, 0.2);
    let b = wav("b", 1500.0, 0.3);
    let mut m = MediaHarness::new(Prompts {
        a: a.clone(),
        b: b.clone(),
    });
    assert!(m.step().iter().all(|&s| s == 0), "silence before the start");
    m.start();
    assert_eq!(m.now_playing(), Some(&PlaySource::File(a.clone())));
    assert!(has_tone(m.run_for(Duration::from_millis(200)), 500.0));
    // Exactly ten frames of a.wav: its end shows when the next frame is read,
    // and b.wav fills that frame.
    assert_eq!(m.now_playing(), Some(&PlaySource::File(a.clone())));
    assert!(m.completed().is_empty());
    assert!(has_tone(m.run_for(Duration::from_millis(300)), 1500.0));
    assert_eq!(m.now_playing(), Some(&PlaySource::File(b.clone())));
    assert!(m.run_until_idle(Duration::from_millis(40)));
    assert_eq!(m.elapsed(), Duration::from_millis(20 + 500 + 20));
    assert_eq!(m.frames(), 27);
    assert_eq!(
        m.completed(),
        [PlaySource::File(a.clone()), PlaySource::File(b.clone())]
    );
    m.dtmf('2');
    assert_eq!(m.now_playing(), Some(&PlaySource::File(a.clone())));
    assert_eq!(m.plays().len(), 3);
    assert!(
        !m.run_until_idle(Duration::from_millis(100)),
        "a.wav lasts 200 ms"
    );
    assert!(m.errors().is_empty());
    let _ = std::fs::remove_file(a);
    let _ = std::fs::remove_file(b);
}

#[test]
fn records_what_it_receives_and_reports_errors() {
    let path = std::env::temp_dir().join(format!("parrot-testing-{}-rec.wav", std::process::id()));
    let stopped = Arc::new(AtomicBool::new(false));
    let mut m = MediaHarness::new(Menu {
        stopped: Some(stopped.clone()),
    });
    m.start().apply(Action::Record(path.clone()));
    assert!(m.is_recording());
    m.receive(&tone(700.0, 0.5));
    assert_eq!(m.frames(), 0, "receiving does not move time");
    m.end();
    assert!(stopped.load(Ordering::SeqCst), "session_stopped ran");
    assert!(!m.is_recording());
    let mut src = WavSource::open(&path).unwrap();
    let mut all = vec![0i16; 4000];
    assert_eq!(src.read(&mut all), 4000);
    assert!(has_tone(&all, 700.0));
    let _ = std::fs::remove_file(&path);

    let mut e = MediaHarness::new(Menu::default());
    e.apply(Action::play("/nonexistent/missing.wav"));
    assert_eq!(e.errors().len(), 1);
    assert!(e.errors()[0].contains("missing.wav"), "{:?}", e.errors());
    assert!(e.step().iter().all(|&s| s == 0));
}

#[test]
fn stop_and_ptime() {
    let mut m = MediaHarness::new(Menu::default()).with_ptime(30);
    m.start();
    assert_eq!(m.step().len(), 240);
    m.dtmf('0');
    assert!(m.is_stopped() && m.is_ended() && !m.hung_up());
    assert_eq!(m.outputs(), [Output::Stop]);
    m.dtmf('9');
    assert!(!m.hung_up(), "digits after the end go nowhere");
    assert_eq!(m.elapsed(), Duration::from_millis(30));
    assert_eq!(m.audio().len(), 240);
    m.clear_audio();
    assert!(m.audio().is_empty());
    let _ = m.handler();
}
