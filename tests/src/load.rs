//! Helpers for the load benches (`benches/cps.rs`, `benches/concurrency.rs`)
//! and the scaled-down load tests (`tests/load.rs`): the process's memory and
//! CPU time from `/proc/self` (and of other processes, from `/proc/PID`), the
//! machine, the bench output directory.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The resident set size of this process in KiB (`VmRSS` of `/proc/self/status`), 0 if unknown.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time this process has used (user + system), in seconds, from
/// `/proc/self/stat` (fields 14 and 15, in clock ticks of 1/100 s, the Linux
/// `USER_HZ` on every common architecture).
pub fn cpu_seconds() -> f64 {
    stat_fields("/proc/self/stat").map_or(0.0, |f| ticks(&f, &[14, 15]))
}

/// CPU time (user + system, seconds) of the children this process has waited
/// for (`cutime` + `cstime`, fields 16 and 17 of `/proc/self/stat`): the
/// difference across a `Command::output()` is that command's CPU.
pub fn children_cpu_seconds() -> f64 {
    stat_fields("/proc/self/stat").map_or(0.0, |f| ticks(&f, &[16, 17]))
}

/// CPU time (user + system, seconds) of process `pid`, all its threads
/// (`/proc/PID/stat` counts the thread group); `None` once it is gone.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    stat_fields(&format!("/proc/{pid}/stat")).map(|f| ticks(&f, &[14, 15]))
}

/// CPU time (user + system, seconds) of process `root` and every living
/// descendant (a Kamailio and its forked workers). Children that already
/// exited are not counted (their time would show in the parent's `cutime`
/// only once it waited for them). `None` when `root` is gone.
pub fn tree_cpu_seconds(root: u32) -> Option<f64> {
    let pids = tree_pids(root)?;
    Some(
        pids.iter()
            .filter_map(|pid| stat_fields(&format!("/proc/{pid}/stat")))
            .map(|f| ticks(&f, &[14, 15]))
            .sum(),
    )
}

/// Context switches (voluntary + involuntary) of every living thread of
/// process `root` and its descendants, from `/proc/PID/task/TID/status`:
/// how often the responder slept and was woken. `None` when `root` is gone.
pub fn tree_context_switches(root: u32) -> Option<u64> {
    let mut total = 0;
    for pid in tree_pids(root)? {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(total)
}

/// Process `root` and its living descendants, found by walking the parent
/// ids of `/proc/*/stat`; `None` when `root` is gone.
fn tree_pids(root: u32) -> Option<Vec<u32>> {
    stat_fields(&format!("/proc/{root}/stat"))?;
    // (pid, ppid) of every other process.
    let mut procs: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == root {
            continue;
        }
        let Some(f) = stat_fields(&format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 4 is the parent's id.
        if let Some(ppid) = f.get(4 - 3).and_then(|v| v.parse::<u32>().ok()) {
            procs.push((pid, ppid));
        }
    }
    let mut inside = vec![root];
    // Parents before children is not guaranteed by the listing: repeat until stable.
    loop {
        let before = inside.len();
        for (pid, ppid) in &procs {
            if inside.contains(ppid) && !inside.contains(pid) {
                inside.push(*pid);
            }
        }
        if inside.len() == before {
            return Some(inside);
        }
    }
}

/// Datagrams dropped so far on the UDP sockets bound to local `port` (any
/// address), for want of room in their receive buffer: the last column of
/// `/proc/net/udp` and `/proc/net/udp6`. `None` when no such socket is open.
pub fn udp_socket_drops(port: u16) -> Option<u64> {
    let mut found = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port != Some(port) {
                continue;
            }
            if let Some(d) = cols.last().and_then(|d| d.parse::<u64>().ok()) {
                *found.get_or_insert(0) += d;
            }
        }
    }
    found
}

