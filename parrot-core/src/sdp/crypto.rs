//! SDES key exchange: the `a=crypto` attribute (RFC 4568 §9.1) for `RTP/SAVP` media.
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> inline:<base64(key || salt)>[|<lifetime>][|<MKI>:<length>][;inline:…] [<session-param>…]
//! ```
//!
//! [`CryptoAttribute`] parses the attribute value (what follows `crypto:`) with
//! [`str::parse`] and serializes it with `Display`; [`CryptoAttribute::new`] builds the one an
//! offer carries for a fresh master key, and [`CryptoAttribute::master_key_salt`] splits an
//! inline key for [`SrtpContext::new`](crate::rtp::srtp::SrtpContext::new).
//!
//! ```
//! use parrot_core::rtp::srtp::SrtpProfile;
//! use parrot_core::sdp::CryptoAttribute;
//!
//! let offer: CryptoAttribute =
//!     "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
//!         .parse()?;
//! assert_eq!(offer.tag, 1);
//! assert_eq!(offer.profile(), Some(SrtpProfile::AesCm128HmacSha1_80));
//! let (key, salt) = offer.master_key_salt().expect("a 30-byte inline key");
//! assert_eq!((key.len(), salt.len()), (16, 14));
//! assert_eq!(
//!     offer.to_string(),
//!     "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
//! );
//! # Ok::<(), parrot_core::sdp::CryptoError>(())
//! ```

use super::{Attribute, MediaDescription};
use crate::rtp::srtp::SrtpProfile;
use std::fmt;
use std::str::FromStr;

/// Why an `a=crypto` value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The tag is not 1 to 9 decimal digits (§9.1).
    #[error("crypto tag is not 1 to 9 digits")]
    BadTag,
    /// The crypto-suite is missing.
    #[error("crypto-suite missing")]
    MissingSuite,
    /// The key parameters are missing.
    #[error("key parameters missing")]
    MissingKeyParams,
    /// A key method other than `inline` (the only one RFC 4568 defines).
    #[error("unsupported key method {0:?}")]
    KeyMethod(String),
    /// The key-salt is not base64.
    #[error("key-salt is not valid base64")]
    Base64,
    /// The lifetime is not a decimal number or `2^` and a power below 64.
    #[error("malformed key lifetime")]
    BadLifetime,
    /// The MKI is not `<decimal value>:<length 1..=128>`.
    #[error("malformed MKI")]
    BadMki,
}

/// One `a=crypto` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag that the answer echoes to pick this line (§6.1).
    pub tag: u32,
    /// The crypto-suite name, as written (see [`CryptoAttribute::profile`]).
    pub suite: String,
    /// The key parameters, one or more `inline:` keys.
    pub key_params: Vec<KeyParam>,
    /// Session parameters (`KDR=`, `UNENCRYPTED_SRTP`, …), kept as written.
    pub session_params: Vec<String>,
}

/// One `inline:` key parameter (§6.1, §9.1).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// The master key followed by the master salt.
    pub key_salt: Vec<u8>,
    /// The master key lifetime, in packets.
    pub lifetime: Option<KeyLifetime>,
    /// The master key identifier and its length in bytes on the wire.
    pub mki: Option<Mki>,
}

impl fmt::Debug for KeyParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("KeyParam")
            .field("key_salt", &format_args!("[{} bytes]", self.key_salt.len()))
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

/// A master key lifetime, kept in the form it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLifetime {
    /// `2^n` packets.
    PowerOfTwo(u8),
    /// A decimal number of packets.
    Packets(u64),
}

impl KeyLifetime {
    /// The lifetime in packets.
    pub fn packets(self) -> u64 {
        match self {
            KeyLifetime::PowerOfTwo(n) => 1u64 << n,
            KeyLifetime::Packets(n) => n,
        }
    }
}

/// A master key identifier (`<value>:<length>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    /// The MKI value.
    pub value: u64,
    /// Its length in bytes in each SRTP packet (1..=128).
    pub length: u8,
}

impl CryptoAttribute {
    /// The attribute for `profile` with an inline master key and salt, no lifetime or MKI.
    pub fn new(tag: u32, profile: SrtpProfile, master_key: &[u8], master_salt: &[u8]) -> Self {
        let mut key_salt = Vec::with_capacity(master_key.len() + master_salt.len());
        key_salt.extend_from_slice(master_key);
        key_salt.extend_from_slice(master_salt);
        CryptoAttribute {
            tag,
            suite: profile.sdes_name().to_owned(),
            key_params: vec![KeyParam {
                key_salt,
                lifetime: None,
                mki: None,
            }],
            session_params: Vec::new(),
        }
    }

