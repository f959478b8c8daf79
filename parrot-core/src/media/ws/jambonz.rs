//! The Jambonz `listen` protocol, as jambonz speaks it (we connect to the
//! service): subprotocol `audio.jambonz.org`, one JSON text frame of call
//! metadata (with `sampleRate` and `mixType`), then binary frames of
//! 16-bit little-endian PCM at that rate, mono or stereo (interleaved). With
//! bidirectional audio the service streams binary L16 back (at its own
//! rate), or sends `playAudio` (base64 raw L16 or WAV); `killAudio` stops
//! playback, `disconnect` ends the stream. DTMF goes up as
//! `{"event":"dtmf","dtmf":"5"}`. Sans-IO: messages in, messages out.
//!
//! Marks are not part of jambonz's protocol; Parrot adds them the way
//! Twilio has them: `{"type":"mark","data":{"name":"n"}}` from the service
//! comes back as `{"type":"mark","data":{"name":"n","event":"playout"}}`
//! once what was queued before it has played (or been killed). A
//! `playAudio` with an `id` is answered with `{"type":"playDone","data":{"id":..}}`
//! once played, as jambonz does.

use super::{Protocol, ToCall};
use crate::media::Resampler;
use data_encoding::BASE64;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use tokio_tungstenite::tungstenite::Message;

/// The WebSocket subprotocol jambonz asks for.
pub(super) const SUBPROTOCOL: &str = "audio.jambonz.org";

/// Marks Parrot queues for a `playAudio` with an `id` start with this (a
/// name no service sends: it begins with a NUL).
const PLAY_DONE: &str = "\u{0}playDone:";

/// Played samples kept to pair with received ones in stereo (100 ms).
const PLAYED_MAX: usize = 800;

/// Options of a Jambonz `listen` stream (the verb's own names in parentheses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    sample_rate: u32,
    stereo: bool,
    bidirectional: bool,
    return_rate: Option<u32>,
    pass_dtmf: bool,
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            sample_rate: 8000,
            stereo: false,
            bidirectional: true,
            return_rate: None,
            pass_dtmf: true,
        }
    }
}

impl Listen {
    /// Mono at 8 kHz, bidirectional, digits passed on.
    pub fn new() -> Listen {
        Listen::default()
    }

    /// The rate of the audio sent to the service (`sampleRate`): 8000,
    /// 16000, 24000, 48000 or 64000 (others are used as given).
    pub fn sample_rate(mut self, hz: u32) -> Listen {
        self.sample_rate = hz.max(1);
        self
    }

    /// Two channels (`mixType: "stereo"`): left what the caller says, right
    /// what the call plays to the caller. Default: mono, the caller only.
    pub fn stereo(mut self) -> Listen {
        self.stereo = true;
        self
    }

    /// Whether the service's audio is played into the call
    /// (`bidirectionalAudio.enabled`); default true. When false, what it
    /// sends is counted as unusable and dropped.
    pub fn bidirectional(mut self, on: bool) -> Listen {
        self.bidirectional = on;
        self
    }

    /// The rate of the binary audio the service sends back
    /// (`bidirectionalAudio.sampleRate`); default the [`Listen::sample_rate`].
    pub fn return_rate(mut self, hz: u32) -> Listen {
        self.return_rate = Some(hz.max(1));
        self
    }

    pub(super) fn is_stereo(&self) -> bool {
        self.stereo
    }

    /// Whether DTMF digits are sent to the service (`passDtmf`); default true.
    pub fn pass_dtmf(mut self, on: bool) -> Listen {
        self.pass_dtmf = on;
        self
    }
}

/// One stream's state.
#[derive(Debug)]
pub(super) struct Jambonz {
    listen: Listen,
    metadata: Value,
    up: [Resampler; 2],
    played: VecDeque<i16>,
}

impl Jambonz {
    /// `metadata`: the call's attributes (an object), merged with
    /// `sampleRate` and `mixType` into the first text frame.
    pub(super) fn new(listen: Listen, metadata: Map<String, Value>) -> Jambonz {
        let mut m = metadata;
        m.insert("sampleRate".into(), json!(listen.sample_rate));
        let mix = if listen.stereo { "stereo" } else { "mono" };
        m.insert("mixType".into(), json!(mix));
        let rate = listen.sample_rate;
        Jambonz {
            listen,
            metadata: Value::Object(m),
            up: [Resampler::new(8000, rate), Resampler::new(8000, rate)],
            played: VecDeque::new(),
        }
    }

    fn decode_l16(bytes: &[u8]) -> Result<Vec<i16>, String> {
        if bytes.len() % 2 != 0 {
            return Err(format!(
                "L16 audio of {} bytes: not a whole number of samples",
                bytes.len()
            ));
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect())
    }

