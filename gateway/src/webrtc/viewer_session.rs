//! One viewer's session: its connection ([`ViewerLink`]: the gateway's own stack or `rtc`'s peer
//! connection), driven by the egress shard that owns it with datagrams from the shared media
//! port, packets from the camera's feed, and its timers. It does no I/O itself: what it has to
//! send is taken with [`ViewerSession::poll_transmit`].
//!
//! A viewer starts from the camera's cached GOP when there is one (`replay_gop`), otherwise, like
//! a viewer that resumes after packets were dropped for it or after the camera's stream restarted,
//! at the camera's next keyframe; sequence numbers and timestamps are kept continuous by the
//! rewriter. The session ends on close request, ICE/DTLS failure, the browser closing, or no
//! connection within [`CONNECT_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::shared::TaggedBytesMut;

use super::rtcp_quality::{SentStream, ViewerFeedback};
use super::rtp_rewriter::{Rewritten, RtpRewriter};
use super::viewer_link::{LinkEvent, Stream, ViewerLink};
use crate::hub::{CameraFeed, MediaPacket};
use crate::metrics::viewer_quality::Kind;

/// A viewer that has not connected by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the protocol's own timers, so a session is looked at regularly even when idle.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Media-time spacing (90 kHz ticks, 1 ms) given to the frames of a replayed GOP, whatever their
/// spacing at the camera: the browser decodes the replay as a catch-up burst and shows live video
/// right after it, instead of playing the GOP at its own pace and staying behind live by its age.
const REPLAY_FRAME_SPACING: u32 = 90;
/// RTP clock rate of video (H.264).
const VIDEO_CLOCK_RATE: u32 = 90_000;
/// A viewer's keyframe requests (PLI, FIR) reach the camera or publisher at most this often: a
/// viewer on a poor link, or a client that asks on every loss, cannot make the sender emit
/// keyframes (several times a frame's size) at its rate for every other viewer. Its first request
/// goes at once.
pub const VIEWER_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

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

/// What happened to one media packet offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Handed to the peer connection (protected and queued for sending).
    Sent,
    /// Not for this viewer now (not connected, or waiting for a keyframe).
    Skipped,
}

/// A viewer's audio: its rewriter and the camera's audio feed.
pub struct AudioPath {
    /// The viewer's SSRC and payload type for it.
    pub rewriter: RtpRewriter,
    /// The camera's audio feed.
    pub feed: Arc<CameraFeed>,
    /// The codec's RTP clock rate.
    pub clock_rate: u32,
    /// The camera audio stream's epoch of the last packet sent, and when it was sent.
    last_sent: Option<(u32, Instant)>,
}

impl AudioPath {
    /// The audio path of a viewer of `feed`, rewritten by `rewriter`.
    pub fn new(rewriter: RtpRewriter, feed: Arc<CameraFeed>, clock_rate: u32) -> AudioPath {
        AudioPath {
            rewriter,
            feed,
            clock_rate,
            last_sent: None,
        }
    }
}

/// A viewer's connection and what the relay keeps for it.
pub struct ViewerSession {
    link: ViewerLink,
    rewriter: RtpRewriter,
    feed: Arc<CameraFeed>,
    audio: Option<AudioPath>,
    connected: bool,
    ever_connected: bool,
    waiting_for_keyframe: bool,
    /// The camera sequence number of the last packet replayed from the GOP cache: queued packets up
    /// to it were sent already.
    replayed_through: Option<u16>,
    /// The camera stream's epoch of the last packet sent, and when it was sent.
    last_sent: Option<(u32, Instant)>,
    started: Instant,
    /// The camera epoch and RTP timestamp of the last keyframe sent (counted once per viewer).
    last_keyframe_sent: Option<(u32, u32)>,
    /// Set once the first keyframe went out (time to first frame recorded).
    first_frame_sent: bool,
    /// When this viewer's last keyframe request was passed on.
    last_keyframe_request: Option<Instant>,
}

