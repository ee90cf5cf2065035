//! Every way the allocator can refuse, as one error enum.
//!
//! The `Display` text of each variant is written for an operator: it becomes
//! the Event message shown by `kubectl describe svc` or the message of a
//! pool's `Valid` condition, so it names the Service, address or pool.
//! [`Error::reason`] gives a short stable label for metrics and Event reasons.

use std::net::IpAddr;

use super::request::ServiceKey;
use crate::range::{self, AddressRange, Family};

/// Result alias for the allocator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an address could not be parsed, a pool is invalid, a Service's
/// annotations are malformed, or an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- address parsing and pool validation -----
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

    // ----- turning a Service into a request -----
    /// An annotation holds an IP address that does not parse.
    #[error("annotation {annotation:?} has value {value:?}, and {item:?} is not an IP address")]
    AnnotationBadIp {
        /// Annotation name.
        annotation: String,
        /// Full annotation value.
        value: String,
        /// The offending element.
        item: String,
    },
    /// An annotation asks for two addresses of one family.
    #[error(
        "annotation {annotation:?} has value {value:?}, which names more than one {family} address"
    )]
    AnnotationSameFamilyTwice {
        /// Annotation name.
        annotation: String,
        /// Full annotation value.
        value: String,
        /// The repeated family.
        family: Family,
    },
    /// The same setting is spelled with two annotation names that disagree.
    #[error(
        "annotations {first:?} (value {first_value:?}) and {second:?} (value {second_value:?}) disagree; remove one"
    )]
    AnnotationsDisagree {
        /// First annotation name.
        first: String,
        /// Its value.
        first_value: String,
        /// Second annotation name.
        second: String,
        /// Its value.
        second_value: String,
    },
    /// `spec.loadBalancerIP` does not parse.
    #[error("spec.loadBalancerIP {value:?} is not an IP address")]
    BadLoadBalancerIp {
        /// The field value.
        value: String,
    },
    /// `spec.loadBalancerIP` and the loadBalancerIPs annotation disagree.
    #[error("spec.loadBalancerIP {spec:?} disagrees with annotation {annotation:?} (value {value:?}); set only one")]
    LoadBalancerIpDisagrees {
        /// The field value.
        spec: String,
        /// Annotation name.
        annotation: String,
        /// Annotation value.
        value: String,
    },
    /// A port uses a protocol Kubernetes does not know.
    #[error("port {port} has unknown protocol {protocol:?} (expected TCP, UDP or SCTP)")]
    UnknownProtocol {
        /// The protocol string.
        protocol: String,
        /// The port number.
        port: u16,
    },
    /// `spec.ipFamilies` holds an unknown or repeated value.
    #[error(
        "spec.ipFamilies value {value:?} is not usable (expected IPv4 and/or IPv6, each once)"
    )]
    UnknownIpFamily {
        /// The offending value.
        value: String,
    },
    /// `spec.ipFamilyPolicy` holds an unknown value.
    #[error(
        "spec.ipFamilyPolicy {value:?} is unknown (expected SingleStack, PreferDualStack or RequireDualStack)"
    )]
    UnknownIpFamilyPolicy {
        /// The offending value.
        value: String,
    },
    /// `spec.externalTrafficPolicy` holds an unknown value.
    #[error("spec.externalTrafficPolicy {value:?} is unknown (expected Cluster or Local)")]
    UnknownTrafficPolicy {
        /// The offending value.
        value: String,
    },

    // ----- refusals -----
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

impl From<range::Error> for Error {
    /// A string of `IPAddressPool.spec.addresses` that does not parse, with
    /// the parser's text unchanged.
    fn from(err: range::Error) -> Self {
        Error::InvalidAddress {
            input: err.input,
            detail: err.detail,
        }
    }
}

