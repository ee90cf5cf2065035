//! One owner per IP through the production path: every node runs
//! `announce::compute` as itself (which elects with `election::owner`),
//! and whatever the candidate set, all nodes agree on each Service's owner
//! and exactly that node announces its IPs.

use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::model::{
    AdInfo, NodeFacts, ObjectKey, PoolInfo, ServiceInfo, SliceInfo,
};
use ferrolb_core::announce::{compute, Desired, Local, World};
use ferrolb_core::election::EXCLUDE_FROM_LB_LABEL;
use ferrolb_core::selector::LabelSelector;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

mod common;
use common::many_ips;

fn node(name: &str, labels: BTreeMap<String, String>, network_unavailable: bool) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        labels,
        ready: true,
        network_unavailable,
        internal_ip: None,
    }
}

/// One pool over every documentation range, one advertisement selecting
/// nodes with `node_selectors`, and a Service per `(ip, local, ready
/// nodes)`, its one EndpointSlice ready on those nodes.
fn world(
    nodes: Vec<NodeFacts>,
    node_selectors: Vec<LabelSelector>,
    services: &[(IpAddr, bool, BTreeSet<String>)],
) -> World {
    let mut w = World::default();
    for n in nodes {
        w.set_node(n);
    }
    let ranges = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/64",
    ];
    w.set_pool(PoolInfo::new("docs", BTreeMap::new(), &ranges));
    let ad = ObjectKey::new("ferrolb-system", "all");
    w.set_ad(AdInfo {
        key: ad,
        node_selectors,
        ..AdInfo::default()
    });
    for (i, (ip, local, ready_nodes)) in services.iter().enumerate() {
        let key = ObjectKey::new("default", format!("svc-{i}"));
        w.set_service(ServiceInfo {
            key: key.clone(),
            ips: vec![*ip],
            pool: None,
            local: *local,
            uid: None,
            ..Default::default()
        });
        w.set_slice(
            ObjectKey::new("default", format!("svc-{i}-x")),
            SliceInfo {
                service: Some(key),
                ready: ready_nodes.len(),
                ready_nodes: SliceInfo::nodes(ready_nodes.iter().map(String::as_str)),
                ..SliceInfo::default()
            },
        );
    }
    w
}

/// Every named node's computation, run as that node, with one usable
/// interface `eth0`.
fn run_as_each(w: &World, names: &[String], live: &BTreeSet<String>) -> Vec<(String, Desired)> {
    let links = vec![HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1])];
    let excludes = Excludes::default();
    names
        .iter()
        .map(|me| {
            let local = Local {
                me,
                live,
                links: &links,
                excludes: &excludes,
                rules: Default::default(),
            };
            (me.clone(), compute(w, &local))
        })
        .collect()
}

#[test]
fn the_ips_are_partitioned_between_the_nodes() {
    let ips = many_ips();
    let names: Vec<String> = (1..=4).map(|i| format!("worker-{i}")).collect();
    let everywhere: BTreeSet<String> = names.iter().cloned().collect();
    let services: Vec<_> = ips
        .iter()
        .map(|ip| (*ip, false, everywhere.clone()))
        .collect();
    let nodes = names
        .iter()
        .map(|n| node(n, BTreeMap::new(), false))
        .collect();
    let w = world(nodes, Vec::new(), &services);
    let mut announced: Vec<IpAddr> = run_as_each(&w, &names, &everywhere)
        .into_iter()
        .flat_map(|(_, d)| d.announce.into_iter().map(|(ip, _)| ip))
        .collect();
    announced.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(announced, want, "each IP once, by exactly one node");
    let outsider = run_as_each(&w, &["not-a-candidate".to_string()], &everywhere);
    assert!(outsider[0].1.announce.is_empty());
}

/// A node the generator builds: live, carries the exclusion label,
/// network unavailable, labelled `zone=a`.
type NodeSpec = (bool, bool, bool, bool);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_node_agrees_on_one_owner_per_ip_for_every_candidate_set(
        specs in proptest::collection::vec(any::<NodeSpec>(), 1..6),
        zone_only in any::<bool>(),
        services in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..8),
    ) {
        let names: Vec<String> = (0..specs.len()).map(|i| format!("node-{i}")).collect();
        let mut live = BTreeSet::new();
        let mut nodes = Vec::new();
        for (name, (is_live, excluded, unavailable, zone_a)) in names.iter().zip(&specs) {
            let mut labels = BTreeMap::new();
            if *excluded {
                labels.insert(EXCLUDE_FROM_LB_LABEL.to_string(), String::new());
            }
            if *zone_a {
                labels.insert("zone".to_string(), "a".to_string());
            }
            if *is_live {
                live.insert(name.clone());
            }
            nodes.push(node(name, labels, *unavailable));
        }
        let selectors = if zone_only {
            vec![LabelSelector {
                match_labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
                match_expressions: Vec::new(),
            }]
        } else {
            Vec::new()
        };
        let services: Vec<(IpAddr, bool, BTreeSet<String>)> = services
            .iter()
            .enumerate()
            .map(|(i, (local, mask))| {
                let ready = names
                    .iter()
                    .enumerate()
                    .filter(|(n, _)| mask & (1 << n) != 0)
                    .map(|(_, name)| name.clone())
                    .collect();
                (IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8 + 10)), *local, ready)
            })
            .collect();
        let w = world(nodes, selectors, &services);
        let runs = run_as_each(&w, &names, &live);
        for (i, (ip, local, ready)) in services.iter().enumerate() {
            let key = ObjectKey::new("default", format!("svc-{i}"));
            let owners: BTreeSet<Option<&str>> =
                runs.iter().map(|(_, d)| d.services[&key].owner()).collect();
            prop_assert_eq!(owners.len(), 1, "the nodes disagree on {}", key);
            let claimants: Vec<&str> = runs
                .iter()
                .filter(|(_, d)| d.announce.iter().any(|(a, _)| a == ip))
                .map(|(me, _)| me.as_str())
                .collect();
            match owners.into_iter().next().flatten() {
                None => prop_assert!(claimants.is_empty(), "{} announced by {:?}", key, claimants),
                Some(owner) => {
                    prop_assert_eq!(claimants, vec![owner]);
                    // The owner passes every candidate rule.
                    let n = &w.nodes()[owner];
                    prop_assert!(live.contains(owner));
                    prop_assert!(!n.labels.contains_key(EXCLUDE_FROM_LB_LABEL));
                    prop_assert!(!n.network_unavailable);
                    prop_assert!(!zone_only || n.labels.get("zone").is_some_and(|z| z == "a"));
                    prop_assert!(!ready.is_empty());
                    prop_assert!(!local || ready.contains(owner));
                }
            }
        }
    }
}
