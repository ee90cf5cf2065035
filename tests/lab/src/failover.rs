//! Failover measurements: take the owner of an IP down and request every
//! 10 ms from the client until another node answers.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cluster::Cluster;

/// How the owner goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The node dies: switch port down, speaker SIGKILLed.
    NodeDeath,
    /// The speaker is stopped with SIGTERM (it leaves gossip first and
    /// answers until the new owner announces); the node stays up.
    GracefulStop,
}

/// One measured failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// The owner before.
    pub from: String,
    /// The node that answered afterwards.
    pub to: String,
    /// From the fault to the first answer from `to`.
    pub gap: Duration,
    /// Requests sent meanwhile.
    pub probes: u32,
}

/// Interval between requests.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// connect() timeout of each request.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(20);

/// Finds the owner of `ip` (the node answering), applies `fault` to it and
/// measures until another node answers, at most `limit`. The old owner is
/// left down: call [`Cluster::restore_node`].
pub async fn measure(
    cluster: &mut Cluster,
    ip: IpAddr,
    port: u16,
    fault: Fault,
    limit: Duration,
) -> anyhow::Result<Failover> {
    let from = cluster
        .wait_answer(ip, port, Duration::from_secs(5))
        .await?;
    let t0 = Instant::now();
    match fault {
        Fault::NodeDeath => cluster.kill_node(&from)?,
        Fault::GracefulStop => cluster.term_speaker(&from)?,
    }
    let mut probes = 0;
    let result = loop {
        let start = Instant::now();
        probes += 1;
        if let Ok(answer) = cluster.probe(ip, port, PROBE_TIMEOUT).await {
            if answer != from {
                break Ok(Failover {
                    from: from.clone(),
                    to: answer,
                    gap: t0.elapsed(),
                    probes,
                });
            }
        }
        if t0.elapsed() > limit {
            break Err(anyhow::anyhow!(
                "no other node answered for {ip} within {limit:?} after {fault:?} of {from} \
                 (client neighbour entry: {:?})",
                cluster.client.neighbour(ip).ok().flatten()
            ));
        }
        tokio::time::sleep_until((start + PROBE_INTERVAL).into()).await;
    };
    if fault == Fault::GracefulStop {
        let status = cluster.reap_speaker(&from)?;
        if !status.contains("exit status: 0") {
            bail!("{from}'s speaker exited with {status} on SIGTERM");
        }
    }
    result
}

/// After [`Cluster::restore_node`]: waits until gossip has converged and
/// one node answers steadily (the restored node may take its IPs back and
/// send its gratuitous burst), so the next round starts from a settled lab.
pub async fn settle(cluster: &Cluster, ip: IpAddr, port: u16) -> anyhow::Result<String> {
    cluster.wait_converged(Duration::from_secs(15)).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last: Option<(String, Instant)> = None;
    loop {
        let answer = cluster
            .wait_answer(ip, port, Duration::from_secs(5))
            .await?;
        match &last {
            Some((a, since)) if *a == answer => {
                if since.elapsed() >= Duration::from_millis(1500) {
                    return Ok(answer);
                }
            }
            _ => last = Some((answer, Instant::now())),
        }
        if Instant::now() > deadline {
            bail!("answers for {ip} did not settle within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