    fn play_audio(&self, data: &Value, out: &mut Vec<ToCall>) -> Result<(), String> {
        let content = data
            .get("audioContent")
            .and_then(Value::as_str)
            .ok_or("playAudio without a \"data.audioContent\" string")?;
        let bytes = BASE64
            .decode(content.as_bytes())
            .map_err(|e| format!("playAudio content is not base64: {e}"))?;
        let kind = data
            .get("audioContentType")
            .and_then(Value::as_str)
            .unwrap_or("raw");
        let (pcm, rate) = match kind {
            "raw" => {
                // A number, or a number in a string.
                let rate = match data.get("sampleRate") {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.parse().ok(),
                    _ => None,
                }
                .and_then(|r| u32::try_from(r).ok())
                .filter(|r| (1000..=192_000).contains(r))
                .ok_or("playAudio raw content without a sampleRate (1000..192000)")?;
                (Self::decode_l16(&bytes)?, rate)
            }
            "wav" | "wave" => wav_mono(&bytes)?,
            other => return Err(format!("playAudio audioContentType {other:?} (raw or wav)")),
        };
        out.push(ToCall::Audio(pcm, rate));
        if let Some(id) = data.get("id") {
            let id = match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(ToCall::Mark(format!("{PLAY_DONE}{id}")));
        }
        Ok(())
    }
}

/// A 16-bit WAV's first channel and its rate.
fn wav_mono(bytes: &[u8]) -> Result<(Vec<i16>, u32), String> {
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("playAudio WAV: {e}"))?;
    let spec = r.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(format!(
            "playAudio WAV of {} bits: 16-bit PCM only",
            spec.bits_per_sample
        ));
    }
    let channels = usize::from(spec.channels.max(1));
    let mut pcm = Vec::new();
    for (i, s) in r.samples::<i16>().enumerate() {
        let s = s.map_err(|e| format!("playAudio WAV: {e}"))?;
        if i % channels == 0 {
            pcm.push(s);
        }
    }
    Ok((pcm, spec.sample_rate))
}

