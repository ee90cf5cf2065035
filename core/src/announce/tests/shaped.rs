//! `serviceSelectors` and `preferredNodeSelectors`: which advertisements
//! cover a Service, which nodes they offer and which of them they prefer.

use super::*;
use crate::election::EXCLUDE_FROM_LB_LABEL;
use model::{Preference, ServiceLabels};

fn prefer(weight: u32, pairs: &[(&str, &str)]) -> Preference {
    Preference {
        weight,
        selector: selector(pairs),
    }
}

fn host(n: &str) -> LabelSelector {
    selector(&[("kubernetes.io/hostname", n)])
}

fn label_service(w: &mut World, pairs: &[(&str, &str)]) {
    w.edit_service(&svc_key(), |s| {
        s.labels = ServiceLabels::new(pairs.iter().copied());
    });
}

fn label_node(w: &mut World, node: &str, pairs: &[(&str, &str)]) {
    w.edit_node(node, |n| {
        for (k, v) in pairs {
            n.labels.insert(k.to_string(), v.to_string());
        }
    });
}

/// The nodes that announce anything, every node deciding as itself.
fn owners(w: &World, live: &BTreeSet<String>) -> Vec<String> {
    announcers(w, live).into_keys().collect()
}

/// The hash winner for the Service's IP among all three nodes, and a node
/// that loses to it.
fn winner_and_loser() -> (String, String) {
    let winner = expected_owner(V4, &NODES);
    let loser = NODES.iter().find(|n| **n != winner).unwrap().to_string();
    (winner, loser)
}

#[test]
fn an_advertisement_with_service_selectors_covers_matching_services_only() {
    let mut w = world();
    clear_ads(&mut w);
    add_ad(
        &mut w,
        "web-only",
        AdInfo {
            service_selectors: vec![selector(&[("app", "web")])],
            ..AdInfo::default()
        },
    );
    let why = unannounced(&w);
    assert_eq!(
        why,
        Unannounced::NoMatchingAdvertisement {
            pool: "public".into()
        }
    );
    assert_eq!(why.reason(), "NoMatchingL2Advertisement");
    assert_eq!(
        why.to_string(),
        "every L2Advertisement selecting pool \"public\" has serviceSelectors and none matches the service's labels"
    );
    label_service(&mut w, &[("app", "web"), ("tier", "front")]);
    assert_eq!(owners(&w, &all_live()), [expected_owner(V4, &NODES)]);
    label_service(&mut w, &[("app", "db")]);
    assert!(matches!(
        unannounced(&w),
        Unannounced::NoMatchingAdvertisement { .. }
    ));
}

#[test]
fn only_the_advertisements_matching_a_service_offer_nodes_and_interfaces() {
    let (winner, loser) = winner_and_loser();
    let mut w = world();
    clear_ads(&mut w);
    // The hash winner is offered only to Services labelled app=db.
    for (app, node, interface) in [("db", &winner, "eth0"), ("web", &loser, "eth2")] {
        add_ad(
            &mut w,
            app,
            AdInfo {
                service_selectors: vec![selector(&[("app", app)])],
                node_selectors: vec![host(node)],
                interfaces: vec![interface.into()],
                ..AdInfo::default()
            },
        );
    }
    label_service(&mut w, &[("app", "web")]);
    let got = announcers(&w, &all_live());
    let want: BTreeSet<_> = [(ip(V4), "eth2".to_string())].into();
    assert_eq!(got, [(loser.clone(), want)].into());
    label_service(&mut w, &[("app", "db")]);
    assert_eq!(owners(&w, &all_live()), [winner]);
}

