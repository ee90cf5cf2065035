//! RBAC coverage: the real controller and speakers, each sending its own
//! ServiceAccount's name as its token, go through the API calls a cluster
//! makes them do (Services from pools, dual stack, sharing, a failed
//! allocation, a request that cannot be met, Events and their repeats,
//! the Lease, pool status, EndpointSlices, Nodes, the memberlist Secret,
//! ServiceL2Status records created, moved and deleted).
//! The API test server logs every call with kube-apiserver's
//! authorization attributes; the RBAC of the rendered `deploy/ferrolb.yaml`
//! must grant each call, and each of its rules must be used by some call.
//! Root only, like every lab test.

// Shared with the other lab tests, which use the helpers this one does not.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::cluster::{Cluster, Options, CONTROLLER_USER, SPEAKER_USER};
use ferrolb_lab::l2status;
use ferrolb_lab::objects::{Families, ServiceSpec};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Patch, PatchParams};
use kube::Api;
use kube_test_server::rbac::{self, Rbac};
use serde_json::json;

const PORT: u16 = 8080;

/// Permissions deploy/ferrolb.yaml grants that no lab scenario reaches,
/// as `verb group/resource` (`core` for the core group), each with the
/// reason. Keep it near empty: a permission the binaries
/// never need is removed from the RBAC, not listed here.
const ALLOWED_UNUSED: [(&str, &str); 0] = [];

/// The memberlist Secret the controller creates when it is missing.
const MEMBERLIST_SECRET: &str = "ferrolb-memberlist";

fn v4(name: &str, port: u16) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name, port);
    spec.families = Families::V4;
    spec
}

fn v4_of(ips: &[IpAddr]) -> IpAddr {
    *ips.iter().find(|i| i.is_ipv4()).expect("an IPv4 address")
}

/// Waits until `check` holds, polling every 50 ms; panics with `what`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drives the calls: returns once every scenario has been seen through,
/// with whether the controller created the memberlist Secret.
async fn exercise(c: &Cluster) -> bool {
    let limit = Duration::from_secs(20);
    // Dual stack from the default pool (assignment, annotation, status,
    // pool status, IPAllocated and nodeAssigned Events).
    c.create_service(&ServiceSpec::new("dual", PORT), None)
        .await
        .unwrap();
    let ips = c.wait_ips("dual", 2, limit).await.unwrap();
    c.wait_answer(v4_of(&ips), PORT, limit).await.unwrap();

    // A named pool and a requested address.
    let mut pinned = v4("pinned", PORT);
    pinned.pool = Some(ferrolb_lab::topology::POOL_NAME.into());
    pinned.requested_ips = vec!["198.51.100.77".parse().unwrap()];
    c.create_service(&pinned, None).await.unwrap();
    c.wait_ips("pinned", 1, limit).await.unwrap();

    // Two Services sharing one address.
    for (name, port) in [("share-a", 8081), ("share-b", 8082)] {
        let mut spec = v4(name, port);
        spec.sharing_key = Some("rbac".into());
        spec.requested_ips = vec!["198.51.100.78".parse().unwrap()];
        c.create_service(&spec, None).await.unwrap();
        c.wait_ips(name, 1, limit).await.unwrap();
    }

    // An address no pool holds: AllocationFailed.
    let mut refused = v4("refused", PORT);
    refused.requested_ips = vec!["203.0.113.200".parse().unwrap()];
    c.create_service(&refused, None).await.unwrap();
    eventually("an AllocationFailed Event for refused", limit, || async {
        c.service_events("refused")
            .await
            .is_ok_and(|e| e.iter().any(|(_, reason, _)| reason == "AllocationFailed"))
    })
    .await;

    // The refused Service is fixed, then asks again for the address no
    // pool holds: it keeps its new one and is warned (RequestNotSatisfiable).
    // It withdraws the request (nothing to say) and makes it again: the
    // controller counts the repeat in the first Warning's series.
    let services: Api<Service> = Api::namespaced(c.kube(), "default");
    for (ip, reason, want) in [
        ("198.51.100.79", Some("IPAllocated"), 1),
        ("203.0.113.200", Some("RequestNotSatisfiable"), 1),
        ("198.51.100.79", None, 0),
        ("203.0.113.200", Some("RequestNotSatisfiable"), 2),
    ] {
        let patch = json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": ip}}});
        services
            .patch("refused", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        // The controller sees the patches in order: a step with nothing to
        // wait for needs no wait.
        let Some(reason) = reason else { continue };
        eventually(&format!("{reason} #{want} for refused"), limit, || async {
            repeated(c, "refused", reason, want).await
        })
        .await;
    }

    // externalTrafficPolicy Local: the ready endpoint moves away and back,
    // so node-3's speaker announces the same Service twice (its Event
    // recorder patches the repeated Event instead of creating one).
    let mut local = v4("local", PORT);
    local.local = true;
    c.create_service(&local, Some(&["node-3"])).await.unwrap();
    c.wait_ips("local", 1, limit).await.unwrap();
    for (node, seen) in [("node-3", 1), ("node-2", 1), ("node-3", 2)] {
        c.set_endpoint_nodes("local", PORT, false, &[node])
            .await
            .unwrap();
        eventually(
            &format!("{seen} nodeAssigned Event(s) from {node} for local"),
            limit,
            || async {
                c.node_assigned_events("local")
                    .await
                    .is_ok_and(|e| e.iter().filter(|(n, _)| n == node).count() >= seen)
                    || repeated_event(c, "local", node).await
            },
        )
        .await;
    }

    // A deletion releases the address (pool status changes again) and
    // the Service's record goes (its janitor deletes it: the test server
    // has no garbage collector). The owner writes the record once it held
    // the Service for 5 s.
    l2status::wait_record(c, "pinned", "pinned's record", limit, |r| r.is_some())
        .await
        .unwrap();
    c.delete_service("pinned").await.unwrap();
    l2status::wait_no_record(c, "pinned", limit).await.unwrap();

    // The controller creates the speakers' gossip key when it is missing;
    // a missing Secret is reported with the coverage, not before it.
    let secrets: Api<Secret> = Api::namespaced(c.kube(), ferrolb_lab::topology::SYSTEM_NS);
    let deadline = Instant::now() + limit;
    let secret_created = loop {
        if let Ok(Some(_)) = secrets.get_opt(MEMBERLIST_SECRET).await {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // At least one Lease renewal after all that.
    tokio::time::sleep(Duration::from_secs(5)).await;
    secret_created
}

/// Whether Events with `reason` about `service` count at least `times`
/// occurrences (new objects plus series counts).
async fn repeated(c: &Cluster, service: &str, reason: &str, times: i32) -> bool {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.kube(), "default");
    api.list(&Default::default()).await.is_ok_and(|l| {
        let n: i32 = l
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service)
            })
            .map(|e| e.series.as_ref().map_or(1, |s| s.count))
            .sum();
        n >= times
    })
}

