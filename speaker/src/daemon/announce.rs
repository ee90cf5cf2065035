//! Where the desired state goes: the transport, behind a trait so the
//! daemon runs over raw sockets in production and an in-memory segment in
//! tests.

use crate::announcer::Config;
use crate::links::LinkInfo;
use crate::transport::packet::{PacketConfig, PacketLink};
use crate::transport::run::{Running, Stats};
use crate::transport::Datalink;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use tracing::{info, warn};

/// Receives what this node announces.
pub trait Announce: Send {
    /// The interfaces to keep sockets open on changed (`wanted` are the
    /// names, `links` what the kernel reports about them).
    fn set_interfaces(&mut self, links: &[LinkInfo], wanted: &BTreeSet<String>);
    /// Replaces the (IP, interface) pairs announced.
    fn set_desired(&mut self, desired: Vec<(IpAddr, String)>);
    /// Counters so far.
    fn stats(&self) -> Stats;
}

/// A fixed set of datalinks (tests: [`crate::transport::memory::Hub`]
/// endpoints); interface changes are ignored.
impl Announce for Running {
    fn set_interfaces(&mut self, _: &[LinkInfo], _: &BTreeSet<String>) {}

    fn set_desired(&mut self, desired: Vec<(IpAddr, String)>) {
        Running::set_desired(self, desired);
    }

    fn stats(&self) -> Stats {
        Running::stats(self)
    }
}

/// Raw sockets on the interfaces the advertisements use, reopened when
/// that set or an interface's MAC or index changes.
#[derive(Debug)]
pub struct PacketAnnouncer {
    config: Config,
    packet: PacketConfig,
    open: Vec<(String, u32, Option<crate::wire::MacAddr>)>,
    running: Option<Running>,
    desired: Vec<(IpAddr, String)>,
    /// Final counters of the transports replaced so far, so [`Announce::stats`]
    /// only grows across rebuilds.
    retired: Stats,
}

impl PacketAnnouncer {
    /// No sockets yet.
    pub fn new(config: Config, packet: PacketConfig) -> Self {
        Self {
            config,
            packet,
            open: Vec::new(),
            running: None,
            desired: Vec::new(),
            retired: Stats::default(),
        }
    }
}

impl Announce for PacketAnnouncer {
    fn set_interfaces(&mut self, links: &[LinkInfo], wanted: &BTreeSet<String>) {
        let want: Vec<_> = links
            .iter()
            .filter(|l| wanted.contains(&l.name))
            .map(|l| (l.name.clone(), l.index, l.mac))
            .collect();
        if want == self.open && self.running.is_some() {
            return;
        }
        // Rebuilding restarts the takeover announcements of what we own,
        // which is what hosts need after an interface came back or changed
        // MAC anyway.
        if let Some(old) = self.running.take() {
            self.retired = self.retired.plus(old.finish());
        }
        let mut datalinks: Vec<Arc<dyn Datalink>> = Vec::new();
        for (name, _, _) in &want {
            match PacketLink::open_with(name, self.packet) {
                Ok(link) => datalinks.push(Arc::new(link)),
                Err(e) => {
                    warn!(interface = %name, error = %e, "cannot open a raw socket; not announcing there")
                }
            }
        }
        match Running::spawn(datalinks, self.config) {
            Ok(running) => {
                info!(interfaces = ?want.iter().map(|w| &w.0).collect::<Vec<_>>(), "announcing on interfaces");
                running.set_desired(self.desired.clone());
                self.running = Some(running);
                self.open = want;
            }
            Err(e) => warn!(error = %e, "cannot start the announcer; retrying on the next change"),
        }
    }

    fn set_desired(&mut self, desired: Vec<(IpAddr, String)>) {
        if let Some(r) = &self.running {
            r.set_desired(desired.clone());
        }
        self.desired = desired;
    }

    fn stats(&self) -> Stats {
        let current = self
            .running
            .as_ref()
            .map(Running::stats)
            .unwrap_or_default();
        self.retired.plus(current)
    }
}
