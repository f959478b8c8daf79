//! The WebSocket media bridges (`media::ws`) end to end: a Parrot server
//! answers with a bridge to a WebSocket test server written here (tokio-
//! tungstenite) that speaks Twilio Media Streams or Jambonz `listen` as a
//! voice service would; a Parrot caller on loopback speaks into the call
//! and listens (its audio as streams). Checked: the framing the service
//! gets, the caller's tone reaching it, the service's audio heard by the
//! caller, a mark back after its audio played, `clear`/`killAudio` cutting
//! playback, digits, the stream's end, and the service going away
//! (reconnect, then silence or a hang-up, as configured). The latency the
//! bridge adds is measured and printed, not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use data_encoding::BASE64;
use futures_util::{SinkExt, StreamExt};
use parrot_core::codec::mulaw;
use parrot_core::media::ws::{
    self, BridgeState, BridgeStatus, Listen, OnLost, Reconnect, WsBridge,
};
use parrot_core::media::{AudioEvent, AudioOut, audio_stream, tone_present};
use parrot_core::ua::{CallEvent, Endpoint, Incoming, OutgoingCall, Reply, SipHandler};
use parrot_tests::free_addr;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Factory = Arc<dyn Fn(&Incoming) -> WsBridge + Send + Sync>;

/// Answers every call with the bridge the test makes, and hands the test
/// the bridge's status.
struct Agent {
    make: Factory,
    status: mpsc::UnboundedSender<BridgeStatus>,
}

impl SipHandler for Agent {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let bridge = (self.make)(call);
        let _ = self.status.send(bridge.status());
        call.answer(bridge).await
    }
}

/// What the caller heard: each frame with the moment it came out of the
/// call's stream.
type Heard = Arc<Mutex<Vec<(Instant, Vec<i16>)>>>;

struct Caller {
    call: OutgoingCall,
    out: AudioOut,
    heard: Heard,
    server: Endpoint,
    client: Endpoint,
}

impl Caller {
    /// Samples loud enough to be the service's tone, heard since `since`.
    fn loud_since(&self, since: Instant) -> usize {
        self.heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, f)| *t >= since && loud(f))
            .count()
            * 160
    }

    /// When the caller first heard sound after `since`, waiting up to 3 s.
    async fn first_loud_after(&self, since: Instant) -> Instant {
        for _ in 0..300 {
            if let Some((t, _)) = self
                .heard
                .lock()
                .unwrap()
                .iter()
                .find(|(t, f)| *t >= since && loud(f))
            {
                return *t;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the caller heard nothing within 3 s");
    }

    /// Everything heard since `since`, as one signal.
    fn audio_since(&self, since: Instant) -> Vec<i16> {
        self.heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= since)
            .flat_map(|(_, f)| f.iter().copied())
            .collect()
    }
}

fn loud(frame: &[i16]) -> bool {
    let sum: u64 = frame.iter().map(|s| u64::from(s.unsigned_abs())).sum();
    sum / frame.len().max(1) as u64 > 1000
}

/// A server endpoint answering with `make`'s bridge, and a caller (alice)
/// with its audio as streams, in the call.
async fn call_agent(
    make: impl Fn(&Incoming) -> WsBridge + Send + Sync + 'static,
) -> (Caller, BridgeStatus) {
    let (tx, mut statuses) = mpsc::unbounded_channel();
    let make: Factory = Arc::new(make);
    let addr = free_addr();
    let server = Endpoint::builder()
        .udp(addr)
        .handler(move || Agent {
            make: make.clone(),
            status: tx.clone(),
        })
        .build()
        .await
        .unwrap();
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let (media, mut input, out) = audio_stream();
    let mut call = client
        .dial(&format!("sip:agent@{addr}"))
        .unwrap()
        .from_user("alice")
        .media(media)
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    let heard: Heard = Arc::default();
    let h = heard.clone();
    tokio::spawn(async move {
        while let Some(ev) = input.recv().await {
            if let AudioEvent::Audio { samples, .. } = ev {
                h.lock().unwrap().push((Instant::now(), samples));
            }
        }
    });
    let status = statuses.recv().await.unwrap();
    (
        Caller {
            call,
            out,
            heard,
            server,
            client,
        },
        status,
    )
}

