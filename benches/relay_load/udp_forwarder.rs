//! The baseline: a plain UDP forwarder that copies each datagram it receives to N receivers, one
//! `send_to` per receiver, no encryption, no header rewrite. It sees the same packets as the
//! gateway, pinned to the same core; what the gateway costs beyond it is the relay's own cost.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Forwards from `socket` to `receivers` until `stop` or `deadline`; returns the datagrams
/// received.
pub fn forward(
    socket: &UdpSocket,
    receivers: &[SocketAddr],
    stop: &AtomicBool,
    deadline: Instant,
) -> u64 {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut buffer = [0u8; 2048];
    let mut received = 0;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let Ok(length) = socket.recv(&mut buffer) else {
            continue;
        };
        received += 1;
        for receiver in receivers {
            let _ = socket.send_to(&buffer[..length], receiver);
        }
    }
    received
}
