//! `cargo xtask demo`: run the demo example.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::util;

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask demo` takes no arguments (got `{arg}`)");
    }
    println!(
        "note: this runs the parrot-core `demo` example; the full call demo \
         (a generated UAS answering a real softphone) arrives with the CLI/templates issue."
    );
    let mut cmd = util::cargo(["run", "--release", "-p", "parrot-core", "--example", "demo"]);
    println!("==> {}", util::display(&cmd));
    let status = util::status(&mut cmd)?;
    if status.success() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("error: the demo exited with {status}");
    // Pass the demo's own exit code on when there is one.
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .filter(|&c| c != 0)
        .map_or(ExitCode::FAILURE, ExitCode::from))
}
