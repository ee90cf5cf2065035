//! The IP allocator: given pools and current assignments, which IPs a
//! Service gets, or exactly why not.
//!
//! Pure: std and this crate's address ranges ([`crate::range`]) and label
//! selectors ([`crate::selector`], shared with the speaker); no I/O, no
//! Kubernetes objects. The controller converts Services
//! with [`AllocRequest::from_service`] and `IPAddressPool`s with
//! [`Pool::parse`] (which uses [`AddressRange::parse`]) into [`Pool`]s, then
//! drives an [`Allocator`]:
//!
//! 1. [`Allocator::set_pools`] with every pool, in precedence order;
//! 2. [`Allocator::restore`] for every Service that already has IPs in its
//!    status, so a restart never moves an IP;
//! 3. [`Allocator::allocate`] for the others, and again whenever a Service
//!    changes; [`Allocator::release`] when it is deleted or stops being a
//!    LoadBalancer. A changed request that cannot be met costs a Service
//!    none of the IPs it legally holds ([`Refusal::kept`]).
//!
//! Every map is ordered, so the same calls always give the same answers.
//! See `docs/allocator.md` for data structures and complexity.

mod choose;
mod error;
mod intervals;
mod key;
mod pool;
mod request;
mod selector;
mod sharing;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub use crate::range::{is_buggy, AddressRange, Family};
pub use error::{AllocationError, Error, PoolError, RequestError, Result};
pub use key::ServiceKey;
pub use pool::{Pool, PoolCounts, PoolCountsI64, Validity};
pub use request::{
    AllocRequest, FamilyPolicy, Port, Protocol, ServiceParts, ADDRESS_POOL_ANNOTATIONS,
    LOAD_BALANCER_IPS_ANNOTATIONS, SHARING_KEY_ANNOTATIONS,
};
pub use selector::{LabelSelector, Labels, SelectorOp, SelectorRequirement, ServiceAllocation};

use pool::{PoolState, RangeIndex};

/// The IPs a Service holds and the pool they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The pool holding every IP of the assignment.
    pub pool: String,
    /// One IP, or one per family: IPv4 first when the allocator picked
    /// them (as MetalLB), requested IPs in the order asked, a family added
    /// later after the one held.
    pub ips: Vec<IpAddr>,
}

/// An assignment that became illegal after [`Allocator::set_pools`] and
/// was released; the caller should allocate the Service again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    /// The Service.
    pub service: ServiceKey,
    /// What it held.
    pub assignment: Assignment,
    /// Why it may not keep it.
    pub reason: AllocationError,
}

/// Why [`Allocator::allocate`] could not meet a request, and what the
/// Service holds meanwhile.
///
/// Its text is the [`AllocationError`]'s; [`Refusal::reason`] its label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    /// Why the request cannot be met.
    pub error: AllocationError,
    /// The IPs the Service keeps until the request can be met: what it
    /// held before, when that is still legal for it as it is now (a valid
    /// pool that allows it, not buggy there, shared only legally). `None`:
    /// it holds nothing. Boxed to keep `allocate`'s `Result` small.
    pub kept: Option<Box<Assignment>>,
}

impl Refusal {
    /// The [`AllocationError::reason`] of the refusal.
    pub fn reason(&self) -> &'static str {
        self.error.reason()
    }
}

#[derive(Debug, Clone)]
struct Holding {
    assignment: Assignment,
    request: AllocRequest,
}

