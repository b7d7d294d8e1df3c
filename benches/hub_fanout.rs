//! The hub's fan-out: one RTP packet from a camera into N viewers' queues. Reports the time per
//! packet; divide by N for the cost per packet per viewer (printed at the end for convenience).
//! Also the GOP cache: appending a packet, and copying a 2 s GOP for a new viewer.
//!
//! `cargo bench --bench hub_fanout` (add `-- --quick` for CI's quick mode).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use straja_gateway::hub::gop_cache::GopCache;
use straja_gateway::hub::rtp_header::RtpHeader;
use straja_gateway::hub::{CameraFeed, MediaPacket};
use straja_gateway::metrics::Metrics;
use straja_gateway::webrtc::rtp_rewriter::RtpRewriter;

const VIEWER_COUNTS: [usize; 4] = [1, 10, 100, 1000];

/// A 1200-byte H.264 FU-A middle fragment, as a 2 Mbit/s camera sends most of the time.
fn packet(sequence: u16) -> Bytes {
    let mut p = vec![0u8; 1200];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&sequence.to_be_bytes());
    p[12] = 0x7c;
    p[13] = 0x05;
    Bytes::from(p)
}

fn fanout(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut group = c.benchmark_group("hub_fanout");
    for viewers in VIEWER_COUNTS {
        let feed = CameraFeed::new("bench", metrics.camera("bench"));
        let mut subscriptions: Vec<_> = (0..viewers).map(|_| feed.subscribe()).collect();
        let template = packet(1);
        group.throughput(Throughput::Elements(viewers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(viewers), &viewers, |b, _| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iterations {
                    // Publish a burst, then drain outside the timed region so queues never fill.
                    let burst = (iterations - done).min(128);
                    let start = Instant::now();
                    for _ in 0..burst {
                        feed.publish(black_box(template.clone()));
                    }
                    total += start.elapsed();
                    for s in subscriptions.iter_mut() {
                        while s.try_recv().is_some() {}
                    }
                    done += burst;
                }
                total
            });
        });
    }
    group.finish();
}

fn rewrite(c: &mut Criterion) {
    let mut rewriter = RtpRewriter::new(0x1234_5678, 102, 1000, 90_000);
    let mut sequence = 0u16;
    c.bench_function("rtp_rewrite_per_packet", |b| {
        b.iter(|| {
            sequence = sequence.wrapping_add(1);
            black_box(rewriter.rewrite(black_box(sequence), 3000 * u32::from(sequence)))
        })
    });
}

/// Packets in a 2 s GOP of a 2 Mbit/s camera (1200-byte packets).
const GOP_PACKETS: u16 = 420;

fn media_packet(sequence: u16, keyframe_start: bool) -> MediaPacket {
    let data = packet(sequence);
    MediaPacket {
        header: RtpHeader::parse(&data).expect("valid RTP"),
        data,
        keyframe_start,
        arrived: Instant::now(),
        epoch: 0,
    }
}

fn gop_cache(c: &mut Criterion) {
    let cache = GopCache::new(4 << 20);
    let packets: Vec<MediaPacket> = (0..GOP_PACKETS * 4)
        .map(|i| media_packet(i, i % GOP_PACKETS == 0))
        .collect();
    let mut next = 0;
    c.bench_function("gop_cache_insert_per_packet", |b| {
        b.iter(|| {
            black_box(cache.push(&packets[next]));
            next = (next + 1) % packets.len();
        })
    });
    let full = GopCache::new(4 << 20);
    for packet in &packets[..usize::from(GOP_PACKETS)] {
        full.push(packet);
    }
    c.bench_function("gop_cache_replay_copy_2s_gop", |b| {
        b.iter(|| black_box(full.snapshot(Instant::now()).map(|gop| gop.len())))
    });
}

criterion_group!(benches, fanout, rewrite, gop_cache);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!(
        "\nhub_fanout: thrpt is viewer-packets per second; ns per packet per viewer = 1e9 / thrpt."
    );
}
