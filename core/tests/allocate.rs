//! Allocation: automatic, from a requested pool, requested IPs, dual stack,
//! avoidBuggyIPs, serviceAllocation, idempotency and release.

mod common;

use common::*;
use ferrolb_core::allocator::{AllocationError, Family, FamilyPolicy, ServiceAllocation};

#[test]
fn automatic_assignment_takes_the_lowest_free_address() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.10-198.51.100.12"])]);
    assert_eq!(got(&mut a, &svc("a"), &v4()), ips(&["198.51.100.10"]));
    assert_eq!(got(&mut a, &svc("b"), &v4()), ips(&["198.51.100.11"]));
    a.release(&svc("a"));
    assert_eq!(got(&mut a, &svc("c"), &v4()), ips(&["198.51.100.10"]));
    assert_eq!(a.assignment(&svc("c")).unwrap().pool, "blue");
}

#[test]
fn a_full_pool_is_refused_as_no_available_ips() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.10"])]);
    got(&mut a, &svc("a"), &v4());
    let err = a.allocate(&svc("b"), &v4()).unwrap_err();
    assert_eq!(err.reason(), "no_available_ips");
    assert_eq!(
        err.to_string(),
        "no available IPv4 IPs in any IPAddressPool this Service may use"
    );
    assert_eq!(a.assignment(&svc("b")), None);
}

#[test]
fn with_no_pool_of_the_family_no_pool_matches() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/28"])]);
    let err = a.allocate(&svc("a"), &v6()).unwrap_err();
    assert_eq!(err.reason(), "no_matching_pool");
    assert!(
        err.to_string()
            .starts_with("no IPAddressPool matches this Service"),
        "{err}"
    );
}

#[test]
fn auto_assignment_follows_priority_then_name() {
    let mut low = pool("z-low", &["203.0.113.0/30"]);
    low.allocation.priority = Some(1);
    let mut high = pool("y-high", &["198.51.100.0/30"]);
    high.allocation.priority = Some(5);
    let none_b = pool("b-none", &["192.0.2.8/30"]);
    let none_a = pool("a-none", &["192.0.2.12/30"]);
    let mut a = allocator(vec![none_b, high, none_a, low]);
    let order: Vec<String> = (0..16)
        .map(|i| {
            got(&mut a, &svc(&format!("s{i:02}")), &v4());
            a.assignment(&svc(&format!("s{i:02}")))
                .unwrap()
                .pool
                .clone()
        })
        .collect();
    let expect: Vec<&str> = ["z-low", "y-high", "a-none", "b-none"]
        .iter()
        .flat_map(|p| std::iter::repeat_n(*p, 4))
        .collect();
    assert_eq!(order, expect);
}

#[test]
fn a_restricted_pool_comes_before_an_open_one_at_equal_priority() {
    let open = pool("a-open", &["198.51.100.0/30"]);
    let mut mine = pool("b-mine", &["203.0.113.0/30"]);
    mine.allocation.namespaces = vec!["team".into()];
    let mut a = allocator(vec![open, mine]);
    got(&mut a, &key("team", "x"), &v4());
    assert_eq!(a.assignment(&key("team", "x")).unwrap().pool, "b-mine");
    got(&mut a, &key("other", "x"), &v4());
    assert_eq!(a.assignment(&key("other", "x")).unwrap().pool, "a-open");
}

#[test]
fn auto_assign_false_pools_are_used_only_when_named() {
    let mut manual = pool("manual", &["198.51.100.0/30"]);
    manual.auto_assign = false;
    let mut a = allocator(vec![manual]);
    assert_eq!(
        a.allocate(&svc("a"), &v4()).unwrap_err().reason(),
        "no_matching_pool"
    );
    assert_eq!(
        got(&mut a, &svc("a"), &in_pool("manual")),
        ips(&["198.51.100.0"])
    );
    assert_eq!(
        got(&mut a, &svc("b"), &wants(&["198.51.100.3"])),
        ips(&["198.51.100.3"])
    );
}

#[test]
fn a_requested_pool_is_used_even_when_others_come_first() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.0/30"]),
        pool("green", &["203.0.113.0/30"]),
    ]);
    assert_eq!(
        got(&mut a, &svc("a"), &in_pool("green")),
        ips(&["203.0.113.0"])
    );
}

