//! When each claimed address is announced next.
//!
//! Deadlines sit in a `BTreeMap` ordered by time, so finding the next one
//! and taking the due ones costs O(log n) per entry taken, however many
//! addresses are claimed: a poll with nothing due touches no claim.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// A deadline's position in the time order; `seq` breaks ties so two
/// claims due at the same instant both keep their place.
type Slot = (Instant, u64);

/// The announcement schedule: at most one pending deadline per key.
#[derive(Debug)]
pub(crate) struct Schedule<K> {
    by_time: BTreeMap<Slot, K>,
    by_key: HashMap<K, Pending>,
    seq: u64,
}

/// A key's pending deadline and how many announcements it has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    slot: Slot,
    /// Announcements already sent since the key was (re)claimed.
    pub(crate) sent: u32,
}

impl<K: Clone + Eq + Hash> Schedule<K> {
    pub(crate) fn new() -> Self {
        Self {
            by_time: BTreeMap::new(),
            by_key: HashMap::new(),
            seq: 0,
        }
    }

    /// Schedules `key` at `at` with `sent` announcements behind it,
    /// replacing any deadline it had.
    pub(crate) fn set(&mut self, key: K, at: Instant, sent: u32) {
        self.cancel(&key);
        self.seq = self.seq.wrapping_add(1);
        let slot = (at, self.seq);
        self.by_time.insert(slot, key.clone());
        self.by_key.insert(key, Pending { slot, sent });
    }

    /// Forgets `key`'s deadline, if any.
    pub(crate) fn cancel(&mut self, key: &K) {
        if let Some(pending) = self.by_key.remove(key) {
            self.by_time.remove(&pending.slot);
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest key whose deadline is at or before
    /// `now`, with its count of announcements sent.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(K, u32)> {
        let entry = self.by_time.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let key = entry.remove();
        let sent = self.by_key.remove(&key).map_or(0, |p| p.sent);
        Some((key, sent))
    }

    /// How many keys have a deadline.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// How many announcements `key` has had, if it has a deadline.
    pub(crate) fn sent(&self, key: &K) -> Option<u32> {
        self.by_key.get(key).map(|p| p.sent)
    }

    /// Whether `key` has a deadline.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Forgets every deadline.
    pub(crate) fn clear(&mut self) {
        self.by_time.clear();
        self.by_key.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_keys_come_out_in_time_order_and_later_ones_stay() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.set("b", t0 + Duration::from_secs(2), 0);
        s.set("a", t0 + Duration::from_secs(1), 0);
        s.set("c", t0 + Duration::from_secs(9), 0);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(s.pop_due(now), Some(("a", 0)));
        assert_eq!(s.pop_due(now), Some(("b", 0)));
        assert_eq!(s.pop_due(now), None);
        assert_eq!(s.next(), Some(t0 + Duration::from_secs(9)));
    }

    #[test]
    fn setting_a_key_again_replaces_its_deadline() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.set("a", t0, 3);
        s.set("a", t0 + Duration::from_secs(1), 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s.pop_due(t0), None);
        s.cancel(&"a");
        assert_eq!(s.next(), None);
    }

    #[test]
    fn keys_due_at_the_same_instant_are_all_kept() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        for k in 0..100 {
            s.set(k, t0, 0);
        }
        let mut out = 0;
        while s.pop_due(t0).is_some() {
            out += 1;
        }
        assert_eq!(out, 100);
    }
}
