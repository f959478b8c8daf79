//! Project automation: `cargo xtask test | bench | demo`.
//!
//! The `xtask` alias lives in `.cargo/config.toml`. Everything here shells out
//! to `cargo` and the system tools with [`std::process::Command`]; the only
//! dependency is `anyhow`, so `cargo xtask` builds in seconds on a clean clone.

mod bench;
mod demo;
mod system;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  test            install the system packages the tests need (or say how),
                  then fmt --check, clippy -D warnings, cargo test (all targets
                  and doc tests), cargo doc -D warnings; stops at the first failure
  bench [NAME...] run benchmarks (default: all) and write target/bench/NAME.json
  demo            run the demo (cargo run --release -p parrot-core --example demo)
  help            this text
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("test") => test::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("demo") => demo::run(&rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprint!("error: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
