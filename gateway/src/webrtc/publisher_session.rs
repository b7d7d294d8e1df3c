//! A consultation participant's publishing connection at run time: one task per publisher (a
//! consultation has at most a handful), which takes the participant's datagrams from the media
//! port, hands every RTP packet it decrypts to the participant's video or audio feed (from which
//! the other participants' subscriptions are served exactly like a camera's viewers), sends what
//! the connection wants sent, and turns a feed's keyframe request into an RTCP PLI to the browser.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrackId;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use rtc::shared::marshal::Marshal;
use tokio::sync::mpsc;

use super::udp_transport::{RoutedDatagram, UdpTransport};
use super::viewer_session::EndReason;
use crate::hub::{CameraFeed, KeyframeSource};

/// A publisher that has not connected within this long is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest sleep between timer checks.
const MAX_IDLE: Duration = Duration::from_millis(500);
/// Keyframe requests closer together than this are merged (the feed merges too).
const MIN_PLI_INTERVAL: Duration = Duration::from_millis(300);

/// What the publisher's owner asks of its task.
#[derive(Debug)]
pub enum PublisherControl {
    /// A subscriber needs a keyframe: ask the browser (PLI).
    Keyframe,
    /// End the connection (DTLS close_notify) and the task.
    Close,
}

/// Asks a publisher's task for keyframes on behalf of its video feed.
pub struct PublisherKeyframes(pub mpsc::UnboundedSender<PublisherControl>);

impl KeyframeSource for PublisherKeyframes {
    fn request_keyframe(&self) {
        let _ = self.0.send(PublisherControl::Keyframe);
    }
}

/// Ends the publisher when dropped.
pub struct PublisherCloser(pub mpsc::UnboundedSender<PublisherControl>);

impl Drop for PublisherCloser {
    fn drop(&mut self) {
        let _ = self.0.send(PublisherControl::Close);
    }
}

/// A publisher's connection and its feeds.
pub struct PublisherSession {
    peer: RTCPeerConnection,
    video: Arc<CameraFeed>,
    audio: Arc<CameraFeed>,
    receivers: HashMap<MediaStreamTrackId, (RTCRtpReceiverId, RtpCodecKind)>,
    /// The video receiver and the browser's SSRC for it, once known.
    video_source: Option<(RTCRtpReceiverId, u32)>,
    connected: bool,
    started: Instant,
    last_pli: Option<Instant>,
}

impl PublisherSession {
    /// A session for a negotiated connection, publishing into `video` and `audio`.
    pub fn new(peer: RTCPeerConnection, video: Arc<CameraFeed>, audio: Arc<CameraFeed>) -> Self {
        PublisherSession {
            peer,
            video,
            audio,
            receivers: HashMap::new(),
            video_source: None,
            connected: false,
            started: Instant::now(),
            last_pli: None,
        }
    }

    /// Runs until the connection ends or a close is asked, then calls `on_end`.
    pub async fn run(
        mut self,
        transport: Arc<UdpTransport>,
        key: u64,
        mut inbox: mpsc::Receiver<RoutedDatagram>,
        mut control: mpsc::UnboundedReceiver<PublisherControl>,
        on_end: impl FnOnce(EndReason) + Send + 'static,
    ) {
        let reason = loop {
            let now = Instant::now();
            let deadline = self
                .peer
                .poll_timeout()
                .unwrap_or(now + MAX_IDLE)
                .min(now + MAX_IDLE);
            let ended = tokio::select! {
                datagram = inbox.recv() => match datagram {
                    Some((_, datagram)) => {
                        if let Err(e) = self.peer.handle_read(datagram) {
                            tracing::trace!(error = %e, "publisher datagram rejected");
                        }
                        None
                    }
                    None => Some(EndReason::Closed),
                },
                request = control.recv() => match request {
                    Some(PublisherControl::Keyframe) => {
                        self.request_keyframe();
                        None
                    }
                    Some(PublisherControl::Close) | None => Some(EndReason::Closed),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.peer.handle_timeout(Instant::now());
                    None
                }
            };
            let ended = ended.or_else(|| self.pump());
            self.send(&transport).await;
            if let Some(reason) = ended {
                break reason;
            }
            if !self.connected && self.started.elapsed() > CONNECT_TIMEOUT {
                break EndReason::NeverConnected;
            }
        };
        let _ = self.peer.close();
        self.send(&transport).await;
        transport.unregister(key);
        on_end(reason);
    }

    /// Handles the connection's events and received packets; `Some` when it ended.
    fn pump(&mut self) -> Option<EndReason> {
        let mut ended = None;
        while let Some(event) = self.peer.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self
                        .peer
                        .rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind());
                    if let Some(kind) = kind {
                        self.receivers
                            .insert(init.track_id, (init.receiver_id, kind));
                    }
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => {
                        self.connected = true;
                        // Subscribers waiting for a picture get one as soon as possible.
                        self.request_keyframe();
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        ended = Some(EndReason::Failed);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.peer.poll_read() {
            if let RTCMessage::RtpPacket(track_id, packet) = message {
                let Some(&(receiver, kind)) = self.receivers.get(&track_id) else {
                    continue;
                };
                let Ok(data) = packet.marshal() else {
                    continue;
                };
                match kind {
                    RtpCodecKind::Video => {
                        if self.video_source.is_none() {
                            self.video_source = Some((receiver, packet.header.ssrc));
                        }
                        self.video.publish(Bytes::from(data));
                    }
                    RtpCodecKind::Audio => self.audio.publish(Bytes::from(data)),
                    _ => {}
                }
            }
        }
        ended
    }

    /// Asks the browser for a keyframe (PLI), at most every [`MIN_PLI_INTERVAL`].
    fn request_keyframe(&mut self) {
        let now = Instant::now();
        if self
            .last_pli
            .is_some_and(|last| now.duration_since(last) < MIN_PLI_INTERVAL)
        {
            return;
        }
        let Some((receiver, media_ssrc)) = self.video_source else {
            return;
        };
        if let Some(mut receiver) = self.peer.rtp_receiver(receiver) {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if receiver.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                self.last_pli = Some(now);
            }
        }
    }

    /// Sends what the connection has queued.
    async fn send(&mut self, transport: &UdpTransport) {
        while let Some(datagram) = self.peer.poll_write() {
            let Some(socket) = transport.socket_for(datagram.transport.local_addr) else {
                continue;
            };
            if let Err(e) = socket
                .send_to(&datagram.message, datagram.transport.peer_addr)
                .await
            {
                tracing::debug!(error = %e, "a publisher datagram could not be sent");
            }
        }
    }
}
