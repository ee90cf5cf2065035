//! Choosing IPs: requested IPs, a requested pool, or automatic assignment,
//! and the legality checks they share with restoring.

use std::net::IpAddr;

use super::error::AllocationError;
use super::key::ServiceKey;
use super::request::{AllocRequest, FamilyPolicy};
use super::{join, sharing, Allocator, Assignment, Holding, Located};
use crate::range::{is_buggy, Family};

/// Checks that `ips` is one IP, or two of different families.
pub(super) fn check_ip_set(ips: &[IpAddr]) -> Result<(), AllocationError> {
    let detail = match ips {
        [] => "no IP given",
        [_] => return Ok(()),
        [a, b] if Family::of(*a) != Family::of(*b) => return Ok(()),
        [_, _] => "both IPs are of the same family",
        _ => "a Service holds at most one IP per family",
    };
    Err(AllocationError::InvalidAssignment {
        ips: join(ips),
        detail: detail.to_string(),
    })
}

/// "IPv4", "IPv4 and IPv6" or "IPv4 or IPv6".
fn describe(families: &[Family], all: bool) -> String {
    let names: Vec<&str> = families.iter().map(|f| f.as_k8s_str()).collect();
    names.join(if all { " and " } else { " or " })
}

fn sorted(ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips = ips.to_vec();
    ips.sort();
    ips
}

impl Allocator {
    /// Whether `holding` still matches `request` and is still legal, so
    /// that `allocate` returns it unchanged.
    pub(super) fn keeps(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        holding: &Holding,
    ) -> bool {
        let assignment = &holding.assignment;
        if request
            .requested_pool
            .as_ref()
            .is_some_and(|pool| *pool != assignment.pool)
        {
            return false;
        }
        let held: Vec<Family> = assignment.ips.iter().map(|ip| Family::of(*ip)).collect();
        if request.requested_ips.is_empty() {
            let wanted = request.wanted_families();
            let fits = match request.family_policy {
                FamilyPolicy::SingleStack => held == wanted,
                FamilyPolicy::RequireDualStack => held.len() == 2,
                FamilyPolicy::PreferDualStack => held.iter().all(|f| wanted.contains(f)),
            };
            if !fits {
                return false;
            }
        } else if sorted(&request.requested_ips) != sorted(&assignment.ips)
            || self.check_requested(request).is_err()
        {
            return false;
        }
        let Some(&pool) = self.by_name.get(&assignment.pool) else {
            return false;
        };
        self.pools[pool].allows(service, request).is_ok()
            && assignment
                .ips
                .iter()
                .all(|ip| self.check_sharing(service, request, *ip).is_ok())
    }

    /// For a PreferDualStack Service holding one family, a free IP of the
    /// other family in the same pool, if any.
    pub(super) fn missing_family(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        pool: usize,
        assignment: &Assignment,
    ) -> Option<IpAddr> {
        if !request.requested_ips.is_empty()
            || request.family_policy != FamilyPolicy::PreferDualStack
            || assignment.ips.len() != 1
        {
            return None;
        }
        let held = Family::of(*assignment.ips.first()?);
        let missing = request.wanted_families().into_iter().find(|f| *f != held)?;
        self.free_ip(service, request, pool, missing)
    }

    /// Picks a pool and IPs for a Service that holds nothing.
    pub(super) fn choose(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
    ) -> Result<(usize, Vec<IpAddr>), AllocationError> {
        if !request.requested_ips.is_empty() {
            return self.choose_requested(service, request);
        }
        if let Some(name) = &request.requested_pool {
            return self.choose_from_pool(service, request, name);
        }
        self.choose_automatically(service, request)
    }

    /// Requested IPs must fit the Service's families: each IP's family must
    /// be in `spec.ipFamilies` (when given), and RequireDualStack needs one
    /// IP of each family.
    fn check_requested(&self, request: &AllocRequest) -> Result<(), AllocationError> {
        let ips = &request.requested_ips;
        check_ip_set(ips)?;
        if !request.families.is_empty() {
            for &ip in ips {
                let family = Family::of(ip);
                if !request.families.contains(&family) {
                    return Err(AllocationError::RequestedFamilyNotInService {
                        ip,
                        family,
                        families: describe(&request.families, true),
                    });
                }
            }
        }
        if request.family_policy == FamilyPolicy::RequireDualStack && ips.len() == 1 {
            return Err(AllocationError::RequestedIpsNotDualStack {
                ips: join(ips),
                family: Family::of(ips[0]),
            });
        }
        Ok(())
    }

