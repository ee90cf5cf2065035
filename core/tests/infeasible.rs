//! A changed request that cannot be met keeps the legal IPs the Service
//! holds, and the Service moves once the request can be met.

mod common;

use common::*;
use ferrolb_core::allocator::{
    AllocRequest, Allocator, Family, FamilyPolicy, Port, Refusal, ServiceKey,
};

/// `allocate` refuses with `reason`, and the Service still holds `held`.
fn refused_keeping(
    a: &mut Allocator,
    service: &ServiceKey,
    request: &AllocRequest,
    reason: &str,
    held: &[&str],
) -> Refusal {
    let refusal = a.allocate(service, request).unwrap_err();
    assert_eq!(refusal.reason(), reason, "{refusal}");
    let kept = refusal.kept.as_ref().expect("the old IPs are kept");
    assert_eq!(kept.ips, ips(held));
    assert_eq!(a.assignment(service), Some(&**kept));
    refusal
}

/// Pools "blue" (open) and "gold" (namespace "gold" only), and Service
/// "web" on 198.51.100.0.
fn web_on_blue() -> Allocator {
    let mut gold = pool("gold", &["203.0.113.0/30"]);
    gold.allocation.namespaces = vec!["gold".into()];
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/30"]), gold]);
    assert_eq!(got(&mut a, &svc("web"), &v4()), ips(&["198.51.100.0"]));
    a
}

/// "web" asks for `request`: refused with `reason`, it keeps 198.51.100.0.
fn web_keeps(a: &mut Allocator, request: &AllocRequest, reason: &str) -> Refusal {
    refused_keeping(a, &svc("web"), request, reason, &["198.51.100.0"])
}

#[test]
fn a_requested_ip_held_by_another_service_keeps_the_old_ip_until_it_is_freed() {
    let mut a = web_on_blue();
    got(&mut a, &svc("other"), &v4());
    let want = wants(&["198.51.100.1"]);
    let refusal = web_keeps(&mut a, &want, "ip_in_use");
    assert_eq!(
        refusal.to_string(),
        "IP 198.51.100.1 is already used by default/other and sharing is not allowed: default/other has no sharing key"
    );
    // Asking again changes nothing while the holder stays.
    web_keeps(&mut a, &want, "ip_in_use");
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 2);
    a.release(&svc("other"));
    assert_eq!(got(&mut a, &svc("web"), &want), ips(&["198.51.100.1"]));
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
    assert_eq!(got(&mut a, &svc("next"), &v4()), ips(&["198.51.100.0"]));
}

#[test]
fn a_requested_ip_outside_every_pool_keeps_the_old_ip_until_a_pool_holds_it() {
    let mut a = web_on_blue();
    let want = wants(&["192.0.2.7"]);
    web_keeps(&mut a, &want, "requested_ip_outside_pools");
    assert!(a
        .set_pools(vec![
            pool("blue", &["198.51.100.0/30"]),
            pool("new", &["192.0.2.0/29"]),
        ])
        .is_empty());
    assert_eq!(got(&mut a, &svc("web"), &want), ips(&["192.0.2.7"]));
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 0);
}

#[test]
fn a_requested_ip_in_a_pool_the_service_may_not_use_keeps_the_old_ip() {
    let mut a = web_on_blue();
    web_keeps(&mut a, &wants(&["203.0.113.1"]), "pool_not_allowed");
}

#[test]
fn a_requested_ip_outside_the_requested_pool_keeps_the_old_ip() {
    let mut a = web_on_blue();
    let mut want = wants(&["198.51.100.3"]);
    want.requested_pool = Some("other".into());
    web_keeps(&mut a, &want, "requested_ip_not_in_requested_pool");
}

#[test]
fn an_unknown_requested_pool_keeps_the_old_ip_until_the_pool_exists() {
    let mut a = web_on_blue();
    web_keeps(&mut a, &in_pool("green"), "unknown_pool");
    assert!(a
        .set_pools(vec![
            pool("blue", &["198.51.100.0/30"]),
            pool("green", &["192.0.2.0/30"]),
        ])
        .is_empty());
    assert_eq!(
        got(&mut a, &svc("web"), &in_pool("green")),
        ips(&["192.0.2.0"])
    );
}

#[test]
fn a_requested_pool_the_service_may_not_use_keeps_the_old_ip() {
    let mut a = web_on_blue();
    web_keeps(&mut a, &in_pool("gold"), "pool_not_allowed");
    // The same request from the gold namespace is met.
    let gold = key("gold", "web");
    got(&mut a, &gold, &v4());
    assert_eq!(got(&mut a, &gold, &in_pool("gold")), ips(&["203.0.113.0"]));
}

#[test]
fn a_full_requested_pool_keeps_the_old_ip_until_an_address_frees_up() {
    let mut a = allocator(vec![
        pool("blue", &["198.51.100.0/30"]),
        pool("small", &["192.0.2.1/32"]),
    ]);
    got(&mut a, &svc("web"), &v4());
    got(&mut a, &svc("squatter"), &in_pool("small"));
    web_keeps(&mut a, &in_pool("small"), "pool_exhausted");
    a.release(&svc("squatter"));
    assert_eq!(
        got(&mut a, &svc("web"), &in_pool("small")),
        ips(&["192.0.2.1"])
    );
}

