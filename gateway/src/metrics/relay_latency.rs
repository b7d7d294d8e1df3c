//! `straja_relay_latency_seconds`: the time from a packet's arrival at the hub to its send on the
//! UDP socket, for every copy sent to a viewer. Cheap enough to stay on: the egress shards record
//! one sample per camera packet and flush, weighted by the viewers it went to (not one per
//! viewer), into fixed buckets of relaxed atomic counters; Prometheus's own histogram would cost
//! an observation per copy. Exposed through a custom collector as an ordinary histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto;

/// Upper bounds of the buckets, in microseconds (the last bucket, +Inf, is implied).
pub const BUCKETS_MICROS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

const NAME: &str = "straja_relay_latency_seconds";
const HELP: &str = "Time from a packet's arrival at the hub to its send on the UDP socket, per \
                    copy sent to a viewer.";

/// The histogram's counters.
pub struct RelayLatency {
    /// Per bucket (not cumulative), the last one +Inf.
    counts: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_nanos: AtomicU64,
    desc: Desc,
}

impl RelayLatency {
    /// An empty histogram.
    pub fn new() -> RelayLatency {
        RelayLatency {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            desc: Desc::new(
                NAME.to_owned(),
                HELP.to_owned(),
                Vec::new(),
                Default::default(),
            )
            .expect("a valid metric description"),
        }
    }

    /// Records `copies` packets that took `latency` from the hub to the socket.
    pub fn record(&self, latency: Duration, copies: u64) {
        if copies == 0 {
            return;
        }
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = BUCKETS_MICROS.partition_point(|&bound| bound < micros);
        self.counts[bucket].fetch_add(copies, Ordering::Relaxed);
        let nanos = latency.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.sum_nanos
            .fetch_add(nanos.saturating_mul(copies), Ordering::Relaxed);
    }

    /// How many copies were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Default for RelayLatency {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for RelayLatency {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BUCKETS_MICROS.len());
        for (bound, count) in BUCKETS_MICROS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(*bound as f64 / 1e6);
            bucket.set_cumulative_count(cumulative);
            buckets.push(bucket);
        }
        let total = cumulative + self.counts[BUCKETS_MICROS.len()].load(Ordering::Relaxed);
        let mut histogram = proto::Histogram::default();
        histogram.set_sample_count(total);
        histogram.set_sample_sum(self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        histogram.set_bucket(buckets);
        let mut metric = proto::Metric::default();
        metric.set_histogram(histogram);
        let mut family = proto::MetricFamily::default();
        family.set_name(NAME.to_owned());
        family.set_help(HELP.to_owned());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_land_in_their_bucket_with_their_weight() {
        let latency = RelayLatency::new();
        latency.record(Duration::from_micros(80), 10);
        latency.record(Duration::from_micros(100), 1);
        latency.record(Duration::from_millis(3), 2);
        latency.record(Duration::from_secs(2), 1);
        latency.record(Duration::from_micros(5), 0);
        assert_eq!(latency.count(), 14);
        let family = &latency.collect()[0];
        let histogram = family.get_metric()[0].get_histogram();
        assert_eq!(histogram.get_sample_count(), 14);
        let buckets = histogram.get_bucket();
        assert_eq!(buckets[0].cumulative_count(), 0, "≤ 50 µs");
        assert_eq!(
            buckets[1].cumulative_count(),
            11,
            "≤ 100 µs (inclusive bound)"
        );
        assert_eq!(buckets[6].cumulative_count(), 13, "≤ 5 ms");
        assert_eq!(
            buckets[11].cumulative_count(),
            13,
            "≤ 250 ms; 2 s is beyond"
        );
        let expected = 10.0 * 80e-6 + 100e-6 + 2.0 * 3e-3 + 2.0;
        assert!((histogram.get_sample_sum() - expected).abs() < 1e-9);
    }
}
