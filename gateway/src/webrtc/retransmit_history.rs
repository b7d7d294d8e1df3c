//! What a viewer was sent lately, to answer its NACKs (RFC 4585 §6.2.1): the fourth piece of the
//! egress path of our own that issue 7 plans (`benches/EGRESS-PLAN.md`).
//!
//! A ring of the last [`HISTORY`] packets by their sequence number on the viewer's stream. An
//! entry is whatever the sender needs to send the packet again byte for byte (for the egress
//! path: the rewritten header and the camera's sequence number, whose payload the camera's
//! recent packets keep; no reference to the payload per copy), so a resend is sealed under the same nonce over the same bytes. Resends are
//! budgeted: at most [`MAX_RESENDS_PER_SECOND`] a second per viewer, so that a viewer on a poor
//! link (or one that asks for everything) cannot make the gateway send it more than a fraction
//! over its stream.

use std::time::{Duration, Instant};

/// Packets remembered per viewer stream (≈ 2 s of a 2 Mbit/s camera).
pub const HISTORY: usize = 512;
/// Resends per viewer per second at most (≈ 40 % over a 2 Mbit/s camera's ~240 packets/s).
pub const MAX_RESENDS_PER_SECOND: u32 = 100;

/// The last packets sent on one viewer stream.
pub struct RetransmitHistory<T> {
    slots: Vec<Option<(u16, T)>>,
    budget: u32,
    budget_since: Option<Instant>,
}

impl<T: Clone> Default for RetransmitHistory<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> RetransmitHistory<T> {
    /// An empty history.
    pub fn new() -> RetransmitHistory<T> {
        RetransmitHistory {
            slots: vec![None; HISTORY],
            budget: MAX_RESENDS_PER_SECOND,
            budget_since: None,
        }
    }

    /// Remembers packet `sequence` (replacing the one [`HISTORY`] packets older in its slot).
    pub fn sent(&mut self, sequence: u16, packet: T) {
        self.slots[usize::from(sequence) % HISTORY] = Some((sequence, packet));
    }

    /// The packets a NACK's pairs (`packet id`, `bitmask of the 16 following`) ask for that are
    /// still remembered, oldest request first, within the resend budget at `now`. Sequences
    /// asked for twice in one NACK are sent once.
    pub fn requested(&mut self, pairs: &[(u16, u16)], now: Instant) -> Vec<(u16, T)> {
        let since = *self.budget_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= Duration::from_secs(1) {
            self.budget = MAX_RESENDS_PER_SECOND;
            self.budget_since = Some(now);
        }
        let mut out: Vec<(u16, T)> = Vec::new();
        for &(id, mask) in pairs.iter().take(HISTORY) {
            let wanted = std::iter::once(id).chain(
                (0..16)
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| id.wrapping_add(bit + 1)),
            );
            for sequence in wanted {
                if self.budget == 0 {
                    return out;
                }
                if out.iter().any(|(s, _)| *s == sequence) {
                    continue;
                }
                if let Some((kept, packet)) = &self.slots[usize::from(sequence) % HISTORY]
                    && *kept == sequence
                {
                    out.push((sequence, packet.clone()));
                    self.budget -= 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nack_gets_the_packets_still_remembered_and_only_those() {
        let mut history = RetransmitHistory::new();
        for sequence in 65_000u16..=65_535 {
            history.sent(sequence, u32::from(sequence));
        }
        for sequence in 0u16..100 {
            history.sent(sequence, 100_000 + u32::from(sequence));
        }
        let now = Instant::now();
        // 10 and the 16 after it by the mask (11, 13); 65 530 across the wrap; one overwritten.
        let got = history.requested(&[(10, 0b101), (65_530, 0), (65_000, 0)], now);
        assert_eq!(
            got,
            [
                (10, 100_010),
                (11, 100_011),
                (13, 100_013),
                (65_530, 65_530)
            ],
            "65 000 was 636 packets ago: forgotten"
        );
        assert!(history.requested(&[(200, 0)], now).is_empty(), "never sent");
        let twice = history.requested(&[(20, 0), (20, 0b1)], now);
        assert_eq!(twice, [(20, 100_020), (21, 100_021)], "once each");
    }

    #[test]
    fn resends_stay_within_the_budget_and_it_comes_back_each_second() {
        let mut history = RetransmitHistory::new();
        for sequence in 0u16..512 {
            history.sent(sequence, sequence);
        }
        let start = Instant::now();
        // A viewer that asks for everything, all the time.
        let all: Vec<(u16, u16)> = (0u16..512).step_by(17).map(|id| (id, 0xffff)).collect();
        let first = history.requested(&all, start);
        assert_eq!(first.len(), MAX_RESENDS_PER_SECOND as usize);
        assert!(
            history
                .requested(&all, start + Duration::from_millis(500))
                .is_empty()
        );
        let later = history.requested(&all, start + Duration::from_millis(1000));
        assert_eq!(later.len(), MAX_RESENDS_PER_SECOND as usize);
    }
}
