//! SDP tests: parsing, round trips, errors, RFC 4317 exchanges, and a mutation loop.

use super::*;
use crate::codec::{Codec, CodecKind};
use std::net::{IpAddr, Ipv4Addr};

fn parse(s: &str) -> SessionDescription {
    match s.parse() {
        Ok(sdp) => sdp,
        Err(e) => panic!("{e}\n{s}"),
    }
}

fn err(s: &str) -> SdpError {
    match s.parse::<SessionDescription>() {
        Ok(sdp) => panic!("parsed: {sdp:?}"),
        Err(e) => e,
    }
}

/// RFC 4317 writes its examples with LF; on the wire they are CRLF.
fn crlf(s: &str) -> String {
    s.lines().map(|l| format!("{l}\r\n")).collect()
}

fn round_trip(sdp: &SessionDescription) {
    let text = sdp.to_string();
    assert!(text.ends_with("\r\n"));
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LF in {text:?}"
    );
    let again = parse(&text);
    assert_eq!(&again, sdp, "{text}");
    assert_eq!(again.to_string(), text);
}

const ALICE_AV: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s=
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 0 8 97
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 iLBC/8000
m=video 51372 RTP/AVP 31 32
a=rtpmap:31 H261/90000
a=rtpmap:32 MPV/90000
";

const FULL: &str = "v=0\r
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r
s=SDP Seminar\r
i=A Seminar on the session description protocol\r
u=http://www.example.com/seminars/sdp.pdf\r
e=j.doe@example.com (Jane Doe)\r
c=IN IP4 224.2.17.12/127\r
b=AS:128\r
t=2873397496 2873404696\r
r=7d 1h 0 25h\r
k=prompt\r
a=recvonly\r
a=tool:parrot\r
m=audio 49170/2 RTP/AVP 0 96\r
i=voice\r
c=IN IP4 224.2.17.12/127\r
b=AS:64\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 useinbandfec=1; stereo=1\r
a=ptime:20\r
a=maxptime:60\r
a=rtcp:53020 IN IP4 126.16.64.4\r
a=x-unknown\r
m=application 9 udptl t38\r
a=T38FaxVersion:0\r
";

#[test]
fn parses_rfc4566_example_fields() {
    let sdp = parse(FULL);
    assert_eq!(sdp.version, 0);
    assert_eq!(sdp.origin.username, "jdoe");
    assert_eq!(sdp.origin.session_id, "2890844526");
    assert_eq!(sdp.origin.session_version, 2890842807);
    assert_eq!(sdp.origin.address, "10.47.16.5");
    assert_eq!(sdp.session_name, "SDP Seminar");
    let c = sdp.connection.as_ref().expect("c=");
    assert_eq!(c.address, "224.2.17.12/127");
    assert_eq!(c.ip(), Some(IpAddr::V4(Ipv4Addr::new(224, 2, 17, 12))));
    assert_eq!(
        sdp.timing,
        vec![Timing {
            start: 2873397496,
            stop: 2873404696,
            repeats: vec!["7d 1h 0 25h".into()]
        }]
    );
    assert_eq!(sdp.other_lines.len(), 5); // i u e b k
    assert_eq!(sdp.direction(), Some(Direction::RecvOnly));
    assert_eq!(sdp.attribute("tool"), Some("parrot"));

    let audio = &sdp.media[0];
    assert_eq!(audio.kind, MediaKind::Audio);
    assert_eq!((audio.port, audio.port_count), (49170, Some(2)));
    assert!(audio.is_rtp());
    assert_eq!(audio.payload_types().collect::<Vec<_>>(), vec![0, 96]);
    assert_eq!(audio.codec(0), Some(Codec::PCMU));
    let opus = audio.rtpmap(96).expect("rtpmap 96");
    assert_eq!(
        (&*opus.name, opus.clock_rate, opus.channels),
        ("opus", 48000, 2)
    );
    assert_eq!(opus.kind(), CodecKind::Opus);
    assert_eq!(audio.fmtp(96), Some("useinbandfec=1; stereo=1"));
    assert_eq!(
        audio.codec(96).and_then(|c| c.fmtp).as_deref(),
        Some("useinbandfec=1; stereo=1")
    );
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.maxptime(), Some(60));
    assert_eq!(audio.rtcp_port(), Some(53020));
    assert_eq!(audio.attribute("x-unknown"), Some(""));
    assert_eq!(audio.direction(), None);
    // Media inherits the session-level direction.
    assert_eq!(sdp.media_direction(audio), Direction::RecvOnly);
    assert!(!sdp.is_hold(audio), "recvonly: the author still receives");
    assert_eq!(
        sdp.connection_for(audio).map(|c| &*c.address),
        Some("224.2.17.12/127")
    );

    let fax = &sdp.media[1];
    assert_eq!(fax.kind, MediaKind::Application);
    assert!(!fax.is_rtp());
    assert_eq!(fax.formats, vec!["t38"]);
    assert_eq!(fax.attribute("T38FaxVersion"), Some("0"));
}

#[test]
fn round_trips_are_exact() {
    // Canonical input serializes back byte for byte.
    let sdp = parse(FULL);
    assert_eq!(sdp.to_string(), FULL);
    round_trip(&sdp);
    let av = parse(ALICE_AV);
    assert_eq!(av.to_string(), crlf(ALICE_AV));
    round_trip(&av);
}

