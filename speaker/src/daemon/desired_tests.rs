use super::*;
use ferrolb_core::election::EXCLUDE_FROM_LB_LABEL;
use ferrolb_crds::selector::LabelSelector;
use ferrolb_crds::{IPAddressPool, IPAddressPoolSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

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
    ferrolb_crds::selector::from_k8s(&meta::LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    })
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
        w.nodes.insert(
            n.into(),
            NodeFacts {
                name: n.into(),
                labels: labels(&[("kubernetes.io/hostname", n)]),
                ready: true,
                network_unavailable: false,
                internal_ip: None,
            },
        );
    }
    add_pool(
        &mut w,
        "public",
        &["192.0.2.0/24", "2001:db8::/64"],
        &[("tier", "gold")],
    );
    add_ad(&mut w, "all", AdInfo::default());
    w.services.insert(
        svc_key(),
        ServiceInfo {
            key: svc_key(),
            ips: vec![ip(V4)],
            pool: Some("public".into()),
            local: false,
            uid: None,
        },
    );
    w.slices.insert(
        ObjectKey::new("default", "web-abcde"),
        SliceInfo {
            service: Some(svc_key()),
            ready: 1,
            ready_nodes: ["node-c".to_string()].into(),
        },
    );
    w
}

/// Adds a pool the way the index does: from the resource, so address
/// entries go through the same parser as in production.
fn add_pool(w: &mut World, name: &str, addresses: &[&str], pool_labels: &[(&str, &str)]) {
    let mut pool = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            ..IPAddressPoolSpec::default()
        },
    );
    pool.metadata.labels = Some(labels(pool_labels));
    w.pools.insert(name.into(), PoolInfo::from_pool(&pool));
}

fn add_ad(w: &mut World, name: &str, mut ad: AdInfo) {
    ad.key = ObjectKey::new("ferrolb-system", name);
    w.ads.insert(ad.key.clone(), ad);
}

fn links() -> Vec<LinkInfo> {
    let mut down = LinkInfo::ethernet("eth1", 3, [2, 0, 0, 0, 0, 3]);
    down.up = false;
    vec![
        LinkInfo::ethernet("eth0", 2, [2, 0, 0, 0, 0, 2]),
        down,
        LinkInfo::ethernet("eth2", 4, [2, 0, 0, 0, 0, 4]),
        LinkInfo::ethernet("veth01", 5, [2, 0, 0, 0, 0, 5]),
    ]
}

fn all_live() -> BTreeSet<String> {
    NODES.iter().map(|s| s.to_string()).collect()
}

fn run_as(w: &World, me: &str, live: &BTreeSet<String>) -> Desired {
    let links = links();
    let excludes = Excludes::default();
    compute(
        w,
        &Local {
            me,
            live,
            links: &links,
            excludes: &excludes,
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

#[test]
fn exactly_one_node_announces_on_every_usable_interface() {
    let w = world();
    let got = announcers(&w, &all_live());
    let owner = expected_owner(V4, &NODES);
    let want: BTreeSet<_> = [(ip(V4), "eth0".to_string()), (ip(V4), "eth2".to_string())].into();
    assert_eq!(got, [(owner.clone(), want)].into());
    for n in NODES {
        let d = run_as(&w, n, &all_live());
        assert_eq!(
            d.services[&svc_key()].owner(),
            Some(owner.as_str()),
            "{n} agrees"
        );
        assert_eq!(
            d.interfaces,
            ["eth0".to_string(), "eth2".to_string()].into()
        );
    }
}

#[test]
fn no_advertisement_announces_nothing_and_says_why() {
    let mut w = world();
    w.ads.clear();
    let why = unannounced(&w);
    assert_eq!(why.reason(), "NoL2Advertisement");
    assert!(why.to_string().contains("public"));
}

#[test]
fn pools_are_selected_by_name() {
    let mut w = world();
    w.ads.clear();
    let by_name = |pools: &[&str]| AdInfo {
        pools: pools.iter().map(|s| s.to_string()).collect(),
        ..AdInfo::default()
    };
    add_ad(&mut w, "other", by_name(&["private"]));
    assert!(announcers(&w, &all_live()).is_empty());
    add_ad(&mut w, "public", by_name(&["private", "public"]));
    assert_eq!(announcers(&w, &all_live()).len(), 1);
}

#[test]
fn pools_are_selected_by_label_selectors() {
    let mut w = world();
    w.ads.clear();
    let by_selector = |s: LabelSelector| AdInfo {
        pool_selectors: vec![s],
        ..AdInfo::default()
    };
    add_ad(
        &mut w,
        "silver",
        by_selector(selector(&[("tier", "silver")])),
    );
    assert!(announcers(&w, &all_live()).is_empty());
    let expr = ferrolb_crds::selector::from_k8s(&meta::LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![meta::LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["gold".into(), "platinum".into()]),
        }]),
    });
    add_ad(&mut w, "gold", by_selector(expr));
    assert_eq!(announcers(&w, &all_live()).len(), 1);
}

