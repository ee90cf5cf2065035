//! The claims task: the thin shell between the daemon's [`ClaimsPort`]
//! and whichever run of gossip is in force.
//!
//! One tokio task lives as long as the daemon. While gossip runs it is
//! [attached](Shell::attach) to it: it opens and decodes the datagrams the
//! receiving thread queued, reassembles versions per sender and hands
//! them to the daemon; it encodes, chunks, seals and sends what the daemon
//! sends. Without gossip, outgoing messages are dropped and counted, and
//! the port shows no peers and no incarnation. Nothing a peer sends can
//! stop the task; every drop is counted by reason ([`Reason`]).

use std::collections::BTreeMap;
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use super::link::Link;
use super::wire::{self, Frame, Reassembly, Refused};
use super::{ClaimsPort, Incoming, Outgoing, Peers};
use crate::membership::heartbeat::run::Inbox;
use crate::membership::{LivePeers, Membership, SpeakerId};

/// Messages the port holds for the daemon before dropping
/// ([`Reason::DaemonLagged`]).
pub const INCOMING_QUEUE: usize = 1024;
/// Messages the daemon may queue for sending.
pub const OUTGOING_QUEUE: usize = 1024;

/// A kind of message, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A chunk of a full version.
    Claims,
    /// A digest.
    Digest,
    /// A pull.
    Pull,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Claims, Kind::Digest, Kind::Pull];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Claims => "claims",
            Kind::Digest => "digest",
            Kind::Pull => "pull",
        }
    }
}

/// Why a datagram (incoming) or a message (outgoing) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not sealed with an accepted key.
    Unauthenticated,
    /// Authenticated but not decodable.
    Malformed,
    /// Claims to come from us.
    FromSelf,
    /// From a speaker that is not a live peer.
    SenderNotLive,
    /// From another incarnation than the sender's live one.
    WrongBoot,
    /// A chunk of a transmission older than the one in progress or
    /// already delivered, or a duplicate.
    Stale,
    /// A chunk that disagrees with its transmission.
    Inconsistent,
    /// A version beyond [`wire::MAX_VERSION_BYTES`].
    TooLarge,
    /// The daemon did not take its messages ([`INCOMING_QUEUE`]).
    DaemonLagged,
    /// Outgoing, while no gossip runs.
    NoGossip,
    /// Outgoing, to a speaker that is not a live peer.
    PeerNotLive,
    /// Outgoing, a name beyond the limits or too many chunks.
    Unencodable,
    /// Outgoing, the socket refused a datagram.
    SendFailed,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 13] = [
        Reason::Unauthenticated,
        Reason::Malformed,
        Reason::FromSelf,
        Reason::SenderNotLive,
        Reason::WrongBoot,
        Reason::Stale,
        Reason::Inconsistent,
        Reason::TooLarge,
        Reason::DaemonLagged,
        Reason::NoGossip,
        Reason::PeerNotLive,
        Reason::Unencodable,
        Reason::SendFailed,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::Malformed => "malformed",
            Reason::FromSelf => "from_self",
            Reason::SenderNotLive => "sender_not_live",
            Reason::WrongBoot => "wrong_boot",
            Reason::Stale => "stale",
            Reason::Inconsistent => "inconsistent",
            Reason::TooLarge => "too_large",
            Reason::DaemonLagged => "daemon_lagged",
            Reason::NoGossip => "no_gossip",
            Reason::PeerNotLive => "peer_not_live",
            Reason::Unencodable => "unencodable",
            Reason::SendFailed => "send_failed",
        }
    }

    fn refused(r: Refused) -> Self {
        match r {
            Refused::Stale => Reason::Stale,
            Refused::Inconsistent => Reason::Inconsistent,
            Refused::TooLarge => Reason::TooLarge,
        }
    }
}

/// The claims task's counters, for metrics. Datagrams, except the
/// outgoing drops before encoding (`no_gossip`, `peer_not_live`,
/// `unencodable`), which count messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimsStats {
    /// Datagrams sent, by [`Kind`] (index `kind as usize`).
    pub sent: [u64; 3],
    /// Datagrams accepted (authentic, decodable, from a live peer's live
    /// incarnation), by kind.
    pub received: [u64; 3],
    /// Messages handed to the daemon, by kind.
    pub delivered: [u64; 3],
    /// Drops, by [`Reason`] (index `reason as usize`).
    pub dropped: [u64; 13],
}

