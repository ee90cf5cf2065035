//! Counters the daemon exports as metrics.

use std::fmt;

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
        }
    }
}
