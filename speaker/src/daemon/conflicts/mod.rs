//! A second announcer of an IP this node owns (issue 15): which of the
//! transport's observations make a conflict, one report per episode, and
//! when an episode ends. Pure: the time is passed in.
//!
//! An **episode** is one foreign MAC announcing one owned IP (an ARP
//! reply, a gratuitous ARP, a Neighbor Advertisement with override, or
//! the answer to this node's probe). It starts with the first such frame
//! and ends when the MAC has not announced the IP for
//! [`Settings::forget_after`] (5 minutes by default); a later frame starts
//! a new one. Each episode is reported once ([`Report`]: a warning line,
//! the `AddressConflict` Event on each Service holding the IP that no
//! other episode with that MAC reported yet, the metrics), however many
//! frames it brings.
//!
//! Two ordinary moves look like a conflict for a moment and are not
//! reported:
//!
//! - **This node is the old owner.** The new owner announces as soon as
//!   its view elects it; this node's view may follow a little later (the
//!   gossip that changed the election reaches nodes at slightly different
//!   times). So a sighting is reported only [`Settings::settle`] later,
//!   and only if this node still announces the IP on that interface then.
//! - **This node is the new owner.** The previous owner answers until it
//!   sees this node's announcements (`--shutdown-handover-timeout` at
//!   most), and a promiscuous interface sees those answers. So sightings
//!   within [`Settings::grace`] of this node taking the IP are ignored;
//!   a station that keeps announcing is reported by its later frames, or
//!   found by the next probe.
//!
//! Memory is bounded: at most [`MAX_MACS_PER_IP`] episodes per IP and
//! [`MAX_EPISODES`] in all (a station forging random MACs cannot grow the
//! table or the Events); frames beyond that are still counted in
//! `ferrolb_speaker_foreign_announcements_total`.

use crate::announcer::{Held, Observation};
use crate::wire::foreign::Kind;
use crate::wire::MacAddr;
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Decision, Delta};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most this many foreign MACs are followed per IP.
pub const MAX_MACS_PER_IP: usize = 4;
/// At most this many episodes are followed in all.
pub const MAX_EPISODES: usize = 1024;

/// The timings of [`Conflicts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a sighting waits before it is reported, during which an
    /// ordinary move (this node the old owner) withdraws the IP here.
    pub settle: Duration,
    /// Sightings within this of this node taking the IP are the previous
    /// owner letting go, not a conflict.
    pub grace: Duration,
    /// An episode ends when its MAC has not announced the IP this long
    /// (`--conflict-forget-after`).
    pub forget_after: Duration,
}

/// [`Settings::forget_after`] unless told otherwise.
pub const FORGET_AFTER: Duration = Duration::from_secs(300);

impl Default for Settings {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(5),
            grace: Duration::from_secs(5),
            forget_after: FORGET_AFTER,
        }
    }
}

/// What [`Conflicts::observe`] made of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Not a conflict: `why`.
    Ignored(&'static str),
    /// The first frame of an episode: reported after the settle time if
    /// the IP is still announced here.
    Started,
    /// Another frame of a known episode.
    Continued,
}

/// One foreign MAC announcing one owned IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// Where it was first seen.
    pub link: String,
    /// The form of its first frame.
    pub kind: Kind,
    /// Its first frame.
    pub first_seen: Instant,
    /// Its last frame.
    pub last_seen: Instant,
    /// Frames seen.
    pub frames: u64,
    reported: bool,
}

/// An episode to report: the warning line, the Events and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The IP.
    pub ip: IpAddr,
    /// The other station's MAC.
    pub mac: MacAddr,
    /// The interface it was seen on.
    pub link: String,
    /// The form of its first frame.
    pub kind: Kind,
    /// Frames seen so far.
    pub frames: u64,
    /// Every Service holding the IP (a shared IP has several).
    pub services: Vec<ObjectKey>,
    /// Those to send an Event to: not already told about this MAC by an
    /// episode of another of their IPs (a dual-stack Service whose both
    /// IPs are claimed by one device gets one Event).
    pub notify: Vec<ObjectKey>,
}

