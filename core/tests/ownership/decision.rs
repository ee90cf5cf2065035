//! Properties of the pure decision (`ownership::decide`), and (7): Hash
//! mode is `election::owner_preferring` exactly.

use ferrolb_core::election::{
    candidates_with, owner_preferring, NodeInfo, Rules, Scores, TrafficPolicy,
    EXCLUDE_FROM_LB_LABEL,
};
use ferrolb_core::ownership::{decide, Claims, How, Inputs, Mode, Node, Service};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn name(i: usize) -> Node {
    Node::from(format!("worker-{i}"))
}

fn ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, i))
}

/// Up to 30 Services on up to 12 IPs over 6 nodes, each with a random
/// non-empty candidate subset (or none), and random claims by the nodes.
fn arb_view() -> impl Strategy<Value = (BTreeMap<u32, Service>, Claims<u32>)> {
    let svc = (0u8..12, 0u32..64).prop_map(|(i, mask)| {
        let cands: Vec<Node> = (0..6).filter(|n| mask & (1 << n) != 0).map(name).collect();
        Service::new(ip(i), cands)
    });
    (
        proptest::collection::vec(svc, 1..30),
        proptest::collection::vec(proptest::collection::btree_set(0u32..30, 0..10), 6),
        proptest::collection::vec(any::<bool>(), 6),
    )
        .prop_map(|(svcs, claims, published)| {
            let services = svcs
                .into_iter()
                .enumerate()
                .map(|(k, s)| (k as u32, s))
                .collect();
            let claims = claims
                .into_iter()
                .enumerate()
                .filter(|(n, _)| published[*n])
                .map(|(n, set)| (name(n), set))
                .collect();
            (services, claims)
        })
}

/// The candidates of the Services on `ip` taken together (rule 1): those
/// every one with candidates has, or, when none is common, any one's.
fn unit_candidates(services: &BTreeMap<u32, Service>, ip: IpAddr) -> BTreeSet<Node> {
    let members: Vec<BTreeSet<Node>> = services
        .values()
        .filter(|s| s.ip() == ip && !s.candidates().is_empty())
        .map(|s| s.candidates().iter().cloned().collect())
        .collect();
    let Some(first) = members.first() else {
        return BTreeSet::new();
    };
    let common: BTreeSet<Node> = first
        .iter()
        .filter(|n| members.iter().all(|m| m.contains(*n)))
        .cloned()
        .collect();
    if common.is_empty() {
        members.into_iter().flatten().collect()
    } else {
        common
    }
}

fn sticky(
    services: &BTreeMap<u32, Service>,
    claims: &Claims<u32>,
) -> ferrolb_core::ownership::Decision<u32> {
    decide(&Inputs::new(Mode::Sticky, services, claims))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every Service with candidates is owned by one of them, Services on
    /// one IP by the same node, and a Service claimed by exactly one of its
    /// candidates (through any Service on its IP) by that one.
    #[test]
    fn owners_are_candidates_and_claims_hold((services, claims) in arb_view()) {
        let d = sticky(&services, &claims);
        let mut by_ip: BTreeMap<IpAddr, &Node> = BTreeMap::new();
        for (k, svc) in &services {
            let owner = d.owner(k);
            prop_assert_eq!(owner.is_some(), !svc.candidates().is_empty());
            let Some(owner) = owner else { continue };
            let same_ip: Vec<&Service> = services.values().filter(|s| s.ip() == svc.ip()).collect();
            prop_assert!(same_ip.iter().any(|s| s.is_candidate(owner)));
            prop_assert_eq!(*by_ip.entry(svc.ip()).or_insert(owner), owner);
            if same_ip.len() == 1 {
                let claimants: Vec<&Node> = claims
                    .iter()
                    .filter(|(n, set)| set.contains(k) && svc.is_candidate(n))
                    .map(|(n, _)| n)
                    .collect();
                if claimants.len() == 1 {
                    prop_assert_eq!(owner, claimants[0]);
                    prop_assert_eq!(d.how(k), Some(How::Held));
                }
            }
        }
    }

    /// Deciding again once every node claims what it was given changes
    /// nothing: speakers that agree stay put.
    #[test]
    fn a_decision_is_a_fixed_point_of_its_own_claims((services, claims) in arb_view()) {
        let first = sticky(&services, &claims);
        let nodes: BTreeSet<Node> = services.values().flat_map(|s| s.candidates().iter().cloned()).collect();
        let again: Claims<u32> = nodes.iter().map(|n| (n.clone(), first.held_by(n))).collect();
        let second = sticky(&services, &again);
        for k in services.keys() {
            prop_assert_eq!(first.owner(k), second.owner(k));
        }
    }

    /// A node that joins or comes back (a candidate with no claims, or an
    /// empty set) owns nothing another candidate claims.
    #[test]
    fn a_node_without_claims_takes_nothing_claimed((services, mut claims) in arb_view(), joined in 0usize..6) {
        let joiner = name(joined);
        claims.remove(&joiner);
        let d = sticky(&services, &claims);
        for (k, svc) in &services {
            let cands = unit_candidates(&services, svc.ip());
            let claimed = services
                .iter()
                .filter(|(_, s)| s.ip() == svc.ip() && !s.candidates().is_empty())
                .any(|(j, _)| claims.iter().any(|(n, set)| set.contains(j) && cands.contains(n)));
            if claimed {
                prop_assert_ne!(d.owner(k), Some(&joiner));
            }
        }
    }

    /// From scratch, Services whose candidates are every node spread with
    /// per-node counts at most one apart, whatever the number.
    #[test]
    fn placement_from_scratch_is_even(count in 1usize..300, nodes in 1usize..8) {
        let all: Vec<Node> = (0..nodes).map(name).collect();
        let services: BTreeMap<u32, Service> = (0..count)
            .map(|k| {
                let v4 = Ipv4Addr::from(0xC633_6400u32 + k as u32);
                (k as u32, Service::new(IpAddr::V4(v4), all.clone()))
            })
            .collect();
        let d = sticky(&services, &Claims::new());
        let load: Vec<usize> = all.iter().map(|n| d.load().get(n).copied().unwrap_or(0)).collect();
        prop_assert!(load.iter().max().unwrap() - load.iter().min().unwrap() <= 1, "{:?}", load);
    }
}

