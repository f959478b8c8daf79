//! linphone (Debian's `linphone-cli`: `linphonec`, the console client of
//! liblinphone 5.1) as a peer in end-to-end tests, run headless on loopback.
//!
//! How it runs without a sound card or a desktop:
//!
//! - its own `HOME` (a temporary directory) and a `linphonerc` written there
//!   (`-c`): SIP on UDP only (`[sip] sip_port`, `sip_tcp_port=0`) bound to
//!   127.0.0.1 (`bind_address`), RTP on a free even port
//!   (`[rtp] audio_rtp_port`) bound to and announced as 127.0.0.1
//!   (`[rtp] bind_address`; otherwise the SDP names the address of the
//!   default route), IPv4 only (`use_ipv6=0` with `ipv6_migration_done=1`,
//!   without which liblinphone drops `use_ipv6` on its first start), PCMU
//!   alone enabled, no video;
//! - `HOME/.local/share/linphone/` made beforehand: liblinphone opens its
//!   database there, and when it cannot it never reaches the state in which
//!   it opens its SIP socket (`ports` then says `sip port = 0`);
//! - audio from and to WAV files: `soundcard use files`, then `play FILE`
//!   (what it sends) and `record FILE` (what it receives, 8 kHz mono);
//! - reliable provisionals (RFC 3262) from `[sip] 100rel_support_level`:
//!   0 none; 1 `Supported: 100rel` (it PRACKs a reliable 1xx, and sends its
//!   own 1xx reliably only to an INVITE that requires 100rel); 2 as 1, and
//!   its 180/183 go reliably (`Require: 100rel`, `RSeq`) to every INVITE
//!   that supports 100rel;
//! - commands on standard input (readline reads the pipe), its messages on
//!   standard output; `-d 6 -l FILE` logs every SIP message it sends and
//!   receives, which [`Linphone::sip_messages`] reads back.
//!
//! Its WAV recordings claim 44 bytes more data than they hold (the file
//! recorder counts its own header in the `data` chunk's size), which hound,
//! and so Parrot's `WavSource`, refuses as truncated: [`Linphone::quit`]
//! waits for linphone to exit and sets the sizes from the file's length
//! ([`fix_wav_sizes`]).
//!
//! It ignores SIGTERM while a call is up, so the process is killed (SIGKILL)
//! when the [`Linphone`] is dropped.

use crate::{TempDir, free_port};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// True if `linphonec` is installed (`cargo xtask test` installs
/// `linphone-cli`; a plain `cargo test` on a machine without it says so and
/// fails).
pub fn linphone_available() -> bool {
    std::process::Command::new("linphonec")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// How linphone treats reliable provisional responses (RFC 3262), its
/// `[sip] 100rel_support_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel100 {
    /// 0: no `100rel` anywhere.
    Off,
    /// 1: `Supported: 100rel`; PRACKs reliable provisionals; its own go
    /// reliably only when the INVITE requires it.
    Supported,
    /// 2: as `Supported`, and its 180/183 go reliably to any INVITE that
    /// supports 100rel.
    Mandatory,
}

impl Rel100 {
    fn level(self) -> u8 {
        match self {
            Rel100::Off => 0,
            Rel100::Supported => 1,
            Rel100::Mandatory => 2,
        }
    }
}

/// What to start linphone with.
#[derive(Debug, Clone)]
pub struct LinphoneOptions {
    /// The WAV it sends in calls (`play`); `None`: silence.
    pub play: Option<PathBuf>,
    /// Where it records what it receives (`record`); `None`: nowhere.
    pub record: Option<PathBuf>,
    /// Answer incoming calls by itself (`-a`).
    pub auto_answer: bool,
    /// Reliable provisionals.
    pub rel100: Rel100,
}

impl Default for LinphoneOptions {
    fn default() -> Self {
        LinphoneOptions {
            play: None,
            record: None,
            auto_answer: false,
            rel100: Rel100::Off,
        }
    }
}

/// One SIP message in linphone's log.
#[derive(Debug, Clone)]
pub struct SipSeen {
    /// True if linphone sent it, false if it received it.
    pub sent: bool,
    /// The whole message as logged (start line, headers, body).
    pub text: String,
}