#[test]
fn an_unknown_requested_pool_is_refused_naming_it() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/30"])]);
    let err = a.allocate(&svc("a"), &in_pool("nope")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IPAddressPool \"nope\" does not exist"
    );
    assert_eq!(err.reason(), "unknown_pool");
}

#[test]
fn a_full_requested_pool_is_refused_as_exhausted() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.7"]),
        pool("green", &["203.0.113.0/30"]),
    ]);
    got(&mut a, &svc("a"), &in_pool("blue"));
    let err = a.allocate(&svc("b"), &in_pool("blue")).unwrap_err();
    assert_eq!(err.to_string(), "no available IPv4 IPs in pool \"blue\"");
    assert_eq!(err.reason(), "pool_exhausted");
}

#[test]
fn a_requested_pool_without_the_family_is_refused() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/30"])]);
    let mut req = in_pool("blue");
    req.families = vec![Family::V6];
    let err = a.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPAddressPool \"blue\" has no IPv6 addresses"
    );
}

#[test]
fn a_requested_pool_that_excludes_the_service_is_refused_with_the_rule() {
    let mut p = pool("blue", &["198.51.100.0/30"]);
    p.allocation.namespaces = vec!["red".into()];
    let mut a = allocator(vec![p]);
    let err = a
        .allocate(&key("green", "a"), &in_pool("blue"))
        .unwrap_err();
    assert_eq!(err.reason(), "pool_not_allowed");
    assert_eq!(
        err.to_string(),
        "IPAddressPool \"blue\" does not allow Service green/a: namespace \"green\" is not in serviceAllocation.namespaces and matches none of its namespaceSelectors"
    );
}

#[test]
fn a_requested_ip_is_given_exactly() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    assert_eq!(
        got(&mut a, &svc("a"), &wants(&["198.51.100.77"])),
        ips(&["198.51.100.77"])
    );
    // Automatic assignment skips it.
    got(&mut a, &svc("b"), &v4());
    assert_eq!(got(&mut a, &svc("c"), &v4()), ips(&["198.51.100.1"]));
}

#[test]
fn a_requested_ip_outside_every_pool_is_refused() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let err = a.allocate(&svc("a"), &wants(&["203.0.113.5"])).unwrap_err();
    assert_eq!(err.reason(), "requested_ip_outside_pools");
    assert_eq!(
        err.to_string(),
        "IP 203.0.113.5 is not in any IPAddressPool"
    );
}

#[test]
fn a_requested_ip_in_a_pool_the_service_may_not_use_is_refused() {
    let mut p = pool("gold", &["198.51.100.0/24"]);
    p.allocation.service_selectors = vec![selector(&[("tier", "gold")])];
    let mut a = allocator(vec![p]);
    let err = a
        .allocate(&svc("a"), &wants(&["198.51.100.5"]))
        .unwrap_err();
    assert_eq!(err.reason(), "pool_not_allowed");
    assert!(err.to_string().contains("serviceSelectors"), "{err}");
    let mut gold = wants(&["198.51.100.5"]);
    gold.labels = labels(&[("tier", "gold")]);
    assert_eq!(got(&mut a, &svc("a"), &gold), ips(&["198.51.100.5"]));
}

#[test]
fn a_requested_ip_already_used_is_refused_naming_the_holder() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    got(&mut a, &svc("web"), &wants(&["198.51.100.5"]));
    let err = a
        .allocate(&key("other", "api"), &wants(&["198.51.100.5"]))
        .unwrap_err();
    assert_eq!(err.reason(), "ip_in_use");
    assert_eq!(
        err.to_string(),
        "IP 198.51.100.5 is already used by default/web and sharing is not allowed: default/web has no sharing key"
    );
}

#[test]
fn requested_ips_must_lie_in_the_requested_pool() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.0/24"]),
        pool("green", &["203.0.113.0/24"]),
    ]);
    let mut req = wants(&["203.0.113.5"]);
    req.requested_pool = Some("blue".into());
    let err = a.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(err.reason(), "requested_ip_not_in_requested_pool");
    assert_eq!(
        err.to_string(),
        "requested IP 203.0.113.5 is not in the requested IPAddressPool \"blue\""
    );
    req.requested_pool = Some("green".into());
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["203.0.113.5"]));
}

