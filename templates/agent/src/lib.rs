//! {{project-name}}: a voice agent. Each call is answered and its audio
//! streamed to a WebSocket service (a speech recogniser, a language model, a
//! bot framework) in the Twilio Media Streams or the jambonz `listen` shape;
//! what the service sends back is played to the caller, with barge-in
//! (`clear` / `killAudio`) and marks. `echo` is a service to try it with.

pub mod echo;

use parrot_core::media::ws::{self, Listen, OnLost, Reconnect, WsBridge};
use parrot_core::ua::{Incoming, Reply, SipHandler};
use std::sync::Arc;

/// Which protocol the service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Twilio Media Streams (JSON, base64 µ-law 8 kHz); Telnyx and others too.
    Twilio,
    /// jambonz `listen` (binary L16, here 16 kHz mono).
    Jambonz,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "twilio" => Ok(Protocol::Twilio),
            "jambonz" => Ok(Protocol::Jambonz),
            other => Err(format!("unknown protocol `{other}` (twilio or jambonz)")),
        }
    }
}

/// What every call shares: where the service is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service's WebSocket URL (`ws://` or `wss://`).
    pub service: String,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// What a call does once the service is gone (after the retries).
    pub on_lost: OnLost,
}

impl Config {
    /// The bridge for one call.
    pub fn bridge(&self, call: &Incoming) -> WsBridge {
        let bridge = match self.protocol {
            Protocol::Twilio => ws::twilio(&self.service),
            Protocol::Jambonz => ws::jambonz(&self.service, Listen::new().sample_rate(16000)),
        };
        bridge
            .call_id(call.call_id().unwrap_or(""))
            .from(call.from_user().unwrap_or(""))
            .to(call.to_user().unwrap_or(""))
            .reconnect(Reconnect::default())
            .on_lost(self.on_lost)
    }
}

/// Answers every call and bridges it to the service.
pub struct {{module}} {
    config: Arc<Config>,
}

impl {{module}} {
    /// A handler for one call.
    pub fn new(config: Arc<Config>) -> {{module}} {
        {{module}} { config }
    }
}

impl SipHandler for {{module}} {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        let bridge = self.config.bridge(call);
        call.answer(bridge).await
    }
}
