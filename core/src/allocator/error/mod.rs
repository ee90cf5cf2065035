//! Every way the allocator can refuse, one enum per concern, and [`Error`]
//! over all three:
//!
//! - [`PoolError`]: why a pool is invalid (an address, a selector, an
//!   overlap);
//! - [`RequestError`]: why a Service's spec or annotations are malformed;
//! - [`AllocationError`]: why a well-formed request gets no IPs, or an
//!   assignment had to go after a pool update.
//!
//! The `Display` text of each variant is written for an operator: it becomes
//! the Event message shown by `kubectl describe svc` or the message of a
//! pool's `Valid` condition, so it names the Service, address or pool.
//! [`Error::reason`] gives a short stable label for metrics and Event reasons.

mod allocation;
mod pool;
mod request;

pub use allocation::AllocationError;
pub use pool::PoolError;
pub use request::RequestError;

use crate::range;

/// Result alias for the allocator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an address could not be parsed, a pool is invalid, a Service's
/// annotations are malformed, or an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A pool is invalid.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A Service's spec or annotations are malformed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A well-formed request was refused, or an assignment evicted.
    #[error(transparent)]
    Allocation(#[from] AllocationError),
}

impl From<range::Error> for Error {
    /// A string of `IPAddressPool.spec.addresses` that does not parse, with
    /// the parser's text unchanged.
    fn from(err: range::Error) -> Self {
        Error::Pool(err.into())
    }
}

impl Error {
    /// A short snake_case label for metrics and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Pool(err) => err.reason(),
            Error::Request(err) => err.reason(),
            Error::Allocation(err) => err.reason(),
        }
    }

    /// True for errors caused by the Service's own spec or annotations
    /// (the user must fix the Service), as opposed to refusals that may
    /// resolve by themselves when pools or other Services change.
    pub fn is_malformed_service(&self) -> bool {
        matches!(self, Error::Request(_))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use std::net::IpAddr;

    use super::*;
    use crate::allocator::ServiceKey;
    use crate::range::{AddressRange, Family};

    fn every_variant() -> Vec<Error> {
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let range = AddressRange::parse("198.51.100.0/30").unwrap();
        let key = ServiceKey::new("default", "web");
        let s = || "x".to_string();
        let pool = [
            PoolError::InvalidAddress {
                input: s(),
                detail: s(),
            },
            PoolError::PoolRangesOverlap {
                pool: s(),
                first: range,
                second: range,
            },
            PoolError::PoolOverlapsPool {
                pool: s(),
                other: s(),
                overlap: range,
            },
            PoolError::DuplicatePoolName { pool: s() },
            PoolError::InvalidSelector {
                pool: s(),
                field: "f",
                detail: s(),
            },
        ];
        let request = [
            RequestError::AnnotationBadIp {
                annotation: s(),
                value: s(),
                item: s(),
            },
            RequestError::AnnotationSameFamilyTwice {
                annotation: s(),
                value: s(),
                family: Family::V4,
            },
            RequestError::AnnotationsDisagree {
                first: s(),
                first_value: s(),
                second: s(),
                second_value: s(),
            },
            RequestError::BadLoadBalancerIp { value: s() },
            RequestError::LoadBalancerIpDisagrees {
                spec: s(),
                annotation: s(),
                value: s(),
            },
            RequestError::UnknownProtocol {
                protocol: s(),
                port: 1,
            },
            RequestError::UnknownIpFamily { value: s() },
            RequestError::UnknownIpFamilyPolicy { value: s() },
            RequestError::UnknownTrafficPolicy { value: s() },
        ];
        let allocation = [
            AllocationError::NoMatchingPool { families: s() },
            AllocationError::NoAvailableIps { families: s() },
            AllocationError::PoolExhausted {
                pool: s(),
                family: Family::V4,
            },
            AllocationError::PoolLacksFamily {
                pool: s(),
                family: Family::V6,
            },
            AllocationError::UnknownPool { pool: s() },
            AllocationError::PoolInvalid { pool: s() },
            AllocationError::PoolNotAllowed {
                pool: s(),
                service: key.clone(),
                why: s(),
            },
            AllocationError::RequestedIpOutsidePools { ip },
            AllocationError::RequestedIpNotInRequestedPool { ip, pool: s() },
            AllocationError::RequestedIpsInDifferentPools {
                first: ip,
                first_pool: s(),
                second: ip,
                second_pool: s(),
            },
            AllocationError::RequestedFamilyNotInService {
                ip,
                family: Family::V4,
                families: s(),
            },
            AllocationError::RequestedIpsNotDualStack {
                ips: s(),
                family: Family::V4,
            },
            AllocationError::DualStackUnavailable,
            AllocationError::BuggyIp { ip, pool: s() },
            AllocationError::IpInUse {
                ip,
                other: key.clone(),
                detail: s(),
            },
            AllocationError::SharingConflict {
                ip,
                other: key,
                detail: s(),
            },
            AllocationError::InvalidAssignment {
                ips: s(),
                detail: s(),
            },
            AllocationError::PoolDeleted { pool: s(), ip },
            AllocationError::AddressNoLongerInPool { pool: s(), ip },
        ];
        let pool = pool.into_iter().map(Error::from);
        let request = request.into_iter().map(Error::from);
        let allocation = allocation.into_iter().map(Error::from);
        pool.chain(request).chain(allocation).collect()
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
