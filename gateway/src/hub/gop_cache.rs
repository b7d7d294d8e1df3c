//! A camera's current group of pictures (GOP): every packet from the last keyframe on, so that a
//! new viewer can start decoding at once instead of waiting up to a whole GOP for the camera's next
//! keyframe (most IP cameras cannot be asked for one).
//!
//! The cache holds only what a decoder can use from its first packet on: it starts at a packet that
//! begins a keyframe, takes the packets that follow in sequence, and is emptied (until the next
//! keyframe) when a packet is missing, when the GOP outgrows its byte bound, or when the camera has
//! been silent too long for the picture to pass as live. Appending keeps the vector's capacity, so
//! a warm cache does not allocate per packet.
//!
//! The camera's thread appends under a mutex that only a viewer's start also takes (once, to copy
//! the packet handles), so no lock is shared across viewers on the packet path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use straja_pipelines::VideoCodec;

use super::keyframe::{self, Keyframe};
use super::media_packet::MediaPacket;

/// Default bound on one camera's cached GOP: a 2 s GOP at 16 Mbit/s.
pub const DEFAULT_GOP_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Largest bound a camera may configure.
pub const MAX_GOP_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// A cached GOP whose newest packet is older than this is not replayed: the camera has stalled or
/// gone, and its last picture must not be shown as live.
pub const MAX_GOP_SILENCE: Duration = Duration::from_secs(2);

/// One camera's cached GOP.
pub struct GopCache {
    /// The bound (changed by a configuration reload).
    max_bytes: AtomicUsize,
    state: Mutex<GopState>,
}

#[derive(Default)]
struct GopState {
    /// From a keyframe's first packet on, in sequence; empty while there is nothing usable.
    packets: Vec<MediaPacket>,
    bytes: usize,
    /// The sequence number the next packet must have to extend the cache.
    next_sequence: Option<u16>,
}

/// What appending one packet did to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopCacheUpdate {
    /// Bytes held now.
    pub bytes: usize,
    /// The GOP outgrew the bound with this packet and was dropped.
    pub overflowed: bool,
}

impl GopCache {
    /// A cache holding at most `max_bytes` of RTP packets; 0 turns it off.
    pub fn new(max_bytes: usize) -> GopCache {
        GopCache {
            max_bytes: AtomicUsize::new(max_bytes),
            state: Mutex::new(GopState::default()),
        }
    }

    /// True when the cache keeps anything at all.
    pub fn enabled(&self) -> bool {
        self.max_bytes() > 0
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// Changes the bound; a GOP held now that is over it is dropped (the next keyframe starts a
    /// new one).
    pub fn set_max_bytes(&self, max_bytes: usize) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.bytes > max_bytes || max_bytes == 0 {
            state.clear();
        }
    }

    /// Appends a packet from the camera (in arrival order).
    pub fn push(&self, packet: &MediaPacket) -> GopCacheUpdate {
        let mut update = GopCacheUpdate {
            bytes: 0,
            overflowed: false,
        };
        if !self.enabled() {
            return update;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let sequence = packet.header.sequence;
        let in_sequence = state.next_sequence.is_none_or(|next| next == sequence);
        state.next_sequence = Some(sequence.wrapping_add(1));
        // An SPS packet and the IDR's first fragment both begin the keyframe: the second one, with
        // the same timestamp, continues the access unit the first one started.
        let same_access_unit = in_sequence
            && state
                .packets
                .first()
                .is_some_and(|first| first.header.timestamp == packet.header.timestamp);
        if packet.keyframe_start && !same_access_unit {
            state.clear();
        } else if state.packets.is_empty() {
            return update;
        } else if !in_sequence {
            // A decoder cannot go on past a missing packet: nothing usable until the next keyframe.
            state.clear();
            return update;
        }
        if state.bytes + packet.data.len() > self.max_bytes() {
            state.clear();
            update.overflowed = true;
            return update;
        }
        state.bytes += packet.data.len();
        state.packets.push(packet.clone());
        update.bytes = state.bytes;
        update
    }

    /// The packets of the current GOP, from its keyframe on, if it is usable at `now`.
    pub fn snapshot(&self, now: Instant) -> Option<Vec<MediaPacket>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let newest = state.packets.last()?;
        if now.saturating_duration_since(newest.arrived) > MAX_GOP_SILENCE {
            return None;
        }
        Some(state.packets.clone())
    }

    /// The current GOP's keyframe alone (its access unit, see [`keyframe`]), if the GOP is usable
    /// at `now` and its keyframe has fully arrived. Copies only the keyframe's packet handles.
    pub fn latest_keyframe(&self, now: Instant) -> Option<Keyframe> {
        self.latest_keyframe_of(now, VideoCodec::H264)
    }

    /// [`GopCache::latest_keyframe`] for a camera of `codec`.
    pub fn latest_keyframe_of(&self, now: Instant, codec: VideoCodec) -> Option<Keyframe> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let newest = state.packets.last()?;
        if now.saturating_duration_since(newest.arrived) > MAX_GOP_SILENCE {
            return None;
        }
        keyframe::keyframe_at_start_of(&state.packets, codec)
    }
}

