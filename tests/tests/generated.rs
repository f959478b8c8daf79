//! The projects `parrot new` generates: rendered from the templates, built
//! against this checkout's parrot-core, their own `cargo test` run; then the
//! generated server answers the generated client (headless, the recording
//! must hold the server's 660 Hz welcome) and 100 calls from sipp's uac.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_tests::{
    cargo_in_generated, free_port, generate_project, generated_base, generated_bin, heard_at_start,
    sipp,
};
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
    for (kind, name) in [("uas", "gen-server"), ("uac", "gen-client")] {
        let extra: &[&str] = if kind == "uas" {
            &["--port", &port_arg, "--bind", "127.0.0.1"]
        } else {
            &[]
        };
        let path = generate_project(kind, name, extra);
        // The generated project's own tests.
        cargo_in_generated(&path, "test");
        cargo_in_generated(&path, "build");
    }
    let bin = generated_bin;
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
    let (secs, welcome) = heard_at_start(&recording, 660.0);
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
