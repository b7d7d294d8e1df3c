//! The cost of handling incoming RTCP from a viewer, and of the gateway's reaction to a keyframe
//! request. The compound packets are the ones Chromium sends, built with the `rtc` crate's RTCP
//! types and marshalled once:
//!
//! - `rr_sdes` (60 bytes): the periodic report, receiver report + SDES CNAME, about once a second;
//!   the most common RTCP a viewer sends the gateway today (its answer negotiates neither REMB nor
//!   transport-cc).
//! - `rr_sdes_remb_pli` (96 bytes): the same + REMB + PLI, a keyframe request.
//! - `rr_twcc_pli` (88 bytes): receiver report + transport-cc feedback for 20 packets (100 ms of
//!   a 2 Mbit/s camera) + PLI.
//!
//! Groups (each step's input is prepared outside the timing, in batches of 64):
//! - `rtcp_unmarshal/PACKET`: `rtc::rtcp::packet::unmarshal` of the decrypted compound packet
//!   (a `BytesMut`, as the stack's SRTP handler holds it).
//! - `srtcp_receive/PACKET`: what that handler does with a datagram: `Context::decrypt_rtcp`
//!   (AEAD_AES_128_GCM, the profile the gateway prefers, with the stack's 64-packet replay window)
//!   + unmarshal. Each datagram is protected beforehand with a fresh SRTCP index.
//! - `interceptor_chain/PACKET`: the unmarshalled packet through the viewer's interceptor chain as
//!   `whep_peer` builds it (`whep_peer::viewer_interceptors`: `KeyframeFeedback`, NACK responder,
//!   sender reports; one bound H.264 send stream): `handle_read`, then `poll_read`. Compounds with
//!   PLI/FIR, receiver reports or NACKs are marked for the application by `KeyframeFeedback`
//!   (the quality metrics read them: `benches/metrics_cost.rs`).
//! - `keyframe_feedback/PACKET`: the gateway's `KeyframeFeedback` interceptor alone.
//! - `is_keyframe_request/PACKET`: the scan the viewer session makes of what reaches it.
//! - `camera_feed_request_keyframe/{merged,forwarded}`: `CameraFeed::request_keyframe` while a
//!   request is outstanding (merged: what all but one of many viewers' PLIs cost) and right after
//!   a keyframe (forwarded to the camera's `KeyframeSource`, a counter here); `forwarded` includes
//!   publishing the 1200-byte keyframe packet that clears the outstanding request, measured alone
//!   as `publish_keyframe_packet`.
//! - `viewer_rtcp_to_camera/PACKET`: all of it for one datagram: SRTCP decrypt, unmarshal,
//!   interceptor chain, scan, `request_keyframe` (merged), and freeing what was allocated.
//!
//! The steps alone keep their outputs until the batch is timed (their figure is the step's own
//! cost); `viewer_rtcp_to_camera` frees them as it goes. A summary at the end gives the heap
//! allocations per packet of each step, counted by a counting global allocator in this bench.
//!
//! Not covered: `ViewerSession::handle_reads` itself (private; its body is the scan and the
//! request measured here), `RTCPeerConnection`'s handler pipeline around the chain (demuxing,
//! DTLS/SRTP handler dispatch, conversion to `RTCMessage` in `poll_read`), and what the camera's
//! `KeyframeSource` does (`CameraPipeline::request_keyframe`, a GStreamer force-key-unit event).
//!
//! `cargo bench --bench rtcp_handling` (add `-- --quick` for CI's quick mode).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Bencher, BenchmarkId, Criterion, Throughput, criterion_group};
use rtc::interceptor::{AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
    TransportLayerCc,
};
use rtc::shared::TransportContext;
use rtc::srtp::context::Context;
use rtc::srtp::option::srtcp_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;
use straja_gateway::hub::{CameraFeed, KeyframeSource};
use straja_gateway::metrics::Metrics;
use straja_gateway::webrtc::keyframe_feedback::{KeyframeFeedback, is_keyframe_request};

#[path = "support/counting_allocator.rs"]
mod counting_allocator;
#[path = "support/short_criterion.rs"]
mod short_criterion;

/// The gateway's media SSRC (the viewer reports on it) and the viewer's own.
const MEDIA_SSRC: u32 = 0x1234_5678;
const VIEWER_SSRC: u32 = 0x9abc_def0;

type Compound = Vec<Box<dyn rtc::rtcp::Packet>>;

fn receiver_report() -> Box<dyn rtc::rtcp::Packet> {
    Box::new(ReceiverReport {
        ssrc: VIEWER_SSRC,
        reports: vec![ReceptionReport {
            ssrc: MEDIA_SSRC,
            fraction_lost: 0,
            total_lost: 0,
            last_sequence_number: 0x0001_2345,
            jitter: 270,
            last_sender_report: 0x9f36_4320,
            delay: 150_137,
        }],
        ..Default::default()
    })
}

