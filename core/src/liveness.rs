//! Fast liveness of a peer from its heartbeats, after the ideas of BFD
//! (RFC 5880): the peer sends a small heartbeat every `interval`; the
//! watcher declares it down when no fresh heartbeat arrived for
//! `multiplier x interval` (the detection time). This is the pure part of
//! issue 14's failure detector: no clock, no socket. The caller passes the
//! time of each receipt and of each check, as a [`Duration`] since any
//! fixed origin (a monotonic clock), and heartbeats whose authenticity the
//! transport has already checked (the membership HMAC).
//!
//! Freshness is this module's job. A heartbeat counts only when it is newer
//! than every heartbeat seen from the peer: a later `epoch` (the peer
//! restarted), or the same epoch and a higher `seq`. A duplicate, a
//! reordered older one or a replayed one (a captured heartbeat sent again
//! after the peer died) is [`Received::Stale`] and changes nothing, so a
//! replay can never keep a dead peer alive: only the peer itself can make
//! a newer heartbeat, since only it holds the key.
//!
//! The peer states its own interval and multiplier in each heartbeat (as
//! BFD's Desired Min TX Interval and Detect Mult), so a watcher never
//! declares a peer down that sends as slowly as it said it would; the
//! watcher bounds both ([`Limits`]) so a peer cannot make itself
//! undetectable.

use std::time::Duration;

/// What one heartbeat says, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's incarnation: higher after every restart (for example
    /// its start time in milliseconds since the Unix epoch).
    pub epoch: u64,
    /// Counts up by one per heartbeat within an epoch.
    pub seq: u64,
    /// How often the sender sends.
    pub interval: Duration,
    /// After how many missed heartbeats the sender wants to be declared
    /// down.
    pub multiplier: u8,
}

/// Bounds a watcher puts on what peers ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Intervals below this are taken as this (a peer cannot make the
    /// watcher expect more than it can notice).
    pub min_interval: Duration,
    /// Detection times above this are cut to this (a peer cannot make
    /// itself undetectable; SWIM stays the backstop beyond).
    pub max_detect: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(10),
            max_detect: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The detection time for a peer that sent `hb`: `multiplier x
    /// interval`, the interval at least `min_interval`, the multiplier at
    /// least 1, the product at most `max_detect`.
    pub fn detect_time(&self, hb: &Heartbeat) -> Duration {
        let interval = hb.interval.max(self.min_interval);
        interval
            .saturating_mul(u32::from(hb.multiplier.max(1)))
            .min(self.max_detect)
    }
}

/// What [`Peer::receive`] made of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Newer than anything before: the peer is up until `now + detect`.
    Fresh,
    /// A newer epoch: the peer restarted (also fresh).
    Restarted,
    /// Not newer than the newest seen (duplicate, reordered, replayed):
    /// ignored.
    Stale,
}

/// The state of a peer at some time ([`Peer::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No fresh heartbeat yet.
    Unknown,
    /// A fresh heartbeat arrived within the detection time.
    Up,
    /// The last fresh heartbeat is at least one detection time old.
    Down,
}

/// What a watcher knows of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    limits: Limits,
    /// The newest (epoch, seq) seen.
    newest: Option<(u64, u64)>,
    /// When the newest fresh heartbeat arrived, and the detection time it
    /// asked for.
    last: Option<(Duration, Duration)>,
}