#[test]
fn a_sharing_key_that_cannot_join_the_requested_ip_keeps_the_old_ip() {
    let mut a = web_on_blue();
    let mut dns = shared("dns", &[Port::tcp(53)]);
    dns.requested_ips = ips(&["198.51.100.3"]);
    got(&mut a, &svc("dns"), &dns);

    // Another key: the IP is in use.
    let mut other_key = shared("web", &[Port::tcp(80)]);
    other_key.requested_ips = ips(&["198.51.100.3"]);
    let refusal = web_keeps(&mut a, &other_key, "ip_in_use");
    assert!(refusal.to_string().contains("default/dns"), "{refusal}");

    // The same key but the same port: a sharing conflict.
    let mut clash = shared("dns", &[Port::tcp(53)]);
    clash.requested_ips = ips(&["198.51.100.3"]);
    let refusal = web_keeps(&mut a, &clash, "sharing_conflict");
    assert_eq!(
        refusal.to_string(),
        "IP 198.51.100.3 cannot be shared with default/dns: both use TCP/53"
    );

    // The holder moves to another port: the request can be met now.
    let mut dns_udp = shared("dns", &[Port::udp(53)]);
    dns_udp.requested_ips = ips(&["198.51.100.3"]);
    got(&mut a, &svc("dns"), &dns_udp);
    assert_eq!(got(&mut a, &svc("web"), &clash), ips(&["198.51.100.3"]));
    assert_eq!(a.services_on(ips(&["198.51.100.3"])[0]).count(), 2);
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
}

#[test]
fn a_kept_ip_is_held_under_the_new_request() {
    // web keeps .0 under key "k" while its requested IP is outside every
    // pool; so a Service with key "k" and another port may join .0.
    let mut a = web_on_blue();
    let mut keyed = shared("k", &[Port::tcp(80)]);
    keyed.requested_ips = ips(&["192.0.2.1"]);
    web_keeps(&mut a, &keyed, "requested_ip_outside_pools");
    let mut join = shared("k", &[Port::tcp(443)]);
    join.requested_ips = ips(&["198.51.100.0"]);
    assert_eq!(got(&mut a, &svc("tls"), &join), ips(&["198.51.100.0"]));
}

#[test]
fn a_family_policy_that_cannot_be_met_keeps_the_single_ip() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/30"])]);
    got(&mut a, &svc("web"), &v4());
    let refusal = web_keeps(
        &mut a,
        &dual(FamilyPolicy::RequireDualStack, Family::V4),
        "no_matching_pool",
    );
    assert!(refusal.to_string().contains("IPv4 and IPv6"), "{refusal}");
}

#[test]
fn an_old_ip_no_longer_legal_for_the_service_is_released_on_a_refusal() {
    // web shares .0 with tls under key "k"; it changes its key and asks
    // for an IP outside every pool. The new key may not share .0, so the
    // old IP is not legal for it any more: it holds nothing.
    let mut a = web_on_blue();
    let shared_ip = got(&mut a, &svc("web"), &shared("k", &[Port::tcp(80)]));
    assert_eq!(
        got(&mut a, &svc("tls"), &shared("k", &[Port::tcp(443)])),
        shared_ip
    );
    let mut moved = shared("other", &[Port::tcp(80)]);
    moved.requested_ips = ips(&["192.0.2.1"]);
    let refusal = a.allocate(&svc("web"), &moved).unwrap_err();
    assert_eq!(refusal.reason(), "requested_ip_outside_pools");
    assert_eq!(refusal.kept, None);
    assert_eq!(a.assignment(&svc("web")), None);
    assert_eq!(a.assignment(&svc("tls")).unwrap().ips, shared_ip);

    // A relabel that loses the pool, together with a request that cannot
    // be met: nothing either.
    let mut tier = pool("tier", &["203.0.113.0/30"]);
    tier.allocation.service_selectors = vec![selector(&[("tier", "gold")])];
    let mut b = allocator(vec![tier]);
    let mut gold = v4();
    gold.labels = labels(&[("tier", "gold")]);
    got(&mut b, &svc("api"), &gold);
    let refusal = b.allocate(&svc("api"), &in_pool("nope")).unwrap_err();
    assert_eq!(refusal.reason(), "unknown_pool");
    assert_eq!(refusal.kept, None);
    assert_eq!(b.counts("tier").unwrap().assigned_v4, 0);
}

#[test]
fn a_kept_ip_is_evicted_like_any_other_when_the_pools_make_it_illegal() {
    let mut a = web_on_blue();
    web_keeps(&mut a, &in_pool("green"), "unknown_pool");
    let evicted = a.set_pools(vec![pool("other", &["192.0.2.0/30"])]);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].reason.reason(), "pool_deleted");
    let refusal = a.allocate(&svc("web"), &in_pool("green")).unwrap_err();
    assert_eq!(refusal.kept, None);
}

#[test]
fn two_services_asking_for_each_others_ip_both_wait() {
    // Neither frees its IP first, so neither request can be met: both keep
    // what they have until one of them gives way (MetalLB would release
    // the first one edited, leaving it without an IP until the second
    // moved).
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/30"])]);
    got(&mut a, &svc("a"), &wants(&["198.51.100.1"]));
    got(&mut a, &svc("b"), &wants(&["198.51.100.2"]));
    refused_keeping(
        &mut a,
        &svc("a"),
        &wants(&["198.51.100.2"]),
        "ip_in_use",
        &["198.51.100.1"],
    );
    refused_keeping(
        &mut a,
        &svc("b"),
        &wants(&["198.51.100.1"]),
        "ip_in_use",
        &["198.51.100.2"],
    );
    // b gives way to a free address; a then gets what it asked for.
    assert_eq!(
        got(&mut a, &svc("b"), &wants(&["198.51.100.0"])),
        ips(&["198.51.100.0"])
    );
    assert_eq!(
        got(&mut a, &svc("a"), &wants(&["198.51.100.2"])),
        ips(&["198.51.100.2"])
    );
}
