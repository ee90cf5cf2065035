//! The real controller binary against the API test server: a Service's
//! life, type changes, other classes, exact Event and status texts, and a
//! request that cannot be met.

mod support;

use ferrolb_crds::annotations::{IP_ALLOCATED_FROM_POOL, LOAD_BALANCER_IPS};
use ferrolb_crds::conditions::{self, TYPE_ADVERTISED, TYPE_VALID};
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use support::{eventually, lb, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_an_ip_keeps_it_and_releases_it_on_delete_and_type_change() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/30"]).await;
    let _ctl = cluster.controller("a", &[]);

    cluster.create_service(&lb("default", "web")).await;
    cluster.wait_ips("default", "web", &["198.51.100.0"]).await;
    let svc = cluster.services("default").get("web").await.unwrap();
    assert_eq!(
        svc.annotations()
            .get(IP_ALLOCATED_FROM_POOL)
            .map(String::as_str),
        Some("blue")
    );
    let ingress = &svc.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0];
    assert_eq!(ingress.ip_mode.as_deref(), Some("VIP"));
    let note = cluster.wait_event("default", "web", "IPAllocated").await;
    assert_eq!(
        note,
        r#"Assigned IP ["198.51.100.0"] from pool "blue"; no L2Advertisement selects pool "blue", so nothing announces it"#
    );

    // An unrelated edit keeps the IP.
    let patch = serde_json::json!({"metadata": {"labels": {"tier": "front"}}});
    cluster
        .services("default")
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    cluster.create_service(&lb("default", "api")).await;
    cluster.wait_ips("default", "api", &["198.51.100.1"]).await;
    assert_eq!(cluster.ips("default", "web").await, ["198.51.100.0"]);

    // Delete frees .0 for the next Service.
    cluster.delete_service("default", "web").await;
    cluster.create_service(&lb("default", "next")).await;
    cluster.wait_ips("default", "next", &["198.51.100.0"]).await;

    // A type change away from LoadBalancer clears ingress and annotation.
    let patch = serde_json::json!({"spec": {"type": "ClusterIP"}});
    cluster
        .services("default")
        .patch("api", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    cluster.wait_ips("default", "api", &[]).await;
    let ok = eventually(20, || async {
        let svc = cluster.services("default").get("api").await.unwrap();
        !svc.annotations().contains_key(IP_ALLOCATED_FROM_POOL)
    })
    .await;
    assert!(ok, "annotation removed");
    // Only one IPAllocated Event for "next", never repeated.
    let allocated: Vec<_> = cluster
        .events("default", "next")
        .await
        .into_iter()
        .filter(|e| e.1 == "IPAllocated")
        .collect();
    assert_eq!(allocated.len(), 1, "{allocated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_reported_exactly_and_another_class_is_left_alone() {
    let cluster = Cluster::start().await;
    cluster.pool("tiny", &["203.0.113.7/32"]).await;
    let ctl = cluster.controller("a", &[]);
    cluster.create_service(&lb("default", "first")).await;
    cluster.wait_ips("default", "first", &["203.0.113.7"]).await;
    cluster.create_service(&lb("default", "second")).await;
    let note = cluster
        .wait_event("default", "second", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "default/second": no available IPv4 IPs in any IPAddressPool this Service may use"#
    );
    let mut other = lb("default", "other");
    other.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    cluster.create_service(&other).await;

    // The pool's status counts and conditions.
    let ok = eventually(20, || async {
        let pool = cluster.pools().get("tiny").await.unwrap();
        pool.status.is_some_and(|s| {
            s.assigned_ipv4 == 1
                && s.available_ipv4 == 0
                && conditions::is_true(&s.conditions, TYPE_VALID)
                && conditions::find(&s.conditions, TYPE_ADVERTISED)
                    .is_some_and(|c| c.reason == "NoL2Advertisement")
        })
    })
    .await;
    assert!(
        ok,
        "pool status: {:?}",
        cluster.pools().get("tiny").await.unwrap().status
    );

    // Deleting the first lets the pending one in; "other" is never touched.
    cluster.delete_service("default", "first").await;
    cluster
        .wait_ips("default", "second", &["203.0.113.7"])
        .await;
    let other = cluster.services("default").get("other").await.unwrap();
    assert!(support::ingress(&other).is_empty());
    assert!(cluster.events("default", "other").await.is_empty());
    let failed: Vec<_> = cluster
        .events("default", "second")
        .await
        .into_iter()
        .filter(|e| e.1 == "AllocationFailed")
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "emitted once, not per resync: {failed:?}\n{}",
        ctl.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_be_met_keeps_the_ip_with_one_warning_then_moves() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/30"]).await;
    let ctl = cluster.controller("a", &[]);
    cluster.create_service(&lb("default", "web")).await;
    cluster.wait_ips("default", "web", &["198.51.100.0"]).await;
    cluster.create_service(&lb("default", "other")).await;
    cluster
        .wait_ips("default", "other", &["198.51.100.1"])
        .await;

    // web asks for other's IP: it keeps its own, with one Warning.
    let web = cluster.services("default");
    let merge = |patch: serde_json::Value| {
        let web = web.clone();
        async move {
            web.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap()
        }
    };
    merge(serde_json::json!({"metadata": {"annotations": {LOAD_BALANCER_IPS: "198.51.100.1"}}}))
        .await;
    let note = cluster
        .wait_event("default", "web", "RequestNotSatisfiable")
        .await;
    assert_eq!(
        note,
        r#"Cannot give "default/web" requested IP ["198.51.100.1"]: IP 198.51.100.1 is already used by default/other and sharing is not allowed: default/other has no sharing key; it keeps IP ["198.51.100.0"] from pool "blue" until the request can be met"#
    );
    assert_eq!(cluster.ips("default", "web").await, ["198.51.100.0"]);
    // Unrelated edits retry nothing and repeat nothing.
    merge(serde_json::json!({"metadata": {"labels": {"tier": "front"}}})).await;
    cluster.create_service(&lb("default", "third")).await;
    cluster
        .wait_ips("default", "third", &["198.51.100.2"])
        .await;
    assert_eq!(cluster.ips("default", "web").await, ["198.51.100.0"]);

    // other goes: web moves to the IP it asked for.
    cluster.delete_service("default", "other").await;
    cluster.wait_ips("default", "web", &["198.51.100.1"]).await;
    let events = cluster.events("default", "web").await;
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e.1 == "RequestNotSatisfiable")
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}\n{}", ctl.log());
    assert_eq!(warnings[0].0, "Warning");
    let ok = eventually(20, || async {
        cluster
            .events("default", "web")
            .await
            .iter()
            .any(|e| e.1 == "IPAllocated" && e.2.starts_with(r#"Assigned IP ["198.51.100.1"]"#))
    })
    .await;
    assert!(ok, "an IPAllocated for the move\n{}", ctl.log());
}
