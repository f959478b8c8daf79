//! Digest tests: the RFC examples, round trips, stale, wrong password, replay.

use super::*;
use crate::message::{Challenge, Message, Method, Request, Response, StatusCode};
use bytes::Bytes;
use std::cell::Cell;

thread_local! {
    /// How many times [`Algorithm::hash`] ran on this thread.
    pub(super) static HASHES: Cell<usize> = const { Cell::new(0) };
}

/// The result of `f` and the digest hashes it computed.
fn hashes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HASHES.with(Cell::get);
    let out = f();
    (out, HASHES.with(Cell::get) - before)
}

fn parse(text: &str) -> Message {
    let wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
    Message::parse(Bytes::from(wire)).expect("test message parses")
}

fn challenge_in(resp: &str) -> Challenge {
    let r = parse(resp);
    let r = r.as_response().expect("a response");
    r.headers().www_authenticate().expect("parses").remove(0)
}

const RFC2617: &str = "SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1
From: <sip:a@example.com>;tag=1
To: <sip:a@example.com>;tag=2
Call-ID: c
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"
Content-Length: 0

";

fn get() -> Method {
    Method::from_name("GET").expect("a token")
}

#[test]
fn rfc2617_md5_example() {
    let ch = challenge_in(RFC2617);
    let c = credentials(
        &ch,
        "Mufasa",
        "Circle Of Life",
        &get(),
        "/dir/index.html",
        "0a4f113b",
        1,
    )
    .expect("credentials");
    assert_eq!(
        c.param("response"),
        Some("6629fae49393a05397450978507c4ef1")
    );
    assert_eq!(c.param("nc"), Some("00000001"));
    assert_eq!(c.param("qop"), Some("auth"));
    assert_eq!(c.param("cnonce"), Some("0a4f113b"));
    assert_eq!(c.param("opaque"), Some("5ccc069c403ebaf9f0171e9517f40e41"));
    assert_eq!(c.param("uri"), Some("/dir/index.html"));
    assert!(
        c.to_string()
            .starts_with("Digest username=\"Mufasa\", realm=\"testrealm@host.com\"")
    );
}

const RFC7616: &str = "SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1
From: <sip:a@example.com>;tag=1
To: <sip:a@example.com>;tag=2
Call-ID: c
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"
WWW-Authenticate: Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"
Content-Length: 0

";

#[test]
fn rfc7616_examples() {
    let r = parse(RFC7616);
    let chs = r
        .as_response()
        .expect("a response")
        .headers()
        .www_authenticate()
        .expect("parses");
    assert_eq!(chs.len(), 2);
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    // RFC 7616 §3.9.1 spells the password "Circle of Life".
    let sha = credentials(
        &chs[0],
        "Mufasa",
        "Circle of Life",
        &get(),
        "/dir/index.html",
        cnonce,
        1,
    )
    .expect("credentials");
    assert_eq!(
        sha.param("response"),
        Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    );
    assert_eq!(sha.param("algorithm"), Some("SHA-256"));
    let md5 = credentials(
        &chs[1],
        "Mufasa",
        "Circle of Life",
        &get(),
        "/dir/index.html",
        cnonce,
        1,
    )
    .expect("credentials");
    assert_eq!(
        md5.param("response"),
        Some("8ca523f5e9506fed4657c9700eebdbec")
    );
}

#[test]
fn rfc2069_without_qop() {
    let text = RFC2617.replace("qop=\"auth,auth-int\", ", "");
    let ch = challenge_in(&text);
    let c = credentials(
        &ch,
        "Mufasa",
        "Circle Of Life",
        &get(),
        "/dir/index.html",
        "x",
        1,
    )
    .expect("credentials");
    assert_eq!(c.param("qop"), None);
    assert_eq!(c.param("nc"), None);
    assert_eq!(c.param("cnonce"), None);
    // KD(HA1, nonce:HA2)
    let alg = Algorithm::Md5;
    let ha1 = alg.ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "", "");
    let want = alg.response(
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        None,
        "GET",
        "/dir/index.html",
    );
    assert_eq!(c.param("response"), Some(want.as_str()));
    // auth-int only: not for us.
    let int_only = challenge_in(&RFC2617.replace("auth,auth-int", "auth-int"));
    assert_eq!(
        credentials(&int_only, "u", "p", &get(), "/", "x", 1),
        Err(AuthError::NoUsableChallenge)
    );
}

const REGISTER: &str = "REGISTER sip:registrar.biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7
Max-Forwards: 70
From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com
CSeq: 1 REGISTER
Contact: <sip:bob@client.biloxi.example.com>
Content-Length: 0

";

fn register() -> Request {
    parse(REGISTER).as_request().expect("a request").clone()
}

fn lookup(user: &str) -> Option<&'static str> {
    (user == "bob").then_some("zanzibar")
}

