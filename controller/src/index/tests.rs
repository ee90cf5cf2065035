//! Index tests: apply objects, then read what the status task would write.

use std::collections::BTreeMap;

use ferrolb_crds::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_crds::conditions::{self, TYPE_ADVERTISED};
use ferrolb_crds::{IPAddressPool, IPAddressPoolSpec, L2Advertisement};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("in range")
}

fn pool(name: &str, created: i64, addresses: &[&str]) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    p.metadata.namespace = Some("ferrolb-system".into());
    p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).expect("ok")));
    p
}

fn lb(name: &str) -> Service {
    Service {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// `svc` as the API server shows it after `write` landed.
fn landed(mut svc: Service, write: &ServiceWrite) -> Service {
    let annotations = svc.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match &write.assignment {
        Some(a) => {
            annotations.insert(IP_ALLOCATED_FROM_POOL.into(), a.pool.clone());
            svc.status = Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        a.ips
                            .iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ip_mode: Some("VIP".into()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            });
        }
        None => {
            annotations.remove(IP_ALLOCATED_FROM_POOL);
            svc.status = None;
        }
    }
    svc
}

/// An index seeded with `pools` and one advertisement selecting every
/// pool.
fn seeded(pools: Vec<IPAddressPool>) -> Index {
    let mut all = L2Advertisement::new("all", Default::default());
    all.metadata.namespace = Some("ferrolb-system".into());
    seeded_with(pools, vec![all])
}

fn seeded_with(pools: Vec<IPAddressPool>, ads: Vec<L2Advertisement>) -> Index {
    let mut index = Index::new(Settings::default());
    index.reset_pools(pools);
    index.reset_advertisements(ads);
    index.reset_namespaces(&[]);
    index.reset_services(vec![]);
    index.seed();
    index
}

fn service_writes(out: &Output) -> Vec<&ServiceWrite> {
    out.updates
        .iter()
        .filter_map(|u| match u {
            Update::Write(Write::Service(w)) => Some(w),
            _ => None,
        })
        .collect()
}

fn events(out: &Output) -> Vec<(&'static str, String)> {
    out.updates
        .iter()
        .filter_map(|u| match u {
            Update::Event(e) => Some((e.reason, e.note.clone())),
            _ => None,
        })
        .collect()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

#[test]
fn a_new_load_balancer_gets_an_ip_one_write_and_one_event() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    index.apply_service(lb("web"));
    let out = index.flush(now());
    let writes = service_writes(&out);
    assert_eq!(writes.len(), 1);
    let a = writes[0].assignment.clone().expect("assigned");
    assert_eq!(a.ips, ["198.51.100.0".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(
        events(&out),
        [(
            "IPAllocated",
            r#"Assigned IP ["198.51.100.0"] from pool "blue""#.to_string()
        )]
    );
    // A stale echo (the object without our write) and then the real one
    // cause no further writes or Events.
    index.apply_service(lb("web"));
    let write = writes[0].clone();
    index.apply_service(landed(lb("web"), &write));
    let out = index.flush(now());
    assert!(service_writes(&out).is_empty());
    assert!(events(&out).is_empty());
}

#[test]
fn an_update_that_changes_nothing_the_controller_reads_costs_nothing() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    index.apply_service(lb("web"));
    let out = index.flush(now());
    let write = service_writes(&out)[0].clone();
    let held = landed(lb("web"), &write);
    index.apply_service(held.clone());
    assert!(index.flush(now()).updates.is_empty());
    // Another controller's annotation, kubectl's last-applied copy, a new
    // resourceVersion: the slimmed object is the one held.
    let mut touched = held;
    let annotations = touched
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert("example.com/owner".into(), "team-b".into());
    annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{}".into(),
    );
    touched.metadata.resource_version = Some("99".into());
    let before = index.services[&key("web")].clone();
    index.apply_service(touched);
    assert!(
        std::sync::Arc::ptr_eq(&before, &index.services[&key("web")]),
        "the held object was not even replaced"
    );
    assert!(index.flush(now()).updates.is_empty());
}

#[test]
fn nothing_is_decided_before_seeding() {
    let mut index = Index::new(Settings::default());
    index.apply_pool(pool("blue", 1, &["198.51.100.0/30"]));
    index.apply_service(lb("web"));
    let out = index.flush(now());
    assert!(out.updates.is_empty());
    assert!(!index.is_synced());
}

#[test]
fn a_service_of_another_class_is_never_touched() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let mut svc = lb("other");
    svc.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    let write = ServiceWrite {
        key: key("other"),
        assignment: Some(Assignment {
            pool: "blue".into(),
            ips: vec!["198.51.100.1".parse().unwrap()],
        }),
    };
    index.apply_service(landed(svc, &write));
    let out = index.flush(now());
    assert!(service_writes(&out).is_empty());
    assert!(events(&out).is_empty());
    assert!(index.assignment(&key("other")).is_none());
}

