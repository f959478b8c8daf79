//! Helpers shared by the end-to-end tests in `tests/tests/`: free loopback
//! ports, sipp runs that are bounded in time and cleaned up, baresip runs,
//! a Kamailio proxy killed (with its workers) on drop, linphone run headless
//! ([`linphone`]), and a lab of hosts made of network namespaces ([`netns`]).

pub mod linphone;
pub mod load;
pub mod netns;

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

/// Loopback with port 0: the OS picks the port when the socket is bound. For a
/// server whose address is read back (`local_addr`) after it starts: the port
/// of [`free_addr`] is free when asked, and a socket of a test running beside
/// this one can take it before it is bound.
pub fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
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

/// sipp as a caller of the UAS at `addr`: its built-in `uac` scenario (unless
/// `extra` names one with `-sf`), from a free local port, giving up on a call
/// after `sipp_timeout` (sipp's `-timeout`, e.g. `"60s"`), killed after `limit`.
pub async fn sipp_uac(
    addr: SocketAddr,
    sipp_timeout: &str,
    limit: Duration,
    extra: &[&str],
) -> SippRun {
    let target = addr.to_string();
    let port = free_port().to_string();
    let mut args = vec![
        target.as_str(),
        "-s",
        "service",
        "-i",
        "127.0.0.1",
        "-p",
        port.as_str(),
        "-timeout",
        sipp_timeout,
    ];
    if !extra.contains(&"-sf") {
        args.extend(["-sn", "uac"]);
    }
    args.extend_from_slice(extra);
    sipp(&args, limit).await
}

/// The span of audio above a threshold in a WAV file (8 kHz): its length in
/// seconds, and whether `freq` carries most of its energy.
pub fn heard(path: &Path, freq: f64) -> (f64, bool) {
    let mut src = parrot_core::media::WavSource::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut all = vec![0i16; (src.duration() * 8000.0) as usize + 8000];
    let n = parrot_core::media::AudioSource::read(&mut src, &mut all);
    let audio = &all[..n];
    let start = audio
        .iter()
        .position(|&s| s.unsigned_abs() > 1000)
        .unwrap_or(0);
    let end = audio
        .iter()
        .rposition(|&s| s.unsigned_abs() > 1000)
        .unwrap_or(0);
    let tone = &audio[start..end.max(start)];
    (
        tone.len() as f64 / 8000.0,
        parrot_core::media::tone_present(tone, freq, 8000, 0.8),
    )
}

/// Runs sipp with `args` plus statistics options, killing it after `limit`.
/// Runs in a fresh temporary directory, removed afterwards.
pub async fn sipp(args: &[&str], limit: Duration) -> SippRun {
    assert!(
        sipp_available(),
        "sipp is not installed: run `cargo xtask test` (it installs sip-tester) or `apt-get install sip-tester`"
    );
    // Removed when dropped, also when the caller aborts the run.
    let tmp = TempDir::new("sipp");
    let dir = tmp.path().to_path_buf();
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
    drop(tmp);
    SippRun {
        code: out.status.code(),
        output,
        stats: header.into_iter().zip(last).collect(),
    }
}

