//! Which network interfaces the speaker announces on.
//!
//! - [`select`] is pure: from the interfaces the kernel reports
//!   ([`LinkInfo`]), an L2Advertisement's `interfaces` list and the exclude
//!   patterns, it returns the chosen interface names and, for every
//!   interface the advertisement names but cannot be used, a
//!   [`LinkProblem`] the daemon logs and reports as an Event and a metric.
//! - [`Links`] hides the kernel behind a trait (list + change stream);
//!   [`netlink::RtNetlink`] implements it with rtnetlink.
//!
//! ```
//! use ferrolb_speaker::links::{select, Excludes, LinkInfo};
//!
//! let links = vec![
//!     LinkInfo::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1]),
//!     LinkInfo::ethernet("veth1234", 3, [2, 0, 0, 0, 0, 2]),
//! ];
//! let chosen = select(&links, &[], &Excludes::default());
//! assert_eq!(chosen.names, vec!["eth0".to_string()]);
//! ```

pub mod netlink;
mod select;

pub use select::{eligible, select, Excludes, LinkProblem, Selection, Skip, DEFAULT_EXCLUDES};

use crate::wire::MacAddr;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::fmt;

/// Why listing or watching interfaces failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel answered a request with an error.
    #[error("listing network interfaces over netlink: {0}")]
    Netlink(#[source] rtnetlink::Error),
    /// An exclude pattern is not a valid regular expression.
    #[error("invalid interface exclude pattern {pattern:?}: {source}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// The parse error.
        source: regex::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One network interface as the kernel reports it: the facts the
/// selection rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The interface name, e.g. `eth0`.
    pub name: String,
    /// The interface index.
    pub index: u32,
    /// The hardware address; `None` for links without one (tunnels).
    pub mac: Option<MacAddr>,
    /// Administratively up (`IFF_UP`) with a carrier (`IFF_LOWER_UP`): a
    /// frame sent there can reach the LAN.
    pub up: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// `IFF_NOARP`: the link does not do neighbour resolution, so answering
    /// ARP/NDP there makes no sense.
    pub noarp: bool,
    /// Enslaved to a bridge, bond or VRF (`IFLA_MASTER` set): frames for
    /// it are delivered to the master, which is where to answer.
    pub has_master: bool,
    /// The link kind (`veth`, `bridge`, `bond`, `vlan`...), `None` for
    /// plain hardware interfaces.
    pub kind: Option<String>,
}

impl LinkInfo {
    /// An up, ARP-capable, unenslaved Ethernet interface (for tests and
    /// examples).
    pub fn ethernet(name: &str, index: u32, mac: [u8; 6]) -> Self {
        Self {
            name: name.to_owned(),
            index,
            mac: Some(MacAddr(mac)),
            up: true,
            loopback: false,
            noarp: false,
            has_master: false,
            kind: None,
        }
    }
}

/// The host's interfaces, behind a trait so the daemon can run on a fake.
pub trait Links: Send + Sync + fmt::Debug {
    /// Every interface in this network namespace.
    fn list(&self) -> BoxFuture<'_, Result<Vec<LinkInfo>>>;

    /// Yields `()` whenever an interface appears, disappears or changes;
    /// the caller then lists again (changes are coalesced, never lost: a
    /// list after the notification sees them).
    fn changes(&self) -> Result<BoxStream<'static, ()>>;
}
