//! `ferrolb-lab bench`: failover (node death, graceful stop) and
//! create-to-IP / create-to-answer, in rounds; then the idle measurements
//! ([`super::idle`]).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::idle::idle_with_services;
use super::{report_dead, start, Setup, PORT};
use crate::cluster::Cluster;
use crate::failover::{self, Fault};
use crate::objects::{Families, ServiceSpec};
use crate::stats::{ms, Summary};

/// Creates Service `name` and waits for its IPs and a first answer.
async fn web(c: &Cluster, name: &str) -> anyhow::Result<Vec<IpAddr>> {
    c.create_service(&ServiceSpec::new(name, PORT), None)
        .await?;
    let ips = c.wait_ips(name, 2, Duration::from_secs(20)).await?;
    for ip in &ips {
        c.wait_answer(*ip, PORT, Duration::from_secs(10)).await?;
    }
    Ok(ips)
}

/// Runs `rounds` of each measurement, then creates `services` Services
/// and measures the processes idle; prints a table or JSON (`json_out`).
pub async fn bench(
    setup: &Setup,
    rounds: usize,
    json_out: bool,
    v6: bool,
    services: usize,
) -> anyhow::Result<()> {
    if setup.nodes < 2 {
        bail!("bench fails over, so it needs at least 2 nodes");
    }
    let mut c = start(setup, !json_out).await?;
    let ips = web(&c, "web").await?;
    let ip = if v6 { ips[1] } else { ips[0] };
    let limit = Duration::from_secs(10);
    let (mut death, mut graceful) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for fault in [Fault::NodeDeath, Fault::GracefulStop] {
            let f = failover::measure(&mut c, ip, PORT, fault, limit).await?;
            if !json_out {
                println!(
                    "round {round:>2} {fault:?}: {} -> {} in {:.1} ms",
                    f.from,
                    f.to,
                    ms(f.gap)
                );
            }
            match fault {
                Fault::NodeDeath => death.push(f.gap),
                Fault::GracefulStop => graceful.push(f.gap),
            }
            c.restore_node(&f.from)?;
            failover::settle(&c, ip, PORT).await?;
            report_dead(&mut c)?;
        }
    }
    let (mut assign, mut answer) = (Vec::new(), Vec::new());
    for k in 0..rounds {
        let name = format!("c2a-{k}");
        let t0 = Instant::now();
        let mut spec = ServiceSpec::new(&name, PORT + 1);
        spec.families = Families::V4;
        c.create_service(&spec, None).await?;
        let ips = c.wait_ips(&name, 1, Duration::from_secs(10)).await?;
        assign.push(t0.elapsed());
        loop {
            let start = Instant::now();
            if c.probe(ips[0], PORT + 1, failover::PROBE_TIMEOUT)
                .await
                .is_ok()
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("{name} ({}) never answered", ips[0]);
            }
            tokio::time::sleep_until((start + failover::PROBE_INTERVAL).into()).await;
        }
        answer.push(t0.elapsed());
        c.delete_service(&name).await?;
    }
    let idle = idle_with_services(&c, services, !json_out).await?;
    let summaries = [
        ("failover_node_death", Summary::of(&death)),
        ("failover_graceful_stop", Summary::of(&graceful)),
        ("create_to_ip_assigned", Summary::of(&assign)),
        ("create_to_first_answer", Summary::of(&answer)),
    ];
    if json_out {
        let mut out = serde_json::Map::new();
        out.insert("nodes".into(), json!(setup.nodes));
        out.insert("rounds".into(), json!(rounds));
        out.insert("family".into(), json!(if v6 { "IPv6" } else { "IPv4" }));
        for (name, s) in &summaries {
            out.insert((*name).into(), s.map(|s| s.to_json()).into());
        }
        out.insert("idle".into(), idle.to_json());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "\n{rounds} rounds, {} nodes, {} (requests every 10 ms, 20 ms connect timeout)",
            setup.nodes,
            if v6 { "IPv6" } else { "IPv4" }
        );
        println!(
            "{:<26} {:>9} {:>9} {:>9} {:>9}",
            "measurement (ms)", "min", "p50", "p99", "max"
        );
        for (name, s) in &summaries {
            if let Some(s) = s {
                println!(
                    "{name:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    ms(s.min),
                    ms(s.p50),
                    ms(s.p99),
                    ms(s.max)
                );
            }
        }
        idle.print();
    }
    drop(c);
    Ok(())
}