impl Protocol for Jambonz {
    fn subprotocol(&self) -> Option<&'static str> {
        Some(SUBPROTOCOL)
    }

    fn opening(&mut self) -> Vec<Message> {
        let rate = self.listen.sample_rate;
        self.up = [Resampler::new(8000, rate), Resampler::new(8000, rate)];
        self.played.clear();
        vec![Message::text(self.metadata.to_string())]
    }

    fn played(&mut self, samples: &[i16]) {
        if self.listen.stereo {
            self.played.extend(samples.iter().copied());
            let over = self.played.len().saturating_sub(PLAYED_MAX);
            self.played.drain(..over);
        }
    }

    fn heard(&mut self, samples: &[i16], _at: u64) -> Option<Message> {
        let mut left = Vec::with_capacity(samples.len() * 8);
        self.up[0].process(samples, &mut left);
        let bytes = if self.listen.stereo {
            let sent: Vec<i16> = (0..samples.len())
                .map(|_| self.played.pop_front().unwrap_or(0))
                .collect();
            let mut right = Vec::with_capacity(left.len() + 16);
            self.up[1].process(&sent, &mut right);
            let n = left.len().min(right.len());
            let mut b = Vec::with_capacity(n * 4);
            for (l, r) in left[..n].iter().zip(&right[..n]) {
                b.extend_from_slice(&l.to_le_bytes());
                b.extend_from_slice(&r.to_le_bytes());
            }
            b
        } else {
            left.iter().flat_map(|s| s.to_le_bytes()).collect()
        };
        Some(Message::binary(bytes))
    }

    fn dtmf(&mut self, digit: char) -> Option<Message> {
        self.listen
            .pass_dtmf
            .then(|| Message::text(json!({"event": "dtmf", "dtmf": digit.to_string()}).to_string()))
    }

    fn mark_done(&mut self, name: &str) -> Option<Message> {
        let v = match name.strip_prefix(PLAY_DONE) {
            Some(id) => json!({"type": "playDone", "data": {"id": id}}),
            None => json!({"type": "mark", "data": {"name": name, "event": "playout"}}),
        };
        Some(Message::text(v.to_string()))
    }

    fn closing(&mut self) -> Vec<Message> {
        Vec::new()
    }

    fn receive(&mut self, msg: &Message, out: &mut Vec<ToCall>) -> Result<(), String> {
        match msg {
            Message::Binary(b) => {
                if !self.listen.bidirectional {
                    return Err("audio from the service, but bidirectional audio is off".into());
                }
                let rate = self.listen.return_rate.unwrap_or(self.listen.sample_rate);
                out.push(ToCall::Audio(Self::decode_l16(b)?, rate));
                Ok(())
            }
            Message::Text(t) => {
                let v: Value =
                    serde_json::from_str(t.as_str()).map_err(|e| format!("not JSON: {e}"))?;
                let kind = v
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or("no \"type\" string")?;
                let data = v.get("data").unwrap_or(&Value::Null);
                match kind {
                    "playAudio" if self.listen.bidirectional => self.play_audio(data, out)?,
                    "playAudio" => return Err("playAudio, but bidirectional audio is off".into()),
                    "killAudio" => out.push(ToCall::Clear),
                    "disconnect" => out.push(ToCall::End),
                    "mark" => {
                        let name = data
                            .get("name")
                            .and_then(Value::as_str)
                            .filter(|n| !n.starts_with('\u{0}'))
                            .ok_or("mark without a \"data.name\" string")?;
                        out.push(ToCall::Mark(name.to_owned()));
                    }
                    other => return Err(format!("unsupported message type {other:?}")),
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn meta() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("callSid".into(), json!("c1"));
        m.insert("from".into(), json!("alice"));
        m
    }

    #[test]
    fn metadata_first_then_l16_mono_at_the_chosen_rate() {
        let mut j = Jambonz::new(Listen::new().sample_rate(16000), meta());
        let open = j.opening();
        let m: Value = serde_json::from_str(open[0].to_text().unwrap()).unwrap();
        assert_eq!(m["sampleRate"], 16000);
        assert_eq!(m["mixType"], "mono");
        assert_eq!(m["from"], "alice");
        let mut total = 0;
        for _ in 0..10 {
            let Some(Message::Binary(b)) = j.heard(&[1000; 160], 0) else {
                panic!("binary audio")
            };
            total += b.len();
        }
        // 200 ms at 16 kHz, 2 bytes a sample (less the resampler's 2 ms look-ahead).
        assert!((6200..=6400).contains(&total), "{total}");
    }

    #[test]
    fn stereo_pairs_what_was_heard_with_what_was_played() {
        let mut j = Jambonz::new(Listen::new().stereo(), meta());
        let _ = j.opening();
        j.played(&[-3000; 160]);
        let Some(Message::Binary(b)) = j.heard(&[3000; 160], 0) else {
            panic!("binary audio")
        };
        assert_eq!(b.len(), 160 * 4);
        let l = i16::from_le_bytes([b[0], b[1]]);
        let r = i16::from_le_bytes([b[2], b[3]]);
        assert_eq!((l, r), (3000, -3000));
        // Nothing played: the right channel is silence.
        let Some(Message::Binary(b)) = j.heard(&[3000; 160], 160) else {
            panic!("binary audio")
        };
        assert_eq!(i16::from_le_bytes([b[2], b[3]]), 0);
    }

    #[test]
    fn audio_kill_marks_and_disconnect_from_the_service() {
        let mut j = Jambonz::new(Listen::new().return_rate(24000), meta());
        let mut out = Vec::new();
        let pcm: Vec<u8> = [100i16, -100]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        j.receive(&Message::binary(pcm.clone()), &mut out).unwrap();
        assert!(matches!(&out[0], ToCall::Audio(p, 24000) if p == &vec![100, -100]));
        let play = json!({"type": "playAudio", "data": {"audioContent": BASE64.encode(&pcm),
                          "audioContentType": "raw", "sampleRate": "16000", "id": 4}});
        j.receive(&Message::text(play.to_string()), &mut out)
            .unwrap();
        assert!(matches!(&out[1], ToCall::Audio(_, 16000)));
        let ToCall::Mark(done) = &out[2] else {
            panic!("{:?}", out[2])
        };
        let reply: Value =
            serde_json::from_str(j.mark_done(done).unwrap().to_text().unwrap()).unwrap();
        assert_eq!(reply, json!({"type": "playDone", "data": {"id": "4"}}));
        for m in [
            r#"{"type":"killAudio"}"#,
            r#"{"type":"mark","data":{"name":"m"}}"#,
            r#"{"type":"disconnect"}"#,
        ] {
            j.receive(&Message::text(m), &mut out).unwrap();
        }
        assert!(matches!(out[3], ToCall::Clear));
        assert!(matches!(&out[4], ToCall::Mark(n) if n == "m"));
        assert!(matches!(out[5], ToCall::End));
        let reply: Value =
            serde_json::from_str(j.mark_done("m").unwrap().to_text().unwrap()).unwrap();
        assert_eq!(reply["data"], json!({"name": "m", "event": "playout"}));
    }

    #[test]
    fn malformed_or_unwanted_input_is_an_error() {
        let mut j = Jambonz::new(Listen::new(), meta());
        let mut out = Vec::new();
        for bad in [
            "{",
            r#"{"type":"playAudio","data":{}}"#,
            r#"{"type":"playAudio","data":{"audioContent":"!!"}}"#,
            r#"{"type":"playAudio","data":{"audioContent":"AAAA","audioContentType":"raw"}}"#,
            r#"{"type":"playAudio","data":{"audioContent":"AAAA","audioContentType":"mp3"}}"#,
            r#"{"type":"mark","data":{"name":"\u0000playDone:1"}}"#,
            r#"{"type":"transfer"}"#,
        ] {
            assert!(j.receive(&Message::text(bad), &mut out).is_err(), "{bad}");
        }
        assert!(j.receive(&Message::binary(vec![1u8; 3]), &mut out).is_err());
        let mut off = Jambonz::new(Listen::new().bidirectional(false), meta());
        assert!(
            off.receive(&Message::binary(vec![0u8; 4]), &mut out)
                .is_err()
        );
        assert!(out.is_empty());
        assert!(
            Jambonz::new(Listen::new().pass_dtmf(false), meta())
                .dtmf('1')
                .is_none()
        );
    }
}
