//! Two media sessions on loopback play a tone to each other through G.711 and
//! G.722; the receiver's recording is checked by frequency (Goertzel) and by
//! length, directly and through a relay that drops and reorders packets. A
//! G.722 session's packets are read off the wire: payload type 9, 160 octets
//! and 160 timestamp units per 20 ms (RFC 3551 §4.5.2), DTMF on the same clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::codec::Codec;
use parrot_core::media::{
    Action, AudioSource, MediaConfig, MediaHandler, MediaSession, MediaStats, WavSource, bind_pair,
    tone_present,
};
use parrot_core::rtp::PortAllocator;
use parrot_core::rtp::SrtpProfile;
use parrot_core::sdp::{
    Direction, LocalMedia, LocalSrtp, NegotiatedSrtp, Negotiator, SessionDescription, SrtpMode,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

struct Player(f64, f64);
impl MediaHandler for Player {
    fn stream_started(&mut self) -> Action {
        Action::tone(self.0, self.1)
    }
}

struct Recorder(PathBuf);
impl MediaHandler for Recorder {
    fn stream_started(&mut self) -> Action {
        Action::Record(self.0.clone())
    }
}

/// Plays a tone and sends a digit.
struct Dialer;
impl MediaHandler for Dialer {
    fn stream_started(&mut self) -> Action {
        Action::tone(6000.0, 2.0).also(Action::SendDtmf("7".into()))
    }
}

fn ports() -> Arc<Mutex<PortAllocator>> {
    // A range per test process, away from the ephemeral ports.
    let base = 20_000 + (std::process::id() % 400) as u16 * 20;
    Arc::new(Mutex::new(PortAllocator::new(base..=base + 19).unwrap()))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("parrot-media-{}-{name}", std::process::id()))
}

/// A relay both peers send to: from `a` to `b` it drops every `drop_every`-th
/// datagram and swaps each `swap_every`-th pair (reordering); from `b` to `a`
/// it forwards as is.
async fn relay(listen: UdpSocket, a: SocketAddr, b: SocketAddr, drop_every: u64, swap_every: u64) {
    let mut buf = [0u8; 2048];
    let mut n = 0u64;
    let mut held: Option<Vec<u8>> = None;
    while let Ok((len, source)) = listen.recv_from(&mut buf).await {
        if source == b {
            let _ = listen.send_to(&buf[..len], a).await;
            continue;
        }
        if source != a {
            continue;
        }
        n += 1;
        if drop_every > 0 && n % drop_every == 0 {
            continue;
        }
        let pkt = buf[..len].to_vec();
        if swap_every > 0 && n % swap_every == 0 && held.is_none() {
            held = Some(pkt);
            continue;
        }
        let _ = listen.send_to(&pkt, b).await;
        if let Some(h) = held.take() {
            let _ = listen.send_to(&h, b).await;
        }
    }
}

async fn call(seconds: f64, lossy: bool) -> (MediaStats, PathBuf) {
    call_with(
        Codec::PCMU,
        440.0,
        seconds,
        if lossy { Relay::Lossy } else { Relay::None },
        None,
        false,
    )
    .await
}

/// How the packets from A reach B.
#[derive(Clone, Copy, PartialEq)]
enum Relay {
    /// Directly.
    None,
    /// Through [`relay`], dropping and reordering.
    Lossy,
    /// Through [`tamper`], replaying and forging.
    Tampering,
}

/// A relay from `a` to `b` (and back) that sends every 5th datagram from `a` twice (a
/// replay) and, before every 7th, a copy with one payload byte flipped (a forgery).
async fn tamper(listen: UdpSocket, a: SocketAddr, b: SocketAddr) {
    let mut buf = [0u8; 2048];
    let mut n = 0u64;
    while let Ok((len, source)) = listen.recv_from(&mut buf).await {
        if source == b {
            let _ = listen.send_to(&buf[..len], a).await;
            continue;
        }
        n += 1;
        if n % 7 == 0 && len > 20 {
            // Before the original: a copy after it would be a replay (checked first).
            let mut forged = buf[..len].to_vec();
            forged[16] ^= 0x40;
            let _ = listen.send_to(&forged, b).await;
        }
        let _ = listen.send_to(&buf[..len], b).await;
        if n % 5 == 0 {
            let _ = listen.send_to(&buf[..len], b).await;
        }
    }
}

