//! The client side: answering challenges.

use super::{Algorithm, AuthError, quote};
use crate::entropy::{self, Entropy};
use crate::message::{
    Challenge, Credentials, HeaderName, Method, Request, Response, StatusCode, Text,
};

/// How many nonces a [`DigestClient`] keeps counting (the most recent ones).
const TRACKED_NONCES: usize = 16;

/// The qop a client uses with this challenge: `Ok(Some("auth"))` when offered,
/// `Ok(None)` when the challenge has no qop (RFC 2069), an error when only
/// options we do not do (`auth-int`) are offered.
fn choose_qop(challenge: &Challenge) -> Result<Option<&'static str>, AuthError> {
    match challenge.param("qop") {
        None => Ok(None),
        Some(list)
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
        {
            Ok(Some("auth"))
        }
        Some(_) => Err(AuthError::NoUsableChallenge),
    }
}

fn usable(challenge: &Challenge) -> Option<Algorithm> {
    if !challenge.scheme.eq_ignore_case("Digest") || choose_qop(challenge).is_err() {
        return None;
    }
    Algorithm::from_name(challenge.algorithm())
}

/// Credentials answering `challenge` for a request `method` to `uri` (the
/// Request-URI as it will be sent), with the given client nonce and nonce count.
/// Pure: [`DigestClient`] supplies the cnonce and counts.
///
/// The response is computed per RFC 2617/7616 with the challenge's algorithm;
/// with `qop=auth` the credentials carry `qop`, `nc` (8 hex digits) and
/// `cnonce`; without qop in the challenge (RFC 2069) none of them (except the
/// cnonce, needed by the `-sess` algorithms). `opaque` is echoed.
pub fn credentials(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &Method,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, AuthError> {
    if !challenge.scheme.eq_ignore_case("Digest") {
        return Err(AuthError::NoUsableChallenge);
    }
    let alg = Algorithm::from_name(challenge.algorithm()).ok_or(AuthError::NoUsableChallenge)?;
    let realm = challenge.realm().ok_or(AuthError::MissingParam("realm"))?;
    let nonce = challenge.nonce().ok_or(AuthError::MissingParam("nonce"))?;
    let qop = choose_qop(challenge)?;
    let nc = format!("{nc:08x}");
    let ha1 = alg.ha1(username, realm, password, nonce, cnonce);
    let response = alg.response(
        &ha1,
        nonce,
        qop.map(|q| (nc.as_str(), cnonce, q)),
        method.as_str(),
        uri,
    );
    let mut params: Vec<(Text, Text)> = vec![
        (Text::from("username"), Text::from(quote(username))),
        (Text::from("realm"), Text::from(quote(realm))),
        (Text::from("nonce"), Text::from(quote(nonce))),
        (Text::from("uri"), Text::from(quote(uri))),
        (Text::from("response"), Text::from(quote(&response))),
        (Text::from("algorithm"), Text::from(alg.as_str())),
    ];
    if qop.is_some() || alg.is_session() {
        params.push((Text::from("cnonce"), Text::from(quote(cnonce))));
    }
    if let Some(opaque) = challenge.param("opaque") {
        params.push((Text::from("opaque"), Text::from(quote(opaque))));
    }
    if let Some(q) = qop {
        params.push((Text::from("qop"), Text::from(q)));
        params.push((Text::from("nc"), Text::from(nc)));
    }
    Ok(Credentials {
        scheme: Text::from("Digest"),
        params,
    })
}

/// A user's digest credentials, with the nonce counts of the nonces it has
/// answered (a nonce may be reused for later requests, each with the next
/// `nc`, RFC 7616 §3.4).
#[derive(Debug, Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    /// (nonce, last nc used), most recent last.
    counts: Vec<(String, u32)>,
    /// The last challenge answered, for [`DigestClient::preemptive`].
    last: Option<Challenge>,
    /// Where cnonces come from.
    entropy: Entropy,
}

