//! The bench's last part: many Services at once, then memory and CPU of
//! every process once nothing changes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::usage::{percent, process_json, processes_table, CpuMark};
use super::PORT;
use crate::cluster::Cluster;
use crate::objects::{self, Families, ServiceSpec};
use crate::stats::ms;

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
        print!("{}", processes_table(&self.procs));
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
    c.create_pool(BENCH_POOL, &[format!("2001:db8:0:1::1000-{last}")])
        .await?;
    c.advertise_pool(BENCH_POOL).await?;
    if progress {
        println!("\ncreating {n} IPv6 Services in pool {BENCH_POOL}...");
    }
    let port = PORT + 2;
    let pids = c.component_pids();
    let burst_start = CpuMark::now(&pids);
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
    let before = CpuMark::now(&pids);
    // CPU spent taking the burst in: from the first create to idle.
    let burst = before.seconds_after(&burst_start);
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let mut procs = Vec::new();
    let idle = before.seconds_since(&pids);
    for (((name, pid), idle_cpu), burst_cpu) in pids.iter().zip(idle).zip(burst) {
        let cpu = percent(idle_cpu, window);
        procs.push(process_json(c, name, *pid, cpu, burst_cpu));
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
