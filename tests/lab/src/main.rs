//! `ferrolb-lab`: a ferrolb cluster in network namespaces. See `docs/lab.md`.
//! The subcommands are in [`ferrolb_lab::commands`].
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferrolb_lab::commands::{self, ScaleOpts, Setup, EXAMPLE_PORT};

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
    /// Measure failover (node death, graceful stop), create-to-first-answer,
    /// peak RSS and idle CPU.
    Bench {
        /// Rounds of each measurement.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Measure failover on the Service's IPv6 address.
        #[arg(long)]
        v6: bool,
        /// Services to create before measuring memory and idle CPU (IPv6:
        /// the API test server's IPv4 ClusterIP range is a /25).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=4000))]
        services: u16,
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
    };
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => commands::demo(&setup).await,
        Command::Up => commands::up(&setup).await,
        Command::Down => commands::down(),
        Command::Client { ip, port, udp } => commands::client(ip, port, udp),
        Command::Bench {
            rounds,
            json,
            v6,
            services,
        } => commands::bench(&setup, rounds, json, v6, services.into()).await,
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
