//! The engine decides only what changed and never changes the answer.

use super::*;

/// One change the watches or gossip can bring, for the cache property.
#[derive(Debug, Clone)]
enum Change {
    /// Service `k` (of 6) gets IP 192.0.2.10+i (pool `public`) or, for
    /// i >= 30, 198.51.100.i (pool `private`), or is removed (`None`).
    Service(usize, Option<u8>),
    /// Service `k` switches `externalTrafficPolicy`.
    Local(usize),
    /// Service `k`'s ready endpoints move to these nodes (bit mask), and
    /// its terminating-but-serving ones to those (second mask).
    Endpoints(usize, u8, u8),
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
    /// Node `n`'s `NetworkUnavailable` flips.
    NetworkUnavailable(usize),
    /// Node `n` is deleted, or comes back.
    NodeGone(usize),
    /// The advertisement `private` (pool `private` only, on `zone=a`
    /// nodes when true) comes, changes or goes (`None`).
    PrivateAd(Option<bool>),
    /// The advertisement `all` announces on eth0 only, or on every
    /// interface.
    AdInterfaces(bool),
    /// This node's eth2 goes down or comes up.
    Eth2Up(bool),
    /// Service `k` is labelled `app=web`, or loses the label.
    ServiceLabel(usize, bool),
    /// Service `k` gains or loses its allow-shared-ip annotation.
    Sharing(usize),
    /// Advertisement `all` (first) or `private` (second) takes the
    /// `serviceSelectors` app=web (`Some(true)`), app=db (`Some(false)`),
    /// or none.
    ServiceSelects(bool, Option<bool>),
    /// Advertisement `all` or `private` prefers, with weight 1 + w % 100,
    /// zone=a, rack=1, node-b or every node (`Some((w, which))`), or
    /// nothing.
    Prefer(bool, Option<(u8, u8)>),
    /// Node `n`'s `rack=1` label flips (only preferences read it).
    Rack(usize),
    /// Node `n`'s exclude-from-external-load-balancers label flips.
    Exclude(usize),
    /// The speaker's `--ignore-exclude-lb` flips.
    IgnoreExclude,
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    prop_oneof![
        (0..6usize, proptest::option::of(0..40u8)).prop_map(|(k, i)| Change::Service(k, i)),
        (0..6usize).prop_map(Change::Local),
        (0..6usize, 0..8u8, 0..8u8).prop_map(|(k, m, d)| Change::Endpoints(k, m, d)),
        (0..3usize).prop_map(Change::Live),
        (0..3usize).prop_map(Change::Zone),
        any::<bool>().prop_map(Change::AdSelects),
        any::<bool>().prop_map(Change::PoolNarrow),
        (0..3usize).prop_map(Change::Me),
        (0..3usize).prop_map(Change::NetworkUnavailable),
        (0..3usize).prop_map(Change::NodeGone),
        proptest::option::of(any::<bool>()).prop_map(Change::PrivateAd),
        any::<bool>().prop_map(Change::AdInterfaces),
        any::<bool>().prop_map(Change::Eth2Up),
        (0..6usize, any::<bool>()).prop_map(|(k, web)| Change::ServiceLabel(k, web)),
        (0..6usize).prop_map(Change::Sharing),
        (any::<bool>(), proptest::option::of(any::<bool>()))
            .prop_map(|(all, web)| Change::ServiceSelects(all, web)),
        (any::<bool>(), proptest::option::of((any::<u8>(), 0..4u8)))
            .prop_map(|(all, p)| Change::Prefer(all, p)),
        (0..3usize).prop_map(Change::Rack),
        (0..3usize).prop_map(Change::Exclude),
        Just(Change::IgnoreExclude),
    ]
}

/// What the speaker itself holds, besides the world.
struct Speaker {
    live: BTreeSet<String>,
    me: usize,
    links: Vec<HostInterface>,
    rules: Rules,
}

impl Speaker {
    /// What the engine takes from this speaker.
    fn local<'a>(&'a self, excludes: &'a Excludes) -> Local<'a> {
        Local {
            me: NODES[self.me],
            live: &self.live,
            links: &self.links,
            excludes,
            rules: self.rules,
        }
    }
}