impl Error {
    /// A short snake_case label for metrics and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidAddress { .. } => "invalid_address",
            Error::PoolRangesOverlap { .. } => "pool_ranges_overlap",
            Error::PoolOverlapsPool { .. } => "pool_overlap",
            Error::DuplicatePoolName { .. } => "duplicate_pool_name",
            Error::InvalidSelector { .. } => "invalid_selector",
            Error::AnnotationBadIp { .. } => "malformed_annotation",
            Error::AnnotationSameFamilyTwice { .. } => "annotation_same_family_twice",
            Error::AnnotationsDisagree { .. } => "annotations_disagree",
            Error::BadLoadBalancerIp { .. } => "invalid_load_balancer_ip",
            Error::LoadBalancerIpDisagrees { .. } => "load_balancer_ip_disagrees",
            Error::UnknownProtocol { .. } => "unknown_protocol",
            Error::UnknownIpFamily { .. } => "unknown_ip_family",
            Error::UnknownIpFamilyPolicy { .. } => "unknown_ip_family_policy",
            Error::UnknownTrafficPolicy { .. } => "unknown_traffic_policy",
            Error::NoMatchingPool { .. } => "no_matching_pool",
            Error::NoAvailableIps { .. } => "no_available_ips",
            Error::PoolExhausted { .. } => "pool_exhausted",
            Error::PoolLacksFamily { .. } => "pool_lacks_family",
            Error::UnknownPool { .. } => "unknown_pool",
            Error::PoolInvalid { .. } => "pool_invalid",
            Error::PoolNotAllowed { .. } => "pool_not_allowed",
            Error::RequestedIpOutsidePools { .. } => "requested_ip_outside_pools",
            Error::RequestedIpNotInRequestedPool { .. } => "requested_ip_not_in_requested_pool",
            Error::RequestedIpsInDifferentPools { .. } => "requested_ips_in_different_pools",
            Error::RequestedFamilyNotInService { .. } => "requested_family_not_in_service",
            Error::RequestedIpsNotDualStack { .. } => "requested_ips_not_dual_stack",
            Error::DualStackUnavailable => "dual_stack_unavailable",
            Error::BuggyIp { .. } => "buggy_ip",
            Error::IpInUse { .. } => "ip_in_use",
            Error::SharingConflict { .. } => "sharing_conflict",
            Error::InvalidAssignment { .. } => "invalid_assignment",
            Error::PoolDeleted { .. } => "pool_deleted",
            Error::AddressNoLongerInPool { .. } => "address_not_in_pool",
        }
    }

    /// True for errors caused by the Service's own spec or annotations
    /// (the user must fix the Service), as opposed to refusals that may
    /// resolve by themselves when pools or other Services change.
    pub fn is_malformed_service(&self) -> bool {
        matches!(
            self,
            Error::AnnotationBadIp { .. }
                | Error::AnnotationSameFamilyTwice { .. }
                | Error::AnnotationsDisagree { .. }
                | Error::BadLoadBalancerIp { .. }
                | Error::LoadBalancerIpDisagrees { .. }
                | Error::UnknownProtocol { .. }
                | Error::UnknownIpFamily { .. }
                | Error::UnknownIpFamilyPolicy { .. }
                | Error::UnknownTrafficPolicy { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn every_variant() -> Vec<Error> {
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let range = AddressRange::parse("198.51.100.0/30").unwrap();
        let key = ServiceKey::new("default", "web");
        let s = || "x".to_string();
        vec![
            Error::InvalidAddress {
                input: s(),
                detail: s(),
            },
            Error::PoolRangesOverlap {
                pool: s(),
                first: range,
                second: range,
            },
            Error::PoolOverlapsPool {
                pool: s(),
                other: s(),
                overlap: range,
            },
            Error::DuplicatePoolName { pool: s() },
            Error::InvalidSelector {
                pool: s(),
                field: "f",
                detail: s(),
            },
            Error::AnnotationBadIp {
                annotation: s(),
                value: s(),
                item: s(),
            },
            Error::AnnotationSameFamilyTwice {
                annotation: s(),
                value: s(),
                family: Family::V4,
            },
            Error::AnnotationsDisagree {
                first: s(),
                first_value: s(),
                second: s(),
                second_value: s(),
            },
            Error::BadLoadBalancerIp { value: s() },
            Error::LoadBalancerIpDisagrees {
                spec: s(),
                annotation: s(),
                value: s(),
            },
            Error::UnknownProtocol {
                protocol: s(),
                port: 1,
            },
            Error::UnknownIpFamily { value: s() },
            Error::UnknownIpFamilyPolicy { value: s() },
            Error::UnknownTrafficPolicy { value: s() },
            Error::NoMatchingPool { families: s() },
            Error::NoAvailableIps { families: s() },
            Error::PoolExhausted {
                pool: s(),
                family: Family::V4,
            },
            Error::PoolLacksFamily {
                pool: s(),
                family: Family::V6,
            },
            Error::UnknownPool { pool: s() },
            Error::PoolInvalid { pool: s() },
            Error::PoolNotAllowed {
                pool: s(),
                service: key.clone(),
                why: s(),
            },
            Error::RequestedIpOutsidePools { ip },
            Error::RequestedIpNotInRequestedPool { ip, pool: s() },
            Error::RequestedIpsInDifferentPools {
                first: ip,
                first_pool: s(),
                second: ip,
                second_pool: s(),
            },
            Error::RequestedFamilyNotInService {
                ip,
                family: Family::V4,
                families: s(),
            },
            Error::RequestedIpsNotDualStack {
                ips: s(),
                family: Family::V4,
            },
            Error::DualStackUnavailable,
            Error::BuggyIp { ip, pool: s() },
            Error::IpInUse {
                ip,
                other: key.clone(),
                detail: s(),
            },
            Error::SharingConflict {
                ip,
                other: key,
                detail: s(),
            },
            Error::InvalidAssignment {
                ips: s(),
                detail: s(),
            },
            Error::PoolDeleted { pool: s(), ip },
            Error::AddressNoLongerInPool { pool: s(), ip },
        ]
    }

    #[test]
    fn every_variant_has_its_own_snake_case_reason() {
        let all = every_variant();
        let reasons: BTreeSet<&str> = all.iter().map(Error::reason).collect();
        assert_eq!(reasons.len(), all.len());
        for reason in reasons {
            assert!(
                reason.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{reason}"
            );
        }
    }

    #[test]
    fn an_address_that_does_not_parse_keeps_its_text_as_invalid_address() {
        let parsed = AddressRange::parse("198.51.100.1-2001:db8::1").unwrap_err();
        let text = parsed.to_string();
        let err = Error::from(parsed);
        assert_eq!(err.reason(), "invalid_address");
        assert_eq!(err.to_string(), text);
    }

    #[test]
    fn only_service_mistakes_are_marked_malformed() {
        let malformed: Vec<&str> = every_variant()
            .iter()
            .filter(|e| e.is_malformed_service())
            .map(Error::reason)
            .collect();
        assert_eq!(malformed.len(), 9);
        assert!(malformed.contains(&"malformed_annotation"));
        assert!(!malformed.contains(&"ip_in_use"));
    }
}
