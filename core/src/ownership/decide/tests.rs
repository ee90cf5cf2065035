use super::*;
use crate::election::elect;
use crate::ownership::{Claims, ColdStart};
use std::sync::Arc;

fn node(n: &str) -> Node {
    Node::from(n)
}

fn nodes(names: &[&str]) -> Vec<Node> {
    names.iter().map(|n| node(n)).collect()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

const ABC: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Services 0..n on their own IPs, every node of `names` a candidate.
fn services(n: u8, names: &[&str]) -> BTreeMap<u32, Service> {
    (0..n)
        .map(|i| (u32::from(i), Service::new(ip(i), nodes(names))))
        .collect()
}

fn claims(pairs: &[(&str, &[u32])]) -> Claims<u32> {
    pairs
        .iter()
        .map(|(n, ks)| (node(n), ks.iter().copied().collect()))
        .collect()
}

fn sticky(services: &BTreeMap<u32, Service>, claims: &Claims<u32>) -> Decision<u32> {
    decide(&Inputs::new(Mode::Sticky, services, claims))
}

fn owner(d: &Decision<u32>, k: u32) -> Option<&str> {
    d.owner(&k).map(|n| &**n)
}

fn counts(d: &Decision<u32>) -> Vec<usize> {
    d.load().values().copied().collect()
}

#[test]
fn a_claimed_ip_stays_with_its_claimant_whatever_the_hash_prefers() {
    let svcs = services(20, &ABC);
    for k in 0..20u32 {
        let hash_owner = elect(ip(k as u8), ABC).unwrap();
        let holder = ABC.iter().find(|n| **n != hash_owner).unwrap();
        let d = sticky(&svcs, &claims(&[(holder, &[k])]));
        assert_eq!(owner(&d, k), Some(*holder));
        assert_eq!(d.how(&k), Some(How::Held));
    }
}

#[test]
fn a_returning_node_takes_nothing() {
    // node-c was dead; node-a and node-b hold everything. node-c is a
    // candidate again, with no claims (or an empty set once published).
    let svcs = services(10, &ABC);
    let mut c = claims(&[("node-a", &[0, 1, 2, 3, 4]), ("node-b", &[5, 6, 7, 8, 9])]);
    for _ in 0..2 {
        let d = sticky(&svcs, &c);
        assert!(d.held_by("node-c").is_empty());
        c.insert(node("node-c"), BTreeSet::new());
    }
}

#[test]
fn an_owner_that_stops_being_a_candidate_loses_its_ips() {
    let mut svcs = services(1, &ABC);
    let c = claims(&[("node-a", &[0])]);
    assert_eq!(owner(&sticky(&svcs, &c), 0), Some("node-a"));
    // Dead, deselected, excluded, NetworkUnavailable or without a Local
    // endpoint: gone from the candidates.
    svcs.insert(0, Service::new(ip(0), nodes(&["node-b", "node-c"])));
    let d = sticky(&svcs, &c);
    assert_ne!(owner(&d, 0), Some("node-a"));
    assert_eq!(d.how(&0), Some(How::Placed));
    // Nobody at all.
    svcs.insert(0, Service::new(ip(0), Vec::<Node>::new()));
    assert_eq!(sticky(&svcs, &c).outcomes()[&0], Outcome::Nobody);
}

#[test]
fn of_two_claimants_the_better_ranked_keeps_it() {
    let svcs = services(30, &ABC);
    for k in 0..30u32 {
        let c = claims(&[("node-a", &[k]), ("node-b", &[k])]);
        let d = sticky(&svcs, &c);
        let expect = elect(ip(k as u8), ["node-a", "node-b"]).unwrap();
        assert_eq!(owner(&d, k), Some(expect));
        assert_eq!(d.how(&k), Some(How::Contested));
    }
}

#[test]
fn a_claim_by_a_node_that_is_not_a_candidate_is_ignored_in_a_conflict() {
    let mut svcs = services(1, &ABC);
    svcs.insert(0, Service::new(ip(0), nodes(&["node-b"])));
    let c = claims(&[("node-a", &[0]), ("node-b", &[0])]);
    let d = sticky(&svcs, &c);
    assert_eq!(owner(&d, 0), Some("node-b"));
    assert_eq!(d.how(&0), Some(How::Held));
}

#[test]
fn new_ips_go_to_the_least_loaded_candidate_ties_by_hash() {
    let mut svcs = services(5, &ABC);
    svcs.insert(100, Service::new(ip(100), nodes(&ABC)));
    // node-a 3, node-b 2, node-c 0 -> node-c.
    let c = claims(&[("node-a", &[0, 1, 2]), ("node-b", &[3, 4])]);
    assert_eq!(owner(&sticky(&svcs, &c), 100), Some("node-c"));
    // node-a 3, node-b 2, node-c 2: node-b or node-c by hash.
    let c = claims(&[("node-a", &[0, 1, 2]), ("node-b", &[3]), ("node-c", &[4])]);
    let tie = elect(ip(100), ["node-b", "node-c"]).unwrap();
    assert_eq!(owner(&sticky(&svcs, &c), 100), Some(tie));
}

#[test]
fn a_thousand_orphans_of_a_dead_owner_spread_evenly() {
    // node-d owned 1,000 IPs and died; node-a, node-b, node-c hold 10, 0
    // and 5. Placed one by one in IP order, each counted before the next.
    let names = ["node-a", "node-b", "node-c"];
    let mut svcs: BTreeMap<u32, Service> = BTreeMap::new();
    for k in 0..1_015u32 {
        let v6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, k as u16);
        svcs.insert(k, Service::new(IpAddr::V6(v6), nodes(&names)));
    }
    let a: Vec<u32> = (1_000..1_010).collect();
    let c_: Vec<u32> = (1_010..1_015).collect();
    let c = claims(&[("node-a", &a), ("node-c", &c_)]);
    let d = sticky(&svcs, &c);
    let load = counts(&d);
    assert_eq!(load.iter().sum::<usize>(), 1_015);
    assert!(
        load.iter().max().unwrap() - load.iter().min().unwrap() <= 1,
        "{load:?}"
    );
    // Nothing that was held moved.
    for k in &a {
        assert_eq!(owner(&d, *k), Some("node-a"));
    }
}

