//! Dialog tests on RFC 3665 call-flow shapes.

use super::*;
use crate::message::Message;
use bytes::Bytes;

fn parse(text: &str) -> Message {
    let wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
    Message::parse(Bytes::from(wire)).expect("test message parses")
}

fn req(text: &str) -> Request {
    parse(text).as_request().expect("a request").clone()
}

fn resp(text: &str) -> Response {
    parse(text).as_response().expect("a response").clone()
}

/// RFC 3665 §3.2: Alice's INVITE through two proxies.
const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
Content-Length: 0

";

/// The 200 OK as Alice receives it (Record-Route as the proxies added them).
const OK_200: &str = "SIP/2.0 200 OK
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=314159
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
Content-Length: 0

";

/// The INVITE as Bob receives it.
const INVITE_AT_BOB: &str = "INVITE sip:bob@client.biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1
Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
Max-Forwards: 68
Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
Content-Length: 0

";

fn uac() -> Dialog {
    Dialog::uac_from_response(&req(INVITE), &resp(OK_200)).expect("dialog")
}

fn uas() -> Dialog {
    let invite = req(INVITE_AT_BOB);
    let mut ok = invite.response(StatusCode::OK);
    assert!(ok.set_to_tag("314159"));
    ok.headers_mut()
        .push(
            HeaderName::Contact,
            "<sip:bob@client.biloxi.example.com;transport=tcp>",
        )
        .expect("contact");
    Dialog::uas_from_request(&invite, &ok).expect("dialog")
}

fn route_strings(r: &Request) -> Vec<String> {
    r.headers()
        .routes()
        .iter()
        .map(|a| a.uri.to_string())
        .collect()
}

#[test]
fn uac_dialog_from_200_with_record_route() {
    let d = uac();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.role(), Role::Uac);
    assert_eq!(
        *d.id(),
        DialogId::new(
            "3848276298220188511@atlanta.example.com",
            "9fxced76sl",
            "314159"
        )
    );
    assert_eq!(
        d.remote_target().to_string(),
        "sip:bob@client.biloxi.example.com;transport=tcp"
    );
    let routes: Vec<String> = d.route_set().iter().map(|a| a.uri.to_string()).collect();
    assert_eq!(
        routes,
        [
            "sip:ss1.atlanta.example.com;lr",
            "sip:ss2.biloxi.example.com;lr"
        ]
    );
    assert_eq!(d.local_cseq(), 2);
    assert_eq!(d.remote_cseq(), None);
    assert!(!d.secure());
    assert_eq!(
        DialogId::from_response(&resp(OK_200)).as_ref(),
        Some(d.id())
    );
}

#[test]
fn loose_routing_bye() {
    let mut d = uac();
    let bye = d.request(Method::Bye);
    assert_eq!(
        bye.uri().to_string(),
        "sip:bob@client.biloxi.example.com;transport=tcp"
    );
    assert_eq!(
        route_strings(&bye),
        [
            "sip:ss1.atlanta.example.com;lr",
            "sip:ss2.biloxi.example.com;lr"
        ]
    );
    let h = bye.headers();
    assert_eq!(
        h.cseq().map(|c| (c.seq, c.method.clone())),
        Some((2, Method::Bye))
    );
    assert_eq!(h.from().and_then(|f| f.tag()), Some("9fxced76sl"));
    assert_eq!(
        h.from().map(|f| f.uri.to_string()).as_deref(),
        Some("sip:alice@atlanta.example.com")
    );
    assert_eq!(h.to().and_then(|t| t.tag()), Some("314159"));
    assert_eq!(
        h.call_id().map(|c| c.as_str()),
        Some("3848276298220188511@atlanta.example.com")
    );
    assert_eq!(h.max_forwards(), Some(70));
    assert!(h.contact_list().is_empty(), "BYE carries no Contact");
    assert!(h.vias().is_empty(), "the caller adds the Via");
    // What we build parses back.
    let again = parse(&String::from_utf8_lossy(&bye.to_bytes()));
    assert_eq!(
        again.as_request().map(|r| r.headers().routes().len()),
        Some(2)
    );
}

