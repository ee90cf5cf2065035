//! The claims a speaker publishes, and what a receiver keeps of them.
//!
//! A speaker's claims are the set of Services it announces. It sends the
//! whole set as one version, `(epoch, seq)`: `epoch` is its membership
//! incarnation (the boot id of its `SpeakerId`, renewed when membership
//! declared it down), `seq` counts its versions within the epoch. The
//! shell seals messages with the membership HMAC; this module only decides
//! what an authentic message changes:
//!
//! - Only the sender's *live incarnation* counts: a message from a sender
//!   membership does not consider live, or from another incarnation than
//!   the live one, is dropped. A speaker that restarted therefore cannot
//!   be represented by what its previous process claimed.
//! - Only *newer* versions count: a duplicate, a reordered older version
//!   or a replay is [`Received::Stale`].
//! - When a sender stops being live (or is renewed), the receiver
//!   [`ClaimBook::forget`]s its claims: whatever it claimed predates its
//!   death. The version is remembered, so a delayed older message cannot
//!   bring them back, but the same version sent again (the sender's
//!   periodic refresh after a partition healed) is taken.

use super::{Claims, Node};
use std::collections::{BTreeMap, BTreeSet};

/// One speaker's claims, as it sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<K> {
    /// The sender's membership incarnation.
    pub epoch: u64,
    /// The version within the epoch: higher for every change of `held` or
    /// `settling`; a periodic refresh repeats it.
    pub seq: u64,
    /// Whether the sender is still listening or in a cold start
    /// ([`super::Phase`]): a speaker that starts and hears only settling
    /// peers knows every speaker restarted.
    pub settling: bool,
    /// The Services the sender announces; `None` while it is listening and
    /// has decided nothing yet (its records may still count for it).
    pub held: Option<BTreeSet<K>>,
    /// The receiver should send its own claims back at once (set when the
    /// sender has just seen the receiver become live).
    pub reply: bool,
}

/// What [`ClaimBook::receive`] made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Received {
    /// A newer version: the sender's claims are now this message's.
    Fresh,
    /// Not newer than what is held (or than what was forgotten): ignored.
    Stale,
    /// The sender is not live: ignored (it sends again when it is).
    NotLive,
    /// The sender is live under another incarnation: ignored.
    OtherIncarnation,
}

/// What is known of one speaker that was heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Its epoch and sequence.
    pub version: (u64, u64),
    /// Whether it said it was settling.
    pub settling: bool,
    /// Whether it has published claims (`held` was `Some`).
    pub published: bool,
}

/// The claims of the live speakers, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBook<K> {
    claims: Claims<K>,
    heard: BTreeMap<Node, Heard>,
    /// The version last taken from each node, kept after `forget`.
    floor: BTreeMap<Node, (u64, u64)>,
}

impl<K> Default for ClaimBook<K> {
    fn default() -> Self {
        Self {
            claims: BTreeMap::new(),
            heard: BTreeMap::new(),
            floor: BTreeMap::new(),
        }
    }
}

impl<K: Ord> ClaimBook<K> {
    /// Takes `msg` from `from`, whose live incarnation (membership) is
    /// `incarnation` (`None`: not live).
    pub fn receive(&mut self, from: &Node, msg: Message<K>, incarnation: Option<u64>) -> Received {
        let Some(live) = incarnation else {
            return Received::NotLive;
        };
        if live != msg.epoch {
            return Received::OtherIncarnation;
        }
        let version = (msg.epoch, msg.seq);
        let fresh = match (self.heard.get(from), self.floor.get(from)) {
            (Some(heard), _) => version > heard.version,
            (None, Some(floor)) => version >= *floor,
            (None, None) => true,
        };
        if !fresh {
            return Received::Stale;
        }
        self.floor.insert(from.clone(), version);
        self.heard.insert(
            from.clone(),
            Heard {
                version,
                settling: msg.settling,
                published: msg.held.is_some(),
            },
        );
        match msg.held {
            Some(held) => {
                self.claims.insert(from.clone(), held);
            }
            None => {
                self.claims.remove(from);
            }
        }
        Received::Fresh
    }

    /// Forgets what `node` claimed (it stopped being live, or its
    /// incarnation changed), keeping the version as a floor.
    pub fn forget(&mut self, node: &str) {
        self.claims.remove(node);
        self.heard.remove(node);
    }

