//! ferrolb speaker: the thin I/O shell around the decisions in
//! [`ferrolb_core`] (the election, and what this node announces on which
//! interface), plus the speaker's own pure parts.
//!
//! - [`wire`] parses and builds the Ethernet, ARP and NDP frames the speaker
//!   answers and sends, and decides which received frames deserve an answer.
//! - [`announcer`] keeps what this node announces on one interface: answers
//!   for owned addresses and the gratuitous ARP / unsolicited NA schedule on
//!   takeover.
//! - [`transport`] is the I/O shell: datalinks (raw sockets, or an in-memory
//!   segment for tests) and the loop that joins them to the announcer.
//! - [`membership`] tells which speakers are alive: SWIM gossip over
//!   authenticated UDP, or Node `Ready` conditions as the slower fallback.
//! - [`links`] lists the host's interfaces (rtnetlink); [`daemon`] wires
//!   the watches, the decision and the transports; [`cli`] holds the flags.
//!
//! [`wire`] and [`announcer`] are pure; sockets and API calls live in
//! [`transport`], [`membership`], [`links`] and [`daemon`].
#![forbid(unsafe_code)]

pub mod announcer;
pub mod cli;
pub mod daemon;
pub mod links;
pub mod membership;
pub mod transport;
pub mod wire;
