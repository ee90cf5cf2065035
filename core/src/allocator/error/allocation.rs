//! Why a well-formed request gets no IPs, or an assignment may not stay.

use std::net::IpAddr;

use crate::allocator::key::ServiceKey;
use crate::range::Family;

/// A refusal of [`Allocator::allocate`](crate::allocator::Allocator::allocate)
/// or [`Allocator::restore`](crate::allocator::Allocator::restore), or why
/// [`Allocator::set_pools`](crate::allocator::Allocator::set_pools) evicted
/// an assignment. These may resolve by themselves when pools or other
/// Services change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// No pool the Service may use offers the families it needs.
    #[error("no IPAddressPool matches this Service (none with autoAssign allows it and has {families} addresses)")]
    NoMatchingPool {
        /// The families that were wanted, e.g. "IPv4" or "IPv4 and IPv6".
        families: String,
    },
    /// Every matching pool is full.
    #[error("no available {families} IPs in any IPAddressPool this Service may use")]
    NoAvailableIps {
        /// The families that were wanted.
        families: String,
    },
    /// The requested pool is full for a family.
    #[error("no available {family} IPs in pool {pool:?}")]
    PoolExhausted {
        /// The pool.
        pool: String,
        /// The family that ran out.
        family: Family,
    },
    /// The requested pool has no addresses of a needed family.
    #[error("IPAddressPool {pool:?} has no {family} addresses")]
    PoolLacksFamily {
        /// The pool.
        pool: String,
        /// The missing family.
        family: Family,
    },
    /// The requested pool does not exist.
    #[error("requested IPAddressPool {pool:?} does not exist")]
    UnknownPool {
        /// The pool.
        pool: String,
    },
    /// The pool that would serve the Service is invalid.
    #[error("IPAddressPool {pool:?} is invalid and hands out no addresses")]
    PoolInvalid {
        /// The pool.
        pool: String,
    },
    /// The pool's serviceAllocation excludes the Service.
    #[error("IPAddressPool {pool:?} does not allow Service {service}: {why}")]
    PoolNotAllowed {
        /// The pool.
        pool: String,
        /// The Service.
        service: ServiceKey,
        /// Which rule excludes it.
        why: String,
    },
    /// A requested IP lies in no pool.
    #[error("IP {ip} is not in any IPAddressPool")]
    RequestedIpOutsidePools {
        /// The IP.
        ip: IpAddr,
    },
    /// A requested IP lies outside the requested pool.
    #[error("requested IP {ip} is not in the requested IPAddressPool {pool:?}")]
    RequestedIpNotInRequestedPool {
        /// The IP.
        ip: IpAddr,
        /// The requested pool.
        pool: String,
    },
    /// Requested IPs come from two pools; one Service uses one pool.
    #[error(
        "requested IPs {first} (pool {first_pool:?}) and {second} (pool {second_pool:?}) are in different IPAddressPools"
    )]
    RequestedIpsInDifferentPools {
        /// First IP.
        first: IpAddr,
        /// Its pool.
        first_pool: String,
        /// Second IP.
        second: IpAddr,
        /// Its pool.
        second_pool: String,
    },
    /// A requested IP's family is not one of the Service's ipFamilies.
    #[error("requested IP {ip} is {family} but the Service's ipFamilies are {families}")]
    RequestedFamilyNotInService {
        /// The IP.
        ip: IpAddr,
        /// Its family.
        family: Family,
        /// The Service's families.
        families: String,
    },
    /// RequireDualStack but the requested IPs are of one family.
    #[error("the Service requires dual stack but the requested IPs {ips} are all {family}")]
    RequestedIpsNotDualStack {
        /// The requested IPs, comma-separated.
        ips: String,
        /// Their one family.
        family: Family,
    },
    /// RequireDualStack and no pool offers both families.
    #[error("the Service requires dual stack but no IPAddressPool it may use has both an IPv4 and an IPv6 address free")]
    DualStackUnavailable,
    /// An address ending in .0 or .255 in a pool with avoidBuggyIPs.
    #[error("IP {ip} ends in .0 or .255 and IPAddressPool {pool:?} has avoidBuggyIPs set")]
    BuggyIp {
        /// The IP.
        ip: IpAddr,
        /// The pool.
        pool: String,
    },
    /// The IP is held by another Service and the two may not share at all.
    #[error("IP {ip} is already used by {other} and sharing is not allowed: {detail}")]
    IpInUse {
        /// The IP.
        ip: IpAddr,
        /// The Service holding it.
        other: ServiceKey,
        /// Why sharing is not allowed.
        detail: String,
    },
    /// The two Services have the same sharing key but still cannot share.
    #[error("IP {ip} cannot be shared with {other}: {detail}")]
    SharingConflict {
        /// The IP.
        ip: IpAddr,
        /// The Service holding it.
        other: ServiceKey,
        /// The clash.
        detail: String,
    },
    /// An assignment to restore is not a usable set of addresses.
    #[error("cannot restore IPs [{ips}]: {detail}")]
    InvalidAssignment {
        /// The IPs, comma-separated.
        ips: String,
        /// What is wrong with them.
        detail: String,
    },

    // ----- why an existing assignment became illegal after a pool update -----
    /// The pool that held the IP was deleted and no other pool holds it.
    #[error("IPAddressPool {pool:?} was deleted, so IP {ip} is no longer in any pool")]
    PoolDeleted {
        /// The deleted pool.
        pool: String,
        /// The IP.
        ip: IpAddr,
    },
    /// The IP is no longer inside any pool.
    #[error("IP {ip} is no longer in IPAddressPool {pool:?} or any other pool")]
    AddressNoLongerInPool {
        /// The pool that held it.
        pool: String,
        /// The IP.
        ip: IpAddr,
    },
}

impl AllocationError {
    /// A short snake_case label for metrics and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocationError::NoMatchingPool { .. } => "no_matching_pool",
            AllocationError::NoAvailableIps { .. } => "no_available_ips",
            AllocationError::PoolExhausted { .. } => "pool_exhausted",
            AllocationError::PoolLacksFamily { .. } => "pool_lacks_family",
            AllocationError::UnknownPool { .. } => "unknown_pool",
            AllocationError::PoolInvalid { .. } => "pool_invalid",
            AllocationError::PoolNotAllowed { .. } => "pool_not_allowed",
            AllocationError::RequestedIpOutsidePools { .. } => "requested_ip_outside_pools",
            AllocationError::RequestedIpNotInRequestedPool { .. } => {
                "requested_ip_not_in_requested_pool"
            }
            AllocationError::RequestedIpsInDifferentPools { .. } => {
                "requested_ips_in_different_pools"
            }
            AllocationError::RequestedFamilyNotInService { .. } => {
                "requested_family_not_in_service"
            }
            AllocationError::RequestedIpsNotDualStack { .. } => "requested_ips_not_dual_stack",
            AllocationError::DualStackUnavailable => "dual_stack_unavailable",
            AllocationError::BuggyIp { .. } => "buggy_ip",
            AllocationError::IpInUse { .. } => "ip_in_use",
            AllocationError::SharingConflict { .. } => "sharing_conflict",
            AllocationError::InvalidAssignment { .. } => "invalid_assignment",
            AllocationError::PoolDeleted { .. } => "pool_deleted",
            AllocationError::AddressNoLongerInPool { .. } => "address_not_in_pool",
        }
    }
}
