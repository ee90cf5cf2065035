//! The pure fast-liveness logic of one speaker: whom it sends heartbeats
//! to, whom it watches, when it declares a peer down, and which peers the
//! cluster's verdicts make down. No clock and no socket: the shell passes
//! the time (a monotonic [`Duration`] since any origin, plus the wall
//! clock for the future-date check) and a `send` callback.
//!
//! # Rules
//! 1. **Watchers.** Every speaker sends a heartbeat every `interval` to its
//!    `k` watchers: the next `k` live speakers after itself on a ring
//!    ordered by `sha256(name)` (all others when fewer are live). Who
//!    watches whom follows from the sender's view of membership alone, so
//!    the cost per speaker is `k` heartbeats per interval out and, on
//!    average, `k` in, whatever the cluster size.
//! 2. **Watching.** A speaker watches every authenticated sender of
//!    heartbeats ([`ferrolb_core::liveness::Peer`]: fresh heartbeats
//!    only, detection time = the sender's interval x multiplier). When a
//!    sender drops it as a watcher (membership changed), its last
//!    heartbeat says so (`last`) and it is no longer watched.
//! 3. **Accusing.** A watched live peer silent for its detection time is
//!    accused: a `down` verdict goes to every live speaker (the accused
//!    included) at once and again every `refresh`, for at most
//!    `accuse_for` (SWIM has declared a dead speaker down long before);
//!    a fresh heartbeat withdraws it (a `down = false` verdict).
//! 4. **Quorum.** A live peer is *down* here when at least
//!    `min(2, its watchers)` live speakers accuse it (our own accusation
//!    counts), each accusation from another speaker expiring `ttl` after
//!    it was last heard. Two watchers must agree, so one watcher that is
//!    starved of CPU or cut off from the peer alone moves nothing.
//! 5. **Refuting.** An accused speaker that is alive answers the accuser
//!    at once: a heartbeat if the accuser is one of its watchers (the
//!    previous ones were lost), else a `last` heartbeat (a watcher it
//!    dropped missed the goodbye).
//!
//! Freshness: heartbeats must be newer than all seen from the sender
//! (epoch, then seq; [`Peer`]), verdicts newer than all verdicts seen from
//! the sender; a sender's epoch more than `max_future` ahead of our wall
//! clock is refused (it would make every later real heartbeat look
//! stale). Anything else is dropped and counted as [`Dropped`], and
//! changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_core::liveness::{self, Limits, Peer, Received, State};
use sha2::{Digest, Sha256};

use super::wire::Message;

/// The fast-liveness parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How often heartbeats go out (`--heartbeat-interval`).
    pub interval: Duration,
    /// Missed heartbeats before a watcher declares us down
    /// (`--heartbeat-multiplier`).
    pub multiplier: u8,
    /// How many speakers watch each speaker (`--heartbeat-watchers`).
    pub watchers: usize,
    /// How often an accusation is sent again while it holds.
    pub refresh: Duration,
    /// How long another speaker's accusation counts after it was heard.
    pub ttl: Duration,
    /// How long an accusation is kept up at most.
    pub accuse_for: Duration,
    /// How far a sender's epoch may be ahead of our wall clock.
    pub max_future: Duration,
    /// Bounds on what watched peers ask for.
    pub limits: Limits,
}

impl Config {
    /// The defaults for everything but the three flags.
    pub fn new(interval: Duration, multiplier: u8, watchers: usize) -> Self {
        Self {
            interval,
            multiplier,
            watchers,
            refresh: Duration::from_millis(250),
            ttl: Duration::from_secs(1),
            accuse_for: Duration::from_secs(30),
            max_future: Duration::from_secs(600),
            limits: Limits::default(),
        }
    }

    /// How long after our last heartbeat a watcher declares us down.
    pub fn detect_time(&self) -> Duration {
        self.limits.detect_time(&self.heartbeat(0, 0))
    }

    fn heartbeat(&self, epoch: u64, seq: u64) -> liveness::Heartbeat {
        liveness::Heartbeat {
            epoch,
            seq,
            interval: self.interval,
            multiplier: self.multiplier,
        }
    }
}

/// Why a decoded, authenticated message changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// It names us as its sender.
    FromSelf,
    /// Not newer than what we saw from the sender (duplicate, reordered,
    /// replayed).
    Replayed,
    /// Its epoch is more than `max_future` ahead of our clock.
    FutureDated,
}

impl Dropped {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::FromSelf => "from_self",
            Self::Replayed => "replayed",
            Self::FutureDated => "future_dated",
        }
    }
}

