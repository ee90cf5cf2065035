//! Measurements, not checks: run with
//! `cargo test -p ferrolb-controller --test it_bench -- --ignored --nocapture`
//! (add `--release` for the numbers in docs/benchmarks.md).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher::{self, watcher, Event};
use kube::Api;
use kube_test_server::FaultConfig;
use support::{eventually, lb6, Cluster, Controller};
use tokio::sync::mpsc::UnboundedReceiver;

fn vm_hwm_kib(ctl: &Controller) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", ctl.pid()?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Creates `names` 16 at a time; returns when each create was sent.
async fn create_all(cluster: &Cluster, names: &[String]) -> BTreeMap<String, Instant> {
    futures::stream::iter(names.iter().cloned())
        .map(|name| async move {
            let at = Instant::now();
            cluster.create_service(&lb6("default", &name)).await;
            (name, at)
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Watches `default` from the test side and sends each Service's name
/// when it shows an IP (possibly more than once).
fn watch_assigned(
    cluster: &Cluster,
) -> (
    tokio::task::JoinHandle<()>,
    UnboundedReceiver<(String, Instant)>,
) {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), "default");
    let (seen_tx, seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = stream.next().await {
            if let Event::Apply(svc) | Event::InitApply(svc) = event {
                if !support::ingress(&svc).is_empty() {
                    let _ = seen_tx.send((svc.metadata.name.unwrap_or_default(), Instant::now()));
                }
            }
        }
    });
    (watch, seen_rx)
}

/// When each of `names` first showed an IP (those that did within 120 s).
async fn first_seen(
    names: &[String],
    seen_rx: &mut UnboundedReceiver<(String, Instant)>,
) -> BTreeMap<String, Instant> {
    let mut first_seen: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while first_seen.len() < names.len() && Instant::now() < deadline {
        if let Ok(Some((name, at))) =
            tokio::time::timeout(Duration::from_secs(5), seen_rx.recv()).await
        {
            first_seen.entry(name).or_insert(at);
        }
    }
    first_seen
}

/// Every API request but watches takes 5 ms longer (as a remote API server
/// would), so the status writer's concurrency shows: a writer that makes
/// two patches per Service one after another tops out near 100 Services/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers"]
async fn bench_assign_rate_with_5ms_api_latency() {
    let cluster = Cluster::start().await;
    cluster.pool("big", &["2001:db8:1::/112"]).await;
    let ctl = cluster.controller("bench-latency", &[]);
    assert!(ctl.wait_log("leading: seeded").await, "{}", ctl.log());
    cluster.server.set_faults(FaultConfig {
        delay_ratio: 1.0,
        delay_ms: 5,
        ..Default::default()
    });
    let (watch, mut seen_rx) = watch_assigned(&cluster);
    let names: Vec<String> = (0..1000).map(|i| format!("rate-{i:05}")).collect();
    let created = create_all(&cluster, &names).await;
    let seen = first_seen(&names, &mut seen_rx).await;
    watch.abort();
    cluster.server.clear_faults();
    assert_eq!(seen.len(), names.len(), "every Service got an IP");
    let first_create = created.values().min().copied().expect("created");
    let (first_ip, last_ip) = (
        seen.values().min().copied().expect("seen"),
        seen.values().max().copied().expect("seen"),
    );
    let n = names.len() as f64;
    println!(
        "BENCH 1,000 Services, 5 ms per API request: all assigned {:?} after the first create ({:.0} Services/s); first to last IP seen {:?} ({:.0} Services/s)",
        last_ip - first_create,
        n / (last_ip - first_create).as_secs_f64(),
        last_ip - first_ip,
        (n - 1.0) / (last_ip - first_ip).as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers"]
async fn bench_create_to_status_and_startup_reconcile() {
    let cluster = Cluster::start().await;
    cluster.pool("big", &["2001:db8:1::/112"]).await;
    let ctl = cluster.controller("bench-a", &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Watch from the test side: when does each Service first show an IP?
    let (watch, mut seen_rx) = watch_assigned(&cluster);
    let names: Vec<String> = (0..1000).map(|i| format!("burst-{i:05}")).collect();
    let created = create_all(&cluster, &names).await;
    let first_seen = first_seen(&names, &mut seen_rx).await;
    watch.abort();
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(n, at)| Some(first_seen.get(n)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    println!(
        "BENCH create->status over {} Services created at once: p50 {:?} p99 {:?} max {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "BENCH controller VmHWM after 1,000 Services: {:?} KiB",
        vm_hwm_kib(&ctl)
    );

    // Startup over 10,000 existing Services.
    let more: Vec<String> = (1000..10_000).map(|i| format!("svc-{i:05}")).collect();
    create_all(&cluster, &more).await;
    let all_assigned = || async {
        cluster
            .services("default")
            .list(&Default::default())
            .await
            .map(|l| l.items.iter().all(|s| !support::ingress(s).is_empty()))
            .unwrap_or(false)
    };
    assert!(eventually(300, all_assigned).await, "10,000 assigned");
    println!(
        "BENCH controller VmHWM with 10,000 Services: {:?} KiB",
        vm_hwm_kib(&ctl)
    );
    drop(ctl);
    let start = Instant::now();
    let ctl = cluster.controller("bench-b", &[]);
    assert!(eventually(300, || async { ctl.log().contains("leading: seeded") }).await);
    let seeded = start.elapsed();
    cluster
        .create_service(&lb6("default", "after-restart"))
        .await;
    let ips = cluster.wait_any_ips("default", "after-restart").await;
    println!(
        "BENCH restart over 10,000 existing Services: seeded after {seeded:?}, a new Service served after {:?} ({ips:?}); VmHWM {:?} KiB",
        start.elapsed(),
        vm_hwm_kib(&ctl)
    );
    let log = ctl.log();
    for line in log
        .lines()
        .filter(|l| l.contains("seeded") || l.contains("caches synced"))
    {
        println!("LOG {line}");
    }
}
