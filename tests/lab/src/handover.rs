//! Speakers stopped on purpose while the client keeps requesting (issue
//! 14): a rolling restart of every speaker, one node at a time, and the
//! drain of one node. Both are judged by [`crate::load`]'s failed
//! requests: a connect every 10 ms to every target, 1 s timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::load::{Load, LoadOptions, Tally};
use crate::objects::{Families, ServiceSpec};
use crate::stats::ms;

/// Between two requests to one target.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// How long a SIGTERMed speaker may take to exit: kubelet's default
/// `terminationGracePeriodSeconds`.
pub const EXIT_LIMIT: Duration = Duration::from_secs(30);
/// How long a started speaker may take to be ready and settled.
pub const READY_LIMIT: Duration = Duration::from_secs(30);
/// Requests before the first stop and after the last step, so a stop's
/// effects are inside the window.
pub const MARGIN: Duration = Duration::from_millis(1000);

/// One node's part of a rolling restart, or the drained node.
#[derive(Debug, Clone)]
pub struct Step {
    /// The node.
    pub node: String,
    /// The speaker's exit status after SIGTERM.
    pub exit_status: String,
    /// SIGTERM -> exited.
    pub exited_after: Duration,
    /// Started again -> ready, converged and every IP announced again
    /// (`None`: not restarted while measured, as for the drain).
    pub settled_after: Option<Duration>,
}

impl Step {
    fn to_json(&self) -> Value {
        json!({
            "node": self.node,
            "exit_status": self.exit_status,
            "exited_after_ms": ms(self.exited_after),
            "settled_after_ms": self.settled_after.map(ms),
        })
    }
}

/// What a rolling restart or a drain cost the client.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The requests and their failures.
    pub tally: Tally,
    /// IPs requested.
    pub targets: usize,
    /// How long the requests ran.
    pub duration: Duration,
    /// Per stopped speaker.
    pub steps: Vec<Step>,
}

impl Handover {
    /// As JSON: `failed_requests`, `requests` and the details.
    pub fn to_json(&self) -> Value {
        let mut v = self.tally.to_json();
        v["targets"] = json!(self.targets);
        v["interval_ms"] = json!(ms(INTERVAL));
        v["timeout_ms"] = json!(ms(crate::load::REQUEST_TIMEOUT));
        v["duration_s"] = json!(self.duration.as_secs_f64());
        v["steps"] = self.steps.iter().map(Step::to_json).collect();
        v
    }
}

/// Creates `count` dual-stack Services `prefix-K` on `port` and waits
/// until each IP answers; returns every `IP:port`. With the default pool's
/// IPs hashed over the nodes, 10 Services give every node of a 3-node lab
/// some IPs.
pub async fn spread_services(
    c: &Cluster,
    prefix: &str,
    count: usize,
    port: u16,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut targets = Vec::new();
    for k in 0..count {
        let name = format!("{prefix}-{k}");
        let mut spec = ServiceSpec::new(&name, port);
        spec.families = Families::Dual;
        c.create_service(&spec, None).await?;
        let ips = c.wait_ips(&name, 2, Duration::from_secs(20)).await?;
        targets.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
    }
    for t in &targets {
        c.wait_answer(t.ip(), port, Duration::from_secs(10)).await?;
    }
    Ok(targets)
}

