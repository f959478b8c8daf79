//! Where requests go: the targets a URI names (RFC 3263: NAPTR, SRV and
//! A/AAAA lookups, run by the driver, never by the UA core), the peer of an
//! exchange, and where in-dialog requests are sent.
//!
//! The lookups ([`resolve_all`]) follow RFC 3263 §4: an IP literal is its own
//! target; a name with a port is looked up for A/AAAA; a name without one is
//! looked up for NAPTR, then SRV, then A/AAAA, and every address found is a
//! target to fail over to (§4.3). The choices between records (NAPTR order
//! and services, SRV priority and weight) are pure functions, tested without
//! DNS.
//!
//! Not done yet:
//! - TLS server identity: each target carries the URI's domain as its server
//!   name (RFC 5922 §4), but the TLS transport does not check a certificate
//!   against SRV or NAPTR targets, nor does it try the other names RFC 5922
//!   allows.
//! - NAPTR services beyond UDP, TCP and TLS over TCP: SCTP (`SIP+D2S`,
//!   `SIPS+D2S`) is not a transport of ours, and WebSocket (`SIP+D2W`,
//!   RFC 7118) is not looked up.
//! - NAPTR records with a regular expression (RFC 3263 uses replacements
//!   only) and non-terminal NAPTR chains: such records are skipped.
//! - The `maddr` URI parameter (§4.1) and the Via `received`-based response
//!   routing of RFC 3263 §5 (responses follow RFC 3261 §18.2.2 / RFC 3581).
//! - Remembering a target that failed across calls (§4.3 "MAY cache"): each
//!   dial starts from the top of its list.

use super::UaError;
use crate::message::{Headers, Host, Uri};
use crate::transport::{Target, TransportKind};
use std::net::SocketAddr;

/// A transaction's far end as the transaction layer sees it: where to send,
/// and which of our addresses the exchange uses (for Via and Contact).
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) target: Target,
    pub(crate) local: SocketAddr,
}

/// What a URI says about reaching it: the transport (forced, the `transport`
/// parameter, TLS for `sips:`, else UDP) and the port (the URI's, else 5060, or
/// 5061 for TLS).
fn transport_and_port(
    uri: &Uri,
    forced: Option<TransportKind>,
) -> Result<(TransportKind, u16), UaError> {
    let sip = uri
        .as_sip()
        .ok_or_else(|| UaError::Unroutable(uri.to_string()))?;
    let kind = forced.unwrap_or(
        match sip.transport().map(str::to_ascii_lowercase).as_deref() {
            Some("tcp") => TransportKind::Tcp,
            Some("tls") => TransportKind::Tls,
            Some("ws") => TransportKind::Ws,
            Some("wss") => TransportKind::Wss,
            _ if sip.secure => TransportKind::Tls,
            _ => TransportKind::Udp,
        },
    );
    let port = sip.port.unwrap_or(if kind == TransportKind::Tls {
        5061
    } else {
        5060
    });
    Ok((kind, port))
}

/// The target of a URI whose host is an IP address, without any lookup;
/// `Ok(None)` when the host is a name the driver must resolve.
pub(crate) fn literal_target(
    uri: &Uri,
    forced: Option<TransportKind>,
) -> Result<Option<Target>, UaError> {
    let (kind, port) = transport_and_port(uri, forced)?;
    let Some(sip) = uri.as_sip() else {
        return Err(UaError::Unroutable(uri.to_string()));
    };
    Ok(sip
        .host
        .ip()
        .map(|ip| Target::new(kind, SocketAddr::new(ip, port))))
}

/// Where in-dialog requests go: back on the same connection for streams; for
/// UDP to the peer's Contact (the INVITE's, or the 2xx's for a call we placed)
/// when it is an IP address and port, otherwise where the peer sent from (or
/// where we sent to). A Contact naming a private address that is not where the
/// peer's packets come from is a phone behind a NAT: its address cannot be
/// reached, the flow it used can (RFC 3581's symmetric idea, what Kamailio's
/// `fix_nated_contact` does).
pub(crate) fn in_dialog_peer(peer: &Peer, contact_from: &Headers) -> Peer {
    if peer.target.kind.is_reliable() {
        return peer.clone();
    }
    let contact = contact_from
        .contact_list()
        .first()
        .and_then(|c| c.uri.as_sip())
        .and_then(|u| {
            let ip = u.host.ip()?;
            Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
        })
        .filter(|c| !(is_private(c.ip()) && c.ip() != peer.target.addr.ip()));
    match contact {
        Some(addr) => Peer {
            target: Target::new(peer.target.kind, addr),
            local: peer.local,
        },
        None => peer.clone(),
    }
}

