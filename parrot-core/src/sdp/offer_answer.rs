//! The offer/answer model (RFC 3264) for one audio stream: build offers, answer offers, read
//! answers. Sans-IO: the caller passes the session id in and moves the SDP itself.

use super::{
    Attribute, Connection, Direction, MediaDescription, MediaKind, Origin, SessionDescription,
};
use crate::codec::{Codec, CodecKind};
use std::net::{IpAddr, SocketAddr};

/// What this end offers or accepts: address, port, codecs and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalMedia {
    /// Address RTP is received on (`c=` and `o=`).
    pub address: IpAddr,
    /// RTP port (RTCP is on port + 1 unless an `a=rtcp` says otherwise).
    pub port: u16,
    /// Audio codecs, most preferred first. In an offer their payload types are used as given.
    pub codecs: Vec<Codec>,
    /// RFC 4733 telephone events to offer and accept, if any.
    pub telephone_event: Option<Codec>,
    /// Packet duration wanted on receive (`a=ptime`), in milliseconds.
    pub ptime: Option<u32>,
    /// What this end wants to do: sendrecv normally; sendonly or inactive to hold
    /// (RFC 3264 §8.4).
    pub direction: Direction,
    /// `o=` user name.
    pub username: String,
    /// `s=` session name.
    pub session_name: String,
    /// SRTP with SDES keys (RFC 4568), or none: plain RTP only (see [`super::sdes`]).
    pub srtp: Option<super::LocalSrtp>,
    /// Offer, and accept, RTCP on the RTP port (`a=rtcp-mux`, RFC 5761): a call then
    /// needs one socket instead of two. On by default; a peer that does not know the
    /// attribute ignores it and RTCP stays on the next port.
    pub rtcp_mux: bool,
    /// Our RTP SSRC, announced as `a=ssrc:<ssrc> cname:parrot` (RFC 5576 §4.1), or
    /// none. A peer that shares one port between calls tells our stream from the
    /// others it receives there by it (as ours do with a shared media port).
    pub ssrc: Option<u32>,
}

impl LocalMedia {
    /// G.722, PCMU, PCMA ([`codec::supported`](crate::codec::supported)) and telephone-event
    /// 101 on `address:port`, 20 ms, sendrecv.
    pub fn new(address: IpAddr, port: u16) -> LocalMedia {
        LocalMedia {
            address,
            port,
            codecs: crate::codec::supported(),
            telephone_event: Some(Codec::TELEPHONE_EVENT),
            ptime: Some(20),
            direction: Direction::SendRecv,
            username: "-".into(),
            session_name: "-".into(),
            srtp: None,
            rtcp_mux: true,
            ssrc: None,
        }
    }

    /// The same with SRTP keys and mode (or none: plain RTP only).
    #[must_use]
    pub fn with_srtp(mut self, srtp: Option<super::LocalSrtp>) -> LocalMedia {
        self.srtp = srtp;
        self
    }

    /// The same with `codecs` in preference order.
    #[must_use]
    pub fn with_codecs(mut self, codecs: Vec<Codec>) -> LocalMedia {
        self.codecs = codecs;
        self
    }

    /// The same with or without telephone events.
    #[must_use]
    pub fn with_telephone_event(mut self, telephone_event: Option<Codec>) -> LocalMedia {
        self.telephone_event = telephone_event;
        self
    }

    /// The same with another `a=ptime` (or none).
    #[must_use]
    pub fn with_ptime(mut self, ptime: Option<u32>) -> LocalMedia {
        self.ptime = ptime;
        self
    }

    /// The same with another direction.
    #[must_use]
    pub fn with_direction(mut self, direction: Direction) -> LocalMedia {
        self.direction = direction;
        self
    }

    /// The same offering and accepting `a=rtcp-mux` (RFC 5761), or not.
    #[must_use]
    pub fn with_rtcp_mux(mut self, rtcp_mux: bool) -> LocalMedia {
        self.rtcp_mux = rtcp_mux;
        self
    }

    /// The same announcing our SSRC (`a=ssrc`, RFC 5576), or not.
    #[must_use]
    pub fn with_ssrc(mut self, ssrc: Option<u32>) -> LocalMedia {
        self.ssrc = ssrc;
        self
    }
}