impl SipSeen {
    /// The start line (`INVITE sip:… SIP/2.0`, `SIP/2.0 200 OK`).
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// True for a request with this method.
    pub fn is_request(&self, method: &str) -> bool {
        let line = self.start_line();
        !line.starts_with("SIP/")
            && line
                .strip_prefix(method)
                .is_some_and(|rest| rest.starts_with(' '))
    }

    /// True for a response with this status.
    pub fn is_response(&self, status: u16) -> bool {
        self.start_line()
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|code| code == status.to_string())
    }

    /// The value of the first header named `name` (case-insensitive; the
    /// compact forms are not looked at).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The CSeq method (`INVITE` in a 183 to an INVITE).
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }
}

/// A running `linphonec`, killed when dropped.
#[derive(Debug)]
pub struct Linphone {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    output: Arc<Mutex<String>>,
    log: PathBuf,
    sip_port: u16,
    rtp_port: u16,
    record: Option<PathBuf>,
    // Last: removed once the process is gone.
    home: TempDir,
}

/// A free even UDP port whose odd successor is free too (RTP and RTCP).
pub fn free_rtp_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port() & !1;
        if p < 1024 {
            continue;
        }
        let a = UdpSocket::bind(("127.0.0.1", p));
        let b = UdpSocket::bind(("127.0.0.1", p + 1));
        if a.is_ok() && b.is_ok() {
            return p;
        }
    }
    panic!("no free pair of RTP ports");
}

