//! SRTP and SRTCP (RFC 3711) with the AES-GCM transforms of RFC 7714, sans-IO.
//!
//! One [`SrtpContext`] protects or unprotects one direction of one RTP session (and its
//! RTCP): build one from the [`SrtpProfile`] and the master key and salt that SDES
//! (`a=crypto`, RFC 4568) or DTLS-SRTP agreed for that direction. It derives the session keys
//! (RFC 3711 §4.3, key derivation rate 0), keeps the rollover counter and the replay window,
//! and turns whole datagrams into whole datagrams. It never reads a clock or touches a socket.
//!
//! Supported profiles: `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32` (RFC 4568 §6.2;
//! SRTCP keeps its 80-bit tag) and `AEAD_AES_128_GCM` (RFC 7714). MKIs and key derivation
//! rates other than 0 are not supported.
//!
//! # Wiring
//!
//! A call has two contexts: the outbound one built from the key we offered or answered in
//! our `a=crypto`, the inbound one from the peer's. On send, call
//! [`SrtpContext::protect_rtp`] on the datagram [`RtpSession`](super::RtpSession) built (and
//! [`SrtpContext::protect_rtcp`] on each RTCP compound packet) just before the socket write;
//! on receive, call [`SrtpContext::unprotect_rtp`] / [`SrtpContext::unprotect_rtcp`] on the
//! datagram right after the socket read and before `RtpSession` parses it. A datagram that
//! fails to unprotect is dropped (count it, do not answer it). RTP and RTCP share the
//! context when they are multiplexed (RFC 5761): tell them apart by the payload type first.
//!
//! ```
//! use parrot_core::rtp::srtp::{SrtpContext, SrtpProfile};
//!
//! let key = [7u8; 16];
//! let salt = [9u8; 14];
//! let mut alice = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key, &salt)?;
//! let mut bob = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key, &salt)?;
//!
//! let mut rtp = vec![0x80, 0x00, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
//! rtp.extend_from_slice(&[0xff; 160]);
//! let srtp = alice.protect_rtp(&rtp)?;
//! assert_eq!(srtp.len(), rtp.len() + 10);
//! assert_eq!(bob.unprotect_rtp(&srtp)?, rtp);
//! // The same datagram again is a replay.
//! assert!(bob.unprotect_rtp(&srtp).is_err());
//! # Ok::<(), parrot_core::rtp::srtp::SrtpError>(())
//! ```

use aes::Aes128;
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::AeadInOut;
use ctr::Ctr128BE;
use ctr::cipher::{InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::fmt;

/// An SRTP protection profile (crypto-suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpProfile {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711, RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag on SRTP and an 80-bit tag on SRTCP
    /// (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-128 in Galois/counter mode with a 128-bit tag (RFC 7714).
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// Every supported profile, strongest first (the order to offer them in).
    pub const ALL: [SrtpProfile; 3] = [
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
    ];

    /// The crypto-suite name of SDES `a=crypto` (RFC 4568 §6.2, RFC 7714 §12).
    pub const fn sdes_name(self) -> &'static str {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The profile of an SDES crypto-suite name (case-sensitive, as RFC 4568 §9 spells them).
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.sdes_name() == name)
    }

    /// Master (and session) encryption key length in bytes.
    pub const fn key_len(self) -> usize {
        16
    }

    /// Master (and session) salt length in bytes: 14 for AES-CM, 12 for AES-GCM.
    pub const fn salt_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Session authentication key length in bytes (0 for AEAD, whose tag is GCM's own).
    pub const fn auth_key_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => 0,
            _ => 20,
        }
    }

    /// Authentication tag length on SRTP packets, in bytes.
    pub const fn rtp_tag_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 10,
            SrtpProfile::AesCm128HmacSha1_32 => 4,
            SrtpProfile::AeadAes128Gcm => 16,
        }
    }

    /// Authentication tag length on SRTCP packets, in bytes.
    pub const fn rtcp_tag_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => 16,
            _ => 10,
        }
    }

    fn is_aead(self) -> bool {
        matches!(self, SrtpProfile::AeadAes128Gcm)
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdes_name())
    }
}

