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
    /// The last attempt failed: refused, no answer, or a 2xx that granted no time
    /// (retried after 15–30 s, then backing off up to 15–30 min; RFC 5626 §4.5).
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
    ///
    /// A registrar may shorten the time asked for but not lengthen it (RFC 3261
    /// §10.2.4, §10.3 step 7): a longer grant is refreshed as if the time asked for had
    /// been granted. A 2xx that grants no time for our contact (`expires=0`) leaves us
    /// unregistered: the first REGISTER fails with [`UaError::NotRegistered`], a refresh
    /// turns the state to [`RegistrationState::Failed`] and is retried with back-off.
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
            // leaves the margin to the UA); at once when our public address
            // changed (a NAT rebinding); after failures, with back-off.
            let next_refresh = |granted: u32, moved: bool| {
                let wait = if moved {
                    Duration::ZERO
                } else {
                    refresh_delay(granted)
                };
                tokio::time::Instant::now() + wait
            };
            let mut refresh_at = next_refresh(granted, client.moved);
            let mut failures = 0u32;
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
                        failures = 0;
                        let _ = state_tx.send(RegistrationState::Registered { expires: g });
                        refresh_at = next_refresh(granted, client.moved);
                    }
                    Err(UaError::Shutdown) => return,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = retry_delay(failures, crate::entropy::global().next_u64());
                        tracing::info!(registrar = %client.registrar, error = %e, ?wait,
                            "registration failed; retrying");
                        let _ = state_tx.send(RegistrationState::Failed(e.to_string()));
                        refresh_at = tokio::time::Instant::now() + wait;
                    }
                }
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
        granted_time(expires, granted, &self.registrar)
    }
}

/// What a 2xx's grant means for a REGISTER that asked for `asked` seconds (> 0):
/// the seconds to refresh by, or not registered at all.
fn granted_time(asked: u32, granted: u32, registrar: &Uri) -> Result<u32, UaError> {
    if granted == 0 {
        // No time for our binding: the registrar does not hold it (a 2xx that
        // removed it, or a registrar that lists it as gone).
        tracing::warn!(%registrar, asked, "the registrar's 2xx grants our binding 0 s: not registered");
        return Err(UaError::NotRegistered);
    }
    if granted > asked {
        // RFC 3261 §10.2.4 / §10.3 step 7: the registrar may shorten the
        // interval, never lengthen it. Refresh as if it had granted what we asked.
        tracing::info!(%registrar, asked, granted,
            "the registrar granted longer than asked: refreshing by the time asked");
        return Ok(asked);
    }
    Ok(granted)
}

/// When to refresh a binding granted `granted` seconds: at three quarters of it
/// (RFC 3261 §10.2.4 leaves the margin to the UA).
fn refresh_delay(granted: u32) -> Duration {
    Duration::from_millis(u64::from(granted.max(1)) * 750)
}