/// Flips label `key` (value `value`) on node `n`.
fn flip_label(w: &mut World, n: usize, key: &str, value: &str) {
    w.edit_node(NODES[n], |node| {
        if node.labels.remove(key).is_none() {
            node.labels.insert(key.into(), value.into());
        }
    });
}

fn apply_change(w: &mut World, sp: &mut Speaker, c: &Change) {
    let key = |k: usize| ObjectKey::new("default", format!("svc-{k}"));
    match c {
        Change::Service(k, None) => {
            w.remove_service(&key(*k));
        }
        Change::Service(k, Some(i)) => {
            let old = w.services().get(&key(*k)).cloned().unwrap_or_default();
            let (ip, pool) = if *i >= 30 {
                (IpAddr::from([198, 51, 100, *i]), "private")
            } else {
                (IpAddr::from([192, 0, 2, 10 + i]), "public")
            };
            w.set_service(ServiceInfo {
                key: key(*k),
                ips: vec![ip],
                pool: Some(pool.into()),
                local: old.local,
                uid: None,
                labels: old.labels,
                allows_sharing: old.allows_sharing,
                rebalance: old.rebalance,
            });
        }
        Change::Local(k) => {
            w.edit_service(&key(*k), |s| s.local = !s.local);
        }
        Change::Endpoints(k, mask, draining) => {
            let on = |mask: u8| -> Vec<&str> {
                (0..3)
                    .filter(|n| mask & (1 << n) != 0)
                    .map(|n| NODES[n])
                    .collect()
            };
            let (ready, draining) = (on(*mask), on(*draining));
            w.set_slice(
                ObjectKey::new("default", format!("svc-{k}-x")),
                SliceInfo {
                    service: Some(key(*k)),
                    ready: ready.len(),
                    ready_nodes: SliceInfo::nodes(ready),
                    terminating: draining.len(),
                    terminating_nodes: SliceInfo::nodes(draining),
                },
            );
        }
        Change::Live(n) => {
            let name = NODES[*n].to_string();
            if !sp.live.remove(&name) {
                sp.live.insert(name);
            }
        }
        Change::Zone(n) => {
            w.edit_node(NODES[*n], |node| {
                if node.labels.remove("zone").is_none() {
                    node.labels.insert("zone".into(), "a".into());
                }
            });
        }
        Change::AdSelects(zone) => {
            w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
                ad.node_selectors = if *zone {
                    vec![selector(&[("zone", "a")])]
                } else {
                    Vec::new()
                };
            });
        }
        Change::PoolNarrow(narrow) => {
            let range: &[&str] = if *narrow {
                &["192.0.2.0/28"]
            } else {
                &["192.0.2.0/24", "2001:db8::/64"]
            };
            add_pool(w, "public", range, &[("tier", "gold")]);
        }
        Change::Me(n) => sp.me = *n,
        Change::NetworkUnavailable(n) => {
            w.edit_node(NODES[*n], |node| {
                node.network_unavailable = !node.network_unavailable;
            });
        }
        Change::NodeGone(n) => {
            if !w.remove_node(NODES[*n]) {
                w.set_node(NodeFacts {
                    name: NODES[*n].into(),
                    labels: labels(&[("kubernetes.io/hostname", NODES[*n])]),
                    ready: true,
                    network_unavailable: false,
                    internal_ip: None,
                });
            }
        }
        Change::PrivateAd(None) => {
            w.remove_ad(&ObjectKey::new("ferrolb-system", "private"));
        }
        Change::PrivateAd(Some(zone)) => {
            let node_selectors = if *zone {
                vec![selector(&[("zone", "a")])]
            } else {
                Vec::new()
            };
            add_ad(
                w,
                "private",
                AdInfo {
                    pools: vec!["private".into()],
                    node_selectors,
                    interfaces: vec!["eth2".into()],
                    ..AdInfo::default()
                },
            );
        }
        Change::AdInterfaces(eth0) => {
            w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
                ad.interfaces = if *eth0 {
                    vec!["eth0".into()]
                } else {
                    Vec::new()
                };
            });
        }
        Change::Eth2Up(up) => {
            for l in &mut sp.links {
                if l.name == "eth2" {
                    l.up = *up;
                }
            }
        }
        Change::ServiceLabel(k, web) => {
            w.edit_service(&key(*k), |s| {
                s.labels = if *web {
                    model::ServiceLabels::new([("app", "web")])
                } else {
                    model::ServiceLabels::default()
                };
            });
        }
        Change::Sharing(k) => {
            w.edit_service(&key(*k), |s| s.allows_sharing = !s.allows_sharing);
        }
        Change::ServiceSelects(all, web) => {
            let name = if *all { "all" } else { "private" };
            w.edit_ad(&ObjectKey::new("ferrolb-system", name), |ad| {
                ad.service_selectors = match web {
                    None => Vec::new(),
                    Some(true) => vec![selector(&[("app", "web")])],
                    Some(false) => vec![selector(&[("app", "db")])],
                };
            });
        }
        Change::Prefer(all, p) => {
            let name = if *all { "all" } else { "private" };
            w.edit_ad(&ObjectKey::new("ferrolb-system", name), |ad| {
                ad.preferences = match p {
                    None => Vec::new(),
                    Some((weight, which)) => vec![model::Preference {
                        weight: 1 + u32::from(*weight) % 100,
                        selector: match which {
                            0 => selector(&[("zone", "a")]),
                            1 => selector(&[("rack", "1")]),
                            2 => selector(&[("kubernetes.io/hostname", "node-b")]),
                            _ => LabelSelector::default(),
                        },
                    }],
                };
            });
        }
        Change::Rack(n) => flip_label(w, *n, "rack", "1"),
        Change::Exclude(n) => flip_label(w, *n, election::EXCLUDE_FROM_LB_LABEL, ""),
        Change::IgnoreExclude => sp.rules.ignore_exclude_lb = !sp.rules.ignore_exclude_lb,
    }
}

