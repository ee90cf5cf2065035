//! The I/O shell: one tokio task owning the foca instance, and the
//! heartbeat thread ([`super::heartbeat::run`]) owning the receiving side
//! of the UDP socket, which hands gossip datagrams to the task.
//!
//! Everything foca asks for (datagrams to send, timers, notifications) is
//! collected in an [`foca::AccumulatingRuntime`] and carried out right after
//! each call, so the task is the only place where time and the network
//! happen for gossip. Nothing a peer sends can stop the loop: datagrams that
//! fail authentication or that foca refuses are counted and dropped.
//!
//! The live set published is SWIM's live members minus the speakers the
//! heartbeat watchers' quorum declares down; the same peers are published
//! with their incarnation and address ([`Membership::live_peers`]) for the
//! claims channel, which also gets the claims datagrams
//! ([`Membership::take_claims_inbox`]) and a way to send its own
//! ([`Membership::claims_link`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec};
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn, Instrument};

use super::auth::Secret;
use super::claims::link::Link;
use super::config::{MembershipConfig, Timing};
use super::heartbeat::run::{
    Counters as HeartbeatCounters, Inbox, Members, Thread, Wiring, CLAIMS_QUEUE,
};
use super::heartbeat::{Fast, HeartbeatStats};
use super::identity::SpeakerId;
use super::keyring::{KeyRing, Offer};
use super::roster::Roster;
use super::timers::TimerQueue;
use super::{Error, Result};
use crate::transport::lock;

/// Gossip datagrams the heartbeat thread may queue for the gossip task.
const GOSSIP_QUEUE: usize = 1024;

type Swim = Foca<SpeakerId, PostcardCodec, StdRng, NoCustomBroadcast>;

/// A live peer's incarnation and where it is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The `boot` of its [`SpeakerId`].
    pub boot: u64,
    /// Its memberlist address.
    pub addr: SocketAddr,
}

/// The live peers (not us) by node name: the live set without us.
pub type LivePeers = BTreeMap<String, Peer>;

/// Counters of the gossip traffic, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received, whatever became of them.
    pub received: u64,
    /// Datagrams dropped because they failed authentication.
    pub rejected: u64,
    /// Authenticated datagrams foca refused (malformed, from ourselves,
    /// too big).
    pub malformed: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Failed sends and receives.
    pub io_errors: u64,
    /// The heartbeat thread's counters.
    pub heartbeat: HeartbeatStats,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    rejected: AtomicU64,
    malformed: AtomicU64,
    sent: AtomicU64,
    io_errors: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        Stats {
            received: self.received.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            io_errors: self.io_errors.load(Ordering::Relaxed),
            heartbeat: HeartbeatStats::default(),
        }
    }
}

#[derive(Debug)]
enum Command {
    SetSeeds(Vec<SocketAddr>),
    OfferKey(Secret),
    Leave(oneshot::Sender<()>),
}

/// A running gossip member. Dropping it stops the task at once, without a
/// leave (as a crash would); call [`Membership::leave`] on a graceful stop.
#[derive(Debug)]
pub struct Membership {
    me: SpeakerId,
    live: watch::Receiver<BTreeSet<String>>,
    peers: watch::Receiver<LivePeers>,
    current: watch::Receiver<SpeakerId>,
    claims_inbox: Option<Inbox>,
    link: Link,
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    heartbeat: Arc<HeartbeatCounters>,
    task: JoinHandle<()>,
    /// Stopped (and joined) when the membership is dropped.
    thread: Thread,
    leave_timeout: Duration,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
        self.thread.stop();
    }
}

