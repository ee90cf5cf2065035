//! A lab: one switch namespace with bridges (segments), and hosts wired to them.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{
    cmd::ip,
    host::{self, Host},
    netns::{self, SWITCH_ROLE},
    precondition,
    segment::{self, Segment},
    Error, Result,
};

/// Prefix of every namespace netlab creates unless told otherwise.
pub const DEFAULT_PREFIX: &str = "flb";

/// Name of the lab's main bridge inside the switch namespace, the segment
/// [`Lab::add_host`] wires `eth0` to.
pub const BRIDGE: &str = "br0";

/// Per-process lab counter: several labs may live in one test binary.
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// A throw-away L2 network: a switch namespace holding bridge [`BRIDGE`], and
/// host namespaces each joined to it by a veth pair. More segments (bridges)
/// and more interfaces per host come from [`Lab::add_segment`],
/// [`Lab::add_host_on`] and [`Lab::attach`].
///
/// Dropping the lab kills every process left in its namespaces and deletes
/// them, which also destroys the veths and bridges. Drop runs on panic
/// unwinding too.
///
/// ```no_run
/// let mut lab = netlab::Lab::new()?;
/// let a = lab.add_host("a")?;
/// let b = lab.add_host("b")?;
/// a.add_addr("198.51.100.11/24")?;
/// b.add_addr("198.51.100.12/24")?;
/// let mac_b = b.mac()?;
/// # Ok::<(), netlab::Error>(())
/// ```
#[derive(Debug)]
pub struct Lab {
    run: String,
    switch: String,
    /// Every namespace created, switch first; deleted in reverse.
    namespaces: Vec<String>,
    hosts: Vec<String>,
    /// Bridge names in the switch, [`BRIDGE`] first.
    segments: Vec<String>,
    /// Switch ports made by [`Lab::attach`]; `v-<host>` ones are unique
    /// with the host name.
    ports: Vec<String>,
}

impl Lab {
    /// A lab with the [`DEFAULT_PREFIX`]. Sweeps orphans of earlier runs first.
    pub fn new() -> Result<Self> {
        Self::with_prefix(DEFAULT_PREFIX)
    }

