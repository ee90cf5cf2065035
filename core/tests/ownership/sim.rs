//! A small network of speakers, each running `ownership::Member` on its
//! own view. Membership is an oracle: a speaker sees as live exactly the
//! speakers that are up and on its side of a partition, at once (the
//! detection time is the membership's business, `docs/speaker-membership.md`).
//! Claims travel as messages with a random delay, may be lost, and are
//! dropped when the link is cut at delivery. Services are visible to every
//! speaker at once (the API watch is not simulated); their candidates in a
//! speaker's view are the nodes eligible for them that it sees live.
//!
//! Time is in milliseconds. The simulation is event driven: it jumps to
//! the next delivery or the next time a speaker asked to be polled.

use ferrolb_core::ownership::{Config, Member, Message, Mode, Node, Phase, Service};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// How long one speaker must have announced a Service alone before its
/// record names it (the `nodeAssigned` hold, scaled down).
pub const HOLD: u64 = 1_000;

pub fn name(i: usize) -> Node {
    Node::from(format!("node-{i}"))
}

fn index(n: &Node) -> usize {
    n.strip_prefix("node-")
        .and_then(|i| i.parse().ok())
        .unwrap()
}

/// The protocol timing used in the simulation.
pub fn config(mode: Mode) -> Config {
    Config {
        mode,
        refresh: Duration::from_millis(500),
        listen: Duration::from_millis(1_500),
        settle: Duration::from_millis(4_000),
        yield_grace: Duration::from_millis(100),
    }
}

/// An IP and the nodes eligible to announce it (selected, not excluded,
/// with an endpoint): every Service elected under it shares them.
#[derive(Debug, Clone)]
pub struct Group {
    pub ip: IpAddr,
    pub eligible: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
pub struct Svc {
    pub group: usize,
    pub rebalance: bool,
}

struct Flight {
    at: u64,
    order: u64,
    from: usize,
    to: usize,
    msg: Message<u32>,
}

pub struct Sim {
    pub now: u64,
    pub config: Config,
    pub up: Vec<bool>,
    epoch: Vec<u64>,
    members: Vec<Option<Member<u32>>>,
    wake: Vec<u64>,
    side: Vec<u8>,
    pub groups: Vec<Group>,
    pub services: BTreeMap<u32, Svc>,
    flight: Vec<Flight>,
    order: u64,
    rng: u64,
    /// Inclusive bounds of a message's delay.
    pub delay: (u64, u64),
    pub loss_permille: u64,
    /// The node each Service's record names.
    pub records: BTreeMap<u32, Node>,
    since: BTreeMap<u32, (BTreeSet<usize>, u64)>,
    /// Every node that announced each Service since [`Sim::watch`].
    pub seen: BTreeMap<u32, BTreeSet<usize>>,
    /// The last time two nodes announced each Service (since `watch`).
    pub last_double: BTreeMap<u32, u64>,
    pub sent: u64,
}

impl Sim {
    pub fn new(
        n: usize,
        groups: Vec<Group>,
        services: BTreeMap<u32, Svc>,
        mode: Mode,
        seed: u64,
    ) -> Self {
        let mut sim = Self {
            now: 0,
            config: config(mode),
            up: vec![true; n],
            epoch: vec![1; n],
            members: (0..n).map(|_| None).collect(),
            wake: vec![0; n],
            side: vec![0; n],
            groups,
            services,
            flight: Vec::new(),
            order: 0,
            rng: seed | 1,
            delay: (1, 20),
            loss_permille: 0,
            records: BTreeMap::new(),
            since: BTreeMap::new(),
            seen: BTreeMap::new(),
            last_double: BTreeMap::new(),
            sent: 0,
        };
        for i in 0..n {
            sim.members[i] = Some(Member::new(name(i), 1, sim.config, BTreeMap::new(), ms(0)));
        }
        sim.inputs_changed();
        sim
    }

    pub fn n(&self) -> usize {
        self.up.len()
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: deterministic from the proptest-chosen seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.up[a] && self.up[b] && self.side[a] == self.side[b]
    }

