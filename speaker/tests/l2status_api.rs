//! ServiceL2Status records written by the daemon against the in-process
//! API test server (no root): the owner alone writes a Service's record,
//! once per ownership change and never on a restart, a new owner takes
//! it over in one request, and the record goes when nobody announces the
//! Service any more or the Service is deleted.

mod common;

use common::{set_ingress, setup, speaker, wait_for, TestResult, HOLD, NS, VIP};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Desired, Verdict};
use ferrolb_core::election;
use ferrolb_crds::ServiceL2Status;
use ferrolb_speaker::daemon::{l2status, watch as watches};
use ferrolb_speaker::transport::memory::Hub;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use kube::Client;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A client of `server` whose requests the log attributes to `user`.
async fn client_as(
    server: &kube_test_server::TestServer,
    user: &str,
) -> Result<Client, Box<dyn std::error::Error>> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_with_token(user))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// `(user, verb)` of every write to a ServiceL2Status, in order.
fn record_writes(server: &kube_test_server::TestServer) -> Vec<(String, String)> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.info.resource == "servicel2statuses")
        .filter(|r| !matches!(r.info.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| (r.user.unwrap_or_default(), r.info.verb))
        .collect()
}

/// Waits (at most 10 s) until `check` holds for web's record.
async fn wait_record(
    client: &Client,
    what: &str,
    check: impl Fn(Option<&ServiceL2Status>) -> bool,
) -> Result<Option<ServiceL2Status>, Box<dyn std::error::Error>> {
    let api = Api::<ServiceL2Status>::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let record = api.get_opt("web").await?;
        if check(record.as_ref()) {
            return Ok(record);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}: {record:#?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(s: &[(&str, &str)]) -> Vec<(String, String)> {
    s.iter()
        .map(|(u, v)| ((*u).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn the_owner_alone_writes_the_record_once_per_change_and_the_janitor_deletes_it() -> TestResult
{
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let client = server.client().await?;
    setup(&client).await?;
    server.record_requests(true);
    let mut tasks = JoinSet::new();
    let watched = watches::spawn(&client, NS, None, &mut tasks);
    let both = BTreeSet::from(["node-a".to_string(), "node-b".to_string()]);
    let (live_tx, live) = watch::channel(both.clone());
    let hub = Hub::new();
    let mut start = |node: &'static str, mac: u8, records: Client| {
        speaker(
            node,
            mac,
            &hub,
            &client,
            &watched,
            &live,
            &mut tasks,
            Some(records),
        )
    };
    let a = start("node-a", 0xa, client_as(&server, "node-a").await?)?;
    let b = start("node-b", 0xb, client_as(&server, "node-b").await?)?;

    let vip: IpAddr = VIP.parse()?;
    let owner = election::elect(vip, ["node-a", "node-b"]).ok_or("no owner")?;
    let other = if owner == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    let web = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await?;

    // The owner creates the record: node, interface, IP, the Service it
    // is about, found by MetalLB's labels, owned by the Service.
    let first = wait_record(&client, "the owner's record", |r| {
        r.and_then(ServiceL2Status::node) == Some(owner)
    })
    .await?
    .ok_or("no record")?;
    let status = first.status.clone().ok_or("no status")?;
    assert_eq!(first.interface_names(), ["eth0"]);
    assert_eq!(status.ips, [VIP]);
    assert_eq!(
        (
            status.service_name.as_str(),
            status.service_namespace.as_str()
        ),
        ("web", "default")
    );
    let labels = first.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("ferrolb.io/node").map(String::as_str),
        Some(owner)
    );
    assert_eq!(
        labels.get("ferrolb.io/service-name").map(String::as_str),
        Some("web")
    );
    let owners = first.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), Some(owners[0].uid.clone())),
        ("Service", web.metadata.uid.clone())
    );
    tokio::time::sleep(HOLD * 3).await;
    assert_eq!(record_writes(&server), names(&[(owner, "create")]));

    // Both speakers restart with nothing changed: nothing is written.
    a.stop();
    b.stop();
    let mut a = start("node-a", 0xa, client_as(&server, "node-a").await?)?;
    let mut b = start("node-b", 0xb, client_as(&server, "node-b").await?)?;
    let owned_by = |node: &'static str| {
        move |d: &Desired| {
            matches!(d.services.get(&ObjectKey::new("default", "web")).map(|s| &s.verdict),
                     Some(Verdict::Owner { node: n, .. }) if n == node)
        }
    };
    wait_for(
        &mut a,
        "node-a to decide after its restart",
        owned_by(owner),
    )
    .await?;
    wait_for(
        &mut b,
        "node-b to decide after its restart",
        owned_by(owner),
    )
    .await?;
    tokio::time::sleep(HOLD * 5).await;
    assert_eq!(
        record_writes(&server),
        names(&[(owner, "create")]),
        "a restart writes nothing"
    );
    let after_restart = wait_record(&client, "the record", |r| r.is_some()).await?;
    assert_eq!(
        after_restart.and_then(|r| r.metadata.resource_version),
        first.metadata.resource_version
    );

    // The owner's speaker leaves: the other node takes the record over
    // in one request, with its own start time.
    live_tx.send_replace(BTreeSet::from([other.to_string()]));
    let moved = wait_record(&client, "the new owner's record", |r| {
        r.and_then(ServiceL2Status::node) == Some(other)
    })
    .await?
    .ok_or("no record")?;
    assert_eq!(moved.interface_names(), ["eth0"]);
    let since = |r: &ServiceL2Status| {
        r.status
            .as_ref()
            .and_then(|s| s.last_transition_time.clone())
    };
    assert!(
        since(&moved) > since(&first),
        "{:?} after {:?}",
        since(&moved),
        since(&first)
    );
    tokio::time::sleep(HOLD * 3).await;
    assert_eq!(
        record_writes(&server),
        names(&[(owner, "create"), (other, "patch")])
    );

    // The Service loses its IP: the only live node deletes the record.
    set_ingress(&client, "web", None).await?;
    wait_record(&client, "the record to go", |r| r.is_none()).await?;

    // Back on both nodes: the owner creates it again. Then the Service
    // is deleted: its janitor deletes the record (the test server has no
    // garbage collector to follow the ownerReference).
    live_tx.send_replace(both.clone());
    set_ingress(&client, "web", Some(VIP)).await?;
    wait_record(&client, "the owner's record again", |r| {
        r.and_then(ServiceL2Status::node) == Some(owner)
    })
    .await?;
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await?;
    wait_record(&client, "the record to go with its Service", |r| {
        r.is_none()
    })
    .await?;
    tokio::time::sleep(HOLD * 3).await;
    let janitor =
        l2status::janitor(&ObjectKey::new("default", "web"), &both).ok_or("no janitor")?;
    assert_eq!(
        record_writes(&server),
        names(&[
            (owner, "create"),
            (other, "patch"),
            (other, "delete"),
            (owner, "create"),
            (janitor, "delete"),
        ]),
        "one write per change, by one node"
    );

    a.stop();
    b.stop();
    tasks.abort_all();
    Ok(())
}