#[test]
fn bare_lf_and_blank_lines_accepted() {
    let lf = parse(ALICE_AV);
    let crlf_sdp = parse(&crlf(ALICE_AV));
    assert_eq!(lf, crlf_sdp);
    let trailing = format!("{}\r\n\r\n", crlf(ALICE_AV));
    assert_eq!(parse(&trailing), lf);
}

#[test]
fn out_of_order_lines_are_canonicalised() {
    // b= before i= and a c= after t=: accepted, serialized in RFC 4566 order.
    let sdp = parse(
        "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nb=AS:1\ni=info\nt=0 0\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\nb=AS:2\ni=m\n",
    );
    assert_eq!(
        sdp.to_string(),
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\ni=info\r\nc=IN IP4 1.2.3.4\r\nb=AS:1\r\nt=0 0\r\n\
         m=audio 1 RTP/AVP 0\r\ni=m\r\nb=AS:2\r\n"
    );
    round_trip(&sdp);
}

#[test]
fn missing_timing_is_read_as_permanent() {
    let sdp = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n");
    assert_eq!(sdp.timing, vec![Timing::new(0, 0)]);
    round_trip(&sdp);
}

#[test]
fn media_connection_overrides_session() {
    let sdp = parse(
        "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\n\
         m=audio 1000 RTP/AVP 0\nc=IN IP6 ::1\nm=audio 2000 RTP/AVP 0\n",
    );
    assert_eq!(
        sdp.connection_for(&sdp.media[0]).and_then(Connection::ip),
        "::1".parse().ok()
    );
    assert_eq!(
        sdp.connection_for(&sdp.media[1]).map(|c| &*c.address),
        Some("1.2.3.4")
    );
}

#[test]
fn legacy_hold_recognised() {
    let sdp = parse(
        "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 1000 RTP/AVP 0\n",
    );
    let m = &sdp.media[0];
    assert_eq!(sdp.media_direction(m), Direction::SendRecv);
    assert!(sdp.is_hold(m));
    let active = parse(&crlf(ALICE_AV));
    assert!(!active.is_hold(&active.media[0]));
}

#[test]
fn direction_rules() {
    use Direction::*;
    assert_eq!(SendOnly.reversed(), RecvOnly);
    assert_eq!(RecvOnly.reversed(), SendOnly);
    assert_eq!(Inactive.reversed(), Inactive);
    assert_eq!(SendRecv.reversed(), SendRecv);
    assert_eq!(SendRecv.intersect(SendOnly), SendOnly);
    assert_eq!(RecvOnly.intersect(SendOnly), Inactive);
    let mut m = MediaDescription::new(MediaKind::Audio, 1, "RTP/AVP");
    m.set_direction(SendOnly);
    m.set_direction(Inactive);
    assert_eq!(m.attributes, vec![Attribute::flag("inactive")]);
    assert_eq!(m.direction(), Some(Inactive));
}

// ---- errors ------------------------------------------------------------------------------

#[test]
fn error_missing_version() {
    let e = err("o=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n");
    assert_eq!(
        (e.kind, e.line, e.offset),
        (SdpErrorKind::MissingVersion, 1, 0)
    );
    assert_eq!(err("").kind, SdpErrorKind::Empty);
    assert_eq!(err("\r\n\r\n").kind, SdpErrorKind::Empty);
    assert_eq!(err("v=x\r\n").kind, SdpErrorKind::BadVersion);
}

#[test]
fn error_order_of_v_o_s() {
    let e = err("v=0\r\ns=-\r\no=- 1 1 IN IP4 1.2.3.4\r\n");
    assert_eq!(
        (e.kind, e.line, e.offset),
        (SdpErrorKind::MissingOrigin, 2, 5)
    );
    let e = err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n");
    assert_eq!((e.kind, e.line), (SdpErrorKind::MissingSessionName, 3));
    let e = err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n");
    assert_eq!(e.kind, SdpErrorKind::MissingSessionName);
    let e = err("v=0\r\no=- 1 x IN IP4 1.2.3.4\r\ns=-\r\n");
    assert_eq!((e.kind, e.line), (SdpErrorKind::BadOrigin, 2));
    let e = err("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n");
    assert_eq!(e.kind, SdpErrorKind::BadOrigin);
    let e = err("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nv=0\r\n");
    assert_eq!((e.kind, e.line), (SdpErrorKind::Misplaced('v'), 4));
}