#[test]
fn a_hundred_new_services_on_three_nodes_differ_by_at_most_one() {
    let svcs = services(100, &ABC);
    let d = sticky(&svcs, &Claims::new());
    let mut all_at_once = counts(&d);
    all_at_once.sort();
    assert_eq!(all_at_once, vec![33, 33, 34]);
    // One at a time, each decided once the previous is claimed.
    let mut c = Claims::new();
    for k in 0..100u32 {
        let some: BTreeMap<u32, Service> = svcs.range(..=k).map(|(k, s)| (*k, s.clone())).collect();
        let d = sticky(&some, &c);
        c = ABC.iter().map(|n| (node(n), d.held_by(n))).collect();
        let load = counts(&d);
        assert!(load.iter().max().unwrap() - load.iter().min().unwrap() <= 1);
    }
}

#[test]
fn preferences_place_new_ips_but_do_not_move_claimed_ones() {
    let prefer_c = Arc::new(Scores::from([("node-c".to_string(), 50)]));
    let mut svcs: BTreeMap<u32, Service> = BTreeMap::new();
    for k in 0..4u32 {
        let svc = Service::new(ip(k as u8), nodes(&ABC)).with_scores(prefer_c.clone());
        svcs.insert(k, svc);
    }
    let c = claims(&[("node-a", &[0])]);
    let d = sticky(&svcs, &c);
    assert_eq!(owner(&d, 0), Some("node-a"));
    // Preference before load: node-c takes every new one.
    for k in 1..4 {
        assert_eq!(owner(&d, k), Some("node-c"));
    }
    // A conflict goes to the preferred claimant.
    let c = claims(&[("node-a", &[0]), ("node-c", &[0])]);
    assert_eq!(owner(&sticky(&svcs, &c), 0), Some("node-c"));
}

