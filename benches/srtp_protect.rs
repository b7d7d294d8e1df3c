//! SRTP protection of one outgoing RTP packet, with every protection profile the WebRTC stack
//! (`rtc` 0.21.1, the crate the gateway's viewer sessions run on) offers in DTLS-SRTP:
//! AEAD_AES_128_GCM, AEAD_AES_256_GCM, AES128_CM_HMAC_SHA1_80 and AES128_CM_HMAC_SHA1_32, in the
//! order `rtc` offers them (the gateway itself offers AEAD_AES_128_GCM, then
//! AES128_CM_HMAC_SHA1_80). Each profile runs on the `rtc_srtp` `Context` the stack builds from
//! the DTLS-exported master key and salt, with the stack's default `crypto-ring` provider.
//!
//! - `srtp_protect/PROFILE/SIZE`: `Context::encrypt_rtp` (encrypt + authenticate) of a 12-byte
//!   header + payload packet, 1200 bytes (a full H.264 FU-A fragment) and 200 bytes. The sequence
//!   number advances on every packet, as on the wire; the plaintext buffer is reused.
//! - `srtp_unprotect/PROFILE/SIZE`: `Context::decrypt_rtp` (verify + decrypt) of the same packet.
//!   The context has no replay window (the stack's inbound context has one of 64 packets; that
//!   check, a few shifts, is not measured), so the same protected packet can be opened repeatedly.
//! - `srtp_rtc_send_path/PROFILE/1200`: what the stack's SRTP handler does per outgoing packet:
//!   `rtp::Packet::marshal` and then `Context::encrypt_rtp` (the two profiles the gateway offers).
//! - `srtp_reference/ring_AES_*_GCM_seal/SIZE`: `ring` sealing the same packet in place, without
//!   the SRTP layer (no copy, no allocation, no per-SSRC state): the floor on this machine.
//! - `srtp_gateway/AEAD_AES_128_GCM_in_place/SIZE`: the gateway's own in-place sender
//!   (`straja_gateway::webrtc::srtp_gcm_sender`, issue 7's egress path): sequence number, ROC,
//!   IV, seal in the caller's buffer, tag appended; no allocation.
//!
//! Criterion's `thrpt` is packets per second on one core (one thread). A summary at the end
//! converts the time per packet into viewers per core of one 2 Mbit/s camera (≈ 210 packets/s per
//! viewer) and gives the heap allocations per packet, counted by a counting global allocator in
//! this bench (the API returns a freshly allocated `BytesMut` for every protected packet, so the
//! buffer cannot be reused).
//!
//! `cargo bench --bench srtp_protect` (add `-- --quick` for CI's quick mode).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;
use straja_gateway::webrtc::srtp_gcm_sender::{SrtpGcmSender, TAG_LEN};

#[path = "support/counting_allocator.rs"]
mod counting_allocator;
#[path = "support/short_criterion.rs"]
mod short_criterion;

/// The profiles `rtc` offers in DTLS-SRTP, in its order of preference.
const PROFILES: [(&str, ProtectionProfile); 4] = [
    ("AEAD_AES_128_GCM", ProtectionProfile::AeadAes128Gcm),
    ("AEAD_AES_256_GCM", ProtectionProfile::AeadAes256Gcm),
    (
        "AES128_CM_HMAC_SHA1_80",
        ProtectionProfile::Aes128CmHmacSha1_80,
    ),
    (
        "AES128_CM_HMAC_SHA1_32",
        ProtectionProfile::Aes128CmHmacSha1_32,
    ),
];
/// The profiles the gateway offers (gateway/src/webrtc/whep_peer.rs).
const GATEWAY_PROFILES: [&str; 2] = ["AEAD_AES_128_GCM", "AES128_CM_HMAC_SHA1_80"];
/// Whole RTP packet sizes: 12-byte header + payload.
const PACKET_SIZES: [usize; 2] = [1200, 200];
const HEADER_LEN: usize = 12;
const SSRC: u32 = 0x1234_5678;
/// Packets per second a viewer of one 2 Mbit/s camera receives (1200-byte packets).
const PACKETS_PER_VIEWER: f64 = 210.0;

/// A context for one direction, keyed as the stack keys it (master key and salt of the profile's
/// lengths; the values do not matter to the cost).
fn context(profile: ProtectionProfile) -> Context {
    let provider = rtc::crypto::default_provider().expect("the crypto-ring provider is enabled");
    let key: Vec<u8> = (0..profile.key_len() as u8)
        .map(|i| i.wrapping_mul(37))
        .collect();
    let salt: Vec<u8> = (0..profile.salt_len() as u8)
        .map(|i| i.wrapping_mul(11) ^ 0x5a)
        .collect();
    Context::new(&key, &salt, profile, None, None, provider.crypto()).expect("SRTP context")
}

