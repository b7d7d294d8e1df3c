//! Builds a viewer's peer connection from a WHEP offer: ICE-lite on the shared media port, DTLS-SRTP
//! with AES-GCM preferred, one send-only H.264 track (and the camera's audio when the viewer takes
//! its codec), and the SDP answer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{NackResponderBuilder, Registry, SenderReportBuilder, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_HEVC, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateServerReflexiveConfig, RTCDtlsRole,
    RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};

use super::direct_link::DirectLinkSetup;
use super::dtls_srtp_client::parse_sha256_fingerprint;
use super::keyframe_feedback::KeyframeFeedback;
/// The camera audio codecs a viewer can be given (the pipelines' own type).
pub use straja_pipelines::AudioCodec;
/// The camera video codecs a viewer can be given (the pipelines' own type).
pub use straja_pipelines::VideoCodec;

/// Why an offer was refused: the client's mistake, reported as 400 with this text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The body is not an SDP offer at all.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// The SDP parses but cannot be answered.
    #[error("unacceptable SDP offer: {0}")]
    Unacceptable(String),
}

/// A failure on our side while answering (reported as 500).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the peer connection: {0}")]
pub struct PeerSetupError(String);

impl PeerSetupError {
    /// A setup failure with this explanation.
    pub fn new(reason: impl Into<String>) -> PeerSetupError {
        PeerSetupError(reason.into())
    }
}

/// What negotiation produced: the connection, its answer, and how to address its media.
pub struct Negotiated {
    /// The viewer's peer connection, ready to be driven.
    pub peer: RTCPeerConnection,
    /// The SDP answer for the viewer.
    pub answer_sdp: String,
    /// What the gateway's own link needs, when the offer suits it ([`offer_transport`]).
    pub direct: Option<DirectLinkSetup>,
    /// The local ICE username fragment (routes the viewer's datagrams to this session).
    pub ice_ufrag: String,
    /// The video sender.
    pub sender: RTCRtpSenderId,
    /// The SSRC the viewer expects.
    pub ssrc: u32,
    /// The H.264 payload type the viewer chose.
    pub payload_type: u8,
    /// The audio sender, when the camera has audio and the viewer takes its codec.
    pub audio: Option<NegotiatedAudio>,
}

/// A viewer's audio: the camera's codec, passed through.
pub struct NegotiatedAudio {
    /// The audio sender.
    pub sender: RTCRtpSenderId,
    /// The SSRC the viewer expects.
    pub ssrc: u32,
    /// The payload type the viewer chose for the codec.
    pub payload_type: u8,
    /// The codec.
    pub codec: AudioCodec,
}

/// Silence from a viewer after which its connection counts as disconnected (media paused).
pub const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(4);
/// Further silence after which it counts as failed (the session ends).
pub const ICE_FAILED_AFTER: Duration = Duration::from_secs(6);

/// Packets kept per viewer for retransmission on NACK: about 1 s of a 2 Mbit/s camera, far
/// longer than a retransmission is useful (a few round trips).
const NACK_HISTORY_PACKETS: u16 = 256;

/// Largest offer accepted (bytes); WHEP's HTTP layer enforces the same bound on the body.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// H.264 profiles offered to viewers (packetization-mode 1: the pipelines send FU-A/STAP-A).
pub(crate) const H264_PROFILES: [(&str, u8); 4] = [
    ("42e01f", 102),
    ("42001f", 104),
    ("4d001f", 106),
    ("64001f", 108),
];

pub(crate) fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub(crate) fn h264_codec(profile: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
        ),
        rtcp_feedback: vec![
            RTCPFeedback {
                typ: "ccm".into(),
                parameter: "fir".into(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "pli".into(),
            },
        ],
    }
}

pub(crate) fn audio_codec(codec: AudioCodec) -> (RTCRtpCodec, u8) {
    let (mime_type, payload_type, fmtp) = match codec {
        AudioCodec::Opus => (MIME_TYPE_OPUS, 111, "minptime=10;useinbandfec=1"),
        AudioCodec::Pcmu => (MIME_TYPE_PCMU, 0, ""),
        AudioCodec::Pcma => (MIME_TYPE_PCMA, 8, ""),
    };
    (
        RTCRtpCodec {
            mime_type: mime_type.to_owned(),
            clock_rate: codec.clock_rate(),
            channels: codec.channels(),
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: Vec::new(),
        },
        payload_type,
    )
}