impl DigestClient {
    /// A client for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> DigestClient {
        DigestClient {
            username: username.into(),
            password: password.into(),
            counts: Vec::new(),
            last: None,
            entropy: entropy::global().clone(),
        }
    }

    /// Draws cnonces from `entropy` instead of the process-wide source (a seeded one
    /// makes the credentials of a replayed run the same).
    pub fn with_entropy(mut self, entropy: Entropy) -> DigestClient {
        self.entropy = entropy;
        self
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The next nonce count for `nonce` (1 for a new nonce).
    fn next_nc(&mut self, nonce: &str) -> u32 {
        match self.counts.iter().position(|(n, _)| n == nonce) {
            Some(i) => {
                let (n, c) = self.counts.remove(i);
                let nc = c.saturating_add(1);
                self.counts.push((n, nc));
                nc
            }
            None => {
                if self.counts.len() >= TRACKED_NONCES {
                    self.counts.remove(0);
                }
                self.counts.push((nonce.to_owned(), 1));
                1
            }
        }
    }

    /// Credentials answering `challenge` for `method` to `uri`, with a fresh
    /// cnonce and the next nonce count for the challenge's nonce.
    pub fn respond(
        &mut self,
        challenge: &Challenge,
        method: &Method,
        uri: &str,
    ) -> Result<Credentials, AuthError> {
        let nonce = challenge.nonce().ok_or(AuthError::MissingParam("nonce"))?;
        let nc = self.next_nc(nonce);
        let cnonce = self.entropy.cnonce();
        let creds = credentials(
            challenge,
            &self.username,
            &self.password,
            method,
            uri,
            &cnonce,
            nc,
        )?;
        self.last = Some(challenge.clone());
        Ok(creds)
    }

    /// Credentials for a new request from the last challenge answered, reusing
    /// its nonce with the next count (pre-emptive authentication). `None` if no
    /// challenge was answered yet.
    pub fn preemptive(&mut self, method: &Method, uri: &str) -> Option<Credentials> {
        let challenge = self.last.clone()?;
        self.respond(&challenge, method, uri).ok()
    }
}

/// The best challenge per realm: SHA-256 over MD5, the first on a tie.
fn best_per_realm(challenges: &[Challenge]) -> Vec<(&Challenge, Algorithm)> {
    let mut best: Vec<(&Challenge, Algorithm)> = Vec::new();
    for c in challenges {
        let Some(alg) = usable(c) else { continue };
        match best.iter_mut().find(|(b, _)| b.realm() == c.realm()) {
            Some(slot) if alg.strength() > slot.1.strength() => *slot = (c, alg),
            Some(_) => {}
            None => best.push((c, alg)),
        }
    }
    best
}

/// Prepares `request` to be re-sent after the 401 or 407 `response`: adds
/// Authorization (for a 401's WWW-Authenticate) or Proxy-Authorization (for a
/// 407's Proxy-Authenticate) for each realm challenged, replacing earlier
/// credentials for the same realm, and advances the CSeq by one (RFC 3261
/// §22.2, §8.1.3.5).
///
/// The re-sent request is a new transaction: the caller must give it a new Via
/// branch ([`crate::dialog::new_branch`]); the Via is not touched here.
pub fn authorize(
    request: &mut Request,
    response: &Response,
    client: &mut DigestClient,
) -> Result<(), AuthError> {
    let rh = response.headers();
    let (challenges, header) = match response.status() {
        StatusCode::UNAUTHORIZED => (rh.www_authenticate(), HeaderName::Authorization),
        StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
            (rh.proxy_authenticate(), HeaderName::ProxyAuthorization)
        }
        _ => return Err(AuthError::NotAChallenge),
    };
    let challenges = challenges.map_err(|_| AuthError::NoUsableChallenge)?;
    let chosen = best_per_realm(&challenges);
    if chosen.is_empty() {
        return Err(AuthError::NoUsableChallenge);
    }
    let cseq = request.headers().cseq().cloned().ok_or(AuthError::NoCSeq)?;
    let uri = request.uri().to_string();
    let method = request.method().clone();
    let mut fresh = Vec::with_capacity(chosen.len());
    for (c, _) in &chosen {
        fresh.push(client.respond(c, &method, &uri)?);
    }
    let h = request.headers_mut();
    let existing = if header == HeaderName::Authorization {
        h.authorization()
    } else {
        h.proxy_authorization()
    }
    .unwrap_or_default();
    let kept = existing
        .into_iter()
        .filter(|e| !fresh.iter().any(|f| f.realm() == e.realm()))
        .collect::<Vec<_>>();
    h.remove(&header);
    // Credentials we print (or parsed ones re-printed) are valid header values.
    for c in kept.into_iter().chain(fresh) {
        let _ = h.push(header.clone(), c.to_string());
    }
    let _ = h.set(
        HeaderName::CSeq,
        format!("{} {}", cseq.seq.wrapping_add(1), cseq.method),
    );
    Ok(())
}