/// The replays' start: the fixtures' world with a second pool, node-a.
fn start() -> (World, Speaker, Excludes) {
    let mut w = world();
    // The `all` advertisement covers every pool, `private` too.
    add_pool(&mut w, "private", &["198.51.100.0/24"], &[]);
    let sp = Speaker {
        live: all_live(),
        me: 0,
        links: links(),
        rules: Rules::default(),
    };
    (w, sp, Excludes::default())
}

/// Applies `changes` one by one; after each, the engine's answer must
/// equal one from scratch and its delta exactly the difference.
fn replay(changes: &[Change]) -> Result<(), proptest::test_runner::TestCaseError> {
    let (mut w, mut sp, excludes) = start();
    let mut engine = Engine::default();
    let mut last = Desired::default();
    for c in changes {
        apply_change(&mut w, &mut sp, c);
        let local = sp.local(&excludes);
        let delta = engine.update(&w, &local);
        let now = engine.desired().clone();
        proptest::prop_assert_eq!(&now, &compute(&w, &local), "after {:?}", c);
        check_delta(&last, &now, &delta);
        last = now;
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Whatever changes, in whatever order, the engine's answer equals one
    /// from scratch, and its delta is exactly the difference.
    #[test]
    fn the_engine_never_changes_the_answer(changes in proptest::collection::vec(change(), 1..60)) {
        replay(&changes)?;
    }

    /// The same with sticky ownership ([`replay_sticky`]).
    #[test]
    fn the_sticky_engine_never_changes_the_answer(changes in proptest::collection::vec(change(), 1..60)) {
        replay_sticky(&changes)?;
    }
}

/// Found by the property above: under `Local`, a node coming back with a
/// ready endpoint takes the IP from an owner whose Pod only drains, even
/// when the owner ranks first in hash order.
#[test]
fn a_returning_node_with_a_ready_endpoint_beats_a_draining_owner() {
    let changes = [
        Change::Rack(2),
        Change::Service(3, Some(0)),
        Change::Endpoints(3, 0b010, 0b100),
        Change::NodeGone(1),
        Change::Local(3),
        Change::NodeGone(1),
    ];
    replay(&changes).unwrap();
}

/// `delta` lists exactly the Services and pairs that differ from `before`
/// to `after`.
fn check_delta(before: &Desired, after: &Desired, delta: &Delta) {
    let keys: BTreeSet<&ObjectKey> = before
        .services
        .keys()
        .chain(after.services.keys())
        .collect();
    let changed: Vec<&ObjectKey> = keys
        .into_iter()
        .filter(|k| before.services.get(*k) != after.services.get(*k))
        .collect();
    let mut listed: Vec<&ObjectKey> = delta.services.iter().map(|c| &c.key).collect();
    listed.sort();
    assert_eq!(listed, changed);
    for c in &delta.services {
        assert_eq!(c.before.as_ref(), before.services.get(&c.key));
        assert_eq!(c.after.as_ref(), after.services.get(&c.key));
    }
    let announced: BTreeSet<_> = after
        .announce
        .difference(&before.announce)
        .cloned()
        .collect();
    let withdrawn: BTreeSet<_> = before
        .announce
        .difference(&after.announce)
        .cloned()
        .collect();
    assert_eq!(
        delta.announced.iter().cloned().collect::<BTreeSet<_>>(),
        announced
    );
    assert_eq!(
        delta.withdrawn.iter().cloned().collect::<BTreeSet<_>>(),
        withdrawn
    );
    assert_eq!(delta.announced.len(), announced.len(), "no pair twice");
    assert_eq!(
        delta.interfaces_changed,
        before.interfaces != after.interfaces
    );
}

fn local_for<'a>(
    me: &'a str,
    live: &'a BTreeSet<String>,
    links: &'a [HostInterface],
    excludes: &'a Excludes,
) -> Local<'a> {
    Local {
        me,
        live,
        links,
        excludes,
        rules: Default::default(),
    }
}