/// The RTP header the gateway sends: version 2, payload type 102, no CSRC, no extension.
fn header(sequence: u16) -> rtc::rtp::Header {
    rtc::rtp::Header {
        version: 2,
        payload_type: 102,
        sequence_number: sequence,
        timestamp: 3000 * u32::from(sequence),
        ssrc: SSRC,
        ..Default::default()
    }
}

/// An H.264 FU-A fragment payload (the bytes do not matter to the cost).
fn payload(packet_size: usize) -> Bytes {
    let mut p: Vec<u8> = (0..packet_size - HEADER_LEN).map(|i| i as u8).collect();
    p[0] = 0x7c;
    p[1] = 0x05;
    Bytes::from(p)
}

/// A marshalled RTP packet of `packet_size` bytes.
fn plaintext(packet_size: usize) -> Vec<u8> {
    let packet = rtc::rtp::Packet {
        header: header(1),
        payload: payload(packet_size),
    };
    let raw = packet.marshal().expect("marshal RTP").to_vec();
    assert_eq!(raw.len(), packet_size);
    raw
}

/// Protects `packet` with the next sequence number, writing it into the header in place.
fn protect_next(context: &mut Context, packet: &mut [u8], sequence: &mut u16) -> usize {
    *sequence = sequence.wrapping_add(1);
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    let protected = context.encrypt_rtp(packet).expect("protect");
    protected.len()
}

/// `rtp::Packet::marshal` + `Context::encrypt_rtp`, as the stack's SRTP handler sends a packet.
fn rtc_send_next(context: &mut Context, payload: &Bytes, sequence: &mut u16) -> usize {
    *sequence = sequence.wrapping_add(1);
    let packet = rtc::rtp::Packet {
        header: header(*sequence),
        payload: payload.clone(),
    };
    let raw = packet.marshal().expect("marshal RTP");
    context.encrypt_rtp(&raw).expect("protect").len()
}

/// One protected packet of `packet_size` bytes, and a context that opens it.
fn protected(profile: ProtectionProfile, packet_size: usize) -> (Context, Vec<u8>) {
    let mut sender = context(profile);
    let protected = sender
        .encrypt_rtp(&plaintext(packet_size))
        .expect("protect")
        .to_vec();
    let mut receiver = context(profile);
    receiver.decrypt_rtp(&protected).expect("the packet opens");
    (receiver, protected)
}

fn protect(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_protect");
    group.throughput(Throughput::Elements(1));
    for (name, profile) in PROFILES {
        for size in PACKET_SIZES {
            let mut context = context(profile);
            let mut packet = plaintext(size);
            let mut sequence = 1u16;
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    black_box(protect_next(
                        &mut context,
                        black_box(&mut packet),
                        &mut sequence,
                    ))
                })
            });
        }
    }
    group.finish();
}

fn unprotect(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_unprotect");
    group.throughput(Throughput::Elements(1));
    for (name, profile) in PROFILES {
        for size in PACKET_SIZES {
            let (mut context, packet) = protected(profile, size);
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| black_box(context.decrypt_rtp(black_box(&packet)).expect("unprotect")))
            });
        }
    }
    group.finish();
}

fn rtc_send_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_rtc_send_path");
    group.throughput(Throughput::Elements(1));
    for (name, profile) in PROFILES
        .iter()
        .filter(|(n, _)| GATEWAY_PROFILES.contains(n))
    {
        let mut context = context(*profile);
        let payload = payload(1200);
        let mut sequence = 1u16;
        group.bench_function(BenchmarkId::new(*name, 1200), |b| {
            b.iter(|| black_box(rtc_send_next(&mut context, &payload, &mut sequence)))
        });
    }
    group.finish();
}

/// ring's AES-GCM sealing the same packet in place (header as associated data), with no copy, no
/// allocation and no SRTP bookkeeping: the floor the GCM profiles could reach on this machine.
fn ring_reference(c: &mut Criterion) {
    use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let mut group = c.benchmark_group("srtp_reference");
    group.throughput(Throughput::Elements(1));
    for (name, algorithm) in [
        ("ring_AES_128_GCM_seal", &AES_128_GCM),
        ("ring_AES_256_GCM_seal", &AES_256_GCM),
    ] {
        let key_bytes = vec![7u8; algorithm.key_len()];
        let key = LessSafeKey::new(UnboundKey::new(algorithm, &key_bytes).expect("key"));
        for size in PACKET_SIZES {
            let mut packet = plaintext(size);
            let mut counter = 0u64;
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&counter.to_be_bytes());
                    let (header, payload) = packet.split_at_mut(HEADER_LEN);
                    let tag = key
                        .seal_in_place_separate_tag(
                            Nonce::assume_unique_for_key(nonce),
                            Aad::from(&*header),
                            black_box(payload),
                        )
                        .expect("seal");
                    black_box(tag)
                })
            });
        }
    }
    group.finish();
}