#[test]
fn error_bad_media_lines() {
    let head = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n";
    let cases = [
        ("m=audio\r\n", SdpErrorKind::BadMedia),
        ("m=audio 1000\r\n", SdpErrorKind::BadMedia),
        ("m=audio 1000 RTP/AVP\r\n", SdpErrorKind::BadMedia),
        ("m=audio 70000 RTP/AVP 0\r\n", SdpErrorKind::BadPort),
        ("m=audio -1 RTP/AVP 0\r\n", SdpErrorKind::BadPort),
        ("m=audio x RTP/AVP 0\r\n", SdpErrorKind::BadPort),
        ("m=audio 1000/ RTP/AVP 0\r\n", SdpErrorKind::BadPort),
        ("m=audio 1000 RTP/AVP 0 128\r\n", SdpErrorKind::BadFormat),
        ("m=audio 1000 RTP/AVP PCMU\r\n", SdpErrorKind::BadFormat),
        (
            "m=audio 1000 RTP/AVP 0\r\nt=0 0\r\n",
            SdpErrorKind::Misplaced('t'),
        ),
        (
            "m=audio 1000 RTP/AVP 0\r\nc=IN IP4\r\n",
            SdpErrorKind::BadConnection,
        ),
        (
            "m=audio 1000 RTP/AVP 0\r\na=\r\n",
            SdpErrorKind::BadAttribute,
        ),
        ("m=audio 1000 RTP/AVP 0\r\nfoo\r\n", SdpErrorKind::BadLine),
        ("m=audio 1000 RTP/AVP 0\r\na =x\r\n", SdpErrorKind::BadLine),
    ];
    for (tail, kind) in cases {
        let e = err(&format!("{head}{tail}"));
        let line = if tail.matches('\n').count() == 2 {
            6
        } else {
            5
        };
        assert_eq!((&e.kind, e.line), (&kind, line), "{tail:?}");
    }
    // A disabled stream may list no formats.
    assert!(
        format!("{head}m=video 0 RTP/AVP\r\n")
            .parse::<SessionDescription>()
            .is_ok()
    );
    let e = err(&format!("{head}t=x 0\r\n"));
    assert_eq!(e.kind, SdpErrorKind::BadTiming);
    let e = err("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nr=1d 1h 0\r\n");
    assert_eq!(e.kind, SdpErrorKind::Misplaced('r'));
    let e =
        SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=\xff\r\n").expect_err("not UTF-8");
    assert_eq!((&e.kind, e.line), (&SdpErrorKind::NotUtf8, 3));
    assert_eq!(e.to_string(), "line is not valid UTF-8 (line 3)");
}

// ---- offer/answer --------------------------------------------------------------------------

fn local(ip: [u8; 4], port: u16) -> LocalMedia {
    LocalMedia::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

#[test]
fn offer_lists_codecs_in_preference_order() {
    let mut n = Negotiator::new(local([192, 0, 2, 1], 4000), 1000);
    let offer = n.create_offer();
    assert_eq!(
        offer.to_string(),
        "v=0\r\no=- 1000 1000 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 9 0 8 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
         a=rtcp-mux\r\na=sendrecv\r\n"
    );
    round_trip(&offer);
    // Same offer again: same version (RFC 3264 §8: unchanged SDP keeps its version).
    assert_eq!(n.create_offer().origin.session_version, 1000);
}

#[test]
fn announced_ssrcs_reach_the_other_end_rfc5576() {
    let mut alice = Negotiator::new(local([192, 0, 2, 1], 4000).with_ssrc(Some(0xdead_beef)), 1);
    let mut bob = Negotiator::new(local([192, 0, 2, 2], 5000).with_ssrc(Some(7)), 7);
    let offer = parse(&alice.create_offer().to_string());
    assert_eq!(
        offer.media[0].attribute("ssrc"),
        Some("3735928559 cname:parrot")
    );
    let answer = bob.answer(&offer).expect("answer");
    assert_eq!(
        answer.negotiated.expect("negotiated").remote_ssrc,
        Some(0xdead_beef)
    );
    let answer_sdp = parse(&answer.sdp.to_string());
    assert_eq!(
        alice
            .accept_answer(&answer_sdp)
            .expect("accept")
            .remote_ssrc,
        Some(7)
    );
    // Nothing announced: nothing known.
    let mut carol = Negotiator::new(local([192, 0, 2, 3], 6000), 9);
    let plain = parse(&carol.create_offer().to_string());
    assert_eq!(plain.media[0].attribute("ssrc"), None);
    assert_eq!(
        bob.answer(&plain)
            .expect("answer")
            .negotiated
            .expect("n")
            .remote_ssrc,
        None
    );
}

#[test]
fn a_stream_names_its_ssrc_only_when_its_lines_agree_on_one() {
    let media = |lines: &str| {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{lines}"
        );
        parse(&sdp).media[0].ssrc()
    };
    assert_eq!(media("a=ssrc:12 cname:x\r\na=ssrc:12 msid:y\r\n"), Some(12));
    assert_eq!(
        media("a=ssrc:12 cname:x\r\na=ssrc:13 cname:x\r\n"),
        None,
        "two"
    );
    assert_eq!(media("a=ssrc:4294967296 cname:x\r\n"), None, "not 32 bits");
    assert_eq!(media("a=ssrc:\r\n"), None);
    assert_eq!(media(""), None);
}

