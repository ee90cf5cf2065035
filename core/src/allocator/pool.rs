//! Pools: their definition, validation, free-address spaces and counts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::range::{from_u128, to_u128, AddressRange, Family};

use super::error::{AllocationError, PoolError};
use super::intervals::Space;
use super::key::ServiceKey;
use super::request::AllocRequest;
use super::selector::ServiceAllocation;

/// An address pool as the allocator sees it (built from an `IPAddressPool`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<AddressRange>,
    /// Whether Services that do not name the pool may get addresses from it.
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// Priority and the Services allowed to use the pool.
    pub allocation: ServiceAllocation,
    /// A problem found while building the pool from its resource, such as
    /// an address that does not parse. A pool with one is invalid with
    /// this error, so its condition names the bad string and its holders
    /// are told their pool is invalid rather than deleted.
    pub config_error: Option<PoolError>,
}

impl Pool {
    /// An open, auto-assigning pool over `addresses`.
    pub fn new(name: impl Into<String>, addresses: Vec<AddressRange>) -> Self {
        Pool {
            name: name.into(),
            addresses,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: ServiceAllocation::default(),
            config_error: None,
        }
    }

    /// An open, auto-assigning pool from the strings of
    /// `IPAddressPool.spec.addresses`. Strings that do not parse are left
    /// out and the first such error becomes [`Pool::config_error`].
    ///
    /// ```
    /// use ferrolb_core::allocator::Pool;
    /// let pool = Pool::parse("blue", &["198.51.100.0/24", "198.51.100.300"]);
    /// assert_eq!(pool.addresses.len(), 1);
    /// assert!(pool.config_error.unwrap().to_string().contains("\"198.51.100.300\""));
    /// ```
    pub fn parse(name: impl Into<String>, addresses: &[impl AsRef<str>]) -> Self {
        let mut pool = Pool::new(name, Vec::with_capacity(addresses.len()));
        for text in addresses {
            match AddressRange::parse(text.as_ref()) {
                Ok(range) => pool.addresses.push(range),
                Err(err) => {
                    pool.config_error.get_or_insert(err.into());
                }
            }
        }
        pool
    }
}

/// Whether a pool may hand out addresses; the controller writes this to the
/// pool's `Valid` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    /// The pool is usable.
    Valid,
    /// The pool hands out nothing; the error names the bad address,
    /// selector or the overlapping pool, and its [`PoolError::reason`] suits a
    /// condition reason.
    Invalid(PoolError),
}

impl Validity {
    /// True for [`Validity::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Validity::Valid)
    }
}

/// Address counts of one pool.
///
/// Counts are `u128` because a pool may be a whole IPv6 /64 (2^64
/// addresses, one more than `u64` holds) or larger; they saturate at
/// `u128::MAX` (only `::/0` gets there). An IP shared by several Services
/// counts once. An invalid pool reports nothing available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// IPv4 addresses held by at least one Service.
    pub assigned_v4: u128,
    /// IPv6 addresses held by at least one Service.
    pub assigned_v6: u128,
    /// IPv4 addresses that could still be handed out.
    pub available_v4: u128,
    /// IPv6 addresses that could still be handed out.
    pub available_v6: u128,
}

/// [`PoolCounts`] clamped to `i64::MAX`, for the CRD status (int64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCountsI64 {
    /// IPv4 addresses held by at least one Service.
    pub assigned_v4: i64,
    /// IPv6 addresses held by at least one Service.
    pub assigned_v6: i64,
    /// IPv4 addresses that could still be handed out.
    pub available_v4: i64,
    /// IPv6 addresses that could still be handed out.
    pub available_v6: i64,
}

impl PoolCounts {
    /// The counts clamped to `i64::MAX`.
    pub fn saturating_i64(&self) -> PoolCountsI64 {
        let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        PoolCountsI64 {
            assigned_v4: clamp(self.assigned_v4),
            assigned_v6: clamp(self.assigned_v6),
            available_v4: clamp(self.available_v4),
            available_v6: clamp(self.available_v6),
        }
    }
}

/// A pool with its validity and usage.
#[derive(Debug, Clone)]
pub(crate) struct PoolState {
    pub(crate) pool: Pool,
    pub(crate) validity: Validity,
    v4: Option<Space>,
    v6: Option<Space>,
    capacity_v4: u128,
    capacity_v6: u128,
    pub(crate) assigned_v4: u128,
    pub(crate) assigned_v6: u128,
}

