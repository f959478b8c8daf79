//! A SIP server that answers every call.
//!
//! ```text
//! cargo run --release -p parrot-core --example uas -- --bind 127.0.0.1:5080 [--transport udp|tcp] [--ring-ms N]
//! ```
//! INVITE gets 200 OK (after 180 Ringing and N ms with `--ring-ms`, so that
//! CANCEL can be tried), BYE 200, OPTIONS 200; it runs until Ctrl-C and then
//! prints its counts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

struct Answer {
    ring: Option<Duration>,
}

impl SipHandler for Answer {
    async fn invite(&mut self, call: &mut Incoming) -> Reply {
        if let Some(wait) = self.ring {
            if call.ring().await.is_err() {
                return Reply::server_error();
            }
            tokio::time::sleep(wait).await;
        }
        Reply::ok()
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("uas: {problem}\nusage: uas --bind ADDR:PORT [--transport udp|tcp] [--ring-ms N]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut bind: SocketAddr = ([127, 0, 0, 1], 5080).into();
    let mut tcp = false;
    let mut ring = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--bind", Some(v)) => match v.parse() {
                Ok(b) => bind = b,
                Err(_) => return usage(&format!("--bind wants ADDR:PORT, got {v:?}")),
            },
            ("--transport", Some(v)) if v == "udp" || v == "tcp" => tcp = v == "tcp",
            ("--ring-ms", Some(v)) => match v.parse() {
                Ok(ms) => ring = Some(Duration::from_millis(ms)),
                Err(_) => return usage(&format!("--ring-ms wants milliseconds, got {v:?}")),
            },
            (other, _) => return usage(&format!("unexpected argument {other:?}")),
        }
    }
    let builder = Endpoint::builder().handler(move || Answer { ring });
    let builder = if tcp {
        builder.tcp(bind)
    } else {
        builder.udp(bind)
    };
    let endpoint = match builder.build().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("uas: cannot start on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "uas: listening on {bind} ({}); Ctrl-C to stop",
        if tcp { "tcp" } else { "udp" }
    );
    let _ = tokio::signal::ctrl_c().await;
    endpoint.shutdown(Duration::from_secs(2)).await;
    println!("uas: stopped; {:?}", endpoint.stats());
    ExitCode::SUCCESS
}
