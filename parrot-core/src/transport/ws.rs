//! SIP over WebSocket (RFC 7118): subprotocol `sip`, one message per frame.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
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

/// Largest WebSocket handshake request read (request line and header fields).
const MAX_HANDSHAKE: usize = 8 * 1024;

/// Why a handshake request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 400 Bad Request, with the reason as the body (RFC 6455 §4.2.1).
    BadRequest(&'static str),
    /// 426 Upgrade Required with `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2).
    Version,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest(r) => r,
            Refusal::Version => "Sec-WebSocket-Version 13 required",
        }
    }

    fn response(self) -> String {
        let reason = self.reason();
        match self {
            Refusal::BadRequest(_) => format!(
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\
                 Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reason}",
                reason.len()
            ),
            Refusal::Version => format!(
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
                 Upgrade: websocket\r\nConnection: Upgrade, close\r\n\
                 Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reason}",
                reason.len()
            ),
        }
    }
}

/// True when one of `values` (comma-separated header values) holds `token`, case-insensitively.
fn has_token<'a>(values: impl IntoIterator<Item = &'a str>, token: &str) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The value of one base64 digit.
fn base64_digit(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// True when `key` is the canonical base64 encoding of exactly 16 bytes
/// (RFC 6455 §4.2.1 item 5): 22 digits, the last with its low 4 bits zero, and `==`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && &b[22..] == b"=="
        && b[..22].iter().all(|&c| base64_digit(c).is_some())
        && base64_digit(b[21]).is_some_and(|d| d & 0x0f == 0)
}

