//! One viewer's connection run by the gateway itself, without `rtc`'s peer connection: ICE-lite
//! ([`IceLiteResponder`]), DTLS-SRTP as the client ([`DtlsSrtpClient`]), SRTP sealed in place
//! into the egress shard's send buffer ([`SrtpGcmSender`]), SRTCP in (the viewer's reports,
//! NACKs and keyframe requests), NACKs answered byte for byte (the header from the viewer's
//! [`RetransmitHistory`], the payload from the camera's recent packets), and a sender report a
//! second per stream. `rtc` still answers the SDP offer; this takes over from
//! there (issue 7, `benches/EGRESS-PLAN.md`).
//!
//! Media goes only to the address the viewer nominated with an authenticated Binding request
//! (RFC 7675 consent), and only while the viewer is heard from: a valid STUN check, DTLS record
//! or SRTCP packet. After [`ICE_DISCONNECTED_AFTER`] of silence the link is disconnected (media
//! paused); after [`ICE_FAILED_AFTER`] more, failed. It does no I/O: datagrams to send are taken
//! with [`DirectLink::poll_transmit`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, BytesMut};
use rtc::dtls::crypto::Certificate;
use rtc::rtcp;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::shared::{TaggedBytesMut, TransportContext};
use rtc::srtp::context::Context;
use rtc::srtp::option::srtcp_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;

use super::dtls_srtp_client::{DtlsEvent, DtlsSrtpClient, SrtpKeys, SrtpProfile};
use super::ice_lite_responder::{BindingCheck, IceLiteResponder};
use super::retransmit_history::RetransmitHistory;
use super::rtcp_quality::ntp_time;
use super::rtp_rewriter::Rewritten;
use super::srtp_gcm_sender::{MASTER_KEY_LEN, MASTER_SALT_LEN, SrtpGcmSender, TAG_LEN};
use super::viewer_link::{LinkEvent, Stream};
use super::whep_peer::{ICE_DISCONNECTED_AFTER, ICE_FAILED_AFTER};
use crate::hub::{CameraFeed, MediaPacket};

/// How long after the viewer's nomination the ClientHello leaves: in a later send than the STUN
/// answer, so that a peer which starts its DTLS only once it has handled ICE's success (webrtc-rs)
/// does not read the ClientHello in the same burst and drop it.
const DTLS_START_DELAY: Duration = Duration::from_millis(2);
/// Sender reports go out this often per stream (browsers use them for lip sync and RTT).
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The viewer's SRTCP replay window.
const SRTCP_REPLAY_WINDOW: usize = 64;
/// Bytes the send buffer grows by when it runs out (many packets per allocation).
const SEND_BUFFER_BYTES: usize = 64 * 1024;
/// RTP header length as written (no CSRCs, no extension).
const RTP_HEADER_LEN: usize = 12;

/// What a direct link is set up from: our answer's ICE credentials and DTLS certificate, and
/// what the viewer's offer says of its own.
pub struct DirectLinkSetup {
    /// Our ICE username fragment (in the answer).
    pub local_ufrag: String,
    /// Our ICE password (in the answer).
    pub local_password: String,
    /// The viewer's ICE username fragment (`a=ice-ufrag` of the offer).
    pub remote_ufrag: String,
    /// The viewer's certificate fingerprint (`a=fingerprint` of the offer, sha-256).
    pub remote_fingerprint: String,
    /// Our DTLS certificate (its fingerprint is in the answer).
    pub certificate: Certificate,
}

/// SRTP once the handshake is done.
struct Keys {
    /// Our media: in place (AES-GCM) or through `rtc_srtp` (AES-CM + HMAC, for peers without GCM).
    media: MediaProtection,
    /// Our sender reports.
    rtcp_out: Context,
    /// The viewer's RTCP.
    rtcp_in: Context,
}

// The GCM sender (ring's expanded key) is inline: it is the profile browsers take and the one
// on the per-packet path; the rare CM context is boxed. The link itself is boxed.
#[allow(clippy::large_enum_variant)]
enum MediaProtection {
    Gcm(SrtpGcmSender),
    Cm(Box<Context>),
}

