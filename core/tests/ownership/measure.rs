//! Outcomes against MetalLB's hash in the scenarios of
//! `docs/speaker-ownership.md` ("Measured in the simulation"): 99 IPs on
//! 3 nodes, delays 1-5 ms. The numbers print with
//! `cargo nextest run -p ferrolb-core -E 'test(outcomes)' --no-capture`;
//! the assertions hold what the rules promise.

use crate::sim::{Group, Sim, Svc};
use ferrolb_core::ownership::Mode;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

fn sim(mode: Mode, seed: u64) -> Sim {
    let groups = (0..99)
        .map(|g| Group {
            ip: IpAddr::V4(Ipv4Addr::from(0xC633_6400u32 + g)),
            eligible: (0..3).collect(),
        })
        .collect();
    let services = (0..99u32)
        .map(|k| {
            let svc = Svc {
                group: k as usize,
                rebalance: false,
            };
            (k, svc)
        })
        .collect();
    let mut sim = Sim::new(3, groups, services, mode, seed);
    sim.delay = (1, 5);
    sim.quiesce();
    sim
}

fn counts(owners: &BTreeMap<u32, usize>) -> [usize; 3] {
    let mut c = [0; 3];
    for o in owners.values() {
        c[*o] += 1;
    }
    c
}

fn moved(a: &BTreeMap<u32, usize>, b: &BTreeMap<u32, usize>) -> usize {
    a.iter().filter(|(k, o)| b.get(k) != Some(o)).count()
}

#[test]
fn outcomes_against_metallbs_hash() {
    for mode in [Mode::Sticky, Mode::Hash] {
        // A dead node returns.
        let mut s = sim(mode, 11);
        s.kill(0);
        s.quiesce();
        let before = s.owners();
        s.revive(0);
        s.quiesce();
        let returned = moved(&before, &s.owners());
        eprintln!(
            "{mode:?}: node-0 dies and returns: {returned} IPs move on its return, counts {:?}",
            counts(&s.owners())
        );
        if mode == Mode::Sticky {
            assert_eq!(returned, 0);
        } else {
            assert!(returned > 0);
        }

        // One node cut off for 3 s, then healed.
        let mut s = sim(mode, 9);
        let before = s.owners();
        s.partition(0b001);
        s.run(3_000);
        s.heal();
        s.quiesce();
        s.check_one_owner_each().unwrap();
        let after = s.owners();
        eprintln!(
            "{mode:?}: node-0 cut off for 3 s, healed: {} IPs end elsewhere than before the cut; node-0 had {}, has {}",
            moved(&before, &after),
            counts(&before)[0],
            counts(&after)[0]
        );

        // A rolling restart, one speaker at a time, each away 3 s (its
        // peers take over while it is away, as on SIGTERM today).
        let mut s = sim(mode, 7);
        let start = s.owners();
        let mut changes = 0;
        let mut prev = start.clone();
        for i in 0..3 {
            s.kill(i);
            s.run(3_000);
            let away = s.owners();
            s.revive(i);
            s.quiesce();
            let back = s.owners();
            changes += moved(&prev, &away) + moved(&away, &back);
            prev = back;
        }
        s.check_one_owner_each().unwrap();
        eprintln!(
            "{mode:?}: rolling restart: {changes} owner changes, {} IPs end elsewhere, counts {:?} (before {:?})",
            moved(&start, &s.owners()),
            counts(&s.owners()),
            counts(&start)
        );
    }
}