impl Membership {
    /// Binds the socket, announces to the seeds and starts the task.
    ///
    /// Fails (and the daemon falls back to Node conditions) if the
    /// configuration is invalid or the socket cannot be bound.
    pub async fn start(config: MembershipConfig) -> Result<Self> {
        let foca_config = config.validate()?;
        let socket = UdpSocket::bind(config.bind).map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
        let local = socket.local_addr().map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
        let me = SpeakerId::new(config.node_name.clone(), config.advertised(local));
        let roster = Roster::new(me.clone());
        let (live_tx, live) = watch::channel(roster.live_names());
        let (commands, commands_rx) = mpsc::channel(16);
        let counters = Arc::new(Counters::default());
        let leave_timeout = config.timing.leave_linger + Duration::from_secs(1);
        let socket = Arc::new(socket);
        let keys = Arc::new(Mutex::new(KeyRing::new(
            config.secret,
            config.rotation_grace,
        )));
        let (gossip, inbox) = mpsc::channel(GOSSIP_QUEUE);
        let (claims, claims_inbox) = mpsc::channel(CLAIMS_QUEUE);
        let (peers_tx, peers) = watch::channel(LivePeers::new());
        let (current_tx, current) = watch::channel(me.clone());
        let link = Link::new(Arc::clone(&socket), Arc::clone(&keys));
        let (members_tx, members) = watch::channel(Members::new());
        let (down_tx, down) = watch::channel(BTreeSet::new());
        let heartbeat = Arc::new(HeartbeatCounters::default());
        let span = tracing::info_span!("membership", node = %me.name, addr = %me.addr);
        let thread = Thread::spawn(
            Wiring {
                socket: Arc::clone(&socket),
                keys: Arc::clone(&keys),
                fast: config.heartbeat.map(|c| Fast::new(&me.name, me.boot, c)),
                members,
                down: down_tx,
                gossip,
                claims,
                counters: Arc::clone(&heartbeat),
            },
            span.clone(),
        )
        .map_err(Error::Thread)?;

        let key_id = lock(&keys).sealing().key_id();
        let driver = Driver {
            foca: Foca::new(me.clone(), foca_config, rand::make_rng(), PostcardCodec),
            rt: AccumulatingRuntime::new(),
            socket,
            inbox,
            keys,
            timing: config.timing,
            timers: TimerQueue::new(),
            roster,
            live_tx,
            peers_tx,
            current_tx,
            members_tx,
            down,
            counters: Arc::clone(&counters),
            seeds: config.seeds,
            sealed: Vec::new(),
        };
        match config.heartbeat {
            Some(hb) => info!(
                parent: &span, boot = me.boot, bind = %local, key_id = %key_id,
                heartbeat_interval_ms = hb.interval.as_millis(),
                heartbeat_multiplier = hb.multiplier,
                heartbeat_watchers = hb.watchers,
                "memberlist gossip started, with heartbeats"
            ),
            None => info!(
                parent: &span, boot = me.boot, bind = %local, key_id = %key_id,
                "memberlist gossip started, heartbeats off (--heartbeat-interval 0)"
            ),
        }
        let task = tokio::spawn(driver.run(commands_rx).instrument(span));
        Ok(Self {
            me,
            live,
            peers,
            current,
            claims_inbox: Some(claims_inbox),
            link,
            commands,
            counters,
            heartbeat,
            task,
            thread,
            leave_timeout,
        })
    }

    /// Names of the live speakers, ourselves included; changes are
    /// published as they happen.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// The live peers (not us) with their incarnation and address: the
    /// same speakers as [`Membership::live`] without us.
    pub fn live_peers(&self) -> watch::Receiver<LivePeers> {
        self.peers.clone()
    }

    /// Our identity as it started (its address is the bound one when not
    /// advertised otherwise); [`Membership::current_identity`] follows
    /// renewals.
    pub fn identity(&self) -> &SpeakerId {
        &self.me
    }

    /// Our identity now: its `boot` grows when membership declared us down
    /// and we rejoined ([`foca::Identity::renew`]).
    pub fn current_identity(&self) -> watch::Receiver<SpeakerId> {
        self.current.clone()
    }

    /// The claims datagrams the receiving thread queues (still sealed);
    /// `None` once taken. Until taken they wait in the bounded queue and
    /// the overflow is counted (`claims_queue_full`).
    pub fn take_claims_inbox(&mut self) -> Option<Inbox> {
        self.claims_inbox.take()
    }

    /// Opens claims datagrams and sends sealed ones, with the keys in use.
    pub fn claims_link(&self) -> Link {
        self.link.clone()
    }

    /// Where peers reach us: the seed to give other members.
    pub fn local_addr(&self) -> SocketAddr {
        self.me.addr
    }

