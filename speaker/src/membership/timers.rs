//! A deadline queue for foca's timer events.
//!
//! foca asks for events "after a duration" and requires every one to be
//! delivered; delivering them late is fine. Generic over the clock so it can
//! be tested without sleeping.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// Events ordered by deadline, then by submission order.
pub struct TimerQueue<I, T> {
    heap: BinaryHeap<Reverse<Entry<I, T>>>,
    seq: u64,
}

impl<I, T> fmt::Debug for TimerQueue<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerQueue")
            .field("pending", &self.heap.len())
            .finish()
    }
}

struct Entry<I, T> {
    at: I,
    seq: u64,
    event: T,
}

impl<I: Ord, T> PartialEq for Entry<I, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<I: Ord, T> Eq for Entry<I, T> {}
impl<I: Ord, T> PartialOrd for Entry<I, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<I: Ord, T> Ord for Entry<I, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.at, self.seq).cmp(&(&other.at, other.seq))
    }
}

impl<I, T> Default for TimerQueue<I, T>
where
    I: Ord + Copy + Add<Duration, Output = I>,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<I, T> TimerQueue<I, T>
where
    I: Ord + Copy + Add<Duration, Output = I>,
{
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Schedules `event` at `now + after`.
    pub fn schedule(&mut self, now: I, after: Duration, event: T) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at: now + after,
            seq: self.seq,
            event,
        }));
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<I> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns the earliest event due at `now`, if any.
    pub fn pop_due(&mut self, now: I) -> Option<T> {
        if self.next_deadline()? <= now {
            self.heap.pop().map(|Reverse(e)| e.event)
        } else {
            None
        }
    }

    /// How many events are pending.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn events_come_out_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.schedule(t0, Duration::from_millis(30), "c");
        q.schedule(t0, Duration::from_millis(10), "a");
        q.schedule(t0, Duration::from_millis(20), "b");
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(q.pop_due(t0), None);
        let later = t0 + Duration::from_millis(25);
        assert_eq!(q.pop_due(later), Some("a"));
        assert_eq!(q.pop_due(later), Some("b"));
        assert_eq!(q.pop_due(later), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn events_with_the_same_deadline_keep_submission_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        for i in 0..5 {
            q.schedule(t0, Duration::ZERO, i);
        }
        let out: Vec<_> = std::iter::from_fn(|| q.pop_due(t0)).collect();
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert!(q.is_empty());
    }
}