#[test]
fn services_sharing_an_ip_have_one_owner() {
    let mut svcs = BTreeMap::new();
    for k in 0..3u32 {
        svcs.insert(k, Service::new(ip(7), nodes(&ABC)));
    }
    // Claimed through any member; a member without candidates has nobody.
    svcs.insert(3, Service::new(ip(7), Vec::<Node>::new()));
    let c = claims(&[("node-b", &[2])]);
    let d = sticky(&svcs, &c);
    for k in 0..3 {
        assert_eq!(owner(&d, k), Some("node-b"));
    }
    assert_eq!(d.outcomes()[&3], Outcome::Nobody);
    assert_eq!(d.load().get("node-b"), Some(&1));
    // Only nodes every member may use; none in common: any member's.
    svcs.insert(0, Service::new(ip(7), nodes(&["node-a", "node-c"])));
    svcs.insert(1, Service::new(ip(7), nodes(&["node-c"])));
    assert_eq!(owner(&sticky(&svcs, &Claims::new()), 2), Some("node-c"));
    svcs.insert(1, Service::new(ip(7), nodes(&["node-b"])));
    let d = sticky(&svcs, &Claims::new());
    let o = owner(&d, 0).unwrap();
    assert!((0..3).all(|k| owner(&d, k) == Some(o)));
}

fn cold<'a>(records: &'a BTreeMap<u32, Node>, live: &'a BTreeSet<Node>) -> ColdStart<'a, u32> {
    ColdStart { records, live }
}

#[test]
fn in_a_cold_start_records_hold_for_nodes_that_have_not_published() {
    let svcs = services(4, &ABC);
    let records: BTreeMap<u32, Node> = [
        (0, node("node-c")),
        (1, node("node-c")),
        (2, node("node-b")),
    ]
    .into();
    let live: BTreeSet<Node> = nodes(&ABC).into_iter().collect();
    let none = Claims::new();
    let d = decide(&Inputs {
        cold_start: Some(cold(&records, &live)),
        ..Inputs::new(Mode::Sticky, &svcs, &none)
    });
    assert_eq!(owner(&d, 0), Some("node-c"));
    assert_eq!(owner(&d, 1), Some("node-c"));
    assert_eq!(owner(&d, 2), Some("node-b"));
    assert_eq!(d.how(&0), Some(How::Recorded));
    // Unrecorded: placed, counting the recorded ones.
    assert_eq!(owner(&d, 3), Some("node-a"));
    // node-c published, without Service 1: its claims win over its record.
    let c = claims(&[("node-c", &[0])]);
    let d = decide(&Inputs {
        cold_start: Some(cold(&records, &live)),
        ..Inputs::new(Mode::Sticky, &svcs, &c)
    });
    assert_eq!(d.how(&0), Some(How::Held));
    assert_eq!(d.how(&1), Some(How::Placed));
    // A published claim beats another node's record.
    let c = claims(&[("node-a", &[2])]);
    let d = decide(&Inputs {
        cold_start: Some(cold(&records, &live)),
        ..Inputs::new(Mode::Sticky, &svcs, &c)
    });
    assert_eq!(owner(&d, 2), Some("node-a"));
}

#[test]
fn records_count_only_in_a_cold_start() {
    let svcs = services(1, &ABC);
    let records: BTreeMap<u32, Node> = [(0, node("node-c"))].into();
    let live: BTreeSet<Node> = nodes(&ABC).into_iter().collect();
    let none = Claims::new();
    let warm = decide(&Inputs::new(Mode::Sticky, &svcs, &none));
    assert_eq!(warm.how(&0), Some(How::Placed));
    let cold = decide(&Inputs {
        cold_start: Some(cold(&records, &live)),
        ..Inputs::new(Mode::Sticky, &svcs, &none)
    });
    assert_eq!(owner(&cold, 0), Some("node-c"));
}