impl Peer {
    /// A peer nothing was heard from yet.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            newest: None,
            last: None,
        }
    }

    /// Takes a heartbeat received at `now`.
    pub fn receive(&mut self, now: Duration, hb: &Heartbeat) -> Received {
        let received = match self.newest {
            Some((epoch, seq)) if (hb.epoch, hb.seq) <= (epoch, seq) => return Received::Stale,
            Some((epoch, _)) if hb.epoch > epoch => Received::Restarted,
            _ => Received::Fresh,
        };
        self.newest = Some((hb.epoch, hb.seq));
        self.last = Some((now, self.limits.detect_time(hb)));
        received
    }

    /// When the peer is (or was) declared down unless a fresh heartbeat
    /// arrives first: the time to set a timer for. `None` before the first
    /// fresh heartbeat.
    pub fn down_at(&self) -> Option<Duration> {
        self.last.map(|(at, detect)| at.saturating_add(detect))
    }

    /// The peer's state at `now`: down exactly when a whole detection time
    /// passed since the last fresh heartbeat.
    pub fn state(&self, now: Duration) -> State {
        match self.down_at() {
            None => State::Unknown,
            Some(down) if now >= down => State::Down,
            Some(_) => State::Up,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Duration = Duration::from_millis(20);
    const M: u8 = 3;

    fn hb(epoch: u64, seq: u64) -> Heartbeat {
        Heartbeat {
            epoch,
            seq,
            interval: T,
            multiplier: M,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_peer_is_down_exactly_one_detection_time_after_its_last_heartbeat() {
        let mut p = Peer::new(Limits::default());
        assert_eq!(p.state(ms(0)), State::Unknown);
        assert_eq!(p.receive(ms(100), &hb(1, 1)), Received::Fresh);
        assert_eq!(p.down_at(), Some(ms(160)));
        assert_eq!(p.state(ms(159)), State::Up);
        assert_eq!(p.state(ms(160)), State::Down);
        // A fresh heartbeat brings it back.
        assert_eq!(p.receive(ms(170), &hb(1, 2)), Received::Fresh);
        assert_eq!(p.state(ms(170)), State::Up);
    }

    #[test]
    fn a_replayed_heartbeat_never_revives_a_dead_peer() {
        let mut p = Peer::new(Limits::default());
        for seq in 1..=5 {
            p.receive(ms(seq * 20), &hb(7, seq));
        }
        let down = p.down_at().unwrap();
        // Long after its death, every old heartbeat is sent again.
        for seq in 1..=5 {
            assert_eq!(p.receive(ms(1_000 + seq), &hb(7, seq)), Received::Stale);
        }
        assert_eq!(p.down_at(), Some(down));
        assert_eq!(p.state(ms(2_000)), State::Down);
        // So is one from an earlier incarnation with a high sequence.
        assert_eq!(p.receive(ms(2_001), &hb(6, 1_000)), Received::Stale);
        assert_eq!(p.state(ms(2_001)), State::Down);
        // The restarted peer itself is heard at once.
        assert_eq!(p.receive(ms(2_002), &hb(8, 1)), Received::Restarted);
        assert_eq!(p.state(ms(2_002)), State::Up);
    }

    #[test]
    fn the_watcher_bounds_what_a_peer_asks_for() {
        let limits = Limits::default();
        let fast = Heartbeat {
            interval: Duration::ZERO,
            multiplier: 0,
            ..hb(1, 1)
        };
        assert_eq!(limits.detect_time(&fast), limits.min_interval);
        let slow = Heartbeat {
            interval: Duration::from_secs(60),
            multiplier: 255,
            ..hb(1, 1)
        };
        assert_eq!(limits.detect_time(&slow), limits.max_detect);
    }

    proptest! {
        /// Whatever interval and multiplier a peer asks for (within the
        /// limits), once its heartbeats stop it is up until exactly
        /// multiplier x interval after the last one, and down from then.
        #[test]
        fn missed_heartbeats_declare_down_exactly_at_the_multiplier(
            interval_ms in 10u64..500,
            multiplier in 1u8..10,
            sent in 1u64..50,
        ) {
            let mut p = Peer::new(Limits::default());
            let beat = |seq: u64| Heartbeat {
                interval: ms(interval_ms),
                multiplier,
                ..hb(1, seq)
            };
            for seq in 1..=sent {
                p.receive(ms(seq * interval_ms), &beat(seq));
            }
            let down = ms(sent * interval_ms + u64::from(multiplier) * interval_ms);
            prop_assert_eq!(p.down_at(), Some(down));
            prop_assert_eq!(p.state(down - Duration::from_micros(1)), State::Up);
            prop_assert_eq!(p.state(down), State::Down);
        }

        /// Heartbeats every interval, each delayed by less than the slack
        /// the multiplier leaves ((multiplier - 1) x interval), never let
        /// the peer be seen down between them.
        #[test]
        fn jitter_within_the_multiplier_never_declares_down(
            delays in proptest::collection::vec(0u64..39, 1..200),
        ) {
            let mut p = Peer::new(Limits::default());
            let mut received = Vec::new();
            for (i, d) in delays.iter().enumerate() {
                let sent = 20 * i as u64;
                received.push((sent + d, i as u64 + 1));
            }
            received.sort();
            let mut last = None;
            for (at, seq) in received {
                if let Some(prev) = last {
                    // Every instant since the previous receipt.
                    for t in prev..at {
                        prop_assert_eq!(p.state(ms(t)), State::Up, "at {} ms", t);
                    }
                }
                p.receive(ms(at), &hb(1, seq));
                last = Some(at);
            }
        }

        /// Duplicates and reordering change nothing: the peer's deadline is
        /// always one detection time after the receipt of the newest
        /// heartbeat seen so far.
        #[test]
        fn duplicates_and_reordering_are_harmless(
            order in proptest::collection::vec((1u64..30, 0u64..5), 1..80),
        ) {
            let mut p = Peer::new(Limits::default());
            let mut newest: Option<(u64, u64)> = None;
            let mut newest_at = None;
            for (i, (seq, epoch)) in order.iter().enumerate() {
                let now = ms(10 * i as u64);
                let got = p.receive(now, &hb(*epoch, *seq));
                if newest.is_none_or(|n| (*epoch, *seq) > n) {
                    prop_assert_ne!(got, Received::Stale);
                    newest = Some((*epoch, *seq));
                    newest_at = Some(now);
                } else {
                    prop_assert_eq!(got, Received::Stale);
                }
                prop_assert_eq!(p.down_at(), newest_at.map(|t| t + 3 * T));
            }
        }
    }
}