#[test]
fn rtcp_mux_is_agreed_only_when_offer_and_answer_carry_it_rfc5761_5_1_1() {
    let exchange = |alice_mux: bool, bob_mux: bool| {
        let mut alice = Negotiator::new(local([192, 0, 2, 1], 4000).with_rtcp_mux(alice_mux), 1);
        let mut bob = Negotiator::new(local([192, 0, 2, 2], 5000).with_rtcp_mux(bob_mux), 7);
        let offer = parse(&alice.create_offer().to_string());
        assert_eq!(offer.media[0].rtcp_mux(), alice_mux, "the offer asks");
        let answer = bob.answer(&offer).expect("answer");
        let answer_sdp = parse(&answer.sdp.to_string());
        let bob_side = answer.negotiated.expect("negotiated").rtcp_mux;
        assert_eq!(
            answer_sdp.media[0].rtcp_mux(),
            bob_side,
            "the answer says it"
        );
        let alice_side = alice.accept_answer(&answer_sdp).expect("accept").rtcp_mux;
        assert_eq!(alice_side, bob_side, "both ends agree");
        bob_side
    };
    assert!(exchange(true, true));
    // An answerer that does not want it, or an offer that does not ask: RTCP on port + 1.
    assert!(!exchange(true, false));
    assert!(!exchange(false, true));
    assert!(!exchange(false, false));
    // An answer with a=rtcp-mux to an offer without it does not turn it on.
    let mut alice = Negotiator::new(local([192, 0, 2, 1], 4000).with_rtcp_mux(false), 1);
    let _ = alice.create_offer();
    let answer = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n\
         m=audio 5000 RTP/AVP 0\r\na=rtcp-mux\r\n",
    );
    assert!(!alice.accept_answer(&answer).expect("accept").rtcp_mux);
}

#[test]
fn audio_offer_answer_with_telephone_event() {
    // Alice offers PCMU, PCMA and telephone-event; Bob prefers PCMA.
    let mut alice = Negotiator::new(local([192, 0, 2, 1], 4000), 1);
    let mut bob = Negotiator::new(
        local([192, 0, 2, 2], 5000).with_codecs(vec![Codec::PCMA, Codec::PCMU]),
        7,
    );
    let offer = parse(&alice.create_offer().to_string());
    // Default choice: the first *offered* codec we support, so PCMU.
    let answer = bob.answer(&offer).expect("answer");
    let bob_side = answer.negotiated.expect("negotiated");
    assert_eq!(bob_side.codec, Codec::PCMU);
    assert_eq!(
        bob_side.telephone_event.as_ref().map(|c| c.payload_type),
        Some(101)
    );
    assert_eq!(bob_side.remote_addr(), "192.0.2.1:4000".parse().ok());
    assert_eq!(bob_side.direction, Direction::SendRecv);
    assert_eq!(bob_side.ptime, 20);
    let m = &answer.sdp.media[0];
    assert_eq!(m.formats, vec!["0", "101"]);
    assert_eq!(m.fmtp(101), Some("0-16"));

    let alice_side = alice
        .accept_answer(&parse(&answer.sdp.to_string()))
        .expect("accept");
    assert_eq!(alice_side.codec.payload_type, 0);
    assert_eq!(alice_side.remote_addr(), "192.0.2.2:5000".parse().ok());
    assert_eq!(alice_side.direction, Direction::SendRecv);
    assert_eq!(
        alice.accept_answer(&answer.sdp),
        Err(NegotiationError::NoOfferPending)
    );

    // A chooser that honours the answerer's preference instead.
    let mut bob = Negotiator::new(
        local([192, 0, 2, 2], 5000).with_codecs(vec![Codec::PCMA, Codec::PCMU]),
        7,
    );
    let answer = bob
        .answer_with(&offer, |offered, supported| {
            supported
                .iter()
                .find_map(|s| offered.iter().find(|o| o.same_format(s)))
                .cloned()
        })
        .expect("answer");
    assert_eq!(answer.negotiated.map(|n| n.codec), Some(Codec::PCMA));
    assert_eq!(answer.sdp.media[0].formats, vec!["8", "101"]);
}

#[test]
fn g722_is_taken_before_g711_when_both_ends_have_it() {
    // A phone that lists PCMU first but offers G.722 too gets G.722 (wideband first).
    let offer = parse(&crlf(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
         m=audio 4000 RTP/AVP 0 8 9 101\na=rtpmap:101 telephone-event/8000\n",
    ));
    let mut bob = Negotiator::new(local([10, 0, 0, 2], 6000), 5);
    let answer = bob.answer(&offer).expect("answer");
    let n = answer.negotiated.expect("negotiated");
    assert_eq!(n.codec, Codec::G722);
    assert_eq!(answer.sdp.media[0].formats, vec!["9", "101"]);
    // RFC 4733 events stay on their 8000 Hz clock, which is G.722's RTP clock too.
    assert_eq!(n.telephone_event.map(|t| t.clock_rate), Some(8000));
    // Without G.722 in the offer: the first offered G.711, as before.
    let narrow = parse(&crlf(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 8 0\n",
    ));
    let n = bob.answer(&narrow).expect("answer").negotiated.expect("n");
    assert_eq!(n.codec, Codec::PCMA);
    // An answerer that does not list G.722 keeps G.711.
    let mut old = Negotiator::new(
        local([10, 0, 0, 3], 6000).with_codecs(vec![Codec::PCMU, Codec::PCMA]),
        5,
    );
    let n = old.answer(&offer).expect("answer").negotiated.expect("n");
    assert_eq!(n.codec, Codec::PCMU);
    // Our offer lists G.722 first; a G.711-only answer is accepted as it comes.
    let mut alice = Negotiator::new(local([10, 0, 0, 1], 4000), 1);
    let ours = alice.create_offer();
    assert_eq!(ours.media[0].formats[0], "9");
    let pcmu = old.answer(&ours).expect("answer").sdp;
    assert_eq!(alice.accept_answer(&pcmu).map(|n| n.codec), Ok(Codec::PCMU));
    assert_eq!(default_choice(&[Codec::PCMU, Codec::G722], &[]), None);
}

