//! Reconnection delays: exponential backoff with jitter (0.5 s doubling, capped at 10 s).

use std::time::Duration;

/// The first delay after a failure.
pub(crate) const INITIAL: Duration = Duration::from_millis(500);
/// The longest delay between two attempts.
pub(crate) const MAX: Duration = Duration::from_secs(10);
/// Each delay is the nominal one times a factor drawn from this range, so that cameras that
/// failed together (a switch rebooting) do not all come back in the same instant.
const JITTER: std::ops::RangeInclusive<f64> = 0.8..=1.2;

/// The delays between reconnection attempts of one camera.
#[derive(Debug)]
pub(crate) struct Backoff {
    nominal: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { nominal: INITIAL }
    }

    /// Back to the first delay: the last attempt ran and delivered packets.
    pub(crate) fn reset(&mut self) {
        self.nominal = INITIAL;
    }

    /// The delay before the next attempt, with random jitter.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = rand::random_range(JITTER);
        self.next_delay_with(factor)
    }

    /// The delay before the next attempt, the nominal one times `jitter_factor`
    /// (never above [`MAX`]).
    fn next_delay_with(&mut self, jitter_factor: f64) -> Duration {
        let delay = self.nominal.mul_f64(jitter_factor).min(MAX);
        self.nominal = (self.nominal * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_half_a_second_up_to_ten_seconds() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay_with(1.0)).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    }

    #[test]
    fn reset_goes_back_to_the_first_delay() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay_with(1.0);
        }
        backoff.reset();
        assert_eq!(backoff.next_delay_with(1.0), INITIAL);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_under_the_cap() {
        let mut backoff = Backoff::new();
        for round in 0..20 {
            let delay = backoff.next_delay();
            let nominal = INITIAL.saturating_mul(1 << round.min(5)).min(MAX);
            assert!(
                delay >= nominal.mul_f64(0.8),
                "{delay:?} < 0.8 × {nominal:?}"
            );
            assert!(delay <= nominal.mul_f64(1.2).min(MAX), "{delay:?} too long");
        }
    }
}
