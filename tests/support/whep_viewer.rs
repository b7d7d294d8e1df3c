//! An in-process WHEP viewer built on webrtc-rs's async API (its own sockets, its own ICE, DTLS and
//! SRTP): a real WebRTC peer, independent of the gateway's sans-IO driver. It reassembles H.264
//! frames from the RTP it receives so tests can count complete frames.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_HEVC, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

/// How many frames' timestamps a [`Reception`] keeps.
pub const KEPT_FRAME_TIMESTAMPS: usize = 300;

/// What the viewer has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Reception {
    /// RTP packets received.
    pub packets: u64,
    /// Complete frames (every packet from the first to the marker, no sequence gap).
    pub complete_frames: u64,
    /// Frames with a sequence gap inside.
    pub broken_frames: u64,
    /// Packets whose sequence number did not follow the previous one's.
    pub sequence_gaps: u64,
    /// Complete keyframes (SPS or IDR inside).
    pub keyframes: u64,
    /// Whether the first complete frame was a keyframe (SPS or IDR inside).
    pub first_frame_was_keyframe: Option<bool>,
    /// When the first complete frame arrived.
    pub first_frame_at: Option<Instant>,
    /// Connection state changes, in order.
    pub states: Vec<String>,
    /// When the first RTP packet arrived.
    pub first_packet_at: Option<Instant>,
    /// RTP timestamps of the first complete frames (up to [`KEPT_FRAME_TIMESTAMPS`]).
    pub frame_timestamps: Vec<u32>,
    /// The first byte of the video payloads seen (an H.264 or H.265 NAL or packet header):
    /// 0x60 (an H.265 aggregation packet) never starts an H.264 payload.
    pub video_payload_first_bytes: std::collections::BTreeSet<u8>,
    /// Audio RTP packets received (viewers that asked for audio).
    pub audio_packets: u64,
    /// Audio packets whose sequence number did not follow the previous one's.
    pub audio_sequence_gaps: u64,
    /// The audio codec's MIME type, as the track reports it.
    pub audio_codec: Option<String>,
    /// RTP timestamps of the first audio packets (up to [`KEPT_FRAME_TIMESTAMPS`]).
    pub audio_timestamps: Vec<u32>,
    /// When the last complete frame arrived.
    pub last_frame_at: Option<Instant>,
    /// The longest time between two complete frames since the first, or since
    /// [`WhepViewer::restart_gap_measurement`].
    pub longest_frame_gap: Duration,
    /// Distinct video sequence numbers received, unwrapped (the first is 0): retransmissions
    /// fill the holes losses leave.
    pub distinct_sequences: std::collections::BTreeSet<i64>,
    /// The last video sequence number received and its unwrapped value.
    unwrapped_last: Option<(u16, i64)>,
    last_audio_sequence: Option<u16>,
    current_timestamp: Option<u32>,
    current_has_keyframe: bool,
    current_broken: bool,
    last_sequence: Option<u16>,
}

impl Reception {
    /// Video sequence numbers missing between the first and `tail` before the highest received
    /// (the newest may still be on their way), and how many that span holds.
    pub fn missing_sequences(&self, tail: i64) -> (u64, u64) {
        let (Some(&first), Some(&last)) = (
            self.distinct_sequences.first(),
            self.distinct_sequences.last(),
        ) else {
            return (0, 0);
        };
        let end = last - tail;
        if end <= first {
            return (0, 0);
        }
        let span = (end - first + 1) as u64;
        let present = self.distinct_sequences.range(first..=end).count() as u64;
        (span - present, span)
    }

    fn on_audio_packet(&mut self, sequence: u16, timestamp: u32) {
        self.audio_packets += 1;
        let gap = self
            .last_audio_sequence
            .is_some_and(|last| sequence != last.wrapping_add(1));
        self.audio_sequence_gaps += u64::from(gap);
        self.last_audio_sequence = Some(sequence);
        if self.audio_timestamps.len() < KEPT_FRAME_TIMESTAMPS {
            self.audio_timestamps.push(timestamp);
        }
    }

