//! The endpoint: its builder, its handle, its statistics.

use super::UaError;
use super::command::{Command, CoreHandle};
use super::config::{AuthThrottle, Config, ServerAuth};
use super::core::UaCore;
use super::counters::{Counters, EndpointStats};
use super::driver::Driver;
use super::handler::{DefaultHandler, SipHandler};
use super::registrar::Registrar;
use super::uac::Dial;
use crate::message::{Method, Uri};
use crate::sdp::SrtpMode;
use crate::transaction::TimerConfig;
use crate::transport::{TransportConfig, TransportKind, Transports};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Builds an [`Endpoint`].
pub struct EndpointBuilder<F> {
    binds: Vec<(TransportKind, SocketAddr, Option<Arc<rustls::ServerConfig>>)>,
    factory: F,
    config: Config,
    transport: TransportConfig,
}

impl std::fmt::Debug for EndpointBuilder<()> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("binds", &self.binds.len())
            .finish_non_exhaustive()
    }
}

/// A SIP endpoint: transports, transactions, dialogs and the handler tasks.
/// Cheap to clone; the endpoint runs until [`Endpoint::shutdown`].
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) addrs: Arc<Vec<(TransportKind, SocketAddr)>>,
    pub(crate) counters: Arc<Counters>,
    closed: watch::Receiver<bool>,
}

impl Endpoint {
    /// Starts building an endpoint.
    pub fn builder() -> EndpointBuilder<fn() -> DefaultHandler> {
        EndpointBuilder {
            binds: Vec::new(),
            factory: || DefaultHandler,
            config: Config::default(),
            transport: TransportConfig::default(),
        }
    }

    /// The address a transport of `kind` is bound to.
    pub fn local_addr(&self, kind: TransportKind) -> Option<SocketAddr> {
        self.addrs.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
    }

    /// Places a call to `uri` (e.g. `sip:service@127.0.0.1:5080`); see [`Dial`].
    pub fn dial(&self, uri: &str) -> Result<Dial, UaError> {
        let uri = Uri::parse(uri).ok_or_else(|| UaError::Unroutable(uri.to_owned()))?;
        Ok(Dial::new(CoreHandle(self.commands.clone()), uri))
    }

    /// Counts: transactions, dialogs, calls, contained panics.
    pub fn stats(&self) -> EndpointStats {
        self.counters.snapshot()
    }

    /// Stops accepting new calls (INVITEs get 503), hangs up the calls in
    /// progress, waits up to `grace` for transactions to finish, then stops.
    pub async fn shutdown(&self, grace: Duration) {
        let (done, wait) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { grace, done })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
        self.closed().await;
    }

    /// Waits until the endpoint has stopped.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub(crate) async fn command(&self, cmd: Command) -> Result<(), UaError> {
        self.commands.send(cmd).await.map_err(|_| UaError::Shutdown)
    }
}

impl<F, H> EndpointBuilder<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: SipHandler,
{
    /// SRTP for calls (RFC 3711 media protection, keyed by SDES `a=crypto` lines, RFC 4568;
    /// suites AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80 and _32):
    ///
    /// - [`SrtpMode::BestEffort`] (the default) offers `RTP/AVP` with `a=crypto` lines and
    ///   takes a plain answer; answers `RTP/SAVP` offers, and `RTP/AVP` offers with
    ///   `a=crypto`, with SRTP, and plain offers with plain RTP;
    /// - [`SrtpMode::Mandatory`] offers `RTP/SAVP`, refuses a plain answer (BYE) and
    ///   answers a plain offer with 488;
    /// - [`SrtpMode::Off`] offers plain RTP and answers `RTP/SAVP` offers with 488.
    ///
    /// The keys are in the SDP, so by default they only travel over TLS (or WSS): a call
    /// whose INVITE came, or goes, over UDP, TCP or WS has plain RTP in best effort, and
    /// mandatory SRTP then refuses it (488, or the dial fails) — unless
    /// [`srtp_keys_over_insecure_transports`](Self::srtp_keys_over_insecure_transports).
    /// The suite in use and the failed packets are in the call's
    /// [`MediaStats`](crate::media::MediaStats).
    pub fn srtp(mut self, mode: SrtpMode) -> Self {
        self.config.srtp.mode = mode;
        self
    }