impl ClaimsStats {
    /// Datagrams sent of `kind`.
    pub fn sent(&self, kind: Kind) -> u64 {
        self.sent[kind as usize]
    }

    /// Datagrams accepted of `kind`.
    pub fn received(&self, kind: Kind) -> u64 {
        self.received[kind as usize]
    }

    /// Messages delivered of `kind`.
    pub fn delivered(&self, kind: Kind) -> u64 {
        self.delivered[kind as usize]
    }

    /// Drops for `reason`.
    pub fn dropped(&self, reason: Reason) -> u64 {
        self.dropped[reason as usize]
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: [AtomicU64; 3],
    received: [AtomicU64; 3],
    delivered: [AtomicU64; 3],
    dropped: [AtomicU64; 13],
}

impl Counters {
    fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn dropped(&self, reason: Reason) {
        Self::inc(&self.dropped[reason as usize], 1);
    }

    fn snapshot(&self) -> ClaimsStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClaimsStats {
            sent: self.sent.each_ref().map(g),
            received: self.received.each_ref().map(g),
            delivered: self.delivered.each_ref().map(g),
            dropped: self.dropped.each_ref().map(g),
        }
    }
}

/// What the task needs of one run of gossip.
#[derive(Debug)]
pub struct Attachment {
    inbox: Inbox,
    link: Link,
    peers: watch::Receiver<LivePeers>,
    me: watch::Receiver<SpeakerId>,
}

impl Attachment {
    /// Takes the claims inbox of `membership` (`None` if already taken).
    pub fn take(membership: &mut Membership) -> Option<Self> {
        Some(Self {
            inbox: membership.take_claims_inbox()?,
            link: membership.claims_link(),
            peers: membership.live_peers(),
            me: membership.current_identity(),
        })
    }
}

/// The running claims task; dropping it stops the task.
#[derive(Debug)]
pub struct Shell {
    attach: mpsc::Sender<Option<Attachment>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shell {
    /// Starts the task for the speaker on node `node`, detached; the port
    /// is the daemon's for its whole life.
    pub fn spawn(node: String) -> (ClaimsPort, Shell) {
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (peers_tx, peers) = watch::channel(Peers::new());
        let (me_tx, me) = watch::channel(None);
        let (attach, attach_rx) = mpsc::channel(4);
        let counters = Arc::new(Counters::default());
        let span = tracing::info_span!("claims", node = %node);
        let task = Task {
            node,
            incoming: incoming_tx,
            peers_tx,
            me_tx,
            counters: Arc::clone(&counters),
            run: None,
            send: 0,
            sealed: Vec::new(),
            payload: Vec::new(),
        };
        let handle = tokio::spawn(task.run(attach_rx, outgoing_rx).instrument(span));
        let port = ClaimsPort {
            incoming,
            outgoing,
            peers,
            me,
        };
        (
            port,
            Shell {
                attach,
                counters,
                task: handle,
            },
        )
    }

    /// Gossip (re)started: use this run of it.
    pub async fn attach(&self, attachment: Attachment) {
        let _ = self.attach.send(Some(attachment)).await;
    }

    /// Gossip stopped.
    pub async fn detach(&self) {
        let _ = self.attach.send(None).await;
    }

    /// The counters so far.
    pub fn stats(&self) -> ClaimsStats {
        self.counters.snapshot()
    }
}

/// One attached run of gossip.
struct Run {
    inbox: Inbox,
    link: Link,
    peers: watch::Receiver<LivePeers>,
    me: watch::Receiver<SpeakerId>,
    live: LivePeers,
    boot: u64,
    /// One version in progress per live sender, with its boot.
    partial: BTreeMap<String, (u64, Reassembly)>,
}

enum Wake {
    Attach(Option<Option<Attachment>>),
    Out(Option<Outgoing>),
    Datagram(Option<Vec<u8>>),
    Peers(bool),
    Me(bool),
}

struct Task {
    node: String,
    incoming: mpsc::Sender<Incoming>,
    peers_tx: watch::Sender<Peers>,
    me_tx: watch::Sender<Option<u64>>,
    counters: Arc<Counters>,
    run: Option<Run>,
    /// Numbers our transmissions of full versions ([`wire::encode_claims`]).
    send: u64,
    sealed: Vec<u8>,
    payload: Vec<u8>,
}

impl Task {
    async fn run(
        mut self,
        mut attach: mpsc::Receiver<Option<Attachment>>,
        mut outgoing: mpsc::Receiver<Outgoing>,
    ) {
        let mut out_open = true;
        loop {
            let wake = {
                let run = &mut self.run;
                let gossip = async move {
                    match run.as_mut() {
                        Some(r) => tokio::select! {
                            d = r.inbox.recv() => Wake::Datagram(d.map(|(d, _)| d)),
                            c = r.peers.changed() => Wake::Peers(c.is_ok()),
                            c = r.me.changed() => Wake::Me(c.is_ok()),
                        },
                        None => pending().await,
                    }
                };
                tokio::select! {
                    a = attach.recv() => Wake::Attach(a),
                    o = outgoing.recv(), if out_open => Wake::Out(o),
                    w = gossip => w,
                }
            };
            match wake {
                Wake::Attach(None) => return,
                Wake::Attach(Some(Some(a))) => self.attach(a),
                Wake::Attach(Some(None)) => self.detach(),
                Wake::Out(Some(o)) => self.send(o),
                // The daemon dropped its sender: keep delivering.
                Wake::Out(None) => out_open = false,
                Wake::Datagram(Some(d)) => self.receive(&d),
                // Gossip stopped under us (its thread or task ended).
                Wake::Datagram(None) | Wake::Peers(false) | Wake::Me(false) => self.detach(),
                Wake::Peers(true) => self.on_peers(),
                Wake::Me(true) => self.on_me(),
            }
        }
    }