impl PoolState {
    fn new(pool: Pool, validity: Validity) -> Self {
        let mut state = PoolState {
            pool,
            validity,
            v4: None,
            v6: None,
            capacity_v4: 0,
            capacity_v6: 0,
            assigned_v4: 0,
            assigned_v6: 0,
        };
        if state.validity.is_valid() {
            for family in [Family::V4, Family::V6] {
                let mut ranges: Vec<(u128, u128)> = state
                    .pool
                    .addresses
                    .iter()
                    .filter(|r| r.family() == family)
                    .map(AddressRange::bounds)
                    .collect();
                ranges.sort_unstable();
                let avoid = state.pool.avoid_buggy_ips && family == Family::V4;
                let capacity = ranges.iter().fold(0u128, |sum, &(lo, hi)| {
                    let size = (hi - lo).saturating_add(1);
                    let buggy = if avoid { buggy_count(lo, hi) } else { 0 };
                    sum.saturating_add(size - buggy)
                });
                let space = Space::new(family, &ranges, state.pool.avoid_buggy_ips);
                match family {
                    Family::V4 => (state.v4, state.capacity_v4) = (space, capacity),
                    Family::V6 => (state.v6, state.capacity_v6) = (space, capacity),
                }
            }
        }
        state
    }

    pub(crate) fn name(&self) -> &str {
        &self.pool.name
    }

    pub(crate) fn space(&self, family: Family) -> Option<&Space> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    pub(crate) fn has_family(&self, family: Family) -> bool {
        self.space(family).is_some()
    }

    /// Marks `ip` used (it must lie in the pool).
    pub(crate) fn take(&mut self, ip: IpAddr) {
        let (family, n) = to_u128(ip);
        let (space, count) = match family {
            Family::V4 => (self.v4.as_mut(), &mut self.assigned_v4),
            Family::V6 => (self.v6.as_mut(), &mut self.assigned_v6),
        };
        if let Some(space) = space {
            space.take(n);
            *count += 1;
        }
    }

    /// Marks `ip` free again.
    pub(crate) fn give_back(&mut self, ip: IpAddr) {
        let (family, n) = to_u128(ip);
        let (space, count) = match family {
            Family::V4 => (self.v4.as_mut(), &mut self.assigned_v4),
            Family::V6 => (self.v6.as_mut(), &mut self.assigned_v6),
        };
        if let Some(space) = space {
            space.give_back(n);
            *count = count.saturating_sub(1);
        }
    }

    /// The lowest free address of `family`.
    pub(crate) fn first_free(&self, family: Family) -> Option<IpAddr> {
        let n = self.space(family)?.first_free()?;
        Some(from_u128(family, n))
    }

    pub(crate) fn counts(&self) -> PoolCounts {
        let valid = self.validity.is_valid();
        let available = |capacity: u128, assigned: u128| {
            if valid {
                capacity.saturating_sub(assigned)
            } else {
                0
            }
        };
        PoolCounts {
            assigned_v4: self.assigned_v4,
            assigned_v6: self.assigned_v6,
            available_v4: available(self.capacity_v4, self.assigned_v4),
            available_v6: available(self.capacity_v6, self.assigned_v6),
        }
    }

    /// Whether the pool's serviceAllocation lets `key` use it.
    pub(crate) fn allows(
        &self,
        key: &ServiceKey,
        request: &AllocRequest,
    ) -> Result<(), AllocationError> {
        self.pool
            .allocation
            .allows(&key.namespace, &request.namespace_labels, &request.labels)
            .map_err(|why| AllocationError::PoolNotAllowed {
                pool: self.pool.name.clone(),
                service: key.clone(),
                why,
            })
    }

    /// Whether `ip` lies in one of the pool's ranges.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.pool.addresses.iter().any(|r| r.contains(ip))
    }

    /// Order for automatic assignment: by priority (lower first, none
    /// last); at equal priority pools whose serviceAllocation restricts
    /// their users come before open pools (MetalLB tries its "pinned"
    /// pools first); then by name.
    pub(crate) fn auto_order(&self) -> (bool, i32, bool, &str) {
        let alloc = &self.pool.allocation;
        (
            alloc.priority.is_none(),
            alloc.priority.unwrap_or(0),
            !alloc.is_restricted(),
            &self.pool.name,
        )
    }
}

/// Number of `n` in `lo..=hi` ending in 0x00 or 0xff, computed without
/// walking the range.
fn buggy_count(lo: u128, hi: u128) -> u128 {
    // Count of `n` in `0..=x` with `n % 256 == r`.
    let upto = |x: u128, r: u128| if x < r { 0 } else { (x - r) / 256 + 1 };
    let between = |r: u128| upto(hi, r) - if lo == 0 { 0 } else { upto(lo - 1, r) };
    between(0) + between(255)
}