#[test]
fn a_service_that_may_share_its_ip_is_not_announced_under_service_selectors() {
    let mut w = world();
    clear_ads(&mut w);
    add_ad(
        &mut w,
        "web",
        AdInfo {
            service_selectors: vec![selector(&[("app", "web")])],
            ..AdInfo::default()
        },
    );
    label_service(&mut w, &[("app", "web")]);
    w.edit_service(&svc_key(), |s| s.allows_sharing = true);
    let why = unannounced(&w);
    assert_eq!(
        why,
        Unannounced::SharedWithServiceSelectors {
            advertisement: ObjectKey::new("ferrolb-system", "web")
        }
    );
    assert_eq!(why.reason(), "SharedIPWithServiceSelectors");
    let text = why.to_string();
    for part in [
        "allow-shared-ip",
        "ferrolb-system/web",
        "serviceSelectors",
        "different nodes",
    ] {
        assert!(text.contains(part), "{text}");
    }
    // An advertisement with selectors that do not match the Service does
    // not count; one without selectors announces a sharing Service.
    add_ad(&mut w, "everything", AdInfo::default());
    assert!(matches!(
        unannounced(&w),
        Unannounced::SharedWithServiceSelectors { .. }
    ));
    label_service(&mut w, &[("app", "db")]);
    assert_eq!(owners(&w, &all_live()), [expected_owner(V4, &NODES)]);
    // Without the annotation, the selecting advertisement is fine.
    label_service(&mut w, &[("app", "web")]);
    w.edit_service(&svc_key(), |s| s.allows_sharing = false);
    assert_eq!(owners(&w, &all_live()), [expected_owner(V4, &NODES)]);
}

#[test]
fn a_preferred_node_wins_over_the_hash_order_while_it_is_a_candidate() {
    let (winner, loser) = winner_and_loser();
    let mut w = world();
    w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
        ad.preferences = vec![prefer(100, &[("kubernetes.io/hostname", &loser)])];
    });
    assert_eq!(owners(&w, &all_live()), std::slice::from_ref(&loser));
    // The preferred node's speaker dies: the hash order among the rest.
    let live: BTreeSet<String> = all_live().into_iter().filter(|n| *n != loser).collect();
    let rest: Vec<&str> = live.iter().map(String::as_str).collect();
    assert_eq!(owners(&w, &live), [expected_owner(V4, &rest)]);
    // The preference is removed: back to the hash winner.
    w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
        ad.preferences.clear();
    });
    assert_eq!(owners(&w, &all_live()), [winner]);
}

#[test]
fn weights_add_up_over_preferences_and_over_the_advertisements_covering_the_service() {
    let mut w = world();
    label_node(&mut w, "node-a", &[("zone", "primary"), ("gpu", "true")]);
    label_node(&mut w, "node-b", &[("zone", "primary")]);
    label_node(&mut w, "node-c", &[("role", "edge")]);
    clear_ads(&mut w);
    for (name, weight, label) in [
        ("edge", 100, ("role", "edge")),
        ("zone", 60, ("zone", "primary")),
        ("gpu", 50, ("gpu", "true")),
    ] {
        add_ad(
            &mut w,
            name,
            AdInfo {
                preferences: vec![prefer(weight, &[label])],
                ..AdInfo::default()
            },
        );
    }
    // node-a: 60 + 50 = 110, node-c: 100, node-b: 60.
    assert_eq!(owners(&w, &all_live()), ["node-a"]);
    // The gpu advertisement stops covering the Service: node-a scores 60.
    w.edit_ad(&ObjectKey::new("ferrolb-system", "gpu"), |ad| {
        ad.service_selectors = vec![selector(&[("app", "ml")])];
    });
    assert_eq!(owners(&w, &all_live()), ["node-c"]);
    // Two preferences of one advertisement add up too.
    w.remove_ad(&ObjectKey::new("ferrolb-system", "gpu"));
    w.edit_ad(&ObjectKey::new("ferrolb-system", "zone"), |ad| {
        ad.preferences.push(prefer(50, &[("gpu", "true")]));
    });
    assert_eq!(owners(&w, &all_live()), ["node-a"]);
}

#[test]
fn an_advertisement_scores_only_the_nodes_it_selects() {
    let mut w = world();
    // node-c, the hash winner among all three, matches the preference but
    // is offered only by an advertisement without preferences.
    assert_eq!(expected_owner(V4, &["node-a", "node-c"]), "node-c");
    label_node(&mut w, "node-a", &[("zone", "primary")]);
    label_node(&mut w, "node-c", &[("zone", "primary")]);
    clear_ads(&mut w);
    add_ad(
        &mut w,
        "a-only",
        AdInfo {
            node_selectors: vec![host("node-a")],
            preferences: vec![prefer(100, &[("zone", "primary")])],
            ..AdInfo::default()
        },
    );
    add_ad(
        &mut w,
        "b-and-c",
        AdInfo {
            node_selectors: vec![host("node-b"), host("node-c")],
            ..AdInfo::default()
        },
    );
    assert_eq!(owners(&w, &all_live()), ["node-a"]);
}

