//! A fixed-size latency histogram in microseconds, log-linear like HdrHistogram: exact up to
//! 255 µs, then 128 buckets per power of two (every bucket is less than 0.8 % wide relative to its
//! values) up to 2^25 µs (33.5 s); larger values land in the last bucket. Recording is an index
//! computation and an increment: no allocation, no search. Histograms of the same layout merge by
//! adding their buckets (e.g. all viewers of a run into one).
//!
//! Serialised sparsely, as `[lowest value of the bucket in µs, count]` pairs for the non-empty
//! buckets, so that a thousand viewers' histograms stay small in JSON.

// A general-purpose helper: not every benchmark that includes it calls every method.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};

/// log2 of the buckets per power of two (relative precision 2^-7).
const PRECISION_BITS: u32 = 7;
/// Buckets per power of two.
const SUB_BUCKETS: u64 = 1 << PRECISION_BITS;
/// The largest power of two with buckets of its own: values up to 2^(MAX_EXPONENT+1) − 1 µs.
const MAX_EXPONENT: u32 = 24;
/// Number of buckets.
const BUCKETS: usize = ((MAX_EXPONENT - PRECISION_BITS + 2) as usize) * SUB_BUCKETS as usize;
/// Largest value with a bucket of its own (µs); larger values are recorded as this.
pub const MAX_TRACKED_US: u64 = (1 << (MAX_EXPONENT + 1)) - 1;

/// Latencies in microseconds: count, min, max, mean and percentiles (to < 0.8 %).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SparseHistogram", try_from = "SparseHistogram")]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    count: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("min_us", &self.min())
            .field("p50_us", &self.percentile(50.0))
            .field("p99_us", &self.percentile(99.0))
            .field("max_us", &self.max_us)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket a value (µs) falls in.
fn bucket_of(value_us: u64) -> usize {
    let value = value_us.min(MAX_TRACKED_US);
    if value < SUB_BUCKETS {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= PRECISION_BITS
    let shift = exponent - PRECISION_BITS;
    // (value >> shift) is in [SUB_BUCKETS, 2 * SUB_BUCKETS): buckets of width 2^shift.
    (u64::from(shift) * SUB_BUCKETS + (value >> shift)) as usize
}

/// The lowest and highest value (µs, inclusive) of bucket `index`.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return (index, index);
    }
    let shift = index / SUB_BUCKETS - 1;
    let mantissa = index - shift * SUB_BUCKETS;
    let low = mantissa << shift;
    (low, low + (1 << shift) - 1)
}

impl LatencyHistogram {
    /// An empty histogram (one allocation of about 19 KiB).
    pub fn new() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    /// Records one value in microseconds (values above [`MAX_TRACKED_US`] count as that).
    #[inline]
    pub fn record_us(&mut self, value_us: u64) {
        let value = value_us.min(MAX_TRACKED_US);
        self.counts[bucket_of(value)] += 1;
        self.count += 1;
        self.sum_us += value;
        self.min_us = self.min_us.min(value);
        self.max_us = self.max_us.max(value);
    }

    /// Records one value in nanoseconds (truncated to whole microseconds).
    #[inline]
    pub fn record_ns(&mut self, value_ns: u64) {
        self.record_us(value_ns / 1000);
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.count == 0 {
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        if self.count > 0 {
            self.counts.fill(0);
        }
        self.count = 0;
        self.sum_us = 0;
        self.min_us = u64::MAX;
        self.max_us = 0;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest value (µs), 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min_us }
    }

    /// Largest value (µs), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max_us
    }

    /// Mean value (µs), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64
        }
    }

    /// The value (µs) at or below which `p` percent of the values lie (`p` in 0..=100): the
    /// highest value of the bucket holding that rank, never more than the largest value seen.
    /// 0 when empty; `percentile(0.0)` is the smallest value, `percentile(100.0)` the largest.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if p <= 0.0 {
            return self.min_us;
        }
        let p = p.min(100.0);
        // The rank (1-based) of the value sought: ceil(p% of count), at least 1 (the tiny
        // margin keeps 99.9 % of 10 000 at rank 9990 despite floating-point rounding).
        let exact_rank = p * self.count as f64 / 100.0;
        let rank = (exact_rank - exact_rank * 1e-12).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_bounds(index).1.min(self.max_us);
            }
        }
        self.max_us
    }
}

/// The serialised form: only non-empty buckets, as (lowest value in µs, count).
#[derive(Serialize, Deserialize)]
struct SparseHistogram {
    count: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
    buckets: Vec<(u64, u64)>,
}

