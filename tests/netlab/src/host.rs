//! One host of a lab: a namespace with `eth0` on one of the lab's bridges,
//! and maybe more interfaces on others.

use std::{
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use ipnet::IpNet;

use crate::{
    cmd::{ip, run, ChildGuard},
    neigh::{parse_link, parse_neighbours, Link, MacAddr, Neighbour},
    ns::{self, NsThread},
    segment::Segment,
    Error, Result,
};

/// Interface name of every host's veth end.
pub const HOST_IFNAME: &str = "eth0";

/// How long [`Host::add_addr`] waits for an IPv6 address to become reachable.
const GROUP_JOIN_TIMEOUT: Duration = Duration::from_secs(3);

/// A host of a [`crate::Lab`]. A cheap handle (clone it into threads); the
/// lab owns the namespace, so using a handle after the lab is dropped fails
/// with a command error rather than touching anything else.
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    ns: String,
    switch: String,
    port: String,
    /// The bridge `port` is plugged into.
    bridge: String,
}

impl Host {
    pub(crate) fn new(name: &str, ns: &str, switch: &str, port: &str, bridge: &str) -> Self {
        Self {
            name: name.to_owned(),
            ns: ns.to_owned(),
            switch: switch.to_owned(),
            port: port.to_owned(),
            bridge: bridge.to_owned(),
        }
    }

