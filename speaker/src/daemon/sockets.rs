//! The per-interface socket adapter: where the announce decision goes.
//! [`PacketAnnouncer`] keeps one raw socket and announcer loop
//! ([`crate::transport::run::Running`]) per interface in use; the
//! [`Announce`] trait lets the daemon run over an in-memory segment in
//! tests. Every transport delivers what it sees other stations announce
//! to the one [`Observer`] the daemon reads.

use crate::announcer::{Config, PerIp};
use crate::transport::packet::{PacketConfig, PacketLink};
use crate::transport::run::{Observer, Running, Stats};
use crate::transport::Datalink;
use crate::wire::MacAddr;
use ferrolb_core::announce::interfaces::HostInterface;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use tracing::{info, warn};

/// Receives what this node announces.
pub trait Announce: Send {
    /// The interfaces to keep sockets open on changed (`wanted` are the
    /// names, `links` what the kernel reports about them).
    fn set_interfaces(&mut self, links: &[HostInterface], wanted: &BTreeSet<String>);
    /// Replaces the (IP, interface) pairs announced.
    fn set_desired(&mut self, desired: Vec<(IpAddr, String)>);
    /// Starts handing over on a graceful stop: no more announcements;
    /// answers for the pairs announced now until [`set_desired`]
    /// withdraws them ([`crate::announcer::Announcer::hand_over`]).
    ///
    /// [`set_desired`]: Announce::set_desired
    fn hand_over(&mut self);
    /// Counters so far.
    fn stats(&self) -> Stats;
    /// The per-address counts since the last call, emptied.
    fn take_per_ip(&mut self) -> PerIp;
}

/// A fixed set of datalinks (tests: [`crate::transport::memory::Hub`]
/// endpoints); interface changes are ignored.
impl Announce for Running {
    fn set_interfaces(&mut self, _: &[HostInterface], _: &BTreeSet<String>) {}

    fn set_desired(&mut self, desired: Vec<(IpAddr, String)>) {
        Running::set_desired(self, desired);
    }

    fn hand_over(&mut self) {
        Running::hand_over(self);
    }

    fn stats(&self) -> Stats {
        Running::stats(self)
    }

    fn take_per_ip(&mut self) -> PerIp {
        Running::take_per_ip(self)
    }
}

/// Raw sockets on the interfaces the advertisements use: one transport per
/// interface, reopened only when that interface appears, goes, or changes
/// index or MAC, so a change on one interface never restarts another's
/// takeover announcements or closes its socket.
#[derive(Debug)]
pub struct PacketAnnouncer {
    config: Config,
    packet: PacketConfig,
    /// Where every transport reports other stations' announcements.
    observer: Option<Observer>,
    /// Handing over: a transport opened now would announce.
    handing_over: bool,
    /// Per interface: the index and MAC it was opened with, and its
    /// transport (`None`: it could not be opened; tried again when the
    /// interface's index or MAC changes or it comes back).
    open: BTreeMap<String, (u32, Option<MacAddr>, Option<Running>)>,
    desired: Vec<(IpAddr, String)>,
    /// Final counters of the transports closed so far, so
    /// [`Announce::stats`] only grows.
    retired: Stats,
    /// Their per-address counts not taken yet.
    retired_per_ip: PerIp,
}

impl PacketAnnouncer {
    /// No sockets yet.
    pub fn new(config: Config, packet: PacketConfig) -> Self {
        Self::observed(config, packet, None)
    }

    /// [`new`](Self::new), each transport reporting to `observer`.
    pub fn observed(config: Config, packet: PacketConfig, observer: Option<Observer>) -> Self {
        Self {
            config,
            packet,
            observer,
            handing_over: false,
            open: BTreeMap::new(),
            desired: Vec::new(),
            retired: Stats::default(),
            retired_per_ip: PerIp::default(),
        }
    }

    fn start(&self, name: &str) -> Option<Running> {
        let link = match PacketLink::open_with(name, self.packet) {
            Ok(link) => link,
            Err(e) => {
                warn!(interface = %name, error = %e, "cannot open a raw socket; not announcing there");
                return None;
            }
        };
        let link: Arc<dyn Datalink> = Arc::new(link);
        match Running::spawn_observed(vec![link], self.config, self.observer.clone()) {
            Ok(running) => {
                running.set_desired(on(&self.desired, name));
                Some(running)
            }
            Err(e) => {
                warn!(interface = %name, error = %e, "cannot start the announcer; not announcing there");
                None
            }
        }
    }
}

/// The pairs of `desired` on interface `name`.
fn on(desired: &[(IpAddr, String)], name: &str) -> Vec<(IpAddr, String)> {
    desired.iter().filter(|(_, i)| i == name).cloned().collect()
}

impl Announce for PacketAnnouncer {
    fn set_interfaces(&mut self, links: &[HostInterface], wanted: &BTreeSet<String>) {
        if self.handing_over {
            // Frozen: a reopened socket would announce, a closed one
            // would stop answering before its new owner is seen.
            return;
        }
        let want: BTreeMap<&str, (u32, Option<MacAddr>)> = links
            .iter()
            .filter(|l| wanted.contains(&l.name))
            .map(|l| (l.name.as_str(), (l.index, l.mac.map(MacAddr))))
            .collect();
        // Gone, or changed index or MAC: close. A reopened interface starts
        // its takeover announcements again, which is what hosts need after
        // an interface came back or changed MAC.
        let stale: Vec<String> = self
            .open
            .iter()
            .filter(|(name, (index, mac, _))| want.get(name.as_str()) != Some(&(*index, *mac)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &stale {
            if let Some((_, _, Some(old))) = self.open.remove(name) {
                let (stats, per_ip) = old.finish_all();
                self.retired = self.retired.plus(stats);
                self.retired_per_ip.merge(per_ip);
            }
        }
        let mut opened = false;
        for (name, (index, mac)) in want {
            if !self.open.contains_key(name) {
                let running = self.start(name);
                self.open.insert(name.to_owned(), (index, mac, running));
                opened = true;
            }
        }
        if opened || !stale.is_empty() {
            let usable: Vec<&String> = self
                .open
                .iter()
                .filter(|(_, (_, _, r))| r.is_some())
                .map(|(name, _)| name)
                .collect();
            info!(interfaces = ?usable, "announcing on interfaces");
        }
    }

    fn set_desired(&mut self, desired: Vec<(IpAddr, String)>) {
        for (name, (_, _, running)) in &self.open {
            if let Some(r) = running {
                r.set_desired(on(&desired, name));
            }
        }
        self.desired = desired;
    }

    fn hand_over(&mut self) {
        self.handing_over = true;
        for running in self.open.values().filter_map(|(_, _, r)| r.as_ref()) {
            running.hand_over();
        }
    }

    fn stats(&self) -> Stats {
        self.open
            .values()
            .filter_map(|(_, _, r)| r.as_ref())
            .map(Running::stats)
            .fold(self.retired, Stats::plus)
    }

    fn take_per_ip(&mut self) -> PerIp {
        let mut all = std::mem::take(&mut self.retired_per_ip);
        for running in self.open.values().filter_map(|(_, _, r)| r.as_ref()) {
            all.merge(running.take_per_ip());
        }
        all
    }
}
