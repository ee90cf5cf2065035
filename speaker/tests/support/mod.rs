//! Shared by the handover tests over the in-memory segment and over real
//! raw sockets in namespaces: a client that keeps asking for an address
//! and records every announcement of it it receives, and what a good
//! handover looks like from there.

use ferrolb_speaker::announcer::handover::Report;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::foreign::{self, Announcement, Kind};
use ferrolb_speaker::wire::{ArpFrame, MacAddr, NdpFrame};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// An announcement of the address the client heard, and when.
pub type Heard = (Instant, Announcement);

/// A client asking who has `vip` (ARP request or Neighbor Solicitation)
/// every `every`, recording every announcement of `vip` it hears: the
/// answers to its questions and anyone's gratuitous announcements.
pub struct Asker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Heard>>>,
}

impl Asker {
    /// Starts asking from `link` (with source address `me`); stops by
    /// itself after `limit` at the latest.
    pub fn start(
        link: Arc<dyn Datalink>,
        me: IpAddr,
        vip: IpAddr,
        every: Duration,
        limit: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mac = link.info().mac;
            let question = match (me, vip) {
                (IpAddr::V4(me), IpAddr::V4(vip)) => ArpFrame::request(mac, me, vip).to_bytes(),
                (IpAddr::V6(me), IpAddr::V6(vip)) => {
                    NdpFrame::solicitation(mac, me, vip).to_bytes()
                }
                _ => panic!("{me} and {vip} are of different families"),
            };
            let until = Instant::now() + limit;
            let mut next = Instant::now();
            let mut heard = Vec::new();
            while !stopped.load(Ordering::Relaxed) && Instant::now() < until {
                if Instant::now() >= next {
                    let _ = link.send(&question);
                    next += every;
                }
                if let Ok(Some(frame)) = link.recv() {
                    match foreign::announcement(&frame, mac) {
                        Some(a) if a.ip == vip => heard.push((Instant::now(), a)),
                        _ => {}
                    }
                }
            }
            heard
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops asking; everything heard, in order.
    pub fn finish(mut self) -> Vec<Heard> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Asker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `a` answers a question (rather than announcing unasked).
pub fn is_answer(a: &Announcement) -> bool {
    matches!(
        a.kind,
        Kind::ArpReply | Kind::NeighborAdvert { solicited: true }
    )
}

/// When `mac` answered, in order.
pub fn answers_from(heard: &[Heard], mac: MacAddr) -> Vec<Instant> {
    heard
        .iter()
        .filter(|(_, a)| a.mac == mac && is_answer(a))
        .map(|(t, _)| *t)
        .collect()
}

/// When `mac` first announced unasked, if it did.
pub fn first_unasked_from(heard: &[Heard], mac: MacAddr) -> Option<Instant> {
    heard
        .iter()
        .find(|(_, a)| a.mac == mac && !is_answer(a))
        .map(|(t, _)| *t)
}

/// A handover of `vip` from `old` to `new`, which starts announcing
/// `takeover_after` into the stop; `slack` is what queues and thread hops
/// may add.
pub struct Expected {
    pub vip: IpAddr,
    pub old: MacAddr,
    pub new: MacAddr,
    pub takeover_after: Duration,
    pub slack: Duration,
}

impl Expected {
    /// Panics unless `report` and what the client `heard` show the old
    /// owner answering until the new owner's announcement, then no more,
    /// and the new owner answering afterwards. `start` is the stop.
    pub fn check(&self, report: &Report, heard: &[Heard], start: Instant) {
        assert_eq!((report.total, report.timed_out.len()), (1, 0), "{report:?}");
        let handed = report.handed_over[0];
        assert_eq!((handed.ip, handed.to), (self.vip, self.new), "{report:?}");
        let garp = first_unasked_from(heard, self.new).expect("the client heard the new owner");
        assert!(
            handed.after >= self.takeover_after && start + handed.after <= garp + self.slack,
            "handed over {:?} after the start, the new owner announced {:?} after it",
            handed.after,
            garp - start
        );
        let from_old = answers_from(heard, self.old);
        assert!(
            from_old
                .iter()
                .any(|t| *t > start + self.takeover_after / 2 && *t < garp),
            "the old owner kept answering while nobody else did: {from_old:?}"
        );
        let end = start + report.elapsed;
        assert!(
            from_old.iter().all(|t| *t <= end + self.slack),
            "the old owner answered {:?} after handing over",
            from_old.last().map(|t| *t - end)
        );
        assert!(
            answers_from(heard, self.new).iter().any(|t| *t > end),
            "the new owner answers afterwards"
        );
    }
}