#[test]
fn dynamic_payload_types_keep_the_offers_numbers() {
    let offer = parse(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
         m=audio 4000 RTP/AVP 96 98 100\na=rtpmap:96 opus/48000/2\na=rtpmap:98 pcmu/8000\n\
         a=rtpmap:100 telephone-event/8000\na=fmtp:100 0-15\na=ptime:30\n",
    );
    let mut bob = Negotiator::new(local([10, 0, 0, 2], 6000), 5);
    let answer = bob.answer(&offer).expect("answer");
    let n = answer.negotiated.expect("negotiated");
    assert_eq!(
        (n.codec.kind(), n.codec.payload_type),
        (CodecKind::Pcmu, 98)
    );
    assert_eq!(n.telephone_event.map(|c| c.payload_type), Some(100));
    assert_eq!(n.ptime, 30);
    let m = &answer.sdp.media[0];
    assert_eq!(m.formats, vec!["98", "100"]);
    assert_eq!(
        m.rtpmap(98).map(|c| c.to_string()).as_deref(),
        Some("pcmu/8000")
    );
    assert!(crate::codec::encoder_for(&m.codec(98).expect("98")).is_some());
}

#[test]
fn no_common_codec() {
    let offer = parse(&crlf(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 18 101\n\
         a=rtpmap:18 G729/8000\na=rtpmap:101 telephone-event/8000\n",
    ));
    let mut bob = Negotiator::new(local([10, 0, 0, 2], 6000), 5);
    assert_eq!(
        bob.answer(&offer).map(|_| ()),
        Err(NegotiationError::NoCommonCodec)
    );
    // A chooser that declines everything.
    let offer = parse(&crlf(ALICE_AV));
    assert_eq!(
        bob.answer_with(&offer, |_, _| None).map(|_| ()),
        Err(NegotiationError::NoCommonCodec)
    );
    // A chooser returning something that was not offered is a rejection too.
    assert_eq!(
        bob.answer_with(&offer, |_, _| Some(Codec::G722))
            .map(|_| ()),
        Err(NegotiationError::NoCommonCodec)
    );
    // Video only.
    let video = parse("v=0\no=- 1 1 IN IP4 a\ns=-\nc=IN IP4 a\nt=0 0\nm=video 4000 RTP/AVP 31\n");
    assert!(bob.answer(&video).is_err());
    // SRTP is not supported yet: rejected.
    let srtp = parse("v=0\no=- 1 1 IN IP4 a\ns=-\nc=IN IP4 a\nt=0 0\nm=audio 4000 RTP/SAVP 0\n");
    assert!(bob.answer(&srtp).is_err());
}

#[test]
fn rfc4317_2_1_video_rejected_with_port_zero() {
    // RFC 4317 §2.1/§2.2 offer; we are an audio-only Bob: PCMU accepted, video port 0.
    let offer = parse(ALICE_AV);
    let mut bob = Negotiator::new(
        local([192, 0, 2, 2], 49172)
            .with_telephone_event(None)
            .with_ptime(None),
        2808844564,
    );
    bob.local_mut().username = "bob".into();
    bob.local_mut().session_name = String::new();
    let answer = bob.answer(&offer).expect("answer");
    assert_eq!(
        answer.sdp.to_string(),
        crlf(
            "v=0\no=bob 2808844564 2808844564 IN IP4 192.0.2.2\ns=\nc=IN IP4 192.0.2.2\nt=0 0\n\
             m=audio 49172 RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=sendrecv\n\
             m=video 0 RTP/AVP 31 32\na=rtpmap:31 H261/90000\na=rtpmap:32 MPV/90000\n"
        )
    );
    let n = answer.negotiated.expect("negotiated");
    assert_eq!(n.remote_host, "host.atlanta.example.com");
    assert_eq!(n.remote_addr(), None, "a host name is not resolved here");
}

#[test]
fn rfc4317_2_2_alice_reads_bobs_answer() {
    // Alice's side of §2.2 with our offer shape: the answer accepts audio, rejects the rest.
    let mut alice = Negotiator::new(
        local([192, 0, 2, 1], 49170).with_codecs(vec![Codec::PCMU, Codec::PCMA]),
        2890844526,
    );
    let _ = alice.create_offer();
    let answer = parse(&crlf(
        "v=0\no=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\ns=\n\
         c=IN IP4 host.biloxi.example.com\nt=0 0\nm=audio 49172 RTP/AVP 0 8\n\
         a=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n",
    ));
    let n = alice.accept_answer(&answer).expect("accept");
    assert_eq!(n.codec, Codec::PCMU);
    assert_eq!(
        n.telephone_event, None,
        "Bob did not accept telephone-event"
    );
    assert_eq!(
        (n.remote_host.as_str(), n.remote_port),
        ("host.biloxi.example.com", 49172)
    );
    // Second offer with only PCMU: version increments (RFC 3264 §8).
    alice.local_mut().codecs = vec![Codec::PCMU];
    let second = alice.create_offer();
    assert_eq!(second.origin.session_version, 2890844527);
    assert_eq!(second.origin.session_id, "2890844526");
    // Wrong number of m= lines.
    let two = parse(&crlf(ALICE_AV));
    assert_eq!(
        alice.accept_answer(&two),
        Err(NegotiationError::MediaCountMismatch {
            offered: 1,
            answered: 2
        })
    );
}