/// Something worth a log line, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// We declared this watched peer down.
    Accused(String),
    /// A fresh heartbeat: we withdrew our accusation.
    Withdrew(String),
    /// Enough watchers agree: down here.
    Down(String),
    /// No longer down here.
    Up(String),
    /// Another speaker accused us; we answered.
    Refuted(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accusation {
    None,
    Holding {
        until: Duration,
        next_refresh: Duration,
    },
    GaveUp,
}

#[derive(Debug, Clone)]
struct Watched {
    peer: Peer,
    /// The peer said goodbye: remembered for freshness, not watched.
    retired: bool,
    accusation: Accusation,
}

#[derive(Debug, Clone)]
enum Out {
    Heartbeat { to: SocketAddr, last: bool },
    Verdict { accused: Arc<str>, down: bool },
}

/// One speaker's fast-liveness state.
#[derive(Debug, Clone)]
pub struct Fast {
    me: Arc<str>,
    epoch: u64,
    seq: u64,
    verdict_seq: u64,
    config: Config,
    /// Live peers (from SWIM), without us.
    members: BTreeMap<Arc<str>, SocketAddr>,
    /// Our watchers.
    targets: Vec<(Arc<str>, SocketAddr)>,
    next_send: Option<Duration>,
    outbox: Vec<Out>,
    peers: HashMap<Arc<str>, Watched>,
    /// accused -> accuser -> when the accusation expires.
    tally: BTreeMap<Arc<str>, BTreeMap<Arc<str>, Duration>>,
    newest_verdict: HashMap<Arc<str>, (u64, u64)>,
    down: BTreeSet<String>,
    notes: Vec<Note>,
}

impl Fast {
    /// The state of speaker `me` in its incarnation `epoch`, alone.
    pub fn new(me: &str, epoch: u64, config: Config) -> Self {
        Self {
            me: Arc::from(me),
            epoch,
            seq: 0,
            verdict_seq: 0,
            config,
            members: BTreeMap::new(),
            targets: Vec::new(),
            next_send: None,
            outbox: Vec::new(),
            peers: HashMap::new(),
            tally: BTreeMap::new(),
            newest_verdict: HashMap::new(),
            down: BTreeSet::new(),
            notes: Vec::new(),
        }
    }

    /// The parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Live peers here: down by the watchers' quorum.
    pub fn down(&self) -> &BTreeSet<String> {
        &self.down
    }

    /// Our watchers, in ring order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|(n, _)| &**n)
    }

    /// Peers we watch (that send us heartbeats).
    pub fn watching(&self) -> impl Iterator<Item = &str> {
        self.peers
            .iter()
            .filter(|(_, w)| !w.retired)
            .map(|(n, _)| &**n)
    }

    /// What happened since the last call.
    pub fn take_notes(&mut self) -> std::vec::Drain<'_, Note> {
        self.notes.drain(..)
    }

    /// The live speakers as SWIM sees them (we may be among them), with
    /// the address each is reached on.
    pub fn set_members<'a>(
        &mut self,
        members: impl IntoIterator<Item = (&'a str, SocketAddr)>,
        now: Duration,
    ) {
        let me = Arc::clone(&self.me);
        self.members = members
            .into_iter()
            .filter(|(n, _)| *n != &*me)
            .map(|(n, a)| (Arc::<str>::from(n), a))
            .collect();
        let targets = ring_successors(&self.me, &self.members, self.config.watchers);
        for (name, addr) in &self.targets {
            if !targets.iter().any(|(n, _)| n == name) {
                self.outbox.push(Out::Heartbeat {
                    to: *addr,
                    last: true,
                });
            }
        }
        self.targets = targets;
        let members = &self.members;
        self.peers
            .retain(|name, w| members.contains_key(name) || w.peer.state(now) == State::Up);
        let peers = &self.peers;
        for (accused, accusers) in &mut self.tally {
            if !peers.contains_key(accused) {
                accusers.remove(&me);
            }
        }
        self.tally
            .retain(|accused, accusers| members.contains_key(accused) && !accusers.is_empty());
        self.newest_verdict
            .retain(|name, _| members.contains_key(name));
        self.update_down(now);
    }

    /// Takes one authenticated, decoded message from `src`. `wall_micros`
    /// is our wall clock in microseconds since the Unix epoch.
    pub fn receive(
        &mut self,
        msg: &Message<'_>,
        src: SocketAddr,
        now: Duration,
        wall_micros: u64,
    ) -> Result<(), Dropped> {
        if msg.from() == &*self.me {
            return Err(Dropped::FromSelf);
        }
        let max_future = u64::try_from(self.config.max_future.as_micros()).unwrap_or(u64::MAX);
        if msg.epoch() > wall_micros.saturating_add(max_future) {
            return Err(Dropped::FutureDated);
        }
        match *msg {
            Message::Heartbeat {
                from,
                epoch,
                seq,
                interval,
                multiplier,
                last,
            } => self.on_heartbeat(from, epoch, seq, interval, multiplier, last, now),
            Message::Verdict {
                from,
                epoch,
                seq,
                accused,
                down,
            } => self.on_verdict(from, (epoch, seq), accused, down, src, now),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_heartbeat(
        &mut self,
        from: &str,
        epoch: u64,
        seq: u64,
        interval: Duration,
        multiplier: u8,
        last: bool,
        now: Duration,
    ) -> Result<(), Dropped> {
        let hb = liveness::Heartbeat {
            epoch,
            seq,
            interval,
            multiplier,
        };
        let limits = self.config.limits;
        let watched = match self.peers.get_mut(from) {
            Some(w) => w,
            None => self
                .peers
                .entry(Arc::from(from))
                .or_insert_with(|| Watched {
                    peer: Peer::new(limits),
                    retired: false,
                    accusation: Accusation::None,
                }),
        };
        if watched.peer.receive(now, &hb) == Received::Stale {
            return Err(Dropped::Replayed);
        }
        watched.retired = last;
        let was = std::mem::replace(&mut watched.accusation, Accusation::None);
        if matches!(was, Accusation::Holding { .. } | Accusation::GaveUp) {
            let name = self.name_of(from);
            self.withdraw(name, matches!(was, Accusation::Holding { .. }));
            self.update_down(now);
        }
        Ok(())
    }

    fn on_verdict(
        &mut self,
        from: &str,
        order: (u64, u64),
        accused: &str,
        down: bool,
        src: SocketAddr,
        now: Duration,
    ) -> Result<(), Dropped> {
        match self.newest_verdict.get_mut(from) {
            Some(newest) if order <= *newest => return Err(Dropped::Replayed),
            Some(newest) => *newest = order,
            None => {
                self.newest_verdict.insert(Arc::from(from), order);
            }
        }
        if accused == &*self.me {
            if down {
                let target = self.targets.iter().find(|(n, _)| &**n == from);
                self.outbox.push(Out::Heartbeat {
                    to: target.map_or(src, |(_, a)| *a),
                    last: target.is_none(),
                });
                self.notes.push(Note::Refuted(from.to_owned()));
            }
            return Ok(());
        }
        let Some(accuser) = self.members.get_key_value(from).map(|(k, _)| Arc::clone(k)) else {
            // Not a live speaker (yet): its word does not count.
            return Ok(());
        };
        let Some(accused) = self
            .members
            .get_key_value(accused)
            .map(|(k, _)| Arc::clone(k))
        else {
            return Ok(());
        };
        if down {
            self.tally
                .entry(accused)
                .or_default()
                .insert(accuser, now.saturating_add(self.config.ttl));
        } else if let Some(accusers) = self.tally.get_mut(&accused) {
            accusers.remove(&accuser);
        }
        self.update_down(now);
        Ok(())
    }

    /// Sends what is due, declares silent peers down, and returns when to
    /// call again at the latest.
    pub fn poll(
        &mut self,
        now: Duration,
        send: &mut dyn FnMut(SocketAddr, Message<'_>),
    ) -> Duration {
        let interval = self.config.interval;
        if self.next_send.is_none_or(|at| now >= at) {
            self.seq += 1;
            for (_, to) in &self.targets {
                send(*to, self.heartbeat(false));
            }
            self.next_send = Some(match self.next_send {
                // Keep the phase unless we fell a whole interval behind.
                Some(at) if now < at + interval => at + interval,
                _ => now + interval,
            });
        }
        let mut accused_now = Vec::new();
        let (members, refresh, accuse_for) =
            (&self.members, self.config.refresh, self.config.accuse_for);
        for (name, w) in self.peers.iter_mut().filter(|(_, w)| !w.retired) {
            match w.accusation {
                Accusation::None
                    if w.peer.state(now) == State::Down && members.contains_key(name) =>
                {
                    w.accusation = Accusation::Holding {
                        until: now + accuse_for,
                        next_refresh: now + refresh,
                    };
                    accused_now.push((Arc::clone(name), true));
                }
                Accusation::Holding { until, .. } if now >= until => {
                    w.accusation = Accusation::GaveUp;
                    accused_now.push((Arc::clone(name), false));
                }
                Accusation::Holding {
                    until,
                    next_refresh,
                } if now >= next_refresh => {
                    w.accusation = Accusation::Holding {
                        until,
                        next_refresh: next_refresh + refresh,
                    };
                    self.outbox.push(Out::Verdict {
                        accused: Arc::clone(name),
                        down: true,
                    });
                }
                _ => {}
            }
        }
        for (name, start) in accused_now {
            if start {
                self.notes.push(Note::Accused(name.to_string()));
                self.tally
                    .entry(Arc::clone(&name))
                    .or_default()
                    .insert(Arc::clone(&self.me), Duration::MAX);
                self.outbox.push(Out::Verdict {
                    accused: name,
                    down: true,
                });
            } else if let Some(accusers) = self.tally.get_mut(&name) {
                // Given up: SWIM decides from here; no withdrawal is sent,
                // the others' copies expire.
                accusers.remove(&self.me);
            }
        }
        self.flush(send);
        for accusers in self.tally.values_mut() {
            accusers.retain(|_, expires| *expires > now);
        }
        self.tally.retain(|_, a| !a.is_empty());
        self.update_down(now);
        self.next_wake(now)
    }

    fn heartbeat(&self, last: bool) -> Message<'_> {
        Message::Heartbeat {
            from: &self.me,
            epoch: self.epoch,
            seq: self.seq,
            interval: self.config.interval,
            multiplier: self.config.multiplier,
            last,
        }
    }

    fn flush(&mut self, send: &mut dyn FnMut(SocketAddr, Message<'_>)) {
        let mut outbox = std::mem::take(&mut self.outbox);
        for out in outbox.drain(..) {
            match out {
                Out::Heartbeat { to, last } => {
                    self.seq += 1;
                    send(to, self.heartbeat(last));
                }
                Out::Verdict { accused, down } => {
                    self.verdict_seq += 1;
                    let msg = Message::Verdict {
                        from: &self.me,
                        epoch: self.epoch,
                        seq: self.verdict_seq,
                        accused: &accused,
                        down,
                    };
                    for to in self.members.values() {
                        send(*to, msg);
                    }
                }
            }
        }
        // Keep the capacity: no allocation on the next flush.
        self.outbox = outbox;
    }

    fn name_of(&self, from: &str) -> Arc<str> {
        self.peers
            .get_key_value(from)
            .map_or_else(|| Arc::from(from), |(k, _)| Arc::clone(k))
    }

    fn withdraw(&mut self, name: Arc<str>, tell: bool) {
        self.notes.push(Note::Withdrew(name.to_string()));
        if let Some(accusers) = self.tally.get_mut(&name) {
            accusers.remove(&self.me);
        }
        if tell {
            self.outbox.push(Out::Verdict {
                accused: name,
                down: false,
            });
        }
    }

    fn update_down(&mut self, now: Duration) {
        let live = self.members.len() + 1;
        let quorum = self.config.watchers.min(live - 1).clamp(1, 2);
        let me = &self.me;
        let members = &self.members;
        let down: BTreeSet<String> = self
            .tally
            .iter()
            .filter(|(accused, _)| members.contains_key(*accused))
            .filter(|(_, accusers)| {
                accusers
                    .iter()
                    .filter(|(a, expires)| {
                        **expires > now && (*a == me || members.contains_key(*a))
                    })
                    .count()
                    >= quorum
            })
            .map(|(accused, _)| accused.to_string())
            .collect();
        if down != self.down {
            for gone in self.down.difference(&down) {
                self.notes.push(Note::Up(gone.clone()));
            }
            for new in down.difference(&self.down) {
                self.notes.push(Note::Down(new.clone()));
            }
            self.down = down;
        }
    }

    fn next_wake(&self, now: Duration) -> Duration {
        let mut wake = self.next_send.unwrap_or(now);
        for w in self.peers.values().filter(|w| !w.retired) {
            match w.accusation {
                Accusation::None => {
                    if let (Some(at), State::Up) = (w.peer.down_at(), w.peer.state(now)) {
                        wake = wake.min(at);
                    }
                }
                Accusation::Holding {
                    until,
                    next_refresh,
                } => wake = wake.min(until).min(next_refresh),
                Accusation::GaveUp => {}
            }
        }
        for accusers in self.tally.values() {
            for expires in accusers.values() {
                wake = wake.min(*expires);
            }
        }
        wake.max(now)
    }
}

/// The next `k` speakers after `me` on the ring ordered by
/// `sha256(name)` (then name), wrapping; all of them when fewer.
pub fn ring_successors(
    me: &str,
    members: &BTreeMap<Arc<str>, SocketAddr>,
    k: usize,
) -> Vec<(Arc<str>, SocketAddr)> {
    type Key = ([u8; 32], String);
    let key = |name: &str| -> Key { (Sha256::digest(name.as_bytes()).into(), name.to_owned()) };
    let mine = key(me);
    let mut ring: Vec<(Key, &Arc<str>, SocketAddr)> = members
        .iter()
        .filter(|(n, _)| &***n != me)
        .map(|(n, a)| (key(n), n, *a))
        .collect();
    ring.sort();
    let start = ring.partition_point(|(k, _, _)| *k < mine);
    (0..ring.len().min(k))
        .map(|i| {
            let (_, n, a) = &ring[(start + i) % ring.len()];
            (Arc::clone(n), *a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::wire;
    use super::*;
    use proptest::prelude::*;

    const T: Duration = Duration::from_millis(20);
    const WALL: u64 = 1_800_000_000_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn name(i: usize) -> String {
        format!("node-{i}")
    }

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 7000 + u16::try_from(i).unwrap()))
    }

    fn index(a: SocketAddr) -> usize {
        usize::from(a.port() - 7000)
    }

    /// A datagram on its way.
    struct InFlight {
        at: Duration,
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    }

    /// Speakers on a simulated network: every message is encoded,
    /// delayed by `delay(from, to, n)` (`None`: lost) and decoded again.
    struct Sim {
        nodes: Vec<Option<Fast>>,
        wake: Vec<Duration>,
        flight: Vec<InFlight>,
        now: Duration,
        sent: usize,
        /// Every (time, node, down set) where a down set changed.
        downs: Vec<(Duration, usize, BTreeSet<String>)>,
        last_down: Vec<BTreeSet<String>>,
    }

    impl Sim {
        fn new(n: usize, config: Config) -> Self {
            let mut nodes: Vec<Option<Fast>> = (0..n)
                .map(|i| Some(Fast::new(&name(i), 1_000 + i as u64, config)))
                .collect();
            let names: Vec<(String, SocketAddr)> = (0..n).map(|i| (name(i), addr(i))).collect();
            for f in nodes.iter_mut().flatten() {
                f.set_members(names.iter().map(|(n, a)| (n.as_str(), *a)), ms(0));
            }
            Self {
                nodes,
                wake: vec![ms(0); n],
                flight: Vec::new(),
                now: ms(0),
                sent: 0,
                downs: Vec::new(),
                last_down: vec![BTreeSet::new(); n],
            }
        }

        fn poll(
            &mut self,
            i: usize,
            delay: &mut dyn FnMut(usize, usize, usize) -> Option<Duration>,
        ) {
            let now = self.now;
            let Some(f) = self.nodes[i].as_mut() else {
                return;
            };
            let mut out = Vec::new();
            let next = f.poll(now, &mut |to, msg| {
                let mut bytes = Vec::new();
                wire::encode(&msg, &mut bytes).unwrap();
                out.push((index(to), bytes));
            });
            self.wake[i] = next;
            if *f.down() != self.last_down[i] {
                self.last_down[i] = f.down().clone();
                self.downs.push((now, i, f.down().clone()));
            }
            for (to, bytes) in out {
                self.sent += 1;
                if let Some(d) = delay(i, to, self.sent) {
                    self.flight.push(InFlight {
                        at: now + d,
                        from: i,
                        to,
                        bytes,
                    });
                }
            }
        }

        /// Runs until `until` in steps of 1 ms.
        fn run(
            &mut self,
            until: Duration,
            delay: &mut dyn FnMut(usize, usize, usize) -> Option<Duration>,
        ) {
            while self.now < until {
                self.now += ms(1);
                let now = self.now;
                let mut due: Vec<InFlight> = Vec::new();
                let mut i = 0;
                while i < self.flight.len() {
                    if self.flight[i].at <= now {
                        due.push(self.flight.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                due.sort_by_key(|m| m.at);
                for m in due {
                    if let Some(f) = self.nodes[m.to].as_mut() {
                        let msg = wire::decode(&m.bytes).unwrap();
                        let _ = f.receive(&msg, addr(m.from), now, WALL);
                        self.poll(m.to, delay);
                    }
                }
                for i in 0..self.nodes.len() {
                    if self.wake[i] <= now {
                        self.poll(i, delay);
                    }
                }
            }
        }

        fn down_at(&self, i: usize) -> &BTreeSet<String> {
            self.nodes[i].as_ref().unwrap().down()
        }
    }

    fn config(multiplier: u8, watchers: usize) -> Config {
        Config::new(T, multiplier, watchers)
    }

    #[test]
    fn each_speaker_is_watched_by_exactly_k_others_on_the_ring() {
        for n in 1..=12usize {
            for k in 1..=4usize {
                let members: BTreeMap<Arc<str>, SocketAddr> = (0..n)
                    .map(|i| (Arc::from(name(i).as_str()), addr(i)))
                    .collect();
                let mut watched_by = vec![0usize; n];
                for i in 0..n {
                    let targets = ring_successors(&name(i), &members, k);
                    assert_eq!(targets.len(), k.min(n - 1), "n={n} k={k}");
                    for (t, a) in targets {
                        assert_ne!(&*t, name(i).as_str(), "nobody watches itself");
                        watched_by[index(a)] += 1;
                    }
                }
                assert!(
                    watched_by.iter().all(|w| *w == k.min(n - 1)),
                    "n={n} k={k}: {watched_by:?}"
                );
            }
        }
    }

    #[test]
    fn a_dead_speaker_is_down_everywhere_one_detection_time_after_its_last_heartbeat() {
        let mut sim = Sim::new(3, config(5, 3));
        let mut instant = |_: usize, _: usize, _: usize| Some(ms(0));
        sim.run(ms(500), &mut instant);
        assert!(sim.downs.is_empty());
        // node-2 sends its last heartbeats at 500 ms (its phase), then dies.
        sim.nodes[2] = None;
        sim.run(ms(1_000), &mut instant);
        for i in 0..2 {
            assert_eq!(*sim.down_at(i), BTreeSet::from([name(2)]));
            let (at, _, _) = sim.downs.iter().find(|(_, n, _)| *n == i).unwrap();
            // Last heartbeat at 500 ms at the latest: down at 600 ms.
            assert!(*at <= ms(600) && *at >= ms(580), "node {i} at {at:?}");
        }
    }

    #[test]
    fn one_watcher_alone_moves_nothing() {
        // node-0 cannot hear node-2; node-1 can. node-0 accuses, node-2 is
        // not down anywhere (quorum 2), and node-2 refutes.
        let mut sim = Sim::new(3, config(5, 3));
        let mut cut = |from: usize, to: usize, _: usize| (!(from == 2 && to == 0)).then_some(ms(0));
        sim.run(ms(2_000), &mut cut);
        assert!(sim.downs.is_empty(), "{:?}", sim.downs);
    }

    #[test]
    fn with_two_speakers_the_one_watcher_decides() {
        let mut sim = Sim::new(2, config(3, 3));
        let mut instant = |_: usize, _: usize, _: usize| Some(ms(0));
        sim.run(ms(200), &mut instant);
        sim.nodes[1] = None;
        sim.run(ms(400), &mut instant);
        assert_eq!(*sim.down_at(0), BTreeSet::from([name(1)]));
    }

    #[test]
    fn a_peer_that_comes_back_is_up_again_and_the_accusations_are_withdrawn() {
        let mut sim = Sim::new(3, config(5, 3));
        let mut lossy_window = |from: usize, _: usize, n: usize| {
            // node-2's messages are lost for a while (sent counts 40..200).
            (!(from == 2 && (40..200).contains(&n))).then_some(ms(1))
        };
        sim.run(ms(1_500), &mut lossy_window);
        let downs_of_2: Vec<_> = sim.downs.iter().filter(|(_, i, _)| *i != 2).collect();
        assert!(
            !downs_of_2.is_empty(),
            "the silence was long enough to be seen"
        );
        assert!(sim.down_at(0).is_empty() && sim.down_at(1).is_empty());
    }

    #[test]
    fn replayed_future_dated_and_own_messages_are_dropped_and_change_nothing() {
        let mut f = Fast::new("node-0", 5, config(5, 3));
        f.set_members([("node-0", addr(0)), ("node-1", addr(1))], ms(0));
        let hb = |seq, epoch| Message::Heartbeat {
            from: "node-1",
            epoch,
            seq,
            interval: T,
            multiplier: 5,
            last: false,
        };
        assert_eq!(f.receive(&hb(3, 9), addr(1), ms(10), WALL), Ok(()));
        assert_eq!(
            f.receive(&hb(3, 9), addr(1), ms(11), WALL),
            Err(Dropped::Replayed)
        );
        assert_eq!(
            f.receive(&hb(2, 9), addr(1), ms(12), WALL),
            Err(Dropped::Replayed)
        );
        // An earlier incarnation with a high sequence is old too.
        assert_eq!(
            f.receive(&hb(99, 8), addr(1), ms(13), WALL),
            Err(Dropped::Replayed)
        );
        let future = WALL + 3_600_000_000;
        assert_eq!(
            f.receive(&hb(1, future), addr(1), ms(14), WALL),
            Err(Dropped::FutureDated)
        );
        let own = Message::Heartbeat {
            from: "node-0",
            epoch: 5,
            seq: 100,
            interval: T,
            multiplier: 5,
            last: false,
        };
        assert_eq!(
            f.receive(&own, addr(1), ms(15), WALL),
            Err(Dropped::FromSelf)
        );
        // None of the dropped ones counted as fresh: down one detection
        // time after the real one at 10 ms.
        let mut none = |_: SocketAddr, _: Message<'_>| {};
        f.poll(ms(109), &mut none);
        assert!(f.watching().any(|n| n == "node-1"));
        assert!(f.take_notes().all(|n| !matches!(n, Note::Accused(_))));
        f.poll(ms(110), &mut none);
        assert_eq!(
            f.take_notes().collect::<Vec<_>>(),
            vec![Note::Accused("node-1".into()), Note::Down("node-1".into())]
        );
    }

    #[test]
    fn verdicts_count_only_from_live_speakers_and_only_once_each() {
        let mut f = Fast::new("node-0", 5, config(5, 3));
        let members = [
            ("node-0", addr(0)),
            ("node-1", addr(1)),
            ("node-2", addr(2)),
            ("node-3", addr(3)),
        ];
        f.set_members(members, ms(0));
        let verdict = |from, seq| Message::Verdict {
            from,
            epoch: 1,
            seq,
            accused: "node-3",
            down: true,
        };
        assert_eq!(
            f.receive(&verdict("node-9", 1), addr(9), ms(1), WALL),
            Ok(())
        );
        assert!(f.down().is_empty(), "a stranger's word does not count");
        assert_eq!(
            f.receive(&verdict("node-1", 1), addr(1), ms(1), WALL),
            Ok(())
        );
        assert!(f.down().is_empty(), "one accuser is not a quorum");
        assert_eq!(
            f.receive(&verdict("node-1", 1), addr(1), ms(2), WALL),
            Err(Dropped::Replayed)
        );
        assert!(f.down().is_empty(), "nor is the same accuser twice");
        assert_eq!(
            f.receive(&verdict("node-2", 1), addr(2), ms(3), WALL),
            Ok(())
        );
        assert_eq!(*f.down(), BTreeSet::from(["node-3".to_string()]));
        // Accusations from others expire unless refreshed.
        let mut none = |_: SocketAddr, _: Message<'_>| {};
        f.poll(ms(1_001), &mut none);
        assert!(f.down().is_empty());
    }

    #[test]
    fn an_accused_speaker_answers_its_accuser() {
        let mut f = Fast::new("node-0", 5, config(5, 1));
        let members = [
            ("node-0", addr(0)),
            ("node-1", addr(1)),
            ("node-2", addr(2)),
        ];
        f.set_members(members, ms(0));
        let target: Vec<String> = f.targets().map(str::to_owned).collect();
        assert_eq!(target.len(), 1);
        let other = if target[0] == "node-1" {
            "node-2"
        } else {
            "node-1"
        };
        let mut sent = Vec::new();
        f.poll(ms(0), &mut |to, msg| sent.push((to, format!("{msg:?}"))));
        sent.clear();
        for (i, accuser) in [target[0].as_str(), other].into_iter().enumerate() {
            let v = Message::Verdict {
                from: accuser,
                epoch: 1,
                seq: 1,
                accused: "node-0",
                down: true,
            };
            let src = addr(if accuser == "node-1" { 1 } else { 2 });
            f.receive(&v, src, ms(5 + i as u64), WALL).unwrap();
            f.poll(ms(5 + i as u64), &mut |to, msg| {
                sent.push((to, format!("{msg:?}")))
            });
        }
        assert_eq!(sent.len(), 2, "{sent:?}");
        // Our watcher gets a heartbeat, the other a goodbye.
        assert!(sent[0].1.contains("last: false"), "{sent:?}");
        assert!(sent[1].1.contains("last: true"), "{sent:?}");
    }

    #[test]
    fn a_goodbye_stops_the_watching_and_a_later_fresh_heartbeat_resumes_it() {
        let mut f = Fast::new("node-0", 5, config(5, 3));
        f.set_members([("node-0", addr(0)), ("node-1", addr(1))], ms(0));
        let hb = |seq, last| Message::Heartbeat {
            from: "node-1",
            epoch: 9,
            seq,
            interval: T,
            multiplier: 5,
            last,
        };
        f.receive(&hb(1, false), addr(1), ms(0), WALL).unwrap();
        f.receive(&hb(2, true), addr(1), ms(10), WALL).unwrap();
        let mut none = |_: SocketAddr, _: Message<'_>| {};
        f.poll(ms(5_000), &mut none);
        assert!(f.watching().next().is_none());
        assert!(f.down().is_empty());
        // A replay of the first heartbeat does not make it watched again.
        assert_eq!(
            f.receive(&hb(1, false), addr(1), ms(5_001), WALL),
            Err(Dropped::Replayed)
        );
        f.receive(&hb(3, false), addr(1), ms(5_002), WALL).unwrap();
        assert!(f.watching().any(|n| n == "node-1"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Delays below (multiplier - 1) x interval, duplicates and any
        /// reordering never declare a live speaker down.
        #[test]
        fn jitter_duplicates_and_reordering_within_bounds_never_declare_anyone_down(
            n in 2usize..=9, k in 1usize..=4, multiplier in 2u8..=6,
            seed: u64,
        ) {
            let mut sim = Sim::new(n, config(multiplier, k));
            let jitter = T.as_millis() as u64 * (u64::from(multiplier) - 1) - 2;
            let mut rng = seed;
            let mut delay = move |_: usize, _: usize, _: usize| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                Some(ms((rng >> 33) % (jitter + 1)))
            };
            sim.run(ms(2_000), &mut delay);
            prop_assert!(sim.downs.is_empty(), "{:?}", sim.downs);
        }

        /// A dead speaker is down at every live one within the detection
        /// time plus twice the delay bound (its last heartbeat to a
        /// watcher, then the watcher's verdict).
        #[test]
        fn a_death_is_agreed_within_detection_plus_two_delays(
            n in 2usize..=9, k in 1usize..=4, multiplier in 2u8..=6,
            victim_seed: usize, kill_at in 100u64..400, max_delay in 0u64..15, seed: u64,
        ) {
            let mut sim = Sim::new(n, config(multiplier, k));
            let mut rng = seed;
            let mut delay = move |_: usize, _: usize, _: usize| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                Some(ms((rng >> 33) % (max_delay + 1)))
            };
            let victim = victim_seed % n;
            sim.run(ms(kill_at), &mut delay);
            sim.nodes[victim] = None;
            let detect = T * u32::from(multiplier);
            // One simulated millisecond per hop on top of the delays.
            let bound = ms(kill_at) + detect + ms(2 * max_delay + 2);
            sim.run(bound, &mut delay);
            for i in (0..n).filter(|i| *i != victim) {
                prop_assert!(sim.down_at(i).contains(&name(victim)), "node {} at {:?}: {:?}", i, bound, sim.downs);
                let first = sim.downs.iter().find(|(_, j, d)| *j == i && d.contains(&name(victim))).unwrap().0;
                prop_assert!(first >= ms(kill_at) + detect - T - ms(1), "too early: {:?}", first);
            }
        }

        /// Membership changes move watchers; with every goodbye lost, the
        /// dropped watchers accuse, the accused refute, and with k >= 2
        /// nobody is ever down.
        #[test]
        fn a_changing_membership_with_lost_goodbyes_declares_nobody_down(
            n in 3usize..=9, k in 2usize..=4, seed: u64,
        ) {
            let mut sim = Sim::new(n, config(5, k));
            let mut instant = |_: usize, _: usize, _: usize| Some(ms(1));
            sim.run(ms(300), &mut instant);
            // Everyone but the last speaker forgets it (as SWIM would during
            // a brief partition of it), then learns of it again.
            let without: Vec<(String, SocketAddr)> = (0..n - 1).map(|i| (name(i), addr(i))).collect();
            let all: Vec<(String, SocketAddr)> = (0..n).map(|i| (name(i), addr(i))).collect();
            let mut drop_goodbyes = move |_: usize, _: usize, _: usize| {
                Some(ms(1 + seed % 3))
            };
            for i in 0..n - 1 {
                let f = sim.nodes[i].as_mut().unwrap();
                f.set_members(without.iter().map(|(n, a)| (n.as_str(), *a)), ms(300));
            }
            // Goodbyes are only queued; lose every message for one tick.
            let mut lose_all = |_: usize, _: usize, _: usize| None;
            sim.run(ms(302), &mut lose_all);
            sim.run(ms(800), &mut drop_goodbyes);
            for i in 0..n - 1 {
                let f = sim.nodes[i].as_mut().unwrap();
                f.set_members(all.iter().map(|(n, a)| (n.as_str(), *a)), ms(800));
            }
            sim.run(ms(1_500), &mut drop_goodbyes);
            let downs: Vec<_> = sim.downs.iter().filter(|(_, _, d)| !d.is_empty()).collect();
            prop_assert!(downs.is_empty(), "{:?}", downs);
        }
    }
}
