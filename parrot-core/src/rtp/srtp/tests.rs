//! Test vectors: RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation), RFC 7714
//! §16.1 (SRTP, AEAD_AES_128_GCM) and §17.1/§17.3 (SRTCP); then behaviour.

use super::*;
use ctr::cipher::StreamCipherSeek;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 3711 Appendix B.2: AES-CM keystream for session key 2B7E…, salt F0F1…FD, SSRC 0,
/// ROC 0, SEQ 0.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
    let salt = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");
    let iv = aes_cm_iv(&salt, 0, 0);
    assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));

    let cipher = Aes128::new_from_slice(&key).unwrap();
    let blocks: [(u64, &str); 6] = [
        (0x0000, "E03EAD0935C95E80E166B16DD92B4EB4"),
        (0x0001, "D23513162B02D0F72A43A2FE4A5F97AB"),
        (0x0002, "41E95B3BB0A2E8DD477901E4FCA894C0"),
        (0xfeff, "EC8CDF7398607CB0F2D21675EA9EA1E4"),
        (0xff00, "362B7C3C6773516318A077D7FC5073AE"),
        (0xff01, "6A2CC3787889374FBEB4C81B17BA6C44"),
    ];
    for (block, expected) in blocks {
        let mut ctr =
            Ctr128BE::<Aes128>::from_core(InnerIvInit::inner_iv_init(cipher.clone(), &iv.into()));
        ctr.seek(block * 16);
        let mut ks = [0u8; 16];
        ctr.apply_keystream(&mut ks);
        assert_eq!(ks.to_vec(), hex(expected), "block {block:#06x}");
    }
    // The same through aes_cm on a zero buffer, for the first three blocks.
    let mut zeros = [0u8; 48];
    aes_cm(&cipher, &iv, &mut zeros);
    assert_eq!(
        zeros.to_vec(),
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
}

