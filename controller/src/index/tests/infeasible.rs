//! A changed request that cannot be met: the Service keeps its IP, gets one
//! `RequestNotSatisfiable` Warning, and moves once the request can be met.
//! One test per kind of change.

use ferrolb_crds::annotations::{
    ADDRESS_POOL, ALLOW_SHARED_IP, LOAD_BALANCER_IPS, METALLB_UNIVERSE_LOAD_BALANCER_IPS,
};
use ferrolb_crds::ServiceAllocation;

use super::*;

const REASON: &str = "RequestNotSatisfiable";

/// Applies `svc`, lands the write the index asks for, and returns the
/// object as the API server then shows it.
fn served(index: &mut Index, svc: Service) -> Service {
    index.apply_service(svc.clone());
    let out = index.flush(now());
    let write = service_writes(&out)
        .into_iter()
        .find(|w| w.key.name == svc.metadata.name.clone().unwrap_or_default())
        .cloned()
        .expect("a write for the Service");
    let shown = landed(svc, &write);
    index.apply_service(shown.clone());
    index.flush(now());
    shown
}

fn annotated(mut svc: Service, pairs: &[(&str, &str)]) -> Service {
    let annotations = svc.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in pairs {
        annotations.insert(k.to_string(), v.to_string());
    }
    svc
}

fn ips_of(index: &Index, name: &str) -> Vec<String> {
    index
        .assignment(&key(name))
        .map(|a| a.ips.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// Applies the edited Service and checks: no write, the old IP kept, and
/// exactly one Warning with `note`; applying it again stays quiet.
fn keeps_with_one_warning(index: &mut Index, edited: Service, held: &str, note: &str) {
    index.apply_service(edited.clone());
    let out = index.flush(now());
    assert!(service_writes(&out).is_empty(), "{:?}", out.updates);
    assert_eq!(events(&out), [(REASON, note.to_string())]);
    let warning = out
        .updates
        .iter()
        .any(|u| matches!(u, Update::Event(e) if e.warning && e.regarding.uid.is_some()));
    assert!(warning, "a Warning on the Service");
    assert_eq!(
        ips_of(index, &edited.metadata.name.clone().unwrap()),
        [held]
    );
    // A resync, or an unrelated pool edit, repeats nothing.
    index.apply_service(edited);
    index.apply_pool(pool("unrelated", 9, &["192.0.2.128/30"]));
    let out = index.flush(now());
    assert!(service_writes(&out).is_empty(), "{:?}", out.updates);
    assert!(events(&out).is_empty(), "{:?}", events(&out));
}

/// The Service moves to `ips`, with one write and one `IPAllocated`.
fn moved(out: &Output, name: &str, ips: &[&str], pool: &str) {
    let writes: Vec<_> = service_writes(out)
        .into_iter()
        .filter(|w| w.key.name == name)
        .collect();
    assert_eq!(writes.len(), 1, "{:?}", out.updates);
    let a = writes[0].assignment.as_ref().expect("assigned");
    assert_eq!(
        a.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ips
    );
    assert_eq!(a.pool, pool);
    assert!(
        events(out)
            .iter()
            .any(|(r, n)| *r == "IPAllocated"
                && n.starts_with(&format!("Assigned IP [\"{}\"]", ips[0]))),
        "{:?}",
        events(out)
    );
}

#[test]
fn a_load_balancer_ips_annotation_naming_a_taken_ip_keeps_the_ip_until_it_is_freed() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let web = served(&mut index, lb("web"));
    served(&mut index, lb("other"));
    keeps_with_one_warning(
        &mut index,
        annotated(web.clone(), &[(LOAD_BALANCER_IPS, "198.51.100.1")]),
        "198.51.100.0",
        r#"Cannot give "default/web" requested IP ["198.51.100.1"]: IP 198.51.100.1 is already used by default/other and sharing is not allowed: default/other has no sharing key; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#,
    );
    index.delete_service(&lb("other"));
    let out = index.flush(now());
    moved(&out, "web", &["198.51.100.1"], "blue");
    assert_eq!(out.failures, Vec::<&str>::new());
}

#[test]
fn metallbs_spelling_of_the_annotation_is_handled_the_same() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let web = served(&mut index, lb("web"));
    let edited = annotated(web, &[(METALLB_UNIVERSE_LOAD_BALANCER_IPS, "192.0.2.9")]);
    index.apply_service(edited);
    let out = index.flush(now());
    assert!(service_writes(&out).is_empty());
    assert_eq!(events(&out)[0].0, REASON);
    assert_eq!(out.failures, ["requested_ip_outside_pools"]);
    assert_eq!(ips_of(&index, "web"), ["198.51.100.0"]);
}

#[test]
fn a_spec_load_balancer_ip_outside_every_pool_keeps_the_ip_until_a_pool_holds_it() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let mut web = served(&mut index, lb("web"));
    web.spec.as_mut().unwrap().load_balancer_ip = Some("203.0.113.7".into());
    keeps_with_one_warning(
        &mut index,
        web,
        "198.51.100.0",
        r#"Cannot give "default/web" requested IP ["203.0.113.7"]: IP 203.0.113.7 is not in any IPAddressPool; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#,
    );
    index.apply_pool(pool("green", 2, &["203.0.113.0/29"]));
    let out = index.flush(now());
    moved(&out, "web", &["203.0.113.7"], "green");
}

