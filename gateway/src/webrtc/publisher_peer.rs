//! Builds a consultation participant's publishing peer connection from its offer: the same
//! ICE-lite media port and DTLS-SRTP as a viewer's, receiving the participant's H.264 video and
//! Opus audio (with in-band FEC), and asking the browser for retransmissions (NACK) and keyframes
//! (PLI) as the relay needs them.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Registry};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};

use super::whep_peer::{
    AudioCodec, H264_PROFILES, OfferError, PeerSetupError, answer, audio_codec, build_peer,
    check_sdp_shape, h264_codec, random_token,
};

/// A publisher's negotiated connection.
pub struct NegotiatedPublisher {
    /// The connection, its remote and local descriptions set.
    pub peer: RTCPeerConnection,
    /// The answer to send back.
    pub answer_sdp: String,
    /// Our ICE username fragment (datagrams are routed by it).
    pub ice_ufrag: String,
}

fn precheck(offer: &str) -> Result<(), OfferError> {
    check_sdp_shape(offer, "the offer is empty")?;
    let sends = |kind: &str| {
        offer
            .split("\nm=")
            .filter(|section| section.starts_with(kind))
            .any(|section| {
                !section
                    .lines()
                    .any(|l| matches!(l.trim(), "a=recvonly" | "a=inactive"))
            })
    };
    if !sends("video") && !sends("audio") {
        return Err(OfferError::Unacceptable(
            "a publish offer sends audio or video (a=sendonly or a=sendrecv)".into(),
        ));
    }
    if sends("video") && !offer.contains(" H264/90000") {
        return Err(OfferError::Unacceptable(
            "the offer's video has no H.264; consultations relay H.264 video".into(),
        ));
    }
    Ok(())
}

/// Negotiates a publisher's connection from its offer (`local_addrs`, `public_ips` as for a
/// viewer).
pub fn negotiate_publisher(
    offer_sdp: &str,
    local_addrs: &[SocketAddr],
    public_ips: &[IpAddr],
) -> Result<Result<NegotiatedPublisher, OfferError>, PeerSetupError> {
    if let Err(e) = precheck(offer_sdp) {
        return Ok(Err(e));
    }
    let offer = match RTCSessionDescription::offer(offer_sdp.to_owned()) {
        Ok(offer) => offer,
        Err(e) => return Ok(Err(OfferError::Malformed(e.to_string()))),
    };
    let setup = |e: rtc::shared::error::Error| PeerSetupError::new(e.to_string());
    let mut media_engine = MediaEngine::default();
    for (profile, payload_type) in H264_PROFILES {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: h264_codec(profile),
                    payload_type,
                },
                RtpCodecKind::Video,
            )
            .map_err(setup)?;
    }
    let (rtp_codec, payload_type) = audio_codec(AudioCodec::Opus);
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            },
            RtpCodecKind::Audio,
        )
        .map_err(setup)?;
    // Receive side: NACKs for what was lost on the way in, receiver reports for the browser's
    // own rate control.
    let registry = Registry::new()
        .with(
            rtc::interceptor::Slot::NackGenerator,
            NackGeneratorBuilder::new().build(),
        )
        .with(
            rtc::interceptor::Slot::ReceiverReport,
            ReceiverReportBuilder::new().build(),
        );
    let ice_ufrag = random_token(16);
    let now = Instant::now();
    let mut peer = build_peer(
        media_engine,
        registry,
        &ice_ufrag,
        &random_token(32),
        None,
        now,
    )?;
    if let Err(e) = peer.set_remote_description(now, offer) {
        return Ok(Err(OfferError::Unacceptable(e.to_string())));
    }
    let answer_sdp = match answer(&mut peer, local_addrs, public_ips)? {
        Ok(sdp) => sdp,
        Err(e) => return Ok(Err(e)),
    };
    if !answer_sdp
        .lines()
        .any(|l| (l.starts_with("m=video ") || l.starts_with("m=audio ")) && !l.contains(" 0 "))
    {
        return Ok(Err(OfferError::Unacceptable(
            "no media section of the offer could be answered (each needs a=mid, a direction \
             and H.264 or Opus)"
                .into(),
        )));
    }
    Ok(Ok(NegotiatedPublisher {
        peer,
        answer_sdp,
        ice_ufrag,
    }))
}
