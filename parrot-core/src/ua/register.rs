//! Registering with a registrar (RFC 3261 §10.2), and keeping the binding fresh.

use super::UaError;
use super::command::Command;
use super::endpoint::Endpoint;
use crate::auth::{DigestClient, authorize};
use crate::dialog::{new_call_id, new_tag};
use crate::message::{HeaderName, Host, Method, Request, Response, SipUri, Uri};
use crate::transport::TransportKind;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Where a registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationState {
    /// The first REGISTER is on its way.
    Registering,
    /// Registered; the registrar granted this many seconds.
    Registered {
        /// Seconds granted.
        expires: u32,
    },
    /// The last attempt failed (a refresh is retried after a while).
    Failed(String),
    /// Unregistered (Expires: 0 sent).
    Unregistered,
}

/// A registration to make: see [`Endpoint::register`].
#[derive(Debug)]
pub struct Register {
    endpoint: Endpoint,
    registrar: Uri,
    aor: Uri,
    expires: u32,
    credentials: Option<(String, String)>,
    keepalive: Option<Duration>,
}

/// A live registration, refreshed before it expires until
/// [`Registration::unregister`] (or until dropped, when refreshing stops).
#[derive(Debug)]
pub struct Registration {
    state: watch::Receiver<RegistrationState>,
    stop: Option<oneshot::Sender<oneshot::Sender<Result<(), UaError>>>>,
}

impl Endpoint {
    /// Registers `aor` (e.g. `sip:alice@example.com`) with `registrar`
    /// (e.g. `sip:127.0.0.1:5060`); see [`Register`].
    pub fn register(&self, registrar: &str, aor: &str) -> Result<Register, UaError> {
        let registrar =
            Uri::parse(registrar).ok_or_else(|| UaError::Unroutable(registrar.to_owned()))?;
        let aor =
            Uri::parse(aor).ok_or_else(|| UaError::BadRequest(format!("not a URI: {aor}")))?;
        Ok(Register {
            endpoint: self.clone(),
            registrar,
            aor,
            expires: 3600,
            credentials: None,
            keepalive: None,
        })
    }

    /// Sends a request outside any dialog and waits for its final response.
    /// The endpoint adds the Via (and so the branch); the request carries the rest.
    pub async fn send_request(&self, request: Request) -> Result<Response, UaError> {
        let (reply, wait) = oneshot::channel();
        self.command(Command::Send { request, reply }).await?;
        wait.await.map_err(|_| UaError::Shutdown)?
    }
}

impl Register {
    /// Seconds to ask for (default 3600).
    pub fn expires(mut self, seconds: u32) -> Register {
        self.expires = seconds;
        self
    }

    /// Sends a keep-alive (a CRLF pair, RFC 5626 §4.4.1) on the registration's
    /// flow every `interval`, so a NAT between us and the registrar keeps its
    /// binding (UDP bindings often last 30 s; 25 s is a safe interval).
    pub fn keepalive(mut self, interval: Duration) -> Register {
        self.keepalive = Some(interval.max(Duration::from_secs(1)));
        self
    }

