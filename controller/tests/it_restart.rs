//! A restart with 1,000 existing Services moves no IP.

mod support;

use std::collections::BTreeMap;

use futures::StreamExt as _;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use support::{eventually, lb6, Cluster};

async fn all_ips(cluster: &Cluster) -> BTreeMap<String, Vec<String>> {
    cluster
        .services("default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap(), support::ingress(s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_thousand_services_moves_no_ip() {
    let cluster = Cluster::start().await;
    cluster.pool("big", &["2001:db8:1::/116"]).await;
    let mut first = cluster.controller("first", &[]);
    futures::stream::iter(0..1000)
        .map(|i| {
            let svc = lb6("default", &format!("svc-{i:04}"));
            let cluster = &cluster;
            async move { cluster.create_service(&svc).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let ok = eventually(60, || async {
        all_ips(&cluster).await.values().all(|ips| ips.len() == 1)
    })
    .await;
    assert!(ok, "every Service got an IP\n{}", first.log());
    let before = all_ips(&cluster).await;
    let distinct: std::collections::BTreeSet<_> = before.values().collect();
    assert_eq!(distinct.len(), 1000, "no IP handed out twice");
    // Every Service's IPAllocated and the pool's NoL2Advertisement.
    let all_events = || async {
        let api: Api<Event> = Api::all(cluster.client.clone());
        api.list(&ListParams::default()).await.unwrap().items
    };
    let settled = eventually(30, || async { all_events().await.len() >= 1001 }).await;
    assert!(settled, "{} Events", all_events().await.len());
    let events_before: std::collections::BTreeSet<String> = all_events()
        .await
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();

    first.kill();
    // Free one IP while the controller is down, and add a Service: the new
    // one may take the freed IP, but nobody else moves.
    cluster.delete_service("default", "svc-0500").await;
    cluster.create_service(&lb6("default", "late")).await;
    let second = cluster.controller("second", &[]);
    let late = cluster.wait_any_ips("default", "late").await;
    assert_eq!(
        late, before["svc-0500"],
        "the freed IP is the lowest free one"
    );
    let after = all_ips(&cluster).await;
    for (name, ips) in &before {
        if name != "svc-0500" {
            assert_eq!(after.get(name), Some(ips), "{name} moved\n{}", second.log());
        }
    }
    let api = cluster.services("default");
    let count = api.list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(count, 1000);
    // The restart itself wrote no Event: the only new one is the late
    // Service's IPAllocated.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let new: Vec<Event> = all_events()
        .await
        .into_iter()
        .filter(|e| !events_before.contains(e.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let about: Vec<_> = new
        .iter()
        .map(|e| {
            (
                e.reason.clone(),
                e.regarding.as_ref().and_then(|r| r.name.clone()),
            )
        })
        .collect();
    assert_eq!(
        about,
        [(Some("IPAllocated".to_string()), Some("late".to_string()))],
        "{}",
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_survived_without_reassigning() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/29"]).await;
    let ctl = cluster.controller("a", &[]);
    for name in ["a", "b", "c"] {
        cluster.create_service(&support::lb("default", name)).await;
    }
    // Every assignment must have landed before the outage: the status
    // writer writes different Services concurrently, so c showing its IP
    // does not mean a and b show theirs.
    for (name, ip) in [
        ("a", "198.51.100.0"),
        ("b", "198.51.100.1"),
        ("c", "198.51.100.2"),
    ] {
        cluster.wait_ips("default", name, &[ip]).await;
    }
    cluster.server.stop().await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    cluster.server.restart().await.expect("server back");
    // History is gone: the watchers must relist, which is a reset.
    cluster.server.compact();
    cluster.server.drop_watches();
    cluster.delete_service("default", "a").await;
    cluster.create_service(&support::lb("default", "d")).await;
    cluster.wait_ips("default", "d", &["198.51.100.0"]).await;
    assert_eq!(cluster.ips("default", "b").await, ["198.51.100.1"]);
    assert_eq!(cluster.ips("default", "c").await, ["198.51.100.2"]);
    assert!(ctl.log().contains("watch failed"), "{}", ctl.log());
}
