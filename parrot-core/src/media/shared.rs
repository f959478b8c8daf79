//! Media ports shared by the sessions of a media thread ([`bind_shared`]).
//!
//! A session with sockets of its own costs the kernel a `send` and a `recv`
//! system call every ptime, each paying the socket lookup and the call's own
//! overhead for one 172-byte datagram: at 4000 calls that was 0.029 % of a
//! core per call, most of a call's whole cost (BENCHMARKS.md, media). Sessions
//! on a shared port instead have their media thread read the port with
//! `recvmmsg` (quinn-udp, up to [`BATCH`] datagrams a call) and send what their
//! steps queued ([`Outbox`]) at the end of each wake-up, by UDP GSO where many
//! go to one destination, else by `sendmmsg`: 40–47 % less CPU per call in the
//! concurrency bench (BENCHMARKS.md).
//!
//! A shared port needs each datagram told apart by more than the port it came
//! to ([`Demux`]): by where it comes from, and by its SSRC when several
//! sessions expect the same source (a peer that shares its port too, as this
//! stack does, announcing each session's SSRC in its SDP: RFC 5576 `a=ssrc`).
//! A datagram no session claims is dropped and counted ([`shared_port_unclaimed`]).
//! What sharing cannot do is latch a source nothing announced (a phone behind
//! a NAT sends from an address its SDP does not name, and no SSRC tells which
//! call it belongs to when several wait): sharing is the endpoint's choice
//! ([`set_shared_ports`]), off by default.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::rtp::{PortAllocator, PortLease};

/// The [`Demux`]'s tables, looked up for every datagram a shared port reads.
/// foldhash, not std's SipHash: at 2500 calls hashing the (source, SSRC) key
/// with SipHash was ~1.4 % of all samples, most of the lookup's own cost.
/// Its seed is random per process, as std's is: the keys come from peers'
/// SDP and source addresses, and an unseeded hash would let a peer pick
/// colliding ones.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Datagrams read (and sent) by one system call.
pub(super) const BATCH: usize = 32;

/// Batches read from one socket in one wake-up at most: a flood on one port
/// does not keep a media thread from its sessions' ticks.
pub(super) const MAX_BATCHES: usize = 16;

/// The socket buffers of a shared port: a wake-up's datagrams for a few
/// thousand sessions wait in them at once.
const SOCKET_BUFFER: usize = 4 << 20;

/// A port pair shared by the sessions of one media thread, for one endpoint's
/// port range and local address: what a [`MediaConfig`](super::MediaConfig)
/// carries instead of sockets of its own ([`bind_shared`]).
#[derive(Clone)]
pub struct SharedPort {
    pub(super) pair: Arc<SharedPair>,
}

impl std::fmt::Debug for SharedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPort")
            .field("local", &self.pair.local)
            .field("lane", &self.pair.lane)
            .finish()
    }
}

impl SharedPort {
    /// The RTP address (RTCP is on the next port, or multiplexed on this one).
    pub fn local_addr(&self) -> SocketAddr {
        self.pair.local
    }
}

/// The sockets of a shared port. Only its media thread reads and writes them.
pub(super) struct SharedPair {
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    rtp_state: quinn_udp::UdpSocketState,
    rtcp_state: quinn_udp::UdpSocketState,
    local: SocketAddr,
    /// The media thread whose sessions use it.
    pub(super) lane: usize,
    _lease: PortLease,
}

impl SharedPair {
    /// The RTP or the RTCP socket, with quinn-udp's state for it.
    pub(super) fn socket(&self, rtcp: bool) -> (&std::net::UdpSocket, &quinn_udp::UdpSocketState) {
        if rtcp {
            (&self.rtcp, &self.rtcp_state)
        } else {
            (&self.rtp, &self.rtp_state)
        }
    }

    /// What `sendmmsg` and the [`Outbox`] know the pair by.
    pub(super) fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// The most datagrams GRO may put in one read buffer.
    pub(super) fn gro_segments(&self) -> usize {
        self.rtp_state
            .gro_segments()
            .max(self.rtcp_state.gro_segments())
            .max(1)
    }
}