/// Our address towards `target`: the bound address of its transport, with
/// the IP the kernel routes to `target` from when bound to a wildcard (so
/// 0.0.0.0 never reaches Via, Contact or From). A socket call: the driver's.
pub(crate) fn local_towards(addrs: &[(TransportKind, SocketAddr)], target: &Target) -> SocketAddr {
    let family: Vec<(TransportKind, SocketAddr)> = addrs
        .iter()
        .copied()
        .filter(|(_, a)| a.is_ipv4() == target.addr.is_ipv4())
        .collect();
    let bound = if family.is_empty() {
        local_for(addrs, target.kind)
    } else {
        local_for(&family, target.kind)
    };
    if !bound.ip().is_unspecified() {
        return bound;
    }
    SocketAddr::new(
        routed_source(target.addr).unwrap_or(bound.ip()),
        bound.port(),
    )
}

/// Our address towards each of `targets` ([`local_towards`]), in their
/// order. A target the kernel has no route to keeps the wildcard there; it
/// takes instead the address of the first target of its family that has
/// one: a dial is made for its first target (From, Call-ID and the SDP offer
/// name our address towards it) and fails over to the next ones unchanged,
/// so an unreachable first target must not put 0.0.0.0 in them. Sending to
/// it still fails (no route), and the call goes on to the next.
pub(crate) fn peers_towards(
    addrs: &[(TransportKind, SocketAddr)],
    targets: Vec<Target>,
) -> Vec<Peer> {
    let mut peers: Vec<Peer> = targets
        .into_iter()
        .map(|target| Peer {
            local: local_towards(addrs, &target),
            target,
        })
        .collect();
    fill_unrouted(&mut peers);
    peers
}

/// See [`peers_towards`]: wildcard locals take the first specified address
/// of their family, keeping their port.
fn fill_unrouted(peers: &mut [Peer]) {
    let routed: Vec<std::net::IpAddr> = peers
        .iter()
        .map(|p| p.local.ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    for p in peers.iter_mut().filter(|p| p.local.ip().is_unspecified()) {
        if let Some(ip) = routed.iter().find(|ip| ip.is_ipv4() == p.local.is_ipv4()) {
            p.local.set_ip(*ip);
        }
    }
}

/// The source address the kernel would use to reach `to` (a connected UDP
/// socket sends nothing).
fn routed_source(to: SocketAddr) -> Option<std::net::IpAddr> {
    let any: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The address our media is reached at for a call with `peer`: the local address
/// the signaling used, or, when bound to a wildcard, the one the OS routes to the
/// peer (a socket call: the driver's, not the core's).
pub(crate) fn media_ip(peer: &Peer) -> std::net::IpAddr {
    let local = peer.local.ip();
    if !local.is_unspecified() {
        return local;
    }
    routed_source(peer.target.addr).unwrap_or(local)
}

/// Our address for a transport: the first bound for that kind, else the first
/// bound at all.
pub(crate) fn local_for(addrs: &[(TransportKind, SocketAddr)], kind: TransportKind) -> SocketAddr {
    addrs
        .iter()
        .find(|(k, _)| *k == kind)
        .or_else(|| addrs.first())
        .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)), |(_, a)| *a)
}

/// An address no host outside its own network can reach: RFC 1918, shared
/// address space (RFC 6598), link-local, and IPv6 unique-local / link-local.
pub(crate) fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

// ------------------------------------------------------------------ RFC 3263

