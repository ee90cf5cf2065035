//! One speaker's side of the ownership protocol, with time passed in: what
//! it sends, when it decides, and which of its inputs count. The shell
//! feeds it membership ([`Member::set_live`], [`Member::renew`]), the
//! Services with their candidates ([`Member::set_services`]) and the
//! authenticated claims it receives ([`Member::receive`]); it calls
//! [`Member::poll`] at the time returned, sends what `poll` hands it and
//! announces [`Member::held`].
//!
//! Phases (rules 7 to 9 of `docs/speaker-ownership.md`):
//!
//! - [`Phase::Listening`]: after a start, decide and announce nothing
//!   until every live peer has been heard from (its claims, or its hello
//!   if it is listening too), at most `listen`. A restarted speaker that
//!   decided at once would take back, by its records, IPs its peers took
//!   over while it was away.
//! - [`Phase::Settling`]: if every peer heard is itself listening or
//!   settling, every speaker restarted (a DaemonSet upgrade): decide with
//!   the records ([`super::ColdStart`]) until every recorded node is back
//!   and has published, at most `settle` after the start.
//! - [`Phase::Steady`]: claims only.

use super::claims::{ClaimBook, Message, Received};
use super::{decide, ColdStart, Decision, How, Inputs, Mode, Node, Outcome, Service};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Protocol timing (the speakers' flags, the same on every speaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Placement mode.
    pub mode: Mode,
    /// How often the claims are sent again, unchanged, to every live peer
    /// (repairs lost messages).
    pub refresh: Duration,
    /// The longest a started speaker listens before deciding.
    pub listen: Duration,
    /// The longest a cold start lasts, counted from the start: how long
    /// the IPs of a node whose speaker has not come back stay reserved.
    pub settle: Duration,
    /// How long a Service that a live candidate gave up is left to the
    /// node it gave it up to before this speaker takes it (rule 10): more
    /// than the time a claims message takes.
    pub yield_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Sticky,
            refresh: Duration::from_secs(1),
            listen: Duration::from_secs(3),
            settle: Duration::from_secs(10),
            yield_grace: Duration::from_millis(200),
        }
    }
}

/// Where a [`Member`] is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Just started: hearing the peers, deciding nothing.
    Listening,
    /// Every speaker restarted: records count.
    Settling,
    /// Claims alone decide.
    Steady,
}

/// One speaker's ownership state.
#[derive(Debug, Clone)]
pub struct Member<K> {
    me: Node,
    epoch: u64,
    config: Config,
    started: Duration,
    phase: Phase,
    /// Live peers (not this speaker) and their incarnations.
    peers: BTreeMap<Node, u64>,
    /// Live speakers, this one included.
    live: BTreeSet<Node>,
    book: ClaimBook<K>,
    records: BTreeMap<K, Node>,
    recorded_nodes: BTreeSet<Node>,
    services: BTreeMap<K, Service>,
    decision: Decision<K>,
    /// The owner of each Service in the last decision; a Service waiting
    /// for its grace keeps the node that gave it up.
    owners: BTreeMap<K, Node>,
    /// Services reserved for a recorded owner that is not back yet (cold
    /// start, rule 4).
    reserved: BTreeMap<K, Node>,
    /// Services whose effective owner ([`Member::effective`]) changed since
    /// [`Member::take_changed`] was last called.
    changed: BTreeSet<K>,
    /// Services the decision places here that a live candidate gave up,
    /// since when (rule 10).
    yielded: BTreeMap<K, Duration>,
    /// What this speaker announces and has published; `None` while
    /// listening.
    held: Option<BTreeSet<K>>,
    seq: u64,
    /// The `settling` flag last published.
    published_settling: bool,
    dirty: bool,
    broadcast: bool,
    /// Peers that just became live: sent to with `reply` set.
    ask: BTreeSet<Node>,
    /// Peers that asked for our claims.
    answer: BTreeSet<Node>,
    next_refresh: Duration,
}