#[test]
fn rfc4317_2_6_first_stream_rejected_second_accepted() {
    let offer = parse(
        "v=0\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\ns=\n\
         c=IN IP4 host.atlanta.example.com\nt=0 0\nm=audio 49170 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\
         m=audio 51372 RTP/AVP 97 101\na=rtpmap:97 iLBC/8000\na=rtpmap:101 telephone-event/8000\n",
    );
    let mut bob = Negotiator::new(
        local([192, 0, 2, 2], 49170)
            .with_codecs(vec![Codec::new("iLBC", 8000, 97)])
            .with_telephone_event(Some(Codec::TELEPHONE_EVENT.with_payload_type(96)))
            .with_ptime(None),
        2808844564,
    );
    let answer = bob.answer(&offer).expect("answer");
    let media = &answer.sdp.media;
    assert_eq!(
        (media[0].port, media[0].formats.clone()),
        (0, vec!["0".to_owned()])
    );
    assert_eq!(media[0].attribute("rtpmap"), Some("0 PCMU/8000"));
    assert_eq!(
        (media[1].port, media[1].formats.clone()),
        (49170, vec!["97".to_owned(), "101".to_owned()])
    );
    let n = answer.negotiated.expect("negotiated");
    assert_eq!(n.media_index, 1);
    assert_eq!(n.remote_port, 51372);
    assert_eq!(
        n.telephone_event.map(|c| c.payload_type),
        Some(101),
        "the offer's number"
    );
}

