//! The datalink behind a trait, and the loop that joins it to the
//! [`Announcer`](crate::announcer::Announcer).
//!
//! - [`Datalink`]: send and receive whole Ethernet frames on one interface,
//!   and join the IPv6 multicast groups NDP solicitations are sent to.
//! - [`memory`]: a simulated L2 segment for tests without root.
//! - [`packet`]: raw `AF_PACKET` sockets (pnet), filtered in the kernel to
//!   ARP and Neighbor Solicitations.
//! - [`run`]: the speaker's I/O loop: receive, answer, announce on time.

pub mod memory;
pub mod packet;
pub mod run;

use crate::wire::MacAddr;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Why a datalink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No interface of that name exists in this network namespace.
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    /// The interface has no MAC address (not Ethernet).
    #[error("interface {0:?} has no MAC address")]
    NoMac(String),
    /// Opening the raw socket failed (usually: not root / no CAP_NET_RAW).
    #[error("opening a raw socket on {link:?}: {source}")]
    Open {
        /// The interface.
        link: String,
        /// The system error.
        source: std::io::Error,
    },
    /// Sending a frame failed.
    #[error("sending a frame on {link:?}: {source}")]
    Send {
        /// The interface.
        link: String,
        /// The system error.
        source: std::io::Error,
    },
    /// Receiving failed for another reason than a timeout.
    #[error("receiving on {link:?}: {source}")]
    Recv {
        /// The interface.
        link: String,
        /// The system error.
        source: std::io::Error,
    },
    /// Joining or leaving a multicast group failed.
    #[error("{action} multicast group {group} on {link:?}: {source}")]
    Multicast {
        /// `joining` or `leaving`.
        action: &'static str,
        /// The group.
        group: Ipv6Addr,
        /// The interface.
        link: String,
        /// The system error.
        source: std::io::Error,
    },
    /// The endpoint's segment is gone (in-memory transport).
    #[error("the segment of {0:?} is gone")]
    Disconnected(String),
    /// A thread of the I/O loop could not be started.
    #[error("starting the announcer thread: {0}")]
    Spawn(std::io::Error),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The identity of the interface a datalink is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundInterface {
    /// The interface name, e.g. `eth0`.
    pub name: String,
    /// The interface index in its network namespace.
    pub index: u32,
    /// The interface MAC: announcements and replies come from it.
    pub mac: MacAddr,
}

/// How long [`Datalink::recv`] waits by default before returning `None`,
/// so a receiving thread notices a stop request quickly.
pub const RECV_TIMEOUT: Duration = Duration::from_millis(50);

/// Whole Ethernet frames in and out of one interface.
///
/// Implementations are shared between a receiving thread and a sending
/// one, hence `&self` everywhere.
pub trait Datalink: Send + Sync + fmt::Debug {
    /// The interface this datalink is bound to.
    fn info(&self) -> &BoundInterface;

    /// Sends one frame as is.
    fn send(&self, frame: &[u8]) -> Result<()>;

    /// The next received frame, or `None` when none came within the
    /// implementation's read timeout (about [`RECV_TIMEOUT`]).
    fn recv(&self) -> Result<Option<Vec<u8>>>;

    /// Starts receiving frames sent to IPv6 multicast `group` (a
    /// solicited-node group of an owned address). Called once per group.
    fn join_multicast(&self, group: Ipv6Addr) -> Result<()>;

    /// Stops receiving frames sent to `group`.
    fn leave_multicast(&self, group: Ipv6Addr) -> Result<()>;
}

/// Locks `m`, ignoring poisoning: what the transport keeps behind a lock
/// (queues, counters, group memberships) stays consistent even if a holder
/// panicked.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