/// `secs` of `freq` Hz at `rate`, at half scale.
fn tone(freq: f64, secs: f64, rate: u32) -> Vec<i16> {
    let n = (secs * f64::from(rate)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            ((2.0 * std::f64::consts::PI * freq * t).sin() * 12000.0) as i16
        })
        .collect()
}

/// The service's end of one connection, and what the bridge asked for.
struct Service {
    ws: WebSocketStream<TcpStream>,
    subprotocol: Option<String>,
}

/// Accepts one connection within 5 s; selects `subprotocol` when asked for it.
async fn accept(listener: &TcpListener, subprotocol: Option<&'static str>) -> Service {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the bridge connects within 5 s")
        .unwrap();
    let asked = Arc::new(Mutex::new(None));
    let a = asked.clone();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let ws = tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, mut resp: Response| {
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let (Some(p), Some(o)) = (subprotocol, &offered) {
            if o.split(',').any(|x| x.trim() == p) {
                resp.headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_static(p));
            }
        }
        *a.lock().unwrap() = offered;
        Ok(resp)
    })
    .await
    .unwrap();
    let subprotocol = asked.lock().unwrap().clone();
    Service { ws, subprotocol }
}

impl Service {
    /// The next message other than ping/pong, within 5 s.
    async fn next(&mut self) -> Message {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a message within 5 s")
                .expect("the connection is open")
                .unwrap();
            if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
                return m;
            }
        }
    }

    async fn next_json(&mut self) -> Value {
        let m = self.next().await;
        serde_json::from_str(m.to_text().expect("a text frame")).unwrap()
    }

    async fn send_json(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }
}

/// A Twilio service's view of its stream: checks every `media` event's
/// framing as it reads, and keeps the other events.
struct TwilioStream {
    svc: Service,
    sid: String,
    chunk: u64,
    last_ts: Option<u64>,
    events: Vec<Value>,
}

impl TwilioStream {
    /// Reads `connected` and `start` (checked); returns the start message.
    async fn open(mut svc: Service) -> (TwilioStream, Value) {
        let connected = svc.next_json().await;
        assert_eq!(
            (&connected["event"], &connected["protocol"]),
            (&json!("connected"), &json!("Call")),
            "{connected}"
        );
        let start = svc.next_json().await;
        assert_eq!(start["event"], "start", "{start}");
        assert_eq!(
            start["start"]["mediaFormat"],
            json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
        );
        let sid = start["streamSid"].as_str().unwrap().to_owned();
        assert_eq!(start["start"]["streamSid"], sid.as_str());
        let s = TwilioStream {
            svc,
            sid,
            chunk: 0,
            last_ts: None,
            events: Vec::new(),
        };
        (s, start)
    }