#[test]
fn cseq_increments_and_ack_keeps_the_invite_number() {
    let mut d = uac();
    let ack = d.ack_for(1);
    assert_eq!(
        ack.headers().cseq().map(|c| (c.seq, c.method.clone())),
        Some((1, Method::Ack))
    );
    assert_eq!(*ack.method(), Method::Ack);
    assert_eq!(ack.headers().contact_list().len(), 1);
    assert_eq!(d.local_cseq(), 2);
    let bye = d.request(Method::Bye);
    assert_eq!(bye.headers().cseq().map(|c| c.seq), Some(2));
    let reinvite = d.request(Method::Invite);
    assert_eq!(reinvite.headers().cseq().map(|c| c.seq), Some(3));
    assert_eq!(
        reinvite
            .headers()
            .contact_list()
            .first()
            .map(|c| c.uri.to_string())
            .as_deref(),
        Some("sip:alice@client.atlanta.example.com;transport=tcp")
    );
    let ack = d.request(Method::Ack);
    assert_eq!(ack.headers().cseq().map(|c| c.seq), Some(3));
    assert_eq!(d.local_cseq(), 4);
}

#[test]
fn strict_routing() {
    let ok = OK_200.replace(
        "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>",
        "Record-Route: <sip:ss2.biloxi.example.com>, <sip:ss1.atlanta.example.com;method=INVITE>",
    );
    let mut d = Dialog::uac_from_response(&req(INVITE), &resp(&ok)).expect("dialog");
    let bye = d.request(Method::Bye);
    // The first route (ss1, no lr) becomes the Request-URI, stripped of `method`.
    assert_eq!(bye.uri().to_string(), "sip:ss1.atlanta.example.com");
    assert_eq!(
        route_strings(&bye),
        [
            "sip:ss2.biloxi.example.com",
            "sip:bob@client.biloxi.example.com;transport=tcp"
        ]
    );
}

#[test]
fn uas_dialog_route_set_in_order() {
    let d = uas();
    assert_eq!(d.role(), Role::Uas);
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(
        *d.id(),
        DialogId::new(
            "3848276298220188511@atlanta.example.com",
            "314159",
            "9fxced76sl"
        )
    );
    let routes: Vec<String> = d.route_set().iter().map(|a| a.uri.to_string()).collect();
    assert_eq!(
        routes,
        [
            "sip:ss2.biloxi.example.com;lr",
            "sip:ss1.atlanta.example.com;lr"
        ]
    );
    assert_eq!(
        d.remote_target().to_string(),
        "sip:alice@client.atlanta.example.com;transport=tcp"
    );
    assert_eq!(d.remote_cseq(), Some(1));
    assert_eq!(d.local_cseq(), 1);
    let mut d = d;
    let bye = d.request(Method::Bye);
    assert_eq!(
        bye.uri().to_string(),
        "sip:alice@client.atlanta.example.com;transport=tcp"
    );
    assert_eq!(
        route_strings(&bye),
        [
            "sip:ss2.biloxi.example.com;lr",
            "sip:ss1.atlanta.example.com;lr"
        ]
    );
    let h = bye.headers();
    assert_eq!(h.from().and_then(|f| f.tag()), Some("314159"));
    assert_eq!(h.from().and_then(|f| f.user()), Some("bob"));
    assert_eq!(h.to().and_then(|t| t.tag()), Some("9fxced76sl"));
    assert_eq!(h.cseq().map(|c| c.seq), Some(1));
}

/// A BYE from Alice as Bob receives it, with CSeq `seq` and method `method`.
fn in_dialog_from_alice(method: &str, seq: u32, contact: &str) -> Request {
    req(&format!(
        "{method} sip:bob@client.biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.2
Max-Forwards: 69
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=314159
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: {seq} {method}
{contact}Content-Length: 0

"
    ))
}

#[test]
fn lower_remote_cseq_is_500() {
    let mut d = uas();
    let late = in_dialog_from_alice("INFO", 3, "");
    assert_eq!(d.check_remote_cseq(&late), Ok(()));
    assert_eq!(d.remote_cseq(), Some(3));
    let older = in_dialog_from_alice("INFO", 2, "");
    assert_eq!(
        d.check_remote_cseq(&older),
        Err(StatusCode::SERVER_INTERNAL_ERROR)
    );
    assert_eq!(d.remote_cseq(), Some(3));
    // ACK and CANCEL are exempt.
    let ack = in_dialog_from_alice("ACK", 1, "");
    assert_eq!(d.check_remote_cseq(&ack), Ok(()));
    assert_eq!(d.remote_cseq(), Some(3));
    let bye = in_dialog_from_alice("BYE", 4, "");
    assert_eq!(d.on_request(&bye), Ok(()));
    assert_eq!(d.remote_cseq(), Some(4));
}

