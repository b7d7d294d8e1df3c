//! A viewer's connection, as its session drives it: either the gateway's own ICE-lite, DTLS-SRTP
//! and in-place SRTP ([`DirectLink`], the default) or `rtc`'s peer connection ([`RtcLink`]). Both
//! take the viewer's datagrams and timers, send the packets the session writes, and report the
//! same [`LinkEvent`]s.

use std::time::Instant;

use bytes::BytesMut;
use rtc::rtcp;
use rtc::shared::TaggedBytesMut;

use super::direct_link::DirectLink;
use super::rtc_link::RtcLink;
use super::rtp_rewriter::Rewritten;
use crate::hub::{CameraFeed, MediaPacket};

/// The streams a link sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The camera's video.
    Video = 0,
    /// The camera's audio.
    Audio = 1,
}

/// What a link reports to its session.
#[derive(Debug)]
pub enum LinkEvent {
    /// Media can flow (the connection is up, or the viewer is heard from again).
    Connected,
    /// Nothing heard from the viewer for a while: media paused.
    Disconnected,
    /// The connection failed or the viewer closed it: the session ends.
    Failed,
    /// RTCP from the viewer (reports, NACKs, keyframe requests).
    Rtcp(Vec<Box<dyn rtcp::Packet>>),
}

/// One viewer's connection.
pub enum ViewerLink {
    /// The gateway's own stack.
    Direct(Box<DirectLink>),
    /// `rtc`'s peer connection.
    Rtc(Box<RtcLink>),
}

impl ViewerLink {
    /// Takes a datagram from the viewer of `video`.
    pub fn handle_datagram(&mut self, datagram: TaggedBytesMut, now: Instant, video: &CameraFeed) {
        match self {
            ViewerLink::Direct(link) => link.handle_datagram(datagram, now, video),
            ViewerLink::Rtc(link) => link.handle_datagram(datagram, now),
        }
    }

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            ViewerLink::Direct(link) => link.handle_timeout(now),
            ViewerLink::Rtc(link) => link.handle_timeout(now),
        }
    }

    /// When [`ViewerLink::handle_timeout`] is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        match self {
            ViewerLink::Direct(link) => link.poll_timeout(),
            ViewerLink::Rtc(link) => link.poll_timeout(),
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        match self {
            ViewerLink::Direct(link) => link.poll_event(),
            ViewerLink::Rtc(link) => link.poll_event(),
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<TaggedBytesMut> {
        match self {
            ViewerLink::Direct(link) => link.poll_transmit(),
            ViewerLink::Rtc(link) => link.poll_transmit(),
        }
    }

    /// The packets sent again on NACKs since the last call (the direct link's; `rtc`'s NACK
    /// responder does not tell).
    pub fn take_retransmitted(&mut self) -> u64 {
        match self {
            ViewerLink::Direct(link) => link.take_retransmitted(),
            ViewerLink::Rtc(_) => 0,
        }
    }

    /// Starts the close; its datagrams are then in [`ViewerLink::poll_transmit`].
    pub fn close(&mut self, now: Instant) {
        match self {
            ViewerLink::Direct(link) => link.close(now),
            ViewerLink::Rtc(link) => link.close(now),
        }
    }

    /// Sends `packet`'s payload as `stream` with the rewritten `header`; `buffer` is the shard's
    /// send buffer (the direct link writes and seals into it).
    pub fn write(
        &mut self,
        stream: Stream,
        header: Rewritten,
        packet: &MediaPacket,
        now: Instant,
        buffer: &mut BytesMut,
    ) -> bool {
        match self {
            ViewerLink::Direct(link) => link.write(stream, header, packet, now, buffer),
            ViewerLink::Rtc(link) => link.write(stream, header, packet, now),
        }
    }
}