    fn attach(&mut self, a: Attachment) {
        let mut peers = a.peers;
        let mut me = a.me;
        let live = peers.borrow_and_update().clone();
        let boot = me.borrow_and_update().boot;
        info!(
            boot,
            peers = live.len(),
            "claims channel attached to gossip"
        );
        self.run = Some(Run {
            inbox: a.inbox,
            link: a.link,
            peers,
            me,
            live,
            boot,
            partial: BTreeMap::new(),
        });
        self.publish();
    }

    fn detach(&mut self) {
        if self.run.take().is_some() {
            info!("claims channel detached: gossip stopped");
        }
        self.publish();
    }

    fn on_peers(&mut self) {
        if let Some(r) = self.run.as_mut() {
            r.live = r.peers.borrow_and_update().clone();
            let live = &r.live;
            // Versions in progress from senders gone or renewed are void.
            r.partial
                .retain(|name, (boot, _)| live.get(name).is_some_and(|p| p.boot == *boot));
        }
        self.publish();
    }

    fn on_me(&mut self) {
        if let Some(r) = self.run.as_mut() {
            r.boot = r.me.borrow_and_update().boot;
        }
        self.publish();
    }

    fn publish(&self) {
        let (peers, me) = match &self.run {
            Some(r) => (
                r.live.iter().map(|(n, p)| (n.clone(), p.boot)).collect(),
                Some(r.boot),
            ),
            None => (Peers::new(), None),
        };
        self.peers_tx.send_if_modified(|old| {
            let changed = *old != peers;
            *old = peers;
            changed
        });
        self.me_tx.send_if_modified(|old| {
            let changed = *old != me;
            *old = me;
            changed
        });
    }