/// The valid pools' ranges, for finding the pool that holds an address.
#[derive(Debug, Clone, Default)]
pub(crate) struct RangeIndex {
    ranges: BTreeMap<(Family, u128), (u128, usize)>,
}

impl RangeIndex {
    /// The pool index holding `ip`, among the indexed pools.
    pub(crate) fn find(&self, ip: IpAddr) -> Option<usize> {
        let (family, n) = to_u128(ip);
        let (&(f, _), &(end, pool)) = self.ranges.range(..=(family, n)).next_back()?;
        (f == family && end >= n).then_some(pool)
    }

    /// The first indexed range overlapping `range`, with its pool index.
    fn first_overlap(&self, range: &AddressRange) -> Option<(AddressRange, usize)> {
        let family = range.family();
        let (lo, hi) = range.bounds();
        let before = self
            .ranges
            .range(..=(family, lo))
            .next_back()
            .filter(|(&(f, _), &(end, _))| f == family && end >= lo);
        let after = || self.ranges.range((family, lo)..=(family, hi)).next();
        let (&(_, start), &(end, pool)) = before.or_else(after)?;
        let other = AddressRange::new(from_u128(family, start), from_u128(family, end)).ok()?;
        Some((other, pool))
    }

    fn insert(&mut self, range: &AddressRange, pool: usize) {
        let (lo, hi) = range.bounds();
        self.ranges.insert((range.family(), lo), (hi, pool));
    }
}

/// Validates `pools` in precedence order and builds their state.
///
/// A pool is invalid when it carries a [`Pool::config_error`], an earlier
/// pool has the same name, a selector of
/// its serviceAllocation is malformed, two of its own ranges overlap, or one
/// of its ranges overlaps a range of an earlier *valid* pool. Invalid pools
/// are left out of the index so they never hand out an address.
pub(crate) fn build(pools: Vec<Pool>) -> (Vec<PoolState>, RangeIndex) {
    let mut index = RangeIndex::default();
    let mut names = BTreeSet::new();
    let mut states = Vec::with_capacity(pools.len());
    for pool in pools {
        let validity = match validate(&pool, &names, &index, &states) {
            Ok(()) => Validity::Valid,
            Err(err) => Validity::Invalid(err),
        };
        names.insert(pool.name.clone());
        if validity.is_valid() {
            for range in &pool.addresses {
                index.insert(range, states.len());
            }
        }
        states.push(PoolState::new(pool, validity));
    }
    (states, index)
}

fn validate(
    pool: &Pool,
    names: &BTreeSet<String>,
    index: &RangeIndex,
    earlier: &[PoolState],
) -> Result<(), PoolError> {
    if let Some(err) = &pool.config_error {
        return Err(err.clone());
    }
    if names.contains(&pool.name) {
        return Err(PoolError::DuplicatePoolName {
            pool: pool.name.clone(),
        });
    }
    let alloc = &pool.allocation;
    for (field, selectors) in [
        (
            "serviceAllocation.namespaceSelectors",
            &alloc.namespace_selectors,
        ),
        (
            "serviceAllocation.serviceSelectors",
            &alloc.service_selectors,
        ),
    ] {
        for selector in selectors {
            selector
                .validate()
                .map_err(|err| PoolError::InvalidSelector {
                    pool: pool.name.clone(),
                    field,
                    detail: err.to_string(),
                })?;
        }
    }
    let mut ranges = pool.addresses.clone();
    ranges.sort_by_key(|r| (r.family(), r.bounds()));
    for pair in ranges.windows(2) {
        if pair[0].intersection(&pair[1]).is_some() {
            return Err(PoolError::PoolRangesOverlap {
                pool: pool.name.clone(),
                first: pair[0],
                second: pair[1],
            });
        }
    }
    for range in &ranges {
        if let Some((other_range, other)) = index.first_overlap(range) {
            let overlap = range.intersection(&other_range).unwrap_or(*range);
            let other = earlier
                .get(other)
                .map(|p| p.pool.name.clone())
                .unwrap_or_default();
            return Err(PoolError::PoolOverlapsPool {
                pool: pool.name.clone(),
                other,
                overlap,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buggy_count_matches_a_walk() {
        for (lo, hi) in [
            (0, 0),
            (0, 255),
            (1, 254),
            (255, 256),
            (200, 1000),
            (256, 511),
        ] {
            let walked = (lo..=hi).filter(|n| matches!(n & 0xff, 0 | 0xff)).count() as u128;
            assert_eq!(buggy_count(lo, hi), walked, "{lo}..={hi}");
        }
    }
}