/// A shared pair known to the registry, by what it was bound for.
struct Known {
    ip: IpAddr,
    ports: Weak<Mutex<PortAllocator>>,
    lane: usize,
    pair: Weak<SharedPair>,
}

static REGISTRY: Mutex<Vec<Known>> = Mutex::new(Vec::new());

/// Spreads new sessions over the media threads in turn.
static NEXT_LANE: AtomicUsize = AtomicUsize::new(0);

/// Whether the UA binds calls' media to shared ports ([`set_shared_ports`]).
static SHARED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the calls of every endpoint of the process started from now on send and
/// receive their media on ports shared per media thread ([`bind_shared`]) instead of
/// a socket pair each ([`bind_pair`](super::bind_pair)), and announce their SSRC in
/// their SDP (`a=ssrc`, RFC 5576) so that a peer doing the same tells them apart. Off
/// by default: a shared port cannot tell which call a datagram from an address no
/// SDP named belongs to (a phone behind a NAT) unless its peer announced its SSRC,
/// and drops it ([`shared_port_unclaimed`]). For a server whose peers send from
/// the addresses their SDP names, or announce their SSRC (WebRTC gateways, another
/// Parrot), it is 40–47 % less CPU per call (two Parrot endpoints, BENCHMARKS.md).
pub fn set_shared_ports(on: bool) {
    SHARED.store(on, Ordering::Relaxed);
}

/// Whether [`set_shared_ports`] is on.
pub fn shared_ports() -> bool {
    SHARED.load(Ordering::Relaxed)
}

/// Datagrams that came to a shared port and that no session claimed.
static UNCLAIMED: AtomicU64 = AtomicU64::new(0);

/// Datagrams dropped at shared ports since the process started because no
/// session of the port claimed them (an unknown source, or an unannounced
/// SSRC where several sessions expect the same source).
pub fn shared_port_unclaimed() -> u64 {
    UNCLAIMED.load(Ordering::Relaxed)
}

pub(super) fn count_unclaimed() {
    UNCLAIMED.fetch_add(1, Ordering::Relaxed);
}

/// A port for one more session on `ip`, shared with the other sessions of
/// the media thread it goes to (the threads take new sessions in turn), and
/// bound from `ports` the first time that thread needs one there: an even
/// RTP port and the next for RTCP (RFC 3550 §11), held in the range as long
/// as a session or config holds the [`SharedPort`]. Sessions on it are driven
/// by that thread; [`set_shared_ports`] says what sharing costs and saves.
pub fn bind_shared(ip: IpAddr, ports: &super::Ports) -> std::io::Result<SharedPort> {
    let lanes = super::session::media_thread_count();
    let lane = NEXT_LANE.fetch_add(1, Ordering::Relaxed) % lanes.max(1);
    let mut known = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    known.retain(|k| k.pair.strong_count() > 0);
    let found = known.iter().find_map(|k| {
        let same_range = k.ports.upgrade().is_some_and(|p| Arc::ptr_eq(&p, ports));
        (k.ip == ip && k.lane == lane && same_range)
            .then(|| k.pair.upgrade())
            .flatten()
    });
    if let Some(pair) = found {
        return Ok(SharedPort { pair });
    }
    let pair = Arc::new(bind_pair(ip, ports, lane)?);
    known.push(Known {
        ip,
        ports: Arc::downgrade(ports),
        lane,
        pair: Arc::downgrade(&pair),
    });
    Ok(SharedPort { pair })
}