    /// Answers 401/407 challenges with these credentials.
    pub fn credentials(mut self, user: &str, password: &str) -> Register {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Registers, waits for the first answer, and keeps refreshing in the background.
    pub async fn send(self) -> Result<Registration, UaError> {
        let keepalive = self.keepalive;
        let mut client = Client::new(self);
        let mut granted = client.once(client.expires).await?;
        if client.moved {
            // RFC 3581: the registrar saw us at another address (a NAT): register
            // again, the endpoint now names that address in our Contact.
            granted = client.once(client.expires).await?;
        }
        let (state_tx, state) = watch::channel(RegistrationState::Registered { expires: granted });
        let (stop, mut stopped) = oneshot::channel::<oneshot::Sender<Result<(), UaError>>>();
        tokio::spawn(async move {
            let mut granted = granted;
            let mut ticker = keepalive.map(|every| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            // Refresh at three quarters of the granted time (RFC 3261 §10.2.4
            // leaves the margin to the UA); retry a failure after 30 s; at once
            // when our public address changed (a NAT rebinding).
            let next_refresh = |granted: u32, moved: bool| {
                let wait = if moved {
                    Duration::ZERO
                } else {
                    Duration::from_millis(u64::from(granted.max(1)) * 750)
                };
                tokio::time::Instant::now() + wait
            };
            let mut refresh_at = next_refresh(granted, client.moved);
            loop {
                tokio::select! {
                    done = &mut stopped => {
                        let result = client.once(0).await.map(|_| ());
                        let _ = state_tx.send(RegistrationState::Unregistered);
                        if let Ok(done) = done {
                            let _ = done.send(result);
                        }
                        return;
                    }
                    () = tokio::time::sleep_until(refresh_at) => {}
                    () = tick(&mut ticker) => {
                        let ping = Command::KeepAlive { registrar: client.registrar.clone() };
                        if client.endpoint.command(ping).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
                match client.once(client.expires).await {
                    Ok(g) => {
                        granted = g;
                        let _ = state_tx.send(RegistrationState::Registered { expires: g });
                    }
                    Err(UaError::Shutdown) => return,
                    Err(e) => {
                        granted = 40;
                        let _ = state_tx.send(RegistrationState::Failed(e.to_string()));
                    }
                }
                refresh_at = next_refresh(granted, client.moved);
            }
        });
        Ok(Registration {
            state,
            stop: Some(stop),
        })
    }
}

impl Registration {
    /// The current state.
    pub fn state(&self) -> RegistrationState {
        self.state.borrow().clone()
    }

    /// Removes the binding (REGISTER with Expires: 0) and stops refreshing.
    pub async fn unregister(mut self) -> Result<(), UaError> {
        let Some(stop) = self.stop.take() else {
            return Ok(());
        };
        let (done, wait) = oneshot::channel();
        stop.send(done).map_err(|_| UaError::Shutdown)?;
        wait.await.map_err(|_| UaError::Shutdown)?
    }
}

/// The REGISTER client: same Call-ID throughout, CSeq counting up (§10.2.4).
struct Client {
    endpoint: Endpoint,
    registrar: Uri,
    aor: Uri,
    expires: u32,
    call_id: String,
    from_tag: String,
    cseq: u32,
    digest: Option<DigestClient>,
    /// Our address as the registrar last saw it (Via `received`/`rport`).
    public: Option<std::net::SocketAddr>,
    /// The last answer showed a new public address: refresh now.
    moved: bool,
}

impl Client {
    fn new(r: Register) -> Client {
        let host = r
            .endpoint
            .local_addr(TransportKind::Udp)
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .map_or_else(String::new, |ip| ip.to_string());
        Client {
            digest: r.credentials.map(|(u, p)| DigestClient::new(u, p)),
            endpoint: r.endpoint,
            registrar: r.registrar,
            aor: r.aor,
            expires: r.expires,
            call_id: new_call_id(&host),
            from_tag: new_tag(),
            cseq: 0,
            public: None,
            moved: false,
        }
    }

    fn contact(&self) -> Result<String, UaError> {
        let kind = match self.registrar.as_sip().and_then(|u| u.transport()) {
            Some(t) if t.eq_ignore_ascii_case("tcp") => TransportKind::Tcp,
            _ => TransportKind::Udp,
        };
        let local = self
            .endpoint
            .local_addr(kind)
            .or_else(|| self.endpoint.local_addr(TransportKind::Udp))
            .ok_or(UaError::Unroutable("no local address".into()))?;
        let mut uri = SipUri::new(self.aor.user(), Host::from(local.ip()));
        uri.port = Some(local.port());
        Ok(format!("<{uri}>"))
    }

    fn build(&mut self, expires: u32) -> Result<Request, UaError> {
        self.cseq += 1;
        let mut req = Request::new(Method::Register, self.registrar.clone());
        let bad = |e: crate::message::HeaderError| UaError::BadRequest(e.to_string());
        let contact = self.contact()?;
        let h = req.headers_mut();
        h.push(HeaderName::MaxForwards, "70").map_err(bad)?;
        h.push(
            HeaderName::From,
            format!("<{}>;tag={}", self.aor, self.from_tag),
        )
        .map_err(bad)?;
        h.push(HeaderName::To, format!("<{}>", self.aor))
            .map_err(bad)?;
        h.push(HeaderName::CallId, self.call_id.clone())
            .map_err(bad)?;
        h.push(HeaderName::CSeq, format!("{} REGISTER", self.cseq))
            .map_err(bad)?;
        h.push(HeaderName::Contact, contact).map_err(bad)?;
        h.push(HeaderName::Expires, expires.to_string())
            .map_err(bad)?;
        req.set_body(bytes::Bytes::new());
        Ok(req)
    }

    /// One REGISTER (answering one challenge); returns the seconds granted.
    async fn once(&mut self, expires: u32) -> Result<u32, UaError> {
        self.moved = false;
        let mut req = self.build(expires)?;
        let mut resp = self.endpoint.send_request(req.clone()).await?;
        if matches!(resp.status().as_u16(), 401 | 407) {
            if let Some(client) = self.digest.as_mut() {
                if authorize(&mut req, &resp, client).is_ok() {
                    self.cseq += 1;
                    let _ = req.headers_mut().remove(&HeaderName::Via);
                    resp = self.endpoint.send_request(req).await?;
                }
            }
        }
        if !resp.status().is_success() {
            return Err(UaError::Rejected(resp.status()));
        }
        // RFC 3581 §4: `received` and `rport` say where the registrar saw us
        // come from; another address than our Via's sent-by is a NAT, and a
        // new one (first seen, or the NAT rebound us) means our Contact is stale.
        let via = resp.headers().top_via();
        let seen = via.and_then(|v| {
            let ip = v.received()?.parse().ok()?;
            Some(std::net::SocketAddr::new(ip, v.rport().flatten()?))
        });
        let sent_by = via.and_then(|v| Some(std::net::SocketAddr::new(v.host.ip()?, v.port?)));
        let natted = seen.is_some() && seen != sent_by;
        self.moved = natted && seen != self.public;
        if natted {
            self.public = seen;
        }
        if expires == 0 {
            return Ok(0);
        }
        // The expiry granted for our contact, else the Expires header, else what we asked (§10.2.4).
        let ours = self.contact()?;
        let granted = resp
            .headers()
            .contact_list()
            .iter()
            .find(|c| format!("<{}>", c.uri) == ours)
            .and_then(|c| c.expires())
            .or_else(|| resp.headers().expires().ok().flatten())
            .unwrap_or(expires);
        Ok(granted)
    }
}

/// The next keep-alive tick, or never without keep-alives.
async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
