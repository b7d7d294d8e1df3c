//! What the media port receives: RTP headers (`RtpHeader::parse`), H.264 keyframe detection
//! (`h264::starts_keyframe`) on the payload, and the STUN USERNAME reader that routes a new address
//! to its session (`stun_username::local_ufrag`). Never panic; what they return stays in bounds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use straja_gateway::hub::h264::starts_keyframe;
use straja_gateway::hub::rtp_header::RtpHeader;
use straja_gateway::webrtc::stun_username::local_ufrag;

fuzz_target!(|data: &[u8]| {
    if let Some(header) = RtpHeader::parse(data) {
        let end = header.payload_offset.checked_add(header.payload_len);
        assert!(end.is_some_and(|end| end <= data.len()), "{header:?}");
        assert!(header.payload_offset >= 12);
        let _ = starts_keyframe(
            &data[header.payload_offset..header.payload_offset + header.payload_len],
        );
    }
    let _ = starts_keyframe(data);
    if let Some(ufrag) = local_ufrag(data) {
        assert!(!ufrag.contains(':'));
        // The ufrag is a slice of the datagram's USERNAME attribute, after the 20-byte header.
        let start = ufrag.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start >= 24 && start + ufrag.len() <= data.len());
    }
});
