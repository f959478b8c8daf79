//! The server side: challenging and verifying.

use super::{Algorithm, hex, quote};
use crate::entropy::Entropy;
use crate::message::{Challenge, Credentials, HeaderName, Request, Response, StatusCode, Text};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a user lookup returns: the password, or the stored
/// `HA1 = H(username:realm:password)` for the server's algorithm.
///
/// A `String` or `&str` converts to [`Secret::Password`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// The clear password.
    Password(String),
    /// `H(username:realm:password)`, lower-case hex.
    Ha1(String),
}

impl From<String> for Secret {
    fn from(p: String) -> Secret {
        Secret::Password(p)
    }
}

impl From<&str> for Secret {
    fn from(p: &str) -> Secret {
        Secret::Password(p.to_owned())
    }
}

/// Why credentials were refused. All but [`AuthFailure::Malformed`] are
/// answered with a new challenge (401/407); [`AuthFailure::is_stale`] says
/// whether it carries `stale=TRUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No Digest credentials.
    #[error("no credentials")]
    Missing,
    /// Credentials for another realm.
    #[error("credentials for another realm")]
    WrongRealm,
    /// A parameter is missing or malformed, or the algorithm or qop is not the
    /// one challenged (answer 400).
    #[error("malformed credentials")]
    Malformed,
    /// The nonce is ours but expired (or too old to track its count): re-challenge
    /// with `stale=TRUE`, the client retries without asking the user.
    #[error("stale nonce")]
    Stale,
    /// The nonce was not issued by this server (or its key changed).
    #[error("invalid nonce")]
    InvalidNonce,
    /// The lookup knows no such user. Found after the same work as
    /// [`AuthFailure::BadResponse`]; answer both alike.
    #[error("unknown user")]
    UnknownUser,
    /// The response does not match: wrong password (or a tampered request).
    #[error("wrong response")]
    BadResponse,
    /// The nonce count was not above the highest already seen for this nonce.
    #[error("replayed nonce count")]
    Replayed,
}

impl AuthFailure {
    /// True if the new challenge should carry `stale=TRUE`.
    pub fn is_stale(self) -> bool {
        self == AuthFailure::Stale
    }
}

/// The password an unknown user is checked against, so that the work done
/// does not depend on whether the user exists. Never accepted: the check for
/// an unknown user fails whatever the response.
const DUMMY: &str = "parrot: no such user";

/// Length of the nonce fields, in hex digits: timestamp, counter, MAC.
const TS: usize = 16;
const CTR: usize = 16;
const MAC: usize = 32;

/// A digest authenticator for one realm (RFC 7616 §3.3, §3.4; RFC 3261 §22.4).
///
/// Nonces are stateless: `timestamp ‖ counter ‖ HMAC-SHA-256(key, timestamp ‖
/// counter ‖ realm)` in hex, so any nonce can be checked without having been
/// stored, and expires `nonce_lifetime` seconds after issue. The key is random
/// per server (from a fresh [`Entropy::os`], never the process-wide source, which a
/// test may have seeded), or set with [`DigestServer::with_key`] so that several
/// servers share nonces, or drawn with [`DigestServer::with_entropy`]. The highest
/// nonce count seen per nonce is kept in a bounded map; a nonce pushed out of it
/// is answered as stale, so replays cannot come back through eviction.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    algorithm: Algorithm,
    lifetime: u64,
    key: Vec<u8>,
    counter: AtomicU64,
    seen: HashMap<String, u32>,
    order: VecDeque<(String, u64)>,
    floor: Option<u64>,
    capacity: usize,
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// Equal strings, in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| {
            acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
        }) == 0
}

impl DigestServer {
    /// A server for `realm`: MD5, nonces valid for 300 s, a random key, and
    /// nonce counts tracked for the 10 000 most recent nonces.
    pub fn new(realm: impl Into<String>) -> DigestServer {
        DigestServer {
            realm: realm.into(),
            algorithm: Algorithm::Md5,
            lifetime: 300,
            key: Entropy::os().secret_key(),
            counter: AtomicU64::new(0),
            seen: HashMap::new(),
            order: VecDeque::new(),
            floor: None,
            capacity: 10_000,
        }
    }