fn selecting_pools(pools: &[&str]) -> AdInfo {
    AdInfo {
        pools: pools.iter().map(|s| s.to_string()).collect(),
        ..AdInfo::default()
    }
}

fn set_service(w: &mut World, ips: &[&str], pool: Option<&str>) {
    let svc = w.services.get_mut(&svc_key()).unwrap();
    svc.ips = ips.iter().map(|s| ip(s)).collect();
    svc.pool = pool.map(str::to_string);
}

/// `world()` with a second pool `private` in 198.51.100.0/24 and only an
/// advertisement selecting `ad_pool` by name.
fn two_pools_announcing(ad_pool: &str) -> World {
    let mut w = world();
    add_pool(
        &mut w,
        "private",
        &["198.51.100.0/24"],
        &[("tier", "silver")],
    );
    w.ads.clear();
    add_ad(&mut w, "only", selecting_pools(&[ad_pool]));
    w
}

#[test]
fn a_service_without_the_annotation_is_announced_through_the_pool_holding_its_ip() {
    let mut w = two_pools_announcing("public");
    set_service(&mut w, &[V4], None);
    assert_eq!(announcers(&w, &all_live()).len(), 1, "selected by name");
    w.ads.clear();
    add_ad(
        &mut w,
        "gold",
        AdInfo {
            pool_selectors: vec![selector(&[("tier", "gold")])],
            ..AdInfo::default()
        },
    );
    assert_eq!(announcers(&w, &all_live()).len(), 1, "selected by label");
    // An advertisement for the other pool does not cover it.
    w.ads.clear();
    add_ad(&mut w, "private", selecting_pools(&["private"]));
    assert_eq!(
        unannounced(&w),
        Unannounced::NoAdvertisement {
            pool: "public".into()
        }
    );
}

#[test]
fn an_annotation_naming_another_pool_loses_to_the_pool_holding_the_ip() {
    let mut w = two_pools_announcing("public");
    set_service(&mut w, &[V4], Some("private"));
    assert_eq!(announcers(&w, &all_live()).len(), 1);
    let mut w = two_pools_announcing("private");
    set_service(&mut w, &[V4], Some("private"));
    assert_eq!(
        unannounced(&w),
        Unannounced::NoAdvertisement {
            pool: "public".into()
        }
    );
}

#[test]
fn of_two_pools_holding_the_ips_the_annotated_one_wins_else_the_first_by_name() {
    // Overlapping pools are invalid, but the speaker must still decide.
    let mut w = world();
    add_pool(&mut w, "aaa", &["192.0.2.0/28"], &[]);
    let svc = |pool: Option<&str>| ServiceInfo {
        key: svc_key(),
        ips: vec![ip(V4)],
        pool: pool.map(str::to_string),
        local: false,
        uid: None,
    };
    assert_eq!(service_pool(&w.pools, &svc(Some("public"))), Some("public"));
    assert_eq!(service_pool(&w.pools, &svc(None)), Some("aaa"));
    assert_eq!(service_pool(&w.pools, &svc(Some("other"))), Some("aaa"));
}

#[test]
fn dual_stack_ips_are_placed_in_the_one_pool_holding_both() {
    let mut w = two_pools_announcing("public");
    set_service(&mut w, &[V4, V6], None);
    let got = announcers(&w, &all_live());
    assert_eq!(got.len(), 1);
    let ips: BTreeSet<IpAddr> = got.values().flatten().map(|(i, _)| *i).collect();
    assert_eq!(ips, [ip(V4), ip(V6)].into());
    // The IPv6 address alone in `public` and the IPv4 one in `private`:
    // no pool holds both.
    set_service(&mut w, &["198.51.100.10", V6], None);
    assert_eq!(
        unannounced(&w),
        Unannounced::NoPool {
            ips: vec![ip("198.51.100.10"), ip(V6)]
        }
    );
}

