//! Interval arithmetic for the free-address search.
//!
//! A pool may be a whole IPv6 /64, so nothing here enumerates addresses or
//! keeps per-free-address state. Each pool family keeps the *blocked*
//! addresses (used ones, plus the holes between the pool's ranges) as a
//! coalesced set of intervals; the first free address is then found in
//! O(log n) by jumping over whole intervals.

use std::collections::BTreeMap;

use crate::range::Family;

/// A set of `u128` stored as disjoint, non-adjacent inclusive intervals
/// keyed by their start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    map: BTreeMap<u128, u128>,
}

impl IntervalSet {
    /// The interval holding `x`, if any.
    pub(crate) fn containing(&self, x: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.map.range(..=x).next_back()?;
        (end >= x).then_some((start, end))
    }

    /// Adds `lo..=hi`. Neighbouring intervals are merged when they touch or
    /// when `bridge(gap_lo, gap_hi)` says the gap between them may be
    /// treated as blocked too (used to swallow `.255`/`.0` pairs).
    pub(crate) fn insert(&mut self, lo: u128, hi: u128, bridge: &dyn Fn(u128, u128) -> bool) {
        let (mut lo, mut hi) = (lo, hi);
        if let Some((&start, &end)) = self.map.range(..=lo).next_back() {
            if end >= hi {
                return;
            }
            // `end < hi` and `start <= lo`, so `end + 1` cannot overflow.
            if end + 1 >= lo || bridge(end + 1, lo - 1) {
                self.map.remove(&start);
                lo = start;
            }
        }
        while let Some((&start, &end)) = self.map.range(lo..).next() {
            let touches = match hi.checked_add(1) {
                None => true,
                Some(next) => start <= next || bridge(next, start - 1),
            };
            if !touches {
                break;
            }
            self.map.remove(&start);
            hi = hi.max(end);
        }
        self.map.insert(lo, hi);
    }

    /// Removes the single value `x` if present, splitting its interval.
    pub(crate) fn remove(&mut self, x: u128) {
        let Some((start, end)) = self.containing(x) else {
            return;
        };
        self.map.remove(&start);
        if start < x {
            self.map.insert(start, x - 1);
        }
        if x < end {
            self.map.insert(x + 1, end);
        }
    }

    /// Number of stored intervals.
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.map.len()
    }
}

/// The addresses of one family of one pool, with the ones in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Space {
    lo: u128,
    hi: u128,
    avoid_buggy: bool,
    blocked: IntervalSet,
}

impl Space {
    /// A space over `ranges` (sorted by start, not overlapping). The holes
    /// between ranges start out blocked so the search never stops in them.
    /// `avoid_buggy` only has an effect for IPv4. `None` if there are no
    /// ranges.
    pub(crate) fn new(family: Family, ranges: &[(u128, u128)], avoid_buggy: bool) -> Option<Self> {
        let first = ranges.first()?;
        let last = ranges.last()?;
        let mut space = Space {
            lo: first.0,
            hi: last.1,
            avoid_buggy: avoid_buggy && family == Family::V4,
            blocked: IntervalSet::default(),
        };
        for pair in ranges.windows(2) {
            let (prev_end, next_start) = (pair[0].1, pair[1].0);
            if prev_end + 1 < next_start {
                space.block_range(prev_end + 1, next_start - 1);
            }
        }
        Some(space)
    }

    fn is_buggy(&self, n: u128) -> bool {
        self.avoid_buggy && matches!(n & 0xff, 0 | 0xff)
    }

    fn block_range(&mut self, lo: u128, hi: u128) {
        let avoid = self.avoid_buggy;
        // A gap made only of buggy addresses can never be handed out, so
        // treating it as blocked keeps a /16 filled but for its .0/.255
        // addresses as one interval instead of 256.
        let bridge = move |a: u128, b: u128| {
            avoid && b - a < 2 && (a..=b).all(|n| matches!(n & 0xff, 0 | 0xff))
        };
        self.blocked.insert(lo, hi, &bridge);
    }

    /// The lowest address that is free (and not buggy when avoided).
    pub(crate) fn first_free(&self) -> Option<u128> {
        let mut x = self.lo;
        // Each turn either returns or moves `x` strictly forward past a
        // whole interval or a buggy address, and the bridging above means
        // a buggy skip never lands inside the next interval.
        loop {
            if x > self.hi {
                return None;
            }
            if self.is_buggy(x) {
                x += if x & 0xff == 0 { 1 } else { 2 };
                continue;
            }
            match self.blocked.containing(x) {
                Some((_, end)) => x = end.checked_add(1)?,
                None => return Some(x),
            }
        }
    }

