//! The echo service on its own: `cargo run --bin echo -- [ADDR]` (default
//! 127.0.0.1:8765). Point the agent at it: `cargo run -- --service
//! ws://127.0.0.1:8765/media` (the default), `--protocol jambonz` for the other shape.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".to_owned());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo: cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("echo: listening on ws://{addr}/ (Twilio Media Streams and jambonz listen)");
    {{crate_name}}::echo::serve(listener).await;
    ExitCode::SUCCESS
}