/// Chromium's CNAME: 16 random base64 characters.
fn source_description() -> Box<dyn rtc::rtcp::Packet> {
    Box::new(SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source: VIEWER_SSRC,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: Bytes::from_static(b"k3Zq+7hT9xWb1sLe"),
            }],
        }],
    })
}

fn remb() -> Box<dyn rtc::rtcp::Packet> {
    Box::new(ReceiverEstimatedMaximumBitrate {
        sender_ssrc: VIEWER_SSRC,
        bitrate: 2_500_000.0,
        ssrcs: vec![MEDIA_SSRC],
    })
}

fn pli() -> Box<dyn rtc::rtcp::Packet> {
    Box::new(PictureLossIndication {
        sender_ssrc: VIEWER_SSRC,
        media_ssrc: MEDIA_SSRC,
    })
}

/// Transport-cc feedback for 20 packets received 250 µs–5 ms apart.
fn transport_cc() -> Box<dyn rtc::rtcp::Packet> {
    Box::new(TransportLayerCc {
        sender_ssrc: VIEWER_SSRC,
        media_ssrc: MEDIA_SSRC,
        base_sequence_number: 4000,
        packet_status_count: 20,
        reference_time: 4_567_386,
        fb_pkt_count: 17,
        packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
            run_length: 20,
        })],
        recv_deltas: (0..20)
            .map(|i| RecvDelta {
                type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                delta: 250 * (1 + (i * 7) % 20),
            })
            .collect(),
    })
}

/// The compound packets, marshalled once: (name, wire bytes).
fn compounds() -> Vec<(&'static str, Bytes)> {
    let cases: [(&str, Compound); 3] = [
        ("rr_sdes", vec![receiver_report(), source_description()]),
        (
            "rr_sdes_remb_pli",
            vec![receiver_report(), source_description(), remb(), pli()],
        ),
        (
            "rr_twcc_pli",
            vec![receiver_report(), transport_cc(), pli()],
        ),
    ];
    cases
        .into_iter()
        .map(|(name, packets)| {
            let raw = rtc::rtcp::packet::marshal(&packets)
                .expect("marshal RTCP")
                .freeze();
            let parsed = rtc::rtcp::packet::unmarshal(&mut raw.clone()).expect("unmarshal RTCP");
            assert_eq!(parsed.len(), packets.len(), "{name} round-trips");
            (name, raw)
        })
        .collect()
}

fn unmarshal(raw: &Bytes) -> Compound {
    rtc::rtcp::packet::unmarshal(&mut raw.clone()).expect("unmarshal RTCP")
}

fn srtcp_context(replay_window: Option<usize>) -> Context {
    let profile = ProtectionProfile::AeadAes128Gcm;
    let provider = rtc::crypto::default_provider().expect("the crypto-ring provider is enabled");
    let key: Vec<u8> = (0..profile.key_len() as u8).collect();
    let salt: Vec<u8> = (0..profile.salt_len() as u8).map(|i| i ^ 0x5a).collect();
    Context::new(
        &key,
        &salt,
        profile,
        None,
        replay_window.map(srtcp_replay_protection),
        provider.crypto(),
    )
    .expect("SRTP context")
}

/// The viewer's interceptor chain as `whep_peer` builds it, with the camera track bound.
fn interceptor_chain() -> impl Interceptor {
    let mut chain = straja_gateway::webrtc::whep_peer::viewer_interceptors().build();
    chain.bind_local_stream(&StreamInfo {
        ssrc: MEDIA_SSRC,
        payload_type: 102,
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        rtcp_feedback: ["nack", "nack pli", "ccm fir"]
            .iter()
            .map(|f| {
                let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
                rtc::interceptor::RTCPFeedback {
                    typ: typ.into(),
                    parameter: parameter.into(),
                }
            })
            .collect(),
        ..Default::default()
    });
    chain
}

fn tagged(packets: Compound) -> TaggedPacket {
    tagged_attributed(AttributedPacket::new(Packet::Rtcp(packets)))
}

fn tagged_attributed(message: AttributedPacket) -> TaggedPacket {
    TaggedPacket {
        now: Instant::now(),
        transport: TransportContext::default(),
        message,
    }
}

/// Passes one packet through an interceptor (or a chain); returns what comes out for the
/// application: the packet, or nothing when the chain keeps it.
fn through<T: Interceptor + ?Sized>(
    interceptor: &mut T,
    message: TaggedPacket,
) -> Option<TaggedPacket> {
    interceptor.handle_read(message).expect("handle_read");
    let out = interceptor.poll_read();
    assert!(
        interceptor.poll_read().is_none(),
        "one packet in, at most one out"
    );
    out
}