/// What one stream sent, for its sender reports.
#[derive(Clone, Copy, Default)]
struct SentCounts {
    ssrc: u32,
    clock_rate: u32,
    packets: u32,
    octets: u32,
    /// The last RTP timestamp sent and when.
    last: Option<(u32, Instant)>,
}

/// A packet as sent, to send it again byte for byte: its header, and where its payload is kept
/// (the camera's recent packets, [`CameraFeed::recent_packet`]).
#[derive(Clone, Copy)]
struct SentPacket {
    header: Rewritten,
    camera_sequence: u16,
    epoch: u32,
}

/// One viewer's ICE-lite, DTLS-SRTP and SRTP.
pub struct DirectLink {
    ice: IceLiteResponder,
    certificate: Option<Certificate>,
    remote_fingerprint: String,
    dtls: Option<DtlsSrtpClient>,
    dtls_start_at: Option<Instant>,
    /// Where media goes: the last nominated address, and the socket it reached us on.
    destination: Option<TransportContext>,
    keys: Option<Keys>,
    connected: bool,
    failed: bool,
    last_heard: Instant,
    next_report: Option<Instant>,
    streams: [SentCounts; 2],
    history: RetransmitHistory<SentPacket>,
    outbox: VecDeque<TaggedBytesMut>,
    events: VecDeque<LinkEvent>,
    /// Packets sent again on NACKs since [`DirectLink::take_retransmitted`].
    retransmitted: u64,
}

impl DirectLink {
    /// A link waiting for the viewer's first connectivity check, sending video as `video_ssrc`
    /// and audio (if any) as `audio`'s SSRC and clock rate.
    pub fn new(
        setup: DirectLinkSetup,
        video_ssrc: u32,
        audio: Option<(u32, u32)>,
        now: Instant,
    ) -> Result<DirectLink, String> {
        let ice = IceLiteResponder::new(
            &setup.local_ufrag,
            &setup.local_password,
            &setup.remote_ufrag,
        )?;
        let mut streams = [SentCounts::default(); 2];
        streams[Stream::Video as usize] = SentCounts {
            ssrc: video_ssrc,
            clock_rate: 90_000,
            ..Default::default()
        };
        if let Some((ssrc, clock_rate)) = audio {
            streams[Stream::Audio as usize] = SentCounts {
                ssrc,
                clock_rate,
                ..Default::default()
            };
        }
        Ok(DirectLink {
            ice,
            certificate: Some(setup.certificate),
            remote_fingerprint: setup.remote_fingerprint,
            dtls: None,
            dtls_start_at: None,
            destination: None,
            keys: None,
            connected: false,
            failed: false,
            last_heard: now,
            next_report: None,
            streams,
            history: RetransmitHistory::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            retransmitted: 0,
        })
    }

    /// Takes one datagram from the viewer (demultiplexed by its first byte, RFC 7983); `video`
    /// is the camera viewed (NACKs are answered from its recent packets).
    pub fn handle_datagram(&mut self, datagram: TaggedBytesMut, now: Instant, video: &CameraFeed) {
        if self.failed {
            return;
        }
        match datagram.message.first().copied() {
            Some(0..=3) => self.handle_stun(&datagram, now),
            Some(20..=63) => self.handle_dtls(&datagram.message, now),
            Some(128..=191) => self.handle_srtcp(&datagram.message, now, video),
            _ => tracing::trace!("datagram of no known protocol from a viewer"),
        }
        self.drain_dtls(now);
    }

