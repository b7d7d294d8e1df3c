//! A consultation participant as the gateway sees it, without a browser: a webrtc-rs peer
//! connection that publishes real H.264 video (a GStreamer-encoded 320×240 clip at 30 fps, looped,
//! a keyframe every second) and Opus audio (silence frames every 20 ms), sendonly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::shared::marshal::Unmarshal;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
};

struct Gathering(tokio::sync::mpsc::Sender<()>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathering {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.try_send(());
        }
    }
}

/// A publishing participant.
pub struct RtpPublisher {
    peer: Box<dyn PeerConnection>,
    sender: Option<tokio::task::JoinHandle<()>>,
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    /// The SSRCs the tracks were announced with (each packet is sent with its track's).
    ssrcs: (u32, u32),
}

fn track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "publisher".to_owned(),
        format!("publisher-{kind}"),
        format!("publisher-{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

impl RtpPublisher {
    /// A publisher and its offer (sendonly H.264 and Opus).
    pub async fn prepare() -> (RtpPublisher, String) {
        let h264 = RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .to_owned(),
            rtcp_feedback: vec![],
        };
        let opus = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        };
        let mut media_engine = MediaEngine::default();
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: h264.clone(),
                    payload_type: 102,
                },
                RtpCodecKind::Video,
            )
            .expect("H.264");
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus.clone(),
                    payload_type: 111,
                },
                RtpCodecKind::Audio,
            )
            .expect("Opus");
        let registry =
            register_default_interceptors(Registry::new(), &mut media_engine).expect("registry");
        let (gathered, mut gathered_rx) = tokio::sync::mpsc::channel(1);
        let peer = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Gathering(gathered)))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("publisher peer connection");
        let ssrcs = (rand::random(), rand::random());
        let video = track(RtpCodecKind::Video, h264, ssrcs.0);
        let audio = track(RtpCodecKind::Audio, opus, ssrcs.1);
        peer.add_track(video.clone() as Arc<dyn TrackLocal>)
            .await
            .expect("video track");
        peer.add_track(audio.clone() as Arc<dyn TrackLocal>)
            .await
            .expect("audio track");
        let offer = peer.create_offer(None).await.expect("offer");
        peer.set_local_description(offer)
            .await
            .expect("local description");
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered_rx.recv()).await;
        let offer_sdp = peer.local_description().await.expect("offer sdp").sdp;
        (
            RtpPublisher {
                peer: Box::new(peer),
                sender: None,
                video,
                audio,
                ssrcs,
            },
            offer_sdp,
        )
    }

    /// Applies the answer and starts sending: the clip's packets at their media times, looped
    /// (timestamps and sequence numbers carried on), and an Opus silence frame every 20 ms.
    pub async fn accept_and_send(&mut self, answer: String) {
        self.peer
            .set_remote_description(RTCSessionDescription::answer(answer).expect("answer SDP"))
            .await
            .expect("remote description");
        let clip = straja_pipelines::h264_rtp_clip(60, 30).expect("an H.264 clip");
        let (video, audio) = (self.video.clone(), self.audio.clone());
        let (video_ssrc, audio_ssrc) = self.ssrcs;
        self.sender = Some(tokio::spawn(async move {
            let started = Instant::now();
            let clip_length = Duration::from_secs(2);
            let mut audio_sequence = 0u16;
            let mut next_audio = Duration::ZERO;
            // Bounded: a test never runs for more than a few minutes.
            for lap in 0u32..150 {
                for (bytes, at) in &clip {
                    let due = clip_length * lap + *at;
                    while next_audio <= due {
                        let packet = rtc::rtp::Packet {
                            header: rtc::rtp::header::Header {
                                version: 2,
                                payload_type: 111,
                                ssrc: audio_ssrc,
                                sequence_number: audio_sequence,
                                timestamp: (next_audio.as_micros() * 48 / 1000) as u32,
                                ..Default::default()
                            },
                            payload: bytes::Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                        };
                        audio_sequence = audio_sequence.wrapping_add(1);
                        next_audio += Duration::from_millis(20);
                        let _ = audio.write_rtp(packet).await;
                    }
                    let wait = (started + due).saturating_duration_since(Instant::now());
                    tokio::time::sleep(wait).await;
                    let mut data = bytes::BytesMut::from(&bytes[..]);
                    let Ok(mut packet) = rtc::rtp::Packet::unmarshal(&mut data) else {
                        continue;
                    };
                    packet.header.ssrc = video_ssrc;
                    packet.header.payload_type = 102;
                    let per_lap = clip.len() as u32;
                    packet.header.sequence_number = packet
                        .header
                        .sequence_number
                        .wrapping_add((lap * per_lap) as u16);
                    packet.header.timestamp = packet.header.timestamp.wrapping_add(lap * 180_000);
                    if video.write_rtp(packet).await.is_err() {
                        return;
                    }
                }
            }
        }));
    }

    /// Stops sending and closes the connection.
    pub async fn close(mut self) {
        if let Some(sender) = self.sender.take() {
            sender.abort();
        }
        let _ = self.peer.close().await;
    }
}

impl Drop for RtpPublisher {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            sender.abort();
        }
    }
}
