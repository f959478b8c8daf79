//! RTP and RTCP (RFC 3550), DTMF events (RFC 4733), a jitter buffer and port pairs, sans-IO.
//!
//! - [`packet`]: the RTP header, zero-copy parse and serialize (§5.1);
//! - [`seq`]: sequence/timestamp arithmetic with wrap-around, source validation (§A.1);
//! - [`rtcp`]: SR, RR, SDES, BYE compound packets (§6) with the §A.2 validity checks;
//! - [`session`]: [`RtpSession`], one stream's sender and receiver, statistics, RTCP
//!   timing and symmetric RTP latching;
//! - [`jitter`]: [`JitterBuffer`], packets in any order, one frame per ptime out;
//! - [`dtmf`]: RFC 4733 telephone-events, sender and exactly-once receiver;
//! - [`ports`]: even/odd RTP/RTCP port pairs (§11);
//! - [`srtp`]: SRTP/SRTCP (RFC 3711, AES-GCM per RFC 7714), [`SrtpContext`] per direction.
//!
//! Nothing here reads a clock or touches a socket: inputs carry `now`, and the caller polls.
//!
//! ```
//! use parrot_core::rtp::{JitterBuffer, JitterConfig, Frame, RtpSession, SessionConfig};
//! use bytes::Bytes;
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now();
//! let alice_addr = "192.0.2.1:40000".parse().unwrap();
//! let bob_addr = "192.0.2.2:50000".parse().unwrap();
//! let mut alice = RtpSession::new(SessionConfig::new(8000, 0).with_remote_addr(bob_addr), t0);
//! let mut bob = RtpSession::new(SessionConfig::new(8000, 0).with_remote_addr(alice_addr), t0);
//! let mut playout = JitterBuffer::new(JitterConfig::new().with_depth(2));
//!
//! for i in 0..10u32 {
//!     let now = t0 + Duration::from_millis(20 * u64::from(i));
//!     let datagram = alice.packetize(now, Bytes::from_static(&[0xff; 160]), 160, i == 0);
//!     // The first packet is the source's probation (RFC 3550 §A.1).
//!     if let Ok(received) = bob.receive(now, alice_addr, datagram) {
//!         playout.push(received.packet);
//!     }
//!     if let Some(Frame::Packet(p)) = playout.pop() {
//!         assert_eq!(p.payload.len(), 160);
//!     }
//! }
//! assert_eq!(bob.receiver_stats().map(|s| s.received), Some(9));
//! // RTCP is due within the RFC 3550 §6.2 bounds.
//! let due = alice.poll_timeout().expect("an RTCP timer");
//! let report = alice.poll_rtcp(due).expect("a sender report");
//! bob.handle_rtcp(due, alice_addr, &report)?;
//! # Ok::<(), parrot_core::rtp::rtcp::RtcpError>(())
//! ```

pub mod dtmf;
pub mod jitter;
pub mod packet;
pub mod ports;
pub mod rtcp;
pub mod seq;
pub mod session;
pub mod srtp;

pub use dtmf::{DtmfEvent, DtmfReceiver, DtmfSender, EventPacket, EventPayload};
pub use jitter::{Frame, JitterBuffer, JitterConfig, JitterStats, PushOutcome};
pub use packet::{Extension, RtpError, RtpPacket};
pub use ports::{PortAllocator, PortLease, PortPair};
pub use rtcp::{RtcpError, RtcpPacket};
pub use seq::{SeqUpdate, SequenceTracker};
pub use session::{
    AcceptedPacket, DropCounts, DropReason, ReceiverStats, RtcpInterval, RtpSession, SenderStats,
    SessionConfig, SessionEvent,
};
pub use srtp::{SrtpContext, SrtpError, SrtpProfile};

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use bytes::Bytes;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Random bytes, and random mutations of valid packets, never panic the parsers.
    #[test]
    fn parsers_do_not_panic_on_random_input() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let valid_rtp = RtpPacket::new(0, 1, 2, 3, Bytes::from_static(&[0; 20]))
            .with_csrc(vec![1, 2])
            .to_bytes();
        let valid_rtcp = rtcp::serialize_compound(&[
            RtcpPacket::ReceiverReport(rtcp::ReceiverReport::new(
                1,
                vec![rtcp::ReportBlock::new(2)],
            )),
            RtcpPacket::SourceDescription(vec![rtcp::SdesChunk::cname(1, "x@y")]),
            RtcpPacket::Bye(rtcp::Bye::new(vec![1], Some(Bytes::from_static(b"r")))),
        ]);
        let mut rx = DtmfReceiver::new();
        let t0 = std::time::Instant::now();
        let from: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mut session = RtpSession::new(
            SessionConfig::new(8000, 0)
                .with_remote_addr(from)
                .with_min_sequential(1)
                .with_seed(1),
            t0,
        );
        for i in 0..20_000 {
            let data: Vec<u8> = match i % 3 {
                0 => {
                    let len = (rng.next() % 96) as usize;
                    (0..len).map(|_| rng.next() as u8).collect()
                }
                1 => {
                    let mut d = valid_rtp.to_vec();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = (rng.next() as usize) % d.len();
                        d[at] = rng.next() as u8;
                    }
                    d.truncate((rng.next() as usize) % (d.len() + 1));
                    d
                }
                _ => {
                    let mut d = valid_rtcp.to_vec();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = (rng.next() as usize) % d.len();
                        d[at] = rng.next() as u8;
                    }
                    d.truncate((rng.next() as usize) % (d.len() + 1));
                    d
                }
            };
            let data = Bytes::from(data);
            if let Ok(p) = RtpPacket::parse(data.clone()) {
                // Whatever parses re-serializes and parses to the same packet.
                assert_eq!(RtpPacket::parse(p.to_bytes()).as_ref(), Ok(&p));
                let _ = rx.receive(&p);
            }
            if let Ok(packets) = rtcp::parse_compound(&data) {
                let again = rtcp::serialize_compound(&packets);
                assert!(rtcp::parse_compound(&again).is_ok());
            }
            let _ = EventPayload::parse(&data);
            let now = t0 + std::time::Duration::from_millis(i);
            let _ = session.receive(now, from, data.clone());
            let _ = session.handle_rtcp(now, from, &data);
            let _ = session.poll_rtcp(now);
        }
        // Something got through each way, so the loop exercised the session.
        assert!(session.receiver_stats().is_some());
    }
}