/// RFC 3711 Appendix B.3: key derivation from master key E1F9…, master salt 0EC6….
#[test]
fn rfc3711_b3_key_derivation() {
    let master_key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let master_salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let keys =
        SessionKeys::rtp(SrtpProfile::AesCm128HmacSha1_80, &master_key, &master_salt).unwrap();
    assert_eq!(keys.encryption, hex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(keys.salt, hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(
        keys.authentication,
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
    // B.3 prints 94 bytes of the auth-key keystream; the PRF gives them all.
    let prf = Aes128::new_from_slice(&master_key).unwrap();
    let mut long = [0u8; 94];
    kdf(&prf, &master_salt, LABEL_RTP_AUTH, &mut long);
    assert_eq!(
        long.to_vec(),
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE \
             E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25 \
             6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
        )
    );
    // Debug never shows key bytes.
    assert!(!format!("{keys:?}").contains("C61E") && !format!("{keys:?}").contains("198"));
}

/// RFC 7714 §16: session key 00 01 … 0f and salt "Quid pro quo" (the vectors are stated
/// below the KDF, so the same session keys serve SRTP and SRTCP).
fn rfc7714_context() -> SrtpContext {
    let keys = SessionKeys {
        encryption: hex("000102030405060708090a0b0c0d0e0f"),
        authentication: Vec::new(),
        salt: hex("517569642070726f2071756f"),
    };
    SrtpContext::from_session_keys(SrtpProfile::AeadAes128Gcm, &keys, &keys).unwrap()
}

const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 \
    20646976 69736120 696e2070 61727465 73207472 6573";

/// RFC 7714 §16.1.1 "Encrypted and tagged packet".
const RFC7714_SRTP: &str = "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca \
    be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce";

/// RFC 7714 §17.1: the RTCP packet (SSRC "Mars") and its SRTCP form with index 0x5d4.
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 \
    4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";
const RFC7714_SRTCP: &str = "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 \
    6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 \
    45d9eade 800005d4";
/// RFC 7714 §17.3: the same packet tagged but not encrypted (E = 0).
const RFC7714_SRTCP_TAG_ONLY: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a \
    0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef 841dd968 3dd78ec9 \
    2ae58790 125f62b3 000005d4";

#[test]
fn rfc7714_ivs() {
    let salt = hex("517569642070726f2071756f");
    assert_eq!(
        gcm_iv(&salt, 0x5501a0b2, gcm_rtp_tail(0xf17b)).to_vec(),
        hex("51753c6580c2726f20718414")
    );
    assert_eq!(
        gcm_iv(&salt, 0x4d617273, gcm_rtcp_tail(0x5d4)).to_vec(),
        hex("517524055203726f207170bb")
    );
}

#[test]
fn rfc7714_16_srtp_aead_aes_128_gcm() {
    let rtp = hex(RFC7714_RTP);
    let srtp = hex(RFC7714_SRTP);
    assert_eq!(rfc7714_context().protect_rtp(&rtp).unwrap(), srtp);
    assert_eq!(rfc7714_context().unprotect_rtp(&srtp).unwrap(), rtp);
    let mut tampered = srtp.clone();
    tampered[20] ^= 1;
    assert_eq!(
        rfc7714_context().unprotect_rtp(&tampered),
        Err(SrtpError::Authentication)
    );
}

#[test]
fn rfc7714_17_srtcp_aead_aes_128_gcm() {
    let rtcp = hex(RFC7714_RTCP);
    let srtcp = hex(RFC7714_SRTCP);
    assert_eq!(rfc7714_context().unprotect_rtcp(&srtcp).unwrap(), rtcp);
    let mut sender = rfc7714_context();
    sender.rtcp_next = 0x5d4;
    assert_eq!(sender.protect_rtcp(&rtcp).unwrap(), srtcp);
    assert_eq!(
        rfc7714_context()
            .unprotect_rtcp(&hex(RFC7714_SRTCP_TAG_ONLY))
            .unwrap(),
        rtcp
    );
    let mut tampered = srtcp.clone();
    tampered[30] ^= 0x08;
    assert_eq!(
        rfc7714_context().unprotect_rtcp(&tampered),
        Err(SrtpError::Authentication)
    );
}

fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let key: Vec<u8> = (1..=profile.key_len() as u8).collect();
    let salt: Vec<u8> = (0xa0..0xa0 + profile.salt_len() as u8).collect();
    (
        SrtpContext::new(profile, &key, &salt).unwrap(),
        SrtpContext::new(profile, &key, &salt).unwrap(),
    )
}

/// An RTP packet with two CSRCs and a one-word header extension, so the header is 12 + 8 + 8.
fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x92, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
    p.extend((0..160u32).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn rtcp() -> Vec<u8> {
    // An RR with no report blocks, then an SDES with a CNAME.
    let mut p = vec![0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
    p.extend_from_slice(&[0x81, 202, 0, 3, 0x12, 0x34, 0x56, 0x78, 1, 5]);
    p.extend_from_slice(b"alice\0");
    p
}

#[test]
fn round_trip_every_profile() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        for seq in 0..20 {
            let plain = rtp(seq);
            let protected = tx.protect_rtp(&plain).unwrap();
            assert_eq!(protected.len(), plain.len() + profile.rtp_tag_len());
            assert_eq!(
                protected[..28],
                plain[..28],
                "{profile}: header in the clear"
            );
            assert_ne!(
                protected[28..plain.len()],
                plain[28..],
                "{profile}: payload encrypted"
            );
            assert_eq!(rx.unprotect_rtp(&protected).unwrap(), plain, "{profile}");
        }
        for _ in 0..3 {
            let plain = rtcp();
            let protected = tx.protect_rtcp(&plain).unwrap();
            assert_eq!(protected.len(), plain.len() + 4 + profile.rtcp_tag_len());
            assert_eq!(protected[..8], plain[..8]);
            assert_ne!(
                protected[8..plain.len()],
                plain[8..],
                "{profile}: RTCP encrypted"
            );
            assert_eq!(rx.unprotect_rtcp(&protected).unwrap(), plain, "{profile}");
        }
    }
}

#[test]
fn sdes_names_and_lengths() {
    for profile in SrtpProfile::ALL {
        assert_eq!(
            SrtpProfile::from_sdes_name(profile.sdes_name()),
            Some(profile)
        );
        assert_eq!(profile.to_string(), profile.sdes_name());
    }
    assert_eq!(SrtpProfile::from_sdes_name("F8_128_HMAC_SHA1_80"), None);
    assert_eq!(SrtpProfile::AesCm128HmacSha1_32.rtp_tag_len(), 4);
    assert_eq!(SrtpProfile::AesCm128HmacSha1_32.rtcp_tag_len(), 10);
    assert_eq!(SrtpProfile::AeadAes128Gcm.salt_len(), 12);
    assert!(matches!(
        SrtpContext::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]),
        Err(SrtpError::KeyLength {
            what: "salt",
            need: 12,
            got: 14,
            ..
        })
    ));
    assert!(matches!(
        SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &[0; 15], &[0; 14]),
        Err(SrtpError::KeyLength { what: "key", .. })
    ));
}

