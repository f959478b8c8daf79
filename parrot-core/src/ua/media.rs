//! Media for calls: SDP offer/answer in INVITE and 2xx, and the media session
//! that starts with the call and stops with it.

use super::reply::Reply;
use crate::codec::Codec;
use crate::entropy::Entropy;
use crate::media::{MediaConfig, MediaHandler, Ports, bind_pair};
use crate::message::StatusCode;
use crate::sdp::{
    LocalMedia, Negotiated, NegotiationError, Negotiator, SdpError, SessionDescription,
};
use bytes::Bytes;
use std::net::IpAddr;
use tokio::net::UdpSocket;

/// What a call needs to set up media: our address, the RTP port range, and where the
/// SDP session id and the RTP session's seed come from.
#[derive(Clone, Debug)]
pub(crate) struct MediaContext {
    pub(crate) ports: Ports,
    /// Where RTP is bound.
    pub(crate) local_ip: IpAddr,
    /// What SDP names instead of `local_ip` (an advertised public address).
    pub(crate) public_ip: Option<IpAddr>,
    pub(crate) entropy: Entropy,
}

impl MediaContext {
    /// The address SDP's `c=` and `o=` name.
    fn sdp_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.local_ip)
    }
}

/// Media agreed for a call, not yet flowing.
pub(crate) struct PendingMedia {
    pub(crate) config: MediaConfig,
    pub(crate) handler: Box<dyn MediaHandler>,
    pub(crate) negotiator: Negotiator,
}

impl std::fmt::Debug for PendingMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingMedia")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Sockets bound and an offer made, for a call we place.
pub(crate) struct Offered {
    pub(crate) sdp: Bytes,
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    pub(crate) negotiator: Negotiator,
    pub(crate) handler: Box<dyn MediaHandler>,
    /// RTP is bound to the wildcard: the offer may name another of our
    /// addresses (for the next destination of a fail-over).
    pub(crate) movable: bool,
}

impl Offered {
    /// Names `ip` in the offer instead (a new SDP version), if the sockets
    /// allow it and it differs: for a fail-over to a destination reached
    /// from another of our addresses. Returns the new offer.
    pub(crate) fn move_to(&mut self, ip: IpAddr) -> Option<Bytes> {
        if !self.movable || self.negotiator.local().address == ip {
            return None;
        }
        self.negotiator.local_mut().address = ip;
        self.sdp = self.negotiator.create_offer().to_bytes();
        Some(self.sdp.clone())
    }
}

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offered").finish_non_exhaustive()
    }
}

/// The `o=` session id of a new negotiation (RFC 4566 §5.2).
fn session_id(entropy: &Entropy) -> u64 {
    entropy.sdp_session_id()
}

/// The media session's config, its RTP seed (so SSRC, first sequence number and
/// timestamp) drawn from `entropy`.
pub(crate) fn config_with(
    n: &Negotiated,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    entropy: &Entropy,
) -> MediaConfig {
    MediaConfig {
        rtp,
        rtcp,
        codec: n.codec.clone(),
        telephone_event: n.telephone_event.clone(),
        ptime: n.ptime,
        remote: n.remote_addr(),
        direction: n.direction,
        rtp_seed: Some(entropy.next_u64()),
    }
}

/// The 488 for an SDP offer that does not parse (RFC 3261 §13.3.1.3). The reason
/// phrase is fixed; the parser's detail goes to the log, not to the peer.
pub(crate) fn unreadable_offer(e: &SdpError) -> Reply {
    tracing::debug!(error = %e, "488: the SDP offer does not parse");
    Reply::new(StatusCode::NOT_ACCEPTABLE_HERE).reason("Not Acceptable Here (unreadable SDP)")
}

/// The 488 for an SDP offer we cannot answer (RFC 3261 §13.3.1.3), with a fixed
/// reason phrase per cause; the detail goes to the log.
pub(crate) fn unanswerable_offer(e: &NegotiationError) -> Reply {
    tracing::debug!(error = %e, "488: cannot answer the SDP offer");
    let reason = match e {
        NegotiationError::NoCommonCodec => "Not Acceptable Here (no common codec)",
        NegotiationError::MediaCountMismatch { .. } | NegotiationError::NoOfferPending => {
            "Not Acceptable Here (SDP offer not answerable)"
        }
    };
    Reply::new(StatusCode::NOT_ACCEPTABLE_HERE).reason(reason)
}