/// What the viewer session does with what reaches it.
fn react(feed: &CameraFeed, message: TaggedPacket) {
    if let Packet::Rtcp(packets) = &message.message.packet
        && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
    {
        feed.request_keyframe();
    }
}

#[derive(Default)]
struct CountingSource(AtomicU64);

impl KeyframeSource for CountingSource {
    fn request_keyframe(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn camera_feed() -> (Arc<CameraFeed>, Arc<CountingSource>) {
    let metrics = Metrics::new();
    let feed = CameraFeed::new("bench", metrics.camera("bench"));
    let source = Arc::new(CountingSource::default());
    feed.set_keyframe_source(source.clone());
    (feed, source)
}

/// The first 1200-byte fragment of an IDR slice (FU-A, start bit set).
fn keyframe_packet() -> Bytes {
    let mut p = vec![0u8; 1200];
    p[0] = 0x80;
    p[1] = 96;
    p[12] = 0x7c;
    p[13] = 0x85;
    Bytes::from(p)
}

/// Inputs prepared per batch, outside the timing; small batches so that memory is reused as in a
/// real receive loop (criterion's `iter_batched` holds far larger batches, which made allocation-
/// heavy steps look up to twice as slow).
const BATCH: u64 = 64;

/// What happens to a step's output: kept until the batch is timed (the step alone), or dropped
/// at once (the step and the freeing of everything it produced).
#[derive(Clone, Copy, PartialEq)]
enum Outputs {
    Kept,
    Dropped,
}

fn batched<I, O>(
    b: &mut Bencher<'_>,
    outputs: Outputs,
    mut setup: impl FnMut() -> I,
    mut step: impl FnMut(I) -> O,
) {
    b.iter_custom(|iterations| {
        let mut total = Duration::ZERO;
        let mut done = 0;
        let mut kept = Vec::with_capacity(BATCH as usize);
        while done < iterations {
            let n = (iterations - done).min(BATCH);
            let inputs: Vec<I> = (0..n).map(|_| setup()).collect();
            let start = Instant::now();
            for input in inputs {
                let output = black_box(step(black_box(input)));
                if outputs == Outputs::Kept {
                    kept.push(output);
                }
            }
            total += start.elapsed();
            kept.clear();
            done += n;
        }
        total
    });
}

/// The decrypted datagram as the stack holds it (`Context::decrypt_rtcp` returns a `BytesMut`).
fn decrypted(raw: &Bytes) -> BytesMut {
    BytesMut::from(&raw[..])
}

fn unmarshal_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtcp_unmarshal");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in compounds() {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            batched(
                b,
                Outputs::Kept,
                || decrypted(&raw),
                |mut plain| rtc::rtcp::packet::unmarshal(&mut plain).expect("unmarshal RTCP"),
            )
        });
    }
    group.finish();
}

fn srtcp_receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtcp_receive");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in compounds() {
        let mut sender = srtcp_context(None);
        let mut receiver = srtcp_context(Some(64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            batched(
                b,
                Outputs::Kept,
                || sender.encrypt_rtcp(&raw).expect("protect RTCP"),
                |protected| {
                    let mut plain = receiver.decrypt_rtcp(&protected).expect("unprotect RTCP");
                    rtc::rtcp::packet::unmarshal(&mut plain).expect("unmarshal RTCP")
                },
            )
        });
    }
    group.finish();
}

fn chain_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("interceptor_chain");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in compounds() {
        let mut chain = interceptor_chain();
        let message = AttributedPacket::new(Packet::Rtcp(unmarshal(&raw)));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            batched(
                b,
                Outputs::Kept,
                || tagged_attributed(message.clone()),
                |message| through(&mut chain, message),
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("keyframe_feedback");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in compounds() {
        let mut interceptor = KeyframeFeedback::default();
        let message = AttributedPacket::new(Packet::Rtcp(unmarshal(&raw)));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            batched(
                b,
                Outputs::Kept,
                || tagged_attributed(message.clone()),
                |message| through(&mut interceptor, message),
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("is_keyframe_request");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in compounds() {
        let packets = unmarshal(&raw);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                black_box(&packets)
                    .iter()
                    .any(|p| is_keyframe_request(p.as_ref()))
            })
        });
    }
    group.finish();
}