/// How many times [`Member::poll`] decides again when its own new claims
/// change its view (once is enough: see `docs/speaker-ownership.md`).
const SETTLE_ROUNDS: usize = 4;

impl<K: Ord + Clone> Member<K> {
    /// A speaker that starts at `now` as `me`, membership incarnation
    /// `epoch`, with the `records` read from the API (node named by each
    /// Service's `ServiceL2Status`).
    pub fn new(
        me: Node,
        epoch: u64,
        config: Config,
        records: BTreeMap<K, Node>,
        now: Duration,
    ) -> Self {
        let phase = match config.mode {
            Mode::Sticky => Phase::Listening,
            Mode::Hash => Phase::Steady,
        };
        let mut book = ClaimBook::default();
        book.set_own(&me, (epoch, 1), phase != Phase::Steady, None);
        Self {
            live: BTreeSet::from([me.clone()]),
            recorded_nodes: records.values().cloned().collect(),
            me,
            epoch,
            config,
            started: now,
            phase,
            peers: BTreeMap::new(),
            book,
            records,
            services: BTreeMap::new(),
            decision: Decision::default(),
            owners: BTreeMap::new(),
            reserved: BTreeMap::new(),
            changed: BTreeSet::new(),
            yielded: BTreeMap::new(),
            held: None,
            seq: 1,
            published_settling: phase != Phase::Steady,
            dirty: true,
            broadcast: true,
            ask: BTreeSet::new(),
            answer: BTreeSet::new(),
            next_refresh: now,
        }
    }

    /// The live peers and their incarnations, from membership (this
    /// speaker, if listed, is skipped). A peer that left or has a new
    /// incarnation is forgotten; a new one is sent our claims with a
    /// request for its own.
    pub fn set_live(&mut self, peers: impl IntoIterator<Item = (Node, u64)>) {
        let new: BTreeMap<Node, u64> = peers.into_iter().filter(|(n, _)| *n != self.me).collect();
        for (node, epoch) in &self.peers {
            if new.get(node) != Some(epoch) {
                self.book.forget(node);
                self.dirty = true;
            }
        }
        for (node, epoch) in &new {
            if self.peers.get(node) != Some(epoch) {
                self.ask.insert(node.clone());
                self.dirty = true;
            }
        }
        self.ask.retain(|n| new.contains_key(n));
        self.answer.retain(|n| new.contains_key(n));
        self.live = new.keys().cloned().collect();
        self.live.insert(self.me.clone());
        self.peers = new;
    }

    /// Every Service with IPs, with its candidates under the current
    /// membership (they change with it: call after [`Member::set_live`]).
    pub fn set_services(&mut self, services: BTreeMap<K, Service>) {
        self.services = services;
        self.dirty = true;
    }

    /// Sets one Service (`None`: it left, or has no candidate): the
    /// incremental form of [`Member::set_services`]. Setting what is
    /// already there changes nothing.
    pub fn set_service(&mut self, key: &K, service: Option<Service>) {
        match service {
            Some(service) => {
                if self.services.get(key) != Some(&service) {
                    self.services.insert(key.clone(), service);
                    self.dirty = true;
                }
            }
            None => {
                if self.services.remove(key).is_some() {
                    self.dirty = true;
                }
            }
        }
    }

    /// Membership renewed this speaker's identity (it had been declared
    /// down): publish the same claims under the new incarnation, which is
    /// the only one peers now accept.
    pub fn renew(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.seq = 0;
        self.publish();
    }

    /// Takes an authenticated message from `from`.
    pub fn receive(&mut self, from: &Node, msg: Message<K>) -> Received {
        if *from == self.me {
            return Received::Stale;
        }
        let reply = msg.reply;
        let incarnation = self.peers.get(from).copied();
        let received = self.book.receive(from, msg, incarnation);
        match received {
            Received::Fresh => {
                self.dirty = true;
                if reply {
                    self.answer.insert(from.clone());
                }
            }
            Received::Stale if reply => {
                self.answer.insert(from.clone());
            }
            _ => {}
        }
        received
    }