/// The outcome of a completed exchange, as the media layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// Index of the audio `m=` line in the offer and answer.
    pub media_index: usize,
    /// The codec to send and expect, with the payload type to send it on.
    pub codec: Codec,
    /// Telephone events, if both ends agreed on them, with the payload type to send them on.
    pub telephone_event: Option<Codec>,
    /// Where the peer receives: connection address as written (IP or host name).
    pub remote_host: String,
    /// The peer's RTP port.
    pub remote_port: u16,
    /// What this end does: whether it sends and whether it receives.
    pub direction: Direction,
    /// Packet duration to send with, in milliseconds: the peer's `a=ptime` (at most its
    /// `a=maxptime`), else 20; always within [`PTIME_RANGE`].
    pub ptime: u32,
    /// SRTP, if the exchange agreed it: the suite and both directions' keys.
    pub srtp: Option<super::NegotiatedSrtp>,
    /// Both ends agreed to send RTCP on the RTP port (`a=rtcp-mux` in the offer and the
    /// answer, RFC 5761 §5.1.1); else RTCP is on the RTP port + 1.
    pub rtcp_mux: bool,
    /// The SSRC the peer announced for its stream (`a=ssrc`, RFC 5576), if it named one
    /// (several SSRCs in one stream, RFC 5576 §4.2's groups, name none here).
    pub remote_ssrc: Option<u32>,
}

/// The packet durations (ms) this stack sends with. A peer's `a=ptime` or `a=maxptime` outside
/// it is taken as the nearest bound: the values are hints (RFC 4566 §6), and an unbounded one
/// would size every buffer of the call (`a=ptime:4294967295` asked for 64 GiB).
pub const PTIME_RANGE: std::ops::RangeInclusive<u32> = 10..=120;

/// The packet duration to send to the peer whose media section is `theirs`: its `a=ptime`, or 20,
/// no longer than its `a=maxptime` (RFC 4566 §6), clamped to [`PTIME_RANGE`].
pub fn send_ptime(theirs: &MediaDescription) -> u32 {
    let wanted = theirs.ptime().unwrap_or(20);
    let capped = theirs.maxptime().map_or(wanted, |max| wanted.min(max));
    capped.clamp(*PTIME_RANGE.start(), *PTIME_RANGE.end())
}

impl Negotiated {
    /// The peer's RTP address, when its connection address is an IP address other than
    /// `0.0.0.0`.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.remote_host.parse().ok()?;
        (!ip.is_unspecified()).then_some(SocketAddr::new(ip, self.remote_port))
    }
}

/// An answer to send, and what it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The answer SDP.
    pub sdp: SessionDescription,
    /// The negotiated audio stream; `None` when the offer had no `m=` lines at all (legal,
    /// RFC 4317 §5.1).
    pub negotiated: Option<Negotiated>,
}

/// Why an offer could not be answered or an answer not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// No audio stream has a codec both ends support (the UA answers 488 Not Acceptable Here,
    /// RFC 3261 §13.3.1.3), or the answerer rejected our audio stream.
    #[error("no common codec")]
    NoCommonCodec,
    /// The answer does not have one `m=` line per offered one (RFC 3264 §6).
    #[error("answer has {answered} m= lines, the offer {offered}")]
    MediaCountMismatch {
        /// `m=` lines offered.
        offered: usize,
        /// `m=` lines answered.
        answered: usize,
    },
    /// An answer arrived with no offer outstanding.
    #[error("no offer outstanding")]
    NoOfferPending,
    /// SRTP is needed (an `RTP/SAVP` stream, or SRTP made mandatory here) and no `a=crypto`
    /// both ends support was offered or answered (RFC 4568 §7.1.2, §7.1.3).
    #[error("no usable SRTP crypto attribute")]
    NoSrtp,
}

/// The codec-choice hook, in its object-safe form.
type ChooseCodec<'a> = dyn FnMut(&[Codec], &[Codec]) -> Option<Codec> + 'a;

/// Offer/answer state for one session (call): the origin line and the last SDP sent, so that
/// the version increments exactly when the SDP changes (RFC 3264 §8).
#[derive(Debug, Clone)]
pub struct Negotiator {
    local: LocalMedia,
    session_id: u64,
    last_sent: Option<SessionDescription>,
    pending_offer: Option<SessionDescription>,
}

impl Negotiator {
    /// A negotiator for `local`. `session_id` (typically an NTP timestamp or a random number,
    /// RFC 4566 §5.2) is also the first version.
    pub fn new(local: LocalMedia, session_id: u64) -> Negotiator {
        Negotiator {
            local,
            session_id,
            last_sent: None,
            pending_offer: None,
        }
    }

    /// The local configuration.
    pub fn local(&self) -> &LocalMedia {
        &self.local
    }

    /// The local configuration, to change before the next offer or answer (new port,
    /// different codecs, hold).
    pub fn local_mut(&mut self) -> &mut LocalMedia {
        &mut self.local
    }

