//! `ferrolb-lab`: a ferrolb cluster in network namespaces. See `docs/lab.md`.
//! The subcommands are in [`ferrolb_lab::commands`].
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferrolb_lab::commands::{self, BenchOpts, IpFamily, ScaleOpts, Setup, EXAMPLE_PORT};
use ferrolb_lab::ownership::Mode;

/// A ferrolb cluster in network namespaces on this machine: API server,
/// controller, one speaker per node, kube-proxy stand-in and a LAN client.
#[derive(Debug, Parser)]
#[command(name = "ferrolb-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Number of nodes.
    #[arg(long, global = true, default_value_t = 3, env = "FERROLB_LAB_NODES")]
    nodes: usize,
    /// Run the controller and the speakers from this image archive (built
    /// by `scripts/image`) under runc, with the manifests' security
    /// settings, instead of the build's binaries.
    #[arg(long, global = true, value_name = "ARCHIVE", env = "FERROLB_LAB_IMAGE")]
    image: Option<PathBuf>,
    /// The speakers' ownership mode, passed to every speaker as
    /// `FERROLB_OWNERSHIP` (their `--ownership`): `sticky` keeps an IP on
    /// the live node announcing it, `hash` is MetalLB's placement. A
    /// speaker without that flag ignores it and places by hash.
    #[arg(long, global = true, value_enum, default_value_t = OwnershipArg::Sticky, env = "FERROLB_LAB_OWNERSHIP")]
    ownership: OwnershipArg,
}

/// `--ownership`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OwnershipArg {
    /// IPs stay on the live node announcing them.
    Sticky,
    /// MetalLB's hash placement.
    Hash,
}

impl From<OwnershipArg> for Mode {
    fn from(a: OwnershipArg) -> Self {
        match a {
            OwnershipArg::Sticky => Mode::Sticky,
            OwnershipArg::Hash => Mode::Hash,
        }
    }
}