    /// Advances to `now`: phase changes, a decision if anything changed,
    /// and the messages to send (`send(to, message)`). Returns when to
    /// call again at the latest.
    pub fn poll(&mut self, now: Duration, send: &mut dyn FnMut(&Node, Message<K>)) -> Duration {
        self.advance_phase(now);
        if self
            .yielded
            .values()
            .any(|since| now >= *since + self.config.yield_grace)
        {
            self.dirty = true;
        }
        if self.phase != Phase::Listening {
            for _ in 0..SETTLE_ROUNDS {
                if !self.dirty {
                    break;
                }
                self.dirty = false;
                self.decide(now);
            }
        }
        let settling = self.phase != Phase::Steady;
        if settling != self.published_settling {
            self.publish();
        }
        self.send(now, send);
        let mut next = self.next_refresh;
        match self.phase {
            Phase::Listening => next = next.min(self.started + self.config.listen),
            Phase::Settling => next = next.min(self.started + self.config.settle),
            Phase::Steady => {}
        }
        if let Some(since) = self.yielded.values().min() {
            next = next.min(*since + self.config.yield_grace);
        }
        // While listening nothing is decided: the next message or the end
        // of `listen` wakes it.
        if self.dirty && self.phase != Phase::Listening {
            next = next.min(now + Duration::from_millis(1));
        }
        next
    }

    fn advance_phase(&mut self, now: Duration) {
        if self.phase == Phase::Listening {
            let heard_all = self.peers.keys().all(|p| self.book.heard(p).is_some());
            if heard_all || now >= self.started + self.config.listen {
                // A peer not heard counts as settling: in a restart of
                // every speaker, treating it as steady would drop the
                // records and move IPs.
                let cold = self
                    .peers
                    .keys()
                    .all(|p| self.book.heard(p).is_none_or(|h| h.settling));
                self.phase = if cold { Phase::Settling } else { Phase::Steady };
                self.dirty = true;
            }
        }
        if self.phase == Phase::Settling {
            let back = self
                .recorded_nodes
                .iter()
                .all(|n| self.live.contains(n) && self.book.heard(n).is_some_and(|h| h.published));
            if back || now >= self.started + self.config.settle {
                self.phase = Phase::Steady;
                self.dirty = true;
            }
        }
    }