    fn choose_requested(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
    ) -> Result<(usize, Vec<IpAddr>), AllocationError> {
        self.check_requested(request)?;
        let ips = &request.requested_ips;
        let mut chosen: Option<(IpAddr, usize)> = None;
        for &ip in ips {
            let pool = self.check_ip(service, request, ip, request.requested_pool.as_deref())?;
            if let Some((first, first_pool)) = chosen.filter(|(_, p)| *p != pool) {
                return Err(AllocationError::RequestedIpsInDifferentPools {
                    first,
                    first_pool: self.pools[first_pool].name().to_string(),
                    second: ip,
                    second_pool: self.pools[pool].name().to_string(),
                });
            }
            chosen = Some((ip, pool));
        }
        let (_, pool) = chosen.ok_or_else(|| AllocationError::InvalidAssignment {
            ips: String::new(),
            detail: "no IP given".to_string(),
        })?;
        Ok((pool, ips.clone()))
    }

    fn choose_from_pool(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        name: &str,
    ) -> Result<(usize, Vec<IpAddr>), AllocationError> {
        let &pool = self
            .by_name
            .get(name)
            .ok_or_else(|| AllocationError::UnknownPool {
                pool: name.to_string(),
            })?;
        let state = &self.pools[pool];
        if !state.validity.is_valid() {
            return Err(AllocationError::PoolInvalid {
                pool: name.to_string(),
            });
        }
        state.allows(service, request)?;
        let wanted = request.wanted_families();
        let picks: Vec<(Family, Option<IpAddr>)> = wanted
            .iter()
            .map(|&f| (f, self.free_ip(service, request, pool, f)))
            .collect();
        let got: Vec<IpAddr> = picks.iter().filter_map(|(_, ip)| *ip).collect();
        let complete = got.len() == wanted.len();
        let enough = match request.family_policy {
            FamilyPolicy::PreferDualStack => !got.is_empty(),
            _ => complete,
        };
        if enough {
            return Ok((pool, ipv4_first(got)));
        }
        // Name the first family that failed; for PreferDualStack, which
        // failed entirely, prefer "exhausted" over "lacks" when the pool
        // has the family at all.
        let failed = picks
            .iter()
            .filter(|(_, ip)| ip.is_none())
            .map(|(f, _)| *f)
            .collect::<Vec<_>>();
        let exhausted = failed.iter().find(|f| state.has_family(**f));
        let strict = request.family_policy != FamilyPolicy::PreferDualStack;
        match (strict, failed.first(), exhausted) {
            (true, Some(&family), _) if !state.has_family(family) => {
                Err(AllocationError::PoolLacksFamily {
                    pool: name.to_string(),
                    family,
                })
            }
            (_, _, Some(&family)) => Err(AllocationError::PoolExhausted {
                pool: name.to_string(),
                family,
            }),
            (_, first, None) => Err(AllocationError::PoolLacksFamily {
                pool: name.to_string(),
                family: first.copied().unwrap_or(Family::V4),
            }),
        }
    }

