//! ferrolb speaker: the pure core and the thin I/O shell around it.
//!
//! - [`election`] decides which node owns (announces) each LoadBalancer IP.
//! - [`wire`] parses and builds the Ethernet, ARP and NDP frames the speaker
//!   answers and sends, and decides which received frames deserve an answer.
//! - [`announcer`] keeps what this node announces: answers for owned
//!   addresses and the gratuitous ARP / unsolicited NA schedule on takeover.
//! - [`transport`] is the I/O shell: datalinks (raw sockets, or an in-memory
//!   segment for tests) and the loop that joins them to the announcer.
//!
//! Only [`transport`] opens sockets; nothing talks to Kubernetes yet.
#![forbid(unsafe_code)]

pub mod announcer;
pub mod election;
pub mod transport;
pub mod wire;