/// A temporary directory, removed (with its contents) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system's temp dir; `tag` names it.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "parrot-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True if baresip is installed (`cargo xtask test` installs `baresip-core`;
/// a plain `cargo test` on a machine without it says so and fails).
pub fn baresip_available() -> bool {
    std::process::Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Where Debian's `baresip-core` puts its modules.
pub const BARESIP_MODULES: &str = "/usr/lib/baresip/modules";

/// A headless baresip configuration for calls on loopback, without
/// registration, NAT traversal or sound card: the microphone is a WAV file
/// (`aufile`), what goes out and what comes in are dumped as WAVs into
/// `dump_dir` (`sndfile`), and the speaker is a dummy (`aubridge`). G.711 only.
#[derive(Debug, Clone)]
pub struct BaresipConfig {
    /// Its SIP port on 127.0.0.1 (UDP and TCP).
    pub sip_port: u16,
    /// The WAV file it sends (8 kHz mono 16-bit; the call ends when it ends).
    pub source_wav: PathBuf,
    /// Where `sndfile` writes `dump-<time>-enc.wav` (sent) and `-dec.wav` (received).
    pub dump_dir: PathBuf,
}

impl BaresipConfig {
    /// The `config` file's text.
    pub fn config(&self) -> String {
        format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{port}\n\
             net_interface\t\t127.0.0.1\n\
             call_local_timeout\t10\n\
             call_max_calls\t\t1\n\
             audio_player\t\taubridge,nil\n\
             audio_alert\t\taubridge,nil\n\
             audio_source\t\taufile,{src}\n\
             ausrc_srate\t\t8000\n\
             auplay_srate\t\t8000\n\
             ausrc_channels\t\t1\n\
             auplay_channels\t\t1\n\
             jitter_buffer_delay\t1-5\n\
             module_path\t\t{BARESIP_MODULES}\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module\t\t\taubridge.so\n\
             module\t\t\tsndfile.so\n\
             module_tmp\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             snd_path\t\t{dump}\n",
            port = self.sip_port,
            src = self.source_wav.display(),
            dump = self.dump_dir.display(),
        )
    }

    /// The `accounts` file's text: one account for direct calls, no REGISTER.
    pub fn accounts(&self) -> String {
        "<sip:test@127.0.0.1>;regint=0;audio_codecs=pcmu\n".to_owned()
    }

    /// The same configuration for wideband calls: G.722 only (module `g722.so`, Debian's
    /// build on spandsp), the WAV source and the dumps at 16 kHz. `source_wav` should be a
    /// 16 kHz file then.
    pub fn write_g722(&self, dir: &Path) {
        self.write(dir);
        let config = self
            .config()
            .replace("ausrc_srate\t\t8000", "ausrc_srate\t\t16000")
            .replace("auplay_srate\t\t8000", "auplay_srate\t\t16000")
            .replace("module\t\t\tg711.so", "module\t\t\tg722.so");
        std::fs::write(dir.join("config"), config).expect("baresip config");
        let accounts = self
            .accounts()
            .replace("audio_codecs=pcmu", "audio_codecs=g722");
        std::fs::write(dir.join("accounts"), accounts).expect("baresip accounts");
    }

    /// Writes `config` and `accounts` into `dir` (baresip's `-f`).
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("baresip config dir");
        std::fs::create_dir_all(&self.dump_dir).expect("baresip dump dir");
        std::fs::write(dir.join("config"), self.config()).expect("baresip config");
        std::fs::write(dir.join("accounts"), self.accounts()).expect("baresip accounts");
    }
}

/// What a baresip run left behind.
#[derive(Debug)]
pub struct BaresipRun {
    /// Its exit code.
    pub code: Option<i32>,
    /// Its standard output and error, for assertions and failure messages.
    pub output: String,
}

/// Runs `baresip -f config_dir -e command… -t quit_after`, killing it if it
/// is still running after `limit` (or if the future is dropped).
pub async fn baresip(
    config_dir: &Path,
    commands: &[&str],
    quit_after: Duration,
    limit: Duration,
) -> BaresipRun {
    baresip_with_args(config_dir, &[], commands, quit_after, limit).await
}

