//! The speaker's I/O loop: datalinks in, [`Announcer`] in the middle,
//! frames out.
//!
//! One receiving thread per link pushes frames into a bounded queue; one
//! announcer thread owns the [`Announcer`] and waits on that queue until
//! the next announcement deadline, so a takeover is announced as soon as
//! [`Running::set_desired`] is called and replies go out as soon as a
//! question arrives. Malformed frames are counted and dropped; a full
//! queue (a flood) drops frames rather than delaying the announcer.
//!
//! Other stations' announcements of addresses the loop owns, hands over
//! or has just withdrawn ([`Observation`]) go to an optional [`Observer`]
//! channel ([`Running::spawn_observed`]); when the reader is behind they
//! are dropped and counted, never waited for. [`Running::hand_over`]
//! starts a graceful stop's handover.
//!
//! ```
//! use ferrolb_speaker::announcer::Config;
//! use ferrolb_speaker::transport::{memory::Hub, run::Running, Datalink};
//! use std::sync::Arc;
//!
//! let hub = Hub::new();
//! let link: Arc<dyn Datalink> = Arc::new(hub.endpoint("eth0", "02:00:00:00:00:0a".parse().unwrap()));
//! let running = Running::spawn(vec![link], Config::default()).unwrap();
//! running.set_desired(vec![("192.0.2.10".parse().unwrap(), "eth0".to_string())]);
//! running.stop();
//! ```

use super::{lock, Datalink, Error, Result};
use crate::announcer::{Announcer, Config, Counters, Observation, Outgoing, PerIp};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Frames waiting for the announcer thread before newer ones are dropped.
const QUEUE: usize = 1024;
/// The longest the announcer thread sleeps with nothing scheduled, so it
/// notices a stop request.
const IDLE: Duration = Duration::from_millis(200);

/// Where the loop delivers [`Observation`]s: a bounded channel the daemon
/// reads. A full channel drops them ([`Stats::observations_dropped`]).
pub type Observer = tokio::sync::mpsc::Sender<Observation>;

/// What the loop has done: the announcer's counters plus I/O errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// The announcer's counters.
    pub announcer: Counters,
    /// Frames that could not be sent.
    pub send_errors: u64,
    /// Receive errors other than timeouts.
    pub recv_errors: u64,
    /// Received frames dropped because the announcer was behind.
    pub frames_dropped: u64,
    /// Multicast joins or leaves that failed.
    pub multicast_errors: u64,
    /// Observations not delivered because the [`Observer`] channel was full.
    pub observations_dropped: u64,
}

impl Stats {
    /// Every count of `other` added to these.
    pub fn plus(self, other: Stats) -> Stats {
        Stats {
            announcer: self.announcer.plus(other.announcer),
            send_errors: self.send_errors.saturating_add(other.send_errors),
            recv_errors: self.recv_errors.saturating_add(other.recv_errors),
            frames_dropped: self.frames_dropped.saturating_add(other.frames_dropped),
            multicast_errors: self.multicast_errors.saturating_add(other.multicast_errors),
            observations_dropped: self
                .observations_dropped
                .saturating_add(other.observations_dropped),
        }
    }
}

enum Event {
    Frame(usize, Vec<u8>),
    Desired(Vec<(IpAddr, String)>),
    HandOver,
    Stop,
}

