//! SRTP keyed by SDES in offer/answer (RFC 4568 §7 over RFC 3264): whether a call uses SRTP,
//! the master keys this end offers or answers with, and what an exchange agreed.
//!
//! [`LocalSrtp`] is this end's side: a [`SrtpMode`] and one master key per supported suite.
//! The [`Negotiator`](super::Negotiator) puts its `a=crypto` lines in offers and answers and
//! reads the peer's; a completed exchange gives a [`NegotiatedSrtp`] in
//! [`Negotiated::srtp`](super::Negotiated::srtp), from which the media session builds its two
//! [`SrtpContext`]s.
//!
//! What each mode does (RFC 4568 itself has no "best effort"; this follows baresip's `srtp`
//! and common SIP phones):
//!
//! | | offers | answers an `RTP/SAVP` offer | answers `RTP/AVP` with `a=crypto` | answers plain `RTP/AVP` |
//! |---|---|---|---|---|
//! | `Off` | `RTP/AVP` | refused (port 0; 488 if nothing else) | plain, `a=crypto` ignored | plain |
//! | `BestEffort` | `RTP/AVP` + `a=crypto` | SRTP | SRTP | plain |
//! | `Mandatory` | `RTP/SAVP` + `a=crypto` | SRTP | SRTP | refused (488) |
//!
//! A best-effort offer is `RTP/AVP` so that a peer without SRTP still answers it (with plain
//! RTP, which we accept); a peer with SRTP answers with `a=crypto` and both ends encrypt.
//!
//! Keys are kept for the whole call (RFC 4568 §7.1.4 lets an offerer or answerer keep or
//! change them in a new exchange): a re-offer repeats our lines with the same keys, and an
//! answer to the peer's re-offer uses the same key for the same suite, so hold and resume do
//! not reset the rollover counter. A peer that sends a new key (or another suite) gets a new
//! context for its direction.

use super::MediaDescription;
use super::crypto::{self, CryptoAttribute};
use crate::rtp::srtp::{SrtpContext, SrtpError, SrtpProfile};
use std::fmt;

/// Whether calls use SRTP (RFC 3711) with SDES keys (RFC 4568); see the
/// [module](self) for what each mode offers and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SrtpMode {
    /// Plain RTP only.
    Off,
    /// SRTP when the peer offers or accepts it, plain RTP otherwise.
    #[default]
    BestEffort,
    /// SRTP or no call: `RTP/SAVP` offers, and 488 to an offer without a usable `a=crypto`.
    Mandatory,
}

/// This end's SDES: the mode and a master key and salt per suite, strongest suite first.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalSrtp {
    mode: SrtpMode,
    /// `(profile, key || salt)`, in [`SrtpProfile::ALL`] order.
    keys: Vec<(SrtpProfile, Vec<u8>)>,
}