/// The endpoint's DNS resolver (NAPTR, SRV, A/AAAA): built once per endpoint,
/// cheap to clone (the clones share one cache and one set of name servers).
#[derive(Clone)]
pub(crate) struct Resolver {
    dns: hickory_resolver::TokioResolver,
    entropy: crate::entropy::Entropy,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver asking `server` only (plain DNS over UDP, then TCP), or,
    /// without one, the name servers of the system configuration
    /// (`/etc/resolv.conf`, else 127.0.0.1). `entropy` draws the SRV weighted
    /// choices.
    pub(crate) fn new(server: Option<SocketAddr>, entropy: crate::entropy::Entropy) -> Resolver {
        use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
        use hickory_resolver::name_server::TokioConnectionProvider;
        let builder = match server {
            Some(addr) => {
                let servers =
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                hickory_resolver::Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), servers),
                    TokioConnectionProvider::default(),
                )
            }
            None => hickory_resolver::Resolver::builder_tokio().unwrap_or_else(|e| {
                // As the C library does without a resolv.conf: ask the local host.
                tracing::warn!(error = %e, "no system DNS configuration; using 127.0.0.1:53");
                let servers = NameServerConfigGroup::from_ips_clear(
                    &[std::net::Ipv4Addr::LOCALHOST.into()],
                    53,
                    true,
                );
                hickory_resolver::Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), servers),
                    TokioConnectionProvider::default(),
                )
            }),
        };
        Resolver {
            dns: builder.build(),
            entropy,
        }
    }

    /// The NAPTR records of `domain` (none when the lookup fails).
    async fn naptr(&self, domain: &str) -> Vec<NaptrRecord> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        match self.dns.lookup(fqdn(domain), RecordType::NAPTR).await {
            Ok(lookup) => lookup
                .iter()
                .filter_map(|r| match r {
                    RData::NAPTR(n) => Some(NaptrRecord {
                        order: n.order(),
                        preference: n.preference(),
                        flags: String::from_utf8_lossy(n.flags()).into_owned(),
                        service: String::from_utf8_lossy(n.services()).into_owned(),
                        regexp: !n.regexp().is_empty(),
                        replacement: n.replacement().to_utf8(),
                    }),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::debug!(domain, error = %e, "no NAPTR");
                Vec::new()
            }
        }
    }

    /// The SRV records of `name` (none when the lookup fails).
    async fn srv(&self, name: &str) -> Vec<SrvRecord> {
        match self.dns.srv_lookup(fqdn(name)).await {
            Ok(lookup) => lookup
                .iter()
                .map(|s| SrvRecord {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    target: s.target().to_utf8(),
                })
                .collect(),
            Err(e) => {
                tracing::debug!(name, error = %e, "no SRV");
                Vec::new()
            }
        }
    }

    /// The A/AAAA addresses of `host` (none when the lookup fails).
    async fn ips(&self, host: &str) -> Vec<std::net::IpAddr> {
        match self.dns.lookup_ip(fqdn(host)).await {
            Ok(l) => l.iter().collect(),
            Err(e) => {
                tracing::debug!(host, error = %e, "no A/AAAA");
                Vec::new()
            }
        }
    }
}

/// `name` made absolute (a trailing dot), so no search domain is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// A NAPTR record as RFC 3263 §4.1 reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NaptrRecord {
    pub(crate) order: u16,
    pub(crate) preference: u16,
    pub(crate) flags: String,
    pub(crate) service: String,
    /// Whether the record has a regular expression (RFC 3263 uses none).
    pub(crate) regexp: bool,
    pub(crate) replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    pub(crate) target: String,
}

/// The transport a NAPTR service field names (RFC 3263 §4.1, RFC 3261 §26):
/// `SIP+D2U` UDP, `SIP+D2T` TCP, `SIPS+D2T` TLS over TCP. SCTP (`D2S`) is not
/// a transport of ours.
fn naptr_transport(service: &str) -> Option<TransportKind> {
    match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(TransportKind::Udp),
        "SIP+D2T" => Some(TransportKind::Tcp),
        "SIPS+D2T" => Some(TransportKind::Tls),
        _ => None,
    }
}

