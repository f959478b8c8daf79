//! Parse arbitrary bytes as one SIP message. On success: every typed accessor
//! must run without panicking, and serialize → parse must succeed and give the
//! same Via/From/To/Call-ID/CSeq values and body; serializing the reparsed
//! message must give the same bytes again.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use parrot_core::message::{Contacts, Headers, Message};

fn touch_accessors(h: &Headers) {
    for v in h.vias() {
        let _ = (v.branch(), v.has_rfc3261_branch(), v.received(), v.rport());
        let _ = (v.maddr(), v.ttl(), v.host.ip(), v.to_string());
        for p in v.params.iter() {
            let _ = p;
        }
    }
    let _ = h.top_via();
    for na in h.from().into_iter().chain(h.to()) {
        let _ = (na.tag(), na.user(), na.host(), na.expires(), na.q());
        let _ = (na.uri.scheme(), na.uri.as_sip(), na.to_string());
    }
    let _ = (h.call_id(), h.cseq().map(ToString::to_string));
    let _ = (h.max_forwards(), h.content_length());
    match h.contacts() {
        Contacts::Any => {}
        Contacts::List(l) => {
            for c in &l {
                let _ = (c.expires(), c.q(), c.to_string());
            }
        }
    }
    for na in h
        .contact_list()
        .iter()
        .chain(h.routes())
        .chain(h.record_routes())
    {
        let _ = (na.uri.user(), na.uri.host(), na.to_string());
        if let Some(sip) = na.uri.as_sip() {
            let _ = (sip.transport(), sip.user_unescaped());
        }
    }
    if let Ok(Some(ct)) = h.content_type() {
        let _ = (ct.is("application", "sdp"), ct.to_string());
    }
    let _ = (h.expires(), h.min_expires());
    if let Ok(Some(ra)) = h.retry_after() {
        let _ = ra.to_string();
    }
    let _ = (h.allow(), h.supported(), h.require(), h.proxy_require());
    let _ = h.unsupported();
    for list in [
        h.www_authenticate(),
        h.proxy_authenticate(),
        h.authorization(),
        h.proxy_authorization(),
    ]
    .into_iter()
    .flatten()
    {
        for a in &list {
            let _ = (a.realm(), a.nonce(), a.algorithm(), a.to_string());
        }
    }
    let _ = (h.user_agent(), h.server());
    for f in h.iter() {
        let _ = (f.name().as_str(), f.value_str(), f.raw());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    touch_accessors(msg.headers());
    let _ = msg.check_mandatory();
    if let Some(req) = msg.as_request() {
        let _ = (req.method().as_str(), req.uri().to_string());
    }
    if let Some(resp) = msg.as_response() {
        let _ = (resp.status(), resp.reason());
    }

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
});
