//! Properties (1) to (6) of issue 15 part 1, each speaker running
//! `ownership::Member` on its own view ([`Sim`]).

use crate::sim::{Group, Sim, Svc, HOLD};
use ferrolb_core::ownership::Mode;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone)]
struct Setup {
    n: usize,
    groups: Vec<Group>,
    services: BTreeMap<u32, Svc>,
    seed: u64,
    delay_max: u64,
}

impl Setup {
    fn sim(&self, mode: Mode) -> Sim {
        let mut sim = Sim::new(
            self.n,
            self.groups.clone(),
            self.services.clone(),
            mode,
            self.seed,
        );
        sim.delay = (1, self.delay_max);
        sim
    }
}

fn group_ip(g: usize) -> IpAddr {
    if g.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, g as u8))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, g as u16))
    }
}

/// 2 to 5 nodes; 1 to 10 IPs, most eligible everywhere, some on a
/// subset of the nodes (selectors, Local endpoints); 1 to 20 Services on
/// them (several on one IP share it), a few marked for rebalance.
fn arb_setup() -> impl Strategy<Value = Setup> {
    (2usize..=5)
        .prop_flat_map(|n| {
            let all = (1u32 << n) - 1;
            let mask = prop_oneof![3 => Just(all), 1 => 1..=all];
            (
                Just(n),
                proptest::collection::vec(mask, 1..=10),
                proptest::collection::vec((0usize..10, proptest::bool::weighted(0.1)), 1..=20),
                any::<u64>(),
                1u64..=30,
            )
        })
        .prop_map(|(n, masks, svcs, seed, delay_max)| {
            let groups: Vec<Group> = masks
                .iter()
                .enumerate()
                .map(|(g, m)| Group {
                    ip: group_ip(g),
                    eligible: (0..n).filter(|i| m & (1 << i) != 0).collect(),
                })
                .collect();
            let services = svcs
                .iter()
                .enumerate()
                .map(|(k, (g, rebalance))| {
                    let svc = Svc {
                        group: g % groups.len(),
                        rebalance: *rebalance,
                    };
                    (k as u32, svc)
                })
                .collect();
            Setup {
                n,
                groups,
                services,
                seed,
                delay_max,
            }
        })
}

#[derive(Debug, Clone)]
enum Ev {
    Kill(usize),
    Revive(usize),
    Restart(usize),
    /// Every speaker stops, then each starts again after its delay.
    RestartAll(Vec<u64>),
    Partition(u32),
    Heal,
    Add(usize),
    Remove(usize),
    Toggle(usize, usize),
    Mark(usize, bool),
    Loss(u64),
}

fn arb_event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => (0usize..5).prop_map(Ev::Kill),
        3 => (0usize..5).prop_map(Ev::Revive),
        2 => (0usize..5).prop_map(Ev::Restart),
        1 => proptest::collection::vec(0u64..2_000, 5).prop_map(Ev::RestartAll),
        2 => (1u32..31).prop_map(Ev::Partition),
        2 => Just(Ev::Heal),
        2 => (0usize..10).prop_map(Ev::Add),
        2 => (0usize..20).prop_map(Ev::Remove),
        2 => (0usize..10, 0usize..5).prop_map(|(g, i)| Ev::Toggle(g, i)),
        1 => (0usize..20, any::<bool>()).prop_map(|(k, m)| Ev::Mark(k, m)),
        2 => prop_oneof![Just(0u64), 1u64..300].prop_map(Ev::Loss),
    ]
}

fn arb_events() -> impl Strategy<Value = Vec<(u64, Ev)>> {
    proptest::collection::vec((0u64..1_500, arb_event()), 0..12)
}

fn nth_service(sim: &Sim, i: usize) -> Option<u32> {
    let len = sim.services.len();
    (len > 0).then(|| *sim.services.keys().nth(i % len).unwrap())
}

