//! The invariants of the fuzz targets in `parrot-core/fuzz/` as ordinary tests.
//!
//! Every input a fuzz target crashed on goes here as a test (none so far: about
//! 7 minutes of fuzzing found nothing). The committed seed inputs are checked too,
//! so the seeds stay valid messages. `replay_corpus` (ignored) runs a fuzz corpus
//! directory through the same checks without libFuzzer:
//! `PARROT_FUZZ_CORPUS=parrot-core/fuzz/corpus/parse_message cargo test -p parrot-core
//! --test fuzz_regressions -- --ignored --nocapture`.

use bytes::Bytes;
use parrot_core::message::{Framed, Message, Uri, frame};

/// The `parse_message` invariant. Returns whether the input parsed.
fn check_message(data: &[u8]) -> bool {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
        return false;
    };
    let wire = msg.to_bytes();
    let again = match Message::parse(wire.clone()) {
        Ok(m) => m,
        Err(e) => panic!("serialized message does not parse again: {e:?}\nwire: {wire:?}"),
    };
    let (a, b) = (msg.headers(), again.headers());
    assert_eq!(a.vias(), b.vias(), "Via differs after round trip");
    assert_eq!(a.from(), b.from(), "From differs after round trip");
    assert_eq!(a.to(), b.to(), "To differs after round trip");
    assert_eq!(a.call_id(), b.call_id(), "Call-ID differs after round trip");
    assert_eq!(a.cseq(), b.cseq(), "CSeq differs after round trip");
    assert_eq!(msg.body(), again.body(), "body differs after round trip");
    assert_eq!(again.to_bytes(), wire, "serialization is not stable");
    true
}

/// The `frame` invariant (max size 512, as in the fuzz target).
fn check_frame(data: &[u8]) {
    const MAX: usize = 512;
    if let Ok(Framed::Message { len }) = frame(data, MAX) {
        assert!(len <= data.len() && len <= MAX, "bad Message len {len}");
        let head_end = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a framed message has a blank line");
        if let Ok(msg) = Message::parse(Bytes::copy_from_slice(&data[..len])) {
            assert_eq!(
                msg.body().len(),
                len - (head_end + 4),
                "framer/parser disagree"
            );
        }
    }
}

/// The `uri` invariant.
fn check_uri(s: &str) {
    if let Some(uri) = Uri::parse(s) {
        let printed = uri.to_string();
        assert_eq!(
            Uri::parse(&printed).as_ref(),
            Some(&uri),
            "printed {printed:?}"
        );
    }
}

const SEEDS: &[(&str, &[u8])] = &[
    (
        "invite_sdp",
        include_bytes!("../fuzz/seeds/message/invite_sdp.sip"),
    ),
    ("200_ok", include_bytes!("../fuzz/seeds/message/200_ok.sip")),
    (
        "register_auth",
        include_bytes!("../fuzz/seeds/message/register_auth.sip"),
    ),
    (
        "401_challenge",
        include_bytes!("../fuzz/seeds/message/401_challenge.sip"),
    ),
    (
        "options_tel",
        include_bytes!("../fuzz/seeds/message/options_tel.sip"),
    ),
];

#[test]
fn seeds_are_valid_and_round_trip() {
    for (name, data) in SEEDS {
        assert!(check_message(data), "seed {name} does not parse");
        let msg = Message::parse(Bytes::from_static(data)).expect("parses");
        assert_eq!(msg.check_mandatory(), Ok(()), "seed {name}");
        assert_eq!(msg.to_bytes(), Bytes::from_static(data), "seed {name}");
        // Under 512 bytes, frame() must see the whole seed as one message.
        if data.len() <= 512 {
            assert_eq!(frame(data, 512), Ok(Framed::Message { len: data.len() }));
        }
        check_frame(data);
    }
    for uri in [
        "sip:alice@atlanta.example.com",
        "sips:bob:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x&h=%20y",
        "tel:+1-201-555-0123;phone-context=example.com",
        "urn:service:sos",
    ] {
        assert!(Uri::parse(uri).is_some(), "{uri}");
        check_uri(uri);
    }
}

#[test]
#[ignore = "set PARROT_FUZZ_CORPUS to a corpus directory"]
fn replay_corpus() {
    let Ok(dir) = std::env::var("PARROT_FUZZ_CORPUS") else {
        return;
    };
    let (mut total, mut parsed) = (0, 0);
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        total += 1;
        parsed += usize::from(check_message(&data));
        check_frame(&data);
        if let Ok(s) = std::str::from_utf8(&data) {
            check_uri(s);
        }
    }
    println!("{total} inputs, {parsed} parsed as messages");
}
