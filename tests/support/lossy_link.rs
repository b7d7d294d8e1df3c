//! A poor network link on loopback: a UDP relay between one WebRTC peer and the gateway's media
//! port that loses a share of the datagrams each way and delays the rest. The peer is pointed at
//! it by rewriting the candidates of the gateway's answer ([`LossyLink::route_answer`]); the
//! gateway learns the relay's address from the connectivity checks, as it would a NAT's.
//!
//! Losses are drawn from a fixed-seed generator: a run loses the same packets as the last one.
//! The relay's tasks end when it is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What went through the link, each way.
#[derive(Debug, Default)]
pub struct LinkCounts {
    /// Datagrams from the gateway passed on to the peer.
    pub down_passed: AtomicU64,
    /// Datagrams from the gateway dropped.
    pub down_lost: AtomicU64,
    /// Datagrams from the peer passed on to the gateway.
    pub up_passed: AtomicU64,
    /// Datagrams from the peer dropped.
    pub up_lost: AtomicU64,
}

/// A running lossy relay.
pub struct LossyLink {
    /// Where the peer sends (the relay's side facing it).
    pub front: SocketAddr,
    /// What went through.
    pub counts: Arc<LinkCounts>,
    tasks: Vec<JoinHandle<()>>,
}

/// A small fixed-seed generator (xorshift): reproducible losses, no dependency.
struct Draw(u64);

impl Draw {
    /// True with probability `percent` / 100.
    fn lose(&mut self, percent: u32) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 100) < u64::from(percent)
    }
}

impl LossyLink {
    /// Relays between a peer and `gateway` (a media port on loopback), losing `loss_percent` of
    /// the datagrams each way and delaying the others by `delay` each way.
    pub async fn start(gateway: SocketAddr, loss_percent: u32, delay: Duration) -> LossyLink {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("front socket"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("back socket"));
        back.connect(gateway)
            .await
            .expect("the gateway's media port");
        let counts = Arc::new(LinkCounts::default());
        let peer = Arc::new(tokio::sync::Mutex::new(None::<SocketAddr>));
        let up = {
            let (front, back, counts, peer) =
                (front.clone(), back.clone(), counts.clone(), peer.clone());
            tokio::spawn(async move {
                let mut draw = Draw(0x9E37_79B9_7F4A_7C15);
                let mut buffer = vec![0u8; 2048];
                while let Ok((len, from)) = front.recv_from(&mut buffer).await {
                    *peer.lock().await = Some(from);
                    if draw.lose(loss_percent) {
                        counts.up_lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    counts.up_passed.fetch_add(1, Ordering::Relaxed);
                    let datagram = buffer[..len].to_vec();
                    let back = back.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = back.send(&datagram).await;
                    });
                }
            })
        };
        let down = {
            let (front, back, counts, peer) =
                (front.clone(), back.clone(), counts.clone(), peer.clone());
            tokio::spawn(async move {
                let mut draw = Draw(0xD1B5_4A32_D192_ED03);
                let mut buffer = vec![0u8; 2048];
                while let Ok(len) = back.recv(&mut buffer).await {
                    let Some(to) = *peer.lock().await else {
                        continue;
                    };
                    if draw.lose(loss_percent) {
                        counts.down_lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    counts.down_passed.fetch_add(1, Ordering::Relaxed);
                    let datagram = buffer[..len].to_vec();
                    let front = front.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = front.send_to(&datagram, to).await;
                    });
                }
            })
        };
        LossyLink {
            front: front.local_addr().expect("front address"),
            counts,
            tasks: vec![up, down],
        }
    }

    /// The gateway's UDP host candidate in an answer (the first `127.0.0.1` one).
    pub fn gateway_candidate(answer: &str) -> SocketAddr {
        answer
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .find_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.get(2)?.eq_ignore_ascii_case("udp") && *fields.get(4)? == "127.0.0.1")
                    .then(|| format!("{}:{}", fields[4], fields.get(5)?).parse().ok())
                    .flatten()
            })
            .expect("a loopback UDP candidate in the answer")
    }

    /// The answer with its candidates replaced by one: this relay's front.
    pub fn route_answer(&self, answer: &str) -> String {
        let mut routed = String::new();
        let mut replaced = false;
        for line in answer.split_inclusive('\n') {
            if line.starts_with("a=candidate:") {
                if !replaced {
                    replaced = true;
                    routed.push_str(&format!(
                        "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                        self.front.ip(),
                        self.front.port()
                    ));
                }
                continue;
            }
            routed.push_str(line);
        }
        assert!(replaced, "the answer had no candidate to route");
        routed
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
