//! Where the live set comes from, as the secret file changes.
//!
//! One task owns the gossip [`Membership`] (if any) and publishes the live
//! set the decision loop reads:
//!
//! - a valid key in the secret file and no gossip yet: gossip starts
//!   (also when the key only appears later, with no restart) and replaces
//!   the Node-Ready fallback;
//! - a changed valid key while gossip runs: offered to the key ring, which
//!   rotates safely ([`crate::membership::keyring`]);
//! - a file that is missing, unreadable, empty or too short: whatever was
//!   in force stays (gossip with the keys it has, or the fallback). Gossip
//!   is never stopped by a bad file; the file watcher logs the problem and
//!   `/readyz` reports it.
//!
//! The task also keeps the ownership claims channel
//! ([`crate::membership::claims`]) attached to whichever run of gossip is
//! in force, so the daemon's [`ClaimsPort`] ([`Liveness::claims`]) stays
//! the same across gossip (re)starts.
//!
//! [`step`] is the decision, pure; [`spawn`] is the shell.

use super::events::Notice;
use super::metrics::Metrics;
use super::run::STATS_EVERY;
use crate::membership::claims::shell::{Attachment, Shell};
use crate::membership::claims::ClaimsPort;
use crate::membership::{self, LivenessSource, Membership, MembershipArgs, Secret, SecretState};
use ferrolb_core::announce::World;
use std::collections::BTreeSet;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

/// What to do about the secret file's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Start gossip with this key.
    Start(Secret),
    /// Offer this key to the running gossip's key ring.
    Offer(Secret),
    /// Keep what is in force.
    Keep,
}

/// The decision: a valid key starts gossip or is offered to it; nothing
/// else ever stops gossip or changes its keys.
pub fn step(state: &SecretState, gossip_running: bool) -> Step {
    match (state.secret(), gossip_running) {
        (Some(key), false) => Step::Start(key.clone()),
        (Some(key), true) => Step::Offer(key.clone()),
        (None, _) => Step::Keep,
    }
}

