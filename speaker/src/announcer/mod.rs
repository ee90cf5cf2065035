//! What this node announces, and when.
//!
//! The [`Announcer`] is pure: no sockets, no clock. The daemon tells it the
//! (IP, interface) pairs this node owns ([`Announcer::set_desired`], from the
//! election) and each interface's MAC ([`Announcer::set_link`]); the I/O
//! shell hands it received frames ([`Announcer::handle`]) and calls
//! [`Announcer::poll`] at [`Announcer::next_deadline`]. Every method that
//! needs the time takes it as an argument, so tests drive a fake clock.
//!
//! On taking an address it announces at once, then `repeats` more times
//! `spacing` apart (default 3 more, 1.1 s apart). The spacing is just over
//! Linux's neighbour `locktime` (1 s): a host ignores a second change of the
//! same entry within that time, so faster repeats would be wasted exactly
//! when a previous owner's answer raced ours. An optional periodic
//! re-announce keeps switch forwarding tables from ageing out. On losing
//! an address it stops answering at once and its pending announcements are
//! cancelled.
//!
//! [`Announcer::receive`] also reports another station's announcement of
//! an address this node owns, hands over or has just withdrawn
//! ([`Observation`]). Another station announcing an owned address gets
//! this node's announcement again, rate-limited (`defend`), and owned
//! addresses can be probed for silent duplicates (`probe`,
//! [`Config::probe`]). On a graceful stop [`Announcer::hand_over`] stops
//! every announcement but keeps answering, until the daemon sees the new
//! owners' announcements and withdraws each address ([`handover`]).
//!
//! ```
//! use ferrolb_speaker::announcer::{Announcer, Config};
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now();
//! let mut announcer = Announcer::new(Config::default());
//! announcer.set_link("eth0", "02:00:5e:10:00:01".parse().unwrap(), t0);
//! announcer.set_desired([("192.0.2.10".parse().unwrap(), "eth0")], t0);
//! assert_eq!(announcer.poll(t0).len(), 2); // gratuitous request and reply
//! assert_eq!(announcer.next_deadline(), Some(t0 + Duration::from_millis(1100)));
//! ```

mod counters;
mod defend;
pub mod handover;
mod observe;
mod probe;
mod schedule;

pub use counters::{Counters, IpCounts, PerIp, PerProtocol, Protocol};
pub use defend::{MAX_GAP as REASSERT_MAX_GAP, RESET as REASSERT_RESET};
pub use observe::{Held, Observation, RECENTLY_WITHDRAWN};

use crate::wire::ethernet::{EtherType, EthernetRepr};
use crate::wire::respond::{arp_reply, ndp_reply, Interface};
use crate::wire::{self, foreign, ipv6, ArpFrame, MacAddr, NdpFrame};
use defend::Defense;
use observe::Withdrawn;
use probe::Prober;
use schedule::Schedule;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How the announcer repeats its announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Announcements after the first one on takeover (default 3).
    pub repeats: u32,
    /// Time between announcements on takeover (default 1.1 s, just over
    /// Linux's 1 s neighbour locktime).
    pub spacing: Duration,
    /// Re-announce every owned address this often after the takeover
    /// burst, for switches whose tables age out (default off).
    pub reannounce: Option<Duration>,
    /// Probe every owned address about this often for a silent duplicate
    /// (RFC 5227 probe, NDP duplicate address detection; `probe`). Off in
    /// `Config::default()`, so the announcer alone sends only what it is
    /// asked to; the speaker's `--conflict-probe-interval` turns it on.
    pub probe: Option<Duration>,
    /// At most this many probes a second per announcer (per interface in
    /// the speaker).
    pub probe_rate: u32,
}

/// [`Config::probe_rate`] unless told otherwise.
pub const DEFAULT_PROBE_RATE: u32 = 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            repeats: 3,
            spacing: Duration::from_millis(1100),
            reannounce: None,
            probe: None,
            probe_rate: DEFAULT_PROBE_RATE,
        }
    }
}

