//! A WHEP offer through the whole negotiation (`whep_peer::negotiate`): precheck, SDP parsing,
//! peer-connection set-up and the answer. It must answer or refuse, never panic or hang.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use straja_gateway::webrtc::whep_peer::negotiate;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let local = [SocketAddr::from(([127, 0, 0, 1], 8189))];
    // Half the inputs also announce a public address (the 1:1 NAT path adds a srflx candidate).
    let public: &[IpAddr] = if data.len().is_multiple_of(2) {
        &[]
    } else {
        &[IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10))]
    };
    if let Ok(Ok(negotiated)) = negotiate(
        offer,
        &local,
        public,
        straja_gateway::webrtc::whep_peer::VideoCodec::H264,
        Some(straja_gateway::webrtc::whep_peer::AudioCodec::Opus),
    ) {
        assert!(!negotiated.answer_sdp.is_empty());
        assert!(
            negotiated.answer_sdp.contains(&negotiated.ice_ufrag),
            "the answer lacks the ICE ufrag {}:\n{}",
            negotiated.ice_ufrag,
            negotiated.answer_sdp
        );
    }
});
