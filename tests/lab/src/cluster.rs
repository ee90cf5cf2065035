//! A whole ferrolb cluster in network namespaces: the API test server
//! (in-process, on loopback), a relay into the lab, a controller, one
//! speaker per node, the kube-proxy stand-in and a client.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use netlab::{Host, Lab, MacAddr};
use serde_json::Value;

use crate::client::{ProbeError, Prober};
use crate::objects::{self, ServiceSpec};
use crate::process::{Launcher, Proc, Program};
use crate::topology::{self, API_PORT, API_V4, SPEAKER_HTTP_PORT, SYSTEM_NS};
use crate::{endpoints, manifests, proxy, relay, AbortOnDrop};

/// The user the controller's kubeconfig names (its bearer token): the
/// ServiceAccount deploy/ferrolb.yaml runs it as.
pub const CONTROLLER_USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-controller";
/// The user every speaker's kubeconfig names.
pub const SPEAKER_USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-speaker";

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `ferrolb-speaker`.
    pub speaker: PathBuf,
    /// `ferrolb-controller`.
    pub controller: PathBuf,
}

impl Bins {
    /// `$FERROLB_BIN_DIR`, else the directory of the running executable (or
    /// its parent, for test binaries in `deps/`). When run by cargo
    /// (`cargo run`, `cargo test`: `$CARGO` is set) the two binaries are
    /// built first with the same profile, so one command is enough.
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the running executable")?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let test = dir.file_name().is_some_and(|n| n == "deps");
        if test {
            dir.pop();
        }
        if let Some(d) = std::env::var_os("FERROLB_BIN_DIR") {
            dir = PathBuf::from(d);
        } else if let Some(cargo) = std::env::var_os("CARGO") {
            build_with_cargo(Path::new(&cargo), &dir, test)?;
        }
        let bins = Self {
            speaker: dir.join("ferrolb-speaker"),
            controller: dir.join("ferrolb-controller"),
        };
        for b in [&bins.speaker, &bins.controller] {
            if !b.is_file() {
                bail!(
                    "{} not found: build the workspace binaries first \
                     (`cargo build --release --bins`) or set FERROLB_BIN_DIR",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// Builds the speaker and the controller into `dir`'s target directory and
/// profile. For a test binary (`test`), as part of the whole workspace's
/// tests: the same packages and dev-dependencies `cargo nextest run
/// --workspace` resolved features for, so the binaries it already built
/// are up to date and nothing is compiled twice with other features.
fn build_with_cargo(cargo: &Path, dir: &Path, test: bool) -> anyhow::Result<()> {
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let target = dir.parent().context("target directory")?;
    let mut args: Vec<&str> = vec!["build"];
    // `target/debug` is the default profile, which `cargo test` and
    // nextest also build test targets with (as profile `test`); naming
    // `--profile dev` would build those targets differently and so
    // rebuild what the test run just built.
    if profile != "debug" {
        args.extend(["--profile", profile.as_str()]);
    }
    if test {
        args.extend(["--workspace", "--tests"]);
    } else {
        args.extend([
            "-p",
            "ferrolb-speaker",
            "-p",
            "ferrolb-controller",
            "--bins",
        ]);
    }
    let mut command = std::process::Command::new(cargo);
    // Cargo gives the running program (this lab, or a test) its package's
    // variables; build scripts such as ring's rerun when those differ from
    // the outer build's, so passing them on would rebuild half the
    // dependency tree here and again on the next outer build.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if is_package_variable(key) {
            command.env_remove(key);
        }
    }
    let status = command
        .args(&args)
        .env("CARGO_TARGET_DIR", target)
        .stdout(Stdio::null())
        .status()
        .context("running cargo build for the speaker and controller")?;
    if !status.success() {
        bail!("cargo build of ferrolb-speaker and ferrolb-controller failed ({status})");
    }
    Ok(())
}

/// Variables cargo sets for the program it runs or tests (its package's
/// name, version, manifest directory...), as opposed to settings such as
/// `CARGO_HOME` or `CARGO_TARGET_DIR`.
fn is_package_variable(key: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_EXE_",
        "CARGO_CFG_",
    ]
    .iter()
    .any(|p| key.starts_with(p))
        || matches!(
            key,
            "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}

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
    /// Run the controller.
    pub controller: bool,
    /// Give every node a second interface, `eth1`, on a second LAN
    /// (`lan2`) with a client of its own ([`Cluster::client2`]).
    pub second_lan: bool,
    /// Log every API request from the start, with the user that sent it
    /// ([`CONTROLLER_USER`], [`SPEAKER_USER`]): see
    /// [`kube_test_server::TestServer::requests`].
    pub record_requests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 3,
            prefix: topology::PREFIX.to_owned(),
            progress: false,
            speaker_args: Vec::new(),
            controller: true,
            second_lan: false,
            record_requests: false,
        }
    }
}

