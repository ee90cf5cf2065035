//! Issue 15's bench: do IPs stay put? With every speaker given an
//! ownership mode (`FERROLB_OWNERSHIP`, [`Mode`]), on IPv4 Services of
//! their own:
//!
//! - [`placement`]: IPs per node once every Service is announced;
//! - [`node_return`]: a node dies (switch port down, speaker SIGKILLed)
//!   and returns; IPs whose owner changed on its return, and how long the
//!   takeover took to reach the ServiceL2Status record
//!   ([`l2status::record_delay`]);
//! - [`partition_heal`]: a node cut off the LAN (its switch port blocked,
//!   carrier kept) until both sides announce its IPs, then healed: the
//!   time until every IP has one answering MAC again, and the IPs that
//!   ended elsewhere.
//!
//! Owners are what a station on the LAN sees: the MACs answering the
//! client's who-has ([`crate::arp`]), mapped to nodes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::arp;
use crate::cluster::Cluster;
use crate::failover::Fault;
use crate::l2status::{self, RecordDelay};
use crate::objects::{Families, ServiceSpec};
use crate::stats::ms;

/// The speakers' environment variable for their `--ownership` flag.
pub const ENV: &str = "FERROLB_OWNERSHIP";
/// How long a sweep collects answers.
pub const WINDOW: Duration = Duration::from_millis(150);
/// After a returned speaker is live: its listening phase (up to 3 s) and
/// a margin, before its owners are read.
pub const RETURN_SETTLE: Duration = Duration::from_secs(5);
/// How long the cut node stays cut once both sides announce: long enough
/// for SWIM, not only the heartbeats, to declare the other side down.
pub const PARTITION_HOLD: Duration = Duration::from_secs(5);
/// After a heal, one MAC per IP must hold this long to count.
pub const STEADY: Duration = Duration::from_secs(2);
/// Bound of each wait here.
const LIMIT: Duration = Duration::from_secs(30);

/// How the speakers place IPs (the speaker's `--ownership`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An IP stays with the live node announcing it; new and orphaned IPs
    /// go to the node with the fewest.
    Sticky,
    /// MetalLB's hash: the owner is a function of the live candidates.
    Hash,
}

impl Mode {
    /// `sticky` or `hash`, the flag's value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sticky => "sticky",
            Self::Hash => "hash",
        }
    }

    /// The other mode.
    pub fn other(self) -> Self {
        match self {
            Self::Sticky => Self::Hash,
            Self::Hash => Self::Sticky,
        }
    }

    /// The speakers' environment entry for this mode.
    pub fn env(self) -> (String, String) {
        (ENV.to_owned(), self.name().to_owned())
    }
}

/// The node answering each IP.
pub type Owners = BTreeMap<IpAddr, String>;

/// One sweep's answers by node name (a MAC no node has is shown as is).
async fn answering(c: &Cluster, ips: &[IpAddr]) -> anyhow::Result<BTreeMap<IpAddr, Vec<String>>> {
    let answers = arp::sweep(&c.client, ips, WINDOW).await?;
    Ok(answers
        .into_iter()
        .map(|(ip, macs)| {
            let names = macs
                .iter()
                .map(|m| {
                    c.nodes
                        .iter()
                        .find(|n| n.mac.0 == m.0)
                        .map_or_else(|| format!("{m:?}"), |n| n.name.clone())
                })
                .collect();
            (ip, names)
        })
        .collect())
}

/// The owners, when every IP has exactly one answering node.
fn single(answers: &BTreeMap<IpAddr, Vec<String>>) -> Option<Owners> {
    answers
        .iter()
        .map(|(ip, names)| match names.as_slice() {
            [one] => Some((*ip, one.clone())),
            _ => None,
        })
        .collect()
}

/// What is wrong with a sweep, for an error message.
fn problems(answers: &BTreeMap<IpAddr, Vec<String>>) -> String {
    let bad: Vec<String> = answers
        .iter()
        .filter(|(_, n)| n.len() != 1)
        .map(|(ip, n)| format!("{ip}: {n:?}"))
        .collect();
    format!("{} of {} IPs: {}", bad.len(), answers.len(), bad.join(", "))
}