fn request_keyframe(c: &mut Criterion) {
    let mut group = c.benchmark_group("camera_feed_request_keyframe");
    group.throughput(Throughput::Elements(1));
    let (feed, source) = camera_feed();
    let keyframe = keyframe_packet();
    // What the cases below rely on: a request after a keyframe is forwarded, the next is merged
    // (the feed keeps time in milliseconds; requests in the keyframe's millisecond all go).
    feed.request_keyframe();
    std::thread::sleep(Duration::from_millis(2));
    feed.publish(keyframe.clone());
    std::thread::sleep(Duration::from_millis(2));
    feed.request_keyframe();
    feed.request_keyframe();
    assert_eq!(
        source.0.load(Ordering::Relaxed),
        2,
        "forwarded twice, merged once"
    );
    group.bench_function("merged", |b| b.iter(|| black_box(&feed).request_keyframe()));
    group.bench_function("forwarded", |b| {
        b.iter(|| {
            feed.publish(black_box(keyframe.clone()));
            black_box(&feed).request_keyframe();
        })
    });
    group.bench_function("publish_keyframe_packet", |b| {
        b.iter(|| feed.publish(black_box(keyframe.clone())))
    });
    group.finish();
}

/// One protected datagram from the viewer, all the way to the camera feed; frees what it made.
struct Receiver {
    srtcp: Context,
    chain: Box<dyn Interceptor>,
    feed: Arc<CameraFeed>,
}

impl Receiver {
    fn new() -> Receiver {
        Receiver {
            srtcp: srtcp_context(Some(64)),
            chain: Box::new(interceptor_chain()),
            feed: camera_feed().0,
        }
    }

    fn receive(&mut self, datagram: &[u8]) {
        let mut plain = self.srtcp.decrypt_rtcp(datagram).expect("unprotect RTCP");
        let packets = rtc::rtcp::packet::unmarshal(&mut plain).expect("unmarshal RTCP");
        if let Some(out) = through(&mut self.chain, tagged(packets)) {
            react(&self.feed, out);
        }
    }
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("viewer_rtcp_to_camera");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in compounds() {
        let mut sender = srtcp_context(None);
        let mut receiver = Receiver::new();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            batched(
                b,
                Outputs::Dropped,
                || sender.encrypt_rtcp(&raw).expect("protect RTCP"),
                |datagram| receiver.receive(&datagram),
            )
        });
    }
    group.finish();
}

/// Heap allocations per call of `operation` (averaged over 1000 calls after 100 to settle).
fn allocations_per_call(mut operation: impl FnMut()) -> f64 {
    for _ in 0..100 {
        operation();
    }
    let before = counting_allocator::allocations();
    for _ in 0..1000 {
        operation();
    }
    (counting_allocator::allocations() - before) as f64 / 1000.0
}

fn allocation_summary() {
    println!("\nrtcp_handling: heap allocations per received compound packet");
    println!(
        "{:<18} {:>6} {:>13} {:>10} {:>18} {:>17} {:>16}",
        "packet",
        "bytes",
        "decrypt_rtcp",
        "unmarshal",
        "interceptor chain",
        "keyframe_feedback",
        "viewer→camera"
    );
    for (name, raw) in compounds() {
        let mut sender = srtcp_context(None);
        let mut srtcp = srtcp_context(Some(64));
        let protected: Vec<BytesMut> = (0..1100)
            .map(|_| sender.encrypt_rtcp(&raw).expect("protect RTCP"))
            .collect();
        let mut next = protected.iter();
        let decrypt = allocations_per_call(|| {
            drop(
                srtcp
                    .decrypt_rtcp(next.next().expect("enough packets"))
                    .expect("unprotect"),
            );
        });
        let unmarshal_allocations = allocations_per_call(|| {
            let mut plain = decrypted(&raw);
            drop(rtc::rtcp::packet::unmarshal(&mut plain).expect("unmarshal"));
        }) - allocations_per_call(|| drop(decrypted(&raw)));
        let message = AttributedPacket::new(Packet::Rtcp(unmarshal(&raw)));
        let cloning = allocations_per_call(|| drop(tagged_attributed(message.clone())));
        let mut chain = interceptor_chain();
        let chain_allocations = allocations_per_call(|| {
            drop(through(&mut chain, tagged_attributed(message.clone())));
        }) - cloning;
        let mut interceptor = KeyframeFeedback::default();
        let feedback = allocations_per_call(|| {
            drop(through(
                &mut interceptor,
                tagged_attributed(message.clone()),
            ));
        }) - cloning;
        let mut receiver = Receiver::new();
        let protected: Vec<BytesMut> = (0..1100)
            .map(|_| sender.encrypt_rtcp(&raw).expect("protect RTCP"))
            .collect();
        let mut next = protected.iter();
        let whole = allocations_per_call(|| receiver.receive(next.next().expect("enough packets")));
        println!(
            "{name:<18} {:>6} {decrypt:>13.1} {unmarshal_allocations:>10.1} {chain_allocations:>18.1} {feedback:>17.1} {whole:>16.1}",
            raw.len()
        );
    }
}

criterion_group! {
    name = benches;
    config = short_criterion::config();
    targets = unmarshal_bench, srtcp_receive, chain_bench, request_keyframe, end_to_end
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    allocation_summary();
    println!("\nrtcp_handling: thrpt is RTCP packets (or requests) per second on one core.");
}
