//! Checks made before a transaction exists, and the headers every response
//! of ours carries.

use super::super::config::Config;
use super::super::reply::Reply;
use crate::auth::AuthFailure;
use crate::entropy::Entropy;
use crate::message::{HeaderName, Method, Request, Response, StatusCode, Uri};

/// The response for a request we will not process, or `None` (§8.2.1–§8.2.3,
/// RFC 4475 §3.3). ACK is never answered.
pub(super) fn precheck(req: &Request, config: &Config) -> Option<Response> {
    let entropy = &config.entropy;
    let m = req.method();
    if *m == Method::Ack {
        return None;
    }
    if let Err(missing) = crate::message::check_mandatory(req.headers()) {
        let reply =
            Reply::new(StatusCode::BAD_REQUEST).reason(format!("Bad Request (missing {missing})"));
        return Some(stateless(req, reply, entropy));
    }
    if req.version() != crate::message::Version::SIP_2_0 {
        return Some(stateless(
            req,
            Reply::new(StatusCode::VERSION_NOT_SUPPORTED),
            entropy,
        ));
    }
    if !matches!(req.uri(), Uri::Sip(_) | Uri::Tel(_)) {
        return Some(stateless(
            req,
            Reply::new(StatusCode::UNSUPPORTED_URI_SCHEME),
            entropy,
        ));
    }
    // Max-Forwards 0 is not refused here: 483 is a proxy's answer (§16.3 step 2);
    // an endpoint processes the request (RFC 4475 §3.3.12).
    // §8.2.3: a body we cannot read gets 415 with what we accept. The
    // endpoint reads SDP in INVITE, UPDATE and PRACK; other methods' bodies
    // are the handler's to judge.
    if matches!(m, Method::Invite | Method::Update | Method::Prack) && !req.body().is_empty() {
        let understood = match req.headers().content_type() {
            Ok(Some(ct)) => ct.is("application", "sdp"),
            // §20.15: a body must come with its Content-Type; one without cannot be read.
            _ => false,
        };
        if !understood {
            let reply = Reply::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .header(HeaderName::Accept, "application/sdp");
            return Some(stateless(req, reply, entropy));
        }
    }
    if *m != Method::Cancel {
        // §8.2.2.3: what we do not implement cannot be required of us; the
        // extensions we do are listed by `supported`.
        if let Some(required) = req.headers().require().ok().filter(|r| !r.is_empty()) {
            let ours = supported(config);
            let unsupported: Vec<&str> = required
                .iter()
                .map(|t| t.as_str())
                .filter(|t| !ours.iter().any(|o| o.eq_ignore_ascii_case(t)))
                .collect();
            if !unsupported.is_empty() {
                let list = unsupported;
                let reply =
                    Reply::new(StatusCode::BAD_EXTENSION).header("Unsupported", list.join(", "));
                return Some(stateless(req, reply, entropy));
            }
        }
    }
    None
}

/// The option tags (RFC 3261 §19.2) the endpoint implements, as configured:
/// what its Supported headers list and what a Require may ask of it.
pub(super) fn supported(config: &Config) -> Vec<&'static str> {
    let mut tags = Vec::with_capacity(2);
    if config.prack {
        tags.push("100rel");
    }
    if config.session_timer.is_some() {
        tags.push("timer");
    }
    tags
}

/// True when a message's Supported or Require lists the option tag `tag`.
pub(super) fn offers_tag(h: &crate::message::Headers, tag: &str) -> bool {
    let has = |l: Result<Vec<crate::message::Text>, _>| {
        l.is_ok_and(|l| l.iter().any(|t| t.as_str().eq_ignore_ascii_case(tag)))
    };
    has(h.supported()) || has(h.require())
}

/// A response built outside any transaction: To tag added.
pub(super) fn stateless(req: &Request, reply: Reply, entropy: &Entropy) -> Response {
    let mut r = reply.to_response(req);
    r.set_to_tag(&entropy.tag());
    r
}

