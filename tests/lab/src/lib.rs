//! ferrolb-lab: a whole ferrolb cluster in network namespaces on one
//! machine (test support, not product). See `docs/lab.md`.
//!
//! - [`topology`]: names and documentation-range addresses.
//! - [`manifests`]: `deploy/examples/`, built in, and a small `kubectl apply`.
//! - [`objects`]: the Nodes, Services and EndpointSlices (pure JSON).
//! - [`endpoints`]: the EndpointSlice controller's part.
//! - [`cluster`]: builds and runs the lab; dropping it tears it down.
//! - [`bins`] and [`process`]: where the controller and speaker come from
//!   and how they run (binaries, or runc containers from the image).
//! - [`proxy`]: kube-proxy's part (IPVS with strictARP) for the nodes.
//! - [`client`]: TCP and UDP requests from the client namespace.
//! - [`failover`]: takes the owner down and measures the gap.
//! - [`arp`]: who-has sweeps from the client: every MAC answering an IP.
//! - [`ownership`]: issue 15's bench: IPs moved when a node returns, IPs
//!   per node, a partition's heal, per ownership mode.
//! - [`l2status`]: the ServiceL2Status records: read, wait, count writes,
//!   and how long an ownership change takes to reach its record.
//! - [`load`]: steady requests to many IPs at once, failed requests.
//! - [`handover`]: rolling restart of every speaker and a drain, under
//!   [`load`].
//! - [`stress`]: busy loops on every CPU and a cgroup CPU quota, for the
//!   soaks.
//! - [`stats`]: min / p50 / p99 / max.
//! - [`commands`]: the `ferrolb-lab` subcommands (demo, up, down, client,
//!   bench).
#![forbid(unsafe_code)]

pub mod arp;
pub mod bins;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod endpoints;
pub mod failover;
pub mod follow;
pub mod handover;
pub mod l2status;
pub mod load;
pub mod manifests;
pub mod objects;
pub mod ownership;
pub mod process;
pub mod proxy;
pub mod relay;
pub mod stats;
pub mod stress;
pub mod topology;

/// A tokio task aborted when this guard drops.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