#[test]
fn ips_in_no_pool_are_still_announced_through_the_annotations_pool() {
    let mut w = two_pools_announcing("private");
    set_service(&mut w, &["203.0.113.7"], Some("private"));
    let got = announcers(&w, &all_live());
    let owner = expected_owner("203.0.113.7", &NODES);
    assert_eq!(got.keys().collect::<Vec<_>>(), vec![&owner]);
}

#[test]
fn ips_in_no_pool_without_the_annotation_are_unannounced_and_say_why() {
    let mut w = world();
    set_service(&mut w, &["203.0.113.7"], None);
    let why = unannounced(&w);
    assert_eq!(why.reason(), "NoIPAddressPool");
    assert_eq!(
        why.to_string(),
        "the service's IPs (203.0.113.7) are in no IPAddressPool (no one pool holds them all) and no annotation ferrolb.io/ip-allocated-from-pool names a pool"
    );
}

#[test]
fn a_pool_with_an_unparseable_entry_still_holds_its_valid_ranges() {
    let mut w = world();
    w.pools.clear();
    add_pool(
        &mut w,
        "public",
        &["192.0.2.0-192.0.2.300", "192.0.2.8/29"],
        &[],
    );
    w.ads.clear();
    add_ad(&mut w, "public", selecting_pools(&["public"]));
    set_service(&mut w, &[V4], None);
    assert_eq!(announcers(&w, &all_live()).len(), 1);
    set_service(&mut w, &["192.0.2.20"], None);
    assert_eq!(
        unannounced(&w),
        Unannounced::NoPool {
            ips: vec![ip("192.0.2.20")]
        }
    );
}

#[test]
fn only_nodes_an_advertisement_selects_may_own() {
    let mut w = world();
    w.ads.clear();
    // Pick the node that would lose among all three, so the selector matters.
    let winner = expected_owner(V4, &NODES);
    let loser = NODES.iter().find(|n| **n != winner).unwrap();
    add_ad(
        &mut w,
        "one-node",
        AdInfo {
            node_selectors: vec![selector(&[("kubernetes.io/hostname", loser)])],
            ..AdInfo::default()
        },
    );
    let got = announcers(&w, &all_live());
    assert_eq!(got.keys().collect::<Vec<_>>(), vec![loser]);
    // A selector nobody matches.
    w.ads.clear();
    add_ad(
        &mut w,
        "nobody",
        AdInfo {
            node_selectors: vec![selector(&[("zone", "mars")])],
            ..AdInfo::default()
        },
    );
    assert_eq!(
        verdict(&w, "node-a"),
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NotSelected))
    );
    assert!(
        run_as(&w, "node-a", &all_live()).interfaces.is_empty(),
        "no sockets needed"
    );
}

#[test]
fn named_interfaces_are_used_and_missing_or_down_ones_reported() {
    let mut w = world();
    w.ads.clear();
    add_ad(
        &mut w,
        "named",
        AdInfo {
            interfaces: vec!["eth2".into(), "eth1".into(), "bond7".into()],
            ..AdInfo::default()
        },
    );
    let owner = expected_owner(V4, &NODES);
    let d = run_as(&w, &owner, &all_live());
    assert_eq!(d.announce, [(ip(V4), "eth2".to_string())].into());
    let reasons: Vec<_> = d.link_problems.iter().map(|(_, p)| p.reason()).collect();
    assert_eq!(reasons, ["InterfaceMissing", "InterfaceDown"]);
    // Only unusable interfaces: the node still owns the IP (it cannot
    // know), and the empty interface list is what the daemon reports.
    w.ads.clear();
    add_ad(
        &mut w,
        "broken",
        AdInfo {
            interfaces: vec!["eth1".into()],
            ..AdInfo::default()
        },
    );
    let d = run_as(&w, &owner, &all_live());
    assert!(d.announce.is_empty());
    assert_eq!(
        d.services[&svc_key()].verdict,
        Verdict::Owner {
            node: owner.clone(),
            interfaces: vec![]
        }
    );
}

#[test]
fn two_advertisements_announce_on_the_union_of_their_interfaces() {
    let mut w = world();
    w.ads.clear();
    for (name, i) in [("one", "eth0"), ("two", "eth2")] {
        add_ad(
            &mut w,
            name,
            AdInfo {
                interfaces: vec![i.into()],
                ..AdInfo::default()
            },
        );
    }
    let owner = expected_owner(V4, &NODES);
    let d = run_as(&w, &owner, &all_live());
    assert_eq!(d.announce.len(), 2);
}

