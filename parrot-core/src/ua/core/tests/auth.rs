//! Digest authentication at the core: what an attacker can learn from the
//! answers (nothing about which users exist), throttling of repeated
//! failures per source, stale nonces, and who may register which AOR.

use super::*;
use crate::auth::credentials;
use crate::message::Challenge;

const MALLORY: &str = "198.51.100.66:5080";

fn authenticating() -> Config {
    let lookup = Arc::new(|user: &str| match user {
        "alice" => Some("secret".to_owned()),
        "bob" => Some("hunter2".to_owned()),
        _ => None,
    });
    Config {
        registrar: Some(Registrar::new()),
        auth: Some(ServerAuth::new("parrot.test", lookup)),
        ..Config::default()
    }
}

/// A REGISTER for `aor_user` from `from`, with an Authorization header if given.
fn register(from: &str, aor_user: &str, branch: &str, cseq: u32, authz: Option<&str>) -> String {
    let authz = authz.map_or(String::new(), |a| format!("Authorization: {a}\n"));
    format!(
        "REGISTER sip:{US} SIP/2.0\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{branch}\n\
         Max-Forwards: 70\n\
         From: <sip:{aor_user}@{US}>;tag=r{branch}\n\
         To: <sip:{aor_user}@{US}>\n\
         Call-ID: reg-{branch}\n\
         CSeq: {cseq} REGISTER\n\
         Contact: <sip:{aor_user}@{from}>\n\
         {authz}\
         Expires: 600\n\
         Content-Length: 0\n\n"
    )
}

fn challenge_of(r: &Response) -> Challenge {
    r.headers()
        .www_authenticate()
        .expect("parses")
        .into_iter()
        .next()
        .expect("a challenge")
}

/// Credentials of `user` with `password` answering `challenge`.
fn creds(challenge: &Challenge, user: &str, password: &str) -> String {
    let uri = format!("sip:{US}");
    credentials(
        challenge,
        user,
        password,
        &Method::Register,
        &uri,
        "c0ffee",
        1,
    )
    .expect("credentials")
    .to_string()
}

/// Registers `user` (AOR `aor_user`) from `from` with `password`: the
/// challenge, then the answer; returns the final response to the answer.
fn attempt(
    net: &mut Net,
    from: &str,
    user: &str,
    aor_user: &str,
    password: &str,
    n: u32,
) -> Response {
    net.recv_from(from, &register(from, aor_user, &format!("{n}a"), 1, None));
    let first = net.responses().pop().expect("a response");
    if first.status() != StatusCode::UNAUTHORIZED {
        return first;
    }
    let authz = creds(&challenge_of(&first), user, password);
    net.recv_from(
        from,
        &register(from, aor_user, &format!("{n}b"), 2, Some(&authz)),
    );
    net.responses().pop().expect("a response")
}

/// The response as the attacker sees it, minus what is random by design
/// (the nonce, the To tag) and what echoes the request (§8.2.6.2).
type Pairs = Vec<(String, String)>;

fn shape(r: &Response) -> (u16, Pairs, Pairs, Vec<u8>) {
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .map(|f| {
            (
                f.name().to_string(),
                String::from_utf8_lossy(f.value()).into_owned(),
            )
        })
        .filter(|(n, _)| {
            !["www-authenticate", "to", "from", "via", "call-id", "cseq"]
                .iter()
                .any(|e| n.eq_ignore_ascii_case(e))
        })
        .collect();
    headers.sort();
    let params = r
        .headers()
        .www_authenticate()
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.params.iter())
        .filter(|(k, _)| !k.eq_ignore_case("nonce"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (r.status().as_u16(), headers, params, r.body().to_vec())
}

#[test]
fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let mut net = Net::new(authenticating());
    let wrong = attempt(&mut net, ALICE, "alice", "alice", "guess", 1);
    let unknown = attempt(&mut net, ALICE, "nobody", "nobody", "guess", 2);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(shape(&wrong), shape(&unknown));
    // And the first, credential-less, challenge is the same for both too.
    net.recv(&register(ALICE, "alice", "3", 1, None));
    net.recv(&register(ALICE, "nobody", "4", 1, None));
    let rs = net.responses();
    assert_eq!(shape(&rs[0]), shape(&rs[1]));
    assert_eq!(
        attempt(&mut net, ALICE, "alice", "alice", "secret", 5).status(),
        StatusCode::OK
    );
}

