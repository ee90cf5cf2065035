//! Restoring assignments read back from Service status.

mod common;

use common::*;
use ferrolb_core::allocator::{Family, FamilyPolicy, Port};

#[test]
fn restart_never_moves_an_assigned_ip() {
    let pools = || vec![pool("blue", &["198.51.100.0/24"])];
    let mut before = allocator(pools());
    for name in ["a", "b", "c"] {
        got(&mut before, &svc(name), &v4());
    }
    before.release(&svc("a"));
    let mut after = allocator(pools());
    for (service, assignment) in before.assignments() {
        after.restore(service, &v4(), &assignment.ips).unwrap();
    }
    for name in ["b", "c"] {
        assert_eq!(after.assignment(&svc(name)), before.assignment(&svc(name)));
        assert_eq!(
            got(&mut after, &svc(name), &v4()),
            before.assignment(&svc(name)).unwrap().ips
        );
    }
    assert_eq!(
        got(&mut after, &svc("d"), &v4()),
        got(&mut before, &svc("d"), &v4())
    );
}

#[test]
fn restore_accepts_an_auto_assign_false_pool_the_request_does_not_name() {
    let mut manual = pool("manual", &["198.51.100.0/24"]);
    manual.auto_assign = false;
    let mut a = allocator(vec![manual, pool("open", &["203.0.113.0/24"])]);
    let restored = a
        .restore(&svc("a"), &in_pool("open"), &ips(&["198.51.100.7"]))
        .unwrap();
    assert_eq!(restored.pool, "manual");
    assert_eq!(a.counts("manual").unwrap().assigned_v4, 1);
    // A later allocate with the same request moves it to the named pool.
    assert_eq!(
        got(&mut a, &svc("a"), &in_pool("open")),
        ips(&["203.0.113.0"])
    );
}

#[test]
fn restore_refuses_an_ip_outside_every_pool() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let err = a
        .restore(&svc("a"), &v4(), &ips(&["203.0.113.1"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "IP 203.0.113.1 is not in any IPAddressPool"
    );
    assert_eq!(a.assignment(&svc("a")), None);
}

#[test]
fn restore_refuses_a_pool_the_service_may_not_use() {
    let mut p = pool("blue", &["198.51.100.0/24"]);
    p.allocation.namespaces = vec!["red".into()];
    let mut a = allocator(vec![p]);
    let err = a
        .restore(&key("green", "a"), &v4(), &ips(&["198.51.100.1"]))
        .unwrap_err();
    assert_eq!(err.reason(), "pool_not_allowed");
}

#[test]
fn restore_refuses_a_buggy_ip_in_an_avoiding_pool() {
    let mut p = pool("blue", &["198.51.100.0/24"]);
    p.avoid_buggy_ips = true;
    let mut a = allocator(vec![p]);
    let err = a
        .restore(&svc("a"), &v4(), &ips(&["198.51.100.255"]))
        .unwrap_err();
    assert_eq!(err.reason(), "buggy_ip");
}

#[test]
fn restore_refuses_illegal_sharing_naming_the_holder() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    a.restore(
        &svc("web"),
        &shared("k", &[Port::tcp(80)]),
        &ips(&["198.51.100.1"]),
    )
    .unwrap();
    let err = a
        .restore(
            &svc("api"),
            &shared("k", &[Port::tcp(80)]),
            &ips(&["198.51.100.1"]),
        )
        .unwrap_err();
    assert_eq!(err.reason(), "sharing_conflict");
    assert!(err.to_string().contains("default/web"), "{err}");
    a.restore(
        &svc("api"),
        &shared("k", &[Port::tcp(81)]),
        &ips(&["198.51.100.1"]),
    )
    .unwrap();
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
}

#[test]
fn restore_refuses_malformed_ip_sets() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24", "2001:db8::/120"])]);
    for bad in [
        vec![],
        ips(&["198.51.100.1", "198.51.100.2"]),
        ips(&["198.51.100.1", "2001:db8::1", "2001:db8::2"]),
    ] {
        let err = a.restore(&svc("a"), &v4(), &bad).unwrap_err();
        assert_eq!(err.reason(), "invalid_assignment", "{err}");
    }
}

#[test]
fn restore_refuses_ips_from_two_pools() {
    let mut a = allocator(vec![
        pool("four", &["198.51.100.0/24"]),
        pool("six", &["2001:db8::/120"]),
    ]);
    let err = a
        .restore(&svc("a"), &v4(), &ips(&["198.51.100.1", "2001:db8::1"]))
        .unwrap_err();
    assert_eq!(err.reason(), "invalid_assignment");
    assert!(err.to_string().contains("\"four\""), "{err}");
}

#[test]
fn restore_keeps_a_dual_stack_pair() {
    let mut a = allocator(vec![pool("both", &["198.51.100.0/24", "2001:db8::/120"])]);
    let req = dual(FamilyPolicy::RequireDualStack, Family::V6);
    a.restore(&svc("a"), &req, &ips(&["2001:db8::5", "198.51.100.5"]))
        .unwrap();
    assert_eq!(
        got(&mut a, &svc("a"), &req),
        ips(&["2001:db8::5", "198.51.100.5"])
    );
}

#[test]
fn restore_replaces_what_the_service_held() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    got(&mut a, &svc("a"), &v4());
    a.restore(&svc("a"), &v4(), &ips(&["198.51.100.9"]))
        .unwrap();
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
    assert_eq!(got(&mut a, &svc("b"), &v4()), ips(&["198.51.100.0"]));
}
