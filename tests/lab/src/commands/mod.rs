//! The `ferrolb-lab` subcommands (`docs/lab.md`): the binary's `main.rs`
//! parses the command line and calls one of these.
//!
//! - [`demo`]: up, the example Services, failover, teardown.
//! - [`up`], [`down`], [`client`]: a lab that keeps running, and requests
//!   into it from another shell.
//! - [`bench()`]: failover per family, create-to-answer, rolling restart
//!   and drain, soaks, idle and liveness traffic.
//! - [`burn`]: the busy loop the CPU soak runs, one per CPU (hidden).
//! - [`scale()`]: thousands of Services: burst, idle, Events, restarts,
//!   churn, bad input (issue 12).

mod bench;
mod demo;
mod idle;
mod running;
mod scale;
mod soak;
mod table;
mod traffic;
mod usage;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cluster::{Cluster, Options};
use crate::ownership::Mode;
use crate::process::Launcher;
use crate::{l2status, manifests};

pub use crate::stress::burn;
pub use bench::{bench, BenchOpts, IpFamily};
pub use demo::demo;
pub use running::{client, down, up};
pub use scale::{scale, ScaleOpts};

/// What every lab this command starts is made of.
#[derive(Debug)]
pub struct Setup {
    /// Number of nodes (`--nodes`).
    pub nodes: usize,
    /// The image archive to run the components from (`--image`).
    pub image: Option<PathBuf>,
    /// The speakers' ownership mode (`--ownership`), passed to every
    /// speaker as `FERROLB_OWNERSHIP`.
    pub ownership: Mode,
}

/// The port of the example Services the demo fails over and `client`
/// requests by default.
pub const EXAMPLE_PORT: u16 = 80;
/// The port of the Services the bench creates.
const PORT: u16 = 8080;

async fn start(setup: &Setup, progress: bool) -> anyhow::Result<Cluster> {
    let opts = Options {
        nodes: setup.nodes,
        progress,
        ..Options::default()
    };
    start_with(setup, opts).await
}

/// [`start`] with lab options of the command's own (`setup.image` still
/// decides where the components come from).
async fn start_with(setup: &Setup, mut opts: Options) -> anyhow::Result<Cluster> {
    opts.speaker_env.push(setup.ownership.env());
    let launcher = Launcher::locate(setup.image.as_deref())?;
    if opts.progress {
        println!("running the {}", launcher.describe());
    }
    Cluster::start(opts, launcher).await
}

/// The first port of a Service and whether it is UDP.
fn first_port(svc: &serde_json::Value) -> (u16, bool) {
    let p = &svc["spec"]["ports"][0];
    let port = p["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    (port.unwrap_or(0), p["protocol"] == "UDP")
}

/// Applies `deploy/examples/service-*.yaml`, then waits until every one of
/// those Services has an IP per family and each IP answers.
async fn example_services(c: &Cluster) -> anyhow::Result<()> {
    let mut names = Vec::new();
    for (source, yaml) in manifests::SERVICES {
        for applied in c.apply(source, yaml).await? {
            println!("  {applied} applied from {source}");
            names.push(applied.trim_start_matches("service/").to_owned());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in &names {
        let svc = c.service(name).await?;
        let families = svc["spec"]["ipFamilies"].as_array().map_or(1, Vec::len);
        let left = deadline.saturating_duration_since(Instant::now());
        let ips = c.wait_ips(name, families, left).await?;
        let (port, udp) = first_port(&svc);
        for ip in ips {
            let left = deadline.saturating_duration_since(Instant::now());
            c.wait_answer_on(ip, port, udp, left)
                .await
                .with_context(|| {
                    format!(
                        "Service {name}: {ip} never answered (see the speakers' logs in {})",
                        c.dir().display()
                    )
                })?;
        }
    }
    Ok(())
}

/// Waits until every Service has a ServiceL2Status record (the owner
/// writes it once it has held the Service for 5 s); returns how long that
/// took.
async fn wait_records(c: &Cluster) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let deadline = t + Duration::from_secs(30);
    for svc in c.services().await? {
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        l2status::wait_record(c, name, "a ServiceL2Status", left, |r| r.is_some()).await?;
    }
    Ok(t.elapsed())
}

fn report_dead(c: &mut Cluster) -> anyhow::Result<()> {
    let dead = c.dead_children();
    if !dead.is_empty() {
        bail!("{}", dead.join("\n"));
    }
    Ok(())
}
