//! Rate limit on password guessing: each source (an IPv4 address, or an IPv6 /64, since one host
//! holds a whole /64) has a bucket of `per_minute` attempts that refills evenly over a minute.
//! An attempt takes one; a successful login gives it back, so only failures count.
//!
//! Memory is bounded: at most [`MAX_SOURCES`] buckets. When full, buckets that have refilled
//! (idle sources) are dropped; if none has, new sources share one overflow bucket, so that an
//! attacker spreading guesses over many addresses is still held to `per_minute` in all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sources tracked at once.
pub const MAX_SOURCES: usize = 4096;

/// Which bucket a source address uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4(u32),
    V6Prefix(u64),
    Overflow,
}

impl SourceKey {
    fn of(address: IpAddr) -> SourceKey {
        match address {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(u32::from(v4)),
                None => SourceKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The limiter.
pub struct LoginThrottle {
    per_minute: f64,
    buckets: Mutex<HashMap<SourceKey, Bucket>>,
    capacity: usize,
}

/// A login attempt allowed to go ahead; report how it ended.
#[must_use = "report the outcome with succeeded() or failed()"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    key: SourceKey,
}

impl Attempt<'_> {
    /// The password was right: the attempt does not count.
    pub fn succeeded(self) {
        self.throttle.refund(self.key);
    }

    /// The password was wrong: the attempt counts.
    pub fn failed(self) {}
}

impl LoginThrottle {
    /// A limiter allowing `per_minute` failed attempts per source per minute.
    pub fn new(per_minute: u32) -> LoginThrottle {
        Self::with_capacity(per_minute, MAX_SOURCES)
    }

    fn with_capacity(per_minute: u32, capacity: usize) -> LoginThrottle {
        LoginThrottle {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
        bucket.updated = now;
    }

    /// Takes an attempt for `source`, or says how long to wait before the next one.
    pub fn attempt(&self, source: IpAddr) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = SourceKey::of(source);
        if !buckets.contains_key(&key) && buckets.len() >= self.capacity {
            buckets.retain(|k, b| {
                self.refill(b, now);
                *k == SourceKey::Overflow || b.tokens < self.per_minute
            });
            if buckets.len() >= self.capacity {
                key = SourceKey::Overflow;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        self.refill(bucket, now);
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) * 60.0 / self.per_minute;
            return Err(Duration::from_secs_f64(wait.max(1.0)).min(Duration::from_secs(60)));
        }
        bucket.tokens -= 1.0;
        Ok(Attempt {
            throttle: self,
            key,
        })
    }

    fn refund(&self, key: SourceKey) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(&key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.per_minute);
        }
    }

    /// Sources tracked now (bounded by [`MAX_SOURCES`] plus the overflow bucket).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn failures_are_limited_per_source_and_successes_do_not_count() {
        let throttle = LoginThrottle::new(3);
        for _ in 0..10 {
            throttle.attempt(ip("10.0.0.1")).unwrap().succeeded();
        }
        for _ in 0..3 {
            throttle.attempt(ip("10.0.0.1")).unwrap().failed();
        }
        let wait = throttle.attempt(ip("10.0.0.1")).err().unwrap();
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(60));
        throttle.attempt(ip("10.0.0.2")).unwrap().failed();
        throttle.attempt(ip("::ffff:10.0.0.3")).unwrap().succeeded();
    }

    #[test]
    fn one_ipv6_host_is_one_source_across_its_64() {
        let throttle = LoginThrottle::new(2);
        throttle.attempt(ip("2001:db8::1")).unwrap().failed();
        throttle.attempt(ip("2001:db8::2")).unwrap().failed();
        assert!(throttle.attempt(ip("2001:db8::ffff:3")).is_err());
        assert!(throttle.attempt(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_a_spray_of_addresses_shares_one_bucket() {
        let throttle = LoginThrottle::with_capacity(2, 100);
        let mut refused = 0;
        for i in 0..1000u32 {
            match throttle.attempt(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))) {
                Ok(attempt) => attempt.failed(),
                Err(_) => refused += 1,
            }
        }
        assert!(throttle.tracked() <= 101, "{}", throttle.tracked());
        assert!(
            refused >= 890,
            "the overflow bucket held the spray: {refused}"
        );
    }
}