    /// Traffic counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            heartbeat: self.heartbeat.snapshot(),
            ..self.counters.snapshot()
        }
    }

    /// Replaces the seed list (the other speakers' addresses, as the
    /// daemon sees them in the Node list) and announces to the new ones now;
    /// seeds that are not members are retried every
    /// [`Timing::seed_retry`].
    pub async fn set_seeds(&self, seeds: Vec<SocketAddr>) -> Result<()> {
        self.commands
            .send(Command::SetSeeds(seeds))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// The secret file now holds `key`: accept it at once, seal with it
    /// after the rotation grace period, and drop the old key a grace period
    /// later ([`super::keyring`]). Offering the key in use changes nothing.
    pub async fn offer_key(&self, key: Secret) -> Result<()> {
        self.commands
            .send(Command::OfferKey(key))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Leaves the cluster gracefully: gossips our own departure so the
    /// others drop us at once instead of after a failed probe, waits
    /// [`Timing::leave_linger`] re-sending it, then stops. The live set
    /// becomes empty: a speaker that left announces nothing.
    pub async fn leave(self) -> Result<()> {
        let (done, left) = oneshot::channel();
        self.commands
            .send(Command::Leave(done))
            .await
            .map_err(|_| Error::Stopped)?;
        match tokio::time::timeout(self.leave_timeout, left).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::LeaveTimeout(self.leave_timeout)),
        }
    }
}

struct Driver {
    foca: Swim,
    rt: AccumulatingRuntime<SpeakerId>,
    /// Sends only: the heartbeat thread receives.
    socket: Arc<UdpSocket>,
    inbox: Inbox,
    keys: Arc<Mutex<KeyRing<Instant>>>,
    timing: Timing,
    timers: TimerQueue<Instant, foca::Timer<SpeakerId>>,
    roster: Roster,
    live_tx: watch::Sender<BTreeSet<String>>,
    peers_tx: watch::Sender<LivePeers>,
    current_tx: watch::Sender<SpeakerId>,
    members_tx: watch::Sender<Members>,
    down: watch::Receiver<BTreeSet<String>>,
    counters: Arc<Counters>,
    seeds: Vec<SocketAddr>,
    sealed: Vec<u8>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut down_open = true;
        let mut seed_retry = tokio::time::interval(self.timing.seed_retry);
        seed_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.timers.next_deadline();
            let key_deadline = lock(&self.keys).next_deadline();
            tokio::select! {
                received = self.inbox.recv() => match received {
                    Some((datagram, from)) => self.on_datagram(&datagram, from).await,
                    // The thread stopped: so does gossip.
                    None => return,
                },
                r = self.down.changed(), if down_open => match r {
                    Ok(()) => self.publish_live(),
                    Err(_) => down_open = false,
                },
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.on_timers().await;
                }
                () = sleep_until(key_deadline.unwrap_or_else(Instant::now)), if key_deadline.is_some() => {
                    self.on_key_deadline();
                }
                _ = seed_retry.tick() => self.announce_to_seeds().await,
                command = commands.recv() => match command {
                    Some(Command::SetSeeds(seeds)) => {
                        self.seeds = seeds;
                        self.announce_to_seeds().await;
                    }
                    Some(Command::OfferKey(key)) => self.offer_key(key),
                    Some(Command::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }

    async fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        Counters::bump(&self.counters.received);
        let opened = lock(&self.keys).open(datagram);
        let payload = match opened {
            Ok(payload) => payload,
            Err(rejected) => {
                Counters::bump(&self.counters.rejected);
                debug!(%from, reason = rejected.reason(), "dropped unauthenticated datagram");
                return;
            }
        };
        if let Err(error) = self.foca.handle_data(payload, &mut self.rt) {
            Counters::bump(&self.counters.malformed);
            debug!(%from, %error, "foca refused an authenticated datagram");
        }
        self.drain().await;
    }

    fn offer_key(&mut self, key: Secret) {
        let id = key.key_id();
        let mut keys = lock(&self.keys);
        match keys.offer(key, Instant::now()) {
            Offer::Unchanged | Offer::AlreadyPending => {}
            Offer::Scheduled { switch_at } => info!(
                key_id = %id,
                sealing_key_id = %keys.sealing().key_id(),
                switch_in_s = switch_at.saturating_duration_since(Instant::now()).as_secs(),
                "memberlist secret changed: accepting the new key now, sealing with it after the grace period"
            ),
            Offer::Reverted => info!(
                key_id = %id,
                "memberlist secret changed back before the switch: keeping the key in use"
            ),
        }
    }

