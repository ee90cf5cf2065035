//! A lab that keeps running: `up` in the foreground, `down` from another
//! shell, and `client` requests from its client namespace.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::table::print_table;
use super::{example_services, start, wait_records, Setup, EXAMPLE_PORT};
use crate::topology;

/// Where `up` keeps its pid for `down`.
const STATE_DIR: &str = "/run/ferrolb-lab";

/// Brings a lab up with the example Services and keeps it until it is
/// interrupted or a component dies.
pub async fn up(setup: &Setup) -> anyhow::Result<()> {
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
    wait_records(&c).await?;
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
         kubectl get servicel2statuses -o wide   # which node announces each Service\n  \
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

/// Stops the lab `up` started, then sweeps namespaces left by any lab.
pub fn down() -> anyhow::Result<()> {
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

/// One request (TCP, or a UDP datagram) from the running lab's client to
/// `ip:port`; prints the answering node.
pub fn client(ip: IpAddr, port: u16, udp: bool) -> anyhow::Result<()> {
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
            crate::client::probe_udp_blocking(addr, timeout)?
        } else {
            crate::client::probe_blocking(addr, timeout)?
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("client thread panicked"))?
    .with_context(|| format!("no answer from {addr}{}", if udp { " (UDP)" } else { "" }))?;
    println!("{answer}");
    Ok(())
}
