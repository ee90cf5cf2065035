//! The bench's last part: many Services at once, then memory and CPU of
//! every process once nothing changes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::PORT;
use crate::cluster::Cluster;
use crate::objects::{self, Families, ServiceSpec};
use crate::stats::ms;
use crate::topology;

/// What the processes use with many Services, once nothing changes.
pub(super) struct Idle {
    services: usize,
    created: Duration,
    all_announced: Duration,
    all_assigned: Duration,
    sample_answered: Duration,
    sampled: usize,
    window: Duration,
    procs: Vec<serde_json::Value>,
}

impl Idle {
    pub(super) fn to_json(&self) -> serde_json::Value {
        json!({
            "services": self.services,
            "create_calls_ms": ms(self.created),
            "create_to_all_announced_ms": ms(self.all_announced),
            "create_to_all_assigned_ms": ms(self.all_assigned),
            "create_to_sample_answered_ms": ms(self.sample_answered),
            "sampled_ips": self.sampled,
            "cpu_window_s": self.window.as_secs_f64(),
            "processes": self.procs,
        })
    }

    pub(super) fn print(&self) {
        println!(
            "\n{} IPv6 Services created one after another in {:.0} ms: all assigned after {:.0} ms, \
             all announced after {:.0} ms, {} sampled IPs answering after {:.0} ms",
            self.services,
            ms(self.created),
            ms(self.all_assigned),
            ms(self.all_announced),
            self.sampled,
            ms(self.sample_answered)
        );
        println!(
            "{:<12} {:>10} {:>14} {:>12} {:>14} {:>10} {:>16}",
            "process",
            "RSS KiB",
            "peak RSS KiB",
            "idle CPU %",
            "burst CPU s",
            "announced",
            "multicast errs"
        );
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::Number(n) if n.is_f64() => {
                format!("{:.2}", n.as_f64().unwrap_or(0.0))
            }
            other => other.to_string(),
        };
        for p in &self.procs {
            println!(
                "{:<12} {:>10} {:>14} {:>12} {:>14} {:>10} {:>16}",
                p["name"].as_str().unwrap_or(""),
                show(&p["rss_kib"]),
                show(&p["peak_rss_kib"]),
                show(&p["idle_cpu_percent"]),
                show(&p["burst_cpu_s"]),
                show(&p["announced_ips"]),
                show(&p["multicast_errors"]),
            );
        }
        println!(
            "(burst CPU: from the first create until idle; idle CPU: over {:.0} s with nothing changing)",
            self.window.as_secs_f64()
        );
    }
}

/// Creates `n` IPv6 Services from a pool of their own (advertised from
/// every node), waits until all have an IP and a sample of them answers,
/// lets the announcement bursts end, then reads memory and CPU.
pub(super) async fn idle_with_services(
    c: &Cluster,
    n: usize,
    progress: bool,
) -> anyhow::Result<Idle> {
    const BENCH_POOL: &str = "bench";
    let first: u128 = u128::from("2001:db8:0:1::1000".parse::<std::net::Ipv6Addr>()?);
    let last = std::net::Ipv6Addr::from(first + n as u128 - 1);
    c.create_custom_object(
        json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": BENCH_POOL, "namespace": topology::SYSTEM_NS},
            "spec": {"addresses": [format!("2001:db8:0:1::1000-{last}")], "autoAssign": false},
        }),
        "IPAddressPool",
        "ipaddresspools",
    )
    .await?;
    c.create_custom_object(
        json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": BENCH_POOL, "namespace": topology::SYSTEM_NS},
            "spec": {"ipAddressPools": [BENCH_POOL]},
        }),
        "L2Advertisement",
        "l2advertisements",
    )
    .await?;
    if progress {
        println!("\ncreating {n} IPv6 Services in pool {BENCH_POOL}...");
    }
    let port = PORT + 2;
    let mut pids: Vec<(String, u32)> = Vec::new();
    if let Some(ch) = c.controller.as_ref() {
        pids.push(("controller".to_owned(), ch.id()));
    }
    for node in &c.nodes {
        if let Some(ch) = node.speaker.as_ref() {
            pids.push((node.name.clone(), ch.id()));
        }
    }
    let burst_start: Vec<Option<u64>> = pids.iter().map(|(_, p)| Cluster::cpu_ticks(*p)).collect();
    let t0 = Instant::now();
    for k in 0..n {
        let mut spec = ServiceSpec::new(&format!("idle-{k}"), port);
        spec.families = Families::V6;
        spec.pool = Some(BENCH_POOL.to_owned());
        c.create_service(&spec, None).await?;
    }
    let created = t0.elapsed();
    let deadline = t0 + Duration::from_secs(120);
    let ips = loop {
        let ips: Vec<IpAddr> = c
            .services()
            .await?
            .iter()
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("idle-"))
            })
            .flat_map(objects::ingress_ips)
            .collect();
        if ips.len() >= n {
            break ips;
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} Services got an IP within 120 s", ips.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all_assigned = t0.elapsed();
    // Every speaker's (IP, interface) pairs, summed: each IP announced once.
    let all_announced = loop {
        let pairs: f64 = c
            .nodes
            .iter()
            .filter_map(|node| c.speaker_metric(&node.name, "ferrolb_speaker_announced_ips"))
            .sum();
        if pairs >= n as f64 {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            bail!("only {pairs} of {n} IPs announced within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A sample, spread over the range, proves they are announced (every IP
    // would overflow the kernel's shared neighbour table, 1,024 entries).
    let step = (n / 50).max(1);
    let sample: Vec<IpAddr> = ips.iter().step_by(step).copied().collect();
    for ip in &sample {
        let left = deadline.saturating_duration_since(Instant::now());
        c.wait_answer(*ip, port, left).await?;
    }
    let sample_answered = t0.elapsed();
    // The last gratuitous burst ends 3.3 s after a takeover; then idle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before: Vec<Option<u64>> = pids.iter().map(|(_, p)| Cluster::cpu_ticks(*p)).collect();
    // CPU spent taking the burst in: from the first create to idle.
    let burst: Vec<Option<f64>> = burst_start
        .iter()
        .zip(&before)
        .map(|(a, b)| Some(b.as_ref()?.checked_sub(*a.as_ref()?)? as f64 / 100.0))
        .collect();
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let mut procs = Vec::new();
    for (((name, pid), b), burst_cpu) in pids.iter().zip(before).zip(burst) {
        let cpu = match (b, Cluster::cpu_ticks(*pid)) {
            (Some(b), Some(a)) => Some((a - b) as f64 / 100.0 / window.as_secs_f64() * 100.0),
            _ => None,
        };
        let speaker = name != "controller";
        procs.push(json!({
            "name": name,
            "rss_kib": Cluster::rss_kib(*pid),
            "peak_rss_kib": Cluster::peak_rss_kib(*pid),
            "idle_cpu_percent": cpu,
            "burst_cpu_s": burst_cpu,
            "announced_ips": speaker.then(|| c.speaker_metric(name, "ferrolb_speaker_announced_ips")).flatten(),
            "multicast_errors": speaker
                .then(|| c.speaker_metric_with(name, "ferrolb_speaker_transport_errors_total", "op=\"multicast\""))
                .flatten(),
        }));
    }
    Ok(Idle {
        services: n,
        created,
        all_announced,
        all_assigned,
        sample_answered,
        sampled: sample.len(),
        window,
        procs,
    })
}