/// [`baresip`] with more command-line arguments first, e.g. `-s` (its SIP
/// trace: every message it sends and receives, decrypted from TLS, in its
/// output).
pub async fn baresip_with_args(
    config_dir: &Path,
    args: &[&str],
    commands: &[&str],
    quit_after: Duration,
    limit: Duration,
) -> BaresipRun {
    assert!(
        baresip_available(),
        "baresip is not installed: run `cargo xtask test` (it installs baresip-core) or `apt-get install baresip-core`"
    );
    let mut cmd = tokio::process::Command::new("baresip");
    cmd.args(args).arg("-f").arg(config_dir);
    for c in commands {
        cmd.arg("-e").arg(c);
    }
    cmd.arg("-t")
        .arg(quit_after.as_secs().max(1).to_string())
        .current_dir(config_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn baresip");
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("baresip failed to run: {e}"),
        Err(_) => panic!("baresip did not finish within {limit:?} (killed)"),
    };
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    BaresipRun {
        code: out.status.code(),
        output,
    }
}

/// True if Kamailio is installed (`cargo xtask test` installs `kamailio`;
/// a plain `cargo test` on a machine without it says so and fails).
pub fn kamailio_available() -> bool {
    std::process::Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A Kamailio proxy running in the foreground (`-DD -E`) for one test, in its
/// own process group, logging to `kamailio.log` in its directory. Dropping it
/// sends SIGTERM (Kamailio then stops its worker processes) and, after two
/// seconds at most, SIGKILL to the whole group: the workers outlive a killed
/// main process otherwise.
#[derive(Debug)]
pub struct Kamailio {
    child: std::process::Child,
    log: PathBuf,
    command_line: String,
}

impl Kamailio {
    /// Starts `kamailio -DD -E -f config` with `-A NAME=value` for each of
    /// `defines`, in `dir` (its working and runtime directory), with 32 MB of
    /// shared and 8 MB of private memory, and waits until it answers an
    /// OPTIONS on `addr` (UDP). Panics, with its log, if it does not within
    /// `ready_within`.
    pub async fn start(
        config: &Path,
        dir: &Path,
        addr: SocketAddr,
        defines: &[(&str, String)],
        ready_within: Duration,
    ) -> Kamailio {
        use std::os::unix::process::CommandExt;
        assert!(
            kamailio_available(),
            "kamailio is not installed: run `cargo xtask test` (it installs kamailio) or `apt-get install kamailio`"
        );
        let run = dir.join("run");
        std::fs::create_dir_all(&run).expect("kamailio runtime dir");
        let log = dir.join("kamailio.log");
        let file = std::fs::File::create(&log).expect("kamailio log");
        let mut cmd = std::process::Command::new("kamailio");
        cmd.args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(&run)
            .arg("-w")
            .arg(dir)
            .arg("-f")
            .arg(config);
        for (name, value) in defines {
            cmd.arg("-A").arg(format!("{name}={value}"));
        }
        let command_line = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("kamailio log"))
            .stderr(file)
            .process_group(0);
        let child = cmd.spawn().expect("spawn kamailio");
        let mut k = Kamailio {
            child,
            log,
            command_line,
        };
        k.wait_ready(addr, ready_within).await;
        k
    }

    /// The command line it was started with.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends OPTIONS to `addr` every 100 ms until a 200 comes back.
    async fn wait_ready(&mut self, addr: SocketAddr, within: Duration) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("probe socket");
        let local = sock.local_addr().expect("probe address");
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 4096];
        for n in 1u32.. {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "kamailio exited ({status}) before answering: {}\n{}",
                    self.command_line,
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kamailio did not answer OPTIONS on {addr} within {within:?}: {}\n{}",
                self.command_line,
                self.log()
            );
            let options = format!(
                "OPTIONS sip:{addr} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-ready-{n};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@{local}>;tag=ready{n}\r\n\
                 To: <sip:{addr}>\r\n\
                 Call-ID: ready-{n}@{local}\r\n\
                 CSeq: {n} OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let _ = sock.send_to(options.as_bytes(), addr).await;
            if let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await
            {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return;
                }
            }
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        for _ in 0..40 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The group id is the main process's id (`process_group(0)`).
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Starts a UDP relay on loopback in front of `server` and returns its address.
/// Datagrams from anyone else go to `server`, the server's go back to the last
/// client; every `drop_every`-th datagram in each direction is dropped (a
/// deterministic 1/N loss, so the retransmission paths are always exercised).
/// The relay lives as long as the runtime.
pub async fn lossy_relay(server: SocketAddr, drop_every: u64) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("relay socket");
    let addr = sock.local_addr().expect("relay address");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut client: Option<SocketAddr> = None;
        let (mut up, mut down) = (0u64, 0u64);
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let to = if from == server {
                down += 1;
                if down % drop_every == 0 {
                    continue;
                }
                match client {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                client = Some(from);
                up += 1;
                if up % drop_every == 0 {
                    continue;
                }
                server
            };
            let _ = sock.send_to(&buf[..n], to).await;
        }
    });
    addr
}

