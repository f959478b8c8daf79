//! SDP: session descriptions (RFC 4566) and the offer/answer model (RFC 3264).
//!
//! [`SessionDescription`] is the model, [`SessionDescription::parse`] the parser and its
//! `Display` impl the serializer (canonical CRLF lines). Lines the model does not interpret
//! (`i=`, `b=`, `k=`, unknown types, unknown attributes) are kept in order, so parse → serialize →
//! parse gives the same value. [`Negotiator`] builds offers and answers for one call.
//!
//! ```
//! use parrot_core::sdp::{Direction, SessionDescription};
//! let sdp: SessionDescription = "v=0\r\n\
//!     o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n\
//!     s=\r\nc=IN IP4 host.atlanta.example.com\r\nt=0 0\r\n\
//!     m=audio 49170 RTP/AVP 0 8 97\r\n\
//!     a=rtpmap:97 iLBC/8000\r\na=sendonly\r\n".parse()?;
//! let audio = &sdp.media[0];
//! assert_eq!(audio.port, 49170);
//! assert_eq!(audio.codec(0).map(|c| c.name.into_owned()).as_deref(), Some("PCMU")); // static
//! assert_eq!(audio.rtpmap(97).map(|c| c.clock_rate), Some(8000));
//! assert_eq!(sdp.media_direction(audio), Direction::SendOnly);
//! assert_eq!(sdp.to_string().parse::<SessionDescription>()?, sdp);
//! # Ok::<(), parrot_core::sdp::SdpError>(())
//! ```

pub mod crypto;
pub mod error;
mod offer_answer;
mod parse;
pub mod sdes;
#[cfg(test)]
mod tests;

pub use crypto::{CryptoAttribute, CryptoError, accepted_offer, choose_offered};
pub use error::{SdpError, SdpErrorKind};
pub use offer_answer::{
    Answer, LocalMedia, Negotiated, NegotiationError, Negotiator, PTIME_RANGE, default_choice,
    send_ptime,
};
pub use sdes::{LocalSrtp, NegotiatedSrtp, SrtpMode};

use crate::codec::Codec;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The most `m=` lines a description may have. Each one is answered (RFC 3264 §6); real
/// offers have a handful, WebRTC bundles a few dozen at most.
pub const MAX_MEDIA: usize = 64;

/// The most formats one `m=` line may list: an RTP payload type is 7 bits (RFC 3551 §6),
/// so a longer list repeats itself.
pub const MAX_FORMATS: usize = 128;

/// The most `a=` lines a description may have, session and media levels together. Reading
/// a codec scans the attributes of its section, so formats × attributes is the cost of an
/// answer; these caps keep it near 10⁵.
pub const MAX_ATTRIBUTES: usize = 1024;

/// The highest `a=rtpmap` clock rate read as a codec, in Hz (video uses 90 000, audio at most
/// 384 000). Frame buffers are clock rate × ptime × channels.
pub const MAX_CLOCK_RATE: u32 = 1_000_000;

/// The most channels an `a=rtpmap` may give (RFC 4566 §6 "encoding parameters" of audio).
pub const MAX_CHANNELS: u16 = 8;

/// A session description (RFC 4566 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionDescription {
    /// `v=`: protocol version, 0.
    pub version: u32,
    /// `o=`: originator and session identifier.
    pub origin: Origin,
    /// `s=`: session name (often `-`; RFC 4317 examples leave it empty, which is accepted).
    pub session_name: String,
    /// Session-level `c=`; a media-level one overrides it (RFC 4566 §5.7).
    pub connection: Option<Connection>,
    /// `t=` lines with their `r=` lines. Never empty after parsing: a missing `t=` (sent by
    /// some SIP user agents) is read as `t=0 0`.
    pub timing: Vec<Timing>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Session-level lines the model does not interpret (`i= u= e= p= b= z= k=` and unknown
    /// types), in order.
    pub other_lines: Vec<Line>,
    /// Media sections (`m=` and what follows it), in order.
    pub media: Vec<MediaDescription>,
}

/// The `o=` line (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Origin {
    /// User name on the originating host, `-` if none.
    pub username: String,
    /// Session identifier: a numeric string, kept as text since some agents exceed 64 bits.
    pub session_id: String,
    /// Session version, incremented on every change (RFC 3264 §8).
    pub session_version: u64,
    /// Network type, `IN`.
    pub nettype: String,
    /// Address type, `IP4` or `IP6`.
    pub addrtype: String,
    /// Address (or host name) of the originating machine.
    pub address: String,
}