#[test]
fn excluded_nodes_never_own_and_all_excluded_is_a_reason() {
    let mut w = world();
    let winner = expected_owner(V4, &NODES);
    w.nodes
        .get_mut(&winner)
        .unwrap()
        .labels
        .insert(EXCLUDE_FROM_LB_LABEL.into(), String::new());
    let got = announcers(&w, &all_live());
    assert_eq!(got.len(), 1);
    assert!(!got.contains_key(&winner));
    for n in w.nodes.values_mut() {
        n.labels.insert(EXCLUDE_FROM_LB_LABEL.into(), "true".into());
    }
    assert_eq!(
        verdict(&w, "node-a"),
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::AllExcluded))
    );
}

#[test]
fn local_policy_keeps_the_ip_on_nodes_with_ready_endpoints() {
    let mut w = world();
    w.services.get_mut(&svc_key()).unwrap().local = true;
    let got = announcers(&w, &all_live());
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["node-c"]);
    // The endpoint node's speaker is dead: nobody, rather than a node that
    // would drop the traffic.
    let live: BTreeSet<String> = ["node-a".to_string(), "node-b".to_string()].into();
    assert!(announcers(&w, &live).is_empty());
    assert_eq!(
        run_as(&w, "node-a", &live).services[&svc_key()].verdict,
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NoLocalEndpoint))
    );
}

#[test]
fn an_ip_without_any_ready_endpoint_is_not_announced() {
    let mut w = world();
    for s in w.slices.values_mut() {
        s.ready = 0;
        s.ready_nodes.clear();
    }
    assert!(announcers(&w, &all_live()).is_empty());
    assert_eq!(
        verdict(&w, "node-a"),
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NoReadyEndpoint))
    );
    w.slices.clear();
    assert!(announcers(&w, &all_live()).is_empty(), "no slice at all");
}

#[test]
fn a_dead_speaker_loses_its_ips_to_a_live_one() {
    let w = world();
    let winner = expected_owner(V4, &NODES);
    let live: BTreeSet<String> = all_live().into_iter().filter(|n| *n != winner).collect();
    let got = announcers(&w, &live);
    let rest: Vec<&str> = live.iter().map(String::as_str).collect();
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        vec![expected_owner(V4, &rest)]
    );
    assert!(announcers(&w, &BTreeSet::new()).is_empty());
}

#[test]
fn both_ips_of_a_dual_stack_service_land_on_one_node() {
    let mut w = world();
    w.services.get_mut(&svc_key()).unwrap().ips = vec![ip(V4), ip(V6)];
    let got = announcers(&w, &all_live());
    assert_eq!(got.len(), 1);
    let (owner, set) = got.into_iter().next().unwrap();
    assert_eq!(
        owner,
        expected_owner(V4, &NODES),
        "elected under the first IP"
    );
    let ips: BTreeSet<IpAddr> = set.iter().map(|(i, _)| *i).collect();
    assert_eq!(ips, [ip(V4), ip(V6)].into());
}

#[test]
fn a_node_missing_from_the_cluster_announces_nothing() {
    let w = world();
    let d = run_as(&w, "node-z", &all_live());
    assert!(d.announce.is_empty());
    assert!(d.interfaces.is_empty());
}

/// One change the watches or gossip can bring, for the cache property.
#[derive(Debug, Clone)]
enum Change {
    /// Service `k` (of 6) gets IP `.10+i` (v4) or is removed (`None`).
    Service(usize, Option<u8>),
    /// Service `k` switches `externalTrafficPolicy`.
    Local(usize),
    /// Service `k`'s ready endpoints move to these nodes (bit mask).
    Endpoints(usize, u8),
    /// Node `n` stops or starts gossiping.
    Live(usize),
    /// Node `n`'s `zone` label flips.
    Zone(usize),
    /// The advertisement selects `zone=a` nodes, or every node.
    AdSelects(bool),
    /// The pool shrinks to 192.0.2.0/28 or grows back.
    PoolNarrow(bool),
    /// The speaker runs as node `n`.
    Me(usize),
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    prop_oneof![
        (0..6usize, proptest::option::of(0..40u8)).prop_map(|(k, i)| Change::Service(k, i)),
        (0..6usize).prop_map(Change::Local),
        (0..6usize, 0..8u8).prop_map(|(k, m)| Change::Endpoints(k, m)),
        (0..3usize).prop_map(Change::Live),
        (0..3usize).prop_map(Change::Zone),
        any::<bool>().prop_map(Change::AdSelects),
        any::<bool>().prop_map(Change::PoolNarrow),
        (0..3usize).prop_map(Change::Me),
    ]
}

