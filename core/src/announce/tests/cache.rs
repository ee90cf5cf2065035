//! The cache saves work and never changes the answer.

use super::*;

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