impl Origin {
    /// An origin line for `address` (`IN IP4` or `IN IP6` from its family).
    pub fn new(
        username: impl Into<String>,
        session_id: u64,
        session_version: u64,
        address: IpAddr,
    ) -> Origin {
        Origin {
            username: username.into(),
            session_id: session_id.to_string(),
            session_version,
            nettype: "IN".into(),
            addrtype: addrtype_of(address).into(),
            address: address.to_string(),
        }
    }
}

fn addrtype_of(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// A `c=` line (RFC 4566 §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Connection {
    /// Network type, `IN`.
    pub nettype: String,
    /// Address type, `IP4` or `IP6`.
    pub addrtype: String,
    /// Connection address as written: an IP address, a host name, or a multicast address with
    /// `/ttl` and `/count` suffixes.
    pub address: String,
}

impl Connection {
    /// `IN IP4 <address>` or `IN IP6 <address>`.
    pub fn new(address: IpAddr) -> Connection {
        Connection {
            nettype: "IN".into(),
            addrtype: addrtype_of(address).into(),
            address: address.to_string(),
        }
    }

    /// The address as an IP address, ignoring multicast suffixes; `None` for host names.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self.address.split('/').next().unwrap_or_default();
        host.parse().ok()
    }

    /// Whether this is `0.0.0.0` (or `::`): the RFC 2543 way of saying "do not send me
    /// media", still to be understood on input (RFC 3264 §8.4).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// A `t=` line and its `r=` lines (RFC 4566 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct Timing {
    /// Start time (NTP seconds), 0 for an unbounded session.
    pub start: u64,
    /// Stop time (NTP seconds), 0 for an unbounded session.
    pub stop: u64,
    /// `r=` values, uninterpreted.
    pub repeats: Vec<String>,
}

impl Timing {
    /// `t=<start> <stop>`; `Timing::new(0, 0)` is the permanent session SIP uses.
    pub fn new(start: u64, stop: u64) -> Timing {
        Timing {
            start,
            stop,
            repeats: Vec::new(),
        }
    }
}

/// An `a=` line: `a=<name>` or `a=<name>:<value>` (RFC 4566 §5.13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Attribute {
    /// Attribute name (before the first colon).
    pub name: String,
    /// Value after the first colon, if there is a colon.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute: `a=<name>`.
    pub fn flag(name: impl Into<String>) -> Attribute {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    /// A value attribute: `a=<name>:<value>`.
    pub fn value(name: impl Into<String>, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

/// A line kept verbatim: its type letter and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Line {
    /// The type letter (`i`, `b`, `k`, …).
    pub kind: char,
    /// Everything after the `=`.
    pub value: String,
}

impl Line {
    /// A `<kind>=<value>` line.
    pub fn new(kind: char, value: impl Into<String>) -> Line {
        Line {
            kind,
            value: value.into(),
        }
    }
}

/// The media type of an `m=` line (RFC 4566 §5.14, §8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `text`.
    Text,
    /// `application`.
    Application,
    /// `message`.
    Message,
    /// `image` (T.38 fax).
    Image,
    /// Anything else, as written.
    Other(String),
}

