//! The gossip key ring: how a changed secret is rolled out without
//! partitioning the speakers.
//!
//! kubelet updates a mounted Secret on each node on its own schedule (its
//! sync period plus the cache TTL: up to a minute or more apart between
//! nodes). A speaker that switched to the new key the moment it saw it
//! would reject every peer that has not seen it yet, and they it: each side
//! would declare the other dead and announce its IPs, a split brain lasting
//! as long as the skew. So a new key goes through two phases, each one
//! `grace` long (longer than kubelet's skew):
//!
//! 1. **accepted, not used**: datagrams sealed with the new key are
//!    accepted at once, but we keep *sealing* with the old key, which every
//!    peer still accepts;
//! 2. **used, old one still accepted**: after `grace` we seal with the new
//!    key (every peer has seen it by then, so accepts it) and keep accepting
//!    the old one for another `grace`, for peers that saw the new key later
//!    and still seal with the old one;
//! 3. then the old key is dropped.
//!
//! Offering a key the ring already seals with cancels a pending switch (an
//! operator reverted); the abandoned key stays accepted for `2 * grace`, in
//! case a peer that saw it earlier has already switched to it. A key
//! replaced while pending is kept as long, for the same reason.
//!
//! Pure: the caller passes the time in (`I` is any clock, e.g.
//! `tokio::time::Instant`, or a `Duration` in tests).

use std::ops::Add;
use std::time::Duration;

use super::auth::{Rejected, Secret};

/// The most keys accepted at once (sealing, pending and retiring). Opening
/// a forged datagram costs one HMAC per key, so the ring stays small; an
/// operator rotating faster than `grace` loses the oldest retiring key
/// first.
pub const MAX_KEYS: usize = 4;

/// What [`KeyRing::offer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer<I> {
    /// The ring already seals with this key and nothing was pending.
    Unchanged,
    /// This key is already pending.
    AlreadyPending,
    /// The key is accepted now and used for sealing from `switch_at`.
    Scheduled {
        /// When sealing switches to it.
        switch_at: I,
    },
    /// A pending switch was cancelled: the key offered is the one the ring
    /// seals with.
    Reverted,
}

/// What [`KeyRing::tick`] did, for the logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Sealing switched to the key with this id.
    pub switched_to: Option<String>,
    /// Keys (ids) no longer accepted.
    pub dropped: Vec<String>,
}

/// The keys a speaker accepts and the one it seals with; see the module
/// documentation for the rules.
#[derive(Debug, Clone)]
pub struct KeyRing<I> {
    sealing: Secret,
    pending: Option<(Secret, I)>,
    /// Accepted but not sealed with, until their expiry.
    retiring: Vec<(Secret, I)>,
    grace: Duration,
}

impl<I: Copy + Ord + Add<Duration, Output = I>> KeyRing<I> {
    /// A ring with one key, sealing with it.
    pub fn new(key: Secret, grace: Duration) -> Self {
        Self {
            sealing: key,
            pending: None,
            retiring: Vec::new(),
            grace,
        }
    }

    /// The key datagrams are sealed with.
    pub fn sealing(&self) -> &Secret {
        &self.sealing
    }

    /// The key waiting to be used for sealing, and when.
    pub fn pending(&self) -> Option<(&Secret, I)> {
        self.pending.as_ref().map(|(k, at)| (k, *at))
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        1 + usize::from(self.pending.is_some()) + self.retiring.len()
    }

    /// Never true: a ring always holds its sealing key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether datagrams sealed with `key` are accepted.
    pub fn accepts(&self, key: &Secret) -> bool {
        self.keys().any(|k| k.same_key(key))
    }

    /// The key the secret file now holds, seen at `now`.
    pub fn offer(&mut self, key: Secret, now: I) -> Offer<I> {
        let abandon_until = now + self.grace + self.grace;
        if key.same_key(&self.sealing) {
            return match self.pending.take() {
                Some((abandoned, _)) => {
                    self.retire(abandoned, abandon_until);
                    Offer::Reverted
                }
                None => Offer::Unchanged,
            };
        }
        if let Some((pending, _)) = &self.pending {
            if pending.same_key(&key) {
                return Offer::AlreadyPending;
            }
        }
        if let Some((replaced, _)) = self.pending.take() {
            self.retire(replaced, abandon_until);
        }
        // A retiring key offered again (rolled back after a switch) is
        // pending now, not retiring.
        self.retiring.retain(|(k, _)| !k.same_key(&key));
        let switch_at = now + self.grace;
        self.pending = Some((key, switch_at));
        self.cap();
        Offer::Scheduled { switch_at }
    }

