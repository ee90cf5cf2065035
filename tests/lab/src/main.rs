//! `ferrolb-lab`: a ferrolb cluster in network namespaces. See `docs/lab.md`.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferrolb_lab::cluster::{Bins, Cluster, Options};
use ferrolb_lab::failover::{self, Fault};
use ferrolb_lab::objects::{self, ServiceSpec};
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
        #[arg(default_value_t = 8080)]
        port: u16,
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
    },
}

const STATE_DIR: &str = "/run/ferrolb-lab";
const PORT: u16 = 8080;

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
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo(cli.nodes).await,
        Command::Up => up(cli.nodes).await,
        Command::Down => down(),
        Command::Client { ip, port } => client(ip, port),
        Command::Bench { rounds, json, v6 } => bench(cli.nodes, rounds, json, v6).await,
    }
}

async fn start(nodes: usize, progress: bool) -> anyhow::Result<Cluster> {
    let bins = Bins::locate()?;
    let opts = Options {
        nodes,
        progress,
        ..Options::default()
    };
    Cluster::start(opts, bins).await
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
        let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap_or(0) as u16;
        let (mut by, mut answers) = (Vec::new(), Vec::new());
        for ip in &ips {
            let a = match c.probe(*ip, port, Duration::from_millis(200)).await {
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

async fn demo(nodes: usize) -> anyhow::Result<()> {
    if nodes < 2 {
        bail!("the demo fails over, so it needs at least 2 nodes");
    }
    let mut c = start(nodes, true).await?;
    let t = Instant::now();
    print!("creating Service default/web (dual stack, port {PORT})... ");
    let ips = web(&c, "web").await?;
    println!("answered after {} ms", t.elapsed().as_millis());
    println!();
    print_table(&c).await?;
    println!();
    report_dead(&mut c)?;

    let v4 = ips[0];
    let limit = Duration::from_secs(10);
    let f = failover::measure(&mut c, v4, PORT, Fault::NodeDeath, limit).await?;
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
    let owner = failover::settle(&c, v4, PORT).await?;
    println!("ok, {owner} answers");
    report_dead(&mut c)?;

    let g = failover::measure(&mut c, v4, PORT, Fault::GracefulStop, limit).await?;
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

async fn up(nodes: usize) -> anyhow::Result<()> {
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
    let mut c = start(nodes, true).await?;
    web(&c, "web").await?;
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
    println!(
        "\nlab is up (pid {}). In another shell:\n  \
         export KUBECONFIG={}\n  \
         kubectl get svc -o wide; kubectl describe svc web\n  \
         ferrolb-lab client <EXTERNAL-IP> {PORT}     # or: ip netns exec {client_ns} curl -s http://<IP>:{PORT}\n  \
         logs: {}/<node-N|controller>.log\n\
         Ctrl-C or `ferrolb-lab down` tears it down.",
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

fn client(ip: IpAddr, port: u16) -> anyhow::Result<()> {
    let ns = netlab::list_namespaces()?
        .into_iter()
        .find(|n| n.starts_with(topology::PREFIX) && n.ends_with("-client"))
        .context("no running lab (start one with `ferrolb-lab up`)")?;
    let path = format!("/run/netns/{ns}");
    let answer = std::thread::spawn(move || -> anyhow::Result<String> {
        let f = std::fs::File::open(&path)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        use std::io::Read;
        let mut s = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(ip, port),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    println!("{}", answer.trim());
    Ok(())
}

async fn bench(nodes: usize, rounds: usize, json_out: bool, v6: bool) -> anyhow::Result<()> {
    if nodes < 2 {
        bail!("bench fails over, so it needs at least 2 nodes");
    }
    let mut c = start(nodes, !json_out).await?;
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
        spec.dual_stack = false;
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
    // Idle: nothing changes for 5 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pids: Vec<(String, u32)> = c
        .controller
        .as_ref()
        .map(|ch| ("controller".to_owned(), ch.id()))
        .into_iter()
        .chain(
            c.nodes
                .iter()
                .filter_map(|n| Some((n.name.clone(), n.speaker.as_ref()?.id()))),
        )
        .collect();
    let before: Vec<Option<u64>> = pids.iter().map(|(_, p)| Cluster::cpu_ticks(*p)).collect();
    let idle = Duration::from_secs(5);
    tokio::time::sleep(idle).await;
    let mut procs = Vec::new();
    for ((name, pid), b) in pids.iter().zip(before) {
        let cpu = match (b, Cluster::cpu_ticks(*pid)) {
            (Some(b), Some(a)) => Some((a - b) as f64 / 100.0 / idle.as_secs_f64() * 100.0),
            _ => None,
        };
        procs.push(json!({
            "name": name,
            "peak_rss_kib": Cluster::peak_rss_kib(*pid),
            "idle_cpu_percent": cpu,
        }));
    }
    let summaries = [
        ("failover_node_death", Summary::of(&death)),
        ("failover_graceful_stop", Summary::of(&graceful)),
        ("create_to_ip_assigned", Summary::of(&assign)),
        ("create_to_first_answer", Summary::of(&answer)),
    ];
    if json_out {
        let mut out = serde_json::Map::new();
        out.insert("nodes".into(), json!(nodes));
        out.insert("rounds".into(), json!(rounds));
        out.insert("family".into(), json!(if v6 { "IPv6" } else { "IPv4" }));
        for (name, s) in &summaries {
            out.insert((*name).into(), s.map(|s| s.to_json()).into());
        }
        out.insert("processes".into(), json!(procs));
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "\n{rounds} rounds, {nodes} nodes, {} (requests every 10 ms, 20 ms connect timeout)",
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
        println!(
            "\n{:<12} {:>14} {:>16}",
            "process", "peak RSS KiB", "idle CPU %"
        );
        for p in &procs {
            println!(
                "{:<12} {:>14} {:>16}",
                p["name"].as_str().unwrap_or(""),
                p["peak_rss_kib"]
                    .as_u64()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into()),
                p["idle_cpu_percent"]
                    .as_f64()
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "?".into())
            );
        }
    }
    drop(c);
    Ok(())
}
