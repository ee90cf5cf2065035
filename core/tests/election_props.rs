//! Properties of the election: one owner, the same everywhere, and minimal
//! movement when nodes come and go.

use ferrolb_core::election::{
    elect, elect_preferring, outranks_preferring, owner, NodeInfo, Scores, TrafficPolicy,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod common;
use common::many_ips;

fn nodes(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("worker-{i}")).collect()
}

fn owners<'a>(ips: &[IpAddr], nodes: &'a [String]) -> Vec<&'a str> {
    ips.iter()
        .map(|ip| elect(*ip, nodes.iter().map(String::as_str)).expect("non-empty"))
        .collect()
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u8>().prop_map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))),
        any::<u16>().prop_map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))),
    ]
}

fn arb_nodes() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-z][a-z0-9-]{0,20}", 1..12)
        .prop_map(|set| set.into_iter().collect())
}

proptest! {
    #[test]
    fn every_non_empty_candidate_set_elects_exactly_one_of_its_members(
        ip in arb_ip(),
        nodes in arb_nodes(),
    ) {
        let elected = elect(ip, nodes.iter().map(String::as_str));
        prop_assert!(elected.is_some_and(|o| nodes.iter().any(|n| n == o)));
        // The production path (`owner`: candidates, then `elect`) names the
        // same node when every node is a candidate.
        let infos: Vec<NodeInfo> = nodes.iter().map(NodeInfo::live).collect();
        let selected: BTreeSet<String> = nodes.iter().cloned().collect();
        let cluster = TrafficPolicy::Cluster { has_endpoint: true };
        prop_assert_eq!(owner(ip, &infos, &selected, &cluster).ok(), elected);
    }

    #[test]
    fn without_differing_scores_preferences_elect_as_metallb(
        ip in arb_ip(),
        nodes in arb_nodes(),
        uniform in proptest::option::of(1..10_000u64),
    ) {
        // No preferences, or every candidate scoring the same: the hash
        // order alone, so a cluster without preferredNodeSelectors keeps
        // MetalLB's owners.
        let scores: Scores = uniform
            .map(|s| nodes.iter().map(|n| (n.clone(), s)).collect())
            .unwrap_or_default();
        prop_assert_eq!(
            elect_preferring(ip, nodes.iter().map(String::as_str), &scores),
            elect(ip, nodes.iter().map(String::as_str))
        );
    }

    #[test]
    fn the_highest_score_wins_and_ties_go_by_hash(
        ip in arb_ip(),
        nodes in arb_nodes(),
        raw in proptest::collection::vec(0..4u64, 12),
    ) {
        let scores: Scores = nodes.iter().cloned().zip(raw.iter().copied()).collect();
        let winner = elect_preferring(ip, nodes.iter().map(String::as_str), &scores).expect("non-empty");
        let best = nodes.iter().map(|n| scores.get(n).copied().unwrap_or(0)).max().unwrap_or(0);
        prop_assert_eq!(scores.get(winner).copied().unwrap_or(0), best);
        let tied = nodes.iter().filter(|n| scores.get(*n).copied().unwrap_or(0) == best);
        prop_assert_eq!(Some(winner), elect(ip, tied.map(String::as_str)));
        // `outranks_preferring` (what the engine scopes node changes by)
        // agrees: the winner outranks every other candidate.
        for n in &nodes {
            prop_assert_eq!(outranks_preferring(winner, n, ip, &scores), winner != n);
        }
    }

    #[test]
    fn every_node_computes_the_same_owner_whatever_the_candidate_order(
        ip in arb_ip(),
        nodes in arb_nodes(),
        seed in any::<u64>(),
    ) {
        let mut shuffled: Vec<&str> = nodes.iter().map(String::as_str).collect();
        // A deterministic shuffle driven by the seed (Fisher-Yates with an LCG).
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut reversed: Vec<&str> = nodes.iter().map(String::as_str).collect();
        reversed.reverse();
        let owner = elect(ip, nodes.iter().map(String::as_str));
        prop_assert_eq!(owner, elect(ip, shuffled));
        prop_assert_eq!(owner, elect(ip, reversed));
    }

    #[test]
    fn removing_a_node_moves_only_the_ips_it_owned(
        nodes in arb_nodes().prop_filter("two or more", |n| n.len() >= 2),
        gone in any::<prop::sample::Index>(),
        ips in proptest::collection::vec(arb_ip(), 1..200),
    ) {
        let gone = gone.index(nodes.len());
        let before = owners(&ips, &nodes);
        let mut after_nodes = nodes.clone();
        let removed = after_nodes.remove(gone);
        let after = owners(&ips, &after_nodes);
        for (b, a) in before.iter().zip(&after) {
            if *b != removed {
                prop_assert_eq!(b, a);
            } else {
                prop_assert_ne!(*a, removed.as_str());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn adding_a_node_moves_about_one_in_n_ips_and_only_to_it(
        nodes in proptest::collection::btree_set("[a-z][a-z0-9-]{2,20}", 2..8),
        newcomer in "[A-Z]{3,8}",
    ) {
        let ips = many_ips();
        let before_nodes: Vec<String> = nodes.into_iter().collect();
        let mut after_nodes = before_nodes.clone();
        after_nodes.push(newcomer.clone());
        let before = owners(&ips, &before_nodes);
        let after = owners(&ips, &after_nodes);
        let mut moved = 0usize;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                prop_assert_eq!(*a, newcomer.as_str());
                moved += 1;
            }
        }
        // Expected ips/(N+1); a fixed, generous band of half to one and a
        // half times that is many standard deviations wide at 2,000 IPs.
        let expected = ips.len() as f64 / after_nodes.len() as f64;
        prop_assert!(
            (moved as f64) > 0.5 * expected && (moved as f64) < 1.5 * expected,
            "moved {} of {}, expected about {}", moved, ips.len(), expected
        );
    }
}

#[test]
fn owners_spread_roughly_evenly_over_nodes() {
    let ips = many_ips();
    for n in [2, 3, 5, 8] {
        let nodes = nodes(n);
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for owner in owners(&ips, &nodes) {
            *count.entry(owner).or_default() += 1;
        }
        let fair = ips.len() / n;
        assert_eq!(count.len(), n, "every node owns something");
        for (node, c) in count {
            assert!(
                c > fair * 7 / 10 && c < fair * 13 / 10,
                "{node} owns {c} of {} IPs over {n} nodes",
                ips.len()
            );
        }
    }
}