impl ViewerSession {
    /// A session for a negotiated connection, viewing `feed`.
    pub fn new(
        link: ViewerLink,
        rewriter: RtpRewriter,
        feed: Arc<CameraFeed>,
        audio: Option<AudioPath>,
    ) -> ViewerSession {
        ViewerSession {
            link,
            rewriter,
            feed,
            audio,
            connected: false,
            ever_connected: false,
            waiting_for_keyframe: true,
            replayed_through: None,
            last_sent: None,
            started: Instant::now(),
            last_keyframe_sent: None,
            first_frame_sent: false,
            last_keyframe_request: None,
        }
    }

    /// The camera viewed.
    pub fn feed(&self) -> &Arc<CameraFeed> {
        &self.feed
    }

    /// The camera's audio viewed, if the viewer takes it.
    pub fn audio_feed(&self) -> Option<&Arc<CameraFeed>> {
        self.audio.as_ref().map(|a| &a.feed)
    }

    /// Offers one packet of the camera's audio at `now`: sent as it is (a new SSRC, payload type,
    /// sequence numbers and timestamps that stay continuous across the camera's restarts).
    pub fn forward_audio(
        &mut self,
        packet: &MediaPacket,
        now: Instant,
        buffer: &mut BytesMut,
    ) -> Forwarded {
        if !self.connected {
            return Forwarded::Skipped;
        }
        let Some(audio) = &mut self.audio else {
            return Forwarded::Skipped;
        };
        match audio.last_sent {
            Some((epoch, sent_at)) if epoch != packet.epoch => {
                let elapsed = now.saturating_duration_since(sent_at);
                let ticks = (elapsed.as_micros() * u128::from(audio.clock_rate) / 1_000_000)
                    .min(u128::from(u32::MAX / 4)) as u32;
                audio.rewriter.rebase(ticks);
            }
            None => audio.rewriter.resume(),
            _ => {}
        }
        audio.last_sent = Some((packet.epoch, now));
        let out = audio
            .rewriter
            .rewrite(packet.header.sequence, packet.header.timestamp);
        self.write(Stream::Audio, out, packet, now, buffer)
    }

    /// Takes a datagram from the viewer (STUN, DTLS, SRTCP); `buffer` is the shard's send buffer
    /// (a connection that comes up starts with the cached GOP).
    pub fn handle_datagram(
        &mut self,
        datagram: TaggedBytesMut,
        buffer: &mut BytesMut,
    ) -> Option<EndReason> {
        let now = Instant::now();
        self.link.handle_datagram(datagram, now, &self.feed);
        self.handle_events(buffer)
    }

    /// Runs the connection's timers if due, and checks the connect deadline.
    pub fn handle_timeout(&mut self, now: Instant, buffer: &mut BytesMut) -> Option<EndReason> {
        if !self.ever_connected && now.duration_since(self.started) > CONNECT_TIMEOUT {
            return Some(EndReason::NeverConnected);
        }
        self.link.handle_timeout(now);
        self.handle_events(buffer)
    }

    /// When the session next needs [`ViewerSession::handle_timeout`].
    pub fn deadline(&mut self, now: Instant) -> Instant {
        let mut deadline = self
            .link
            .poll_timeout()
            .unwrap_or(now + MAX_IDLE)
            .min(now + MAX_IDLE);
        if !self.ever_connected {
            deadline = deadline.min(self.started + CONNECT_TIMEOUT + Duration::from_millis(1));
        }
        deadline
    }

    /// The next datagram the connection wants sent.
    pub fn poll_transmit(&mut self) -> Option<TaggedBytesMut> {
        self.link.poll_transmit()
    }

    /// Starts the connection's close (DTLS close_notify); its datagrams are then in
    /// [`ViewerSession::poll_transmit`].
    pub fn close(&mut self) {
        self.link.close(Instant::now());
    }