    fn on_packet(&mut self, sequence: u16, timestamp: u32, marker: bool, payload: &[u8]) {
        self.packets += 1;
        if let Some(&first) = payload.first() {
            self.video_payload_first_bytes.insert(first);
        }
        self.first_packet_at.get_or_insert_with(Instant::now);
        let unwrapped = match self.unwrapped_last {
            Some((last, at)) => at + i64::from(sequence.wrapping_sub(last) as i16),
            None => 0,
        };
        self.unwrapped_last = Some((sequence, unwrapped));
        if self.distinct_sequences.len() < 100_000 {
            self.distinct_sequences.insert(unwrapped);
        }
        let gap = self
            .last_sequence
            .is_some_and(|last| sequence != last.wrapping_add(1));
        self.last_sequence = Some(sequence);
        self.sequence_gaps += u64::from(gap);
        if self.current_timestamp != Some(timestamp) {
            // A new frame starts; an unfinished previous one counts as broken.
            if self.current_timestamp.is_some() {
                self.broken_frames += 1;
            }
            self.current_timestamp = Some(timestamp);
            self.current_has_keyframe = false;
            self.current_broken = false;
        } else if gap {
            self.current_broken = true;
        }
        self.current_has_keyframe |= contains_keyframe_nal(payload);
        if marker {
            if self.current_broken {
                self.broken_frames += 1;
            } else {
                self.complete_frames += 1;
                self.keyframes += u64::from(self.current_has_keyframe);
                let now = Instant::now();
                if let Some(last) = self.last_frame_at {
                    self.longest_frame_gap = self.longest_frame_gap.max(now - last);
                }
                self.last_frame_at = Some(now);
                if self.frame_timestamps.len() < KEPT_FRAME_TIMESTAMPS {
                    self.frame_timestamps.push(timestamp);
                }
                if self.first_frame_was_keyframe.is_none() {
                    self.first_frame_was_keyframe = Some(self.current_has_keyframe);
                    self.first_frame_at = Some(Instant::now());
                }
            }
            self.current_timestamp = None;
        }
    }
}

fn contains_keyframe_nal(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 | 7 => true,
        24 => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if matches!(rest[2] & 0x1f, 5 | 7) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        28 => payload.get(1).is_some_and(|h| h & 0x1f == 5),
        _ => false,
    }
}

struct Handler {
    reception: Arc<Mutex<Reception>>,
    track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
    gathered: tokio::sync::mpsc::Sender<()>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.reception
            .lock()
            .unwrap()
            .states
            .push(state.to_string());
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await == RtpCodecKind::Audio {
            let reception = self.reception.clone();
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                        let codec = match reception.lock().unwrap().audio_codec {
                            Some(_) => None,
                            None => Some(packet.header.ssrc),
                        };
                        if let Some(ssrc) = codec {
                            let mime = track.codec(ssrc).await.map(|c| c.mime_type);
                            reception.lock().unwrap().audio_codec = mime;
                        }
                        reception.lock().unwrap().on_audio_packet(
                            packet.header.sequence_number,
                            packet.header.timestamp,
                        );
                    }
                }
            });
            return;
        }
        *self.track.lock().unwrap() = Some(track.clone());
        let reception = self.reception.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    reception.lock().unwrap().on_packet(
                        packet.header.sequence_number,
                        packet.header.timestamp,
                        packet.header.marker,
                        &packet.payload,
                    );
                }
            }
        });
    }
}

/// A WHEP viewer connected to a gateway.
pub struct WhepViewer {
    peer: Box<dyn PeerConnection>,
    /// The session URL (`Location`).
    pub session_url: String,
    reception: Arc<Mutex<Reception>>,
    track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
    /// When the offer was POSTed.
    pub posted_at: Instant,
    /// When the answer was applied.
    pub answered_at: Instant,
    /// The gateway's SDP answer.
    pub answer_sdp: String,
}

impl WhepViewer {
    /// Offers to `whep_url`, applies the answer, and returns at once (media arrives later).
    pub async fn connect(client: &reqwest::Client, base_url: &str, camera: &str) -> WhepViewer {
        Self::connect_with(client, base_url, camera, false, false).await
    }

    /// Like [`WhepViewer::connect`], offering H.265 only (a browser with an H.265 decoder).
    pub async fn connect_h265(
        client: &reqwest::Client,
        base_url: &str,
        camera: &str,
    ) -> WhepViewer {
        Self::connect_with(client, base_url, camera, false, true).await
    }

    /// Like [`WhepViewer::connect`], also asking for the camera's audio (offering Opus, PCMU and
    /// PCMA, as browsers do).
    pub async fn connect_with_audio(
        client: &reqwest::Client,
        base_url: &str,
        camera: &str,
    ) -> WhepViewer {
        Self::connect_with(client, base_url, camera, true, false).await
    }