/// `--family`: which Service address failover is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FamilyArg {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// IPv4, then IPv6.
    Both,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the lab up, show a Service and its answer, fail the owner over
    /// (node death, then a graceful stop), tear down. The default.
    Demo,
    /// Bring the lab up with one Service and keep it running in the
    /// foreground until Ctrl-C (or `ferrolb-lab down`).
    Up,
    /// Stop a lab started with `up` and remove anything left of any lab.
    Down,
    /// Connect from the running lab's client namespace to IP:PORT and print
    /// the answer (the node's name).
    Client {
        /// A LoadBalancer IP.
        ip: IpAddr,
        /// The Service port.
        #[arg(default_value_t = EXAMPLE_PORT)]
        port: u16,
        /// Send one UDP datagram instead of connecting with TCP.
        #[arg(long)]
        udp: bool,
    },
    /// Measure failover (node death, graceful stop) per IP family,
    /// create-to-first-answer, a rolling restart and a drain under steady
    /// requests, soaks (CPU saturated, owner throttled), peak RSS, idle CPU
    /// and liveness traffic.
    Bench {
        /// Rounds of each failover measurement per family (and of
        /// create-to-answer).
        #[arg(long, default_value_t = 50, env = "FERROLB_LAB_ROUNDS")]
        rounds: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The IP family (families) of the Service address failover is
        /// measured on.
        #[arg(long, value_enum, default_value_t = FamilyArg::Both, env = "FERROLB_LAB_FAMILY")]
        family: FamilyArg,
        /// Measure failover on the Service's IPv6 address only (the same as
        /// `--family v6`).
        #[arg(long, conflicts_with = "family")]
        v6: bool,
        /// Services to create before measuring memory and idle CPU (IPv6:
        /// the API test server's IPv4 ClusterIP range is a /25).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=4000))]
        services: u16,
        /// How long each soak runs (CPU saturated, owner throttled), e.g.
        /// `10m`, `30s`; `0` skips them.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, env = "FERROLB_LAB_SOAK")]
        soak: Duration,
        /// The throttled owner's speaker's CPU quota, percent of one CPU.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100), env = "FERROLB_LAB_THROTTLE_PERCENT")]
        throttle_percent: u8,
        /// How long each node's eth0 tx is counted once idle (liveness
        /// traffic); `0` skips it.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, env = "FERROLB_LAB_TRAFFIC_WINDOW")]
        traffic_window: Duration,
        /// IPv4 Services of issue 15's ownership measurements (IPs per
        /// node, IPs moved when a dead node returns, partition heal);
        /// `0` skips them; at most 120 (the API test server's IPv4
        /// ClusterIP range is a /25).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=120), env = "FERROLB_LAB_OWNERSHIP_SERVICES")]
        ownership_services: u16,
        /// Also measure them with the speakers restarted in the other
        /// ownership mode, side by side.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "FERROLB_LAB_OWNERSHIP_COMPARE")]
        ownership_compare: bool,
    },
    /// A busy loop for the bench's CPU soak: spins until `--secs` have
    /// passed or its parent is gone.
    #[command(hide = true)]
    Burn {
        /// Longest run, in seconds.
        #[arg(long, default_value_t = 60)]
        secs: u64,
    },
    /// Many Services against the release binaries: creation burst,
    /// memory and CPU, Events, restarts, churn and bad input (issue 12).
    Scale {
        /// Services to create (IPv6, without NodePorts).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=30_000))]
        services: u32,
        /// How many of them come from a pool an L2Advertisement selects;
        /// the rest come from one no L2Advertisement selects.
        #[arg(long, default_value_t = 1_000)]
        advertised: usize,
        /// Seconds of each churn (200 changes a second).
        #[arg(long, default_value_t = 60)]
        churn_secs: u64,
        /// Creates in flight at once.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        in_flight: u16,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Burn { secs }) = cli.command {
        // Before any signal handler: SIGTERM and SIGKILL end it at once.
        commands::burn(Duration::from_secs(secs));
        return ExitCode::SUCCESS;
    }
    let work = run(cli);
    tokio::select! {
        result = work => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferrolb-lab: {e:#}");
                ExitCode::FAILURE
            }
        },
        // Dropping `work` drops the cluster: children killed, namespaces
        // deleted.
        () = shutdown_signal() => {
            eprintln!("\nferrolb-lab: interrupted, tearing down");
            ExitCode::from(130)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let setup = Setup {
        nodes: cli.nodes,
        image: cli.image,
        ownership: cli.ownership.into(),
    };
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => commands::demo(&setup).await,
        Command::Up => commands::up(&setup).await,
        Command::Down => commands::down(),
        Command::Client { ip, port, udp } => commands::client(ip, port, udp),
        Command::Bench {
            rounds,
            json,
            family,
            v6,
            services,
            soak,
            throttle_percent,
            traffic_window,
            ownership_services,
            ownership_compare,
        } => {
            let families = match (v6, family) {
                (true, _) | (false, FamilyArg::V6) => vec![IpFamily::V6],
                (false, FamilyArg::V4) => vec![IpFamily::V4],
                (false, FamilyArg::Both) => vec![IpFamily::V4, IpFamily::V6],
            };
            let opts = BenchOpts {
                rounds,
                json,
                families,
                services: services.into(),
                soak,
                throttle_share: f64::from(throttle_percent) / 100.0,
                traffic_window,
                ownership_services: ownership_services.into(),
                ownership_compare,
            };
            commands::bench(&setup, &opts).await
        }
        Command::Burn { secs } => {
            commands::burn(Duration::from_secs(secs));
            Ok(())
        }
        Command::Scale {
            services,
            advertised,
            churn_secs,
            in_flight,
            json,
        } => {
            let opts = ScaleOpts {
                services: services as usize,
                advertised,
                churn_secs,
                in_flight: in_flight.into(),
                json,
            };
            commands::scale(&setup, &opts).await
        }
    }
}