impl fmt::Debug for LocalSrtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("LocalSrtp")
            .field("mode", &self.mode)
            .field(
                "profiles",
                &self.keys.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl LocalSrtp {
    /// Every supported suite with a fresh master key and salt each from the operating
    /// system's cryptographic random source (`getrandom`): what calls use. Keys are never
    /// drawn from an [`Entropy`](crate::entropy::Entropy), seeded or not: its values are
    /// unique, not secret.
    pub fn random(mode: SrtpMode) -> std::io::Result<LocalSrtp> {
        let mut keys = Vec::with_capacity(SrtpProfile::ALL.len());
        for profile in SrtpProfile::ALL {
            // A key of its own per line: only the chosen one is ever used, and no key serves
            // two transforms.
            let mut key = vec![0; profile.key_len() + profile.salt_len()];
            getrandom::fill(&mut key).map_err(std::io::Error::other)?;
            keys.push((profile, key));
        }
        Ok(LocalSrtp { mode, keys })
    }

    /// Given keys (`key || salt` per suite), for tests and for keys from elsewhere; `None` if
    /// a length does not fit its suite, a suite comes twice, or there is none.
    pub fn with_keys(mode: SrtpMode, keys: Vec<(SrtpProfile, Vec<u8>)>) -> Option<LocalSrtp> {
        let fits = keys
            .iter()
            .all(|(p, k)| k.len() == p.key_len() + p.salt_len());
        let unique = keys
            .iter()
            .enumerate()
            .all(|(i, (p, _))| keys[..i].iter().all(|(q, _)| q != p));
        let mut keys = keys;
        keys.sort_by_key(|(p, _)| SrtpProfile::ALL.iter().position(|a| a == p));
        (fits && unique && !keys.is_empty()).then_some(LocalSrtp { mode, keys })
    }

    /// The mode.
    pub fn mode(&self) -> SrtpMode {
        self.mode
    }

    /// The same keys with another mode.
    #[must_use]
    pub fn with_mode(mut self, mode: SrtpMode) -> LocalSrtp {
        self.mode = mode;
        self
    }

    /// The suites, strongest first.
    pub fn profiles(&self) -> Vec<SrtpProfile> {
        self.keys.iter().map(|(p, _)| *p).collect()
    }

    fn key(&self, profile: SrtpProfile) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, k)| k.as_slice())
    }

    /// Whether this end uses SRTP at all.
    pub(crate) fn active(&self) -> bool {
        self.mode != SrtpMode::Off
    }

    /// The transport protocol of an offer's audio `m=` line (RFC 4568 §3.1.4 for `RTP/SAVP`).
    pub(crate) fn offer_protocol(&self) -> &'static str {
        match self.mode {
            SrtpMode::Mandatory => "RTP/SAVP",
            _ => "RTP/AVP",
        }
    }

    /// The `a=crypto` lines of an offer: one per suite, tags 1, 2, … strongest first
    /// (RFC 4568 §7.1.1: in order of preference). None when off.
    pub(crate) fn offer_lines(&self) -> Vec<CryptoAttribute> {
        if !self.active() {
            return Vec::new();
        }
        (1u32..)
            .zip(&self.keys)
            .map(|(tag, (profile, key))| {
                let (k, s) = key.split_at(profile.key_len());
                CryptoAttribute::new(tag, *profile, k, s)
            })
            .collect()
    }
}

/// What one exchange agreed for SRTP: the suite, the tag of the chosen `a=crypto` line, and
/// the master key and salt of each direction.
#[derive(Clone, PartialEq, Eq)]
pub struct NegotiatedSrtp {
    /// The suite.
    pub profile: SrtpProfile,
    /// The `a=crypto` tag the answer chose.
    pub tag: u32,
    /// Our master key || salt: what we protect with.
    local: Vec<u8>,
    /// The peer's master key || salt: what we unprotect with.
    remote: Vec<u8>,
}

impl fmt::Debug for NegotiatedSrtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("NegotiatedSrtp")
            .field("profile", &self.profile)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl NegotiatedSrtp {
    fn new(profile: SrtpProfile, tag: u32, local: &[u8], remote: &CryptoAttribute) -> Option<Self> {
        let (k, s) = remote.master_key_salt()?;
        Some(NegotiatedSrtp {
            profile,
            tag,
            local: local.to_vec(),
            remote: [k, s].concat(),
        })
    }

    /// The context for what we send (our key).
    pub fn outbound(&self) -> Result<SrtpContext, SrtpError> {
        let (k, s) = self
            .local
            .split_at(self.profile.key_len().min(self.local.len()));
        SrtpContext::new(self.profile, k, s)
    }

    /// The context for what we receive (the peer's key).
    pub fn inbound(&self) -> Result<SrtpContext, SrtpError> {
        let (k, s) = self
            .remote
            .split_at(self.profile.key_len().min(self.remote.len()));
        SrtpContext::new(self.profile, k, s)
    }

    /// True if `other` has the same suite and our key: the outbound context goes on.
    pub fn same_outbound(&self, other: &NegotiatedSrtp) -> bool {
        self.profile == other.profile && self.local == other.local
    }

    /// True if `other` has the same suite and the peer's key: the inbound context goes on.
    pub fn same_inbound(&self, other: &NegotiatedSrtp) -> bool {
        self.profile == other.profile && self.remote == other.remote
    }
}