    fn handle_stun(&mut self, datagram: &TaggedBytesMut, now: Instant) {
        match self
            .ice
            .check(&datagram.message, datagram.transport.peer_addr)
        {
            BindingCheck::Answer {
                response,
                nominated,
                ..
            } => {
                self.outbox.push_back(TaggedBytesMut {
                    now,
                    transport: datagram.transport,
                    message: BytesMut::from(&response[..]),
                });
                self.heard(now);
                if nominated {
                    self.destination = Some(datagram.transport);
                    if self.dtls.is_none() && self.dtls_start_at.is_none() {
                        self.dtls_start_at = Some(now + DTLS_START_DELAY);
                    }
                }
            }
            BindingCheck::Ignored(why) => tracing::trace!(why, "STUN from a viewer ignored"),
        }
    }

    fn handle_dtls(&mut self, record: &[u8], now: Instant) {
        let Some(dtls) = &mut self.dtls else {
            return;
        };
        match dtls.handle_datagram(now, record) {
            Ok(events) => {
                for event in events {
                    match event {
                        DtlsEvent::Connected(keys) => self.dtls_connected(&keys, now),
                        DtlsEvent::Closed => self.fail("the viewer closed the connection"),
                    }
                }
                if self.keys.is_some() {
                    self.heard(now);
                }
            }
            // Before the handshake completes any error is fatal (a certificate that does not
            // match the offer, an alert); after it, a stray record is only dropped.
            Err(e) if self.keys.is_none() => {
                tracing::debug!(error = %e, "DTLS handshake with a viewer failed");
                self.fail("DTLS handshake failed");
            }
            Err(e) => tracing::trace!(error = %e, "DTLS record from a viewer dropped"),
        }
    }

    fn dtls_connected(&mut self, keys: &SrtpKeys, now: Instant) {
        match srtp_state(keys) {
            Ok(state) => {
                self.keys = Some(state);
                self.next_report = Some(now + SENDER_REPORT_INTERVAL);
                self.heard(now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "SRTP keys from DTLS refused");
                self.fail("SRTP setup failed");
            }
        }
    }