#[test]
fn in_a_cold_start_a_recorded_owner_not_back_yet_keeps_its_ip_reserved() {
    // node-c's speaker has not started yet: not live, so not a candidate.
    let svcs = services(2, &["node-a", "node-b"]);
    let records: BTreeMap<u32, Node> = [(0, node("node-c")), (1, node("node-b"))].into();
    let live: BTreeSet<Node> = nodes(&["node-a", "node-b"]).into_iter().collect();
    let none = Claims::new();
    let d = decide(&Inputs {
        cold_start: Some(cold(&records, &live)),
        ..Inputs::new(Mode::Sticky, &svcs, &none)
    });
    assert_eq!(
        d.outcomes()[&0],
        Outcome::Reserved {
            node: node("node-c")
        }
    );
    assert_eq!(owner(&d, 1), Some("node-b"));
    // Live but no longer eligible: not reserved, placed.
    let live: BTreeSet<Node> = nodes(&ABC).into_iter().collect();
    let d = decide(&Inputs {
        cold_start: Some(cold(&records, &live)),
        ..Inputs::new(Mode::Sticky, &svcs, &none)
    });
    assert_eq!(d.how(&0), Some(How::Placed));
}

#[test]
fn rebalance_moves_a_marked_ip_only_when_that_evens_the_load() {
    // node-a holds 4, node-b 2, node-c 0 after node-c came back.
    let mut svcs = services(6, &ABC);
    let c = claims(&[("node-a", &[0, 1, 2, 3]), ("node-b", &[4, 5])]);
    let unmarked = sticky(&svcs, &c);
    assert_eq!(counts(&unmarked), vec![4, 2]);
    for k in 0..6u32 {
        let svc = svcs[&k].clone().with_rebalance(true);
        svcs.insert(k, svc);
    }
    let d = sticky(&svcs, &c);
    assert_eq!(counts(&d), vec![2, 2, 2]);
    let moved: Vec<u32> = (0..6)
        .filter(|k| d.how(k) == Some(How::Rebalanced))
        .collect();
    assert_eq!(moved.len(), 2);
    // Marked and already even: a fixed point, nothing moves again.
    let again = ABC.iter().map(|n| (node(n), d.held_by(n))).collect();
    let d2 = sticky(&svcs, &again);
    assert_eq!(
        d2.outcomes()
            .values()
            .filter(|o| matches!(
                o,
                Outcome::Owner {
                    how: How::Rebalanced,
                    ..
                }
            ))
            .count(),
        0
    );
    assert_eq!(counts(&d2), vec![2, 2, 2]);
}

#[test]
fn rebalance_moves_a_marked_ip_to_a_preferred_node() {
    let prefer_b = Arc::new(Scores::from([("node-b".to_string(), 10)]));
    let svc = Service::new(ip(1), nodes(&ABC)).with_scores(prefer_b);
    let c = claims(&[("node-a", &[0])]);
    let mut svcs = BTreeMap::from([(0u32, svc.clone())]);
    assert_eq!(owner(&sticky(&svcs, &c), 0), Some("node-a"));
    svcs.insert(0, svc.with_rebalance(true));
    assert_eq!(owner(&sticky(&svcs, &c), 0), Some("node-b"));
}

#[test]
fn hash_mode_ignores_claims_and_records() {
    let svcs = services(20, &ABC);
    let c = claims(&[("node-a", &(0..20).collect::<Vec<_>>())]);
    let d = decide(&Inputs::new(Mode::Hash, &svcs, &c));
    for k in 0..20u32 {
        assert_eq!(owner(&d, k), elect(ip(k as u8), ABC));
        assert_eq!(d.how(&k), Some(How::Hashed));
    }
}