/// Protects `packet` (its plaintext length `len`) with the next sequence number with the
/// gateway's in-place sender; the buffer is cut back to the plaintext's length first.
fn gateway_protect_next(
    sender: &mut SrtpGcmSender,
    packet: &mut Vec<u8>,
    len: usize,
    sequence: &mut u16,
) -> usize {
    *sequence = sequence.wrapping_add(1);
    packet.truncate(len);
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    sender.protect(packet).expect("protect");
    packet.len()
}

fn gateway_sender() -> SrtpGcmSender {
    let key: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
    let salt: [u8; 12] = std::array::from_fn(|i| (i as u8).wrapping_mul(11) ^ 0x5a);
    SrtpGcmSender::new(&key, &salt).expect("SRTP sender")
}

fn gateway_in_place(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_gateway");
    group.throughput(Throughput::Elements(1));
    for size in PACKET_SIZES {
        let mut sender = gateway_sender();
        let mut packet = plaintext(size);
        packet.reserve(TAG_LEN);
        let mut sequence = 1u16;
        group.bench_function(BenchmarkId::new("AEAD_AES_128_GCM_in_place", size), |b| {
            b.iter(|| {
                black_box(gateway_protect_next(
                    &mut sender,
                    black_box(&mut packet),
                    size,
                    &mut sequence,
                ))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = short_criterion::config();
    targets = protect, unprotect, rtc_send_path, ring_reference, gateway_in_place
}

/// Runs `operation` for about `duration`; returns ns per call and heap allocations per call.
fn measure(duration: Duration, mut operation: impl FnMut()) -> (f64, f64) {
    for _ in 0..1000 {
        operation();
    }
    let allocations = counting_allocator::allocations();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < duration {
        for _ in 0..1000 {
            operation();
        }
        calls += 1000;
    }
    let elapsed = start.elapsed();
    let allocated = counting_allocator::allocations() - allocations;
    (
        elapsed.as_nanos() as f64 / calls as f64,
        allocated as f64 / calls as f64,
    )
}

/// Time per packet, packets/s per core, viewers per core, allocations per packet: a short timed
/// loop per case (criterion's figures above are the reference for the time).
fn summary() {
    let duration = Duration::from_millis(150);
    println!(
        "\nsrtp_protect summary (one core; a viewer of a 2 Mbit/s camera is {PACKETS_PER_VIEWER} packets/s):"
    );
    println!(
        "{:<24} {:>5} {:<10} {:>9} {:>12} {:>16} {:>12}",
        "profile", "bytes", "operation", "ns/packet", "packets/s", "viewers/core", "allocs/packet"
    );
    let row = |name: &str, size: usize, operation: &str, (ns, allocations): (f64, f64)| {
        let per_second = 1e9 / ns;
        println!(
            "{name:<24} {size:>5} {operation:<10} {ns:>9.0} {per_second:>12.0} {:>16.0} {allocations:>12.1}",
            per_second / PACKETS_PER_VIEWER
        );
    };
    for (name, profile) in PROFILES {
        for size in PACKET_SIZES {
            let mut context = context(profile);
            let mut packet = plaintext(size);
            let mut sequence = 1u16;
            let protect = measure(duration, || {
                black_box(protect_next(&mut context, &mut packet, &mut sequence));
            });
            row(name, size, "protect", protect);
            let (mut context, packet) = protected(profile, size);
            let unprotect = measure(duration, || {
                black_box(context.decrypt_rtp(black_box(&packet)).expect("unprotect"));
            });
            row(name, size, "unprotect", unprotect);
        }
        if GATEWAY_PROFILES.contains(&name) {
            let mut context = context(profile);
            let payload = payload(1200);
            let mut sequence = 1u16;
            let send = measure(duration, || {
                black_box(rtc_send_next(&mut context, &payload, &mut sequence));
            });
            row(name, 1200, "rtc send", send);
        }
    }
    for size in PACKET_SIZES {
        let mut sender = gateway_sender();
        let mut packet = plaintext(size);
        packet.reserve(TAG_LEN);
        let mut sequence = 1u16;
        let in_place = measure(duration, || {
            black_box(gateway_protect_next(
                &mut sender,
                &mut packet,
                size,
                &mut sequence,
            ));
        });
        row("AEAD_AES_128_GCM", size, "in place", in_place);
    }
    println!(
        "allocs/packet: protect and unprotect return a new BytesMut per packet \
         (rtc_srtp::context::Context::encrypt_rtp / decrypt_rtp; no API takes a caller's buffer); \
         'rtc send' adds rtp::Packet::marshal's buffer; 'in place' is the gateway's own sender \
         (straja_gateway::webrtc::srtp_gcm_sender), which seals the caller's buffer."
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
