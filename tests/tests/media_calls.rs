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
        Action::Record(self.record.clone()).also(Action::tone(self.freq, self.seconds))
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
        // Both ends offer G.722 first: the call is wideband.
        Ok(Some(CallEvent::MediaStarted { codec, .. })) => assert_eq!(codec, "G722/8000"),
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

/// Sends `req` from `sock` and returns the status codes received within `wait`,
/// stopping at the first final one.
async fn statuses(
    sock: &tokio::net::UdpSocket,
    to: std::net::SocketAddr,
    req: &str,
    wait: Duration,
) -> (Vec<u16>, String) {
    sock.send_to(req.as_bytes(), to).await.unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_536];
    let mut codes = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(Ok((n, _))) = tokio::time::timeout(left, sock.recv_from(&mut buf)).await else {
            return (codes, String::new());
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let Some(code) = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|t| t.get(..3))
            .and_then(|c| c.parse::<u16>().ok())
        else {
            continue;
        };
        codes.push(code);
        if code >= 200 {
            return (codes, text);
        }
    }
}

/// The header line `name: value` of a raw message.
fn header_of<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.split("\r\n")
        .find(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .and_then(|l| l.split_once(':'))
        .map_or("", |(_, v)| v.trim())
}

/// A packet duration an offer asks for is a hint, bounded where it enters: one
/// INVITE with `a=ptime:4294967295` aborted the whole server (a 64 GiB frame
/// buffer; in debug builds an overflow panic in the media session), and
/// `a=ptime:1000000` cost 18 MiB per call. The call is answered, carries on, and
/// the endpoint keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_ptime_in_the_offer_is_bounded() {
    let dir = parrot_tests::TempDir::new("ptime");
    let rec = dir.join("heard.wav");
    let server = Endpoint::builder()
        .udp(free_addr())
        .handler(move || Greeter {
            record: rec.clone(),
        })
        .build()
        .await
        .unwrap();
    let addr = server.local_addr(TransportKind::Udp).unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    for (n, ptime) in ["4294967295", "1000000", "0"].iter().enumerate() {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:{ptime}\r\n\
             a=maxptime:{ptime}\r\n"
        );
        let call_id = format!("ptime-{n}@test");
        let head = |method: &str, cseq: u32, to_tag: &str| {
            format!(
                "{method} sip:service@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpt{n}{method}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=f{n}\r\nTo: <sip:service@{addr}>{to_tag}\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:a@{me}>\r\n"
            )
        };
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            head("INVITE", 1, ""),
            sdp.len()
        );
        let (codes, ok) = statuses(&sock, addr, &invite, Duration::from_secs(3)).await;
        assert_eq!(codes.last(), Some(&200), "ptime {ptime}: {codes:?}");
        let to = header_of(&ok, "To").to_owned();
        let tag = to
            .split_once(";tag=")
            .map(|(_, t)| format!(";tag={t}"))
            .unwrap();
        let ack = format!("{}Content-Length: 0\r\n\r\n", head("ACK", 1, &tag));
        sock.send_to(ack.as_bytes(), addr).await.unwrap();
        // Media runs, with a frame of at most 120 ms: RTP arrives within a second.
        rtp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut pkt = [0u8; 2048];
        let (len, _) = rtp.recv_from(&mut pkt).expect("RTP from the server");
        let payload = len - 12;
        assert!(
            (80..=960).contains(&payload),
            "ptime {ptime}: a PCMU frame of 10-120 ms, got {payload} bytes"
        );
        let options = format!(
            "OPTIONS sip:service@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=o{n}\r\nTo: <sip:service@{addr}>\r\n\
             Call-ID: opt-{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let (codes, _) = statuses(&sock, addr, &options, Duration::from_secs(2)).await;
        assert_eq!(codes.last(), Some(&200), "OPTIONS after ptime {ptime}");
        let bye = format!("{}Content-Length: 0\r\n\r\n", head("BYE", 2, &tag));
        let (codes, _) = statuses(&sock, addr, &bye, Duration::from_secs(2)).await;
        assert_eq!(codes.last(), Some(&200), "BYE after ptime {ptime}");
    }
    server.shutdown(Duration::from_millis(300)).await;
}