fn apply(sim: &mut Sim, ev: &Ev) {
    let n = sim.n();
    match ev {
        Ev::Kill(i) => sim.kill(i % n),
        Ev::Revive(i) => sim.revive(i % n),
        Ev::Restart(i) => sim.restart(i % n),
        Ev::RestartAll(skews) => restart_all(sim, skews),
        Ev::Partition(mask) => sim.partition(*mask),
        Ev::Heal => sim.heal(),
        Ev::Add(g) => {
            let key = sim.services.keys().next_back().map_or(0, |k| k + 1);
            let group = g % sim.groups.len();
            sim.services.insert(
                key,
                Svc {
                    group,
                    rebalance: false,
                },
            );
            sim.inputs_changed();
        }
        Ev::Remove(i) => {
            if let Some(k) = nth_service(sim, *i) {
                sim.services.remove(&k);
                sim.inputs_changed();
            }
        }
        Ev::Toggle(g, i) => {
            let len = sim.groups.len();
            let group = &mut sim.groups[g % len];
            let i = i % n;
            if !group.eligible.remove(&i) {
                group.eligible.insert(i);
            }
            sim.inputs_changed();
        }
        Ev::Mark(i, marked) => {
            if let Some(k) = nth_service(sim, *i) {
                sim.services.get_mut(&k).unwrap().rebalance = *marked;
                sim.inputs_changed();
            }
        }
        Ev::Loss(permille) => sim.loss_permille = *permille,
    }
}

fn restart_all(sim: &mut Sim, skews: &[u64]) {
    let t0 = sim.now;
    for i in 0..sim.n() {
        sim.kill(i);
    }
    let mut order: Vec<(u64, usize)> = (0..sim.n()).map(|i| (skews[i % skews.len()], i)).collect();
    order.sort();
    for (skew, i) in order {
        sim.run_until(t0 + skew);
        sim.revive(i);
    }
}

/// Random events, then every partition healed and every speaker up, and
/// quiet until every record names its owner.
fn settled(setup: &Setup, events: &[(u64, Ev)]) -> Sim {
    let mut sim = setup.sim(Mode::Sticky);
    sim.quiesce();
    for (gap, ev) in events {
        sim.run(*gap);
        apply(&mut sim, ev);
    }
    sim.heal();
    for i in 0..sim.n() {
        sim.revive(i);
    }
    sim.quiesce();
    sim.run(HOLD);
    sim.settle_records();
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// (1) and (2): whatever happened (deaths, returns, restarts, every
    /// speaker restarting, partitions, message loss, Services and
    /// eligibility changing, rebalance markers), once the network is
    /// healed and every message delivered, each IP with an eligible live
    /// node has exactly one announcer, one of those nodes, and the others
    /// none. In both modes.
    #[test]
    fn once_quiet_every_ip_has_exactly_one_announcer(
        setup in arb_setup(),
        events in arb_events(),
        hash in proptest::bool::weighted(0.2),
    ) {
        let mode = if hash { Mode::Hash } else { Mode::Sticky };
        let mut sim = setup.sim(mode);
        sim.quiesce();
        for (gap, ev) in &events {
            sim.run(*gap);
            apply(&mut sim, ev);
        }
        sim.heal();
        sim.quiesce();
        sim.check_one_owner_each().map_err(TestCaseError::fail)?;
    }

    /// (3): a partition (with loss inside it) heals; once each side has
    /// the other's claims, one message delay after the heal, no IP has two
    /// announcers.
    #[test]
    fn after_a_partition_heals_one_owner_within_one_message_delay(
        setup in arb_setup(),
        mask in 1u32..31,
        cut_for in 0u64..4_000,
        loss in 0u64..300,
    ) {
        let mut sim = setup.sim(Mode::Sticky);
        sim.quiesce();
        sim.partition(mask);
        sim.loss_permille = loss;
        sim.run(cut_for);
        // Loss inside a side is repaired by refreshes before the heal, so
        // what follows is the heal's doing alone.
        sim.loss_permille = 0;
        sim.run(2 * sim.config.refresh.as_millis() as u64);
        let healed = sim.now;
        sim.watch();
        sim.heal();
        sim.run(sim.config.refresh.as_millis() as u64);
        for (k, t) in &sim.last_double {
            // A rebalance marker may move a Service when the heal changes
            // the loads; that move overlaps until the holder hears the
            // new owner (make before break), up to two delays.
            let group = sim.services[k].group;
            let marked = sim.services.values().any(|s| s.group == group && s.rebalance);
            let bound = if marked { 2 * sim.delay.1 } else { sim.delay.1 };
            prop_assert!(
                *t <= healed + bound,
                "service {} had two announcers {} ms after the heal (max delay {} ms)",
                k,
                t - healed,
                sim.delay.1
            );
        }
        sim.quiesce();
        sim.check_one_owner_each().map_err(TestCaseError::fail)?;
    }

    /// (4): every speaker stops and starts again, each after its own delay
    /// (up to 2 s, within the cold start), with some eligibility changed
    /// meanwhile and loss: no IP whose recorded owner is still eligible is
    /// ever announced by another node, and it ends on that owner.
    #[test]
    fn a_restart_of_every_speaker_moves_no_ip_whose_owner_is_still_eligible(
        setup in arb_setup(),
        events in arb_events(),
        skews in proptest::collection::vec(0u64..2_000, 5),
        toggles in proptest::collection::vec((0usize..10, 0usize..5), 0..3),
        loss in prop_oneof![Just(0u64), 1u64..100],
    ) {
        let mut sim = settled(&setup, &events);
        let before = sim.owners();
        for (g, i) in &toggles {
            let n = sim.n();
            let len = sim.groups.len();
            let group = &mut sim.groups[g % len];
            if !group.eligible.remove(&(i % n)) {
                group.eligible.insert(i % n);
            }
        }
        sim.watch();
        sim.loss_permille = loss;
        restart_all(&mut sim, &skews);
        sim.quiesce();
        let after = sim.owners();
        for (k, owner) in &before {
            // A rebalance marker on a Service of the IP asks for moves.
            let group = sim.services[k].group;
            let marked = sim.services.values().any(|s| s.group == group && s.rebalance);
            if !sim.eligible_up(*k).contains(owner) || marked {
                continue;
            }
            let seen = sim.seen.get(k).cloned().unwrap_or_default();
            prop_assert_eq!(&seen, &BTreeSet::from([*owner]), "service {} announced by", k);
            prop_assert_eq!(after.get(k), Some(owner));
        }
        sim.check_one_owner_each().map_err(TestCaseError::fail)?;
    }

    /// (5): a node dies, its IPs move, and it comes back (before or after
    /// its records were rewritten): it announces none of the IPs that
    /// have an owner, and no IP moves.
    #[test]
    fn a_node_that_returns_takes_nothing(
        setup in arb_setup(),
        events in arb_events(),
        victim in 0usize..5,
        down_for in 0u64..3_000,
        loss in prop_oneof![Just(0u64), 1u64..300],
    ) {
        let mut sim = settled(&setup, &events);
        // Markers ask for moves; without them nothing may move.
        sim.services.values_mut().for_each(|s| s.rebalance = false);
        sim.inputs_changed();
        sim.quiesce();
        let v = victim % sim.n();
        sim.kill(v);
        sim.loss_permille = loss;
        sim.run(down_for);
        sim.loss_permille = 0;
        sim.run(2 * sim.config.refresh.as_millis() as u64);
        let before = sim.owners();
        sim.watch();
        sim.revive(v);
        sim.quiesce();
        let after = sim.owners();
        for (k, owner) in &before {
            let seen = sim.seen.get(k).cloned().unwrap_or_default();
            prop_assert!(!seen.contains(&v), "service {} announced by the returning node", k);
            prop_assert_eq!(after.get(k), Some(owner), "service {} moved", k);
        }
        sim.check_one_owner_each().map_err(TestCaseError::fail)?;
    }
}

