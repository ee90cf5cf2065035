//! The bench's soaks (issue 14): with [`SOAK_SERVICES`] dual-stack
//! Services announced (every node of a small lab owns some), no IP may
//! move while (a) busy loops saturate every CPU, or (b) the busiest
//! owner's speaker is held to a small share of one CPU by a cgroup.
//!
//! Ownership changes are counted three ways: the node answering each IP
//! (a request every 100 ms per IP, [`crate::load`]), the node whose MAC
//! the client's neighbour entry holds (read every second), and the
//! speakers' own `ferrolb_speaker_leader_changes_total`, summed over
//! speakers before and after (one move counts once per speaker that
//! computed it).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::load::{Load, LoadOptions, Tally};
use crate::stress::{Burners, CpuLimit};

/// Services announced during the soaks.
pub(super) const SOAK_SERVICES: usize = 20;
/// A request to each IP this often.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// The client's neighbour table is read this often.
const NEIGHBOUR_INTERVAL: Duration = Duration::from_secs(1);
/// The speakers' counter of owner changes.
const LEADER_CHANGES: &str = "ferrolb_speaker_leader_changes_total";

/// What one soak saw.
pub(super) struct Soak {
    duration: Duration,
    tally: Tally,
    neighbour_changes: u64,
    leader_changes: Option<f64>,
    /// What was done to the lab (busy loops, the throttled node).
    condition: Value,
}

impl Soak {
    /// Changes of the node the client reached: the larger of the answer
    /// and the neighbour-entry counts (both see the same move).
    fn ownership_changes(&self) -> u64 {
        self.tally.answer_changes.max(self.neighbour_changes)
    }

    pub(super) fn to_json(&self) -> Value {
        let mut v = json!({
            "duration_s": self.duration.as_secs_f64(),
            "ownership_changes": self.ownership_changes(),
            "answer_changes": self.tally.answer_changes,
            "neighbour_changes": self.neighbour_changes,
            "speaker_leader_changes": self.leader_changes,
            "failed_probes": self.tally.failed,
            "probes": self.tally.requests,
            "failures": self.tally.failures,
            "probe_interval_ms": crate::stats::ms(PROBE_INTERVAL),
            "probe_timeout_ms": crate::stats::ms(crate::load::REQUEST_TIMEOUT),
        });
        if let (Some(out), Some(cond)) = (v.as_object_mut(), self.condition.as_object()) {
            out.extend(cond.clone());
        }
        v
    }

    /// One table line.
    pub(super) fn row(&self, name: &str) -> String {
        format!(
            "{name:<18} {:>7.0} {:>9} {:>8} {:>9} {:>10} {:>8} {:>9}",
            self.duration.as_secs_f64(),
            self.ownership_changes(),
            self.tally.answer_changes,
            self.neighbour_changes,
            self.leader_changes
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
            self.tally.failed,
            self.tally.requests
        )
    }

    /// What was done, for a line under the table.
    pub(super) fn condition(&self) -> String {
        let c = &self.condition;
        match c.get("node") {
            Some(node) => format!(
                "{} ({} of the IPs) at {:.0} % of a CPU, throttled in {} periods",
                node.as_str().unwrap_or("?"),
                c["node_ips"],
                c["cpu_share"].as_f64().unwrap_or(0.0) * 100.0,
                c["throttled_periods"]
            ),
            None => format!("{} busy loops", c["busy_loops"]),
        }
    }

    /// The header of [`Soak::row`].
    pub(super) fn header() -> String {
        format!(
            "{:<18} {:>7} {:>9} {:>8} {:>9} {:>10} {:>8} {:>9}",
            "soak", "secs", "changes", "answers", "neighbour", "speakers", "failed", "probes"
        )
    }
}