/// How long to wait after the `failures`-th failure in a row (≥ 1), as RFC 5626
/// §4.5 backs off: `min(1800 s, 30 s · 2^(failures−1))`, times a random factor
/// between 50 % and 100 % (from `random`) so that many clients refused at once do
/// not come back at once.
fn retry_delay(failures: u32, random: u64) -> Duration {
    const BASE_SECS: u64 = 30;
    const MAX_SECS: u64 = 1800;
    let exp = failures.saturating_sub(1).min(16);
    let ceiling_ms = (BASE_SECS << exp).min(MAX_SECS) * 1000;
    // 50 % plus up to 50 % more.
    let extra = random % (ceiling_ms / 2 + 1);
    Duration::from_millis(ceiling_ms / 2 + extra)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code

    use super::*;
    use crate::message::{Message, StatusCode};
    use crate::ua::reply::Reply;
    use std::net::SocketAddr;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    #[test]
    fn grants_are_never_longer_than_asked_and_zero_is_no_registration() {
        let r = Uri::parse("sip:192.0.2.1").unwrap();
        assert_eq!(granted_time(60, 30, &r).unwrap(), 30);
        assert_eq!(granted_time(60, 60, &r).unwrap(), 60);
        assert_eq!(granted_time(60, 3600, &r).unwrap(), 60);
        assert!(matches!(
            granted_time(60, 0, &r),
            Err(UaError::NotRegistered)
        ));
    }

    #[test]
    fn retries_back_off_between_half_and_all_of_a_doubling_ceiling() {
        let secs = |f, r| retry_delay(f, r).as_secs_f64();
        assert_eq!(secs(1, 0), 15.0);
        assert_eq!(secs(1, 15_000), 30.0);
        assert_eq!(secs(2, 0), 30.0);
        assert_eq!(secs(3, 0), 60.0);
        assert_eq!(secs(6, 0), 480.0);
        assert_eq!(secs(7, 0), 900.0, "capped at 1800 s");
        assert_eq!(
            secs(u32::MAX, u64::MAX),
            retry_delay(7, u64::MAX).as_secs_f64()
        );
        for r in [1u64, 7, 12_345, u64::MAX] {
            let d = secs(4, r);
            assert!((120.0..=240.0).contains(&d), "{d}");
        }
    }

    /// A registrar played by a plain TCP listener: each REGISTER is answered
    /// 200 with our Contact and the next `expires=` of `grants` (the last one
    /// repeated), and reported with the (virtual) time it came at. TCP, not
    /// UDP: the transaction then lingers for no Timer K (RFC 3261 §17.1.2.2),
    /// which the endpoint's driver would wait out on the real clock.
    async fn scripted_registrar(
        grants: Vec<u32>,
    ) -> (SocketAddr, mpsc::UnboundedReceiver<(Instant, u32)>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut n = 0;
            loop {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                    continue;
                };
                // Content-Length: 0 (the client's REGISTERs carry no body).
                let head: Vec<u8> = buf.drain(..end + 4).collect();
                let Ok(Message::Request(req)) = Message::parse(bytes::Bytes::from(head)) else {
                    continue; // a keep-alive
                };
                let grant = grants[n.min(grants.len() - 1)];
                n += 1;
                let contact = req.headers().contact_list()[0].uri.clone();
                let response = Reply::new(StatusCode::OK)
                    .header(HeaderName::Contact, format!("<{contact}>;expires={grant}"))
                    .to_response(&req);
                conn.write_all(&response.to_bytes()).await.unwrap();
                if tx.send((Instant::now(), grant)).is_err() {
                    return;
                }
            }
        });
        (addr, rx)
    }

    async fn client() -> Endpoint {
        Endpoint::builder()
            .udp("127.0.0.1:0".parse().unwrap())
            .tcp("127.0.0.1:0".parse().unwrap())
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_grant_is_refreshed_by_the_time_asked() {
        let (registrar, mut seen) = scripted_registrar(vec![3600]).await;
        let ep = client().await;
        let reg = ep
            .register(
                &format!("sip:{registrar};transport=tcp"),
                "sip:alice@example.com",
            )
            .unwrap()
            .expires(60)
            .send()
            .await
            .unwrap();
        // Before: Registered { expires: 3600 }, and the next REGISTER 45 min later.
        assert_eq!(reg.state(), RegistrationState::Registered { expires: 60 });
        let (first, _) = seen.recv().await.unwrap();
        let (second, _) = tokio::time::timeout(Duration::from_secs(120), seen.recv())
            .await
            .expect("refreshed within the 60 s asked for")
            .unwrap();
        let gap = second - first;
        assert!(gap <= Duration::from_secs(60), "{gap:?}");
        assert!(gap >= Duration::from_secs(40), "{gap:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_2xx_granting_zero_is_no_registration() {
        let (registrar, _seen) = scripted_registrar(vec![0]).await;
        let ep = client().await;
        let result = ep
            .register(
                &format!("sip:{registrar};transport=tcp"),
                "sip:alice@example.com",
            )
            .unwrap()
            .expires(60)
            .send()
            .await;
        // Before: Ok, Registered { expires: 0 }, refreshed every 750 ms.
        assert!(matches!(result, Err(UaError::NotRegistered)), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_granted_zero_fails_and_backs_off() {
        let (registrar, mut seen) = scripted_registrar(vec![60, 0]).await;
        let ep = client().await;
        let reg = ep
            .register(
                &format!("sip:{registrar};transport=tcp"),
                "sip:alice@example.com",
            )
            .unwrap()
            .expires(60)
            .send()
            .await
            .unwrap();
        assert_eq!(reg.state(), RegistrationState::Registered { expires: 60 });
        let start = Instant::now();
        let mut times = Vec::new();
        while let Ok(Some((at, _))) =
            tokio::time::timeout_at(start + Duration::from_secs(400), seen.recv()).await
        {
            times.push(at);
        }
        // The first REGISTER, the refresh at 45 s (granted 0), then retries after
        // 15–30 s, 30–60 s, 60–120 s, 120–240 s. Before: one every 750 ms after the
        // refresh, ~470 in these 400 s.
        assert!(
            matches!(reg.state(), RegistrationState::Failed(ref e) if e.contains("0 s")),
            "{:?}",
            reg.state()
        );
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        println!("REGISTERs in 400 s: {}; gaps {gaps:?}", times.len());
        assert!((4..=7).contains(&times.len()), "{} REGISTERs", times.len());
        for (i, gap) in gaps.iter().enumerate().skip(1) {
            let floor = Duration::from_secs(15 << (i - 1));
            assert!(
                *gap >= floor,
                "retry {i} after {gap:?}, wanted {floor:?} at least"
            );
        }
    }
}