    /// The next message: a media frame's PCM and when it arrived (its
    /// framing checked), or another event.
    async fn read(&mut self) -> Result<(Instant, Vec<i16>), Value> {
        let v = self.svc.next_json().await;
        let at = Instant::now();
        assert_eq!(v["streamSid"], self.sid.as_str(), "{v}");
        if v["event"] != "media" {
            return Err(v);
        }
        let m = &v["media"];
        assert_eq!(m["track"], "inbound");
        self.chunk += 1;
        assert_eq!(m["chunk"], self.chunk.to_string(), "chunks count up by one");
        let ts: u64 = m["timestamp"].as_str().unwrap().parse().unwrap();
        if let Some(last) = self.last_ts {
            assert_eq!(ts, last + 20, "20 ms apart");
        }
        self.last_ts = Some(ts);
        let codes = BASE64
            .decode(m["payload"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(codes.len(), 160, "one 20 ms µ-law frame");
        let mut pcm = Vec::new();
        mulaw::decode(&codes, &mut pcm);
        Ok((at, pcm))
    }

    /// The next media frame's PCM and when it arrived; other events kept.
    async fn media(&mut self) -> (Instant, Vec<i16>) {
        loop {
            match self.read().await {
                Ok(frame) => return frame,
                Err(v) => self.events.push(v),
            }
        }
    }

    /// Reads media until the first loud frame; when it arrived, and the
    /// audio from there for `frames` frames.
    async fn until_loud(&mut self, frames: usize) -> (Instant, Vec<i16>) {
        for _ in 0..250 {
            let (at, pcm) = self.media().await;
            if loud(&pcm) {
                let mut all = pcm;
                for _ in 1..frames {
                    all.extend(self.media().await.1);
                }
                return (at, all);
            }
        }
        panic!("no sound from the caller in 5 s of frames");
    }

    /// Reads media until it is live (each frame waited for) and quiet for
    /// three frames in a row: what was queued before is behind us.
    async fn settle(&mut self) {
        let mut quiet = 0;
        while quiet < 3 {
            let asked = Instant::now();
            let (at, pcm) = self.media().await;
            let live = at - asked >= Duration::from_millis(10);
            quiet = if live && !loud(&pcm) { quiet + 1 } else { 0 };
        }
    }

    /// Reads until an event named `event` (media frames skipped); its message.
    async fn event(&mut self, event: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["event"] == event) {
            return self.events.remove(i);
        }
        loop {
            match self.read().await {
                Err(v) if v["event"] == event => return v,
                Err(v) => self.events.push(v),
                Ok(_) => {}
            }
        }
    }

    async fn play(&mut self, pcm: &[i16]) {
        let mut codes = Vec::new();
        mulaw::encode(pcm, &mut codes);
        let sid = self.sid.clone();
        self.svc
            .send_json(json!({"event": "media", "streamSid": sid,
                              "media": {"payload": BASE64.encode(&codes)}}))
            .await;
    }

    async fn mark(&mut self, name: &str) {
        let sid = self.sid.clone();
        self.svc
            .send_json(json!({"event": "mark", "streamSid": sid, "mark": {"name": name}}))
            .await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, v: &mut [f64]) {
    v.sort_by(f64::total_cmp);
    eprintln!(
        "{name}: median {:.1} ms, min {:.1}, max {:.1} ({} runs)",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    );
}

/// Latency both ways over a connected Twilio stream: the caller's tone
/// burst in → the first media event with it at the service; the service's
/// burst out → the first frame of it the caller hears.
async fn twilio_latency(caller: &Caller, stream: &mut TwilioStream) -> (Vec<f64>, Vec<f64>) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        stream.settle().await;
        let sent = Instant::now();
        caller.out.send(&tone(440.0, 0.2, 8000), 8000);
        let (at, _) = stream.until_loud(1).await;
        up.push(ms(at - sent));
        let sent = Instant::now();
        stream.play(&tone(1000.0, 0.2, 8000)).await;
        let heard = caller.first_loud_after(sent).await;
        down.push(ms(heard - sent));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (up, down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_media_streams_both_ways_with_marks_clear_and_latency() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/media", listener.local_addr().unwrap());
    let (caller, mut status) = call_agent(move |call| {
        ws::twilio(&url)
            .call_id(call.call_id().unwrap_or(""))
            .from(call.from_user().unwrap_or(""))
            .parameter("lang", "en")
    })
    .await;
    let svc = accept(&listener, None).await;
    assert_eq!(svc.subprotocol, None, "Twilio asks for no subprotocol");
    let (mut stream, start) = TwilioStream::open(svc).await;
    assert!(!start["start"]["callSid"].as_str().unwrap().is_empty());
    assert_eq!(start["start"]["customParameters"]["from"], "alice");
    assert_eq!(start["start"]["customParameters"]["lang"], "en");

    // The caller's tone reaches the service, µ-law in 20 ms frames.
    caller.out.send(&tone(440.0, 1.0, 8000), 8000);
    let (_, heard) = stream.until_loud(40).await;
    assert!(
        tone_present(&heard, 440.0, 8000, 0.5),
        "the caller's 440 Hz in the media events"
    );

    // A digit.
    caller.call.send_dtmf("7").await.unwrap();
    let d = stream.event("dtmf").await;
    assert_eq!(d["dtmf"]["digit"], "7", "{d}");

    let (mut up, mut down) = twilio_latency(&caller, &mut stream).await;

    // The service's audio is heard; its mark comes back once it has played.
    let sent = Instant::now();
    stream.play(&tone(1000.0, 1.0, 8000)).await;
    stream.mark("said").await;
    let mark = stream.event("mark").await;
    let at_mark = caller.loud_since(sent);
    assert_eq!(mark["mark"]["name"], "said");
    assert!(
        tone_present(&caller.audio_since(sent), 1000.0, 8000, 0.3),
        "the caller heard the service's 1000 Hz"
    );
    assert!(
        at_mark >= 6400,
        "the mark came back after its audio played: the caller had heard {at_mark} of 8000 samples"
    );

    // Barge-in: 5 s queued, cleared once the caller has heard some of it.
    let sent = Instant::now();
    stream.play(&tone(1000.0, 5.0, 8000)).await;
    stream.mark("long").await;
    while caller.loud_since(sent) < 4000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cleared = Instant::now();
    let sid = stream.sid.clone();
    stream
        .svc
        .send_json(json!({"event": "clear", "streamSid": sid}))
        .await;
    let mark = stream.event("mark").await;
    assert_eq!(mark["mark"]["name"], "long", "the mark comes back on clear");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let total = caller.loud_since(sent);
    let last_loud = caller
        .heard
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(t, f)| *t >= sent && loud(f))
        .map(|(t, _)| *t)
        .unwrap();
    eprintln!(
        "clear → last loud frame at the caller: {:.1} ms (the caller's own jitter buffer included); {total} samples of the 40000 queued were heard",
        ms(last_loud.saturating_duration_since(cleared))
    );
    assert!(
        total < 12_000,
        "clear cut the 5 s of audio: {total} samples heard"
    );

    summary("Twilio: caller audio → WebSocket media event", &mut up);
    summary("Twilio: WebSocket media event → caller hears it", &mut down);
    assert_eq!(status.malformed(), 0);
    assert!(status.frames_sent() > 100);

    // The caller hangs up: `stop`, then a normal close.
    let mut call = caller;
    call.call.hangup().await.unwrap();
    let stop = stream.event("stop").await;
    assert_eq!(stop["streamSid"], stream.sid.as_str());
    match stream.svc.next().await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Normal),
        other => panic!("expected a close frame, got {other:?}"),
    }
    status.wait_for(|s| *s == BridgeState::Ended).await;
    call.client.shutdown(Duration::from_secs(1)).await;
    call.server.shutdown(Duration::from_secs(1)).await;
}