/// A node of the lab.
#[derive(Debug)]
pub struct LabNode {
    /// `node-N`.
    pub name: String,
    /// 1-based index.
    pub index: usize,
    /// Its namespace.
    pub host: Host,
    /// Its `eth0` MAC.
    pub mac: MacAddr,
    /// The running speaker, if any.
    pub speaker: Option<Proc>,
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

/// Wires `eth1` of every node and a second client to a second LAN,
/// `lan2`: nodes `203.0.113.1N/24`, `2001:db8:3::1N/64`; the client
/// `.100`, with on-link routes to the pool subnets like the first client.
fn second_lan(lab: &mut Lab, nodes: &[LabNode]) -> anyhow::Result<Host> {
    let lan2 = lab.add_segment("lan2")?;
    for n in nodes {
        lab.attach(&n.host, &lan2, "eth1")?;
        n.host
            .add_addr_dev("eth1", &format!("{}/24", topology::lan2_v4(n.index)))?;
        n.host
            .add_addr_dev("eth1", &format!("{}/64", topology::lan2_v6(n.index)))?;
        n.host.sysctl("net.ipv4.conf.eth1.arp_ignore", "1")?;
        n.host.sysctl("net.ipv4.conf.eth1.arp_announce", "2")?;
    }
    let client2 = lab.add_host_on(&lan2, "client2")?;
    client2.add_addr(topology::CLIENT2_V4)?;
    client2.add_addr(topology::CLIENT2_V6)?;
    for route in topology::CLIENT_ROUTES {
        client2.exec("ip", &["route", "add", route, "dev", "eth0"])?;
    }
    Ok(client2)
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
        let mut lab = Lab::with_prefix(&opts.prefix)
            .map_err(|e| anyhow!("cannot create network namespaces: {e}"))?;
        let api = lab.add_host("api")?;
        api.add_addr(&format!("{API_V4}/24"))?;
        api.add_addr("2001:db8::1/64")?;
        let client = lab.add_host("client")?;
        client.add_addr(topology::CLIENT_V4)?;
        client.add_addr(topology::CLIENT_V6)?;
        for route in topology::CLIENT_ROUTES {
            client.exec("ip", &["route", "add", route, "dev", "eth0"])?;
        }
        let mut nodes = Vec::new();
        for i in 1..=opts.nodes {
            let name = topology::node_name(i);
            let host = lab.add_host(&name)?;
            host.add_addr(&format!("{}/24", topology::node_v4(i)))?;
            host.add_addr(&format!("{}/64", topology::node_v6(i)))?;
            // kube-proxy IPVS strictARP: never answer ARP for the LB IPs
            // held on lo; the speaker does.
            for scope in ["all", "eth0"] {
                host.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
                host.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
            }
            let mac = host.mac()?;
            nodes.push(LabNode {
                name,
                index: i,
                host,
                mac,
                speaker: None,
            });
        }
        let client2 = if opts.second_lan {
            Some(second_lan(&mut lab, &nodes)?)
        } else {
            None
        };
        done(p, t);

        let t = step(p, "starting API server");
        let options = kube_test_server::ServerOptions {
            request_log: opts.record_requests,
            ..Default::default()
        };
        let server = kube_test_server::TestServer::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            options,
        )
        .await?;
        server.write_kubeconfig(&dir.path().join("kubeconfig"))?;
        let ns_url = format!("http://{API_V4}:{API_PORT}");
        // Each component as its ServiceAccount in deploy/ferrolb.yaml
        // would be, so the request log tells their calls apart.
        for (file, user) in [
            ("kubeconfig-controller", CONTROLLER_USER),
            ("kubeconfig-speaker", SPEAKER_USER),
        ] {
            std::fs::write(
                dir.path().join(file),
                kube_test_server::kubeconfig_with_token(&ns_url, user),
            )?;
        }
        let relay = relay::start(&api, SocketAddr::from((API_V4, API_PORT)), server.addr())?;
        let kube = server.client().await?;
        done(p, t);