    fn view(&self, i: usize) -> Vec<(Node, u64)> {
        (0..self.n())
            .filter(|j| self.connected(i, *j))
            .map(|j| (name(j), self.epoch[j]))
            .collect()
    }

    /// The candidates of `group` as speaker `i` sees them.
    pub fn candidates(&self, i: usize, group: usize) -> Vec<Node> {
        self.groups[group]
            .eligible
            .iter()
            .filter(|j| **j < self.n() && self.connected(i, **j))
            .map(|j| name(*j))
            .collect()
    }

    /// Membership, Services or eligibility changed: every speaker's view.
    pub fn inputs_changed(&mut self) {
        for i in 0..self.n() {
            if !self.up[i] {
                continue;
            }
            let view = self.view(i);
            let services: BTreeMap<u32, Service> = self
                .services
                .iter()
                .map(|(k, s)| {
                    let svc = Service::new(self.groups[s.group].ip, self.candidates(i, s.group))
                        .with_rebalance(s.rebalance);
                    (*k, svc)
                })
                .collect();
            let m = self.members[i].as_mut().unwrap();
            m.set_live(view);
            m.set_services(services);
            self.wake[i] = self.now;
        }
    }

    pub fn kill(&mut self, i: usize) {
        self.up[i] = false;
        self.members[i] = None;
        self.inputs_changed();
    }

    /// Starts speaker `i` again, as a new incarnation that read the
    /// records.
    pub fn revive(&mut self, i: usize) {
        if self.up[i] {
            return;
        }
        self.up[i] = true;
        self.epoch[i] += 1;
        self.members[i] = Some(Member::new(
            name(i),
            self.epoch[i],
            self.config,
            self.records.clone(),
            ms(self.now),
        ));
        self.inputs_changed();
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.revive(i);
    }

    /// Cuts the network in two: nodes whose bit is set in `mask` on one
    /// side.
    pub fn partition(&mut self, mask: u32) {
        for i in 0..self.n() {
            self.side[i] = u8::from(mask & (1 << i) != 0);
        }
        self.inputs_changed();
    }

