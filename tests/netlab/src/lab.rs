//! A lab: one switch namespace with a bridge, and hosts wired to it.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{
    cmd::ip,
    host::{self, Host},
    netns::{self, SWITCH_ROLE},
    precondition, Error, Result,
};

/// Prefix of every namespace netlab creates unless told otherwise.
pub const DEFAULT_PREFIX: &str = "flb";

/// Name of the bridge inside the switch namespace.
pub const BRIDGE: &str = "br0";

/// Per-process lab counter: several labs may live in one test binary.
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// A throw-away L2 network: a switch namespace holding bridge [`BRIDGE`], and
/// host namespaces each joined to it by a veth pair.
///
/// Dropping the lab kills every process left in its namespaces and deletes
/// them, which also destroys the veths. Drop runs on panic unwinding too.
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
        };
        // From here on, an error drops `lab`, which deletes the switch.
        lab.build_switch()?;
        Ok(lab)
    }

    /// For tests: applies [`precondition::require_root`], then builds a lab.
    /// `None` means the skip was printed and the test should return; under
    /// `CI=true` both "not root" and "no namespaces" panic instead.
    ///
    /// ```no_run
    /// let Some(mut lab) = netlab::Lab::for_test("udp_reaches_peer") else { return };
    /// ```
    pub fn for_test(test: &str) -> Option<Self> {
        if precondition::require_root(test).is_some() {
            return None;
        }
        match Self::new() {
            Ok(lab) => Some(lab),
            Err(e) => {
                let _ = precondition::skip_or_fail(test, e);
                None
            }
        }
    }

    fn build_switch(&mut self) -> Result<()> {
        let sw = self.switch.as_str();
        // Bridge ports with IPv6 would send their own RS/MLD frames; the
        // switch should be silent so tests can count exactly what hosts send.
        host::write_sysctl(sw, "net.ipv6.conf.all.disable_ipv6", "1")?;
        host::write_sysctl(sw, "net.ipv6.conf.default.disable_ipv6", "1")?;
        ip(&["-n", sw, "link", "set", "lo", "up"])?;
        // No snooping: without a multicast querier, snooping can drop the
        // solicited-node multicast NDP relies on. No STP, no forward delay:
        // ports forward as soon as they are up.
        ip(&[
            "-n",
            sw,
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", sw, "link", "set", BRIDGE, "up"])?;
        Ok(())
    }

    /// Adds host `name` (1-12 of `a-z0-9-`): a namespace `<run>-<name>` with
    /// `lo` up, IPv6 DAD off, and `eth0` up, its veth peer `v-<name>` enslaved
    /// to the bridge. Addresses are added with [`Host::add_addr`].
    pub fn add_host(&mut self, name: &str) -> Result<Host> {
        netns::validate_host_name(name)?;
        if self.hosts.iter().any(|h| h == name) {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                reason: "a host of that name already exists in this lab",
            });
        }
        let ns = format!("{}-{name}", self.run);
        netns::add(&ns)?;
        self.namespaces.push(ns.clone());
        self.hosts.push(name.to_owned());
        let host = Host::new(name, &ns, &self.switch, &format!("v-{name}"));
        host.wire()?;
        Ok(host)
    }

    /// The run prefix `<prefix>-<pid>-<n>` shared by this lab's namespaces.
    pub fn run_prefix(&self) -> &str {
        &self.run
    }

    /// The switch namespace's name (holds [`BRIDGE`] and the `v-*` ports).
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
