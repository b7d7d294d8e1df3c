//! The watchdog's judgement: ping systemd (`WATCHDOG=1`) only while every heartbeat is younger
//! than the watchdog interval. A loop that has not turned for that long is stalled; pings stop,
//! the reason is logged once, and systemd restarts the service when its `WatchdogSec=` runs out.
//! Should the loop turn again first, pings resume (and that is logged too).

use std::time::Duration;

/// The shortest stall limit: an idle egress shard turns only every
/// [`IDLE_WAKE`](crate::webrtc::egress_shard::IDLE_WAKE), so a younger heartbeat limit would take
/// an idle shard for a stalled one. With a `WatchdogSec=` shorter than this, a stall is noticed
/// after this long rather than the interval (and systemd acts one interval later).
pub const MIN_STALL_LIMIT: Duration =
    Duration::from_secs(2 * crate::webrtc::egress_shard::IDLE_WAKE.as_secs());

/// What to do at a watchdog check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// All loops turn: send `WATCHDOG=1`.
    Ping,
    /// A loop is stalled: send nothing.
    Withhold {
        /// The stalled loop.
        stalled: String,
    },
}

/// The watchdog's state between checks.
#[derive(Debug)]
pub struct Watchdog {
    interval: Duration,
    withholding: bool,
}

impl Watchdog {
    /// A watchdog for systemd's `interval` (`$WATCHDOG_USEC`).
    pub fn new(interval: Duration) -> Watchdog {
        Watchdog {
            interval,
            withholding: false,
        }
    }

    /// How often to ping: half the interval, as `sd_watchdog_enabled(3)` advises.
    pub fn ping_period(&self) -> Duration {
        self.interval / 2
    }

    /// A heartbeat older than this is a stalled loop: the interval itself, or
    /// [`MIN_STALL_LIMIT`] if that is longer.
    pub fn stall_limit(&self) -> Duration {
        self.interval.max(MIN_STALL_LIMIT)
    }

    /// Judges the stalest heartbeat (its name and age; `None` when there is none), logging when
    /// pings stop or resume.
    pub fn check(&mut self, stalest: Option<(&str, Duration)>) -> Verdict {
        match stalest {
            Some((name, age)) if age > self.stall_limit() => {
                if !self.withholding {
                    self.withholding = true;
                    tracing::error!(
                        stalled = name,
                        age_ms = age.as_millis() as u64,
                        limit_ms = self.stall_limit().as_millis() as u64,
                        "watchdog: {name} has not run for {:.1} s; no more WATCHDOG=1 pings \
                         (systemd restarts the service once WatchdogSec runs out)",
                        age.as_secs_f64()
                    );
                }
                Verdict::Withhold {
                    stalled: name.to_owned(),
                }
            }
            _ => {
                if self.withholding {
                    self.withholding = false;
                    tracing::warn!("watchdog: every loop runs again; WATCHDOG=1 pings resume");
                }
                Verdict::Ping
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_while_heartbeats_are_fresh_and_withholds_once_one_is_older_than_the_interval() {
        let mut watchdog = Watchdog::new(Duration::from_secs(2));
        assert_eq!(watchdog.ping_period(), Duration::from_secs(1));
        assert_eq!(watchdog.check(None), Verdict::Ping);
        assert_eq!(
            watchdog.check(Some(("egress shard 0", Duration::from_millis(900)))),
            Verdict::Ping
        );
        assert_eq!(
            watchdog.check(Some(("egress shard 0", Duration::from_secs(2)))),
            Verdict::Ping
        );
        let stalled = Verdict::Withhold {
            stalled: "egress shard 1".into(),
        };
        assert_eq!(
            watchdog.check(Some(("egress shard 1", Duration::from_millis(2001)))),
            stalled
        );
        assert_eq!(
            watchdog.check(Some(("egress shard 1", Duration::from_secs(9)))),
            stalled
        );
        assert_eq!(
            watchdog.check(Some(("egress shard 1", Duration::from_millis(10)))),
            Verdict::Ping
        );
    }

    #[test]
    fn a_short_interval_does_not_take_an_idle_shard_for_a_stalled_one() {
        let mut watchdog = Watchdog::new(Duration::from_millis(500));
        assert_eq!(watchdog.ping_period(), Duration::from_millis(250));
        assert_eq!(watchdog.stall_limit(), MIN_STALL_LIMIT);
        assert_eq!(
            watchdog.check(Some(("egress shard 0", Duration::from_millis(1100)))),
            Verdict::Ping
        );
        assert_eq!(
            Watchdog::new(Duration::from_secs(30)).stall_limit(),
            Duration::from_secs(30)
        );
    }
}