    /// The SRTP profile of the crypto-suite, if supported.
    pub fn profile(&self) -> Option<SrtpProfile> {
        SrtpProfile::from_sdes_name(&self.suite)
    }

    /// The master key and salt of the first key parameter, split at the profile's key length;
    /// `None` for an unsupported suite or a key-salt of the wrong length.
    pub fn master_key_salt(&self) -> Option<(&[u8], &[u8])> {
        let profile = self.profile()?;
        let key_salt = &self.key_params.first()?.key_salt;
        (key_salt.len() == profile.key_len() + profile.salt_len())
            .then(|| key_salt.split_at(profile.key_len()))
    }

    /// As an SDP attribute (`crypto:…`, written out as an `a=` line).
    pub fn to_attribute(&self) -> Attribute {
        Attribute::value("crypto", self.to_string())
    }
}

/// Session parameters an [`SrtpContext`](crate::rtp::srtp::SrtpContext) can honour: a key
/// derivation rate of 0 and a window size hint (our window is 128 in any case).
fn session_param_supported(param: &str) -> bool {
    param == "KDR=0" || param.starts_with("WSH=")
}

impl CryptoAttribute {
    /// Whether an [`SrtpContext`](crate::rtp::srtp::SrtpContext) can run this line: a known
    /// suite, one inline key of the right length without an MKI (MKIs are not supported), and
    /// no session parameter but `KDR=0` or `WSH=`.
    pub fn is_supported(&self) -> bool {
        self.key_params.len() == 1
            && self.key_params.iter().all(|k| k.mki.is_none())
            && self.master_key_salt().is_some()
            && self
                .session_params
                .iter()
                .all(|p| session_param_supported(p))
    }

    /// The answer to this offered line (RFC 4568 §7.1.2): the same tag and suite with the
    /// answerer's own master key and salt. `None` if the key or salt length does not fit the
    /// suite or the suite is unknown. The key must come from a cryptographic random source.
    pub fn answer(&self, master_key: &[u8], master_salt: &[u8]) -> Option<CryptoAttribute> {
        let profile = self.profile()?;
        (master_key.len() == profile.key_len() && master_salt.len() == profile.salt_len())
            .then(|| CryptoAttribute::new(self.tag, profile, master_key, master_salt))
    }
}

/// The answerer's pick among offered `a=crypto` lines (RFC 4568 §7.1.2): the strongest
/// [supported](CryptoAttribute::is_supported) one whose profile is in `accept` (strength as in
/// [`SrtpProfile::ALL`]: AES-GCM, then the 80-bit tag, then the 32-bit tag), the offerer's
/// first among equals. RFC 4568 leaves the choice to the answerer; the offerer's order is a
/// preference (§7.1.1), and a peer that lists a weaker suite first (baresip: `_80` only, but
/// others list `_32` first to save bytes) does not get it over a stronger one it also offered.
pub fn choose_offered<'a>(
    offered: impl IntoIterator<Item = &'a CryptoAttribute>,
    accept: &[SrtpProfile],
) -> Option<&'a CryptoAttribute> {
    offered
        .into_iter()
        .filter(|c| c.is_supported() && c.profile().is_some_and(|p| accept.contains(&p)))
        .min_by_key(|c| {
            c.profile()
                .and_then(|p| SrtpProfile::ALL.iter().position(|a| *a == p))
        })
}

/// The offerer's check of an answer (RFC 4568 §7.1.3/§7.5): the offered line with the
/// answer's tag, if the answer kept its suite and is itself supported.
pub fn accepted_offer<'a>(
    offered: impl IntoIterator<Item = &'a CryptoAttribute>,
    answer: &CryptoAttribute,
) -> Option<&'a CryptoAttribute> {
    if !answer.is_supported() {
        return None;
    }
    offered
        .into_iter()
        .find(|c| c.tag == answer.tag && c.suite == answer.suite)
}

impl MediaDescription {
    /// The `a=crypto` attributes of this media description, in order, each parsed.
    pub fn crypto_attributes(&self) -> impl Iterator<Item = Result<CryptoAttribute, CryptoError>> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("crypto"))
            .map(|a| a.value.as_deref().unwrap_or("").parse())
    }
}

impl FromStr for CryptoAttribute {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, CryptoError> {
        let mut fields = s.split([' ', '\t']).filter(|f| !f.is_empty());
        let tag = fields.next().ok_or(CryptoError::BadTag)?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CryptoError::BadTag);
        }
        let tag = tag.parse().map_err(|_| CryptoError::BadTag)?;
        let suite = fields.next().ok_or(CryptoError::MissingSuite)?.to_owned();
        let key_params = fields
            .next()
            .ok_or(CryptoError::MissingKeyParams)?
            .split(';')
            .map(parse_key_param)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CryptoAttribute {
            tag,
            suite,
            key_params,
            session_params: fields.map(str::to_owned).collect(),
        })
    }
}

