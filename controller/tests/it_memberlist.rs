//! The memberlist Secret, against the real binary: the leader creates it
//! when missing (and again after a delete), never modifies an existing
//! one, reports an unusable one once, and a standby never writes it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use support::http::{http_addr, metrics, sample, wait_sample, JSON_LOG};
use support::{eventually, Cluster, Controller, SYSTEM_NS};

const NAME: &str = "ferrolb-memberlist";
const OK: &str = r#"ferrolb_controller_memberlist_secret_ok{secret="ferrolb-memberlist"}"#;

fn secrets(cluster: &Cluster) -> Api<Secret> {
    Api::namespaced(cluster.client.clone(), SYSTEM_NS)
}

/// A controller checking every 200 ms, logging JSON.
fn controller(cluster: &Cluster, identity: &str, extra: &[&str]) -> Controller {
    let mut args = vec!["--memberlist-secret-check-interval", "200ms"];
    args.extend_from_slice(JSON_LOG);
    args.extend_from_slice(extra);
    cluster.controller(identity, &args)
}

async fn wait_secret(cluster: &Cluster) -> Secret {
    let api = secrets(cluster);
    let ok = eventually(20, || async {
        matches!(api.get_opt(NAME).await, Ok(Some(_)))
    })
    .await;
    assert!(ok, "the memberlist Secret was not created");
    api.get(NAME).await.expect("secret")
}

fn key(secret: &Secret) -> Vec<u8> {
    secret.data.as_ref().expect("data")["secretkey"].0.clone()
}

async fn create_secret(cluster: &Cluster, value: &[u8]) -> Secret {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(SYSTEM_NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "secretkey".to_string(),
            ByteString(value.to_vec()),
        )])),
        ..Default::default()
    };
    secrets(cluster)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_memberlist_secret_is_created_with_a_random_32_byte_key() {
    let cluster = Cluster::start().await;
    let ctl = controller(&cluster, "replica-a", &[]);
    let secret = wait_secret(&cluster).await;

    let value = key(&secret);
    assert!(
        value.iter().all(u8::is_ascii_graphic),
        "printable: {value:?}"
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&value)
        .expect("base64");
    assert_eq!(raw.len(), 32);
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/name"], "ferrolb");
    assert_eq!(labels["app.kubernetes.io/component"], "memberlist");
    assert!(ctl.wait_log("created the memberlist Secret").await);
    wait_sample(http_addr(&ctl).await, OK, 1.0).await;

    // Another cluster's controller makes another key.
    let other = Cluster::start().await;
    let _ctl2 = controller(&other, "replica-a", &[]);
    assert_ne!(key(&wait_secret(&other).await), value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_secret_is_never_modified() {
    let cluster = Cluster::start().await;
    let before = create_secret(&cluster, b"an-operator-chose-this-key").await;
    let ctl = controller(&cluster, "replica-a", &[]);
    wait_sample(http_addr(&ctl).await, OK, 1.0).await;
    // Several checks later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = secrets(&cluster).get(NAME).await.expect("secret");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version,
        "{}",
        ctl.log()
    );
    assert_eq!(key(&after), b"an-operator-chose-this-key");
    assert!(!ctl.log().contains("created the memberlist Secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_comes_back_with_a_new_key() {
    let cluster = Cluster::start().await;
    let _ctl = controller(&cluster, "replica-a", &[]);
    let first = wait_secret(&cluster).await;
    secrets(&cluster)
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("deleted");
    let api = secrets(&cluster);
    let back = eventually(20, || async {
        matches!(api.get_opt(NAME).await, Ok(Some(s)) if s.metadata.uid != first.metadata.uid)
    })
    .await;
    assert!(back, "the deleted Secret did not come back");
    let second = api.get(NAME).await.expect("secret");
    assert_ne!(key(&second), key(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_secret_gets_one_warning_event_and_the_metric_zero() {
    let cluster = Cluster::start().await;
    let before = create_secret(&cluster, b"too-short\n").await;
    let ctl = controller(&cluster, "replica-a", &[]);
    let note = cluster
        .wait_event(SYSTEM_NS, NAME, "InvalidMemberlistSecret")
        .await;
    assert!(note.contains("ferrolb-system/ferrolb-memberlist"), "{note}");
    assert!(note.contains("9 bytes"), "{note}");
    assert!(note.contains("delete secret ferrolb-memberlist"), "{note}");
    let addr = http_addr(&ctl).await;
    wait_sample(addr, OK, 0.0).await;

    // Many checks later: still one Event, still untouched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = cluster.events(SYSTEM_NS, NAME).await;
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e.1 == "InvalidMemberlistSecret")
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    assert_eq!(warnings[0].0, "Warning");
    assert_eq!(sample(&metrics(addr).await, OK), Some(0.0));
    let after = secrets(&cluster).get(NAME).await.expect("secret");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert!(ctl.log().contains("InvalidMemberlistSecret") || ctl.log().contains("holds 9 bytes"));

    // Deleted: recreated valid, and the metric follows.
    secrets(&cluster)
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("deleted");
    wait_sample(addr, OK, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_never_creates_the_secret_until_it_leads() {
    let cluster = Cluster::start().await;
    // Another replica holds the Lease for an hour.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), SYSTEM_NS);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("ferrolb-controller".into()),
            namespace: Some(SYSTEM_NS.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("someone-else".into()),
            lease_duration_seconds: Some(3600),
            acquire_time: Some(MicroTime(Timestamp::now())),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    };
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("lease");
    let ctl = controller(&cluster, "replica-b", &[]);
    assert!(ctl.wait_log("caches synced").await, "{}", ctl.log());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        secrets(&cluster)
            .get_opt(NAME)
            .await
            .expect("get")
            .is_none(),
        "a standby created the Secret\n{}",
        ctl.log()
    );
    let page = metrics(http_addr(&ctl).await).await;
    assert_eq!(sample(&page, OK), None, "a standby exports no value");

    // The holder releases the Lease: this replica leads and creates it.
    let release = serde_json::json!({"spec": {"holderIdentity": null}});
    leases
        .patch(
            "ferrolb-controller",
            &PatchParams::default(),
            &Patch::Merge(&release),
        )
        .await
        .expect("released");
    wait_secret(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_secret_name_disables_creation() {
    let cluster = Cluster::start().await;
    let ctl = controller(&cluster, "replica-a", &["--memberlist-secret-name", ""]);
    assert!(ctl.wait_log("leading: seeded").await, "{}", ctl.log());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(secrets(&cluster)
        .get_opt(NAME)
        .await
        .expect("get")
        .is_none());
    assert!(ctl.log().contains("not managed"), "{}", ctl.log());
}