#[test]
fn a_type_change_away_from_load_balancer_releases_and_clears() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/32"])]);
    index.apply_service(lb("web"));
    let write = service_writes(&index.flush(now()))[0].clone();
    let mut svc = landed(lb("web"), &write);
    svc.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    index.apply_service(svc);
    let out = index.flush(now());
    assert_eq!(
        service_writes(&out),
        [&ServiceWrite {
            key: key("web"),
            assignment: None
        }]
    );
    index.apply_service(lb("next"));
    let out = index.flush(now());
    assert!(
        service_writes(&out)[0].assignment.is_some(),
        "the IP is free"
    );
}

#[test]
fn restart_never_moves_an_assigned_ip() {
    let blue = pool("blue", 1, &["198.51.100.0/29"]);
    let mut index = Index::new(Settings::default());
    // "b" shows .0 and asks for another pool by name: it moves, but only
    // after "a", which shows .1, got its IP back.
    let shown = |name: &str, ip: &str| {
        landed(
            lb(name),
            &ServiceWrite {
                key: key(name),
                assignment: Some(Assignment {
                    pool: "blue".into(),
                    ips: vec![ip.parse().unwrap()],
                }),
            },
        )
    };
    let mut fresh = lb("0-fresh");
    fresh.metadata.annotations = Some(BTreeMap::new());
    index.reset_services(vec![
        fresh,
        shown("a", "198.51.100.1"),
        shown("c", "198.51.100.3"),
    ]);
    index.reset_pools(vec![blue]);
    index.seed();
    let out = index.flush(now());
    let writes = service_writes(&out);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].key, key("0-fresh"));
    assert_eq!(
        writes[0].assignment.as_ref().unwrap().ips,
        ["198.51.100.0".parse::<std::net::IpAddr>().unwrap()],
        "the fresh Service sorts first but gets a free IP, not a held one"
    );
    assert_eq!(
        index.assignment(&key("a")).unwrap().ips[0].to_string(),
        "198.51.100.1"
    );
}

#[test]
fn a_relist_releases_services_deleted_while_the_watch_was_down() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/32"])]);
    index.apply_service(lb("gone"));
    let write = service_writes(&index.flush(now()))[0].clone();
    index.apply_service(landed(lb("gone"), &write));
    index.reset_services(vec![lb("new")]);
    let out = index.flush(now());
    let writes = service_writes(&out);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].key, key("new"));
    assert!(writes[0].assignment.is_some());
    assert!(index.assignment(&key("gone")).is_none());
}

#[test]
fn an_exhausted_pool_fails_with_the_exact_reason_once() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.7/32"])]);
    index.apply_service(lb("a"));
    index.apply_service(lb("b"));
    let out = index.flush(now());
    assert_eq!(
        events(&out)[1],
        (
            "AllocationFailed",
            r#"Failed to allocate IP for "default/b": no available IPv4 IPs in any IPAddressPool this Service may use"#
                .to_string()
        )
    );
    assert_eq!(out.failures, ["no_available_ips"]);
    index.apply_service(lb("b"));
    let out = index.flush(now());
    assert!(events(&out).is_empty(), "the same failure is not repeated");
    // Deleting "a" frees the IP and the pending Service gets it.
    index.delete_service(&lb("a"));
    let out = index.flush(now());
    assert_eq!(service_writes(&out)[0].key, key("b"));
}

