//! `ferrolb-lab bench`: failover (node death, graceful stop) per IP family
//! and create-to-IP / create-to-answer, in rounds; a rolling restart of
//! every speaker and a drain under steady requests ([`crate::handover`]);
//! the soaks ([`super::soak`]); issue 15's ownership measurements
//! ([`crate::ownership`]), per mode side by side; then the idle measurements
//! ([`super::idle`]) and the liveness traffic ([`super::traffic`]).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use super::idle::idle_with_services;
use super::soak::{self, Soak, SOAK_SERVICES};
use super::traffic::liveness_traffic;
use super::{report_dead, start, Setup, PORT};
use crate::cluster::Cluster;
use crate::failover::{self, Fault};
use crate::handover::{self, Handover};
use crate::objects::{Families, ServiceSpec};
use crate::ownership;
use crate::stats::{ms, Summary};

/// An IP family the failover rounds run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// The Service's IPv4 address.
    V4,
    /// The Service's IPv6 address.
    V6,
}

impl IpFamily {
    /// `IPv4` or `IPv6`, as in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }
}

/// What `bench` is asked to do.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    /// Rounds of each failover per family, and of create-to-answer.
    pub rounds: usize,
    /// Print JSON instead of a table.
    pub json: bool,
    /// The families failover is measured on, in order.
    pub families: Vec<IpFamily>,
    /// Services created for the idle measurement.
    pub services: usize,
    /// How long each soak runs; zero skips them.
    pub soak: Duration,
    /// The throttled speaker's share of one CPU (0-1).
    pub throttle_share: f64,
    /// How long liveness traffic is counted; zero skips it.
    pub traffic_window: Duration,
    /// Services of the ownership measurements ([`crate::ownership`]);
    /// zero skips them.
    pub ownership_services: usize,
    /// Also run them in the other ownership mode.
    pub ownership_compare: bool,
}

/// Services the rolling restart and the drain request (dual stack).
const HANDOVER_SERVICES: usize = 10;
/// Their port (the stand-in serves it on every node).
const HANDOVER_PORT: u16 = PORT + 3;
/// The port of the ownership measurements' Services.
const OWNERSHIP_PORT: u16 = PORT + 4;

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

/// Node death and graceful stop of `ip`'s owner, `rounds` times each.
struct FailoverRounds {
    family: IpFamily,
    death: Vec<Duration>,
    graceful: Vec<Duration>,
}

async fn failover_rounds(
    c: &mut Cluster,
    ip: IpAddr,
    family: IpFamily,
    rounds: usize,
    progress: bool,
) -> anyhow::Result<FailoverRounds> {
    let limit = Duration::from_secs(10);
    let mut out = FailoverRounds {
        family,
        death: Vec::new(),
        graceful: Vec::new(),
    };
    for round in 1..=rounds {
        for fault in [Fault::NodeDeath, Fault::GracefulStop] {
            let f = failover::measure(c, ip, PORT, fault, limit).await?;
            if progress {
                println!(
                    "round {round:>2} {} {fault:?}: {} -> {} in {:.1} ms",
                    family.name(),
                    f.from,
                    f.to,
                    ms(f.gap)
                );
            }
            match fault {
                Fault::NodeDeath => out.death.push(f.gap),
                Fault::GracefulStop => out.graceful.push(f.gap),
            }
            c.restore_node(&f.from)?;
            failover::settle(c, ip, PORT).await?;
            report_dead(c)?;
        }
    }
    Ok(out)
}

/// Create -> IP in status and create -> first answer, `rounds` Services.
async fn create_to_answer(
    c: &Cluster,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
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
    Ok((assign, answer))
}

/// The rolling restart, the drain and the soaks, on the same Services.
struct Handovers {
    targets: usize,
    rolling: Handover,
    drain: Handover,
    cpu_saturated: Option<Soak>,
    owner_throttled: Option<Soak>,
}