/// The client's request after the challenge, re-parsed as the server gets it.
fn answered(server: &DigestServer, client: &mut DigestClient, now: u64) -> Request {
    let mut req = register();
    let challenge: Response = server.challenge_response(&req, false, false, now);
    authorize(&mut req, &challenge, client).expect("authorized");
    parse(&String::from_utf8_lossy(&req.to_bytes()))
        .as_request()
        .expect("a request")
        .clone()
}

#[test]
fn round_trip_md5_and_sha256() {
    for alg in [
        Algorithm::Md5,
        Algorithm::Sha256,
        Algorithm::Md5Sess,
        Algorithm::Sha256Sess,
    ] {
        let mut server = DigestServer::new("biloxi.example.com").with_algorithm(alg);
        let mut client = DigestClient::new("bob", "zanzibar");
        let req = answered(&server, &mut client, 1000);
        assert_eq!(
            req.headers().cseq().map(|c| c.seq),
            Some(2),
            "CSeq advanced"
        );
        let creds = req.headers().authorization().expect("parses");
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].algorithm(), alg.as_str());
        assert_eq!(
            server.verify_request(&req, false, lookup, 1010),
            Ok(()),
            "{alg}"
        );
        // The same credentials again: replay.
        assert_eq!(
            server.verify_request(&req, false, lookup, 1011),
            Err(AuthFailure::Replayed)
        );
        // Reusing the nonce with the next count is fine.
        let mut next = register();
        let uri = next.uri().to_string();
        let c = client
            .preemptive(&Method::Register, &uri)
            .expect("a challenge was answered");
        assert_eq!(c.param("nc"), Some("00000002"));
        next.headers_mut()
            .push(crate::message::HeaderName::Authorization, c.to_string())
            .expect("valid");
        assert_eq!(server.verify_request(&next, false, lookup, 1012), Ok(()));
    }
}

#[test]
fn ha1_lookup() {
    let mut server = DigestServer::new("biloxi.example.com");
    let mut client = DigestClient::new("bob", "zanzibar");
    let req = answered(&server, &mut client, 0);
    let ha1 = Algorithm::Md5.hash(b"bob:biloxi.example.com:zanzibar");
    let lookup = |u: &str| (u == "bob").then(|| Secret::Ha1(ha1.clone()));
    assert_eq!(server.verify_request(&req, false, lookup, 1), Ok(()));
}

#[test]
fn stale_nonce() {
    let mut server = DigestServer::new("biloxi.example.com").with_nonce_lifetime(60);
    let mut client = DigestClient::new("bob", "zanzibar");
    let req = answered(&server, &mut client, 1000);
    let late = server.verify_request(&req, false, lookup, 1061);
    assert_eq!(late, Err(AuthFailure::Stale));
    assert!(late.err().is_some_and(AuthFailure::is_stale));
    let again = server.challenge(true, 1061);
    assert_eq!(again.param("stale"), Some("TRUE"));
    assert_eq!(again.param("qop"), Some("auth"));
    // RFC 2617 §3.2.1: stale only with a valid digest; a wrong password (or
    // an unknown user) with an old nonce is an ordinary failure.
    let wrong = answered(&server, &mut DigestClient::new("bob", "guess"), 1000);
    let nobody = answered(&server, &mut DigestClient::new("eve", "guess"), 1000);
    let late = |s: &mut DigestServer, r| s.verify_request(r, false, lookup, 1061);
    assert_eq!(late(&mut server, &wrong), Err(AuthFailure::BadResponse));
    assert_eq!(late(&mut server, &nobody), Err(AuthFailure::UnknownUser));
    assert_eq!(server.verify_request(&req, false, lookup, 1060), Ok(()));
}

#[test]
fn wrong_password_realm_nonce_user() {
    let mut server = DigestServer::new("biloxi.example.com");
    let mut client = DigestClient::new("bob", "wrong");
    let req = answered(&server, &mut client, 5);
    assert_eq!(
        server.verify_request(&req, false, lookup, 5),
        Err(AuthFailure::BadResponse)
    );
    assert_eq!(
        server.verify_request(&req, false, |_| None::<String>, 5),
        Err(AuthFailure::UnknownUser)
    );
    // Another server (another key) did not issue this nonce.
    let mut other = DigestServer::new("biloxi.example.com");
    assert_eq!(
        other.verify_request(&req, false, lookup, 5),
        Err(AuthFailure::InvalidNonce)
    );
    let mut elsewhere = DigestServer::new("atlanta.example.com");
    assert_eq!(
        elsewhere.verify_request(&req, false, lookup, 5),
        Err(AuthFailure::WrongRealm)
    );
    assert_eq!(
        server.verify_request(&register(), false, lookup, 5),
        Err(AuthFailure::Missing)
    );
    // Shared keys accept each other's nonces.
    let a = DigestServer::new("r").with_key(b"k");
    let mut b = DigestServer::new("r").with_key(b"k");
    let mut req = register();
    let ch = a.challenge_response(&req, false, false, 0);
    authorize(&mut req, &ch, &mut DigestClient::new("bob", "zanzibar")).expect("ok");
    assert_eq!(b.verify_request(&req, false, lookup, 0), Ok(()));
}

