//! The criterion settings of the per-packet microbenchmarks.

use std::time::Duration;

use criterion::Criterion;

/// 1 s of warm-up and 3 s of measurement per case (criterion's default is 3 + 5 s): the full run
/// stays within a few minutes on a shared machine, and quick mode (which stops after at most the
/// measurement time) within ~30 s. Command-line options override both.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