#[test]
fn target_refresh_by_reinvite() {
    let mut d = uas();
    let reinvite = in_dialog_from_alice(
        "INVITE",
        2,
        "Contact: <sip:alice@192.0.2.200:5070;transport=tcp>\n",
    );
    assert_eq!(d.on_request(&reinvite), Ok(()));
    assert_eq!(
        d.remote_target().to_string(),
        "sip:alice@192.0.2.200:5070;transport=tcp"
    );
    // A BYE's Contact (not a target refresh) changes nothing.
    let bye = in_dialog_from_alice("BYE", 3, "Contact: <sip:elsewhere@192.0.2.9>\n");
    assert!(!d.refresh_target(&bye));
    assert_eq!(
        d.remote_target().to_string(),
        "sip:alice@192.0.2.200:5070;transport=tcp"
    );
    // As UAC: the 2xx to our re-INVITE refreshes the target.
    let mut c = uac();
    let _reinvite = c.request(Method::Invite);
    let ok = OK_200
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
        .replace("client.biloxi.example.com;transport=tcp", "192.0.2.4:5062");
    c.on_response(&resp(&ok));
    assert_eq!(c.remote_target().to_string(), "sip:bob@192.0.2.4:5062");
    assert!(c.is_confirmed());
    // 481 to an in-dialog request ends it.
    let gone = OK_200
        .replace("200 OK", "481 Call/Transaction Does Not Exist")
        .replace("CSeq: 1 INVITE", "CSeq: 3 BYE");
    c.on_response(&resp(&gone));
    assert!(c.is_terminated());
}

const RINGING: &str = "SIP/2.0 180 Ringing
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
Record-Route: <sip:ss2.biloxi.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=314159
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
Content-Length: 0

";

#[test]
fn early_dialog_confirmed_by_200() {
    let invite = req(INVITE);
    let mut d = Dialog::uac_from_response(&invite, &resp(RINGING)).expect("early dialog");
    assert!(d.is_early());
    assert_eq!(d.route_set().len(), 1);
    let ok = resp(OK_200);
    assert_eq!(
        DialogId::from_response(&ok).as_ref(),
        Some(d.id()),
        "same dialog"
    );
    d.on_response(&ok);
    assert!(d.is_confirmed());
    // The route set is recomputed from the 2xx.
    assert_eq!(d.route_set().len(), 2);
    // 180 without a To tag creates nothing; 100 never does.
    let no_tag = RINGING.replace(";tag=314159", "");
    assert_eq!(
        Dialog::uac_from_response(&invite, &resp(&no_tag)),
        Err(DialogError::MissingToTag)
    );
    let trying = RINGING.replace("180 Ringing", "100 Trying");
    assert!(matches!(
        Dialog::uac_from_response(&invite, &resp(&trying)),
        Err(DialogError::NotDialogCreating(_))
    ));
}

#[test]
fn early_dialog_terminated_by_failure() {
    let mut d = Dialog::uac_from_response(&req(INVITE), &resp(RINGING)).expect("early dialog");
    let busy = RINGING.replace("180 Ringing", "486 Busy Here");
    d.on_response(&resp(&busy));
    assert!(d.is_terminated());
}

#[test]
fn uas_early_dialog() {
    let invite = req(INVITE_AT_BOB);
    let mut ringing = invite.response(StatusCode::RINGING);
    ringing.set_to_tag("314159");
    let mut d = Dialog::uas_from_request(&invite, &ringing).expect("early");
    assert!(d.is_early());
    let ok = {
        let mut r = invite.response(StatusCode::OK);
        r.set_to_tag("314159");
        r
    };
    d.on_sent_response(&ok);
    assert!(d.is_confirmed());
    // Without our To tag there is no dialog.
    assert_eq!(
        Dialog::uas_from_request(&invite, &invite.response(StatusCode::RINGING)),
        Err(DialogError::MissingToTag)
    );
}

#[test]
fn in_dialog_requests_match_by_dialog_id() {
    let d = uas();
    let bye = in_dialog_from_alice("BYE", 2, "");
    assert!(is_in_dialog(&bye));
    assert_eq!(DialogId::from_request(&bye).as_ref(), Some(d.id()));
    let stray = req(&String::from_utf8_lossy(&bye.to_bytes()).replace("tag=314159", "tag=999"));
    assert!(
        is_in_dialog(&stray),
        "a To tag claims a dialog: 481 if none matches"
    );
    assert_ne!(DialogId::from_request(&stray).as_ref(), Some(d.id()));
    let fresh = req(INVITE_AT_BOB);
    assert!(!is_in_dialog(&fresh));
}

#[test]
fn secure_flag_from_sips() {
    let invite = INVITE.replace("INVITE sip:bob@biloxi", "INVITE sips:bob@biloxi");
    let d = Dialog::uac_from_response(&req(&invite), &resp(OK_200)).expect("dialog");
    assert!(d.secure());
}
