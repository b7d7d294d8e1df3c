//! Heartbeats of the loops that must keep turning: each egress shard bumps its own at every turn
//! of its loop, and a task of the async runtime bumps one on a timer. The service watchdog
//! ([`crate::service_notify`]) reads how long ago the stalest of them last beat, and stops telling
//! systemd that all is well once one is older than the watchdog's interval.
//!
//! A beat is one relaxed atomic store of the milliseconds since the registry was made: cheap
//! enough for a hot loop, and nothing is locked on the way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The heartbeats of one process.
pub struct Heartbeats {
    epoch: Instant,
    beats: Mutex<Vec<(String, Arc<AtomicU64>)>>,
}

/// One loop's heartbeat (cheap to clone; every clone beats the same one).
#[derive(Clone)]
pub struct Heartbeat {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    /// Notes that the loop ran now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// Notes that the loop ran at `now` (for loops that have read the clock already).
    pub fn beat_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Heartbeats {
    /// An empty registry.
    pub fn new() -> Heartbeats {
        Heartbeats {
            epoch: Instant::now(),
            beats: Mutex::new(Vec::new()),
        }
    }

    /// A new heartbeat named `name` (in log lines: "egress shard 0", "the async runtime"), beaten
    /// once now.
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let heartbeat = Heartbeat {
            epoch: self.epoch,
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        heartbeat.beat();
        if let Ok(mut beats) = self.beats.lock() {
            beats.push((name.into(), heartbeat.last_ms.clone()));
        }
        heartbeat
    }

    /// The heartbeat that beat longest ago, with how long ago that was at `now`; `None` when
    /// there is none.
    pub fn stalest(&self, now: Instant) -> Option<(String, Duration)> {
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        let beats = self.beats.lock().ok()?;
        beats
            .iter()
            .map(|(name, last)| {
                let age = now_ms.saturating_sub(last.load(Ordering::Relaxed));
                (name, age)
            })
            .max_by_key(|(_, age)| *age)
            .map(|(name, age)| (name.clone(), Duration::from_millis(age)))
    }
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stalest_heartbeat_is_the_one_that_beat_longest_ago() {
        let heartbeats = Heartbeats::new();
        assert_eq!(heartbeats.stalest(Instant::now()), None);
        let start = Instant::now();
        let shard = heartbeats.register("egress shard 0");
        let runtime = heartbeats.register("the async runtime");
        shard.beat_at(start + Duration::from_secs(1));
        runtime.beat_at(start + Duration::from_secs(3));
        let (name, age) = heartbeats
            .stalest(start + Duration::from_secs(4))
            .expect("two heartbeats");
        assert_eq!(name, "egress shard 0");
        // Both instants are counted in whole milliseconds from the registry's epoch.
        assert!(
            age >= Duration::from_millis(2999) && age <= Duration::from_millis(3001),
            "{age:?}"
        );
        shard.beat_at(start + Duration::from_secs(5));
        let (name, _) = heartbeats
            .stalest(start + Duration::from_secs(5))
            .expect("two heartbeats");
        assert_eq!(name, "the async runtime");
    }

    #[test]
    fn a_clock_before_the_epoch_reads_as_no_age() {
        let heartbeats = Heartbeats::new();
        let beat = heartbeats.register("x");
        beat.beat_at(Instant::now() + Duration::from_secs(10));
        let (_, age) = heartbeats.stalest(Instant::now()).expect("one");
        assert_eq!(age, Duration::ZERO);
    }
}