#[test]
fn equal_scores_fall_back_to_the_hash_order() {
    let mut w = world();
    // An empty preference matches every node: everyone scores 10, and the
    // owner is the one without preferences (MetalLB's e2e "no match plus
    // match-all" case).
    w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
        ad.preferences = vec![
            prefer(100, &[("nowhere", "true")]),
            Preference {
                weight: 10,
                selector: LabelSelector::default(),
            },
        ];
    });
    assert_eq!(owners(&w, &all_live()), [expected_owner(V4, &NODES)]);
}

#[test]
fn with_local_policy_nodes_without_an_endpoint_are_dropped_before_scoring() {
    let mut w = world();
    w.edit_service(&svc_key(), |s| s.local = true);
    w.edit_slice(&slice_key(), |s| {
        s.ready_nodes = SliceInfo::nodes(["node-b", "node-c"]);
        s.ready = 2;
    });
    // The preferred node holds no endpoint: the hash order among those
    // that do, not "no local endpoint".
    w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
        ad.preferences = vec![prefer(100, &[("kubernetes.io/hostname", "node-a")])];
    });
    assert_eq!(
        owners(&w, &all_live()),
        [expected_owner(V4, &["node-b", "node-c"])]
    );
    // Among those that do, the preferred one.
    let other = if expected_owner(V4, &["node-b", "node-c"]) == "node-b" {
        "node-c"
    } else {
        "node-b"
    };
    w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
        ad.preferences = vec![prefer(100, &[("kubernetes.io/hostname", other)])];
    });
    assert_eq!(owners(&w, &all_live()), [other]);
}

#[test]
fn ignore_exclude_lb_lets_labelled_nodes_announce() {
    let mut w = world();
    for n in NODES {
        label_node(&mut w, n, &[(EXCLUDE_FROM_LB_LABEL, "")]);
    }
    assert_eq!(
        verdict(&w, "node-a"),
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::AllExcluded))
    );
    let rules = Rules {
        ignore_exclude_lb: true,
    };
    let winner = expected_owner(V4, &NODES);
    for n in NODES {
        let d = run_with(&w, n, &all_live(), rules);
        assert_eq!(d.services[&svc_key()].owner(), Some(winner.as_str()));
        assert_eq!(!d.announce.is_empty(), n == winner, "{n}");
    }
    // The engine notices the switch and decides everything again.
    with_local("node-a", |mut local| {
        let mut engine = Engine::default();
        engine.update(&w, &local);
        local.rules = rules;
        let delta = engine.update(&w, &local);
        assert!(delta.all);
        assert_eq!(engine.desired(), &compute(&w, &local));
        assert_eq!(owner_of(&engine), Some(winner.as_str()));
    });
}

#[test]
fn a_label_that_only_changes_a_score_moves_the_ip_through_the_engine() {
    let (winner, loser) = winner_and_loser();
    let mut w = world();
    w.edit_ad(&ObjectKey::new("ferrolb-system", "all"), |ad| {
        ad.preferences = vec![prefer(100, &[("edge", "true")])];
    });
    with_local(&winner, |local| {
        let mut engine = Engine::default();
        engine.update(&w, &local);
        assert_eq!(owner_of(&engine), Some(winner.as_str()));
        // The loser was a candidate all along; only its score changes.
        label_node(&mut w, &loser, &[("edge", "true")]);
        let delta = engine.update(&w, &local);
        assert!(!delta.all);
        assert_eq!(engine.desired(), &compute(&w, &local));
        assert_eq!(owner_of(&engine), Some(loser.as_str()));
        assert!(!delta.withdrawn.is_empty(), "the old owner stops answering");
    });
}

/// Runs `f` with the [`Local`] of `me`: every node live, the test links,
/// the default rules.
fn with_local<R>(me: &str, f: impl FnOnce(Local<'_>) -> R) -> R {
    let (live, links, excludes) = (all_live(), links(), Excludes::default());
    f(Local {
        me,
        live: &live,
        links: &links,
        excludes: &excludes,
        rules: Rules::default(),
    })
}

/// Who owns the test Service in the engine's decision.
fn owner_of(engine: &Engine) -> Option<&str> {
    engine.desired().services[&svc_key()].owner()
}
