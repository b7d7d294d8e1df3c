//! A camera's latest keyframe as one access unit: the RTP packets of the picture a decoder can
//! start from (parameter sets and IDR slices), without the frames that follow it. Snapshots are
//! decoded from it.
//!
//! The access unit runs from a packet that starts a keyframe up to and including the first packet
//! of picture data (a slice) with the RTP marker bit (the frame's last), or, for a sender that does
//! not set the marker, up to the packet before the timestamp changes. A marker on a packet of
//! parameter sets alone does not end it: payloaders mark the end of each buffer they are given,
//! and an encoder asked for a keyframe hands its SPS and PPS over as a buffer of their own. Packets
//! must follow in sequence; an access unit whose end has not arrived yet is not complete.

use std::time::Instant;

use bytes::Bytes;

use straja_pipelines::VideoCodec;

use super::media_packet::MediaPacket;
use super::{h264, h265};

/// Largest keyframe collected from live packets, in RTP bytes (bounds [`KeyframeCollector`]): the
/// most a snapshot decodes.
pub const MAX_KEYFRAME_BYTES: usize = straja_pipelines::MAX_KEYFRAME_BYTES;

/// What tells one keyframe from another: the stream's epoch (restarts), its RTP timestamp and
/// the sequence number of its first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyframeId {
    /// [`MediaPacket::epoch`] of its packets.
    pub epoch: u32,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// The sequence number of its first packet.
    pub first_sequence: u16,
}

/// One keyframe's access unit.
#[derive(Debug, Clone)]
pub struct Keyframe {
    /// Which keyframe it is.
    pub id: KeyframeId,
    /// Its RTP packets, in sequence (shared with the feed, not copied).
    pub packets: Vec<Bytes>,
    /// When its first packet reached the hub.
    pub arrived: Instant,
    /// Its codec.
    pub codec: VideoCodec,
}

/// How many packets at the start of `packets` make the keyframe access unit, if `packets` starts
/// with a keyframe and holds all of it.
pub fn access_unit_len(packets: &[MediaPacket]) -> Option<usize> {
    access_unit_len_of(packets, VideoCodec::H264)
}

/// [`access_unit_len`] for packets of `codec`.
pub fn access_unit_len_of(packets: &[MediaPacket], codec: VideoCodec) -> Option<usize> {
    let first = packets.first().filter(|p| p.keyframe_start)?;
    let mut slices = false;
    for (i, packet) in packets.iter().enumerate() {
        if packet.header.timestamp != first.header.timestamp || packet.epoch != first.epoch {
            return Some(i);
        }
        slices |= carries_slice(packet, codec);
        if packet.header.marker && slices {
            return Some(i + 1);
        }
    }
    None
}

fn carries_slice(packet: &MediaPacket, codec: VideoCodec) -> bool {
    let start = packet.header.payload_offset;
    packet
        .data
        .get(start..start + packet.header.payload_len)
        .is_some_and(|payload| match codec {
            VideoCodec::H264 => h264::carries_slice(payload),
            VideoCodec::H265 => h265::carries_slice(payload),
        })
}

/// The keyframe at the start of `packets` (a GOP as the cache holds it), if it is complete.
pub fn keyframe_at_start(packets: &[MediaPacket]) -> Option<Keyframe> {
    keyframe_at_start_of(packets, VideoCodec::H264)
}

/// [`keyframe_at_start`] for packets of `codec`.
pub fn keyframe_at_start_of(packets: &[MediaPacket], codec: VideoCodec) -> Option<Keyframe> {
    let len = access_unit_len_of(packets, codec)?;
    Some(whole(&packets[..len], codec))
}

/// `packets`, a whole access unit, as a keyframe. `packets` is not empty.
fn whole(packets: &[MediaPacket], codec: VideoCodec) -> Keyframe {
    let first = &packets[0];
    Keyframe {
        id: KeyframeId {
            epoch: first.epoch,
            timestamp: first.header.timestamp,
            first_sequence: first.header.sequence,
        },
        packets: packets.iter().map(|p| p.data.clone()).collect(),
        arrived: first.arrived,
        codec,
    }
}

/// Picks the next complete keyframe out of live packets, one at a time: for a camera whose GOP is
/// not cached. Bounded: a keyframe over [`MAX_KEYFRAME_BYTES`] is dropped and the next one
/// awaited.
pub struct KeyframeCollector {
    codec: VideoCodec,
    /// From a keyframe's first packet on, in sequence, all with its timestamp.
    packets: Vec<MediaPacket>,
    bytes: usize,
    /// Some of `packets` carry picture data.
    slices: bool,
}

impl Default for KeyframeCollector {
    fn default() -> Self {
        KeyframeCollector::new()
    }
}

impl KeyframeCollector {
    /// An empty collector of H.264 keyframes.
    pub fn new() -> KeyframeCollector {
        KeyframeCollector::for_codec(VideoCodec::H264)
    }

    /// An empty collector of `codec` keyframes.
    pub fn for_codec(codec: VideoCodec) -> KeyframeCollector {
        KeyframeCollector {
            codec,
            packets: Vec::new(),
            bytes: 0,
            slices: false,
        }
    }

