//! Who owns a Service's IPs and where it announces them: one owner that
//! every node agrees on, among the nodes the rules leave.

use super::*;
use crate::election::EXCLUDE_FROM_LB_LABEL;

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
fn only_nodes_an_advertisement_selects_may_own() {
    let mut w = world();
    clear_ads(&mut w);
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
    clear_ads(&mut w);
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
    clear_ads(&mut w);
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
    clear_ads(&mut w);
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
    clear_ads(&mut w);
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
    w.edit_node(&winner, |n| {
        n.labels.insert(EXCLUDE_FROM_LB_LABEL.into(), String::new());
    });
    let got = announcers(&w, &all_live());
    assert_eq!(got.len(), 1);
    assert!(!got.contains_key(&winner));
    for n in NODES {
        w.edit_node(n, |n| {
            n.labels.insert(EXCLUDE_FROM_LB_LABEL.into(), "true".into());
        });
    }
    assert_eq!(
        verdict(&w, "node-a"),
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::AllExcluded))
    );
}

#[test]
fn local_policy_keeps_the_ip_on_nodes_with_ready_endpoints() {
    let mut w = world();
    w.edit_service(&svc_key(), |s| s.local = true);
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
    w.edit_slice(&slice_key(), |s| {
        s.ready = 0;
        s.ready_nodes.clear();
    });
    assert!(announcers(&w, &all_live()).is_empty());
    assert_eq!(
        verdict(&w, "node-a"),
        Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NoReadyEndpoint))
    );
    w.remove_slice(&slice_key());
    assert!(announcers(&w, &all_live()).is_empty(), "no slice at all");
}

/// Endpoints as kube-proxy uses them: ready ones; terminating ones that
/// still serve only when none is ready; neither ready nor serving, none.
#[test]
fn terminating_endpoints_that_serve_keep_an_ip_only_when_none_is_ready() {
    // (ready nodes, terminating-and-serving nodes) of the one slice.
    let set = |w: &mut World, ready: &[&str], draining: &[&str]| {
        w.edit_slice(&slice_key(), |s| {
            s.ready = ready.len();
            s.ready_nodes = SliceInfo::nodes(ready.iter().copied());
            s.terminating = draining.len();
            s.terminating_nodes = SliceInfo::nodes(draining.iter().copied());
        });
    };
    let owners = |w: &World| -> Vec<String> { announcers(w, &all_live()).into_keys().collect() };
    for local in [false, true] {
        let mut w = world();
        w.edit_service(&svc_key(), |s| s.local = local);
        // Only a draining Pod on node-b: still announced (Local: from
        // node-b, where kube-proxy delivers to it).
        set(&mut w, &[], &["node-b"]);
        let got = owners(&w);
        assert_eq!(got.len(), 1, "local={local}: {got:?}");
        if local {
            assert_eq!(got, ["node-b"]);
        }
        // A ready Pod on node-c and a draining one on node-b: with Local,
        // node-c (ready first); with Cluster, any node.
        set(&mut w, &["node-c"], &["node-b"]);
        let got = owners(&w);
        assert_eq!(got.len(), 1, "local={local}: {got:?}");
        if local {
            assert_eq!(got, ["node-c"]);
        }
        // Draining Pods on two nodes, none ready: one of those two.
        set(&mut w, &[], &["node-a", "node-b"]);
        let got = owners(&w);
        assert_eq!(got.len(), 1);
        if local {
            assert!(got[0] == "node-a" || got[0] == "node-b", "{got:?}");
            assert_eq!(got[0], expected_owner(V4, &["node-a", "node-b"]));
        }
        // Terminating and no longer serving (or not ready, not serving):
        // the slice holds nothing kube-proxy would use.
        set(&mut w, &[], &[]);
        assert!(owners(&w).is_empty(), "local={local}");
        assert_eq!(
            verdict(&w, "node-a"),
            Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NoReadyEndpoint))
        );
    }
    // Local: the node with the ready Pod has no live speaker; the node
    // where a Pod drains does, and kube-proxy there still delivers to it.
    let mut w = world();
    w.edit_service(&svc_key(), |s| s.local = true);
    set(&mut w, &["node-c"], &["node-b"]);
    let live: BTreeSet<String> = ["node-a".to_string(), "node-b".to_string()].into();
    let got: Vec<String> = announcers(&w, &live).into_keys().collect();
    assert_eq!(got, ["node-b"]);
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
    w.edit_service(&svc_key(), |s| s.ips = vec![ip(V4), ip(V6)]);
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