/// The running liveness task.
#[derive(Debug)]
pub struct Liveness {
    live: watch::Receiver<BTreeSet<String>>,
    source: watch::Receiver<LivenessSource>,
    leave: mpsc::Sender<oneshot::Sender<()>>,
    claims: Option<ClaimsPort>,
    task: JoinHandle<()>,
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Liveness {
    /// Names of the live speakers, ourselves included.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// The source of the live set, as it changes.
    pub fn source(&self) -> watch::Receiver<LivenessSource> {
        self.source.clone()
    }

    /// The ownership claims channel, valid for the task's whole life
    /// (across gossip starts and restarts); `None` once taken.
    pub fn claims(&mut self) -> Option<ClaimsPort> {
        self.claims.take()
    }

    /// Leaves gossip gracefully if it runs (peers take over at once), then
    /// stops the task.
    pub async fn leave(self) {
        let (done, left) = oneshot::channel();
        if self.leave.send(done).await.is_ok() {
            // Membership::leave bounds itself; this only guards the task.
            let _ = tokio::time::timeout(Duration::from_secs(5), left).await;
        }
    }
}

/// Starts the task: gossip at once if the secret is valid, else the
/// Node-Ready fallback until it becomes valid. Each time the secret file
/// becomes unusable, a Warning Event on this node goes to `events`.
pub fn spawn(
    args: MembershipArgs,
    node: String,
    world: watch::Receiver<World>,
    secret: watch::Receiver<SecretState>,
    metrics: Arc<Metrics>,
    events: Option<mpsc::Sender<Notice>>,
) -> Liveness {
    // Nobody until the first decision (made at once): never a live set
    // from a source that is not in force.
    let (live_tx, live) = watch::channel(BTreeSet::new());
    let (source_tx, source) = watch::channel(LivenessSource::NodeConditions);
    let (leave, leave_rx) = mpsc::channel(1);
    let span = tracing::info_span!("liveness", node = %node);
    let (claims_port, claims) = span.in_scope(|| Shell::spawn(node.clone()));
    let supervisor = Supervisor {
        args,
        node,
        world,
        secret,
        metrics,
        events,
        live_tx,
        source_tx,
        claims,
        gossip: None,
        last_error: None,
        seeds: Vec::new(),
    };
    let task = tokio::spawn(supervisor.run(leave_rx).instrument(span));
    Liveness {
        live,
        source,
        leave,
        claims: Some(claims_port),
        task,
    }
}

enum Wake {
    Leave(Option<oneshot::Sender<()>>),
    Secret(bool),
    World(bool),
    Gossip(bool),
    Retry,
    Stats,
}

struct Supervisor {
    args: MembershipArgs,
    node: String,
    world: watch::Receiver<World>,
    secret: watch::Receiver<SecretState>,
    metrics: Arc<Metrics>,
    events: Option<mpsc::Sender<Notice>>,
    live_tx: watch::Sender<BTreeSet<String>>,
    source_tx: watch::Sender<LivenessSource>,
    /// The claims task; stops with the supervisor.
    claims: Shell,
    gossip: Option<(Membership, watch::Receiver<BTreeSet<String>>)>,
    /// The last reason gossip could not start, so a retry that fails the
    /// same way is not logged again.
    last_error: Option<String>,
    seeds: Vec<SocketAddr>,
}

impl Supervisor {
    async fn run(mut self, mut leave: mpsc::Receiver<oneshot::Sender<()>>) {
        self.on_secret().await;
        // A port taken at start may be free later: retry while the key is
        // valid and gossip is not running.
        let mut retry = tokio::time::interval(self.args.secret_poll);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stats = tokio::time::interval(STATS_EVERY);
        let mut secret_open = true;
        loop {
            let wake = {
                let idle = self.gossip.is_none();
                let gossip = &mut self.gossip;
                let gossip_live = async move {
                    match gossip.as_mut() {
                        Some((_, rx)) => rx.changed().await.is_ok(),
                        None => pending().await,
                    }
                };
                tokio::select! {
                    done = leave.recv() => Wake::Leave(done),
                    r = self.secret.changed(), if secret_open => Wake::Secret(r.is_ok()),
                    r = self.world.changed() => Wake::World(r.is_ok()),
                    ok = gossip_live => Wake::Gossip(ok),
                    _ = retry.tick(), if idle => Wake::Retry,
                    _ = stats.tick() => Wake::Stats,
                }
            };
            match wake {
                Wake::Leave(done) => {
                    if let Some((m, _)) = self.gossip.take() {
                        info!("leaving gossip");
                        if let Err(e) = m.leave().await {
                            warn!(error = %e, "leaving gossip failed; peers will notice by probing");
                        }
                        self.claims.detach().await;
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                // The watcher is gone: keep what is in force.
                Wake::Secret(false) => secret_open = false,
                Wake::Secret(true) => self.on_secret().await,
                Wake::World(false) => return,
                Wake::World(true) => self.on_world().await,
                Wake::Gossip(true) => self.forward_gossip(),
                Wake::Gossip(false) => {
                    // The gossip task ended by itself (it should not):
                    // fall back rather than spin; the retry tick restarts it.
                    warn!("the gossip task stopped; liveness from Node Ready conditions until it restarts");
                    self.gossip = None;
                    self.claims.detach().await;
                    self.metrics
                        .set_liveness_source(LivenessSource::NodeConditions);
                    self.source_tx.send_replace(LivenessSource::NodeConditions);
                    self.publish(node_ready(&self.world.borrow()));
                }
                Wake::Retry => {
                    let key = self.secret.borrow().secret().cloned();
                    if let Some(key) = key {
                        self.start(key).await;
                    }
                }
                Wake::Stats => {
                    if let Some((m, _)) = &self.gossip {
                        self.metrics.observe_membership(&m.stats());
                    }
                    self.metrics.observe_claims(&self.claims.stats());
                }
            }
        }
    }

    async fn on_secret(&mut self) {
        let state = self.secret.borrow_and_update().clone();
        self.metrics.set_secret_state(&state);
        // The watcher publishes changes only: one Event per new problem.
        if let (Some(problem), Some(events)) = (state.problem(), &self.events) {
            let notice = Notice::Secret {
                node: self.node.clone(),
                problem: problem.clone(),
            };
            if events.try_send(notice).is_err() {
                self.metrics.events_dropped.inc();
            }
        }
        match step(&state, self.gossip.is_some()) {
            Step::Start(key) => self.start(key).await,
            Step::Offer(key) => {
                if let Some((m, _)) = &self.gossip {
                    if let Err(e) = m.offer_key(key).await {
                        warn!(error = %e, "cannot hand the new key to gossip");
                    }
                }
            }
            Step::Keep if self.gossip.is_some() => warn!(
                reason = state.name(),
                "gossip keeps running with the keys already in force until the secret file \
                 holds a valid key again ({state})"
            ),
            Step::Keep => {
                self.metrics
                    .set_liveness_source(LivenessSource::NodeConditions);
                warn!(
                    reason = state.name(),
                    fallback = %LivenessSource::NodeConditions,
                    "memberlist gossip is off ({state}); liveness from Node Ready conditions, \
                     failover will take tens of seconds"
                );
                self.publish(node_ready(&self.world.borrow()));
            }
        }
    }

    async fn start(&mut self, key: Secret) {
        let config = {
            let world = self.world.borrow();
            let mut args = self.args.clone();
            if args.advertise_addr.is_none() && args.bind_addr.is_unspecified() {
                // Peers reach us at the node's InternalIP, as they seed us.
                args.advertise_addr = world.nodes().get(&self.node).and_then(|n| n.internal_ip);
            }
            self.seeds = seeds(&world, args.port);
            args.with_secret(&self.node, self.seeds.clone(), key)
        };
        let started = match config {
            Ok(config) => Membership::start(config).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(mut m) => {
                info!(source = "gossip", "liveness from memberlist gossip");
                if let Some(attachment) = Attachment::take(&mut m) {
                    self.claims.attach(attachment).await;
                }
                self.last_error = None;
                let mut rx = m.live();
                let live = rx.borrow_and_update().clone();
                self.gossip = Some((m, rx));
                self.metrics.set_liveness_source(LivenessSource::Gossip);
                self.source_tx.send_replace(LivenessSource::Gossip);
                self.publish(live);
            }
            Err(reason) => {
                let text = reason.to_string();
                if self.last_error.as_ref() != Some(&text) {
                    warn!(
                        error = %reason,
                        reason = reason.reason(),
                        fallback = %LivenessSource::NodeConditions,
                        "memberlist gossip cannot start; falling back to Node Ready conditions, \
                         failover will take tens of seconds"
                    );
                    self.last_error = Some(text);
                }
                self.metrics
                    .set_liveness_source(LivenessSource::NodeConditions);
                self.publish(node_ready(&self.world.borrow()));
            }
        }
    }

    async fn on_world(&mut self) {
        match &self.gossip {
            None => {
                let live = node_ready(&self.world.borrow_and_update());
                self.publish(live);
            }
            Some((m, _)) => {
                let next = seeds(&self.world.borrow_and_update(), self.args.port);
                if next != self.seeds {
                    if let Err(e) = m.set_seeds(next.clone()).await {
                        warn!(error = %e, "cannot update gossip seeds");
                    }
                    self.seeds = next;
                }
            }
        }
    }

    fn forward_gossip(&mut self) {
        if let Some((_, rx)) = self.gossip.as_mut() {
            let live = rx.borrow_and_update().clone();
            self.publish(live);
        }
    }

    fn publish(&self, live: BTreeSet<String>) {
        self.live_tx.send_if_modified(|old| {
            let changed = *old != live;
            *old = live;
            changed
        });
    }
}

/// The Node-Ready fallback as a pure function of the world.
pub fn node_ready(world: &World) -> BTreeSet<String> {
    membership::live_from_node_conditions(
        world
            .nodes()
            .values()
            .map(|n| (n.name.as_str(), n.ready.then_some("True"))),
    )
}

/// Gossip seeds: every Node's InternalIP at the memberlist port.
pub fn seeds(world: &World, port: u16) -> Vec<SocketAddr> {
    world
        .nodes()
        .values()
        .filter_map(|n| n.internal_ip)
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::SecretProblem;
    use std::path::PathBuf;

    fn valid(key: &str) -> SecretState {
        SecretState::Valid(Secret::from_bytes(key.as_bytes(), "test").unwrap())
    }

    #[test]
    fn a_valid_key_starts_gossip_when_none_runs_and_is_offered_when_it_does() {
        let k = valid("0123456789abcdef");
        let key = k.secret().unwrap().clone();
        assert_eq!(step(&k, false), Step::Start(key.clone()));
        assert_eq!(step(&k, true), Step::Offer(key));
    }

    #[test]
    fn a_broken_or_vanished_file_never_stops_or_changes_running_gossip() {
        let path = PathBuf::from("/s");
        for state in [
            SecretState::NotConfigured,
            SecretState::Missing { path: path.clone() },
            SecretState::Invalid(SecretProblem::Empty { path: path.clone() }),
            SecretState::Invalid(SecretProblem::TooShort { path, len: 3 }),
        ] {
            assert_eq!(step(&state, true), Step::Keep, "{state}");
            assert_eq!(step(&state, false), Step::Keep, "{state}");
        }
    }
}