/// What an SDP exchange between a mandatory offerer and a best-effort answerer agrees,
/// with fresh random keys: (the offerer's, the answerer's).
fn srtp_pair() -> (NegotiatedSrtp, NegotiatedSrtp) {
    let side = |mode| {
        let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 4000)
            .with_srtp(Some(LocalSrtp::random(mode).unwrap()));
        Negotiator::new(local, 1)
    };
    let mut a = side(SrtpMode::Mandatory);
    let mut b = side(SrtpMode::BestEffort);
    let offer: SessionDescription = a.create_offer().to_string().parse().unwrap();
    let answer = b.answer(&offer).unwrap();
    let at_b = answer.negotiated.unwrap().srtp.unwrap();
    let answer: SessionDescription = answer.sdp.to_string().parse().unwrap();
    let at_a = a.accept_answer(&answer).unwrap().srtp.unwrap();
    assert_eq!(at_a.profile, SrtpProfile::AeadAes128Gcm);
    (at_a, at_b)
}

async fn call_with(
    codec: Codec,
    freq: f64,
    seconds: f64,
    relay_mode: Relay,
    srtp: Option<(NegotiatedSrtp, NegotiatedSrtp)>,
    rtcp_mux: bool,
) -> (MediaStats, PathBuf) {
    let lossy = relay_mode != Relay::None;
    let ports = ports();
    let ip = "127.0.0.1".parse().unwrap();
    let (a_rtp, a_rtcp, a_lease) = bind_pair(ip, &ports).await.unwrap();
    let (b_rtp, b_rtcp, b_lease) = bind_pair(ip, &ports).await.unwrap();
    let a_addr = a_rtp.local_addr().unwrap();
    let b_addr = b_rtp.local_addr().unwrap();
    // Each sends to the other directly, or both through the relay.
    let (a_remote, b_remote) = if lossy {
        let r = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = r.local_addr().unwrap();
        if relay_mode == Relay::Tampering {
            tokio::spawn(tamper(r, a_addr, b_addr));
        } else {
            tokio::spawn(relay(r, a_addr, b_addr, 10, 7));
        }
        (at, at)
    } else {
        (b_addr, a_addr)
    };
    let path = temp(&format!(
        "{}-{}.wav",
        codec.name,
        match (relay_mode, srtp.is_some()) {
            (Relay::None, false) => "clean",
            (Relay::Lossy, _) => "lossy",
            (Relay::None, true) => "srtp",
            (Relay::Tampering, _) => "tampered",
        }
    ));
    let (srtp_a, srtp_b) = srtp.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let (ev_a, _ra) = mpsc::channel(4);
    let (ev_b, _rb) = mpsc::channel(4);
    let cfg = |rtp, rtcp, remote, srtp, lease| MediaConfig {
        sockets: (rtp, rtcp, lease).into(),
        ssrc: None,
        remote_ssrc: None,
        codec: codec.clone(),
        telephone_event: Some(Codec::TELEPHONE_EVENT),
        ptime: 20,
        remote: Some(remote),
        direction: Direction::SendRecv,
        rtp_seed: None,
        srtp,
        rtcp_mux,
    };
    let rtcp_ports = [a_rtcp.local_addr().unwrap(), b_rtcp.local_addr().unwrap()];
    let b = MediaSession::start(
        cfg(b_rtp, b_rtcp, b_remote, srtp_b, b_lease),
        Recorder(path.clone()),
        ev_b,
    )
    .unwrap();
    let a = MediaSession::start(
        cfg(a_rtp, a_rtcp, a_remote, srtp_a, a_lease),
        Player(freq, seconds),
        ev_a,
    )
    .unwrap();
    for port in rtcp_ports {
        // Multiplexed, a session closes its RTCP socket (the port is free to
        // bind again); else it keeps it.
        assert_eq!(
            std::net::UdpSocket::bind(port).is_ok(),
            rtcp_mux,
            "RTCP port {port}"
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds + 0.4)).await;
    let sent = a.stop().await;
    let got = b.stop().await;
    assert!(
        sent.packets_sent >= (seconds * 45.0) as u64,
        "sent {sent:?}"
    );
    // The player records nothing: it counts what it receives without decoding it.
    assert!(
        sent.seconds_received > seconds * 0.8 && sent.seconds_received < seconds + 0.6,
        "the player's count of the silence it received: {sent:?}"
    );
    (got, path)
}

fn check_recording(path: &PathBuf, seconds: f64, stats: &MediaStats) -> f64 {
    check_recording_at(path, seconds, 440.0, 8000, stats)
}

