//! SRTP calls between Parrot and baresip (its `srtp` module, Debian's `baresip-core`), on
//! loopback, audio checked both ways with tones:
//!
//! - baresip with `mediaenc=srtp-mand` calls a Parrot server over TLS (the keys travel only
//!   over TLS by default), and a Parrot UAC with mandatory SRTP calls baresip over TLS;
//! - best effort (`mediaenc=srtp`: `RTP/AVP` with `a=crypto`) both ways over UDP, with keys in
//!   clear allowed explicitly (`srtp_keys_over_insecure_transports`);
//! - baresip `srtp-mand` over UDP to a server with the default policy gets 488;
//! - a Parrot UAC with mandatory SRTP holds baresip and resumes over TLS: the re-INVITEs keep
//!   the keys (RFC 4568 §7.1.4, read back from baresip's SIP trace), baresip stops sending
//!   while held, and after the resume its packets authenticate and its tone is heard again.
//!
//! If SRTP were not applied on either side, the other side could not decrypt (or would not
//! authenticate) a single packet and nothing would be heard.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::media::{Action, MediaHandler, PlaySource};
use parrot_core::rtp::SrtpProfile;
use parrot_core::transport::{TransportConfig, TransportKind};
use parrot_core::ua::{EndReason, Endpoint, Incoming, Reply, SipHandler, SrtpMode};
use parrot_tests::{BaresipConfig, TempDir, baresip, baresip_with_args, free_port, heard};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Parrot's tone (Hz) and its length (s).
const PARROT_TONE: f64 = 1000.0;
const PARROT_SECS: f64 = 2.0;
/// baresip's tone (Hz) and the length of its WAV (s; a caller hangs up at its end).
const BARESIP_TONE: f64 = 440.0;
const BARESIP_SECS: f64 = 3.0;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn has(&self, prefix: &str) -> bool {
        self.events().iter().any(|e| e.starts_with(prefix))
    }
    async fn wait_for(&self, prefix: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline && !self.has(prefix) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.has(prefix)
    }
}

/// Plays a tone and records what comes in.
struct ToneAndRecord {
    record: PathBuf,
    log: Log,
}

impl MediaHandler for ToneAndRecord {
    fn stream_started(&mut self) -> Action {
        self.log.push("media started");
        Action::Record(self.record.clone()).also(Action::tone(PARROT_TONE, PARROT_SECS))
    }
    fn play_complete(&mut self, _played: &PlaySource) -> Action {
        Action::Nothing
    }
    fn session_stopped(&mut self) {
        self.log.push("media stopped");
    }
}

/// The server: answers with [`ToneAndRecord`] and logs what its answer says about SRTP.
struct Uas {
    record: PathBuf,
    log: Log,
}

impl SipHandler for Uas {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let offer = String::from_utf8_lossy(call.body()).into_owned();
        self.log.push(format!("offer {}", sdp_summary(&offer)));
        let reply = call
            .answer(ToneAndRecord {
                record: self.record.clone(),
                log: self.log.clone(),
            })
            .await;
        let answer = reply
            .body_ref()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.log.push(format!(
            "answered {} {}",
            reply.status(),
            sdp_summary(&answer)
        ));
        reply
    }
    async fn ended(&mut self, reason: EndReason) {
        self.log.push(format!("ended {reason:?}"));
    }
}

/// The audio line's protocol and the suites of its `a=crypto` lines.
fn sdp_summary(sdp: &str) -> String {
    let proto = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').nth(1))
        .unwrap_or("-");
    let suites: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=crypto:"))
        .filter_map(|c| c.split(' ').nth(1))
        .collect();
    format!("{proto} crypto [{}]", suites.join(","))
}

/// A self-signed certificate for 127.0.0.1: rustls configs for both ends, and the PEM file
/// (certificate and key) baresip's `sip_certificate` wants.
fn tls(
    dir: &Path,
) -> (
    Arc<rustls::ServerConfig>,
    Arc<rustls::ClientConfig>,
    PathBuf,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pem = dir.join("cert.pem");
    std::fs::write(
        &pem,
        format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem()),
    )
    .unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client), pem)
}

