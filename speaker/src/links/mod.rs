//! The host's interfaces, from the kernel: [`Links`] hides it behind a
//! trait (list + change stream, and the neighbour table) and
//! [`netlink::RtNetlink`] implements it with rtnetlink. Which of them to
//! announce on is decided in [`ferrolb_core::announce::interfaces`], over
//! the [`HostInterface`]s listed here.

pub mod netlink;

use crate::wire::MacAddr;
use ferrolb_core::announce::interfaces::HostInterface;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::fmt;
use std::net::IpAddr;

/// Why listing or watching interfaces failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel answered a request with an error.
    #[error("listing network interfaces over netlink: {0}")]
    Netlink(#[source] rtnetlink::Error),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The host's interfaces, behind a trait so the daemon can run on a fake.
pub trait Links: Send + Sync + fmt::Debug {
    /// Every interface in this network namespace.
    fn list(&self) -> BoxFuture<'_, Result<Vec<HostInterface>>>;

    /// Yields `()` whenever an interface appears, disappears or changes;
    /// the caller then lists again (changes are coalesced, never lost: a
    /// list after the notification sees them).
    fn changes(&self) -> Result<BoxStream<'static, ()>>;

    /// The kernel's neighbour entries that hold a link-layer address, as
    /// (IP, MAC), on every interface: which node a MAC belongs to
    /// (`daemon::conflicts::peer_of`). Read only when a conflict is
    /// reported. None unless implemented.
    fn neighbours(&self) -> BoxFuture<'_, Result<Vec<(IpAddr, MacAddr)>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