/// Why an offered stream cannot be answered on SRTP's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused;

/// True for the RTP profiles an audio stream may use here.
pub(crate) fn is_rtp_protocol(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("RTP/AVP") || protocol.eq_ignore_ascii_case("RTP/SAVP")
}

fn is_savp(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("RTP/SAVP")
}

/// The answerer's side for one offered RTP stream (RFC 4568 §7.1.2): `Ok(None)` for plain
/// RTP, `Ok(Some)` with the `a=crypto` line to answer and what it agrees, `Err` if the stream
/// must be refused (`RTP/SAVP` without a usable line, or plain RTP when SRTP is mandatory).
/// Malformed `a=crypto` lines are skipped, as lines with an unknown suite are.
pub(crate) fn answer_stream(
    local: Option<&LocalSrtp>,
    offered: &MediaDescription,
) -> Result<Option<(CryptoAttribute, NegotiatedSrtp)>, Refused> {
    let savp = is_savp(&offered.protocol);
    let Some(local) = local.filter(|l| l.active()) else {
        return if savp { Err(Refused) } else { Ok(None) };
    };
    let lines: Vec<CryptoAttribute> = offered.crypto_attributes().filter_map(Result::ok).collect();
    let Some(chosen) = crypto::choose_offered(&lines, &local.profiles()) else {
        return if savp || local.mode == SrtpMode::Mandatory {
            Err(Refused)
        } else {
            Ok(None)
        };
    };
    let profile = chosen.profile().ok_or(Refused)?;
    let key = local.key(profile).ok_or(Refused)?;
    let (k, s) = key.split_at(profile.key_len());
    let answer = chosen.answer(k, s).ok_or(Refused)?;
    let agreed = NegotiatedSrtp::new(profile, chosen.tag, key, chosen).ok_or(Refused)?;
    Ok(Some((answer, agreed)))
}