    fn handle_srtcp(&mut self, datagram: &[u8], now: Instant, video: &CameraFeed) {
        let Some(keys) = &mut self.keys else {
            return;
        };
        // RTCP packet types 192..=223 (RFC 5761); the viewer sends no RTP.
        if !datagram.get(1).is_some_and(|t| (192..=223).contains(t)) {
            return;
        }
        let plain = match keys.rtcp_in.decrypt_rtcp(datagram) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::trace!(error = %e, "SRTCP from a viewer rejected");
                return;
            }
        };
        self.heard(now);
        let mut buffer = plain.freeze();
        let packets = match rtcp::packet::unmarshal(&mut buffer) {
            Ok(packets) => packets,
            Err(e) => {
                tracing::trace!(error = %e, "malformed RTCP from a viewer");
                return;
            }
        };
        self.answer_nacks(&packets, now, video);
        self.events.push_back(LinkEvent::Rtcp(packets));
    }

    /// Sends again what the viewer's NACKs for our video ask for and we still have.
    fn answer_nacks(
        &mut self,
        packets: &[Box<dyn rtcp::Packet>],
        now: Instant,
        video: &CameraFeed,
    ) {
        let video_ssrc = self.streams[Stream::Video as usize].ssrc;
        for packet in packets {
            let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() else {
                continue;
            };
            if nack.media_ssrc != video_ssrc {
                continue;
            }
            let pairs: Vec<(u16, u16)> = nack
                .nacks
                .iter()
                .map(|pair| (pair.packet_id, pair.lost_packets))
                .collect();
            for (_, sent) in self.history.requested(&pairs, now) {
                let Some(packet) = video.recent_packet(sent.camera_sequence, sent.epoch) else {
                    continue;
                };
                let payload = packet.payload_slice();
                let mut buffer = BytesMut::with_capacity(RTP_HEADER_LEN + payload.len() + TAG_LEN);
                if self.seal_into(
                    Stream::Video,
                    sent.header,
                    packet.header.marker,
                    payload,
                    now,
                    &mut buffer,
                ) {
                    self.retransmitted += 1;
                }
            }
        }
    }

    /// Marks the viewer as heard from at `now` (back to connected if it had gone quiet).
    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        if self.keys.is_some() && !self.connected {
            self.connected = true;
            self.events.push_back(LinkEvent::Connected);
        }
    }

    fn fail(&mut self, why: &'static str) {
        if !self.failed {
            tracing::debug!(why, "viewer link failed");
            self.failed = true;
            self.connected = false;
            self.events.push_back(LinkEvent::Failed);
        }
    }

    /// Runs what is due at `now`: the DTLS start and its retransmissions, the consent timeouts,
    /// sender reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        if self.dtls_start_at.is_some_and(|at| at <= now) {
            self.dtls_start_at = None;
            self.start_dtls(now);
        }
        if let Some(dtls) = &mut self.dtls
            && dtls.poll_timeout().is_some_and(|at| at <= now)
            && let Err(e) = dtls.handle_timeout(now)
        {
            tracing::debug!(error = %e, "DTLS with a viewer timed out");
            self.fail("DTLS timed out");
        }
        if self.destination.is_some() {
            let silent = now.saturating_duration_since(self.last_heard);
            if silent >= ICE_DISCONNECTED_AFTER + ICE_FAILED_AFTER {
                self.fail("the viewer went silent");
            } else if silent >= ICE_DISCONNECTED_AFTER && self.connected {
                self.connected = false;
                self.events.push_back(LinkEvent::Disconnected);
            }
        }
        if self.next_report.is_some_and(|at| at <= now) {
            self.next_report = Some(now + SENDER_REPORT_INTERVAL);
            if self.connected {
                self.send_reports(now);
            }
        }
        self.drain_dtls(now);
    }

    fn start_dtls(&mut self, now: Instant) {
        let Some(certificate) = self.certificate.take() else {
            return;
        };
        match DtlsSrtpClient::start(now, certificate, &self.remote_fingerprint) {
            Ok(dtls) => self.dtls = Some(dtls),
            Err(e) => {
                tracing::debug!(error = %e, "DTLS with a viewer could not start");
                self.fail("DTLS could not start");
            }
        }
    }

    /// Moves what DTLS has to send to the outbox, addressed to the nominated address.
    fn drain_dtls(&mut self, now: Instant) {
        let (Some(dtls), Some(destination)) = (&mut self.dtls, self.destination) else {
            return;
        };
        while let Some(message) = dtls.poll_transmit() {
            self.outbox.push_back(TaggedBytesMut {
                now,
                transport: destination,
                message,
            });
        }
    }

    fn send_reports(&mut self, now: Instant) {
        let (Some(keys), Some(destination)) = (&mut self.keys, self.destination) else {
            return;
        };
        let ntp_time = ntp_time(SystemTime::now());
        let reports: Vec<Box<dyn rtcp::Packet>> = self
            .streams
            .iter()
            .filter_map(|stream| {
                let (timestamp, at) = stream.last?;
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_micros() * u128::from(stream.clock_rate) / 1_000_000)
                    .min(u128::from(u32::MAX)) as u32;
                Some(Box::new(SenderReport {
                    ssrc: stream.ssrc,
                    ntp_time,
                    rtp_time: timestamp.wrapping_add(ticks),
                    packet_count: stream.packets,
                    octet_count: stream.octets,
                    ..Default::default()
                }) as Box<dyn rtcp::Packet>)
            })
            .collect();
        if reports.is_empty() {
            return;
        }
        let sealed = rtcp::packet::marshal(&reports)
            .map_err(|e| e.to_string())
            .and_then(|plain| {
                keys.rtcp_out
                    .encrypt_rtcp(&plain)
                    .map_err(|e| e.to_string())
            });
        match sealed {
            Ok(message) => self.outbox.push_back(TaggedBytesMut {
                now,
                transport: destination,
                message,
            }),
            Err(e) => tracing::debug!(error = %e, "sender report not sent"),
        }
    }

    /// When [`DirectLink::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let consent = self.destination.map(|_| {
            if self.connected {
                self.last_heard + ICE_DISCONNECTED_AFTER
            } else {
                self.last_heard + ICE_DISCONNECTED_AFTER + ICE_FAILED_AFTER
            }
        });
        [
            self.dtls_start_at,
            self.dtls.as_ref().and_then(DtlsSrtpClient::poll_timeout),
            self.next_report,
            consent,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The packets sent again on NACKs since the last call.
    pub fn take_retransmitted(&mut self) -> u64 {
        std::mem::take(&mut self.retransmitted)
    }

    /// True while media can be sent.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The next event for the session.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<TaggedBytesMut> {
        self.outbox.pop_front()
    }

    /// Sends `packet`'s payload as `stream` with the rewritten `header`, written and sealed in
    /// `buffer` (the shard's send buffer, reused from send to send). False when media cannot go
    /// now.
    pub fn write(
        &mut self,
        stream: Stream,
        header: Rewritten,
        packet: &MediaPacket,
        now: Instant,
        buffer: &mut BytesMut,
    ) -> bool {
        if !self.connected {
            return false;
        }
        let marker = packet.header.marker;
        let sent = self.seal_into(stream, header, marker, packet.payload_slice(), now, buffer);
        if sent && stream == Stream::Video {
            self.history.sent(
                header.sequence,
                SentPacket {
                    header,
                    camera_sequence: packet.header.sequence,
                    epoch: packet.epoch,
                },
            );
        }
        sent
    }

    /// Writes the packet into `buffer`, seals it and queues it; counts it for the reports.
    fn seal_into(
        &mut self,
        stream: Stream,
        header: Rewritten,
        marker: bool,
        payload: &[u8],
        now: Instant,
        buffer: &mut BytesMut,
    ) -> bool {
        let (Some(keys), Some(destination)) = (&mut self.keys, self.destination) else {
            return false;
        };
        let len = RTP_HEADER_LEN + payload.len() + TAG_LEN;
        // Every packet is split off the buffer once written: what is left is spare capacity.
        buffer.clear();
        if buffer.capacity() < len {
            buffer.reserve(len.max(SEND_BUFFER_BYTES));
        }
        buffer.put_u8(0x80);
        buffer.put_u8(u8::from(marker) << 7 | (header.payload_type & 0x7f));
        buffer.put_u16(header.sequence);
        buffer.put_u32(header.timestamp);
        buffer.put_u32(header.ssrc);
        buffer.put_slice(payload);
        let message = match &mut keys.media {
            MediaProtection::Gcm(sender) => {
                buffer.put_bytes(0, TAG_LEN);
                if let Err(e) = sender.seal(&mut buffer[..]) {
                    tracing::debug!(error = %e, "SRTP refused a packet");
                    buffer.clear();
                    return false;
                }
                buffer.split()
            }
            MediaProtection::Cm(context) => {
                let sealed = context.encrypt_rtp(&buffer[..]);
                buffer.clear();
                match sealed {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::debug!(error = %e, "SRTP refused a packet");
                        return false;
                    }
                }
            }
        };
        let counts = &mut self.streams[stream as usize];
        counts.packets = counts.packets.wrapping_add(1);
        counts.octets = counts.octets.wrapping_add(payload.len() as u32);
        counts.last = Some((header.timestamp, now));
        self.outbox.push_back(TaggedBytesMut {
            now,
            transport: destination,
            message,
        });
        true
    }

    /// Starts the close (DTLS `close_notify`, in [`DirectLink::poll_transmit`]).
    pub fn close(&mut self, now: Instant) {
        if let Some(dtls) = &mut self.dtls {
            dtls.close(now);
        }
        self.drain_dtls(now);
        self.connected = false;
    }

    /// The address media goes to, once nominated.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.destination.map(|t| t.peer_addr)
    }
}