/// Headers every response of ours carries where due: Server, Allow on 405
/// and OPTIONS, Accept and Supported on OPTIONS, Retry-After on 503, Contact
/// and the request's Record-Route on dialog-forming responses (`contact` is
/// set for those).
pub(super) fn decorate(
    config: &Config,
    resp: &mut Response,
    request: &Request,
    contact: Option<String>,
) {
    let code = resp.status();
    let h = resp.headers_mut();
    let wants_allow = code == StatusCode::METHOD_NOT_ALLOWED
        || (*request.method() == Method::Options && code.is_success());
    if wants_allow && !h.contains(&HeaderName::Allow) {
        let allow = config
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = h.push(HeaderName::Allow, allow);
    }
    if *request.method() == Method::Options && code.is_success() {
        if !h.contains(&HeaderName::Accept) {
            let _ = h.push(HeaderName::Accept, "application/sdp");
        }
        if !h.contains(&HeaderName::Supported) {
            let _ = h.push(HeaderName::Supported, supported(config).join(", "));
        }
    }
    if code == StatusCode::SERVICE_UNAVAILABLE && !h.contains(&HeaderName::RetryAfter) {
        let _ = h.push(HeaderName::RetryAfter, "5");
    }
    if let Some(c) = contact {
        if !h.contains(&HeaderName::Contact) {
            let _ = h.push(HeaderName::Contact, c);
        }
        // A dialog-forming response carries the request's Record-Route,
        // in order (§12.1.1), so the caller's in-dialog requests (ACK,
        // BYE) go through the proxies that asked to stay in the path.
        if !h.contains(&HeaderName::RecordRoute) {
            for v in request.headers().get_all(&HeaderName::RecordRoute) {
                let _ = h.push(HeaderName::RecordRoute, bytes::Bytes::copy_from_slice(v));
            }
        }
    }
    if !h.contains(&HeaderName::Server) {
        let _ = h.push(
            HeaderName::Server,
            concat!("parrot/", env!("CARGO_PKG_VERSION")),
        );
    }
}

/// The authentication counts, in an otherwise empty snapshot.
pub(super) fn auth_stats(config: &Config) -> crate::ua::EndpointStats {
    let t = lock(&config.auth_throttle);
    crate::ua::EndpointStats {
        auth_failures: t.failures,
        auth_throttled: t.refused,
        ..Default::default()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A digest check for INVITE, REGISTER and SUBSCRIBE when the endpoint authenticates:
/// the reply to send (401 with a challenge, or 403), or `None` to go on.
/// `unix` is the time in seconds.
///
/// - A source that failed too often lately ([`Throttle`](crate::auth::Throttle))
///   gets 403 for every INVITE and REGISTER, whatever it sends, and no
///   credentials are checked: a guess made while blocked tells nothing,
///   the right password included. 403 because "authorization will not help"
///   (RFC 3261 §21.4.4); not 503, which tells a client that this server is
///   down and to fail over (§21.5.4), nor silence, which over UDP makes the
///   client retransmit for 32 s (Timer F/B).
/// - Every failure answers the same 401, whatever went wrong (unknown user,
///   wrong password, bad nonce), and each counts against the source, except
///   a request without credentials (a client's first) and a valid digest on
///   an expired nonce (`stale=TRUE`, RFC 7616 §3.3).
/// - A REGISTER's digest must be for the user of the address-of-record in
///   To, else 403 (RFC 3261 §10.3 step 3): alice's password does not bind
///   contacts for bob; a SUBSCRIBE's for the mailbox in its Request-URI.
pub(super) fn challenge(
    config: &Config,
    request: &Request,
    source: std::net::IpAddr,
    unix: u64,
) -> Option<Reply> {
    let auth = config.auth.as_ref()?;
    if !matches!(
        request.method(),
        Method::Invite | Method::Register | Method::Subscribe
    ) {
        return None;
    }
    {
        let mut t = lock(&config.auth_throttle);
        if t.throttle.is_blocked(source, unix) {
            t.refused += 1;
            return Some(
                Reply::new(StatusCode::FORBIDDEN)
                    .reason("Forbidden (too many failed authentications)"),
            );
        }
    }
    let mut server = lock(&auth.server);
    let failure = match server.verify_request(request, false, |user| (auth.lookup)(user), unix) {
        Ok(()) => {
            if matches!(request.method(), Method::Register | Method::Subscribe)
                && !owns_aor(&server, request)
            {
                return Some(
                    Reply::new(StatusCode::FORBIDDEN)
                        .reason("Forbidden (not this user's address-of-record)"),
                );
            }
            return None;
        }
        Err(f) => f,
    };
    let stale = failure.is_stale();
    if !matches!(failure, AuthFailure::Missing | AuthFailure::Stale) {
        let mut t = lock(&config.auth_throttle);
        t.failures += 1;
        if t.throttle.failed(source, unix) {
            tracing::info!(%source, "too many failed authentications: source blocked");
        }
    }
    let challenge = server.challenge(stale, unix);
    Some(
        Reply::new(StatusCode::UNAUTHORIZED)
            .header(HeaderName::WwwAuthenticate, challenge.to_string()),
    )
}

/// §10.3 step 3: the authenticated user is the user part of the To URI (the
/// AOR), compared as §19.1.4 compares user parts (escapes resolved, case
/// kept). Kamailio's `auth_check(..., 1)` makes the same check.
fn owns_aor(server: &crate::auth::DigestServer, request: &Request) -> bool {
    // A REGISTER binds its To; a SUBSCRIBE reads its Request-URI's mailbox.
    let uri = match request.method() {
        Method::Subscribe => Some(request.uri()),
        _ => request.headers().to().map(|to| &to.uri),
    };
    let aor = uri
        .and_then(|u| u.as_sip())
        .and_then(|u| u.user_unescaped());
    match (server.username(request, false), aor) {
        (Some(user), Some(aor)) => user == aor,
        _ => false,
    }
}
