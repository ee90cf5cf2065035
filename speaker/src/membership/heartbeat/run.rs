//! The I/O shell: one OS thread owns the receiving side of the memberlist
//! UDP socket. Heartbeats and verdicts are handled on the thread, so no
//! busy work of the async runtime (watch relists, decisions, API calls) can
//! delay them; every other datagram goes to the gossip task through a
//! bounded queue. The thread also sends our heartbeats, on time, from the
//! same socket (one port, as MetalLB's memberlist). Claims datagrams
//! ([`CLAIMS_MAGIC`]) go, unopened, to their own bounded queue: the
//! claims task authenticates and decodes them, not this thread.
//!
//! The hot path does not allocate: the receive, payload and sealing
//! buffers are reused, decoding borrows from the datagram, and the state
//! only allocates when a peer or an accusation appears.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::state::{Dropped, Fast, Note};
use super::wire::{self, Message};
use crate::membership::auth::{CLAIMS_MAGIC, LIVENESS_MAGIC};
use crate::membership::config::MAX_DATAGRAM;
use crate::membership::keyring::KeyRing;
use crate::transport::lock;

/// The longest the thread blocks on the socket: how quickly it notices a
/// stop request or a membership change without other wake-ups.
pub const MAX_WAIT: Duration = Duration::from_millis(50);

/// Live peers (not us) with the address each is reached on.
pub type Members = Vec<(String, SocketAddr)>;

/// The gossip datagrams the thread hands to the gossip task.
pub type Inbox = mpsc::Receiver<(Vec<u8>, SocketAddr)>;

/// Claims datagrams the thread may queue for the claims task: a full
/// version of 10,000 Services is about 300.
pub const CLAIMS_QUEUE: usize = 4096;

/// Counters of the fast-liveness traffic, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatStats {
    /// Heartbeats sent.
    pub sent: u64,
    /// Verdicts sent.
    pub verdicts_sent: u64,
    /// Heartbeats and verdicts that changed our state.
    pub received: u64,
    /// Dropped: the tag did not match any key.
    pub unauthenticated: u64,
    /// Dropped: authenticated but not decodable.
    pub malformed: u64,
    /// Dropped: not newer than what the sender sent before.
    pub replayed: u64,
    /// Dropped: epoch in the future.
    pub future_dated: u64,
    /// Dropped: claims to come from us.
    pub from_self: u64,
    /// Gossip datagrams dropped because the gossip task lagged.
    pub gossip_queue_full: u64,
    /// Claims datagrams dropped because the claims task lagged (or was
    /// not there to take them).
    pub claims_queue_full: u64,
    /// Failed sends and receives.
    pub io_errors: u64,
    /// Live peers down by the watchers' quorum, now.
    pub down: u64,
    /// Peers we watch, now.
    pub watching: u64,
    /// Our watchers, now.
    pub watchers: u64,
    /// 1 when the thread runs under the real-time policy
    /// ([`raise_priority`]), else 0.
    pub realtime: u64,
}

/// Shared counters (the thread writes, `Membership::stats` reads).
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    verdicts_sent: AtomicU64,
    received: AtomicU64,
    unauthenticated: AtomicU64,
    malformed: AtomicU64,
    replayed: AtomicU64,
    future_dated: AtomicU64,
    from_self: AtomicU64,
    gossip_queue_full: AtomicU64,
    claims_queue_full: AtomicU64,
    io_errors: AtomicU64,
    down: AtomicU64,
    watching: AtomicU64,
    watchers: AtomicU64,
    realtime: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// A copy of the counters now.
    pub fn snapshot(&self) -> HeartbeatStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HeartbeatStats {
            sent: g(&self.sent),
            verdicts_sent: g(&self.verdicts_sent),
            received: g(&self.received),
            unauthenticated: g(&self.unauthenticated),
            malformed: g(&self.malformed),
            replayed: g(&self.replayed),
            future_dated: g(&self.future_dated),
            from_self: g(&self.from_self),
            gossip_queue_full: g(&self.gossip_queue_full),
            claims_queue_full: g(&self.claims_queue_full),
            io_errors: g(&self.io_errors),
            down: g(&self.down),
            watching: g(&self.watching),
            watchers: g(&self.watchers),
            realtime: g(&self.realtime),
        }
    }
}

/// What the thread works with.
#[derive(Debug)]
pub struct Wiring {
    /// The bound socket (shared with the gossip task, which sends on it).
    pub socket: Arc<UdpSocket>,
    /// The keys, shared with the gossip task (which rotates them).
    pub keys: Arc<Mutex<KeyRing<tokio::time::Instant>>>,
    /// Our state; `None` when heartbeats are off (`--heartbeat-interval 0`):
    /// the thread then only forwards gossip.
    pub fast: Option<Fast>,
    /// Live peers, from the gossip task.
    pub members: watch::Receiver<Members>,
    /// Where the quorum's down set is published.
    pub down: watch::Sender<BTreeSet<String>>,
    /// Where gossip datagrams go.
    pub gossip: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    /// Where claims datagrams go ([`CLAIMS_QUEUE`]).
    pub claims: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    /// Counters.
    pub counters: Arc<Counters>,
}

/// The running thread. [`Thread::stop`] (or dropping it) stops and joins
/// it within [`MAX_WAIT`].
#[derive(Debug)]
pub struct Thread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Thread {
    /// Starts the thread.
    pub fn spawn(wiring: Wiring, span: tracing::Span) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("ferrolb-heartbeat".into())
            .spawn(move || span.in_scope(|| run(wiring, &flag)))?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it (at most [`MAX_WAIT`] plus one
    /// loop turn).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Puts the calling thread under `SCHED_FIFO` at the lowest real-time
/// priority: above every normal thread of the node (so a saturated CPU or
/// a CFS quota cannot delay a heartbeat), below anything else real-time.
/// The thread sleeps nearly all the time, so it takes nothing from anyone.
/// Needs `CAP_SYS_NICE`; without it the thread stays a normal one.
pub fn raise_priority() -> Result<(), String> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| format!("{e:?}"))
}