/// The recording is `freq` for about `seconds`, read at its own rate, which must be `rate`;
/// `stats` are the recording side's.
///
/// Judged a 20 ms frame at a time (the ptime: what the receiver plays per tick): at least
/// 90 % of the frames in the tone's span carry the tone. A concealed frame is the last one
/// repeated, faded, so it carries the tone too, but out of phase with the frames around it:
/// over the whole span, a few concealed frames (packets a loaded machine delivered after
/// their turn) would cancel part of the tone. When nothing was concealed, every frame was
/// played from its own packet in order, and the whole span must be one continuous tone.
fn check_recording_at(
    path: &PathBuf,
    seconds: f64,
    freq: f64,
    rate: u32,
    stats: &MediaStats,
) -> f64 {
    let spec = hound::WavReader::open(path).unwrap().spec();
    assert_eq!(spec.sample_rate, rate, "recorded at the call's rate");
    let mut src = WavSource::open_at(path, rate).unwrap();
    let mut all = vec![0i16; (src.duration() * f64::from(rate)) as usize + 8000];
    let n = src.read(&mut all);
    let audio = &all[..n];
    // The tone's span: skip the silence before the first packet and after the last.
    let start = audio
        .iter()
        .position(|&s| s.unsigned_abs() > 1000)
        .unwrap_or(0);
    let end = audio
        .iter()
        .rposition(|&s| s.unsigned_abs() > 1000)
        .unwrap_or(0);
    let tone = &audio[start..end];
    let heard = tone.len() as f64 / f64::from(rate);
    assert!(
        heard > seconds * 0.9 && heard < seconds * 1.1,
        "heard {heard:.2} s of a {seconds} s tone"
    );
    // The recorder writes whole frames from the file's start: cut on that grid.
    let frame = (rate / 50) as usize;
    let frames: Vec<&[i16]> = audio[start - start % frame..end].chunks(frame).collect();
    let toned = frames
        .iter()
        .filter(|f| tone_present(f, freq, rate, 0.8))
        .count();
    assert!(
        toned * 10 >= frames.len() * 9,
        "the recording is not the {freq} Hz tone: {toned} of {} frames carry it ({stats:?})",
        frames.len()
    );
    if stats.concealed == 0 {
        assert!(
            tone_present(tone, freq, rate, 0.8),
            "nothing was concealed, yet the {freq} Hz tone is not continuous ({stats:?})"
        );
    }
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_through_g711_is_recorded() {
    let (stats, path) = call(1.5, false).await;
    let heard = check_recording(&path, 1.5, &stats);
    eprintln!("clean: heard {heard:.2} s, {stats:?}");
    assert_eq!(stats.packets_lost, 0);
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_survives_loss_and_reordering() {
    let (stats, path) = call(1.5, true).await;
    let heard = check_recording(&path, 1.5, &stats);
    eprintln!("lossy: heard {heard:.2} s, {stats:?}");
    assert!(
        stats.packets_lost > 0,
        "the relay dropped packets: {stats:?}"
    );
    assert!(stats.concealed > 0, "lost frames were concealed: {stats:?}");
    let _ = std::fs::remove_file(path);
}

/// A clean SRTP call of 4 s, RTCP on its own port or on the RTP port
/// (`rtcp_mux`): the tone is recorded, nothing is lost or fails SRTP, and
/// SRTCP reports are read. 4 s: the first RTCP report goes out 1.03 s to
/// 3.08 s after the start (RFC 3550 §6.2's 2.5 s before the first report,
/// times [0.5, 1.5], over e - 3/2: see parrot_core::rtp's docs), and the
/// recorder must have read it before it stops.
async fn srtp_call_reads_srtcp(rtcp_mux: bool) {
    let (stats, path) = call_with(
        Codec::PCMU,
        440.0,
        4.0,
        Relay::None,
        Some(srtp_pair()),
        rtcp_mux,
    )
    .await;
    let heard = check_recording(&path, 4.0, &stats);
    eprintln!("srtp (rtcp-mux {rtcp_mux}): heard {heard:.2} s, {stats:?}");
    assert_eq!(stats.srtp, Some(SrtpProfile::AeadAes128Gcm));
    assert_eq!(stats.packets_lost, 0, "{stats:?}");
    assert_eq!(
        (
            stats.srtp_auth_failures,
            stats.srtp_replays,
            stats.srtp_malformed
        ),
        (0, 0, 0),
        "no SRTCP packet taken for SRTP or the other way round: {stats:?}"
    );
    assert!(stats.rtcp_received >= 1, "SRTCP reports read: {stats:?}");
    assert_eq!(stats.dropped.rtcp_malformed, 0, "{stats:?}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_through_srtp_is_recorded_and_srtcp_read() {
    srtp_call_reads_srtcp(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtcp_multiplexed_on_the_rtp_port_is_read_apart_from_srtp() {
    // RFC 5761: both sessions send RTCP to the peer's RTP port and read it
    // from their own, telling it from RTP by its packet type before SRTP
    // decides which key and context check it.
    srtp_call_reads_srtcp(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_drops_and_counts_replays_and_forgeries() {
    let (stats, path) = call_with(
        Codec::PCMU,
        440.0,
        1.5,
        Relay::Tampering,
        Some(srtp_pair()),
        false,
    )
    .await;
    let heard = check_recording(&path, 1.5, &stats);
    eprintln!("tampered: heard {heard:.2} s, {stats:?}");
    // About 75 packets: every 5th sent twice, a forged copy before every 7th.
    assert!(stats.srtp_replays >= 10, "{stats:?}");
    assert!(stats.srtp_auth_failures >= 7, "{stats:?}");
    assert_eq!(
        stats.packets_lost, 0,
        "the originals all arrived: {stats:?}"
    );
    // What failed never reached RTP: nothing from another source, no bad header.
    assert_eq!(stats.dropped.unexpected_source, 0, "{stats:?}");
    assert_eq!(stats.dropped.bad_version, 0, "{stats:?}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_6_khz_tone_through_g722_is_recorded_at_16_khz() {
    // 6 kHz is above what 8 kHz sampling can carry: only a wideband call has it.
    let (stats, path) = call_with(Codec::G722, 6000.0, 1.5, Relay::None, None, false).await;
    let heard = check_recording_at(&path, 1.5, 6000.0, 16_000, &stats);
    eprintln!("G.722 clean: heard {heard:.2} s, {stats:?}");
    assert_eq!(stats.codec, "G722");
    assert_eq!(stats.packets_lost, 0);
    assert!(
        (stats.seconds_received - 1.9).abs() < 0.3,
        "seconds counted at 16 kHz: {stats:?}"
    );
    let _ = std::fs::remove_file(path);
    let (stats, path) = call_with(Codec::G722, 1000.0, 1.5, Relay::Lossy, None, false).await;
    check_recording_at(&path, 1.5, 1000.0, 16_000, &stats);
    assert!(stats.packets_lost > 0 && stats.concealed > 0, "{stats:?}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_packets_on_the_wire() {
    let ports = ports();
    let ip = "127.0.0.1".parse().unwrap();
    let (rtp, rtcp, lease) = bind_pair(ip, &ports).await.unwrap();
    let wire = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (events, _rx) = mpsc::channel(4);
    let cfg = MediaConfig {
        sockets: (rtp, rtcp, lease).into(),
        ssrc: None,
        remote_ssrc: None,
        codec: Codec::G722,
        telephone_event: Some(Codec::TELEPHONE_EVENT),
        ptime: 20,
        remote: Some(wire.local_addr().unwrap()),
        direction: Direction::SendRecv,
        rtp_seed: Some(7),
        srtp: None,
        rtcp_mux: false,
    };
    let session = MediaSession::start(cfg, Dialer, events).unwrap();
    let mut audio: Vec<(u16, u32, Vec<u8>)> = Vec::new();
    let mut dtmf: Vec<(u32, u16)> = Vec::new();
    let mut buf = [0u8; 2048];
    while audio.len() < 40 {
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), wire.recv_from(&mut buf))
            .await
            .expect("RTP arrives")
            .unwrap();
        let p =
            parrot_core::rtp::RtpPacket::parse(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
        match p.payload_type {
            9 => audio.push((p.sequence, p.timestamp, p.payload.to_vec())),
            101 => dtmf.push((
                p.timestamp,
                u16::from_be_bytes([p.payload[2], p.payload[3]]),
            )),
            other => panic!("payload type {other}"),
        }
    }
    drop(session);
    assert!(
        audio.iter().all(|(_, _, p)| p.len() == 160),
        "160 octets per 20 ms"
    );
    for w in audio.windows(2) {
        let step = w[1].1.wrapping_sub(w[0].1);
        // 160 per packet; across the digit (sent instead of audio) a multiple of it.
        assert_eq!(step % 160, 0, "timestamps step by 160: {step}");
        assert!(step <= 160 * 12, "{step}");
    }
    // The digit's duration counts on the same 8 kHz clock: its last report is a multiple of
    // 160 and its timestamp one of the audio's.
    assert!(!dtmf.is_empty(), "the digit was sent");
    let (ts, duration) = *dtmf.last().unwrap();
    assert_eq!(duration % 160, 0, "{dtmf:?}");
    assert!(audio.iter().any(|(_, t, _)| t.wrapping_sub(ts) % 160 == 0));
    // The audio decodes to the 6 kHz tone at 16 kHz.
    let mut dec = parrot_core::codec::decoder_for(&Codec::G722).unwrap();
    let mut pcm = Vec::new();
    for (_, _, p) in &audio {
        dec.decode(p, &mut pcm);
    }
    assert_eq!(dec.sample_rate(), 16_000);
    assert!(tone_present(&pcm[640..], 6000.0, 16_000, 0.8));
}
