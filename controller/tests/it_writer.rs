//! The status writer alone against the API test server, whose request log
//! records when each request arrived and was answered: writes for one
//! Service never overlap nor pass each other while other Services' writes
//! run concurrently, and nothing is written without the Lease.

mod support;

use std::time::Duration;

use ferrolb_controller::events::Publisher;
use ferrolb_controller::index::{ServiceWrite, Update, Write};
use ferrolb_controller::status::Writer;
use ferrolb_core::allocator::{Assignment, ServiceKey};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher::{self, watcher, Event};
use kube_test_server::{FaultConfig, RequestRecord};
use support::{ingress, lb6, Cluster};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A running writer and the ends the test holds.
struct Running {
    updates: mpsc::Sender<Update>,
    failed: mpsc::UnboundedReceiver<Write>,
    leader: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Closes the channel and waits until the writer has finished.
    async fn finish(self) -> mpsc::UnboundedReceiver<Write> {
        drop(self.updates);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the writer finishes")
            .expect("the writer does not panic");
        self.failed
    }
}

fn start_writer(cluster: &Cluster, leading: bool, writes_in_flight: usize) -> Running {
    let (leader, leader_rx) = watch::channel(leading);
    let (_stop, stop_rx) = watch::channel(false);
    let (failed_tx, failed) = mpsc::unbounded_channel();
    let (updates, rx) = mpsc::channel(1024);
    let writer = Writer::new(
        cluster.client.clone(),
        Publisher::new(cluster.client.clone(), "it-writer"),
        leader_rx,
        stop_rx,
        failed_tx,
        writes_in_flight,
    );
    // The stop sender lives as long as the writer: dropping it is no stop.
    let task = tokio::spawn(async move {
        let _stop = _stop;
        writer.run(rx).await
    });
    Running {
        updates,
        failed,
        leader,
        task,
    }
}

/// Assigns `2001:db8:1::N` to `name` in `default`.
fn assign(name: &str, n: u16) -> Update {
    Update::Write(Write::Service(ServiceWrite {
        key: ServiceKey::new("default", name),
        assignment: Some(Assignment {
            pool: "blue".into(),
            ips: vec![format!("2001:db8:1::{n:x}").parse().unwrap()],
        }),
    }))
}

async fn create_services(cluster: &Cluster, names: &[String]) {
    for name in names {
        cluster.create_service(&lb6("default", name)).await;
    }
}

/// The PATCHes of Services in the request log.
fn service_patches(cluster: &Cluster) -> Vec<RequestRecord> {
    cluster
        .server
        .requests()
        .into_iter()
        .filter(|r| r.info.verb == "patch" && r.info.resource == "services")
        .collect()
}

/// Every request but reads (the writer never reads).
fn writes(cluster: &Cluster) -> Vec<RequestRecord> {
    cluster
        .server
        .requests()
        .into_iter()
        .filter(|r| !matches!(r.info.verb.as_str(), "get" | "list" | "watch"))
        .collect()
}