#[test]
fn shrinking_a_pool_clears_and_reassigns_with_a_clear_assignment_event() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/31"])]);
    index.apply_service(lb("a"));
    index.apply_service(lb("b"));
    let out = index.flush(now());
    for w in service_writes(&out) {
        let svc = lb(&w.key.name);
        index.apply_service(landed(svc, w));
    }
    index.flush(now());
    index.apply_pool(pool("blue", 1, &["198.51.100.1/32", "198.51.100.9/32"]));
    let out = index.flush(now());
    let evs = events(&out);
    assert_eq!(evs[0].0, "ClearAssignment");
    assert_eq!(
        evs[0].1,
        r#"current IP for "default/a" not allowed by config, will attempt for new IP assignment: IP 198.51.100.0 is no longer in IPAddressPool "blue" or any other pool"#
    );
    assert_eq!(
        evs[1],
        (
            "IPAllocated",
            r#"Assigned IP ["198.51.100.9"] from pool "blue""#.to_string()
        )
    );
    assert_eq!(
        index.assignment(&key("b")).unwrap().ips[0].to_string(),
        "198.51.100.1"
    );
}

#[test]
fn a_malformed_annotation_keeps_the_current_ip() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    index.apply_service(lb("web"));
    let write = service_writes(&index.flush(now()))[0].clone();
    let mut svc = landed(lb("web"), &write);
    svc.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("ferrolb.io/loadBalancerIPs".into(), "198.51.100.x".into());
    index.apply_service(svc);
    let out = index.flush(now());
    assert!(service_writes(&out).is_empty());
    assert_eq!(events(&out)[0].0, "AllocationFailed");
    assert!(
        events(&out)[0].1.contains(r#""198.51.100.x""#),
        "{:?}",
        events(&out)
    );
    assert_eq!(out.failures, ["malformed_annotation"]);
    assert!(index.assignment(&key("web")).is_some());
}

#[test]
fn an_unadvertised_pool_says_so_and_an_advertisement_fixes_it() {
    let mut index = seeded_with(vec![pool("blue", 1, &["198.51.100.0/30"])], vec![]);
    index.apply_service(lb("web"));
    let out = index.flush(now());
    // One Warning on the pool; the Service's own Event says it in one
    // sentence.
    assert_eq!(
        events(&out),
        [
            (
                "IPAllocated",
                r#"Assigned IP ["198.51.100.0"] from pool "blue"; no L2Advertisement selects pool "blue", so nothing announces it"#.to_string()
            ),
            (
                "NoL2Advertisement",
                "no L2Advertisement selects this pool: its IPs are assigned but not announced"
                    .to_string()
            ),
        ]
    );
    let status = out
        .updates
        .iter()
        .find_map(|u| match u {
            Update::Write(Write::Pool { status, .. }) => Some(status.clone()),
            _ => None,
        })
        .expect("pool status");
    assert_eq!((status.assigned_ipv4, status.available_ipv4), (1, 3));
    let adv = conditions::find(&status.conditions, TYPE_ADVERTISED).unwrap();
    assert_eq!(adv.reason, "NoL2Advertisement");
    assert_eq!(
        out.pools,
        [(
            "blue".to_string(),
            index.alloc.as_ref().unwrap().counts("blue").unwrap()
        )]
    );
    // A second Service of the pool: no second pool Event.
    index.apply_service(lb("api"));
    let again = index.flush(now());
    assert_eq!(
        events(&again).iter().map(|e| e.0).collect::<Vec<_>>(),
        ["IPAllocated"]
    );
    let mut ad = L2Advertisement::new("l2", Default::default());
    ad.metadata.namespace = Some("ferrolb-system".into());
    index.apply_advertisement(ad);
    let out = index.flush(now());
    let status = out
        .updates
        .iter()
        .find_map(|u| match u {
            Update::Write(Write::Pool { status, .. }) => Some(status.clone()),
            _ => None,
        })
        .expect("pool status");
    assert!(conditions::is_true(&status.conditions, TYPE_ADVERTISED));
}

#[test]
fn an_advertisement_naming_a_missing_pool_warns_once() {
    let mut index = seeded(vec![pool("blue", 1, &["198.51.100.0/30"])]);
    let mut ad = L2Advertisement::new("typo", Default::default());
    ad.spec.ip_address_pools = vec!["bleu".into()];
    index.apply_advertisement(ad);
    let out = index.flush(now());
    assert_eq!(
        events(&out),
        [(
            "UnknownPool",
            r#"IPAddressPool "bleu" named in ipAddressPools does not exist"#.to_string()
        )]
    );
    assert!(events(&index.flush(now())).is_empty());
}

mod infeasible;
