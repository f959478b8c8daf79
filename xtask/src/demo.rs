//! `cargo xtask demo`: what a new user does, end to end. Builds the `parrot`
//! CLI, generates a server (`parrot new uas`) and a client (`parrot new uac`)
//! into `target/demo/`, builds both against this checkout's parrot-core,
//! starts the server, has the client call it headless (recording what it
//! hears), and reports: the call's progress, codec, RTP counts, seconds of
//! audio heard, and whether it is the server's welcome prompt (660 Hz).
//! Exits 0 only if the call worked and the greeting was heard.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util;

/// The frequency of the welcome prompt the `uas` template ships (see templates/make_assets.py).
const WELCOME_HZ: f64 = 660.0;

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask demo` takes no arguments (got `{arg}`)");
    }
    let started = Instant::now();
    let root = util::workspace_root();
    let demo = util::target_dir().join("demo");
    std::fs::create_dir_all(&demo).with_context(|| format!("creating {}", demo.display()))?;
    // The generated projects build into a target dir of their own, shared between them.
    let gen_target = demo.join("target");

    step(
        0,
        "system packages the build needs (pkg-config, libasound2-dev)",
    );
    crate::system::ensure_build_packages()?;

    step(1, "build the parrot CLI");
    let mut build = util::cargo(["build", "-q", "-p", "parrot-cli"]);
    check(&mut build, "building the CLI")?;
    let parrot = util::target_dir().join("debug").join("parrot");

    step(2, "parrot new uas demo-server / parrot new uac demo-client");
    let port = free_port()?;
    for (kind, name) in [("uas", "demo-server"), ("uac", "demo-client")] {
        let path = demo.join(name);
        let mut new = Command::new(&parrot);
        new.args(["new", kind, name, "--vcs", "none", "--force", "--path"])
            .arg(&path);
        new.arg("--parrot-path").arg(root.join("parrot-core"));
        if kind == "uas" {
            new.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        }
        // Start from a clean project each time (keeps --force from merging old files).
        let _ = std::fs::remove_dir_all(&path);
        println!("    {}", util::display(&new));
        check(&mut new, "generating the project")?;
    }

    step(
        3,
        "cargo build both projects (against this checkout's parrot-core)",
    );
    for name in ["demo-server", "demo-client"] {
        let mut b = util::cargo(["build", "-q"]);
        b.current_dir(demo.join(name))
            .env("CARGO_TARGET_DIR", &gen_target);
        println!("    (cd target/demo/{name} && cargo build)");
        check(&mut b, name)?;
    }
    let bin = |name: &str| gen_target.join("debug").join(name);

    step(4, &format!("start the server on 127.0.0.1:{port}"));
    let mut server = Command::new(bin("demo-server"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(demo.join("demo-server"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting demo-server")?;
    std::thread::sleep(Duration::from_millis(700));

    step(
        5,
        "the client calls sip:service@127.0.0.1, plays a WAV and records what it hears",
    );
    let heard = demo.join("heard.wav");
    let _ = std::fs::remove_file(&heard);
    let uri = format!("sip:service@127.0.0.1:{port}");
    // The client plays the server's menu prompt at it (any WAV would do).
    let play = demo.join("demo-server").join("assets").join("menu.wav");
    let client = Command::new(bin("demo-client"))
        .args(["call", &uri, "--duration", "3", "--record"])
        .arg(&heard)
        .arg("--play")
        .arg(&play)
        .current_dir(demo.join("demo-client"))
        .stdin(Stdio::null())
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let client = client.context("running demo-client")?;
    let out = String::from_utf8_lossy(&client.stdout);
    for line in out.lines() {
        println!("    | {line}");
    }
    let err = String::from_utf8_lossy(&client.stderr);
    for line in err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("ALSA"))
    {
        println!("    ! {line}");
    }

    step(6, "report");
    let (seconds, matched) = match analyse(&heard) {
        Ok(r) => r,
        Err(e) => {
            println!("    no recording: {e:#}");
            (0.0, false)
        }
    };
    let ok = client.status.success() && matched;
    println!(
        "    call:            {}",
        if client.status.success() {
            "answered, held 3 s, hung up"
        } else {
            "FAILED"
        }
    );
    println!("    audio heard:     {seconds:.2} s (the welcome prompt is 1.5 s, then the menu)");
    println!("    welcome matched: {matched} ({WELCOME_HZ} Hz tone found in the first second)");
    println!("    projects:        target/demo/demo-server, target/demo/demo-client");
    println!("    recording:       {}", heard.display());
    println!("    took:            {}", util::human(started.elapsed()));
    if ok {
        println!(
            "\ncargo xtask demo: the call worked. Next: cd target/demo/demo-server && cargo run"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("\ncargo xtask demo: the call did not work (see above)");
        Ok(ExitCode::FAILURE)
    }
}

fn step(n: usize, what: &str) {
    println!("\n==> [{n}/6] {what}");
}

fn check(cmd: &mut Command, what: &str) -> Result<()> {
    let status = util::status(cmd)?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// A loopback port free for UDP and TCP right now.
fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let addr = udp.local_addr()?;
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr.port());
        }
    }
    bail!("no free loopback port")
}

/// Seconds of sound in a 16-bit mono WAV, and whether its first second is the welcome tone.
fn analyse(path: &Path) -> Result<(f64, bool)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (rate, samples) =
        wav_pcm16(&bytes).with_context(|| format!("{} is not a 16-bit PCM WAV", path.display()))?;
    let loud = |s: &i16| s.unsigned_abs() > 800;
    let Some(first) = samples.iter().position(loud) else {
        return Ok((0.0, false));
    };
    let last = samples.iter().rposition(loud).unwrap_or(first);
    let seconds = (last - first) as f64 / f64::from(rate);
    let window = &samples[first..(first + rate as usize).min(samples.len())];
    Ok((seconds, tone_share(window, WELCOME_HZ, rate) > 0.5))
}

/// The share of the block's energy at `freq` (Goertzel at the exact frequency).
fn tone_share(samples: &[i16], freq: f64, rate: u32) -> f64 {
    let n = samples.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    let coeff = 2.0 * (std::f64::consts::TAU * freq / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0;
    for &x in samples {
        let x = f64::from(x) / 32768.0;
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n);
    // A pure sine of mean energy E has power E/2 at its frequency.
    power / (energy / n / 2.0)
}

/// The sample rate and samples of a mono 16-bit PCM WAV.
fn wav_pcm16(b: &[u8]) -> Option<(u32, Vec<i16>)> {
    if b.get(0..4)? != b"RIFF" || b.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut rate = 0;
    while pos + 8 <= b.len() {
        let id = b.get(pos..pos + 4)?;
        let len = u32::from_le_bytes(b.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let channels = u16::from_le_bytes(b.get(body + 2..body + 4)?.try_into().ok()?);
            rate = u32::from_le_bytes(b.get(body + 4..body + 8)?.try_into().ok()?);
            let bits = u16::from_le_bytes(b.get(body + 14..body + 16)?.try_into().ok()?);
            if channels != 1 || bits != 16 {
                return None;
            }
        } else if id == b"data" {
            let end = (body + len).min(b.len());
            let data = b.get(body..end)?;
            let samples = data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate > 0).then_some((rate, samples));
        }
        pos = body + len + (len & 1);
    }
    None
}
