//! The Parrot responder of `benches/cps.rs` (`parrot`, `parrot-1w`) with the
//! system allocator (glibc's malloc), as a generated server is by default. The
//! bench binary itself, started again as a responder, is `parrot-je`: the
//! same endpoint with jemalloc as its allocator (the bench's own), as a
//! generated server is built with `--features jemalloc`. The two side by side
//! say what the allocator costs per call.
//!
//! ```text
//! PARROT_CPS_RESPONDER=127.0.0.1:PORT [PARROT_CPS_WORKERS=N] cps_responder
//! ```
//! Serves until stdin closes.

#![allow(clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let env = parrot_tests::load::CPS_RESPONDER_ENV;
    let Ok(addr) = std::env::var(env) else {
        eprintln!("cps_responder: set {env}=IP:PORT, the address to serve on");
        return ExitCode::from(2);
    };
    parrot_tests::load::cps_responder(&addr);
    ExitCode::SUCCESS
}