/// The sum of the speakers' owner-change counters, retried for a few
/// seconds (a speaker slowed by the soak may answer late).
async fn leader_changes(c: &Cluster) -> Option<f64> {
    for _ in 0..20 {
        if let Some(v) = c.speakers_sum(LEADER_CHANGES) {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Requests every target every 100 ms and reads the client's neighbour
/// table every second, for `duration`.
async fn observe(
    c: &Cluster,
    targets: &[SocketAddr],
    duration: Duration,
) -> anyhow::Result<(Tally, u64)> {
    let limit = duration + Duration::from_secs(5);
    let load = Load::start(
        &c.client,
        targets.to_vec(),
        LoadOptions::every(PROBE_INTERVAL, limit),
    )?;
    let ips: Vec<IpAddr> = targets.iter().map(SocketAddr::ip).collect();
    let mut owners: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut changes = 0;
    let start = Instant::now();
    let rounds = (duration.as_millis() / NEIGHBOUR_INTERVAL.as_millis()).max(1);
    for k in 1..=rounds {
        let table = c.client.neighbours().unwrap_or_default();
        for n in table.into_iter().filter(|n| ips.contains(&n.dst)) {
            let Some(mac) = n.lladdr else { continue };
            let Some(node) = c.nodes.iter().find(|x| x.mac == mac) else {
                continue;
            };
            if let Some(before) = owners.insert(n.dst, node.name.clone()) {
                if before != node.name {
                    changes += 1;
                }
            }
        }
        let next = start + NEIGHBOUR_INTERVAL * k as u32;
        tokio::time::sleep_until(next.into()).await;
    }
    let records = load.finish().await?;
    Ok((Tally::of(&records), changes))
}

/// One soak: the speakers' owner changes summed before, `stress` started,
/// [`observe`] for `duration`, `stop` ends the stress and says what it
/// was, the owner changes after.
async fn soak_under<S>(
    c: &Cluster,
    targets: &[SocketAddr],
    duration: Duration,
    stress: impl FnOnce() -> anyhow::Result<S>,
    stop: impl FnOnce(S) -> Value,
) -> anyhow::Result<Soak> {
    let before = leader_changes(c).await;
    let running = stress()?;
    let seen = observe(c, targets, duration).await;
    let condition = stop(running);
    let (tally, neighbour_changes) = seen?;
    let after = leader_changes(c).await;
    Ok(Soak {
        duration,
        tally,
        neighbour_changes,
        leader_changes: after.zip(before).map(|(a, b)| a - b),
        condition,
    })
}

/// Soak (a): one busy loop per CPU for `duration`.
pub(super) async fn cpu_saturated(
    c: &Cluster,
    targets: &[SocketAddr],
    duration: Duration,
) -> anyhow::Result<Soak> {
    let exe = std::env::current_exe()?;
    let start = || Burners::start(&exe, duration + Duration::from_secs(30));
    soak_under(c, targets, duration, start, |burners| {
        let count = burners.len();
        burners.stop();
        json!({ "busy_loops": count })
    })
    .await
}

/// Soak (b): the speaker of the node owning most targets held to `share`
/// of one CPU (cgroup `cpu.cfs_quota_us` or `cpu.max`) for `duration`.
pub(super) async fn owner_throttled(
    c: &Cluster,
    targets: &[SocketAddr],
    duration: Duration,
    share: f64,
) -> anyhow::Result<Soak> {
    let node = crate::handover::busiest_owner(c, targets)
        .ok_or_else(|| anyhow::anyhow!("no target has a neighbour entry"))?;
    let pid = c
        .speaker_pid(&node)
        .ok_or_else(|| anyhow::anyhow!("{node} has no speaker"))?;
    let owned = targets
        .iter()
        .filter(|t| c.announced_by(t.ip()).as_deref() == Some(node.as_str()))
        .count();
    let name = format!("ferrolb-lab-{}-throttle", std::process::id());
    let start = || CpuLimit::apply(&name, pid, share);
    soak_under(c, targets, duration, start, |limit| {
        let throttled = limit.throttled_periods();
        drop(limit);
        json!({
            "node": node,
            "node_ips": owned,
            "cpu_share": share,
            "throttled_periods": throttled,
        })
    })
    .await
}