/// The offerer's side (RFC 4568 §7.1.3): what the answer `theirs` to our offered stream `ours`
/// agreed. `Ok(None)` for plain RTP (we offered no `a=crypto`, or a best-effort offer answered
/// plain `RTP/AVP`); `Err` if the answer picked no line we offered, changed its suite, or
/// answered without one where SRTP is mandatory or `RTP/SAVP` was answered.
pub(crate) fn read_answer(
    local: Option<&LocalSrtp>,
    ours: &MediaDescription,
    theirs: &MediaDescription,
) -> Result<Option<NegotiatedSrtp>, Refused> {
    let Some(local) = local.filter(|l| l.active()) else {
        return Ok(None);
    };
    let offered: Vec<CryptoAttribute> = ours.crypto_attributes().filter_map(Result::ok).collect();
    if offered.is_empty() {
        return Ok(None);
    }
    let mut answered = theirs.crypto_attributes().peekable();
    let any_line = answered.peek().is_some();
    for line in answered.filter_map(Result::ok) {
        let Some(offer) = crypto::accepted_offer(&offered, &line) else {
            continue;
        };
        let (Some(profile), Some(key)) = (offer.profile(), offer.key_params.first()) else {
            continue;
        };
        if let Some(agreed) = NegotiatedSrtp::new(profile, line.tag, &key.key_salt, &line) {
            return Ok(Some(agreed));
        }
    }
    if any_line || local.mode == SrtpMode::Mandatory || is_savp(&theirs.protocol) {
        return Err(Refused);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(mode: SrtpMode, fill: u8) -> LocalSrtp {
        let keys = SrtpProfile::ALL
            .iter()
            .map(|p| (*p, vec![fill; p.key_len() + p.salt_len()]))
            .collect();
        LocalSrtp::with_keys(mode, keys).unwrap()
    }

    #[test]
    fn random_keys_differ_and_fit_their_suites() {
        let a = LocalSrtp::random(SrtpMode::BestEffort).unwrap();
        let b = LocalSrtp::random(SrtpMode::BestEffort).unwrap();
        assert_eq!(a.profiles(), SrtpProfile::ALL.to_vec());
        for p in SrtpProfile::ALL {
            let (ka, kb) = (a.key(p).unwrap(), b.key(p).unwrap());
            assert_eq!(ka.len(), p.key_len() + p.salt_len());
            assert_ne!(ka, kb, "two draws of 224+ bits are equal");
        }
        assert_ne!(
            a.key(SrtpProfile::AeadAes128Gcm),
            a.key(SrtpProfile::AesCm128HmacSha1_80).map(|k| &k[..28])
        );
        // Debug never shows key bytes.
        assert_eq!(
            format!("{a:?}"),
            "LocalSrtp { mode: BestEffort, profiles: [AeadAes128Gcm, AesCm128HmacSha1_80, AesCm128HmacSha1_32] }"
        );
    }

    #[test]
    fn with_keys_checks_lengths_and_orders_strongest_first() {
        let p80 = SrtpProfile::AesCm128HmacSha1_80;
        let gcm = SrtpProfile::AeadAes128Gcm;
        assert!(LocalSrtp::with_keys(SrtpMode::Mandatory, vec![(p80, vec![0; 29])]).is_none());
        assert!(LocalSrtp::with_keys(SrtpMode::Mandatory, vec![]).is_none());
        assert!(
            LocalSrtp::with_keys(
                SrtpMode::Mandatory,
                vec![(p80, vec![0; 30]), (p80, vec![1; 30])]
            )
            .is_none()
        );
        let l = LocalSrtp::with_keys(
            SrtpMode::Mandatory,
            vec![(p80, vec![0; 30]), (gcm, vec![1; 28])],
        )
        .unwrap();
        assert_eq!(l.profiles(), vec![gcm, p80]);
        let lines = l.offer_lines();
        assert_eq!(
            lines
                .iter()
                .map(|c| (c.tag, c.profile()))
                .collect::<Vec<_>>(),
            vec![(1, Some(gcm)), (2, Some(p80))]
        );
        assert_eq!(l.offer_protocol(), "RTP/SAVP");
        assert_eq!(
            l.clone().with_mode(SrtpMode::BestEffort).offer_protocol(),
            "RTP/AVP"
        );
        assert!(l.with_mode(SrtpMode::Off).offer_lines().is_empty());
    }

    fn media(protocol: &str, cryptos: &[&str]) -> MediaDescription {
        let mut m = MediaDescription::new(super::super::MediaKind::Audio, 4000, protocol);
        m.formats.push("0".into());
        for c in cryptos {
            m.attributes
                .push(super::super::Attribute::value("crypto", *c));
        }
        m
    }

    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn the_answerer_follows_its_mode() {
        let line = format!("7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}");
        let savp = media("RTP/SAVP", &[&line]);
        let avp_keyed = media("RTP/AVP", &[&line]);
        let avp = media("RTP/AVP", &[]);
        let savp_bad = media("RTP/SAVP", &["1 F8_128_HMAC_SHA1_80 inline:AAAA", "x"]);
        let off = keys(SrtpMode::Off, 1);
        let best = keys(SrtpMode::BestEffort, 2);
        let mand = keys(SrtpMode::Mandatory, 3);

        for local in [None, Some(&off)] {
            assert_eq!(answer_stream(local, &savp).unwrap_err(), Refused);
            assert_eq!(answer_stream(local, &avp_keyed), Ok(None));
            assert_eq!(answer_stream(local, &avp), Ok(None));
        }
        for local in [&best, &mand] {
            let (line, agreed) = answer_stream(Some(local), &savp).unwrap().unwrap();
            assert_eq!(
                (line.tag, line.profile()),
                (7, Some(SrtpProfile::AesCm128HmacSha1_80))
            );
            assert_eq!(agreed.tag, 7);
            // Our key in our line, theirs in the contexts' inbound side.
            assert_eq!(
                line.master_key_salt().unwrap().0,
                &local.key(agreed.profile).unwrap()[..16]
            );
            let mut rx = agreed.inbound().unwrap();
            let their = format!("7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")
                .parse::<CryptoAttribute>()
                .unwrap();
            let (k, s) = their.master_key_salt().unwrap();
            let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, k, s).unwrap();
            let rtp = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xaa];
            assert_eq!(
                rx.unprotect_rtp(&tx.protect_rtp(&rtp).unwrap()).unwrap(),
                rtp
            );
            assert!(answer_stream(Some(local), &avp_keyed).unwrap().is_some());
            assert_eq!(answer_stream(Some(local), &savp_bad).unwrap_err(), Refused);
        }
        assert_eq!(answer_stream(Some(&best), &avp), Ok(None));
        assert_eq!(answer_stream(Some(&mand), &avp).unwrap_err(), Refused);
    }

    #[test]
    fn the_offerer_reads_the_answer() {
        let best = keys(SrtpMode::BestEffort, 2);
        let mand = keys(SrtpMode::Mandatory, 3);
        for local in [&best, &mand] {
            let lines: Vec<String> = local
                .offer_lines()
                .iter()
                .map(ToString::to_string)
                .collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let ours = media(local.offer_protocol(), &refs);
            // The peer picks tag 2 (AES_CM_128_HMAC_SHA1_80) with its own key.
            let theirs = media(
                "RTP/SAVP",
                &[&format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
            );
            let agreed = read_answer(Some(local), &ours, &theirs).unwrap().unwrap();
            assert_eq!(
                (agreed.profile, agreed.tag),
                (SrtpProfile::AesCm128HmacSha1_80, 2)
            );
            let mut tx = agreed.outbound().unwrap();
            let (k, s) = local.key(agreed.profile).unwrap().split_at(16);
            let mut peer = SrtpContext::new(agreed.profile, k, s).unwrap();
            let rtp = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xaa];
            assert_eq!(
                peer.unprotect_rtp(&tx.protect_rtp(&rtp).unwrap()).unwrap(),
                rtp
            );
            // A suite changed, a tag never offered, a line unparsable: failed (RFC 4568 §7.1.3).
            for bad in [
                format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),
                format!("9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                "2 AES_CM_128_HMAC_SHA1_80".to_owned(),
            ] {
                assert_eq!(
                    read_answer(Some(local), &ours, &media("RTP/AVP", &[&bad])),
                    Err(Refused),
                    "{bad}"
                );
            }
            assert_eq!(
                read_answer(Some(local), &ours, &media("RTP/SAVP", &[])),
                Err(Refused)
            );
        }
        // A plain answer: fine for best effort, not for mandatory.
        let ours = media("RTP/AVP", &[&best.offer_lines()[0].to_string()]);
        assert_eq!(
            read_answer(Some(&best), &ours, &media("RTP/AVP", &[])),
            Ok(None)
        );
        assert_eq!(
            read_answer(Some(&mand), &ours, &media("RTP/AVP", &[])),
            Err(Refused)
        );
        // We offered nothing: whatever the answer says about crypto is not ours to read.
        assert_eq!(
            read_answer(None, &media("RTP/AVP", &[]), &media("RTP/AVP", &[])),
            Ok(None)
        );
    }

    #[test]
    fn kept_and_changed_keys() {
        let theirs = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")
            .parse::<CryptoAttribute>()
            .unwrap();
        let p = SrtpProfile::AesCm128HmacSha1_80;
        let a = NegotiatedSrtp::new(p, 1, &[1; 30], &theirs).unwrap();
        let b = NegotiatedSrtp::new(p, 1, &[2; 30], &theirs).unwrap();
        assert!(!a.same_outbound(&b) && a.same_inbound(&b));
        assert!(!format!("{a:?}").contains("inline"));
    }

    mod negotiator {
        use super::*;
        use crate::sdp::{Direction, LocalMedia, NegotiationError, Negotiator};
        use std::net::{IpAddr, Ipv4Addr};

        fn side(srtp: Option<LocalSrtp>, port: u16) -> Negotiator {
            let local = LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port).with_srtp(srtp);
            Negotiator::new(local, 1)
        }

        fn check_pair(mut tx: SrtpContext, mut rx: SrtpContext) {
            let rtp = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xaa, 0xbb];
            assert_eq!(
                rx.unprotect_rtp(&tx.protect_rtp(&rtp).unwrap()).unwrap(),
                rtp
            );
        }

        #[test]
        fn an_exchange_keys_both_directions_and_a_re_offer_keeps_them() {
            let mut alice = side(Some(keys(SrtpMode::Mandatory, 0xa1)), 4000);
            let mut bob = side(Some(keys(SrtpMode::BestEffort, 0xb0)), 5000);
            let offer = alice.create_offer();
            let text = offer.to_string();
            assert!(text.contains("m=audio 4000 RTP/SAVP "), "{text}");
            assert_eq!(text.matches("a=crypto:").count(), 3, "{text}");
            let answer = bob.answer(&offer).unwrap();
            let text = answer.sdp.to_string();
            assert!(text.contains("m=audio 5000 RTP/SAVP "), "{text}");
            assert!(
                text.contains("a=crypto:1 AEAD_AES_128_GCM inline:"),
                "{text}"
            );
            let at_bob = answer.negotiated.unwrap().srtp.unwrap();
            let at_alice = alice.accept_answer(&answer.sdp).unwrap().srtp.unwrap();
            assert_eq!(at_alice.profile, SrtpProfile::AeadAes128Gcm);
            check_pair(at_alice.outbound().unwrap(), at_bob.inbound().unwrap());
            check_pair(at_bob.outbound().unwrap(), at_alice.inbound().unwrap());

            // Hold: the re-offer repeats the lines and keys, the answer its key.
            alice.set_direction(Direction::SendOnly);
            let reoffer = alice.create_offer();
            let again = bob.answer(&reoffer).unwrap();
            let at_bob2 = again.negotiated.unwrap().srtp.unwrap();
            let at_alice2 = alice.accept_answer(&again.sdp).unwrap().srtp.unwrap();
            assert!(at_bob2.same_inbound(&at_bob) && at_bob2.same_outbound(&at_bob));
            assert!(at_alice2.same_inbound(&at_alice) && at_alice2.same_outbound(&at_alice));
        }

        #[test]
        fn best_effort_falls_back_to_plain_and_mandatory_refuses() {
            let mut best = side(Some(keys(SrtpMode::BestEffort, 1)), 4000);
            let mut plain = side(None, 5000);
            let offer = best.create_offer();
            assert!(offer.to_string().contains("m=audio 4000 RTP/AVP "));
            let answer = plain.answer(&offer).unwrap();
            assert!(!answer.sdp.to_string().contains("a=crypto"));
            assert_eq!(answer.negotiated.unwrap().srtp, None);
            assert_eq!(best.accept_answer(&answer.sdp).unwrap().srtp, None);

            // A plain offer to a mandatory answerer, an RTP/SAVP one to a plain answerer: 488.
            let mut mand = side(Some(keys(SrtpMode::Mandatory, 2)), 6000);
            let plain_offer = side(None, 7000).create_offer();
            assert_eq!(
                mand.answer(&plain_offer).unwrap_err(),
                NegotiationError::NoSrtp
            );
            let savp_offer = side(Some(keys(SrtpMode::Mandatory, 3)), 7000).create_offer();
            assert_eq!(
                plain.answer(&savp_offer).unwrap_err(),
                NegotiationError::NoSrtp
            );
            let mut off = side(Some(keys(SrtpMode::Off, 4)), 8000);
            assert_eq!(
                off.answer(&savp_offer).unwrap_err(),
                NegotiationError::NoSrtp
            );
            // ... and a mandatory offerer does not take a plain answer.
            let mut mand_offerer = side(Some(keys(SrtpMode::Mandatory, 5)), 9000);
            let offer = mand_offerer.create_offer();
            let mut answer = side(Some(keys(SrtpMode::BestEffort, 6)), 9100)
                .answer(&offer)
                .unwrap()
                .sdp;
            answer.media[0].attributes.retain(|a| a.name != "crypto");
            answer.media[0].protocol = "RTP/AVP".into();
            assert_eq!(
                mand_offerer.accept_answer(&answer).unwrap_err(),
                NegotiationError::NoSrtp
            );
        }
    }
}
