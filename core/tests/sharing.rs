//! IP sharing through the allocator.

mod common;

use common::*;
use ferrolb_core::allocator::{AllocRequest, Port};

fn local(sharing_key: &str, port: u16, app: &str) -> AllocRequest {
    let mut req = shared(sharing_key, &[Port::tcp(port)]);
    req.external_traffic_local = true;
    req.selector = labels(&[("app", app)]);
    req
}

#[test]
fn services_with_one_key_and_distinct_ports_share_one_ip() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let first = got(&mut a, &svc("dns-tcp"), &shared("dns", &[Port::tcp(53)]));
    let second = got(&mut a, &svc("dns-udp"), &shared("dns", &[Port::udp(53)]));
    assert_eq!(first, second);
    assert_eq!(
        a.services_on(first[0]).cloned().collect::<Vec<_>>(),
        vec![svc("dns-tcp"), svc("dns-udp")]
    );
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
}

#[test]
fn automatic_assignment_prefers_a_shared_ip_over_a_lower_free_one() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    got(&mut a, &svc("first"), &v4());
    let joined = got(&mut a, &svc("web"), &shared("k", &[Port::tcp(80)]));
    a.release(&svc("first"));
    // 198.51.100.0 is free again, but the sharing Service joins web.
    assert_eq!(
        got(&mut a, &svc("web-tls"), &shared("k", &[Port::tcp(443)])),
        joined
    );
}

#[test]
fn a_port_clash_makes_automatic_assignment_take_a_new_ip() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let first = got(&mut a, &svc("a"), &shared("k", &[Port::tcp(80)]));
    let second = got(&mut a, &svc("b"), &shared("k", &[Port::tcp(80)]));
    assert_ne!(first, second);
    // A third one with a new port joins the lowest compatible shared IP.
    assert_eq!(
        got(&mut a, &svc("c"), &shared("k", &[Port::tcp(81)])),
        first
    );
}

#[test]
fn a_requested_ip_may_be_shared_legally() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let mut one = shared("k", &[Port::tcp(80)]);
    one.requested_ips = ips(&["198.51.100.9"]);
    let mut two = shared("k", &[Port::tcp(443)]);
    two.requested_ips = ips(&["198.51.100.9"]);
    assert_eq!(
        got(&mut a, &svc("one"), &one),
        got(&mut a, &svc("two"), &two)
    );
}

#[test]
fn a_requested_ip_with_a_clashing_port_is_a_sharing_conflict_naming_the_holder() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let mut one = shared("k", &[Port::tcp(80)]);
    one.requested_ips = ips(&["198.51.100.9"]);
    got(&mut a, &svc("web"), &one);
    let err = a.allocate(&key("shop", "front"), &one).unwrap_err();
    assert_eq!(err.reason(), "sharing_conflict");
    assert_eq!(
        err.to_string(),
        "IP 198.51.100.9 cannot be shared with default/web: both use TCP/80"
    );
}

#[test]
fn a_requested_ip_held_under_another_key_is_in_use() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let mut one = shared("a", &[Port::tcp(80)]);
    one.requested_ips = ips(&["198.51.100.9"]);
    got(&mut a, &svc("web"), &one);
    let mut two = shared("b", &[Port::tcp(81)]);
    two.requested_ips = ips(&["198.51.100.9"]);
    let err = a.allocate(&svc("api"), &two).unwrap_err();
    assert_eq!(err.reason(), "ip_in_use");
    assert!(err.to_string().contains("default/web"), "{err}");
}

#[test]
fn local_services_with_the_same_selector_share() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let one = got(&mut a, &svc("one"), &local("k", 80, "web"));
    assert_eq!(got(&mut a, &svc("two"), &local("k", 81, "web")), one);
}

#[test]
fn local_services_with_different_selectors_do_not_share() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let one = got(&mut a, &svc("one"), &local("k", 80, "web"));
    assert_ne!(got(&mut a, &svc("two"), &local("k", 81, "api")), one);
    let mut pinned = local("k", 82, "api");
    pinned.requested_ips = one.clone();
    let err = a.allocate(&svc("three"), &pinned).unwrap_err();
    assert_eq!(err.reason(), "sharing_conflict");
    assert!(err.to_string().contains("different selectors"), "{err}");
}

#[test]
fn a_local_service_does_not_share_with_a_cluster_one() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let cluster = got(&mut a, &svc("cluster"), &shared("k", &[Port::tcp(80)]));
    assert_ne!(got(&mut a, &svc("local"), &local("k", 81, "web")), cluster);
}

#[test]
fn a_service_alone_on_its_ip_may_change_its_key_in_place() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let mut req = shared("old", &[Port::tcp(80)]);
    req.requested_ips = ips(&["198.51.100.9"]);
    got(&mut a, &svc("a"), &req);
    req.sharing_key = Some("new".into());
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["198.51.100.9"]));
    req.sharing_key = None;
    assert_eq!(got(&mut a, &svc("a"), &req), ips(&["198.51.100.9"]));
    // The new key is what others now have to match.
    let mut other = shared("new", &[Port::tcp(81)]);
    other.requested_ips = ips(&["198.51.100.9"]);
    assert_eq!(
        a.allocate(&svc("b"), &other).unwrap_err().reason(),
        "ip_in_use"
    );
}

#[test]
fn a_shared_service_changing_its_key_moves_off_the_shared_ip() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let ip = got(&mut a, &svc("a"), &shared("k", &[Port::tcp(80)]));
    got(&mut a, &svc("b"), &shared("k", &[Port::tcp(81)]));
    let moved = got(&mut a, &svc("a"), &shared("other", &[Port::tcp(80)]));
    assert_ne!(moved, ip);
    assert_eq!(
        a.services_on(ip[0]).cloned().collect::<Vec<_>>(),
        vec![svc("b")]
    );
}

#[test]
fn a_shared_ip_stays_held_until_its_last_service_is_released() {
    let mut a = allocator(vec![pool("blue", &["198.51.100.0/24"])]);
    let ip = got(&mut a, &svc("a"), &shared("k", &[Port::tcp(80)]));
    got(&mut a, &svc("b"), &shared("k", &[Port::tcp(81)]));
    a.release(&svc("a"));
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
    assert_ne!(got(&mut a, &svc("plain"), &v4()), ip);
    a.release(&svc("b"));
    assert_eq!(a.counts("blue").unwrap().assigned_v4, 1);
    assert_eq!(got(&mut a, &svc("plain2"), &v4()), ip);
}

#[test]
fn sharing_stays_within_the_pool_being_tried() {
    let mut blue = pool("blue", &["198.51.100.0/24"]);
    blue.auto_assign = false;
    let mut a = allocator(vec![blue, pool("green", &["203.0.113.0/24"])]);
    got(&mut a, &svc("a"), &{
        let mut r = in_pool("blue");
        r.sharing_key = Some("k".into());
        r
    });
    // Automatic assignment must not join an IP of a pool it may not pick.
    assert_eq!(
        got(&mut a, &svc("b"), &shared("k", &[Port::tcp(1)])),
        ips(&["203.0.113.0"])
    );
}
