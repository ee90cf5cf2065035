//! Pool validation, counts, and what a pool update does to assignments.

mod common;

use common::*;
use ferrolb_core::allocator::{
    Allocator, LabelSelector, Pool, PoolCounts, PoolError, SelectorOp, SelectorRequirement,
    ServiceAllocation, Validity,
};

#[test]
fn a_pool_whose_ranges_overlap_each_other_is_invalid() {
    let a = allocator(vec![pool(
        "blue",
        &["198.51.100.0/28", "198.51.100.10-198.51.100.20"],
    )]);
    let Some(Validity::Invalid(err)) = a.validity("blue") else {
        panic!("blue should be invalid");
    };
    assert_eq!(err.reason(), "pool_ranges_overlap");
    assert_eq!(
        err.to_string(),
        "IPAddressPool \"blue\" is invalid: its addresses 198.51.100.0-198.51.100.15 and 198.51.100.10-198.51.100.20 overlap"
    );
}

#[test]
fn a_later_pool_overlapping_an_earlier_one_is_invalid_and_names_it() {
    let a = allocator(vec![
        pool("first", &["198.51.100.0/28"]),
        pool("second", &["198.51.100.8-198.51.100.40"]),
    ]);
    assert_eq!(a.validity("first"), Some(&Validity::Valid));
    let Some(Validity::Invalid(err)) = a.validity("second") else {
        panic!("second should be invalid");
    };
    assert_eq!(err.reason(), "pool_overlap");
    assert_eq!(
        err.to_string(),
        "IPAddressPool \"second\" is invalid: its addresses 198.51.100.8-198.51.100.15 are already in IPAddressPool \"first\""
    );
}

#[test]
fn an_overlap_is_found_when_the_earlier_range_starts_inside_the_later_one() {
    let a = allocator(vec![
        pool("first", &["198.51.100.100-198.51.100.110"]),
        pool("second", &["198.51.100.0/24"]),
    ]);
    let Some(Validity::Invalid(PoolError::PoolOverlapsPool { other, overlap, .. })) =
        a.validity("second")
    else {
        panic!("second should be invalid");
    };
    assert_eq!(other, "first");
    assert_eq!(overlap.to_string(), "198.51.100.100-198.51.100.110");
}

#[test]
fn an_invalid_pool_does_not_block_later_pools() {
    let a = allocator(vec![
        pool("first", &["198.51.100.0/28"]),
        pool("bad", &["198.51.100.0/27"]),
        pool("third", &["198.51.100.16/28"]),
    ]);
    assert!(!a.validity("bad").unwrap().is_valid());
    assert!(a.validity("third").unwrap().is_valid());
}

#[test]
fn an_invalid_pool_hands_out_nothing() {
    let mut a = allocator(vec![
        pool("first", &["198.51.100.0/30"]),
        pool("bad", &["198.51.100.0/24"]),
    ]);
    let err = a.allocate(&svc("x"), &in_pool("bad")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPAddressPool \"bad\" is invalid and hands out no addresses"
    );
    let err = a
        .allocate(&svc("y"), &wants(&["198.51.100.200"]))
        .unwrap_err();
    assert_eq!(err.reason(), "pool_invalid");
    assert_eq!(a.counts("bad").unwrap().available_v4, 0);
}

#[test]
fn a_duplicate_pool_name_makes_the_later_pool_invalid() {
    let a = allocator(vec![
        pool("blue", &["198.51.100.0/28"]),
        pool("blue", &["203.0.113.0/28"]),
    ]);
    assert!(a.validity("blue").unwrap().is_valid());
    assert_eq!(a.pool_names().collect::<Vec<_>>(), vec!["blue", "blue"]);
}