/// Writes `seconds` of a `freq` tone then `silence` seconds of silence,
/// 8 kHz mono 16-bit, to `path` (a test's own file: a failure panics).
pub fn write_tone(path: &Path, freq: f64, seconds: f64, silence: f64) {
    write_tone_at(path, freq, seconds, silence, 8000);
}

/// The same at `rate` Hz (a 16 kHz file for a wideband caller).
pub fn write_tone_at(path: &Path, freq: f64, seconds: f64, silence: f64, rate: u32) {
    use parrot_core::media::AudioSource;
    let mut rec =
        parrot_core::media::WavRecorder::create_at(path, rate).expect("a tone WAV to write");
    let mut tone = parrot_core::media::Tone::at_rate(freq, 0.5, rate).lasting(seconds);
    let mut buf = [0i16; 160];
    loop {
        let n = tone.read(&mut buf);
        if n == 0 {
            break;
        }
        rec.write(&buf[..n]).expect("the tone written");
    }
    let quiet = vec![0i16; rate as usize / 50];
    for _ in 0..(silence * 50.0) as usize {
        rec.write(&quiet).expect("the silence written");
    }
    rec.finish().expect("the tone WAV finished");
}

/// This checkout's workspace directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

/// `cargo` (the one running the tests) without what cargo set for this test
/// process (the package's variables, its library path): those would make
/// build scripts rerun and everything rebuild, here and again in the next
/// plain `cargo build`.
pub fn cargo_command() -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key == "CARGO_CRATE_NAME"
            || key == "LD_LIBRARY_PATH"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Runs `cmd` to the end; panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut std::process::Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the tests put the projects `parrot new` generates: under the
/// workspace's `target/` (excluded from the workspace), with one target
/// directory for all of them, so that their dependencies are built once and
/// the builds are reused between runs.
pub fn generated_base() -> PathBuf {
    workspace().join("target").join("generated-test")
}

/// The target directory of the generated projects.
pub fn generated_target() -> PathBuf {
    generated_base().join("target")
}

/// Renders `parrot new KIND NAME` (plus `extra` options) afresh into
/// [`generated_base`]`/NAME`, depending on this checkout's parrot-core, and
/// returns its directory.
pub fn generate_project(kind: &str, name: &str, extra: &[&str]) -> PathBuf {
    let ws = workspace();
    let path = generated_base().join(name);
    std::fs::create_dir_all(generated_base()).expect("the generated projects' directory");
    let _ = std::fs::remove_dir_all(&path);
    let mut new = cargo_command();
    new.current_dir(&ws)
        .args(["run", "-q", "-p", "parrot-cli", "--", "new", kind, name])
        .args(["--vcs", "none", "--path"])
        .arg(&path)
        .arg("--parrot-path")
        .arg(ws.join("parrot-core"))
        .args(extra);
    run_ok(&mut new, &format!("parrot new {kind} {name}"));
    path
}

/// `cargo SUBCOMMAND -q` (e.g. `build`, `test`) in the generated project at
/// `dir`, in [`generated_target`].
pub fn cargo_in_generated(dir: &Path, subcommand: &str) {
    cargo_args_in_generated(dir, &[subcommand, "-q"]);
}