/// Whether `node`'s speaker already patched a repeated nodeAssigned Event
/// about `service` (a series: the Event list still shows one Event).
async fn repeated_event(c: &Cluster, service: &str, node: &str) -> bool {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.kube(), "default");
    api.list(&Default::default()).await.is_ok_and(|l| {
        l.items.iter().any(|e| {
            e.reason.as_deref() == Some("nodeAssigned")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service)
                && e.note.as_deref().is_some_and(|n| n.contains(node))
                && e.series.as_ref().is_some_and(|s| s.count >= 2)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn the_rendered_rbac_grants_every_call_and_nothing_unused() {
    const TEST: &str = "the_rendered_rbac_grants_every_call_and_nothing_unused";
    let opts = Options {
        prefix: "flbrb".into(),
        record_requests: true,
        ..Options::default()
    };
    let (_g, mut c) = common::lab_with(TEST, opts).await;
    let secret_created = exercise(&c).await;
    assert!(c.dead_children().is_empty(), "{:?}", c.dead_children());

    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/ferrolb.yaml");
    let yaml = std::fs::read_to_string(manifest).expect("deploy/ferrolb.yaml");
    let rbac = Rbac::from_yaml(&yaml).expect("RBAC objects parse");
    assert_eq!(
        rbac.subjects(),
        BTreeSet::from([CONTROLLER_USER.to_owned(), SPEAKER_USER.to_owned()]),
        "the lab runs the binaries as the ServiceAccounts the manifest binds"
    );

    let log = c.server().requests();
    // Discovery, /version and the like are granted to every authenticated
    // user by the default ClusterRoles system:discovery and
    // system:public-info-viewer, not by ferrolb's.
    let (resource, other): (Vec<_>, Vec<_>) = log.iter().partition(|r| r.info.resource_request);
    for user in [CONTROLLER_USER, SPEAKER_USER] {
        let calls: BTreeSet<String> = resource
            .iter()
            .filter(|r| r.user.as_deref() == Some(user))
            .map(|r| rbac::describe(&r.info))
            .collect();
        assert!(!calls.is_empty(), "no call logged for {user}");
        println!("{user} made {} distinct calls:", calls.len());
        for call in &calls {
            println!("  {call}");
        }
        let discovery: BTreeSet<&str> = other
            .iter()
            .filter(|r| r.user.as_deref() == Some(user))
            .map(|r| r.info.path.as_str())
            .collect();
        if !discovery.is_empty() {
            println!("  non-resource (default ClusterRoles): {discovery:?}");
        }
    }

    let coverage = rbac.coverage(resource.iter().copied());
    let denied: Vec<String> = coverage.denied.iter().map(ToString::to_string).collect();
    let unused: Vec<String> = coverage
        .unused
        .iter()
        .filter(|p| {
            let group = if p.api_group.is_empty() {
                "core"
            } else {
                &p.api_group
            };
            let key = format!("{} {group}/{}", p.verb, p.resource);
            !ALLOWED_UNUSED.iter().any(|(k, _)| *k == key)
        })
        .map(ToString::to_string)
        .collect();
    assert!(
        denied.is_empty() && unused.is_empty() && secret_created,
        "deploy/ferrolb.yaml (from deploy/base/rbac-*.yaml) and the binaries disagree.\n\
         Calls no rule grants (a 403 on a real cluster):\n  {}\n\
         Permissions no call used (remove them from deploy/base, then scripts/render-deploy):\n  {}\n\
         The controller created Secret {MEMBERLIST_SECRET}: {secret_created}",
        denied.join("\n  "),
        unused.join("\n  ")
    );
}