#[test]
fn tampering_fails_authentication_and_changes_nothing() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let good = tx.protect_rtp(&rtp(7)).unwrap();
        let mut payload_bit = good.clone();
        payload_bit[40] ^= 0x01;
        let mut tag_bit = good.clone();
        *tag_bit.last_mut().unwrap() ^= 0x80;
        let mut header_bit = good.clone();
        header_bit[1] ^= 0x01; // the payload type is authenticated too
        for bad in [&payload_bit, &tag_bit, &header_bit] {
            assert_eq!(
                rx.unprotect_rtp(bad),
                Err(SrtpError::Authentication),
                "{profile}"
            );
        }
        // A forged packet did not mark index 7 as received.
        assert_eq!(rx.unprotect_rtp(&good).unwrap(), rtp(7));

        let good = tx.protect_rtcp(&rtcp()).unwrap();
        let mut payload_bit = good.clone();
        payload_bit[10] ^= 0x01;
        let mut tag_bit = good.clone();
        let at = good.len()
            - if profile == SrtpProfile::AeadAes128Gcm {
                5
            } else {
                1
            };
        tag_bit[at] ^= 0x01;
        let mut clear_e = good.clone();
        let e_at = good.len()
            - if profile == SrtpProfile::AeadAes128Gcm {
                4
            } else {
                14
            };
        clear_e[e_at] &= 0x7f; // claiming "not encrypted" must not pass either
        for bad in [&payload_bit, &tag_bit, &clear_e] {
            assert_eq!(
                rx.unprotect_rtcp(bad),
                Err(SrtpError::Authentication),
                "{profile}"
            );
        }
        assert_eq!(rx.unprotect_rtcp(&good).unwrap(), rtcp());
    }
}

#[test]
fn wrong_key_fails_authentication() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &[1; 16], &[2; 14]).unwrap();
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &[1; 16], &[3; 14]).unwrap();
    let p = tx.protect_rtp(&rtp(1)).unwrap();
    assert_eq!(rx.unprotect_rtp(&p), Err(SrtpError::Authentication));
}

