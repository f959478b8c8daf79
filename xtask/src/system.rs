//! The Debian packages the tests need, checked with `dpkg-query` and installed
//! with `apt-get` when we are root.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// Debian packages the test suite needs, with the reason.
pub(crate) const SYSTEM_PACKAGES: &[(&str, &str)] = &[
    (
        "sip-tester",
        "provides `sipp`, the SIP traffic generator the end-to-end tests drive",
    ),
    (
        "baresip-core",
        "provides `baresip`, the softphone the end-to-end media tests call Parrot with",
    ),
    (
        "linphone-cli",
        "provides `linphonec`, liblinphone's console softphone: a second real peer for hold, transfer and PRACK (tests/tests/linphone.rs)",
    ),
    (
        "kamailio",
        "a real SIP proxy: the scale-out test dispatches calls through it to Parrot nodes",
    ),
    (
        "iproute2",
        "provides `ip`: the network lab (tests/src/netns.rs) builds hosts from namespaces and veth pairs",
    ),
    (
        "nftables",
        "provides `nft`: the network lab's router masquerades (NAT) for the host behind it",
    ),
    (
        "dnsmasq-base",
        "provides `dnsmasq` (without the system service of package `dnsmasq`): a real DNS server for the resolver tests",
    ),
    (
        "python3",
        "runs the network lab's packet capture and UDP echo inside namespaces",
    ),
    (
        "libspandsp2",
        "spandsp's G.722, the reference parrot-core/tests/g722_reference.rs compares Parrot's G.722 with (through python3's ctypes)",
    ),
    (
        "util-linux",
        "provides `prlimit`: tests/tests/connections.rs runs a server under a file descriptor limit (and raises its own)",
    ),
    (
        "sipvicious",
        "provides `svwar` and `svcrack`: the auth test enumerates users and guesses passwords like an attacker",
    ),
    (
        "pkg-config",
        "locates system libraries for build scripts (alsa-sys)",
    ),
    (
        "libasound2-dev",
        "ALSA headers for the audio device layer (cpal)",
    ),
    (
        "make",
        "builds jemalloc from C (tikv-jemallocator: the uas example's and the flood test's allocator)",
    ),
];

/// The packages building the workspace needs (what `cargo xtask demo` checks):
/// the generated phone's audio devices go through cpal, whose ALSA bindings
/// need both.
pub(crate) const BUILD_PACKAGES: &[&str] = &["pkg-config", "libasound2-dev"];

/// Is `pkg` installed? `dpkg-query` prints `install ok installed` for an
/// installed package; anything else (unknown, removed, half-configured) is no.
fn installed(pkg: &str) -> Result<bool> {
    let status = util::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .context("`dpkg-query` is needed to check system packages (Debian/Ubuntu)")?;
    Ok(status.as_deref() == Some("install ok installed"))
}

fn is_root() -> bool {
    util::output(Command::new("id").arg("-u"))
        .ok()
        .flatten()
        .is_some_and(|uid| uid == "0")
}

/// Makes sure every package in [`SYSTEM_PACKAGES`] is installed.
///
/// Missing packages are installed with `apt-get` when running as root;
/// otherwise the exact `sudo apt-get install` command is printed and this fails.
pub(crate) fn ensure_packages() -> Result<()> {
    ensure(SYSTEM_PACKAGES)
}

/// The same for the packages building needs ([`BUILD_PACKAGES`]).
pub(crate) fn ensure_build_packages() -> Result<()> {
    let wanted: Vec<(&str, &str)> = SYSTEM_PACKAGES
        .iter()
        .copied()
        .filter(|(pkg, _)| BUILD_PACKAGES.contains(pkg))
        .collect();
    ensure(&wanted)
}

fn ensure(packages: &[(&str, &str)]) -> Result<()> {
    let mut missing = Vec::new();
    for &(pkg, why) in packages {
        if installed(pkg)? {
            println!("    {pkg:<16} installed");
        } else {
            println!("    {pkg:<16} MISSING ({why})");
            missing.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        eprintln!();
        eprintln!("Some system packages are missing. Install them with:");
        eprintln!();
        eprintln!("    sudo apt-get install -y --no-install-recommends {list}");
        eprintln!();
        bail!("missing system packages: {list}");
    }
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        println!("    $ {}", util::display(&cmd));
        let status = util::status(&mut cmd)?;
        if !status.success() {
            bail!("`{}` failed ({status})", util::display(&cmd));
        }
        Ok(())
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)?;
    for pkg in &missing {
        if !installed(pkg)? {
            bail!("`{pkg}` is still not installed after apt-get install");
        }
    }
    if missing.contains(&"kamailio") {
        stop_kamailio_service();
    }
    Ok(())
}

/// Debian's `kamailio` package enables a system service that, where services
/// run (not in containers whose policy-rc.d forbids it), starts Kamailio with
/// /etc/kamailio/kamailio.cfg on port 5060. The tests run their own Kamailio
/// in the foreground on free loopback ports; the service is not wanted.
/// Best effort: without systemd there is nothing to stop.
fn stop_kamailio_service() {
    let mut cmd = Command::new("systemctl");
    cmd.args(["disable", "--now", "kamailio"]);
    println!("    $ {}", util::display(&cmd));
    match util::output(&mut cmd) {
        Ok(Some(_)) => {}
        Ok(None) => println!("    (systemctl failed: no service manager here, nothing runs)"),
        Err(e) => println!("    (not stopped: {e:#})"),
    }
}
