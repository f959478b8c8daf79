//! `cargo xtask test`: everything CI runs, in order, stopping at the first failure.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::{system, util};

enum Action {
    /// Check (and install, as root) the Debian packages.
    Packages,
    /// Run a cargo command; stdout/stderr stay attached to the terminal.
    Cargo(Command),
}

struct Step {
    name: &'static str,
    action: Action,
}

fn steps() -> Vec<Step> {
    let cargo = |args: &[&str]| util::cargo(args);
    // Every step builds with the sound-card layer (`parrot-core/device`) too, so
    // it is linted, tested and documented like the rest.
    let mut doc = cargo(&[
        "doc",
        "--workspace",
        "--no-deps",
        "--features",
        "parrot-core/device",
    ]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    vec![
        Step {
            name: "packages",
            action: Action::Packages,
        },
        Step {
            name: "fmt",
            action: Action::Cargo(cargo(&["fmt", "--all", "--check"])),
        },
        Step {
            name: "clippy",
            action: Action::Cargo(cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                "parrot-core/device",
                "--",
                "-D",
                "warnings",
            ])),
        },
        // `--all-targets` runs unit, integration and example tests and runs each
        // bench once in test mode (it checks its contenders' values, no timing);
        // it leaves out doc tests, which cargo runs only in a separate `--doc` pass.
        // `parrot-core/device` adds the sound-card layer and its tests, which run
        // on ALSA's `null` and `file` devices (no sound card needed; the build
        // needs libasound2-dev and pkg-config, checked by the packages step).
        Step {
            name: "test",
            action: Action::Cargo(cargo(&[
                "test",
                "--workspace",
                "--all-targets",
                "--features",
                "parrot-core/device",
            ])),
        },
        Step {
            name: "doctest",
            action: Action::Cargo(cargo(&["test", "--workspace", "--doc"])),
        },
        Step {
            name: "doc",
            action: Action::Cargo(doc),
        },
    ]
}

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask test` takes no arguments (got `{arg}`)");
    }
    let started = Instant::now();
    let mut steps = steps();
    let total = steps.len();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (i, step) in steps.iter_mut().enumerate() {
        let what = match &step.action {
            Action::Packages => {
                let names: Vec<&str> = system::SYSTEM_PACKAGES.iter().map(|p| p.0).collect();
                format!("system packages ({})", names.join(", "))
            }
            Action::Cargo(cmd) => {
                let env = if step.name == "doc" {
                    "RUSTDOCFLAGS=\"-D warnings\" "
                } else {
                    ""
                };
                format!("{env}{}", util::display(cmd))
            }
        };
        util::header(i + 1, total, step.name, &what);
        let t0 = Instant::now();
        let outcome = match &mut step.action {
            Action::Packages => system::ensure_packages(),
            Action::Cargo(cmd) => util::status(cmd).and_then(|status| {
                if status.success() {
                    Ok(())
                } else {
                    bail!("`{}` exited with {status}", util::display(cmd))
                }
            }),
        };
        if let Err(err) = outcome {
            println!();
            summary(&done, Some(step.name), started.elapsed());
            eprintln!(
                "error: step {}/{total} `{}` failed: {err:#}",
                i + 1,
                step.name
            );
            return Ok(ExitCode::FAILURE);
        }
        done.push((step.name, t0.elapsed()));
    }
    println!();
    summary(&done, None, started.elapsed());
    println!("cargo xtask test: all {total} steps passed");
    Ok(ExitCode::SUCCESS)
}

fn summary(done: &[(&str, Duration)], failed: Option<&str>, total: Duration) {
    println!("==> summary");
    for (name, took) in done {
        println!("    ok    {name:<10} {:>8}", util::human(*took));
    }
    if let Some(name) = failed {
        println!("    FAIL  {name}");
    }
    println!("    total            {:>8}", util::human(total));
}