fn three_nodes_no_services(seed: u64, delay_max: u64) -> Sim {
    let groups = (0..100)
        .map(|g| Group {
            ip: group_ip(g),
            eligible: (0..3).collect(),
        })
        .collect();
    let mut sim = Sim::new(3, groups, BTreeMap::new(), Mode::Sticky, seed);
    sim.delay = (1, delay_max);
    sim.quiesce();
    sim
}

fn spread(sim: &Sim) -> usize {
    let mut count = [0usize; 3];
    for owner in sim.owners().values() {
        count[*owner] += 1;
    }
    count.iter().max().unwrap() - count.iter().min().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// (6): 100 Services created on 3 nodes, all at once or one by one
    /// (each at least one message delay after the previous), end with
    /// per-node counts that differ by at most one.
    #[test]
    fn a_hundred_services_on_three_nodes_differ_by_at_most_one(
        seed in any::<u64>(),
        delay_max in 1u64..=30,
        all_at_once in any::<bool>(),
        extra in 0u64..100,
    ) {
        let mut sim = three_nodes_no_services(seed, delay_max);
        for k in 0..100u32 {
            sim.services.insert(k, Svc { group: k as usize, rebalance: false });
            if !all_at_once {
                sim.inputs_changed();
                sim.run(delay_max + extra);
            }
        }
        sim.inputs_changed();
        sim.quiesce();
        prop_assert_eq!(sim.owners().len(), 100);
        prop_assert!(spread(&sim) <= 1, "spread {}", spread(&sim));
    }
}