#[test]
fn repeated_failures_from_one_source_are_throttled() {
    let mut net = Net::new(authenticating());
    let mut codes = Vec::new();
    for n in 0..8 {
        codes.push(
            attempt(&mut net, MALLORY, "alice", "alice", &format!("guess{n}"), n)
                .status()
                .as_u16(),
        );
    }
    // The right password, now: refused like everything else from there.
    let right = attempt(&mut net, MALLORY, "alice", "alice", "secret", 8);
    // Before the throttle: 401 for all eight, then 200 for the right one.
    assert_eq!(codes, [401, 401, 401, 401, 401, 403, 403, 403]);
    assert_eq!(right.status(), StatusCode::FORBIDDEN);
    let stats = net.core.stats();
    assert_eq!((stats.auth_failures, stats.auth_throttled), (5, 4));
    // Another source is not affected.
    assert_eq!(
        attempt(&mut net, ALICE, "alice", "alice", "secret", 9).status(),
        StatusCode::OK
    );
    // The block ends (default 300 s).
    net.advance(Duration::from_secs(299));
    assert_eq!(
        attempt(&mut net, MALLORY, "alice", "alice", "secret", 10).status(),
        StatusCode::FORBIDDEN
    );
    net.advance(Duration::from_secs(1));
    assert_eq!(
        attempt(&mut net, MALLORY, "alice", "alice", "secret", 11).status(),
        StatusCode::OK
    );
}

#[test]
fn the_throttle_is_configurable_and_can_be_off() {
    use crate::auth::Throttle;
    let tight = Throttle::new(2, Duration::from_secs(10), Duration::from_secs(30));
    let config = authenticating();
    config.auth_throttle.lock().unwrap().throttle = tight;
    let mut net = Net::new(config);
    let codes: Vec<u16> = (0..3)
        .map(|n| {
            attempt(&mut net, MALLORY, "alice", "alice", "x", n)
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(codes, [401, 401, 403]);
    let config = authenticating();
    config.auth_throttle.lock().unwrap().throttle = Throttle::off();
    let mut net = Net::new(config);
    for n in 0..20 {
        assert_eq!(
            attempt(&mut net, MALLORY, "alice", "alice", "x", n)
                .status()
                .as_u16(),
            401
        );
    }
    assert_eq!(
        attempt(&mut net, MALLORY, "alice", "alice", "secret", 20).status(),
        StatusCode::OK
    );
    assert_eq!(net.core.stats().auth_throttled, 0);
}

#[test]
fn a_digest_for_alice_does_not_register_bob() {
    let mut net = Net::new(authenticating());
    let r = attempt(&mut net, ALICE, "alice", "bob", "secret", 1);
    // Before: 200, and alice's contact was bound to bob's AOR.
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "RFC 3261 §10.3 step 3");
    let registrar = net.core.config.registrar.clone().unwrap();
    assert!(registrar.contacts("bob").is_empty());
}

#[test]
fn an_expired_nonce_is_stale_only_with_the_right_password() {
    let mut net = Net::new(authenticating());
    let mut answers = Vec::new();
    for (n, password) in [(1, "secret"), (2, "guess")] {
        net.recv(&register(ALICE, "alice", &format!("{n}a"), 1, None));
        let ch = challenge_of(&net.responses().pop().unwrap());
        net.advance(Duration::from_secs(301));
        let authz = creds(&ch, "alice", password);
        net.recv(&register(ALICE, "alice", &format!("{n}b"), 2, Some(&authz)));
        let r = net.responses().pop().unwrap();
        answers.push((
            r.status().as_u16(),
            challenge_of(&r).param("stale").map(str::to_owned),
        ));
    }
    // Before: stale=TRUE for both (the nonce's age was checked first).
    assert_eq!(
        answers[0],
        (401, Some("TRUE".to_owned())),
        "right password, old nonce"
    );
    assert_eq!(
        answers[1],
        (401, None),
        "RFC 2617 §3.2.1: stale only with a valid digest"
    );
    assert_eq!(
        net.core.stats().auth_failures,
        1,
        "only the wrong password counts"
    );
}
