//! A borrowed, allocation-free view of an RTP packet's fixed header (RFC 3550 §5.1): just what the
//! hub needs to route and classify packets.

/// The fields of an RTP header the hub uses, and where the payload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload in the packet (after CSRCs and the header extension).
    pub payload_offset: usize,
    /// Length of the payload, padding excluded.
    pub payload_len: usize,
}

impl RtpHeader {
    /// Parses the header; `None` for anything that is not a well-formed RTP version 2 packet.
    pub fn parse(packet: &[u8]) -> Option<RtpHeader> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        let has_padding = packet[0] & 0x20 != 0;
        let has_extension = packet[0] & 0x10 != 0;
        let csrc_count = usize::from(packet[0] & 0x0f);
        let mut offset = 12 + 4 * csrc_count;
        if has_extension {
            let words = packet.get(offset + 2..offset + 4)?;
            offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = packet.len();
        if has_padding {
            let padding = usize::from(*packet.last()?);
            end = end.checked_sub(padding)?;
        }
        if offset > end {
            return None;
        }
        Some(RtpHeader {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            payload_offset: offset,
            payload_len: end - offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, extra: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            first,
            0x80 | 96,
            0x12,
            0x34,
            0,
            0,
            0x01,
            0x00,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        p.extend_from_slice(extra);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_fixed_header_fields() {
        let p = packet(0x80, &[], &[0x65, 1, 2]);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 96);
        assert_eq!(h.sequence, 0x1234);
        assert_eq!(h.timestamp, 256);
        assert_eq!(h.ssrc, 0xdeadbeef);
        assert_eq!((h.payload_offset, h.payload_len), (12, 3));
    }

    #[test]
    fn skips_csrcs_and_extension_and_padding() {
        // one CSRC, an extension of one word, then payload with 2 bytes of padding
        let extra = [0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4];
        let mut p = packet(0x80 | 0x20 | 0x10 | 1, &extra, &[0x41, 9]);
        p.extend_from_slice(&[0, 2]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.payload_offset, 24);
        assert_eq!(h.payload_len, 2);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(RtpHeader::parse(&[]).is_none());
        assert!(RtpHeader::parse(&[0x80; 11]).is_none());
        assert!(RtpHeader::parse(&packet(0x40, &[], &[1])).is_none()); // version 1
        assert!(RtpHeader::parse(&packet(0x80 | 0x0f, &[], &[1])).is_none()); // CSRCs missing
        assert!(RtpHeader::parse(&packet(0x80 | 0x10, &[0, 0], &[])).is_none()); // short extension
        let mut padded = packet(0x80 | 0x20, &[], &[]);
        padded.push(200); // more padding than packet
        assert!(RtpHeader::parse(&padded).is_none());
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x80) as u8).collect();
            let _ = RtpHeader::parse(&junk);
        }
    }
}
