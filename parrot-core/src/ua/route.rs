//! Where requests go: the target a URI names (RFC 3263 in part: transport
//! and port from the URI, A/AAAA lookups by the driver), the peer of an
//! exchange, and where in-dialog requests are sent.

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

/// Where a URI leads, looking its host up (A/AAAA through the OS) when it is a
/// name. Runs in a task of the driver's, never in the UA core.
pub(crate) async fn resolve(uri: &Uri, forced: Option<TransportKind>) -> Result<Target, UaError> {
    if let Some(t) = literal_target(uri, forced)? {
        return Ok(t);
    }
    let (kind, port) = transport_and_port(uri, forced)?;
    let Some(sip) = uri.as_sip() else {
        return Err(UaError::Unroutable(uri.to_string()));
    };
    let host = sip.host.to_string();
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| UaError::Unroutable(uri.to_string()))?;
    let mut target = Target::new(kind, addr);
    if let Host::Domain(d) = &sip.host {
        target = target.with_server_name(d.as_str());
    }
    Ok(target)
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