fn apply_change(w: &mut World, live: &mut BTreeSet<String>, me: &mut usize, c: &Change) {
    let key = |k: usize| ObjectKey::new("default", format!("svc-{k}"));
    match c {
        Change::Service(k, None) => {
            w.services.remove(&key(*k));
        }
        Change::Service(k, Some(i)) => {
            let local = w.services.get(&key(*k)).is_some_and(|s| s.local);
            w.services.insert(
                key(*k),
                ServiceInfo {
                    key: key(*k),
                    ips: vec![IpAddr::from([192, 0, 2, 10 + i])],
                    pool: Some("public".into()),
                    local,
                    uid: None,
                },
            );
        }
        Change::Local(k) => {
            if let Some(s) = w.services.get_mut(&key(*k)) {
                s.local = !s.local;
            }
        }
        Change::Endpoints(k, mask) => {
            let nodes: BTreeSet<String> = (0..3)
                .filter(|n| mask & (1 << n) != 0)
                .map(|n| NODES[n].to_string())
                .collect();
            w.slices.insert(
                ObjectKey::new("default", format!("svc-{k}-x")),
                SliceInfo {
                    service: Some(key(*k)),
                    ready: nodes.len(),
                    ready_nodes: nodes,
                },
            );
        }
        Change::Live(n) => {
            let name = NODES[*n].to_string();
            if !live.remove(&name) {
                live.insert(name);
            }
        }
        Change::Zone(n) => {
            let labels = &mut w.nodes.get_mut(NODES[*n]).unwrap().labels;
            if labels.remove("zone").is_none() {
                labels.insert("zone".into(), "a".into());
            }
        }
        Change::AdSelects(zone) => {
            let ad = w
                .ads
                .get_mut(&ObjectKey::new("ferrolb-system", "all"))
                .unwrap();
            ad.node_selectors = if *zone {
                vec![selector(&[("zone", "a")])]
            } else {
                Vec::new()
            };
        }
        Change::PoolNarrow(narrow) => {
            let range: &[&str] = if *narrow {
                &["192.0.2.0/28"]
            } else {
                &["192.0.2.0/24", "2001:db8::/64"]
            };
            add_pool(w, "public", range, &[("tier", "gold")]);
        }
        Change::Me(n) => *me = *n,
    }
}

proptest::proptest! {
    /// Whatever changes, in whatever order, the cached computation equals
    /// one from scratch.
    #[test]
    fn the_cache_never_changes_the_answer(changes in proptest::collection::vec(change(), 1..40)) {
        let mut w = world();
        let mut live = all_live();
        let mut me = 0;
        let links = links();
        let excludes = Excludes::default();
        let mut cache = Cache::default();
        for c in &changes {
            apply_change(&mut w, &mut live, &mut me, c);
            let local = Local {
                me: NODES[me],
                live: &live,
                links: &links,
                excludes: &excludes,
            };
            let cached = compute_cached(&w, &local, &mut cache);
            proptest::prop_assert_eq!(cached, compute(&w, &local), "after {:?}", c);
        }
    }
}

#[test]
fn an_unchanged_service_keeps_its_verdict_without_being_decided_again() {
    let w = world();
    let live = all_live();
    let links = links();
    let excludes = Excludes::default();
    let local = Local {
        me: "node-a",
        live: &live,
        links: &links,
        excludes: &excludes,
    };
    let mut cache = Cache::default();
    let first = compute_cached(&w, &local, &mut cache);
    // Poison the cached verdict: if it is reused, it shows.
    let poisoned = Verdict::Unannounced(Unannounced::NoPool { ips: vec![] });
    cache.services.get_mut(&svc_key()).unwrap().verdict = poisoned.clone();
    let again = compute_cached(&w, &local, &mut cache);
    assert_eq!(again.services[&svc_key()].verdict, poisoned, "reused");
    // A change to the Service itself decides it again.
    let mut moved = w.clone();
    moved.services.get_mut(&svc_key()).unwrap().local = true;
    let after = compute_cached(&moved, &local, &mut cache);
    assert_eq!(after, compute(&moved, &local));
    assert_ne!(after.services[&svc_key()].verdict, poisoned);
    // So does any global change (here: gossip), for every Service.
    cache.services.get_mut(&svc_key()).unwrap().verdict = poisoned.clone();
    let fewer: BTreeSet<String> = ["node-a".to_string()].into();
    let local = Local {
        live: &fewer,
        ..local
    };
    assert_eq!(
        compute_cached(&moved, &local, &mut cache),
        compute(&moved, &local)
    );
    let _ = first;
}