/// The NAPTR records to follow, best first, each with the transport it
/// stands for and the SRV name it leads to (RFC 3263 §4.1): terminal records
/// (flag `S`) with a service we speak, without a regular expression; for a
/// `sips:` URI only `SIPS+` services; with a `forced` transport only that one;
/// in `order`, then `preference` (RFC 3403 §4.1; ties keep the answer's order).
pub(crate) fn select_naptr(
    records: &[NaptrRecord],
    secure: bool,
    forced: Option<TransportKind>,
) -> Vec<(TransportKind, String)> {
    let mut usable: Vec<&NaptrRecord> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && !r.regexp && !r.replacement.is_empty())
        .filter(|r| {
            naptr_transport(&r.service).is_some_and(|k| {
                (!secure || k == TransportKind::Tls) && forced.is_none_or(|f| f == k)
            })
        })
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    let mut out: Vec<(TransportKind, String)> = Vec::new();
    for r in usable {
        if let Some(k) = naptr_transport(&r.service) {
            let item = (k, r.replacement.clone());
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

/// The SRV names to try when there is no usable NAPTR record (RFC 3263 §4.1):
/// one per transport we speak, in our order of preference (UDP, TCP, then TLS
/// for `sip:`; TLS only for `sips:`), or only the forced transport's.
pub(crate) fn srv_names(
    domain: &str,
    secure: bool,
    forced: Option<TransportKind>,
) -> Vec<(TransportKind, String)> {
    let all = [
        (TransportKind::Udp, "_sip._udp"),
        (TransportKind::Tcp, "_sip._tcp"),
        (TransportKind::Tls, "_sips._tcp"),
    ];
    all.into_iter()
        .filter(|(k, _)| match forced {
            Some(f) => f == *k,
            None => !secure || *k == TransportKind::Tls,
        })
        .map(|(k, prefix)| (k, format!("{prefix}.{}", domain.trim_end_matches('.'))))
        .collect()
}

/// SRV records in the order to try them (RFC 2782, "Usage rules"): by
/// priority, lowest first; within a priority, a weighted random order where a
/// record is picked with probability weight / (sum of the weights left), the
/// records of weight 0 placed first so they get a small chance too. `random`
/// returns a number in `0..=n` for its argument `n`. A lone record whose
/// target is `.` means the service is not offered there: no records.
pub(crate) fn order_srv(
    records: &[SrvRecord],
    mut random: impl FnMut(u32) -> u32,
) -> Vec<SrvRecord> {
    if let [only] = records {
        if only.target == "." || only.target.is_empty() {
            return Vec::new();
        }
    }
    let mut rest: Vec<SrvRecord> = records
        .iter()
        .filter(|r| r.target != "." && !r.target.is_empty())
        .cloned()
        .collect();
    // Stable: equal priorities (and, below, equal weights) keep the answer's order.
    rest.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let priority = rest[0].priority;
        let group_len = rest.iter().take_while(|r| r.priority == priority).count();
        let mut group: Vec<SrvRecord> = rest.drain(..group_len).collect();
        while !group.is_empty() {
            let sum: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(sum);
            let mut running = 0u32;
            let i = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(i));
        }
    }
    out
}

/// Targets from a lookup's steps, in order, without duplicates.
fn push_targets(
    out: &mut Vec<Target>,
    kind: TransportKind,
    ips: &[std::net::IpAddr],
    port: u16,
    server_name: &str,
) {
    for ip in ips {
        let t = Target::new(kind, SocketAddr::new(*ip, port)).with_server_name(server_name);
        if !out.iter().any(|o| o.kind == t.kind && o.addr == t.addr) {
            out.push(t);
        }
    }
}

