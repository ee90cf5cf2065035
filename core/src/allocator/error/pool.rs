//! Why a pool is invalid: an address that does not parse, overlapping
//! ranges or pools, a repeated name, a selector that cannot be evaluated.

use crate::range::{self, AddressRange};

/// Why an `IPAddressPool` hands out nothing; its `Display` text becomes
/// the message of the pool's `Valid` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// An address, CIDR or range string could not be parsed.
    #[error("invalid address {input:?}: {detail}")]
    InvalidAddress {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Two address ranges of one pool overlap.
    #[error("IPAddressPool {pool:?} is invalid: its addresses {first} and {second} overlap")]
    PoolRangesOverlap {
        /// The pool.
        pool: String,
        /// The earlier of the overlapping ranges.
        first: AddressRange,
        /// The later of the overlapping ranges.
        second: AddressRange,
    },
    /// A pool overlaps a pool that takes precedence over it.
    #[error(
        "IPAddressPool {pool:?} is invalid: its addresses {overlap} are already in IPAddressPool {other:?}"
    )]
    PoolOverlapsPool {
        /// The later, invalid pool.
        pool: String,
        /// The earlier valid pool that owns the addresses.
        other: String,
        /// The addresses both pools claim.
        overlap: AddressRange,
    },
    /// Two pools carry the same name.
    #[error("IPAddressPool {pool:?} is invalid: another pool with the same name comes first")]
    DuplicatePoolName {
        /// The pool.
        pool: String,
    },
    /// A label selector of a pool's serviceAllocation cannot be evaluated.
    #[error("IPAddressPool {pool:?} is invalid: {field} has an invalid selector: {detail}")]
    InvalidSelector {
        /// The pool.
        pool: String,
        /// `serviceAllocation.namespaceSelectors` or `serviceAllocation.serviceSelectors`.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl From<range::Error> for PoolError {
    /// A string of `IPAddressPool.spec.addresses` that does not parse, with
    /// the parser's text unchanged.
    fn from(err: range::Error) -> Self {
        PoolError::InvalidAddress {
            input: err.input,
            detail: err.detail,
        }
    }
}

impl PoolError {
    /// A short snake_case label for metrics and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            PoolError::InvalidAddress { .. } => "invalid_address",
            PoolError::PoolRangesOverlap { .. } => "pool_ranges_overlap",
            PoolError::PoolOverlapsPool { .. } => "pool_overlap",
            PoolError::DuplicatePoolName { .. } => "duplicate_pool_name",
            PoolError::InvalidSelector { .. } => "invalid_selector",
        }
    }
}
