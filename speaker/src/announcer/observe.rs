//! What the announcer reports about other stations: another station's
//! announcement ([`crate::wire::foreign`]) of an address this node owns,
//! hands over, or has just stopped announcing.
//!
//! The state the address is in when the frame arrives tells what it means:
//! while handing over it is the new owner taking over (the graceful stop
//! waits for exactly that); while owned it is a second station answering
//! for our address (a race during an ordinary move, or a rogue device:
//! counted, [`super::Counters::foreign_announcements`]); just withdrawn, it
//! is whoever took the address after us.

use crate::wire::foreign::Announcement;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long after this node stops announcing an address other stations'
/// announcements of it are still reported: longer than a new owner's
/// takeover burst (four announcements 1.1 s apart by default).
pub const RECENTLY_WITHDRAWN: Duration = Duration::from_secs(10);

/// What this node was doing with the address when another station
/// announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Held {
    /// Owned and announced: another station claims our address.
    Owned,
    /// Still answered while handing over on a graceful stop: the new
    /// owner, most likely.
    HandingOver,
    /// No longer announced, for at most [`RECENTLY_WITHDRAWN`].
    Withdrawn,
}

impl Held {
    /// `owned`, `handing_over` or `withdrawn`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owned => "owned",
            Self::HandingOver => "handing_over",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// Another station announced an address of ours on `link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The interface the frame arrived on.
    pub link: String,
    /// Which address, by which MAC, and how.
    pub announcement: Announcement,
    /// What this node was doing with the address then.
    pub held: Held,
    /// When the frame was handled.
    pub at: Instant,
}

impl Observation {
    /// The address announced.
    pub fn ip(&self) -> IpAddr {
        self.announcement.ip
    }
}

/// (interface, address) pairs no longer announced, with when they stopped;
/// forgotten [`RECENTLY_WITHDRAWN`] later.
#[derive(Debug, Default)]
pub(super) struct Withdrawn(BTreeMap<(String, IpAddr), Instant>);

impl Withdrawn {
    pub(super) fn insert(&mut self, link: &str, ip: IpAddr, now: Instant) {
        self.0.insert((link.to_owned(), ip), now);
    }

    pub(super) fn remove(&mut self, link: &str, ip: IpAddr) {
        self.0.remove(&(link.to_owned(), ip));
    }

    /// Whether `ip` on `link` stopped being announced less than
    /// [`RECENTLY_WITHDRAWN`] before `now`.
    pub(super) fn recent(&self, link: &str, ip: IpAddr, now: Instant) -> bool {
        self.0
            .get(&(link.to_owned(), ip))
            .is_some_and(|since| now.saturating_duration_since(*since) < RECENTLY_WITHDRAWN)
    }

    /// Forgets what stopped too long ago, so the map holds only the last
    /// [`RECENTLY_WITHDRAWN`]'s withdrawals.
    pub(super) fn expire(&mut self, now: Instant) {
        self.0
            .retain(|_, since| now.saturating_duration_since(*since) < RECENTLY_WITHDRAWN);
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}
