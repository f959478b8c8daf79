//! A network lab made of Linux network namespaces: hosts with their own
//! interfaces, addresses and routes, joined by veth pairs, so that a test
//! sees the addresses a real network would show (on loopback every wrong
//! answer looks right).
//!
//! [`Lab::standard`] builds this topology (documentation addresses only, no
//! route out of the lab, no interface in the test's own namespace):
//!
//! ```text
//!   B 192.0.2.2/24  2001:db8::2/64  (a0)
//!   |
//!   A 192.0.2.1/24  2001:db8::1/64  (b0)     server host
//!     203.0.113.1/24                (r0)
//!   |
//!   R 203.0.113.2/24                (wan)    router: forwards, masquerades on wan
//!     198.51.100.1/24               (lan)
//!   |
//!   C 198.51.100.2/24               (r0)     phone behind R's NAT; 203.0.113.0/24 via R
//! ```
//!
//! A has no route to C's LAN: C reaches A only through R's masquerade, and A
//! sees C as 203.0.113.2. B and C cannot reach each other.
//!
//! Namespaces are named `pa-<pid>-<n>-<host>`; dropping the [`Lab`] deletes
//! them (and with them their veths). The first lab of a process also deletes
//! `pa-<pid>-…` namespaces whose process is gone (a crashed earlier run).
//! It needs root (`ip netns`): without it, [`Lab::new`] panics and says so.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

/// The prefix of every namespace a lab makes.
const PREFIX: &str = "pa-";

/// The addresses of [`Lab::standard`].
pub mod addr {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A on the A–B link.
    pub const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// B on the A–B link.
    pub const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// A on the A–B link, IPv6.
    pub const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    /// B on the A–B link, IPv6.
    pub const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    /// A on the A–R link (the "public" side).
    pub const A_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// R's WAN address: what A sees as the source of everything from C.
    pub const R_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
    /// R on C's LAN.
    pub const R_LAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    /// C on its LAN, behind R.
    pub const C: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
}

/// A host of the lab (its namespace is `pa-<pid>-<n>-<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host(pub &'static str);

impl Host {
    /// The server host.
    pub const A: Host = Host("a");
    /// A phone on a link with A.
    pub const B: Host = Host("b");
    /// A phone behind R's NAT.
    pub const C: Host = Host("c");
    /// The router with the NAT.
    pub const R: Host = Host("r");
}

