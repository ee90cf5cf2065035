//! `ferrolb-lab`: a ferrolb cluster in network namespaces. See `docs/lab.md`.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferrolb_lab::client::ProbeError;
use ferrolb_lab::cluster::{Cluster, Options};
use ferrolb_lab::failover::{self, Fault};
use ferrolb_lab::manifests;
use ferrolb_lab::objects::{self, Families, ServiceSpec};
use ferrolb_lab::process::Launcher;
use ferrolb_lab::stats::{ms, Summary};
use ferrolb_lab::topology;
use serde_json::json;

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

/// What every lab this command starts is made of.
#[derive(Debug)]
struct Setup {
    nodes: usize,
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
}

const STATE_DIR: &str = "/run/ferrolb-lab";
const PORT: u16 = 8080;
/// The demo fails over this example Service on its port.
const FAILOVER_SERVICE: &str = "web-dualstack";
const EXAMPLE_PORT: u16 = 80;

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
        Command::Demo => demo(&setup).await,
        Command::Up => up(&setup).await,
        Command::Down => down(),
        Command::Client { ip, port, udp } => client(ip, port, udp),
        Command::Bench {
            rounds,
            json,
            v6,
            services,
        } => bench(&setup, rounds, json, v6, services.into()).await,
    }
}

async fn start(setup: &Setup, progress: bool) -> anyhow::Result<Cluster> {
    let launcher = Launcher::locate(setup.image.as_deref())?;
    if progress {
        println!("running the {}", launcher.describe());
    }
    let opts = Options {
        nodes: setup.nodes,
        progress,
        ..Options::default()
    };
    Cluster::start(opts, launcher).await
}

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

