//! Shared by the handover tests over the in-memory segment and over real
//! raw sockets in namespaces: a client that keeps asking for an address
//! and records every announcement of it it receives.

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