/// Panics unless we are root: `ip netns` needs it.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    assert!(
        uid == "0",
        "the network-namespace tests need root for `ip netns`, veth pairs and nft \
         (effective uid is {uid}): run them as root, as CI does (`sudo -E cargo test -p parrot-tests --test networks`)"
    );
    for (tool, package) in [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("python3", "python3"),
    ] {
        let found = std::process::Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{tool}` is not installed: run `cargo xtask test` (it installs {package}) or `apt-get install {package}`"
        );
    }
}

/// Runs `program args` to the end; panics with its output if it fails.
fn run_checked(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespaces that exist now.
fn namespaces() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Deletes `pa-<pid>-…` namespaces left by processes that are gone, and any
/// with our own pid (an earlier process that had it; ours are not made yet).
fn remove_stale() {
    let me = std::process::id().to_string();
    for ns in namespaces() {
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if pid == me || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Network namespaces, veth pairs between them, addresses and routes;
/// deleted on drop.
#[derive(Debug)]
pub struct Lab {
    /// `pa-<pid>-<n>-`.
    prefix: String,
    /// The hosts made, in order.
    hosts: Vec<Host>,
}

impl Lab {
    /// An empty lab (no host yet). Panics if not root.
    pub fn new() -> Lab {
        static CLEAN: Once = Once::new();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        require_root();
        CLEAN.call_once(|| {
            remove_stale();
            remove_stale_etc();
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Lab {
            prefix: format!("{PREFIX}{}-{n}-", std::process::id()),
            hosts: Vec::new(),
        }
    }

    /// The lab of the module documentation: A, B, C and R.
    pub fn standard() -> Lab {
        let mut lab = Lab::new();
        for h in [Host::A, Host::B, Host::R, Host::C] {
            lab.add_host(h);
        }
        lab.link((Host::A, "b0"), (Host::B, "a0"));
        lab.link((Host::A, "r0"), (Host::R, "wan"));
        lab.link((Host::R, "lan"), (Host::C, "r0"));
        lab.address(Host::A, "b0", "192.0.2.1/24");
        lab.address(Host::A, "b0", "2001:db8::1/64");
        lab.address(Host::B, "a0", "192.0.2.2/24");
        lab.address(Host::B, "a0", "2001:db8::2/64");
        lab.address(Host::A, "r0", "203.0.113.1/24");
        lab.address(Host::R, "wan", "203.0.113.2/24");
        lab.address(Host::R, "lan", "198.51.100.1/24");
        lab.address(Host::C, "r0", "198.51.100.2/24");
        for (h, dev) in [
            (Host::A, "b0"),
            (Host::A, "r0"),
            (Host::B, "a0"),
            (Host::R, "wan"),
            (Host::R, "lan"),
            (Host::C, "r0"),
        ] {
            lab.ip(h, &["link", "set", dev, "up"]);
        }
        lab.ip(
            Host::C,
            &["route", "add", "203.0.113.0/24", "via", "198.51.100.1"],
        );
        lab.sysctl(Host::R, "net.ipv4.ip_forward", "1");
        lab.nft(
            Host::R,
            "table ip nat {\n\
             \tchain postrouting {\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"wan\" masquerade\n\
             \t}\n\
             }\n",
        );
        lab
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}{}", self.prefix, host.0)
    }

    /// The hosts made so far.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Makes `host`'s namespace: loopback up, no duplicate address
    /// detection (IPv6 addresses usable at once).
    pub fn add_host(&mut self, host: Host) {
        assert!(
            !self.hosts.contains(&host),
            "{host:?} is already in the lab"
        );
        let ns = self.ns(host);
        run_checked("ip", &["netns", "add", &ns]);
        self.hosts.push(host);
        self.ip(host, &["link", "set", "lo", "up"]);
        for key in [
            "net.ipv6.conf.all.accept_dad",
            "net.ipv6.conf.default.accept_dad",
        ] {
            self.sysctl(host, key, "0");
        }
    }

    /// A veth pair: `a.1` in `a`'s namespace, `b.1` in `b`'s (down, no address).
    pub fn link(&self, a: (Host, &str), b: (Host, &str)) {
        let (na, nb) = (self.ns(a.0), self.ns(b.0));
        run_checked(
            "ip",
            &[
                "link", "add", a.1, "netns", &na, "type", "veth", "peer", "name", b.1, "netns", &nb,
            ],
        );
    }

    /// Adds `cidr` (e.g. `192.0.2.1/24`, `2001:db8::1/64`) to `dev` on `host`;
    /// IPv6 addresses with `nodad`.
    pub fn address(&self, host: Host, dev: &str, cidr: &str) {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(host, &args);
    }

    /// `ip -n NS args…`, checked; returns its output.
    pub fn ip(&self, host: Host, args: &[&str]) -> String {
        let ns = self.ns(host);
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        run_checked("ip", &all)
    }

    /// Sets a sysctl inside `host`.
    pub fn sysctl(&self, host: Host, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec(host, &["sh", "-c", &format!("echo {value} > {path}")]);
    }

    /// Loads an nft ruleset (`nft -f`) inside `host`.
    pub fn nft(&self, host: Host, ruleset: &str) {
        let file = std::env::temp_dir().join(format!("{}{}.nft", self.prefix, host.0));
        std::fs::write(&file, ruleset).expect("nft ruleset file");
        let path = file.to_string_lossy().into_owned();
        self.exec(host, &["nft", "-f", &path]);
        let _ = std::fs::remove_file(&file);
    }

    /// Runs `args` inside `host` to the end; panics with its output if it
    /// fails; returns its standard output.
    pub fn exec(&self, host: Host, args: &[&str]) -> String {
        let ns = self.ns(host);
        let mut all = vec!["netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run_checked("ip", &all)
    }

    /// Runs `args` inside `host` to the end and returns what happened.
    pub fn output(&self, host: Host, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// `ip netns exec NS program` as a tokio command (killed when dropped,
    /// no stdin, stdout and stderr piped).
    pub fn command(&self, host: Host, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host), program])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Starts `args` inside `host`; `name` tags its output lines. `ip netns
    /// exec` execs the program, so the child is the program itself.
    pub fn spawn(&self, host: Host, name: &str, args: &[&str]) -> Proc {
        let (program, rest) = args.split_first().expect("a program to run");
        let mut cmd = self.command(host, program);
        cmd.args(rest);
        Proc::spawn(format!("{name}@{}", host.0), cmd)
    }

    /// Starts a packet capture of every non-loopback interface of `host`
    /// and waits until it is listening.
    pub async fn capture(&self, host: Host) -> Capture {
        let proc = self.spawn(host, "capture", &["python3", "-u", "-c", CAPTURE_PY]);
        if let Err(e) = proc
            .wait_for_line(|l| l == "ready", Duration::from_secs(5))
            .await
        {
            panic!("the packet capture on {host:?} did not start: {e}");
        }
        Capture { proc }
    }
}