    pub fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = 0);
        self.inputs_changed();
    }

    /// Forgets what was seen so far.
    pub fn watch(&mut self) {
        self.seen.clear();
        self.last_double.clear();
    }

    fn send(&mut self, from: usize, to: usize, msg: Message<u32>) {
        self.sent += 1;
        if !self.connected(from, to) || self.random() % 1_000 < self.loss_permille {
            return;
        }
        let (lo, hi) = self.delay;
        let at = self.now + lo + self.random() % (hi - lo + 1);
        self.order += 1;
        self.flight.push(Flight {
            at,
            order: self.order,
            from,
            to,
            msg,
        });
    }

    fn poll(&mut self, i: usize) {
        let mut out = Vec::new();
        let m = self.members[i].as_mut().unwrap();
        let next = m.poll(ms(self.now), &mut |to, msg| out.push((index(to), msg)));
        self.wake[i] = (next.as_millis() as u64).max(self.now + 1);
        for (to, msg) in out {
            self.send(i, to, msg);
        }
    }

    pub fn run_until(&mut self, until: u64) {
        loop {
            let next_msg = self.flight.iter().map(|f| f.at).min();
            let next_wake = (0..self.n())
                .filter(|i| self.up[*i])
                .map(|i| self.wake[i])
                .min();
            let next = match (next_msg, next_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= until => self.now = self.now.max(t),
                _ => {
                    self.now = until;
                    self.observe();
                    return;
                }
            }
            let now = self.now;
            let mut due = Vec::new();
            let mut i = 0;
            while i < self.flight.len() {
                if self.flight[i].at <= now {
                    due.push(self.flight.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            due.sort_by_key(|f| (f.at, f.order));
            let mut touched = BTreeSet::new();
            for f in due {
                if self.connected(f.from, f.to) {
                    let m = self.members[f.to].as_mut().unwrap();
                    m.receive(&name(f.from), f.msg);
                    touched.insert(f.to);
                }
            }
            for i in 0..self.n() {
                if self.up[i] && (self.wake[i] <= now || touched.contains(&i)) {
                    self.poll(i);
                }
            }
            self.observe();
        }
    }

    /// Runs for `d` more milliseconds.
    pub fn run(&mut self, d: u64) {
        self.run_until(self.now + d);
    }

    /// Long enough, without new events and loss, for everything started
    /// to finish: a listen, a cold start, refreshes repairing lost
    /// messages.
    pub fn quiesce(&mut self) {
        self.loss_permille = 0;
        let c = self.config;
        let d = (c.listen + c.settle + 4 * c.refresh).as_millis() as u64 + 4 * self.delay.1;
        self.run(d);
    }

    /// Which up speakers announce each Service.
    pub fn announcers(&self) -> BTreeMap<u32, BTreeSet<usize>> {
        let mut out: BTreeMap<u32, BTreeSet<usize>> = self
            .services
            .keys()
            .map(|k| (*k, BTreeSet::new()))
            .collect();
        for (i, m) in self.members.iter().enumerate() {
            let Some(held) = m.as_ref().and_then(|m| m.held()) else {
                continue;
            };
            for k in held {
                if let Some(set) = out.get_mut(k) {
                    set.insert(i);
                }
            }
        }
        out
    }

    /// The one announcer of each Service that has exactly one.
    pub fn owners(&self) -> BTreeMap<u32, usize> {
        self.announcers()
            .into_iter()
            .filter(|(_, a)| a.len() == 1)
            .map(|(k, a)| (k, *a.first().unwrap()))
            .collect()
    }

    fn observe(&mut self) {
        let now = self.now;
        for (k, set) in self.announcers() {
            self.seen.entry(k).or_default().extend(set.iter().copied());
            if set.len() > 1 {
                self.last_double.insert(k, now);
            }
            let entry = self.since.entry(k).or_insert_with(|| (set.clone(), now));
            if entry.0 != set {
                *entry = (set.clone(), now);
            } else if set.len() == 1 && now - entry.1 >= HOLD {
                self.records.insert(k, name(*set.first().unwrap()));
            }
        }
    }

    /// The records as the record writer leaves them once every owner has
    /// held for the hold: the owner of each announced Service, none for
    /// the others (the janitor deleted them).
    pub fn settle_records(&mut self) {
        self.records = self
            .owners()
            .into_iter()
            .map(|(k, i)| (k, name(i)))
            .collect();
    }

    pub fn phases(&self) -> Vec<Option<Phase>> {
        self.members
            .iter()
            .map(|m| m.as_ref().map(Member::phase))
            .collect()
    }

    /// Up nodes eligible for Service `k` (every up node is connected after
    /// a heal).
    pub fn eligible_up(&self, k: u32) -> BTreeSet<usize> {
        let group = &self.groups[self.services[&k].group];
        group
            .eligible
            .iter()
            .copied()
            .filter(|i| *i < self.n() && self.up[*i])
            .collect()
    }

    /// Properties (1) and (2) once healed and quiet: every Service with an
    /// eligible up node is announced by exactly one of them, Services
    /// sharing an IP by the same one, and the others by nobody.
    pub fn check_one_owner_each(&self) -> Result<(), String> {
        let ann = self.announcers();
        let mut by_ip: BTreeMap<IpAddr, BTreeSet<usize>> = BTreeMap::new();
        for (k, set) in &ann {
            let eligible = self.eligible_up(*k);
            let ok = if eligible.is_empty() {
                set.is_empty()
            } else {
                set.len() == 1 && set.is_subset(&eligible)
            };
            if !ok {
                return Err(format!(
                    "service {k}: announced by {set:?}, eligible up {eligible:?}, phases {:?}",
                    self.phases()
                ));
            }
            let ip = self.groups[self.services[k].group].ip;
            let same = by_ip.entry(ip).or_default();
            same.extend(set);
            if same.len() > 1 {
                return Err(format!("ip {ip} announced by {same:?}"));
            }
        }
        Ok(())
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
