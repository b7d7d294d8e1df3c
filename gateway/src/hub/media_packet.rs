//! The unit the hub forwards: one RTP packet as it came from the camera's pipeline, shared (not
//! copied) by every viewer, with what the egress needs already parsed.

use std::time::Instant;

use bytes::Bytes;

use super::rtp_header::RtpHeader;

/// One RTP packet from a camera, shared by all its viewers (`Clone` is a reference count).
#[derive(Debug, Clone)]
pub struct MediaPacket {
    /// The whole RTP packet, as the pipeline produced it.
    pub data: Bytes,
    /// Its parsed header.
    pub header: RtpHeader,
    /// True when a decoder can start from this packet (SPS or IDR start).
    pub keyframe_start: bool,
    /// When the hub received it (for latency figures).
    pub arrived: Instant,
    /// The camera stream's restart count: it goes up when the stream comes back with a new SSRC
    /// (the camera's pipeline rebuilt after a failure), and sequence numbers and timestamps jump
    /// between epochs.
    pub epoch: u32,
}

impl MediaPacket {
    /// The RTP payload's bytes (after header, CSRCs and extension; padding excluded), borrowed.
    pub fn payload_slice(&self) -> &[u8] {
        &self.data[self.header.payload_offset..self.header.payload_offset + self.header.payload_len]
    }

    /// The RTP payload (after header, CSRCs and extension; padding excluded).
    pub fn payload(&self) -> Bytes {
        self.data
            .slice(self.header.payload_offset..self.header.payload_offset + self.header.payload_len)
    }
}
