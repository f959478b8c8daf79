//! The Twilio Media Streams protocol, as the platform speaks it (we connect
//! to the service): JSON text frames `connected`, `start`, `media` (base64
//! µ-law, 8 kHz mono, one 20 ms frame each), `dtmf`, `mark`, `stop`; the
//! service sends `media`, `mark` and `clear`. Telnyx, SignalWire and others
//! speak the same shapes. Sans-IO: messages in, messages out.

use super::{Protocol, ToCall};
use crate::codec::mulaw;
use data_encoding::BASE64;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// One stream's state: its ids and counters (both restart with each
/// connection: a reconnected stream is a new stream to the service).
#[derive(Debug)]
pub(super) struct Twilio {
    stream_sid: String,
    call_sid: String,
    parameters: Value,
    sequence: u64,
    chunk: u64,
}

impl Twilio {
    pub(super) fn new(stream_sid: String, call_sid: String, parameters: Value) -> Twilio {
        Twilio {
            stream_sid,
            call_sid,
            parameters,
            sequence: 0,
            chunk: 0,
        }
    }

    /// The next `sequenceNumber` (a string, as Twilio sends it).
    fn next(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    fn text(v: &Value) -> Message {
        Message::text(v.to_string())
    }
}

impl Protocol for Twilio {
    fn subprotocol(&self) -> Option<&'static str> {
        None
    }

    fn opening(&mut self) -> Vec<Message> {
        self.sequence = 0;
        self.chunk = 0;
        let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
        let start = json!({
            "event": "start",
            "sequenceNumber": self.next(),
            "streamSid": self.stream_sid,
            "start": {
                "accountSid": "",
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": self.parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        });
        vec![Self::text(&connected), Self::text(&start)]
    }

    fn heard(&mut self, samples: &[i16], at: u64) -> Option<Message> {
        let mut codes = Vec::with_capacity(samples.len());
        mulaw::encode(samples, &mut codes);
        self.chunk += 1;
        let media = json!({
            "event": "media",
            "sequenceNumber": self.next(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": self.chunk.to_string(),
                // Milliseconds since the stream began (8 samples a millisecond).
                "timestamp": (at / 8).to_string(),
                "payload": BASE64.encode(&codes),
            },
        });
        Some(Self::text(&media))
    }

    fn dtmf(&mut self, digit: char) -> Option<Message> {
        let v = json!({
            "event": "dtmf",
            "sequenceNumber": self.next(),
            "streamSid": self.stream_sid,
            "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
        });
        Some(Self::text(&v))
    }

    fn mark_done(&mut self, name: &str) -> Option<Message> {
        let v = json!({
            "event": "mark",
            "sequenceNumber": self.next(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        });
        Some(Self::text(&v))
    }

    fn closing(&mut self) -> Vec<Message> {
        let v = json!({
            "event": "stop",
            "sequenceNumber": self.next(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": "", "callSid": self.call_sid},
        });
        vec![Self::text(&v)]
    }

    fn receive(&mut self, msg: &Message, out: &mut Vec<ToCall>) -> Result<(), String> {
        let text = match msg {
            Message::Text(t) => t.as_str(),
            Message::Binary(b) => {
                return Err(format!(
                    "a binary frame ({} bytes): Twilio Media Streams sends JSON text",
                    b.len()
                ));
            }
            _ => return Ok(()),
        };
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let event = v
            .get("event")
            .and_then(Value::as_str)
            .ok_or("no \"event\" string")?;
        match event {
            "media" => {
                let payload = v
                    .pointer("/media/payload")
                    .and_then(Value::as_str)
                    .ok_or("media without a \"media.payload\" string")?;
                let codes = BASE64
                    .decode(payload.as_bytes())
                    .map_err(|e| format!("media payload is not base64: {e}"))?;
                let mut pcm = Vec::with_capacity(codes.len());
                mulaw::decode(&codes, &mut pcm);
                out.push(ToCall::Audio(pcm, 8000));
            }
            "mark" => {
                let name = v
                    .pointer("/mark/name")
                    .and_then(Value::as_str)
                    .ok_or("mark without a \"mark.name\" string")?;
                out.push(ToCall::Mark(name.to_owned()));
            }
            "clear" => out.push(ToCall::Clear),
            other => return Err(format!("unknown event {other:?}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn json_of(m: &Message) -> Value {
        serde_json::from_str(m.to_text().unwrap()).unwrap()
    }

    fn twilio() -> Twilio {
        Twilio::new("MZ1".into(), "call-1".into(), json!({"from": "alice"}))
    }

    #[test]
    fn connected_then_start_then_twenty_ms_media_frames() {
        let mut t = twilio();
        let open = t.opening();
        assert_eq!(json_of(&open[0])["event"], "connected");
        let start = json_of(&open[1]);
        assert_eq!(start["event"], "start");
        assert_eq!(start["sequenceNumber"], "1");
        assert_eq!(start["start"]["callSid"], "call-1");
        assert_eq!(start["start"]["customParameters"]["from"], "alice");
        assert_eq!(
            start["start"]["mediaFormat"],
            json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
        );
        let m = json_of(&t.heard(&[1000; 160], 160).unwrap());
        assert_eq!(m["sequenceNumber"], "2");
        assert_eq!(m["media"]["chunk"], "1");
        assert_eq!(m["media"]["timestamp"], "20");
        let bytes = BASE64
            .decode(m["media"]["payload"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(bytes.len(), 160);
        assert_eq!(bytes[0], mulaw::encode_sample(1000));
        let d = json_of(&t.dtmf('7').unwrap());
        assert_eq!(d["dtmf"], json!({"track": "inbound_track", "digit": "7"}));
        assert_eq!(json_of(&t.closing()[0])["event"], "stop");
        // A new connection: counters start again.
        let _ = t.opening();
        let m = json_of(&t.heard(&[0; 160], 320).unwrap());
        assert_eq!(
            (&m["sequenceNumber"], &m["media"]["chunk"]),
            (&json!("2"), &json!("1"))
        );
    }

    #[test]
    fn media_mark_and_clear_from_the_service() {
        let mut t = twilio();
        let mut out = Vec::new();
        let codes = vec![mulaw::encode_sample(-2000); 80];
        let media = json!({"event": "media", "streamSid": "MZ1",
                           "media": {"payload": BASE64.encode(&codes)}});
        t.receive(&Message::text(media.to_string()), &mut out)
            .unwrap();
        let mark = json!({"event": "mark", "streamSid": "MZ1", "mark": {"name": "said"}});
        t.receive(&Message::text(mark.to_string()), &mut out)
            .unwrap();
        t.receive(&Message::text(r#"{"event":"clear"}"#), &mut out)
            .unwrap();
        match &out[0] {
            ToCall::Audio(pcm, 8000) => {
                assert_eq!(pcm.len(), 80);
                assert!((pcm[0] + 2000).abs() < 100);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&out[1], ToCall::Mark(n) if n == "said"));
        assert!(matches!(out[2], ToCall::Clear));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let mut t = twilio();
        let mut out = Vec::new();
        for bad in [
            "not json",
            "[1,2]",
            r#"{"event":5}"#,
            r#"{"event":"media"}"#,
            r#"{"event":"media","media":{"payload":"@@@"}}"#,
            r#"{"event":"mark","mark":{}}"#,
            r#"{"event":"dance"}"#,
        ] {
            assert!(t.receive(&Message::text(bad), &mut out).is_err(), "{bad}");
        }
        assert!(t.receive(&Message::binary(vec![0u8; 4]), &mut out).is_err());
        assert!(out.is_empty());
    }
}