fn bind_pair(ip: IpAddr, ports: &super::Ports, lane: usize) -> std::io::Result<SharedPair> {
    let (rtp, rtcp, lease) = super::session::bind_std_pair(ip, ports)?;
    for s in [&rtp, &rtcp] {
        let r = socket2::SockRef::from(s);
        // Best effort: the kernel caps them at net.core.[rw]mem_max.
        let _ = r.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = r.set_send_buffer_size(SOCKET_BUFFER);
    }
    let rtp_state = quinn_udp::UdpSocketState::new((&rtp).into())?;
    let rtcp_state = quinn_udp::UdpSocketState::new((&rtcp).into())?;
    #[cfg(target_os = "linux")]
    for s in [&rtp, &rtcp] {
        // Don't-fragment without path-MTU bookkeeping, as a session's own
        // sockets have it (`Sockets::dont_fragment`): media datagrams are
        // far below any MTU.
        if s.local_addr().is_ok_and(|a| a.is_ipv4()) {
            use rustix::net::sockopt;
            let _ = sockopt::set_ip_mtu_discover(s, sockopt::Ipv4PathMtuDiscovery::PROBE);
        }
    }
    let local = rtp.local_addr()?;
    Ok(SharedPair {
        rtp,
        rtcp,
        rtp_state,
        rtcp_state,
        local,
        lane,
        _lease: lease,
    })
}

/// The SSRC a datagram names: RTP's at octets 8-11 (RFC 3550 §5.1), RTCP's
/// sender at 4-7 (§6.4; the first chunk of an SDES or BYE is there too).
/// SRTP and SRTCP leave both in clear (RFC 3711 §3.1, §3.4).
pub(super) fn stream_ssrc(datagram: &[u8], rtcp: bool) -> Option<u32> {
    let at = if rtcp { 4 } else { 8 };
    let b = datagram.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Where a session on a shared port expects its media from, and the SSRC
/// its peer announced, if any: what the [`Demux`] knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Route {
    pub(super) rtp: Option<SocketAddr>,
    pub(super) rtcp: Option<SocketAddr>,
    pub(super) ssrc: Option<u32>,
}

/// Tells a shared port's datagrams apart, by session (a media thread's slot
/// number). A datagram goes to, of the sessions expecting its source, the one
/// whose peer announced its SSRC, else the only one, else the only one with
/// nothing announced; from a source nobody expects (a NAT between), to the
/// only session whose peer announced its SSRC. Anything else is nobody's.
/// (The session then checks the datagram as it would on a socket of its own:
/// source, SSRC, SRTP.)
#[derive(Default)]
pub(super) struct Demux {
    /// Sessions by the (source, SSRC) they expect: their peer announced it.
    streams: HashMap<(SocketAddr, u32), usize>,
    /// Sessions by the source they expect, announced SSRC or not.
    expected: HashMap<SocketAddr, Vec<usize>>,
    /// Sessions whose peer announced nothing, by the source they expect.
    open: HashMap<SocketAddr, Vec<usize>>,
    /// Sessions by the SSRC their peer announced.
    announced: HashMap<u32, Vec<usize>>,
}

impl Demux {
    /// The session a datagram from `from` naming `ssrc` is for. A few hash
    /// lookups whatever the number of sessions (a peer sharing its port is
    /// the source a thousand sessions expect).
    pub(super) fn find(&self, from: SocketAddr, ssrc: u32) -> Option<usize> {
        if let Some(&slot) = self.streams.get(&(from, ssrc)) {
            return Some(slot);
        }
        if let Some(waiting) = self.expected.get(&from) {
            if let [slot] = waiting.as_slice() {
                return Some(*slot);
            }
            return match self.open.get(&from).map(Vec::as_slice) {
                Some([slot]) => Some(*slot),
                _ => None,
            };
        }
        match self.announced.get(&ssrc).map(Vec::as_slice) {
            Some([slot]) => Some(*slot),
            _ => None,
        }
    }

    /// The addresses a route expects datagrams from.
    fn sources(route: Route) -> impl Iterator<Item = SocketAddr> {
        [route.rtp, route.rtcp.filter(|r| Some(*r) != route.rtp)]
            .into_iter()
            .flatten()
    }

    /// Session `slot` expects what `route` says (from now on).
    pub(super) fn add(&mut self, slot: usize, route: Route) {
        for addr in Self::sources(route) {
            self.expected.entry(addr).or_default().push(slot);
            match route.ssrc {
                Some(ssrc) => {
                    self.streams.insert((addr, ssrc), slot);
                }
                None => self.open.entry(addr).or_default().push(slot),
            }
        }
        if let Some(ssrc) = route.ssrc {
            self.announced.entry(ssrc).or_default().push(slot);
        }
    }