    /// Sets the direction for the next offer or answer: [`Direction::SendOnly`] (or
    /// [`Direction::Inactive`]) holds, [`Direction::SendRecv`] resumes (RFC 3264 §8.4).
    pub fn set_direction(&mut self, direction: Direction) {
        self.local.direction = direction;
    }

    /// The last SDP sent (offer or answer).
    pub fn last_sent(&self) -> Option<&SessionDescription> {
        self.last_sent.as_ref()
    }

    /// Builds an offer (initial, or a re-offer for hold, resume or changes) and remembers it
    /// until [`Negotiator::accept_answer`].
    pub fn create_offer(&mut self) -> SessionDescription {
        let protocol = self
            .local
            .srtp
            .as_ref()
            .map_or("RTP/AVP", |s| s.offer_protocol());
        let mut media = MediaDescription::new(MediaKind::Audio, self.local.port, protocol);
        let mut codecs: Vec<&Codec> = Vec::new();
        for codec in self
            .local
            .codecs
            .iter()
            .chain(self.local.telephone_event.as_ref())
        {
            // One codec per payload type: a misconfigured duplicate is left out.
            if !codecs.iter().any(|c| c.payload_type == codec.payload_type) {
                codecs.push(codec);
            }
        }
        for codec in &codecs {
            add_codec(&mut media, codec);
        }
        self.finish_media(&mut media);
        if self.local.rtcp_mux {
            media.attributes.push(Attribute::flag("rtcp-mux"));
        }
        for line in self.local.srtp.iter().flat_map(|s| s.offer_lines()) {
            media.attributes.push(line.to_attribute());
        }
        media.set_direction(self.local.direction);
        let offer = self.stamp(vec![media]);
        self.pending_offer = Some(offer.clone());
        offer
    }

    /// Answers `offer` with the [`default_choice`]: the widest-band offered codec we support.
    pub fn answer(&mut self, offer: &SessionDescription) -> Result<Answer, NegotiationError> {
        self.answer_with(offer, default_choice)
    }

    /// Answers `offer`, letting `choose(offered, supported)` pick the codec from the offered
    /// audio codecs (in the offer's order, telephone-event and comfort noise left out) and ours
    /// (in preference order). The choice must be one of the offered codecs (compared with
    /// [`Codec::same_format`]); `None` rejects the stream. The first audio stream on `RTP/AVP`
    /// (or on `RTP/SAVP`, keyed as [`super::sdes`] says) with a chosen codec is accepted;
    /// every other stream is rejected with port 0 (RFC 3264 §6).
    pub fn answer_with(
        &mut self,
        offer: &SessionDescription,
        mut choose: impl FnMut(&[Codec], &[Codec]) -> Option<Codec>,
    ) -> Result<Answer, NegotiationError> {
        let choose: &mut ChooseCodec<'_> = &mut choose;
        let mut negotiated = None;
        let mut answer_media = Vec::with_capacity(offer.media.len());
        for (index, offered) in offer.media.iter().enumerate() {
            let accepted = if negotiated.is_none() {
                self.accept_stream(offer, index, offered, choose)
            } else {
                None
            };
            match accepted {
                Some((media, n)) => {
                    answer_media.push(media);
                    negotiated = Some(n);
                }
                None => answer_media.push(rejected(offered)),
            }
        }
        if negotiated.is_none() && !offer.media.is_empty() {
            let srtp_refused = offer.media.iter().any(|m| {
                m.kind == MediaKind::Audio
                    && !m.is_rejected()
                    && super::sdes::answer_stream(self.local.srtp.as_ref(), m).is_err()
            });
            return Err(if srtp_refused {
                NegotiationError::NoSrtp
            } else {
                NegotiationError::NoCommonCodec
            });
        }
        self.pending_offer = None;
        Ok(Answer {
            sdp: self.stamp(answer_media),
            negotiated,
        })
    }

    /// An answer refusing every stream of `offer` (each m-line with port 0,
    /// RFC 3264 §6): for a party that wants no media but owes an answer (a
    /// 2xx's offer answered in the ACK, RFC 3261 §13.2.2.4).
    pub fn reject_all(&mut self, offer: &SessionDescription) -> SessionDescription {
        let media = offer.media.iter().map(rejected).collect();
        self.pending_offer = None;
        self.stamp(media)
    }

