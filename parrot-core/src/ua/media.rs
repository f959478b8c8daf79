//! Media for calls: SDP offer/answer in INVITE and 2xx, and the media session
//! that starts with the call and stops with it.

use super::reply::Reply;
use crate::codec::Codec;
use crate::entropy::Entropy;
use crate::media::{MediaConfig, MediaHandler, MediaSockets, Ports, bind_pair};
use crate::message::StatusCode;
use crate::sdp::{
    LocalMedia, LocalSrtp, Negotiated, NegotiationError, Negotiator, SdpError, SessionDescription,
    SrtpMode,
};
use bytes::Bytes;
use std::net::IpAddr;

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
    /// The endpoint's SRTP settings.
    pub(crate) srtp: SrtpPolicy,
    /// Offer and accept RTCP on the RTP port (RFC 5761).
    pub(crate) rtcp_mux: bool,
    /// The SIP exchange runs over TLS (or WSS) end to end as far as we send it: SDES keys
    /// in the SDP are not in clear on the wire.
    pub(crate) secure: bool,
}

/// An endpoint's SRTP settings (`EndpointBuilder::srtp`, `srtp_keys_over_insecure_transports`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SrtpPolicy {
    pub(crate) mode: SrtpMode,
    /// SDES keys may go in SDP over UDP/TCP/WS (in clear: a warning per call).
    pub(crate) insecure_keys: bool,
}

/// Why a call cannot have the SRTP its policy asks for.
#[derive(Debug)]
enum SrtpUnavailable {
    /// Mandatory, and the signaling is not TLS and keys in clear are not allowed.
    KeysNeedTls,
    /// The OS random source failed.
    NoRandom(std::io::Error),
}

impl std::fmt::Display for SrtpUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SrtpUnavailable::KeysNeedTls => f.write_str(
                "SRTP is mandatory but its keys travel only over TLS \
                 (sips: or transport=tls; EndpointBuilder::srtp_keys_over_insecure_transports)",
            ),
            SrtpUnavailable::NoRandom(e) => write!(f, "no random SRTP keys: {e}"),
        }
    }
}

impl MediaContext {
    /// The address SDP's `c=` and `o=` name.
    fn sdp_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.local_ip)
    }

    /// What this end offers or answers with on RTP `port`: the SDP address,
    /// `srtp`, the handler's `codecs`, the endpoint's RTCP multiplexing, and
    /// our SSRC if it is announced.
    fn local_media(
        &self,
        bound: &Bound,
        srtp: Option<LocalSrtp>,
        codecs: Vec<Codec>,
    ) -> LocalMedia {
        LocalMedia::new(self.sdp_ip(), bound.port)
            .with_srtp(srtp)
            .with_codecs(codecs)
            .with_rtcp_mux(self.rtcp_mux)
            .with_ssrc(bound.ssrc)
    }

    /// A call's media sockets: a pair of its own, or a shared port
    /// ([`set_shared_ports`](crate::media::set_shared_ports)), whose sessions
    /// announce their SSRC (RFC 5576) so that a peer sharing its port too can
    /// tell them apart.
    async fn bind(&self) -> std::io::Result<Bound> {
        let (sockets, ssrc) = if crate::media::shared_ports() {
            let port = crate::media::bind_shared(self.local_ip, &self.ports)?;
            // The high half: the low one of the same draw seeds nothing else.
            let ssrc = (self.entropy.next_u64() >> 32) as u32;
            (MediaSockets::Shared(port), Some(ssrc))
        } else {
            (bind_pair(self.local_ip, &self.ports).await?.into(), None)
        };
        let port = sockets.local_addr()?.port();
        Ok(Bound {
            sockets,
            port,
            ssrc,
        })
    }

    /// The SRTP this call's SDP may carry: none when off, or when best effort over a
    /// transport that would show the keys (RFC 4568 §8: SDES keys are only as secret as
    /// the signaling that carries them; the call then runs plain RTP); fresh keys otherwise.
    fn local_srtp(&self) -> Result<Option<LocalSrtp>, SrtpUnavailable> {
        match self.srtp.mode {
            SrtpMode::Off => Ok(None),
            _ if !self.secure && !self.srtp.insecure_keys => {
                if self.srtp.mode == SrtpMode::Mandatory {
                    Err(SrtpUnavailable::KeysNeedTls)
                } else {
                    Ok(None)
                }
            }
            mode => LocalSrtp::random(mode)
                .map(Some)
                .map_err(SrtpUnavailable::NoRandom),
        }
    }

    /// The once-per-call warning for keys sent over UDP/TCP (the first offer or answer;
    /// renegotiations repeat the same keys).
    fn warn_keys_in_clear(&self) {
        if !self.secure {
            tracing::warn!(
                "SRTP keys sent in clear SDP (not over TLS): anyone on the path can decrypt \
                 this call's media (srtp_keys_over_insecure_transports is on)"
            );
        }
    }
}

/// True if the offer asks for SRTP (an `RTP/SAVP` stream or an `a=crypto` line).
fn offers_srtp(offer: &SessionDescription) -> bool {
    offer.media.iter().any(|m| {
        m.protocol.eq_ignore_ascii_case("RTP/SAVP") || m.crypto_attributes().next().is_some()
    })
}