impl Default for Lab {
    fn default() -> Lab {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veths (and their peers).
        for host in self.hosts.iter().rev() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.ns(*host)])
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(etc_dir(&self.ns(*host)));
        }
        // Only if empty: someone else's files stay.
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

/// What a [`Proc`] printed, shared with its reader tasks.
#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    /// How many of stdout and stderr reached their end.
    closed: AtomicU32,
    changed: Notify,
}

/// A process started by [`Lab::spawn`]: its stdout and stderr lines are
/// collected as they come; killed when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: tokio::process::Child,
    out: Arc<Lines>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` (which must pipe stdout and stderr).
    pub fn spawn(name: String, mut cmd: tokio::process::Command) -> Proc {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out = Arc::new(Lines::default());
        fn read<R: AsyncRead + Unpin + Send + 'static>(r: Option<R>, out: Arc<Lines>, tag: &str) {
            let tag = tag.to_owned();
            tokio::spawn(async move {
                if let Some(r) = r {
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let line = if tag.is_empty() {
                            line
                        } else {
                            format!("{tag}{line}")
                        };
                        out.lines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(line);
                        out.changed.notify_waiters();
                    }
                }
                out.closed.fetch_add(1, Ordering::SeqCst);
                out.changed.notify_waiters();
            });
        }
        read(child.stdout.take(), out.clone(), "");
        read(child.stderr.take(), out.clone(), "stderr: ");
        Proc {
            name,
            child,
            out,
            status: None,
        }
    }

    /// Its tag, `name@host`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id (of the program itself), if it still runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The lines so far (stderr lines start with `stderr: `).
    pub fn lines(&self) -> Vec<String> {
        self.out
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Everything so far, one line each, tagged with its name.
    pub fn output(&self) -> String {
        let mut s = String::new();
        for l in self.lines() {
            s.push_str(&format!("[{}] {l}\n", self.name));
        }
        s
    }

    /// Waits until a line matches `pred` and returns it; `Err` (with the
    /// output so far) if none does within `within` or the output ends first.
    pub async fn wait_for_line(
        &self,
        pred: impl Fn(&str) -> bool,
        within: Duration,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.out.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if self.out.closed.load(Ordering::SeqCst) >= 2 {
                return Err(format!(
                    "{} ended its output without the line expected\n{}",
                    self.name,
                    self.output()
                ));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(format!(
                    "{} printed no such line within {within:?}\n{}",
                    self.name,
                    self.output()
                ));
            }
        }
    }

    /// Waits up to `within` for it to exit, and for its output to be read;
    /// `None` if it still runs.
    pub async fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = tokio::time::timeout(within, self.child.wait())
                .await
                .ok()
                .and_then(Result::ok);
        }
        if self.status.is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    let changed = self.out.changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    if self.out.closed.load(Ordering::SeqCst) >= 2 {
                        return;
                    }
                    changed.await;
                }
            })
            .await;
        }
        self.status
    }

    /// Sends `signal` (e.g. `"INT"`) to it.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Interrupts it (SIGINT, as Ctrl-C) and waits up to `within` for it to
    /// exit; kills it if it does not.
    pub async fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.signal("INT");
        }
        if let Some(s) = self.wait(within).await {
            return Some(s);
        }
        let _ = self.child.start_kill();
        self.wait(Duration::from_secs(1)).await
    }
}

/// A packet seen by a [`Capture`].
#[derive(Debug, Clone)]
pub struct Packet {
    /// `udp` or `tcp`.
    pub proto: String,
    /// The interface it crossed.
    pub dev: String,
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// The payload's length.
    pub len: usize,
    /// The payload (only the first 12 bytes unless it starts like text).
    pub payload: Vec<u8>,
}

impl Packet {
    /// The payload as text, if it is a SIP request or response.
    pub fn sip(&self) -> Option<String> {
        let text = std::str::from_utf8(&self.payload).ok()?;
        let first = text.lines().next()?;
        let is_sip = first.starts_with("SIP/2.0 ") || first.ends_with(" SIP/2.0");
        is_sip.then(|| text.to_owned())
    }

    /// True if it looks like RTP (version 2, not SIP, UDP): not RTCP (packet
    /// types 200–204, RFC 5761 §4) and not DNS (port 53), whose bytes can
    /// look like it.
    pub fn is_rtp(&self) -> bool {
        self.proto == "udp"
            && self.len >= 12
            && self.src.port() != 53
            && self.dst.port() != 53
            && self.payload.first().is_some_and(|b| b >> 6 == 2)
            && !self
                .payload
                .get(1)
                .is_some_and(|pt| (200..=204).contains(pt))
            && self.sip().is_none()
    }
}

/// A raw packet capture (AF_PACKET, in Python) inside a host: every UDP and
/// TCP packet with a payload on its non-loopback interfaces, both ways.
#[derive(Debug)]
pub struct Capture {
    proc: Proc,
}

impl Capture {
    /// The packets so far.
    pub fn packets(&self) -> Vec<Packet> {
        self.proc
            .lines()
            .iter()
            .filter_map(|l| parse_packet(l))
            .collect()
    }

    /// The SIP messages so far (each TCP segment on its own).
    pub fn sip(&self) -> Vec<(SocketAddr, SocketAddr, String)> {
        self.packets()
            .into_iter()
            .filter_map(|p| p.sip().map(|s| (p.src, p.dst, s)))
            .collect()
    }

    /// Waits until a SIP message matching `pred` has been seen.
    pub async fn wait_for_sip(
        &self,
        pred: impl Fn(&str) -> bool,
        within: Duration,
    ) -> Result<String, String> {
        self.proc
            .wait_for_line(
                |l| {
                    parse_packet(l)
                        .and_then(|p| p.sip())
                        .is_some_and(|s| pred(&s))
                },
                within,
            )
            .await
    }

    /// Lines of SIP messages that carry an address no packet really uses:
    /// 0.0.0.0, `::`, or a loopback address; each once, with how often it
    /// was seen. Call-ID is opaque and not checked; neither are the headers
    /// a response copies from its request (Via, From, To, Call-ID, CSeq),
    /// so that each finding names the side that wrote it.
    pub fn unusable_addresses(&self) -> Vec<String> {
        let mut found: Vec<(String, u32)> = Vec::new();
        for (src, dst, msg) in self.sip() {
            let first = msg.lines().next().unwrap_or_default().to_owned();
            let response = first.starts_with("SIP/2.0 ");
            let head = msg.split("\r\n\r\n").next().unwrap_or_default();
            let body = msg.get(head.len()..).unwrap_or_default();
            let method = if response {
                first.clone()
            } else {
                first.split(' ').next().unwrap_or_default().to_owned()
            };
            for line in head.lines().skip(1).chain(body.lines()) {
                let name = line
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                let copied = ["via", "v", "from", "f", "to", "t", "cseq"].contains(&name.as_str());
                if name == "call-id" || name == "i" || (response && copied) {
                    continue;
                }
                if let Some(why) = unusable(line) {
                    let what = format!("{src} → {dst} {method}: {line:?} has {why}");
                    match found.iter_mut().find(|(w, _)| *w == what) {
                        Some((_, n)) => *n += 1,
                        None => found.push((what, 1)),
                    }
                }
            }
        }
        found
            .into_iter()
            .map(|(w, n)| if n > 1 { format!("{w} (×{n})") } else { w })
            .collect()
    }

    /// Per flow (proto, source, destination): packets, of which SIP and RTP.
    pub fn flows(&self) -> String {
        let mut flows: BTreeMap<(String, SocketAddr, SocketAddr), (u32, u32, u32)> =
            BTreeMap::new();
        for p in self.packets() {
            let e = flows.entry((p.proto.clone(), p.src, p.dst)).or_default();
            e.0 += 1;
            e.1 += u32::from(p.sip().is_some());
            e.2 += u32::from(p.is_rtp());
        }
        let mut s = String::new();
        for ((proto, src, dst), (n, sip, rtp)) in flows {
            s.push_str(&format!(
                "  {proto} {src} → {dst}: {n} packets ({sip} SIP, {rtp} RTP)\n"
            ));
        }
        if s.is_empty() {
            s.push_str("  (no packets)\n");
        }
        s
    }

    /// RTP packets seen from `from` (any port) to `to` (any port).
    pub fn rtp_count(&self, from: IpAddr, to: IpAddr) -> usize {
        self.packets()
            .iter()
            .filter(|p| p.is_rtp() && p.src.ip() == from && p.dst.ip() == to)
            .count()
    }

    /// The SIP messages as text, for failure messages (a retransmission is
    /// counted, not repeated).
    pub fn sip_dump(&self) -> String {
        let mut seen: Vec<(String, u32)> = Vec::new();
        for (src, dst, msg) in self.sip() {
            let m = format!("----- {src} → {dst}\n{}\n", msg.trim_end());
            match seen.iter_mut().find(|(s, _)| *s == m) {
                Some((_, n)) => *n += 1,
                None => seen.push((m, 1)),
            }
        }
        let mut s = String::new();
        for (m, n) in seen {
            if n > 1 {
                s.push_str(&format!("(sent {n} times)\n"));
            }
            s.push_str(&m);
        }
        s
    }
}

/// Why a line of a SIP message names an address no packet uses, if it does.
fn unusable(line: &str) -> Option<&'static str> {
    let seps = |c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':');
    if line.contains("0.0.0.0") {
        return Some("0.0.0.0");
    }
    if line.contains("127.0.0.1") {
        return Some("127.0.0.1");
    }
    if line.contains("[::]") || line.contains("[::1]") {
        return Some("an unspecified or loopback IPv6 address");
    }
    // SDP: `c=IN IP6 ::`, `o=… IN IP6 ::1`.
    for word in line.split(seps) {
        if let Ok(ip) = word.parse::<Ipv6Addr>() {
            if ip.is_unspecified() || ip.is_loopback() {
                return Some("an unspecified or loopback IPv6 address");
            }
        }
        if let Ok(ip) = word.parse::<Ipv4Addr>() {
            if ip.is_unspecified() || ip.is_loopback() {
                return Some("an unspecified or loopback IPv4 address");
            }
        }
    }
    None
}

/// `proto dev src dst len hex` as printed by [`CAPTURE_PY`].
fn parse_packet(line: &str) -> Option<Packet> {
    let mut w = line.split(' ');
    let proto = w.next()?;
    if proto != "udp" && proto != "tcp" {
        return None;
    }
    let dev = w.next()?.to_owned();
    let src = w.next()?.parse().ok()?;
    let dst = w.next()?.parse().ok()?;
    let len = w.next()?.parse().ok()?;
    let hex = w.next().unwrap_or_default().as_bytes();
    let payload = hex
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Packet {
        proto: proto.to_owned(),
        dev,
        src,
        dst,
        len,
        payload,
    })
}

/// Prints `udp|tcp DEV SRC DST LEN HEX` for each UDP or TCP packet with a
/// payload on any interface but `lo`, in or out; the payload in full if it
/// starts like text (SIP), else its first 12 bytes (an RTP header).
const CAPTURE_PY: &str = r#"
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
print("ready", flush=True)
def ep(ip, port):
    return ("[%s]:%d" if ":" in ip else "%s:%d") % (ip, port)
while True:
    data, (dev, proto, _kind, _ha, _addr) = s.recvfrom(65535)
    if dev == "lo":
        continue
    ip = data[14:]
    if proto == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        l4p = ip[9]
        src = socket.inet_ntop(socket.AF_INET, ip[12:16])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
        l4 = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
    elif proto == 0x86DD and len(ip) >= 40:
        l4p = ip[6]
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        l4 = ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
    else:
        continue
    if l4p == 17 and len(l4) >= 8:
        name, payload = "udp", l4[8:]
    elif l4p == 6 and len(l4) >= 20:
        name, payload = "tcp", l4[(l4[12] >> 4) * 4:]
    else:
        continue
    if not payload:
        continue
    sport, dport = struct.unpack("!HH", l4[:4])
    text = payload[:1].isalpha()
    print(name, dev, ep(src, sport), ep(dst, dport), len(payload),
          (payload if text else payload[:12]).hex(), flush=True)
"#;

/// Where `ip netns exec` finds the files it bind-mounts over `/etc/FILE`
/// for the namespace `ns` (iproute2: `/etc/netns/NS/FILE`).
fn etc_dir(ns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(ns)
}

impl Lab {
    /// Gives `host` its own `/etc/resolv.conf` (`text`): `ip netns exec`
    /// bind-mounts `/etc/netns/NS/resolv.conf` over it, so every program the
    /// lab starts there (`spawn`, `exec`, …) asks the name servers it names.
    /// Deleted with the lab (and by the next lab if a run crashed).
    pub fn resolv_conf(&self, host: Host, text: &str) {
        assert!(self.hosts.contains(&host), "{host:?} is not in the lab");
        let dir = etc_dir(&self.ns(host));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let file = dir.join("resolv.conf");
        std::fs::write(&file, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
    }
}

/// Deletes the `/etc/netns/pa-<pid>-…` directories of `namespaces` that no
/// longer exist (their labs are gone, or their processes crashed).
fn remove_stale_etc() {
    let live = namespaces();
    let Ok(dirs) = std::fs::read_dir("/etc/netns") else {
        return;
    };
    for d in dirs.filter_map(Result::ok) {
        let name = d.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && !live.contains(&name) {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
}

// ------------------------------------------------------ calls across the lab

/// The parrot-core `uas` and `uac` examples, built (release) once per test
/// process into the target directory the tests were built in.
pub fn examples() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static BINS: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    BINS.get_or_init(|| {
        let workspace = crate::workspace();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let mut build = crate::cargo_command();
        build
            .args(["build", "--release", "-p", "parrot-core"])
            .args(["--example", "uas", "--example", "uac"])
            .current_dir(&workspace)
            .env("CARGO_TARGET_DIR", &target);
        crate::run_ok(
            &mut build,
            "cargo build --release -p parrot-core --example uas --example uac",
        );
        let dir = target.join("release").join("examples");
        (dir.join("uas"), dir.join("uac"))
    })
}

/// The `uas` example's path, as an argument.
pub fn uas_bin() -> String {
    examples().0.to_string_lossy().into_owned()
}

/// The `uac` example's path, as an argument.
pub fn uac_bin() -> String {
    examples().1.to_string_lossy().into_owned()
}

/// Runs `f`, failing the test if it takes longer than `limit`.
pub async fn bounded<F: std::future::Future>(what: &str, limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// Waits up to `within` for a finished WAV at `path`, or in `path` if it is
/// a directory (the first whose name ends with `suffix`): one that opens
/// with at least half a second of audio.
pub async fn wav(
    path: &std::path::Path,
    suffix: &str,
    within: Duration,
) -> Option<std::path::PathBuf> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let candidates: Vec<std::path::PathBuf> = if path.is_dir() {
            std::fs::read_dir(path)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.to_string_lossy().ends_with(suffix))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            vec![path.to_path_buf()]
        };
        for p in candidates {
            if parrot_core::media::WavSource::open(&p).is_ok_and(|w| w.duration() > 0.5) {
                return Some(p);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What went wrong in a call across the lab, and what to show with it: the
/// checks add problems, [`Verdict::check`] fails the test with all of them.
#[derive(Debug, Default)]
pub struct Verdict {
    problems: Vec<String>,
    context: String,
}

impl Verdict {
    /// A problem.
    pub fn fail(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Something to show if the test fails.
    pub fn note(&mut self, text: &str) {
        self.context.push_str(text);
        if !text.ends_with('\n') {
            self.context.push('\n');
        }
    }

    /// Checks that the recording `path` (a file, or the first WAV ending in
    /// `suffix` in a directory) holds `freq` for about `secs`.
    pub async fn heard(
        &mut self,
        who: &str,
        path: &std::path::Path,
        suffix: &str,
        freq: f64,
        secs: f64,
    ) {
        self.heard_with(who, path, suffix, freq, secs, crate::heard)
            .await;
    }

    /// Like [`Verdict::heard`], with `heard` judging the recording (e.g.
    /// [`crate::heard_at_start`] for a welcome prompt followed by something
    /// else).
    pub async fn heard_with(
        &mut self,
        who: &str,
        path: &std::path::Path,
        suffix: &str,
        freq: f64,
        secs: f64,
        heard: fn(&std::path::Path, f64) -> (f64, bool),
    ) {
        match wav(path, suffix, Duration::from_secs(3)).await {
            None => self.fail(format!(
                "{who}: no recording with audio at {}",
                path.display()
            )),
            Some(p) => {
                let (len, ok) = heard(&p, freq);
                eprintln!("{who}: {len:.2} s of audio, {freq} Hz: {ok}");
                if !ok || len < secs - 0.6 {
                    self.fail(format!(
                        "{who}: recorded {len:.2} s of audio, {freq} Hz present: {ok} (expected ~{secs} s)"
                    ));
                }
            }
        }
    }

    /// Checks the capture: no unusable address in SIP, RTP both ways
    /// between `a` and `b` (as seen on the capturing host).
    pub fn wire(&mut self, cap: &Capture, a: IpAddr, b: IpAddr) {
        for bad in cap.unusable_addresses() {
            self.fail(format!("on the wire: {bad}"));
        }
        for (from, to) in [(a, b), (b, a)] {
            let n = cap.rtp_count(from, to);
            eprintln!("on the wire: {n} RTP packets from {from} to {to}");
            if n < 20 {
                self.fail(format!("on the wire: {n} RTP packets from {from} to {to}"));
            }
        }
        self.context
            .push_str(&format!("flows seen by the capture:\n{}", cap.flows()));
        self.context
            .push_str(&format!("SIP seen by the capture:\n{}", cap.sip_dump()));
    }

    /// A process's output, to show if the test fails.
    pub fn output(&mut self, p: &Proc) {
        self.context.push_str(&p.output());
    }

    /// Fails the test, naming `case`, if there was a problem.
    pub fn check(self, case: &str) {
        assert!(
            self.problems.is_empty(),
            "{case}:\n  - {}\n\n{}",
            self.problems.join("\n  - "),
            self.context
        );
    }
}

/// The caller's tone (Hz) and its length (s) in the calls across the lab.
pub const CALLER_TONE: f64 = 440.0;
/// See [`CALLER_TONE`].
pub const CALLER_SECS: f64 = 2.5;
/// The answerer's tone (Hz) and its length (s).
pub const ANSWER_TONE: f64 = 1000.0;
/// See [`ANSWER_TONE`].
pub const ANSWER_SECS: f64 = 2.0;
/// How long the calling phones hold a call (s).
pub const CALL_SECS: &str = "3";

/// The uas example on A (`--bind bind`, plus `extra` options), answering
/// with the answerer's tone and recording its callers into `tmp/uas-heard`
/// (returned), once it says it listens.
pub async fn start_uas(
    lab: &Lab,
    tmp: &crate::TempDir,
    bind: &str,
    extra: &[&str],
) -> (Proc, std::path::PathBuf) {
    let tone = tmp.join("answer.wav");
    crate::write_tone(&tone, ANSWER_TONE, ANSWER_SECS, 0.0);
    let record = tmp.join("uas-heard");
    std::fs::create_dir_all(&record).expect("the uas's recording directory");
    let (uas, tone, dir) = (
        uas_bin(),
        tone.to_string_lossy().into_owned(),
        record.to_string_lossy().into_owned(),
    );
    let mut args = vec![
        uas.as_str(),
        "--bind",
        bind,
        "--play",
        &tone,
        "--record",
        &dir,
    ];
    args.extend_from_slice(extra);
    let proc = lab.spawn(Host::A, "uas", &args);
    if let Err(e) = proc
        .wait_for_line(|l| l.contains("listening on"), Duration::from_secs(10))
        .await
    {
        panic!("the uas did not start: {e}");
    }
    (proc, record)
}

/// Starts a calling phone on `host`: `command` (the program and its first
/// arguments, e.g. the uac example and the URI), then `--play` the caller's
/// tone, `--record` what it hears into `tmp/NAME-heard.wav` (returned),
/// `--duration` [`CALL_SECS`], then `extra`.
pub fn spawn_caller(
    lab: &Lab,
    tmp: &crate::TempDir,
    host: Host,
    name: &str,
    command: &[&str],
    extra: &[&str],
) -> (Proc, std::path::PathBuf) {
    let tone = tmp.join(&format!("{name}-says.wav"));
    crate::write_tone(&tone, CALLER_TONE, CALLER_SECS, 0.0);
    let heard = tmp.join(&format!("{name}-heard.wav"));
    let (tone_arg, heard_arg) = (
        tone.to_string_lossy().into_owned(),
        heard.to_string_lossy().into_owned(),
    );
    let mut args = command.to_vec();
    args.extend([
        "--play",
        &tone_arg,
        "--record",
        &heard_arg,
        "--duration",
        CALL_SECS,
    ]);
    args.extend_from_slice(extra);
    (lab.spawn(host, name, &args), heard)
}

impl Verdict {
    /// Checks that the calling phone's recording `phone_heard` holds the
    /// answerer's tone and that the answerer's (the first WAV in the
    /// directory `answerer_heard`) holds the caller's.
    pub async fn heard_each_other(
        &mut self,
        phone_heard: &std::path::Path,
        answerer_heard: &std::path::Path,
    ) {
        self.heard_each_other_with(phone_heard, answerer_heard, crate::heard)
            .await;
    }

    /// The same through a B2BUA: each tone mostly there ([`crate::heard_mostly`]).
    pub async fn heard_each_other_bridged(
        &mut self,
        phone_heard: &std::path::Path,
        answerer_heard: &std::path::Path,
    ) {
        self.heard_each_other_with(phone_heard, answerer_heard, crate::heard_mostly)
            .await;
    }

    async fn heard_each_other_with(
        &mut self,
        phone_heard: &std::path::Path,
        answerer_heard: &std::path::Path,
        check: fn(&std::path::Path, f64) -> (f64, bool),
    ) {
        self.heard_with(
            "the caller",
            phone_heard,
            "",
            ANSWER_TONE,
            ANSWER_SECS,
            check,
        )
        .await;
        self.heard_with(
            "the answerer",
            answerer_heard,
            ".wav",
            CALLER_TONE,
            CALLER_SECS,
            check,
        )
        .await;
    }

    /// Checks that `proc` exits with success within `within`.
    pub async fn exited_ok(&mut self, proc: &mut Proc, within: Duration) {
        match proc.wait(within).await {
            Some(s) if s.success() => {}
            Some(s) => self.fail(format!("{} exited with {s}", proc.name())),
            None => self.fail(format!("{} did not finish within {within:?}", proc.name())),
        }
    }

    /// Checks that `proc` printed a line containing `text`.
    pub fn printed(&mut self, proc: &Proc, text: &str) {
        if !proc.lines().iter().any(|l| l.contains(text)) {
            self.fail(format!("{} did not print `{text}`", proc.name()));
        }
    }
}
