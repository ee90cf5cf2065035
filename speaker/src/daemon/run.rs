//! The decision loop: on every change (debounced), bring the decision up
//! to date ([`Engine`]: only what changed is decided again) and hand what
//! changed to the transport, Events, logs and metrics. Nothing here walks
//! every Service per change. Other stations' announcements of owned IPs
//! go to [`Conflicts`], whose reports become warnings, Events and metrics.

use super::conflicts::{self, peer_of, Conflicts, Sighting};
use super::events::{Notice, Notices};
use super::handover;
use super::l2status::Records;
use super::metrics::Metrics;
use super::ownership::Claims;
use super::sockets::Announce;
use super::watch::Watched;
use crate::announcer::handover::Report;
use crate::announcer::{Held, Observation};
use crate::links::Links;
use crate::membership::claims::{ClaimsPort, Incoming, Outgoing};
use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Delta, Desired, Engine, Local, Polled, Verdict};
use ferrolb_core::election::Rules;
use ferrolb_core::ownership::{Message, Node};
use futures::stream::{self, BoxStream, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// How long the loop waits after a change for more before recomputing, so
/// a relist of a thousand objects costs one computation, not a thousand.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// The same after a change of the live set alone: a failover is decided
/// at once (a dead speaker's heartbeats are declared missing in one go, so
/// there is nothing to gather).
pub const LIVE_DEBOUNCE: Duration = Duration::ZERO;
/// How often transport and gossip counters are copied into the metrics.
pub const STATS_EVERY: Duration = Duration::from_secs(5);
/// A delta with more changed Services than this is logged as one summary
/// line (each Service at debug level), so a failover of thousands of
/// Services does not write thousands of lines.
pub const LOG_EACH_UP_TO: usize = 50;

/// Everything the loop reads and writes.
#[derive(Debug)]
pub struct Daemon<L, A> {
    /// This node's name.
    pub node: String,
    /// `--exclude-interfaces`.
    pub excludes: Excludes,
    /// The election's switches (`--ignore-exclude-lb`).
    pub rules: Rules,
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
    /// How long a new owner holds a Service before it reports
    /// `nodeAssigned` ([`super::events::ASSIGNED_HOLD`]).
    pub assigned_hold: Duration,
    /// The ServiceL2Status records this node writes (`None`: none).
    pub records: Option<Records>,
    /// The last computed state, for tests and diagnostics: copied only
    /// while someone holds a receiver.
    pub desired: watch::Sender<Desired>,
    /// Other stations' announcements of our addresses, from the transport.
    pub observed: mpsc::Receiver<Observation>,
    /// The longest a graceful stop answers for an IP whose new owner has
    /// not been seen (`--shutdown-handover-timeout`).
    pub handover_timeout: Duration,
    /// When a second announcer is reported, and forgotten
    /// (`--conflict-forget-after`).
    pub conflicts: conflicts::Settings,
    /// Sticky ownership and its claims channel (`None`: `--ownership
    /// hash`, the hash decides).
    pub ownership: Option<(Claims, ClaimsPort)>,
}

/// What [`Daemon::run`] hands back.
#[derive(Debug)]
pub struct Stopped<A> {
    /// The transport, answering nothing: drop it to close the sockets.
    pub announce: A,
    /// How the graceful stop's handover went.
    pub handover: Report,
}

impl<L: Links, A: Announce> Daemon<L, A> {
    /// Runs until `shutdown` completes, then stops make-before-break
    /// ([`handover`]): freezes what it announces, runs `leave` (leaving
    /// gossip, so peers take over), answers each IP until its new owner
    /// announces it or [`handover_timeout`](Self::handover_timeout) passes,
    /// and returns the transport (drop it to close the sockets).
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        leave: impl Future<Output = ()>,
    ) -> Stopped<A> {
        let mut links = self.list_links().await;
        let mut changes: BoxStream<'static, ()> = match self.links.changes() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot watch interface changes; using the interfaces seen at start");
                stream::pending().boxed()
            }
        };
        let mut notices = Notices::new(self.assigned_hold);
        let mut engine = Engine::default();
        let mut first = true;
        let mut unannounced = Unannounced::default();
        let mut conflicts = Conflicts::new(self.conflicts);
        let mut stats = tokio::time::interval(STATS_EVERY);
        let alive = self.live.borrow().len();
        self.metrics.members_alive.set(gauge(alive));
        let origin = Instant::now();
        let (mut claims, port) = match self.ownership.take() {
            Some((claims, port)) => (Some(claims), Some(port)),
            None => (None, None),
        };
        let (mut incoming, outgoing, mut peers, mut me) = match port {
            Some(p) => (
                Some(p.incoming),
                Some(p.outgoing),
                Some(p.peers),
                Some(p.me),
            ),
            None => (None, None, None, None),
        };
        // When the member wants to be polled next.
        let mut wake: Option<Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let mut relist = false;
            let mut debounce = DEBOUNCE;
            tokio::select! {
                () = &mut shutdown => break,
                r = self.watched.world.changed() => if r.is_err() { break },
                r = self.watched.synced.changed() => if r.is_err() { break },
                r = self.live.changed() => {
                    if r.is_err() { break }
                    debounce = LIVE_DEBOUNCE;
                }
                Some(()) = changes.next() => relist = true,
                got = next_incoming(&mut incoming) => match got {
                    Some(msg) => {
                        if let Some(r) = claims.as_mut().and_then(|c| c.receive(msg)) {
                            self.metrics.ownership.received(r);
                        }
                        debounce = Duration::ZERO;
                    }
                    None => incoming = None,
                },
                open = changed(&mut peers) => {
                    if !open { peers = None }
                    debounce = LIVE_DEBOUNCE;
                }
                open = changed(&mut me) => {
                    if !open { me = None }
                    debounce = Duration::ZERO;
                }
                () = sleep_until(wake) => debounce = Duration::ZERO,
                _ = stats.tick() => {
                    self.metrics.observe_transport(&self.announce.stats());
                    self.metrics.observe_layer2(&self.announce.take_per_ip());
                    continue;
                }
                () = sleep_until(notices.next_due()) => {
                    let due = notices.due(&self.node, Instant::now());
                    self.send(due);
                    continue;
                }
                Some(seen) = self.observed.recv() => {
                    take_seen(&mut conflicts, &seen);
                    continue;
                }
                () = sleep_until(conflicts.next_deadline()) => {
                    let due = conflicts.poll(Instant::now());
                    self.report_conflicts(&conflicts, due).await;
                    continue;
                }
                () = sleep_until(self.records.as_ref().and_then(Records::next_due)) => {
                    if let Some(r) = &mut self.records {
                        r.due(&self.node, &self.live.borrow());
                    }
                    continue;
                }
            }
            if !debounce.is_zero() {
                tokio::time::sleep(debounce).await;
            }
            if relist {
                links = self.list_links().await;
            }
            // The live set is reported as it changes, synced or not.
            let mut live = self.live.borrow_and_update().clone();
            if let Some(c) = &mut claims {
                let now = origin.elapsed();
                if let Some(p) = &mut peers {
                    c.set_peers(&p.borrow_and_update());
                }
                let boot = me.as_mut().and_then(|m| *m.borrow_and_update());
                c.set_identity(boot, now);
                if c.phase().is_some() {
                    // The member's peers: the same set, read at once.
                    live = c.live();
                }
            }
            self.metrics.members_alive.set(gauge(live.len()));
            if !self.watched.is_synced() {
                // Polled again once the watches are back (a past wake time
                // would spin the loop meanwhile).
                wake = None;
                continue;
            }
            let mut sent: Vec<(Node, Message<ObjectKey>)> = Vec::new();
            let delta = {
                let world = self.watched.world.borrow_and_update();
                let local = Local {
                    me: &self.node,
                    live: &live,
                    links: &links,
                    excludes: &self.excludes,
                    rules: self.rules,
                };
                match claims.as_mut().and_then(Claims::member_mut) {
                    Some(member) => {
                        let mut send =
                            |to: &Node, m: Message<ObjectKey>| sent.push((to.clone(), m));
                        let mut polled = Polled {
                            member,
                            now: origin.elapsed(),
                            send: &mut send,
                            next: None,
                        };
                        let delta = engine.update_owned(&world, &local, &mut polled);
                        wake = polled.next.map(|n| origin + n);
                        delta
                    }
                    None => {
                        wake = None;
                        engine.update(&world, &local)
                    }
                }
            };
            if let (Some(c), Some(out)) = (&mut claims, &outgoing) {
                flush(c, sent, out);
                self.observe_ownership(c, &delta);
            }
            if delta.waiting {
                // Listening: nothing decided, nothing changes.
                self.announce
                    .set_interfaces(&links, &engine.desired().interfaces);
                continue;
            }
            unannounced.count(&delta, &self.metrics);
            conflicts.update(&self.node, &delta, Instant::now());
            let summary = Summary {
                first,
                unannounced: &unannounced.by_reason,
            };
            self.apply(
                engine.desired(),
                &delta,
                &links,
                &live,
                &mut notices,
                summary,
            );
            first = false;
            if self.desired.receiver_count() > 0 {
                self.desired.send_replace(engine.desired().clone());
            }
        }
        // Frozen: from here on no decision changes what is answered.
        let pairs = engine.desired().announce_list();
        let others_alive = self
            .live
            .borrow()
            .iter()
            .filter(|n| **n != self.node)
            .count();
        let report = handover::hand_over(
            &mut self.announce,
            &mut self.observed,
            pairs,
            others_alive,
            self.handover_timeout,
            leave,
        )
        .await;
        Stopped {
            announce: self.announce,
            handover: report,
        }
    }

    /// The ownership series: phase, Services owned, and each Service this
    /// node took over by the rule that chose it.
    fn observe_ownership(&self, c: &Claims, delta: &Delta) {
        self.metrics.ownership.set_phase(c.phase());
        self.metrics.ownership.owned.set(gauge(c.owned()));
        let Some(member) = c.member() else {
            return;
        };
        let mine = |d: Option<&ferrolb_core::announce::Decision>| {
            d.and_then(|d| d.owner()) == Some(self.node.as_str())
        };
        for change in &delta.services {
            if mine(change.after.as_ref()) && !mine(change.before.as_ref()) {
                if let Some(how) = member.decision().how(&change.key) {
                    self.metrics.ownership.taken(how);
                    debug!(service = %change.key, ?how, "taken over");
                }
            }
        }
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
        desired: &Desired,
        delta: &Delta,
        links: &[HostInterface],
        live: &BTreeSet<String>,
        notices: &mut Notices,
        summary: Summary<'_>,
    ) {
        self.announce.set_interfaces(links, &desired.interfaces);
        if delta.announce_changed() {
            self.log_pairs(delta);
            self.announce.set_desired(desired.announce_list());
        }
        self.log_services(desired, delta, summary);
        for (ad, p) in &delta.new_link_problems {
            warn!(advertisement = %ad, interface = p.interface(), reason = p.reason(), "{p}");
        }
        self.metrics.observe_services(&self.node, delta);
        let update = notices.update(&self.node, delta, live, Instant::now());
        self.metrics.leader_changes.inc_by(update.owner_changes);
        self.send(update.notices);
        if let Some(r) = &mut self.records {
            r.update(&self.node, delta, live);
        }
        self.metrics.announced.set(gauge(desired.announce.len()));
        self.metrics
            .interface_problems
            .set(gauge(desired.link_problems.len()));
    }

    /// Reports what came due ([`Conflicts::poll`]): per new episode a
    /// warning and an `AddressConflict` Event on each Service concerned,
    /// naming the node the MAC belongs to when this node can tell
    /// ([`peer_of`]); a line per episode that ended; the per-IP gauge.
    async fn report_conflicts(&self, conflicts: &Conflicts, due: conflicts::Due) {
        for (ip, mac) in &due.moved {
            debug!(%ip, %mac, "another station announced an IP this node has let go since: an ordinary move");
        }
        let neighbours = if due.reports.is_empty() {
            Vec::new()
        } else {
            self.links.neighbours().await.unwrap_or_else(|e| {
                debug!(error = %e, "cannot read the neighbour table; the other station's node stays unknown");
                Vec::new()
            })
        };
        let mut notices = Vec::new();
        {
            let world = self.watched.world.borrow();
            let nodes = || {
                world
                    .nodes()
                    .values()
                    .map(|n| (n.name.as_str(), n.internal_ip))
            };
            for r in &due.reports {
                let peer = peer_of(r.mac, &neighbours, nodes(), &self.node);
                let services: Vec<String> = r.services.iter().map(ToString::to_string).collect();
                warn!(
                    ip = %r.ip, mac = %r.mac, interface = %r.link, kind = %r.kind,
                    peer = peer.as_deref().unwrap_or("unknown"), frames = r.frames, ?services,
                    "another station announces an IP this node owns: {}",
                    match &peer {
                        Some(p) => format!("node {p:?}'s MAC: its speaker claims the IP too (their views of the cluster differ), or its kernel answers for it"),
                        None => "not a known ferrolb speaker".into(),
                    }
                );
                self.metrics.conflicts.reported(peer.is_some());
                notices.extend(r.notify.iter().map(|service| Notice::Conflict {
                    service: service.clone(),
                    ip: r.ip,
                    mac: r.mac,
                    kind: r.kind,
                    interface: r.link.clone(),
                    node: self.node.clone(),
                    peer: peer.clone(),
                }));
            }
        }
        self.send(notices);
        for e in &due.ended {
            info!(
                ip = %e.ip, mac = %e.mac, interface = %e.link, frames = e.frames,
                lasted_s = e.lasted.as_secs(),
                "the second announcer of an IP this node owns has been quiet for {:?}",
                self.conflicts.forget_after
            );
        }
        for ip in due.touched() {
            self.metrics.conflicts.set_ip(ip, conflicts.on(ip));
        }
    }

    /// Queues Events; a full queue drops them (counted).
    fn send(&self, notices: Vec<Notice>) {
        for n in notices {
            if self.events.try_send(n).is_err() {
                self.metrics.events_dropped.inc();
            }
        }
    }

    fn log_pairs(&self, delta: &Delta) {
        let (on, off) = (&delta.announced, &delta.withdrawn);
        if on.len() + off.len() > LOG_EACH_UP_TO {
            info!(
                started = on.len(),
                stopped = off.len(),
                "announcing {} more and {} fewer (IP, interface) pairs",
                on.len(),
                off.len()
            );
        }
        let each = on.len() + off.len() <= LOG_EACH_UP_TO;
        for (ip, iface) in on {
            if each {
                info!(%ip, interface = %iface, "announcing");
            } else {
                debug!(%ip, interface = %iface, "announcing");
            }
        }
        for (ip, iface) in off {
            if each {
                info!(%ip, interface = %iface, "no longer announcing");
            } else {
                debug!(%ip, interface = %iface, "no longer announcing");
            }
        }
    }

    /// One line per changed Service, or a summary when many changed at
    /// once (at start: always a summary).
    fn log_services(&self, desired: &Desired, delta: &Delta, summary: Summary<'_>) {
        let each = !summary.first && delta.services.len() <= LOG_EACH_UP_TO;
        if !each && !delta.services.is_empty() {
            let owned = desired
                .services
                .values()
                .filter(|d| d.owner() == Some(self.node.as_str()))
                .count();
            let unannounced: BTreeMap<&str, i64> = summary
                .unannounced
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (*r, *n))
                .collect();
            info!(
                changed = delta.services.len(),
                services = desired.services.len(),
                owned_here = owned,
                announced_pairs = desired.announce.len(),
                ?unannounced,
                "decided"
            );
        }
        for c in &delta.services {
            let Some(d) = &c.after else {
                debug!(service = %c.key, "gone");
                continue;
            };
            match &d.verdict {
                Verdict::Owner { node, interfaces } if each => {
                    info!(service = %c.key, owner = %node, ?interfaces, ips = ?d.ips, "owner elected")
                }
                Verdict::Unannounced(why) if each => {
                    info!(service = %c.key, reason = why.reason(), ips = ?d.ips, "not announced: {why}")
                }
                Verdict::Owner { node, interfaces } => {
                    debug!(service = %c.key, owner = %node, ?interfaces, ips = ?d.ips, "owner elected")
                }
                Verdict::Unannounced(why) => {
                    debug!(service = %c.key, reason = why.reason(), ips = ?d.ips, "not announced: {why}")
                }
            }
        }
    }
}