#[test]
fn a_service_change_decides_that_service_only() {
    let mut w = world();
    let other = ObjectKey::new("default", "other");
    w.set_service(ServiceInfo {
        key: other.clone(),
        ips: vec![ip("192.0.2.11")],
        pool: None,
        local: false,
        uid: None,
        ..Default::default()
    });
    let (live, links, excludes) = (all_live(), links(), Excludes::default());
    let local = local_for("node-a", &live, &links, &excludes);
    let mut engine = Engine::default();
    let first = engine.update(&w, &local);
    assert!(first.all);
    assert_eq!(first.services.len(), 2);
    // Nothing changed: nothing decided.
    assert_eq!(engine.update(&w, &local), Delta::default());
    // Setting a Service to what it is: no change at all.
    let same = w.services()[&svc_key()].clone();
    assert!(!w.set_service(same));
    assert_eq!(engine.update(&w, &local), Delta::default());
    // One Service's policy flips: only it is decided again.
    w.edit_service(&svc_key(), |s| s.local = true);
    let delta = engine.update(&w, &local);
    assert!(!delta.all);
    let keys: Vec<&ObjectKey> = delta.services.iter().map(|c| &c.key).collect();
    assert!(keys.iter().all(|k| **k == svc_key()), "{keys:?}");
    // Speakers leaving decide only what they owned (and what had no
    // candidate); a speaker joining, only what it outranks the owner of.
    let owners: BTreeMap<ObjectKey, Option<String>> = engine
        .desired()
        .services
        .iter()
        .map(|(k, d)| (k.clone(), d.owner().map(str::to_owned)))
        .collect();
    let fewer: BTreeSet<String> = ["node-a".to_string()].into();
    let delta = engine.update(&w, &local_for("node-a", &fewer, &links, &excludes));
    assert!(!delta.all);
    for c in &delta.services {
        let was = owners[&c.key].as_deref();
        assert!(
            was.is_some_and(|o| o != "node-a"),
            "{} was owned by {was:?}",
            c.key
        );
    }
    assert_eq!(
        engine.desired(),
        &compute(&w, &local_for("node-a", &fewer, &links, &excludes))
    );
    let delta = engine.update(&w, &local);
    assert!(!delta.all, "a join is scoped");
    assert_eq!(engine.desired(), &compute(&w, &local));
}