#[test]
fn an_address_pool_annotation_naming_a_missing_pool_keeps_the_ip_until_the_pool_exists() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let web = served(&mut index, lb("web"));
    keeps_with_one_warning(
        &mut index,
        annotated(web, &[(ADDRESS_POOL, "green")]),
        "198.51.100.0",
        r#"Cannot give "default/web" an IP from requested pool "green": requested IPAddressPool "green" does not exist; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#,
    );
    index.apply_pool(pool("green", 2, &["203.0.113.0/30"]));
    let out = index.flush(now());
    moved(&out, "web", &["203.0.113.0"], "green");
    // The old IP is free for others.
    index.apply_service(lb("next"));
    let out = index.flush(now());
    assert_eq!(
        service_writes(&out)[0].assignment.as_ref().unwrap().ips[0].to_string(),
        "198.51.100.0"
    );
}

#[test]
fn an_address_pool_annotation_naming_a_pool_the_service_may_not_use_keeps_the_ip() {
    let mut gold = pool("gold", 2, &["203.0.113.0/30"]);
    gold.spec.service_allocation = Some(ServiceAllocation {
        namespaces: vec!["gold".into()],
        ..Default::default()
    });
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"]), gold]);
    let web = served(&mut index, lb("web"));
    keeps_with_one_warning(
        &mut index,
        annotated(web, &[(ADDRESS_POOL, "gold")]),
        "198.51.100.0",
        r#"Cannot give "default/web" an IP from requested pool "gold": IPAddressPool "gold" does not allow Service default/web: namespace "default" is not in serviceAllocation.namespaces and matches none of its namespaceSelectors; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#,
    );
    // The pool opens up: the Service moves.
    index.apply_pool(pool("gold", 2, &["203.0.113.0/30"]));
    let out = index.flush(now());
    moved(&out, "web", &["203.0.113.0"], "gold");
}

#[test]
fn a_sharing_key_that_cannot_join_the_requested_ip_keeps_the_ip_until_the_clash_is_gone() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let web = served(&mut index, lb("web"));
    let dns = served(
        &mut index,
        annotated(
            lb("dns"),
            &[(ALLOW_SHARED_IP, "k"), (LOAD_BALANCER_IPS, "198.51.100.3")],
        ),
    );
    // Both use TCP/80.
    keeps_with_one_warning(
        &mut index,
        annotated(
            web,
            &[(ALLOW_SHARED_IP, "k"), (LOAD_BALANCER_IPS, "198.51.100.3")],
        ),
        "198.51.100.0",
        r#"Cannot give "default/web" requested IP ["198.51.100.3"] with sharing key "k": IP 198.51.100.3 cannot be shared with default/dns: both use TCP/80; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#,
    );
    // dns moves to another port: web may share now, and is retried.
    let mut dns = dns;
    dns.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 53;
    index.apply_service(dns);
    let out = index.flush(now());
    moved(&out, "web", &["198.51.100.3"], "blue");
    assert_eq!(ips_of(&index, "dns"), ["198.51.100.3"]);
}

#[test]
fn withdrawing_the_request_keeps_the_ip_quietly_and_asking_again_warns_again() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let web = served(&mut index, lb("web"));
    let edited = annotated(web.clone(), &[(ADDRESS_POOL, "green")]);
    index.apply_service(edited.clone());
    assert_eq!(events(&index.flush(now()))[0].0, REASON);
    index.apply_service(web);
    let out = index.flush(now());
    assert!(out.updates.is_empty(), "{:?}", out.updates);
    assert_eq!(ips_of(&index, "web"), ["198.51.100.0"]);
    index.apply_service(edited);
    assert_eq!(events(&index.flush(now()))[0].0, REASON);
}

#[test]
fn an_ip_that_is_no_longer_legal_is_still_released() {
    // The pool goes away while the request cannot be met: the Service
    // loses the IP, with the Events MetalLB sends.
    let mut index = seeded(vec![
        pool("blue", 1, &["198.51.100.0/30"]),
        pool("other", 2, &["192.0.2.0/30"]),
    ]);
    let web = served(&mut index, annotated(lb("web"), &[(ADDRESS_POOL, "blue")]));
    keeps_with_one_warning(
        &mut index,
        annotated(web, &[(ADDRESS_POOL, "green")]),
        "198.51.100.0",
        r#"Cannot give "default/web" an IP from requested pool "green": requested IPAddressPool "green" does not exist; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#,
    );
    index.delete_pool(&pool("blue", 1, &["198.51.100.0/30"]));
    let out = index.flush(now());
    let cleared: Vec<_> = service_writes(&out)
        .into_iter()
        .map(|w| (w.key.name.as_str(), w.assignment.is_some()))
        .collect();
    assert_eq!(cleared, [("web", false)]);
    let reasons: Vec<_> = events(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(reasons, ["ClearAssignment", "AllocationFailed"]);
}