    /// Sets the namespace up and plugs its `eth0` into `segment`.
    pub(crate) fn wire(&self, segment: &Segment) -> Result<()> {
        // Before any veth exists, so `default` applies to eth0 and to links
        // attached later: addresses (link-local included) are usable at once
        // instead of after ~1 s of DAD.
        for scope in ["all", "default"] {
            self.sysctl(&format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
        }
        self.ip(&["link", "set", "lo", "up"])?;
        segment.plug(&self.ns, HOST_IFNAME, &self.port)
    }

    fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// The host's short name, as given to [`crate::Lab::add_host`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's name, for `ip netns exec` / `ip -n`.
    pub fn netns(&self) -> &str {
        &self.ns
    }

    /// The host's first interface, [`HOST_IFNAME`]; the one every method
    /// without an interface argument acts on.
    pub fn ifname(&self) -> &str {
        HOST_IFNAME
    }

    /// The bridge port (veth peer) of `eth0` in the switch namespace, `v-<name>`.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Adds `cidr` (`198.51.100.11/24`, `2001:db8::11/64`) to `eth0`.
    ///
    /// IPv6 addresses get `nodad` so they are usable immediately, and, while
    /// `eth0` is running, the call returns only once the kernel has joined
    /// the address's solicited-node group. The join runs from a workqueue;
    /// a solicitation that arrives before it can be dropped, costing the
    /// sender a 1 s retransmit (seen as rare echo failures on a loaded box).
    pub fn add_addr(&self, cidr: &str) -> Result<IpNet> {
        self.add_addr_dev(HOST_IFNAME, cidr)
    }

    /// [`Host::add_addr`] on interface `dev`, e.g. an `eth1` from
    /// [`crate::Lab::attach`]: same `nodad`, same wait for the group join.
    pub fn add_addr_dev(&self, dev: &str, cidr: &str) -> Result<IpNet> {
        let net = parse_cidr(cidr)?;
        self.add_net(net, dev)?;
        if let IpNet::V6(v6) = net {
            if self.link_of(dev)?.running {
                self.wait_for_group(dev, solicited_node(v6.addr()))?;
            }
        }
        Ok(net)
    }

    fn wait_for_group(&self, dev: &str, group: Ipv6Addr) -> Result<()> {
        let deadline = Instant::now() + GROUP_JOIN_TIMEOUT;
        loop {
            let out = self.ip(&["-6", "maddr", "show", "dev", dev])?;
            if inet6_groups(&out).contains(&group) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} {dev} to join {group}", self.ns),
                    waited: GROUP_JOIN_TIMEOUT,
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Puts `vip` on `lo` as a /32 or /128, the way a node holds a service IP
    /// it answers ARP/NDP for on another interface.
    pub fn add_vip(&self, vip: IpAddr) -> Result<()> {
        self.add_net(host_net(vip), "lo")
    }

    /// Removes a VIP added with [`Host::add_vip`].
    pub fn del_vip(&self, vip: IpAddr) -> Result<()> {
        let net = host_net(vip).to_string();
        self.ip(&["addr", "del", &net, "dev", "lo"]).map(drop)
    }

    /// Adds every VIP of `add` to `lo` and removes every one of `del`, in
    /// one `ip -batch` run (thousands of addresses take milliseconds, not a
    /// process each). Addresses already present (or already gone) are not
    /// an error.
    pub fn change_vips(&self, add: &[IpAddr], del: &[IpAddr]) -> Result<()> {
        if add.is_empty() && del.is_empty() {
            return Ok(());
        }
        let mut script = String::new();
        for (verb, list) in [("del", del), ("replace", add)] {
            for vip in list {
                let nodad = if vip.is_ipv6() { " nodad" } else { "" };
                script.push_str(&format!(
                    "address {verb} {} dev lo{nodad}\n",
                    host_net(*vip)
                ));
            }
        }
        // -force: one missing address must not stop the rest; the exit
        // status still reports it, so only fail if an add did not land.
        let result = crate::cmd::run_with_input(
            "ip",
            &["-n", self.ns.as_str(), "-force", "-batch", "-"],
            Some(&script),
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let out = self.ip(&["-o", "address", "show", "dev", "lo"])?;
                let missing = add
                    .iter()
                    .any(|vip| !out.contains(&format!(" {} ", host_net(*vip))));
                if missing {
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn add_net(&self, net: IpNet, dev: &str) -> Result<()> {
        let text = net.to_string();
        let mut args = vec!["addr", "add", text.as_str(), "dev", dev];
        if matches!(net, IpNet::V6(_)) {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Sets sysctl `key` (dotted, e.g. `net.ipv4.conf.all.arp_ignore`) inside
    /// this host's namespace only.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        write_sysctl(&self.ns, key, value)
    }

    /// Reads sysctl `key` inside this host's namespace, trimmed.
    pub fn sysctl_value(&self, key: &str) -> Result<String> {
        let path = sysctl_path(key);
        ns::run_in(&self.ns, || std::fs::read_to_string(&path))?
            .map(|v| v.trim().to_owned())
            .map_err(|source| Error::Io { path, source })
    }

    /// Sets the host's `eth0` down: the node's NIC dies, its end sees it.
    pub fn link_down(&self) -> Result<()> {
        self.link_down_dev(HOST_IFNAME)
    }

    /// Sets the host's `eth0` up again.
    pub fn link_up(&self) -> Result<()> {
        self.link_up_dev(HOST_IFNAME)
    }

    /// [`Host::link_down`] for interface `dev`.
    pub fn link_down_dev(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "down"]).map(drop)
    }

    /// [`Host::link_up`] for interface `dev`.
    pub fn link_up_dev(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Sets the switch port down: the cable is cut, yet the host's own link
    /// stays administratively up (it does see carrier loss on `eth0`).
    pub fn port_down(&self) -> Result<()> {
        ip(&["-n", &self.switch, "link", "set", &self.port, "down"]).map(drop)
    }

    /// Sets the switch port up again.
    pub fn port_up(&self) -> Result<()> {
        ip(&["-n", &self.switch, "link", "set", &self.port, "up"]).map(drop)
    }

    /// Unplugs this host's port from its bridge while both veth ends stay
    /// up: the switch forwards nothing to or from the host, yet the host
    /// keeps its carrier and sees no link change (a partition in the
    /// switch fabric, not a cut cable; [`Host::port_down`] is that). A
    /// bridge port's own `disabled` state would do, but without STP the
    /// kernel puts it back to forwarding at once.
    pub fn port_block(&self) -> Result<()> {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            "dev",
            &self.port,
            "nomaster",
        ])
        .map(drop)
    }

    /// Plugs the port back into its bridge after [`Host::port_block`];
    /// without STP it forwards at once.
    pub fn port_unblock(&self) -> Result<()> {
        let args = ["-n", &self.switch, "link", "set", "dev", &self.port];
        let mut full = args.to_vec();
        full.extend(["master", &self.bridge]);
        ip(&full).map(drop)
    }

    /// The MAC address of `eth0`.
    pub fn mac(&self) -> Result<MacAddr> {
        self.mac_of(HOST_IFNAME)
    }

    /// The MAC address of interface `dev`.
    pub fn mac_of(&self, dev: &str) -> Result<MacAddr> {
        self.link_of(dev).map(|l| l.mac)
    }

    /// The interface index of `eth0` inside the namespace, for binding
    /// packet sockets (a namespace's indexes are its own).
    pub fn ifindex(&self) -> Result<u32> {
        self.link_of(HOST_IFNAME).map(|l| l.ifindex)
    }

    fn link_of(&self, dev: &str) -> Result<Link> {
        let out = self.ip(&["-j", "link", "show", "dev", dev])?;
        parse_link(&out, &format!("ip -n {} -j link show dev {dev}", self.ns))
    }

    /// The neighbour (ARP and NDP) entries on `eth0`.
    pub fn neighbours(&self) -> Result<Vec<Neighbour>> {
        let out = self.ip(&["-j", "neigh", "show", "dev", HOST_IFNAME])?;
        parse_neighbours(
            &out,
            &format!("ip -n {} -j neigh show dev {HOST_IFNAME}", self.ns),
        )
    }

    /// The neighbour entry for `ip` on `eth0`, if any.
    pub fn neighbour(&self, ip: IpAddr) -> Result<Option<Neighbour>> {
        Ok(self.neighbours()?.into_iter().find(|n| n.dst == ip))
    }

    /// Empties the neighbour table of `eth0`, so the next packet resolves anew.
    pub fn flush_neighbours(&self) -> Result<()> {
        self.ip(&["neigh", "flush", "dev", HOST_IFNAME]).map(drop)
    }

    /// A best-effort text dump of the host (addresses, link counters,
    /// neighbours, routes) for failure messages; errors are shown inline.
    pub fn dump(&self) -> String {
        let mut out = format!("== host {} (netns {})\n", self.name, self.ns);
        for args in [
            &["addr", "show"][..],
            &["-s", "link", "show"],
            &["neigh", "show"],
            &["route", "show"],
            &["-6", "route", "show"],
        ] {
            out.push_str(&format!("$ ip -n {} {}\n", self.ns, args.join(" ")));
            match self.ip(args) {
                Ok(text) => out.push_str(&text),
                Err(e) => out.push_str(&format!("{e}\n")),
            }
        }
        // Socket and protocol counters tell "never arrived" from "dropped
        // by the stack" (no listener, full buffer).
        for (program, args) in [
            ("ss", &["-uanp"][..]),
            ("nstat", &["-asz", "Udp*", "Icmp*"]),
        ] {
            out.push_str(&format!("$ {program} {}\n", args.join(" ")));
            match self.exec(program, args) {
                Ok(text) => out.push_str(&text),
                Err(e) => out.push_str(&format!("{e}\n")),
            }
        }
        out
    }

    /// A [`Command`] that runs `program` inside the namespace
    /// (`ip netns exec <ns> <program>`). Add arguments, then run it, or spawn
    /// it through [`ChildGuard::spawn`] so it dies with the test.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }

    /// Runs `program args..` inside the namespace to completion; returns stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut full = vec!["netns", "exec", self.ns.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Spawns `program args..` inside the namespace, killed when the guard
    /// drops (and, at the latest, when the lab drops).
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<ChildGuard> {
        ChildGuard::spawn(self.command(program).args(args))
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and
    /// returns its result; sockets opened in `f` live in the namespace. A
    /// panic in `f` resumes on the caller.
    ///
    /// The thread shares the process's mounts: `/sys/class/net` still shows
    /// the root namespace, while socket calls, `if_nametoindex` and
    /// `/proc/sys/net` see this one.
    pub fn run_in<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        ns::run_in(&self.ns, f)
    }

    /// Like [`Host::run_in`] but in the background, e.g. a UDP echo server;
    /// returns once the thread is inside the namespace.
    pub fn spawn_in<F, T>(&self, f: F) -> Result<NsThread<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        ns::spawn_in(&self.ns, f)
    }
}

fn parse_cidr(cidr: &str) -> Result<IpNet> {
    cidr.parse().map_err(|source| Error::InvalidAddr {
        addr: cidr.to_owned(),
        source,
    })
}

/// The solicited-node multicast group of `addr` (RFC 4291 2.7.1).
fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The IPv6 groups in `ip -6 maddr show` output (`\tinet6 ff02::1`).
fn inet6_groups(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("inet6 "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn sysctl_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Writes a sysctl inside namespace `ns`. /proc/sys/net resolves against the
/// writing thread's namespace, so a thread that entered `ns` suffices; no
/// `sysctl` binary or mount namespace needed.
pub(crate) fn write_sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key);
    ns::run_in(ns, || std::fs::write(&path, value))?.map_err(|source| Error::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.all.arp_ignore"),
            PathBuf::from("/proc/sys/net/ipv4/conf/all/arp_ignore")
        );
    }

    #[test]
    fn vips_are_single_addresses() {
        assert_eq!(
            host_net("192.0.2.1".parse().unwrap()).to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            host_net("2001:db8::1".parse().unwrap()).to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn solicited_node_groups_keep_the_low_24_bits() {
        let group = solicited_node("2001:db8:100::ab:1234".parse().unwrap());
        assert_eq!(group, "ff02::1:ffab:1234".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn maddr_output_yields_the_joined_groups() {
        let text = "2:\teth0\n\tlink  33:33:ff:00:00:12\n\tinet6 ff02::1:ff00:12\n\tinet6 ff02::1 users 2\n";
        let groups = inet6_groups(text);
        assert_eq!(
            groups,
            vec![
                "ff02::1:ff00:12".parse::<Ipv6Addr>().unwrap(),
                "ff02::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn addresses_without_a_prefix_length_are_rejected() {
        assert!(matches!(
            parse_cidr("198.51.100.11"),
            Err(Error::InvalidAddr { .. })
        ));
    }
}
