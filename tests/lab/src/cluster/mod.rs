//! A whole ferrolb cluster in network namespaces: the API test server
//! (in-process, on loopback), a relay into the lab, a controller, one
//! speaker per node, the kube-proxy stand-in and a client.
//!
//! [`Cluster`] is built here ([`Cluster::start`]); its methods live with
//! their responsibility:
//!
//! - `network`: the namespaces, the bridge(s), addresses, [`LabNode`].
//! - `api_server`: the API test server, the kubeconfigs, seeding the
//!   CRDs, Nodes and configuration, the EndpointSlice and kube-proxy
//!   stand-ins, API server restarts.
//! - `resources`: Services, EndpointSlices, ferrolb's custom objects, Node
//!   labels and Events, read and written by tests.
//! - `processes`: the controller and the speakers: start, stop, kill,
//!   node death and restore, logs, memory and CPU.
//! - `probes`: requests from the client, who announces an IP, speaker
//!   metrics, and waiting for IPs, answers and gossip.

mod api_server;
mod network;
mod probes;
mod processes;
mod resources;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kube::Client;
use netlab::{Host, Lab};

use crate::client::Prober;
use crate::process::{Launcher, Proc};
use crate::{topology, AbortOnDrop};

pub use api_server::{CONTROLLER_USER, SPEAKER_USER};
pub use network::LabNode;

use api_server::ApiServer;
use network::Network;

/// How to build the lab.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of nodes (1-9).
    pub nodes: usize,
    /// Namespace prefix (`down` sweeps [`topology::PREFIX`]).
    pub prefix: String,
    /// Print progress lines.
    pub progress: bool,
    /// Extra speaker flags.
    pub speaker_args: Vec<String>,
    /// Extra speaker environment variables, e.g. `FERROLB_OWNERSHIP`
    /// ([`crate::ownership::Mode`]); [`Cluster::set_speaker_env`] changes
    /// them for speakers started later.
    pub speaker_env: Vec<(String, String)>,
    /// Run the controller.
    pub controller: bool,
    /// Give every node a second interface, `eth1`, on a second LAN
    /// (`lan2`) with a client of its own ([`Cluster::client2`]).
    pub second_lan: bool,
    /// Log every API request from the start, with the user that sent it
    /// ([`CONTROLLER_USER`], [`SPEAKER_USER`]): see
    /// [`kube_test_server::TestServer::requests`].
    pub record_requests: bool,
    /// Run the EndpointSlice and kube-proxy stand-ins. Both recompute
    /// from every Service on each change, too slow for 10,000 Services;
    /// without them a Service gets only the slices its creator writes and
    /// no node answers on its IP (`ferrolb-lab scale` reads the speakers'
    /// metrics instead).
    pub stand_ins: bool,
    /// The API test server's watch history, in events
    /// ([`kube_test_server::ServerOptions::history_limit`]).
    pub history_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 3,
            prefix: topology::PREFIX.to_owned(),
            progress: false,
            speaker_args: Vec::new(),
            speaker_env: Vec::new(),
            controller: true,
            second_lan: false,
            record_requests: false,
            stand_ins: true,
            history_limit: kube_test_server::ServerOptions::default().history_limit,
        }
    }
}

/// The running lab. Dropping it stops everything and deletes the
/// namespaces.
pub struct Cluster {
    // Dropped first to last: tasks, threads and children before the lab.
    proxy: Option<AbortOnDrop>,
    endpoints: Option<AbortOnDrop>,
    relay: Option<AbortOnDrop>,
    prober: Option<Prober>,
    /// The controller, if running.
    pub controller: Option<Proc>,
    /// Nodes, `node-1` first.
    pub nodes: Vec<LabNode>,
    /// The client namespace.
    pub client: Host,
    /// The client on the second LAN, when [`Options::second_lan`].
    pub client2: Option<Host>,
    /// The namespace holding the API relay and the controller.
    pub api: Host,
    server: kube_test_server::TestServer,
    kube: Client,
    launcher: Launcher,
    opts: Options,
    dir: tempfile::TempDir,
    lab: Option<Lab>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes)
            .field("dir", &self.dir.path())
            .field("api", &self.server.url())
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failing test (a panic) keeps the logs, kubeconfigs and secret
        // for a post-mortem; a passing one leaves nothing behind.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "ferrolb-lab: the test failed; the lab's logs are kept in {}",
                self.dir.path().display()
            );
        }
        self.proxy.take();
        self.endpoints.take();
        self.relay.take();
        self.prober.take();
        self.controller.take();
        for n in &mut self.nodes {
            n.speaker.take();
        }
        if let Some(lab) = self.lab.take() {
            if let Err(e) = lab.teardown() {
                eprintln!("ferrolb-lab: teardown: {e}");
            }
        }
    }
}

fn step(progress: bool, what: &str) -> Instant {
    if progress {
        use std::io::Write;
        print!("{what}... ");
        let _ = std::io::stdout().flush();
    }
    Instant::now()
}

fn done(progress: bool, t: Instant) {
    if progress {
        println!("ok ({} ms)", t.elapsed().as_millis());
    }
}

impl Cluster {
    /// Builds and starts everything. Fails with a clear message when not
    /// root or when namespaces cannot be created.
    pub async fn start(opts: Options, launcher: impl Into<Launcher>) -> anyhow::Result<Self> {
        let launcher = launcher.into();
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "ferrolb-lab needs root (network namespaces, raw sockets); \
                 run it with sudo. Current uid {}",
                nix::unistd::geteuid()
            );
        }
        if !(1..=9).contains(&opts.nodes) {
            bail!("--nodes must be 1-9");
        }
        let p = opts.progress;
        let dir = tempfile::Builder::new()
            .prefix("ferrolb-lab-")
            .tempdir()
            .context("creating the lab's temporary directory")?;
        // Containers (`--image`) see this directory at the same path; the
        // controller's runs as uid 65534 and must read its kubeconfig.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;

        let t = step(p, "creating namespaces");
        let net = Network::build(&opts)?;
        done(p, t);

        let t = step(p, "starting API server");
        let served = ApiServer::start(&opts, dir.path(), &net.api).await?;
        done(p, t);

        let mut cluster = Self {
            proxy: None,
            endpoints: None,
            relay: Some(served.relay),
            prober: None,
            controller: None,
            nodes: net.nodes,
            client: net.client,
            client2: net.client2,
            api: net.api,
            server: served.server,
            kube: served.kube,
            launcher,
            opts,
            dir,
            lab: Some(net.lab),
        };

        let t = step(
            p,
            "applying deploy/crds, namespace, Nodes, deploy/examples/{ipaddresspool,l2advertisement}.yaml",
        );
        cluster.seed().await?;
        done(p, t);

        let t = if cluster.opts.stand_ins {
            let t = step(p, "starting EndpointSlice and kube-proxy stand-ins, client");
            cluster.start_stand_ins();
            t
        } else {
            step(p, "starting the client (no stand-ins)")
        };
        cluster.prober = Some(Prober::start(&cluster.client)?);
        done(p, t);

        cluster.start_components()?;
        let t = step(p, "waiting for gossip to converge");
        // Nine speakers start at once on two shared cores: more room.
        let limit = Duration::from_secs(15 + 2 * cluster.nodes.len() as u64);
        cluster.wait_converged(limit).await?;
        done(p, t);
        Ok(cluster)
    }

    /// The directory holding kubeconfigs, the secret and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
