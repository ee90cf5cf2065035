//! Make-before-break on a graceful stop, as pure bookkeeping: which
//! (address, interface) pairs this node must still answer for.
//!
//! On SIGTERM the speaker freezes what it announces, leaves gossip, and
//! keeps answering each pair until it sees another station announce that
//! address on that interface ([`Held::HandingOver`] observations): the new
//! owner's gratuitous ARP or unsolicited advertisement, sent the moment
//! the new owner learns of our departure. Then it stops answering that
//! pair at once, so the two never answer together for longer than a
//! frame's flight. Whatever is not handed over by the deadline is dropped
//! then ([`Report::timed_out`]): answering a little longer is better than
//! leaving the address unanswered, but a stop must end.
//!
//! An address counts as handed over when every interface it was announced
//! on has seen its new owner.
//!
//! ```
//! use ferrolb_speaker::announcer::handover::Handover;
//! use ferrolb_speaker::announcer::{Held, Observation};
//! use ferrolb_speaker::wire::foreign::{Announcement, Kind};
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now();
//! let vip = "192.0.2.10".parse().unwrap();
//! let mut h = Handover::new([(vip, "eth0".to_string())], t0, Duration::from_secs(3));
//! let seen = Observation {
//!     link: "eth0".into(),
//!     announcement: Announcement { ip: vip, mac: "02:00:00:00:00:0b".parse().unwrap(), kind: Kind::GratuitousArp },
//!     held: Held::HandingOver,
//!     at: t0 + Duration::from_millis(40),
//! };
//! assert!(h.observe(&seen));
//! assert!(h.is_done() && h.answering().is_empty());
//! let report = h.finish(t0 + Duration::from_millis(45));
//! assert_eq!((report.handed_over.len(), report.total, report.timed_out.len()), (1, 1, 0));
//! ```

use super::{Held, Observation};
use crate::wire::MacAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The pairs still answered on a graceful stop, and who took the others.
#[derive(Debug, Clone)]
pub struct Handover {
    started: Instant,
    deadline: Instant,
    /// Per address: the interfaces it is still answered on.
    pending: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Addresses handed over on every interface: the last new owner seen
    /// and when, after `started`.
    handed: BTreeMap<IpAddr, (MacAddr, Duration)>,
}

/// An address handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOver {
    /// The address.
    pub ip: IpAddr,
    /// The MAC that announced it (on the last interface to see one).
    pub to: MacAddr,
    /// From the start of the handover to that announcement.
    pub after: Duration,
}

/// How a handover ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Addresses this node was announcing when it stopped.
    pub total: usize,
    /// Those whose new owner was seen, in address order.
    pub handed_over: Vec<HandedOver>,
    /// Those still answered at the end, in address order, each with the
    /// interfaces on which no new owner was seen.
    pub timed_out: Vec<(IpAddr, Vec<String>)>,
    /// From the start to the end of the handover.
    pub elapsed: Duration,
}

impl Handover {
    /// Starts handing over `pairs` (address, interface) at `now`, until
    /// `now + bound` at the latest.
    pub fn new<I>(pairs: I, now: Instant, bound: Duration) -> Self
    where
        I: IntoIterator<Item = (IpAddr, String)>,
    {
        let mut pending: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for (ip, link) in pairs {
            pending.entry(ip).or_default().insert(link);
        }
        Self {
            started: now,
            deadline: now + bound,
            pending,
            handed: BTreeMap::new(),
        }
    }

    /// Takes note of another station's announcement. Returns whether a
    /// pair is handed over by it, so the caller withdraws it
    /// ([`answering`](Self::answering) no longer lists it). Only
    /// announcements made while handing over count: one seen before the
    /// stop ([`Held::Owned`]) is no answer to our departure.
    pub fn observe(&mut self, seen: &Observation) -> bool {
        if seen.held != Held::HandingOver {
            return false;
        }
        let ip = seen.ip();
        let Some(links) = self.pending.get_mut(&ip) else {
            return false;
        };
        if !links.remove(&seen.link) {
            return false;
        }
        if links.is_empty() {
            self.pending.remove(&ip);
            let after = seen.at.saturating_duration_since(self.started);
            self.handed.insert(ip, (seen.announcement.mac, after));
        }
        true
    }

    /// The (address, interface) pairs still to answer for.
    pub fn answering(&self) -> Vec<(IpAddr, String)> {
        self.pending
            .iter()
            .flat_map(|(ip, links)| links.iter().map(|l| (*ip, l.clone())))
            .collect()
    }