    fn receive(&mut self, datagram: &[u8]) {
        let c = &*self.counters;
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let payload = match run.link.open(datagram) {
            Ok(p) => p,
            Err(rejected) => {
                c.dropped(Reason::Unauthenticated);
                debug!(
                    reason = rejected.reason(),
                    "dropped unauthenticated claims datagram"
                );
                return;
            }
        };
        let d = match wire::decode(payload) {
            Ok(d) => d,
            Err(error) => {
                c.dropped(Reason::Malformed);
                debug!(%error, "dropped malformed claims datagram");
                return;
            }
        };
        let verdict = if d.from == self.node {
            Err(Reason::FromSelf)
        } else {
            match run.live.get(d.from) {
                None => Err(Reason::SenderNotLive),
                Some(p) if p.boot != d.boot => Err(Reason::WrongBoot),
                Some(_) => Ok(()),
            }
        };
        if let Err(reason) = verdict {
            c.dropped(reason);
            debug!(
                from = d.from,
                boot = d.boot,
                reason = reason.as_str(),
                "dropped claims datagram"
            );
            return;
        }
        let from = d.from.to_owned();
        let (kind, message) = match d.frame {
            Frame::Chunk(chunk) => {
                Counters::inc(&c.received[Kind::Claims as usize], 1);
                let slot = run
                    .partial
                    .entry(from.clone())
                    .or_insert_with(|| (d.boot, Reassembly::new()));
                if slot.0 != d.boot {
                    *slot = (d.boot, Reassembly::new());
                }
                match slot.1.push(&chunk) {
                    Ok(None) => return,
                    Ok(Some(message)) => (Kind::Claims, Incoming::Claims { from, message }),
                    Err(refused) => {
                        c.dropped(Reason::refused(refused));
                        debug!(%from, reason = refused.reason(), "dropped claims chunk");
                        return;
                    }
                }
            }
            Frame::Digest {
                epoch,
                seq,
                settling,
            } => (
                Kind::Digest,
                Incoming::Digest {
                    from,
                    epoch,
                    seq,
                    settling,
                },
            ),
            Frame::Pull => (Kind::Pull, Incoming::Pull { from }),
        };
        if kind != Kind::Claims {
            Counters::inc(&c.received[kind as usize], 1);
        }
        match self.incoming.try_send(message) {
            Ok(()) => Counters::inc(&c.delivered[kind as usize], 1),
            Err(_) => c.dropped(Reason::DaemonLagged),
        }
    }

    fn send(&mut self, out: Outgoing) {
        let c = &*self.counters;
        let Some(run) = self.run.as_ref() else {
            c.dropped(Reason::NoGossip);
            return;
        };
        let to = match &out {
            Outgoing::Claims { to, .. } | Outgoing::Digest { to, .. } | Outgoing::Pull { to } => to,
        };
        let Some(peer) = run.live.get(to) else {
            c.dropped(Reason::PeerNotLive);
            debug!(%to, "claims message to a speaker that is not live dropped");
            return;
        };
        let (kind, encoded) = match &out {
            Outgoing::Claims { message, .. } => {
                self.send += 1;
                (
                    Kind::Claims,
                    wire::encode_claims(&self.node, run.boot, self.send, message),
                )
            }
            Outgoing::Digest {
                epoch,
                seq,
                settling,
                ..
            } => (
                Kind::Digest,
                wire::encode_digest(
                    &self.node,
                    run.boot,
                    *epoch,
                    *seq,
                    *settling,
                    &mut self.payload,
                )
                .map(|()| vec![std::mem::take(&mut self.payload)]),
            ),
            Outgoing::Pull { .. } => (
                Kind::Pull,
                wire::encode_pull(&self.node, run.boot, &mut self.payload)
                    .map(|()| vec![std::mem::take(&mut self.payload)]),
            ),
        };
        let payloads = match encoded {
            Ok(p) => p,
            Err(error) => {
                c.dropped(Reason::Unencodable);
                warn!(%to, %error, "cannot send our claims");
                return;
            }
        };
        for p in &payloads {
            match run.link.send(p, peer.addr, &mut self.sealed) {
                Ok(()) => Counters::inc(&c.sent[kind as usize], 1),
                Err(error) => {
                    c.dropped(Reason::SendFailed);
                    debug!(%to, addr = %peer.addr, %error, "claims send failed");
                }
            }
        }
        if kind != Kind::Claims {
            // Keep the buffer for the next digest or pull.
            if let Some(p) = payloads.into_iter().next() {
                self.payload = p;
            }
        }
    }
}