        let mut cluster = Self {
            proxy: None,
            endpoints: None,
            relay: Some(relay),
            prober: None,
            controller: None,
            nodes,
            client: client.clone(),
            client2,
            api,
            server,
            kube,
            launcher,
            opts,
            dir,
            lab: Some(lab),
        };

        let t = step(
            p,
            "applying deploy/crds, namespace, Nodes, deploy/examples/{ipaddresspool,l2advertisement}.yaml",
        );
        cluster.seed().await?;
        done(p, t);

        let t = step(p, "starting EndpointSlice and kube-proxy stand-ins, client");
        cluster.endpoints = Some(endpoints::start(
            cluster.kube.clone(),
            cluster
                .nodes
                .iter()
                .map(|n| (n.index, n.name.clone()))
                .collect(),
        ));
        cluster.proxy = Some(proxy::start(
            cluster.kube.clone(),
            cluster
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.host.clone()))
                .collect(),
        ));
        cluster.prober = Some(Prober::start(&client)?);
        done(p, t);

        std::fs::write(
            cluster.dir.path().join("secret"),
            rand::random::<[u8; 32]>(),
        )?;
        if cluster.opts.controller {
            let t = step(p, "starting controller");
            cluster.start_controller()?;
            done(p, t);
        }
        for i in 0..cluster.nodes.len() {
            let name = cluster.nodes[i].name.clone();
            cluster.start_speaker(&name)?;
            if p {
                println!(
                    "{name}: speaker running (pid {})",
                    cluster.speaker_pid(&name).unwrap_or(0)
                );
            }
        }
        let t = step(p, "waiting for gossip to converge");
        cluster.wait_converged(Duration::from_secs(15)).await?;
        done(p, t);
        Ok(cluster)
    }

    async fn seed(&self) -> anyhow::Result<()> {
        let pp = PostParams::default();
        for (source, yaml) in manifests::CRDS {
            self.apply(source, yaml).await?;
        }
        let nss: Api<Namespace> = Api::all(self.kube.clone());
        nss.create(
            &pp,
            &serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NS}}))?,
        )
        .await?;
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_err(|e| anyhow!("{e}"))?
            .to_string();
        let nodes: Api<Node> = Api::all(self.kube.clone());
        for n in &self.nodes {
            let v4 = IpAddr::V4(topology::node_v4(n.index));
            let v6 = IpAddr::V6(topology::node_v6(n.index));
            let obj: Node = serde_json::from_value(objects::node(&n.name, v4, v6, &now))?;
            nodes.create(&pp, &obj).await?;
            let status = serde_json::json!({"status": objects::node_status(&n.name, v4, v6, &now)});
            nodes
                .patch_status(&n.name, &PatchParams::default(), &Patch::Merge(status))
                .await?;
        }
        for (source, yaml) in manifests::CONFIG {
            self.apply(source, yaml).await?;
        }
        Ok(())
    }

    /// Server-side applies every object in `yaml` (`source` names it in
    /// errors); returns `kind/name` of each.
    pub async fn apply(&self, source: &str, yaml: &str) -> anyhow::Result<Vec<String>> {
        manifests::apply(&self.kube, source, yaml).await
    }

    async fn create_custom(&self, obj: Value, kind: &str, plural: &str) -> anyhow::Result<()> {
        let gvk = GroupVersionKind::gvk("ferrolb.io", "v1beta1", kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(self.kube.clone(), SYSTEM_NS, &ar);
        let obj: DynamicObject = serde_json::from_value(obj)?;
        api.create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating {kind}"))?;
        Ok(())
    }

    /// The directory holding kubeconfigs, the secret and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The kubeconfig for the user (`http://127.0.0.1:PORT`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Restarts the API server and waits until this lab's client gets
    /// through again. The restart closes every connection; a request that
    /// races such a close on a pooled connection fails once, as any client
    /// sees after an API server restart, so the first requests are retried
    /// here (bounded: 10 s) rather than by whichever call comes next.
    pub async fn restart_api_server(&self) -> anyhow::Result<()> {
        self.server.restart().await?;
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match namespaces.list(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    bail!("the API server did not answer within 10 s of its restart: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        // Connections closed by the restart and not yet seen closed by
        // the pool are dropped once their EOF is read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    /// A client for the lab's API server.
    pub fn kube(&self) -> Client {
        self.kube.clone()
    }

    /// The in-process API server (fault injection, restart).
    pub fn server(&self) -> &kube_test_server::TestServer {
        &self.server
    }

    /// The network lab (namespace names).
    pub fn lab(&self) -> &Lab {
        self.lab.as_ref().expect("lab lives until drop")
    }

    fn log_file(&self, name: &str) -> anyhow::Result<File> {
        let path = self.dir.path().join(format!("{name}.log"));
        Ok(File::options().create(true).append(true).open(&path)?)
    }

    /// The last `lines` lines of a component's log (`node-1`, `controller`).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Starts (or restarts) the controller in the `api` namespace.
    pub fn start_controller(&mut self) -> anyhow::Result<()> {
        self.controller.take();
        let log = self.log_file("controller")?;
        let dir = self.dir.path();
        let env = [(
            "KUBECONFIG",
            dir.join("kubeconfig-controller").display().to_string(),
        )];
        let args = [
            "--lease-namespace",
            SYSTEM_NS,
            "--identity",
            "ferrolb-lab-controller",
            "--lease-duration",
            "4s",
            "--http-addr",
            "127.0.0.1:7472",
            "--log-format",
            "text",
        ]
        .map(String::from);
        let proc = self
            .launcher
            .spawn(Program::Controller, &self.api, &env, &args, dir, &log)?;
        self.controller = Some(proc);
        Ok(())
    }

    fn node_mut(&mut self, name: &str) -> anyhow::Result<&mut LabNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> anyhow::Result<&LabNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    /// Starts the speaker of node `name` (replacing a previous one).
    pub fn start_speaker(&mut self, name: &str) -> anyhow::Result<()> {
        let log = self.log_file(name)?;
        let dir = self.dir.path().to_path_buf();
        let node = self.node_mut(name)?;
        node.speaker.take();
        let v4 = topology::node_v4(node.index);
        let env = [
            ("NODE_NAME", node.name.clone()),
            (
                "KUBECONFIG",
                dir.join("kubeconfig-speaker").display().to_string(),
            ),
        ];
        let mut args: Vec<String> = ["--namespace", SYSTEM_NS, "--log-format", "text"]
            .map(String::from)
            .into();
        args.extend([
            "--http-addr".into(),
            format!("{v4}:{SPEAKER_HTTP_PORT}"),
            "--memberlist-advertise-addr".into(),
            v4.to_string(),
            "--memberlist-secret-file".into(),
            dir.join("secret").display().to_string(),
        ]);
        args.extend(self.opts.speaker_args.iter().cloned());
        let node = self.node(name)?;
        let proc = self
            .launcher
            .spawn(Program::Speaker, &node.host, &env, &args, &dir, &log)?;
        self.node_mut(name)?.speaker = Some(proc);
        Ok(())
    }

    /// The pid of node `name`'s speaker (`ip netns exec` execs it, so the
    /// child's pid is the speaker's; under runc, the container's process).
    pub fn speaker_pid(&self, name: &str) -> Option<u32> {
        self.node(name).ok()?.speaker.as_ref().map(|c| c.id())
    }

    /// Components that have exited although they should run, with their
    /// status and log tail.
    pub fn dead_children(&mut self) -> Vec<String> {
        let mut dead = Vec::new();
        let mut check = |name: &str, child: &mut Option<Proc>| {
            if let Some(c) = child {
                if let Ok(Some(status)) = c.try_wait() {
                    dead.push((name.to_owned(), status.to_string()));
                    child.take();
                }
            }
        };
        check("controller", &mut self.controller);
        for n in &mut self.nodes {
            check(&n.name, &mut n.speaker);
        }
        dead.into_iter()
            .map(|(name, status)| {
                format!(
                    "{name} exited ({status}); last log lines:\n{}",
                    self.log_tail(&name, 10)
                )
            })
            .collect()
    }

    /// Node `name`'s speaker `/metrics` text (HTTP/1.0 from inside its
    /// namespace), or `None` when it does not answer.
    fn speaker_metrics_text(&self, name: &str) -> Option<String> {
        let node = self.node(name).ok()?;
        let addr = SocketAddr::from((topology::node_v4(node.index), SPEAKER_HTTP_PORT));
        node.host
            .run_in(move || -> std::io::Result<String> {
                use std::io::{Read, Write};
                let mut s =
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: speaker\r\n\r\n")?;
                let mut out = String::new();
                s.take(1 << 20).read_to_string(&mut out)?;
                Ok(out)
            })
            .ok()?
            .ok()
    }

    /// Reads a gauge from node `name`'s speaker `/metrics`.
    pub fn speaker_metric(&self, name: &str, metric: &str) -> Option<f64> {
        let body = self.speaker_metrics_text(name)?;
        body.lines()
            .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Waits until every running speaker sees every running speaker.
    pub async fn wait_converged(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let running: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| n.speaker.is_some())
                .map(|n| n.name.as_str())
                .collect();
            let want = running.len() as f64;
            let ok = running
                .iter()
                .all(|n| self.speaker_metric(n, "ferrolb_speaker_members_alive") == Some(want));
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("speakers did not converge within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a LoadBalancer Service and its EndpointSlices (a ready
    /// endpoint on every node, or on `endpoint_nodes` when given). The
    /// slices are written first, so the EndpointSlice stand-in leaves them
    /// alone.
    pub async fn create_service(
        &self,
        spec: &ServiceSpec,
        endpoint_nodes: Option<&[&str]>,
    ) -> anyhow::Result<()> {
        let pp = PostParams::default();
        let nodes: Vec<(usize, String)> = self
            .nodes
            .iter()
            .filter(|n| endpoint_nodes.is_none_or(|list| list.contains(&n.name.as_str())))
            .map(|n| (n.index, n.name.clone()))
            .collect();
        let slices: Api<EndpointSlice> = Api::namespaced(self.kube.clone(), "default");
        for &v6 in spec.families.v6_flags() {
            let slice = objects::endpoint_slice(
                "default",
                &spec.name,
                objects::tcp_port(spec.port),
                v6,
                &nodes,
            );
            slices.create(&pp, &serde_json::from_value(slice)?).await?;
        }
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        svcs.create(&pp, &serde_json::from_value(objects::service(spec))?)
            .await
            .with_context(|| format!("creating Service {}", spec.name))?;
        Ok(())
    }

    /// Deletes a Service and its EndpointSlices.
    pub async fn delete_service(&self, name: &str) -> anyhow::Result<()> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        svcs.delete(name, &DeleteParams::default()).await?;
        let slices: Api<EndpointSlice> = Api::namespaced(self.kube.clone(), "default");
        for v6 in [false, true] {
            let _ = slices
                .delete(&objects::slice_name(name, v6), &DeleteParams::default())
                .await;
        }
        Ok(())
    }

    /// The Service as JSON.
    pub async fn service(&self, name: &str) -> anyhow::Result<Value> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        Ok(serde_json::to_value(svcs.get(name).await?)?)
    }

    /// Every Service in `default`, as JSON.
    pub async fn services(&self) -> anyhow::Result<Vec<Value>> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        let list = svcs.list(&ListParams::default()).await?;
        list.items
            .into_iter()
            .map(|s| Ok(serde_json::to_value(s)?))
            .collect()
    }

    /// Waits until Service `name` has at least `count` ingress IPs.
    pub async fn wait_ips(
        &self,
        name: &str,
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<Vec<IpAddr>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(svc) = self.service(name).await {
                let ips = objects::ingress_ips(&svc);
                if ips.len() >= count {
                    return Ok(ips);
                }
            }
            if Instant::now() > deadline {
                bail!("Service {name} got no IP within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn prober(&self) -> Result<&Prober, ProbeError> {
        self.prober.as_ref().ok_or(ProbeError::Gone)
    }

    /// One request from the client to `ip:port`.
    pub async fn probe(
        &self,
        ip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<String, ProbeError> {
        self.prober()?
            .probe(SocketAddr::new(ip, port), timeout)
            .await
    }

    /// One UDP datagram from the client to `ip:port`; the answer.
    pub async fn probe_udp(
        &self,
        ip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<String, ProbeError> {
        self.prober()?
            .probe_udp(SocketAddr::new(ip, port), timeout)
            .await
    }

    /// Requests every 10 ms until one answers; returns the answer.
    pub async fn wait_answer(
        &self,
        ip: IpAddr,
        port: u16,
        limit: Duration,
    ) -> anyhow::Result<String> {
        self.wait_answer_on(ip, port, false, limit).await
    }

    /// [`Cluster::wait_answer`] over UDP (`udp`) or TCP.
    pub async fn wait_answer_on(
        &self,
        ip: IpAddr,
        port: u16,
        udp: bool,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        let mut last = ProbeError::Timeout;
        while Instant::now() < deadline {
            let start = Instant::now();
            let timeout = Duration::from_millis(50);
            let answer = if udp {
                self.probe_udp(ip, port, timeout).await
            } else {
                self.probe(ip, port, timeout).await
            };
            match answer {
                Ok(a) => return Ok(a),
                Err(e) => last = e,
            }
            tokio::time::sleep_until((start + Duration::from_millis(10)).into()).await;
        }
        bail!("no answer from {ip}:{port} within {limit:?} (last: {last})")
    }

    /// The node whose MAC the client's neighbour entry for `ip` holds.
    pub fn announced_by(&self, ip: IpAddr) -> Option<String> {
        let entry = self.client.neighbour(ip).ok()??;
        let mac = entry.lladdr?;
        self.nodes
            .iter()
            .find(|n| n.mac == mac)
            .map(|n| n.name.clone())
    }

    /// The node's death: its switch port goes down (the cable is cut) and
    /// its speaker is SIGKILLed.
    pub fn kill_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        node.host.port_down()?;
        if let Some(mut s) = node.speaker.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        Ok(())
    }

    /// Sends SIGTERM to node `name`'s speaker (it leaves gossip and stops
    /// announcing); returns at once. [`Cluster::reap_speaker`] waits.
    pub fn term_speaker(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        let pid = node
            .speaker
            .as_ref()
            .map(|c| c.id())
            .ok_or_else(|| anyhow!("{name} has no speaker"))?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        Ok(())
    }

    /// Waits (at most 5 s) for a SIGTERMed speaker to exit; returns its
    /// exit status as text.
    pub fn reap_speaker(&mut self, name: &str) -> anyhow::Result<String> {
        let node = self.node_mut(name)?;
        let Some(mut child) = node.speaker.take() else {
            return Ok("not running".into());
        };
        match child.wait_timeout(Duration::from_secs(5))? {
            Some(status) => Ok(status.to_string()),
            None => bail!("{name}'s speaker did not exit within 5 s of SIGTERM"),
        }
    }

    /// Brings node `name` back: port up, addresses present, speaker running.
    pub fn restore_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node(name)?;
        node.host.port_up()?;
        // Carrier loss may have dropped the IPv6 address; re-adding an
        // address that is still there fails harmlessly.
        let _ = node
            .host
            .add_addr(&format!("{}/64", topology::node_v6(node.index)));
        if node.speaker.is_none() {
            self.start_speaker(name)?;
        }
        Ok(())
    }

    /// Peak resident set size (VmHWM) of `pid`, in KiB.
    pub fn peak_rss_kib(pid: u32) -> Option<u64> {
        proc_status_field(pid, "VmHWM:")
    }

    /// Resident memory of `pid` now (VmRSS), in KiB.
    pub fn rss_kib(pid: u32) -> Option<u64> {
        proc_status_field(pid, "VmRSS:")
    }

    /// User + system CPU time of `pid`, in clock ticks (1/100 s).
    pub fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }

    /// The `nodeAssigned` Events of Service `name`, oldest first, as
    /// (node, message).
    pub async fn node_assigned_events(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let api: Api<Event> = Api::namespaced(self.kube.clone(), "default");
        let mut list = api.list(&ListParams::default()).await?.items;
        list.sort_by_key(|e| {
            e.metadata
                .resource_version
                .clone()
                .unwrap_or_default()
                .parse::<u64>()
                .unwrap_or(0)
        });
        Ok(list
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("nodeAssigned")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
            .map(|e| {
                let msg = e.note.unwrap_or_default();
                let node = msg.split('"').nth(1).map(str::to_owned).unwrap_or_default();
                (node, msg)
            })
            .collect())
    }
}

/// Helpers for end-to-end tests that go beyond the lab's defaults (pool and
/// advertisement edits, node labels, endpoint moves, Events, metrics).
impl Cluster {
    fn custom_api(&self, kind: &str, plural: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("ferrolb.io", "v1beta1", kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::namespaced_with(self.kube.clone(), SYSTEM_NS, &ar)
    }

    /// Creates a ferrolb custom object (`IPAddressPool`, `L2Advertisement`)
    /// in the system namespace.
    pub async fn create_custom_object(
        &self,
        obj: Value,
        kind: &str,
        plural: &str,
    ) -> anyhow::Result<()> {
        self.create_custom(obj, kind, plural).await
    }

    /// Merge-patches the ferrolb custom object `name` (spec or metadata).
    pub async fn patch_custom(
        &self,
        kind: &str,
        plural: &str,
        name: &str,
        patch: Value,
    ) -> anyhow::Result<()> {
        self.custom_api(kind, plural)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("patching {kind} {name}"))?;
        Ok(())
    }

    /// The ferrolb custom object `name`, as JSON.
    pub async fn custom(&self, kind: &str, plural: &str, name: &str) -> anyhow::Result<Value> {
        Ok(serde_json::to_value(
            self.custom_api(kind, plural).get(name).await?,
        )?)
    }

    /// Sets (`Some`) or removes (`None`) the label `key` on Node `node`.
    pub async fn label_node(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.kube.clone());
        let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("labelling Node {node}"))?;
        Ok(())
    }

    /// Replaces the endpoints of Service `service`'s EndpointSlice of one
    /// family with one ready endpoint on each of `endpoint_nodes`.
    pub async fn set_endpoint_nodes(
        &self,
        service: &str,
        port: u16,
        v6: bool,
        endpoint_nodes: &[&str],
    ) -> anyhow::Result<()> {
        let nodes: Vec<(usize, String)> = self
            .nodes
            .iter()
            .filter(|n| endpoint_nodes.contains(&n.name.as_str()))
            .map(|n| (n.index, n.name.clone()))
            .collect();
        let slice =
            objects::endpoint_slice("default", service, objects::tcp_port(port), v6, &nodes);
        let name = slice["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let patch = serde_json::json!({"endpoints": slice["endpoints"]});
        let slices: Api<EndpointSlice> = Api::namespaced(self.kube.clone(), "default");
        slices
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("updating EndpointSlice {name}"))?;
        Ok(())
    }

    /// Every Event about Service `name`, oldest first, as (type, reason,
    /// note).
    pub async fn service_events(
        &self,
        name: &str,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let api: Api<Event> = Api::namespaced(self.kube.clone(), "default");
        let mut list = api.list(&ListParams::default()).await?.items;
        list.sort_by_key(|e| {
            e.metadata
                .resource_version
                .clone()
                .unwrap_or_default()
                .parse::<u64>()
                .unwrap_or(0)
        });
        Ok(list
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect())
    }

    /// The Events `kubectl describe service NAME` shows, as (reason,
    /// message): core/v1 Events selected the way kubectl selects them,
    /// by kind, name, namespace and the Service's UID, so an Event whose
    /// reference lacks the UID is not among them.
    pub async fn describe_events(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        let uid = svcs
            .get(name)
            .await?
            .metadata
            .uid
            .context("the Service has no uid")?;
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.kube.clone(), "default");
        let fields = format!(
            "involvedObject.kind=Service,involvedObject.uid={uid},\
             involvedObject.name={name},involvedObject.namespace=default"
        );
        let list = api.list(&ListParams::default().fields(&fields)).await?;
        Ok(list
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect())
    }

    /// The value of the sample of `metric` whose labels contain `label`
    /// (e.g. `reason="malformed"`) in node `name`'s speaker `/metrics`.
    pub fn speaker_metric_with(&self, name: &str, metric: &str, label: &str) -> Option<f64> {
        let body = self.speaker_metrics_text(name)?;
        body.lines()
            .find(|l| {
                l.starts_with(metric) && l[metric.len()..].starts_with('{') && l.contains(label)
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

fn proc_status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::is_package_variable;

    #[test]
    fn package_variables_are_dropped_and_cargo_settings_kept() {
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_ferrolb-lab",
            "OUT_DIR",
            "CARGO_TARGET_TMPDIR",
        ] {
            assert!(is_package_variable(key), "{key}");
        }
        for key in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "PATH",
        ] {
            assert!(!is_package_variable(key), "{key}");
        }
    }
}