    fn decide(&mut self, now: Duration) {
        let cold_start = (self.phase == Phase::Settling).then_some(ColdStart {
            records: &self.records,
            live: &self.live,
        });
        self.decision = decide(&Inputs {
            mode: self.config.mode,
            services: &self.services,
            claims: self.book.claims(),
            cold_start,
        });
        let mut held = BTreeSet::new();
        let mut yielded = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for (key, outcome) in self.decision.outcomes() {
            let Outcome::Owner { node, how } = outcome else {
                continue;
            };
            if *node == self.me && *how == How::Placed {
                // Rule 10: given up by a node that is still a live
                // candidate, most likely to a better claimant whose claims
                // have not reached us yet.
                let gave_up = self.owners.get(key).filter(|prev| {
                    **prev != self.me
                        && self.services.get(key).is_some_and(|s| s.is_candidate(prev))
                });
                if let Some(prev) = gave_up {
                    let since = self.yielded.get(key).copied().unwrap_or(now);
                    if now < since + self.config.yield_grace {
                        yielded.insert(key.clone(), since);
                        owners.insert(key.clone(), prev.clone());
                        continue;
                    }
                }
            }
            if *node == self.me {
                held.insert(key.clone());
            }
            owners.insert(key.clone(), node.clone());
        }
        let reserved: BTreeMap<K, Node> = self
            .decision
            .outcomes()
            .iter()
            .filter_map(|(k, o)| match o {
                Outcome::Reserved { node } => Some((k.clone(), node.clone())),
                _ => None,
            })
            .collect();
        diff_into(&self.owners, &owners, &mut self.changed);
        diff_into(&self.reserved, &reserved, &mut self.changed);
        self.owners = owners;
        self.reserved = reserved;
        self.yielded = yielded;
        if self.held.as_ref() != Some(&held) {
            self.held = Some(held);
            // Our own claims are part of the view, but deciding again
            // with them decides the same (a decision is a fixed point of
            // its own claims, property tested): no second round.
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.seq += 1;
        self.published_settling = self.phase != Phase::Steady;
        self.book.set_own(
            &self.me,
            (self.epoch, self.seq),
            self.published_settling,
            self.held.clone(),
        );
        self.broadcast = true;
    }

    fn message(&self, reply: bool) -> Message<K> {
        Message {
            epoch: self.epoch,
            seq: self.seq,
            settling: self.phase != Phase::Steady,
            held: self.held.clone(),
            // A listening speaker asks everyone, every time, until it has
            // heard them.
            reply: reply || self.phase == Phase::Listening,
        }
    }

    fn send(&mut self, now: Duration, send: &mut dyn FnMut(&Node, Message<K>)) {
        if self.broadcast || now >= self.next_refresh {
            for peer in self.peers.keys() {
                send(peer, self.message(self.ask.contains(peer)));
            }
            self.broadcast = false;
            self.next_refresh = now + self.config.refresh;
        } else {
            for peer in &self.ask {
                send(peer, self.message(true));
            }
            for peer in self.answer.difference(&self.ask) {
                send(peer, self.message(false));
            }
        }
        self.ask.clear();
        self.answer.clear();
    }

    /// The Services this speaker announces (and claims); `None` while it
    /// listens.
    pub fn held(&self) -> Option<&BTreeSet<K>> {
        self.held.as_ref()
    }

    /// Who announces `key` as far as this speaker acts on it: the owner of
    /// the last decision, except that a Service this speaker waits to take
    /// (rule 10) is still the node that gave it up.
    pub fn effective(&self, key: &K) -> Effective<'_> {
        if let Some(node) = self.owners.get(key) {
            return Effective::Owner(node);
        }
        if let Some(node) = self.reserved.get(key) {
            return Effective::Reserved(node);
        }
        if self.phase == Phase::Listening {
            Effective::Undecided
        } else {
            Effective::Nobody
        }
    }

    /// The Services whose [`Member::effective`] owner changed since the
    /// last call (the first decision after listening changes all of them).
    pub fn take_changed(&mut self) -> BTreeSet<K> {
        std::mem::take(&mut self.changed)
    }

    /// This speaker's current message, as a peer that asks for it is sent
    /// it (`reply` unset).
    pub fn current(&self) -> Message<K> {
        self.message(false)
    }

    /// The last decision (empty while listening).
    pub fn decision(&self) -> &Decision<K> {
        &self.decision
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The claims received.
    pub fn book(&self) -> &ClaimBook<K> {
        &self.book
    }

    /// This speaker's name.
    pub fn me(&self) -> &Node {
        &self.me
    }
}

/// Who announces a Service, as [`Member::effective`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effective<'a> {
    /// This node announces it.
    Owner(&'a Node),
    /// Nobody, until this recorded owner is back or the cold start ends.
    Reserved(&'a Node),
    /// Nobody: it has no candidate.
    Nobody,
    /// Nothing is decided yet: the speaker is listening after its start.
    Undecided,
}

/// Adds to `changed` the keys whose value differs between `a` and `b`.
fn diff_into<K: Ord + Clone>(
    a: &BTreeMap<K, Node>,
    b: &BTreeMap<K, Node>,
    changed: &mut BTreeSet<K>,
) {
    for (k, v) in a {
        if b.get(k) != Some(v) {
            changed.insert(k.clone());
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            changed.insert(k.clone());
        }
    }
}

#[cfg(test)]
mod tests;