/// Sweeps until two sweeps in a row show one answering node per IP, the
/// same ones; returns them. At most `limit`.
pub async fn settled_owners(
    c: &Cluster,
    ips: &[IpAddr],
    limit: Duration,
) -> anyhow::Result<Owners> {
    let deadline = Instant::now() + limit;
    let mut last: Option<Owners> = None;
    loop {
        let answers = answering(c, ips).await?;
        let now = single(&answers);
        if now.is_some() && now == last {
            return now.context("owners");
        }
        if Instant::now() > deadline {
            bail!(
                "the owners did not settle within {limit:?}: {}",
                problems(&answers)
            );
        }
        last = now;
    }
}

/// IPs per node, every node of the lab included (zeros too).
pub fn counts(c: &Cluster, owners: &Owners) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = c.nodes.iter().map(|n| (n.name.clone(), 0)).collect();
    for node in owners.values() {
        *out.entry(node.clone()).or_default() += 1;
    }
    out
}

/// The largest count minus the smallest.
pub fn spread(counts: &BTreeMap<String, usize>) -> usize {
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

/// IPs whose owner differs between `a` and `b`.
pub fn moved(a: &Owners, b: &Owners) -> Vec<IpAddr> {
    a.iter()
        .filter(|(ip, node)| b.get(ip).is_some_and(|n| n != *node))
        .map(|(ip, _)| *ip)
        .collect()
}

fn counts_text(counts: &BTreeMap<String, usize>) -> String {
    let v: Vec<String> = counts.values().map(usize::to_string).collect();
    v.join("/")
}

/// Creates `count` single-stack IPv4 Services `prefix-K` on `port` and
/// waits for each one's IP; returns `(name, IP)`, in creation order.
pub async fn create_services(
    c: &Cluster,
    prefix: &str,
    count: usize,
    port: u16,
) -> anyhow::Result<Vec<(String, IpAddr)>> {
    let mut out = Vec::new();
    for k in 0..count {
        let name = format!("{prefix}-{k}");
        let mut spec = ServiceSpec::new(&name, port);
        spec.families = Families::V4;
        c.create_service(&spec, None).await?;
        let ip = c.wait_ips(&name, 1, Duration::from_secs(20)).await?[0];
        out.push((name, ip));
    }
    Ok(out)
}

/// IPs per node once every Service is announced.
#[derive(Debug, Clone)]
pub struct Placement {
    /// IPs per node.
    pub counts: BTreeMap<String, usize>,
    /// From the first create to every IP answered by one node.
    pub announced_after: Duration,
}

impl Placement {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "counts": self.counts,
            "spread": spread(&self.counts),
            "announced_after_ms": ms(self.announced_after),
        })
    }
}

/// Waits until every one of `ips` (created from `t0` on) has one
/// answering node and counts them per node.
pub async fn placement(c: &Cluster, ips: &[IpAddr], t0: Instant) -> anyhow::Result<Placement> {
    let owners = settled_owners(c, ips, LIMIT).await?;
    Ok(Placement {
        counts: counts(c, &owners),
        announced_after: t0.elapsed(),
    })
}

/// A node's death and return.
#[derive(Debug, Clone)]
pub struct NodeReturn {
    /// The node that died and returned.
    pub node: String,
    /// IPs per node before the death, after the takeover, after the return.
    pub before: BTreeMap<String, usize>,
    /// See [`NodeReturn::before`].
    pub after_failover: BTreeMap<String, usize>,
    /// See [`NodeReturn::before`].
    pub after_return: BTreeMap<String, usize>,
    /// IPs whose owner changed between the takeover and the return.
    pub moved: Vec<IpAddr>,
    /// Of them, those now on the returned node.
    pub moved_back: usize,
    /// Started again -> its speaker ready and gossip converged.
    pub live_after: Duration,
    /// The first Service's failover and its record.
    pub record: RecordDelay,
}