    async fn connect_with(
        client: &reqwest::Client,
        base_url: &str,
        camera: &str,
        audio: bool,
        h265: bool,
    ) -> WhepViewer {
        let (mut viewer, offer_sdp) = Self::prepare(audio, h265).await;
        let posted_at = Instant::now();
        let response = client
            .post(format!("{base_url}/api/v1/cameras/{camera}/whep"))
            .header("Content-Type", "application/sdp")
            .body(offer_sdp)
            .send()
            .await
            .expect("WHEP POST");
        assert_eq!(response.status(), 201, "WHEP offer refused");
        let location = response
            .headers()
            .get("location")
            .expect("Location header")
            .to_str()
            .expect("ASCII Location")
            .to_owned();
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/sdp"[..])
        );
        let answer = response.text().await.expect("answer body");
        viewer.accept(answer).await;
        viewer.posted_at = posted_at;
        viewer.session_url = format!("{base_url}{location}");
        viewer
    }

    /// A viewer whose offer (returned) goes by another way than WHEP (a consultation's
    /// signalling): give it the answer with [`WhepViewer::accept`].
    pub async fn prepare(audio: bool, h265: bool) -> (WhepViewer, String) {
        let mut media_engine = MediaEngine::default();
        if audio {
            for (mime_type, clock_rate, channels, fmtp, payload_type) in [
                (MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", 111),
                (MIME_TYPE_PCMU, 8000, 1, "", 0),
                (MIME_TYPE_PCMA, 8000, 1, "", 8),
            ] {
                media_engine
                    .register_codec(
                        RTCRtpCodecParameters {
                            rtp_codec: RTCRtpCodec {
                                mime_type: mime_type.to_owned(),
                                clock_rate,
                                channels,
                                sdp_fmtp_line: fmtp.to_owned(),
                                rtcp_feedback: vec![],
                            },
                            payload_type,
                        },
                        RtpCodecKind::Audio,
                    )
                    .expect("audio codec");
            }
        }
        let (mime_type, fmtp) = if h265 {
            (
                MIME_TYPE_HEVC,
                "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST",
            )
        } else {
            (
                MIME_TYPE_H264,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            )
        };
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: mime_type.to_owned(),
                        clock_rate: 90000,
                        channels: 0,
                        sdp_fmtp_line: fmtp.to_owned(),
                        rtcp_feedback: vec![],
                    },
                    payload_type: 96,
                },
                RtpCodecKind::Video,
            )
            .expect("codec");
        let registry =
            register_default_interceptors(Registry::new(), &mut media_engine).expect("registry");
        let reception = Arc::new(Mutex::new(Reception::default()));
        let (gathered, mut gathered_rx) = tokio::sync::mpsc::channel(1);
        let track = Arc::new(Mutex::new(None));
        let handler = Arc::new(Handler {
            reception: reception.clone(),
            track: track.clone(),
            gathered,
        });
        let peer = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("viewer peer connection");
        peer.add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .expect("recvonly transceiver");
        if audio {
            peer.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .expect("recvonly audio transceiver");
        }
        let offer = peer.create_offer(None).await.expect("offer");
        peer.set_local_description(offer)
            .await
            .expect("local description");
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered_rx.recv()).await;
        let offer_sdp = peer.local_description().await.expect("offer sdp").sdp;
        let viewer = WhepViewer {
            peer: Box::new(peer),
            session_url: String::new(),
            reception,
            track,
            posted_at: Instant::now(),
            answered_at: Instant::now(),
            answer_sdp: String::new(),
        };
        (viewer, offer_sdp)
    }

    /// Applies the gateway's answer to the offer [`WhepViewer::prepare`] made.
    pub async fn accept(&mut self, answer: String) {
        self.answer_sdp = answer.clone();
        self.peer
            .set_remote_description(RTCSessionDescription::answer(answer).expect("answer SDP"))
            .await
            .expect("remote description");
        self.answered_at = Instant::now();
    }

    /// A snapshot of what was received.
    pub fn reception(&self) -> Reception {
        self.reception.lock().unwrap().clone()
    }

    /// Measures [`Reception::longest_frame_gap`] afresh from now on (the gap from the last frame
    /// before now to the next one counts).
    pub fn restart_gap_measurement(&self) {
        let mut reception = self.reception.lock().unwrap();
        reception.longest_frame_gap = Duration::ZERO;
    }

    /// Waits (bounded) until `complete_frames >= frames`; returns the snapshot either way.
    pub async fn wait_for_frames(&self, frames: u64, timeout: Duration) -> Reception {
        let deadline = Instant::now() + timeout;
        loop {
            let reception = self.reception();
            if reception.complete_frames >= frames || Instant::now() >= deadline {
                return reception;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends an RTCP Picture Loss Indication (a keyframe request) on the received track.
    pub async fn send_pli(&self) {
        let track = self
            .track
            .lock()
            .unwrap()
            .clone()
            .expect("a track was received");
        let media_ssrc = *track.ssrcs().await.first().expect("track SSRC");
        track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await
            .expect("PLI sent");
    }

    /// The state of the viewer's DTLS transport (`connected`, then `closed` once the gateway has
    /// sent its close_notify; the connection state stays `connected` by the W3C rules).
    pub async fn dtls_state(&self) -> Option<String> {
        for receiver in self.peer.get_receivers().await {
            if let Ok(Some(transport)) = receiver.transport().await
                && let Ok(state) = transport.state().await
            {
                return Some(state.to_string());
            }
        }
        None
    }

    /// Closes the viewer's peer connection (without telling the gateway).
    pub async fn close(self) {
        let _ = self.peer.close().await;
    }
}