/// Why a packet could not be protected or unprotected, or a context not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// The master key or salt has the wrong length for the profile.
    #[error("{profile} needs a {need}-byte master {what}, got {got}")]
    KeyLength {
        /// The profile.
        profile: SrtpProfile,
        /// `"key"` or `"salt"`.
        what: &'static str,
        /// The length the profile needs.
        need: usize,
        /// The length given.
        got: usize,
    },
    /// The datagram is shorter than its headers (and tag) say it must be.
    #[error("packet of {len} bytes is too short (needs {need})")]
    TooShort {
        /// The datagram length.
        len: usize,
        /// The minimum length.
        need: usize,
    },
    /// The first two bits are not RTP version 2.
    #[error("not an RTP/RTCP version 2 packet")]
    Version,
    /// The authentication tag (or the AEAD tag) does not match: tampered, or the wrong key.
    #[error("authentication failed")]
    Authentication,
    /// The packet index was already received (RFC 3711 §3.3.2).
    #[error("replayed packet (index {index})")]
    Replayed {
        /// The packet index (SRTP: 48 bits; SRTCP: 31 bits).
        index: u64,
    },
    /// The packet index is older than the replay window (RFC 3711 §3.3.2).
    #[error("packet index {index} is older than the replay window (newest {newest})")]
    TooOld {
        /// The packet index.
        index: u64,
        /// The newest index received.
        newest: u64,
    },
    /// The buffer given to an `_in_place` call has no room for what it must hold.
    #[error("buffer of {have} bytes is too small (needs {need})")]
    BufferTooSmall {
        /// The bytes needed.
        need: usize,
        /// The buffer's length.
        have: usize,
    },
    /// The key has protected 2^48 SRTP or 2^31 SRTCP packets and must be replaced (§9.2).
    #[error("the session key is exhausted; rekey")]
    KeyExhausted,
}

/// Key derivation labels (RFC 3711 §4.3.2).
const LABEL_RTP_ENCRYPTION: u8 = 0x00;
const LABEL_RTP_AUTH: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_ENCRYPTION: u8 = 0x03;
const LABEL_RTCP_AUTH: u8 = 0x04;
const LABEL_RTCP_SALT: u8 = 0x05;

/// The most an SRTP packet adds to its RTP packet: the longest tag (AES-GCM's 16 bytes).
pub const SRTP_MAX_OVERHEAD: usize = 16;

/// The most an SRTCP packet adds to its RTCP packet: E || index and the longest tag.
pub const SRTCP_MAX_OVERHEAD: usize = 4 + 16;

/// Replay window size in packets (RFC 3711 §3.3.2 requires at least 64).
pub const REPLAY_WINDOW: u64 = 128;

/// The keys of one direction of SRTP or of SRTCP, derived from the master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Session encryption key (16 bytes).
    pub encryption: Vec<u8>,
    /// Session authentication key (20 bytes; empty for AEAD).
    pub authentication: Vec<u8>,
    /// Session salt (14 bytes for AES-CM, 12 for AES-GCM).
    pub salt: Vec<u8>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SessionKeys")
            .field(
                "encryption",
                &format_args!("[{} bytes]", self.encryption.len()),
            )
            .field(
                "authentication",
                &format_args!("[{} bytes]", self.authentication.len()),
            )
            .field("salt", &format_args!("[{} bytes]", self.salt.len()))
            .finish()
    }
}

impl SessionKeys {
    /// SRTP session keys (labels 0, 1, 2).
    pub fn rtp(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        Self::derive(
            profile,
            master_key,
            master_salt,
            [LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT],
        )
    }

    /// SRTCP session keys (labels 3, 4, 5).
    pub fn rtcp(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        Self::derive(
            profile,
            master_key,
            master_salt,
            [LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT],
        )
    }

    fn derive(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
        [enc, auth, salt]: [u8; 3],
    ) -> Result<Self, SrtpError> {
        check_len(profile, "key", profile.key_len(), master_key.len())?;
        check_len(profile, "salt", profile.salt_len(), master_salt.len())?;
        let prf = Aes128::new_from_slice(master_key).map_err(|_| SrtpError::KeyLength {
            profile,
            what: "key",
            need: profile.key_len(),
            got: master_key.len(),
        })?;
        let mut keys = SessionKeys {
            encryption: vec![0; profile.key_len()],
            authentication: vec![0; profile.auth_key_len()],
            salt: vec![0; profile.salt_len()],
        };
        kdf(&prf, master_salt, enc, &mut keys.encryption);
        kdf(&prf, master_salt, auth, &mut keys.authentication);
        kdf(&prf, master_salt, salt, &mut keys.salt);
        Ok(keys)
    }
}