impl NodeReturn {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "node": self.node,
            "before": self.before,
            "after_failover": self.after_failover,
            "after_return": self.after_return,
            "moved": self.moved.len(),
            "moved_back": self.moved_back,
            "moved_ips": self.moved,
            "live_after_ms": ms(self.live_after),
            "settle_ms": ms(RETURN_SETTLE),
        })
    }
}

/// Waits until node `name`'s speaker answers `/readyz` and gossip has
/// converged, at most `limit`.
async fn wait_live(c: &Cluster, name: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !c.speaker_ready(name) {
        if Instant::now() > deadline {
            bail!("{name}'s speaker was not ready within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait_converged(deadline.saturating_duration_since(Instant::now()))
        .await
}

/// Kills the node owning the first of `services` ([`Fault::NodeDeath`]:
/// switch port down, speaker SIGKILL), measuring until its record names
/// the new owner; waits until every IP is served again; brings the node
/// back, waits until its speaker is live plus [`RETURN_SETTLE`]; compares
/// the owners.
pub async fn node_return(
    c: &mut Cluster,
    services: &[(String, IpAddr)],
    port: u16,
) -> anyhow::Result<NodeReturn> {
    let ips: Vec<IpAddr> = services.iter().map(|(_, ip)| *ip).collect();
    let (name, ip) = services.first().context("no Service")?;
    let before = settled_owners(c, &ips, LIMIT).await?;
    let record = l2status::record_delay(c, name, *ip, port, Fault::NodeDeath, LIMIT).await?;
    let node = record.failover.from.clone();
    let after_failover = settled_owners(c, &ips, LIMIT).await?;
    let t = Instant::now();
    c.restore_node(&node)?;
    wait_live(c, &node, LIMIT).await?;
    let live_after = t.elapsed();
    tokio::time::sleep(RETURN_SETTLE).await;
    let after_return = settled_owners(c, &ips, LIMIT).await?;
    let moved = moved(&after_failover, &after_return);
    let moved_back = moved.iter().filter(|ip| after_return[*ip] == node).count();
    Ok(NodeReturn {
        before: counts(c, &before),
        after_failover: counts(c, &after_failover),
        after_return: counts(c, &after_return),
        node,
        moved,
        moved_back,
        live_after,
        record,
    })
}

/// A partition of one node and its heal.
#[derive(Debug, Clone)]
pub struct Heal {
    /// The node cut off: the one answering most IPs.
    pub node: String,
    /// IPs it answered before the cut.
    pub owned_before: usize,
    /// Cut -> the rest of the LAN has one answer per IP and the cut node
    /// still announces every (IP, interface) pair it announced before.
    pub split_after: Duration,
    /// (IP, interface) pairs the cut node announced while cut.
    pub announced_while_cut: Option<f64>,
    /// Heal -> the first sweep from which one MAC per IP held for
    /// [`STEADY`]; `None` if that did not happen within the bound.
    pub single_owner_after: Option<Duration>,
    /// The most IPs answered by two or more MACs in one sweep after the
    /// heal.
    pub most_doubled: usize,
    /// Sweeps after the heal with an IP answered by none or several.
    pub unsettled_sweeps: usize,
    /// IPs whose owner after the heal differs from before the cut.
    pub moved: Vec<IpAddr>,
    /// IPs per node after the heal.
    pub after: BTreeMap<String, usize>,
}

impl Heal {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "node": self.node,
            "owned_before": self.owned_before,
            "split_after_ms": ms(self.split_after),
            "announced_while_cut": self.announced_while_cut,
            "hold_ms": ms(PARTITION_HOLD),
            "single_owner_after_ms": self.single_owner_after.map(ms),
            "steady_ms": ms(STEADY),
            "sweep_window_ms": ms(WINDOW),
            "most_doubled": self.most_doubled,
            "unsettled_sweeps": self.unsettled_sweeps,
            "moved": self.moved.len(),
            "moved_ips": self.moved,
            "after": self.after,
        })
    }
}