    /// Session `slot` no longer expects what `route` said (it moved, or ended).
    pub(super) fn remove(&mut self, slot: usize, route: Route) {
        fn without<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<usize>>, key: K, slot: usize) {
            if let Some(slots) = map.get_mut(&key) {
                slots.retain(|s| *s != slot);
                if slots.is_empty() {
                    map.remove(&key);
                }
            }
        }
        for addr in Self::sources(route) {
            without(&mut self.expected, addr, slot);
            match route.ssrc {
                Some(ssrc) => {
                    if self.streams.get(&(addr, ssrc)) == Some(&slot) {
                        self.streams.remove(&(addr, ssrc));
                    }
                }
                None => without(&mut self.open, addr, slot),
            }
        }
        if let Some(ssrc) = route.ssrc {
            without(&mut self.announced, ssrc, slot);
        }
    }
}

/// The most bytes of datagrams waiting for one session's step; more are
/// dropped (a session steps every ptime, so this is a flood).
const INBOX_MAX: usize = 32 << 10;

/// Datagrams a shared port received for one session, kept until its next
/// step reads them ([`Inbox::drain`]). Handed over there, not as they come:
/// a session's memory is cold between its steps, and the step touches it
/// anyway (its datagrams read at once cost each a second round of cache
/// misses, and their buffers were allocated in one burst and freed in
/// another, past the allocator's per-thread cache: 15 % more of the media
/// threads' time at 2500 calls than reading them in the step).
#[derive(Default)]
pub(super) struct Inbox {
    /// Each datagram: RTCP flag and IP version (1 byte), port, length
    /// (2 bytes each, little-endian), the IP (4 or 16), the datagram.
    bytes: Vec<u8>,
}