    /// Offers one camera packet at `now`. `resume` says packets were dropped before it on the way
    /// to this viewer: it then waits for the next keyframe.
    /// `buffer` is the shard's send buffer.
    pub fn forward(
        &mut self,
        packet: &MediaPacket,
        resume: bool,
        now: Instant,
        buffer: &mut BytesMut,
    ) -> Forwarded {
        if !self.connected {
            return Forwarded::Skipped;
        }
        if let Some((epoch, sent_at)) = self.last_sent
            && epoch != packet.epoch
        {
            // The camera's stream restarted: continue at its next keyframe with sequence numbers
            // and timestamps that carry on from the last packet sent.
            let elapsed = now.saturating_duration_since(sent_at);
            let ticks = (elapsed.as_micros() * u128::from(VIDEO_CLOCK_RATE) / 1_000_000)
                .min(u128::from(u32::MAX / 4)) as u32;
            self.rewriter.rebase(ticks);
            self.last_sent = Some((packet.epoch, sent_at));
            self.replayed_through = None;
            self.waiting_for_keyframe = true;
            self.feed.request_keyframe();
        }
        if let Some(last) = self.replayed_through {
            // The GOP was copied while this packet and older ones were queued for the shard.
            if packet.header.sequence.wrapping_sub(last) > u16::MAX / 2
                || packet.header.sequence == last
            {
                return Forwarded::Skipped;
            }
            self.replayed_through = None;
        }
        if resume && !self.waiting_for_keyframe {
            self.waiting_for_keyframe = true;
            self.feed.request_keyframe();
        }
        if self.waiting_for_keyframe {
            if !packet.keyframe_start {
                return Forwarded::Skipped;
            }
            self.waiting_for_keyframe = false;
            self.rewriter.resume();
        }
        self.send(packet, packet.header.timestamp, now, buffer)
    }

    /// Sends one camera packet with `timestamp` (camera time) in place of its own.
    fn send(
        &mut self,
        packet: &MediaPacket,
        timestamp: u32,
        now: Instant,
        buffer: &mut BytesMut,
    ) -> Forwarded {
        self.last_sent = Some((packet.epoch, now));
        let out = self.rewriter.rewrite(packet.header.sequence, timestamp);
        let forwarded = self.write(Stream::Video, out, packet, now, buffer);
        if forwarded == Forwarded::Sent && packet.keyframe_start {
            self.keyframe_sent(packet, now);
        }
        forwarded
    }

    /// Counts a keyframe sent (once per access unit) and, the first time, the time it took.
    fn keyframe_sent(&mut self, packet: &MediaPacket, now: Instant) {
        let keyframe = (packet.epoch, packet.header.timestamp);
        if self.last_keyframe_sent == Some(keyframe) {
            return;
        }
        self.last_keyframe_sent = Some(keyframe);
        let quality = &self.feed.metrics().quality;
        quality.keyframes_sent.inc();
        if !self.first_frame_sent {
            self.first_frame_sent = true;
            quality
                .time_to_first_frame
                .observe(now.saturating_duration_since(self.started).as_secs_f64());
        }
    }

    /// The streams sent to the viewer, as its RTCP names them.
    fn sent_streams(&self) -> Vec<SentStream> {
        let mut streams = vec![SentStream {
            ssrc: self.rewriter.ssrc(),
            clock_rate: VIDEO_CLOCK_RATE,
            kind: Kind::Video,
        }];
        if let Some(audio) = &self.audio {
            streams.push(SentStream {
                ssrc: audio.rewriter.ssrc(),
                clock_rate: audio.clock_rate,
                kind: Kind::Audio,
            });
        }
        streams
    }

    /// Hands `packet`'s payload to the link as `stream` with the rewritten header `out`.
    fn write(
        &mut self,
        stream: Stream,
        out: Rewritten,
        packet: &MediaPacket,
        now: Instant,
        buffer: &mut BytesMut,
    ) -> Forwarded {
        if self.link.write(stream, out, packet, now, buffer) {
            Forwarded::Sent
        } else {
            Forwarded::Skipped
        }
    }