/// A call's media sockets, bound before its SDP names them.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) sockets: MediaSockets,
    /// The RTP port.
    port: u16,
    /// Our SSRC, chosen now to be announced (`a=ssrc`), or none.
    pub(crate) ssrc: Option<u32>,
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
    /// The sockets (their ports held in the endpoint's range until the session ends).
    pub(crate) bound: Bound,
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
pub(crate) fn config_with(n: &Negotiated, bound: Bound, entropy: &Entropy) -> MediaConfig {
    MediaConfig {
        sockets: bound.sockets,
        ssrc: bound.ssrc,
        remote_ssrc: n.remote_ssrc,
        codec: n.codec.clone(),
        telephone_event: n.telephone_event.clone(),
        ptime: n.ptime,
        remote: n.remote_addr(),
        direction: n.direction,
        rtp_seed: Some(entropy.next_u64()),
        srtp: n.srtp.clone(),
        rtcp_mux: n.rtcp_mux,
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
        NegotiationError::NoSrtp => "Not Acceptable Here (no usable SRTP crypto)",
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
    let srtp = match ctx.local_srtp() {
        Ok(srtp) => srtp,
        Err(e) => {
            tracing::info!(error = %e, "488: SRTP is mandatory here");
            return Err(Reply::new(StatusCode::NOT_ACCEPTABLE_HERE)
                .reason("Not Acceptable Here (SRTP keys need TLS)"));
        }
    };
    if srtp.is_none() && ctx.srtp.mode != SrtpMode::Off && offers_srtp(&offer) {
        tracing::info!(
            "the offer asks for SRTP, but SDES keys travel only over TLS here: answered \
             without (EndpointBuilder::srtp_keys_over_insecure_transports allows it)"
        );
    }
    let bound = ctx.bind().await.map_err(|_| {
        Reply::new(StatusCode::SERVICE_UNAVAILABLE).reason("Service Unavailable (no RTP port free)")
    })?;
    let mut negotiator = Negotiator::new(
        ctx.local_media(&bound, srtp, handler.codecs()),
        session_id(&ctx.entropy),
    );
    let (sdp, negotiated) = negotiate(&mut negotiator, &offer, &mut *handler)?;
    if let Some(s) = &negotiated.srtp {
        tracing::info!(suite = %s.profile, "SRTP agreed");
        ctx.warn_keys_in_clear();
    }
    let config = config_with(&negotiated, bound, &ctx.entropy);
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
    let srtp = ctx
        .local_srtp()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if srtp.is_some() {
        ctx.warn_keys_in_clear();
    }
    let bound = ctx.bind().await?;
    let mut negotiator = Negotiator::new(
        ctx.local_media(&bound, srtp, handler.codecs()),
        session_id(&ctx.entropy),
    );
    let sdp = negotiator.create_offer().to_bytes();
    Ok(Offered {
        sdp,
        bound,
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
            bound,
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
            config: config_with(&negotiated, bound, &self.entropy),
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
/// and the placeholder `port`. SRTP follows `srtp` as an endpoint with that
/// mode answers over TLS (nothing goes on a wire, so the keys may be in the
/// SDP): `RTP/SAVP` and `a=crypto` offers get fresh keys unless it is off.
pub(crate) fn answer_offline(
    local_ip: IpAddr,
    port: u16,
    srtp: SrtpMode,
    offer: &[u8],
    mut handler: Box<dyn MediaHandler>,
) -> Result<(Bytes, OfflineMedia), Reply> {
    let offer = SessionDescription::parse(offer).map_err(|e| unreadable_offer(&e))?;
    let local_srtp = match srtp {
        SrtpMode::Off => None,
        mode => Some(LocalSrtp::random(mode).map_err(|e| {
            tracing::warn!(error = %e, "no random SRTP keys");
            Reply::server_error().reason("Server Internal Error (no random SRTP keys)")
        })?),
    };
    let mut negotiator = Negotiator::new(
        LocalMedia::new(local_ip, port)
            .with_srtp(local_srtp)
            .with_codecs(handler.codecs()),
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
        ctx_in(seed, 47400..=47463)
    }

    /// A context whose RTP ports come from `range`. A fresh allocator each
    /// time: runs start at the range's first pair. The tests that compare two
    /// runs' bytes (ports included) each have a range of their own: another
    /// test binding in it meanwhile moved one run to the next pair.
    fn ctx_in(seed: u64, range: std::ops::RangeInclusive<u16>) -> MediaContext {
        let ports = crate::rtp::PortAllocator::new(range).unwrap();
        MediaContext {
            ports: std::sync::Arc::new(std::sync::Mutex::new(ports)),
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            entropy: Entropy::seeded(seed),
            srtp: SrtpPolicy::default(),
            rtcp_mux: true,
            secure: false,
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
    async fn the_endpoints_rtcp_mux_setting_reaches_offer_answer_and_media_config() {
        let has_mux = |sdp: &[u8]| String::from_utf8_lossy(sdp).contains("a=rtcp-mux\r\n");
        for (offerer, answerer) in [(true, true), (true, false), (false, true)] {
            let with = |mux| MediaContext {
                rtcp_mux: mux,
                ..ctx_in(3, 47470..=47501)
            };
            let offered = offer(&with(offerer), Box::new(Quiet)).await.unwrap();
            assert_eq!(has_mux(&offered.sdp), offerer);
            let (answer_sdp, pending) = answer(&with(answerer), &offered.sdp, Box::new(Quiet))
                .await
                .unwrap();
            let agreed = offerer && answerer;
            assert_eq!(has_mux(&answer_sdp), agreed, "{offerer} {answerer}");
            assert_eq!(pending.config.rtcp_mux, agreed, "{offerer} {answerer}");
        }
    }

    #[tokio::test]
    async fn a_seeded_context_replays_offer_and_answer() {
        // Run twice with one seed, the sockets of the first run closed before the second.
        let run = |seed| async move {
            let offered = offer(&ctx_in(seed, 47300..=47331), Box::new(Quiet))
                .await
                .unwrap();
            let sdp = offered.sdp.clone();
            drop(offered);
            let (answer_sdp, pending) = answer(&ctx_in(seed, 47300..=47331), &sdp, Box::new(Quiet))
                .await
                .unwrap();
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

    fn ctx_srtp(seed: u64, mode: SrtpMode, secure: bool, insecure_keys: bool) -> MediaContext {
        MediaContext {
            srtp: SrtpPolicy {
                mode,
                insecure_keys,
            },
            secure,
            ..ctx(seed)
        }
    }

    /// The SDP without its `a=crypto` key material (the keys are random on every run).
    fn without_keys(sdp: &[u8]) -> String {
        String::from_utf8_lossy(sdp)
            .lines()
            .map(|l| match l.find("inline:") {
                Some(i) => &l[..i],
                None => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn srtp_keys_only_over_tls_unless_allowed() {
        use crate::sdp::SrtpMode::{BestEffort, Mandatory};
        // A mandatory offer over TLS: RTP/SAVP and three lines, answered with one.
        let offered = offer(&ctx_srtp(1, Mandatory, true, false), Box::new(Quiet))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&offered.sdp).into_owned();
        assert!(
            text.contains(" RTP/SAVP ") && text.matches("a=crypto:").count() == 3,
            "{text}"
        );
        let sdp = offered.sdp.clone();
        drop(offered);
        let (answer_sdp, pending) =
            answer(&ctx_srtp(2, BestEffort, true, false), &sdp, Box::new(Quiet))
                .await
                .unwrap();
        let text = String::from_utf8_lossy(&answer_sdp).into_owned();
        assert!(
            text.contains("a=crypto:1 AEAD_AES_128_GCM inline:"),
            "{text}"
        );
        assert!(pending.config.srtp.is_some());
        drop(pending);

        // The same offer over UDP: best effort answers without keys, so 488.
        let refused = answer(
            &ctx_srtp(3, BestEffort, false, false),
            &sdp,
            Box::new(Quiet),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE_HERE);
        // Mandatory over UDP cannot even offer or answer.
        assert!(
            offer(&ctx_srtp(4, Mandatory, false, false), Box::new(Quiet))
                .await
                .is_err()
        );
        let refused = answer(&ctx_srtp(5, Mandatory, false, false), &sdp, Box::new(Quiet))
            .await
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE_HERE);
        // Allowed explicitly: keys over UDP (and a warning in the log).
        let (answer_sdp, pending) =
            answer(&ctx_srtp(6, Mandatory, false, true), &sdp, Box::new(Quiet))
                .await
                .unwrap();
        assert!(String::from_utf8_lossy(&answer_sdp).contains("a=crypto:1 "));
        assert!(pending.config.srtp.is_some());
        // Best effort over UDP offers plain RTP/AVP without keys.
        let plain = offer(&ctx_srtp(7, BestEffort, false, false), Box::new(Quiet))
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&plain.sdp).contains("a=crypto"));
    }

    #[tokio::test]
    async fn a_seeded_srtp_call_replays_all_but_its_keys() {
        let run = |seed, mode| async move {
            let ctx = MediaContext {
                ports: ctx_in(seed, 47332..=47363).ports,
                ..ctx_srtp(seed, mode, true, false)
            };
            let offered = offer(&ctx, Box::new(Quiet)).await.unwrap();
            let sdp = offered.sdp.clone();
            drop(offered);
            (sdp, ctx.entropy.next_u64())
        };
        let (first, next) = run(7, SrtpMode::BestEffort).await;
        let (again, next_again) = run(7, SrtpMode::BestEffort).await;
        // The keys come from the OS, never from the seeded source...
        assert_ne!(first, again);
        // ... so everything else is the same bytes, and the seeded sequence goes on as it
        // does without SRTP.
        assert_eq!(without_keys(&first), without_keys(&again));
        let (_, next_plain) = run(7, SrtpMode::Off).await;
        assert_eq!((next, next_again), (next_plain, next_plain));
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