fn check_len(
    profile: SrtpProfile,
    what: &'static str,
    need: usize,
    got: usize,
) -> Result<(), SrtpError> {
    if need == got {
        Ok(())
    } else {
        Err(SrtpError::KeyLength {
            profile,
            what,
            need,
            got,
        })
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.1/§4.3.3 with key derivation rate 0 (so `r` = 0):
/// `x = (label || r) XOR master_salt`, keystream from IV `x · 2^16`.
///
/// RFC 7714 §11 uses the same KDF with the 96-bit AEAD master salt. Like libsrtp (which
/// zero-appends the 96-bit salt to the 112 bits the legacy KDF expects, `srtp_stream_init_keys`)
/// and pion, we place it in the first 12 bytes of the 14-byte `x` (the last two are zero), so
/// the label still lands in byte 7.
fn kdf(prf: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    if out.is_empty() {
        return;
    }
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    aes_cm(prf, &iv, out);
}

/// XORs the AES counter-mode keystream from `iv` into `data` (the 128-bit block counter
/// of RFC 3711 §4.1.1; it only ever carries into the low 16 bits for packets below 1 MiB).
fn aes_cm(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let mut ctr =
        Ctr128BE::<Aes128>::from_core(InnerIvInit::inner_iv_init(cipher.clone(), &(*iv).into()));
    ctr.apply_keystream(data);
}

/// The AES-CM IV of RFC 3711 §4.1.1: `(k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16)`.
fn aes_cm_iv(salt: &[u8], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..salt.len()].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

/// The AES-GCM IV of RFC 7714 §8.1 (SRTP: `00 00 || SSRC || ROC || SEQ`) and §9.1 (SRTCP:
/// `00 00 || SSRC || 00 00 || 0 || SRTCP index`), XOR the 12-byte session salt; `tail` is
/// the last six bytes (ROC || SEQ, or the padded SRTCP index).
fn gcm_iv(salt: &[u8], ssrc: u32, tail: [u8; 6]) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..].copy_from_slice(&tail);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// Per-key crypto state of one of SRTP or SRTCP.
#[derive(Clone)]
enum Transform {
    AesCm {
        cipher: Box<Aes128>,
        salt: Vec<u8>,
        mac: Box<Hmac<Sha1>>,
    },
    Gcm {
        cipher: Box<Aes128Gcm>,
        salt: Vec<u8>,
    },
}

impl Transform {
    fn new(profile: SrtpProfile, keys: &SessionKeys) -> Result<Self, SrtpError> {
        let bad_key = |_| SrtpError::KeyLength {
            profile,
            what: "key",
            need: profile.key_len(),
            got: keys.encryption.len(),
        };
        if profile.is_aead() {
            Ok(Transform::Gcm {
                cipher: Box::new(Aes128Gcm::new_from_slice(&keys.encryption).map_err(bad_key)?),
                salt: keys.salt.clone(),
            })
        } else {
            Ok(Transform::AesCm {
                cipher: Box::new(Aes128::new_from_slice(&keys.encryption).map_err(bad_key)?),
                salt: keys.salt.clone(),
                mac: Box::new(
                    <Hmac<Sha1> as KeyInit>::new_from_slice(&keys.authentication)
                        .map_err(bad_key)?,
                ),
            })
        }
    }
}

/// Which indices have been received: the newest, and a bitmap of the [`REPLAY_WINDOW`]
/// before it (bit `k` is index `newest - k`).
#[derive(Debug, Clone, Default)]
struct ReplayWindow {
    newest: Option<u64>,
    seen: u128,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if index > newest {
            return Ok(());
        }
        let age = newest - index;
        if age >= REPLAY_WINDOW {
            Err(SrtpError::TooOld { index, newest })
        } else if self.seen & (1u128 << age) != 0 {
            Err(SrtpError::Replayed { index })
        } else {
            Ok(())
        }
    }

    /// Records an authenticated index (after [`check`](Self::check) passed).
    fn accept(&mut self, index: u64) {
        match self.newest {
            Some(newest) if index <= newest => self.seen |= 1u128 << (newest - index),
            Some(newest) => {
                let shift = index - newest;
                self.seen = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << shift) | 1
                };
                self.newest = Some(index);
            }
            None => {
                self.seen = 1;
                self.newest = Some(index);
            }
        }
    }
}