impl MediaKind {
    /// The token as written in `m=`.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Other(s) => s,
        }
    }

    fn from_token(token: &str) -> MediaKind {
        match token {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            other => MediaKind::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Media direction attributes (RFC 4566 §6, RFC 3264 §5.1), seen from the author of the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    #[default]
    SendRecv,
    /// `a=sendonly`: the author sends and does not want to receive (hold, RFC 3264 §8.4).
    SendOnly,
    /// `a=recvonly`: the author receives and does not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// From whether the author sends and whether it receives.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an attribute name stands for, if it is one.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the author sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the author receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: sendonly ↔ recvonly.
    #[must_use]
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both allow: sends if both send, receives if both receive.
    #[must_use]
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media section: the `m=` line and its `c=`, `a=` and other lines (RFC 4566 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaDescription {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port; 0 means the stream is rejected or disabled (RFC 3264 §6, §8.2).
    pub port: u16,
    /// Number of ports (`<port>/<count>`), if given.
    pub port_count: Option<u16>,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, `udptl`, …
    pub protocol: String,
    /// Media formats; for RTP profiles, payload type numbers (validated 0..=127 by the parser).
    pub formats: Vec<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Other media-level lines (`i= b= k=`, unknown types, further `c=`), in order.
    pub other_lines: Vec<Line>,
}

impl MediaDescription {
    /// An `m=` line with no formats, connection or attributes.
    pub fn new(kind: MediaKind, port: u16, protocol: impl Into<String>) -> MediaDescription {
        MediaDescription {
            kind,
            port,
            port_count: None,
            protocol: protocol.into(),
            formats: Vec::new(),
            connection: None,
            attributes: Vec::new(),
            other_lines: Vec::new(),
        }
    }

    /// Whether the protocol is an RTP profile (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`…).
    pub fn is_rtp(&self) -> bool {
        is_rtp_protocol(&self.protocol)
    }

    /// Whether the stream is rejected or disabled (port 0, RFC 3264 §6).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// The formats as payload type numbers, 0..=127 (formats that are not are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_payload_type(f))
    }

    /// The value of the first attribute called `name`; `Some("")` for a property attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }

    /// The codec an `a=rtpmap:<pt>` line names (RFC 4566 §6), without format parameters.
    /// A clock rate outside 1..=[`MAX_CLOCK_RATE`] or a channel count outside
    /// 1..=[`MAX_CHANNELS`] names no codec: a dynamic payload type is then one this end cannot
    /// use (an offer with nothing else gets a 488), a static one keeps its RFC 3551 meaning
    /// (see [`MediaDescription::codec`]).
    pub fn rtpmap(&self, payload_type: u8) -> Option<Codec> {
        self.attributes_for("rtpmap", payload_type)
            .find_map(|rest| {
                // <encoding name>/<clock rate>[/<encoding parameters>]
                let mut parts = rest.trim().split('/');
                let name = parts.next().filter(|n| !n.is_empty())?;
                let clock_rate = parse_decimal(parts.next()?.trim())
                    .filter(|r| (1..=u64::from(MAX_CLOCK_RATE)).contains(r))?;
                let channels = match parts.next() {
                    Some(c) => parse_decimal(c.trim())
                        .filter(|c| (1..=u64::from(MAX_CHANNELS)).contains(c))?,
                    None => 1,
                };
                // Both in range, so both fit.
                let (clock_rate, channels) = (
                    u32::try_from(clock_rate).ok()?,
                    u16::try_from(channels).ok()?,
                );
                Some(Codec::new(name.to_owned(), clock_rate, payload_type).with_channels(channels))
            })
    }

    /// The `a=fmtp:<pt>` parameters, if any.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attributes_for("fmtp", payload_type)
            .next()
            .map(str::trim)
    }

    /// The codec payload type `pt` stands for: its `a=rtpmap`, or the static assignment of
    /// RFC 3551 when there is none (RFC 3264 §5.1 lets static types omit rtpmap); with its
    /// `a=fmtp` parameters.
    pub fn codec(&self, payload_type: u8) -> Option<Codec> {
        let codec = self
            .rtpmap(payload_type)
            .or_else(|| Codec::from_static_payload_type(payload_type))?;
        Some(match self.fmtp(payload_type) {
            Some(params) => codec.with_fmtp(params.to_owned()),
            None => codec,
        })
    }

    /// Every listed format that maps to a codec, in the order of the `m=` line.
    pub fn codecs(&self) -> Vec<Codec> {
        self.payload_types()
            .filter_map(|pt| self.codec(pt))
            .collect()
    }

    /// `a=ptime`: packet duration in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime").and_then(|v| v.trim().parse().ok())
    }

    /// `a=maxptime`: largest packet duration in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attribute("maxptime")
            .and_then(|v| v.trim().parse().ok())
    }

    /// `a=rtcp` (RFC 3605): the RTCP port when it is not the RTP port + 1.
    pub fn rtcp_port(&self) -> Option<u16> {
        let value = self.attribute("rtcp")?;
        value.split_ascii_whitespace().next()?.parse().ok()
    }

    /// `a=rtcp-mux` (RFC 5761 §5.1.1): RTCP on the RTP port.
    pub fn rtcp_mux(&self) -> bool {
        self.attribute("rtcp-mux").is_some()
    }

    /// The one SSRC the stream's `a=ssrc` lines name (RFC 5576 §4.1), or `None` when
    /// they name none, several, or one that does not parse.
    pub fn ssrc(&self) -> Option<u32> {
        let mut named = self
            .attributes
            .iter()
            .filter(|a| a.name == "ssrc")
            .map(|a| {
                let id = a.value.as_deref().unwrap_or("");
                id.split(' ').next().and_then(|id| id.parse::<u32>().ok())
            });
        let first = named.next()??;
        named.all(|id| id == Some(first)).then_some(first)
    }

    /// The media-level direction attribute, if present (the last one wins).
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// Replaces any direction attribute with `direction`.
    pub fn set_direction(&mut self, direction: Direction) {
        self.attributes
            .retain(|a| Direction::from_attribute(&a.name).is_none());
        self.attributes.push(Attribute::flag(direction.as_str()));
    }

    /// Values of `a=<name>:<pt> <rest>` for one payload type.
    fn attributes_for<'a>(
        &'a self,
        name: &'a str,
        payload_type: u8,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(move |a| {
                let value = a.value.as_deref()?;
                let (pt, rest) = value.split_once(' ').unwrap_or((value, ""));
                (parse_payload_type(pt) == Some(payload_type)).then_some(rest)
            })
    }
}