    /// Handles the link's events: connection changes and the viewer's RTCP.
    fn handle_events(&mut self, buffer: &mut BytesMut) -> Option<EndReason> {
        while let Some(event) = self.link.poll_event() {
            match event {
                LinkEvent::Connected => {
                    self.connected = true;
                    let first_connection = !self.ever_connected;
                    self.ever_connected = true;
                    // A viewer back from a disconnection has shown newer pictures than the
                    // cached GOP's first: it waits for a keyframe.
                    match first_connection.then(|| self.feed.cached_gop()).flatten() {
                        Some(gop) => self.replay_gop(&gop, Instant::now(), buffer),
                        None => {
                            self.waiting_for_keyframe = true;
                            self.feed.request_keyframe();
                        }
                    }
                }
                // Nothing heard from the viewer for a while: stop sending until it is back (it
                // then resumes at a fresh keyframe) or the connection fails.
                LinkEvent::Disconnected => self.connected = false,
                LinkEvent::Failed => {
                    self.connected = false;
                    return Some(EndReason::Failed);
                }
                LinkEvent::Rtcp(packets) => self.handle_rtcp(&packets),
            }
        }
        let retransmitted = self.link.take_retransmitted();
        if retransmitted > 0 {
            self.feed
                .metrics()
                .quality
                .retransmits
                .inc_by(retransmitted);
        }
        None
    }

    /// Starts the viewer from the camera's cached GOP (`gop` begins with a keyframe). Frame `i` of
    /// the `n` gets the timestamp of the newest frame minus `(n - 1 - i)` spacings of
    /// [`REPLAY_FRAME_SPACING`]: the newest keeps its place in media time, so live frames follow
    /// it at the camera's own pace, and the older ones are squeezed into the milliseconds before
    /// it. The browser decodes the keyframe at once, runs through the rest as fast as it decodes,
    /// and is then at live: no lag behind live, and a fast-forward no longer than the decoding.
    fn replay_gop(&mut self, gop: &[MediaPacket], now: Instant, buffer: &mut BytesMut) {
        let (Some(first), Some(newest)) = (gop.first(), gop.last()) else {
            return;
        };
        // Frames after the current one, counted by timestamp changes.
        let mut behind = gop
            .windows(2)
            .filter(|pair| pair[0].header.timestamp != pair[1].header.timestamp)
            .count() as u32;
        let mut frame_timestamp = first.header.timestamp;
        let (mut sent, mut bytes) = (0u64, 0u64);
        for packet in gop {
            if packet.header.timestamp != frame_timestamp {
                frame_timestamp = packet.header.timestamp;
                behind = behind.saturating_sub(1);
            }
            let timestamp = newest
                .header
                .timestamp
                .wrapping_sub(behind.wrapping_mul(REPLAY_FRAME_SPACING));
            if self.send(packet, timestamp, now, buffer) == Forwarded::Sent {
                sent += 1;
                bytes += packet.data.len() as u64;
            }
        }
        let metrics = self.feed.metrics();
        metrics.egress_packets.inc_by(sent);
        metrics.egress_bytes.inc_by(bytes);
        self.waiting_for_keyframe = false;
        self.replayed_through = Some(newest.header.sequence);
    }

    /// Records the viewer's RTCP in the quality metrics and passes its keyframe requests on.
    fn handle_rtcp(&mut self, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        let feedback =
            ViewerFeedback::read(packets, &self.sent_streams(), std::time::SystemTime::now());
        feedback.record(&self.feed.metrics().quality);
        if feedback.keyframe_requests > 0 {
            let now = Instant::now();
            if self
                .last_keyframe_request
                .is_none_or(|last| now.duration_since(last) >= VIEWER_KEYFRAME_REQUEST_INTERVAL)
            {
                self.last_keyframe_request = Some(now);
                self.feed.request_keyframe();
            }
        }
    }
}
