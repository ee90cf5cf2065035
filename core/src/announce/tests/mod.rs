//! The announce decision's tests, over the fixtures below: three ready
//! nodes, one pool, one advertisement and one Service.

mod cache;
mod nodes;
mod pools;
mod shaped;

use super::*;
use crate::selector::LabelSelector;
use model::{NodeFacts, SliceInfo};

const V4: &str = "192.0.2.10";
const V6: &str = "2001:db8::10";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

fn svc_key() -> ObjectKey {
    ObjectKey::new("default", "web")
}

/// Three ready nodes, one pool `public` (192.0.2.0/24 and 2001:db8::/64),
/// one advertisement for every pool, and Service default/web at 192.0.2.10
/// with a ready endpoint on node-c.
fn world() -> World {
    let mut w = World::default();
    for n in NODES {
        w.set_node(NodeFacts {
            name: n.into(),
            labels: labels(&[("kubernetes.io/hostname", n)]),
            ready: true,
            network_unavailable: false,
            internal_ip: None,
        });
    }
    add_pool(
        &mut w,
        "public",
        &["192.0.2.0/24", "2001:db8::/64"],
        &[("tier", "gold")],
    );
    add_ad(&mut w, "all", AdInfo::default());
    w.set_service(ServiceInfo {
        key: svc_key(),
        ips: vec![ip(V4)],
        pool: Some("public".into()),
        local: false,
        uid: None,
        ..Default::default()
    });
    w.set_slice(
        slice_key(),
        SliceInfo {
            service: Some(svc_key()),
            ready: 1,
            ready_nodes: SliceInfo::nodes(["node-c"]),
            ..SliceInfo::default()
        },
    );
    w
}

/// Adds a pool the way the speaker's watch edge does ([`PoolInfo::new`]),
/// so address entries go through the same parser as in production.
fn add_pool(w: &mut World, name: &str, addresses: &[&str], pool_labels: &[(&str, &str)]) {
    w.set_pool(PoolInfo::new(name, labels(pool_labels), addresses));
}

fn slice_key() -> ObjectKey {
    ObjectKey::new("default", "web-abcde")
}

fn clear_ads(w: &mut World) {
    let keys: Vec<ObjectKey> = w.ads().keys().cloned().collect();
    for k in keys {
        w.remove_ad(&k);
    }
}

fn add_ad(w: &mut World, name: &str, mut ad: AdInfo) {
    ad.key = ObjectKey::new("ferrolb-system", name);
    w.set_ad(ad);
}

fn links() -> Vec<HostInterface> {
    let mut down = HostInterface::ethernet("eth1", 3, [2, 0, 0, 0, 0, 3]);
    down.up = false;
    vec![
        HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 2]),
        down,
        HostInterface::ethernet("eth2", 4, [2, 0, 0, 0, 0, 4]),
        HostInterface::ethernet("veth01", 5, [2, 0, 0, 0, 0, 5]),
    ]
}

fn all_live() -> BTreeSet<String> {
    NODES.iter().map(|s| s.to_string()).collect()
}

fn run_as(w: &World, me: &str, live: &BTreeSet<String>) -> Desired {
    run_with(w, me, live, Rules::default())
}

fn run_with(w: &World, me: &str, live: &BTreeSet<String>, rules: Rules) -> Desired {
    let links = links();
    let excludes = Excludes::default();
    compute(
        w,
        &Local {
            me,
            live,
            links: &links,
            excludes: &excludes,
            rules,
        },
    )
}

/// Runs every node's computation; returns the nodes that announce
/// anything, with what they announce.
fn announcers(w: &World, live: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<(IpAddr, String)>> {
    NODES
        .iter()
        .map(|n| (n.to_string(), run_as(w, n, live).announce))
        .filter(|(_, a)| !a.is_empty())
        .collect()
}

fn verdict(w: &World, me: &str) -> Verdict {
    run_as(w, me, &all_live()).services[&svc_key()]
        .verdict
        .clone()
}

/// Asserts that no node announces the Service; returns why.
fn unannounced(w: &World) -> Unannounced {
    assert!(announcers(w, &all_live()).is_empty());
    match verdict(w, "node-a") {
        Verdict::Unannounced(why) => why,
        v => panic!("{v:?}"),
    }
}

fn expected_owner(ip_text: &str, nodes: &[&str]) -> String {
    election::elect(ip(ip_text), nodes.iter().copied())
        .unwrap()
        .to_string()
}