fn arb_node() -> impl Strategy<Value = NodeInfo> {
    (
        0usize..8,
        any::<bool>(),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(i, live, excluded, unavailable)| {
            let mut node = NodeInfo::live(format!("worker-{i}"));
            node.live = live;
            node.network_unavailable = unavailable;
            if excluded {
                node.labels
                    .insert(EXCLUDE_FROM_LB_LABEL.into(), String::new());
            }
            node
        })
}

fn arb_policy() -> impl Strategy<Value = TrafficPolicy> {
    let set =
        || proptest::collection::btree_set((0usize..8).prop_map(|i| format!("worker-{i}")), 0..4);
    prop_oneof![
        any::<bool>().prop_map(|has_endpoint| TrafficPolicy::Cluster { has_endpoint }),
        (set(), set()).prop_map(|(ready, draining)| TrafficPolicy::Local { ready, draining }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// (7) Hash mode is today's behaviour exactly: for random nodes
    /// (live or not, excluded, NetworkUnavailable), advertisement
    /// selection, traffic policies, preference scores and
    /// `--ignore-exclude-lb`, each Service's owner is
    /// `election::owner_preferring`'s, whatever the claims say.
    #[test]
    fn hash_mode_is_owner_preferring(
        nodes in proptest::collection::vec(arb_node(), 0..8),
        cases in proptest::collection::vec(
            (
                0u8..=255,
                proptest::collection::btree_set((0usize..8).prop_map(|i| format!("worker-{i}")), 0..8),
                arb_policy(),
                proptest::collection::btree_map((0usize..8).prop_map(|i| format!("worker-{i}")), 0u64..3, 0..4),
            ),
            1..12,
        ),
        ignore_exclude_lb in any::<bool>(),
        claimed in proptest::collection::btree_set(0u32..12, 0..12),
    ) {
        let rules = Rules { ignore_exclude_lb };
        let mut services = BTreeMap::new();
        let mut expected = BTreeMap::new();
        for (k, (last, selected, policy, scores)) in cases.into_iter().enumerate() {
            let scores: Scores = scores;
            let cands: Vec<Node> = candidates_with(&nodes, &selected, &policy, rules)
                .map(|c| c.into_iter().map(Node::from).collect())
                .unwrap_or_default();
            let svc = Service::new(ip(last), cands).with_scores(Arc::new(scores.clone()));
            services.insert(k as u32, svc);
            let want = owner_preferring(ip(last), &nodes, &selected, &policy, &scores, rules).ok();
            expected.insert(k as u32, want.map(str::to_owned));
        }
        // Claims that disagree with the hash change nothing.
        let claims: Claims<u32> = BTreeMap::from([(name(0), claimed)]);
        let d = decide(&Inputs::new(Mode::Hash, &services, &claims));
        for (k, want) in expected {
            prop_assert_eq!(d.owner(&k).map(|n| n.to_string()), want);
        }
    }
}
