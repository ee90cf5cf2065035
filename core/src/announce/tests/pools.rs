//! A Service's pool, found from its IPs, and the advertisements covering
//! it.

use super::*;
use crate::selector::{SelectorOp, SelectorRequirement};

#[test]
fn no_advertisement_announces_nothing_and_says_why() {
    let mut w = world();
    clear_ads(&mut w);
    let why = unannounced(&w);
    assert_eq!(why.reason(), "NoL2Advertisement");
    assert!(why.to_string().contains("public"));
}

#[test]
fn pools_are_selected_by_name() {
    let mut w = world();
    clear_ads(&mut w);
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
    clear_ads(&mut w);
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
    let expr = LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![SelectorRequirement {
            key: "tier".into(),
            operator: SelectorOp::In,
            values: vec!["gold".into(), "platinum".into()],
        }],
    };
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
    w.edit_service(&svc_key(), |svc| {
        svc.ips = ips.iter().map(|s| ip(s)).collect();
        svc.pool = pool.map(str::to_string);
    });
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
    clear_ads(&mut w);
    add_ad(&mut w, "only", selecting_pools(&[ad_pool]));
    w
}

#[test]
fn a_service_without_the_annotation_is_announced_through_the_pool_holding_its_ip() {
    let mut w = two_pools_announcing("public");
    set_service(&mut w, &[V4], None);
    assert_eq!(announcers(&w, &all_live()).len(), 1, "selected by name");
    clear_ads(&mut w);
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
    clear_ads(&mut w);
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
        ..Default::default()
    };
    assert_eq!(
        service_pool(w.pools(), &svc(Some("public"))),
        Some("public")
    );
    assert_eq!(service_pool(w.pools(), &svc(None)), Some("aaa"));
    assert_eq!(service_pool(w.pools(), &svc(Some("other"))), Some("aaa"));
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
    w.remove_pool("public");
    add_pool(
        &mut w,
        "public",
        &["192.0.2.0-192.0.2.300", "192.0.2.8/29"],
        &[],
    );
    clear_ads(&mut w);
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