/// Every target a URI leads to, best first, for a request to fail over along
/// (RFC 3263 §4): an IP literal is its own target; with a port, the A/AAAA
/// addresses of the host (§4.2) over the URI's transport (§4.1: the
/// `transport` parameter, TLS for `sips:`, else UDP); without one, NAPTR
/// (§4.1), then SRV (§4.2), then A/AAAA for each SRV target; with no NAPTR,
/// SRV for each transport we speak; with no SRV, A/AAAA with the default port
/// (5060, or 5061 for TLS). A `forced` transport (or the URI's `transport`
/// parameter, §4.1) skips NAPTR and keeps to that transport. Each target has
/// the URI's domain as its TLS server name (RFC 5922 §4). Runs in a task of
/// the driver's, never in the UA core.
pub(crate) async fn resolve_all(
    resolver: &Resolver,
    uri: &Uri,
    forced: Option<TransportKind>,
) -> Result<Vec<Target>, UaError> {
    if let Some(t) = literal_target(uri, forced)? {
        return Ok(vec![t]);
    }
    let (kind, port) = transport_and_port(uri, forced)?;
    let Some(sip) = uri.as_sip() else {
        return Err(UaError::Unroutable(uri.to_string()));
    };
    let Host::Domain(domain) = &sip.host else {
        return Err(UaError::Unroutable(uri.to_string()));
    };
    let domain = domain.as_str().trim_end_matches('.');
    let unroutable = || UaError::Unroutable(uri.to_string());
    let mut out = Vec::new();
    if sip.port.is_some() {
        // §4.2: a port given: A/AAAA of the host only.
        push_targets(&mut out, kind, &resolver.ips(domain).await, port, domain);
        return if out.is_empty() {
            Err(unroutable())
        } else {
            Ok(out)
        };
    }
    // §4.1: an explicit transport (ours or the URI's) skips NAPTR.
    let explicit = forced.or_else(|| sip.transport().is_some().then_some(kind));
    let mut services = match explicit {
        Some(_) => Vec::new(),
        None => select_naptr(&resolver.naptr(domain).await, sip.secure, None),
    };
    if services.is_empty() {
        services = srv_names(domain, sip.secure, explicit);
    }
    let srvs = futures_util::future::join_all(
        services.iter().map(|(_, name)| resolver.srv(name.as_str())),
    )
    .await;
    let mut srv_targets: Vec<(TransportKind, SrvRecord)> = Vec::new();
    for ((k, _), records) in services.iter().zip(srvs) {
        let ordered = order_srv(&records, |n| {
            (resolver.entropy.next_u64() % (u64::from(n) + 1)) as u32
        });
        srv_targets.extend(ordered.into_iter().map(|r| (*k, r)));
    }
    if srv_targets.is_empty() {
        // §4.2: no SRV: the domain's A/AAAA with the transport's default port.
        let k = explicit.unwrap_or(kind);
        let p = if k == TransportKind::Tls { 5061 } else { 5060 };
        push_targets(&mut out, k, &resolver.ips(domain).await, p, domain);
    } else {
        let ips = futures_util::future::join_all(
            srv_targets
                .iter()
                .map(|(_, r)| resolver.ips(r.target.as_str())),
        )
        .await;
        for ((k, r), ips) in srv_targets.iter().zip(ips) {
            push_targets(&mut out, *k, &ips, r.port, domain);
        }
    }
    if out.is_empty() {
        Err(unroutable())
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    /// A dial whose first SRV target has no route from here (the wildcard as
    /// our address towards it) names our address towards the next one
    /// instead: the INVITE, made for the first, fails over with it.
    #[test]
    fn an_unrouted_target_takes_the_address_of_the_next_routed_one() {
        let peer = |to: &str, local: &str| Peer {
            target: Target::new(TransportKind::Udp, to.parse().unwrap()),
            local: local.parse().unwrap(),
        };
        let mut peers = vec![
            peer("203.0.113.99:5060", "0.0.0.0:40000"),
            peer("192.0.2.1:5060", "192.0.2.2:40000"),
            peer("198.51.100.7:5060", "198.51.100.2:40000"),
            peer("[2001:db8::9]:5060", "[::]:40002"),
        ];
        fill_unrouted(&mut peers);
        let locals: Vec<String> = peers.iter().map(|p| p.local.to_string()).collect();
        assert_eq!(
            locals,
            [
                "192.0.2.2:40000",
                "192.0.2.2:40000",
                "198.51.100.2:40000",
                // No IPv6 target is routed: nothing to take.
                "[::]:40002",
            ]
        );
    }

    fn naptr(order: u16, pref: u16, flags: &str, service: &str, repl: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            service: service.into(),
            regexp: false,
            replacement: repl.into(),
        }
    }

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn targets(v: &[SrvRecord]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    /// RFC 3263 §4.1's example, shuffled, plus records to skip.
    fn example() -> Vec<NaptrRecord> {
        vec![
            naptr(90, 50, "s", "SIP+D2T", "_sip._tcp.example.com."),
            naptr(50, 50, "s", "SIPS+D2T", "_sips._tcp.example.com."),
            naptr(100, 50, "s", "SIP+D2U", "_sip._udp.example.com."),
            naptr(10, 50, "s", "SIP+D2S", "_sip._sctp.example.com."),
            naptr(20, 50, "u", "SIP+D2U", "_sip._udp.other.com."),
            naptr(30, 50, "s", "E2U+sip", "_x.example.com."),
        ]
    }

    #[test]
    fn naptr_by_order_and_preference_with_only_our_services() {
        let got = select_naptr(&example(), false, None);
        assert_eq!(
            got,
            vec![
                (TransportKind::Tls, "_sips._tcp.example.com.".to_owned()),
                (TransportKind::Tcp, "_sip._tcp.example.com.".to_owned()),
                (TransportKind::Udp, "_sip._udp.example.com.".to_owned()),
            ]
        );
        let by_pref = vec![
            naptr(10, 20, "S", "sip+d2u", "b."),
            naptr(10, 10, "S", "SIP+D2T", "a."),
        ];
        let got = select_naptr(&by_pref, false, None);
        assert_eq!(got[0], (TransportKind::Tcp, "a.".to_owned()));
        assert_eq!(got[1], (TransportKind::Udp, "b.".to_owned()));
    }

    #[test]
    fn naptr_for_sips_and_a_forced_transport() {
        assert_eq!(
            select_naptr(&example(), true, None),
            vec![(TransportKind::Tls, "_sips._tcp.example.com.".to_owned())]
        );
        assert_eq!(
            select_naptr(&example(), false, Some(TransportKind::Udp)),
            vec![(TransportKind::Udp, "_sip._udp.example.com.".to_owned())]
        );
        assert!(select_naptr(&example(), true, Some(TransportKind::Udp)).is_empty());
        let mut with_regexp = naptr(1, 1, "s", "SIP+D2U", "");
        with_regexp.regexp = true;
        assert!(select_naptr(&[with_regexp], false, None).is_empty());
    }

    #[test]
    fn srv_names_without_naptr() {
        let names: Vec<String> = srv_names("example.com.", false, None)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(
            names,
            [
                "_sip._udp.example.com",
                "_sip._tcp.example.com",
                "_sips._tcp.example.com"
            ]
        );
        assert_eq!(
            srv_names("example.com", true, None),
            vec![(TransportKind::Tls, "_sips._tcp.example.com".to_owned())]
        );
        assert_eq!(
            srv_names("example.com", false, Some(TransportKind::Tcp)),
            vec![(TransportKind::Tcp, "_sip._tcp.example.com".to_owned())]
        );
    }

    #[test]
    fn srv_by_priority_first() {
        let records = [srv(20, 0, "b."), srv(10, 0, "a."), srv(30, 5, "c.")];
        assert_eq!(targets(&order_srv(&records, |_| 0)), ["a.", "b.", "c."]);
    }

    #[test]
    fn srv_weights_pick_by_running_sum() {
        // Weights 0, 10, 30 (zero first): running sums 0, 10, 40.
        let records = [
            srv(10, 10, "ten."),
            srv(10, 30, "thirty."),
            srv(10, 0, "zero."),
        ];
        // 0 picks the weight-0 record, then (sum 40) 11..=40 picks "thirty.".
        let mut picks = [0, 25, 0].into_iter();
        let got = order_srv(&records, |_| picks.next().unwrap());
        assert_eq!(targets(&got), ["zero.", "thirty.", "ten."]);
        // The random number is drawn in 0..=sum of what is left.
        let mut sums = Vec::new();
        let _ = order_srv(&records, |n| {
            sums.push(n);
            n
        });
        assert_eq!(sums, [40, 10, 0], "{sums:?}");
        // Equal weights and a fixed draw: the answer's order (deterministic).
        let even = [srv(10, 5, "x."), srv(10, 5, "y."), srv(10, 5, "z.")];
        assert_eq!(targets(&order_srv(&even, |_| 0)), ["x.", "y.", "z."]);
    }

    #[test]
    fn srv_weighted_choice_follows_the_weights() {
        let records = [srv(10, 1, "light."), srv(10, 9, "heavy.")];
        let entropy = crate::entropy::Entropy::seeded(7);
        let heavy_first = (0..1000)
            .filter(|_| {
                let got = order_srv(&records, |n| {
                    (entropy.next_u64() % (u64::from(n) + 1)) as u32
                });
                got[0].target == "heavy."
            })
            .count();
        assert!((800..=950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn a_lone_dot_target_means_no_service() {
        assert!(order_srv(&[srv(0, 0, ".")], |_| 0).is_empty());
    }

    #[tokio::test]
    async fn localhost_with_a_port_needs_no_name_server() {
        // RFC 6761 §6.3: the resolver answers `localhost` itself.
        let resolver = Resolver::new(
            Some(([127, 0, 0, 1], 9).into()),
            crate::entropy::Entropy::seeded(1),
        );
        let uri = Uri::parse("sips:bob@localhost:5999").unwrap();
        let got = resolve_all(&resolver, &uri, None).await.unwrap();
        assert!(got.iter().all(|t| t.kind == TransportKind::Tls
            && t.addr.port() == 5999
            && t.addr.ip().is_loopback()
            && t.server_name.as_deref() == Some("localhost")));
    }

    #[tokio::test]
    async fn an_ip_literal_needs_no_dns() {
        // A name server nobody answers on: an IP literal must not ask it.
        let resolver = Resolver::new(
            Some(([127, 0, 0, 1], 9).into()),
            crate::entropy::Entropy::seeded(1),
        );
        let uri = Uri::parse("sip:bob@192.0.2.7;transport=tcp").unwrap();
        let got = resolve_all(&resolver, &uri, None).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, TransportKind::Tcp);
        assert_eq!(got[0].addr, "192.0.2.7:5060".parse().unwrap());
    }
}