/// Checks a handshake request (the bytes before the blank line, CRLF-separated)
/// against RFC 6455 §4.2.1 and RFC 7118 §4.1; returns its `Sec-WebSocket-Key`.
fn check_request(head: &[u8]) -> Result<&str, Refusal> {
    let bad = Refusal::BadRequest;
    let head = std::str::from_utf8(head).map_err(|_| bad("handshake is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(target), Some(v), None) if !target.is_empty() => (m, v),
        _ => return Err(bad("malformed request line")),
    };
    if method != "GET" {
        return Err(bad("method must be GET"));
    }
    if version != "HTTP/1.1" {
        return Err(bad("HTTP/1.1 required"));
    }
    let (mut host, mut upgrade, mut connection, mut keys, mut versions, mut protocols) = (
        0,
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(bad("folded header line"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("malformed header line"));
        };
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("malformed header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "host" => host += 1,
            "upgrade" => upgrade.push(value),
            "connection" => connection.push(value),
            "sec-websocket-key" => keys.push(value),
            "sec-websocket-version" => versions.push(value),
            "sec-websocket-protocol" => protocols.push(value),
            _ => {}
        }
    }
    if host != 1 {
        return Err(bad("exactly one Host required"));
    }
    if !has_token(upgrade, "websocket") {
        return Err(bad("Upgrade: websocket required"));
    }
    if !has_token(connection, "upgrade") {
        return Err(bad("Connection: Upgrade required"));
    }
    if versions.as_slice() != ["13"] {
        return Err(Refusal::Version);
    }
    let key = match keys.as_slice() {
        [key] if valid_key(key) => *key,
        [_] => return Err(bad("Sec-WebSocket-Key must be 16 bytes in base64")),
        _ => return Err(bad("exactly one Sec-WebSocket-Key required")),
    };
    if !has_token(protocols, SIP_SUBPROTOCOL) {
        return Err(bad("Sec-WebSocket-Protocol: sip required"));
    }
    Ok(key)
}

/// Where the header of a handshake request ends (after its blank line), if it
/// is all there; a bare LF anywhere before that is refused (RFC 7230 §3: CRLF).
fn head_end(buf: &[u8]) -> Result<Option<usize>, Refusal> {
    let end = memchr::memmem::find(buf, b"\r\n\r\n").map(|e| e + 4);
    let head = &buf[..end.unwrap_or(buf.len())];
    let bare_lf = memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r');
    if bare_lf {
        return Err(Refusal::BadRequest("bare LF line ending"));
    }
    Ok(end)
}

/// A stream under a WebSocket connection that fails a read with `TimedOut`
/// when a message is not complete `timeout` after the first of its bytes
/// arrived (slowloris). [`Deadline::message_done`] is called for each whole
/// message; bytes that arrive after it start the clock again.
pub(crate) struct Deadline<S> {
    inner: S,
    timeout: Duration,
    pending: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Deadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Deadline {
            inner,
            timeout,
            pending: None,
        }
    }

    /// A whole message (or control frame) was read: no message is pending.
    fn message_done(&mut self) {
        self.pending = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.pending.is_none() {
                    this.pending = Some(Box::pin(tokio::time::sleep(this.timeout)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.pending.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "message not complete within message_timeout",
                ))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Server handshake (RFC 6455 §4.2): validates the request strictly, refuses
/// with 400 or 426 and closes, or answers 101 selecting the `sip` subprotocol.
pub(crate) async fn accept<S>(
    shared: &Shared,
    mut stream: S,
    remote: SocketAddr,
) -> Result<WebSocketStream<Deadline<S>>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let err = |message: String| TransportError::WebSocket {
        addr: remote,
        message,
    };
    let mut buf = Vec::with_capacity(1024);
    let checked = loop {
        match head_end(&buf) {
            Ok(Some(end)) => break check_request(&buf[..end - 4]).map(|key| (key, end)),
            Ok(None) if buf.len() >= MAX_HANDSHAKE => {
                break Err(Refusal::BadRequest("handshake too large"));
            }
            Ok(None) => {}
            Err(refusal) => break Err(refusal),
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(err("closed during the handshake".to_owned()));
        }
    };
    let (key, end) = match checked {
        Ok(x) => x,
        Err(refusal) => {
            let reason = refusal.reason();
            let _ = stream.write_all(refusal.response().as_bytes()).await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
            return Err(err(format!("handshake refused: {reason}")));
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {SIP_SUBPROTOCOL}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    let rest = buf[end..].to_vec();
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;
    let stream = Deadline::new(stream, shared.config.message_timeout);
    Ok(
        WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(ws_config(shared)))
            .await,
    )
}

/// Client handshake offering the `sip` subprotocol.
pub(crate) async fn connect<S>(
    shared: &Shared,
    stream: S,
    target: &Target,
) -> Result<WebSocketStream<Deadline<S>>, TransportError>
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
    let stream = Deadline::new(stream, shared.config.message_timeout);
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
///
/// As on TCP, `idle_timeout` runs from the last whole message, ping or pong
/// received or message sent, and `message_timeout` from the first byte of a
/// frame not yet complete (see [`Deadline`]).
pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<Deadline<S>>,
    reg: Registration,
    mut rx: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let conn = reg.id;
    let idle = shared.config.idle_timeout;
    let mut shutdown = shared.shutdown_signal();
    let mut last_activity = Instant::now();
    // The handshake's bytes are no message.
    ws.get_mut().message_done();
    loop {
        reg.touch(last_activity);
        tokio::select! {
            msg = ws.next() => {
                if matches!(msg, Some(Ok(_))) {
                    ws.get_mut().message_done();
                }
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
                    Some(Err(tokio_tungstenite::tungstenite::Error::Io(e)))
                        if e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        shared.count_timed_out();
                        tracing::debug!(%conn, remote = %reg.remote,
                            "message not complete within message_timeout, closing connection");
                        break;
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
                reg.proven();
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
            () = reg.evicted() => break,
            () = wait_shutdown(&mut shutdown) => break,
        }
    }
    drop(reg);
    drop(rx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::{Refusal, check_request, head_end, valid_key};

    #[test]
    fn keys() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(valid_key("AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(!valid_key("AAAAAAAAAAAAAAAAAAAAAB==")); // bits past the 16 bytes
        assert!(!valid_key("AAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!valid_key("AAAAAAAAAAAAAAAAAAAA"));
        assert!(!valid_key(""));
        assert!(!valid_key("!AAAAAAAAAAAAAAAAAAAAA=="));
    }

    #[test]
    fn requests() {
        let good = "GET /sip HTTP/1.1\r\nhost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Protocol: chat, sip";
        assert_eq!(
            check_request(good.as_bytes()),
            Ok("dGhlIHNhbXBsZSBub25jZQ==")
        );
        let folded = good.replace("host: x", "host: x\r\n y");
        assert!(matches!(
            check_request(folded.as_bytes()),
            Err(Refusal::BadRequest(_))
        ));
        let two_versions = format!("{good}\r\nSec-WebSocket-Version: 13");
        assert_eq!(
            check_request(two_versions.as_bytes()),
            Err(Refusal::Version)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nxx"), Ok(Some(18)));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        assert!(head_end(b"GET / HTTP/1.1\nHost").is_err());
    }
}
