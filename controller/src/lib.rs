//! ferrolb controller: assigns external IPs to LoadBalancer Services.
//!
//! The decisions (which IPs a Service gets from which pool, or exactly why
//! not) are [`ferrolb_core::allocator`], plain synchronous code; this crate
//! is the shell around it. [`config`] turns custom resources into
//! allocator pools; [`index`] turns watch events into allocator calls and
//! desired status; [`status`] is the one task that writes to the API
//! server, and only while [`lease`] says this replica leads. [`memberlist`]
//! creates the speakers' gossip Secret when it is missing (leader only).
//! [`cli`] and [`metrics`] are the shell; the rest of it (logging, the
//! metrics and health server, signals) is the shared `ferrolb-runtime`.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod events;
pub mod index;
pub mod lease;
pub mod memberlist;
pub mod metrics;
pub mod run;
pub mod status;
