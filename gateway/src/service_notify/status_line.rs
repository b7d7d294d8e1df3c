//! The one-line status systemd shows (`systemctl status straja`: "Status: …"), e.g.
//! `3/4 cameras up, 12 viewers`, sent when it changes and at most once per [`MIN_GAP`].

use std::time::{Duration, Instant};

/// The least time between two status updates.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// The status text for `up` of `cameras` cameras up and `viewers` viewer sessions open.
pub fn status_line(up: usize, cameras: usize, viewers: usize) -> String {
    format!(
        "{up}/{cameras} camera{} up, {viewers} viewer{}",
        if cameras == 1 { "" } else { "s" },
        if viewers == 1 { "" } else { "s" }
    )
}

/// Decides which status lines to send: changed ones, no two within [`MIN_GAP`] (a change in
/// between is sent once the gap has passed, if it still holds).
#[derive(Debug, Default)]
pub struct StatusUpdates {
    sent: Option<(String, Instant)>,
}

impl StatusUpdates {
    /// Updates that have sent nothing yet.
    pub fn new() -> StatusUpdates {
        StatusUpdates::default()
    }

    /// Notes that `line` was sent at `now` (e.g. with `READY=1`).
    pub fn sent(&mut self, line: String, now: Instant) {
        self.sent = Some((line, now));
    }

    /// `line` if it should be sent at `now` (and notes it as sent), else `None`.
    pub fn next(&mut self, line: String, now: Instant) -> Option<String> {
        if let Some((last, at)) = &self.sent
            && (*last == line || now.saturating_duration_since(*at) < MIN_GAP)
        {
            return None;
        }
        self.sent = Some((line.clone(), now));
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_cameras_up_and_viewers() {
        assert_eq!(status_line(3, 4, 12), "3/4 cameras up, 12 viewers");
        assert_eq!(status_line(1, 1, 1), "1/1 camera up, 1 viewer");
        assert_eq!(status_line(0, 0, 0), "0/0 cameras up, 0 viewers");
    }

    #[test]
    fn sends_changes_only_and_no_two_within_the_gap() {
        let t0 = Instant::now();
        let mut updates = StatusUpdates::new();
        assert_eq!(updates.next("a".into(), t0), Some("a".into()));
        assert_eq!(updates.next("a".into(), t0 + Duration::from_secs(5)), None);
        assert_eq!(
            updates.next("b".into(), t0 + Duration::from_millis(5500)),
            Some("b".into())
        );
        // A change 100 ms later waits for the gap; it goes once the gap has passed.
        assert_eq!(
            updates.next("c".into(), t0 + Duration::from_millis(5600)),
            None
        );
        assert_eq!(
            updates.next("c".into(), t0 + Duration::from_millis(6500)),
            Some("c".into())
        );
        updates.sent("d".into(), t0 + Duration::from_secs(10));
        assert_eq!(updates.next("d".into(), t0 + Duration::from_secs(20)), None);
    }
}