/// A frame the announcer wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame {
    /// ARP: a reply or a gratuitous announcement.
    Arp(ArpFrame),
    /// NDP: a solicited or unsolicited Neighbor Advertisement.
    Ndp(NdpFrame),
}

impl Frame {
    /// The frame as bytes ready for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Arp(frame) => frame.to_bytes(),
            Self::Ndp(frame) => frame.to_bytes(),
        }
    }

    /// The protocol, for metrics and logs.
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Arp(_) => Protocol::Arp,
            Self::Ndp(_) => Protocol::Ndp,
        }
    }

    /// The address the frame claims for this node.
    pub fn claimed_ip(&self) -> IpAddr {
        match self {
            Self::Arp(frame) => IpAddr::V4(frame.arp.sender_ip),
            Self::Ndp(frame) => IpAddr::V6(frame.ndp.target()),
        }
    }
}

/// Why a frame is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// It answers a request for an owned address.
    Reply,
    /// It announces an owned address unasked (gratuitous ARP,
    /// unsolicited neighbor advertisement).
    Announcement,
    /// It asks whether another station holds an owned address (ARP probe
    /// from `0.0.0.0`, Neighbor Solicitation from `::`); it claims
    /// nothing.
    Probe,
}

/// A frame to send on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The interface name.
    pub link: String,
    /// The frame.
    pub frame: Frame,
    /// Why it is sent.
    pub kind: Kind,
}

/// An owned address on an interface: the unit that gets announced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Claim {
    link: String,
    ip: IpAddr,
}

/// The announcer's state: links, owned addresses, pending announcements.
#[derive(Debug)]
pub struct Announcer {
    config: Config,
    /// Interface name -> its MAC. Addresses on an interface not listed here
    /// are remembered but neither answered nor announced until it appears.
    links: BTreeMap<String, MacAddr>,
    /// Interface name -> the addresses this node owns there.
    desired: BTreeMap<String, BTreeSet<IpAddr>>,
    schedule: Schedule<Claim>,
    /// Handing over on a graceful stop: answer, never announce.
    handing_over: bool,
    /// Pairs withdrawn lately, whose other announcers are still reported.
    withdrawn: Withdrawn,
    /// Re-announcements owed to addresses other stations announced.
    defense: Defense,
    /// Probes for silent duplicates.
    prober: Prober,
    counters: Counters,
    per_ip: PerIp,
}

/// What [`Announcer::receive`] makes of a frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// The answer to send, if the frame asked about an owned address.
    pub reply: Option<Outgoing>,
    /// Another station's announcement of an address owned, handed over
    /// or withdrawn lately on that interface.
    pub seen: Option<Observation>,
}

/// A received ARP or NDP frame, parsed once for answering and observing.
enum Parsed {
    Arp(ArpFrame),
    Ndp(NdpFrame),
}

impl Announcer {
    /// An announcer with no links and no addresses.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            links: BTreeMap::new(),
            desired: BTreeMap::new(),
            schedule: Schedule::new(),
            handing_over: false,
            withdrawn: Withdrawn::default(),
            defense: Defense::new(),
            prober: Prober::new(config.probe, config.probe_rate),
            counters: Counters::default(),
            per_ip: PerIp::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds interface `name` with `mac`, or changes its MAC. Addresses it
    /// owns start a fresh takeover schedule at `now`: hosts must learn the
    /// new MAC just as after a failover.
    pub fn set_link(&mut self, name: &str, mac: MacAddr, now: Instant) {
        if self.links.insert(name.to_owned(), mac) == Some(mac) || self.handing_over {
            return;
        }
        for ip in self.desired.get(name).into_iter().flatten() {
            let c = claim(name, *ip);
            self.schedule.set(c.clone(), now, 0);
            self.prober.claim(&c, now);
        }
    }

