//! One viewer's connection through `rtc`'s sans-IO peer connection (ICE, DTLS, SRTP, its
//! interceptors: NACK responder, sender reports, [`super::keyframe_feedback`]): the viewer stack
//! `viewer_stack = "webrtc-rs"` runs, and the one for offers the gateway's own stack
//! ([`super::direct_link`]) does not take. Same events and calls as the direct link.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::TaggedBytesMut;

use super::rtp_rewriter::Rewritten;
use super::viewer_link::{LinkEvent, Stream};
use crate::hub::MediaPacket;

/// Most immediate ticks after events in one go (each may produce more events).
const MAX_EVENT_TICKS: usize = 8;

/// A viewer's `rtc` peer connection and its senders.
pub struct RtcLink {
    peer: RTCPeerConnection,
    video: RTCRtpSenderId,
    audio: Option<RTCRtpSenderId>,
    events: VecDeque<LinkEvent>,
}

impl RtcLink {
    /// The link of a negotiated peer connection sending video through `video` (and audio
    /// through `audio`).
    pub fn new(
        peer: RTCPeerConnection,
        video: RTCRtpSenderId,
        audio: Option<RTCRtpSenderId>,
    ) -> RtcLink {
        RtcLink {
            peer,
            video,
            audio,
            events: VecDeque::new(),
        }
    }

    /// Takes a datagram from the viewer (STUN, DTLS, SRTCP).
    pub fn handle_datagram(&mut self, datagram: TaggedBytesMut, _now: Instant) {
        if let Err(e) = self.peer.handle_read(datagram) {
            tracing::trace!(error = %e, "datagram rejected by the peer connection");
        }
        self.collect_events();
    }

    /// Runs the connection's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.peer.handle_timeout(now);
        self.collect_events();
    }

    /// When [`RtcLink::handle_timeout`] is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.peer.poll_timeout()
    }

    /// The next event for the session.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<TaggedBytesMut> {
        self.peer.poll_write()
    }

    /// Starts the close (DTLS close_notify).
    pub fn close(&mut self, _now: Instant) {
        let _ = self.peer.close();
    }

    /// Hands `packet`'s payload to the stream's sender (which protects and queues it) with the
    /// rewritten `header`.
    pub fn write(
        &mut self,
        stream: Stream,
        header: Rewritten,
        packet: &MediaPacket,
        now: Instant,
    ) -> bool {
        let sender = match stream {
            Stream::Video => self.video,
            Stream::Audio => match self.audio {
                Some(sender) => sender,
                None => return false,
            },
        };
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: packet.header.marker,
                payload_type: header.payload_type,
                sequence_number: header.sequence,
                timestamp: header.timestamp,
                ssrc: header.ssrc,
                ..Default::default()
            },
            payload: packet.payload(),
        };
        let Some(mut sender) = self.peer.rtp_sender(sender) else {
            return false;
        };
        match sender.write_rtp(now, packet) {
            Ok(()) => true,
            Err(e) => {
                tracing::trace!(error = %e, "write_rtp refused a packet");
                false
            }
        }
    }

    /// Moves the connection's events and RTCP to the event queue; ticks it right after events,
    /// since `rtc` hands some output (the DTLS ClientHello once ICE has selected a pair) to
    /// `poll_write` only on a timer tick — ticking now rather than at the next deadline saves
    /// ~200 ms per connection.
    fn collect_events(&mut self) {
        self.collect_reads();
        for _ in 0..MAX_EVENT_TICKS {
            let mut seen = false;
            while let Some(event) = self.peer.poll_event() {
                seen = true;
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(connection) = event {
                    tracing::debug!(state = %connection, "viewer connection state");
                    match connection {
                        RTCPeerConnectionState::Connected => {
                            self.events.push_back(LinkEvent::Connected);
                        }
                        RTCPeerConnectionState::Disconnected => {
                            self.events.push_back(LinkEvent::Disconnected);
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            self.events.push_back(LinkEvent::Failed);
                            return;
                        }
                        _ => {}
                    }
                }
            }
            if !seen {
                return;
            }
            let _ = self.peer.handle_timeout(Instant::now());
            self.collect_reads();
        }
    }

    fn collect_reads(&mut self) {
        while let Some(TaggedRTCMessage { message, .. }) = self.peer.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message {
                self.events.push_back(LinkEvent::Rtcp(packets));
            }
        }
    }
}
