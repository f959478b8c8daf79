//! Endpoint settings, as the builder collects them and the UA core reads them.

use super::registrar::Registrar;
use crate::entropy::Entropy;
use crate::media::Ports;
use crate::message::Method;
use crate::transaction::TimerConfig;
use std::net::IpAddr;
use std::sync::Arc;

/// Endpoint settings.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) timers: TimerConfig,
    pub(crate) max_server_transactions: usize,
    pub(crate) allow: Vec<Method>,
    pub(crate) user: String,
    pub(crate) registrar: Option<Registrar>,
    pub(crate) auth: Option<ServerAuth>,
    /// Failed digests per source, and the sources refused for a while.
    pub(crate) auth_throttle: Arc<std::sync::Mutex<AuthThrottle>>,
    /// RFC 4028 session timers for calls, or none.
    pub(crate) session_timer: Option<SessionTimerConfig>,
    /// Reliable provisional responses (RFC 3262): `Supported: 100rel` in our
    /// INVITEs, PRACK for a caller's reliable 1xx, and ours sent reliably
    /// where the caller supports them.
    pub(crate) prack: bool,
    /// RTP ports for calls with media (even RTP, odd RTCP).
    pub(crate) ports: Ports,
    /// Where tags, branches, Call-IDs, SDP session ids and RTP seeds come from.
    pub(crate) entropy: Entropy,
    /// The address to put in Via and Contact instead of ours (a public address
    /// in front of a NAT), with our port.
    pub(crate) advertise: Option<IpAddr>,
    /// The address to put in SDP (`c=`, `o=`) instead of ours.
    pub(crate) advertise_media: Option<IpAddr>,
    /// The one name server to ask (else the system's).
    pub(crate) dns_server: Option<std::net::SocketAddr>,
    /// Where requests outside a dialog go first, with a pre-loaded Route
    /// (RFC 3261 §8.1.2).
    pub(crate) outbound_proxy: Option<crate::message::Uri>,
    /// SRTP for calls, and whether its keys may travel over UDP/TCP.
    pub(crate) srtp: super::media::SrtpPolicy,
    /// Offer and accept RTCP on the RTP port (RFC 5761).
    pub(crate) rtcp_mux: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timers: TimerConfig::default(),
            max_server_transactions: 10_000,
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Options,
                // Answered by the call itself (`application/dtmf-relay`, RFC 6086).
                Method::Info,
                // Offers and session refreshes in a call (RFC 3311).
                Method::Update,
                // Acknowledges a reliable provisional response (RFC 3262).
                Method::Prack,
            ],
            user: "parrot".to_owned(),
            registrar: None,
            auth: None,
            auth_throttle: Arc::default(),
            session_timer: Some(SessionTimerConfig {
                expires: super::core::DEFAULT_SESSION_EXPIRES,
                min_se: super::core::DEFAULT_MIN_SE,
            }),
            prack: true,
            ports: default_ports(),
            entropy: crate::entropy::global().clone(),
            advertise: None,
            advertise_media: None,
            dns_server: None,
            outbound_proxy: None,
            srtp: super::media::SrtpPolicy::default(),
            rtcp_mux: true,
        }
    }
}

/// Finds the password of a user name.
pub(crate) type PasswordLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The default RTP port range, 16384–32767 (the range many SIP devices use).
pub(crate) fn default_ports() -> Ports {
    let range = crate::rtp::PortAllocator::new(16384..=32767).expect("a constant, valid range");
    Arc::new(std::sync::Mutex::new(range))
}

/// Digest challenge settings for the UAS side.
#[derive(Clone)]
pub(crate) struct ServerAuth {
    pub(crate) server: Arc<std::sync::Mutex<crate::auth::DigestServer>>,
    pub(crate) lookup: PasswordLookup,
}

/// The throttle's state as the core keeps it.
/// Session timer settings (RFC 4028), in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionTimerConfig {
    /// The interval we ask for (Session-Expires).
    pub(crate) expires: u32,
    /// The shortest we accept (Min-SE).
    pub(crate) min_se: u32,
}

#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    pub(crate) throttle: crate::auth::Throttle,
    /// Requests refused because their source was blocked.
    pub(crate) refused: usize,
    /// Digests that failed (wrong password, unknown user, bad nonce ...).
    pub(crate) failures: usize,
}

impl ServerAuth {
    pub(crate) fn new(realm: &str, lookup: PasswordLookup) -> Self {
        ServerAuth {
            server: Arc::new(std::sync::Mutex::new(crate::auth::DigestServer::new(realm))),
            lookup,
        }
    }
}