/// The SRTP and SRTCP state for `keys`.
fn srtp_state(keys: &SrtpKeys) -> Result<Keys, String> {
    let provider = rtc::crypto::default_provider().map_err(|e| e.to_string())?;
    let crypto = provider.crypto();
    let profile = match keys.profile {
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProfile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
    };
    let context = |key: &[u8], salt: &[u8], replay| {
        Context::new(key, salt, profile, None, replay, crypto).map_err(|e| e.to_string())
    };
    let media = match keys.profile {
        SrtpProfile::AeadAes128Gcm => {
            let key: &[u8; MASTER_KEY_LEN] = keys.local_key[..]
                .try_into()
                .map_err(|_| "SRTP master key of the wrong length".to_owned())?;
            let salt: &[u8; MASTER_SALT_LEN] = keys.local_salt[..]
                .try_into()
                .map_err(|_| "SRTP master salt of the wrong length".to_owned())?;
            MediaProtection::Gcm(SrtpGcmSender::new(key, salt).map_err(|e| e.to_string())?)
        }
        SrtpProfile::Aes128CmHmacSha1_80 => {
            MediaProtection::Cm(Box::new(context(&keys.local_key, &keys.local_salt, None)?))
        }
    };
    Ok(Keys {
        media,
        rtcp_out: context(&keys.local_key, &keys.local_salt, None)?,
        rtcp_in: context(
            &keys.remote_key,
            &keys.remote_salt,
            Some(srtcp_replay_protection(SRTCP_REPLAY_WINDOW)),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rtc::dtls::endpoint::EndpointEvent;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
    use rtc::shared::TransportProtocol;
    use rtc::shared::marshal::Unmarshal;
    use rtc::stun::message::{BINDING_SUCCESS, Message};

    use super::*;
    use crate::webrtc::browser_side::{binding_request, certificate, dtls_server, fingerprint};

    const GATEWAY: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8189);
    const BROWSER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50_000);
    const LOCAL_UFRAG: &str = "gatewayufrag0001";
    const LOCAL_PASSWORD: &str = "gateway-password-of-32-characters";
    const REMOTE_UFRAG: &str = "brws";
    const VIDEO_SSRC: u32 = 0x1234_5678;

    /// A Binding request from the browser, as Chromium sends it.
    fn check(nominate: bool) -> Vec<u8> {
        let username = format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}");
        binding_request(&username, LOCAL_PASSWORD, nominate).0
    }

    fn from_browser(data: &[u8]) -> TaggedBytesMut {
        TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: GATEWAY,
                peer_addr: BROWSER,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(data),
        }
    }

    fn sent(link: &mut DirectLink) -> Vec<TaggedBytesMut> {
        std::iter::from_fn(|| link.poll_transmit()).collect()
    }

    /// The browser's SRTP contexts once DTLS is done: what it receives with (our keys) and what
    /// it sends its RTCP with.
    struct BrowserSrtp {
        receive: Context,
        send: Context,
    }

    /// A link and a browser through ICE and DTLS, from `t0`; and when they connected.
    fn connected_link(t0: Instant, feed: &CameraFeed) -> (DirectLink, BrowserSrtp, Instant) {
        let browser_certificate = certificate();
        let remote_fingerprint = fingerprint(&browser_certificate);
        let mut browser = dtls_server(BROWSER, browser_certificate);
        let setup = DirectLinkSetup {
            local_ufrag: LOCAL_UFRAG.into(),
            local_password: LOCAL_PASSWORD.into(),
            remote_ufrag: REMOTE_UFRAG.into(),
            remote_fingerprint,
            certificate: certificate(),
        };
        let mut link = DirectLink::new(setup, VIDEO_SSRC, None, t0).unwrap();

        // A check without nomination is answered; nothing else happens.
        link.handle_datagram(from_browser(&check(false)), t0, feed);
        let answers = sent(&mut link);
        assert_eq!(answers.len(), 1);
        let mut answer = Message::new();
        answer.unmarshal_binary(&answers[0].message).unwrap();
        assert_eq!(answer.typ, BINDING_SUCCESS);
        assert_eq!(link.destination(), None);
        // The nomination: answered at once, the ClientHello a moment later (a later send).
        link.handle_datagram(from_browser(&check(true)), t0, feed);
        assert_eq!(
            sent(&mut link).len(),
            1,
            "only the STUN answer goes at once"
        );
        assert_eq!(link.destination(), Some(BROWSER));
        let start = link.poll_timeout().unwrap();
        assert!(start > t0 && start <= t0 + Duration::from_millis(5));
        link.handle_timeout(start);

        let mut browser_done = false;
        for _ in 0..16 {
            for datagram in sent(&mut link) {
                assert_eq!(datagram.transport.peer_addr, BROWSER);
                for event in browser
                    .read(start, datagram.transport.local_addr, None, datagram.message)
                    .unwrap()
                {
                    browser_done |= matches!(event, EndpointEvent::HandshakeComplete);
                }
            }
            while let Some(transmit) = browser.poll_transmit() {
                link.handle_datagram(from_browser(&transmit.message), start, feed);
            }
            if link.is_connected() && browser_done {
                break;
            }
        }
        assert!(link.is_connected() && browser_done, "DTLS completes");
        assert!(matches!(link.poll_event(), Some(LinkEvent::Connected)));

        let state = browser.get_connection_state(GATEWAY).unwrap();
        let material = state
            .export_keying_material("EXTRACTOR-dtls_srtp", &[], 56)
            .unwrap();
        let m = material.as_ref();
        let provider = rtc::crypto::default_provider().unwrap();
        let context = |key: &[u8], salt: &[u8]| {
            Context::new(
                key,
                salt,
                ProtectionProfile::AeadAes128Gcm,
                None,
                None,
                provider.crypto(),
            )
            .unwrap()
        };
        // client key, server key, client salt, server salt; the browser is the server.
        let srtp = BrowserSrtp {
            receive: context(&m[..16], &m[32..44]),
            send: context(&m[16..32], &m[44..56]),
        };
        (link, srtp, start)
    }

    /// A camera packet of `payload` (its own header is replaced by the rewritten one).
    fn camera_packet(marker: bool, payload: &[u8]) -> MediaPacket {
        let mut data = vec![
            0x80,
            if marker { 0x80 | 96 } else { 96 },
            0,
            7,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            9,
        ];
        data.extend_from_slice(payload);
        MediaPacket {
            header: crate::hub::rtp_header::RtpHeader::parse(&data).unwrap(),
            data: Bytes::from(data),
            keyframe_start: false,
            arrived: Instant::now(),
            epoch: 0,
        }
    }

    fn test_feed() -> std::sync::Arc<CameraFeed> {
        CameraFeed::new("cam", crate::metrics::Metrics::new().camera("cam"))
    }

    fn header(sequence: u16) -> Rewritten {
        Rewritten {
            ssrc: VIDEO_SSRC,
            payload_type: 102,
            sequence,
            timestamp: 90_000,
        }
    }

    #[test]
    fn media_sealed_in_the_send_buffer_opens_in_the_browser_and_nacks_get_the_same_bytes() {
        let t0 = Instant::now();
        let feed = &test_feed();
        let (mut link, mut browser, t0) = connected_link(t0, feed);
        let payload: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let packet = camera_packet(true, &payload);
        // The camera's packet as the hub keeps it: what NACKs are answered from.
        feed.publish(packet.data.clone());
        let mut buffer = BytesMut::with_capacity(SEND_BUFFER_BYTES);
        for sequence in [65_534, 65_535, 0, 1] {
            assert!(link.write(Stream::Video, header(sequence), &packet, t0, &mut buffer));
        }
        let packets = sent(&mut link);
        assert_eq!(packets.len(), 4);
        for packet in &packets {
            assert_eq!(packet.transport.peer_addr, BROWSER);
            let plain = browser.receive.decrypt_rtp(&packet.message).unwrap();
            assert_eq!(&plain[12..], &payload[..]);
            assert_eq!(plain[1], 0x80 | 102, "marker and payload type");
        }
        // All four came out of one allocation, and nothing was left in it.
        assert!(buffer.is_empty());

        // The browser asks again for 65 535 and 0 (across the wrap).
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: VIDEO_SSRC,
            nacks: vec![NackPair {
                packet_id: 65_535,
                lost_packets: 0b1,
            }],
        };
        let plain = rtcp::packet::marshal(&[Box::new(nack) as Box<dyn rtcp::Packet>]).unwrap();
        let srtcp = browser.send.encrypt_rtcp(&plain).unwrap();
        link.handle_datagram(from_browser(&srtcp), t0, feed);
        assert!(matches!(link.poll_event(), Some(LinkEvent::Rtcp(_))));
        let resent = sent(&mut link);
        assert_eq!(resent.len(), 2);
        assert_eq!(resent[0].message, packets[1].message, "byte for byte");
        assert_eq!(resent[1].message, packets[2].message, "byte for byte");
        assert_eq!(link.take_retransmitted(), 2);

        // A sender report a second after the connection, counting every packet sent.
        link.handle_timeout(t0 + SENDER_REPORT_INTERVAL);
        let reports = sent(&mut link);
        assert_eq!(reports.len(), 1);
        let mut plain = browser
            .receive
            .decrypt_rtcp(&reports[0].message)
            .unwrap()
            .freeze();
        let report = SenderReport::unmarshal(&mut plain).unwrap();
        assert_eq!(report.ssrc, VIDEO_SSRC);
        assert_eq!(report.packet_count, 6);
        assert_eq!(report.octet_count, 6000);
        assert!(report.rtp_time >= 90_000);
    }

    #[test]
    fn a_silent_viewer_is_paused_then_dropped() {
        let t0 = Instant::now();
        let feed = &test_feed();
        let (mut link, _browser, t0) = connected_link(t0, feed);
        let packet = camera_packet(false, &[1; 100]);
        let mut buffer = BytesMut::new();
        link.handle_timeout(t0 + ICE_DISCONNECTED_AFTER);
        assert!(matches!(link.poll_event(), Some(LinkEvent::Disconnected)));
        assert!(!link.write(Stream::Video, header(1), &packet, t0, &mut buffer));
        // Heard from again (a consent check): media resumes.
        let back = t0 + ICE_DISCONNECTED_AFTER + Duration::from_secs(1);
        link.handle_datagram(from_browser(&check(false)), back, feed);
        assert!(matches!(link.poll_event(), Some(LinkEvent::Connected)));
        assert!(link.write(Stream::Video, header(2), &packet, back, &mut buffer));
        link.handle_timeout(back + ICE_DISCONNECTED_AFTER + ICE_FAILED_AFTER);
        let events: Vec<LinkEvent> = std::iter::from_fn(|| link.poll_event()).collect();
        assert!(
            matches!(events.last(), Some(LinkEvent::Failed)),
            "{events:?}"
        );
        assert_eq!(link.poll_timeout(), None, "a failed link has nothing to do");
    }

    #[test]
    fn strangers_and_garbage_change_nothing() {
        let t0 = Instant::now();
        let setup = DirectLinkSetup {
            local_ufrag: LOCAL_UFRAG.into(),
            local_password: LOCAL_PASSWORD.into(),
            remote_ufrag: "someone-else".into(),
            remote_fingerprint: fingerprint(&certificate()),
            certificate: certificate(),
        };
        let mut link = DirectLink::new(setup, VIDEO_SSRC, None, t0).unwrap();
        let feed = &test_feed();
        for datagram in [
            check(true),
            vec![],
            vec![0x16, 0xfe, 0xfd, 0, 0],
            vec![0x80, 200, 0, 1, 2, 3, 4, 5],
            vec![0xff; 40],
        ] {
            link.handle_datagram(from_browser(&datagram), t0, feed);
        }
        assert!(sent(&mut link).is_empty(), "nothing is answered");
        assert_eq!(link.destination(), None);
        assert!(link.poll_event().is_none());
        assert_eq!(link.poll_timeout(), None);
    }
}
