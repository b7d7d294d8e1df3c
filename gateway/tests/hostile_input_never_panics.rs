//! Property tests: arbitrary and mutated input to every parser that faces the network or an
//! operator — SDP offers (through the whole negotiation), access tokens, the configuration, RTP
//! headers, STUN usernames and H.264 payloads. None may panic; a mutated token never verifies.
//!
//! Case counts are CI-sized; `PROPTEST_CASES=100000 cargo test -p straja-gateway --release --test
//! hostile_input_never_panics` runs a soak (the figures are in the closing notes of issue 5).

use std::time::Duration;

use proptest::prelude::*;
use straja_gateway::auth::{Role, TokenAuthority};
use straja_gateway::config::{Config, DEMO_CONFIG};
use straja_gateway::hub::h264::starts_keyframe;
use straja_gateway::hub::rtp_header::RtpHeader;
use straja_gateway::webrtc::stun_username::local_ufrag;
use straja_gateway::webrtc::whep_peer::{AudioCodec, VideoCodec, negotiate};

/// A recvonly video offer as Chromium sends it to a WHEP endpoint.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Hx9d\r\n\
a=ice-pwd:4QkqJ6KUzTbdrLYgj0y5hXcu\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 1E:5D:09:6F:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=rtcp-fb:102 ccm fir\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n";

fn cases(ci_default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci_default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One edit of a text: replace a line, drop a line, duplicate a line, or cut the text short.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, String),
    Drop(usize),
    Duplicate(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), ".{0,80}").prop_map(|(i, s)| Edit::Replace(i, s)),
            any::<usize>().prop_map(Edit::Drop),
            any::<usize>().prop_map(Edit::Duplicate),
            any::<usize>().prop_map(Edit::Truncate),
        ],
        1..4,
    )
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    for edit in edits {
        let n = lines.len().max(1);
        match edit {
            Edit::Replace(i, s) => {
                if !lines.is_empty() {
                    lines[i % n] = s.clone();
                }
            }
            Edit::Drop(i) => {
                if !lines.is_empty() {
                    lines.remove(i % n);
                }
            }
            Edit::Duplicate(i) => {
                if !lines.is_empty() {
                    let line = lines[i % n].clone();
                    lines.insert(i % n, line);
                }
            }
            Edit::Truncate(i) => {
                let joined = lines.join("\r\n");
                let cut = joined
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(i % joined.len().max(1));
                let cut = cut.unwrap_or(joined.len());
                lines = joined[..cut].split("\r\n").map(str::to_owned).collect();
            }
        }
    }
    lines.join("\r\n")
}

fn local() -> Vec<std::net::SocketAddr> {
    vec!["127.0.0.1:8189".parse().unwrap()]
}

#[test]
fn the_seed_offer_is_accepted() {
    let result = negotiate(
        OFFER,
        &local(),
        &[],
        VideoCodec::H264,
        Some(AudioCodec::Opus),
    )
    .expect("no setup failure");
    assert!(result.is_ok(), "{:?}", result.err());
}

/// Found by the `sdp_offer` fuzz target: a video section without a direction attribute (or
/// without `a=mid`) was answered with no media section at all — a session that could never connect.
#[test]
fn an_offer_whose_video_section_cannot_be_answered_is_refused() {
    for offer in [
        OFFER.replace("a=recvonly\r\n", ""),
        OFFER.replace("a=mid:0\r\n", ""),
    ] {
        match negotiate(
            &offer,
            &local(),
            &[],
            VideoCodec::H264,
            Some(AudioCodec::Opus),
        )
        .expect("no setup failure")
        {
            Ok(negotiated) => panic!("answered with:\n{}", negotiated.answer_sdp),
            Err(e) => assert!(e.to_string().contains("unacceptable"), "{e}"),
        }
    }
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn mutated_offers_are_answered_or_refused_never_panicked_on(edits in edits()) {
        let offer = apply(OFFER, &edits);
        let _ = negotiate(&offer, &local(), &[], VideoCodec::H264, Some(AudioCodec::Opus));
    }

    #[test]
    fn arbitrary_offers_are_refused(text in ".{0,400}") {
        let outcome = negotiate(&text, &local(), &[], VideoCodec::H264, Some(AudioCodec::Opus)).expect("no setup failure");
        prop_assert!(outcome.is_err());
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn mutated_tokens_never_verify(position in any::<usize>(), replacement in any::<char>()) {
        let authority = TokenAuthority::from_key(&[5u8; 32]).unwrap();
        let token = authority
            .issue("ana", Role::Security, &["gate".into()], Duration::from_secs(600))
            .unwrap();
        let mut chars: Vec<char> = token.chars().collect();
        let i = position % chars.len();
        chars[i] = replacement;
        let mutated: String = chars.into_iter().collect();
        if mutated != token {
            prop_assert!(authority.verify(&mutated).is_err(), "{mutated}");
        }
    }

    #[test]
    fn arbitrary_tokens_never_verify(text in ".{0,600}") {
        let authority = TokenAuthority::from_key(&[5u8; 32]).unwrap();
        prop_assert!(authority.verify(&text).is_err());
    }

    #[test]
    fn mutated_configs_parse_or_are_refused(edits in edits()) {
        let text = apply(&DEMO_CONFIG.replace('\n', "\r\n"), &edits).replace("\r\n", "\n");
        let _ = Config::parse(&text);
    }

    #[test]
    fn arbitrary_configs_never_panic(text in "(?s).{0,400}") {
        let _ = Config::parse(&text);
    }

    #[test]
    fn arbitrary_datagrams_never_panic_the_parsers(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        if let Some(header) = RtpHeader::parse(&bytes) {
            prop_assert!(header.payload_offset + header.payload_len <= bytes.len());
            let _ = starts_keyframe(&bytes[header.payload_offset..header.payload_offset + header.payload_len]);
        }
        let _ = local_ufrag(&bytes);
        let _ = starts_keyframe(&bytes);
    }

    #[test]
    fn arbitrary_login_input_never_panics(header in ".{0,300}", stored in ".{0,200}", origin in ".{0,100}") {
        use straja_gateway::auth::web_sessions::{cookie_value, COOKIE_NAME};
        let _ = cookie_value(&header, COOKIE_NAME);
        let _ = straja_gateway::auth::password::is_valid_hash(&stored);
        let _ = straja_gateway::auth::user_directory::validate_name(&header);
        let _ = straja_gateway::config::validate_origin(&origin);
    }
}
