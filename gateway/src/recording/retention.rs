//! Retention (data minimisation): which of a camera's segments are due for deletion, by age and by
//! the camera's total size. A pure decision, so that it is tested on its own; the sweep that acts
//! on it lives with the recorder.
//!
//! Never the segment being written. By age: a segment whose last frame is older than the limit.
//! By size: the oldest finished segments, until the camera's total is within its limit.

use std::time::Duration;

use super::segment_catalogue::SegmentInfo;

/// Why a segment is deleted (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionReason {
    /// Older than the camera's `record_retain_hours`.
    Age,
    /// Beyond the camera's `record_max_bytes`.
    Size,
}

impl DeletionReason {
    /// `age` or `size`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionReason::Age => "age",
            DeletionReason::Size => "size",
        }
    }
}

/// A camera's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep segments for this long after their last frame.
    pub max_age: Option<Duration>,
    /// Keep at most this many bytes of the camera's segments.
    pub max_bytes: Option<u64>,
}

/// The segments (by start) to delete from `segments` (oldest first) at `now_ms`.
pub fn due_for_deletion(
    segments: &[SegmentInfo],
    policy: RetentionPolicy,
    now_ms: u64,
) -> Vec<(u64, DeletionReason)> {
    let mut due = Vec::new();
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    for segment in segments {
        if segment.recording {
            continue;
        }
        let too_old = policy
            .max_age
            .is_some_and(|age| segment.end_ms.saturating_add(age.as_millis() as u64) < now_ms);
        let too_big = policy.max_bytes.is_some_and(|max| total > max);
        let reason = match (too_old, too_big) {
            (true, _) => DeletionReason::Age,
            (false, true) => DeletionReason::Size,
            (false, false) => continue,
        };
        total -= segment.bytes;
        due.push((segment.start_ms, reason));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const HOUR: u64 = 3_600_000;

    fn segment(start_ms: u64, bytes: u64, recording: bool) -> SegmentInfo {
        SegmentInfo {
            camera: "gate".into(),
            start_ms,
            end_ms: start_ms + 60_000,
            bytes,
            recording,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn age_deletes_only_what_ended_before_the_limit() {
        let now = 100 * HOUR;
        let segments = [
            segment(now - 50 * HOUR, 10, false),
            segment(now - 25 * HOUR, 10, false),
            segment(now - 23 * HOUR, 10, false),
            segment(now - HOUR, 10, true),
        ];
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(24 * 3600)),
            max_bytes: None,
        };
        let due = due_for_deletion(&segments, policy, now);
        assert_eq!(
            due,
            [
                (now - 50 * HOUR, DeletionReason::Age),
                (now - 25 * HOUR, DeletionReason::Age)
            ]
        );
    }

    #[test]
    fn size_deletes_the_oldest_until_within_the_limit_never_the_live_one() {
        let segments = [
            segment(1000, 40, false),
            segment(2000, 40, false),
            segment(3000, 40, false),
            segment(4000, 40, true),
        ];
        let policy = RetentionPolicy {
            max_age: None,
            max_bytes: Some(100),
        };
        let due = due_for_deletion(&segments, policy, 5000);
        assert_eq!(
            due,
            [(1000, DeletionReason::Size), (2000, DeletionReason::Size)]
        );
        let tiny = RetentionPolicy {
            max_age: None,
            max_bytes: Some(1),
        };
        let due = due_for_deletion(&segments, tiny, 5000);
        assert_eq!(due.len(), 3, "everything but the segment being written");
    }

    #[test]
    fn no_limits_delete_nothing() {
        let segments = [segment(1000, 40, false)];
        let none = RetentionPolicy {
            max_age: None,
            max_bytes: None,
        };
        assert!(due_for_deletion(&segments, none, u64::MAX).is_empty());
    }
}
