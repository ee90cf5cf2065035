//! `ferrolb-lab scale` (issue 12): thousands of Services against the real
//! release binaries. Creates `--services` IPv6 Services, `--advertised`
//! of them from a pool an L2Advertisement selects and the rest from one
//! none selects, with bounded concurrency; then reports the burst
//! (assignment rate, time to every IP announced), memory and CPU once
//! idle, the Events it caused, a restart of every component one at a
//! time, EndpointSlice and annotation churn, and three kinds of bad input.
//!
//! The lab runs without its EndpointSlice and kube-proxy stand-ins (both
//! recompute from every Service on each change): every Service's slice is
//! written by this command before the Service, and no node answers on the
//! IPs; announcements are read from the speakers' metrics.

mod api_speed;
mod events;
mod report;

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::{json, Value};

use super::usage::{percent, process_json, CpuMark};
use super::{report_dead, Setup, PORT};
use crate::cluster::{Cluster, Options};
use crate::objects::{self, Families, ServiceSpec};
use crate::stats::ms;
use crate::AbortOnDrop;

/// The pool an L2Advertisement selects (room for 65,536 Services).
const ANNOUNCED_POOL: (&str, &str) = ("scale-announced", "2001:db8:0:1::1:0/112");
/// The pool no L2Advertisement selects.
const QUIET_POOL: (&str, &str) = ("scale-unannounced", "2001:db8:0:2::/112");
/// Longest wait for any one step.
const LIMIT: Duration = Duration::from_secs(600);
/// Idle CPU is measured over this window.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long after a restart its log lines are counted.
const RESTART_WINDOW: Duration = Duration::from_secs(25);
/// Changes per second of each churn.
const CHURN_RATE: u32 = 200;

/// What `scale` is asked to do.
#[derive(Debug, Clone)]
pub struct ScaleOpts {
    /// Services to create (`--services`).
    pub services: usize,
    /// Of which from the advertised pool (`--advertised`).
    pub advertised: usize,
    /// Seconds of each churn (`--churn-secs`).
    pub churn_secs: u64,
    /// Creates in flight at once (`--in-flight`).
    pub in_flight: usize,
    /// Print JSON instead of the table (`--json`).
    pub json: bool,
}

fn name(k: usize) -> String {
    format!("scale-{k}")
}

