//! ferrolb's decisions, as plain synchronous code over small domain types.
//!
//! - [`range`]: IP families and `IPAddressPool.spec.addresses` entries, the
//!   one parser and containment test.
//! - [`selector`]: Kubernetes label selectors, evaluated locally.
//! - [`allocator`]: which IPs a Service gets from which pool, or exactly
//!   why not.
//! - [`election`]: which node announces a LoadBalancer IP, the same answer
//!   on every speaker (MetalLB's hash, so a migrating cluster agrees).
//! - [`announce`]: the speaker's decision: which (IP, interface) pairs this
//!   node announces, and why a Service is announced by nobody.
//! - [`liveness`]: a peer's liveness from its heartbeats (BFD's detection
//!   time; stale and replayed heartbeats change nothing).
//! - [`ownership`]: owners that stay put: the claims every speaker
//!   publishes decide, new and orphaned IPs go to the least loaded node,
//!   MetalLB's hash as an option.
//!
//! This crate has no kube, k8s-openapi, tokio or other I/O dependency, and
//! `scripts/check-core-deps` keeps it that way: the binaries convert API
//! objects into these types at their watch edge, then call in here. Every
//! function is deterministic, so the tests need no cluster, root or network.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod announce;
pub mod election;
pub mod liveness;
pub mod ownership;
pub mod range;
pub mod selector;
