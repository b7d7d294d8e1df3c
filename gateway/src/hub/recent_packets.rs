//! The last packets of a camera's video, by sequence number: what viewers' NACKs are answered
//! from. One ring per camera, shared by every viewer (a viewer's own history keeps only the
//! rewritten header of what it was sent, not a reference to the payload per copy).

use std::sync::Mutex;

use super::media_packet::MediaPacket;

/// Packets kept (≈ 2 s of a 2 Mbit/s camera, far longer than a retransmission is useful).
pub const RECENT_PACKETS: usize = 512;

/// A camera's last [`RECENT_PACKETS`] packets.
pub struct RecentPackets {
    slots: Mutex<Vec<Option<MediaPacket>>>,
}

impl Default for RecentPackets {
    fn default() -> Self {
        RecentPackets {
            slots: Mutex::new(vec![None; RECENT_PACKETS]),
        }
    }
}

impl RecentPackets {
    /// Keeps `packet` (in place of the one [`RECENT_PACKETS`] sequence numbers older).
    pub fn push(&self, packet: &MediaPacket) {
        let slot = usize::from(packet.header.sequence) % RECENT_PACKETS;
        let old = self.lock()[slot].replace(packet.clone());
        // The old packet's buffer is released outside the lock.
        drop(old);
    }

    /// The packet of camera stream `epoch` with `sequence`, if still kept.
    pub fn get(&self, sequence: u16, epoch: u32) -> Option<MediaPacket> {
        self.lock()[usize::from(sequence) % RECENT_PACKETS]
            .as_ref()
            .filter(|p| p.header.sequence == sequence && p.epoch == epoch)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<MediaPacket>>> {
        // Each update is one slot replaced: consistent even if a holder panicked.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::hub::rtp_header::RtpHeader;

    fn packet(sequence: u16, epoch: u32) -> MediaPacket {
        let mut data = vec![0x80, 96];
        data.extend_from_slice(&sequence.to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 9, 0xab]);
        MediaPacket {
            header: RtpHeader::parse(&data).unwrap(),
            data: Bytes::from(data),
            keyframe_start: false,
            arrived: Instant::now(),
            epoch,
        }
    }

    #[test]
    fn keeps_the_last_packets_of_the_current_stream_only() {
        let recent = RecentPackets::default();
        for sequence in 65_000u16..=65_535 {
            recent.push(&packet(sequence, 0));
        }
        for sequence in 0u16..600 {
            recent.push(&packet(sequence, 0));
        }
        // 1136 pushed: the last 512 are 88..=599.
        assert!(recent.get(87, 0).is_none());
        assert_eq!(recent.get(88, 0).unwrap().header.sequence, 88);
        assert_eq!(recent.get(599, 0).unwrap().header.sequence, 599);
        assert!(recent.get(65_535, 0).is_none());
        // The camera's stream restarted: its old sequence numbers are not the new ones.
        assert!(recent.get(599, 1).is_none());
    }
}
