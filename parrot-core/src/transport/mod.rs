//! SIP transports on tokio: UDP, TCP, TLS and WebSocket.