/// Unblocks a node's switch port when dropped (an error path included).
struct Blocked<'a>(&'a netlab::Host);

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.port_unblock() {
            eprintln!("ferrolb-lab: unblocking {}: {e}", self.0.name());
        }
    }
}

const ANNOUNCED: &str = "ferrolb_speaker_announced_ips";

/// Cuts the node answering most of `ips` off the LAN (its switch port
/// stops forwarding; it keeps its carrier, so it keeps announcing), waits
/// for the split brain plus [`PARTITION_HOLD`], heals it and sweeps until
/// one MAC per IP holds for [`STEADY`].
pub async fn partition_heal(c: &Cluster, ips: &[IpAddr]) -> anyhow::Result<Heal> {
    let before = settled_owners(c, ips, LIMIT).await?;
    let by_node = counts(c, &before);
    let (node, owned_before) = by_node
        .iter()
        .max_by_key(|(name, n)| (**n, std::cmp::Reverse(*name)))
        .map(|(name, n)| (name.clone(), *n))
        .context("no node")?;
    let pairs_before = c
        .speaker_metric(&node, ANNOUNCED)
        .with_context(|| format!("{node}'s {ANNOUNCED}"))?;
    let host = c.node(&node)?.host.clone();
    let t = Instant::now();
    host.port_block()?;
    let blocked = Blocked(&host);
    let deadline = t + LIMIT;
    let announced_while_cut = loop {
        let answers = answering(c, ips).await?;
        let others_serve = single(&answers).is_some_and(|o| o.values().all(|n| *n != node));
        let announced = c.speaker_metric(&node, ANNOUNCED);
        if others_serve && announced.is_some_and(|a| a >= pairs_before) {
            break announced;
        }
        if Instant::now() > deadline {
            bail!(
                "no split brain within {LIMIT:?} of cutting {node} off: {node} announces \
                 {announced:?} pairs (before: {pairs_before}); the others: {}",
                problems(&answers)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let split_after = t.elapsed();
    tokio::time::sleep(PARTITION_HOLD).await;
    let healed = Instant::now();
    drop(blocked);
    let deadline = healed + LIMIT;
    let (mut most_doubled, mut unsettled_sweeps) = (0, 0);
    let mut run: Option<Instant> = None;
    let single_owner_after = loop {
        let sent = Instant::now();
        let answers = answering(c, ips).await?;
        if single(&answers).is_some() {
            let since = *run.get_or_insert(sent);
            if sent.duration_since(since) >= STEADY {
                break Some(since.duration_since(healed));
            }
        } else {
            run = None;
            unsettled_sweeps += 1;
            let doubled = answers.values().filter(|n| n.len() > 1).count();
            most_doubled = most_doubled.max(doubled);
        }
        if Instant::now() > deadline {
            break None;
        }
    };
    let after = settled_owners(c, ips, LIMIT).await?;
    Ok(Heal {
        node,
        owned_before,
        split_after,
        announced_while_cut,
        single_owner_after,
        most_doubled,
        unsettled_sweeps,
        moved: moved(&before, &after),
        after: counts(c, &after),
    })
}

/// Every measurement of one mode.
#[derive(Debug, Clone)]
pub struct Run {
    /// The mode the speakers were given.
    pub mode: Mode,
    /// Services (one IPv4 address each).
    pub services: usize,
    /// IPs per node once announced.
    pub placement: Placement,
    /// A node's death and return.
    pub node_return: NodeReturn,
    /// A partition and its heal.
    pub heal: Heal,
}

impl Run {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        let r = &self.node_return.record;
        json!({
            "mode": self.mode.name(),
            "services": self.services,
            "placement": self.placement.to_json(),
            "node_return": self.node_return.to_json(),
            "partition_heal": self.heal.to_json(),
            "record_delay": {
                "service_failover_ms": ms(r.failover.gap),
                "from": r.failover.from,
                "to": r.failover.to,
                "after_answer_ms": ms(r.after_answer),
                "after_decision_ms": r.after_decision.map(ms),
            },
        })
    }

    /// The table's rows for this run: `(measurement, value)`.
    pub fn cells(&self) -> Vec<String> {
        let (p, n, h) = (&self.placement, &self.node_return, &self.heal);
        let r = &n.record;
        vec![
            format!("{} of {}", n.moved.len(), self.services),
            format!("{} ({})", n.moved_back, n.node),
            format!("{} (max-min {})", counts_text(&p.counts), spread(&p.counts)),
            h.single_owner_after.map_or_else(
                || format!("> {} s", LIMIT.as_secs()),
                |d| format!("{:.0} ms", ms(d)),
            ),
            format!("{} of {}", h.moved.len(), self.services),
            format!(
                "{:.0} / {} ms",
                ms(r.after_answer),
                r.after_decision
                    .map_or_else(|| "-".to_owned(), |d| format!("{:.0}", ms(d)))
            ),
        ]
    }

    /// The names of [`Run::cells`], with their targets.
    pub fn labels(services: usize) -> [(&'static str, String); 6] {
        [
            ("IPs moved when a dead node returns", "0".into()),
            ("  of them back to it (the node)", "0".into()),
            (
                "IPs per node once announced",
                format!("max-min <= 1 ({services} Services)"),
            ),
            ("partition heal -> one MAC per IP", "< 1 s".into()),
            ("IPs elsewhere after the heal", String::new()),
            (
                "takeover -> record (after answer / decision)",
                String::new(),
            ),
        ]
    }
}

/// Creates `count` Services, measures [`placement`], [`node_return`] and
/// [`partition_heal`] on them, deletes them. The speakers must run in
/// `mode` already ([`restart_speakers`]).
pub async fn run(
    c: &mut Cluster,
    mode: Mode,
    count: usize,
    port: u16,
    progress: bool,
) -> anyhow::Result<Run> {
    let prefix = format!("own-{}", mode.name());
    let t0 = Instant::now();
    let services = create_services(c, &prefix, count, port).await?;
    let ips: Vec<IpAddr> = services.iter().map(|(_, ip)| *ip).collect();
    let placement = placement(c, &ips, t0).await?;
    if progress {
        println!(
            "{}: {count} Services announced after {:.1} s, IPs per node {}",
            mode.name(),
            placement.announced_after.as_secs_f64(),
            counts_text(&placement.counts)
        );
    }
    let node_return = node_return(c, &services, port).await?;
    if progress {
        println!(
            "{}: {} died and returned: {} IPs moved on its return ({} back to it); per node {} -> {} -> {}",
            mode.name(),
            node_return.node,
            node_return.moved.len(),
            node_return.moved_back,
            counts_text(&node_return.before),
            counts_text(&node_return.after_failover),
            counts_text(&node_return.after_return)
        );
    }
    let heal = partition_heal(c, &ips).await?;
    if progress {
        println!(
            "{}: {} cut off (split brain after {:.0} ms), healed: one MAC per IP after {:?}, \
             {} IPs elsewhere; per node {}",
            mode.name(),
            heal.node,
            ms(heal.split_after),
            heal.single_owner_after,
            heal.moved.len(),
            counts_text(&heal.after)
        );
    }
    for (name, _) in &services {
        c.delete_service(name).await?;
    }
    Ok(Run {
        mode,
        services: count,
        placement,
        node_return,
        heal,
    })
}

/// Stops every speaker (SIGTERM, at most 30 s each), starts them all with
/// `FERROLB_OWNERSHIP=mode` and waits until each is ready and gossip
/// converged.
pub async fn restart_speakers(c: &mut Cluster, mode: Mode) -> anyhow::Result<()> {
    let (key, value) = mode.env();
    c.set_speaker_env(&key, &value);
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    for name in &names {
        if c.node(name)?.speaker.is_some() {
            c.term_speaker(name)?;
            c.wait_speaker_exit(name, Duration::from_secs(30)).await?;
        }
    }
    for name in &names {
        c.start_speaker(name)?;
    }
    for name in &names {
        wait_live(c, name, LIMIT).await?;
    }
    Ok(())
}
