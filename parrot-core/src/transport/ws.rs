//! SIP over WebSocket (RFC 7118): subprotocol `sip`, one message per frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{
    ConnectionId, Inbound, Registration, Shared, Target, TransportError, TransportKind,
    wait_shutdown,
};

/// The WebSocket subprotocol for SIP (RFC 7118 §4.1).
const SIP_SUBPROTOCOL: &str = "sip";

fn ws_config(shared: &Shared) -> WebSocketConfig {
    let max = shared.config.max_message_size;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// True when a handshake request offers the `sip` subprotocol.
fn offers_sip(req: &Request) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SIP_SUBPROTOCOL))
}

/// Handshake callback: selects `sip`, or refuses with 400 when it is not offered.
#[allow(
    clippy::result_large_err,
    reason = "signature imposed by tungstenite's Callback"
)]
fn select_sip(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    if offers_sip(req) {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SIP_SUBPROTOCOL),
        );
        Ok(resp)
    } else {
        let mut err = ErrorResponse::new(Some("Sec-WebSocket-Protocol: sip required".to_owned()));
        *err.status_mut() = StatusCode::BAD_REQUEST;
        Err(err)
    }
}

/// Server handshake: requires and selects the `sip` subprotocol.
pub(crate) async fn accept<S>(
    shared: &Shared,
    stream: S,
    remote: SocketAddr,
) -> Result<WebSocketStream<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio_tungstenite::accept_hdr_async_with_config(stream, select_sip, Some(ws_config(shared)))
        .await
        .map_err(|e| TransportError::WebSocket {
            addr: remote,
            message: e.to_string(),
        })
}

/// Client handshake offering the `sip` subprotocol.
pub(crate) async fn connect<S>(
    shared: &Shared,
    stream: S,
    target: &Target,
) -> Result<WebSocketStream<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let addr = target.addr;
    let err = |message: String| TransportError::WebSocket { addr, message };
    let scheme = if target.kind == TransportKind::Wss {
        "wss"
    } else {
        "ws"
    };
    let host = match &target.server_name {
        Some(name) => format!("{name}:{}", addr.port()),
        None => addr.to_string(),
    };
    let mut request = format!("{scheme}://{host}/")
        .into_client_request()
        .map_err(|e| err(e.to_string()))?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SIP_SUBPROTOCOL),
    );
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config(shared)))
            .await
            .map_err(|e| err(e.to_string()))?;
    let accepted = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SIP_SUBPROTOCOL));
    if !accepted {
        return Err(err("server did not select subprotocol sip".to_owned()));
    }
    Ok(ws)
}

/// Text frame when the message is UTF-8 (RFC 7118 §5.1), binary otherwise.
fn to_message(data: Bytes) -> Message {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    }
}

/// Sends one message within `timeout`; false when the connection failed.
async fn write<S>(
    ws: &mut WebSocketStream<S>,
    conn: ConnectionId,
    data: Bytes,
    timeout: Duration,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, ws.send(to_message(data))).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(%conn, error = %e, "WebSocket write failed");
            false
        }
        Err(_) => {
            tracing::debug!(%conn, "WebSocket write timed out");
            false
        }
    }
}

/// Runs a WebSocket connection until it closes, fails, idles out or the transports shut down.
pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    reg: Registration,
    mut rx: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let conn = reg.id;
    let idle = shared.config.idle_timeout;
    let mut shutdown = shared.shutdown_signal();
    let mut last_activity = Instant::now();
    loop {
        tokio::select! {
            msg = ws.next() => {
                let data = match msg {
                    Some(Ok(Message::Text(t))) => Bytes::from(t),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None => {
                        tracing::debug!(%conn, "closed by peer");
                        break;
                    }
                    Some(Ok(_)) => {
                        // Ping / pong: tungstenite answers pings itself.
                        last_activity = Instant::now();
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(%conn, error = %e, "WebSocket read failed");
                        break;
                    }
                };
                last_activity = Instant::now();
                if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                    continue; // empty or keep-alive
                }
                let incoming = Inbound {
                    data,
                    source: reg.remote,
                    local: reg.local,
                    kind: reg.kind,
                    conn: Some(conn),
                };
                // As in stream.rs: keep writing while waiting for room to deliver.
                let permit = loop {
                    tokio::select! {
                        p = shared.incoming.reserve() => match p {
                            Ok(p) => break Some(p),
                            Err(_) => break None,
                        },
                        out = rx.recv() => {
                            let Some(data) = out else { break None };
                            if !write(&mut ws, conn, data, idle).await {
                                break None;
                            }
                            last_activity = Instant::now();
                        }
                        () = wait_shutdown(&mut shutdown) => break None,
                    }
                };
                let Some(permit) = permit else { break };
                permit.send(incoming);
            }
            out = rx.recv() => {
                let Some(data) = out else { break };
                if !write(&mut ws, conn, data, idle).await {
                    break;
                }
                last_activity = Instant::now();
            }
            () = tokio::time::sleep_until(last_activity + idle) => {
                shared.count_timed_out();
                tracing::debug!(%conn, "idle timeout");
                break;
            }
            () = wait_shutdown(&mut shutdown) => break,
        }
    }
    drop(reg);
    drop(rx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ws.close(None)).await;
}