#[test]
fn a_pool_with_a_malformed_selector_is_invalid() {
    let mut p = pool("blue", &["198.51.100.0/28"]);
    p.allocation.service_selectors = vec![LabelSelector {
        match_labels: Default::default(),
        match_expressions: vec![SelectorRequirement {
            key: "tier".into(),
            operator: SelectorOp::In,
            values: vec![],
        }],
    }];
    let a = allocator(vec![p]);
    let Some(Validity::Invalid(err)) = a.validity("blue") else {
        panic!("blue should be invalid");
    };
    assert_eq!(err.reason(), "invalid_selector");
    assert!(
        err.to_string()
            .contains("serviceAllocation.serviceSelectors"),
        "{err}"
    );
}

#[test]
fn counts_split_by_family_and_count_a_shared_ip_once() {
    let mut a = allocator(vec![pool("mixed", &["198.51.100.0/29", "2001:db8::/126"])]);
    let before = a.counts("mixed").unwrap();
    assert_eq!(
        before,
        PoolCounts {
            assigned_v4: 0,
            assigned_v6: 0,
            available_v4: 8,
            available_v6: 4
        }
    );
    got(&mut a, &svc("a"), &shared("k", &[common_port(80)]));
    got(&mut a, &svc("b"), &shared("k", &[common_port(443)]));
    got(&mut a, &svc("c"), &v6());
    let after = a.counts("mixed").unwrap();
    assert_eq!(after.assigned_v4, 1);
    assert_eq!(after.available_v4, 7);
    assert_eq!(after.assigned_v6, 1);
    assert_eq!(after.available_v6, 3);
}

fn common_port(port: u16) -> ferrolb_core::allocator::Port {
    ferrolb_core::allocator::Port::tcp(port)
}

#[test]
fn avoid_buggy_ips_lowers_the_available_count() {
    let mut p = pool("blue", &["198.51.100.0/24", "203.0.113.0/25"]);
    p.avoid_buggy_ips = true;
    let a = allocator(vec![p]);
    assert_eq!(a.counts("blue").unwrap().available_v4, 254 + 127);
}

#[test]
fn a_slash_64_counts_beyond_u64_and_clamps_for_the_crd() {
    let mut a = allocator(vec![pool("big", &["2001:db8::/64", "2001:db8:1::/63"])]);
    got(&mut a, &svc("a"), &v6());
    let counts = a.counts("big").unwrap();
    assert_eq!(counts.available_v6, (1u128 << 64) + (1u128 << 65) - 1);
    assert_eq!(counts.saturating_i64().available_v6, i64::MAX);
    assert_eq!(counts.saturating_i64().assigned_v6, 1);
}

#[test]
fn an_unknown_pool_has_no_counts_or_validity() {
    let a = Allocator::new();
    assert_eq!(a.counts("nope"), None);
    assert_eq!(a.validity("nope"), None);
}

#[test]
fn a_pool_edit_never_moves_an_ip_that_is_still_legal() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    got(&mut a, &svc("a"), &v4());
    let held = got(&mut a, &svc("b"), &v4());
    // Grow the pool downwards: the lowest free address changes, b stays.
    let evicted = a.set_pools(vec![pool("blue", &["192.0.2.0/24", "198.51.100.0/24"])]);
    assert!(evicted.is_empty());
    assert_eq!(a.assignment(&svc("b")).unwrap().ips, held);
    assert_eq!(got(&mut a, &svc("b"), &v4()), held);
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 2);
}

#[test]
fn an_ip_moved_to_another_pool_stays_and_is_counted_there() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    let held = got(&mut a, &svc("a"), &v4());
    let evicted = a.set_pools(vec![pool("green", &["198.51.100.0/28"])]);
    assert!(evicted.is_empty());
    assert_eq!(a.assignment(&svc("a")).unwrap().pool, "green");
    assert_eq!(a.assignment(&svc("a")).unwrap().ips, held);
    assert_eq!(a.counts("green").unwrap().assigned_v4, 1);
}