/// Runs every measurement and prints the report.
pub async fn scale(setup: &Setup, o: &ScaleOpts) -> anyhow::Result<()> {
    if o.advertised > o.services {
        bail!("--advertised must not exceed --services");
    }
    let opts = Options {
        nodes: setup.nodes,
        progress: !o.json,
        stand_ins: false,
        // Every burst event stays resumable: 10,000 Services write about
        // 50,000 (Service, slice, annotation, status, Event).
        history_limit: 400_000,
        ..Options::default()
    };
    let mut c = super::start_with(setup, opts).await?;
    let say = |s: &str| {
        if !o.json {
            println!("{s}");
        }
    };
    pools(&c).await?;
    let mut r = serde_json::Map::new();
    r.insert(
        "setup".into(),
        json!({"nodes": setup.nodes, "services": o.services, "advertised": o.advertised,
               "in_flight": o.in_flight, "churn_secs": o.churn_secs, "family": "IPv6"}),
    );
    let pids = c.component_pids();
    say(&format!(
        "\ncreating {} Services, {} in flight...",
        o.services, o.in_flight
    ));
    let events_before = events::snapshot(&c).await?;
    let (burst, burst_cpu) = burst(&c, o, &pids).await?;
    r.insert("burst".into(), burst);
    say("all assigned and announced; measuring idle...");
    let idle_mark = CpuMark::now(&pids);
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = idle_mark.seconds_since(&pids);
    let procs: Vec<Value> = pids
        .iter()
        .zip(idle)
        .zip(burst_cpu)
        .map(|(((name, pid), idle), burst)| {
            process_json(&c, name, *pid, percent(idle, IDLE_WINDOW), burst)
        })
        .collect();
    r.insert("idle_window_s".into(), json!(IDLE_WINDOW.as_secs()));
    r.insert("processes".into(), json!(procs));
    let events_after = events::snapshot(&c).await?;
    r.insert(
        "events_burst".into(),
        json!(events::diff(&events_before, &events_after)),
    );
    say("timing the API test server...");
    r.insert("api_server".into(), api_speed::measure(&c, &name(0)).await?);
    say("restarting each component...");
    r.insert("restarts".into(), json!(restarts(&mut c, &say).await?));
    report_dead(&mut c)?;
    let mut churns = Vec::new();
    for kind in [Churn::SliceReady, Churn::Annotation] {
        say(&format!("churn: {}...", kind.label()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        churns.push(churn(&c, kind, o).await?);
    }
    r.insert("churn".into(), json!(churns));
    say("bad input...");
    r.insert("bad_input".into(), json!(bad_input(&c).await?));
    report_dead(&mut c)?;
    let r = Value::Object(r);
    if o.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", report::render(&r));
    }
    Ok(())
}

/// The two pools, and the L2Advertisement for the first; returns once
/// the controller shows it knows both (their `Advertised` conditions), so
/// no Service of the burst is refused for a pool it has not seen yet.
async fn pools(c: &Cluster) -> anyhow::Result<()> {
    for (pool, range) in [ANNOUNCED_POOL, QUIET_POOL] {
        c.create_pool(pool, &[range.to_owned()]).await?;
    }
    c.advertise_pool(ANNOUNCED_POOL.0).await?;
    let t0 = Instant::now();
    for (pool, _) in [ANNOUNCED_POOL, QUIET_POOL] {
        loop {
            let obj = c.custom("IPAddressPool", "ipaddresspools", pool).await?;
            let conditions = obj["status"]["conditions"].as_array();
            let known = conditions.is_some_and(|cs| cs.iter().any(|c| c["type"] == "Advertised"));
            if known {
                break;
            }
            if t0.elapsed() > LIMIT {
                bail!("the controller did not report pool {pool} within {LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// An IPv6 Service without NodePorts (the range has 2,768) from `pool`.
fn spec(name: &str, pool: &str) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name, PORT + 3);
    spec.families = Families::V6;
    spec.pool = Some(pool.to_owned());
    spec.node_ports = false;
    spec
}

/// The summed `ferrolb_speaker_announced_ips` of every speaker.
fn announced(c: &Cluster) -> f64 {
    c.nodes
        .iter()
        .filter_map(|n| c.speaker_metric(&n.name, "ferrolb_speaker_announced_ips"))
        .sum()
}

async fn wait_announced(c: &Cluster, want: f64, since: Instant) -> anyhow::Result<Duration> {
    loop {
        if announced(c) >= want {
            return Ok(since.elapsed());
        }
        if since.elapsed() > LIMIT {
            bail!(
                "only {} of {want} IPs announced within {LIMIT:?}",
                announced(c)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When each `scale-*` Service first showed an IP, from a watch.
fn follow_assignments(c: &Cluster) -> (AbortOnDrop, Arc<Mutex<HashMap<String, Instant>>>) {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let into = seen.clone();
    let api: Api<Service> = Api::namespaced(c.kube(), "default");
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let svc = match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => s,
                _ => continue,
            };
            let name = svc.metadata.name.clone().unwrap_or_default();
            if name.starts_with("scale-") && !ferrolb_crds::service::ingress_ips(&svc).is_empty() {
                let mut seen = into.lock().unwrap_or_else(|e| e.into_inner());
                seen.entry(name).or_insert_with(Instant::now);
            }
        }
    });
    (AbortOnDrop(task), seen)
}

/// Creates every Service; waits until each has an IP and every advertised
/// one is announced, then 5 s for the gratuitous repeats to end. Returns
/// the burst's figures and each process's CPU seconds for it.
async fn burst(
    c: &Cluster,
    o: &ScaleOpts,
    pids: &[(String, u32)],
) -> anyhow::Result<(Value, Vec<Option<f64>>)> {
    let (_watch, seen) = follow_assignments(c);
    let mark = CpuMark::now(pids);
    let lab = [("lab".to_owned(), std::process::id())];
    let lab_mark = CpuMark::now(&lab);
    let t0 = Instant::now();
    futures::stream::iter(0..o.services)
        .map(Ok)
        .try_for_each_concurrent(o.in_flight, |k| async move {
            let advertised = report::advertised(k, o.services, o.advertised);
            let pool = if advertised {
                ANNOUNCED_POOL.0
            } else {
                QUIET_POOL.0
            };
            c.create_service(&spec(&name(k), pool), None).await
        })
        .await?;
    let created = t0.elapsed();
    let at: Vec<Duration> = loop {
        let at: Vec<Duration> = {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.values().map(|t| t.duration_since(t0)).collect()
        };
        if at.len() >= o.services {
            break at;
        }
        if t0.elapsed() > LIMIT {
            bail!("only {} of {} Services got an IP", at.len(), o.services);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all_announced = wait_announced(c, o.advertised as f64, t0).await?;
    let last = at.iter().max().copied().unwrap_or_default();
    let (mean, peak) = report::assignment_rates(&at);
    // The last gratuitous burst ends 3.3 s after a takeover.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = mark.seconds_since(pids);
    let lab_cpu = lab_mark.seconds_since(&lab)[0];
    let figures = json!({
        "lab_cpu_s": lab_cpu,
        "create_calls_ms": ms(created),
        "create_to_last_assigned_ms": ms(last),
        "create_to_all_announced_ms": ms(all_announced),
        "assigned_per_s": mean,
        "assigned_peak_second": peak,
        "announced_ips": announced(c),
    });
    Ok((figures, cpu))
}

/// Restarts the controller, then each speaker, one at a time (SIGTERM,
/// start, ready), with nothing changed in the cluster; what each caused.
async fn restarts(c: &mut Cluster, say: &impl Fn(&str)) -> anyhow::Result<Vec<Value>> {
    let names: Vec<String> = std::iter::once("controller".to_owned())
        .chain(c.nodes.iter().map(|n| n.name.clone()))
        .collect();
    let mut out = Vec::new();
    for component in names {
        say(&format!("  {component}"));
        let before = events::snapshot(c).await?;
        let want = announced(c);
        let offset;
        let t0;
        if component == "controller" {
            c.stop_controller()?;
            offset = c.log(&component).len();
            t0 = Instant::now();
            c.start_controller()?;
            while !c.log(&component)[offset..].contains("leading: seeded") {
                if t0.elapsed() > LIMIT {
                    bail!("the restarted controller did not seed within {LIMIT:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            c.term_speaker(&component)?;
            c.reap_speaker(&component)?;
            offset = c.log(&component).len();
            t0 = Instant::now();
            c.start_speaker(&component)?;
            while !c.speaker_ready(&component) || announced(c) < want {
                if t0.elapsed() > LIMIT {
                    bail!("{component}'s speaker was not ready within {LIMIT:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let ready = t0.elapsed();
        tokio::time::sleep(RESTART_WINDOW.saturating_sub(t0.elapsed())).await;
        let log = c.log(&component);
        let log = &log[offset..];
        let after = events::snapshot(c).await?;
        out.push(json!({
            "component": component,
            "ready_ms": ms(ready),
            "caches_synced_after_ms": report::logged_after_ms(log, "caches synced"),
            "seeded_after_ms": report::logged_after_ms(log, "leading: seeded"),
            "log_lines_25s": log.lines().count(),
            "events": events::diff(&before, &after),
        }));
        c.wait_converged(Duration::from_secs(30)).await?;
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Churn {
    /// Flip the `ready` condition of one endpoint of a Service's slice.
    SliceReady,
    /// Patch an annotation nothing reads.
    Annotation,
}

impl Churn {
    fn label(self) -> &'static str {
        match self {
            Churn::SliceReady => "EndpointSlice ready flips",
            Churn::Annotation => "Service annotation patches",
        }
    }
}

/// `CHURN_RATE` changes a second for `--churn-secs`, spread over every
/// Service in creation order; each process's CPU % meanwhile. The lab's
/// own process (the API test server and this client) is `lab`.
async fn churn(c: &Cluster, kind: Churn, o: &ScaleOpts) -> anyhow::Result<Value> {
    let mut pids = c.component_pids();
    pids.push(("lab".into(), std::process::id()));
    let nodes = c.node_indices();
    let total = CHURN_RATE as usize * o.churn_secs as usize;
    let period = Duration::from_secs(1) / CHURN_RATE;
    let slices: Api<EndpointSlice> = Api::namespaced(c.kube(), "default");
    let services: Api<Service> = Api::namespaced(c.kube(), "default");
    let errors = std::sync::atomic::AtomicUsize::new(0);
    let mark = CpuMark::now(&pids);
    let t0 = Instant::now();
    futures::stream::iter(0..total)
        .for_each_concurrent(64, |i| {
            let (slices, services, nodes, errors) = (&slices, &services, &nodes, &errors);
            async move {
                tokio::time::sleep_until((t0 + period * i as u32).into()).await;
                let k = i % o.services;
                let pp = PatchParams::default();
                let done = match kind {
                    Churn::SliceReady => {
                        let svc = name(k);
                        let slice = objects::endpoint_slice(
                            "default",
                            &svc,
                            objects::tcp_port(PORT + 3),
                            true,
                            nodes,
                        );
                        let mut endpoints = slice["endpoints"].clone();
                        // Not ready on the first pass over the Services,
                        // ready again on the second...
                        endpoints[0]["conditions"]["ready"] = json!((i / o.services) % 2 == 1);
                        let patch = Patch::Merge(json!({"endpoints": endpoints}));
                        let name = objects::slice_name(&svc, true);
                        slices.patch(&name, &pp, &patch).await.map(|_| ())
                    }
                    Churn::Annotation => {
                        let patch = Patch::Merge(
                            json!({"metadata": {"annotations": {"ferrolb-lab/churn": i.to_string()}}}),
                        );
                        services.patch(&name(k), &pp, &patch).await.map(|_| ())
                    }
                };
                if done.is_err() {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .await;
    let elapsed = t0.elapsed();
    let cpu = mark.seconds_since(&pids);
    let cpu: serde_json::Map<String, Value> = pids
        .iter()
        .zip(cpu)
        .map(|((name, _), s)| (name.clone(), json!(percent(s, elapsed))))
        .collect();
    Ok(json!({
        "kind": kind.label(),
        "secs": o.churn_secs,
        "target_per_s": CHURN_RATE,
        "achieved_per_s": total as f64 / elapsed.as_secs_f64(),
        "errors": errors.into_inner(),
        "cpu_percent": cpu,
    }))
}

/// One Service with 2,000 ports, a pool of 300 single addresses, one
/// EndpointSlice with 1,000 endpoints: each until its Service has an IP
/// and it is announced, with the CPU each process spent until 2 s later.
async fn bad_input(c: &Cluster) -> anyhow::Result<Vec<Value>> {
    let mut pids = c.component_pids();
    pids.push(("lab".into(), std::process::id()));
    let nodes = c.node_indices();
    let mut out = Vec::new();
    for case in ["2,000 ports", "pool of 300 addresses", "1,000 endpoints"] {
        let mark = CpuMark::now(&pids);
        let want = announced(c) + 1.0;
        let t0 = Instant::now();
        let svc_name = match case {
            "2,000 ports" => {
                let spec = spec("bad-ports", ANNOUNCED_POOL.0);
                let ports: Vec<Value> = (0..2000u16)
                    .map(
                        |i| json!({"name": format!("p{i}"), "protocol": "TCP", "port": 10_000 + i}),
                    )
                    .collect();
                let mut svc = objects::service(&spec);
                svc["spec"]["ports"] = json!(ports
                    .iter()
                    .map(|p| json!({"name": p["name"], "protocol": "TCP", "port": p["port"], "targetPort": p["port"]}))
                    .collect::<Vec<_>>());
                let slice =
                    objects::endpoint_slice("default", &spec.name, json!(ports), true, &nodes);
                c.create_service_object(&[slice], svc).await?;
                spec.name
            }
            "pool of 300 addresses" => {
                let pool = "scale-300";
                let base = u128::from("2001:db8:0:3::".parse::<Ipv6Addr>()?);
                let addresses: Vec<String> = (1..=300u128)
                    .map(|i| format!("{}/128", Ipv6Addr::from(base + i * 2)))
                    .collect();
                c.create_pool(pool, &addresses).await?;
                c.advertise_pool(pool).await?;
                let spec = spec("bad-pool", pool);
                c.create_service(&spec, None).await?;
                spec.name
            }
            _ => {
                let spec = spec("bad-endpoints", ANNOUNCED_POOL.0);
                let mut slice = objects::endpoint_slice(
                    "default",
                    &spec.name,
                    objects::tcp_port(spec.port),
                    true,
                    &nodes,
                );
                let base = u128::from("2001:db8:4::".parse::<Ipv6Addr>()?);
                slice["endpoints"] = json!((0..1000u128)
                    .map(|i| json!({
                        "addresses": [Ipv6Addr::from(base + i + 1).to_string()],
                        "nodeName": nodes[i as usize % nodes.len()].1,
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                    }))
                    .collect::<Vec<_>>());
                c.create_service_object(&[slice], objects::service(&spec))
                    .await?;
                spec.name
            }
        };
        let ips = c.wait_ips(&svc_name, 1, LIMIT).await.context(case)?;
        let assigned = t0.elapsed();
        let _ = ips;
        let announced_after = wait_announced(c, want, t0).await.context(case)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu: serde_json::Map<String, Value> = pids
            .iter()
            .zip(mark.seconds_since(&pids))
            .map(|((name, _), s)| (name.clone(), json!(s)))
            .collect();
        out.push(json!({
            "case": case,
            "assigned_ms": ms(assigned),
            "announced_ms": ms(announced_after),
            "cpu_s": cpu,
        }));
    }
    Ok(out)
}
