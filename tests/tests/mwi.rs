//! Message waiting indication (RFC 3842 over RFC 6665) with a real
//! subscriber: baresip registers with a Parrot registrar and subscribes to
//! its mailbox (its `mwi` module); the first NOTIFY says no messages, and
//! the mailbox the application sets reaches baresip in the next.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::ua::{Endpoint, Mailbox, Registrar};
use parrot_tests::{BaresipConfig, TempDir, baresip_available, free_addr, free_port};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Waits up to `within` for `text` in what baresip printed.
async fn printed(out: &Arc<Mutex<String>>, text: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if out.lock().unwrap().contains(text) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_hears_its_mailbox_from_the_registrar() {
    assert!(
        baresip_available(),
        "baresip is not installed: run `cargo xtask test`"
    );
    let tmp = TempDir::new("mwi");
    let addr = free_addr();
    let cfg = BaresipConfig {
        sip_port: free_port(),
        source_wav: tmp.join("none.wav"),
        dump_dir: tmp.join("dump"),
    };
    let dir = tmp.join("baresip");
    cfg.write(&dir);
    std::fs::write(
        dir.join("config"),
        format!("{}module_app\t\tmwi.so\n", cfg.config()),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!("<sip:alice@{addr}>;regint=600;mwi=yes;audio_codecs=pcmu\n"),
    )
    .unwrap();
    // baresip 1.0's mwi module loops forever when a registration succeeds
    // within a millisecond of its start (its start-up timer walks the list
    // it appends to): so baresip starts first, and the registrar answers
    // one of its REGISTER retransmissions a second later.
    let mut child = tokio::process::Command::new("baresip")
        .arg("-f")
        .arg(&dir)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let o = out.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            o.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let registrar = Registrar::new();
    let server = Endpoint::builder()
        .udp(addr)
        .registrar(registrar.clone())
        .build()
        .await
        .unwrap();
    let first = printed(&out, "Voice-Message: 0/0", Duration::from_secs(8)).await;
    let seen = out.lock().unwrap().clone();
    assert!(first, "baresip heard no first NOTIFY:\n{seen}");
    assert!(seen.contains("Messages-Waiting: no"), "{seen}");
    assert_eq!(registrar.contacts("alice").len(), 1, "and it is registered");
    registrar.set_mailbox("alice", Mailbox { new: 3, old: 1 });
    let changed = printed(&out, "Voice-Message: 3/1", Duration::from_secs(5)).await;
    let seen = out.lock().unwrap().clone();
    assert!(changed, "baresip heard no NOTIFY for the change:\n{seen}");
    assert!(seen.contains("Messages-Waiting: yes"), "{seen}");
    assert_eq!(
        seen.matches("subscribing to messages").count(),
        1,
        "one subscription: {seen}"
    );
    let _ = child.start_kill();
    server.shutdown(Duration::from_secs(1)).await;
}