impl Linphone {
    /// Starts linphonec with its own HOME and configuration, switches it to
    /// WAV files, and waits (up to 10 s) until its SIP port is open.
    pub async fn start(options: LinphoneOptions) -> Linphone {
        assert!(
            linphone_available(),
            "linphonec is not installed: run `cargo xtask test` (it installs linphone-cli) or `apt-get install linphone-cli`"
        );
        let home = TempDir::new("linphone");
        std::fs::create_dir_all(home.join(".local/share/linphone"))
            .expect("linphone's database directory");
        let sip_port = free_port();
        let rtp_port = free_rtp_pair();
        let rc = home.join("linphonerc");
        std::fs::write(&rc, linphonerc(sip_port, rtp_port, options.rel100))
            .expect("linphonerc written");
        let log = home.join("linphone.log");
        let mut cmd = tokio::process::Command::new("linphonec");
        cmd.arg("-c").arg(&rc).args(["-d", "6", "-l"]).arg(&log);
        if options.auto_answer {
            cmd.arg("-a");
        }
        cmd.env("HOME", home.path())
            .current_dir(home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn linphonec");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("linphonec's stdout");
        let stderr = child.stderr.take().expect("linphonec's stderr");
        tokio::spawn(collect(stdout, output.clone()));
        tokio::spawn(collect(stderr, output.clone()));
        let stdin = child.stdin.take().expect("linphonec's stdin");
        let mut lp = Linphone {
            child,
            stdin,
            output,
            log,
            sip_port,
            rtp_port,
            record: options.record.clone(),
            home,
        };
        lp.command("soundcard use files").await;
        if let Some(play) = &options.play {
            lp.command(&format!("play {}", play.display())).await;
        }
        if let Some(record) = &options.record {
            lp.command(&format!("record {}", record.display())).await;
        }
        let ready = format!("sip port = {sip_port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            lp.command("ports").await;
            if lp.wait_for(&ready, Duration::from_millis(500)).await {
                break;
            }
            if let Ok(Some(status)) = lp.child.try_wait() {
                panic!("linphonec exited ({status}):\n{}", lp.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "linphonec did not open SIP port {sip_port} within 10 s:\n{}",
                lp.output()
            );
        }
        lp
    }

    /// Its SIP address (`sip:linphone@127.0.0.1:PORT`).
    pub fn uri(&self) -> String {
        format!("sip:linphone@127.0.0.1:{}", self.sip_port)
    }

    /// Its SIP address and port.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// The RTP port it offers and answers with.
    pub fn rtp_port(&self) -> u16 {
        self.rtp_port
    }

    /// Its home directory (configuration, log, history).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Types a command (`call sip:…`, `pause`, `transfer sip:…`, …).
    pub async fn command(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.stdin
            .write_all(&bytes)
            .await
            .unwrap_or_else(|e| panic!("linphonec's stdin ({line}): {e}\n{}", self.output()));
        self.stdin.flush().await.expect("linphonec's stdin flushed");
    }

    /// Everything it printed so far (standard output and error).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many times `text` appears in its output so far.
    pub fn count(&self, text: &str) -> usize {
        self.output().matches(text).count()
    }

    /// Waits up to `within` until its output holds `text`.
    pub async fn wait_for(&self, text: &str, within: Duration) -> bool {
        self.wait_for_count(text, 1, within).await
    }

    /// Waits up to `within` until its output holds `text` at least `n` times.
    pub async fn wait_for_count(&self, text: &str, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.count(text) >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its debug log (`-d 6 -l`), so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The SIP messages it sent and received so far, in order, from its log:
    /// belle-sip logs each after a line `…: message sent to [UDP://…]…` or
    /// `…: received [N] new bytes from [UDP://…]:`, up to the next line
    /// that starts with a timestamp.
    pub fn sip_messages(&self) -> Vec<SipSeen> {
        parse_sip_log(&self.log())
    }

    /// Quits (`quit`), kills it if it has not exited within 3 s, then
    /// repairs its recording's header ([`fix_wav_sizes`]) if it made one.
    pub async fn quit(mut self) {
        self.command("quit").await;
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        if let Some(record) = &self.record {
            if record.exists() {
                fix_wav_sizes(record)
                    .unwrap_or_else(|e| panic!("linphone's recording {}: {e}", record.display()));
            }
        }
    }
}

/// Sets the RIFF and `data` chunk sizes of the WAV file at `path` from its
/// length, where the `data` chunk claims more bytes than follow it (as
/// mediastreamer2's recorder writes them: 44 too many), dropping an odd
/// last byte. A file whose sizes are right is left as it is.
pub fn fix_wav_sizes(path: &Path) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut bytes = std::fs::read(path)?;
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let mut at = 12;
    loop {
        let Some(header) = bytes.get(at..at + 8) else {
            return Err(bad("no data chunk"));
        };
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"data" {
            let present = bytes.len() - (at + 8);
            if size <= present {
                return Ok(());
            }
            let present = present & !1;
            bytes.truncate(at + 8 + present);
            let len = u32::try_from(present).map_err(|_| bad("over 4 GiB"))?;
            bytes[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
            break;
        }
        at += 8 + size + (size & 1);
    }
    let riff = u32::try_from(bytes.len() - 8).map_err(|_| bad("over 4 GiB"))?;
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    std::fs::write(path, bytes)
}

/// Appends what `from` prints to `into`, line by line.
async fn collect(from: impl tokio::io::AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = tokio::io::BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut out = into
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.push_str(&line);
        out.push('\n');
    }
}

/// The `linphonerc` for SIP on `sip_port`, RTP on `rtp_port`, both on
/// 127.0.0.1, PCMU only, no video.
fn linphonerc(sip_port: u16, rtp_port: u16, rel100: Rel100) -> String {
    let mut rc = format!(
        "[sip]\n\
         sip_port={sip_port}\n\
         sip_tcp_port=0\n\
         bind_address=127.0.0.1\n\
         contact=sip:linphone@127.0.0.1\n\
         guess_hostname=0\n\
         ipv6_migration_done=1\n\
         use_ipv6=0\n\
         100rel_support_level={level}\n\
         \n\
         [rtp]\n\
         audio_rtp_port={rtp_port}\n\
         bind_address=127.0.0.1\n\
         \n\
         [video]\n\
         display=0\n\
         capture=0\n\
         automatically_initiate=0\n\
         automatically_accept=0\n\
         \n",
        level = rel100.level(),
    );
    // Every audio codec liblinphone 5.1 knows, all but PCMU disabled: the
    // ones not listed would be added back enabled.
    let codecs: [(&str, u32, u8); 19] = [
        ("PCMU", 8000, 1),
        ("opus", 48000, 2),
        ("speex", 16000, 1),
        ("speex", 8000, 1),
        ("speex", 32000, 1),
        ("PCMA", 8000, 1),
        ("GSM", 8000, 1),
        ("G722", 8000, 1),
        ("G729", 8000, 1),
        ("G726-16", 8000, 1),
        ("G726-24", 8000, 1),
        ("G726-32", 8000, 1),
        ("G726-40", 8000, 1),
        ("AAL2-G726-16", 8000, 1),
        ("AAL2-G726-24", 8000, 1),
        ("AAL2-G726-32", 8000, 1),
        ("AAL2-G726-40", 8000, 1),
        ("L16", 44100, 2),
        ("L16", 44100, 1),
    ];
    for (i, (mime, rate, channels)) in codecs.iter().enumerate() {
        let enabled = u8::from(i == 0);
        rc.push_str(&format!(
            "[audio_codec_{i}]\nmime={mime}\nrate={rate}\nchannels={channels}\nenabled={enabled}\n\n"
        ));
    }
    rc
}

/// The SIP messages in a belle-sip debug log.
fn parse_sip_log(log: &str) -> Vec<SipSeen> {
    let mut seen = Vec::new();
    let mut current: Option<SipSeen> = None;
    for line in log.lines() {
        if starts_with_timestamp(line) {
            if let Some(msg) = current.take() {
                seen.push(msg);
            }
            let sent = line.contains(": message sent to [");
            let received = line.contains("new bytes from [");
            if sent || received {
                current = Some(SipSeen {
                    sent,
                    text: String::new(),
                });
            }
        } else if let Some(msg) = current.as_mut() {
            msg.text.push_str(line.trim_end_matches('\r'));
            msg.text.push('\n');
        }
    }
    seen.extend(current);
    // A datagram logged with nothing after it is not a message.
    seen.retain(|m| !m.start_line().is_empty());
    seen
}

/// `2026-12-02 16:23:23:086 …`: a log line of its own.
fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b' '
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_out_of_a_belle_sip_log() {
        let log = "2026-12-02 16:23:23:086 belle-sip-message-channel [0x1]: message sent to [UDP://127.0.0.1:5060], size: [40] bytes\n\
                   PRACK sip:a@127.0.0.1 SIP/2.0\r\n\
                   RAck: 1 20 INVITE\r\n\
                   CSeq: 21 PRACK\r\n\
                   \n\
                   2026-12-02 16:23:23:090 belle-sip-message-something else\n\
                   not a message\n\
                   2026-12-02 16:23:23:096 belle-sip-message-channel [0x1]: received [284] new bytes from [UDP://127.0.0.1:5060]:\n\
                   SIP/2.0 183 Session Progress\n\
                   Require: 100rel\n\
                   RSeq: 7\n\
                   CSeq: 20 INVITE\n";
        let seen = parse_sip_log(log);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].sent && seen[0].is_request("PRACK"));
        assert_eq!(seen[0].header("rack"), Some("1 20 INVITE"));
        assert!(!seen[1].sent && seen[1].is_response(183));
        assert!(!seen[1].is_response(18));
        assert_eq!(seen[1].header("RSeq"), Some("7"));
        assert_eq!(seen[1].cseq_method(), Some("INVITE"));
        assert!(!seen[1].is_request("SIP/2.0"));
    }

    #[test]
    fn a_wav_claiming_too_much_data_is_repaired() {
        let tmp = TempDir::new("wav-fix");
        let path = tmp.join("rec.wav");
        let mut rec = parrot_core::media::WavRecorder::create(&path).unwrap();
        rec.write(&[1000i16; 800]).unwrap();
        rec.finish().unwrap();
        let good = std::fs::read(&path).unwrap();
        // As linphone writes it: the data size counts the 44-byte header.
        let mut bad = good.clone();
        let data_at = bad.windows(4).position(|w| w == b"data").unwrap();
        let claimed = u32::try_from(good.len() - data_at - 8 + 44).unwrap();
        bad[data_at + 4..data_at + 8].copy_from_slice(&claimed.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        assert!(parrot_core::media::WavSource::open(&path).is_err());
        fix_wav_sizes(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good);
        let src = parrot_core::media::WavSource::open(&path).unwrap();
        assert!((src.duration() - 0.1).abs() < 1e-9);
        // A good file stays as it is; a file that is not a WAV is an error.
        fix_wav_sizes(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good);
        std::fs::write(&path, b"RIFF").unwrap();
        assert!(fix_wav_sizes(&path).is_err());
    }

    #[test]
    fn the_config_enables_pcmu_only() {
        let rc = linphonerc(5062, 7078, Rel100::Mandatory);
        assert!(rc.contains("sip_port=5062\n") && rc.contains("audio_rtp_port=7078\n"));
        assert!(rc.contains("100rel_support_level=2\n"));
        assert_eq!(rc.matches("enabled=1").count(), 1);
        assert!(rc.contains("[audio_codec_0]\nmime=PCMU\nrate=8000\nchannels=1\nenabled=1\n"));
    }
}