/// The first port of a Service and whether it is UDP.
fn first_port(svc: &serde_json::Value) -> (u16, bool) {
    let p = &svc["spec"]["ports"][0];
    let port = p["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    (port.unwrap_or(0), p["protocol"] == "UDP")
}

/// One request to `ip` on the Service's first port (TCP or UDP).
async fn request(
    c: &Cluster,
    svc: &serde_json::Value,
    ip: IpAddr,
    timeout: Duration,
) -> Result<String, ProbeError> {
    match first_port(svc) {
        (port, true) => c.probe_udp(ip, port, timeout).await,
        (port, false) => c.probe(ip, port, timeout).await,
    }
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

/// `kubectl get svc` plus who announces each IP and who answered.
async fn print_table(c: &Cluster) -> anyhow::Result<()> {
    let mut rows = vec![[
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "ANNOUNCED BY",
        "ANSWER",
    ]
    .map(String::from)];
    for svc in c.services().await? {
        let ips = objects::ingress_ips(&svc);
        let (mut by, mut answers) = (Vec::new(), Vec::new());
        for ip in &ips {
            let a = match request(c, &svc, *ip, Duration::from_millis(200)).await {
                Ok(a) => a,
                Err(e) => format!("({e})"),
            };
            answers.push(a);
            by.push(c.announced_by(*ip).unwrap_or_else(|| "?".into()));
        }
        let show = |v: Vec<String>| {
            if v.is_empty() {
                "<pending>".to_owned()
            } else {
                v.join(",")
            }
        };
        rows.push([
            svc["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            svc["spec"]["type"].as_str().unwrap_or("").to_owned(),
            svc["spec"]["clusterIP"].as_str().unwrap_or("").to_owned(),
            show(ips.iter().map(|i| i.to_string()).collect()),
            objects::ports_column(&svc),
            show(by),
            show(answers),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

fn report_dead(c: &mut Cluster) -> anyhow::Result<()> {
    let dead = c.dead_children();
    if !dead.is_empty() {
        bail!("{}", dead.join("\n"));
    }
    Ok(())
}

async fn demo(setup: &Setup) -> anyhow::Result<()> {
    if setup.nodes < 2 {
        bail!("the demo fails over, so it needs at least 2 nodes");
    }
    let mut c = start(setup, true).await?;
    let t = Instant::now();
    println!("applying the example Services:");
    example_services(&c).await?;
    println!(
        "every IP assigned, announced and answering after {} ms",
        t.elapsed().as_millis()
    );
    println!();
    print_table(&c).await?;
    println!();
    report_dead(&mut c)?;

    let ips = objects::ingress_ips(&c.service(FAILOVER_SERVICE).await?);
    let v4 = *ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .context("web-dualstack has no IPv4 address")?;
    let limit = Duration::from_secs(10);
    let f = failover::measure(&mut c, v4, EXAMPLE_PORT, Fault::NodeDeath, limit).await?;
    println!(
        "node death: {} cut off and its speaker killed; {} answers {v4} after {:.0} ms ({} requests)",
        f.from,
        f.to,
        ms(f.gap),
        f.probes
    );
    print_table(&c).await?;
    println!();
    print!("restoring {}... ", f.from);
    c.restore_node(&f.from)?;
    let owner = failover::settle(&c, v4, EXAMPLE_PORT).await?;
    println!("ok, {owner} answers");
    report_dead(&mut c)?;

    let g = failover::measure(&mut c, v4, EXAMPLE_PORT, Fault::GracefulStop, limit).await?;
    println!(
        "graceful stop: {}'s speaker got SIGTERM; {} answers {v4} after {:.0} ms ({} requests)",
        g.from,
        g.to,
        ms(g.gap),
        g.probes
    );
    print!("tearing down... ");
    drop(c);
    println!("ok");
    Ok(())
}

async fn up(setup: &Setup) -> anyhow::Result<()> {
    std::fs::create_dir_all(STATE_DIR)?;
    let pid_file = format!("{STATE_DIR}/up.pid");
    if let Ok(old) = std::fs::read_to_string(&pid_file) {
        if std::path::Path::new(&format!("/proc/{}", old.trim())).exists() {
            bail!(
                "a lab is already up (pid {}); run `ferrolb-lab down` first",
                old.trim()
            );
        }
    }
    let mut c = start(setup, true).await?;
    println!("applying the example Services:");
    example_services(&c).await?;
    std::fs::write(&pid_file, std::process::id().to_string())?;
    println!();
    print_table(&c).await?;
    let client_ns = c
        .lab()
        .namespaces()
        .iter()
        .find(|n| n.ends_with("-client"))
        .cloned()
        .unwrap_or_default();
    // The path to run it by: under `cargo run` it is not on PATH.
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ferrolb-lab".into());
    println!(
        "\nlab is up (pid {}). In another shell:\n  \
         export KUBECONFIG={}\n  \
         kubectl get svc -o wide; kubectl describe svc web; kubectl get ipaddresspools -A\n  \
         kubectl apply -f my-service.yaml   # any LoadBalancer Service: it gets endpoints on every node\n  \
         {me} client <EXTERNAL-IP> {EXAMPLE_PORT}   # or: ip netns exec {client_ns} curl -s http://<IP>:{EXAMPLE_PORT}\n  \
         {me} client --udp 198.51.100.53 53\n  \
         logs: {}/<node-N|controller>.log\n\
         Ctrl-C or `{me} down` tears it down.",
        std::process::id(),
        c.kubeconfig().display(),
        c.dir().display(),
    );
    let result = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dead = c.dead_children();
        if !dead.is_empty() {
            break Err(anyhow::anyhow!("{}", dead.join("\n")));
        }
    };
    let _ = std::fs::remove_file(&pid_file);
    result
}

fn down() -> anyhow::Result<()> {
    let pid_file = format!("{STATE_DIR}/up.pid");
    if let Ok(text) = std::fs::read_to_string(&pid_file) {
        let pid: i32 = text.trim().parse().context("reading the pid file")?;
        let proc_dir = format!("/proc/{pid}");
        if std::path::Path::new(&proc_dir).exists() {
            println!("stopping ferrolb-lab (pid {pid})...");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(15);
            while std::path::Path::new(&proc_dir).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_file(&pid_file);
    }
    let swept = netlab::sweep_stale(topology::PREFIX)?;
    println!("down; removed {} leftover namespace(s)", swept.len());
    Ok(())
}

fn client(ip: IpAddr, port: u16, udp: bool) -> anyhow::Result<()> {
    let ns = netlab::list_namespaces()?
        .into_iter()
        .find(|n| n.starts_with(topology::PREFIX) && n.ends_with("-client"))
        .context("no running lab (start one with `ferrolb-lab up`)")?;
    let path = format!("/run/netns/{ns}");
    let addr = std::net::SocketAddr::new(ip, port);
    let answer = std::thread::spawn(move || -> anyhow::Result<String> {
        let f = std::fs::File::open(&path)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let timeout = Duration::from_secs(2);
        Ok(if udp {
            ferrolb_lab::client::probe_udp_blocking(addr, timeout)?
        } else {
            ferrolb_lab::client::probe_blocking(addr, timeout)?
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("client thread panicked"))?
    .with_context(|| format!("no answer from {addr}{}", if udp { " (UDP)" } else { "" }))?;
    println!("{answer}");
    Ok(())
}

async fn bench(
    setup: &Setup,
    rounds: usize,
    json_out: bool,
    v6: bool,
    services: usize,
) -> anyhow::Result<()> {
    if setup.nodes < 2 {
        bail!("bench fails over, so it needs at least 2 nodes");
    }
    let mut c = start(setup, !json_out).await?;
    let ips = web(&c, "web").await?;
    let ip = if v6 { ips[1] } else { ips[0] };
    let limit = Duration::from_secs(10);
    let (mut death, mut graceful) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for fault in [Fault::NodeDeath, Fault::GracefulStop] {
            let f = failover::measure(&mut c, ip, PORT, fault, limit).await?;
            if !json_out {
                println!(
                    "round {round:>2} {fault:?}: {} -> {} in {:.1} ms",
                    f.from,
                    f.to,
                    ms(f.gap)
                );
            }
            match fault {
                Fault::NodeDeath => death.push(f.gap),
                Fault::GracefulStop => graceful.push(f.gap),
            }
            c.restore_node(&f.from)?;
            failover::settle(&c, ip, PORT).await?;
            report_dead(&mut c)?;
        }
    }
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
    let idle = idle_with_services(&c, services, !json_out).await?;
    let summaries = [
        ("failover_node_death", Summary::of(&death)),
        ("failover_graceful_stop", Summary::of(&graceful)),
        ("create_to_ip_assigned", Summary::of(&assign)),
        ("create_to_first_answer", Summary::of(&answer)),
    ];
    if json_out {
        let mut out = serde_json::Map::new();
        out.insert("nodes".into(), json!(setup.nodes));
        out.insert("rounds".into(), json!(rounds));
        out.insert("family".into(), json!(if v6 { "IPv6" } else { "IPv4" }));
        for (name, s) in &summaries {
            out.insert((*name).into(), s.map(|s| s.to_json()).into());
        }
        out.insert("idle".into(), idle.to_json());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "\n{rounds} rounds, {} nodes, {} (requests every 10 ms, 20 ms connect timeout)",
            setup.nodes,
            if v6 { "IPv6" } else { "IPv4" }
        );
        println!(
            "{:<26} {:>9} {:>9} {:>9} {:>9}",
            "measurement (ms)", "min", "p50", "p99", "max"
        );
        for (name, s) in &summaries {
            if let Some(s) = s {
                println!(
                    "{name:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    ms(s.min),
                    ms(s.p50),
                    ms(s.p99),
                    ms(s.max)
                );
            }
        }
        idle.print();
    }
    drop(c);
    Ok(())
}

/// What the processes use with many Services, once nothing changes.
struct Idle {
    services: usize,
    created: Duration,
    all_announced: Duration,
    all_assigned: Duration,
    sample_answered: Duration,
    sampled: usize,
    window: Duration,
    procs: Vec<serde_json::Value>,
}

impl Idle {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "services": self.services,
            "create_calls_ms": ms(self.created),
            "create_to_all_announced_ms": ms(self.all_announced),
            "create_to_all_assigned_ms": ms(self.all_assigned),
            "create_to_sample_answered_ms": ms(self.sample_answered),
            "sampled_ips": self.sampled,
            "cpu_window_s": self.window.as_secs_f64(),
            "processes": self.procs,
        })
    }

    fn print(&self) {
        println!(
            "\n{} IPv6 Services created one after another in {:.0} ms: all assigned after {:.0} ms, \
             all announced after {:.0} ms, {} sampled IPs answering after {:.0} ms",
            self.services,
            ms(self.created),
            ms(self.all_assigned),
            ms(self.all_announced),
            self.sampled,
            ms(self.sample_answered)
        );
        println!(
            "{:<12} {:>10} {:>14} {:>12} {:>14} {:>10} {:>16}",
            "process",
            "RSS KiB",
            "peak RSS KiB",
            "idle CPU %",
            "burst CPU s",
            "announced",
            "multicast errs"
        );
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::Number(n) if n.is_f64() => {
                format!("{:.2}", n.as_f64().unwrap_or(0.0))
            }
            other => other.to_string(),
        };
        for p in &self.procs {
            println!(
                "{:<12} {:>10} {:>14} {:>12} {:>14} {:>10} {:>16}",
                p["name"].as_str().unwrap_or(""),
                show(&p["rss_kib"]),
                show(&p["peak_rss_kib"]),
                show(&p["idle_cpu_percent"]),
                show(&p["burst_cpu_s"]),
                show(&p["announced_ips"]),
                show(&p["multicast_errors"]),
            );
        }
        println!(
            "(burst CPU: from the first create until idle; idle CPU: over {:.0} s with nothing changing)",
            self.window.as_secs_f64()
        );
    }
}

/// Creates `n` IPv6 Services from a pool of their own (advertised from
/// every node), waits until all have an IP and a sample of them answers,
/// lets the announcement bursts end, then reads memory and CPU.
async fn idle_with_services(c: &Cluster, n: usize, progress: bool) -> anyhow::Result<Idle> {
    const BENCH_POOL: &str = "bench";
    let first: u128 = u128::from("2001:db8:0:1::1000".parse::<std::net::Ipv6Addr>()?);
    let last = std::net::Ipv6Addr::from(first + n as u128 - 1);
    c.create_custom_object(
        json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": BENCH_POOL, "namespace": topology::SYSTEM_NS},
            "spec": {"addresses": [format!("2001:db8:0:1::1000-{last}")], "autoAssign": false},
        }),
        "IPAddressPool",
        "ipaddresspools",
    )
    .await?;
    c.create_custom_object(
        json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": BENCH_POOL, "namespace": topology::SYSTEM_NS},
            "spec": {"ipAddressPools": [BENCH_POOL]},
        }),
        "L2Advertisement",
        "l2advertisements",
    )
    .await?;
    if progress {
        println!("\ncreating {n} IPv6 Services in pool {BENCH_POOL}...");
    }
    let port = PORT + 2;
    let mut pids: Vec<(String, u32)> = Vec::new();
    if let Some(ch) = c.controller.as_ref() {
        pids.push(("controller".to_owned(), ch.id()));
    }
    for node in &c.nodes {
        if let Some(ch) = node.speaker.as_ref() {
            pids.push((node.name.clone(), ch.id()));
        }
    }
    let burst_start: Vec<Option<u64>> = pids.iter().map(|(_, p)| Cluster::cpu_ticks(*p)).collect();
    let t0 = Instant::now();
    for k in 0..n {
        let mut spec = ServiceSpec::new(&format!("idle-{k}"), port);
        spec.families = Families::V6;
        spec.pool = Some(BENCH_POOL.to_owned());
        c.create_service(&spec, None).await?;
    }
    let created = t0.elapsed();
    let deadline = t0 + Duration::from_secs(120);
    let ips = loop {
        let ips: Vec<IpAddr> = c
            .services()
            .await?
            .iter()
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("idle-"))
            })
            .flat_map(objects::ingress_ips)
            .collect();
        if ips.len() >= n {
            break ips;
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} Services got an IP within 120 s", ips.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all_assigned = t0.elapsed();
    // Every speaker's (IP, interface) pairs, summed: each IP announced once.
    let all_announced = loop {
        let pairs: f64 = c
            .nodes
            .iter()
            .filter_map(|node| c.speaker_metric(&node.name, "ferrolb_speaker_announced_ips"))
            .sum();
        if pairs >= n as f64 {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            bail!("only {pairs} of {n} IPs announced within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A sample, spread over the range, proves they are announced (every IP
    // would overflow the kernel's shared neighbour table, 1,024 entries).
    let step = (n / 50).max(1);
    let sample: Vec<IpAddr> = ips.iter().step_by(step).copied().collect();
    for ip in &sample {
        let left = deadline.saturating_duration_since(Instant::now());
        c.wait_answer(*ip, port, left).await?;
    }
    let sample_answered = t0.elapsed();
    // The last gratuitous burst ends 3.3 s after a takeover; then idle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before: Vec<Option<u64>> = pids.iter().map(|(_, p)| Cluster::cpu_ticks(*p)).collect();
    // CPU spent taking the burst in: from the first create to idle.
    let burst: Vec<Option<f64>> = burst_start
        .iter()
        .zip(&before)
        .map(|(a, b)| Some(b.as_ref()?.checked_sub(*a.as_ref()?)? as f64 / 100.0))
        .collect();
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let mut procs = Vec::new();
    for (((name, pid), b), burst_cpu) in pids.iter().zip(before).zip(burst) {
        let cpu = match (b, Cluster::cpu_ticks(*pid)) {
            (Some(b), Some(a)) => Some((a - b) as f64 / 100.0 / window.as_secs_f64() * 100.0),
            _ => None,
        };
        let speaker = name != "controller";
        procs.push(json!({
            "name": name,
            "rss_kib": Cluster::rss_kib(*pid),
            "peak_rss_kib": Cluster::peak_rss_kib(*pid),
            "idle_cpu_percent": cpu,
            "burst_cpu_s": burst_cpu,
            "announced_ips": speaker.then(|| c.speaker_metric(name, "ferrolb_speaker_announced_ips")).flatten(),
            "multicast_errors": speaker
                .then(|| c.speaker_metric_with(name, "ferrolb_speaker_transport_errors_total", "op=\"multicast\""))
                .flatten(),
        }));
    }
    Ok(Idle {
        services: n,
        created,
        all_announced,
        all_assigned,
        sample_answered,
        sampled: sample.len(),
        window,
        procs,
    })
}