    /// Reads the answer to the last offer from [`Negotiator::create_offer`].
    pub fn accept_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<Negotiated, NegotiationError> {
        let offer = self
            .pending_offer
            .as_ref()
            .ok_or(NegotiationError::NoOfferPending)?;
        if answer.media.len() != offer.media.len() {
            return Err(NegotiationError::MediaCountMismatch {
                offered: offer.media.len(),
                answered: answer.media.len(),
            });
        }
        // We offer one audio stream, at index 0.
        let (Some(ours), Some(theirs)) = (offer.media.first(), answer.media.first()) else {
            return Err(NegotiationError::NoCommonCodec);
        };
        if theirs.is_rejected() {
            return Err(NegotiationError::NoCommonCodec);
        }
        let offered = ours.codecs();
        // The answer's payload types are the ones to send with: an SDP's numbers say what its
        // author expects to receive (RFC 3264 §5.1).
        let answered = theirs.codecs();
        let codec = answered
            .iter()
            .find(|c| is_audio_codec(c) && offered.iter().any(|o| o.same_format(c)))
            .ok_or(NegotiationError::NoCommonCodec)?
            .clone();
        let telephone_event = answered
            .iter()
            .find(|c| {
                c.kind() == CodecKind::TelephoneEvent && offered.iter().any(|o| o.same_format(c))
            })
            .cloned();
        let mut direction = answer
            .media_direction(theirs)
            .reversed()
            .intersect(self.local.direction);
        let srtp = super::sdes::read_answer(self.local.srtp.as_ref(), ours, theirs)
            .map_err(|_| NegotiationError::NoSrtp)?;
        let connection = answer.connection_for(theirs);
        if connection.is_some_and(Connection::is_unspecified) {
            // RFC 3264 §8.4: c=0.0.0.0 means do not send RTP or RTCP to this peer.
            direction = direction.intersect(Direction::RecvOnly);
        }
        let negotiated = Negotiated {
            media_index: 0,
            codec,
            telephone_event,
            remote_host: connection.map(|c| c.address.clone()).unwrap_or_default(),
            remote_port: theirs.port,
            direction,
            ptime: send_ptime(theirs),
            srtp,
            // RFC 5761 §5.1.1: multiplexed only if the answer says so too.
            rtcp_mux: ours.rtcp_mux() && theirs.rtcp_mux(),
            remote_ssrc: theirs.ssrc(),
        };
        self.pending_offer = None;
        Ok(negotiated)
    }

    /// Accepts offered stream `index` if it is audio over RTP/AVP (or RTP/SAVP with an
    /// `a=crypto` we support, [`super::sdes`]) with a codec `choose` picks.
    fn accept_stream(
        &self,
        offer: &SessionDescription,
        index: usize,
        offered: &MediaDescription,
        choose: &mut ChooseCodec<'_>,
    ) -> Option<(MediaDescription, Negotiated)> {
        if offered.kind != MediaKind::Audio
            || offered.is_rejected()
            || !super::sdes::is_rtp_protocol(&offered.protocol)
        {
            return None;
        }
        let srtp = super::sdes::answer_stream(self.local.srtp.as_ref(), offered).ok()?;
        let all = offered.codecs();
        let candidates: Vec<Codec> = all.iter().filter(|c| is_audio_codec(c)).cloned().collect();
        let choice = choose(&candidates, &self.local.codecs)?;
        // Keep the offer's payload type and parameters (RFC 3264 §6.1: the same payload type
        // number SHOULD be used in the answer for the same codec).
        let codec = candidates
            .iter()
            .find(|c| c.payload_type == choice.payload_type && c.same_format(&choice))
            .or_else(|| candidates.iter().find(|c| c.same_format(&choice)))?
            .clone();
        let telephone_event = self.local.telephone_event.as_ref().and_then(|ours| {
            all.iter().find(|c| c.same_format(ours)).map(|theirs| {
                let mut te = theirs.clone();
                te.fmtp = ours.fmtp.clone().or(te.fmtp);
                te
            })
        });

        let mut media = MediaDescription::new(MediaKind::Audio, self.local.port, &offered.protocol);
        add_codec(&mut media, &codec);
        if let Some(te) = &telephone_event {
            add_codec(&mut media, te);
        }
        self.finish_media(&mut media);
        // RFC 5761 §5.1.1: the answer carries a=rtcp-mux when it will multiplex, which
        // it may only do if the offer asked.
        let rtcp_mux = self.local.rtcp_mux && offered.rtcp_mux();
        if rtcp_mux {
            media.attributes.push(Attribute::flag("rtcp-mux"));
        }
        if let Some((line, _)) = &srtp {
            media.attributes.push(line.to_attribute());
        }

        // RFC 3264 §6.1: sendonly is answered recvonly, recvonly sendonly, inactive inactive,
        // and sendrecv with whatever this end wants.
        let offered_direction = offer.media_direction(offered);
        let answer_direction = offered_direction.reversed().intersect(self.local.direction);
        media.set_direction(answer_direction);

        let connection = offer.connection_for(offered);
        let mut direction = answer_direction;
        if connection.is_some_and(Connection::is_unspecified) {
            // Legacy hold (RFC 3264 §8.4): answered normally (RFC 4317 §5.2), but nothing is
            // sent to 0.0.0.0.
            direction = direction.intersect(Direction::RecvOnly);
        }
        let negotiated = Negotiated {
            media_index: index,
            codec,
            telephone_event,
            remote_host: connection.map(|c| c.address.clone()).unwrap_or_default(),
            remote_port: offered.port,
            direction,
            ptime: send_ptime(offered),
            srtp: srtp.map(|(_, agreed)| agreed),
            rtcp_mux,
            remote_ssrc: offered.ssrc(),
        };
        Some((media, negotiated))
    }

