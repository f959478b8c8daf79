//! Parse → serialize → parse round trips for every header family, property
//! tests for URIs and Via, and a no-panic property over mangled messages.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code unwraps what it built itself

use bytes::Bytes;
use parrot_core::message::{
    HeaderName, Host, Message, Method, Params, Request, Response, SipUri, StatusCode, Uri, Via,
};
use proptest::prelude::*;

const BASE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n";

/// One line per header family, with the value a typed accessor must read back.
const FAMILIES: &[(&str, &str)] = &[
    (
        "Via",
        "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKa;received=192.0.2.1;rport=5062;maddr=224.0.1.75;ttl=1",
    ),
    (
        "v",
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKb, SIP/2.0/UDP 10.0.0.1",
    ),
    ("Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
    ("Record-Route", "<sip:p3.example.com;lr;transport=tcp>"),
    ("Content-Type", "application/sdp;charset=utf-8"),
    ("Expires", "3600"),
    ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
    ("k", "100rel, timer"),
    ("Require", "100rel"),
    ("Unsupported", "foo"),
    (
        "WWW-Authenticate",
        "Digest realm=\"atlanta.example.com\", qop=\"auth\", nonce=\"84f1c1ae6cbe5ua9c8e88dfa3ecm3459\", algorithm=SHA-256",
    ),
    ("Proxy-Authenticate", "Digest realm=\"b\", nonce=\"n\""),
    (
        "Authorization",
        "Digest username=\"alice\", realm=\"atlanta.example.com\", nonce=\"n\", uri=\"sip:bob@biloxi.example.com\", response=\"6629fae49393a05397450978507c4ef1\", qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
    ),
    (
        "Proxy-Authorization",
        "Digest username=\"a\", realm=\"b\", nonce=\"n\", uri=\"sip:x\", response=\"r\"",
    ),
    ("Retry-After", "18000;duration=3600"),
    ("User-Agent", "Parrot/0.1 (test)"),
    ("Server", "Parrot/0.1"),
    ("X-Unknown", "anything ; goes , here"),
];

fn full_message() -> String {
    let mut s = BASE.to_string();
    for (n, v) in FAMILIES {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("Content-Length: 4\r\n\r\nv=0\n");
    s
}

#[test]
fn every_header_family_round_trips() {
    let wire = Bytes::from(full_message());
    let m = Message::parse(wire.clone()).unwrap();
    assert_eq!(m.to_bytes(), wire, "byte-exact");
    let h = m.headers();
    assert_eq!(h.vias().len(), 4);
    assert_eq!(h.vias()[1].rport(), Some(Some(5062)));
    assert_eq!(h.vias()[1].received(), Some("192.0.2.1"));
    assert_eq!(h.vias()[2].transport, "WSS");
    assert_eq!(h.routes().len(), 2);
    assert_eq!(
        h.record_routes()[0].uri.as_sip().unwrap().transport(),
        Some("tcp")
    );
    assert_eq!(
        h.content_type().unwrap().unwrap().params.value("charset"),
        Some("utf-8")
    );
    assert_eq!(h.expires().unwrap(), Some(3600));
    assert_eq!(h.allow().unwrap().len(), 5);
    assert_eq!(h.supported().unwrap(), ["100rel", "timer"]);
    assert_eq!(h.require().unwrap(), ["100rel"]);
    assert_eq!(h.unsupported().unwrap(), ["foo"]);
    assert_eq!(h.www_authenticate().unwrap()[0].algorithm(), "SHA-256");
    assert_eq!(h.proxy_authenticate().unwrap()[0].realm(), Some("b"));
    assert_eq!(
        h.authorization().unwrap()[0].param("cnonce"),
        Some("0a4f113b")
    );
    assert_eq!(
        h.proxy_authorization().unwrap()[0].param("response"),
        Some("r")
    );
    let ra = h.retry_after().unwrap().unwrap();
    assert_eq!(
        (ra.seconds, ra.params.value("duration")),
        (18000, Some("3600"))
    );
    assert_eq!(h.user_agent(), Some("Parrot/0.1 (test)"));
    assert_eq!(h.server(), Some("Parrot/0.1"));
    assert_eq!(
        h.get_str(&HeaderName::from("x-unknown")),
        Some("anything ; goes , here")
    );

    // Rebuild every header from its typed value: the canonical form parses to the same values.
    let mut rebuilt = Request::new(Method::Invite, m.as_request().unwrap().uri().clone());
    let hm = rebuilt.headers_mut();
    for v in h.vias() {
        hm.push(HeaderName::Via, v.to_string()).unwrap();
    }
    hm.push(HeaderName::From, h.from().unwrap().to_string())
        .unwrap();
    hm.push(HeaderName::To, h.to().unwrap().to_string())
        .unwrap();
    hm.push(HeaderName::CallId, h.call_id().unwrap().to_string())
        .unwrap();
    hm.push(HeaderName::CSeq, h.cseq().unwrap().to_string())
        .unwrap();
    for r in h.routes() {
        hm.push(HeaderName::Route, r.to_string()).unwrap();
    }
    for c in h.www_authenticate().unwrap() {
        hm.push(HeaderName::WwwAuthenticate, c.to_string()).unwrap();
    }
    hm.push(
        HeaderName::ContentType,
        h.content_type().unwrap().unwrap().to_string(),
    )
    .unwrap();
    hm.push(HeaderName::RetryAfter, ra.to_string()).unwrap();
    rebuilt.set_body("v=0\n");
    let again = Message::parse(rebuilt.to_bytes()).unwrap();
    let g = again.headers();
    assert_eq!(g.vias(), h.vias());
    assert_eq!(g.from(), h.from());
    assert_eq!(g.to(), h.to());
    assert_eq!(g.call_id(), h.call_id());
    assert_eq!(g.cseq(), h.cseq());
    assert_eq!(g.routes(), h.routes());
    assert_eq!(g.www_authenticate().unwrap(), h.www_authenticate().unwrap());
    assert_eq!(g.content_type().unwrap(), h.content_type().unwrap());
    assert_eq!(g.retry_after().unwrap(), h.retry_after().unwrap());
    assert_eq!(again.body(), m.body());
}

#[test]
fn response_round_trip_and_modification() {
    let wire = Bytes::from_static(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n\
To: <sip:bob@b>;tag=x\r\nFrom: <sip:alice@a>;tag=y\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    let mut m = Message::parse(wire.clone()).unwrap();
    assert_eq!(m.to_bytes(), wire);
    let top = m.headers_mut().pop_via().unwrap();
    assert_eq!(top.branch(), Some("z9hG4bK1"));
    assert_eq!(m.headers().vias().len(), 1);
    let mut via = m.headers().top_via().unwrap().clone();
    via.set_param("received", Some("192.0.2.7"));
    m.headers_mut().set_top_via(&via).unwrap();
    let again = Message::parse(m.to_bytes()).unwrap();
    assert_eq!(
        again.headers().top_via().unwrap().received(),
        Some("192.0.2.7")
    );
    assert_eq!(again.as_response().unwrap().status(), StatusCode::RINGING);
    // Untouched headers keep their bytes.
    assert!(String::from_utf8_lossy(&again.to_bytes()).contains("To: <sip:bob@b>;tag=x\r\n"));
}

#[test]
fn built_messages_serialize_canonically() {
    let uri = Uri::Sip(SipUri::new(Some("bob"), Host::Domain("example.com".into())));
    let mut r = Request::new(Method::Options, uri);
    let h = r.headers_mut();
    h.push(
        HeaderName::Via,
        Via::new(
            "UDP",
            Host::Ipv4([127, 0, 0, 1].into()),
            Some(5060),
            "z9hG4bKx",
        )
        .to_string(),
    )
    .unwrap();
    h.push(HeaderName::MaxForwards, "70").unwrap();
    assert!(
        h.push(HeaderName::MaxForwards, "69").is_err(),
        "a second Max-Forwards is refused"
    );
    assert!(
        h.push(HeaderName::Via, "garbage").is_err(),
        "a malformed Via is refused"
    );
    assert!(
        h.push(HeaderName::Subject, "a\r\nInjected: x").is_err(),
        "CRLF injection is refused"
    );
    let text = r.to_string();
    assert_eq!(
        text,
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let mut resp = Response::new(StatusCode::BUSY_HERE);
    resp.set_body("x");
    assert_eq!(
        resp.to_string(),
        "SIP/2.0 486 Busy Here\r\nContent-Length: 1\r\n\r\nx"
    );
}

// ---- properties ----

fn user() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9_.!~*'()&=+$,;?/-]{0,15}|%[0-9A-F]{2}[a-z]{1,4}"
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}".prop_map(|d| Host::Domain(d.into())),
        any::<[u8; 4]>().prop_map(|a| Host::Ipv4(a.into())),
        any::<[u16; 8]>().prop_map(|a| Host::Ipv6(a.into())),
    ]
}

fn uri_params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    prop::collection::vec(
        (
            "[a-z][a-z0-9-]{0,8}",
            prop::option::of("[a-zA-Z0-9.!~*'()-]{1,10}"),
        ),
        0..4,
    )
}