#[test]
fn requested_ips_from_two_pools_are_refused() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.0/24"]),
        pool("six", &["2001:db8::/120"]),
    ]);
    let mut req = wants(&["198.51.100.5", "2001:db8::5"]);
    req.families = vec![Family::V4, Family::V6];
    req.family_policy = FamilyPolicy::RequireDualStack;
    let err = a.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(err.reason(), "requested_ips_in_different_pools");
}

#[test]
fn requested_ips_decide_the_families() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    // PreferDualStack would take both, but one requested IP decides.
    let mut req = wants(&["2001:db8::9"]);
    req.families = vec![Family::V4, Family::V6];
    req.family_policy = FamilyPolicy::PreferDualStack;
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["2001:db8::9"]));
    // Without ipFamilies any family may be requested.
    assert_eq!(
        got(&mut a, &svc("b"), &wants(&["2001:db8::8"])),
        ips(&["2001:db8::8"])
    );
    let both = wants(&["198.51.100.9", "2001:db8::7"]);
    assert_eq!(
        got(&mut a, &svc("c"), &both),
        ips(&["198.51.100.9", "2001:db8::7"])
    );
}

#[test]
fn a_requested_ip_of_a_family_the_service_lacks_is_refused() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    let mut req = wants(&["2001:db8::9"]);
    req.families = vec![Family::V4];
    let err = a.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(err.reason(), "requested_family_not_in_service");
    assert_eq!(
        err.to_string(),
        "requested IP 2001:db8::9 is IPv6 but the Service's ipFamilies are IPv4"
    );
}

#[test]
fn require_dual_stack_with_one_requested_ip_is_refused() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    let mut req = wants(&["198.51.100.9"]);
    req.family_policy = FamilyPolicy::RequireDualStack;
    let err = a.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(err.reason(), "requested_ips_not_dual_stack");
}

#[test]
fn single_stack_takes_the_first_listed_family() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    let req = dual(FamilyPolicy::SingleStack, Family::V6);
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["2001:db8::"]));
}

/// Both families come from one pool, IPv4 first whatever `ipFamilies`
/// prefers (MetalLB's order, so a migrated cluster elects the same owner).
#[test]
fn prefer_dual_stack_takes_both_families_from_one_pool_ipv4_first() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    let req = dual(FamilyPolicy::PreferDualStack, Family::V6);
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["198.51.100.0", "2001:db8::"])
    );
}

#[test]
fn prefer_dual_stack_falls_back_to_the_first_family_that_fits() {
    let mut a = allocator(vec![
        pool("four", &["198.51.100.0/24"]),
        pool("six", &["2001:db8::/120"]),
    ]);
    let req = dual(FamilyPolicy::PreferDualStack, Family::V6);
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["2001:db8::"]));
    let req = dual(FamilyPolicy::PreferDualStack, Family::V4);
    assert_eq!(got(&mut a, &svc("b"), &req), ips(&["198.51.100.0"]));
}

#[test]
fn prefer_dual_stack_prefers_a_pool_with_both_over_an_earlier_one_with_one() {
    let mut four = pool("a-four", &["198.51.100.0/24"]);
    four.allocation.priority = Some(1);
    let both = pool("b-both", &["203.0.113.0/24", "2001:db8::/120"]);
    let mut a = allocator(vec![four, both]);
    let req = dual(FamilyPolicy::PreferDualStack, Family::V4);
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["203.0.113.0", "2001:db8::"])
    );
}

#[test]
fn require_dual_stack_gets_both_or_is_refused() {
    let mut a = allocator(vec![pool("both", &["198.51.100.7", "2001:db8::7"])]);
    let req = dual(FamilyPolicy::RequireDualStack, Family::V4);
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["198.51.100.7", "2001:db8::7"])
    );
    let err = a.allocate(&svc("b"), &req).unwrap_err();
    assert_eq!(err.error, AllocationError::DualStackUnavailable);
    let mut split = allocator(vec![
        pool("four", &["198.51.100.0/24"]),
        pool("six", &["2001:db8::/120"]),
    ]);
    let err = split.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(err.reason(), "no_matching_pool");
    assert!(err.to_string().contains("IPv4 and IPv6"), "{err}");
}