/// Whether the offer has an audio section that receives `codec`.
fn offer_takes_audio(offer: &str, codec: AudioCodec) -> bool {
    let rtpmap = match codec {
        AudioCodec::Opus => " OPUS/48000",
        AudioCodec::Pcmu => " PCMU/8000",
        AudioCodec::Pcma => " PCMA/8000",
    };
    offer.split("\nm=").skip(1).any(|section| {
        section.starts_with("audio")
            && !section
                .lines()
                .any(|l| matches!(l.trim(), "a=sendonly" | "a=inactive"))
            && maps_codec(section, rtpmap)
    })
}

/// Whether SDP `text` has an `a=rtpmap` line of `rtpmap` (` NAME/RATE`, upper case).
fn maps_codec(text: &str, rtpmap: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("a=rtpmap:") && l.to_ascii_uppercase().contains(rtpmap))
}

/// The `a=rtpmap` encoding of a video codec, as [`maps_codec`] looks for it.
fn video_rtpmap(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => " H264/90000",
        VideoCodec::H265 => " H265/90000",
    }
}

/// The interceptors of a viewer's connection. A viewer only receives: of rtc's default set it
/// needs the NACK responder and the sender reports, plus [`KeyframeFeedback`]. The receive-side
/// ones (NACK generator, receiver reports, TWCC receiver) would only add a pass over every packet
/// sent (see benches/README.md, relay_load).
pub fn viewer_interceptors() -> Registry {
    Registry::new()
        .with(Slot::from(14_000), KeyframeFeedback::default())
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new()
                .with_size(NACK_HISTORY_PACKETS)
                .build(),
        )
        .with(Slot::SenderReport, SenderReportBuilder::new().build())
}

/// H.265 as offered to viewers of an H.265 camera (payload type, fmtp).
const H265_PAYLOAD_TYPE: u8 = 116;

fn h265_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_HEVC.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST".to_owned(),
        rtcp_feedback: h264_codec(H264_PROFILES[0].0).rtcp_feedback,
    }
}

/// Whether the offer's video section receives `codec` (an `a=rtpmap` of it).
pub fn offer_takes_video(offer: &str, codec: VideoCodec) -> bool {
    offer
        .split("\nm=")
        .filter(|section| section.starts_with("video"))
        .any(|section| maps_codec(section, video_rtpmap(codec)))
}

/// Refuses an offer that cannot be an SDP description at all: empty (`empty` says how), over
/// [`MAX_OFFER_BYTES`], or not starting with `v=0`. Viewers' and publishers' offers alike.
pub(crate) fn check_sdp_shape(offer: &str, empty: &str) -> Result<(), OfferError> {
    if offer.trim().is_empty() {
        return Err(OfferError::Malformed(empty.into()));
    }
    if offer.len() > MAX_OFFER_BYTES {
        return Err(OfferError::Malformed(format!(
            "offer is {} bytes; at most {MAX_OFFER_BYTES}",
            offer.len()
        )));
    }
    if !offer.trim_start().starts_with("v=0") {
        return Err(OfferError::Malformed(
            "an SDP description starts with \"v=0\"".into(),
        ));
    }
    Ok(())
}

/// Checks what can be checked cheaply before any WebRTC state is built.
fn precheck(offer: &str, video: VideoCodec) -> Result<(), OfferError> {
    check_sdp_shape(offer, "the body is empty")?;
    let has_video = offer.lines().any(|l| l.starts_with("m=video"));
    if !has_video {
        return Err(OfferError::Unacceptable(
            "the offer has no video media section to receive the camera on".into(),
        ));
    }
    if !maps_codec(offer, video_rtpmap(video)) {
        return Err(OfferError::Unacceptable(match video {
            VideoCodec::H264 => "the offer has no H.264 codec; this camera sends H.264".into(),
            VideoCodec::H265 => "the offer has no H.265 codec".into(),
        }));
    }
    let video_section = offer
        .split("m=")
        .find(|section| section.starts_with("video"))
        .unwrap_or_default();
    if video_section
        .lines()
        .any(|l| l.trim() == "a=sendonly" || l.trim() == "a=inactive")
    {
        return Err(OfferError::Unacceptable(
            "the offer's video section does not receive (it must be recvonly or sendrecv)".into(),
        ));
    }
    Ok(())
}