impl Inbox {
    /// Keeps a datagram for the session; false if it was dropped (too much waits).
    pub(super) fn push(&mut self, rtcp: bool, from: SocketAddr, datagram: &[u8]) -> bool {
        let Ok(len) = u16::try_from(datagram.len()) else {
            return false;
        };
        if self.bytes.len() + datagram.len() > INBOX_MAX {
            return false;
        }
        let v6 = from.is_ipv6();
        self.bytes.push(u8::from(rtcp) | u8::from(v6) << 1);
        self.bytes.extend_from_slice(&from.port().to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        match from.ip() {
            IpAddr::V4(ip) => self.bytes.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => self.bytes.extend_from_slice(&ip.octets()),
        }
        self.bytes.extend_from_slice(datagram);
        true
    }

    /// How many bytes wait (datagrams and what tells them apart).
    pub(super) fn waiting(&self) -> usize {
        self.bytes.len()
    }

    /// Hands each waiting datagram to `each` (RTCP, source, bytes), oldest first.
    pub(super) fn drain(&mut self, mut each: impl FnMut(bool, SocketAddr, &mut [u8])) {
        let mut at = 0;
        while let Some(&flags) = self.bytes.get(at) {
            let (Some(port), Some(len)) = (self.u16_at(at + 1), self.u16_at(at + 3)) else {
                break;
            };
            let ip_len = if flags & 2 != 0 { 16 } else { 4 };
            let ip_at = at + 5;
            let data_at = ip_at + ip_len;
            let end = data_at + usize::from(len);
            let Some(ip) = self.bytes.get(ip_at..data_at) else {
                break;
            };
            let ip = match <[u8; 16]>::try_from(ip) {
                Ok(v6) => IpAddr::from(v6),
                Err(_) => match <[u8; 4]>::try_from(ip) {
                    Ok(v4) => IpAddr::from(v4),
                    Err(_) => break,
                },
            };
            let Some(datagram) = self.bytes.get_mut(data_at..end) else {
                break;
            };
            each(flags & 1 != 0, SocketAddr::new(ip, port), datagram);
            at = end;
        }
        self.bytes.clear();
        // A burst's room is not kept for the rest of the call.
        if self.bytes.capacity() > 4096 {
            self.bytes = Vec::new();
        }
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.bytes.get(at..at + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Datagrams a media thread's sessions sent to shared ports during one
/// wake-up, sent together at its end ([`Outbox::flush`]).
#[derive(Default)]
pub(super) struct Outbox {
    data: Vec<u8>,
    /// (pair key, RTCP socket, destination, end of its bytes in `data`).
    queued: Vec<(usize, bool, SocketAddr, usize)>,
    /// A GSO send's datagrams, end to end.
    run: Vec<u8>,
    /// `queued`'s indices by socket and destination, while flushing.
    order: Vec<usize>,
    /// Datagrams to go by `sendmmsg` (destination, range of `data`), while flushing.
    singles: Vec<(SocketAddr, usize, usize)>,
}

impl Outbox {
    /// Queues a datagram for the pair known by `key`.
    pub(super) fn push(&mut self, key: usize, rtcp: bool, to: SocketAddr, datagram: &[u8]) {
        self.data.extend_from_slice(datagram);
        self.queued.push((key, rtcp, to, self.data.len()));
    }

    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends what waits, each from the pair `pair_of` finds by its key, in
    /// order for each destination. Datagrams of one size to one destination
    /// (many calls to a peer that shares its port too) go as one UDP GSO send
    /// (`UDP_SEGMENT`, up to 64 a call, through quinn-udp): the kernel carries
    /// them as one packet as far as it can (on loopback, to a GRO reader, all
    /// the way). The others go by `sendmmsg`, [`BATCH`] a call. A datagram the
    /// kernel refuses (a full buffer) is dropped, as the network would.
    #[cfg(target_os = "linux")]
    pub(super) fn flush<'a>(&mut self, pair_of: impl Fn(usize) -> Option<&'a SharedPair>) {
        // The buffers are the outbox's, kept from one wake-up to the next.
        let Outbox {
            data,
            queued: q,
            run,
            order,
            singles,
        } = self;
        let start_of = |i: usize| if i == 0 { 0 } else { q[i - 1].3 };
        // By socket and destination, each destination's datagrams in the
        // order they were queued (a stable sort).
        order.clear();
        order.extend(0..q.len());
        order.sort_by_key(|&i| (q[i].0, q[i].1, q[i].2));
        singles.clear();
        let mut i = 0;
        while i < order.len() {
            let (key, rtcp) = (q[order[i]].0, q[order[i]].1);
            let mut j = i;
            while j < order.len() && (q[order[j]].0, q[order[j]].1) == (key, rtcp) {
                j += 1;
            }
            if let Some(pair) = pair_of(key) {
                let (socket, state) = pair.socket(rtcp);
                let most = state.max_gso_segments().clamp(1, GSO_SEGMENTS);
                let mut k = i;
                while k < j {
                    let first = order[k];
                    let to = q[first].2;
                    let len = q[first].3 - start_of(first);
                    let mut m = k + 1;
                    while m < j
                        && m - k < most
                        && q[order[m]].2 == to
                        && q[order[m]].3 - start_of(order[m]) == len
                        && (m - k + 1) * len <= GSO_BYTES
                    {
                        m += 1;
                    }
                    if m - k >= 2 && len > 0 {
                        // What was queued before goes first.
                        send_mmsg(socket, data, singles);
                        singles.clear();
                        run.clear();
                        for &d in &order[k..m] {
                            run.extend_from_slice(&data[start_of(d)..q[d].3]);
                        }
                        let transmit = quinn_udp::Transmit {
                            destination: to,
                            ecn: None,
                            contents: run,
                            segment_size: Some(len),
                            src_ip: None,
                        };
                        // Errors are per send (quinn-udp turns GSO off where the
                        // kernel cannot): these datagrams are dropped.
                        let _ = state.send(socket.into(), &transmit);
                    } else {
                        singles.push((to, start_of(first), q[first].3));
                    }
                    k = m;
                }
                send_mmsg(socket, data, singles);
                singles.clear();
            }
            i = j;
        }
        data.clear();
        q.clear();
    }

    /// Sends what waits, one system call a datagram (no `sendmmsg` here).
    #[cfg(not(target_os = "linux"))]
    pub(super) fn flush<'a>(&mut self, pair_of: impl Fn(usize) -> Option<&'a SharedPair>) {
        let mut start = 0;
        for &(key, rtcp, to, end) in &self.queued {
            if let Some(pair) = pair_of(key) {
                let _ = pair.socket(rtcp).0.send_to(&self.data[start..end], to);
            }
            start = end;
        }
        self.data.clear();
        self.queued.clear();
    }
}

/// The most datagrams in one GSO send (the kernel's limit, `UDP_MAX_SEGMENTS`).
#[cfg(target_os = "linux")]
const GSO_SEGMENTS: usize = 64;

/// The most bytes in one GSO send (under the 64 KiB of one IP packet).
#[cfg(target_os = "linux")]
const GSO_BYTES: usize = 60_000;

/// Sends `datagrams` (destination, range of `data`) from `socket` with
/// `sendmmsg`, [`BATCH`] a call; one the kernel refuses is dropped.
#[cfg(target_os = "linux")]
fn send_mmsg(socket: &std::net::UdpSocket, data: &[u8], datagrams: &[(SocketAddr, usize, usize)]) {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    use std::io::IoSlice;
    for run in datagrams.chunks(BATCH) {
        let slices: Vec<[IoSlice<'_>; 1]> = run
            .iter()
            .map(|&(_, start, end)| [IoSlice::new(&data[start..end])])
            .collect();
        let addrs: Vec<SocketAddrAny> = run.iter().map(|d| SocketAddrAny::from(d.0)).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            run.iter().map(|_| SendAncillaryBuffer::default()).collect();
        let mut headers: Vec<MMsgHdr<'_>> = slices
            .iter()
            .zip(&addrs)
            .zip(&mut controls)
            .map(|((iov, to), c)| MMsgHdr::new_with_addr(to, iov, c))
            .collect();
        let mut sent = 0;
        while sent < headers.len() {
            match sendmmsg(socket, &mut headers[sent..], SendFlags::empty()) {
                Ok(n) if n > 0 => sent += n,
                // The first datagram left was refused: dropped, the rest go on.
                _ => sent += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn route(rtp: u16, ssrc: Option<u32>) -> Route {
        Route {
            rtp: Some(at(rtp)),
            rtcp: Some(at(rtp)),
            ssrc,
        }
    }

    #[test]
    fn sessions_expecting_one_source_are_told_apart_by_announced_ssrc() {
        let mut d = Demux::default();
        d.add(0, route(4000, Some(11)));
        d.add(1, route(4000, Some(22)));
        assert_eq!(d.find(at(4000), 22), Some(1));
        assert_eq!(d.find(at(4000), 11), Some(0));
        // An SSRC nobody announced from a source two sessions expect: nobody's.
        assert_eq!(d.find(at(4000), 33), None);
        // A source nobody expects, an announced SSRC (a NAT between): its session.
        assert_eq!(d.find(at(9000), 22), Some(1));
        assert_eq!(d.find(at(9000), 33), None);
    }

    #[test]
    fn a_source_one_session_expects_is_its_whatever_the_ssrc() {
        let mut d = Demux::default();
        d.add(0, route(4000, None));
        d.add(1, route(4002, None));
        d.add(
            2,
            Route {
                rtp: Some(at(4004)),
                rtcp: Some(at(4005)),
                ssrc: None,
            },
        );
        assert_eq!(d.find(at(4000), 7), Some(0));
        assert_eq!(d.find(at(4002), 7), Some(1));
        assert_eq!(d.find(at(4005), 7), Some(2), "its RTCP port");
        // Two sessions that expect one source and know no SSRC: nobody's.
        d.add(3, route(4000, None));
        assert_eq!(d.find(at(4000), 7), None);
        // One of them announced: the other is the only one left open.
        d.add(4, route(4000, Some(9)));
        d.remove(3, route(4000, None));
        assert_eq!(d.find(at(4000), 9), Some(4));
        assert_eq!(d.find(at(4000), 7), Some(0));
    }

    #[test]
    fn an_ended_or_rerouted_session_gets_nothing_more() {
        let mut d = Demux::default();
        let r = route(4000, Some(5));
        d.add(0, r);
        // A re-INVITE moves the peer.
        d.remove(0, r);
        let moved = route(5000, Some(5));
        d.add(0, moved);
        assert_eq!(d.find(at(5000), 9), Some(0));
        assert_eq!(d.find(at(4000), 5), Some(0), "announced, from elsewhere");
        d.remove(0, moved);
        assert_eq!(d.find(at(4000), 5), None);
        assert_eq!(d.find(at(5000), 5), None);
        assert!(d.expected.is_empty() && d.announced.is_empty());
        assert!(d.streams.is_empty() && d.open.is_empty());
    }

    #[test]
    fn an_inbox_gives_back_what_it_kept_in_order() {
        let mut inbox = Inbox::default();
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 6000));
        assert!(inbox.push(false, at(4000), b"rtp"));
        assert!(inbox.push(true, v6, b""));
        assert!(inbox.push(true, at(4001), &[7; 300]));
        let mut got = Vec::new();
        inbox.drain(|rtcp, from, d| got.push((rtcp, from, d.to_vec())));
        assert_eq!(
            got,
            vec![
                (false, at(4000), b"rtp".to_vec()),
                (true, v6, Vec::new()),
                (true, at(4001), vec![7; 300]),
            ]
        );
        let mut again = 0;
        inbox.drain(|_, _, _| again += 1);
        assert_eq!(again, 0, "drained");
        // A flood is cut off, not kept.
        let mut kept = 0;
        while inbox.push(false, at(4000), &[0; 1000]) {
            kept += 1;
        }
        assert!(kept < INBOX_MAX / 1000 + 1);
        assert!(!inbox.push(false, at(4000), &vec![0; 70_000]));
    }

    /// What an outbox holds reaches each destination whole and in order,
    /// whether it went as one GSO send (a run of one size to one place) or
    /// by `sendmmsg`.
    #[test]
    fn an_outbox_delivers_runs_and_singles_in_order() {
        let ports = std::sync::Arc::new(Mutex::new(PortAllocator::new(47400..=47411).unwrap()));
        let pair = Arc::new(bind_pair(IpAddr::from([127, 0, 0, 1]), &ports, 0).unwrap());
        let sink = |_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            s
        };
        let (a, b) = (sink(0), sink(1));
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut out = Outbox::default();
        let key = pair.key();
        // Five of one size to A (a GSO run), one to B, a longer one to A, two more to A.
        let mut sent_a = Vec::new();
        for i in 0..5u8 {
            out.push(key, false, to_a, &[i; 172]);
            sent_a.push(vec![i; 172]);
        }
        out.push(key, false, to_b, &[7; 172]);
        out.push(key, false, to_a, &[9; 200]);
        sent_a.push(vec![9; 200]);
        for i in 10..12u8 {
            out.push(key, false, to_a, &[i; 172]);
            sent_a.push(vec![i; 172]);
        }
        out.flush(|k| (k == key).then_some(&*pair));
        assert!(out.is_empty());
        let mut buf = [0u8; 2048];
        for want in &sent_a {
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&want[..], pair.local));
        }
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[7; 172][..]);
    }

    #[test]
    fn the_ssrc_is_read_where_rtp_and_rtcp_carry_it() {
        let rtp = [0x80, 0, 0, 1, 0, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef];
        assert_eq!(stream_ssrc(&rtp, false), Some(0xdead_beef));
        let rtcp = [0x80, 200, 0, 6, 1, 2, 3, 4];
        assert_eq!(stream_ssrc(&rtcp, true), Some(0x0102_0304));
        assert_eq!(stream_ssrc(&rtcp, false), None, "too short for RTP");
        assert_eq!(stream_ssrc(&[], true), None);
    }
}