#[test]
fn deleting_a_pool_evicts_its_services_with_the_reason() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.0/28"]),
        pool("green", &["203.0.113.0/28"]),
    ]);
    got(&mut a, &svc("a"), &in_pool("blue"));
    got(&mut a, &svc("b"), &in_pool("green"));
    let evicted = a.set_pools(vec![pool("green", &["203.0.113.0/28"])]);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].service, svc("a"));
    assert_eq!(evicted[0].reason.reason(), "pool_deleted");
    assert_eq!(
        evicted[0].reason.to_string(),
        "IPAddressPool \"blue\" was deleted, so IP 198.51.100.0 is no longer in any pool"
    );
    assert_eq!(a.assignment(&svc("a")), None);
    assert!(a.assignment(&svc("b")).is_some());
}

#[test]
fn shrinking_a_pool_evicts_services_outside_it() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    got(&mut a, &svc("a"), &v4());
    got(&mut a, &svc("b"), &v4());
    let evicted = a.set_pools(vec![pool("blue", &["198.51.100.1-198.51.100.15"])]);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].service, svc("a"));
    assert_eq!(evicted[0].reason.reason(), "address_not_in_pool");
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
    // The freed service can be placed again.
    assert_eq!(got(&mut a, &svc("a"), &v4()), ips(&["198.51.100.2"]));
}

#[test]
fn a_pool_that_becomes_invalid_evicts_its_services() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    got(&mut a, &svc("a"), &v4());
    let evicted = a.set_pools(vec![
        pool("green", &["198.51.100.0/24"]),
        pool("blue", &["198.51.100.0/28"]),
    ]);
    // The address now lies in green, which is valid: a keeps it.
    assert!(evicted.is_empty());
    let evicted = a.set_pools(vec![pool("blue", &["198.51.100.0/28", "198.51.100.4/30"])]);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].reason.reason(), "pool_invalid");
}

#[test]
fn a_pool_that_stops_allowing_a_namespace_evicts_its_services() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    got(&mut a, &key("red", "a"), &v4());
    got(&mut a, &key("green", "b"), &v4());
    let mut restricted = pool("blue", &["198.51.100.0/28"]);
    restricted.allocation = ServiceAllocation {
        namespaces: vec!["green".into()],
        ..Default::default()
    };
    let evicted = a.set_pools(vec![restricted]);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].service, key("red", "a"));
    assert_eq!(evicted[0].reason.reason(), "pool_not_allowed");
    assert!(
        evicted[0].reason.to_string().contains("red/a"),
        "{}",
        evicted[0].reason
    );
}

#[test]
fn turning_on_avoid_buggy_ips_evicts_services_on_buggy_addresses() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    got(&mut a, &svc("zero"), &v4());
    got(&mut a, &svc("one"), &v4());
    let mut p = pool("blue", &["198.51.100.0/24"]);
    p.avoid_buggy_ips = true;
    let evicted = a.set_pools(vec![p]);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].service, svc("zero"));
    assert_eq!(evicted[0].reason.reason(), "buggy_ip");
    assert_eq!(
        evicted[0].reason.to_string(),
        "IP 198.51.100.0 ends in .0 or .255 and IPAddressPool \"blue\" has avoidBuggyIPs set"
    );
}

#[test]
fn turning_off_auto_assign_keeps_existing_assignments() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    let held = got(&mut a, &svc("a"), &v4());
    let mut p = pool("blue", &["198.51.100.0/28"]);
    p.auto_assign = false;
    assert!(a.set_pools(vec![p]).is_empty());
    assert_eq!(got(&mut a, &svc("a"), &v4()), held);
    let err = a.allocate(&svc("b"), &v4()).unwrap_err();
    assert_eq!(err.reason(), "no_matching_pool");
}

#[test]
fn a_pool_with_an_unparsable_address_is_invalid_naming_the_string() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    got(&mut a, &svc("a"), &v4());
    let evicted = a.set_pools(vec![Pool::parse(
        "blue",
        &["198.51.100.0/28", "198.51.100.0/33"],
    )]);
    let Some(Validity::Invalid(err)) = a.validity("blue") else {
        panic!("blue should be invalid");
    };
    assert_eq!(err.reason(), "invalid_address");
    assert_eq!(
        err.to_string(),
        "invalid address \"198.51.100.0/33\": it is not a valid CIDR"
    );
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].reason.reason(), "pool_invalid");
}
