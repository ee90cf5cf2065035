//! Probing owned addresses for silent duplicates (RFC 5227 section 2.1.1,
//! RFC 4862 5.4.2): a device that holds one of our addresses but never
//! announces it only answers who-has questions, and its answers go to the
//! asker, not to us. So every owned address is asked about, as a host
//! checking that an address is free asks: an ARP probe (sender
//! `0.0.0.0`) or a Neighbor Solicitation from `::` to the address's
//! solicited-node group. Whoever holds the address answers to us (ARP,
//! unicast to our MAC) or to all nodes (NDP), which the announcer
//! observes like any other announcement ([`super::Held::Owned`]). A probe
//! updates nobody's neighbour cache: it claims nothing.
//!
//! Each address is probed every `interval` with +/-25 % jitter, first one
//! interval after it was taken (a takeover's previous owner may still
//! answer for a few seconds, and is no duplicate); the jitter spreads a
//! takeover of many addresses over the interval. An interface sends at
//! most `rate` probes a second: beyond `rate x interval` addresses a
//! round takes longer than the interval.

use super::schedule::Schedule;
use super::Claim;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

/// When each owned address is probed next, at most `rate` a second.
#[derive(Debug)]
pub(super) struct Prober {
    interval: Option<Duration>,
    /// At least this between two probes (1 s / rate).
    min_gap: Duration,
    due: Schedule<Claim>,
    next_allowed: Option<Instant>,
    /// Probes sent, mixed into the jitter so each round draws anew.
    sent: u64,
}

impl Prober {
    /// Probes every `interval` (`None`: never), at most `rate` a second
    /// (0 counts as 1).
    pub(super) fn new(interval: Option<Duration>, rate: u32) -> Self {
        Self {
            interval,
            min_gap: Duration::from_secs(1) / rate.max(1),
            due: Schedule::new(),
            next_allowed: None,
            sent: 0,
        }
    }

    /// `claim` was taken (or its interface appeared) at `now`: its first
    /// probe is about one interval later.
    pub(super) fn claim(&mut self, claim: &Claim, now: Instant) {
        if let Some(every) = self.interval {
            let at = now + jittered(every, claim, self.sent);
            self.due.set(claim.clone(), at, 0);
        }
    }

    /// `claim` is no longer owned.
    pub(super) fn forget(&mut self, claim: &Claim) {
        self.due.cancel(claim);
    }

    /// Handing over: no more probes.
    pub(super) fn clear(&mut self) {
        self.due.clear();
    }

    /// When the next probe may go out.
    pub(super) fn next(&self) -> Option<Instant> {
        let due = self.due.next()?;
        Some(self.next_allowed.map_or(due, |allowed| due.max(allowed)))
    }

    /// The address to probe at `now`, if one is due and the rate allows;
    /// its next probe is scheduled.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Claim> {
        if self.next_allowed.is_some_and(|allowed| now < allowed) {
            return None;
        }
        let every = self.interval?;
        let (claim, _) = self.due.pop_due(now)?;
        self.sent = self.sent.wrapping_add(1);
        self.next_allowed = Some(now + self.min_gap);
        self.due
            .set(claim.clone(), now + jittered(every, &claim, self.sent), 0);
        Some(claim)
    }

    /// Addresses with a probe scheduled.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.due.len()
    }
}

/// `every` scaled by a factor in [0.75, 1.25), drawn from the claim and a
/// counter: deterministic (tests replay it) yet different per address
/// and per round.
fn jittered(every: Duration, claim: &Claim, round: u64) -> Duration {
    let mut h = DefaultHasher::new();
    (claim, round).hash(&mut h);
    let per_mille = 750 + (h.finish() % 500) as u32;
    every * per_mille / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn claim(i: u8) -> Claim {
        Claim {
            link: "eth0".into(),
            ip: IpAddr::from([192, 0, 2, i]),
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_address_is_first_probed_about_one_interval_after_it_was_taken() {
        let t0 = Instant::now();
        let mut p = Prober::new(Some(MINUTE), 20);
        p.claim(&claim(10), t0);
        let first = p.next().unwrap() - t0;
        assert!(
            (Duration::from_secs(45)..Duration::from_secs(75)).contains(&first),
            "{first:?}"
        );
        assert_eq!(p.pop_due(t0 + first - Duration::from_millis(1)), None);
        assert_eq!(p.pop_due(t0 + first), Some(claim(10)));
        let second = p.next().unwrap() - (t0 + first);
        assert!(
            (Duration::from_secs(45)..Duration::from_secs(75)).contains(&second),
            "the next round: {second:?}"
        );
    }

    #[test]
    fn probes_of_many_addresses_spread_over_the_interval_and_respect_the_rate() {
        let t0 = Instant::now();
        let mut p = Prober::new(Some(MINUTE), 20);
        for i in 1..=200 {
            p.claim(&claim(i), t0);
        }
        // Two minutes of a loop that polls at every deadline.
        let (mut now, end) = (t0, t0 + 2 * MINUTE);
        let mut sent = Vec::new();
        while let Some(at) = p.next().filter(|at| *at < end) {
            now = now.max(at);
            while let Some(c) = p.pop_due(now) {
                sent.push((now, c));
            }
        }
        for pair in sent.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= Duration::from_millis(50));
        }
        let earliest = sent[0].0 - t0;
        assert!(earliest >= Duration::from_secs(45), "{earliest:?}");
        for i in 1..=200 {
            let times: Vec<_> = sent.iter().filter(|(_, c)| *c == claim(i)).collect();
            assert!(
                (1..=3).contains(&times.len()),
                "{i} probed {} times in two minutes",
                times.len()
            );
            // 200 probes take 10 s at 20 a second, so the last first
            // probe may be a little later than 75 s.
            assert!(times[0].0 - t0 < Duration::from_secs(80), "{i}");
        }
    }

    #[test]
    fn at_the_rate_cap_a_round_takes_longer_than_the_interval() {
        let t0 = Instant::now();
        let mut p = Prober::new(Some(Duration::from_secs(1)), 10);
        for i in 1..=100 {
            p.claim(&claim(i), t0);
        }
        let mut now = t0;
        let mut probed = std::collections::BTreeSet::new();
        for _ in 0..10_000 {
            if probed.len() == 100 {
                break;
            }
            now = p.next().unwrap().max(now);
            if let Some(c) = p.pop_due(now) {
                probed.insert(c);
            }
        }
        assert_eq!(probed.len(), 100);
        assert!(now - t0 >= Duration::from_millis(9900), "{:?}", now - t0);
    }

    #[test]
    fn without_an_interval_nothing_is_probed() {
        let mut p = Prober::new(None, 20);
        p.claim(&claim(1), Instant::now());
        assert_eq!(p.next(), None);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_forgotten_address_is_probed_no_more() {
        let t0 = Instant::now();
        let mut p = Prober::new(Some(MINUTE), 20);
        p.claim(&claim(1), t0);
        p.forget(&claim(1));
        assert_eq!(p.pop_due(t0 + 2 * MINUTE), None);
    }
}