/// The (IP, interface) pairs each running speaker announces, once two
/// reads a second apart agree (no takeover under way): what a settled lab
/// comes back to after each restart.
async fn settled_pairs(c: &Cluster) -> anyhow::Result<BTreeMap<String, f64>> {
    c.wait_converged(Duration::from_secs(30)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        let now: Option<BTreeMap<String, f64>> = c
            .nodes
            .iter()
            .filter(|n| n.speaker.is_some())
            .map(|n| {
                let pairs = c.speaker_metric(&n.name, "ferrolb_speaker_announced_ips")?;
                Some((n.name.clone(), pairs))
            })
            .collect();
        if now.is_some() && now == last {
            return now.context("announced pairs");
        }
        if Instant::now() > deadline {
            anyhow::bail!("the announced pairs did not settle within 30 s ({now:?})");
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `node`'s share of `pairs` and their sum.
fn shares(pairs: &BTreeMap<String, f64>, node: &str) -> (f64, f64) {
    (
        pairs.get(node).copied().unwrap_or(0.0),
        pairs.values().sum(),
    )
}

/// Restarts every speaker, one node at a time (SIGTERM, wait for the exit,
/// start it again, wait until it is ready, gossip converged and every IP
/// is announced once again, next node), while the client requests every
/// target every 10 ms.
pub async fn rolling_restart(c: &mut Cluster, targets: &[SocketAddr]) -> anyhow::Result<Handover> {
    let pairs = settled_pairs(c).await?;
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    let per_node = EXIT_LIMIT + READY_LIMIT;
    let limit = per_node * names.len() as u32 + MARGIN * 4;
    let load = Load::start(
        &c.client,
        targets.to_vec(),
        LoadOptions::every(INTERVAL, limit),
    )?;
    tokio::time::sleep(MARGIN).await;
    let mut steps = Vec::new();
    for name in names {
        let t0 = Instant::now();
        c.term_speaker(&name)?;
        let exit_status = c.wait_speaker_exit(&name, EXIT_LIMIT).await?;
        let exited_after = t0.elapsed();
        c.start_speaker(&name)?;
        let t1 = Instant::now();
        let (own, total) = shares(&pairs, &name);
        c.wait_speaker_settled(&name, own, total, READY_LIMIT)
            .await?;
        steps.push(Step {
            node: name,
            exit_status,
            exited_after,
            settled_after: Some(t1.elapsed()),
        });
    }
    tokio::time::sleep(MARGIN).await;
    let duration = load.elapsed();
    let records = load.finish().await?;
    Ok(Handover {
        tally: Tally::of(&records),
        targets: targets.len(),
        duration,
        steps,
    })
}

/// The node whose MAC the client holds for most of `targets` (after
/// requests, every target has a neighbour entry).
pub fn busiest_owner(c: &Cluster, targets: &[SocketAddr]) -> Option<String> {
    let mut counts = BTreeMap::<String, usize>::new();
    for t in targets {
        if let Some(owner) = c.announced_by(t.ip()) {
            *counts.entry(owner).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(n, _)| n)
}

/// Drains the node owning most targets: its speaker gets SIGTERM (the node
/// stays up, as when kubectl drain evicts the speaker's Pod) while the
/// client requests every target every 10 ms, until 2 s after the speaker
/// exited. Then, no longer measured, the speaker is started again and the
/// lab settles.
pub async fn drain(c: &mut Cluster, targets: &[SocketAddr]) -> anyhow::Result<Handover> {
    let pairs = settled_pairs(c).await?;
    let limit = EXIT_LIMIT + MARGIN * 4 + Duration::from_secs(2);
    let load = Load::start(
        &c.client,
        targets.to_vec(),
        LoadOptions::every(INTERVAL, limit),
    )?;
    tokio::time::sleep(MARGIN).await;
    let node = busiest_owner(c, targets).context("no target has a neighbour entry")?;
    let t0 = Instant::now();
    c.term_speaker(&node)?;
    let exit_status = c.wait_speaker_exit(&node, EXIT_LIMIT).await?;
    let exited_after = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let duration = load.elapsed();
    let records = load.finish().await?;
    c.start_speaker(&node)?;
    let (own, total) = shares(&pairs, &node);
    c.wait_speaker_settled(&node, own, total, READY_LIMIT)
        .await?;
    Ok(Handover {
        tally: Tally::of(&records),
        targets: targets.len(),
        duration,
        steps: vec![Step {
            node,
            exit_status,
            exited_after,
            settled_after: None,
        }],
    })
}