#[test]
fn a_shared_ip_stays_announced_until_its_last_service_goes() {
    let mut w = world();
    w.edit_slice(&slice_key(), |s| {
        s.ready_nodes = SliceInfo::nodes(all_live().iter().map(String::as_str));
        s.ready = 3;
    });
    let twin = ObjectKey::new("default", "twin");
    w.set_service(ServiceInfo {
        key: twin.clone(),
        ips: vec![ip(V4)],
        pool: None,
        local: false,
        uid: None,
        ..Default::default()
    });
    w.set_slice(
        ObjectKey::new("default", "twin-x"),
        SliceInfo {
            service: Some(twin.clone()),
            ready: 1,
            ready_nodes: Vec::new(),
            ..SliceInfo::default()
        },
    );
    let owner = expected_owner(V4, &NODES);
    let (live, links, excludes) = (all_live(), links(), Excludes::default());
    let local = local_for(&owner, &live, &links, &excludes);
    let mut engine = Engine::default();
    let pairs: Vec<(IpAddr, String)> = ["eth0", "eth2"]
        .iter()
        .map(|i| (ip(V4), i.to_string()))
        .collect();
    let delta = engine.update(&w, &local);
    assert_eq!(delta.announced, pairs, "each pair once for two Services");
    w.remove_service(&twin);
    let delta = engine.update(&w, &local);
    assert_eq!(delta.services.len(), 1);
    assert!(delta.withdrawn.is_empty(), "web still announces it");
    w.remove_service(&svc_key());
    let delta = engine.update(&w, &local);
    assert_eq!(delta.withdrawn, pairs);
    assert!(engine.desired().announce.is_empty());
}

/// The sticky side of [`replay`]: the speaker's [`Member`], its peers'
/// claims (each live peer claims the Services whose number is its own
/// modulo 3, as if it had announced them before) and the clock.
struct Sticky {
    member: Member<ObjectKey>,
    now: Duration,
    seq: u64,
}

impl Sticky {
    fn new(me: &str) -> Self {
        Self {
            member: Member::new(
                Node::from(me),
                1,
                ownership::Config::default(),
                BTreeMap::new(),
                Duration::ZERO,
            ),
            now: Duration::ZERO,
            seq: 1,
        }
    }

    /// Membership says `live`; peers that are new are heard from.
    fn set_live(&mut self, live: &BTreeSet<String>) {
        let me = self.member.me().clone();
        let before: BTreeSet<Node> = self.member.book().claims().keys().cloned().collect();
        self.member.set_live(
            live.iter()
                .filter(|n| n.as_str() != &*me)
                .map(|n| (Node::from(n.as_str()), 1)),
        );
        for (i, n) in NODES.iter().enumerate() {
            if !live.contains(*n) || **n == *me || before.contains(*n) {
                continue;
            }
            self.seq += 1;
            let held = (0..6)
                .filter(|k| k % 3 == i)
                .map(|k| ObjectKey::new("default", format!("svc-{k}")))
                .collect();
            let msg = Message {
                epoch: 1,
                seq: self.seq,
                settling: false,
                held: Some(held),
                reply: false,
            };
            self.member.receive(&Node::from(*n), msg);
        }
    }

    fn update(&mut self, engine: &mut Engine, w: &World, local: &Local<'_>) -> Delta {
        self.now += Duration::from_millis(300);
        let mut send = |_: &Node, _: Message<ObjectKey>| {};
        let mut polled = Polled {
            member: &mut self.member,
            now: self.now,
            send: &mut send,
            next: None,
        };
        engine.update_owned(w, local, &mut polled)
    }
}