/// A peer connection on the shared media port as the gateway answers every offer: ICE-lite with
/// credentials `ice_ufrag` (datagrams are routed by it) and a fresh password, the gateway as DTLS
/// client, short ICE timeouts, no mDNS, SRTP with AES-GCM preferred.
pub(crate) fn build_peer(
    media_engine: MediaEngine,
    registry: Registry,
    ice_ufrag: &str,
    ice_password: &str,
    certificate: Option<RTCCertificate>,
    now: Instant,
) -> Result<RTCPeerConnection, PeerSetupError> {
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        // DTLS client: send ClientHello the moment ICE succeeds instead of waiting for the
        // peer's (webrtc-rs peers queue theirs for ~200 ms; Chromium's is quicker, still later).
        .with_answering_dtls_role(RTCDtlsRole::Client)
        // A browser sends RTCP every second or so: 4 s of silence is "disconnected" (media
        // paused), 6 s more is "failed" (session ended, everything freed), instead of 5 + 25 s.
        .with_ice_timeouts(Some(ICE_DISCONNECTED_AFTER), Some(ICE_FAILED_AFTER), None)
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_credentials(ice_ufrag.to_owned(), ice_password.to_owned())
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .build();
    let configuration = match certificate {
        Some(certificate) => RTCConfigurationBuilder::new()
            .with_certificates(vec![certificate])
            .build(),
        None => RTCConfigurationBuilder::new().build(),
    };
    RTCPeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(|e| PeerSetupError(e.to_string()))
}

/// Adds the media port's candidates to `peer` (remote description set), answers, and returns the
/// answer's SDP; an offer the connection cannot answer is the client's mistake.
pub(crate) fn answer(
    peer: &mut RTCPeerConnection,
    local_addrs: &[SocketAddr],
    public_ips: &[IpAddr],
) -> Result<Result<String, OfferError>, PeerSetupError> {
    let setup = |e: rtc::shared::error::Error| PeerSetupError(e.to_string());
    for candidate in candidates(local_addrs, public_ips).map_err(setup)? {
        peer.add_local_candidate(candidate).map_err(setup)?;
    }
    peer.add_local_candidate(RTCIceCandidateInit::default())
        .map_err(setup)?;
    let answer = match peer.create_answer(None) {
        Ok(answer) => answer,
        Err(e) => return Ok(Err(OfferError::Unacceptable(e.to_string()))),
    };
    if let Err(e) = peer.set_local_description(Instant::now(), answer) {
        return Ok(Err(OfferError::Unacceptable(e.to_string())));
    }
    peer.local_description()
        .map(|d| Ok(d.sdp))
        .ok_or_else(|| PeerSetupError("no local description after answering".into()))
}