#[test]
fn replays_and_too_old_packets_are_rejected() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let packets: Vec<Vec<u8>> = (0..300).map(|s| tx.protect_rtp(&rtp(s)).unwrap()).collect();
        rx.unprotect_rtp(&packets[0]).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&packets[0]),
            Err(SrtpError::Replayed { index: 0 })
        );
        // Jump ahead; a packet inside the window may still arrive late, once.
        rx.unprotect_rtp(&packets[299]).unwrap();
        rx.unprotect_rtp(&packets[299 - 100]).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&packets[199]),
            Err(SrtpError::Replayed { index: 199 })
        );
        rx.unprotect_rtp(&packets[299 - 127]).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&packets[299 - 128]),
            Err(SrtpError::TooOld {
                index: 171,
                newest: 299
            })
        );
        assert_eq!(
            rx.unprotect_rtp(&packets[1]),
            Err(SrtpError::TooOld {
                index: 1,
                newest: 299
            })
        );

        let rtcp: Vec<Vec<u8>> = (0..200)
            .map(|_| tx.protect_rtcp(&rtcp()).unwrap())
            .collect();
        rx.unprotect_rtcp(&rtcp[150]).unwrap();
        assert_eq!(
            rx.unprotect_rtcp(&rtcp[150]),
            Err(SrtpError::Replayed { index: 150 })
        );
        rx.unprotect_rtcp(&rtcp[100]).unwrap();
        assert_eq!(
            rx.unprotect_rtcp(&rtcp[0]),
            Err(SrtpError::TooOld {
                index: 0,
                newest: 150
            })
        );
    }
}

#[test]
fn rollover_counter_follows_the_sequence_wrap() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        let packets: Vec<Vec<u8>> = seqs
            .iter()
            .map(|&s| tx.protect_rtp(&rtp(s)).unwrap())
            .collect();
        assert_eq!(tx.roc(), 1);
        // Deliver in order except that 65534 arrives after 0 and 1 (reordered across the wrap).
        for i in [0, 1, 2, 3, 5, 6, 7, 4, 8, 9, 10, 11] {
            assert_eq!(
                rx.unprotect_rtp(&packets[i]).unwrap(),
                rtp(seqs[i]),
                "{profile} {i}"
            );
        }
        assert_eq!(rx.roc(), 1);
        // A receiver that wrongly kept ROC 0 would fail: the ROC is in the tag / IV.
        let mut stale = pair(profile).1;
        assert_eq!(
            stale.unprotect_rtp(&packets[7]),
            Err(SrtpError::Authentication)
        );
        // A receiver told the ROC out of band follows straight away.
        let mut late = pair(profile).1;
        late.set_roc(1, 2);
        assert_eq!(late.unprotect_rtp(&packets[10]).unwrap(), rtp(4));
    }
}

#[test]
fn index_estimation() {
    assert_eq!(estimate_index(None, 9), Some(9));
    assert_eq!(estimate_index(Some(65535), 0), Some(65536));
    assert_eq!(estimate_index(Some(65536 + 2), 65534), Some(65534));
    assert_eq!(
        estimate_index(Some(3 << 16 | 40000), 100),
        Some(4 << 16 | 100)
    );
    assert_eq!(
        estimate_index(Some(3 << 16 | 100), 40000),
        Some(2 << 16 | 40000)
    );
    // Before the first packet's ROC 0: no index.
    assert_eq!(estimate_index(Some(10), 60000), None);
    let (mut tx, _) = pair(SrtpProfile::AesCm128HmacSha1_80);
    tx.protect_rtp(&rtp(10)).unwrap();
    assert_eq!(
        tx.protect_rtp(&rtp(60000)),
        Err(SrtpError::TooOld {
            index: 60000,
            newest: 10
        })
    );
}

#[test]
fn short_and_malformed_packets() {
    let (mut tx, mut rx) = pair(SrtpProfile::AesCm128HmacSha1_80);
    assert!(matches!(
        tx.protect_rtp(&[0x80; 11]),
        Err(SrtpError::TooShort { .. })
    ));
    assert_eq!(tx.protect_rtp(&[0x40; 12]), Err(SrtpError::Version));
    // CC = 15 promises 60 bytes of CSRCs.
    let mut p = rtp(1);
    p[0] = 0x8f;
    p.truncate(40);
    assert!(matches!(
        tx.protect_rtp(&p),
        Err(SrtpError::TooShort { .. })
    ));
    let good = tx.protect_rtp(&rtp(1)).unwrap();
    assert!(matches!(
        rx.unprotect_rtp(&good[..30]),
        Err(SrtpError::TooShort { .. })
    ));
    assert!(matches!(
        rx.unprotect_rtcp(&[0x80; 20]),
        Err(SrtpError::TooShort { .. })
    ));
    assert!(matches!(
        tx.protect_rtcp(&[0x80; 7]),
        Err(SrtpError::TooShort { .. })
    ));
}