#[test]
fn a_seeded_entropy_replays_challenge_and_credentials() {
    let run = |seed| {
        let e = crate::entropy::Entropy::seeded(seed);
        let server = DigestServer::new("r").with_entropy(&e);
        let mut client = DigestClient::new("bob", "zanzibar").with_entropy(e.clone());
        let mut req = register();
        let ch = server.challenge_response(&req, false, false, 0);
        authorize(&mut req, &ch, &mut client).expect("ok");
        req.to_bytes()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn proxy_407_and_realm_replacement() {
    let mut proxy = DigestServer::new("atlanta.example.com").with_algorithm(Algorithm::Sha256);
    let mut client = DigestClient::new("bob", "zanzibar");
    let mut req = register();
    let ch = proxy.challenge_response(&req, true, false, 0);
    assert_eq!(ch.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    authorize(&mut req, &ch, &mut client).expect("ok");
    assert!(req.headers().authorization().expect("ok").is_empty());
    assert_eq!(req.headers().proxy_authorization().expect("ok").len(), 1);
    assert_eq!(proxy.verify_request(&req, true, lookup, 1), Ok(()));
    // A second 407 for the same realm replaces the credentials.
    let ch = proxy.challenge_response(&req, true, true, 2);
    authorize(&mut req, &ch, &mut client).expect("ok");
    assert_eq!(req.headers().proxy_authorization().expect("ok").len(), 1);
    assert_eq!(req.headers().cseq().map(|c| c.seq), Some(3));
    assert_eq!(proxy.verify_request(&req, true, lookup, 3), Ok(()));
    // Not a challenge.
    let ok = req.response(StatusCode::OK);
    assert_eq!(
        authorize(&mut req, &ok, &mut client),
        Err(AuthError::NotAChallenge)
    );
}

#[test]
fn evicted_nonce_is_stale_not_replayable() {
    let mut server = DigestServer::new("biloxi.example.com").with_tracked_nonces(1);
    let first = answered(&server, &mut DigestClient::new("bob", "zanzibar"), 10);
    let second = answered(&server, &mut DigestClient::new("bob", "zanzibar"), 20);
    assert_eq!(server.verify_request(&first, false, lookup, 20), Ok(()));
    assert_eq!(server.verify_request(&second, false, lookup, 21), Ok(()));
    // `first` was pushed out of the map: a replay is refused as stale.
    assert_eq!(
        server.verify_request(&first, false, lookup, 22),
        Err(AuthFailure::Stale)
    );
}

#[test]
fn client_counts_per_nonce() {
    let ch = challenge_in(RFC2617);
    let mut client = DigestClient::new("Mufasa", "Circle Of Life");
    let ncs: Vec<String> = (0..3)
        .map(|_| {
            client
                .respond(&ch, &get(), "/")
                .expect("ok")
                .param("nc")
                .map(str::to_owned)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(ncs, ["00000001", "00000002", "00000003"]);
    let other = challenge_in(&RFC2617.replace("dcd98b", "aaaaaa"));
    assert_eq!(
        client.respond(&other, &get(), "/").expect("ok").param("nc"),
        Some("00000001")
    );
}

/// Timing equality by construction: an unknown user costs the same digest
/// work as a known one with the wrong password (a dummy secret is hashed), so
/// the time to answer does not tell which user names exist. Likewise for an
/// expired nonce, and for a store of HA1s.
#[test]
fn an_unknown_user_costs_the_same_hashing_as_a_wrong_password() {
    for alg in [Algorithm::Md5, Algorithm::Sha256Sess] {
        let mut server = DigestServer::new("biloxi.example.com")
            .with_algorithm(alg)
            .with_nonce_lifetime(60);
        let ha1 = alg.hash(b"bob:biloxi.example.com:zanzibar");
        let ha1_lookup = |u: &str| (u == "bob").then(|| Secret::Ha1(ha1.clone()));
        for now in [5, 100] {
            let wrong = answered(&server, &mut DigestClient::new("bob", "wrong"), 5);
            let nobody = answered(&server, &mut DigestClient::new("nobody", "wrong"), 5);
            let (w, w_cost) = hashes(|| server.verify_request(&wrong, false, lookup, now));
            let (u, u_cost) = hashes(|| server.verify_request(&nobody, false, lookup, now));
            let (h, h_cost) = hashes(|| server.verify_request(&wrong, false, ha1_lookup, now));
            let (hu, hu_cost) = hashes(|| server.verify_request(&nobody, false, ha1_lookup, now));
            assert!(w.is_err() && u.is_err() && h.is_err() && hu.is_err());
            assert!(w_cost > 0, "{alg} at {now}: the response is computed");
            assert_eq!(
                (w_cost, h_cost, hu_cost),
                (u_cost, u_cost, u_cost),
                "{alg} at {now}"
            );
        }
    }
}