/// L16 little-endian bytes as samples.
fn l16(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The next binary frame (text frames before it are returned too).
async fn binary(svc: &mut Service, texts: &mut Vec<Value>) -> (Instant, Vec<u8>) {
    loop {
        match svc.next().await {
            Message::Binary(b) => return (Instant::now(), b.to_vec()),
            Message::Text(t) => texts.push(serde_json::from_str(t.as_str()).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jambonz_listen_stereo_bidirectional_kill_audio_and_disconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/listen", listener.local_addr().unwrap());
    let (caller, mut status) = call_agent(move |call| {
        ws::jambonz(&url, Listen::new().sample_rate(16000).stereo())
            .call_id(call.call_id().unwrap_or(""))
            .from(call.from_user().unwrap_or(""))
            .to(call.to_user().unwrap_or(""))
            .on_lost(OnLost::Hangup)
    })
    .await;
    let mut svc = accept(&listener, Some("audio.jambonz.org")).await;
    assert_eq!(svc.subprotocol.as_deref(), Some("audio.jambonz.org"));
    let meta = svc.next_json().await;
    assert_eq!(meta["sampleRate"], 16000, "{meta}");
    assert_eq!(meta["mixType"], "stereo");
    assert_eq!(
        (&meta["from"], &meta["to"]),
        (&json!("alice"), &json!("agent"))
    );
    assert!(!meta["callSid"].as_str().unwrap().is_empty());
    let mut texts = Vec::new();

    // The caller's tone: left channel, 16 kHz; the right (what the call
    // plays) silent. Each frame whole stereo samples, ~20 ms.
    let sent = Instant::now();
    caller.out.send(&tone(440.0, 1.0, 8000), 8000);
    let (mut left, mut right, mut bytes, mut frames) = (Vec::new(), Vec::new(), 0, 0);
    let mut first_loud = None;
    while left.len() < 16000 * 3 / 2 {
        let (at, b) = binary(&mut svc, &mut texts).await;
        assert_eq!(b.len() % 4, 0, "whole stereo L16 samples");
        // About 20 ms at 16 kHz (1280 bytes): the caller's side comes in
        // whole frames, paired with as much of what the call played as has
        // arrived.
        assert!(
            (1100..=1400).contains(&b.len()),
            "a 20 ms frame: {} bytes",
            b.len()
        );
        bytes += b.len();
        frames += 1;
        for (i, s) in l16(&b).into_iter().enumerate() {
            if i % 2 == 0 {
                left.push(s)
            } else {
                right.push(s)
            }
        }
        if first_loud.is_none()
            && left
                .iter()
                .rev()
                .take(b.len() / 4)
                .any(|s| s.unsigned_abs() > 4000)
        {
            first_loud = Some(at);
        }
    }
    let first_loud = first_loud.expect("the caller's tone reached the service");
    let from = left.iter().position(|s| s.unsigned_abs() > 4000).unwrap();
    assert!(
        tone_present(&left[from..from + 8000], 440.0, 16000, 0.5),
        "440 Hz on the left"
    );
    assert!(
        right.iter().all(|s| s.unsigned_abs() < 200),
        "nothing played yet: right silent"
    );
    eprintln!("jambonz: {bytes} bytes in {frames} frames");
    assert!(
        bytes.abs_diff(frames * 1280) <= 256,
        "{bytes} bytes in {frames} frames"
    );
    let mut up = vec![ms(first_loud - sent)];

    // The service streams 1 s of 16 kHz L16 back, then a mark: the caller
    // hears it, the right channel carries it, the mark comes back.
    let back: Vec<u8> = tone(1000.0, 1.0, 16000)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let sent = Instant::now();
    for chunk in back.chunks(640) {
        svc.ws.send(Message::binary(chunk.to_vec())).await.unwrap();
    }
    svc.send_json(json!({"type": "mark", "data": {"name": "reply"}}))
        .await;
    let mut right = Vec::new();
    let mark = loop {
        let (_, b) = binary(&mut svc, &mut texts).await;
        right.extend(l16(&b).into_iter().skip(1).step_by(2));
        if let Some(i) = texts.iter().position(|t| t["type"] == "mark") {
            break texts.remove(i);
        }
    };
    assert_eq!(mark["data"], json!({"name": "reply", "event": "playout"}));
    let heard_at_mark = caller.loud_since(sent);
    assert!(
        heard_at_mark >= 6400,
        "the mark after the audio: {heard_at_mark} of 8000 heard"
    );
    assert!(
        tone_present(&caller.audio_since(sent), 1000.0, 8000, 0.3),
        "the caller heard 1000 Hz"
    );
    let from = right
        .iter()
        .position(|s| s.unsigned_abs() > 4000)
        .expect("the right channel carries what played");
    assert!(tone_present(
        &right[from..(from + 8000).min(right.len())],
        1000.0,
        16000,
        0.5
    ));
    let first = caller.first_loud_after(sent).await;
    let mut down = vec![ms(first - sent)];

    // A few more bursts for the latency.
    for _ in 0..4 {
        // Live and quiet on the left for three frames in a row.
        let mut quiet = 0;
        while quiet < 3 {
            let asked = Instant::now();
            let (at, b) = binary(&mut svc, &mut texts).await;
            let left_quiet = l16(&b).iter().step_by(2).all(|s| s.unsigned_abs() < 1000);
            let live = at - asked >= Duration::from_millis(10);
            quiet = if live && left_quiet { quiet + 1 } else { 0 };
        }
        let sent = Instant::now();
        caller.out.send(&tone(440.0, 0.2, 8000), 8000);
        loop {
            let (at, b) = binary(&mut svc, &mut texts).await;
            if l16(&b).iter().step_by(2).any(|s| s.unsigned_abs() > 4000) {
                up.push(ms(at - sent));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let burst: Vec<u8> = tone(1000.0, 0.2, 16000)
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let sent = Instant::now();
        svc.ws.send(Message::binary(burst)).await.unwrap();
        down.push(ms(caller.first_loud_after(sent).await - sent));
    }
    summary("jambonz: caller audio → WebSocket binary frame", &mut up);
    summary(
        "jambonz: WebSocket binary frame → caller hears it",
        &mut down,
    );

    // killAudio cuts 5 s of playAudio (raw, base64) short.
    let long: Vec<u8> = tone(1000.0, 5.0, 8000)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let sent = Instant::now();
    svc.send_json(
        json!({"type": "playAudio", "data": {"audioContent": BASE64.encode(&long),
        "audioContentType": "raw", "sampleRate": 8000}}),
    )
    .await;
    while caller.loud_since(sent) < 4000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    svc.send_json(json!({"type": "killAudio"})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let total = caller.loud_since(sent);
    assert!(
        total < 12_000,
        "killAudio cut the 5 s: {total} samples heard"
    );

    // The service disconnects: configured to hang up, the call ends.
    svc.send_json(json!({"type": "disconnect"})).await;
    let state = status
        .wait_for(|s| matches!(s, BridgeState::Lost { .. } | BridgeState::Ended))
        .await;
    assert!(
        matches!(&state, BridgeState::Lost { reason } if reason.contains("disconnect")),
        "{state:?}"
    );
    let mut call = caller;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = call.call.next_event().await {
            if matches!(ev, CallEvent::Ended) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ended, Ok(true), "the bridge hung the call up");
    assert_eq!(status.malformed(), 0);
    call.client.shutdown(Duration::from_secs(1)).await;
    call.server.shutdown(Duration::from_secs(1)).await;
}

/// The service drops the connection mid-call and refuses new ones: after
/// its retries the bridge hangs the call up, as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_gone_mid_call_hangs_up_after_retries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/media", listener.local_addr().unwrap());
    let retry = Reconnect {
        attempts: 2,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(200),
    };
    let (caller, mut status) =
        call_agent(move |_| ws::twilio(&url).reconnect(retry).on_lost(OnLost::Hangup)).await;
    let svc = accept(&listener, None).await;
    let (mut stream, _) = TwilioStream::open(svc).await;
    stream.media().await;
    // Gone: the connection without a close frame, the port closed.
    drop(stream);
    drop(listener);
    let state = status
        .wait_for(|s| matches!(s, BridgeState::Lost { .. }))
        .await;
    eprintln!("after the service went away: {state:?}");
    let BridgeState::Lost { reason } = &state else {
        panic!("{state:?}")
    };
    assert!(
        reason.contains("refused"),
        "the last error says why: {reason}"
    );
    let mut call = caller;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = call.call.next_event().await {
            if matches!(ev, CallEvent::Ended) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ended, Ok(true), "the call was hung up");
    call.client.shutdown(Duration::from_secs(1)).await;
    call.server.shutdown(Duration::from_secs(1)).await;
}

/// The service drops the connection; the bridge reconnects (a new stream);
/// then the service closes normally: no retry, and the call goes on in
/// silence, as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_reconnected_then_closed_and_the_call_goes_on_in_silence() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/media", listener.local_addr().unwrap());
    let (caller, mut status) = call_agent(move |_| {
        ws::twilio(&url)
            .reconnect(Reconnect {
                attempts: 2,
                first_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(200),
            })
            .on_lost(OnLost::Silence)
    })
    .await;
    let (mut first, start1) = TwilioStream::open(accept(&listener, None).await).await;
    first.media().await;
    drop(first);
    let (mut second, start2) = TwilioStream::open(accept(&listener, None).await).await;
    assert_ne!(start1["streamSid"], Value::Null);
    assert_eq!(start2["sequenceNumber"], "1", "a new stream");
    let state = status
        .wait_for(|s| matches!(s, BridgeState::Connected { connects: 2 }))
        .await;
    assert_eq!(state, BridgeState::Connected { connects: 2 });
    // Audio flows on the new connection.
    caller.out.send(&tone(440.0, 0.5, 8000), 8000);
    let (_, heard) = second.until_loud(10).await;
    assert!(tone_present(&heard, 440.0, 8000, 0.5));
    // A normal close: the service ended the stream.
    second
        .svc
        .ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let state = status
        .wait_for(|s| matches!(s, BridgeState::Lost { .. }))
        .await;
    assert!(
        matches!(&state, BridgeState::Lost { reason } if reason.contains("1000")),
        "{state:?}"
    );
    // No third connection, and the call is still up 1 s later, in silence.
    let third = tokio::time::timeout(Duration::from_millis(1000), listener.accept()).await;
    assert!(third.is_err(), "a normal close is not retried");
    let mut call = caller;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(call.loud_since(quiet_from), 0, "silence");
    let ev = tokio::time::timeout(Duration::from_millis(200), call.call.next_event()).await;
    assert!(
        !matches!(ev, Ok(Some(CallEvent::Ended)) | Ok(None)),
        "the call goes on: {ev:?}"
    );
    let dropped = status.frames_dropped();
    eprintln!("frames dropped while no connection was up: {dropped}");
    assert!(dropped > 0);
    call.call.hangup().await.unwrap();
    status.wait_for(|s| *s == BridgeState::Ended).await;
    call.client.shutdown(Duration::from_secs(1)).await;
    call.server.shutdown(Duration::from_secs(1)).await;
}

/// Answers with the call's audio as streams, handed to the test.
struct Plain(mpsc::UnboundedSender<(parrot_core::media::AudioIn, AudioOut)>);

impl SipHandler for Plain {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let (media, input, out) = audio_stream();
        let _ = self.0.send((input, out));
        call.answer(media).await
    }
}

/// The same measurement without a bridge: the caller's audio to the
/// answering side's stream and back, Parrot to Parrot. What the bridges
/// add is their numbers less these (the RTP path, pacing and the
/// receiving side's jitter buffer, 3 frames, are in both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_latency_without_a_bridge() {
    let (tx, mut ends) = mpsc::unbounded_channel();
    let addr = free_addr();
    let server = Endpoint::builder()
        .udp(addr)
        .handler(move || Plain(tx.clone()))
        .build()
        .await
        .unwrap();
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let (media, mut c_in, c_out) = audio_stream();
    let mut call = client
        .dial(&format!("sip:plain@{addr}"))
        .unwrap()
        .media(media)
        .send()
        .await
        .unwrap();
    call.answered().await.unwrap();
    let (mut s_in, s_out) = ends.recv().await.unwrap();
    /// Waits for a live, quiet line, then for the first loud frame; when.
    async fn next_loud(rx: &mut parrot_core::media::AudioIn, settle: bool) -> Instant {
        let mut quiet = 0;
        loop {
            let asked = Instant::now();
            let Some(AudioEvent::Audio { samples, .. }) = rx.recv().await else {
                continue;
            };
            let at = Instant::now();
            if (!settle || quiet >= 3) && loud(&samples) {
                return at;
            }
            let live = at - asked >= Duration::from_millis(10);
            quiet = if live && !loud(&samples) {
                quiet + 1
            } else {
                0
            };
        }
    }
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let _ = tokio::time::timeout(Duration::from_millis(300), next_loud(&mut s_in, true)).await;
        let sent = Instant::now();
        c_out.send(&tone(440.0, 0.2, 8000), 8000);
        let at = tokio::time::timeout(Duration::from_secs(3), next_loud(&mut s_in, false))
            .await
            .expect("the answering side hears the caller");
        up.push(ms(at - sent));
        let _ = tokio::time::timeout(Duration::from_millis(300), next_loud(&mut c_in, true)).await;
        let sent = Instant::now();
        s_out.send(&tone(1000.0, 0.2, 8000), 8000);
        let at = tokio::time::timeout(Duration::from_secs(3), next_loud(&mut c_in, false))
            .await
            .expect("the caller hears the answering side");
        down.push(ms(at - sent));
    }
    summary("no bridge: caller audio → answering side's stream", &mut up);
    summary(
        "no bridge: answering side's stream → caller hears it",
        &mut down,
    );
    call.hangup().await.unwrap();
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}