#[test]
fn srtcp_index_exhaustion() {
    let (mut tx, _) = pair(SrtpProfile::AesCm128HmacSha1_80);
    tx.rtcp_next = MAX_RTCP_INDEX;
    let last = tx.protect_rtcp(&rtcp()).unwrap();
    assert_eq!(last[last.len() - 14..last.len() - 10], [0xff; 4]);
    assert_eq!(tx.protect_rtcp(&rtcp()), Err(SrtpError::KeyExhausted));
}

/// Garbage, truncations and bit flips of valid packets never panic and never authenticate.
#[test]
fn untrusted_input_never_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let srtp = tx.protect_rtp(&rtp(3)).unwrap();
        let srtcp = tx.protect_rtcp(&rtcp()).unwrap();
        for len in 0..srtp.len() {
            assert!(rx.unprotect_rtp(&srtp[..len]).is_err());
        }
        for len in 0..srtcp.len() {
            assert!(rx.unprotect_rtcp(&srtcp[..len]).is_err());
        }
        for _ in 0..2000 {
            let len = (next() % 80) as usize;
            let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = junk.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            assert!(rx.unprotect_rtp(&junk).is_err());
            assert!(rx.unprotect_rtcp(&junk).is_err());
            let mut flipped = srtp.clone();
            let bit = (next() % (flipped.len() as u64 * 8)) as usize;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(rx.unprotect_rtp(&flipped).is_err(), "{profile} bit {bit}");
        }
        assert_eq!(rx.unprotect_rtp(&srtp).unwrap(), rtp(3));
        assert_eq!(rx.unprotect_rtcp(&srtcp).unwrap(), rtcp());
    }
}

#[test]
fn in_place_matches_the_allocating_calls_and_needs_room_for_the_tag() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let (mut tx2, mut rx2) = pair(profile);
        let plain = rtp(9);
        let mut buf = [0u8; 512];
        buf[..plain.len()].copy_from_slice(&plain);
        // No room for the tag: an error, and the context has not moved.
        let short = plain.len() + profile.rtp_tag_len() - 1;
        assert_eq!(
            tx.protect_rtp_in_place(&mut buf[..short], plain.len()),
            Err(SrtpError::BufferTooSmall {
                need: plain.len() + profile.rtp_tag_len(),
                have: short
            })
        );
        assert_eq!(tx.roc(), 0);
        let n = tx.protect_rtp_in_place(&mut buf, plain.len()).unwrap();
        assert_eq!(buf[..n], tx2.protect_rtp(&plain).unwrap()[..], "{profile}");
        let m = rx.unprotect_rtp_in_place(&mut buf[..n]).unwrap();
        assert_eq!(buf[..m], plain[..], "{profile}");
        assert_eq!(
            rx2.unprotect_rtp(&tx2.protect_rtp(&rtp(10)).unwrap())
                .unwrap(),
            rtp(10)
        );

        let plain = rtcp();
        buf[..plain.len()].copy_from_slice(&plain);
        let n = tx.protect_rtcp_in_place(&mut buf, plain.len()).unwrap();
        assert_eq!(n, plain.len() + 4 + profile.rtcp_tag_len());
        assert!(n - plain.len() <= SRTCP_MAX_OVERHEAD);
        assert_eq!(buf[..n], tx2.protect_rtcp(&plain).unwrap()[..], "{profile}");
        let m = rx.unprotect_rtcp_in_place(&mut buf[..n]).unwrap();
        assert_eq!(buf[..m], plain[..], "{profile}");
    }
}