/// `cargo ARGS` in the generated project at `dir`, in [`generated_target`];
/// panics with its output unless it succeeds.
pub fn cargo_args_in_generated(dir: &Path, args: &[&str]) {
    let mut cmd = cargo_command();
    cmd.current_dir(dir)
        .env("CARGO_TARGET_DIR", generated_target())
        .args(args);
    run_ok(
        &mut cmd,
        &format!("cargo {} in {}", args.join(" "), dir.display()),
    );
}

/// What a user's CI would say about the generated project at `dir`: `cargo
/// fmt --check` and `cargo clippy --all-targets -- -D warnings`, with
/// rustfmt's and clippy's defaults (empty `rustfmt.toml` and `clippy.toml` in
/// [`generated_base`] stop their search before this workspace's own).
pub fn lint_generated(dir: &Path) {
    for config in ["rustfmt.toml", "clippy.toml"] {
        let file = generated_base().join(config);
        if !file.exists() {
            std::fs::write(&file, "").expect("an empty lint configuration");
        }
    }
    cargo_args_in_generated(dir, &["fmt", "--check"]);
    cargo_args_in_generated(
        dir,
        &["clippy", "-q", "--all-targets", "--", "-D", "warnings"],
    );
}

/// The debug binary of the generated project `name` (after its build).
pub fn generated_bin(name: &str) -> PathBuf {
    generated_target().join("debug").join(name)
}

/// Seconds of sound in a recording (8 kHz) and whether `freq` is what it
/// holds in at least 80 % of its 250 ms windows: for audio relayed between
/// two calls (a B2BUA), whose legs tick on their own clocks, so that a late
/// tick can break the phase of a long tone without changing what is heard
/// (the single-window check of [`heard`] wants one unbroken sine).
pub fn heard_mostly(path: &Path, freq: f64) -> (f64, bool) {
    let Some((all, first, last)) = loud_span(path) else {
        return (0.0, false);
    };
    let windows: Vec<&[i16]> = all[first..last].chunks_exact(2000).collect();
    let with_tone = windows
        .iter()
        .filter(|w| parrot_core::media::tone_present(w, freq, 8000, 0.5))
        .count();
    (
        (last - first) as f64 / 8000.0,
        !windows.is_empty() && with_tone * 5 >= windows.len() * 4,
    )
}

/// Seconds of sound in a recording (8 kHz) and whether its first second is
/// `freq`: for a recording that hears several things in turn (a welcome
/// prompt, then a menu).
pub fn heard_at_start(path: &Path, freq: f64) -> (f64, bool) {
    let Some((all, first, last)) = loud_span(path) else {
        return (0.0, false);
    };
    let window = &all[first..(first + 8000).min(all.len())];
    (
        (last - first) as f64 / 8000.0,
        parrot_core::media::tone_present(window, freq, 8000, 0.5),
    )
}

/// A recording's samples (8 kHz) and where its sound (|s| > 800) begins and
/// ends; `None` if it is silent.
fn loud_span(path: &Path) -> Option<(Vec<i16>, usize, usize)> {
    use parrot_core::media::{AudioSource, WavSource};
    let mut src =
        WavSource::open(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut all = vec![0i16; (src.duration() * 8000.0) as usize + 1];
    let n = src.read(&mut all);
    all.truncate(n);
    let loud = |s: &i16| s.unsigned_abs() > 800;
    let first = all.iter().position(loud)?;
    let last = all.iter().rposition(loud).unwrap_or(first);
    Some((all, first, last))
}

/// Waits until the endpoint's published counts satisfy `done`, up to `within`; returns the last stats.
pub async fn wait_for_stats(
    ep: &parrot_core::ua::Endpoint,
    within: Duration,
    done: impl Fn(&parrot_core::ua::EndpointStats) -> bool,
) -> parrot_core::ua::EndpointStats {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = ep.stats();
        if done(&s) || tokio::time::Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
