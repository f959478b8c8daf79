//! Authentication that leaks nothing, tried with Debian's sipvicious
//! (`cargo xtask test` installs it): `svwar` cannot tell which extensions
//! exist behind Parrot's registrar, and `svcrack` is stopped by the
//! throttle before it reaches the right password.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::auth::Throttle;
use parrot_core::ua::{Endpoint, Registrar};
use parrot_tests::{TempDir, free_addr};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A registrar with digest authentication for users 101 and 150.
async fn registrar(throttle: Throttle) -> (Endpoint, SocketAddr) {
    let (ep, addr, _) = registrar_and_bindings(throttle).await;
    (ep, addr)
}

/// [`registrar`], and its bindings to look at.
async fn registrar_and_bindings(throttle: Throttle) -> (Endpoint, SocketAddr, Registrar) {
    let addr = free_addr();
    let bindings = Registrar::new();
    let ep = Endpoint::builder()
        .udp(addr)
        .registrar(bindings.clone())
        .authenticate("parrot.test", |u| match u {
            "101" => Some("s3cret-101".to_owned()),
            "150" => Some("letmein".to_owned()),
            _ => None,
        })
        .auth_throttle(throttle)
        .build()
        .await
        .unwrap();
    (ep, addr, bindings)
}

fn sipvicious_available() -> bool {
    std::process::Command::new("svwar")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs a sipvicious tool with `args` in `home` (its session files go to
/// `$HOME/.sipvicious`) and returns what it printed. After `limit` it gets
/// SIGINT, on which the tools stop and print what they found; 5 s later,
/// if still running, it is killed.
/// One sipvicious tool at a time: each binds UDP 5060 unless it is taken, and
/// svcrack run beside svwar (on 5061) sometimes printed nothing at all.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn sipvicious(tool: &str, args: &[&str], home: &TempDir, limit: Duration) -> String {
    let _turn = ONE_AT_A_TIME.lock().await;
    assert!(
        sipvicious_available(),
        "sipvicious is not installed: run `cargo xtask test` (it installs it) or `apt-get install sipvicious`"
    );
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .env("HOME", home.path())
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sipvicious");
    let read = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s).await;
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    if tokio::time::timeout(limit, child.wait()).await.is_err() {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    let mut s = out.await.unwrap_or_default();
    s.push_str(&err.await.unwrap_or_default());
    s
}

/// svwar asks each extension for a REGISTER without credentials: a 401 for
/// a user that exists and a 404 (or a different 401) for one that does not
/// would list the users. Every one gets the same challenge, so svwar's own
/// sanity check gives up; forced, it reports existing and missing
/// extensions alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svwar_finds_no_extension() {
    let home = TempDir::new("svwar");
    let (ep, addr) = registrar(Throttle::default()).await;
    let target = format!("udp://{addr}");
    let limit = Duration::from_secs(30);
    for method in ["REGISTER", "INVITE"] {
        let out = sipvicious("svwar", &["-e100-200", "-m", method, &target], &home, limit).await;
        assert!(out.contains("found nothing"), "svwar -m {method}:\n{out}");
        assert!(!out.contains("| 101") && !out.contains("| 150"), "{out}");
    }
    let out = sipvicious(
        "svwar",
        &["--force", "-e100-110,150", &target],
        &home,
        limit,
    )
    .await;
    let listed = |ext: &str| out.lines().any(|l| l.starts_with(&format!("| {ext} ")));
    for (known, unknown) in [("101", "102"), ("150", "109")] {
        assert_eq!(
            listed(known),
            listed(unknown),
            "svwar --force tells {known} from {unknown}:\n{out}"
        );
    }
    eprintln!("svwar --force:\n{out}");
    assert_eq!(ep.stats().auth_failures, 0, "svwar sends no credentials");
    ep.shutdown(Duration::from_secs(1)).await;
}

/// svcrack guesses user 150's password from a dictionary whose tenth word is
/// the right one. Without a throttle (as before it existed) it finds it;
/// with the default one (5 failures in 60 s) the source is refused with
/// 403 after the fifth guess, and svcrack, which then only gets 403s, never
/// gets there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcrack_is_throttled_before_the_right_password() {
    let home = TempDir::new("svcrack");
    let dict = home.join("passwords.txt");
    std::fs::write(
        &dict,
        "1234\nadmin\n150\npassword\nqwerty\nsecret\n0000\nvoip\nsip150\nletmein\nzzz\n",
    )
    .unwrap();
    let dict = dict.to_string_lossy().into_owned();
    // The control run ends by itself once the password is found; the
    // throttled one goes on getting 403s until `sipvicious` interrupts it at
    // the limit, and then prints its report. A 5 s limit sometimes
    // interrupted a CI run's svcrack before it had started (no output at
    // all): Python alone can take seconds to start on a loaded machine.
    let limit = Duration::from_secs(20);

    // The control: the same tool, no throttle: it cracks it (so the check below can fail).
    let (open, addr, bindings) = registrar_and_bindings(Throttle::off()).await;
    let target = format!("udp://{addr}");
    let args = ["-u", "150", "-d", &dict, "-t", "0.02", &target];
    let out = sipvicious("svcrack", &args, &home, limit).await;
    assert!(
        out.contains("| 150 ") && out.contains("letmein"),
        "without a throttle:\n{out}"
    );
    assert_eq!(open.stats().auth_failures, 9);
    // The right guess registered svcrack's contact: the server-side proof.
    assert!(
        !bindings.contacts("150").is_empty(),
        "the cracked REGISTER bound a contact"
    );
    open.shutdown(Duration::from_secs(1)).await;

    let (ep, addr, bindings) = registrar_and_bindings(Throttle::default()).await;
    let target = format!("udp://{addr}");
    let args = ["-u", "150", "-d", &dict, "-t", "0.02", &target];
    let out = sipvicious("svcrack", &args, &home, limit).await;
    // The server's side first: svcrack ran (5 failures), was refused, and
    // no guess registered anything. That holds even when svcrack, interrupted
    // at the limit, prints nothing (seen in CI runs under load).
    let stats = ep.stats();
    assert_eq!(stats.auth_failures, 5, "{stats:?}\n{out}");
    assert!(stats.auth_throttled > 0, "{stats:?}\n{out}");
    assert!(
        bindings.contacts("150").is_empty(),
        "a guess got through the throttle:\n{out}"
    );
    assert!(
        !out.contains("letmein"),
        "svcrack got through the throttle:\n{out}"
    );
    // Its own verdict, when it printed one.
    if out.trim().is_empty() {
        eprintln!("svcrack printed nothing when interrupted; the server's counts above stand");
    } else {
        assert!(out.contains("found nothing"), "svcrack's report:\n{out}");
    }
    eprintln!("svcrack against the throttle: {stats:?}\n{out}");
    ep.shutdown(Duration::from_secs(1)).await;
}
