//! A framed SIP stream connection (TCP or TLS): Content-Length framing
//! (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626 §3.5.1).

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Inbound, Registration, Shared, wait_shutdown};
use crate::message::framing::{Framed, frame};

/// Read-buffer headroom kept free before each read.
const READ_CHUNK: usize = 8 * 1024;

/// Writes all of `data` and flushes, within `timeout`.
async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    data: &[u8],
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let write = async {
        stream.write_all(data).await?;
        stream.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

/// Runs a connection until it closes, fails, idles out or the transports shut down.
///
/// Two timers: `idle_timeout` from the last whole message or keep-alive
/// received or message sent, and `message_timeout` from the first byte of a
/// message that is not yet complete (slowloris).
pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    mut stream: S,
    reg: Registration,
    mut rx: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let conn = reg.id;
    let max = shared.config.max_message_size;
    let idle = shared.config.idle_timeout;
    let message_timeout = shared.config.message_timeout;
    let mut shutdown = shared.shutdown_signal();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut last_activity = Instant::now();
    // When the first byte of the message now incomplete in `buf` arrived.
    let mut message_started: Option<Instant> = None;
    'conn: loop {
        // Take every complete frame out of the buffer.
        let mut framed = false;
        loop {
            match frame(&buf, max) {
                Ok(Framed::Incomplete) => break,
                Ok(Framed::KeepAlive { len, ping }) => {
                    buf.advance(len);
                    framed = true;
                    last_activity = Instant::now();
                    if ping {
                        tracing::trace!(%conn, "CRLF ping, sending pong");
                        if let Err(e) = write_all(&mut stream, b"\r\n", idle).await {
                            tracing::debug!(%conn, error = %e, "write failed");
                            break 'conn;
                        }
                    }
                }
                Ok(Framed::Message { len }) => {
                    framed = true;
                    reg.proven();
                    last_activity = Instant::now();
                    let incoming = Inbound {
                        data: buf.split_to(len).freeze(),
                        source: reg.remote,
                        local: reg.local,
                        kind: reg.kind,
                        conn: Some(conn),
                    };
                    // Wait for room in the incoming queue, meanwhile writing what is
                    // queued for this connection: an application blocked in `send` on
                    // this connection must not deadlock with us.
                    let permit = loop {
                        tokio::select! {
                            p = shared.incoming.reserve() => match p {
                                Ok(p) => break p,
                                Err(_) => break 'conn,
                            },
                            out = rx.recv() => {
                                let Some(data) = out else { break 'conn };
                                if let Err(e) = write_all(&mut stream, &data, idle).await {
                                    tracing::debug!(%conn, error = %e, "write failed");
                                    break 'conn;
                                }
                                last_activity = Instant::now();
                            }
                            () = wait_shutdown(&mut shutdown) => break 'conn,
                        }
                    };
                    permit.send(incoming);
                }
                Err(e) => {
                    shared.count_framing_error();
                    tracing::warn!(%conn, remote = %reg.remote, error = %e, "framing error, closing connection");
                    break 'conn;
                }
            }
        }
        if buf.is_empty() {
            message_started = None;
        } else if framed || message_started.is_none() {
            // What is left arrived with the last read: the next message starts now.
            message_started = Some(Instant::now());
        }
        reg.touch(last_activity);
        let idle_deadline = last_activity + idle;
        let deadline = match message_started {
            Some(t) => idle_deadline.min(t + message_timeout),
            None => idle_deadline,
        };
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => {
                    tracing::debug!(%conn, "closed by peer");
                    break 'conn;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%conn, error = %e, "read failed");
                    break 'conn;
                }
            },
            out = rx.recv() => {
                let Some(data) = out else { break 'conn };
                if let Err(e) = write_all(&mut stream, &data, idle).await {
                    tracing::debug!(%conn, error = %e, "write failed");
                    break 'conn;
                }
                last_activity = Instant::now();
            }
            () = tokio::time::sleep_until(deadline) => {
                shared.count_timed_out();
                if deadline < idle_deadline {
                    tracing::debug!(%conn, remote = %reg.remote, pending = buf.len(),
                        "message not complete within message_timeout, closing connection");
                } else {
                    tracing::debug!(%conn, "idle timeout");
                }
                break 'conn;
            }
            () = reg.evicted() => break 'conn,
            () = wait_shutdown(&mut shutdown) => break 'conn,
        }
    }
    // Unlist first so that no new message is queued, then close politely (TLS close_notify).
    drop(reg);
    drop(rx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.shutdown()).await;
}
