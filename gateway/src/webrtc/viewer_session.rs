//! One viewer's session: a tokio task that owns the viewer's sans-IO peer connection and drives it
//! with datagrams from the shared media port, packets from the camera's feed, and its timers.
//!
//! A viewer starts (and, after its queue overflowed, resumes) at a keyframe, with sequence
//! numbers kept gap-free by the rewriter. The session ends on close request, ICE/DTLS failure, the
//! browser closing, or no connection within [`CONNECT_TIMEOUT`]; everything it held is released
//! when the task returns (routes, subscription, the peer connection).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::TaggedBytesMut;
use tokio::sync::{mpsc, oneshot};

use super::keyframe_feedback::is_keyframe_request;
use super::rtp_rewriter::RtpRewriter;
use super::udp_transport::UdpTransport;
use crate::hub::{MediaPacket, Subscription};

/// A viewer that has not connected by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most feed packets handled in one go before the connection is polled again.
const MEDIA_BATCH: usize = 64;
/// Bound on the protocol's own timers, so the loop wakes up regularly even when idle.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Why a session ended (for logs; bounded set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// DELETE, or the gateway shutting down.
    Closed,
    /// ICE or DTLS failed, or the browser closed the connection.
    Failed,
    /// No connection within [`CONNECT_TIMEOUT`].
    NeverConnected,
}

/// Everything a session task needs.
pub struct ViewerSession {
    /// Routing key in the transport.
    pub key: u64,
    /// The negotiated peer connection.
    pub peer: RTCPeerConnection,
    /// The video sender.
    pub sender: RTCRtpSenderId,
    /// Rewrites camera headers to the viewer's.
    pub rewriter: RtpRewriter,
    /// The camera feed's packets.
    pub subscription: Subscription,
    /// Datagrams routed to this session.
    pub inbox: mpsc::Receiver<TaggedBytesMut>,
    /// The shared media port.
    pub transport: Arc<UdpTransport>,
    /// Fired to end the session.
    pub close: oneshot::Receiver<()>,
}

/// What draining the connection's events found.
enum Events {
    None,
    Some,
    End(EndReason),
}

struct State {
    connected: bool,
    ever_connected: bool,
    waiting_for_keyframe: bool,
    started: Instant,
}

impl ViewerSession {
    /// Runs the session to its end.
    pub async fn run(mut self) -> EndReason {
        let mut state = State {
            connected: false,
            ever_connected: false,
            waiting_for_keyframe: true,
            started: Instant::now(),
        };
        let reason = loop {
            self.flush().await;
            match self.handle_events(&mut state) {
                Events::End(reason) => break reason,
                Events::Some => {
                    // rtc hands some output (the DTLS ClientHello once ICE has selected a pair)
                    // to poll_write only on a timer tick: tick now rather than at the next
                    // deadline, which saves ~200 ms per connection.
                    let _ = self.peer.handle_timeout(Instant::now());
                    continue;
                }
                Events::None => {}
            }
            self.handle_reads();
            if !state.ever_connected && state.started.elapsed() > CONNECT_TIMEOUT {
                break EndReason::NeverConnected;
            }
            let now = Instant::now();
            let deadline = self
                .peer
                .poll_timeout()
                .unwrap_or(now + MAX_IDLE)
                .min(now + MAX_IDLE);
            if deadline <= now {
                let _ = self.peer.handle_timeout(now);
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut self.close => break EndReason::Closed,
                datagram = self.inbox.recv() => match datagram {
                    Some(datagram) => {
                        if let Err(e) = self.peer.handle_read(datagram) {
                            tracing::trace!(error = %e, "datagram rejected by the peer connection");
                        }
                    }
                    None => break EndReason::Closed,
                },
                packet = self.subscription.recv() => {
                    let Some(packet) = packet else { break EndReason::Closed };
                    self.forward(&mut state, packet);
                    for _ in 1..MEDIA_BATCH {
                        match self.subscription.try_recv() {
                            Some(packet) => self.forward(&mut state, packet),
                            None => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.peer.handle_timeout(Instant::now());
                }
            }
        };
        let _ = self.peer.close();
        self.flush().await;
        self.transport.unregister(self.key);
        reason
    }

    /// Sends everything the connection has queued.
    async fn flush(&mut self) {
        while let Some(out) = self.peer.poll_write() {
            self.transport
                .send(
                    out.transport.local_addr,
                    out.transport.peer_addr,
                    &out.message,
                )
                .await;
        }
    }

    fn handle_events(&mut self, state: &mut State) -> Events {
        let mut seen = Events::None;
        while let Some(event) = self.peer.poll_event() {
            seen = Events::Some;
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(connection) = event {
                tracing::debug!(state = %connection, "viewer connection state");
                match connection {
                    RTCPeerConnectionState::Connected => {
                        state.connected = true;
                        state.ever_connected = true;
                        state.waiting_for_keyframe = true;
                        self.subscription.feed().request_keyframe();
                    }
                    // Nothing heard from the viewer for a while: stop sending until it is back
                    // (it then resumes at a fresh keyframe) or the connection fails.
                    RTCPeerConnectionState::Disconnected => state.connected = false,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        return Events::End(EndReason::Failed);
                    }
                    _ => {}
                }
            }
        }
        seen
    }

    fn handle_reads(&mut self) {
        while let Some(TaggedRTCMessage { message, .. }) = self.peer.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message
                && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
            {
                self.subscription.feed().request_keyframe();
            }
        }
    }

    fn forward(&mut self, state: &mut State, packet: MediaPacket) {
        if !state.connected {
            return;
        }
        if self.subscription.take_lost() && !state.waiting_for_keyframe {
            state.waiting_for_keyframe = true;
            self.subscription.feed().request_keyframe();
        }
        if state.waiting_for_keyframe {
            if !packet.keyframe_start {
                return;
            }
            state.waiting_for_keyframe = false;
            self.rewriter.resume();
        }
        let out = self
            .rewriter
            .rewrite(packet.header.sequence, packet.header.timestamp);
        let size = packet.data.len() as u64;
        let rtp_packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: packet.header.marker,
                payload_type: out.payload_type,
                sequence_number: out.sequence,
                timestamp: out.timestamp,
                ssrc: out.ssrc,
                ..Default::default()
            },
            payload: packet.payload(),
        };
        let Some(mut sender) = self.peer.rtp_sender(self.sender) else {
            return;
        };
        match sender.write_rtp(Instant::now(), rtp_packet) {
            Ok(()) => {
                let metrics = self.subscription.feed().metrics();
                metrics.egress_packets.inc();
                metrics.egress_bytes.inc_by(size);
            }
            Err(e) => tracing::trace!(error = %e, "write_rtp refused a packet"),
        }
    }
}