/// The packet index estimate of RFC 3711 §3.3.1 / Appendix A: the 48-bit index of sequence
/// number `seq` given the newest index so far (`ROC || s_l`). `None` before index 0 (ROC − 1
/// with ROC 0) or past 2^48.
fn estimate_index(newest: Option<u64>, seq: u16) -> Option<u64> {
    let Some(newest) = newest else {
        return Some(u64::from(seq));
    };
    let roc = i64::try_from(newest >> 16).ok()?;
    let s_l = i64::from(newest as u16);
    let seq_i = i64::from(seq);
    let v = if s_l < 32768 {
        if seq_i - s_l > 32768 { roc - 1 } else { roc }
    } else if s_l - 32768 > seq_i {
        roc + 1
    } else {
        roc
    };
    if !(0..=i64::from(u32::MAX)).contains(&v) {
        return None;
    }
    let v = u64::try_from(v).ok()?;
    Some((v << 16) | u64::from(seq))
}

/// Length of the RTP header including CSRCs and the header extension (RFC 3550 §5.1, §5.3.1).
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let too_short = |need| SrtpError::TooShort {
        len: packet.len(),
        need,
    };
    if packet.len() < 12 {
        return Err(too_short(12));
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::Version);
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        if packet.len() < len + 4 {
            return Err(too_short(len + 4));
        }
        let words = u16::from_be_bytes([packet[len + 2], packet[len + 3]]);
        len += 4 + 4 * usize::from(words);
    }
    if packet.len() < len {
        return Err(too_short(len));
    }
    Ok(len)
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

/// The largest SRTP index (2^48 − 1) and SRTCP index (2^31 − 1).
const MAX_RTP_INDEX: u64 = (1 << 48) - 1;
const MAX_RTCP_INDEX: u32 = (1 << 31) - 1;
const E_BIT: u32 = 1 << 31;

