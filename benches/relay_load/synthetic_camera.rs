//! A synthetic H.264 camera for the load benchmark: 720p30-sized frames at 2 Mbit/s with a keyframe
//! every second, sent as RTP over UDP, each packet stamped with the moment it was sent so that
//! receivers in another process can measure latency on the same clock (CLOCK_MONOTONIC).
//!
//! Packets are single-NAL-unit RTP packets (RFC 6184 §5.6) of at most [`MAX_PAYLOAD`] bytes:
//! `[NAL header][b"SJTS"][send time, u64 ns, big-endian][filler]`. A keyframe is an SPS, a PPS and
//! IDR slices; other frames are non-IDR slices; the last packet of a frame has the marker bit.
//! The payload is not decodable video: nothing on the path decodes, and its shape (sizes, bursts
//! per frame, keyframe markers) is what the relay sees from a real camera.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The stamp's magic bytes, right after the NAL header.
pub const MAGIC: &[u8; 4] = b"SJTS";
/// Largest RTP payload sent.
pub const MAX_PAYLOAD: usize = 1188;
/// The RTP payload type used.
pub const PAYLOAD_TYPE: u8 = 96;

const FPS: u32 = 30;
const BITRATE_BPS: u64 = 2_000_000;
/// A keyframe is about five times an average frame.
const KEYFRAME_FACTOR: u64 = 5;

/// CLOCK_MONOTONIC in nanoseconds (the clock both processes share).
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The send time stamped in a payload, if it carries one.
pub fn stamp_of(payload: &[u8]) -> Option<u64> {
    if payload.len() < 13 || &payload[1..5] != MAGIC {
        return None;
    }
    Some(u64::from_be_bytes(payload[5..13].try_into().ok()?))
}

/// A running camera: sends until stopped (or dropped).
pub struct SyntheticCamera {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyntheticCamera {
    /// Starts sending to `destination`.
    pub fn start(destination: SocketAddr) -> SyntheticCamera {
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let running = running.clone();
            std::thread::Builder::new()
                .name("synthetic-camera".into())
                .spawn(move || send_loop(destination, &running))
                .expect("camera thread")
        };
        SyntheticCamera {
            running,
            thread: Some(thread),
        }
    }
}

impl Drop for SyntheticCamera {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn send_loop(destination: SocketAddr, running: &AtomicBool) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("camera socket");
    let average_frame = BITRATE_BPS / 8 / u64::from(FPS);
    // Keyframe and other frames sized so that one second averages the bitrate.
    let keyframe = average_frame * KEYFRAME_FACTOR;
    let other = (average_frame * u64::from(FPS) - keyframe) / u64::from(FPS - 1);
    let frame_interval = Duration::from_secs(1) / FPS;
    let ssrc: u32 = 0x5354_524a;
    let mut sequence: u16 = 0;
    let mut packet = vec![0u8; 12 + MAX_PAYLOAD];
    let started = Instant::now();
    let mut frame: u64 = 0;
    while running.load(Ordering::Relaxed) {
        let due = started + frame_interval * frame as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let is_keyframe = frame.is_multiple_of(u64::from(FPS));
        let timestamp = (frame * 90_000 / u64::from(FPS)) as u32;
        // NAL units of this frame: (type, bytes).
        let mut units: Vec<(u8, usize)> = Vec::new();
        if is_keyframe {
            units.push((7, 24)); // SPS
            units.push((8, 8)); // PPS
        }
        let (slice_type, mut remaining) = if is_keyframe {
            (5u8, keyframe as usize)
        } else {
            (1u8, other as usize)
        };
        while remaining > 0 {
            let size = remaining.clamp(13, MAX_PAYLOAD);
            units.push((slice_type, size));
            remaining = remaining.saturating_sub(size);
        }
        let last = units.len() - 1;
        for (index, (nal_type, size)) in units.into_iter().enumerate() {
            let size = size.max(13);
            packet[0] = 0x80;
            packet[1] = PAYLOAD_TYPE | if index == last { 0x80 } else { 0 };
            packet[2..4].copy_from_slice(&sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
            packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let payload = &mut packet[12..12 + size];
            payload[0] = 0x60 | nal_type; // nal_ref_idc 3
            payload[1..5].copy_from_slice(MAGIC);
            payload[5..13].copy_from_slice(&monotonic_ns().to_be_bytes());
            // A refused send (nobody listening yet) is a packet lost, as with a real camera.
            let _ = socket.send_to(&packet[..12 + size], destination);
            sequence = sequence.wrapping_add(1);
        }
        frame += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_unstamped_payloads_are_ignored() {
        let mut payload = vec![0x65u8];
        payload.extend_from_slice(MAGIC);
        payload.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(stamp_of(&payload), Some(42));
        assert_eq!(stamp_of(&payload[..12]), None);
        payload[1] = b'X';
        assert_eq!(stamp_of(&payload), None);
    }
}
