//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616,
//! RFC 8760): `qop=auth`, MD5, MD5-sess, SHA-256 and SHA-256-sess, nonce counts.
//!
//! - Client side: [`DigestClient`] answers a [`Challenge`] with
//!   [`Credentials`], counting `nc` per nonce; [`authorize`] adds them to a
//!   request being re-sent after a 401/407.
//! - Server side: [`DigestServer`] issues stateless nonces (a timestamp and a
//!   counter signed with a per-server key) and verifies credentials, rejecting
//!   expired nonces (stale), wrong responses and replayed nonce counts. An
//!   unknown user costs the same work and gets the same answer as a wrong
//!   password.
//! - [`Throttle`] counts failures per source address and refuses a source
//!   that fails too often.
//!
//! Sans-IO: the current time is an argument (`now`, seconds since any fixed
//! epoch the caller keeps, normally the UNIX epoch); nothing here reads a clock.
//!
//! [`Challenge`]: crate::message::Challenge
//! [`Credentials`]: crate::message::Credentials

mod client;
mod server;
mod throttle;

pub use client::{DigestClient, authorize, credentials};
pub use server::{AuthFailure, DigestServer, Secret};
pub use throttle::Throttle;

use md5::Md5;
use sha2::{Digest, Sha256};
use std::fmt;

/// A digest algorithm (RFC 7616 §3.2, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5` (the default when a challenge names none).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The algorithm named `name` (case-insensitive), if supported.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// The name as it goes in `algorithm=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// True for the `-sess` variants (HA1 bound to nonce and cnonce).
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Preference when a response offers several challenges: SHA-256 first
    /// (RFC 8760 §2.4 asks clients to use the strongest they support).
    fn strength(self) -> u8 {
        match self {
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
        }
    }

    /// `H(data)`, lower-case hex.
    pub fn hash(self, data: &[u8]) -> String {
        #[cfg(test)]
        tests::HASHES.with(|n| n.set(n.get() + 1));
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
        }
    }

    /// HA1 (RFC 7616 §3.4.2): `H(username:realm:password)`, and for the
    /// `-sess` variants `H(H(username:realm:password):nonce:cnonce)`.
    pub fn ha1(
        self,
        username: &str,
        realm: &str,
        password: &str,
        nonce: &str,
        cnonce: &str,
    ) -> String {
        let base = self.hash(format!("{username}:{realm}:{password}").as_bytes());
        self.session_ha1(base, nonce, cnonce)
    }

    /// HA1 from a stored `H(username:realm:password)`: unchanged, or bound to
    /// the nonces for the `-sess` variants.
    pub fn session_ha1(self, stored: String, nonce: &str, cnonce: &str) -> String {
        if self.is_session() {
            self.hash(format!("{stored}:{nonce}:{cnonce}").as_bytes())
        } else {
            stored
        }
    }

    /// The `response` value (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1): with qop,
    /// `KD(HA1, nonce:nc:cnonce:qop:HA2)`; without (RFC 2069),
    /// `KD(HA1, nonce:HA2)`; HA2 = `H(method:uri)`.
    pub fn response(
        self,
        ha1: &str,
        nonce: &str,
        qop: Option<(&str, &str, &str)>,
        method: &str,
        uri: &str,
    ) -> String {
        let ha2 = self.hash(format!("{method}:{uri}").as_bytes());
        let data = match qop {
            Some((nc, cnonce, qop)) => format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"),
            None => format!("{ha1}:{nonce}:{ha2}"),
        };
        self.hash(data.as_bytes())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client could not answer a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The response is not a 401 or 407.
    #[error("not a 401 or 407 response")]
    NotAChallenge,
    /// The 401/407 has no challenge this client can answer (scheme other than
    /// Digest, unknown algorithm, only `auth-int`), or its headers are malformed.
    #[error("no usable Digest challenge")]
    NoUsableChallenge,
    /// The challenge lacks `realm` or `nonce`.
    #[error("challenge without {0}")]
    MissingParam(&'static str),
    /// The request has no CSeq to advance.
    #[error("request without CSeq")]
    NoCSeq,
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// `"value"` with `"` and `\` escaped (RFC 3261 quoted-string).
pub(crate) fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests;
