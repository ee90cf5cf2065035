//! Throw-away test networks in Linux network namespaces.
//!
//! A [`Lab`] is a switch namespace holding bridge [`BRIDGE`], and hosts
//! (namespaces with an `eth0` veth plugged into the bridge). More L2
//! segments ([`Lab::add_segment`]) take hosts whose `eth0` is there
//! ([`Lab::add_host_on`]) and extra interfaces of existing hosts
//! ([`Lab::attach`], then [`Host::add_addr_dev`], [`Host::mac_of`]). Tests put
//! documentation addresses on hosts, run programs in them
//! ([`Host::command`], [`Host::spawn`]) or Rust closures
//! ([`Host::run_in`], [`Host::spawn_in`]), cut links, and read neighbour
//! tables. Everything is deleted when the lab drops, panics included; the
//! next lab sweeps what a killed process left behind ([`sweep_stale`]).
//!
//! Needs root. Tests that use it are `#[ignore = "needs root"]`;
//! [`Lab::for_test`] and [`require_root`] fail such a test with the reason
//! when it is run without root (see [`require_tool`] for tools).
//!
//! ```no_run
//! # fn main() -> netlab::Result<()> {
//! let mut lab = netlab::Lab::for_test("echo_over_the_lab");
//! let a = lab.add_host("a")?;
//! let b = lab.add_host("b")?;
//! a.add_addr("198.51.100.11/24")?;
//! b.add_addr("198.51.100.12/24")?;
//! let echo = b.spawn_in(|| {
//!     let s = std::net::UdpSocket::bind("198.51.100.12:7").unwrap();
//!     let mut buf = [0; 64];
//!     let (n, from) = s.recv_from(&mut buf).unwrap();
//!     s.send_to(&buf[..n], from).unwrap();
//! })?;
//! a.run_in(|| {
//!     let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
//!     s.send_to(b"hi", "198.51.100.12:7").unwrap();
//! })?;
//! echo.join();
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod cmd;
mod error;
mod host;
mod lab;
mod neigh;
mod netns;
mod ns;
mod precondition;
mod segment;

pub use cmd::ChildGuard;
pub use error::{Error, Result};
pub use host::{Host, HOST_IFNAME};
pub use lab::{Lab, BRIDGE, DEFAULT_PREFIX};
pub use neigh::{MacAddr, MacParseError, Neighbour};
pub use netns::{list_namespaces, owner_pid, sweep_stale};
pub use ns::NsThread;
pub use precondition::{require_root, require_tool, root_problem, unavailable};
pub use segment::Segment;