    /// A lab whose namespaces are named `<prefix>-<pid>-<n>-<role>`.
    /// `prefix` is lowercase letters and digits only, so names stay parseable.
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(Error::InvalidName {
                name: prefix.to_owned(),
                reason: "a prefix is one or more of a-z, 0-9",
            });
        }
        // Best effort: a failed sweep must not stop this run.
        let _ = netns::sweep_stale(prefix);
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let run = format!("{prefix}-{}-{n}", std::process::id());
        let switch = format!("{run}-{SWITCH_ROLE}");
        netns::add(&switch).map_err(|e| Error::NamespacesUnavailable(Box::new(e)))?;
        let mut lab = Self {
            run,
            switch: switch.clone(),
            namespaces: vec![switch],
            hosts: Vec::new(),
            segments: vec![BRIDGE.to_owned()],
            ports: Vec::new(),
        };
        // From here on, an error drops `lab`, which deletes the switch.
        lab.build_switch()?;
        Ok(lab)
    }

    /// For tests (`#[ignore = "needs root"]`): applies
    /// [`precondition::require_root`], then builds a lab. Fails the test with
    /// the reason when it is not root or namespaces cannot be made.
    ///
    /// ```no_run
    /// let mut lab = netlab::Lab::for_test("udp_reaches_peer");
    /// ```
    pub fn for_test(test: &str) -> Self {
        precondition::require_root(test);
        Self::new().unwrap_or_else(|e| precondition::unavailable(test, e))
    }

    fn build_switch(&mut self) -> Result<()> {
        let sw = self.switch.as_str();
        // Bridge ports with IPv6 would send their own RS/MLD frames; the
        // switch should be silent so tests can count exactly what hosts send.
        host::write_sysctl(sw, "net.ipv6.conf.all.disable_ipv6", "1")?;
        host::write_sysctl(sw, "net.ipv6.conf.default.disable_ipv6", "1")?;
        ip(&["-n", sw, "link", "set", "lo", "up"])?;
        self.main_segment().create()
    }

    /// The segment every [`Lab::add_host`] host's `eth0` is on: bridge [`BRIDGE`].
    pub fn main_segment(&self) -> Segment {
        Segment::new(&self.switch, BRIDGE)
    }

    /// Adds a second (third, ...) L2 segment: bridge `name` in the switch
    /// namespace, set up like [`BRIDGE`] and isolated from it. `name` is 1-15
    /// of `a-z0-9`, starting with a letter, neither `br0` nor `lo` nor an
    /// existing segment. Wire hosts to it with [`Lab::add_host_on`] and
    /// [`Lab::attach`].
    ///
    /// ```no_run
    /// let mut lab = netlab::Lab::new()?;
    /// let lan2 = lab.add_segment("lan2")?;
    /// let node = lab.add_host("node-1")?; // eth0 on br0
    /// lab.attach(&node, &lan2, "eth1")?; // eth1 on lan2
    /// let client = lab.add_host_on(&lan2, "client2")?; // eth0 on lan2
    /// node.add_addr_dev("eth1", "203.0.113.11/24")?;
    /// client.add_addr("203.0.113.2/24")?;
    /// let node_eth1 = node.mac_of("eth1")?;
    /// # Ok::<(), netlab::Error>(())
    /// ```
    pub fn add_segment(&mut self, name: &str) -> Result<Segment> {
        segment::validate_segment_name(name)?;
        if self.segments.iter().any(|s| s == name) {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                reason: "a segment of that name already exists in this lab",
            });
        }
        let segment = Segment::new(&self.switch, name);
        segment.create()?;
        self.segments.push(name.to_owned());
        Ok(segment)
    }

    /// Adds host `name` (1-12 of `a-z0-9-`): a namespace `<run>-<name>` with
    /// `lo` up, IPv6 DAD off, and `eth0` up, its veth peer `v-<name>` enslaved
    /// to the bridge. Addresses are added with [`Host::add_addr`].
    pub fn add_host(&mut self, name: &str) -> Result<Host> {
        let main = self.main_segment();
        self.add_host_on(&main, name)
    }

    /// Like [`Lab::add_host`], with `eth0` on `segment` instead of [`BRIDGE`]
    /// (its switch port is still `v-<name>`).
    pub fn add_host_on(&mut self, segment: &Segment, name: &str) -> Result<Host> {
        netns::validate_host_name(name)?;
        if self.hosts.iter().any(|h| h == name) {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                reason: "a host of that name already exists in this lab",
            });
        }
        self.check_segment(segment)?;
        let ns = format!("{}-{name}", self.run);
        netns::add(&ns)?;
        self.namespaces.push(ns.clone());
        self.hosts.push(name.to_owned());
        let port = format!("v-{name}");
        let host = Host::new(name, &ns, &self.switch, &port, segment.name());
        host.wire(segment)?;
        Ok(host)
    }

    /// Gives `host` another interface, `ifname`, on `segment`: a veth whose
    /// switch-side peer `v<digits>-<host>` (the digits `ifname` ends in:
    /// `eth1` of `node-1` is `v1-node-1`) is enslaved to the segment's
    /// bridge. Both ends are up; IPv6 DAD is off as on `eth0`. Use
    /// [`Host::add_addr_dev`], [`Host::mac_of`], [`Host::link_down_dev`] on it.
    pub fn attach(&mut self, host: &Host, segment: &Segment, ifname: &str) -> Result<()> {
        if !self.hosts.iter().any(|h| h == host.name())
            || !self.namespaces.iter().any(|n| n == host.netns())
        {
            return Err(Error::InvalidName {
                name: host.name().to_owned(),
                reason: "not a host of this lab",
            });
        }
        self.check_segment(segment)?;
        let port = segment::port_name(host.name(), ifname)?;
        if self.ports.contains(&port) {
            return Err(Error::InvalidName {
                name: ifname.to_owned(),
                reason: "this host already has an interface with that number",
            });
        }
        segment.plug(host.netns(), ifname, &port)?;
        self.ports.push(port);
        Ok(())
    }

    fn check_segment(&self, segment: &Segment) -> Result<()> {
        if segment.switch() != self.switch || !self.segments.iter().any(|s| s == segment.name()) {
            return Err(Error::InvalidName {
                name: segment.name().to_owned(),
                reason: "not a segment of this lab",
            });
        }
        Ok(())
    }

    /// The run prefix `<prefix>-<pid>-<n>` shared by this lab's namespaces.
    pub fn run_prefix(&self) -> &str {
        &self.run
    }

    /// The switch namespace's name (holds the bridges and the `v*-*` ports).
    pub fn switch(&self) -> &str {
        &self.switch
    }

    /// Every namespace this lab created, switch first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Deletes the lab now and reports the first failure, where Drop could
    /// only print it.
    pub fn teardown(mut self) -> Result<()> {
        self.delete_all()
    }

    fn delete_all(&mut self) -> Result<()> {
        let mut first_error = None;
        // Hosts first: their veths vanish with them, then the empty switch.
        while let Some(ns) = self.namespaces.pop() {
            if let Err(e) = netns::delete(&ns) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.delete_all() {
            eprintln!("netlab: cleanup of {} incomplete: {e}", self.run);
        }
    }
}