async fn handovers(c: &mut Cluster, o: &BenchOpts, progress: bool) -> anyhow::Result<Handovers> {
    if progress {
        println!("\ncreating {HANDOVER_SERVICES} dual-stack Services for the rolling restart and the drain...");
    }
    let mut targets =
        handover::spread_services(c, "hand", HANDOVER_SERVICES, HANDOVER_PORT).await?;
    let rolling = handover::rolling_restart(c, &targets).await?;
    if progress {
        println!(
            "rolling restart of {} speakers, {} IPs requested every 10 ms: {}",
            rolling.steps.len(),
            rolling.targets,
            rolling.tally.describe()
        );
    }
    report_dead(c)?;
    let drain = handover::drain(c, &targets).await?;
    if progress {
        println!(
            "drain of {} (speaker SIGTERM): {}",
            drain.steps[0].node,
            drain.tally.describe()
        );
    }
    report_dead(c)?;
    let (mut cpu_saturated, mut owner_throttled) = (None, None);
    if !o.soak.is_zero() {
        let more = SOAK_SERVICES.saturating_sub(HANDOVER_SERVICES);
        if progress {
            println!("creating {more} more Services for the soaks...");
        }
        targets.extend(handover::spread_services(c, "soak", more, HANDOVER_PORT).await?);
        if progress {
            println!(
                "soak with every CPU saturated ({:?}, {} IPs)...",
                o.soak,
                targets.len()
            );
        }
        cpu_saturated = Some(soak::cpu_saturated(c, &targets, o.soak).await?);
        report_dead(c)?;
        if progress {
            println!(
                "soak with the busiest owner's speaker at {:.0} % of a CPU ({:?})...",
                o.throttle_share * 100.0,
                o.soak
            );
        }
        owner_throttled = Some(soak::owner_throttled(c, &targets, o.soak, o.throttle_share).await?);
        report_dead(c)?;
    }
    // The idle measurement that follows is about its own Services.
    for name in (0..HANDOVER_SERVICES)
        .map(|k| format!("hand-{k}"))
        .chain((0..SOAK_SERVICES.saturating_sub(HANDOVER_SERVICES)).map(|k| format!("soak-{k}")))
    {
        let _ = c.delete_service(&name).await;
    }
    Ok(Handovers {
        targets: targets.len(),
        rolling,
        drain,
        cpu_saturated,
        owner_throttled,
    })
}

/// The ownership measurements (issue 15) in `setup.ownership`, then, with
/// `o.ownership_compare`, in the other mode (every speaker restarted in
/// it, and back afterwards).
struct OwnershipRuns {
    /// Whether the speaker has `--ownership` (`None`: unknown, image).
    flag: Option<bool>,
    runs: Vec<ownership::Run>,
}

async fn ownership_runs(
    c: &mut Cluster,
    setup: &Setup,
    o: &BenchOpts,
    progress: bool,
) -> anyhow::Result<OwnershipRuns> {
    let flag = c.speaker_has_flag("--ownership");
    let mut modes = vec![setup.ownership];
    if o.ownership_compare {
        modes.push(setup.ownership.other());
    }
    if progress {
        println!(
            "\nownership: {} IPv4 Services per mode ({}); the speaker {}",
            o.ownership_services,
            modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", then "),
            match flag {
                Some(true) => "has --ownership",
                Some(false) => "has no --ownership flag yet: every mode runs as hash",
                None => "may lack --ownership (not checked under --image)",
            }
        );
    }
    let mut runs = Vec::new();
    for mode in modes {
        if mode != setup.ownership {
            ownership::restart_speakers(c, mode).await?;
        }
        runs.push(ownership::run(c, mode, o.ownership_services, OWNERSHIP_PORT, progress).await?);
        report_dead(c)?;
        if mode != setup.ownership {
            ownership::restart_speakers(c, setup.ownership).await?;
        }
    }
    Ok(OwnershipRuns { flag, runs })
}

impl OwnershipRuns {
    fn to_json(&self) -> Value {
        let runs: serde_json::Map<String, Value> = self
            .runs
            .iter()
            .map(|r| (r.mode.name().to_owned(), r.to_json()))
            .collect();
        json!({
            "speaker_has_ownership_flag": self.flag,
            "modes": self.runs.iter().map(|r| r.mode.name()).collect::<Vec<_>>(),
            "runs": runs,
        })
    }

