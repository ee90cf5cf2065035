//! The lab's network: a namespace per node, the API host and the client on
//! one bridged LAN (a second one with [`Options::second_lan`]),
//! documentation-range addresses, and kube-proxy's strictARP sysctls.

use anyhow::anyhow;
use netlab::{Host, Lab, MacAddr};

use super::{Cluster, Options};
use crate::process::Proc;
use crate::topology::{self, API_V4};

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

/// The namespaces, wired and addressed, before anything runs in them.
pub(super) struct Network {
    pub(super) api: Host,
    pub(super) client: Host,
    pub(super) client2: Option<Host>,
    pub(super) nodes: Vec<LabNode>,
    // Last: dropping it deletes the namespaces.
    pub(super) lab: Lab,
}

impl Network {
    /// `api`, the client and `opts.nodes` nodes on one LAN, plus the
    /// second LAN when asked for. Fails when namespaces cannot be created.
    pub(super) fn build(opts: &Options) -> anyhow::Result<Self> {
        let mut lab = Lab::with_prefix(&opts.prefix)
            .map_err(|e| anyhow!("cannot create network namespaces: {e}"))?;
        let api = lab.add_host("api")?;
        api.add_addr(&format!("{API_V4}/24"))?;
        api.add_addr("2001:db8::1/64")?;
        let client = lab.add_host("client")?;
        client_addresses(&client, topology::CLIENT_V4, topology::CLIENT_V6)?;
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
        Ok(Self {
            api,
            client,
            client2,
            nodes,
            lab,
        })
    }
}

/// A client's addresses on its `eth0`, and on-link routes to the pool
/// subnets (so it ARPs and NDPs for Service IPs itself).
fn client_addresses(client: &Host, v4: &str, v6: &str) -> anyhow::Result<()> {
    client.add_addr(v4)?;
    client.add_addr(v6)?;
    for route in topology::CLIENT_ROUTES {
        client.exec("ip", &["route", "add", route, "dev", "eth0"])?;
    }
    Ok(())
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
    client_addresses(&client2, topology::CLIENT2_V4, topology::CLIENT2_V6)?;
    Ok(client2)
}

impl Cluster {
    /// The network lab (namespace names).
    pub fn lab(&self) -> &Lab {
        self.lab.as_ref().expect("lab lives until drop")
    }

    /// One more namespace on the lab's LAN (`eth0` on the main bridge, no
    /// address, nothing running), for a station that is not part of the
    /// cluster: a rogue announcer, another installation. It goes with the
    /// lab's other namespaces when the cluster is dropped, a failed test
    /// included.
    pub fn add_lan_host(&mut self, name: &str) -> anyhow::Result<Host> {
        let lab = self
            .lab
            .as_mut()
            .ok_or_else(|| anyhow!("the lab is torn down"))?;
        Ok(lab.add_host(name)?)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> anyhow::Result<&LabNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    pub(super) fn node_mut(&mut self, name: &str) -> anyhow::Result<&mut LabNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }
}