/// Fields 3 … of a `/proc/…/stat` line (after the command name, which is in
/// parentheses and may hold spaces): index `i - 3` is field `i`.
fn stat_fields(path: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The sum of the given clock-tick fields, in seconds (`USER_HZ` = 100).
fn ticks(fields: &[String], which: &[usize]) -> f64 {
    let sum: u64 = which
        .iter()
        .map(|&i| {
            fields
                .get(i - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    sum as f64 / 100.0
}

/// UDP datagrams the kernel dropped for want of room in a socket's receive
/// buffer, on the whole machine (`RcvbufErrors` of the `Udp:` lines of
/// `/proc/net/snmp`); `None` if unreadable. A difference across a run says
/// how many of its requests were lost before anyone read them.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let i = header.iter().position(|h| *h == "RcvbufErrors")?;
    values.get(i)?.parse().ok()
}

/// The number of CPUs this process may use.
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The CPU model from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `2025-01-31T12:34:56Z`, from the system clock (civil-from-days, H. Hinnant).
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The `"machine"` JSON object: nproc, CPU model, load average, date.
pub fn machine_json() -> String {
    format!(
        "{{ \"nproc\": {}, \"cpu\": {}, \"loadavg\": {}, \"date\": {} }}",
        nproc(),
        json_str(&cpu_model()),
        json_str(&loadavg()),
        json_str(&utc_now())
    )
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `<target dir>/bench`, created: `$CARGO_TARGET_DIR` (xtask passes it
/// absolute; a relative one is taken from the workspace root), else
/// `<workspace>/target`.
pub fn bench_dir() -> PathBuf {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    };
    let dir = target.join("bench");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank; 0 if empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Set in the environment of the cps bench's Parrot responder process
/// (the bench binary again, or the `cps_responder` binary): the address it serves.
pub const CPS_RESPONDER_ENV: &str = "PARROT_CPS_RESPONDER";

/// Answers every INVITE with 200 at once (no media: sipp sends none either).
#[derive(Clone, Copy)]
struct AnswerAll;

impl parrot_core::ua::SipHandler for AnswerAll {
    async fn invite(&mut self, _call: &mut parrot_core::ua::Incoming) -> parrot_core::ua::Reply {
        parrot_core::ua::Reply::ok()
    }
}

/// The Parrot responder of `benches/cps.rs`: an endpoint on UDP `addr`
/// answering 200 to every INVITE, on a tokio multi-thread runtime (one
/// worker per CPU, or `PARROT_CPS_WORKERS`), until stdin closes; then it
/// prints its endpoint's counts on stderr. Run in a process of its own (the
/// bench binary again, with jemalloc, or the `cps_responder` binary), so that
/// its CPU is its own.
///
/// # Panics
/// On an `addr` or `PARROT_CPS_WORKERS` that does not parse, or an endpoint
/// that cannot bind: the bench reports that the responder never answered.
#[allow(clippy::print_stderr, clippy::expect_used)]
pub fn cps_responder(addr: &str) {
    let addr: std::net::SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("responder address {addr}: {e}"));
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Ok(n) = std::env::var("PARROT_CPS_WORKERS") {
        rt.worker_threads(n.parse().expect("PARROT_CPS_WORKERS: a number"));
    }
    let rt = rt.enable_all().build().expect("a tokio runtime");
    let ep = rt
        .block_on(
            parrot_core::ua::Endpoint::builder()
                .udp(addr)
                .handler(|| AnswerAll)
                .build(),
        )
        .unwrap_or_else(|e| panic!("responder endpoint on {addr}: {e}"));
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
    eprintln!("parrot responder at the end: {:?}", ep.stats());
    rt.block_on(ep.shutdown(std::time::Duration::from_secs(1)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// A child that burns some CPU and then sleeps (as `sleep`, after exec)
    /// is counted in this process's tree while it lives, in `cutime` once
    /// waited for, and is gone from `/proc` after.
    #[test]
    fn a_childs_cpu_is_counted_in_the_tree_then_in_cutime() {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 30",
            ])
            .spawn()
            .expect("sh");
        let pid = child.id();
        // Wait for the exec: its CPU is final then.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() != "sleep")
        {
            assert!(Instant::now() < deadline, "the child never got to sleep");
            std::thread::sleep(Duration::from_millis(20));
        }
        // `comm` changes at the exec, before `sleep` has loaded and gone to
        // sleep: its CPU can still move a tick. Read it once it holds still.
        let mut childs = process_cpu_seconds(pid).expect("the child's stat");
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let again = process_cpu_seconds(pid).expect("the child's stat");
            if again == childs {
                break;
            }
            assert!(Instant::now() < deadline, "the child's CPU never settled");
            childs = again;
        }
        assert!(childs > 0.0, "200000 shell iterations took no CPU tick");
        let me = std::process::id();
        let own = process_cpu_seconds(me).expect("our own stat");
        let tree = tree_cpu_seconds(me).expect("our tree");
        assert!(
            tree + 1e-9 >= own + childs,
            "tree {tree} < own {own} + child {childs}"
        );
        assert_eq!(tree_cpu_seconds(pid), Some(childs));
        // It slept (in `wait`, then `sleep`): at least one switch each.
        assert!(tree_context_switches(me).expect("our switches") >= 2);
        let reaped = children_cpu_seconds();
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(process_cpu_seconds(pid).is_none());
        assert!(tree_cpu_seconds(pid).is_none());
        assert!(children_cpu_seconds() + 1e-9 >= reaped + childs);
    }

    #[test]
    fn the_kernels_udp_counters_are_readable() {
        assert!(udp_rcvbuf_errors().is_some());
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = socket.local_addr().expect("address").port();
        assert_eq!(udp_socket_drops(port), Some(0));
        drop(socket);
        assert_eq!(udp_socket_drops(port), None);
    }
}