/// The most requests that were being served at one moment.
fn most_at_once(records: &[RequestRecord]) -> usize {
    let mut ticks: Vec<(u64, i64)> = records
        .iter()
        .flat_map(|r| [(r.arrived, 1), (r.answered, -1)])
        .collect();
    ticks.sort();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, step) in ticks {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// The IPs `name` showed, in the order a watch saw them.
fn watch_ips(cluster: &Cluster, name: &str) -> (JoinHandle<()>, mpsc::UnboundedReceiver<String>) {
    let api: kube::Api<Service> = cluster.services("default");
    let name = name.to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = stream.next().await {
            if let Event::Apply(svc) | Event::InitApply(svc) = event {
                if svc.metadata.name.as_deref() == Some(&name) {
                    for ip in ingress(&svc) {
                        let _ = tx.send(ip);
                    }
                }
            }
        }
    });
    (task, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_for_one_service_neither_overlap_nor_reorder_while_others_run_concurrently() {
    let cluster = Cluster::start().await;
    let others: Vec<String> = (0..24).map(|i| format!("other-{i:02}")).collect();
    create_services(&cluster, &others).await;
    create_services(&cluster, &["busy".to_string()]).await;
    let (watch, mut seen) = watch_ips(&cluster, "busy");
    cluster.server.record_requests(true);
    // Half the requests take 30 ms longer: a writer that let two writes
    // for one Service run at once would see them finish out of order.
    cluster.server.set_faults(FaultConfig {
        seed: 7,
        delay_ratio: 0.5,
        delay_ms: 30,
        ..Default::default()
    });
    let limit = 4;
    let writer = start_writer(&cluster, true, limit);

    let mut others = others.iter();
    let rounds = 12u16;
    for n in 1..=rounds {
        writer.updates.send(assign("busy", n)).await.unwrap();
        for other in others.by_ref().take(2) {
            writer.updates.send(assign(other, 0x100 + n)).await.unwrap();
        }
        // Some updates find the previous write for busy still running
        // (they wait, the newest replacing older ones), some do not; the
        // last three come at once, so the last one must replace another.
        if n < rounds - 2 {
            tokio::time::sleep(Duration::from_millis(15 * u64::from(n % 4))).await;
        }
    }
    let mut failed = writer.finish().await;
    cluster.server.clear_faults();
    assert!(failed.try_recv().is_err(), "no write failed");

    let patches = service_patches(&cluster);
    let busy: Vec<&RequestRecord> = patches.iter().filter(|r| r.info.name == "busy").collect();
    assert!(busy.len() >= 4, "at least two writes for busy: {busy:?}");
    for pair in busy.windows(2) {
        assert!(
            pair[0].answered < pair[1].arrived,
            "two patches of busy overlapped: {pair:?}"
        );
    }
    // The log is in order of answers; with no overlap that is the order the
    // requests were sent: annotation then ingress, one write after another.
    let parts: Vec<&str> = busy.iter().map(|r| r.info.subresource.as_str()).collect();
    assert!(
        parts.chunks(2).all(|w| w == ["", "status"]),
        "each write patches the annotation, then the ingress: {parts:?}"
    );
    let most = most_at_once(&patches);
    assert!(
        (2..=limit).contains(&most),
        "writes for different Services ran concurrently, at most {limit}: {most} at once"
    );

    let last = format!("2001:db8:1::{rounds:x}");
    assert_eq!(
        cluster.ips("default", "busy").await,
        std::slice::from_ref(&last)
    );
    let mut order = Vec::new();
    while order.last() != Some(&last) {
        let ip = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("the watch sees the last write")
            .expect("the watch runs");
        if order.last() != Some(&ip) {
            order.push(ip);
        }
    }
    watch.abort();
    let numbers: Vec<u16> = order
        .iter()
        .map(|ip| u16::from_str_radix(ip.rsplit(':').next().unwrap(), 16).unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "busy showed its IPs out of order: {order:?}"
    );
    for (i, other) in patches.iter().filter(|r| r.info.name != "busy").enumerate() {
        assert_eq!(other.code, 200, "patch {i}: {other:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_writes_nothing() {
    let cluster = Cluster::start().await;
    let names: Vec<String> = (0..4).map(|i| format!("svc-{i}")).collect();
    create_services(&cluster, &names).await;
    cluster.pool("blue", &["2001:db8:1::/112"]).await;
    cluster.server.record_requests(true);
    let writer = start_writer(&cluster, false, 4);
    for (n, name) in (1..).zip(&names) {
        writer.updates.send(assign(name, n)).await.unwrap();
    }
    let pool = Write::Pool {
        name: "blue".into(),
        namespace: support::SYSTEM_NS.into(),
        status: Default::default(),
    };
    writer.updates.send(Update::Write(pool)).await.unwrap();
    let mut failed = writer.finish().await;
    assert!(failed.try_recv().is_err(), "nothing to report");
    assert_eq!(writes(&cluster), [], "the standby wrote");
    for name in &names {
        assert_eq!(cluster.ips("default", name).await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_starts_once_leadership_is_lost() {
    let cluster = Cluster::start().await;
    let names: Vec<String> = (0..12).map(|i| format!("svc-{i:02}")).collect();
    create_services(&cluster, &names).await;
    cluster.server.record_requests(true);
    cluster.server.set_faults(FaultConfig {
        delay_ratio: 1.0,
        delay_ms: 1000,
        ..Default::default()
    });
    let limit = 4;
    let writer = start_writer(&cluster, true, limit);
    for (n, name) in (1..).zip(&names) {
        writer.updates.send(assign(name, n)).await.unwrap();
    }
    // The first `limit` writes are now waiting for their first patch's
    // answer; every other write waits for a slot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.leader.send_replace(false);
    let mut failed = writer.finish().await;
    cluster.server.clear_faults();

    assert!(
        failed.try_recv().is_err(),
        "a stopped write is not a failure"
    );
    let patches = service_patches(&cluster);
    let parts: Vec<&str> = patches
        .iter()
        .map(|r| r.info.subresource.as_str())
        .collect();
    // Exactly `limit` unless the machine was too slow to send them all in
    // 300 ms; never a second patch, never another write.
    assert!(
        !parts.is_empty() && parts.len() <= limit && parts.iter().all(|p| p.is_empty()),
        "only the annotation patches in flight when leadership was lost: {patches:?}"
    );
    assert_eq!(
        writes(&cluster).len(),
        parts.len(),
        "nothing else was written"
    );
    for name in &names {
        assert_eq!(cluster.ips("default", name).await, Vec::<String>::new());
    }
}