/// What the summary log line takes besides the decision.
#[derive(Debug, Clone, Copy)]
struct Summary<'a> {
    /// The first decision after a start.
    first: bool,
    /// Services unannounced per reason ([`Unannounced`]).
    unannounced: &'a BTreeMap<&'static str, i64>,
}

/// Services unannounced per reason, kept from the deltas, for the
/// `unannounced` gauge and the summary log line.
#[derive(Debug, Default)]
struct Unannounced {
    by_reason: BTreeMap<&'static str, i64>,
}

impl Unannounced {
    fn count(&mut self, delta: &Delta, metrics: &Metrics) {
        let reason =
            |d: &Option<ferrolb_core::announce::Decision>| match d.as_ref().map(|d| &d.verdict) {
                Some(Verdict::Unannounced(why)) => Some(why.reason()),
                _ => None,
            };
        let mut touched = BTreeSet::new();
        for c in &delta.services {
            if let Some(r) = reason(&c.before) {
                *self.by_reason.entry(r).or_default() -= 1;
                touched.insert(r);
            }
            if let Some(r) = reason(&c.after) {
                *self.by_reason.entry(r).or_default() += 1;
                touched.insert(r);
            }
        }
        for r in touched {
            let n = self.by_reason.get(r).copied().unwrap_or_default();
            metrics
                .unannounced
                .get_or_create(&vec![("reason".into(), r.into())])
                .set(n);
        }
    }
}

