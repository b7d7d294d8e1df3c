//! Test helpers: a sink that collects packets into a channel, an RTP / H.264 (RFC 6184) reader,
//! and bounded waits. Every wait here has a deadline: no test can hang.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::packet_sink::PacketSink;
use crate::{FragmentedMp4Muxer, TrackCodec};

/// A clip's RTP packets muxed by the recorder's muxer (500 ms fragments): one segment's MP4.
pub(crate) fn fragmented_mp4(
    codec: impl Into<TrackCodec>,
    clip: Vec<(Bytes, Duration)>,
) -> Vec<u8> {
    let muxer = FragmentedMp4Muxer::start(Duration::from_millis(500), codec).unwrap();
    let mut out = Vec::new();
    for (packet, pts) in clip {
        muxer.push(packet, pts).unwrap();
        while let Some(bytes) = muxer.pull() {
            out.extend_from_slice(&bytes);
        }
    }
    for bytes in muxer.finish(Duration::from_secs(5)).unwrap() {
        out.extend_from_slice(&bytes);
    }
    out
}

/// H.264 NAL unit types the tests look for.
pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;

/// Sends every packet to a channel (unbounded: never blocks the streaming thread).
pub(crate) struct Collector {
    tx: Sender<Bytes>,
}

impl Collector {
    pub(crate) fn new() -> (Arc<Collector>, Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel();
        (Arc::new(Collector { tx }), rx)
    }
}

impl PacketSink for Collector {
    fn on_packet(&self, packet: Bytes) {
        // The receiver is gone once the test is over; packets are then dropped.
        let _ = self.tx.send(packet);
    }
}

/// What the tests check of an RTP packet carrying H.264.
#[derive(Debug)]
pub(crate) struct RtpH264 {
    pub(crate) version: u8,
    pub(crate) payload_type: u8,
    /// The RTP timestamp: one per frame (an IDR frame sliced by x264 spans several IDR NALs).
    pub(crate) timestamp: u32,
    /// Types of the NAL units that start in this packet (the NALs of a STAP-A, the first
    /// fragment of a FU-A, or the single NAL).
    pub(crate) nal_types: Vec<u8>,
}

impl RtpH264 {
    pub(crate) fn has(&self, nal_type: u8) -> bool {
        self.nal_types.contains(&nal_type)
    }
}

/// Reads the RTP header (RFC 3550) and the H.264 payload structure (RFC 6184).
pub(crate) fn parse_rtp_h264(packet: &[u8]) -> Option<RtpH264> {
    let first = *packet.first()?;
    let version = first >> 6;
    let csrc_count = usize::from(first & 0x0f);
    let has_extension = first & 0x10 != 0;
    let payload_type = packet.get(1)? & 0x7f;
    let timestamp = u32::from_be_bytes(packet.get(4..8)?.try_into().ok()?);
    let mut offset = 12 + 4 * csrc_count;
    if has_extension {
        let words = u16::from_be_bytes([*packet.get(offset + 2)?, *packet.get(offset + 3)?]);
        offset += 4 + 4 * usize::from(words);
    }
    let mut payload = packet.get(offset..)?;
    if first & 0x20 != 0 {
        let padding = usize::from(*payload.last()?);
        payload = payload.get(..payload.len().checked_sub(padding)?)?;
    }
    let nal_type = payload.first()? & 0x1f;
    let nal_types = match nal_type {
        24 => {
            // STAP-A: (16-bit size, NAL unit)*
            let mut types = Vec::new();
            let mut rest = payload.get(1..)?;
            while rest.len() >= 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let nal = rest.get(2..2 + size)?;
                types.push(nal.first()? & 0x1f);
                rest = &rest[2 + size..];
            }
            types
        }
        28 => {
            // FU-A: FU indicator, FU header (S bit 0x80 on the first fragment).
            let header = *payload.get(1)?;
            if header & 0x80 != 0 {
                vec![header & 0x1f]
            } else {
                Vec::new()
            }
        }
        _ => vec![nal_type],
    };
    Some(RtpH264 {
        version,
        payload_type,
        timestamp,
        nal_types,
    })
}

/// Receives packets until `done` says so or `timeout` passes; returns whether `done` said so.
pub(crate) fn receive_until(
    rx: &Receiver<Bytes>,
    timeout: Duration,
    mut done: impl FnMut(&Bytes) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(packet) => {
                if done(&packet) {
                    return true;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The types of an ISO BMFF (MP4) file's top-level boxes, in order (stops at a truncated box).
pub(crate) fn top_level_boxes(file: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut offset = 0usize;
    while let Some(header) = file.get(offset..offset + 8) {
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        boxes.push(String::from_utf8_lossy(&header[4..8]).into_owned());
        if size < 8 {
            break;
        }
        offset += size;
    }
    boxes
}

/// Drops what is queued in the channel; returns how many packets there were.
pub(crate) fn drain(rx: &Receiver<Bytes>) -> usize {
    rx.try_iter().count()
}

#[test]
fn reader_finds_nal_types_in_single_stap_a_and_fu_a_packets() {
    let header = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    let single = [&header[..], &[0x65, 0xaa]].concat();
    let stap_a = [&header[..], &[24, 0, 2, 0x67, 1, 0, 1, 0x68]].concat();
    let fu_a_start = [&header[..], &[28, 0x85, 0xaa]].concat();
    let fu_a_middle = [&header[..], &[28, 0x05, 0xaa]].concat();
    let parse = |p: &[u8]| parse_rtp_h264(p).expect("well-formed packet").nal_types;
    assert_eq!(parse(&single), [NAL_IDR]);
    assert_eq!(parse(&stap_a), [NAL_SPS, NAL_PPS]);
    assert_eq!(parse(&fu_a_start), [NAL_IDR]);
    assert!(parse(&fu_a_middle).is_empty());
    assert!(parse_rtp_h264(&header[..5]).is_none());
}
