//! REGISTER client against Parrot's registrar: binding, refresh before
//! expiry, digest challenge, and removal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::message::Uri;
use parrot_core::ua::{Endpoint, Registrar, RegistrationState};
use parrot_tests::free_addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_refresh_and_unregister_with_digest() {
    let registrar = Registrar::new().with_min_expires(1);
    let server_addr = free_addr();
    let server = Endpoint::builder()
        .udp(server_addr)
        .registrar(registrar.clone())
        .authenticate("parrot.test", |u| {
            (u == "alice").then(|| "secret".to_owned())
        })
        .build()
        .await
        .unwrap();
    let client = Endpoint::builder().udp(free_addr()).build().await.unwrap();
    let aor = Uri::parse("sip:alice@parrot.test").unwrap();

    // A wrong password is refused.
    let wrong = client
        .register(&format!("sip:{server_addr}"), "sip:alice@parrot.test")
        .unwrap()
        .credentials("alice", "nope")
        .send()
        .await;
    assert!(wrong.is_err(), "{wrong:?}");

    let reg = client
        .register(&format!("sip:{server_addr}"), "sip:alice@parrot.test")
        .unwrap()
        .credentials("alice", "secret")
        .expires(2)
        .send()
        .await
        .unwrap();
    assert_eq!(reg.state(), RegistrationState::Registered { expires: 2 });
    let bound = registrar.lookup(&aor, now());
    assert_eq!(bound.len(), 1);
    let contact = bound[0].contact.clone();
    assert_eq!(
        contact.host().and_then(|h| h.ip()),
        client
            .local_addr(parrot_core::transport::TransportKind::Udp)
            .map(|a| a.ip())
    );

    // Without a refresh the binding would expire after 2 s.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        registrar.lookup(&aor, now()).len(),
        1,
        "refreshed before expiry"
    );
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));

    reg.unregister().await.unwrap();
    assert!(
        registrar.lookup(&aor, now()).is_empty(),
        "Expires: 0 removed it"
    );
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
}