    /// Replaces the set of (address, interface) pairs this node owns.
    /// Newly owned addresses are announced from `now` (unless handing
    /// over); addresses no longer owned stop being answered at once, their
    /// announcements are cancelled and other stations' announcements of
    /// them are reported for [`RECENTLY_WITHDRAWN`]; addresses still owned
    /// keep their schedule.
    pub fn set_desired<I, S>(&mut self, desired: I, now: Instant)
    where
        I: IntoIterator<Item = (IpAddr, S)>,
        S: AsRef<str>,
    {
        let mut next: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for (ip, link) in desired {
            next.entry(link.as_ref().to_owned()).or_default().insert(ip);
        }
        for (link, ips) in &self.desired {
            let kept = next.get(link);
            for ip in ips
                .iter()
                .filter(|ip| !kept.is_some_and(|k| k.contains(ip)))
            {
                let c = claim(link, *ip);
                self.schedule.cancel(&c);
                self.defense.forget(&c);
                self.prober.forget(&c);
                self.withdrawn.insert(link, *ip, now);
            }
        }
        self.withdrawn.expire(now);
        for (link, ips) in &next {
            let had = self.desired.get(link);
            for ip in ips.iter().filter(|ip| !had.is_some_and(|h| h.contains(ip))) {
                self.withdrawn.remove(link, *ip);
                if self.links.contains_key(link) && !self.handing_over {
                    let c = claim(link, *ip);
                    self.schedule.set(c.clone(), now, 0);
                    self.prober.claim(&c, now);
                }
            }
        }
        self.desired = next;
    }

    /// Starts handing over on a graceful stop: every pending and future
    /// announcement is cancelled (announcing again would take the address
    /// back from its new owner), while questions about owned addresses are
    /// still answered until [`set_desired`](Self::set_desired) withdraws
    /// them. Other stations' announcements of them are reported as
    /// [`Held::HandingOver`]. There is no way back: a speaker handing over
    /// is stopping.
    pub fn hand_over(&mut self) {
        self.handing_over = true;
        for (link, ips) in &self.desired {
            for ip in ips {
                self.schedule.cancel(&claim(link, *ip));
            }
        }
        self.defense.clear();
        self.prober.clear();
    }

    /// Whether [`hand_over`](Self::hand_over) was called.
    pub fn handing_over(&self) -> bool {
        self.handing_over
    }

    /// How many withdrawn (address, interface) pairs are still watched
    /// for their new announcers.
    pub fn recently_withdrawn(&self) -> usize {
        self.withdrawn.len()
    }

    /// Whether this node answers for `ip` on `link` right now.
    pub fn owns(&self, link: &str, ip: IpAddr) -> bool {
        self.links.contains_key(link) && self.desired.get(link).is_some_and(|s| s.contains(&ip))
    }

