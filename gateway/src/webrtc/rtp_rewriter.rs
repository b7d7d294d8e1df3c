//! Per-viewer RTP header rewriting: the SSRC and payload type the viewer negotiated, and sequence
//! numbers and timestamps that start at random values and stay continuous when the viewer skips
//! packets (joining, or resuming at a keyframe after its queue overflowed). `write_rtp` silently
//! drops packets whose SSRC or payload type do not match the negotiation, so this is not optional.
//! When the camera's stream restarts (new sequence and timestamp bases), [`RtpRewriter::rebase`]
//! keeps both continuous for the viewer.

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
    /// The viewer's timestamp of the last packet rewritten.
    last_timestamp: Option<u32>,
    resuming: bool,
    /// Set by [`RtpRewriter::rebase`]: the next packet's timestamp is this many ticks after the
    /// last one, and the offset is recomputed from it.
    rebase_after: Option<u32>,
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
            last_timestamp: None,
            resuming: true,
            rebase_after: None,
        }
    }

    /// The camera's stream restarted with new sequence and timestamp bases: the next packet
    /// follows the last one sent without a sequence gap, and its timestamp comes `elapsed_ticks`
    /// (the wall time between them, in the clock rate) after the last one's, so media time keeps
    /// flowing at the pace of real time.
    pub fn rebase(&mut self, elapsed_ticks: u32) {
        self.resuming = true;
        if self.last_timestamp.is_some() {
            self.rebase_after = Some(elapsed_ticks.max(1));
        }
    }

    /// The next packet forwarded follows the last one sent without a sequence gap, whatever the
    /// camera's sequence number is (packets skipped on purpose are not reported lost).
    pub fn resume(&mut self) {
        self.resuming = true;
    }

    /// The viewer's SSRC for the stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Rewrites one packet's header fields.
    pub fn rewrite(&mut self, sequence: u16, timestamp: u32) -> Rewritten {
        if self.resuming {
            let next = self.last_sequence.map_or(0, |s| s.wrapping_add(1));
            self.sequence_offset = next.wrapping_sub(sequence);
            self.resuming = false;
        }
        if let (Some(after), Some(last)) = (self.rebase_after.take(), self.last_timestamp) {
            self.timestamp_offset = Some(last.wrapping_add(after).wrapping_sub(timestamp));
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
        let timestamp = timestamp.wrapping_add(timestamp_offset);
        self.last_timestamp = Some(match self.last_timestamp {
            // Keep the newest timestamp sent, as for sequence numbers.
            Some(last) if timestamp.wrapping_sub(last) > u32::MAX / 2 => last,
            _ => timestamp,
        });
        Rewritten {
            ssrc: self.ssrc,
            payload_type: self.payload_type,
            sequence: out,
            timestamp,
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
    fn rebase_keeps_sequence_and_media_time_continuous_across_a_restart() {
        let mut r = RtpRewriter::new(1, 96, 100, 50_000);
        r.rewrite(10, 1_000_000);
        let before = r.rewrite(11, 1_003_000);
        r.rebase(180_000); // 2 s without packets
        let after = r.rewrite(40_000, 7); // new random bases
        assert_eq!(after.sequence, before.sequence.wrapping_add(1));
        assert_eq!(after.timestamp, before.timestamp.wrapping_add(180_000));
        let next = r.rewrite(40_001, 3007);
        assert_eq!(next.sequence, after.sequence.wrapping_add(1));
        assert_eq!(next.timestamp, after.timestamp.wrapping_add(3000));
    }

    #[test]
    fn rebase_before_anything_was_sent_starts_normally() {
        let mut r = RtpRewriter::new(1, 96, 100, 50_000);
        r.rebase(90_000);
        let first = r.rewrite(5, 123);
        assert_eq!((first.sequence, first.timestamp), (100, 50_000));
    }

    #[test]
    fn sequence_zero_start_wraps_cleanly() {
        let mut r = RtpRewriter::new(1, 96, 0, 0);
        assert_eq!(r.rewrite(777, 0).sequence, 0);
    }
}