    /// Lets SDES keys travel in SDP over UDP, TCP and WS, in clear: anyone who sees the
    /// signaling can decrypt the media. Each call that sends keys this way logs a warning.
    /// For labs and for networks whose signaling is protected otherwise (IPsec, a VPN).
    pub fn srtp_keys_over_insecure_transports(mut self, allow: bool) -> Self {
        self.config.srtp.insecure_keys = allow;
        self
    }

    /// Whether calls offer and accept RTCP on the RTP port (`a=rtcp-mux`, RFC 5761; on by
    /// default): where both ends agree, a call's media needs one socket instead of two.
    /// Off, RTCP is always on the RTP port + 1. A peer that does not know the attribute
    /// ignores it, so this is for the rare one that answers it and then does not multiplex.
    pub fn rtcp_mux(mut self, on: bool) -> Self {
        self.config.rtcp_mux = on;
        self
    }

    /// Listens on UDP.
    pub fn udp(mut self, addr: SocketAddr) -> Self {
        self.binds.push((TransportKind::Udp, addr, None));
        self
    }

    /// Listens on TCP.
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.binds.push((TransportKind::Tcp, addr, None));
        self
    }

    /// Listens on TLS.
    pub fn tls(mut self, addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        self.binds.push((TransportKind::Tls, addr, Some(config)));
        self
    }

    /// Listens for SIP over WebSocket (RFC 7118).
    pub fn ws(mut self, addr: SocketAddr) -> Self {
        self.binds.push((TransportKind::Ws, addr, None));
        self
    }

    /// The handler factory: called once per call (dialog) and once per request
    /// outside a dialog.
    pub fn handler<G, H2>(self, factory: G) -> EndpointBuilder<G>
    where
        G: Fn() -> H2 + Send + Sync + 'static,
        H2: SipHandler,
    {
        EndpointBuilder {
            binds: self.binds,
            factory,
            config: self.config,
            transport: self.transport,
        }
    }

    /// Transaction timers (T1, T2, T4).
    pub fn timers(mut self, timers: TimerConfig) -> Self {
        self.config.timers = timers;
        self
    }

    /// Transport limits and the TLS client configuration.
    pub fn transport_config(mut self, config: TransportConfig) -> Self {
        self.transport = config;
        self
    }

    /// The most requests at once still waiting for their final response,
    /// together with calls whose 2xx has not been ACKed yet; beyond it new
    /// INVITEs get 503 Service Unavailable with Retry-After (default 10,000).
    /// Answered transactions that only linger to absorb retransmissions
    /// (Timers I, J, L, and L after the ACK) do not count. The same count is
    /// also held to half the pairs of [`EndpointBuilder::rtp_ports`]: a call
    /// in progress may hold a pair until its ACK or 64·T1.
    pub fn max_server_transactions(mut self, n: usize) -> Self {
        self.config.max_server_transactions = n;
        self
    }

    /// The UDP ports for RTP (even) and RTCP (odd) of calls with media
    /// (default 16384–32767). The range must start on an even port. Calls
    /// not ACKed yet take at most half of the pairs (see
    /// [`EndpointBuilder::max_server_transactions`]).
    pub fn rtp_ports(mut self, ports: std::ops::RangeInclusive<u16>) -> Result<Self, UaError> {
        let alloc = crate::rtp::PortAllocator::new(ports)
            .map_err(|e| UaError::BadRequest(format!("RTP port range: {e}")))?;
        self.config.ports = Arc::new(std::sync::Mutex::new(alloc));
        Ok(self)
    }

    /// Methods listed in Allow (405 and OPTIONS answers). Default: INVITE, ACK,
    /// CANCEL, BYE, OPTIONS (plus REGISTER with a registrar).
    pub fn allow(mut self, methods: &[Method]) -> Self {
        self.config.allow = methods.to_vec();
        self
    }

    /// The user part of our From and Contact URIs (default `parrot`).
    pub fn user(mut self, user: &str) -> Self {
        self.config.user = user.to_owned();
        self
    }

    /// Where the endpoint draws its tags, branches, Call-IDs, SDP session ids and
    /// RTP seeds from (default: [`entropy::global`](crate::entropy::global),
    /// OS-seeded). With [`Entropy::seeded`](crate::entropy::Entropy::seeded) a run
    /// can be replayed: the same inputs in the same order give the same bytes.
    pub fn entropy(mut self, entropy: crate::entropy::Entropy) -> Self {
        self.config.entropy = entropy;
        self
    }

    /// The address to put in Via and Contact instead of ours, keeping our
    /// port: the public address of a host behind a NAT or a load balancer
    /// (Kamailio's `advertise`, FreeSWITCH's `ext-sip-ip`).
    pub fn advertise(mut self, address: std::net::IpAddr) -> Self {
        self.config.advertise = Some(address);
        self
    }

    /// The address to put in SDP (`c=`, `o=`) instead of ours (FreeSWITCH's
    /// `ext-rtp-ip`); RTP is still bound to our own address.
    pub fn advertise_media(mut self, address: std::net::IpAddr) -> Self {
        self.config.advertise_media = Some(address);
        self
    }

    /// The name server for RFC 3263 lookups (NAPTR, SRV, A/AAAA) of the URIs
    /// we send to, instead of the system's (`/etc/resolv.conf`).
    pub fn dns_server(mut self, server: SocketAddr) -> Self {
        self.config.dns_server = Some(server);
        self
    }

    /// An outbound proxy for the calls placed and requests sent outside a
    /// dialog (e.g. `sip:proxy.example.com`, looked up like any URI): they
    /// go there with a pre-loaded `Route: <proxy;lr>` (RFC 3261 §8.1.2).
    /// [`Dial::outbound_proxy`] overrides it for one call.
    pub fn outbound_proxy(mut self, uri: &str) -> Result<Self, UaError> {
        let uri = Uri::parse(uri).ok_or_else(|| UaError::Unroutable(uri.to_owned()))?;
        self.config.outbound_proxy = Some(uri);
        Ok(self)
    }

    /// Answers REGISTER with this registrar (bindings kept in memory).
    pub fn registrar(mut self, registrar: Registrar) -> Self {
        // Its users' voice mail by SUBSCRIBE/NOTIFY too (RFC 3842).
        for m in [Method::Register, Method::Subscribe] {
            if !self.config.allow.contains(&m) {
                self.config.allow.push(m);
            }
        }
        self.config.registrar = Some(registrar);
        self
    }

    /// Session timers for calls (RFC 4028): ask for (and accept) refreshes
    /// every `interval` (default 1800 s; at least 90 s, the Min-SE we
    /// accept). One side re-INVITEs at half the interval, the other hangs up
    /// a call that saw no refresh in time, so a call whose peer vanished or
    /// whose BYE was lost ends by itself. `None` turns them off.
    pub fn session_timer(mut self, interval: Option<Duration>) -> Self {
        self.config.session_timer = interval.map(|i| {
            let min_se = super::core::DEFAULT_MIN_SE;
            super::config::SessionTimerConfig {
                expires: u32::try_from(i.as_secs()).unwrap_or(u32::MAX).max(min_se),
                min_se,
            }
        });
        self
    }

    /// Reliable provisional responses (RFC 3262), on by default: our INVITEs
    /// say `Supported: 100rel` and a callee's reliable 1xx gets its PRACK;
    /// calls we answer send a 1xx reliably when the caller requires it, or
    /// supports it and the 1xx carries SDP (early media) or is marked by the
    /// handler with `Require: 100rel`. Off, a caller that requires it gets
    /// 420 Bad Extension.
    pub fn reliable_provisionals(mut self, on: bool) -> Self {
        self.config.prack = on;
        self
    }

    /// Challenges INVITE and REGISTER with digest authentication (RFC 7616 / RFC 3261 §22):
    /// `lookup` returns the password for a user name, or `None` for unknown users.
    pub fn authenticate(
        mut self,
        realm: &str,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config.auth = Some(ServerAuth::new(realm, Arc::new(lookup)));
        self
    }

    /// How repeated digest failures from one source are throttled (with
    /// [`authenticate`](Self::authenticate)): after `throttle`'s number of
    /// failures within its window, INVITE and REGISTER from that address (an
    /// IPv6 /64) get 403 for its block time, the right password included.
    /// Default: 5 failures in 60 s block for 300 s, at most 10,000 sources
    /// tracked; [`Throttle::off`](crate::auth::Throttle::off) turns it off.
    /// [`Endpoint::stats`] counts failures and refused requests.
    pub fn auth_throttle(mut self, throttle: crate::auth::Throttle) -> Self {
        self.config.auth_throttle = Arc::new(std::sync::Mutex::new(AuthThrottle {
            throttle,
            ..AuthThrottle::default()
        }));
        self
    }

    /// Binds the transports and starts the endpoint.
    pub async fn build(self) -> Result<Endpoint, UaError> {
        let transports = Transports::new(self.transport);
        let mut addrs = Vec::new();
        for (kind, addr, tls) in self.binds {
            let local = match (kind, tls) {
                (TransportKind::Udp, _) => transports.bind_udp(addr).await?,
                (TransportKind::Tcp, _) => transports.bind_tcp(addr).await?,
                (TransportKind::Tls, Some(cfg)) => transports.bind_tls(addr, cfg).await?,
                (TransportKind::Ws, _) => transports.bind_ws(addr).await?,
                _ => continue,
            };
            addrs.push((kind, local));
        }
        if addrs.is_empty() {
            // A dial-only endpoint still needs sockets to send from: the
            // wildcard of each family, so that it reaches any host (the address
            // on the wire is the one routed to each peer, never 0.0.0.0).
            let any: SocketAddr = ([0, 0, 0, 0], 0).into();
            addrs.push((TransportKind::Udp, transports.bind_udp(any).await?));
            let any6: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, 0).into();
            match transports.bind_udp(any6).await {
                Ok(a) => addrs.push((TransportKind::Udp, a)),
                Err(e) => tracing::debug!(error = %e, "no IPv6 socket for dialing"),
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        let counters = Arc::new(Counters::default());
        let (closed_tx, closed_rx) = watch::channel(false);
        let addrs = Arc::new(addrs);
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let resolver =
            super::route::Resolver::new(self.config.dns_server, self.config.entropy.fork());
        if let Some(r) = &self.config.registrar {
            r.watch(tx.downgrade());
        }
        let core = UaCore::new(
            self.config,
            addrs.to_vec(),
            std::time::Instant::now(),
            unix_now,
        );
        let endpoint = Endpoint {
            commands: tx,
            addrs,
            counters,
            closed: closed_rx,
        };
        let driver = Driver::new(
            core,
            transports,
            Arc::new(self.factory),
            resolver,
            endpoint.clone(),
        );
        tokio::spawn(async move {
            driver.run(rx).await;
            let _ = closed_tx.send(true);
        });
        Ok(endpoint)
    }

    /// Builds the endpoint and runs it until it shuts down.
    pub async fn run(self) -> Result<(), UaError> {
        let ep = self.build().await?;
        ep.closed().await;
        Ok(())
    }
}
