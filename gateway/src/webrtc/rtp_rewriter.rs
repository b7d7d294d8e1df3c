//! Per-viewer RTP header rewriting: the SSRC and payload type the viewer negotiated, and sequence
//! numbers and timestamps that start at random values and stay continuous when the viewer skips
//! packets (joining, or resuming at a keyframe after its queue overflowed). `write_rtp` silently
//! drops packets whose SSRC or payload type do not match the negotiation, so this is not optional.

/// Rewrites one camera stream's RTP headers for one viewer.
#[derive(Debug, Clone)]
pub struct RtpRewriter {
    ssrc: u32,
    payload_type: u8,
    /// Added to the camera's sequence numbers; reset at each resume to stay gap-free.
    sequence_offset: u16,
    /// Added to the camera's timestamps; fixed for the session so media time keeps flowing.
    timestamp_offset: Option<u32>,
    first_timestamp: u32,
    last_sequence: Option<u16>,
    resuming: bool,
}

/// The rewritten header fields of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// The viewer's SSRC.
    pub ssrc: u32,
    /// The viewer's payload type.
    pub payload_type: u8,
    /// The viewer's sequence number.
    pub sequence: u16,
    /// The viewer's timestamp.
    pub timestamp: u32,
}

impl RtpRewriter {
    /// A rewriter for a viewer that negotiated `ssrc` and `payload_type`; `first_sequence` and
    /// `first_timestamp` are the (random) values its stream starts at.
    pub fn new(ssrc: u32, payload_type: u8, first_sequence: u16, first_timestamp: u32) -> Self {
        Self {
            ssrc,
            payload_type,
            sequence_offset: 0,
            timestamp_offset: None,
            first_timestamp,
            last_sequence: first_sequence.checked_sub(1).or(Some(u16::MAX)),
            resuming: true,
        }
    }

    /// The next packet forwarded follows the last one sent without a sequence gap, whatever the
    /// camera's sequence number is (packets skipped on purpose are not reported lost).
    pub fn resume(&mut self) {
        self.resuming = true;
    }

    /// Rewrites one packet's header fields.
    pub fn rewrite(&mut self, sequence: u16, timestamp: u32) -> Rewritten {
        if self.resuming {
            let next = self.last_sequence.map_or(0, |s| s.wrapping_add(1));
            self.sequence_offset = next.wrapping_sub(sequence);
            self.resuming = false;
        }
        let timestamp_offset = *self
            .timestamp_offset
            .get_or_insert(self.first_timestamp.wrapping_sub(timestamp));
        let out = sequence.wrapping_add(self.sequence_offset);
        self.last_sequence = Some(match self.last_sequence {
            // Keep the highest sequence sent (a reordered packet must not pull it back).
            Some(last) if out.wrapping_sub(last) > u16::MAX / 2 => last,
            _ => out,
        });
        Rewritten {
            ssrc: self.ssrc,
            payload_type: self.payload_type,
            sequence: out,
            timestamp: timestamp.wrapping_add(timestamp_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_chosen_values_and_keeps_spacing() {
        let mut r = RtpRewriter::new(1234, 102, 500, 9000);
        let a = r.rewrite(65530, 4_000_000_000);
        assert_eq!(
            (a.ssrc, a.payload_type, a.sequence, a.timestamp),
            (1234, 102, 500, 9000)
        );
        let b = r.rewrite(65535, 4_000_003_000);
        assert_eq!((b.sequence, b.timestamp), (505, 12000));
        let c = r.rewrite(2, 4_000_006_000); // camera sequence wrapped
        assert_eq!(c.sequence, 508);
    }

    #[test]
    fn resume_closes_the_sequence_gap_but_keeps_media_time() {
        let mut r = RtpRewriter::new(1, 96, 100, 0);
        r.rewrite(10, 0);
        r.rewrite(11, 0);
        r.resume();
        let after_skip = r.rewrite(60, 90_000);
        assert_eq!(after_skip.sequence, 102);
        assert_eq!(after_skip.timestamp, 90_000);
        assert_eq!(r.rewrite(61, 90_000).sequence, 103);
    }

    #[test]
    fn reordered_packets_do_not_rewind_the_resume_point() {
        let mut r = RtpRewriter::new(1, 96, 0, 0);
        r.rewrite(10, 0);
        r.rewrite(12, 0);
        r.rewrite(11, 0); // late
        r.resume();
        assert_eq!(r.rewrite(100, 0).sequence, 3);
    }

    #[test]
    fn sequence_zero_start_wraps_cleanly() {
        let mut r = RtpRewriter::new(1, 96, 0, 0);
        assert_eq!(r.rewrite(777, 0).sequence, 0);
    }
}
