//! Fast liveness: BFD-style heartbeats (RFC 5880 ideas) that declare a
//! dead speaker down in about `interval x multiplier` (100 ms by default)
//! instead of SWIM's ~0.5 s, with SWIM kept for membership and as the
//! backstop. See `docs/speaker-membership.md` ("Fast liveness").
//!
//! - [`wire`]: the two messages (heartbeat, verdict), pure.
//! - [`state`]: who sends to whom, who is down, pure ([`Fast`]).
//! - [`run`]: the thread that owns the socket's receiving side, sends the
//!   heartbeats and hands gossip datagrams to the gossip task.
//!
//! The detector itself (freshness, detection time) is
//! [`ferrolb_core::liveness`].

pub mod run;
pub mod state;
pub mod wire;

pub use run::{Counters, HeartbeatStats, Members};
pub use state::{Config as HeartbeatConfig, Dropped, Fast, Note};
pub use wire::{Malformed, Message};
