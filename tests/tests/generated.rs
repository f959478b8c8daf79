//! The projects `parrot new` generates: rendered from the templates, built
//! against this checkout's parrot-core, their own `cargo test` run; then the
//! generated server answers the generated client (headless, the recording
//! must hold the server's 660 Hz welcome) and 100 calls from sipp's uac.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_tests::{free_port, sipp};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server process killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Seconds of sound in the recording and whether its first second is `freq`.
fn heard(path: &Path, freq: f64) -> (f64, bool) {
    use parrot_core::media::{AudioSource, WavSource, tone_present};
    let mut src = WavSource::open(path).unwrap();
    let mut all = vec![0i16; (src.duration() * 8000.0) as usize + 1];
    let n = src.read(&mut all);
    let loud = |s: &i16| s.unsigned_abs() > 800;
    let Some(first) = all[..n].iter().position(loud) else {
        return (0.0, false);
    };
    let last = all[..n].iter().rposition(loud).unwrap_or(first);
    let window = &all[first..(first + 8000).min(n)];
    (
        (last - first) as f64 / 8000.0,
        tone_present(window, freq, 8000, 0.5),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_server_and_client_work() {
    let ws = workspace();
    // Under target/ (excluded from the workspace), so builds are reused between runs.
    let base = ws.join("target").join("generated-test");
    let gen_target = base.join("target");
    std::fs::create_dir_all(&base).unwrap();
    let port = free_port();
    for (kind, name) in [("uas", "gen-server"), ("uac", "gen-client")] {
        let path = base.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let mut new = cargo();
        new.current_dir(&ws)
            .args([
                "run",
                "-q",
                "-p",
                "parrot-cli",
                "--",
                "new",
                kind,
                name,
                "--vcs",
                "none",
                "--path",
            ])
            .arg(&path)
            .arg("--parrot-path")
            .arg(ws.join("parrot-core"));
        if kind == "uas" {
            new.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        }
        run(&mut new, &format!("parrot new {kind}"));
        // The generated project's own tests.
        let mut test = cargo();
        test.current_dir(&path)
            .env("CARGO_TARGET_DIR", &gen_target)
            .args(["test", "-q"]);
        run(&mut test, &format!("cargo test in the generated {kind}"));
        let mut build = cargo();
        build
            .current_dir(&path)
            .env("CARGO_TARGET_DIR", &gen_target)
            .args(["build", "-q"]);
        run(&mut build, &format!("cargo build in the generated {kind}"));
    }
    let bin = |name: &str| gen_target.join("debug").join(name);
    let _server = Server(
        Command::new(bin("gen-server"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(base.join("gen-server"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    // The generated client, headless: plays a WAV, records what it hears.
    let recording = base.join("heard.wav");
    let _ = std::fs::remove_file(&recording);
    let out = Command::new(bin("gen-client"))
        .args([
            "call",
            &format!("sip:service@127.0.0.1:{port}"),
            "--duration",
            "3",
            "--record",
        ])
        .arg(&recording)
        .arg("--play")
        .arg(base.join("gen-server").join("assets").join("menu.wav"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("answered") && stdout.contains("PCMU/8000"),
        "{stdout}"
    );
    let (secs, welcome) = heard(&recording, 660.0);
    eprintln!("generated client heard {secs:.2} s; welcome (660 Hz) recognised: {welcome}");
    assert!(
        welcome && secs > 2.0,
        "heard {secs:.2} s, welcome {welcome}"
    );

    // sipp's uac: 100 calls against the generated server.
    let target = format!("127.0.0.1:{port}");
    let sipp_port = free_port().to_string();
    let run = sipp(
        &[
            "-sn",
            "uac",
            &target,
            "-s",
            "service",
            "-i",
            "127.0.0.1",
            "-p",
            &sipp_port,
            "-m",
            "100",
            "-r",
            "50",
            "-timeout",
            "60s",
        ],
        Duration::from_secs(90),
    )
    .await;
    eprintln!(
        "sipp uac → generated server: successful {:?}, failed {:?}, retransmissions {:?}",
        run.stat("SuccessfulCall(C)"),
        run.stat("FailedCall(C)"),
        run.stat("Retransmissions(C)")
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(100));
}