/// A running announcer loop. Stops and joins its threads on drop.
#[derive(Debug)]
pub struct Running {
    events: SyncSender<Event>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    per_ip: Arc<Mutex<PerIp>>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts the loop over `links` (each announced under its
    /// [`BoundInterface::name`](super::BoundInterface)), owning nothing yet.
    pub fn spawn(links: Vec<Arc<dyn Datalink>>, config: Config) -> Result<Self> {
        Self::spawn_observed(links, config, None)
    }

    /// [`spawn`](Self::spawn), delivering [`Observation`]s to `observer`.
    pub fn spawn_observed(
        links: Vec<Arc<dyn Datalink>>,
        config: Config,
        observer: Option<Observer>,
    ) -> Result<Self> {
        let (events, queue) = mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let per_ip = Arc::new(Mutex::new(PerIp::default()));
        let mut threads = Vec::new();
        for (i, link) in links.iter().enumerate() {
            let (link, events, stop, stats) = (
                Arc::clone(link),
                events.clone(),
                Arc::clone(&stop),
                Arc::clone(&stats),
            );
            let name = format!("rx-{}", link.info().name);
            threads.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || receive(i, &*link, &events, &stop, &stats))
                    .map_err(Error::Spawn)?,
            );
        }
        let mut looped = Loop {
            announcer: Announcer::new(config),
            links,
            joined: BTreeMap::new(),
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
            per_ip: Arc::clone(&per_ip),
            io: Stats::default(),
            observer,
        };
        threads.push(
            thread::Builder::new()
                .name("announcer".into())
                .spawn(move || looped.run(&queue))
                .map_err(Error::Spawn)?,
        );
        Ok(Self {
            events,
            stop,
            stats,
            per_ip,
            threads,
        })
    }

    /// Replaces the (address, interface name) pairs this node owns.
    pub fn set_desired(&self, desired: Vec<(IpAddr, String)>) {
        // Blocks only while the queue is full, which the announcer drains
        // quickly; a desired set must never be dropped like a frame.
        let _ = self.events.send(Event::Desired(desired));
    }

    /// Starts handing over on a graceful stop
    /// ([`Announcer::hand_over`]): no more announcements, answers until
    /// [`set_desired`](Self::set_desired) withdraws each pair. Frames
    /// received after this call are observed as handing over.
    pub fn hand_over(&self) {
        // Queued behind the frames received so far, ahead of later ones;
        // never dropped, like a desired set.
        let _ = self.events.send(Event::HandOver);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        *lock(&self.stats)
    }

    /// The per-address counts since the last call, emptied.
    pub fn take_per_ip(&self) -> PerIp {
        std::mem::take(&mut *lock(&self.per_ip))
    }

    /// Stops the threads and waits for them.
    pub fn stop(self) {}

    /// Stops the threads, waits for them and returns the final counters
    /// (everything the loop did, up to its last frame).
    pub fn finish(self) -> Stats {
        self.finish_all().0
    }

    /// [`finish`](Self::finish), with the per-address counts not taken yet.
    pub fn finish_all(mut self) -> (Stats, PerIp) {
        self.shutdown();
        (self.stats(), self.take_per_ip())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.events.try_send(Event::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn receive(
    i: usize,
    link: &dyn Datalink,
    events: &SyncSender<Event>,
    stop: &AtomicBool,
    stats: &Mutex<Stats>,
) {
    let mut errors = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match link.recv() {
            Ok(Some(frame)) => match events.try_send(Event::Frame(i, frame)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => bump(stats, |s| &mut s.frames_dropped),
                Err(TrySendError::Disconnected(_)) => return,
            },
            Ok(None) => errors = 0,
            Err(_) => {
                bump(stats, |s| &mut s.recv_errors);
                errors = errors.saturating_add(1);
                // A link that fails every call (gone, or down) must not spin.
                thread::sleep(Duration::from_millis(10) * errors.min(10));
            }
        }
    }
}

fn bump(stats: &Mutex<Stats>, field: impl FnOnce(&mut Stats) -> &mut u64) {
    *field(&mut lock(stats)) += 1;
}

struct Loop {
    announcer: Announcer,
    links: Vec<Arc<dyn Datalink>>,
    joined: BTreeMap<String, BTreeSet<Ipv6Addr>>,
    /// Checked as well as the `Stop` event, which a full queue can refuse.
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    /// Per-address counts published and not yet taken.
    per_ip: Arc<Mutex<PerIp>>,
    /// This thread's own I/O counts, merged into `stats` when published.
    io: Stats,
    observer: Option<Observer>,
}

impl Loop {
    fn run(&mut self, queue: &Receiver<Event>) {
        let now = Instant::now();
        for link in &self.links {
            let info = link.info();
            self.announcer.set_link(&info.name, info.mac, now);
        }
        while !self.stop.load(Ordering::Relaxed) {
            let wait = self
                .announcer
                .next_deadline()
                .map_or(IDLE, |d| d.saturating_duration_since(Instant::now()))
                .min(IDLE);
            match queue.recv_timeout(wait) {
                Ok(Event::Frame(i, frame)) => self.answer(i, &frame),
                Ok(Event::Desired(desired)) => {
                    self.announcer.set_desired(desired, Instant::now());
                    self.sync_groups();
                }
                Ok(Event::HandOver) => self.announcer.hand_over(),
                Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            for out in self.announcer.poll(Instant::now()) {
                self.send(&out);
            }
            self.publish();
        }
        // The last frames' counts, for `Running::finish`.
        self.publish();
    }

    fn answer(&mut self, i: usize, frame: &[u8]) {
        let Some(name) = self.links.get(i).map(|l| l.info().name.clone()) else {
            return;
        };
        let received = self.announcer.receive(&name, frame, Instant::now());
        // Answer first: the asker is waiting, the observer is not.
        if let Some(out) = received.reply {
            self.send(&out);
        }
        if let (Some(seen), Some(observer)) = (received.seen, &self.observer) {
            if observer.try_send(seen).is_err() {
                self.io.observations_dropped += 1;
            }
        }
    }

    fn send(&mut self, out: &Outgoing) {
        let Some(link) = self.links.iter().find(|l| l.info().name == out.link) else {
            return;
        };
        match link.send(&out.frame.to_bytes()) {
            Ok(()) => self.announcer.sent(out),
            Err(_) => self.io.send_errors += 1,
        }
    }

    /// Joins the solicited-node groups of newly owned IPv6 addresses
    /// before their first solicitation can arrive, and leaves the groups
    /// no owned address needs any more.
    fn sync_groups(&mut self) {
        for link in &self.links {
            let name = &link.info().name;
            let want = self.announcer.solicited_node_groups(name);
            let have = self.joined.entry(name.clone()).or_default();
            for group in want.difference(have) {
                if link.join_multicast(*group).is_err() {
                    self.io.multicast_errors += 1;
                }
            }
            for group in have.difference(&want) {
                if link.leave_multicast(*group).is_err() {
                    self.io.multicast_errors += 1;
                }
            }
            *have = want;
        }
    }

    fn publish(&mut self) {
        let mut s = lock(&self.stats);
        s.announcer = *self.announcer.counters();
        s.send_errors = self.io.send_errors;
        s.multicast_errors = self.io.multicast_errors;
        s.observations_dropped = self.io.observations_dropped;
        drop(s);
        let fresh = self.announcer.take_per_ip();
        if !fresh.is_empty() {
            lock(&self.per_ip).merge(fresh);
        }
    }
}
