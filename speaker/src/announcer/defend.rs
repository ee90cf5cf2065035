//! Answering another station's announcement of an address this node owns
//! (issue 15, a second announcer): announce it again, so hosts that took
//! the other station's word come back to the elected owner.
//!
//! - **When:** `spacing` (1.1 s by default) after the foreign frame, not
//!   at once. A host that has just changed its entry ignores another
//!   change within its `locktime` (1 s on Linux; recent kernels exempt
//!   gratuitous ARP, older ones and other stacks do not), and during an
//!   ordinary move the foreign frame is the new owner's, whose decision
//!   reaches this node within that time and cancels the re-announcement
//!   (a withdrawn address is forgotten here).
//! - **How often:** one pending re-announcement per address; later
//!   foreign frames join it rather than push it back, so a station that
//!   keeps announcing cannot starve it. After each one the next waits a
//!   gap that starts at `spacing` and doubles up to [`MAX_GAP`]: two
//!   speakers whose views of the cluster differ answer each other at
//!   most every [`MAX_GAP`] per address once the fight has lasted a
//!   minute, instead of flooding the LAN. A foreign frame that arrives
//!   after a re-announcement schedules the next one, so whenever the
//!   other station stops, this node has the last word.
//! - **Not during a takeover burst:** the burst already re-announces
//!   `spacing` apart, and what is heard then is most likely the previous
//!   owner letting go.
//! - The gap starts over when nothing foreign was heard for [`RESET`].

use super::schedule::Schedule;
use super::Claim;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest gap between two re-announcements of one address.
pub const MAX_GAP: Duration = Duration::from_secs(30);

/// Quiet time after which the gap starts over from `spacing`.
pub const RESET: Duration = Duration::from_secs(300);

/// Per owned address another station announced: when it may be
/// re-announced next.
#[derive(Debug)]
struct Guard {
    gap: Duration,
    next_allowed: Instant,
    last_seen: Instant,
}

/// The re-announcements owed to addresses other stations announced.
#[derive(Debug)]
pub(super) struct Defense {
    guards: HashMap<Claim, Guard>,
    due: Schedule<Claim>,
}

impl Defense {
    pub(super) fn new() -> Self {
        Self {
            guards: HashMap::new(),
            due: Schedule::new(),
        }
    }

    /// Another station announced `claim` at `now`: a re-announcement is
    /// due `spacing` later, or when the gap allows, unless one is pending.
    pub(super) fn seen(&mut self, claim: &Claim, now: Instant, spacing: Duration) {
        let guard = self.guards.entry(claim.clone()).or_insert(Guard {
            gap: spacing,
            next_allowed: now,
            last_seen: now,
        });
        if now.saturating_duration_since(guard.last_seen) >= RESET {
            guard.gap = spacing;
            guard.next_allowed = now;
        }
        guard.last_seen = now;
        if !self.due.contains(claim) {
            let at = (now + spacing).max(guard.next_allowed);
            self.due.set(claim.clone(), at, 0);
        }
    }

    /// When the next re-announcement is due.
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.next()
    }

    /// A re-announcement due at `now`, taken as sent: the next one waits
    /// the gap, which doubles.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Claim> {
        let (claim, _) = self.due.pop_due(now)?;
        if let Some(g) = self.guards.get_mut(&claim) {
            g.next_allowed = now + g.gap;
            g.gap = (g.gap * 2).min(MAX_GAP).max(g.gap);
        }
        Some(claim)
    }

    /// The address is no longer owned: nothing is owed.
    pub(super) fn forget(&mut self, claim: &Claim) {
        self.due.cancel(claim);
        self.guards.remove(claim);
    }

    /// Handing over: nothing is re-announced any more.
    pub(super) fn clear(&mut self) {
        self.due.clear();
        self.guards.clear();
    }

    /// Re-announcements pending.
    pub(super) fn pending(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const SPACING: Duration = Duration::from_millis(1100);

    fn claim() -> Claim {
        Claim {
            link: "eth0".into(),
            ip: IpAddr::from([192, 0, 2, 10]),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds foreign frames at the given offsets and collects when
    /// re-announcements go out, polling every 10 ms up to `until`.
    fn run(frames: &[u64], until: u64) -> Vec<u64> {
        let t0 = Instant::now();
        let mut d = Defense::new();
        let mut sent = Vec::new();
        for t in (0..=until).step_by(10) {
            let now = t0 + ms(t);
            if frames.contains(&t) {
                d.seen(&claim(), now, SPACING);
            }
            while d.pop_due(now).is_some() {
                sent.push(t);
            }
        }
        sent
    }

    #[test]
    fn one_foreign_frame_is_answered_once_a_locktime_later() {
        assert_eq!(run(&[0], 10_000), vec![1100]);
    }

    #[test]
    fn a_burst_is_answered_after_its_last_frame_without_being_pushed_back() {
        // Another installation's takeover burst, one frame a second.
        let sent = run(&[0, 1000, 2000, 3000], 20_000);
        assert_eq!(sent.first(), Some(&1100), "the first frame is answered");
        let last = *sent.last().unwrap();
        assert!(last > 3000, "this node has the last word: {sent:?}");
        for pair in sent.windows(2) {
            assert!(
                pair[1] - pair[0] >= 1100,
                "never closer than spacing: {sent:?}"
            );
        }
    }

    #[test]
    fn a_station_that_never_stops_is_answered_at_a_doubling_gap_up_to_the_cap() {
        // Every 500 ms for ten minutes: it would starve a re-announcement
        // that each frame pushed back.
        let frames: Vec<u64> = (0..1200).map(|i| i * 500).collect();
        let sent = run(&frames, 600_000);
        let gaps: Vec<u64> = sent.windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(sent[0], 1100);
        assert_eq!(&gaps[1..4], &[2200, 4400, 8800], "{gaps:?}");
        assert!(gaps.iter().all(|g| (1100..=30_000).contains(g)), "{gaps:?}");
        assert!(
            sent.len() < 40,
            "{} re-announcements in ten minutes",
            sent.len()
        );
    }

    #[test]
    fn the_gap_starts_over_after_a_quiet_spell() {
        let quiet = RESET.as_millis() as u64;
        let mut frames: Vec<u64> = (0..20).map(|i| i * 500).collect();
        frames.push(10_000 + quiet);
        let sent = run(&frames, 10_000 + quiet + 5_000);
        assert_eq!(*sent.last().unwrap(), 10_000 + quiet + 1100, "{sent:?}");
    }

    #[test]
    fn a_forgotten_address_owes_nothing() {
        let t0 = Instant::now();
        let mut d = Defense::new();
        d.seen(&claim(), t0, SPACING);
        assert_eq!(d.pending(), 1);
        d.forget(&claim());
        assert_eq!(d.next(), None);
        assert_eq!(d.pop_due(t0 + ms(5000)), None);
    }
}
