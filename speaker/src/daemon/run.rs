//! The decision loop: on every change (debounced), recompute the desired
//! state and hand it to the transport, Events and metrics.

use super::events::{Notice, Notices};
use super::metrics::Metrics;
use super::sockets::Announce;
use super::watch::Watched;
use crate::links::Links;
use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::{self, Desired, Local, Verdict};
use futures::stream::{self, BoxStream, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How long the loop waits after a change for more before recomputing, so
/// a relist of a thousand objects costs one computation, not a thousand.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// How often transport and gossip counters are copied into the metrics.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// Everything the loop reads and writes.
#[derive(Debug)]
pub struct Daemon<L, A> {
    /// This node's name.
    pub node: String,
    /// `--exclude-interfaces`.
    pub excludes: Excludes,
    /// The host's interfaces.
    pub links: L,
    /// The transport.
    pub announce: A,
    /// The watched cluster.
    pub watched: Watched,
    /// Live speakers (gossip or the Node-Ready fallback).
    pub live: watch::Receiver<BTreeSet<String>>,
    /// Events out.
    pub events: mpsc::Sender<Notice>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The last computed state, for tests and diagnostics.
    pub desired: watch::Sender<Desired>,
}

impl<L: Links, A: Announce> Daemon<L, A> {
    /// Runs until `shutdown` completes, then stops announcing and returns
    /// the transport (drop it to close the sockets).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> A {
        let mut links = self.list_links().await;
        let mut changes: BoxStream<'static, ()> = match self.links.changes() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot watch interface changes; using the interfaces seen at start");
                stream::pending().boxed()
            }
        };
        let mut notices = Notices::default();
        let mut last = Desired::default();
        let mut cache = announce::Cache::default();
        let mut stats = tokio::time::interval(STATS_EVERY);
        let alive = self.live.borrow().len();
        self.metrics.members_alive.set(gauge(alive));
        tokio::pin!(shutdown);
        loop {
            let mut relist = false;
            tokio::select! {
                () = &mut shutdown => break,
                r = self.watched.world.changed() => if r.is_err() { break },
                r = self.watched.synced.changed() => if r.is_err() { break },
                r = self.live.changed() => if r.is_err() { break },
                Some(()) = changes.next() => relist = true,
                _ = stats.tick() => {
                    self.metrics.observe_transport(&self.announce.stats());
                    continue;
                }
            }
            tokio::time::sleep(DEBOUNCE).await;
            if relist {
                links = self.list_links().await;
            }
            // The live set is reported as it changes, synced or not.
            let live = self.live.borrow_and_update().clone();
            self.metrics.members_alive.set(gauge(live.len()));
            if !self.watched.is_synced() {
                continue;
            }
            let next = {
                let world = self.watched.world.borrow_and_update();
                announce::compute_cached(
                    &world,
                    &Local {
                        me: &self.node,
                        live: &live,
                        links: &links,
                        excludes: &self.excludes,
                    },
                    &mut cache,
                )
            };
            self.apply(&last, &next, &links, &live, &mut notices);
            last = next.clone();
            self.desired.send_replace(next);
        }
        info!("stopping: no longer announcing");
        self.announce.set_desired(Vec::new());
        self.announce
    }

    async fn list_links(&self) -> Vec<HostInterface> {
        match self.links.list().await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot list interfaces; announcing nowhere until the next change");
                Vec::new()
            }
        }
    }

    fn apply(
        &mut self,
        last: &Desired,
        next: &Desired,
        links: &[HostInterface],
        live: &BTreeSet<String>,
        notices: &mut Notices,
    ) {
        self.announce.set_interfaces(links, &next.interfaces);
        if next.announce != last.announce {
            for (ip, iface) in next.announce.difference(&last.announce) {
                info!(%ip, interface = %iface, "announcing");
            }
            for (ip, iface) in last.announce.difference(&next.announce) {
                info!(%ip, interface = %iface, "no longer announcing");
            }
            self.announce.set_desired(next.announce_list());
        }
        for (service, d) in &next.services {
            if last.services.get(service) != Some(d) {
                match &d.verdict {
                    Verdict::Owner { node, interfaces } => {
                        info!(%service, owner = %node, ?interfaces, ips = ?d.ips, "owner elected")
                    }
                    Verdict::Unannounced(why) => {
                        info!(%service, reason = why.reason(), ips = ?d.ips, "not announced: {why}")
                    }
                }
            }
        }
        for (ad, p) in next.link_problems.difference(&last.link_problems) {
            warn!(advertisement = %ad, interface = p.interface(), reason = p.reason(), "{p}");
        }
        let update = notices.update(&self.node, next, live);
        self.metrics.leader_changes.inc_by(update.owner_changes);
        for n in update.notices {
            if self.events.try_send(n).is_err() {
                self.metrics.events_dropped.inc();
            }
        }
        self.metrics.announced.set(gauge(next.announce.len()));
        self.metrics
            .interface_problems
            .set(gauge(next.link_problems.len()));
        let mut by_reason: BTreeMap<&str, i64> = BTreeMap::new();
        for d in next.services.values() {
            if let Verdict::Unannounced(why) = &d.verdict {
                *by_reason.entry(why.reason()).or_default() += 1;
            }
        }
        self.metrics.unannounced.clear();
        for (reason, n) in by_reason {
            self.metrics
                .unannounced
                .get_or_create(&vec![("reason".into(), reason.into())])
                .set(n);
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