impl GopState {
    fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::rtp_header::RtpHeader;
    use bytes::Bytes;

    fn packet(sequence: u16, timestamp: u32, keyframe_start: bool, size: usize) -> MediaPacket {
        let mut data = vec![0x80, 96];
        data.extend_from_slice(&sequence.to_be_bytes());
        data.extend_from_slice(&timestamp.to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, 7]);
        data.resize(size.max(13), 0x41);
        let data = Bytes::from(data);
        MediaPacket {
            header: RtpHeader::parse(&data).expect("valid RTP"),
            data,
            keyframe_start,
            arrived: Instant::now(),
            epoch: 0,
        }
    }

    fn sequences(cache: &GopCache) -> Vec<u16> {
        cache
            .snapshot(Instant::now())
            .unwrap_or_default()
            .iter()
            .map(|p| p.header.sequence)
            .collect()
    }

    #[test]
    fn holds_the_gop_from_its_keyframe_and_restarts_at_the_next() {
        let cache = GopCache::new(1 << 20);
        cache.push(&packet(1, 0, false, 100)); // before any keyframe: useless
        assert!(cache.snapshot(Instant::now()).is_none());
        cache.push(&packet(2, 3000, true, 100)); // SPS
        cache.push(&packet(3, 3000, true, 100)); // IDR's first fragment, same access unit
        cache.push(&packet(4, 6000, false, 100));
        assert_eq!(sequences(&cache), [2, 3, 4]);
        let update = cache.push(&packet(5, 9000, true, 100)); // next keyframe
        assert_eq!(sequences(&cache), [5]);
        assert_eq!(update.bytes, 100);
    }

    #[test]
    fn a_missing_packet_empties_it_until_the_next_keyframe() {
        let cache = GopCache::new(1 << 20);
        cache.push(&packet(10, 0, true, 100));
        cache.push(&packet(12, 3000, false, 100));
        assert!(cache.snapshot(Instant::now()).is_none());
        cache.push(&packet(13, 6000, false, 100));
        assert!(cache.snapshot(Instant::now()).is_none());
        cache.push(&packet(14, 9000, true, 100));
        cache.push(&packet(15, 9000, false, 100));
        assert_eq!(sequences(&cache), [14, 15]);
    }

    #[test]
    fn a_keyframe_after_a_gap_starts_afresh_even_with_the_old_timestamp() {
        let cache = GopCache::new(1 << 20);
        cache.push(&packet(1, 0, true, 100));
        cache.push(&packet(7, 0, true, 100)); // camera restarted: same timestamp, new keyframe
        assert_eq!(sequences(&cache), [7]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let cache = GopCache::new(1 << 20);
        cache.push(&packet(u16::MAX, 0, true, 100));
        cache.push(&packet(0, 3000, false, 100));
        assert_eq!(sequences(&cache), [u16::MAX, 0]);
    }

    #[test]
    fn a_gop_over_the_bound_is_dropped_and_reported() {
        let cache = GopCache::new(250);
        cache.push(&packet(1, 0, true, 100));
        assert!(!cache.push(&packet(2, 3000, false, 100)).overflowed);
        let update = cache.push(&packet(3, 6000, false, 100));
        assert!(update.overflowed);
        assert_eq!(update.bytes, 0);
        assert!(cache.snapshot(Instant::now()).is_none());
        cache.push(&packet(4, 9000, false, 100));
        assert!(cache.snapshot(Instant::now()).is_none());
        cache.push(&packet(5, 12000, true, 100));
        assert_eq!(sequences(&cache), [5]);
    }

    #[test]
    fn a_stale_gop_is_not_offered() {
        let cache = GopCache::new(1 << 20);
        cache.push(&packet(1, 0, true, 100));
        assert!(cache.snapshot(Instant::now()).is_some());
        let later = Instant::now() + MAX_GOP_SILENCE + Duration::from_millis(1);
        assert!(cache.snapshot(later).is_none());
    }

    #[test]
    fn the_latest_keyframe_is_the_gop_s_first_access_unit_only() {
        let cache = GopCache::new(1 << 20);
        cache.push(&packet(1, 0, true, 100)); // SPS
        assert!(
            cache.latest_keyframe(Instant::now()).is_none(),
            "no marker yet"
        );
        let mut idr_end = packet(2, 0, false, 100);
        idr_end.header.marker = true;
        cache.push(&idr_end);
        cache.push(&packet(3, 3000, false, 100)); // a P frame
        let keyframe = cache.latest_keyframe(Instant::now()).expect("keyframe");
        assert_eq!(keyframe.packets.len(), 2);
        assert_eq!((keyframe.id.timestamp, keyframe.id.first_sequence), (0, 1));
        let later = Instant::now() + MAX_GOP_SILENCE + Duration::from_millis(1);
        assert!(cache.latest_keyframe(later).is_none(), "not live");
    }

    #[test]
    fn size_zero_turns_it_off() {
        let cache = GopCache::new(0);
        assert!(!cache.enabled());
        cache.push(&packet(1, 0, true, 100));
        assert!(cache.snapshot(Instant::now()).is_none());
    }
}