/// Tracks pools and assignments and hands out IPs. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: Vec<PoolState>,
    /// Pool name -> index in `pools` (the first pool of that name).
    by_name: BTreeMap<String, usize>,
    /// Ranges of the valid pools.
    index: RangeIndex,
    holdings: BTreeMap<ServiceKey, Holding>,
    /// IP -> Services holding it, sorted (more than one only when
    /// shared). A `Vec` because almost every IP has one holder, and a
    /// one-element `BTreeSet` would allocate a whole B-tree node.
    users: BTreeMap<IpAddr, Vec<ServiceKey>>,
    /// Sharing key -> IPs whose holders carry it, to prefer joining them.
    by_sharing_key: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator with no pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the pools. `pools` must be in precedence order (the caller
    /// sorts `IPAddressPool`s by creation time, then name): a pool that
    /// overlaps an earlier valid pool is invalid.
    ///
    /// Every assignment that is still legal stays exactly as it is (it may
    /// now be counted in another pool if its addresses moved there). The
    /// others are released and returned, sorted by Service, with the
    /// reason: pool deleted, address no longer in any pool, pool invalid,
    /// pool no longer allows the Service, or address now buggy.
    pub fn set_pools(&mut self, pools: Vec<Pool>) -> Vec<Eviction> {
        let (states, index) = pool::build(pools);
        self.by_name = BTreeMap::new();
        for (i, state) in states.iter().enumerate() {
            self.by_name.entry(state.name().to_string()).or_insert(i);
        }
        self.pools = states;
        self.index = index;
        let holdings = std::mem::take(&mut self.holdings);
        self.users.clear();
        self.by_sharing_key.clear();

        let mut evictions = Vec::new();
        for (service, holding) in holdings {
            match self.still_in_a_pool(&service, &holding) {
                Ok(pool) => self.add(service, holding.request, pool, holding.assignment.ips),
                Err(reason) => evictions.push(Eviction {
                    service,
                    assignment: holding.assignment,
                    reason,
                }),
            }
        }
        evictions
    }

    /// Whether `holding` may stay under the new pools; sharing is not
    /// re-checked because it does not depend on pools.
    fn still_in_a_pool(
        &self,
        service: &ServiceKey,
        holding: &Holding,
    ) -> Result<usize, AllocationError> {
        let old_pool = &holding.assignment.pool;
        let mut found: Option<usize> = None;
        for &ip in &holding.assignment.ips {
            let pool = match self.locate(ip) {
                Located::Valid(pool) => pool,
                Located::Invalid(pool) => {
                    return Err(AllocationError::PoolInvalid {
                        pool: self.pools[pool].name().to_string(),
                    })
                }
                Located::Nowhere if !self.by_name.contains_key(old_pool) => {
                    return Err(AllocationError::PoolDeleted {
                        pool: old_pool.clone(),
                        ip,
                    })
                }
                Located::Nowhere => {
                    return Err(AllocationError::AddressNoLongerInPool {
                        pool: old_pool.clone(),
                        ip,
                    });
                }
            };
            let state = &self.pools[pool];
            state.allows(service, &holding.request)?;
            if state.pool.avoid_buggy_ips && is_buggy(ip) {
                return Err(AllocationError::BuggyIp {
                    ip,
                    pool: state.name().to_string(),
                });
            }
            match found {
                Some(first) if first != pool => {
                    return Err(AllocationError::AddressNoLongerInPool {
                        pool: self.pools[first].name().to_string(),
                        ip,
                    })
                }
                _ => found = Some(pool),
            }
        }
        found.ok_or_else(|| AllocationError::InvalidAssignment {
            ips: String::new(),
            detail: "it holds no IP".to_string(),
        })
    }

    /// Gives `service` IPs for `request`, in this order of attempts:
    /// requested IPs, else the requested pool, else automatic assignment.
    ///
    /// If the Service already holds IPs that still match the request (same
    /// requested IPs, same requested pool, families fitting the policy)
    /// and are still legal, it keeps them (a PreferDualStack Service holding
    /// one family also gets the other from the same pool when one is free).
    /// Otherwise a new choice is made as if it held nothing (its own IPs
    /// count as free). When that choice is refused, a Service whose old IPs
    /// are still legal for it as it is now (as [`Allocator::restore`] judges
    /// them) keeps them, under the new request, and the refusal says so in
    /// [`Refusal::kept`]: an unmet request never costs a working IP, and
    /// the next `allocate` after something frees up tries again. Only a
    /// Service whose old IPs are no longer legal ends up with nothing
    /// (MetalLB releases first in every case).
    pub fn allocate(
        &mut self,
        service: &ServiceKey,
        request: &AllocRequest,
    ) -> Result<Assignment, Refusal> {
        if let Some(holding) = self.holdings.get(service) {
            if self.keeps(service, request, holding) {
                let mut assignment = holding.assignment.clone();
                self.remove(service);
                let pool = self.by_name.get(&assignment.pool).copied();
                if let Some(pool) = pool {
                    // The added family goes last: the first IP, which the
                    // owner is elected under, stays (MetalLB appends too).
                    if let Some(extra) = self.missing_family(service, request, pool, &assignment) {
                        assignment.ips.push(extra);
                    }
                    self.add(
                        service.clone(),
                        request.clone(),
                        pool,
                        assignment.ips.clone(),
                    );
                    return Ok(assignment);
                }
            }
        }
        let previous = self.remove(service);
        match self.choose(service, request) {
            Ok((pool, ips)) => {
                let assignment = Assignment {
                    pool: self.pools[pool].name().to_string(),
                    ips: ips.clone(),
                };
                self.add(service.clone(), request.clone(), pool, ips);
                Ok(assignment)
            }
            Err(error) => {
                let kept = previous.and_then(|held| {
                    let pool = self
                        .legal_pool(service, request, &held.assignment.ips)
                        .ok()?;
                    self.add(service.clone(), request.clone(), pool, held.assignment.ips);
                    self.assignment(service).cloned().map(Box::new)
                });
                Err(Refusal { error, kept })
            }
        }
    }

    /// Loads an assignment read back from a Service's status.
    ///
    /// The IPs are accepted when they are legal for the Service: one IP or
    /// one per family, all in one valid pool the Service may use (even a
    /// pool with `autoAssign: false`, and even if the request names another
    /// pool or other IPs: [`Allocator::allocate`] moves it later if the
    /// request differs), not buggy in that pool, and shared only as the
    /// sharing rules allow. Any assignment the Service held before is
    /// dropped first; on a refusal it holds nothing.
    pub fn restore(
        &mut self,
        service: &ServiceKey,
        request: &AllocRequest,
        ips: &[IpAddr],
    ) -> Result<Assignment, AllocationError> {
        self.remove(service);
        let pool = self.legal_pool(service, request, ips)?;
        self.add(service.clone(), request.clone(), pool, ips.to_vec());
        Ok(Assignment {
            pool: self.pools[pool].name().to_string(),
            ips: ips.to_vec(),
        })
    }

    /// The pool in which `service`, holding nothing, may hold `ips` for
    /// `request` (whatever IPs or pool the request names): one IP or one
    /// per family, all in one valid pool that allows the Service, not buggy
    /// there, shared only legally.
    fn legal_pool(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        ips: &[IpAddr],
    ) -> Result<usize, AllocationError> {
        choose::check_ip_set(ips)?;
        let mut pool: Option<usize> = None;
        for &ip in ips {
            let here = self.check_ip(service, request, ip, None)?;
            if let Some(first) = pool.filter(|first| *first != here) {
                return Err(AllocationError::InvalidAssignment {
                    ips: join(ips),
                    detail: format!(
                        "{} is in IPAddressPool {:?} and {ip} in {:?}; one Service uses one pool",
                        ips[0],
                        self.pools[first].name(),
                        self.pools[here].name()
                    ),
                });
            }
            pool = Some(here);
        }
        pool.ok_or_else(|| AllocationError::InvalidAssignment {
            ips: String::new(),
            detail: "no IP given".to_string(),
        })
    }

    /// Frees whatever `service` holds; returns it.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        self.remove(service).map(|h| h.assignment)
    }

    /// What `service` holds.
    pub fn assignment(&self, service: &ServiceKey) -> Option<&Assignment> {
        self.holdings.get(service).map(|h| &h.assignment)
    }

    /// Every assignment, sorted by Service.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> + '_ {
        self.holdings.iter().map(|(k, h)| (k, &h.assignment))
    }

    /// The Services holding `ip`, sorted.
    pub fn services_on(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceKey> + '_ {
        self.users.get(&ip).into_iter().flatten()
    }

    /// Names of the pools, in the order given to [`Allocator::set_pools`].
    pub fn pool_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.pools.iter().map(PoolState::name)
    }

    /// Whether the pool named `pool` is valid, and why not.
    pub fn validity(&self, pool: &str) -> Option<&Validity> {
        let &i = self.by_name.get(pool)?;
        Some(&self.pools[i].validity)
    }

    /// Address counts of the pool named `pool`.
    pub fn counts(&self, pool: &str) -> Option<PoolCounts> {
        let &i = self.by_name.get(pool)?;
        Some(self.pools[i].counts())
    }

    /// Records a holding; the caller has checked it is legal.
    fn add(&mut self, service: ServiceKey, request: AllocRequest, pool: usize, ips: Vec<IpAddr>) {
        let sharing = request.sharing_key.clone().filter(|k| !k.is_empty());
        for &ip in &ips {
            let users = self
                .users
                .entry(ip)
                .or_insert_with(|| Vec::with_capacity(1));
            if users.is_empty() {
                self.pools[pool].take(ip);
            }
            if let Err(at) = users.binary_search(&service) {
                users.insert(at, service.clone());
            }
            if let Some(key) = &sharing {
                self.by_sharing_key
                    .entry(key.clone())
                    .or_default()
                    .insert(ip);
            }
        }
        let assignment = Assignment {
            pool: self.pools[pool].name().to_string(),
            ips,
        };
        self.holdings.insert(
            service,
            Holding {
                assignment,
                request,
            },
        );
    }

    /// Forgets a holding and frees IPs nobody else holds.
    fn remove(&mut self, service: &ServiceKey) -> Option<Holding> {
        let holding = self.holdings.remove(service)?;
        let pool = self.by_name.get(&holding.assignment.pool).copied();
        for &ip in &holding.assignment.ips {
            let Some(users) = self.users.get_mut(&ip) else {
                continue;
            };
            if let Ok(at) = users.binary_search(service) {
                users.remove(at);
            }
            if !users.is_empty() {
                // The others on this IP carry the same sharing key, so the
                // IP stays listed under it.
                continue;
            }
            self.users.remove(&ip);
            if let Some(pool) = pool {
                self.pools[pool].give_back(ip);
            }
            if let Some(key) = holding.request.sharing_key.as_deref() {
                if let Some(ips) = self.by_sharing_key.get_mut(key) {
                    ips.remove(&ip);
                    if ips.is_empty() {
                        self.by_sharing_key.remove(key);
                    }
                }
            }
        }
        Some(holding)
    }
}

/// Where an address lives.
enum Located {
    /// In this valid pool.
    Valid(usize),
    /// In no valid pool, but in this invalid one.
    Invalid(usize),
    /// Nowhere.
    Nowhere,
}

impl Allocator {
    fn locate(&self, ip: IpAddr) -> Located {
        if let Some(pool) = self.index.find(ip) {
            return Located::Valid(pool);
        }
        // Invalid pools are rare and small in number: a scan is fine.
        self.pools
            .iter()
            .position(|p| !p.validity.is_valid() && p.contains(ip))
            .map_or(Located::Nowhere, Located::Invalid)
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
