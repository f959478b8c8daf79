//! The Parrot responder of `benches/cps.rs` (`parrot-je`) built with
//! jemalloc as its global allocator, as the generated server is with
//! `--features jemalloc` and as the `uas` example is: the same endpoint as
//! the bench's own `parrot` responder (the system allocator), so that the two
//! side by side say what the allocator costs per call.
//!
//! ```text
//! PARROT_CPS_RESPONDER=127.0.0.1:PORT cps_responder
//! ```
//! Serves until stdin closes.

#![allow(clippy::print_stderr)]

use std::process::ExitCode;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let Ok(addr) = std::env::var("PARROT_CPS_RESPONDER") else {
        eprintln!("cps_responder: set PARROT_CPS_RESPONDER=IP:PORT, the address to serve on");
        return ExitCode::from(2);
    };
    parrot_tests::load::cps_responder(&addr);
    ExitCode::SUCCESS
}
