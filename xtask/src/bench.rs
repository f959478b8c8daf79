//! `cargo xtask bench [NAME...]`: run benchmarks, each of which prints its own
//! table and writes `<target>/bench/<NAME>.json`.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::util;

/// A benchmark: a `harness = false` bench target that prints a table and
/// writes `<target dir>/bench/<name>.json`. Add new ones here.
struct Bench {
    name: &'static str,
    package: &'static str,
    about: &'static str,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "parse",
        package: "parrot-core",
        about: "typed SIP parse: parrot vs rsipstack vs rsip",
    },
    Bench {
        name: "media",
        package: "parrot-core",
        about: "G.711 throughput, RTP cost per packet, paced PCMU streams per core, UDP datagram cost: socket per call side vs shared + mmsg",
    },
    Bench {
        name: "cps",
        package: "parrot-tests",
        about: "calls/s knee under sipp uac: parrot vs sipp uas vs kamailio (tm)",
    },
    Bench {
        name: "concurrency",
        package: "parrot-tests",
        about: "long calls with paced PCMU both ways: callers in the same process, then in another; RSS, CPU, OPTIONS round trip per step",
    },
];

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    let selected: Vec<&Bench> = if args.is_empty() {
        BENCHES.iter().collect()
    } else {
        let mut selected = Vec::new();
        for arg in args {
            match BENCHES.iter().find(|b| b.name == arg) {
                Some(b) => selected.push(b),
                None => {
                    let known: Vec<String> = BENCHES
                        .iter()
                        .map(|b| format!("  {:<10} {}", b.name, b.about))
                        .collect();
                    bail!(
                        "unknown bench `{arg}`; known benches:\n{}",
                        known.join("\n")
                    );
                }
            }
        }
        selected
    };
    let out_dir = util::target_dir().join("bench");
    let mut failed = Vec::new();
    for (i, bench) in selected.iter().enumerate() {
        let mut cmd = util::cargo(["bench", "-p", bench.package, "--bench", bench.name]);
        util::header(
            i + 1,
            selected.len(),
            bench.name,
            &format!("{} ({})", util::display(&cmd), bench.about),
        );
        let status = util::status(&mut cmd)?;
        let json = out_dir.join(format!("{}.json", bench.name));
        if !status.success() {
            eprintln!("error: bench `{}` exited with {status}", bench.name);
            failed.push(bench.name);
        } else if !json.is_file() {
            eprintln!(
                "error: bench `{}` did not write {}",
                bench.name,
                json.display()
            );
            failed.push(bench.name);
        } else {
            println!("results: {}", json.display());
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: failed benches: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}