    /// Tries every pool the Service may use automatically, best first.
    /// SingleStack takes the first pool with a free IP of its family;
    /// RequireDualStack the first with both; PreferDualStack the first with
    /// both, else the first with the preferred family, else the first with
    /// the other (MetalLB's order).
    fn choose_automatically(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
    ) -> Result<(usize, Vec<IpAddr>), AllocationError> {
        let wanted = request.wanted_families();
        let need_all = request.family_policy != FamilyPolicy::PreferDualStack;
        let mut candidates: Vec<usize> = (0..self.pools.len())
            .filter(|&i| {
                let state = &self.pools[i];
                state.validity.is_valid()
                    && state.pool.auto_assign
                    && state.allows(service, request).is_ok()
                    && if need_all {
                        wanted.iter().all(|f| state.has_family(*f))
                    } else {
                        wanted.iter().any(|f| state.has_family(*f))
                    }
            })
            .collect();
        if candidates.is_empty() {
            return Err(AllocationError::NoMatchingPool {
                families: describe(&wanted, need_all),
            });
        }
        candidates.sort_by(|a, b| {
            self.pools[*a]
                .auto_order()
                .cmp(&self.pools[*b].auto_order())
        });

        let mut fallbacks: Vec<Option<(usize, IpAddr)>> = vec![None; wanted.len()];
        for pool in candidates {
            let picks: Vec<Option<IpAddr>> = wanted
                .iter()
                .map(|&f| self.free_ip(service, request, pool, f))
                .collect();
            if picks.iter().all(Option::is_some) {
                return Ok((pool, ipv4_first(picks.into_iter().flatten().collect())));
            }
            for (slot, pick) in fallbacks.iter_mut().zip(&picks) {
                if let (None, Some(ip)) = (&slot, pick) {
                    *slot = Some((pool, *ip));
                }
            }
        }
        if !need_all {
            if let Some((pool, ip)) = fallbacks.into_iter().flatten().next() {
                return Ok((pool, vec![ip]));
            }
        }
        if request.family_policy == FamilyPolicy::RequireDualStack {
            return Err(AllocationError::DualStackUnavailable);
        }
        Err(AllocationError::NoAvailableIps {
            families: describe(&wanted, need_all),
        })
    }

    /// The lowest usable IP of `family` in `pool`: for a Service with a
    /// sharing key, first an IP already held by Services it may share
    /// with (MetalLB packs shared Services the same way), else the lowest
    /// free one.
    pub(super) fn free_ip(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        pool: usize,
        family: Family,
    ) -> Option<IpAddr> {
        let shared = request
            .sharing_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .and_then(|key| self.by_sharing_key.get(key))
            .and_then(|ips| {
                ips.iter().copied().find(|&ip| {
                    Family::of(ip) == family
                        && self.index.find(ip) == Some(pool)
                        && self.check_sharing(service, request, ip).is_ok()
                })
            });
        shared.or_else(|| self.pools[pool].first_free(family))
    }

    /// Checks that `service` may hold `ip` and returns its pool: the IP
    /// lies in a valid pool (the requested one, if any) that allows the
    /// Service, is not buggy there, and is shared only legally.
    pub(super) fn check_ip(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        ip: IpAddr,
        requested_pool: Option<&str>,
    ) -> Result<usize, AllocationError> {
        let (pool, valid) = match self.locate(ip) {
            Located::Valid(pool) => (pool, true),
            Located::Invalid(pool) => (pool, false),
            Located::Nowhere => return Err(AllocationError::RequestedIpOutsidePools { ip }),
        };
        let state = &self.pools[pool];
        if let Some(wanted) = requested_pool.filter(|wanted| *wanted != state.name()) {
            return Err(AllocationError::RequestedIpNotInRequestedPool {
                ip,
                pool: wanted.to_string(),
            });
        }
        if !valid {
            return Err(AllocationError::PoolInvalid {
                pool: state.name().to_string(),
            });
        }
        state.allows(service, request)?;
        if state.pool.avoid_buggy_ips && is_buggy(ip) {
            return Err(AllocationError::BuggyIp {
                ip,
                pool: state.name().to_string(),
            });
        }
        self.check_sharing(service, request, ip)?;
        Ok(pool)
    }

    /// Checks the sharing rules against every other holder of `ip`.
    pub(super) fn check_sharing(
        &self,
        service: &ServiceKey,
        request: &AllocRequest,
        ip: IpAddr,
    ) -> Result<(), AllocationError> {
        for other in self.services_on(ip).filter(|other| *other != service) {
            if let Some(holding) = self.holdings.get(other) {
                sharing::check(ip, service, request, other, &holding.request)?;
            }
        }
        Ok(())
    }
}

/// The order of IPs the allocator picked, as `status.loadBalancer.ingress`
/// lists them: IPv4 first, whatever `spec.ipFamilies` prefers, as MetalLB
/// writes them (`selectIPsForFamilyAndPolicy` in its allocator). Speakers
/// elect the owner under the first IP, so a cluster moving from MetalLB
/// keeps every dual-stack IP on the node MetalLB chose. Requested IPs keep
/// the order they were asked in; a family added to a PreferDualStack
/// Service comes after the one it holds (its owner stays put).
fn ipv4_first(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.sort_by_key(IpAddr::is_ipv6);
    ips
}