/// [`replay`] with sticky ownership: after each change the engine's
/// answer equals a fresh engine's over the same member, its delta is
/// exactly the difference, every owner is the member's, and a Service
/// has an owner exactly when the hash would give it one.
fn replay_sticky(changes: &[Change]) -> Result<(), proptest::test_runner::TestCaseError> {
    let (mut w, mut sp, excludes) = start();
    let mut engine = Engine::default();
    let mut sticky = Sticky::new(NODES[0]);
    sticky.set_live(&sp.live);
    let mut last = Desired::default();
    for c in changes {
        apply_change(&mut w, &mut sp, c);
        if &**sticky.member.me() != NODES[sp.me] {
            sticky = Sticky::new(NODES[sp.me]);
        }
        sticky.set_live(&sp.live);
        let local = sp.local(&excludes);
        let delta = sticky.update(&mut engine, &w, &local);
        proptest::prop_assert!(!delta.waiting, "every peer was heard");
        let now = engine.desired().clone();
        let mut fresh = Engine::default();
        // At the same instant (a later one could end a yield grace).
        let mut again = Sticky {
            member: sticky.member.clone(),
            now: sticky.now - Duration::from_millis(300),
            seq: sticky.seq,
        };
        again.update(&mut fresh, &w, &local);
        proptest::prop_assert_eq!(&now, fresh.desired(), "after {:?}", c);
        check_delta(&last, &now, &delta);
        let hashed = compute(&w, &local);
        for (key, d) in &now.services {
            let owner = match sticky.member.effective(key) {
                Effective::Owner(n) => Some(n.to_string()),
                _ => None,
            };
            proptest::prop_assert_eq!(d.owner().map(str::to_owned), owner, "{} after {:?}", key, c);
            let hash = &hashed.services[key];
            proptest::prop_assert_eq!(
                d.owner().is_some(),
                hash.owner().is_some(),
                "{}: sticky {:?}, hash {:?}",
                key,
                d,
                hash
            );
        }
        last = now;
    }
    Ok(())
}

/// A started speaker that has not heard its peers decides nothing, keeps
/// what it had, and decides every Service at once when it has.
#[test]
fn a_listening_speaker_decides_nothing_until_it_heard_its_peers() {
    let w = world();
    let live = all_live();
    let links = links();
    let excludes = Excludes::default();
    let local = local_for("node-a", &live, &links, &excludes);
    let mut engine = Engine::default();
    let mut member = Member::new(
        Node::from("node-a"),
        1,
        ownership::Config::default(),
        BTreeMap::new(),
        Duration::ZERO,
    );
    member.set_live([(Node::from("node-b"), 1), (Node::from("node-c"), 1)]);
    let mut sent = Vec::new();
    let mut update = |engine: &mut Engine, member: &mut Member<ObjectKey>, now: Duration| {
        let mut send = |to: &Node, m: Message<ObjectKey>| sent.push((to.clone(), m.reply));
        let mut polled = Polled {
            member,
            now,
            send: &mut send,
            next: None,
        };
        let delta = engine.update_owned(&w, &local, &mut polled);
        (delta, polled.next)
    };
    let (delta, next) = update(&mut engine, &mut member, Duration::ZERO);
    assert!(delta.waiting);
    assert!(delta.services.is_empty());
    assert!(engine.desired().services.is_empty());
    assert_eq!(next, Some(Duration::from_secs(1)), "the hello is repeated");
    // node-b claims web; node-c says it holds nothing.
    for (peer, held) in [("node-b", vec![svc_key()]), ("node-c", vec![])] {
        let msg = Message {
            epoch: 1,
            seq: 2,
            settling: false,
            held: Some(held.into_iter().collect()),
            reply: false,
        };
        assert_eq!(
            member.receive(&Node::from(peer), msg),
            ownership::Received::Fresh
        );
    }
    let (delta, _) = update(&mut engine, &mut member, Duration::from_millis(5));
    assert!(!delta.waiting);
    assert!(delta.all);
    assert_eq!(
        engine.desired().services[&svc_key()].owner(),
        Some("node-b")
    );
    assert_eq!(member.phase(), ownership::Phase::Steady);
}

/// The interner keeps only the candidate lists in use: a `Local`
/// Service whose endpoints wander over every set of nodes leaves one
/// list behind, not one per set.
#[test]
fn the_sticky_engine_keeps_only_the_candidate_lists_in_use() {
    let (mut w, mut sp, excludes) = start();
    let mut engine = Engine::default();
    let mut sticky = Sticky::new(NODES[0]);
    sticky.set_live(&sp.live);
    apply_change(&mut w, &mut sp, &Change::Service(1, Some(1)));
    apply_change(&mut w, &mut sp, &Change::Local(1));
    for mask in 1..8 {
        apply_change(&mut w, &mut sp, &Change::Endpoints(1, mask, 0));
        let local = sp.local(&excludes);
        sticky.update(&mut engine, &w, &local);
    }
    // web's list (every node) and svc-1's current one.
    assert_eq!(engine.lists.len(), 2, "{:?}", engine.lists);
}