/// Another station announced one of our addresses. Expected after this
/// node let it go; while it owns it, a race with the new owner during a
/// move or a second station answering (counted in
/// `ferrolb_speaker_foreign_announcements_total`, and followed by
/// `conflicts` until reported or explained).
fn take_seen(conflicts: &mut Conflicts, seen: &Observation) {
    let a = &seen.announcement;
    match seen.held {
        Held::Owned => match conflicts.observe(seen) {
            Sighting::Started => debug!(
                ip = %a.ip, interface = %seen.link, mac = %a.mac, kind = %a.kind,
                "another station announces an address this node owns; reported if this node still owns it shortly"
            ),
            Sighting::Continued => {}
            Sighting::Ignored(why) => debug!(
                ip = %a.ip, interface = %seen.link, mac = %a.mac, kind = %a.kind,
                "another station announces an address this node owns; not a conflict: {why}"
            ),
        },
        Held::HandingOver | Held::Withdrawn => debug!(
            ip = %a.ip, interface = %seen.link, mac = %a.mac, kind = %a.kind, held = seen.held.as_str(),
            "announced by its new owner"
        ),
    }
}

/// Hands the member's messages to the claims channel: whole versions or
/// digests ([`Claims::queue`]), with the answers to pulls and digests; a
/// full channel drops them (the next refresh repairs it).
fn flush(c: &mut Claims, sent: Vec<(Node, Message<ObjectKey>)>, out: &mpsc::Sender<Outgoing>) {
    for (to, m) in sent {
        c.queue(&to, m);
    }
    for o in c.take_outbox() {
        if let Err(e) = out.try_send(o) {
            let o = match e {
                mpsc::error::TrySendError::Full(o) | mpsc::error::TrySendError::Closed(o) => o,
            };
            c.unsent(&o);
        }
    }
}

/// The next message of the claims channel; never, without one.
async fn next_incoming(rx: &mut Option<mpsc::Receiver<Incoming>>) -> Option<Incoming> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next change of an optional watch: `false` when it closed; never,
/// without one.
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