/// Negotiates a viewer's session from its offer. `local_addrs` are the media sockets' addresses;
/// `public_ips` are announced (server-reflexive, based on the first socket) when behind 1:1 NAT.
///
/// `video` is the codec the viewer is sent (H.264, or an H.265 camera's own H.265 for a viewer
/// that offers it). `camera_audio` is the camera's audio codec, if it has audio: the viewer gets
/// it when its offer takes that codec (browsers take Opus and G.711), and video only otherwise.
pub fn negotiate(
    offer_sdp: &str,
    local_addrs: &[SocketAddr],
    public_ips: &[IpAddr],
    video: VideoCodec,
    camera_audio: Option<AudioCodec>,
) -> Result<Result<Negotiated, OfferError>, PeerSetupError> {
    if let Err(e) = precheck(offer_sdp, video) {
        return Ok(Err(e));
    }
    let offer = match RTCSessionDescription::offer(offer_sdp.to_owned()) {
        Ok(offer) => offer,
        Err(e) => return Ok(Err(OfferError::Malformed(e.to_string()))),
    };
    let setup = |e: rtc::shared::error::Error| PeerSetupError(e.to_string());

    let mut media_engine = MediaEngine::default();
    let video_codecs: Vec<(RTCRtpCodec, u8)> = match video {
        VideoCodec::H264 => H264_PROFILES
            .iter()
            .map(|(profile, payload_type)| (h264_codec(profile), *payload_type))
            .collect(),
        VideoCodec::H265 => vec![(h265_codec(), H265_PAYLOAD_TYPE)],
    };
    for (rtp_codec, payload_type) in video_codecs {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec,
                    payload_type,
                },
                RtpCodecKind::Video,
            )
            .map_err(setup)?;
    }
    let audio = camera_audio.filter(|codec| offer_takes_audio(offer_sdp, *codec));
    if let Some(codec) = audio {
        let (rtp_codec, payload_type) = audio_codec(codec);
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec,
                    payload_type,
                },
                RtpCodecKind::Audio,
            )
            .map_err(setup)?;
    }
    let registry = viewer_interceptors();

    let ice_ufrag = random_token(16);
    let ice_password = random_token(32);
    let now = Instant::now();
    // The gateway's own link needs the certificate's private key: made here rather than by rtc.
    let direct_transport = offer_transport(offer_sdp);
    let certificate = match &direct_transport {
        Some(_) => Some(dtls_certificate()?),
        None => None,
    };
    let mut peer = build_peer(
        media_engine,
        registry,
        &ice_ufrag,
        &ice_password,
        certificate.clone(),
        now,
    )?;

    if let Err(e) = peer.set_remote_description(now, offer) {
        return Ok(Err(OfferError::Unacceptable(e.to_string())));
    }

    let ssrc = rand::random::<u32>();
    let stream_id = random_token(12);
    let track = MediaStreamTrack::new(
        stream_id.clone(),
        format!("{stream_id}-video"),
        "camera".into(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: match video {
                VideoCodec::H264 => h264_codec(H264_PROFILES[0].0),
                VideoCodec::H265 => h265_codec(),
            },
            ..Default::default()
        }],
    );
    let sender = match peer.add_track(track) {
        Ok(sender) => sender,
        Err(e) => return Ok(Err(OfferError::Unacceptable(e.to_string()))),
    };
    let audio_sender = match audio {
        Some(codec) => {
            let audio_ssrc = rand::random::<u32>();
            let track = MediaStreamTrack::new(
                stream_id.clone(),
                format!("{stream_id}-audio"),
                "camera-audio".into(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(audio_ssrc),
                        ..Default::default()
                    },
                    codec: audio_codec(codec).0,
                    ..Default::default()
                }],
            );
            match peer.add_track(track) {
                Ok(sender) => Some((sender, audio_ssrc, codec)),
                Err(e) => {
                    tracing::debug!(error = %e, "the viewer's audio could not be added; video only");
                    None
                }
            }
        }
        None => None,
    };

    let answer_sdp = match answer(&mut peer, local_addrs, public_ips)? {
        Ok(sdp) => sdp,
        Err(e) => return Ok(Err(e)),
    };
    // rtc leaves a section it cannot match (no `a=mid`, no direction attribute) out of the answer
    // without an error: such an answer has no video (nor ICE credentials) and could never connect.
    if !answer_sdp
        .lines()
        .any(|l| l.starts_with("m=video ") && !l.starts_with("m=video 0 "))
    {
        return Ok(Err(OfferError::Unacceptable(
            "the offer's video section cannot be answered \
             (it needs a=mid and a direction: a=recvonly or a=sendrecv)"
                .into(),
        )));
    }

    let video_mime = match video {
        VideoCodec::H264 => MIME_TYPE_H264,
        VideoCodec::H265 => MIME_TYPE_HEVC,
    };
    let negotiated_video = peer.rtp_sender(sender).and_then(|mut s| {
        s.get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(video_mime))
            .map(|c| c.payload_type)
    });
    let Some(payload_type) = negotiated_video else {
        return Ok(Err(OfferError::Unacceptable(match video {
            VideoCodec::H264 => "no H.264 profile in the offer matches one this gateway sends \
                                 (packetization-mode=1)"
                .into(),
            VideoCodec::H265 => "the offer's H.265 does not match what this gateway sends".into(),
        })));
    };

    let audio = audio_sender.and_then(|(sender, ssrc, codec)| {
        let mime = audio_codec(codec).0.mime_type;
        let payload_type = peer.rtp_sender(sender).and_then(|mut s| {
            s.get_parameters()
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&mime))
                .map(|c| c.payload_type)
        })?;
        Some(NegotiatedAudio {
            sender,
            ssrc,
            payload_type,
            codec,
        })
    });

    let direct = direct_transport.zip(certificate).map(
        |((remote_ufrag, remote_fingerprint), certificate)| DirectLinkSetup {
            local_ufrag: ice_ufrag.clone(),
            local_password: ice_password,
            remote_ufrag,
            remote_fingerprint,
            certificate: certificate.dtls_certificate,
        },
    );
    Ok(Ok(Negotiated {
        peer,
        answer_sdp,
        direct,
        ice_ufrag,
        sender,
        ssrc,
        payload_type,
        audio,
    }))
}