    fn on_key_deadline(&mut self) {
        let tick = lock(&self.keys).tick(Instant::now());
        if let Some(id) = tick.switched_to {
            info!(key_id = %id, "now sealing gossip with the new memberlist key");
        }
        for id in tick.dropped {
            info!(key_id = %id, "no longer accepting an old memberlist key");
        }
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            if let Err(error) = self.foca.handle_timer(timer, &mut self.rt) {
                debug!(%error, "foca timer failed");
            }
            self.drain().await;
        }
    }

    async fn announce_to_seeds(&mut self) {
        let known: BTreeSet<SocketAddr> = self.roster.peer_addrs().collect();
        let me = self.roster.me().addr;
        let targets: Vec<SocketAddr> = self
            .seeds
            .iter()
            .copied()
            .filter(|s| *s != me && !s.ip().is_unspecified() && !known.contains(s))
            .collect();
        for seed in targets {
            if let Err(error) = self.foca.announce(SpeakerId::seed(seed), &mut self.rt) {
                debug!(%seed, %error, "announce failed");
            }
            self.drain().await;
        }
    }

    async fn leave(&mut self) {
        // The heartbeat thread says goodbye to its watchers first, so none
        // of them accuses us while the leave lingers.
        self.members_tx.send_replace(Members::new());
        if let Err(error) = self.foca.leave_cluster(&mut self.rt) {
            warn!(%error, "leaving the cluster failed");
        }
        self.drain().await;
        // UDP may lose the first copy; a few more over the linger make a
        // lost leave unlikely. Foca's own dissemination stops with us.
        let resend_every = self.timing.leave_linger / 3;
        for _ in 0..2 {
            tokio::time::sleep(resend_every).await;
            if self.foca.gossip(&mut self.rt).is_ok() {
                self.drain().await;
            }
        }
        tokio::time::sleep(resend_every).await;
        self.roster.clear();
        self.live_tx.send_replace(BTreeSet::new());
        self.peers_tx.send_replace(LivePeers::new());
        info!("left the memberlist cluster");
    }

    /// Carries out what foca asked for in the last call.
    async fn drain(&mut self) {
        while let Some((to, data)) = self.rt.to_send() {
            lock(&self.keys)
                .sealing()
                .seal_into(&data, &mut self.sealed);
            match self.socket.send_to(&self.sealed, to.addr) {
                Ok(_) => Counters::bump(&self.counters.sent),
                Err(error) => {
                    Counters::bump(&self.counters.io_errors);
                    debug!(to = %to.addr, %error, "memberlist send failed");
                }
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.timers.schedule(now, after, timer);
        }
        let mut changed = false;
        while let Some(notification) = self.rt.to_notify() {
            log_notification(&notification);
            changed |= self.roster.apply(&notification);
        }
        if changed {
            self.members_tx.send_replace(self.roster.peers());
            self.publish_live();
        }
        let me = self.roster.me();
        if *self.current_tx.borrow() != *me {
            self.current_tx.send_replace(me.clone());
        }
    }

    /// Publishes SWIM's live set minus the speakers the heartbeat quorum
    /// declares down.
    fn publish_live(&mut self) {
        let (live, peers) = {
            let down = self.down.borrow_and_update();
            let mut live = self.roster.live_names();
            live.retain(|n| !down.contains(n));
            let mut peers = LivePeers::new();
            for id in self.roster.members() {
                if down.contains(&id.name) || id.name == self.roster.me().name {
                    continue;
                }
                let peer = Peer {
                    boot: id.boot,
                    addr: id.addr,
                };
                // Two addresses under one name: the newest run.
                let newer = peers.get(&id.name).is_none_or(|p| p.boot < id.boot);
                if newer {
                    peers.insert(id.name.clone(), peer);
                }
            }
            (live, peers)
        };
        self.peers_tx.send_if_modified(|current| {
            let differs = *current != peers;
            if differs {
                *current = peers;
            }
            differs
        });
        self.live_tx.send_if_modified(|current| {
            let differs = *current != live;
            if differs {
                info!(live = ?live, "live speakers changed");
                *current = live;
            }
            differs
        });
    }
}

fn log_notification(notification: &OwnedNotification<SpeakerId>) {
    match notification {
        OwnedNotification::MemberUp(id) => {
            info!(member = %id.name, addr = %id.addr, boot = id.boot, "speaker is alive");
        }
        OwnedNotification::MemberDown(id) => {
            info!(member = %id.name, addr = %id.addr, boot = id.boot, "speaker is down");
        }
        OwnedNotification::Rename(old, new) => {
            info!(member = %new.name, addr = %new.addr, old_boot = old.boot, boot = new.boot, "speaker restarted");
        }
        OwnedNotification::Active => info!("joined the memberlist cluster"),
        OwnedNotification::Idle => warn!("no other speaker is alive"),
        OwnedNotification::Defunct => warn!("this speaker was declared down and cannot rejoin"),
        OwnedNotification::Rejoin(id) => {
            warn!(
                boot = id.boot,
                "this speaker was declared down; rejoined with a new identity"
            );
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}