#[test]
fn require_dual_stack_in_a_single_family_pool_is_refused_naming_the_family() {
    let mut a = allocator(vec![pool("four", &["198.51.100.0/24"])]);
    let mut req = dual(FamilyPolicy::RequireDualStack, Family::V4);
    req.requested_pool = Some("four".into());
    let err = a.allocate(&svc("a"), &req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPAddressPool \"four\" has no IPv6 addresses"
    );
}

#[test]
fn prefer_dual_stack_gains_the_missing_family_when_it_frees_up() {
    let mut a = allocator(vec![pool("both", &["198.51.100.7", "2001:db8::7"])]);
    got(&mut a, &svc("six"), &v6());
    let req = dual(FamilyPolicy::PreferDualStack, Family::V4);
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["198.51.100.7"]));
    a.release(&svc("six"));
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["198.51.100.7", "2001:db8::7"])
    );
}

#[test]
fn avoid_buggy_ips_never_hands_out_dot_zero_or_dot_255() {
    let mut p = pool(
        "blue",
        &["198.51.100.254-198.51.100.255", "203.0.113.0-203.0.113.2"],
    );
    p.avoid_buggy_ips = true;
    let mut a = allocator(vec![p]);
    assert_eq!(got(&mut a, &svc("a"), &v4()), ips(&["198.51.100.254"]));
    assert_eq!(got(&mut a, &svc("b"), &v4()), ips(&["203.0.113.1"]));
    let err = a.allocate(&svc("c"), &wants(&["203.0.113.0"])).unwrap_err();
    assert_eq!(err.reason(), "buggy_ip");
}

#[test]
fn avoid_buggy_ips_has_no_effect_on_ipv6() {
    let mut p = pool("six", &["2001:db8::/120"]);
    p.avoid_buggy_ips = true;
    let mut a = allocator(vec![p]);
    assert_eq!(got(&mut a, &svc("a"), &v6()), ips(&["2001:db8::"]));
    assert_eq!(
        got(&mut a, &svc("b"), &wants(&["2001:db8::ff"])),
        ips(&["2001:db8::ff"])
    );
}

#[test]
fn a_buggy_ip_is_fine_without_avoid_buggy_ips() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    assert_eq!(
        got(&mut a, &svc("a"), &wants(&["198.51.100.255"])),
        ips(&["198.51.100.255"])
    );
}

#[test]
fn a_namespace_selector_opens_a_pool_to_labelled_namespaces() {
    let mut p = pool("team", &["198.51.100.0/30"]);
    p.allocation = ServiceAllocation {
        namespace_selectors: vec![selector(&[("team", "a")])],
        ..Default::default()
    };
    let mut a = allocator(vec![p]);
    let err = a.allocate(&key("x", "s"), &v4()).unwrap_err();
    assert_eq!(err.reason(), "no_matching_pool");
    let mut req = v4();
    req.namespace_labels = labels(&[("team", "a")]).into();
    assert_eq!(got(&mut a, &key("x", "s"), &req), ips(&["198.51.100.0"]));
}

#[test]
fn a_service_selector_opens_a_pool_to_labelled_services() {
    let mut gold = pool("gold", &["198.51.100.0/30"]);
    gold.allocation.service_selectors = vec![selector(&[("tier", "gold")])];
    let open = pool("open", &["203.0.113.0/30"]);
    let mut a = allocator(vec![gold, open]);
    got(&mut a, &svc("plain"), &v4());
    assert_eq!(a.assignment(&svc("plain")).unwrap().pool, "open");
    let mut req = v4();
    req.labels = labels(&[("tier", "gold")]);
    got(&mut a, &svc("shiny"), &req);
    assert_eq!(a.assignment(&svc("shiny")).unwrap().pool, "gold");
}

#[test]
fn allocating_twice_returns_the_same_ips() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let first = got(&mut a, &svc("a"), &v4());
    got(&mut a, &svc("b"), &v4());
    assert_eq!(got(&mut a, &svc("a"), &v4()), first);
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 2);
}

#[test]
fn a_new_requested_ip_moves_the_service() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    got(&mut a, &svc("a"), &v4());
    assert_eq!(
        got(&mut a, &svc("a"), &wants(&["198.51.100.50"])),
        ips(&["198.51.100.50"])
    );
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
    assert_eq!(got(&mut a, &svc("b"), &v4()), ips(&["198.51.100.0"]));
}