    /// Carries out what is due at `now`: the switch to a pending key, and
    /// dropping expired ones.
    pub fn tick(&mut self, now: I) -> Tick {
        let mut tick = Tick::default();
        if let Some((_, at)) = &self.pending {
            if *at <= now {
                let (next, _) = self.pending.take().expect("checked above");
                let old = std::mem::replace(&mut self.sealing, next);
                tick.switched_to = Some(self.sealing.key_id());
                self.retire(old, now + self.grace);
            }
        }
        self.retiring.retain(|(k, until)| {
            let keep = *until > now;
            if !keep {
                tick.dropped.push(k.key_id());
            }
            keep
        });
        tick
    }

    /// When [`KeyRing::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<I> {
        self.pending
            .iter()
            .chain(&self.retiring)
            .map(|(_, at)| *at)
            .min()
    }

    /// Checks a datagram against every accepted key, the sealing key
    /// first, and returns its payload.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        self.open_as(super::auth::MAGIC, datagram)
    }

    /// [`KeyRing::open`] for a datagram that must start with `magic`
    /// ([`super::auth::LIVENESS_MAGIC`] for heartbeats).
    pub fn open_as<'a>(&self, magic: [u8; 4], datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        let mut last = Rejected::BadTag;
        for key in self.keys() {
            match key.open_as(magic, datagram) {
                Ok(payload) => return Ok(payload),
                // Length and magic do not depend on the key.
                Err(e @ (Rejected::TooShort(_) | Rejected::BadMagic)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn keys(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.sealing)
            .chain(self.pending.iter().map(|(k, _)| k))
            .chain(self.retiring.iter().map(|(k, _)| k))
    }

    fn retire(&mut self, key: Secret, until: I) {
        if key.same_key(&self.sealing) {
            return;
        }
        match self.retiring.iter_mut().find(|(k, _)| k.same_key(&key)) {
            Some((_, old)) => *old = (*old).max(until),
            None => self.retiring.push((key, until)),
        }
        self.cap();
    }

    /// Drops the retiring keys that expire first while over [`MAX_KEYS`].
    fn cap(&mut self) {
        while self.len() > MAX_KEYS {
            let Some(first) = (0..self.retiring.len()).min_by_key(|&i| self.retiring[i].1) else {
                return;
            };
            self.retiring.remove(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(180);

    fn key(s: &str) -> Secret {
        Secret::from_bytes(format!("{s:-<16}").as_bytes(), "test").unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ring(k: &str) -> KeyRing<Duration> {
        KeyRing::new(key(k), GRACE)
    }

    fn opens(ring: &KeyRing<Duration>, sealed_with: &str) -> bool {
        ring.open(&key(sealed_with).seal(b"x")).is_ok()
    }

    #[test]
    fn a_rotated_key_is_accepted_before_it_is_used_to_seal() {
        let mut r = ring("old");
        assert!(!opens(&r, "new"));
        assert_eq!(
            r.offer(key("new"), secs(10)),
            Offer::Scheduled {
                switch_at: secs(10) + GRACE
            }
        );
        r.tick(secs(11));
        assert!(opens(&r, "new"), "accepted at once");
        assert!(opens(&r, "old"));
        assert!(r.sealing().same_key(&key("old")), "still sealing with old");
    }

    #[test]
    fn sealing_switches_to_the_new_key_one_grace_period_after_it_appeared() {
        let mut r = ring("old");
        r.offer(key("new"), secs(10));
        assert_eq!(r.tick(secs(10) + GRACE - secs(1)), Tick::default());
        assert!(r.sealing().same_key(&key("old")));
        let t = r.tick(secs(10) + GRACE);
        assert_eq!(t.switched_to, Some(key("new").key_id()));
        assert!(r.sealing().same_key(&key("new")));
        assert!(r.pending().is_none());
    }

    #[test]
    fn the_old_key_is_accepted_for_a_grace_period_after_the_switch_then_dropped() {
        let mut r = ring("old");
        r.offer(key("new"), secs(0));
        r.tick(GRACE);
        assert!(
            opens(&r, "old"),
            "peers that saw the key later still seal with old"
        );
        assert_eq!(r.next_deadline(), Some(GRACE + GRACE));
        assert!(r.tick(GRACE + GRACE - secs(1)).dropped.is_empty());
        assert!(opens(&r, "old"));
        assert_eq!(r.tick(GRACE + GRACE).dropped, vec![key("old").key_id()]);
        assert!(!opens(&r, "old"));
        assert!(opens(&r, "new"));
        assert_eq!(r.len(), 1);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn offering_the_same_key_again_does_not_restart_the_grace_period() {
        let mut r = ring("old");
        assert_eq!(r.offer(key("old"), secs(1)), Offer::Unchanged);
        r.offer(key("new"), secs(0));
        assert_eq!(r.offer(key("new"), secs(100)), Offer::AlreadyPending);
        r.tick(GRACE);
        assert!(r.sealing().same_key(&key("new")));
        assert_eq!(r.offer(key("new"), GRACE + secs(1)), Offer::Unchanged);
    }

    #[test]
    fn reverting_before_the_switch_keeps_sealing_with_the_old_key() {
        let mut r = ring("old");
        r.offer(key("new"), secs(0));
        assert_eq!(r.offer(key("old"), secs(30)), Offer::Reverted);
        r.tick(GRACE);
        assert!(r.sealing().same_key(&key("old")));
        // A peer that saw "new" earlier may have switched already.
        assert!(opens(&r, "new"));
        r.tick(secs(30) + GRACE + GRACE);
        assert!(!opens(&r, "new"));
    }

    #[test]
    fn rolling_back_after_the_switch_is_a_rotation_like_any_other() {
        let mut r = ring("a");
        r.offer(key("b"), secs(0));
        r.tick(GRACE);
        assert!(matches!(
            r.offer(key("a"), GRACE + secs(5)),
            Offer::Scheduled { .. }
        ));
        assert!(
            r.sealing().same_key(&key("b")),
            "keeps sealing with b first"
        );
        assert!(opens(&r, "a"));
        // "a" is pending now: it does not expire at 2 * GRACE as a retiring key would.
        r.tick(GRACE + GRACE);
        assert!(opens(&r, "a"));
        r.tick(GRACE + secs(5) + GRACE);
        assert!(r.sealing().same_key(&key("a")));
        assert!(opens(&r, "b"));
    }

    #[test]
    fn a_second_rotation_during_the_first_keeps_every_key_a_peer_may_seal_with() {
        let mut r = ring("a");
        r.offer(key("b"), secs(0));
        r.offer(key("c"), secs(60));
        for sealed_with in ["a", "b", "c"] {
            assert!(opens(&r, sealed_with), "{sealed_with}");
        }
        r.tick(secs(60) + GRACE);
        assert!(r.sealing().same_key(&key("c")));
        assert!(opens(&r, "a") && opens(&r, "b"));
        r.tick(secs(60) + GRACE + GRACE);
        assert!(!opens(&r, "a") && !opens(&r, "b"));
        assert!(opens(&r, "c"));
    }

    #[test]
    fn datagrams_sealed_with_an_unknown_key_are_rejected_as_bad_tags() {
        let mut r = ring("a");
        r.offer(key("b"), secs(0));
        assert_eq!(r.open(&key("z").seal(b"x")), Err(Rejected::BadTag));
        assert_eq!(r.open(b"short"), Err(Rejected::TooShort(5)));
        assert_eq!(r.open(&[0; 64]), Err(Rejected::BadMagic));
    }

    #[test]
    fn the_ring_never_holds_more_than_max_keys() {
        let mut r = ring("k0");
        for i in 1..10u64 {
            r.offer(key(&format!("k{i}")), secs(i));
            assert!(r.len() <= MAX_KEYS, "{}", r.len());
        }
        assert!(opens(&r, "k0"), "the sealing key is never dropped");
        assert!(opens(&r, "k9"), "the newest key is pending");
        assert!(opens(&r, "k8"), "the newest retiring keys are kept");
        assert!(!opens(&r, "k1"));
    }

    /// Two speakers see the new key `skew` apart; at every second of the
    /// rotation each accepts what the other seals with.
    fn partitioned_seconds(skew: Duration) -> usize {
        let mut early = ring("old");
        let mut late = ring("old");
        let mut bad = 0;
        for s in 0..(4 * GRACE.as_secs() + skew.as_secs()) {
            let now = secs(s);
            if now == secs(10) {
                early.offer(key("new"), now);
            }
            if now == secs(10) + skew {
                late.offer(key("new"), now);
            }
            early.tick(now);
            late.tick(now);
            let e = early.sealing().seal(b"x");
            let l = late.sealing().seal(b"x");
            if late.open(&e).is_err() || early.open(&l).is_err() {
                bad += 1;
            }
        }
        assert!(early.sealing().same_key(&key("new")));
        assert!(late.sealing().same_key(&key("new")));
        bad
    }

    #[test]
    fn speakers_that_see_a_rotation_up_to_one_grace_period_apart_always_understand_each_other() {
        for skew in [0, 1, 60, 179, 180] {
            assert_eq!(partitioned_seconds(secs(skew)), 0, "skew {skew}s");
        }
    }

    #[test]
    fn a_skew_longer_than_the_grace_period_partitions_the_speakers() {
        // The limit of the scheme, and why the grace period must exceed
        // kubelet's sync skew.
        assert!(partitioned_seconds(GRACE + secs(30)) > 0);
    }
}