    fn print(&self) {
        let Some(first) = self.runs.first() else {
            return;
        };
        println!(
            "\nownership (issue 15), {} IPv4 Services on {} nodes; owner = the node whose MAC answers \
             the client's who-has",
            first.services,
            first.placement.counts.len()
        );
        if self.flag == Some(false) {
            println!("  the speaker has no --ownership flag yet: every column is hash placement");
        }
        let mut header = format!("{:<46}", "measurement");
        for r in &self.runs {
            header.push_str(&format!(" {:>22}", r.mode.name()));
        }
        println!("{header}  target");
        let cells: Vec<Vec<String>> = self.runs.iter().map(ownership::Run::cells).collect();
        for (i, (label, target)) in ownership::Run::labels(first.services).iter().enumerate() {
            let mut line = format!("{label:<46}");
            for c in &cells {
                line.push_str(&format!(" {:>22}", c[i]));
            }
            println!("{line}  {target}");
        }
    }
}

/// Runs every measurement; prints a table or JSON (`o.json`).
pub async fn bench(setup: &Setup, o: &BenchOpts) -> anyhow::Result<()> {
    if setup.nodes < 2 {
        bail!("bench fails over, so it needs at least 2 nodes");
    }
    if o.families.is_empty() {
        bail!("bench needs at least one IP family");
    }
    let progress = !o.json;
    let mut c = start(setup, progress).await?;
    let ips = web(&c, "web").await?;
    let mut failovers = Vec::new();
    for &family in &o.families {
        let Some(&ip) = ips
            .iter()
            .find(|ip| ip.is_ipv6() == (family == IpFamily::V6))
        else {
            bail!("web has no {} address: {ips:?}", family.name());
        };
        failovers.push(failover_rounds(&mut c, ip, family, o.rounds, progress).await?);
    }
    let (assign, answer) = create_to_answer(&c, o.rounds).await?;
    let hand = handovers(&mut c, o, progress).await?;
    let owned = if o.ownership_services == 0 {
        None
    } else {
        Some(ownership_runs(&mut c, setup, o, progress).await?)
    };
    let idle = idle_with_services(&c, o.services, progress).await?;
    let traffic = if o.traffic_window.is_zero() {
        None
    } else {
        if progress {
            println!(
                "\ncounting every node's eth0 tx for {:?}...",
                o.traffic_window
            );
        }
        Some(liveness_traffic(&c, o.traffic_window).await?)
    };
    report_dead(&mut c)?;
    let mut summaries: Vec<(String, Option<Summary>)> = Vec::new();
    for f in &failovers {
        let fam = f.family.name();
        summaries.push((format!("failover_node_death {fam}"), Summary::of(&f.death)));
        summaries.push((
            format!("failover_graceful_stop {fam}"),
            Summary::of(&f.graceful),
        ));
    }
    summaries.push(("create_to_ip_assigned".into(), Summary::of(&assign)));
    summaries.push(("create_to_first_answer".into(), Summary::of(&answer)));
    if o.json {
        let out = to_json(
            setup,
            o,
            &failovers,
            &assign,
            &answer,
            &hand,
            idle.to_json(),
            traffic.map(|t| t.to_json()),
            owned.as_ref().map(OwnershipRuns::to_json),
        );
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_tables(setup, o, &summaries, &hand);
        if let Some(owned) = &owned {
            owned.print();
        }
        idle.print();
        if let Some(t) = traffic {
            t.print();
        }
    }
    drop(c);
    Ok(())
}

fn summary_json(sample: &[Duration]) -> Value {
    Summary::of(sample).map(|s| s.to_json()).into()
}

