//! Helpers shared by the end-to-end tests in `tests/tests/`: free loopback
//! ports, and sipp runs that are bounded in time and cleaned up.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port found");
}

/// A loopback address with a free port.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The folder of the sipp XML scenarios.
pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// What a sipp run left behind.
#[derive(Debug)]
pub struct SippRun {
    /// sipp's exit code (0: every call succeeded).
    pub code: Option<i32>,
    /// Its standard output and error, for failure messages.
    pub output: String,
    /// The last row of its `-trace_stat` CSV, as (column, value) pairs.
    pub stats: Vec<(String, String)>,
}

impl SippRun {
    /// A counter from the statistics, e.g. `SuccessfulCall(C)`.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    }
}

/// True if sipp is installed (`cargo xtask test` installs it; a plain
/// `cargo test` on a machine without it says so and fails).
pub fn sipp_available() -> bool {
    std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs sipp with `args` plus statistics options, killing it after `limit`.
/// Runs in a fresh temporary directory, removed afterwards.
pub async fn sipp(args: &[&str], limit: Duration) -> SippRun {
    assert!(
        sipp_available(),
        "sipp is not installed: run `cargo xtask test` (it installs sip-tester) or `apt-get install sip-tester`"
    );
    let dir = std::env::temp_dir().join(format!(
        "parrot-sipp-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let stats = dir.join("stats.csv");
    let stats_arg = stats.to_string_lossy().to_string();
    let mut cmd = tokio::process::Command::new("sipp");
    cmd.args(args)
        .args([
            "-nostdin",
            "-trace_stat",
            "-stf",
            &stats_arg,
            "-fd",
            "1",
            "-timeout_error",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn sipp");
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("sipp failed to run: {e}"),
        Err(_) => panic!("sipp did not finish within {limit:?} (killed)"),
    };
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(&stats).unwrap_or_default();
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(';')
        .map(str::to_owned)
        .collect();
    let last: Vec<String> = lines
        .next_back()
        .unwrap_or_default()
        .split(';')
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    SippRun {
        code: out.status.code(),
        output,
        stats: header.into_iter().zip(last).collect(),
    }
}