impl From<LatencyHistogram> for SparseHistogram {
    fn from(histogram: LatencyHistogram) -> Self {
        SparseHistogram {
            count: histogram.count,
            sum_us: histogram.sum_us,
            min_us: histogram.min(),
            max_us: histogram.max_us,
            buckets: histogram
                .counts
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(index, &n)| (bucket_bounds(index).0, n))
                .collect(),
        }
    }
}

impl TryFrom<SparseHistogram> for LatencyHistogram {
    type Error = String;

    fn try_from(sparse: SparseHistogram) -> Result<Self, Self::Error> {
        let mut histogram = LatencyHistogram::new();
        let mut total = 0u64;
        for (low, n) in sparse.buckets {
            histogram.counts[bucket_of(low)] += n;
            total += n;
        }
        if total != sparse.count {
            return Err(format!(
                "latency histogram: buckets hold {total} values but count says {}",
                sparse.count
            ));
        }
        histogram.count = sparse.count;
        histogram.sum_us = sparse.sum_us;
        histogram.min_us = if sparse.count == 0 {
            u64::MAX
        } else {
            sparse.min_us
        };
        histogram.max_us = sparse.max_us;
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    // Bench targets are built with `--cfg test` but without the test harness, which drops the
    // #[test] functions and leaves this import unused there; `unit_tests.rs` runs them.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut expected_low = 0;
        for index in 0..BUCKETS {
            let (low, high) = bucket_bounds(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert!(high >= low);
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(high), index);
            // Relative width under 1/128 past the exact range.
            assert!((high - low + 1) as f64 <= 1.0_f64.max(low as f64 / 128.0));
            expected_low = high + 1;
        }
        assert_eq!(expected_low, MAX_TRACKED_US + 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000 {
            h.record_us(us);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 10_000);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.percentile(100.0), 10_000);
        for (p, exact) in [
            (50.0, 5_000u64),
            (99.0, 9_900),
            (99.9, 9_990),
            (10.0, 1_000),
        ] {
            let got = h.percentile(p);
            // Never below the exact value, at most one bucket (< 0.8 %) above.
            assert!(got >= exact, "p{p}: {got} < {exact}");
            assert!(got as f64 <= exact as f64 * 1.008, "p{p}: {got} vs {exact}");
        }
        assert!((h.mean() - 5_000.5).abs() < 1e-9);
        // Small values are exact.
        let mut small = LatencyHistogram::new();
        for us in [3, 3, 7, 200] {
            small.record_us(us);
        }
        assert_eq!(small.percentile(50.0), 3);
        assert_eq!(small.percentile(75.0), 7);
        assert_eq!(small.percentile(99.9), 200);
    }

    #[test]
    fn empty_and_out_of_range_values() {
        let mut h = LatencyHistogram::new();
        assert_eq!(
            (h.count(), h.min(), h.max(), h.percentile(99.0)),
            (0, 0, 0, 0)
        );
        assert_eq!(h.mean(), 0.0);
        h.record_ns(1_999); // 1 µs
        h.record_us(u64::MAX);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), MAX_TRACKED_US);
        assert_eq!(h.percentile(100.0), MAX_TRACKED_US);
        h.clear();
        assert_eq!((h.count(), h.min(), h.max()), (0, 0, 0));
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        let mut all = LatencyHistogram::new();
        for i in 0..5_000u64 {
            let value = (i * 7919) % 150_000;
            if i % 3 == 0 { &mut a } else { &mut b }.record_us(value);
            all.record_us(value);
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, all);
        for p in [50.0, 99.0, 99.9] {
            assert_eq!(merged.percentile(p), all.percentile(p));
        }
        merged.merge(&LatencyHistogram::new());
        assert_eq!(merged, all);
    }

    #[test]
    fn serialises_sparsely_and_round_trips() {
        let mut h = LatencyHistogram::new();
        for us in [12, 12, 850, 850, 851, 40_000, 123_456] {
            h.record_us(us);
        }
        let json = serde_json::to_string(&h).expect("serialise");
        assert!(json.len() < 200, "{json}");
        let back: LatencyHistogram = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, h);
        let empty: LatencyHistogram =
            serde_json::from_str(&serde_json::to_string(&LatencyHistogram::new()).unwrap())
                .unwrap();
        assert_eq!(empty, LatencyHistogram::new());
        let bad = r#"{"count":3,"sum_us":1,"min_us":1,"max_us":1,"buckets":[[1,1]]}"#;
        assert!(serde_json::from_str::<LatencyHistogram>(bad).is_err());
    }
}
