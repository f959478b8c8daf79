//! `parrot`: the Parrot command line. Project generation (`parrot new`) and
//! `parrot devices` arrive with the CLI issue; for now it reports its version.

use clap::Parser;

/// Parrot: a SIP/RTP toolkit for Rust.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!("parrot {}: run `parrot --help`", env!("CARGO_PKG_VERSION"));
    Ok(())
}