/// The SDP answer to `offer` and what it agreed, the codec chosen by `handler`;
/// 488 when there is nothing to agree on.
fn negotiate(
    negotiator: &mut Negotiator,
    offer: &SessionDescription,
    handler: &mut dyn MediaHandler,
) -> Result<(Bytes, Negotiated), Reply> {
    let answer = negotiator
        .answer_with(offer, |offered: &[Codec], ours: &[Codec]| {
            handler.choose_codec(offered, ours)
        })
        .map_err(|e| unanswerable_offer(&e))?;
    let Some(negotiated) = answer.negotiated else {
        return Err(Reply::new(StatusCode::NOT_ACCEPTABLE_HERE)
            .reason("Not Acceptable Here (no audio stream)"));
    };
    Ok((answer.sdp.to_bytes(), negotiated))
}

/// Answers the SDP offer in an INVITE (RFC 3264 §6). The error is the reply to send
/// instead: 488 for an offer we cannot read or share no codec with (RFC 3261 §13.3.1.3).
pub(crate) async fn answer(
    ctx: &MediaContext,
    offer: &[u8],
    mut handler: Box<dyn MediaHandler>,
) -> Result<(Bytes, PendingMedia), Reply> {
    let offer = SessionDescription::parse(offer).map_err(|e| unreadable_offer(&e))?;
    let (rtp, rtcp) = bind_pair(ctx.local_ip, &ctx.ports).await.map_err(|_| {
        Reply::new(StatusCode::SERVICE_UNAVAILABLE).reason("Service Unavailable (no RTP port free)")
    })?;
    let port = rtp.local_addr().map_or(0, |a| a.port());
    let mut negotiator = Negotiator::new(
        LocalMedia::new(ctx.sdp_ip(), port).with_codecs(handler.codecs()),
        session_id(&ctx.entropy),
    );
    let (sdp, negotiated) = negotiate(&mut negotiator, &offer, &mut *handler)?;
    let config = config_with(&negotiated, rtp, rtcp, &ctx.entropy);
    Ok((
        sdp,
        PendingMedia {
            config,
            handler,
            negotiator,
        },
    ))
}

/// Binds sockets and builds the offer for a call we place.
pub(crate) async fn offer(
    ctx: &MediaContext,
    handler: Box<dyn MediaHandler>,
) -> std::io::Result<Offered> {
    let (rtp, rtcp) = bind_pair(ctx.local_ip, &ctx.ports).await?;
    let port = rtp.local_addr()?.port();
    let mut negotiator = Negotiator::new(
        LocalMedia::new(ctx.sdp_ip(), port).with_codecs(handler.codecs()),
        session_id(&ctx.entropy),
    );
    let sdp = negotiator.create_offer().to_bytes();
    Ok(Offered {
        sdp,
        rtp,
        rtcp,
        movable: ctx.local_ip.is_unspecified(),
        negotiator,
        handler,
    })
}

/// An offer we made in our 2xx to an INVITE without one (RFC 3261 §13.2.1,
/// RFC 3264 §4): the answer comes in the ACK.
pub(crate) struct LateOffer {
    pub(crate) offered: Offered,
    pub(crate) entropy: Entropy,
}

impl std::fmt::Debug for LateOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateOffer").finish_non_exhaustive()
    }
}

impl LateOffer {
    /// Binds RTP and makes the offer for a 2xx.
    pub(crate) async fn make(
        ctx: &MediaContext,
        handler: Box<dyn MediaHandler>,
    ) -> std::io::Result<LateOffer> {
        Ok(LateOffer {
            offered: offer(ctx, handler).await?,
            entropy: ctx.entropy.fork(),
        })
    }