/// Digits only (no sign, no spaces), at most 20 of them: `None` beyond `u64::MAX`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An RTP payload type: a decimal number 0..=127, the field being 7 bits (RFC 3550 §5.1,
/// RFC 3551 §6).
fn parse_payload_type(s: &str) -> Option<u8> {
    parse_decimal(s)
        .filter(|&pt| pt <= 127)
        .and_then(|pt| u8::try_from(pt).ok())
}

fn is_rtp_protocol(protocol: &str) -> bool {
    protocol.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
}

fn find_attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.value.as_deref().unwrap_or(""))
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .filter(|a| a.value.is_none())
        .filter_map(|a| Direction::from_attribute(&a.name))
        .next_back()
}

impl SessionDescription {
    /// A minimal description: `v=0`, the origin, `s=-`, `t=0 0`, nothing else.
    pub fn new(origin: Origin) -> SessionDescription {
        SessionDescription {
            version: 0,
            origin,
            session_name: "-".into(),
            connection: None,
            timing: vec![Timing::new(0, 0)],
            attributes: Vec::new(),
            other_lines: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Parses a session description. Lines end in CRLF or a bare LF; `v=`, `o=` and `s=` must
    /// come first, in that order. Never panics.
    pub fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
        parse::parse(input)
    }

    /// The serialized form (CRLF line ends), as bytes for a SIP body.
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.to_string())
    }

    /// The value of the first session-level attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }

    /// The session-level direction attribute, if present.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// The direction of `media`: its own attribute, else the session-level one, else
    /// sendrecv (RFC 4566 §6, RFC 3264 §5.1).
    pub fn media_direction(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or_default()
    }

    /// The connection for `media`: its own `c=`, else the session-level one (RFC 4566 §5.7).
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// Whether the author of this SDP does not want to receive on `media`: `a=sendonly`,
    /// `a=inactive`, or the legacy `c=0.0.0.0` hold of RFC 2543, which RFC 3264 §8.4 still
    /// requires agents to understand ("neither RTP nor RTCP should be sent to the peer").
    pub fn is_hold(&self, media: &MediaDescription) -> bool {
        !self.media_direction(media).receives()
            || self
                .connection_for(media)
                .is_some_and(Connection::is_unspecified)
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(s.as_bytes())
    }
}

/// Session-level lines the model keeps verbatim go back where RFC 4566 §5 puts them:
/// `i= u= e= p=` before `c=`, `b=` between `c=` and `t=`, the rest (`z= k=`, unknown) after.
fn session_slot(kind: char) -> u8 {
    match kind {
        'i' | 'u' | 'e' | 'p' => 0,
        'b' => 1,
        _ => 2,
    }
}

/// Media-level: `i=` before `c=`, the rest (`b= k=`, further `c=`, unknown) after it.
fn media_slot(kind: char) -> u8 {
    if kind == 'i' { 0 } else { 1 }
}

fn write_lines(
    f: &mut fmt::Formatter<'_>,
    lines: &[Line],
    slot: u8,
    slot_of: fn(char) -> u8,
) -> fmt::Result {
    for line in lines.iter().filter(|l| slot_of(l.kind) == slot) {
        write!(f, "{}={}\r\n", line.kind, line.value)?;
    }
    Ok(())
}

impl fmt::Display for SessionDescription {
    /// Canonical form: RFC 4566 §5 line order, CRLF line ends, a final CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v={}\r\n", self.version)?;
        write!(
            f,
            "o={} {} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.nettype, o.addrtype, o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        write_lines(f, &self.other_lines, 0, session_slot)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write_lines(f, &self.other_lines, 1, session_slot)?;
        if self.timing.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.timing {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        write_lines(f, &self.other_lines, 2, session_slot)?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.nettype, self.addrtype, self.address)
    }
}

impl fmt::Display for MediaDescription {
    /// The media section: `m=` line and what follows it, each line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        for fmt_ in &self.formats {
            write!(f, " {fmt_}")?;
        }
        f.write_str("\r\n")?;
        write_lines(f, &self.other_lines, 0, media_slot)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write_lines(f, &self.other_lines, 1, media_slot)?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}