fn parse_key_param(s: &str) -> Result<KeyParam, CryptoError> {
    let (method, info) = s.split_once(':').ok_or(CryptoError::MissingKeyParams)?;
    if !method.eq_ignore_ascii_case("inline") {
        return Err(CryptoError::KeyMethod(method.to_owned()));
    }
    let mut parts = info.split('|');
    let key_salt = base64_decode(parts.next().unwrap_or("")).ok_or(CryptoError::Base64)?;
    if key_salt.is_empty() {
        return Err(CryptoError::Base64);
    }
    let mut param = KeyParam {
        key_salt,
        lifetime: None,
        mki: None,
    };
    for part in parts {
        // The lifetime, if present, comes first; an MKI has a colon (§9.1).
        if let Some((value, length)) = part.split_once(':') {
            if param.mki.is_some() {
                return Err(CryptoError::BadMki);
            }
            let value = decimal(value).ok_or(CryptoError::BadMki)?;
            let length = decimal(length)
                .and_then(|l| u8::try_from(l).ok())
                .filter(|l| (1..=128).contains(l))
                .ok_or(CryptoError::BadMki)?;
            param.mki = Some(Mki { value, length });
        } else {
            if param.lifetime.is_some() || param.mki.is_some() {
                return Err(CryptoError::BadLifetime);
            }
            let lifetime = match part.strip_prefix("2^") {
                Some(power) => KeyLifetime::PowerOfTwo(
                    decimal(power)
                        .and_then(|p| u8::try_from(p).ok())
                        .filter(|p| *p < 64)
                        .ok_or(CryptoError::BadLifetime)?,
                ),
                None => KeyLifetime::Packets(decimal(part).ok_or(CryptoError::BadLifetime)?),
            };
            param.lifetime = Some(lifetime);
        }
    }
    Ok(param)
}

fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.tag, self.suite)?;
        for (i, param) in self.key_params.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "inline:{}", base64_encode(&param.key_salt))?;
            match param.lifetime {
                Some(KeyLifetime::PowerOfTwo(n)) => write!(f, "|2^{n}")?,
                Some(KeyLifetime::Packets(n)) => write!(f, "|{n}")?,
                None => {}
            }
            if let Some(mki) = param.mki {
                write!(f, "|{}:{}", mki.value, mki.length)?;
            }
        }
        for p in &self.session_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 with padding (RFC 4648 §4), as RFC 4568 §6.1 requires.
fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict base64 decoding: the standard alphabet, padding to a multiple of four (a key-salt
/// without its padding is accepted too, as some implementations send it), no other bytes.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    let body = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    if s.len() != body.len() && s.len() % 4 != 0 {
        return None;
    }
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero (canonical encoding).
    (acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        for bad in ["Zm9vY", "Zm9v!A==", "Zh==", "Zg=", "Z==="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn parses_and_serializes_every_form() {
        for line in [
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
            "2 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "3 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1048576",
            "4 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|7:4;inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31|8:4 KDR=0 UNENCRYPTED_SRTCP",
        ] {
            let c: CryptoAttribute = line.parse().unwrap();
            assert_eq!(c.to_string(), line);
        }
        let c: CryptoAttribute =
            "4 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|7:4;inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31|8:4 KDR=0"
                .parse()
                .unwrap();
        assert_eq!(c.key_params.len(), 2);
        assert_eq!(
            c.key_params[0].mki,
            Some(Mki {
                value: 7,
                length: 4
            })
        );
        assert_eq!(c.key_params[0].lifetime, None);
        assert_eq!(
            c.key_params[1].lifetime.map(KeyLifetime::packets),
            Some(1 << 31)
        );
        assert_eq!(c.session_params, ["KDR=0"]);
        assert!(!format!("{c:?}").contains("PS1u"));
    }

    #[test]
    fn builds_the_offer_line_and_splits_keys() {
        let key = [0x11u8; 16];
        let salt = [0x22u8; 12];
        let c = CryptoAttribute::new(1, SrtpProfile::AeadAes128Gcm, &key, &salt);
        let line = c.to_string();
        // 28 bytes: 40 base64 characters ending in one '='.
        assert!(line.starts_with("1 AEAD_AES_128_GCM inline:"), "{line}");
        assert!(line.ends_with('=') && line.len() == "1 AEAD_AES_128_GCM inline:".len() + 40);
        let back: CryptoAttribute = line.parse().unwrap();
        assert_eq!(back, c);
        assert_eq!(back.master_key_salt(), Some((&key[..], &salt[..])));
        assert_eq!(c.to_attribute().to_string(), format!("crypto:{line}"));
        // A key-salt of the wrong length for its suite gives no keys.
        let wrong = CryptoAttribute::new(1, SrtpProfile::AesCm128HmacSha1_80, &key, &salt);
        assert_eq!(wrong.master_key_salt(), None);
        let unknown: CryptoAttribute =
            "9 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
                .parse()
                .unwrap();
        assert_eq!(unknown.profile(), None);
    }

    #[test]
    fn rejects_malformed_values() {
        let cases = [
            ("", CryptoError::BadTag),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", CryptoError::BadTag),
            (
                "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                CryptoError::BadTag,
            ),
            ("1", CryptoError::MissingSuite),
            ("1 AES_CM_128_HMAC_SHA1_80", CryptoError::MissingKeyParams),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:http://x",
                CryptoError::KeyMethod("uri".into()),
            ),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:A*AA", CryptoError::Base64),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:", CryptoError::Base64),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^64",
                CryptoError::BadLifetime,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:2|2^20",
                CryptoError::BadLifetime,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0",
                CryptoError::BadMki,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:129",
                CryptoError::BadMki,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|x:4",
                CryptoError::BadMki,
            ),
        ];
        for (value, error) in cases {
            assert_eq!(value.parse::<CryptoAttribute>(), Err(error), "{value}");
        }
    }

    #[test]
    fn keys_from_the_line_drive_srtp() {
        use crate::rtp::srtp::SrtpContext;
        let offer: CryptoAttribute =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
                .parse()
                .unwrap();
        let profile = offer.profile().unwrap();
        let (key, salt) = offer.master_key_salt().unwrap();
        let mut tx = SrtpContext::new(profile, key, salt).unwrap();
        let mut rx = SrtpContext::new(profile, key, salt).unwrap();
        let rtp = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3];
        assert_eq!(
            rx.unprotect_rtp(&tx.protect_rtp(&rtp).unwrap()).unwrap(),
            rtp
        );
    }

    #[test]
    fn answerer_picks_and_offerer_matches() {
        let key_salt = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let offered: Vec<CryptoAttribute> = [
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{key_salt}{key_salt}"),
            format!("2 AES_CM_128_HMAC_SHA1_80 inline:{key_salt}|1:4"),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{key_salt} UNENCRYPTED_SRTP"),
            format!("4 AES_CM_128_HMAC_SHA1_32 inline:{key_salt}|2^31 KDR=0"),
            format!("5 AES_CM_128_HMAC_SHA1_80 inline:{key_salt}"),
        ]
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
        let all = SrtpProfile::ALL;
        // Tag 4 (`_32`) is the first supported line, tag 5 (`_80`) the strongest.
        assert_eq!(choose_offered(&offered, &all).map(|c| c.tag), Some(5));
        assert_eq!(
            choose_offered(&offered, &[SrtpProfile::AesCm128HmacSha1_32]).map(|c| c.tag),
            Some(4)
        );
        let only_80 = [SrtpProfile::AesCm128HmacSha1_80];
        let chosen = choose_offered(&offered, &only_80).unwrap();
        assert_eq!(chosen.tag, 5);
        assert_eq!(
            choose_offered(&offered, &[SrtpProfile::AeadAes128Gcm]),
            None
        );

        let answer = chosen.answer(&[3; 16], &[4; 14]).unwrap();
        assert_eq!(answer.tag, 5);
        assert_eq!(answer.suite, "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(
            answer.master_key_salt(),
            Some((&[3u8; 16][..], &[4u8; 14][..]))
        );
        assert_eq!(chosen.answer(&[3; 16], &[4; 12]), None);
        assert_eq!(accepted_offer(&offered, &answer).map(|c| c.tag), Some(5));
        let mut changed_suite = answer.clone();
        changed_suite.suite = "AES_CM_128_HMAC_SHA1_32".into();
        assert_eq!(accepted_offer(&offered, &changed_suite), None);
        let mut unknown_tag = answer;
        unknown_tag.tag = 9;
        assert_eq!(accepted_offer(&offered, &unknown_tag), None);
    }

    #[test]
    fn media_crypto_attributes() {
        let sdp: super::super::SessionDescription = "v=0\r\n\
            o=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
            m=audio 49170 RTP/SAVP 0\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
            .parse()
            .unwrap();
        let cryptos: Vec<_> = sdp.media[0]
            .crypto_attributes()
            .map(Result::unwrap)
            .collect();
        assert_eq!(cryptos.len(), 2);
        assert_eq!(cryptos[1].profile(), Some(SrtpProfile::AesCm128HmacSha1_32));
    }
}
