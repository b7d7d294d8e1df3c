//! The timers of an egress shard's sessions: one deadline per session key, earliest first.
//!
//! A min-heap with lazy deletion: setting a new deadline pushes an entry and remembers the
//! current one per key; stale entries are skipped when they surface, and the heap is rebuilt when
//! they outnumber the live ones, so its size stays bounded by a small multiple of the sessions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// Deadlines by key.
#[derive(Default)]
pub struct DeadlineQueue {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    current: HashMap<u64, Instant>,
}

impl DeadlineQueue {
    /// An empty queue.
    pub fn new() -> DeadlineQueue {
        DeadlineQueue::default()
    }

    /// Sets (or moves) `key`'s deadline.
    pub fn set(&mut self, key: u64, deadline: Instant) {
        if self.current.insert(key, deadline) == Some(deadline) {
            return;
        }
        self.heap.push(Reverse((deadline, key)));
        if self.heap.len() > 4 * self.current.len() + 64 {
            self.heap = self
                .current
                .iter()
                .map(|(&key, &deadline)| Reverse((deadline, key)))
                .collect();
        }
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: u64) {
        self.current.remove(&key);
    }

    /// The earliest live deadline.
    pub fn earliest(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Takes one key whose deadline is at or before `now` (its deadline is then cleared).
    pub fn pop_due(&mut self, now: Instant) -> Option<u64> {
        self.skip_stale();
        let Reverse((deadline, key)) = *self.heap.peek()?;
        if deadline > now {
            return None;
        }
        self.heap.pop();
        self.current.remove(&key);
        Some(key)
    }

    /// Live deadlines.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// True when no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    fn skip_stale(&mut self) {
        while let Some(Reverse((deadline, key))) = self.heap.peek() {
            if self.current.get(key) == Some(deadline) {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_keys_come_out_earliest_first_and_once() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut queue = DeadlineQueue::new();
        queue.set(1, at(30));
        queue.set(2, at(10));
        queue.set(3, at(20));
        queue.set(1, at(5)); // moved earlier: the old entry is stale
        queue.set(3, at(50)); // moved later
        queue.remove(2);
        assert_eq!(queue.earliest(), Some(at(5)));
        assert_eq!(queue.pop_due(at(25)), Some(1));
        assert_eq!(queue.pop_due(at(25)), None, "3 is due at 50 now, 2 is gone");
        assert_eq!(queue.earliest(), Some(at(50)));
        assert_eq!(queue.pop_due(at(60)), Some(3));
        assert_eq!(queue.pop_due(at(60)), None);
        assert!(queue.is_empty());
    }

    #[test]
    fn the_heap_stays_bounded_when_deadlines_move_often() {
        let t0 = Instant::now();
        let mut queue = DeadlineQueue::new();
        for round in 0..10_000u64 {
            queue.set(round % 10, t0 + Duration::from_micros(round));
        }
        assert_eq!(queue.len(), 10);
        assert!(queue.heap.len() <= 4 * 10 + 64 + 1, "{}", queue.heap.len());
        let mut keys = Vec::new();
        while let Some(key) = queue.pop_due(t0 + Duration::from_secs(1)) {
            keys.push(key);
        }
        keys.sort();
        assert_eq!(keys, (0..10).collect::<Vec<_>>());
    }
}