#[allow(clippy::too_many_arguments)]
fn to_json(
    setup: &Setup,
    o: &BenchOpts,
    failovers: &[FailoverRounds],
    assign: &[Duration],
    answer: &[Duration],
    hand: &Handovers,
    idle: Value,
    traffic: Option<Value>,
    ownership: Option<Value>,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("nodes".into(), json!(setup.nodes));
    out.insert("rounds".into(), json!(o.rounds));
    // The first family's failover under the fields' old names.
    let first = &failovers[0];
    out.insert("family".into(), json!(first.family.name()));
    out.insert("failover_node_death".into(), summary_json(&first.death));
    out.insert(
        "failover_graceful_stop".into(),
        summary_json(&first.graceful),
    );
    out.insert("create_to_ip_assigned".into(), summary_json(assign));
    out.insert("create_to_first_answer".into(), summary_json(answer));
    out.insert("idle".into(), idle);
    out.insert(
        "families".into(),
        failovers.iter().map(|f| f.family.name()).collect(),
    );
    let per_family: serde_json::Map<String, Value> = failovers
        .iter()
        .map(|f| {
            let v = json!({
                "node_death": summary_json(&f.death),
                "graceful_stop": summary_json(&f.graceful),
            });
            (f.family.name().to_owned(), v)
        })
        .collect();
    out.insert("failover".into(), per_family.into());
    out.insert("rolling_restart".into(), hand.rolling.to_json());
    out.insert("drain".into(), hand.drain.to_json());
    out.insert(
        "soak_cpu_saturated".into(),
        hand.cpu_saturated.as_ref().map(Soak::to_json).into(),
    );
    out.insert(
        "soak_owner_throttled".into(),
        hand.owner_throttled.as_ref().map(Soak::to_json).into(),
    );
    out.insert("liveness_traffic".into(), traffic.into());
    out.insert("ownership".into(), ownership.into());
    out.into()
}

fn print_tables(
    setup: &Setup,
    o: &BenchOpts,
    summaries: &[(String, Option<Summary>)],
    hand: &Handovers,
) {
    let families: Vec<&str> = o.families.iter().map(|f| f.name()).collect();
    println!(
        "\n{} rounds, {} nodes, {} (requests every 10 ms, 20 ms connect timeout)",
        o.rounds,
        setup.nodes,
        families.join(" and ")
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "measurement (ms)", "min", "p50", "p99", "max"
    );
    for (name, s) in summaries {
        if let Some(s) = s {
            println!(
                "{name:<34} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                ms(s.min),
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            );
        }
    }
    println!(
        "\n{} IPs ({} dual-stack Services), a TCP request to each every 10 ms; failed = an error or \
         no answer within 1 s;\nof which at move = reset in flight when the IP moved (the new owner \
         has no such connection); moves = changes of the node answering an IP",
        2 * HANDOVER_SERVICES,
        HANDOVER_SERVICES
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}  failures",
        "handover", "failed", "at move", "requests", "moves"
    );
    for (name, h) in [
        ("rolling restart (every speaker)", &hand.rolling),
        ("drain (one speaker SIGTERM)", &hand.drain),
    ] {
        let why: Vec<String> = h
            .tally
            .failures
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "{name:<34} {:>9} {:>9} {:>9} {:>9}  {}",
            h.tally.failed,
            h.tally.reset_at_move,
            h.tally.requests,
            h.tally.answer_changes,
            why.join(", ")
        );
    }
    if hand.cpu_saturated.is_some() || hand.owner_throttled.is_some() {
        println!(
            "\nsoaks, {} IPs requested every 100 ms (1 s timeout); changes: of the node the client reaches \
             (the larger of answers and neighbour entries), speakers: leader_changes_total summed",
            hand.targets
        );
        println!("{}", Soak::header());
        if let Some(s) = &hand.cpu_saturated {
            println!("{}", s.row("cpu saturated"));
        }
        if let Some(s) = &hand.owner_throttled {
            println!(
                "{}",
                s.row(&format!("owner at {:.0} % cpu", o.throttle_share * 100.0))
            );
        }
        for s in [&hand.cpu_saturated, &hand.owner_throttled]
            .into_iter()
            .flatten()
        {
            println!("  {}", s.condition());
        }
    }
}
