//! Counters the daemon exports as metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The neighbour protocol a frame belongs to, a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// ARP (IPv4).
    Arp,
    /// NDP (IPv6).
    Ndp,
}

impl Protocol {
    /// The metric label value: `arp` or `ndp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arp => "arp",
            Self::Ndp => "ndp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One count per protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerProtocol {
    /// ARP frames.
    pub arp: u64,
    /// NDP frames.
    pub ndp: u64,
}

impl PerProtocol {
    /// The count for `protocol`.
    pub fn get(&self, protocol: Protocol) -> u64 {
        match protocol {
            Protocol::Arp => self.arp,
            Protocol::Ndp => self.ndp,
        }
    }

    pub(crate) fn add(&mut self, protocol: Protocol, n: u64) {
        let slot = match protocol {
            Protocol::Arp => &mut self.arp,
            Protocol::Ndp => &mut self.ndp,
        };
        *slot = slot.saturating_add(n);
    }

    /// Both counts of `other` added to these.
    pub fn plus(self, other: PerProtocol) -> PerProtocol {
        PerProtocol {
            arp: self.arp.saturating_add(other.arp),
            ndp: self.ndp.saturating_add(other.ndp),
        }
    }
}

/// What the announcer has done since it started. Counts only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests (ARP who-has, NDP solicitations) answered.
    pub requests_answered: PerProtocol,
    /// Gratuitous ARP frames and unsolicited advertisements sent.
    pub gratuitous_sent: PerProtocol,
    /// Well-formed frames that got no answer: not ARP/NDP, not for an
    /// owned address, not addressed to us, or on an unknown interface.
    pub frames_ignored: u64,
    /// ARP or NDP frames that failed to parse, dropped.
    pub frames_malformed: u64,
    /// Announcements by another station of an address this node owns and
    /// is not handing over ([`super::Held::Owned`]): a race during an
    /// ordinary move, or a second station answering for it.
    pub foreign_announcements: PerProtocol,
    /// Announcements sent again because another station announced an
    /// owned address (also counted in `gratuitous_sent`).
    pub reasserted: PerProtocol,
    /// Probes for silent duplicates sent (ARP probes, duplicate address
    /// detection solicitations).
    pub probes_sent: PerProtocol,
}

impl Counters {
    /// Every count of `other` added to these (counters of an announcer
    /// that was replaced, carried into its successor's totals).
    pub fn plus(self, other: Counters) -> Counters {
        Counters {
            requests_answered: self.requests_answered.plus(other.requests_answered),
            gratuitous_sent: self.gratuitous_sent.plus(other.gratuitous_sent),
            frames_ignored: self.frames_ignored.saturating_add(other.frames_ignored),
            frames_malformed: self.frames_malformed.saturating_add(other.frames_malformed),
            foreign_announcements: self.foreign_announcements.plus(other.foreign_announcements),
            reasserted: self.reasserted.plus(other.reasserted),
            probes_sent: self.probes_sent.plus(other.probes_sent),
        }
    }
}

/// What was done for one address: MetalLB's per-IP layer2 counters
/// (`internal/layer2/stats.go`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpCounts {
    /// Requests (ARP who-has, NDP solicitations) for the address that got
    /// an answer: MetalLB's `requests_received`.
    pub requests_received: u64,
    /// Those answers written to the wire: `responses_sent`.
    pub responses_sent: u64,
    /// Gratuitous ARP frames and unsolicited advertisements for the
    /// address written to the wire: `gratuitous_sent`.
    pub gratuitous_sent: u64,
}

impl IpCounts {
    fn add(&mut self, other: IpCounts) {
        self.requests_received = self
            .requests_received
            .saturating_add(other.requests_received);
        self.responses_sent = self.responses_sent.saturating_add(other.responses_sent);
        self.gratuitous_sent = self.gratuitous_sent.saturating_add(other.gratuitous_sent);
    }
}

/// [`IpCounts`] per address, since the tally was last taken: taken and
/// emptied every few seconds, so it holds only the addresses that saw
/// traffic in between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerIp(BTreeMap<IpAddr, IpCounts>);

impl PerIp {
    /// The counts of `ip` (zero if nothing happened for it).
    pub fn get(&self, ip: IpAddr) -> IpCounts {
        self.0.get(&ip).copied().unwrap_or_default()
    }

    /// Every address with its counts.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, IpCounts)> + '_ {
        self.0.iter().map(|(ip, c)| (*ip, *c))
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every count of `other` added to these.
    pub fn merge(&mut self, other: PerIp) {
        for (ip, c) in other.0 {
            self.0.entry(ip).or_default().add(c);
        }
    }

    pub(crate) fn at(&mut self, ip: IpAddr) -> &mut IpCounts {
        self.0.entry(ip).or_default()
    }
}
