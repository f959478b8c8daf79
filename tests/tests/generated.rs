//! The projects `parrot new` generates: rendered from the templates (with
//! media and without), built against this checkout's parrot-core, their own
//! `cargo test` run, clean under `cargo fmt --check` and `cargo clippy
//! --all-targets -- -D warnings`; then the generated server answers the
//! generated client (headless, the recording must hold the server's 660 Hz
//! welcome) and 100 calls from sipp's uac; and, copied elsewhere with its
//! project's `assets/` gone, it still plays the welcome (the prompts are built in);
//! with `--srtp mandatory --srtp-keys-in-clear` on both, the call is SRTP and
//! each end hears the other (a plain phone gets 488, and mandatory SRTP without
//! keys in clear is refused at startup);
//! the generated agent, with its echo service, sends the client's tone back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_tests::{
    TempDir, cargo_in_generated, free_port, generate_project, generated_base, generated_bin, heard,
    heard_at_start, lint_generated, sipp, write_tone,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A server process killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_server_and_client_work() {
    let base = generated_base();
    let port = free_port();
    let port_arg = port.to_string();
    for (kind, name) in [
        ("uas", "gen-server"),
        ("uac", "gen-client"),
        ("agent", "gen-agent"),
    ] {
        let extra: &[&str] = if kind != "uac" {
            &["--port", &port_arg, "--bind", "127.0.0.1"]
        } else {
            &[]
        };
        let path = generate_project(kind, name, extra);
        // The generated project's own tests, and its lints.
        cargo_in_generated(&path, "test");
        lint_generated(&path);
        cargo_in_generated(&path, "build");
    }
    // Without media: other code paths in the same templates.
    for (kind, name) in [("uas", "gen-server-nm"), ("uac", "gen-client-nm")] {
        let path = generate_project(kind, name, &["--no-media"]);
        cargo_in_generated(&path, "test");
        lint_generated(&path);
    }
    let prompts = base.join("gen-server").join("assets");
    let log = base.join("gen-server.log");
    let server = Server(
        Command::new(generated_bin("gen-server"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(base.join("gen-server"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    // The generated client, headless: plays a WAV, records what it hears.
    let (secs, welcome) =
        call_generated_server(port, &prompts.join("menu.wav"), "heard.wav", 660.0);
    eprintln!("generated client heard {secs:.2} s; welcome (660 Hz) recognised: {welcome}");
    assert!(
        welcome && secs > 2.0,
        "heard {secs:.2} s, welcome {welcome}"
    );
    // The server logs (tracing-subscriber, default filter) the call's media
    // inside the call's span, with its Call-ID.
    let line = wait_for_line(&log, |l| {
        l.contains("call{call_id=\"") && l.contains("media stopped")
    })
    .await;
    eprintln!("server log: {line}");

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
    drop(server);

    generated_srtp_call(&prompts);

    // The server binary copied elsewhere, its project's prompts gone: it plays
    // the ones built into it (written to its cache), and `--assets` still rules.
    let away = TempDir::new("moved-server");
    let moved = away.join("gen-server");
    std::fs::copy(generated_bin("gen-server"), &moved).unwrap();
    let hidden = Hidden::new(&prompts);
    let refused = Command::new(&moved)
        .arg("--assets")
        .arg(away.join("none"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("none/welcome.wav"),
        "{refused:?}"
    );
    let port = free_port();
    let moved_log = away.join("server.log");
    let mut moved_server = Server(
        Command::new(&moved)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(away.path())
            .env("XDG_CACHE_HOME", away.join("cache"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&moved_log).unwrap())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    if let Ok(Some(status)) = moved_server.0.try_wait() {
        panic!(
            "the moved server exited ({status}):\n{}",
            std::fs::read_to_string(&moved_log).unwrap_or_default()
        );
    }
    let (secs, welcome) =
        call_generated_server(port, &hidden.0.join("menu.wav"), "heard-moved.wav", 660.0);
    eprintln!("moved server: heard {secs:.2} s; welcome (660 Hz) recognised: {welcome}");
    assert!(
        welcome && secs > 2.0,
        "heard {secs:.2} s, welcome {welcome}"
    );
    let cached = std::fs::read_dir(away.join("cache").join("gen-server"))
        .unwrap()
        .map(|e| e.unwrap().path().join("welcome.wav"))
        .collect::<Vec<_>>();
    assert!(
        cached.len() == 1 && cached[0].is_file(),
        "the built-in prompts, written once: {cached:?}"
    );

    // The generated agent with its echo service: the client's 440 Hz comes
    // back through the WebSocket bridge.
    let port = free_port();
    let echo = format!("ws://127.0.0.1:{}/media", free_port());
    let agent_log = base.join("gen-agent.log");
    let _agent = Server(
        Command::new(generated_bin("gen-agent"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--service", &echo, "--echo"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let tone = base.join("agent-tone.wav");
    write_tone(&tone, 440.0, 2.5, 0.0);
    let (secs, echoed) = call_generated_server(port, &tone, "heard-agent.wav", 440.0);
    eprintln!("generated agent: the client heard {secs:.2} s; its own 440 Hz echoed: {echoed}");
    assert!(
        echoed && secs > 1.5,
        "heard {secs:.2} s, echo {echoed}:\n{}",
        std::fs::read_to_string(&agent_log).unwrap_or_default()
    );
}

/// `gen-client call sip:service@127.0.0.1:PORT`, playing `play` for 3 s and
/// recording what it hears to `generated_base()/recording`: seconds heard, and
/// whether the first second is `freq` (the uas welcome's 660 Hz).
fn call_generated_server(port: u16, play: &Path, recording: &str, freq: f64) -> (f64, bool) {
    let (heard, _) = call_generated_server_with(port, play, recording, freq, &[]);
    heard
}

/// [`call_generated_server`] with more options for the client; also returns
/// what it printed.
fn call_generated_server_with(
    port: u16,
    play: &Path,
    recording: &str,
    freq: f64,
    extra: &[&str],
) -> ((f64, bool), String) {
    let recording = generated_base().join(recording);
    let _ = std::fs::remove_file(&recording);
    let out = Command::new(generated_bin("gen-client"))
        .args([
            "call",
            &format!("sip:service@127.0.0.1:{port}"),
            "--duration",
            "3",
            "--record",
        ])
        .arg(&recording)
        .arg("--play")
        .arg(play)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        // Both generated projects offer G.722 first: the call is wideband.
        stdout.contains("answered") && stdout.contains("G722/8000"),
        "{stdout}"
    );
    (heard_at_start(&recording, freq), stdout)
}

/// The generated server and phone with `--srtp mandatory`: refused at startup
/// without `--srtp-keys-in-clear` (neither speaks TLS), then a call with it on
/// both over UDP, encrypted (the phone names the suite, the server logs it),
/// with audio checked at both ends: the phone hears the 660 Hz welcome, the
/// server's recording holds the phone's 440 Hz. A phone without SRTP gets 488.
fn generated_srtp_call(prompts: &Path) {
    let base = generated_base();
    let mandatory = ["--srtp", "mandatory"];
    let port = free_port();
    let port_arg = port.to_string();
    let server_args = ["--bind", "127.0.0.1", "--port", &port_arg];
    let refused = Command::new(generated_bin("gen-server"))
        .args(server_args)
        .args(mandatory)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(stderr.contains("--srtp-keys-in-clear"), "{stderr}");
    let refused = Command::new(generated_bin("gen-client"))
        .args(["call", &format!("sip:service@127.0.0.1:{port}")])
        .args(mandatory)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(stderr.contains("--srtp-keys-in-clear"), "{stderr}");

    let records = TempDir::new("srtp-records");
    let log = base.join("gen-server-srtp.log");
    let _server = Server(
        Command::new(generated_bin("gen-server"))
            .args(server_args)
            .args(mandatory)
            .arg("--srtp-keys-in-clear")
            .arg("--record")
            .arg(records.path())
            .current_dir(base.join("gen-server"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(700));

    // A phone with the defaults (best effort, no keys over UDP) offers plain RTP.
    let plain = Command::new(generated_bin("gen-client"))
        .args(["call", &format!("sip:service@127.0.0.1:{port}")])
        .arg("--play")
        .arg(prompts.join("menu.wav"))
        .args(["--record", "/dev/null", "--duration", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(!plain.status.success(), "{stdout}");
    assert!(stdout.contains("not answered: 488"), "{stdout}");

    let tone = base.join("srtp-tone.wav");
    write_tone(&tone, 440.0, 2.5, 0.0);
    let ((secs, welcome), stdout) = call_generated_server_with(
        port,
        &tone,
        "heard-srtp.wav",
        660.0,
        &["--srtp", "mandatory", "--srtp-keys-in-clear"],
    );
    eprintln!("SRTP call: the client heard {secs:.2} s, welcome (660 Hz) {welcome}\n{stdout}");
    assert!(
        welcome && secs > 2.0,
        "heard {secs:.2} s, welcome {welcome}"
    );
    assert!(stdout.contains("SRTP AEAD_AES_128_GCM"), "{stdout}");
    let line = std::iter::repeat_with(|| {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&log).unwrap_or_default()
    })
    .take(50)
    .find(|text| text.contains("SRTP agreed"))
    .unwrap_or_else(|| {
        panic!(
            "the server logs no SRTP:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(line.contains("AEAD_AES_128_GCM"), "{line}");
    // The server recorded the SRTP caller only (the plain one was refused).
    let recorded: Vec<PathBuf> = std::fs::read_dir(records.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (secs, ok) = heard(&recorded[0], 440.0);
    eprintln!("SRTP call: the server heard {secs:.2} s of the client's 440 Hz: {ok}");
    assert!(
        ok && secs > 2.0,
        "the server heard {secs:.2} s, 440 Hz {ok}"
    );
}

/// The first line of the file at `path` that matches, within 5 s.
async fn wait_for_line(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| pred(l)) {
            return l.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no such line in {}:\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

/// A directory renamed out of the way (`DIR.hidden`) until dropped.
struct Hidden(PathBuf, PathBuf);

impl Hidden {
    fn new(dir: &Path) -> Hidden {
        let hidden = dir.with_extension("hidden");
        let _ = std::fs::remove_dir_all(&hidden);
        std::fs::rename(dir, &hidden).unwrap();
        Hidden(hidden, dir.to_path_buf())
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.0, &self.1);
    }
}