fn header_params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    prop::collection::vec(
        (
            "[a-z][a-z0-9-]{0,8}",
            prop::option::of(prop_oneof![
                "[a-zA-Z0-9.!%*_+`'~-]{1,10}",
                "\"[a-z ;,=]{0,8}\""
            ]),
        ),
        0..4,
    )
}

fn with_params(mut p: Params, list: &[(String, Option<String>)]) -> Params {
    for (n, v) in list {
        p = p.with(n, v.as_deref());
    }
    p
}

proptest! {
    #[test]
    fn sip_uri_round_trips(u in prop::option::of(user()), h in host(), port in prop::option::of(1u16..), secure: bool, params in uri_params()) {
        let mut uri = SipUri::new(u.as_deref(), h);
        uri.secure = secure;
        uri.port = port;
        uri.params = with_params(Params::new(), &params);
        let text = uri.to_string();
        let parsed = Uri::parse(&text).unwrap_or_else(|| panic!("{text} did not parse"));
        let sip = parsed.as_sip().unwrap();
        prop_assert_eq!(&sip.user, &uri.user);
        prop_assert_eq!(&sip.host, &uri.host);
        prop_assert_eq!(sip.port, uri.port);
        prop_assert_eq!(sip.secure, secure);
        prop_assert_eq!(sip.params.as_str(), uri.params.as_str());
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn via_round_trips(t in "UDP|TCP|TLS|WS|WSS|SCTP", h in host(), port in prop::option::of(1u16..), branch in "z9hG4bK[a-zA-Z0-9.-]{1,20}", params in header_params()) {
        let mut via = Via::new(&t, h, port, &branch);
        via.params = with_params(via.params.clone(), &params);
        let text = via.to_string();
        let wire = format!("SIP/2.0 200 OK\r\nVia: {text}\r\nContent-Length: 0\r\n\r\n");
        let m = Message::parse(Bytes::from(wire)).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let got = m.headers().top_via().unwrap();
        prop_assert_eq!(got, &via);
        prop_assert_eq!(got.branch(), via.branch());
    }

    #[test]
    fn mangled_messages_never_panic(cuts in prop::collection::vec((0usize..1000, any::<u8>()), 1..8), trunc in 0usize..1000) {
        let mut bytes = full_message().into_bytes();
        for (at, b) in cuts {
            let at = at % bytes.len();
            bytes[at] = b;
        }
        bytes.truncate(trunc.max(1).min(bytes.len()));
        if let Ok(m) = Message::parse(Bytes::from(bytes)) {
            // Whatever parses must serialize and parse again to the same message.
            let again = Message::parse(m.to_bytes()).unwrap();
            prop_assert_eq!(again.headers().vias(), m.headers().vias());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::parse(Bytes::from(bytes));
    }
}

#[test]
fn response_to_a_request_copies_the_matching_headers() {
    let m = Message::parse(Bytes::from(full_message())).unwrap();
    let req = m.as_request().unwrap();
    let mut resp = req.response(StatusCode::OK);
    assert!(resp.set_to_tag("abc"));
    let r = Message::parse(resp.to_bytes()).unwrap();
    let h = r.headers();
    assert_eq!(h.vias(), req.headers().vias());
    assert_eq!(h.from(), req.headers().from());
    assert_eq!(h.to().unwrap().tag(), Some("abc"));
    assert_eq!(h.to().unwrap().uri, req.headers().to().unwrap().uri);
    assert_eq!(h.call_id(), req.headers().call_id());
    assert_eq!(h.cseq(), req.headers().cseq());
    assert!(h.routes().is_empty() && h.content_length() == Some(0));
}

#[test]
fn lazy_parse_defers_typing_and_validate_reports() {
    let wire = full_message().replace(
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "From: Bell, Alexander <sip:a@b>;tag=1",
    );
    let strict = Message::parse(Bytes::from(wire.clone())).unwrap_err();
    assert_eq!(
        strict.kind,
        parrot_core::message::ErrorKind::BadHeader(HeaderName::From)
    );
    assert_eq!(&wire[strict.offset..strict.offset + 4], "Bell");
    let lazy = Message::parse_lazy(Bytes::from(wire)).unwrap();
    assert!(
        lazy.headers().from().is_none(),
        "a malformed From reads as absent"
    );
    assert_eq!(lazy.headers().to().unwrap().user(), Some("bob"));
    assert_eq!(lazy.validate().unwrap_err(), strict);
    // Duplicates and Content-Length are still checked while framing.
    let dup = full_message().replace(
        "CSeq: 314159 INVITE\r\n",
        "CSeq: 314159 INVITE\r\nCSeq: 1 INVITE\r\n",
    );
    assert!(Message::parse_lazy(Bytes::from(dup)).is_err());
}

#[test]
fn top_via_alone_when_lazy() {
    let wire = full_message().replace(
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, garbage\r\n",
    );
    let lazy = Message::parse_lazy(Bytes::from(wire.clone())).unwrap();
    assert_eq!(
        lazy.headers().top_via().unwrap().branch(),
        Some("z9hG4bK776asdhds")
    );
    assert!(
        lazy.headers().vias().is_empty(),
        "the whole list is malformed"
    );
    assert!(lazy.validate().is_err());
    assert!(Message::parse(Bytes::from(wire)).is_err());
}

/// The To tag is appended to the request's bytes (§8.2.6.2), in both forms
/// of the value: after the `>` of a name-addr (with its parameters and
/// trailing blanks) and after the URI of an addr-spec, whose `;…` are header
/// parameters (§20); a To that already has a tag keeps it.
#[test]
fn to_tag_is_appended_to_the_value_as_received() {
    let cases = [
        (
            "\"Bob B\" <sip:bob@example.com;user=phone>;x=1 \t",
            "\"Bob B\" <sip:bob@example.com;user=phone>;x=1;tag=abc",
        ),
        ("sip:bob@example.com", "sip:bob@example.com;tag=abc"),
        ("sip:bob@example.com;x=1", "sip:bob@example.com;x=1;tag=abc"),
        ("<sip:bob@example.com> ", "<sip:bob@example.com>;tag=abc"),
        (
            "Bob <sip:bob@example.com;transport=tcp>",
            "Bob <sip:bob@example.com;transport=tcp>;tag=abc",
        ),
        ("<tel:+1234>", "<tel:+1234>;tag=abc"),
        (
            "sip:bob@[2001:db8::1]:5070",
            "sip:bob@[2001:db8::1]:5070;tag=abc",
        ),
        (
            "<sip:bob@example.com>;tag=old",
            "<sip:bob@example.com>;tag=old",
        ),
    ];
    for (to, want) in cases {
        let raw = format!(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=f\r\nTo: {to}\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let m = Message::parse(Bytes::from(raw)).unwrap();
        let mut resp = m.as_request().unwrap().response(StatusCode::OK);
        assert!(resp.set_to_tag("abc"));
        assert_eq!(resp.headers().get_str(&HeaderName::To), Some(want), "{to}");
        // The typed To (set beside the bytes, not parsed from them, when
        // the request's had no parameters) is what the bytes parse to.
        let again = Message::parse(resp.to_bytes()).unwrap();
        assert_eq!(again.headers().to(), resp.headers().to(), "{to}");
        let tag = if want.ends_with("old") { "old" } else { "abc" };
        assert_eq!(resp.headers().to().unwrap().tag(), Some(tag), "{to}");
        let x = resp
            .headers()
            .to()
            .unwrap()
            .params
            .get("x")
            .map(|v| v.map(str::to_owned));
        assert_eq!(
            x,
            want.contains("x=1").then(|| Some("1".to_owned())),
            "{to}"
        );
    }
}