/// A baresip configuration directory: the shared headless config plus the `srtp` module
/// (and a TLS certificate), and one account with `mediaenc` (auto-answering).
fn baresip_conf(
    tmp: &TempDir,
    sip_port: u16,
    mediaenc: &str,
    tls: bool,
    cert: Option<&Path>,
) -> (PathBuf, PathBuf) {
    let wav = tmp.join("baresip.wav");
    parrot_tests::write_tone(&wav, BARESIP_TONE, BARESIP_SECS, 0.0);
    let config = BaresipConfig {
        sip_port,
        source_wav: wav,
        dump_dir: tmp.join("dump"),
    };
    let dir = tmp.join("conf");
    config.write(&dir);
    let mut text = config.config();
    text.push_str("module\t\t\tsrtp.so\n");
    if let Some(cert) = cert {
        text.push_str(&format!("sip_certificate\t\t{}\n", cert.display()));
    }
    std::fs::write(dir.join("config"), text).unwrap();
    let transport = if tls { ";transport=tls" } else { "" };
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:test@127.0.0.1{transport}>;regint=0;audio_codecs=pcmu;mediaenc={mediaenc};answermode=auto\n"
        ),
    )
    .unwrap();
    (dir, config.dump_dir)
}

/// The file in `dir` whose name ends with `suffix`.
fn find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

/// Checks a recording of the other side: `freq` for about `secs`.
fn assert_heard(path: &Path, freq: f64, secs: f64, who: &str, out: &str) {
    let (got, ok) = heard(path, freq);
    eprintln!("{who} heard {got:.2} s of {freq} Hz: {ok}");
    assert!(
        ok && (secs - 0.6..secs + 0.3).contains(&got),
        "{who} heard {got:.2} s, {freq} Hz: {ok}\n{out}"
    );
}

/// baresip (`mediaenc`) calls a Parrot server at `uri`; both must hear each other, and the
/// server's answer must carry `answer` (e.g. `RTP/SAVP crypto [AES_CM_128_HMAC_SHA1_80]`).
async fn baresip_calls_parrot(mediaenc: &str, tls_call: bool, insecure_keys: bool, answer: &str) {
    let tmp = TempDir::new("srtp-in");
    let (server_tls, _, cert) = tls(tmp.path());
    let recording = tmp.join("parrot-heard.wav");
    let log = Log::default();
    let (record, l) = (recording.clone(), log.clone());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Endpoint::builder()
        .udp(addr)
        .tls(addr, server_tls)
        .srtp_keys_over_insecure_transports(insecure_keys)
        .handler(move || Uas {
            record: record.clone(),
            log: l.clone(),
        })
        .build()
        .await
        .unwrap();
    let (conf, dump) = baresip_conf(&tmp, free_port(), mediaenc, tls_call, Some(&cert));
    let uri = if tls_call {
        format!("sip:service@{}:{};transport=tls", addr.ip(), addr.port())
    } else {
        format!("sip:service@{addr}")
    };
    let dial = format!("/dial {uri}");
    let run = baresip(
        &conf,
        &[&dial],
        Duration::from_secs(7),
        Duration::from_secs(20),
    )
    .await;
    let out = &run.output;
    let events = log.events();
    eprintln!("server saw: {events:?}");
    assert!(
        out.contains("Call established"),
        "baresip did not establish the call; server saw {events:?}\n{out}"
    );
    assert!(
        log.wait_for("media stopped", Duration::from_secs(3)).await,
        "{:?}\n{out}",
        log.events()
    );
    assert!(
        log.has(&format!("answered 200 {answer}")),
        "the answer is {answer}: {events:?}"
    );
    assert!(out.contains("SRTP is Enabled"), "{out}");
    assert!(!out.contains("failed to decrypt"), "{out}");
    assert_heard(&recording, BARESIP_TONE, BARESIP_SECS, "Parrot", out);
    let dec =
        find(&dump, "-dec.wav").unwrap_or_else(|| panic!("no dump of what baresip heard\n{out}"));
    assert_heard(&dec, PARROT_TONE, PARROT_SECS, "baresip", out);
    server.shutdown(Duration::from_millis(300)).await;
}

