//! {{project-name}}: a voice agent server.
//!
//! ```text
//! cargo run -- [--bind ADDR] [--port PORT] [--service URL] [--protocol twilio|jambonz]
//!              [--on-lost silence|hangup] [--echo]
//! ```
//! Answers every call on ADDR:PORT (UDP and TCP; default {{bind}}:{{port}})
//! and streams it to the WebSocket service at URL (default
//! ws://127.0.0.1:8765/media), playing back what the service sends. The
//! environment variables PARROT_BIND, PARROT_PORT, AGENT_SERVICE,
//! AGENT_PROTOCOL and AGENT_ON_LOST set the same things; the flags win.
//! `--echo` also runs the echo service (src/echo.rs) on the service's
//! address, so a call hears itself: no account needed.
//!
//! When the service goes away mid-call the bridge retries (3 times, 200 ms
//! doubling); then the call goes on in silence, or with `--on-lost hangup`
//! is hung up. Logs go to stderr (`RUST_LOG` chooses; by default Parrot's
//! `info` lines and every warning, the bridge's losses among them).

use parrot_core::media::ws::OnLost;
use parrot_core::ua::Endpoint;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

use {{crate_name}}::{Config, Protocol};

use {{crate_name}}::{{module}};

const USAGE: &str = "\
usage: {{project-name}} [--bind ADDR] [--port PORT] [--service URL] [--protocol twilio|jambonz] [--on-lost silence|hangup] [--echo]";

/// The command line, after the environment and the defaults.
struct Options {
    addr: SocketAddr,
    config: Config,
    echo: bool,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn parse_options() -> Result<Options, String> {
    let mut bind = env_or("PARROT_BIND", "{{bind}}");
    let mut port = env_or("PARROT_PORT", "{{port}}");
    let mut service = env_or("AGENT_SERVICE", "ws://127.0.0.1:8765/media");
    let mut protocol = env_or("AGENT_PROTOCOL", "twilio");
    let mut on_lost = env_or("AGENT_ON_LOST", "silence");
    let mut echo = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--bind" => bind = value("--bind")?,
            "--port" => port = value("--port")?,
            "--service" => service = value("--service")?,
            "--protocol" => protocol = value("--protocol")?,
            "--on-lost" => on_lost = value("--on-lost")?,
            "--echo" => echo = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let ip: std::net::IpAddr = bind
        .parse()
        .map_err(|_| format!("`{bind}` is not an IP address"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    let on_lost = match on_lost.as_str() {
        "silence" => OnLost::Silence,
        "hangup" => OnLost::Hangup,
        other => return Err(format!("--on-lost `{other}`: silence or hangup")),
    };
    Ok(Options {
        addr: SocketAddr::new(ip, port),
        config: Config {
            service,
            protocol: protocol.parse::<Protocol>()?,
            on_lost,
        },
        echo,
    })
}

/// The echo service on the host and port of `service` (a `ws://` URL).
async fn start_echo(service: &str) -> Result<(), String> {
    let rest = service
        .strip_prefix("ws://")
        .ok_or("--echo needs a ws:// service URL")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let listener = tokio::net::TcpListener::bind(authority)
        .await
        .map_err(|e| format!("echo service on {authority}: {e}"))?;
    println!("echo service on ws://{authority}/");
    tokio::spawn({{crate_name}}::echo::serve(listener));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,parrot_core=info,{{crate_name}}=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.echo
        && let Err(e) = start_echo(&options.config.service).await
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let config = Arc::new(options.config);
    let shared = config.clone();
    let endpoint = match Endpoint::builder()
        .udp(options.addr)
        .tcp(options.addr)
        .handler(move || {{module}}::new(shared.clone()))
        .build()
        .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", options.addr);
            return ExitCode::from(1);
        }
    };
    println!(
        "{{project-name}}: answering on {} (UDP and TCP), streaming calls to {} ({:?}); Ctrl-C stops",
        options.addr, config.service, config.protocol
    );
    let _ = tokio::signal::ctrl_c().await;
    endpoint.shutdown(Duration::from_secs(2)).await;
    ExitCode::SUCCESS
}