/// A reported episode that ended: its MAC was quiet for
/// [`Settings::forget_after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The IP.
    pub ip: IpAddr,
    /// The other station's MAC.
    pub mac: MacAddr,
    /// The interface it was first seen on.
    pub link: String,
    /// Frames seen.
    pub frames: u64,
    /// From its first frame to its last.
    pub lasted: Duration,
}

/// What came due in [`Conflicts::poll`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Episodes to report now.
    pub reports: Vec<Report>,
    /// Reported episodes that ended.
    pub ended: Vec<Ended>,
    /// Sightings dropped because this node let the IP go meanwhile (an
    /// ordinary move), as (IP, MAC).
    pub moved: Vec<(IpAddr, MacAddr)>,
}

impl Due {
    /// The IPs whose count of conflicts may have changed.
    pub fn touched(&self) -> BTreeSet<IpAddr> {
        self.reports
            .iter()
            .map(|r| r.ip)
            .chain(self.ended.iter().map(|e| e.ip))
            .collect()
    }
}

/// The episodes, and what this node announces (from the decision's
/// deltas).
#[derive(Debug, Default)]
pub struct Conflicts {
    settings: Settings,
    /// (IP, interface) pairs announced here, with since when.
    owned: HashMap<(IpAddr, String), Instant>,
    /// The Services this node owns, per IP.
    services_of: HashMap<IpAddr, BTreeSet<ObjectKey>>,
    /// Their IPs.
    ips_of: HashMap<ObjectKey, Vec<IpAddr>>,
    episodes: BTreeMap<(IpAddr, MacAddr), Episode>,
}

impl Conflicts {
    /// No episodes, nothing owned.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Follows what `me` announces from the decision's `delta`, seen at
    /// `now`.
    pub fn update(&mut self, me: &str, delta: &Delta, now: Instant) {
        for pair in &delta.withdrawn {
            self.owned.remove(pair);
        }
        for pair in &delta.announced {
            self.owned.insert(pair.clone(), now);
        }
        let mine = |d: &Option<Decision>| {
            d.as_ref()
                .filter(|d| d.owner() == Some(me))
                .map(|d| d.ips.clone())
        };
        for change in &delta.services {
            let key = &change.key;
            if let Some(ips) = mine(&change.before) {
                for ip in ips {
                    if let Some(keys) = self.services_of.get_mut(&ip) {
                        keys.remove(key);
                        if keys.is_empty() {
                            self.services_of.remove(&ip);
                        }
                    }
                }
                self.ips_of.remove(key);
            }
            if let Some(ips) = mine(&change.after) {
                for ip in &ips {
                    self.services_of.entry(*ip).or_default().insert(key.clone());
                }
                self.ips_of.insert(key.clone(), ips);
            }
        }
    }

    /// Takes in another station's announcement.
    pub fn observe(&mut self, seen: &Observation) -> Sighting {
        if seen.held != Held::Owned {
            return Sighting::Ignored("not owned here: a handover");
        }
        let (ip, mac) = (seen.ip(), seen.announcement.mac);
        let Some(since) = self.owned.get(&(ip, seen.link.clone())) else {
            return Sighting::Ignored("no longer announced here");
        };
        if let Some(e) = self.episodes.get_mut(&(ip, mac)) {
            e.last_seen = e.last_seen.max(seen.at);
            e.frames = e.frames.saturating_add(1);
            return Sighting::Continued;
        }
        if seen.at.saturating_duration_since(*since) < self.settings.grace {
            return Sighting::Ignored("this node took the IP moments ago");
        }
        let on_ip = self
            .episodes
            .range((ip, MacAddr::ZERO)..)
            .take_while(|((i, _), _)| *i == ip)
            .count();
        if on_ip >= MAX_MACS_PER_IP || self.episodes.len() >= MAX_EPISODES {
            return Sighting::Ignored("too many conflicts followed already");
        }
        self.episodes.insert(
            (ip, mac),
            Episode {
                link: seen.link.clone(),
                kind: seen.announcement.kind,
                first_seen: seen.at,
                last_seen: seen.at,
                frames: 1,
                reported: false,
            },
        );
        Sighting::Started
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.episodes.values().map(|e| self.deadline(e)).min()
    }