    /// Uses `algorithm` in challenges and requires it in credentials.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> DigestServer {
        self.algorithm = algorithm;
        self
    }

    /// Nonces expire `seconds` after issue.
    pub fn with_nonce_lifetime(mut self, seconds: u64) -> DigestServer {
        self.lifetime = seconds;
        self
    }

    /// Signs nonces with `key` (shared by servers that accept each other's nonces).
    pub fn with_key(mut self, key: &[u8]) -> DigestServer {
        self.key = key.to_vec();
        self
    }

    /// Signs nonces with a new key drawn from `entropy`: with [`Entropy::seeded`] the
    /// nonces of a replayed run are the same (and as guessable as the seed).
    pub fn with_entropy(mut self, entropy: &Entropy) -> DigestServer {
        self.key = entropy.secret_key();
        self
    }

    /// Tracks nonce counts for at most `nonces` nonces (at least 1).
    pub fn with_tracked_nonces(mut self, nonces: usize) -> DigestServer {
        self.capacity = nonces.max(1);
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn mac(&self, ts: &str, ctr: &str) -> String {
        let msg = format!("{ts}:{ctr}:{}", self.realm);
        hex(&hmac_sha256(&self.key, msg.as_bytes())[..MAC / 2])
    }

    fn nonce(&self, now: u64) -> String {
        let ts = format!("{now:016x}");
        let ctr = format!("{:016x}", self.counter.fetch_add(1, Ordering::Relaxed));
        let mac = self.mac(&ts, &ctr);
        format!("{ts}{ctr}{mac}")
    }

    /// The issue time of one of our nonces, or `InvalidNonce`.
    fn nonce_time(&self, nonce: &str) -> Result<u64, AuthFailure> {
        if nonce.len() != TS + CTR + MAC || !nonce.is_ascii() {
            return Err(AuthFailure::InvalidNonce);
        }
        let (ts, rest) = nonce.split_at(TS);
        let (ctr, mac) = rest.split_at(CTR);
        if !same(&self.mac(ts, ctr), mac) {
            return Err(AuthFailure::InvalidNonce);
        }
        u64::from_str_radix(ts, 16).map_err(|_| AuthFailure::InvalidNonce)
    }

    /// A challenge with a fresh nonce issued at `now` (seconds), `qop="auth"`,
    /// the server's algorithm, and `stale=TRUE` when `stale` (the previous nonce
    /// expired: [`AuthFailure::is_stale`]).
    pub fn challenge(&self, stale: bool, now: u64) -> Challenge {
        let mut params = vec![
            (Text::from("realm"), Text::from(quote(&self.realm))),
            (Text::from("nonce"), Text::from(quote(&self.nonce(now)))),
            (Text::from("algorithm"), Text::from(self.algorithm.as_str())),
            (Text::from("qop"), Text::from("\"auth\"")),
        ];
        if stale {
            params.push((Text::from("stale"), Text::from("TRUE")));
        }
        Challenge {
            scheme: Text::from("Digest"),
            params,
        }
    }

    /// The 401 (or, for a proxy, 407) answering `req` with a challenge. The
    /// caller adds the To tag and sends it.
    pub fn challenge_response(
        &self,
        req: &Request,
        proxy: bool,
        stale: bool,
        now: u64,
    ) -> Response {
        let (status, header) = if proxy {
            (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                HeaderName::ProxyAuthenticate,
            )
        } else {
            (StatusCode::UNAUTHORIZED, HeaderName::WwwAuthenticate)
        };
        let mut resp = req.response(status);
        // A challenge we print is a valid header value.
        let _ = resp
            .headers_mut()
            .push(header, self.challenge(stale, now).to_string());
        resp
    }

    /// Verifies the credentials in `req`'s Authorization (or, for a proxy,
    /// Proxy-Authorization) header for this realm; see [`DigestServer::verify`].
    pub fn verify_request<S: Into<Secret>>(
        &mut self,
        req: &Request,
        proxy: bool,
        lookup: impl Fn(&str) -> Option<S>,
        now: u64,
    ) -> Result<(), AuthFailure> {
        let h = req.headers();
        let all = if proxy {
            h.proxy_authorization()
        } else {
            h.authorization()
        }
        .map_err(|_| AuthFailure::Malformed)?;
        let digest: Vec<&Credentials> = all
            .iter()
            .filter(|c| c.scheme.eq_ignore_case("Digest"))
            .collect();
        if digest.is_empty() {
            return Err(AuthFailure::Missing);
        }
        let creds = digest
            .iter()
            .find(|c| c.realm() == Some(self.realm.as_str()))
            .ok_or(AuthFailure::WrongRealm)?;
        self.verify(req, creds, lookup, now)
    }

    /// Verifies `creds` sent with `req` at `now` (seconds): realm, algorithm,
    /// `qop=auth`, our nonce, the response against the password (or HA1) from
    /// `lookup(username)`, then that the nonce has not expired ([`AuthFailure::Stale`]
    /// only with a valid response), and a nonce count above any seen for this
    /// nonce, which is then recorded.
    ///
    /// An unknown user costs the same hashing as a wrong password (it is
    /// checked against a dummy secret) and fails the same way to the client;
    /// [`AuthFailure::UnknownUser`] is for the caller's logs only.
    ///
    /// The `uri` parameter is hashed as sent; it is not compared with the
    /// Request-URI (proxies may rewrite that).
    pub fn verify<S: Into<Secret>>(
        &mut self,
        req: &Request,
        creds: &Credentials,
        lookup: impl Fn(&str) -> Option<S>,
        now: u64,
    ) -> Result<(), AuthFailure> {
        if !creds.scheme.eq_ignore_case("Digest") {
            return Err(AuthFailure::Missing);
        }
        if creds.realm() != Some(self.realm.as_str()) {
            return Err(AuthFailure::WrongRealm);
        }
        let field = |n| creds.param(n).ok_or(AuthFailure::Malformed);
        let (username, nonce, uri, response) = (
            field("username")?,
            field("nonce")?,
            field("uri")?,
            field("response")?,
        );
        if Algorithm::from_name(creds.algorithm()) != Some(self.algorithm) {
            return Err(AuthFailure::Malformed);
        }
        let (qop, nc_str, cnonce) = (field("qop")?, field("nc")?, field("cnonce")?);
        if !qop.eq_ignore_ascii_case("auth") || nc_str.len() != 8 {
            return Err(AuthFailure::Malformed);
        }
        let nc = u32::from_str_radix(nc_str, 16).map_err(|_| AuthFailure::Malformed)?;
        let issued = self.nonce_time(nonce)?;
        // From here on, every outcome costs the same digest work: an unknown
        // user is checked against a dummy secret, so neither the answer nor
        // its timing tells which user names exist (RFC 7616 §5.3 on the
        // secrets; RFC 3261 §26.3.2.4 on probing).
        let found: Option<Secret> = lookup(username).map(Into::into);
        let known = found.is_some();
        let secret = found.unwrap_or_else(|| Secret::Password(DUMMY.to_owned()));
        let expected = self.expected(req, username, &secret, nonce, nc_str, cnonce, uri);
        let matches = same(&expected, response);
        if !known {
            return Err(AuthFailure::UnknownUser);
        }
        if !matches {
            return Err(AuthFailure::BadResponse);
        }
        // RFC 2617 §3.2.1 (kept by RFC 7616 §3.3): `stale` only for a nonce
        // that is too old "but with a valid digest for that nonce", so that
        // a client with the right password retries without asking its user,
        // and a guess with an old nonce is an ordinary failure.
        if issued.saturating_add(self.lifetime) < now {
            return Err(AuthFailure::Stale);
        }
        self.record(nonce, issued, nc, now)
    }

    /// The `response` the client must have sent, from `secret`. A stored HA1
    /// skips the first hash of a password; the same hash is made and thrown
    /// away instead, so both kinds of secret (and the dummy) cost the same.
    #[allow(clippy::too_many_arguments)]
    fn expected(
        &self,
        req: &Request,
        username: &str,
        secret: &Secret,
        nonce: &str,
        nc: &str,
        cnonce: &str,
        uri: &str,
    ) -> String {
        let alg = self.algorithm;
        let base = match secret {
            Secret::Password(p) => alg.hash(format!("{username}:{}:{p}", self.realm).as_bytes()),
            Secret::Ha1(h) => {
                let decoy = alg.hash(format!("{username}:{}:{DUMMY}", self.realm).as_bytes());
                std::hint::black_box(decoy);
                h.clone()
            }
        };
        let ha1 = alg.session_ha1(base, nonce, cnonce);
        alg.response(
            &ha1,
            nonce,
            Some((nc, cnonce, "auth")),
            req.method().as_str(),
            uri,
        )
    }

    /// The user name in `req`'s Digest credentials for this realm (the one
    /// [`DigestServer::verify_request`] checked), if any.
    pub fn username(&self, req: &Request, proxy: bool) -> Option<String> {
        let h = req.headers();
        let all = if proxy {
            h.proxy_authorization()
        } else {
            h.authorization()
        }
        .ok()?;
        all.iter()
            .filter(|c| c.scheme.eq_ignore_case("Digest"))
            .find(|c| c.realm() == Some(self.realm.as_str()))
            .and_then(|c| c.param("username").map(str::to_owned))
    }

    fn record(&mut self, nonce: &str, issued: u64, nc: u32, now: u64) -> Result<(), AuthFailure> {
        if let Some(highest) = self.seen.get_mut(nonce) {
            if nc <= *highest {
                return Err(AuthFailure::Replayed);
            }
            *highest = nc;
            return Ok(());
        }
        if self.floor.is_some_and(|f| issued <= f) {
            // Its count may have been forgotten: make the client take a new nonce.
            return Err(AuthFailure::Stale);
        }
        // Forget expired nonces (they fail the expiry check anyway), then the
        // oldest beyond capacity, raising the floor past them.
        while self
            .order
            .front()
            .is_some_and(|(_, t)| t.saturating_add(self.lifetime) < now)
        {
            if let Some((n, _)) = self.order.pop_front() {
                self.seen.remove(&n);
            }
        }
        while self.order.len() >= self.capacity {
            if let Some((n, t)) = self.order.pop_front() {
                self.seen.remove(&n);
                self.floor = Some(self.floor.map_or(t, |f| f.max(t)));
            }
        }
        self.seen.insert(nonce.to_owned(), nc);
        self.order.push_back((nonce.to_owned(), issued));
        Ok(())
    }
}