#[test]
fn a_new_requested_pool_moves_the_service() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.0/24"]),
        pool("green", &["203.0.113.0/24"]),
    ]);
    got(&mut a, &svc("a"), &v4());
    assert_eq!(
        got(&mut a, &svc("a"), &in_pool("green")),
        ips(&["203.0.113.0"])
    );
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 0);
}

#[test]
fn a_label_change_that_loses_the_pool_moves_the_service() {
    let mut gold = pool("gold", &["198.51.100.0/30"]);
    gold.allocation.service_selectors = vec![selector(&[("tier", "gold")])];
    let mut a = allocator(vec![gold, pool("open", &["203.0.113.0/30"])]);
    let mut req = v4();
    req.labels = labels(&[("tier", "gold")]);
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["198.51.100.0"]));
    assert_eq!(got(&mut a, &svc("a"), &v4()), ips(&["203.0.113.0"]));
}

#[test]
fn a_refused_change_keeps_the_legal_ip_the_service_held() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let held = got(&mut a, &svc("a"), &v4());
    let err = a.allocate(&svc("a"), &wants(&["203.0.113.1"])).unwrap_err();
    assert_eq!(err.reason(), "requested_ip_outside_pools");
    assert_eq!(err.kept.as_ref().map(|k| k.ips.clone()), Some(held.clone()));
    assert_eq!(a.assignment(&svc("a")).unwrap().ips, held);
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
}

#[test]
fn a_refusal_for_a_service_holding_nothing_keeps_nothing() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let err = a.allocate(&svc("a"), &wants(&["203.0.113.1"])).unwrap_err();
    assert_eq!(err.kept, None);
    assert_eq!(a.assignment(&svc("a")), None);
}

#[test]
fn release_frees_the_ip_and_is_idempotent() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let held = got(&mut a, &svc("a"), &v4());
    let released = a.release(&svc("a")).unwrap();
    assert_eq!(released.ips, held);
    assert_eq!(a.release(&svc("a")), None);
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 0);
    assert_eq!(a.services_on(held[0]).count(), 0);
}

#[test]
fn a_pool_with_many_ranges_fills_every_range() {
    let ranges: Vec<String> = (0..128).map(|i| format!("198.51.100.{}", i * 2)).collect();
    let refs: Vec<&str> = ranges.iter().map(String::as_str).collect();
    let mut a = allocator(vec![pool("sparse", &refs)]);
    for (i, range) in ranges.iter().enumerate() {
        let ips = got(&mut a, &svc(&format!("s{i}")), &v4());
        assert_eq!(ips, vec![common::ip(range)]);
    }
    assert_eq!(
        a.allocate(&svc("late"), &v4()).unwrap_err().reason(),
        "no_available_ips"
    );
}

#[test]
fn require_dual_stack_lists_ipv4_first_from_a_pool_or_automatically() {
    let mut a = allocator(vec![pool("both", &["2001:db8::/120", "198.51.100.0/24"])]);
    let mut req = dual(FamilyPolicy::RequireDualStack, Family::V6);
    assert_eq!(
        got(&mut a, &svc("auto"), &req),
        ips(&["198.51.100.0", "2001:db8::"])
    );
    req.requested_pool = Some("both".into());
    assert_eq!(
        got(&mut a, &svc("pool"), &req),
        ips(&["198.51.100.1", "2001:db8::1"])
    );
}

#[test]
fn requested_ips_keep_the_order_asked() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    let mut req = wants(&["2001:db8::7", "198.51.100.7"]);
    req.family_policy = FamilyPolicy::RequireDualStack;
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["2001:db8::7", "198.51.100.7"])
    );
}

/// A PreferDualStack Service that holds one family and gets the other
/// later keeps its first IP first: the owner, elected under it, stays.
#[test]
fn an_added_family_goes_after_the_held_one() {
    let mut a = allocator(vec![pool("v6", &["2001:db8::/120"])]);
    let req = dual(FamilyPolicy::PreferDualStack, Family::V6);
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["2001:db8::"]));
    a.set_pools(vec![pool("v6", &["2001:db8::/120", "198.51.100.0/24"])]);
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["2001:db8::", "198.51.100.0"])
    );
}