fn run(mut w: Wiring, stop: &AtomicBool) {
    if w.fast.is_some() {
        match raise_priority() {
            Ok(()) => {
                w.counters.realtime.store(1, Ordering::Relaxed);
                info!("heartbeat thread runs under SCHED_FIFO (lowest real-time priority)");
            }
            Err(error) => warn!(
                %error,
                "cannot run the heartbeat thread under SCHED_FIFO (the speaker needs \
                 CAP_SYS_NICE); on a busy node its heartbeats can be late and peers may \
                 declare it down: grant SYS_NICE or raise --heartbeat-multiplier"
            ),
        }
    }
    let origin = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut payload = Vec::with_capacity(wire::MAX_PAYLOAD);
    let mut sealed = Vec::with_capacity(MAX_DATAGRAM);
    let counters = Arc::clone(&w.counters);
    while !stop.load(Ordering::Relaxed) {
        let now = origin.elapsed();
        let wait = match w.fast.as_mut() {
            Some(fast) => {
                if w.members.has_changed().unwrap_or(false) {
                    let members = w.members.borrow_and_update();
                    fast.set_members(members.iter().map(|(n, a)| (n.as_str(), *a)), now);
                }
                let mut send = |to: SocketAddr, msg: Message<'_>| {
                    if wire::encode(&msg, &mut payload).is_err() {
                        return;
                    }
                    lock(&w.keys)
                        .sealing()
                        .seal_as(LIVENESS_MAGIC, &payload, &mut sealed);
                    match w.socket.send_to(&sealed, to) {
                        Ok(_) if matches!(msg, Message::Heartbeat { .. }) => bump(&counters.sent),
                        Ok(_) => bump(&counters.verdicts_sent),
                        Err(error) => {
                            bump(&counters.io_errors);
                            debug!(%to, %error, "heartbeat send failed");
                        }
                    }
                };
                let next = fast.poll(now, &mut send);
                after_change(fast, &w.down, &counters);
                next.saturating_sub(now)
            }
            None => MAX_WAIT,
        };
        if w.socket
            .set_read_timeout(Some(wait.clamp(Duration::from_millis(1), MAX_WAIT)))
            .is_err()
        {
            bump(&counters.io_errors);
        }
        let (len, from) = match w.socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(error) => {
                bump(&counters.io_errors);
                debug!(%error, "memberlist receive failed");
                // Never spin on a persistent error.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let datagram = &buf[..len];
        if !datagram.starts_with(&LIVENESS_MAGIC) {
            // Checked after the heartbeat's magic: heartbeats pay nothing.
            if datagram.starts_with(&CLAIMS_MAGIC) {
                // Closed: nobody takes claims (no claims task); not an
                // error of membership, so counted like a full queue.
                if w.claims.try_send((datagram.to_vec(), from)).is_err() {
                    bump(&counters.claims_queue_full);
                }
                continue;
            }
            match w.gossip.try_send((datagram.to_vec(), from)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => bump(&counters.gossip_queue_full),
                // The gossip task is gone: so is membership.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
            continue;
        }
        let Some(fast) = w.fast.as_mut() else {
            // Heartbeats are off here; a peer's are not an error.
            continue;
        };
        let opened = lock(&w.keys).open_as(LIVENESS_MAGIC, datagram);
        let body = match opened {
            Ok(body) => body,
            Err(rejected) => {
                bump(&counters.unauthenticated);
                debug!(%from, reason = rejected.reason(), "dropped unauthenticated heartbeat");
                continue;
            }
        };
        let msg = match wire::decode(body) {
            Ok(msg) => msg,
            Err(error) => {
                bump(&counters.malformed);
                debug!(%from, %error, "dropped malformed heartbeat");
                continue;
            }
        };
        match fast.receive(&msg, from, origin.elapsed(), wall_micros()) {
            Ok(()) => bump(&counters.received),
            Err(dropped) => {
                bump(match dropped {
                    Dropped::FromSelf => &counters.from_self,
                    Dropped::Replayed => &counters.replayed,
                    Dropped::FutureDated => &counters.future_dated,
                });
                debug!(%from, reason = dropped.reason(), "dropped heartbeat");
            }
        }
        after_change(fast, &w.down, &counters);
    }
}

/// Logs what happened, publishes the down set if it changed, updates the
/// gauges.
fn after_change(fast: &mut Fast, down: &watch::Sender<BTreeSet<String>>, counters: &Counters) {
    let detect = fast.config().detect_time();
    for note in fast.take_notes() {
        match note {
            Note::Accused(peer) => warn!(
                %peer,
                detect_ms = detect.as_millis(),
                "no heartbeat from a watched speaker within its detection time; declaring it down"
            ),
            Note::Withdrew(peer) => info!(%peer, "heartbeats from the speaker again"),
            Note::Down(peer) => warn!(%peer, "speaker is down: its watchers agree"),
            Note::Up(peer) => info!(%peer, "speaker no longer declared down"),
            Note::Refuted(accuser) => {
                info!(%accuser, "a speaker declared us down; answered it")
            }
        }
    }
    let now = fast.down();
    down.send_if_modified(|old| {
        let changed = old != now;
        if changed {
            old.clone_from(now);
        }
        changed
    });
    let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    counters.down.store(len(now.len()), Ordering::Relaxed);
    counters
        .watching
        .store(len(fast.watching().count()), Ordering::Relaxed);
    counters
        .watchers
        .store(len(fast.targets().count()), Ordering::Relaxed);
}