    fn finish_media(&self, media: &mut MediaDescription) {
        if let Some(ptime) = self.local.ptime {
            media
                .attributes
                .push(Attribute::value("ptime", ptime.to_string()));
        }
        // RFC 5576 §4.1: the CNAME is the one RTCP's SDES carries.
        if let Some(ssrc) = self.local.ssrc {
            media.attributes.push(Attribute::value(
                "ssrc",
                format!("{ssrc} cname:{}", crate::rtp::session::CNAME),
            ));
        }
    }

    /// Wraps media sections in the session-level lines and sets the version: unchanged if
    /// the SDP is identical to the last one sent, else incremented (RFC 3264 §8).
    fn stamp(&mut self, media: Vec<MediaDescription>) -> SessionDescription {
        let origin = Origin::new(
            &*self.local.username,
            self.session_id,
            self.session_id,
            self.local.address,
        );
        let mut sdp = SessionDescription::new(origin);
        sdp.session_name = self.local.session_name.clone();
        sdp.connection = Some(Connection::new(self.local.address));
        sdp.media = media;
        if let Some(last) = &self.last_sent {
            sdp.origin.session_version = last.origin.session_version;
            if sdp != *last {
                sdp.origin.session_version = last.origin.session_version.wrapping_add(1);
            }
        }
        self.last_sent = Some(sdp.clone());
        sdp
    }
}

/// The default codec choice for [`Negotiator::answer`]: of the offered codecs that are also
/// supported, the one with the highest audio sampling rate ([`codec::sample_rate`]:
/// wideband G.722 before narrowband G.711), and among those the first offered. RFC 3264 §6.1
/// lets the answerer pick any offered format it supports; the offer's order is a preference,
/// and a phone that offers G.722 at all can take it (many list PCMU first only for
/// interoperability with old gateways).
///
/// [`codec::sample_rate`]: crate::codec::sample_rate
pub fn default_choice(offered: &[Codec], supported: &[Codec]) -> Option<Codec> {
    let mut best: Option<&Codec> = None;
    for o in offered {
        if !supported.iter().any(|s| s.same_format(o)) {
            continue;
        }
        let rate = crate::codec::sample_rate(o);
        if best.is_none_or(|b| rate > crate::codec::sample_rate(b)) {
            best = Some(o);
        }
    }
    best.cloned()
}

/// Codecs that carry audio, as opposed to events and comfort noise.
fn is_audio_codec(codec: &Codec) -> bool {
    !matches!(
        codec.kind(),
        CodecKind::TelephoneEvent | CodecKind::ComfortNoise
    )
}

/// Lists `codec` in `media` with its `a=rtpmap` and `a=fmtp` lines.
fn add_codec(media: &mut MediaDescription, codec: &Codec) {
    let pt = codec.payload_type;
    media.formats.push(pt.to_string());
    media
        .attributes
        .push(Attribute::value("rtpmap", format!("{pt} {codec}")));
    if let Some(fmtp) = &codec.fmtp {
        media
            .attributes
            .push(Attribute::value("fmtp", format!("{pt} {fmtp}")));
    }
}

/// A rejected stream: port 0, the offered formats and their rtpmaps (RFC 3264 §6: the formats
/// of a rejected stream are meaningless but at least one must be present).
fn rejected(offered: &MediaDescription) -> MediaDescription {
    let mut media = MediaDescription::new(offered.kind.clone(), 0, &offered.protocol);
    media.formats = offered.formats.clone();
    media.attributes = offered
        .attributes
        .iter()
        .filter(|a| a.name == "rtpmap")
        .cloned()
        .collect();
    media
}
