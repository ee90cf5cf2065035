//! What an operator checks, against the real binary: `/healthz` and
//! `/readyz` around an API server outage, `/metrics` after assignments and
//! refusals, pools restricted to namespaces, `--lb-class`, and a malformed
//! annotation that costs nobody else anything.

mod support;

use std::collections::BTreeMap;

use ferrolb_crds::annotations::{ADDRESS_POOL, IP_ALLOCATED_FROM_POOL, LOAD_BALANCER_IPS};
use ferrolb_crds::{IPAddressPool, IPAddressPoolSpec, ServiceAllocation};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use support::http::{get, http_addr, metrics, sample, wait_sample, wait_sample_at_least, JSON_LOG};
use support::{eventually, lb, Cluster, Controller, SYSTEM_NS};

/// Creates a Namespace with labels.
async fn namespace(cluster: &Cluster, name: &str, labels: &[(&str, &str)]) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// Sets a Namespace's `team` label.
async fn relabel(cluster: &Cluster, name: &str, team: &str) {
    let patch = serde_json::json!({"metadata": {"labels": {"team": team}}});
    Api::<Namespace>::all(cluster.client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("namespace relabelled");
}

/// Creates a pool with a full spec.
async fn pool_with(cluster: &Cluster, name: &str, spec: IPAddressPoolSpec) {
    let pool = IPAddressPool {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(SYSTEM_NS.into()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    cluster
        .pools()
        .create(&PostParams::default(), &pool)
        .await
        .expect("pool created");
}

fn with_annotation(mut svc: Service, key: &str, value: &str) -> Service {
    svc.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    svc
}

fn with_class(mut svc: Service, class: &str) -> Service {
    svc.spec.as_mut().expect("spec").load_balancer_class = Some(class.into());
    svc
}

/// Asserts the controller never touched the Service: no ingress, no pool
/// annotation, no Event.
async fn assert_untouched(cluster: &Cluster, ns: &str, name: &str, ctl: &Controller) {
    let svc = cluster.services(ns).get(name).await.expect("service");
    assert!(support::ingress(&svc).is_empty(), "{ns}/{name} has an IP");
    assert!(
        !svc.annotations().contains_key(IP_ALLOCATED_FROM_POOL),
        "{ns}/{name} annotated: {:?}",
        svc.annotations()
    );
    let events = cluster.events(ns, name).await;
    assert!(
        events.is_empty(),
        "{ns}/{name} got Events {events:?}\n{}",
        ctl.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_synced_caches_while_healthz_answers_throughout() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/30"]).await;
    cluster.create_service(&lb("default", "web")).await;

    // Start with the API server down: nothing can be listed.
    cluster.server.stop().await;
    let ctl = cluster.controller("a", JSON_LOG);
    let addr = http_addr(&ctl).await;
    assert!(
        ctl.wait_log("watch failed; retrying with backoff").await,
        "{}",
        ctl.log()
    );
    assert_eq!(
        get(addr, "/readyz").await,
        Some((503, "not ready: caches not synced".into()))
    );
    assert_eq!(get(addr, "/healthz").await, Some((200, "ok".into())));
    assert!(!ctl.log().contains("caches synced"), "{}", ctl.log());

    // Back up: ready once listed and seeded; alive at every look.
    cluster.server.restart().await.expect("server back");
    let ok = eventually(20, || async {
        assert_eq!(get(addr, "/healthz").await, Some((200, "ok".into())));
        get(addr, "/readyz").await == Some((200, "ready".into()))
    })
    .await;
    assert!(ok, "never ready\n{}", ctl.log());
    let log = ctl.log();
    assert!(log.contains("caches synced"), "{log}");
    assert!(log.contains("leading: seeded"), "{log}");
    cluster.wait_ips("default", "web", &["198.51.100.0"]).await;
    assert_eq!(get(addr, "/readyz").await, Some((200, "ready".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_addresses_per_pool_and_refusals_by_reason() {
    let cluster = Cluster::start().await;
    cluster.pool("ten", &["198.51.100.10-198.51.100.19"]).await;
    // Only for Services that name it.
    pool_with(
        &cluster,
        "one",
        IPAddressPoolSpec {
            addresses: vec!["203.0.113.1/32".into()],
            auto_assign: false,
            ..Default::default()
        },
    )
    .await;
    let ctl = cluster.controller("a", JSON_LOG);
    let addr = http_addr(&ctl).await;

    for i in 0..3 {
        let name = format!("s{i}");
        cluster.create_service(&lb("default", &name)).await;
        let want = format!("198.51.100.{}", 10 + i);
        cluster.wait_ips("default", &name, &[want.as_str()]).await;
    }
    let in_use_v4 = r#"ferrolb_address_pool_addresses_in_use{pool="ten",family="ipv4"}"#;
    wait_sample(addr, in_use_v4, 3.0).await;
    let page = metrics(addr).await;
    for (series, want) in [
        (
            r#"ferrolb_address_pool_addresses_total{pool="ten",family="ipv4"}"#,
            10.0,
        ),
        (
            r#"ferrolb_address_pool_addresses_in_use{pool="ten",family="ipv6"}"#,
            0.0,
        ),
        (
            r#"ferrolb_address_pool_addresses_total{pool="ten",family="ipv6"}"#,
            0.0,
        ),
        (
            r#"metallb_allocator_addresses_in_use_total{pool="ten"}"#,
            3.0,
        ),
        (r#"metallb_allocator_addresses_total{pool="ten"}"#, 10.0),
        (
            r#"ferrolb_address_pool_addresses_in_use{pool="one",family="ipv4"}"#,
            0.0,
        ),
        (
            r#"ferrolb_address_pool_addresses_total{pool="one",family="ipv4"}"#,
            1.0,
        ),
        (r#"metallb_allocator_addresses_total{pool="one"}"#, 1.0),
    ] {
        assert_eq!(sample(&page, series), Some(want), "{series}\n{page}");
    }
    assert!(
        !page.contains("ferrolb_allocation_failures_total{"),
        "no refusal yet\n{page}"
    );

    // A Service naming a full pool: `pool_exhausted`.
    let pinned = |name| with_annotation(lb("default", name), ADDRESS_POOL, "one");
    cluster.create_service(&pinned("pinned-1")).await;
    cluster
        .wait_ips("default", "pinned-1", &["203.0.113.1"])
        .await;
    cluster.create_service(&pinned("pinned-2")).await;
    let note = cluster
        .wait_event("default", "pinned-2", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "default/pinned-2": no available IPv4 IPs in pool "one""#
    );
    wait_sample_at_least(
        addr,
        r#"ferrolb_allocation_failures_total{reason="pool_exhausted"}"#,
        1.0,
    )
    .await;
    wait_sample(
        addr,
        r#"metallb_allocator_addresses_in_use_total{pool="one"}"#,
        1.0,
    )
    .await;

    // Automatic assignment with every pool full is a different reason:
    // `no_available_ips`.
    for i in 3..10 {
        cluster
            .create_service(&lb("default", &format!("s{i}")))
            .await;
    }
    cluster.wait_ips("default", "s9", &["198.51.100.19"]).await;
    cluster.create_service(&lb("default", "s10")).await;
    let note = cluster
        .wait_event("default", "s10", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "default/s10": no available IPv4 IPs in any IPAddressPool this Service may use"#
    );
    wait_sample(addr, in_use_v4, 10.0).await;
    wait_sample(
        addr,
        r#"metallb_allocator_addresses_in_use_total{pool="ten"}"#,
        10.0,
    )
    .await;
    wait_sample_at_least(
        addr,
        r#"ferrolb_allocation_failures_total{reason="no_available_ips"}"#,
        1.0,
    )
    .await;
    let page = metrics(addr).await;
    assert!(
        page.contains(r#"ferrolb_reconcile_duration_seconds_count{kind="batch"}"#),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_listing_namespaces_serves_only_those_namespaces() {
    let cluster = Cluster::start().await;
    namespace(&cluster, "team-a", &[]).await;
    namespace(&cluster, "team-b", &[]).await;
    pool_with(
        &cluster,
        "a-only",
        IPAddressPoolSpec {
            addresses: vec!["198.51.100.0/30".into()],
            service_allocation: Some(ServiceAllocation {
                namespaces: vec!["team-a".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let ctl = cluster.controller("a", &[]);

    cluster.create_service(&lb("team-a", "web")).await;
    cluster.wait_ips("team-a", "web", &["198.51.100.0"]).await;
    cluster.create_service(&lb("team-b", "web")).await;
    let note = cluster
        .wait_event("team-b", "web", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "team-b/web": no IPAddressPool matches this Service (none with autoAssign allows it and has IPv4 addresses)"#
    );
    assert!(cluster.ips("team-b", "web").await.is_empty());

    // An open pool appears: the pending Service is retried and gets it;
    // team-a stays where it is.
    cluster.pool("open", &["203.0.113.0/30"]).await;
    cluster.wait_ips("team-b", "web", &["203.0.113.0"]).await;
    assert_eq!(cluster.ips("team-a", "web").await, ["198.51.100.0"]);
    // A second team-a Service still prefers its restricted pool.
    cluster.create_service(&lb("team-a", "api")).await;
    cluster.wait_ips("team-a", "api", &["198.51.100.1"]).await;
    let svc = cluster.services("team-b").get("web").await.unwrap();
    assert_eq!(
        svc.annotations()
            .get(IP_ALLOCATED_FROM_POOL)
            .map(String::as_str),
        Some("open"),
        "{}",
        ctl.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_selecting_namespaces_by_label_follows_relabelling() {
    let cluster = Cluster::start().await;
    namespace(&cluster, "team-a", &[("team", "a")]).await;
    namespace(&cluster, "team-b", &[("team", "b")]).await;
    pool_with(
        &cluster,
        "team-a-pool",
        IPAddressPoolSpec {
            addresses: vec!["198.51.100.0/30".into()],
            service_allocation: Some(ServiceAllocation {
                namespace_selectors: vec![LabelSelector {
                    match_labels: Some(BTreeMap::from([("team".into(), "a".into())])),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let ctl = cluster.controller("a", &[]);

    cluster.create_service(&lb("team-a", "web")).await;
    cluster.wait_ips("team-a", "web", &["198.51.100.0"]).await;
    cluster.create_service(&lb("team-b", "web")).await;
    let note = cluster
        .wait_event("team-b", "web", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "team-b/web": no IPAddressPool matches this Service (none with autoAssign allows it and has IPv4 addresses)"#
    );

    // team-b joins team a: its pending Service is re-evaluated and served.
    relabel(&cluster, "team-b", "a").await;
    cluster.wait_ips("team-b", "web", &["198.51.100.1"]).await;
    let note = cluster.wait_event("team-b", "web", "IPAllocated").await;
    assert_eq!(
        note,
        r#"Assigned IP ["198.51.100.1"] from pool "team-a-pool"; no L2Advertisement selects pool "team-a-pool", so nothing announces it"#
    );

    // team-a leaves: its Service's IP is no longer allowed, so it is
    // released and, with no other pool, the Service stays without one
    // (MetalLB also re-evaluates on a namespace change), with a
    // ClearAssignment Event that says why.
    relabel(&cluster, "team-a", "c").await;
    cluster.wait_ips("team-a", "web", &[]).await;
    let note = cluster.wait_event("team-a", "web", "ClearAssignment").await;
    assert!(
        note.starts_with(r#"current IP for "team-a/web" not allowed by config, will attempt for new IP assignment: "#),
        "{note}"
    );
    let ok = eventually(20, || async {
        let svc = cluster.services("team-a").get("web").await.unwrap();
        !svc.annotations().contains_key(IP_ALLOCATED_FROM_POOL)
    })
    .await;
    assert!(ok, "pool annotation removed\n{}", ctl.log());
    let note = cluster
        .wait_event("team-a", "web", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "team-a/web": no IPAddressPool matches this Service (none with autoAssign allows it and has IPv4 addresses)"#
    );
    assert_eq!(cluster.ips("team-b", "web").await, ["198.51.100.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_lb_class_a_service_of_another_class_is_never_touched() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/30"]).await;
    let ctl = cluster.controller("a", &[]);
    cluster
        .create_service(&with_class(lb("default", "other"), "other.io/lb"))
        .await;
    // A later Service of ours: once it is served, "other" has been seen.
    cluster.create_service(&lb("default", "ours")).await;
    cluster.wait_ips("default", "ours", &["198.51.100.0"]).await;
    cluster.wait_event("default", "ours", "IPAllocated").await;
    assert_untouched(&cluster, "default", "other", &ctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lb_class_only_services_of_that_class_get_ips() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/30"]).await;
    let ctl = cluster.controller("a", &["--lb-class", "ferrolb.io/lb"]);
    cluster.create_service(&lb("default", "classless")).await;
    cluster
        .create_service(&with_class(lb("default", "other"), "other.io/lb"))
        .await;
    cluster
        .create_service(&with_class(lb("default", "ours"), "ferrolb.io/lb"))
        .await;
    cluster.wait_ips("default", "ours", &["198.51.100.0"]).await;
    let note = cluster.wait_event("default", "ours", "IPAllocated").await;
    assert_eq!(
        note,
        r#"Assigned IP ["198.51.100.0"] from pool "blue"; no L2Advertisement selects pool "blue", so nothing announces it"#
    );
    assert_untouched(&cluster, "default", "classless", &ctl).await;
    assert_untouched(&cluster, "default", "other", &ctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_annotation_is_quoted_and_other_services_are_still_served() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/30"]).await;
    let ctl = cluster.controller("a", JSON_LOG);
    let addr = http_addr(&ctl).await;
    cluster
        .create_service(&with_annotation(
            lb("default", "bad"),
            LOAD_BALANCER_IPS,
            "not-an-ip",
        ))
        .await;
    let note = cluster
        .wait_event("default", "bad", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "default/bad": annotation "ferrolb.io/loadBalancerIPs" has value "not-an-ip", and "not-an-ip" is not an IP address"#
    );
    wait_sample_at_least(
        addr,
        r#"ferrolb_allocation_failures_total{reason="malformed_annotation"}"#,
        1.0,
    )
    .await;

    cluster.create_service(&lb("default", "good")).await;
    cluster.wait_ips("default", "good", &["198.51.100.0"]).await;
    assert!(cluster.ips("default", "bad").await.is_empty());

    // Fixing the typo is enough: the Service is served.
    let patch =
        serde_json::json!({"metadata": {"annotations": {LOAD_BALANCER_IPS: "198.51.100.3"}}});
    cluster
        .services("default")
        .patch("bad", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    cluster.wait_ips("default", "bad", &["198.51.100.3"]).await;
    let failed = cluster
        .events("default", "bad")
        .await
        .into_iter()
        .filter(|e| e.1 == "AllocationFailed")
        .count();
    assert_eq!(failed, 1, "reported once\n{}", ctl.log());
}
