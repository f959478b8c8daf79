//! An echo service: a WebSocket server that plays each caller's audio back
//! to them, so the agent can be tried without an account anywhere. It
//! speaks both protocols: a connection asking for the `audio.jambonz.org`
//! subprotocol gets jambonz `listen` (binary L16 sent back as it came),
//! any other Twilio Media Streams (each `media` event sent back). A digit
//! from the caller empties what is queued (`clear` / `killAudio`): barge-in.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The subprotocol of jambonz `listen`.
const JAMBONZ: &str = "audio.jambonz.org";

/// Serves connections from `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                tokio::spawn(async move {
                    if let Err(e) = echo(tcp).await {
                        eprintln!("echo: {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("echo: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Chooses jambonz when the client offers its subprotocol.
#[allow(clippy::result_large_err)] // the signature tungstenite asks for
fn choose(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == JAMBONZ));
    if offered {
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(JAMBONZ));
    }
    Ok(resp)
}

async fn echo(tcp: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let _ = tcp.set_nodelay(true);
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, choose).await?;
    let mut stream_sid = String::new();
    while let Some(msg) = ws.next().await {
        let reply = match msg? {
            // jambonz: audio back as it came.
            Message::Binary(b) => Some(Message::Binary(b)),
            Message::Text(t) => {
                // Not JSON: skipped. jambonz's metadata frame has no `event`.
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                reply_to(&v, &mut stream_sid)
            }
            Message::Close(_) => break,
            _ => None,
        };
        if let Some(r) = reply {
            ws.send(r).await?;
        }
    }
    Ok(())
}

/// The answer to one text message, if any.
fn reply_to(v: &Value, stream_sid: &mut String) -> Option<Message> {
    let reply = match v.get("event").and_then(Value::as_str) {
        Some("start") => {
            if let Some(sid) = v.get("streamSid").and_then(Value::as_str) {
                sid.clone_into(stream_sid);
            }
            return None;
        }
        Some("media") => {
            let payload = v.pointer("/media/payload")?.as_str()?;
            json!({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})
        }
        // A digit: barge-in, in each protocol's words.
        Some("dtmf") if v.get("dtmf").is_some_and(Value::is_object) => {
            json!({"event": "clear", "streamSid": stream_sid})
        }
        Some("dtmf") => json!({"type": "killAudio"}),
        _ => return None,
    };
    Some(Message::text(reply.to_string()))
}
