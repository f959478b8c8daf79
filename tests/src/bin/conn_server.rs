//! A Parrot endpoint on UDP and TCP, for `tests/connections.rs`: run in a
//! process of its own so that a test can give it a file descriptor limit
//! (`prlimit --nofile=N:N conn_server ...`) and count its descriptors in
//! `/proc/PID/fd`.
//!
//! ```text
//! conn_server --bind 127.0.0.1:PORT [--idle-ms N] [--message-ms N]
//! ```
//! Everything else is the library's default (connection caps included).
//! It answers OPTIONS with 200 (the endpoint's default), prints `ready` once
//! listening, and, on stdin, `hog N` opens N more descriptors (files, as a
//! busy server's RTP sockets would take them) and `free` closes them. It ends
//! when stdin closes.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use parrot_core::transport::TransportConfig;
use parrot_core::ua::Endpoint;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "conn_server: {problem}\nusage: conn_server --bind ADDR:PORT [--idle-ms N] [--message-ms N]"
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut bind: Option<SocketAddr> = None;
    let mut config = TransportConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        let ms = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u64>().ok());
        match a.as_str() {
            "--bind" => match value.as_deref().map(str::parse) {
                Some(Ok(b)) => bind = Some(b),
                _ => return usage("--bind wants ADDR:PORT"),
            },
            "--idle-ms" => match ms(&value) {
                Some(n) => config.idle_timeout = Duration::from_millis(n),
                None => return usage("--idle-ms wants milliseconds"),
            },
            "--message-ms" => match ms(&value) {
                Some(n) => config.message_timeout = Duration::from_millis(n),
                None => return usage("--message-ms wants milliseconds"),
            },
            other => return usage(&format!("unexpected argument {other:?}")),
        }
    }
    let Some(bind) = bind else {
        return usage("--bind is required");
    };
    let endpoint = match Endpoint::builder()
        .udp(bind)
        .tcp(bind)
        .transport_config(config)
        .build()
        .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("conn_server: cannot start on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready");
    // Commands on stdin, read in a thread of its own; stdin closed: stop.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut hogged: Vec<std::fs::File> = Vec::new();
    while let Some(line) = rx.recv().await {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|n| n.parse::<usize>().ok()),
        ) {
            (Some("hog"), Some(n)) => {
                for _ in 0..n {
                    match std::fs::File::open("/dev/null") {
                        Ok(f) => hogged.push(f),
                        Err(_) => break,
                    }
                }
                println!("hogging {}", hogged.len());
            }
            (Some("free"), _) => {
                hogged.clear();
                println!("freed");
            }
            _ => eprintln!("conn_server: unknown command {line:?}"),
        }
    }
    endpoint.shutdown(Duration::from_millis(500)).await;
    ExitCode::SUCCESS
}
