//! ferrolb speaker: the pure core.
//!
//! - [`election`] decides which node owns (announces) each LoadBalancer IP.
//! - [`wire`] parses and builds the Ethernet, ARP and NDP frames the speaker
//!   answers and sends, and decides which received frames deserve an answer.
//!
//! Nothing here opens a socket or talks to Kubernetes; the daemon wraps this
//! core in a thin I/O shell.
#![forbid(unsafe_code)]

pub mod election;
pub mod wire;
