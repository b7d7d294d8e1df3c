//! What the quality metrics cost on the media path, so that they can stay on in production:
//!
//! - `relay_latency_record`: `RelayLatency::record`, what an egress shard does once per camera
//!   packet it forwarded (weighted by the viewers it went to), after the batch's send. Its cost
//!   per copy is this figure divided by the viewers per packet (printed for 1, 10, 200 and 1000).
//! - `prometheus_histogram_observe`: for comparison, the prometheus crate's `Histogram::observe`,
//!   which a per-copy histogram would pay once per viewer per packet.
//! - `instant_now`: the one clock read the shard adds per send batch.
//! - `viewer_feedback_read/rr_sdes`: `ViewerFeedback::read` + `record` of a viewer's periodic
//!   receiver report (about one per second per viewer): its cost is per report, not per packet.
//!
//! `cargo bench --bench metrics_cost` (add `-- --quick` for CI's quick mode).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group};
use rtc::rtcp::Packet;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use straja_gateway::metrics::Metrics;
use straja_gateway::metrics::relay_latency::RelayLatency;
use straja_gateway::metrics::viewer_quality::Kind;
use straja_gateway::webrtc::rtcp_quality::{SentStream, ViewerFeedback, ntp_short};

fn relay_latency(c: &mut Criterion) {
    let latency = RelayLatency::new();
    let mut micros = 0u64;
    c.bench_function("relay_latency_record", |b| {
        b.iter(|| {
            micros = (micros + 37) % 3000;
            latency.record(black_box(Duration::from_micros(micros)), black_box(200));
        })
    });
    let histogram = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        "bench_seconds",
        "comparison",
    ))
    .expect("histogram");
    c.bench_function("prometheus_histogram_observe", |b| {
        b.iter(|| histogram.observe(black_box(0.000_4)))
    });
    c.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
}

fn viewer_feedback(c: &mut Criterion) {
    let metrics = Metrics::new();
    let quality = metrics.camera("gate").quality;
    let streams = [SentStream {
        ssrc: 1111,
        clock_rate: 90_000,
        kind: Kind::Video,
    }];
    let now = SystemTime::now();
    let packets: Vec<Box<dyn Packet>> = vec![
        Box::new(ReceiverReport {
            ssrc: 9,
            reports: vec![ReceptionReport {
                ssrc: 1111,
                fraction_lost: 1,
                jitter: 450,
                last_sender_report: ntp_short(now).wrapping_sub(655),
                delay: 300,
                ..Default::default()
            }],
            ..Default::default()
        }),
        Box::new(SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: 9,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: "viewer-cname-0123456789".into(),
                }],
            }],
        }),
    ];
    c.bench_function("viewer_feedback_read/rr_sdes", |b| {
        b.iter(|| {
            let feedback = ViewerFeedback::read(black_box(&packets), &streams, now);
            feedback.record(&quality);
            black_box(feedback.reports.len())
        })
    });
}

criterion_group!(benches, relay_latency, viewer_feedback);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!(
        "\nmetrics_cost: relay_latency_record runs once per camera packet and batch; its cost per \
         copy is its time divided by the viewers the packet went to (at 200 viewers, 1/200 of it)."
    );
}
