//! kube-proxy's part, as kube-proxy in IPVS mode with `strictARP` does it.
//!
//! IPVS puts every LoadBalancer IP on a dummy interface of every node, so
//! every node accepts traffic for it; `strictARP` (`arp_ignore=1`,
//! `arp_announce=2`) keeps the kernel from answering ARP for those
//! addresses on other interfaces, leaving the answer to the speaker. The lab
//! does the same with `lo` (the lab may not create `dummy` links): it
//! follows Services and keeps each assigned IP on `lo` of every node (/32,
//! /128), and for each Service port runs a server per node that answers with
//! the node's name, standing in for NodePort -> Pod: TCP on `[::]:port`
//! (answers every connection, then closes), UDP on each `VIP:port` (answers
//! every datagram; bound to the VIP so the reply comes from it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};
use netlab::Host;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::AbortOnDrop;

/// What every node should hold: LoadBalancer IPs and Service ports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Every assigned ingress IP.
    pub vips: BTreeSet<IpAddr>,
    /// Every TCP port of a LoadBalancer Service with an IP.
    pub ports: BTreeSet<u16>,
    /// Every UDP `IP:port` of a LoadBalancer Service with an IP.
    pub udp: BTreeSet<SocketAddr>,
}

/// The desired state from Services (pure).
pub fn desired<'a>(services: impl IntoIterator<Item = &'a Service>) -> Desired {
    let mut out = Desired::default();
    for svc in services {
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
            continue;
        }
        let ips = ferrolb_crds::service::ingress_ips(svc);
        if ips.is_empty() {
            continue;
        }
        out.vips.extend(ips.iter().copied());
        for p in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => {
                    out.ports.insert(port);
                }
                "UDP" => out
                    .udp
                    .extend(ips.iter().map(|ip| SocketAddr::new(*ip, port))),
                _ => {}
            }
        }
    }
    out
}

/// One node's applied state.
#[derive(Debug)]
struct NodeProxy {
    host: Host,
    name: String,
    vips: BTreeSet<IpAddr>,
    servers: BTreeMap<u16, AbortOnDrop>,
    udp: BTreeMap<SocketAddr, AbortOnDrop>,
}

impl NodeProxy {
    /// Follows `desired` until its sender is gone. Each pass applies the
    /// latest state, so changes that arrive while one is applied are taken
    /// together: a burst of 1,000 Services costs a few `ip` runs, not
    /// 1,000.
    async fn run(mut self, mut desired: watch::Receiver<Desired>) {
        loop {
            let want = desired.borrow_and_update().clone();
            self.reconcile(&want).await;
            if desired.changed().await.is_err() {
                return;
            }
        }
    }

    async fn reconcile(&mut self, want: &Desired) {
        let del: Vec<IpAddr> = self.vips.difference(&want.vips).copied().collect();
        let add: Vec<IpAddr> = want.vips.difference(&self.vips).copied().collect();
        // One `ip -batch` per change, on the blocking pool: the API server
        // shares the async workers.
        let host = self.host.clone();
        let changed = tokio::task::spawn_blocking(move || host.change_vips(&add, &del)).await;
        match changed {
            Ok(Ok(())) => self.vips.clone_from(&want.vips),
            Ok(Err(e)) => eprintln!(
                "kube-proxy stand-in on {}: changing LoadBalancer IPs on lo: {e}",
                self.name
            ),
            Err(e) => eprintln!("kube-proxy stand-in on {}: {e}", self.name),
        }
        self.servers.retain(|port, _| want.ports.contains(port));
        for &port in &want.ports {
            if self.servers.contains_key(&port) {
                continue;
            }
            match serve(&self.host, &self.name, port) {
                Ok(guard) => {
                    self.servers.insert(port, guard);
                }
                Err(e) => eprintln!("kube-proxy stand-in on {}: port {port}: {e}", self.name),
            }
        }
        self.udp.retain(|addr, _| want.udp.contains(addr));
        for &addr in &want.udp {
            if self.udp.contains_key(&addr) || !self.vips.contains(&addr.ip()) {
                continue;
            }
            match serve_udp(&self.host, &self.name, addr) {
                Ok(guard) => {
                    self.udp.insert(addr, guard);
                }
                Err(e) => eprintln!("kube-proxy stand-in on {}: udp {addr}: {e}", self.name),
            }
        }
    }
}

/// A UDP server on `addr` (a VIP on `lo`) inside `host` answering every
/// datagram with the node's name.
fn serve_udp(host: &Host, name: &str, addr: SocketAddr) -> anyhow::Result<AbortOnDrop> {
    let std_socket = host.run_in(move || -> std::io::Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })??;
    let socket = tokio::net::UdpSocket::from_std(std_socket)?;
    let answer = format!("{name}\n");
    Ok(AbortOnDrop(tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            if let Ok((_, from)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(answer.as_bytes(), from).await;
            }
        }
    })))
}

/// A TCP server on `[::]:port` (both families) inside `host` answering the
/// node's name.
fn serve(host: &Host, name: &str, port: u16) -> anyhow::Result<AbortOnDrop> {
    let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    let std_listener = host.run_in(move || -> std::io::Result<std::net::TcpListener> {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
        s.set_only_v6(false)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    })??;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let answer = format!("{name}\n");
    Ok(AbortOnDrop(tokio::spawn(async move {
        loop {
            if let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        }
    })))
}

/// Follows Services and applies [`desired`] to every node until dropped.
pub fn start(client: Client, nodes: Vec<(String, Host)>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let (tx, rx) = watch::channel(Desired::default());
        // Dropped (aborting every node's task) when this task is aborted.
        let mut per_node = tokio::task::JoinSet::new();
        for (name, host) in nodes {
            let proxy = NodeProxy {
                host,
                name,
                vips: BTreeSet::new(),
                servers: BTreeMap::new(),
                udp: BTreeMap::new(),
            };
            per_node.spawn(proxy.run(rx.clone()));
        }
        let stream = crate::follow::states(Api::<Service>::all(client));
        futures::pin_mut!(stream);
        while let Some(state) = stream.next().await {
            let want = desired(state.iter().map(|s| s.as_ref()));
            tx.send_if_modified(|current| {
                let changed = *current != want;
                *current = want;
                changed
            });
        }
        drop(per_node);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn only_load_balancers_with_an_ip_are_proxied() {
        let a = svc(serde_json::json!({
            "metadata": {"name": "a"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}, {"ip": "2001:db8:0:1::10"}]}},
        }));
        let pending = svc(serde_json::json!({
            "metadata": {"name": "b"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 81}]},
        }));
        let cluster_ip = svc(serde_json::json!({
            "metadata": {"name": "c"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 82}]},
        }));
        let dns = svc(serde_json::json!({
            "metadata": {"name": "d"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.53"}]}},
        }));
        let d = desired([&a, &pending, &cluster_ip, &dns]);
        assert_eq!(d.vips.len(), 3);
        assert_eq!(d.ports, BTreeSet::from([80]));
        assert_eq!(
            d.udp,
            BTreeSet::from(["198.51.100.53:53".parse::<SocketAddr>().unwrap()])
        );
    }
}