    /// The solicited-node multicast groups `link` must be a member of to
    /// hear solicitations for the IPv6 addresses it owns (RFC 4861 7.2.1).
    pub fn solicited_node_groups(&self, link: &str) -> BTreeSet<Ipv6Addr> {
        self.desired
            .get(link)
            .into_iter()
            .flatten()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(ipv6::solicited_node(v6)),
                IpAddr::V4(_) => None,
            })
            .collect()
    }

    /// The answer to a frame received on `link`, if it deserves one.
    /// Malformed ARP/NDP frames are counted and dropped; anything else not
    /// asking about an owned address is counted as ignored.
    pub fn handle(&mut self, link: &str, frame: &[u8]) -> Option<Outgoing> {
        let parsed = self.parse(frame)?;
        self.reply(link, &parsed)
    }

    /// [`handle`](Self::handle), and another station's announcement the
    /// frame carries ([`foreign::announcement`]) if its address is owned,
    /// handed over or withdrawn lately on `link` ([`Held`]; at `now`).
    pub fn receive(&mut self, link: &str, frame: &[u8], now: Instant) -> Received {
        let Some(parsed) = self.parse(frame) else {
            return Received::default();
        };
        Received {
            reply: self.reply(link, &parsed),
            seen: self.observe(link, &parsed, now),
        }
    }

    /// The frame as ARP or NDP; `None` (counted) when it is neither or
    /// malformed.
    fn parse(&mut self, frame: &[u8]) -> Option<Parsed> {
        let parsed = match EthernetRepr::parse(frame).map(|(eth, _)| eth.ethertype) {
            Ok(EtherType::ARP) => ArpFrame::parse(frame).map(|f| Some(Parsed::Arp(f))),
            Ok(EtherType::IPV6) => match NdpFrame::parse(frame) {
                Ok(ndp) => Ok(Some(Parsed::Ndp(ndp))),
                // Other IPv6 traffic is not ours to judge, not malformed.
                Err(wire::Error::NextHeader(_) | wire::Error::IcmpType(_)) => Ok(None),
                Err(e) => Err(e),
            },
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        match parsed {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                self.counters.frames_ignored += 1;
                None
            }
            Err(_) => {
                self.counters.frames_malformed += 1;
                None
            }
        }
    }

    fn reply(&mut self, link: &str, parsed: &Parsed) -> Option<Outgoing> {
        let answer = self.links.get(link).and_then(|&mac| {
            let empty = BTreeSet::new();
            let iface = Interface {
                mac,
                owned: self.desired.get(link).unwrap_or(&empty),
            };
            match parsed {
                Parsed::Arp(arp) => arp_reply(arp, &iface).map(Frame::Arp),
                Parsed::Ndp(ndp) => ndp_reply(ndp, &iface).map(Frame::Ndp),
            }
        });
        match answer {
            Some(frame) => Some(self.count(Outgoing {
                link: link.to_owned(),
                frame,
                kind: Kind::Reply,
            })),
            None => {
                self.counters.frames_ignored += 1;
                None
            }
        }
    }

    fn observe(&mut self, link: &str, parsed: &Parsed, now: Instant) -> Option<Observation> {
        let own = *self.links.get(link)?;
        let announcement = match parsed {
            Parsed::Arp(arp) => foreign::of_arp(arp, own),
            Parsed::Ndp(ndp) => foreign::of_ndp(ndp, own),
        }?;
        let ip = announcement.ip;
        let held = if self.owns(link, ip) {
            if self.handing_over {
                Held::HandingOver
            } else {
                Held::Owned
            }
        } else if self.withdrawn.recent(link, ip, now) {
            Held::Withdrawn
        } else {
            return None;
        };
        if held == Held::Owned {
            let protocol = match parsed {
                Parsed::Arp(_) => Protocol::Arp,
                Parsed::Ndp(_) => Protocol::Ndp,
            };
            self.counters.foreign_announcements.add(protocol, 1);
            let c = claim(link, ip);
            // A takeover burst re-announces anyway, and what is heard
            // during it is most likely the previous owner letting go.
            let in_burst = self
                .schedule
                .sent(&c)
                .is_some_and(|sent| sent <= self.config.repeats);
            if !in_burst {
                self.defense.seen(&c, now, self.config.spacing);
            }
        }
        Some(Observation {
            link: link.to_owned(),
            announcement,
            held,
            at: now,
        })
    }

    /// When [`poll`](Self::poll) next has something to send.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.schedule.next(),
            self.defense.next(),
            self.prober.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The announcements due at `now`. Each due address is announced once
    /// even if the poll is late, and its next announcement is `spacing`
    /// (or the re-announce interval) after `now`, so hosts never see two
    /// announcements closer than the locktime.
    pub fn poll(&mut self, now: Instant) -> Vec<Outgoing> {
        let mut out = Vec::new();
        while let Some((claim, sent)) = self.schedule.pop_due(now) {
            let Some(&mac) = self.links.get(&claim.link) else {
                continue;
            };
            for frame in announcement(mac, claim.ip) {
                out.push(self.count(Outgoing {
                    link: claim.link.clone(),
                    frame,
                    kind: Kind::Announcement,
                }));
            }
            let sent = sent.saturating_add(1);
            if sent <= self.config.repeats {
                self.schedule.set(claim, now + self.config.spacing, sent);
            } else if let Some(every) = self.config.reannounce {
                self.schedule.set(claim, now + every, sent);
            }
        }
        while let Some(claim) = self.defense.pop_due(now) {
            let Some(&mac) = self.links.get(&claim.link) else {
                continue;
            };
            for frame in announcement(mac, claim.ip) {
                self.counters.reasserted.add(frame.protocol(), 1);
                out.push(self.count(Outgoing {
                    link: claim.link.clone(),
                    frame,
                    kind: Kind::Announcement,
                }));
            }
        }
        while let Some(claim) = self.prober.pop_due(now) {
            let Some(&mac) = self.links.get(&claim.link) else {
                continue;
            };
            out.push(self.count(Outgoing {
                link: claim.link.clone(),
                frame: probe(mac, claim.ip),
                kind: Kind::Probe,
            }));
        }
        out
    }

    /// How many addresses have an announcement pending (takeover repeats
    /// and periodic re-announcements).
    pub fn pending(&self) -> usize {
        self.schedule.len()
    }

    /// How many addresses have a re-announcement pending because another
    /// station announced them.
    pub fn reassertions_pending(&self) -> usize {
        self.defense.pending()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The I/O shell wrote `out` to the wire: an answer or announcement
    /// sent for its address (MetalLB counts both only once written; a
    /// failed write is the shell's to count).
    pub fn sent(&mut self, out: &Outgoing) {
        let ip = out.frame.claimed_ip();
        match out.kind {
            Kind::Reply => self.per_ip.at(ip).responses_sent += 1,
            Kind::Announcement => self.per_ip.at(ip).gratuitous_sent += 1,
            // A probe claims nothing; MetalLB has no count for it.
            Kind::Probe => {}
        }
    }

    /// The per-address counts since the last call, emptied.
    pub fn take_per_ip(&mut self) -> PerIp {
        std::mem::take(&mut self.per_ip)
    }

    /// Counts a frame handed out to be sent: the per-protocol totals, and
    /// an answer as a request received for its address.
    fn count(&mut self, out: Outgoing) -> Outgoing {
        let protocol = out.frame.protocol();
        match out.kind {
            Kind::Reply => {
                self.counters.requests_answered.add(protocol, 1);
                self.per_ip.at(out.frame.claimed_ip()).requests_received += 1;
            }
            Kind::Announcement => self.counters.gratuitous_sent.add(protocol, 1),
            Kind::Probe => self.counters.probes_sent.add(protocol, 1),
        }
        out
    }
}