    /// Whether every pair is handed over.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the handover gives up on what is left.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether it is over at `now`: all handed over, or the deadline passed.
    pub fn is_over(&self, now: Instant) -> bool {
        self.is_done() || now >= self.deadline
    }

    /// The result at `now`: what was handed over, and what was not.
    pub fn finish(self, now: Instant) -> Report {
        Report {
            total: self.handed.len() + self.pending.len(),
            handed_over: self
                .handed
                .into_iter()
                .map(|(ip, (to, after))| HandedOver { ip, to, after })
                .collect(),
            timed_out: self
                .pending
                .into_iter()
                .map(|(ip, links)| (ip, links.into_iter().collect()))
                .collect(),
            elapsed: now.saturating_duration_since(self.started),
        }
    }
}

impl Report {
    /// The addresses not handed over.
    pub fn timed_out_ips(&self) -> Vec<IpAddr> {
        self.timed_out.iter().map(|(ip, _)| *ip).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::foreign::{Announcement, Kind};

    const THEIRS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
    const BOUND: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pair(s: &str, link: &str) -> (IpAddr, String) {
        (ip(s), link.to_string())
    }

    fn seen(s: &str, link: &str, held: Held, at: Instant) -> Observation {
        Observation {
            link: link.into(),
            announcement: Announcement {
                ip: ip(s),
                mac: THEIRS,
                kind: Kind::GratuitousArp,
            },
            held,
            at,
        }
    }

    #[test]
    fn each_address_stops_being_answered_when_its_new_owner_is_seen() {
        let t0 = Instant::now();
        let mut h = Handover::new(
            [
                pair("192.0.2.10", "eth0"),
                pair("192.0.2.11", "eth0"),
                pair("2001:db8::10", "eth0"),
            ],
            t0,
            BOUND,
        );
        assert_eq!(h.answering().len(), 3);
        assert!(h.observe(&seen("192.0.2.11", "eth0", Held::HandingOver, t0 + ms(30))));
        assert_eq!(
            h.answering(),
            [pair("192.0.2.10", "eth0"), pair("2001:db8::10", "eth0")]
        );
        assert!(!h.is_over(t0 + ms(31)));
        assert!(h.observe(&seen(
            "2001:db8::10",
            "eth0",
            Held::HandingOver,
            t0 + ms(35)
        )));
        assert!(h.observe(&seen("192.0.2.10", "eth0", Held::HandingOver, t0 + ms(40))));
        assert!(h.is_done() && h.is_over(t0 + ms(41)));
        let r = h.finish(t0 + ms(41));
        assert_eq!(r.total, 3);
        assert!(r.timed_out.is_empty());
        let after: Vec<(IpAddr, Duration)> =
            r.handed_over.iter().map(|h| (h.ip, h.after)).collect();
        assert_eq!(
            after,
            [
                (ip("192.0.2.10"), ms(40)),
                (ip("192.0.2.11"), ms(30)),
                (ip("2001:db8::10"), ms(35)),
            ]
        );
        assert_eq!(r.elapsed, ms(41));
    }

    #[test]
    fn repeats_unknown_addresses_and_other_interfaces_change_nothing() {
        let t0 = Instant::now();
        let mut h = Handover::new([pair("192.0.2.10", "eth0")], t0, BOUND);
        assert!(!h.observe(&seen("192.0.2.99", "eth0", Held::HandingOver, t0)));
        assert!(!h.observe(&seen("192.0.2.10", "eth1", Held::HandingOver, t0)));
        assert_eq!(h.answering(), [pair("192.0.2.10", "eth0")]);
        assert!(h.observe(&seen("192.0.2.10", "eth0", Held::HandingOver, t0)));
        assert!(!h.observe(&seen("192.0.2.10", "eth0", Held::HandingOver, t0)));
    }

    #[test]
    fn an_announcement_seen_before_the_stop_is_no_handover() {
        let t0 = Instant::now();
        let mut h = Handover::new([pair("192.0.2.10", "eth0")], t0, BOUND);
        for held in [Held::Owned, Held::Withdrawn] {
            assert!(
                !h.observe(&seen("192.0.2.10", "eth0", held, t0)),
                "{held:?}"
            );
        }
        assert!(!h.is_done());
    }

    #[test]
    fn an_address_on_two_interfaces_is_handed_over_when_both_saw_the_new_owner() {
        let t0 = Instant::now();
        let mut h = Handover::new(
            [pair("192.0.2.10", "eth0"), pair("192.0.2.10", "eth1")],
            t0,
            BOUND,
        );
        assert!(h.observe(&seen("192.0.2.10", "eth1", Held::HandingOver, t0 + ms(5))));
        assert_eq!(h.answering(), [pair("192.0.2.10", "eth0")]);
        let r = h.clone().finish(t0 + BOUND);
        assert_eq!(r.timed_out, [(ip("192.0.2.10"), vec!["eth0".to_string()])]);
        assert!(h.observe(&seen("192.0.2.10", "eth0", Held::HandingOver, t0 + ms(9))));
        let r = h.finish(t0 + ms(10));
        assert_eq!(r.handed_over.len(), 1);
        assert_eq!(r.handed_over[0].after, ms(9));
    }

    #[test]
    fn what_is_left_at_the_deadline_times_out() {
        let t0 = Instant::now();
        let mut h = Handover::new(
            [pair("192.0.2.10", "eth0"), pair("192.0.2.11", "eth0")],
            t0,
            BOUND,
        );
        assert_eq!(h.deadline(), t0 + BOUND);
        h.observe(&seen("192.0.2.10", "eth0", Held::HandingOver, t0 + ms(20)));
        assert!(!h.is_over(t0 + BOUND - ms(1)));
        assert!(h.is_over(t0 + BOUND));
        let r = h.finish(t0 + BOUND);
        assert_eq!((r.total, r.handed_over.len()), (2, 1));
        assert_eq!(r.timed_out_ips(), [ip("192.0.2.11")]);
        assert_eq!(r.elapsed, BOUND);
    }

    proptest::proptest! {
        /// Whatever observations arrive, in whatever order: what is
        /// answered only shrinks, every pair withdrawn was seen handed
        /// over, and at the end each address is handed over exactly when
        /// every interface it had saw a handing-over announcement.
        #[test]
        fn only_seen_handovers_withdraw_and_the_report_adds_up(
            pairs in proptest::collection::btree_set((0u8..6, 0u8..3), 0..12),
            seen_list in proptest::collection::vec((0u8..8, 0u8..4, 0u8..3, 0u64..4000), 0..30),
        ) {
            let t0 = Instant::now();
            let addr = |i: u8| IpAddr::from([192, 0, 2, i]);
            let link = |l: u8| format!("eth{l}");
            let initial: BTreeSet<(IpAddr, String)> =
                pairs.iter().map(|(i, l)| (addr(*i), link(*l))).collect();
            let mut h = Handover::new(initial.clone(), t0, BOUND);
            let mut handed_pairs = BTreeSet::new();
            let mut before: BTreeSet<(IpAddr, String)> = h.answering().into_iter().collect();
            proptest::prop_assert_eq!(&before, &initial);
            for (i, l, held, at) in seen_list {
                let held = [Held::Owned, Held::HandingOver, Held::Withdrawn][usize::from(held)];
                let obs = seen(&addr(i).to_string(), &link(l), held, t0 + ms(at));
                let changed = h.observe(&obs);
                let now: BTreeSet<(IpAddr, String)> = h.answering().into_iter().collect();
                proptest::prop_assert!(now.is_subset(&before));
                let gone: Vec<_> = before.difference(&now).cloned().collect();
                proptest::prop_assert_eq!(changed, !gone.is_empty());
                if changed {
                    proptest::prop_assert_eq!(held, Held::HandingOver);
                    proptest::prop_assert_eq!(&gone, &vec![(addr(i), link(l))]);
                    handed_pairs.insert((addr(i), link(l)));
                }
                before = now;
            }
            let r = h.finish(t0 + BOUND);
            let ips: BTreeSet<IpAddr> = initial.iter().map(|(ip, _)| *ip).collect();
            proptest::prop_assert_eq!(r.total, ips.len());
            proptest::prop_assert_eq!(r.handed_over.len() + r.timed_out.len(), ips.len());
            for ip in ips {
                let all_seen = initial
                    .iter()
                    .filter(|(a, _)| *a == ip)
                    .all(|p| handed_pairs.contains(p));
                proptest::prop_assert_eq!(r.handed_over.iter().any(|x| x.ip == ip), all_seen);
            }
        }
    }

    #[test]
    fn nothing_to_hand_over_is_done_at_once() {
        let t0 = Instant::now();
        let h = Handover::new(Vec::new(), t0, BOUND);
        assert!(h.is_done() && h.is_over(t0));
        assert_eq!(h.finish(t0), Report::default());
    }
}