    /// The media agreed by the answer in the ACK's body: none if the answer
    /// refuses the audio (port 0, RFC 3264 §6: the call goes on without), an
    /// error if there is no answer to be read.
    pub(crate) fn answered(self, ack_body: &[u8]) -> Result<Option<PendingMedia>, String> {
        let Offered {
            rtp,
            rtcp,
            mut negotiator,
            handler,
            ..
        } = self.offered;
        if ack_body.is_empty() {
            return Err("the ACK carries no SDP answer to our offer".into());
        }
        let answer = SessionDescription::parse(ack_body).map_err(|e| e.to_string())?;
        if answer.media.first().is_some_and(|m| m.is_rejected()) {
            tracing::info!("the answer in the ACK refuses our audio: the call has none");
            return Ok(None);
        }
        let negotiated = negotiator
            .accept_answer(&answer)
            .map_err(|e| e.to_string())?;
        Ok(Some(PendingMedia {
            config: config_with(&negotiated, rtp, rtcp, &self.entropy),
            handler,
            negotiator,
        }))
    }
}

/// The digit of an `application/dtmf-relay` INFO body (`Signal=5`).
pub(crate) fn dtmf_relay_digit(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("signal") {
            return None;
        }
        let d = v.trim().chars().next()?;
        (d.is_ascii_digit() || "*#ABCDabcd".contains(d)).then(|| d.to_ascii_uppercase())
    })
}

/// Media agreed for a call answered without sockets (the test harness,
/// `crate::testing`): what was negotiated and the handler, nothing bound.
pub(crate) struct OfflineMedia {
    pub(crate) negotiated: Negotiated,
    pub(crate) handler: Box<dyn MediaHandler>,
}

impl std::fmt::Debug for OfflineMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineMedia")
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

/// Answers the SDP offer in an INVITE as [`answer`] does, with the same
/// [`Negotiator`] and errors, but binds nothing: the answer names `local_ip`
/// and the placeholder `port`.
pub(crate) fn answer_offline(
    local_ip: IpAddr,
    port: u16,
    offer: &[u8],
    mut handler: Box<dyn MediaHandler>,
) -> Result<(Bytes, OfflineMedia), Reply> {
    let offer = SessionDescription::parse(offer).map_err(|e| unreadable_offer(&e))?;
    let mut negotiator = Negotiator::new(
        LocalMedia::new(local_ip, port).with_codecs(handler.codecs()),
        1,
    );
    let (sdp, negotiated) = negotiate(&mut negotiator, &offer, &mut *handler)?;
    Ok((
        sdp,
        OfflineMedia {
            negotiated,
            handler,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    struct Quiet;
    impl MediaHandler for Quiet {}

    fn ctx(seed: u64) -> MediaContext {
        // A fresh allocator each time: both runs start at the range's first pair.
        let ports = crate::rtp::PortAllocator::new(47300..=47363).unwrap();
        MediaContext {
            ports: std::sync::Arc::new(std::sync::Mutex::new(ports)),
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            entropy: Entropy::seeded(seed),
        }
    }

    #[test]
    fn a_seeded_negotiator_offers_the_same_bytes() {
        let local = || LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);
        let offer = |seed| {
            Negotiator::new(local(), session_id(&Entropy::seeded(seed)))
                .create_offer()
                .to_bytes()
        };
        assert_eq!(offer(7), offer(7));
        assert_ne!(offer(7), offer(8));
    }

    #[tokio::test]
    async fn a_seeded_context_replays_offer_and_answer() {
        // Run twice with one seed, the sockets of the first run closed before the second.
        let run = |seed| async move {
            let offered = offer(&ctx(seed), Box::new(Quiet)).await.unwrap();
            let sdp = offered.sdp.clone();
            drop(offered);
            let (answer_sdp, pending) = answer(&ctx(seed), &sdp, Box::new(Quiet)).await.unwrap();
            (sdp, answer_sdp, pending.config.rtp_seed)
        };
        let first = run(7).await;
        let again = run(7).await;
        assert_eq!(first, again);
        let text = String::from_utf8_lossy(&first.0).into_owned();
        let o = text.lines().find(|l| l.starts_with("o=")).unwrap();
        let id = Entropy::seeded(7).sdp_session_id().to_string();
        assert!(o.contains(&id), "{o} has the seeded session id {id}");
        let other = run(8).await;
        assert_ne!(first.0, other.0);
        assert_ne!(first.2, other.2);
    }

    #[test]
    fn dtmf_relay() {
        assert_eq!(
            super::dtmf_relay_digit(b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(super::dtmf_relay_digit(b"Signal= #\r\n"), Some('#'));
        assert_eq!(super::dtmf_relay_digit(b"Duration=160"), None);
    }
}