fn claim(link: &str, ip: IpAddr) -> Claim {
    Claim {
        link: link.to_owned(),
        ip,
    }
}

/// The frames that announce `ip` at `mac`. IPv4 sends both gratuitous
/// forms, as MetalLB does: most hosts update from the request, some
/// (older Windows, some routers) only from a reply. IPv6 sends one
/// unsolicited advertisement with override set.
fn announcement(mac: MacAddr, ip: IpAddr) -> Vec<Frame> {
    match ip {
        IpAddr::V4(v4) => vec![
            Frame::Arp(ArpFrame::gratuitous_request(mac, v4)),
            Frame::Arp(ArpFrame::gratuitous_reply(mac, v4)),
        ],
        IpAddr::V6(v6) => vec![Frame::Ndp(NdpFrame::unsolicited_advert(mac, v6))],
    }
}

/// The probe asking whether another station holds `ip`: an ARP request
/// from `0.0.0.0` (RFC 5227 2.1.1) or a Neighbor Solicitation from `::` to
/// the solicited-node group (duplicate address detection, RFC 4862
/// 5.4.2). Neither updates a neighbour cache.
fn probe(mac: MacAddr, ip: IpAddr) -> Frame {
    match ip {
        IpAddr::V4(v4) => Frame::Arp(ArpFrame::request(mac, Ipv4Addr::UNSPECIFIED, v4)),
        IpAddr::V6(v6) => Frame::Ndp(NdpFrame::solicitation(mac, Ipv6Addr::UNSPECIFIED, v6)),
    }
}