#[test]
fn rfc4317_2_4_sendonly_offer_answered_recvonly() {
    let offer = parse(
        "v=0\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\ns=\n\
         c=IN IP4 host.atlanta.example.com\nt=0 0\nm=audio 49170 RTP/AVP 0 97\n\
         a=rtpmap:0 PCMU/8000\na=rtpmap:97 iLBC/8000\na=sendonly\n",
    );
    let mut bob = Negotiator::new(local([192, 0, 2, 2], 49172), 1);
    let answer = bob.answer(&offer).expect("answer");
    assert_eq!(answer.sdp.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(
        answer.negotiated.map(|n| n.direction),
        Some(Direction::RecvOnly)
    );
}

#[test]
fn answer_direction_rfc3264_6_1() {
    use Direction::*;
    let cases = [
        (SendRecv, SendRecv, SendRecv),
        (SendRecv, SendOnly, SendOnly),
        (SendRecv, Inactive, Inactive),
        (SendOnly, SendRecv, RecvOnly),
        (SendOnly, SendOnly, Inactive),
        (RecvOnly, SendRecv, SendOnly),
        (RecvOnly, RecvOnly, Inactive),
        (Inactive, SendRecv, Inactive),
    ];
    for (offered, ours, expected) in cases {
        let mut alice = Negotiator::new(local([10, 0, 0, 1], 4000).with_direction(offered), 1);
        let offer = alice.create_offer();
        let mut bob = Negotiator::new(local([10, 0, 0, 2], 5000).with_direction(ours), 1);
        let answer = bob.answer(&offer).expect("answer");
        assert_eq!(
            answer.sdp.media[0].direction(),
            Some(expected),
            "{offered} / {ours}"
        );
        let alice_side = alice.accept_answer(&answer.sdp).expect("accept");
        assert_eq!(alice_side.direction, expected.reversed().intersect(offered));
    }
}

#[test]
fn hold_and_resume_rfc4317_3_1() {
    let mut alice = Negotiator::new(local([10, 0, 0, 1], 4000), 2890844526);
    let mut bob = Negotiator::new(local([10, 0, 0, 2], 5000), 2808844564);

    let offer = alice.create_offer();
    let answer = bob.answer(&offer).expect("answer");
    alice.accept_answer(&answer.sdp).expect("accept");

    // Bob holds: re-offer with a=sendonly, version + 1.
    bob.set_direction(Direction::SendOnly);
    let hold = bob.create_offer();
    assert_eq!(hold.origin.session_version, 2808844565);
    assert_eq!(hold.media[0].direction(), Some(Direction::SendOnly));
    assert!(hold.is_hold(&hold.media[0]));
    let held = alice
        .answer(&parse(&hold.to_string()))
        .expect("answer hold");
    assert_eq!(held.sdp.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(
        held.sdp.origin.session_version, 2890844527,
        "Alice's SDP changed too"
    );
    assert_eq!(
        held.negotiated.as_ref().map(|n| n.direction),
        Some(Direction::RecvOnly)
    );
    let bob_held = bob.accept_answer(&held.sdp).expect("accept");
    assert_eq!(bob_held.direction, Direction::SendOnly);

    // Resume.
    bob.set_direction(Direction::SendRecv);
    let resume = bob.create_offer();
    assert_eq!(resume.origin.session_version, 2808844566);
    let resumed = alice.answer(&resume).expect("answer resume");
    assert_eq!(resumed.sdp.media[0].direction(), Some(Direction::SendRecv));
    assert_eq!(resumed.sdp.origin.session_version, 2890844528);
    assert_eq!(
        bob.accept_answer(&resumed.sdp).map(|n| n.direction),
        Ok(Direction::SendRecv)
    );

    // A re-INVITE that changes nothing is answered with the same version.
    let again = alice.answer(&resume).expect("answer");
    assert_eq!(again.sdp, resumed.sdp);
}

#[test]
fn legacy_hold_offer_rfc4317_5_2() {
    // c=0.0.0.0: answered normally, but nothing is sent to it.
    let offer = parse(
        "v=0\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\ns=\n\
         c=IN IP4 0.0.0.0\nt=0 0\nm=audio 23442 RTP/AVP 0\n",
    );
    let mut bob = Negotiator::new(local([10, 0, 0, 2], 49170), 1);
    let answer = bob.answer(&offer).expect("answer");
    assert_eq!(answer.sdp.media[0].direction(), Some(Direction::SendRecv));
    let n = answer.negotiated.expect("negotiated");
    assert_eq!(n.direction, Direction::RecvOnly);
    assert_eq!(n.remote_addr(), None);

    // As an answer to our offer, too.
    let mut alice = Negotiator::new(local([10, 0, 0, 1], 4000), 1);
    alice.create_offer();
    let held = parse("v=0\no=- 1 1 IN IP4 a\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 9 RTP/AVP 0\n");
    assert_eq!(
        alice.accept_answer(&held).map(|n| n.direction),
        Ok(Direction::RecvOnly)
    );
}

#[test]
fn offer_without_media_rfc4317_5_1() {
    let offer = parse("v=0\no=alice 1 1 IN IP4 a\ns=\nc=IN IP4 a\nt=0 0\n");
    let mut bob = Negotiator::new(local([10, 0, 0, 2], 49170), 1);
    let answer = bob.answer(&offer).expect("answer");
    assert!(answer.sdp.media.is_empty());
    assert!(answer.negotiated.is_none());
}

#[test]
fn answerer_rejected_our_stream() {
    let mut alice = Negotiator::new(local([10, 0, 0, 1], 4000), 1);
    alice.create_offer();
    let rejected = parse("v=0\no=- 1 1 IN IP4 a\ns=-\nc=IN IP4 a\nt=0 0\nm=audio 0 RTP/AVP 0\n");
    assert_eq!(
        alice.accept_answer(&rejected),
        Err(NegotiationError::NoCommonCodec)
    );
}

// ---- robustness ----------------------------------------------------------------------------

/// xorshift64*: a tiny deterministic generator for the mutation loop.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_input_never_panics_and_round_trips() {
    let seeds = [FULL.to_owned(), crlf(ALICE_AV), {
        let mut n = Negotiator::new(local([10, 0, 0, 1], 4000), 1);
        n.create_offer().to_string()
    }];
    let alphabet = b"=\r\n :/0123456789amvostcrbk-IP4RTPAVP\xff\x00";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].clone().into_bytes();
        for _ in 0..=rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => bytes.truncate(at),
                1 => bytes[at] = alphabet[rng.below(alphabet.len())],
                2 => {
                    bytes.remove(at);
                }
                3 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => {
                    // Duplicate a slice (lines repeated, fields doubled).
                    let end = (at + rng.below(40)).min(bytes.len());
                    let piece = bytes[at..end].to_vec();
                    let to = rng.below(bytes.len());
                    bytes.splice(to..to, piece);
                }
            }
        }
        if let Ok(sdp) = SessionDescription::parse(&bytes) {
            parsed += 1;
            let text = sdp.to_string();
            assert_eq!(
                SessionDescription::parse(text.as_bytes()).as_ref(),
                Ok(&sdp),
                "{text:?}"
            );
            // Every helper and the answerer must cope with whatever parsed.
            for m in &sdp.media {
                let _ = (m.codecs(), m.ptime(), m.rtcp_port(), sdp.is_hold(m));
            }
            let mut bob = Negotiator::new(local([10, 0, 0, 2], 5000), 1);
            if let Ok(answer) = bob.answer(&sdp) {
                assert_eq!(answer.sdp.media.len(), sdp.media.len());
                round_trip(&answer.sdp);
            }
        }
    }
    assert!(
        parsed > 1000,
        "only {parsed} mutants parsed; the loop tests little"
    );
}

#[test]
fn the_ptime_sent_is_bounded_and_honours_maxptime() {
    let offer_with = |attrs: &str| {
        parse(&format!(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
             m=audio 4000 RTP/AVP 0\n{attrs}"
        ))
    };
    for (attrs, want) in [
        ("", 20),
        ("a=ptime:30\n", 30),
        ("a=ptime:4294967295\n", 120),
        ("a=ptime:1000000\n", 120),
        ("a=ptime:0\n", 10),
        ("a=ptime:40\na=maxptime:30\n", 30),
        ("a=maxptime:0\n", 10),
        ("a=ptime:banana\n", 20),
    ] {
        let offer = offer_with(attrs);
        assert_eq!(super::send_ptime(&offer.media[0]), want, "{attrs:?}");
        let mut bob = Negotiator::new(local([10, 0, 0, 2], 6000), 5);
        let n = bob
            .answer(&offer)
            .expect("answer")
            .negotiated
            .expect("negotiated");
        assert_eq!(n.ptime, want, "answering {attrs:?}");
    }
}