    /// Sets this speaker's own entry (no freshness check: it is the
    /// author). `None`: it has published nothing yet.
    pub fn set_own(
        &mut self,
        me: &Node,
        version: (u64, u64),
        settling: bool,
        held: Option<BTreeSet<K>>,
    ) where
        K: Clone,
    {
        self.heard.insert(
            me.clone(),
            Heard {
                version,
                settling,
                published: held.is_some(),
            },
        );
        match held {
            Some(held) => {
                self.claims.insert(me.clone(), held);
            }
            None => {
                self.claims.remove(me);
            }
        }
    }

    /// The published claims, by node: [`super::Inputs::claims`].
    pub fn claims(&self) -> &Claims<K> {
        &self.claims
    }

    /// What was heard from `node` (since it was last forgotten).
    pub fn heard(&self, node: &str) -> Option<Heard> {
        self.heard.get(node).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(epoch: u64, seq: u64, held: &[u32]) -> Message<u32> {
        Message {
            epoch,
            seq,
            settling: false,
            held: Some(held.iter().copied().collect()),
            reply: false,
        }
    }

    fn node(n: &str) -> Node {
        Node::from(n)
    }

    fn held(book: &ClaimBook<u32>, n: &str) -> Option<Vec<u32>> {
        book.claims().get(n).map(|s| s.iter().copied().collect())
    }

    #[test]
    fn only_newer_versions_replace_a_speakers_claims() {
        let mut book = ClaimBook::default();
        let a = node("a");
        assert_eq!(
            book.receive(&a, msg(7, 2, &[1, 2]), Some(7)),
            Received::Fresh
        );
        assert_eq!(book.receive(&a, msg(7, 2, &[9]), Some(7)), Received::Stale);
        assert_eq!(book.receive(&a, msg(7, 1, &[9]), Some(7)), Received::Stale);
        assert_eq!(held(&book, "a"), Some(vec![1, 2]));
        assert_eq!(book.receive(&a, msg(7, 3, &[2]), Some(7)), Received::Fresh);
        assert_eq!(held(&book, "a"), Some(vec![2]));
    }

    #[test]
    fn claims_of_a_speaker_that_is_not_live_or_of_another_incarnation_are_dropped() {
        let mut book = ClaimBook::default();
        let a = node("a");
        assert_eq!(book.receive(&a, msg(7, 1, &[1]), None), Received::NotLive);
        // A message of the process before a restart, delayed.
        assert_eq!(
            book.receive(&a, msg(6, 99, &[1]), Some(7)),
            Received::OtherIncarnation
        );
        assert_eq!(held(&book, "a"), None);
        assert_eq!(book.heard("a"), None);
    }

    #[test]
    fn a_forgotten_speakers_refresh_counts_again_but_an_older_message_does_not() {
        let mut book = ClaimBook::default();
        let a = node("a");
        book.receive(&a, msg(7, 5, &[1]), Some(7));
        book.forget("a");
        assert_eq!(held(&book, "a"), None);
        // Delayed from before the partition.
        assert_eq!(
            book.receive(&a, msg(7, 4, &[1, 2]), Some(7)),
            Received::Stale
        );
        // Its periodic refresh after the heal repeats the version.
        assert_eq!(book.receive(&a, msg(7, 5, &[1]), Some(7)), Received::Fresh);
        assert_eq!(held(&book, "a"), Some(vec![1]));
    }

    #[test]
    fn a_listening_speaker_is_heard_but_has_not_published() {
        let mut book: ClaimBook<u32> = ClaimBook::default();
        let a = node("a");
        let hello = Message {
            epoch: 1,
            seq: 1,
            settling: true,
            held: None,
            reply: true,
        };
        assert_eq!(book.receive(&a, hello, Some(1)), Received::Fresh);
        let heard = book.heard("a").unwrap();
        assert!(heard.settling && !heard.published);
        assert!(book.claims().is_empty());
        // Its first decision: now it has published (an empty set counts).
        book.receive(&a, msg(1, 2, &[]), Some(1));
        assert_eq!(held(&book, "a"), Some(vec![]));
        assert!(book.heard("a").unwrap().published);
    }
}