/// The viewer's ICE username fragment and sha-256 certificate fingerprint, when its offer suits
/// the gateway's own link: one transport (every section the same ufrag and fingerprint, as with
/// BUNDLE), a sha-256 fingerprint, and a DTLS role the gateway can answer as client
/// (`a=setup:actpass` or `passive`). Otherwise `rtc` runs the connection.
pub fn offer_transport(offer: &str) -> Option<(String, String)> {
    let values = |prefix: &str| {
        offer
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let single = |found: Vec<&str>| {
        let first = *found.first()?;
        found.iter().all(|v| *v == first).then(|| first.to_owned())
    };
    if values("a=setup:").contains(&"active") {
        return None;
    }
    let ufrag = single(values("a=ice-ufrag:"))?;
    let fingerprint = single(values("a=fingerprint:"))?;
    parse_sha256_fingerprint(&fingerprint)?;
    Some((ufrag, fingerprint))
}

/// A fresh self-signed ECDSA P-256 certificate for one viewer's DTLS (its fingerprint goes in the
/// answer; one per viewer, as `rtc` makes them, so that sessions cannot be linked by it).
fn dtls_certificate() -> Result<RTCCertificate, PeerSetupError> {
    let provider = rtc::crypto::default_provider().map_err(|e| PeerSetupError(e.to_string()))?;
    let certificate = rtc::dtls::crypto::Certificate::generate_self_signed(
        vec!["straja".to_owned()],
        provider.crypto(),
    )
    .map_err(|e| PeerSetupError(e.to_string()))?;
    Ok(RTCCertificate::from_existing(
        certificate,
        std::time::SystemTime::now() + Duration::from_secs(30 * 24 * 3600),
    ))
}

pub(crate) fn candidates(
    local_addrs: &[SocketAddr],
    public_ips: &[IpAddr],
) -> Result<Vec<RTCIceCandidateInit>, rtc::shared::error::Error> {
    let mut out = Vec::new();
    for addr in local_addrs {
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        out.push(RTCIceCandidate::from(&host).to_json()?);
    }
    if let Some(base) = local_addrs.first() {
        for ip in public_ips {
            let reflexive = CandidateServerReflexiveConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: ip.to_string(),
                    port: base.port(),
                    component: 1,
                    ..Default::default()
                },
                rel_addr: base.ip().to_string(),
                rel_port: base.port(),
                url: None,
            }
            .new_candidate_server_reflexive()?;
            out.push(RTCIceCandidate::from(&reflexive).to_json()?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_sdp_bodies_are_malformed() {
        for body in ["", "   \r\n", "hello", "{\"sdp\":1}"] {
            match precheck(body, VideoCodec::H264) {
                Err(OfferError::Malformed(_)) => {}
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn offers_without_h264_video_are_unacceptable() {
        let audio_only = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(matches!(
            precheck(audio_only, VideoCodec::H264),
            Err(OfferError::Unacceptable(_))
        ));
        let vp8_only = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        let err = precheck(vp8_only, VideoCodec::H264)
            .unwrap_err()
            .to_string();
        assert!(err.contains("H.264"), "{err}");
    }

    #[test]
    fn garbage_after_v0_is_rejected_not_panicked_on() {
        let local = ["127.0.0.1:8189".parse().unwrap()];
        for body in [
            "v=0\r\nm=video\r\na=rtpmap:96 H264/90000\r\n",
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\nzzz\r\n",
        ] {
            let result =
                negotiate(body, &local, &[], VideoCodec::H264, None).expect("no setup failure");
            assert!(result.is_err(), "{body:?} was accepted");
        }
    }

    #[test]
    fn the_own_stack_takes_bundled_offers_with_a_sha_256_fingerprint_it_can_answer_as_client() {
        let fingerprint = format!("sha-256 {}", vec!["AB"; 32].join(":"));
        let offer = |setup: &str, ufrag2: &str, fingerprint2: &str| {
            format!(
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\n\
                 a=fingerprint:{fingerprint}\r\na=setup:{setup}\r\n\
                 m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:{ufrag2}\r\n\
                 a=fingerprint:{fingerprint2}\r\na=setup:{setup}\r\n"
            )
        };
        assert_eq!(
            offer_transport(&offer("actpass", "abcd", &fingerprint)),
            Some(("abcd".to_owned(), fingerprint.clone()))
        );
        assert!(offer_transport(&offer("passive", "abcd", &fingerprint)).is_some());
        // The browser as DTLS client, two transports, or a fingerprint we cannot check: rtc's.
        assert_eq!(
            offer_transport(&offer("active", "abcd", &fingerprint)),
            None
        );
        assert_eq!(
            offer_transport(&offer("actpass", "efgh", &fingerprint)),
            None
        );
        let other = format!("sha-256 {}", vec!["CD"; 32].join(":"));
        assert_eq!(offer_transport(&offer("actpass", "abcd", &other)), None);
        let sha1 = format!("sha-1 {}", vec!["AB"; 20].join(":"));
        assert_eq!(
            offer_transport(&offer("actpass", "abcd", &sha1).replace(&fingerprint, &sha1)),
            None
        );
        assert_eq!(
            offer_transport("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"),
            None
        );
    }
}