    /// Marks `n` as used.
    pub(crate) fn take(&mut self, n: u128) {
        self.block_range(n, n);
    }

    /// Marks `n` as free again.
    pub(crate) fn give_back(&mut self, n: u128) {
        self.blocked.remove(n);
    }

    /// Number of intervals kept, for tests of the coalescing.
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.blocked.intervals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_BRIDGE: &dyn Fn(u128, u128) -> bool = &|_, _| false;

    #[test]
    fn touching_intervals_coalesce() {
        let mut set = IntervalSet::default();
        set.insert(1, 3, NO_BRIDGE);
        set.insert(7, 9, NO_BRIDGE);
        set.insert(4, 6, NO_BRIDGE);
        assert_eq!(set.intervals(), 1);
        assert_eq!(set.containing(5), Some((1, 9)));
    }

    #[test]
    fn an_insert_swallows_every_interval_it_covers() {
        let mut set = IntervalSet::default();
        for x in [2, 4, 6, 8] {
            set.insert(x, x, NO_BRIDGE);
        }
        set.insert(0, 100, NO_BRIDGE);
        assert_eq!(set.intervals(), 1);
        assert_eq!(set.containing(0), Some((0, 100)));
    }

    #[test]
    fn removing_a_value_splits_its_interval() {
        let mut set = IntervalSet::default();
        set.insert(1, 9, NO_BRIDGE);
        set.remove(5);
        assert_eq!(set.containing(5), None);
        assert_eq!(set.containing(4), Some((1, 4)));
        assert_eq!(set.containing(6), Some((6, 9)));
        set.remove(1);
        assert_eq!(set.containing(2), Some((2, 4)));
    }

    #[test]
    fn the_top_of_the_number_space_does_not_overflow() {
        let mut set = IntervalSet::default();
        set.insert(u128::MAX - 1, u128::MAX, NO_BRIDGE);
        set.insert(u128::MAX - 3, u128::MAX - 2, NO_BRIDGE);
        assert_eq!(set.containing(u128::MAX), Some((u128::MAX - 3, u128::MAX)));
        let space = Space {
            lo: u128::MAX - 3,
            hi: u128::MAX,
            avoid_buggy: false,
            blocked: set,
        };
        assert_eq!(space.first_free(), None);
    }

    #[test]
    fn the_first_free_address_skips_holes_between_ranges() {
        let mut space = Space::new(Family::V4, &[(10, 11), (20, 21)], false).unwrap();
        assert_eq!(space.first_free(), Some(10));
        space.take(10);
        space.take(11);
        assert_eq!(space.first_free(), Some(20));
        assert_eq!(space.intervals(), 1);
        space.take(20);
        space.take(21);
        assert_eq!(space.first_free(), None);
        space.give_back(11);
        assert_eq!(space.first_free(), Some(11));
    }

    #[test]
    fn buggy_addresses_are_skipped_arithmetically() {
        let space = Space::new(Family::V4, &[(0x100, 0x2ff)], true).unwrap();
        assert_eq!(space.first_free(), Some(0x101));
        let mut full = Space::new(Family::V4, &[(0x1fd, 0x201)], true).unwrap();
        full.take(0x1fd);
        full.take(0x1fe);
        assert_eq!(full.first_free(), Some(0x201));
    }

    #[test]
    fn buggy_addresses_are_not_skipped_for_ipv6() {
        let space = Space::new(Family::V6, &[(0x100, 0x2ff)], true).unwrap();
        assert_eq!(space.first_free(), Some(0x100));
    }

    #[test]
    fn a_full_range_with_avoid_buggy_coalesces_into_one_interval() {
        // 64 consecutive /24s, every non-buggy address taken in a scattered
        // order: the blocked set must collapse to a single interval.
        let (lo, hi) = (0x1_0000u128, 0x1_3fffu128);
        let mut space = Space::new(Family::V4, &[(lo, hi)], true).unwrap();
        let mut count = 0;
        for step in [(1, 2), (0, 2)] {
            let mut n = lo + step.0;
            while n <= hi {
                if !matches!(n & 0xff, 0 | 0xff) {
                    space.take(n);
                    count += 1;
                }
                n += step.1;
            }
        }
        assert_eq!(count, 64 * 254);
        assert_eq!(space.intervals(), 1);
        assert_eq!(space.first_free(), None);
        space.give_back(0x1_2345);
        assert_eq!(space.first_free(), Some(0x1_2345));
    }
}