// ---- hostile numbers and counts (issue 13) -------------------------------------------------

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";

/// The first offered codec, whatever it is: a handler hook that takes what the peer prefers.
fn first_offered(offered: &[Codec], _: &[Codec]) -> Option<Codec> {
    offered.first().cloned()
}

#[test]
fn an_rtpmap_clock_rate_or_channel_count_out_of_range_is_not_a_codec() {
    for rtpmap in [
        "x/0",          // no clock: every duration computed from it divides by zero
        "x/8000/0",     // no channels
        "x/8000/65535", // sizes a frame 65535 times larger
        "x/8000/9",
        "x/4294967295", // 2^32-1 Hz
        "x/1000001",
        "x/8000/-1",
        "x/+8000",
    ] {
        let sdp = parse(&format!(
            "{HEAD}m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 {rtpmap}\r\n"
        ));
        let m = &sdp.media[0];
        assert_eq!(m.rtpmap(96), None, "{rtpmap}");
        assert_eq!(m.codecs(), Vec::new(), "{rtpmap}");
        let mut bob = Negotiator::new(local([10, 0, 0, 2], 5000), 1);
        assert_eq!(
            bob.answer_with(&sdp, first_offered).map(|a| a.negotiated),
            Err(NegotiationError::NoCommonCodec),
            "{rtpmap}"
        );
    }
    // The bounds themselves are codecs.
    let sdp = parse(&format!(
        "{HEAD}m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 x/1/8\r\na=rtpmap:97 y/{}\r\n",
        super::MAX_CLOCK_RATE
    ));
    assert_eq!(sdp.media[0].codecs().len(), 2);
}

#[test]
fn payload_types_are_0_to_127_whatever_the_protocol() {
    // Formats of a non-RTP m= line are not checked by the parser, but nothing reads them as
    // payload types of 128 and up (RFC 3551 §6: the field is 7 bits), nor with a sign.
    let sdp = parse(&format!(
        "{HEAD}m=audio 4000 udptl 200 +0 08 t38\r\na=rtpmap:200 PCMU/8000\r\n"
    ));
    let m = &sdp.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![8]);
    assert!(m.codecs().iter().all(|c| c.payload_type < 128));
    // An rtpmap names a payload type with digits only.
    let sdp = parse(&format!(
        "{HEAD}m=audio 4000 RTP/AVP 96\r\na=rtpmap:+96 PCMU/8000\r\n"
    ));
    assert_eq!(sdp.media[0].rtpmap(96), None);
}

#[test]
fn media_formats_and_attributes_are_counted() {
    use super::{MAX_ATTRIBUTES, MAX_FORMATS, MAX_MEDIA};
    let m_lines = |n: usize| -> String {
        let mut s = HEAD.to_owned();
        for _ in 0..n {
            s.push_str("m=audio 0 RTP/AVP 0\r\n");
        }
        s
    };
    assert_eq!(parse(&m_lines(MAX_MEDIA)).media.len(), MAX_MEDIA);
    let e = err(&m_lines(MAX_MEDIA + 1));
    assert_eq!(
        (e.kind, e.line),
        (SdpErrorKind::TooManyMedia, 6 + MAX_MEDIA)
    );

    let formats = |n: usize| format!("{HEAD}m=audio 4000 RTP/AVP{}\r\n", " 0".repeat(n));
    assert_eq!(
        parse(&formats(MAX_FORMATS)).media[0].formats.len(),
        MAX_FORMATS
    );
    assert_eq!(
        err(&formats(MAX_FORMATS + 1)).kind,
        SdpErrorKind::TooManyFormats
    );

    // Session and media attributes count together.
    let attributes = |n: usize| {
        let half = n / 2;
        format!(
            "{HEAD}{}m=audio 4000 RTP/AVP 0\r\n{}",
            "a=x\r\n".repeat(half),
            "a=fmtp:0 y\r\n".repeat(n - half)
        )
    };
    assert!(
        attributes(MAX_ATTRIBUTES)
            .parse::<SessionDescription>()
            .is_ok()
    );
    assert_eq!(
        err(&attributes(MAX_ATTRIBUTES + 1)).kind,
        SdpErrorKind::TooManyAttributes
    );
}

#[test]
fn a_64_kib_offer_is_answered_in_linear_time() {
    // Before the counts were capped, an m= line of 8,000 formats and 4,000 a=fmtp lines (64,083
    // bytes, under the 64 KiB a SIP message may have) cost the answerer 8,000 × 4,000 × 2
    // attribute scans: 15 ms of CPU per INVITE in a release build, 0.6 s in debug. Now it is a
    // parse error, so a 488.
    let body = format!(
        "{HEAD}m=audio 4000 RTP/AVP{}\r\n{}",
        " 0".repeat(8_000),
        "a=fmtp:0 y\r\n".repeat(4_000)
    );
    assert!(body.len() < 65_536);
    assert!(SessionDescription::parse(body.as_bytes()).is_err());
}