/// A Parrot UAC (`mode`) calls baresip (`mediaenc`, auto-answering) and hangs up after 3.5 s;
/// both must hear each other, and the call's media must run on `suite`.
async fn parrot_calls_baresip(
    mode: SrtpMode,
    mediaenc: &str,
    tls_call: bool,
    insecure_keys: bool,
    suite: SrtpProfile,
    rtcp_mux: bool,
) {
    let tmp = TempDir::new("srtp-out");
    let (_, client_tls, cert) = tls(tmp.path());
    let sip_port = free_port();
    let (conf, dump) = baresip_conf(&tmp, sip_port, mediaenc, tls_call, Some(&cert));
    if rtcp_mux {
        // baresip answers a=rtcp-mux only when its config allows it (off by default).
        let text = std::fs::read_to_string(conf.join("config")).unwrap();
        std::fs::write(conf.join("config"), text + "rtcp_mux\t\tyes\n").unwrap();
    }
    // baresip listens for TLS one port above its `sip_listen` port.
    let uri = if tls_call {
        format!("sip:test@127.0.0.1:{};transport=tls", sip_port + 1)
    } else {
        format!("sip:test@127.0.0.1:{sip_port}")
    };
    let phone = tokio::spawn({
        let conf = conf.clone();
        async move { baresip(&conf, &[], Duration::from_secs(9), Duration::from_secs(20)).await }
    });
    // Give baresip a moment to bind its ports.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let transport = TransportConfig {
        tls_client: Some(client_tls),
        ..TransportConfig::default()
    };
    let client = Endpoint::builder()
        .udp("127.0.0.1:0".parse().unwrap())
        .transport_config(transport)
        .srtp(mode)
        .srtp_keys_over_insecure_transports(insecure_keys)
        .build()
        .await
        .unwrap();
    let recording = tmp.join("parrot-heard.wav");
    let log = Log::default();
    let mut call = client
        .dial(&uri)
        .unwrap()
        .media(ToneAndRecord {
            record: recording.clone(),
            log: log.clone(),
        })
        .send()
        .await
        .unwrap();
    let answered = call.answered().await;
    let answered = match answered {
        Ok(r) => r,
        Err(e) => {
            let run = phone.await.unwrap();
            panic!("baresip did not answer: {e}\n{}", run.output);
        }
    };
    let answer = String::from_utf8_lossy(answered.body()).into_owned();
    eprintln!("baresip answered {}", sdp_summary(&answer));
    // We offer RTCP on the RTP port (RFC 5761); baresip takes it only when told to.
    assert_eq!(answer.contains("a=rtcp-mux"), rtcp_mux, "{answer}");
    // The call's events (MediaStarted brings the counts) for 3.5 s.
    let until = tokio::time::Instant::now() + Duration::from_millis(3500);
    while let Ok(Some(_)) = tokio::time::timeout_at(until, call.next_event()).await {}
    let stats = call.media_stats().expect("media stats");
    let _ = call.hangup().await;
    let run = phone.await.unwrap();
    let out = &run.output;
    eprintln!("Parrot's media: {stats:?}");
    assert_eq!(stats.srtp, Some(suite), "{out}");
    // baresip sends an RTCP APP "PING" in clear before its SRTP starts (too short for
    // SRTCP: malformed), and its RTCP BYE in clear after it stops (fails authentication):
    // at most one of each; every RTP packet authenticates.
    assert_eq!(stats.srtp_replays, 0, "{stats:?}");
    assert!(
        stats.srtp_auth_failures <= 1 && stats.srtp_malformed <= 1,
        "{stats:?}"
    );
    assert!(stats.packets_received > 100, "{stats:?}");
    if rtcp_mux {
        // Our RTCP socket is closed: baresip's SRTCP came in on the RTP port
        // and was read as RTCP: it authenticated with the SRTCP context and
        // reached the RTCP parser (which does not take baresip's APP-only
        // compound: "malformed"; a report within the 3 s counts as received).
        // Taken for SRTP, it would have failed SRTP's authentication.
        assert!(
            stats.rtcp_received + stats.dropped.rtcp_malformed >= 1,
            "{stats:?}"
        );
    }
    // Our SRTP and SRTCP (a report goes out in the first 2 s) decrypt at baresip.
    assert!(out.contains("SRTP is Enabled"), "{out}");
    assert!(!out.contains("failed to decrypt"), "{out}");
    assert!(
        log.wait_for("media stopped", Duration::from_secs(3)).await,
        "{:?}",
        log.events()
    );
    // baresip loops its WAV as a callee: its tone is heard for the whole call.
    let (got, ok) = heard(&recording, BARESIP_TONE);
    eprintln!("Parrot heard {got:.2} s of {BARESIP_TONE} Hz: {ok}");
    assert!(ok && got > 2.5, "Parrot heard {got:.2} s: {ok}\n{out}");
    let dec =
        find(&dump, "-dec.wav").unwrap_or_else(|| panic!("no dump of what baresip heard\n{out}"));
    assert_heard(&dec, PARROT_TONE, PARROT_SECS, "baresip", out);
    client.shutdown(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_srtp_mand_calls_parrot_over_tls() {
    baresip_calls_parrot(
        "srtp-mand",
        true,
        false,
        "RTP/SAVP crypto [AES_CM_128_HMAC_SHA1_80]",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_calls_baresip_with_srtcp_on_the_rtp_port() {
    parrot_calls_baresip(
        SrtpMode::BestEffort,
        "srtp",
        false,
        true,
        SrtpProfile::AeadAes128Gcm,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_with_mandatory_srtp_calls_baresip_srtp_mand_over_tls() {
    parrot_calls_baresip(
        SrtpMode::Mandatory,
        "srtp-mand",
        true,
        false,
        SrtpProfile::AeadAes128Gcm,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_best_effort_srtp_calls_parrot_over_udp_with_keys_allowed() {
    baresip_calls_parrot(
        "srtp",
        false,
        true,
        "RTP/AVP crypto [AES_CM_128_HMAC_SHA1_80]",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_best_effort_calls_baresip_best_effort_over_udp_with_keys_allowed() {
    parrot_calls_baresip(
        SrtpMode::BestEffort,
        "srtp",
        false,
        true,
        SrtpProfile::AeadAes128Gcm,
        false,
    )
    .await;
}

/// Keys only over TLS by default: baresip's `srtp-mand` over UDP gets 488.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_mand_over_udp_is_refused_by_default() {
    let tmp = TempDir::new("srtp-udp");
    let log = Log::default();
    let (record, l) = (tmp.join("unused.wav"), log.clone());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Endpoint::builder()
        .udp(addr)
        .handler(move || Uas {
            record: record.clone(),
            log: l.clone(),
        })
        .build()
        .await
        .unwrap();
    let (conf, _) = baresip_conf(&tmp, free_port(), "srtp-mand", false, None);
    let dial = format!("/dial sip:service@{addr}");
    let run = baresip(
        &conf,
        &[&dial],
        Duration::from_secs(3),
        Duration::from_secs(15),
    )
    .await;
    let events = log.events();
    eprintln!("server saw: {events:?}");
    assert!(
        log.has("offer RTP/SAVP crypto [AES_CM_128_HMAC_SHA1_80]"),
        "{events:?}"
    );
    assert!(log.has("answered 488"), "{events:?}\n{}", run.output);
    assert!(!run.output.contains("Call established"), "{}", run.output);
    assert_eq!(server.local_addr(TransportKind::Udp), Some(addr));
    server.shutdown(Duration::from_millis(300)).await;
}

/// Seconds of `freq` in a recording (8 kHz): its 100 ms windows in which `freq` carries most
/// of the energy.
fn seconds_of(path: &Path, freq: f64) -> f64 {
    let mut wav = parrot_core::media::WavSource::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut all = vec![0i16; (wav.duration() * 8000.0) as usize + 800];
    let n = parrot_core::media::AudioSource::read(&mut wav, &mut all);
    let windows = all[..n]
        .chunks_exact(800)
        .filter(|w| parrot_core::media::tone_present(w, freq, 8000, 0.8))
        .count();
    windows as f64 / 10.0
}

/// The `a=crypto` lines of each SIP message in baresip's trace (`-s`) whose first line
/// starts with `start` (e.g. `INVITE ` or `SIP/2.0 200`), in order; messages without any
/// are left out.
fn crypto_lines(trace: &str, start: &str) -> Vec<Vec<String>> {
    let mut messages: Vec<Vec<String>> = Vec::new();
    let mut inside = false;
    for line in trace.lines() {
        let line = line.trim_end();
        if line.starts_with("INVITE ")
            || line.starts_with("SIP/2.0 ")
            || line.starts_with("ACK ")
            || line.starts_with("BYE ")
        {
            inside = line.starts_with(start);
            if inside {
                messages.push(Vec::new());
            }
        } else if inside && line.starts_with("a=crypto:") {
            if let Some(m) = messages.last_mut() {
                m.push(line.to_owned());
            }
        }
    }
    messages.retain(|m| !m.is_empty());
    messages
}

/// Hold and resume over SRTP (RFC 3264 §8.4 with RFC 4568 §7.1.4): a Parrot UAC with
/// mandatory SRTP calls baresip (`srtp-mand`, TLS), holds it (re-INVITE `a=sendonly`) and
/// resumes (`a=sendrecv`). Its re-INVITEs repeat the first offer's keys; baresip stops
/// sending while held; after the resume its packets authenticate again (counted), its tone
/// is heard (seconds counted in a recording started at the resume), and it decrypts ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_holds_and_resumes_baresip_over_srtp() {
    let tmp = TempDir::new("srtp-hold");
    let (_, client_tls, cert) = tls(tmp.path());
    let sip_port = free_port();
    let (conf, _) = baresip_conf(&tmp, sip_port, "srtp-mand", true, Some(&cert));
    // baresip hangs up (without a BYE) when its WAV ends: one that outlasts the call.
    parrot_tests::write_tone(&tmp.join("baresip.wav"), BARESIP_TONE, 12.0, 0.0);
    let uri = format!("sip:test@127.0.0.1:{};transport=tls", sip_port + 1);
    let phone = tokio::spawn({
        let conf = conf.clone();
        async move {
            baresip_with_args(
                &conf,
                &["-s"],
                &[],
                Duration::from_secs(13),
                Duration::from_secs(25),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = Endpoint::builder()
        .udp("127.0.0.1:0".parse().unwrap())
        .transport_config(TransportConfig {
            tls_client: Some(client_tls),
            ..TransportConfig::default()
        })
        .srtp(SrtpMode::Mandatory)
        .build()
        .await
        .unwrap();
    let before = tmp.join("parrot-heard-before.wav");
    let after = tmp.join("parrot-heard-after.wav");
    let log = Log::default();
    let mut call = client
        .dial(&uri)
        .unwrap()
        .media(ToneAndRecord {
            record: before.clone(),
            log: log.clone(),
        })
        .send()
        .await
        .unwrap();
    if let Err(e) = call.answered().await {
        let run = phone.await.unwrap();
        panic!("baresip did not answer: {e}\n{}", run.output);
    }
    while call.media_stats().is_none() {
        match tokio::time::timeout(Duration::from_secs(3), call.next_event()).await {
            Ok(Some(_)) => {}
            other => panic!("no media: {other:?}"),
        }
    }
    // Drains the call's events while waiting (the stats are read from a watch).
    async fn wait(call: &mut parrot_core::ua::OutgoingCall, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(_)) = tokio::time::timeout_at(until, call.next_event()).await {}
    }
    let stats = |call: &parrot_core::ua::OutgoingCall| call.media_stats().unwrap();
    wait(&mut call, 2000).await;
    let talking = stats(&call);
    if let Err(e) = call.hold().await {
        let _ = call.hangup().await;
        let run = phone.await.unwrap();
        panic!("the hold failed: {e}\n{}", run.output);
    }
    // What was in flight when baresip took the answer arrives in the first moments.
    wait(&mut call, 500).await;
    let held_from = stats(&call);
    wait(&mut call, 2000).await;
    let held_to = stats(&call);
    if let Err(e) = call.resume().await {
        let _ = call.hangup().await;
        let run = phone.await.unwrap();
        panic!("the resume failed: {e}\n{}", run.output);
    }
    call.media_action(Action::Record(after.clone()))
        .await
        .unwrap();
    wait(&mut call, 500).await;
    let resumed_from = stats(&call);
    wait(&mut call, 2500).await;
    let resumed_to = stats(&call);
    let _ = call.hangup().await;
    let run = phone.await.unwrap();
    let out = &run.output;
    let received = |a: &parrot_core::media::MediaStats, b: &parrot_core::media::MediaStats| {
        b.packets_received - a.packets_received
    };
    eprintln!(
        "packets from baresip: {} before the hold, {} in 2 s held, {} in 2.5 s resumed; \
         at the end {resumed_to:?}",
        talking.packets_received,
        received(&held_from, &held_to),
        received(&resumed_from, &resumed_to),
    );
    assert_eq!(resumed_to.srtp, Some(SrtpProfile::AeadAes128Gcm), "{out}");
    assert!(talking.packets_received > 60, "{talking:?}\n{out}");
    assert!(
        received(&held_from, &held_to) < 10,
        "held: baresip stops sending ({held_from:?} then {held_to:?})\n{out}"
    );
    // 2.5 s at 50 packets a second (the counts are published once a second): at least
    // 1.5 s of them.
    assert!(
        received(&resumed_from, &resumed_to) > 75,
        "resumed: baresip sends again ({resumed_from:?} then {resumed_to:?})\n{out}"
    );
    // Every packet after the resume authenticated and was fresh: the failures are at most
    // baresip's clear RTCP BYE at the end (see parrot_calls_baresip).
    assert_eq!(resumed_to.srtp_replays, 0, "{resumed_to:?}");
    assert!(
        resumed_to.srtp_auth_failures <= 1 && resumed_to.srtp_malformed <= 1,
        "{resumed_to:?}"
    );
    // baresip decrypts every packet we send, after the resume too (it logs each one it
    // cannot). Its decode dump stops at the first re-INVITE (baresip 1.0 restarts its
    // player without the dump filter), so what it heard after the resume is not recorded.
    assert!(
        resumed_to.packets_sent - resumed_from.packets_sent > 75,
        "{resumed_from:?} then {resumed_to:?}"
    );
    assert!(!out.contains("failed to decrypt"), "{out}");

    // Our three offers (the INVITE, the hold, the resume) carry the same keys.
    let offers = crypto_lines(out, "INVITE ");
    let answers = crypto_lines(out, "SIP/2.0 200");
    eprintln!("our offers' a=crypto: {offers:#?}\nbaresip's answers' a=crypto: {answers:#?}");
    assert_eq!(offers.len(), 3, "INVITE, hold, resume\n{out}");
    assert_eq!(offers[0].len(), 3, "one line per suite: {offers:?}");
    assert!(
        offers.iter().all(|o| *o == offers[0]),
        "the re-INVITEs keep the keys: {offers:#?}"
    );
    assert_eq!(answers.len(), 3, "{out}");

    // Each side hears the other after the resume.
    assert!(
        log.wait_for("media stopped", Duration::from_secs(3)).await,
        "{:?}",
        log.events()
    );
    let heard_before = seconds_of(&before, BARESIP_TONE);
    let heard_after = seconds_of(&after, BARESIP_TONE);
    eprintln!(
        "Parrot heard {heard_before:.1} s of {BARESIP_TONE} Hz before the hold and \
         {heard_after:.1} s after the resume"
    );
    assert!(heard_before > 1.5, "{heard_before}");
    assert!(heard_after > 2.0, "{heard_after}");
    client.shutdown(Duration::from_millis(300)).await;
}
