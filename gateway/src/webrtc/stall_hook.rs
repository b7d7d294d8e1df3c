//! A test hook that stalls an egress shard on purpose, so that tests can see the service
//! watchdog stop pinging systemd when the media loop hangs.
//!
//! **For tests only.** It is off unless the environment variable `STRAJA_TEST_STALL_EGRESS` is
//! set to `AFTER_MS:FOR_MS`; then egress shard 0, once, `AFTER_MS` milliseconds after it started,
//! blocks its thread for `FOR_MS` milliseconds (at most 60 s), as a loop stuck in a blocking call
//! would. A value that does not parse is ignored, with a warning.

use std::time::{Duration, Instant};

/// The environment variable that arms the hook.
pub const STALL_ENV: &str = "STRAJA_TEST_STALL_EGRESS";
/// The longest stall the hook does.
const MAX_STALL: Duration = Duration::from_secs(60);

/// One stall to come.
#[derive(Debug, PartialEq, Eq)]
pub struct StallHook {
    at: Instant,
    duration: Duration,
}

impl StallHook {
    /// The stall the environment asks for, counted from `now`; `None` when it asks for none.
    pub fn from_env(now: Instant) -> Option<StallHook> {
        let value = std::env::var(STALL_ENV).ok()?;
        match StallHook::parse(&value, now) {
            Some(hook) => {
                tracing::warn!(
                    after_ms = hook.at.saturating_duration_since(now).as_millis() as u64,
                    for_ms = hook.duration.as_millis() as u64,
                    "{STALL_ENV} is set: egress shard 0 will stall on purpose (a test hook)"
                );
                Some(hook)
            }
            None => {
                tracing::warn!("{STALL_ENV}={value:?} is not AFTER_MS:FOR_MS; ignored");
                None
            }
        }
    }

    /// Parses `AFTER_MS:FOR_MS`, counted from `now`.
    pub fn parse(value: &str, now: Instant) -> Option<StallHook> {
        let (after, duration) = value.split_once(':')?;
        let after = Duration::from_millis(after.trim().parse().ok()?);
        let duration = Duration::from_millis(duration.trim().parse().ok()?).min(MAX_STALL);
        Some(StallHook {
            at: now.checked_add(after)?,
            duration,
        })
    }

    /// Blocks the calling thread for the stall's duration if it is due at `now`; returns true
    /// when it did (the hook is then spent).
    pub fn stall_if_due(&self, now: Instant) -> bool {
        if now < self.at {
            return false;
        }
        tracing::warn!(
            for_ms = self.duration.as_millis() as u64,
            "egress shard 0 stalls now, on purpose ({STALL_ENV})"
        );
        std::thread::sleep(self.duration);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_after_and_duration_and_refuses_the_rest() {
        let now = Instant::now();
        assert_eq!(
            StallHook::parse("1500:3000", now),
            Some(StallHook {
                at: now + Duration::from_millis(1500),
                duration: Duration::from_secs(3),
            })
        );
        assert_eq!(
            StallHook::parse("0:999999999", now).map(|h| h.duration),
            Some(MAX_STALL)
        );
        for bad in ["", "1500", ":", "a:b", "-1:5", "1:-5", "1:2:3"] {
            assert_eq!(StallHook::parse(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn stalls_only_once_due() {
        let now = Instant::now();
        let hook = StallHook::parse("1000:20", now).expect("valid");
        assert!(!hook.stall_if_due(now));
        let before = Instant::now();
        assert!(hook.stall_if_due(now + Duration::from_secs(1)));
        assert!(before.elapsed() >= Duration::from_millis(20));
    }
}