/// SRTP/SRTCP state of one direction: session keys, rollover counter, replay windows.
///
/// The same type serves both ends: a sender only calls `protect_*`, a receiver only
/// `unprotect_*`. The packet index of SRTP is estimated from the sequence number on both
/// sides (RFC 3711 §3.3.1), so a sender's ROC increments when its sequence number wraps.
#[derive(Clone)]
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Transform,
    rtcp: Transform,
    /// Newest SRTP index protected or authenticated, and the window behind it.
    rtp_window: ReplayWindow,
    /// Next SRTCP index to send.
    rtcp_next: u32,
    rtcp_window: ReplayWindow,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("roc", &self.roc())
            .field("rtcp_next", &self.rtcp_next)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context for `profile` from the master key and master salt (RFC 3711 §8: key and salt
    /// as SDES `inline:` carries them, key first).
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        let rtp = SessionKeys::rtp(profile, master_key, master_salt)?;
        let rtcp = SessionKeys::rtcp(profile, master_key, master_salt)?;
        Self::from_session_keys(profile, &rtp, &rtcp)
    }

    /// A context from already derived session keys (test vectors state some at this level).
    pub fn from_session_keys(
        profile: SrtpProfile,
        rtp: &SessionKeys,
        rtcp: &SessionKeys,
    ) -> Result<Self, SrtpError> {
        Ok(SrtpContext {
            profile,
            rtp: Transform::new(profile, rtp)?,
            rtcp: Transform::new(profile, rtcp)?,
            rtp_window: ReplayWindow::default(),
            rtcp_next: 0,
            rtcp_window: ReplayWindow::default(),
        })
    }

    /// The profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The rollover counter: the high 32 bits of the newest SRTP index (0 before any packet).
    pub fn roc(&self) -> u32 {
        self.rtp_window.newest.map_or(0, |i| (i >> 16) as u32)
    }

    /// Starts the SRTP index at `roc || seq` as if `seq` had just been sent or received: for a
    /// stream joined late, whose rollover counter was signalled out of band.
    pub fn set_roc(&mut self, roc: u32, seq: u16) {
        self.rtp_window = ReplayWindow::default();
        self.rtp_window
            .accept((u64::from(roc) << 16) | u64::from(seq));
    }

    /// SRTP-protects one RTP packet (RFC 3711 §3.3; RFC 7714 §8): the encrypted payload,
    /// then the tag. Allocates the result; [`protect_rtp_in_place`](Self::protect_rtp_in_place)
    /// does not.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = Vec::with_capacity(packet.len() + SRTP_MAX_OVERHEAD);
        out.extend_from_slice(packet);
        out.resize(packet.len() + self.profile.rtp_tag_len(), 0);
        let n = self.protect_rtp_in_place(&mut out, packet.len())?;
        out.truncate(n);
        Ok(out)
    }

    /// SRTP-protects the RTP packet in `buf[..len]` where it lies, writing the tag after it,
    /// and returns the SRTP packet's length. `buf` needs room for the tag
    /// ([`SrtpProfile::rtp_tag_len`], at most [`SRTP_MAX_OVERHEAD`] bytes), else
    /// [`SrtpError::BufferTooSmall`] and nothing changes. Allocates nothing.
    pub fn protect_rtp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            need: len,
            have: buf.len(),
        })?;
        let header_len = rtp_header_len(packet)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be_u32(&packet[8..]);
        let tag_len = self.profile.rtp_tag_len();
        let out_len = len + tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::BufferTooSmall {
                need: out_len,
                have: buf.len(),
            });
        }
        // Only a sequence number far behind the first one sent has no index (ROC − 1).
        let index = estimate_index(self.rtp_window.newest, seq).ok_or(SrtpError::TooOld {
            index: u64::from(seq),
            newest: self.rtp_window.newest.unwrap_or(0),
        })?;
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        match &self.rtp {
            Transform::AesCm { cipher, salt, mac } => {
                aes_cm(
                    cipher,
                    &aes_cm_iv(salt, ssrc, index),
                    &mut buf[header_len..len],
                );
                let mut mac = Hmac::<Sha1>::clone(mac);
                mac.update(&buf[..len]);
                mac.update(&((index >> 16) as u32).to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buf[len..out_len].copy_from_slice(&tag[..tag_len]);
            }
            Transform::Gcm { cipher, salt } => {
                let iv = gcm_iv(salt, ssrc, gcm_rtp_tail(index));
                let (header, rest) = buf.split_at_mut(header_len);
                let (payload, tag_out) = rest.split_at_mut(len - header_len);
                let tag = cipher
                    .encrypt_inout_detached(&iv.into(), header, payload.into())
                    .map_err(|_| SrtpError::Authentication)?;
                tag_out[..tag_len].copy_from_slice(&tag);
            }
        }
        if self.rtp_window.newest.is_none_or(|newest| index > newest) {
            self.rtp_window.accept(index);
        }
        Ok(out_len)
    }

    /// Authenticates, replay-checks and decrypts one SRTP packet back to RTP.
    ///
    /// Nothing changes in the context unless the packet authenticates, so forged or
    /// corrupted datagrams cannot move the rollover counter or the replay window.
    /// Allocates the result; [`unprotect_rtp_in_place`](Self::unprotect_rtp_in_place) does not.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = packet.to_vec();
        let n = self.unprotect_rtp_in_place(&mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// [`unprotect_rtp`](Self::unprotect_rtp) on the datagram `packet` where it lies: on
    /// success `packet[..n]` is the RTP packet and `n` is returned. On failure the context is
    /// unchanged and the bytes of `packet` are unspecified (drop the datagram). Allocates
    /// nothing.
    pub fn unprotect_rtp_in_place(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let header_len = rtp_header_len(packet)?;
        if packet.len() < header_len + tag_len {
            return Err(SrtpError::TooShort {
                len: packet.len(),
                need: header_len + tag_len,
            });
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be_u32(&packet[8..]);
        let index = match estimate_index(self.rtp_window.newest, seq) {
            Some(index) => index,
            None => {
                return Err(SrtpError::TooOld {
                    index: u64::from(seq),
                    newest: self.rtp_window.newest.unwrap_or(0),
                });
            }
        };
        self.rtp_window.check(index)?;
        let plain_len = packet.len() - tag_len;
        match &self.rtp {
            Transform::AesCm { cipher, salt, mac } => {
                let (authenticated, tag) = packet.split_at_mut(plain_len);
                let mut mac = Hmac::<Sha1>::clone(mac);
                mac.update(authenticated);
                mac.update(&((index >> 16) as u32).to_be_bytes());
                // Constant time (digest's CtOutput compares with `subtle`).
                mac.verify_truncated_left(tag)
                    .map_err(|_| SrtpError::Authentication)?;
                aes_cm(
                    cipher,
                    &aes_cm_iv(salt, ssrc, index),
                    &mut authenticated[header_len..],
                );
            }
            Transform::Gcm { cipher, salt } => {
                let iv = gcm_iv(salt, ssrc, gcm_rtp_tail(index));
                let (header, rest) = packet.split_at_mut(header_len);
                let (sealed, tag) = rest.split_at_mut(plain_len - header_len);
                let tag = gcm_tag(tag)?;
                cipher
                    .decrypt_inout_detached(&iv.into(), header, sealed.into(), &tag)
                    .map_err(|_| SrtpError::Authentication)?;
            }
        }
        self.rtp_window.accept(index);
        Ok(plain_len)
    }

    /// SRTCP-protects one RTCP compound packet (RFC 3711 §3.4; RFC 7714 §9): everything after
    /// the first 8 bytes is encrypted, then come the E flag with the 31-bit SRTCP index, and
    /// the tag (for AES-GCM: the tag, then E and the index). Allocates the result;
    /// [`protect_rtcp_in_place`](Self::protect_rtcp_in_place) does not.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = Vec::with_capacity(packet.len() + SRTCP_MAX_OVERHEAD);
        out.extend_from_slice(packet);
        out.resize(packet.len() + 4 + self.profile.rtcp_tag_len(), 0);
        let n = self.protect_rtcp_in_place(&mut out, packet.len())?;
        out.truncate(n);
        Ok(out)
    }

    /// SRTCP-protects the RTCP compound packet in `buf[..len]` where it lies, and returns the
    /// SRTCP packet's length. `buf` needs 4 bytes for E || index and room for the tag after
    /// the packet (at most [`SRTCP_MAX_OVERHEAD`] in all), else [`SrtpError::BufferTooSmall`]
    /// and nothing changes. Allocates nothing.
    pub fn protect_rtcp_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            need: len,
            have: buf.len(),
        })?;
        check_rtcp_header(packet, 0)?;
        let tag_len = self.profile.rtcp_tag_len();
        let out_len = len + 4 + tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::BufferTooSmall {
                need: out_len,
                have: buf.len(),
            });
        }
        if self.rtcp_next > MAX_RTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let index = self.rtcp_next;
        let e_index = (E_BIT | index).to_be_bytes();
        let ssrc = be_u32(&buf[4..]);
        match &self.rtcp {
            Transform::AesCm { cipher, salt, mac } => {
                aes_cm(
                    cipher,
                    &aes_cm_iv(salt, ssrc, u64::from(index)),
                    &mut buf[8..len],
                );
                buf[len..len + 4].copy_from_slice(&e_index);
                let mut mac = Hmac::<Sha1>::clone(mac);
                mac.update(&buf[..len + 4]);
                let tag = mac.finalize().into_bytes();
                buf[len + 4..out_len].copy_from_slice(&tag[..tag_len]);
            }
            Transform::Gcm { cipher, salt } => {
                let iv = gcm_iv(salt, ssrc, gcm_rtcp_tail(index));
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                let tag = cipher
                    .encrypt_inout_detached(&iv.into(), &aad, (&mut buf[8..len]).into())
                    .map_err(|_| SrtpError::Authentication)?;
                buf[len..len + tag_len].copy_from_slice(&tag);
                buf[len + tag_len..out_len].copy_from_slice(&e_index);
            }
        }
        self.rtcp_next += 1;
        Ok(out_len)
    }

    /// Authenticates, replay-checks and (if its E flag is set) decrypts one SRTCP packet.
    /// Allocates the result; [`unprotect_rtcp_in_place`](Self::unprotect_rtcp_in_place) does
    /// not.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = packet.to_vec();
        let n = self.unprotect_rtcp_in_place(&mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// [`unprotect_rtcp`](Self::unprotect_rtcp) on the datagram `packet` where it lies: on
    /// success `packet[..n]` is the RTCP compound packet and `n` is returned. On failure the
    /// context is unchanged and the bytes of `packet` are unspecified. Allocates nothing.
    pub fn unprotect_rtcp_in_place(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        check_rtcp_header(packet, 4 + tag_len)?;
        let ssrc = be_u32(&packet[4..]);
        let n = packet.len();
        let plain_len = match &self.rtcp {
            Transform::AesCm { cipher, salt, mac } => {
                let (authenticated, tag) = packet.split_at_mut(n - tag_len);
                let e_index = be_u32(&authenticated[authenticated.len() - 4..]);
                let index = e_index & MAX_RTCP_INDEX;
                self.rtcp_window.check(u64::from(index))?;
                let mut mac = Hmac::<Sha1>::clone(mac);
                mac.update(authenticated);
                mac.verify_truncated_left(tag)
                    .map_err(|_| SrtpError::Authentication)?;
                let plain_len = n - tag_len - 4;
                if e_index & E_BIT != 0 {
                    aes_cm(
                        cipher,
                        &aes_cm_iv(salt, ssrc, u64::from(index)),
                        &mut authenticated[8..plain_len],
                    );
                }
                self.rtcp_window.accept(u64::from(index));
                plain_len
            }
            Transform::Gcm { cipher, salt } => {
                let mut e_index_bytes = [0u8; 4];
                e_index_bytes.copy_from_slice(&packet[n - 4..]);
                let e_index = u32::from_be_bytes(e_index_bytes);
                let index = e_index & MAX_RTCP_INDEX;
                self.rtcp_window.check(u64::from(index))?;
                let iv = gcm_iv(salt, ssrc, gcm_rtcp_tail(index));
                let body_len = n - 4;
                let plain_len = body_len - tag_len;
                let tag = gcm_tag(&packet[plain_len..body_len])?;
                if e_index & E_BIT != 0 {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&packet[..8]);
                    aad[8..].copy_from_slice(&e_index_bytes);
                    cipher
                        .decrypt_inout_detached(
                            &iv.into(),
                            &aad,
                            (&mut packet[8..plain_len]).into(),
                            &tag,
                        )
                        .map_err(|_| SrtpError::Authentication)?;
                } else {
                    // RFC 7714 §9.2: not encrypted; the packet and E || index are all AAD.
                    // E || index moves next to the packet so that the AAD is one slice.
                    packet[plain_len..plain_len + 4].copy_from_slice(&e_index_bytes);
                    cipher
                        .decrypt_inout_detached(
                            &iv.into(),
                            &packet[..plain_len + 4],
                            (&mut [][..]).into(),
                            &tag,
                        )
                        .map_err(|_| SrtpError::Authentication)?;
                }
                self.rtcp_window.accept(u64::from(index));
                plain_len
            }
        };
        Ok(plain_len)
    }
}

/// A GCM tag from its 16 bytes on the wire.
fn gcm_tag(bytes: &[u8]) -> Result<aes_gcm::Tag, SrtpError> {
    aes_gcm::Tag::try_from(bytes).map_err(|_| SrtpError::Authentication)
}

fn gcm_rtp_tail(index: u64) -> [u8; 6] {
    let mut tail = [0u8; 6];
    tail.copy_from_slice(&index.to_be_bytes()[2..]);
    tail
}

fn gcm_rtcp_tail(index: u32) -> [u8; 6] {
    let mut tail = [0u8; 6];
    tail[2..].copy_from_slice(&(index & MAX_RTCP_INDEX).to_be_bytes());
    tail
}

/// An RTCP packet needs its 8-byte header (V=2, PT, length, SSRC) plus `trailer` bytes.
fn check_rtcp_header(packet: &[u8], trailer: usize) -> Result<(), SrtpError> {
    if packet.len() < 8 + trailer {
        return Err(SrtpError::TooShort {
            len: packet.len(),
            need: 8 + trailer,
        });
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::Version);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
