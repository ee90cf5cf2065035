//! ferrolb controller: assigns external IPs to LoadBalancer Services.
//!
//! [`allocator`] is the pure decision core (std + ipnet only): which IPs a
//! Service gets from which pool, or exactly why not.

#![forbid(unsafe_code)]

pub mod allocator;