    fn deadline(&self, e: &Episode) -> Instant {
        if e.reported {
            e.last_seen + self.settings.forget_after
        } else {
            e.first_seen + self.settings.settle
        }
    }

    /// The episodes to report and those that ended, at `now`.
    pub fn poll(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        let ready: Vec<(IpAddr, MacAddr)> = self
            .episodes
            .iter()
            .filter(|(_, e)| self.deadline(e) <= now)
            .map(|(k, _)| *k)
            .collect();
        for (ip, mac) in ready {
            let Some(e) = self.episodes.get(&(ip, mac)) else {
                continue;
            };
            if e.reported {
                let e = self.episodes.remove(&(ip, mac)).expect("just read");
                due.ended.push(Ended {
                    ip,
                    mac,
                    link: e.link,
                    frames: e.frames,
                    lasted: e.last_seen.saturating_duration_since(e.first_seen),
                });
            } else if !self.owned.contains_key(&(ip, e.link.clone())) {
                self.episodes.remove(&(ip, mac));
                due.moved.push((ip, mac));
            } else {
                due.reports.push(self.report(ip, mac));
                if let Some(e) = self.episodes.get_mut(&(ip, mac)) {
                    e.reported = true;
                }
            }
        }
        due
    }

    fn report(&self, ip: IpAddr, mac: MacAddr) -> Report {
        let e = &self.episodes[&(ip, mac)];
        let services: Vec<ObjectKey> = self
            .services_of
            .get(&ip)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let told = |key: &ObjectKey| {
            self.ips_of.get(key).into_iter().flatten().any(|other| {
                *other != ip
                    && self
                        .episodes
                        .get(&(*other, mac))
                        .is_some_and(|o| o.reported)
            })
        };
        let notify = services.iter().filter(|k| !told(k)).cloned().collect();
        Report {
            ip,
            mac,
            link: e.link.clone(),
            kind: e.kind,
            frames: e.frames,
            services,
            notify,
        }
    }

    /// Reported episodes of `ip` still going: foreign MACs in conflict.
    pub fn on(&self, ip: IpAddr) -> usize {
        self.episodes
            .range((ip, MacAddr::ZERO)..)
            .take_while(|((i, _), _)| *i == ip)
            .filter(|(_, e)| e.reported)
            .count()
    }

    /// Every episode, reported or waiting.
    pub fn episodes(&self) -> &BTreeMap<(IpAddr, MacAddr), Episode> {
        &self.episodes
    }
}

/// The node whose speaker `mac` belongs to, as far as this node can
/// tell: a neighbour entry (`neighbours`, this node's kernel table, kept
/// fresh by gossip and heartbeats to every speaker) maps one of the
/// `nodes`' InternalIPs to `mac`. `None` for another device, or a speaker
/// announcing from a NIC other than the one holding its InternalIP.
pub fn peer_of<'a>(
    mac: MacAddr,
    neighbours: &[(IpAddr, MacAddr)],
    nodes: impl IntoIterator<Item = (&'a str, Option<IpAddr>)>,
    me: &str,
) -> Option<String> {
    let ips: BTreeSet<IpAddr> = neighbours
        .iter()
        .filter(|(_, m)| *m == mac)
        .map(|(ip, _)| *ip)
        .collect();
    if ips.is_empty() {
        return None;
    }
    nodes
        .into_iter()
        .find(|(name, ip)| *name != me && ip.is_some_and(|ip| ips.contains(&ip)))
        .map(|(name, _)| name.to_owned())
}

#[cfg(test)]
mod tests;
