//! A bound on how fast one participant's page may send signalling messages: each `publish` or
//! `subscribe` makes the gateway negotiate a peer connection, so a page (or a script with an
//! invitee's token) that floods the socket would cost every consultation on the box. Past the
//! bound, messages are refused with an error until the window moves on.

use std::time::{Duration, Instant};

/// Messages a page may send per [`WINDOW`] (a page sends a handful per participant that comes or
/// goes, plus chat).
pub const MAX_MESSAGES: u32 = 40;
/// The window the bound applies to.
pub const WINDOW: Duration = Duration::from_secs(1);

/// One link's count.
#[derive(Debug)]
pub struct MessageRate {
    window_start: Instant,
    count: u32,
}

impl MessageRate {
    /// A fresh count at `now`.
    pub fn new(now: Instant) -> MessageRate {
        MessageRate {
            window_start: now,
            count: 0,
        }
    }

    /// Counts a message at `now`; false when it is over the bound (refuse it).
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_MESSAGES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_and_the_next_window_is_fresh() {
        let start = Instant::now();
        let mut rate = MessageRate::new(start);
        for _ in 0..MAX_MESSAGES {
            assert!(rate.allow(start));
        }
        assert!(!rate.allow(start + Duration::from_millis(500)));
        assert!(rate.allow(start + WINDOW), "a new window");
    }
}