    /// Takes the next packet (in arrival order); returns the keyframe once it is complete.
    pub fn push(&mut self, packet: MediaPacket) -> Option<Keyframe> {
        if let (Some(first), Some(last)) = (self.packets.first(), self.packets.last()) {
            let in_sequence = last.header.sequence.wrapping_add(1) == packet.header.sequence
                && last.epoch == packet.epoch;
            if in_sequence && packet.header.timestamp != first.header.timestamp {
                // The sender set no marker bit: the next frame ends the keyframe.
                let done = whole(&self.packets, self.codec);
                self.clear();
                return Some(done);
            }
            if !in_sequence {
                // A packet is missing: what was collected cannot be decoded.
                self.clear();
            }
        }
        if self.packets.is_empty() && !packet.keyframe_start {
            return None;
        }
        if self.bytes + packet.data.len() > MAX_KEYFRAME_BYTES {
            self.clear();
            return None;
        }
        self.bytes += packet.data.len();
        self.slices |= carries_slice(&packet, self.codec);
        let marker = packet.header.marker;
        self.packets.push(packet);
        if !(marker && self.slices) {
            return None;
        }
        let done = whole(&self.packets, self.codec);
        self.clear();
        Some(done)
    }

    fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
        self.slices = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::rtp_header::RtpHeader;

    /// A packet of one slice (NAL type 1 or, starting a keyframe, 5).
    fn packet(sequence: u16, timestamp: u32, keyframe_start: bool, marker: bool) -> MediaPacket {
        with_payload(
            sequence,
            timestamp,
            keyframe_start,
            marker,
            if keyframe_start { 0x65 } else { 0x41 },
        )
    }

    fn with_payload(
        sequence: u16,
        timestamp: u32,
        keyframe_start: bool,
        marker: bool,
        nal_header: u8,
    ) -> MediaPacket {
        let mut data = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
        data.extend_from_slice(&sequence.to_be_bytes());
        data.extend_from_slice(&timestamp.to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, 7, nal_header, 0x88]);
        let data = Bytes::from(data);
        MediaPacket {
            header: RtpHeader::parse(&data).expect("valid RTP"),
            data,
            keyframe_start,
            arrived: Instant::now(),
            epoch: 0,
        }
    }

    fn sequences(keyframe: &Keyframe) -> Vec<u16> {
        keyframe
            .packets
            .iter()
            .map(|p| RtpHeader::parse(p).unwrap().sequence)
            .collect()
    }

    /// SPS/PPS, two IDR fragments (the second with the marker), then two P frames.
    fn gop() -> Vec<MediaPacket> {
        vec![
            with_payload(10, 3000, true, false, 0x78),
            packet(11, 3000, true, false),
            packet(12, 3000, false, true),
            packet(13, 6000, false, false),
            packet(14, 6000, false, true),
            packet(15, 9000, false, true),
        ]
    }

    #[test]
    fn the_access_unit_ends_at_the_marker_bit() {
        let gop = gop();
        assert_eq!(access_unit_len(&gop), Some(3));
        let keyframe = keyframe_at_start(&gop).expect("complete");
        assert_eq!(sequences(&keyframe), [10, 11, 12]);
        assert_eq!(
            keyframe.id,
            KeyframeId {
                epoch: 0,
                timestamp: 3000,
                first_sequence: 10
            }
        );
    }

    #[test]
    fn a_marker_on_the_parameter_sets_alone_does_not_end_it() {
        let gop = [
            with_payload(1, 0, true, true, 0x78), // STAP-A SPS+PPS, marked
            packet(2, 0, true, false),
            packet(3, 0, false, true),
            packet(4, 3000, false, true),
        ];
        assert_eq!(access_unit_len(&gop), Some(3));
        let mut collector = KeyframeCollector::new();
        let mut got = None;
        for p in gop {
            if let Some(k) = collector.push(p) {
                got = Some(k);
                break;
            }
        }
        assert_eq!(sequences(&got.expect("the keyframe")), [1, 2, 3]);
    }

    #[test]
    fn without_a_marker_it_ends_where_the_timestamp_changes() {
        let gop = [packet(1, 0, true, false), packet(2, 3000, false, false)];
        assert_eq!(access_unit_len(&gop), Some(1));
    }

    #[test]
    fn an_access_unit_still_arriving_or_not_at_a_keyframe_is_none() {
        let gop = gop();
        assert_eq!(access_unit_len(&gop[..2]), None, "marker not in yet");
        assert_eq!(access_unit_len(&gop[3..]), None, "not a keyframe");
        assert_eq!(access_unit_len(&[]), None);
    }

    #[test]
    fn a_new_epoch_ends_the_access_unit() {
        let mut restarted = packet(2, 0, true, true);
        restarted.epoch = 1;
        assert_eq!(
            access_unit_len(&[packet(1, 0, true, false), restarted]),
            Some(1)
        );
    }

    #[test]
    fn the_collector_waits_for_a_keyframe_and_returns_it_whole() {
        let mut collector = KeyframeCollector::new();
        assert!(
            collector.push(packet(8, 0, false, true)).is_none(),
            "P frame"
        );
        let mut got = None;
        for p in gop() {
            if let Some(k) = collector.push(p) {
                got = Some(k);
                break;
            }
        }
        assert_eq!(sequences(&got.expect("the keyframe")), [10, 11, 12]);
    }

    #[test]
    fn the_collector_starts_again_after_a_gap() {
        let mut collector = KeyframeCollector::new();
        assert!(collector.push(packet(1, 0, true, false)).is_none());
        assert!(collector.push(packet(3, 0, false, true)).is_none(), "gap");
        assert!(collector.push(packet(4, 3000, true, false)).is_none());
        let keyframe = collector.push(packet(5, 3000, false, true)).expect("whole");
        assert_eq!(sequences(&keyframe), [4, 5]);
    }

    #[test]
    fn the_collector_ends_an_unmarked_keyframe_at_the_next_frame() {
        let mut collector = KeyframeCollector::new();
        assert!(collector.push(packet(1, 0, true, false)).is_none());
        assert!(collector.push(packet(2, 0, false, false)).is_none());
        let keyframe = collector
            .push(packet(3, 3000, false, false))
            .expect("ended");
        assert_eq!(sequences(&keyframe), [1, 2]);
    }
}
