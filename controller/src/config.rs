//! Custom resources -> allocator pools and the status the controller reports
//! on them. Pure: no I/O, the clock is passed in.
//!
//! - [`pools`] turns `IPAddressPool`s into allocator [`Pool`]s in precedence
//!   order (creation time, then namespace/name), so the older of two
//!   overlapping pools wins, as in MetalLB.
//! - [`pool_status`] builds a pool's status (counts, `Valid`, `Advertised`).
//! - [`advertisements`] decides which pools each `L2Advertisement` selects,
//!   and builds its status (`Valid`, `PoolsSelected`).

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_crds::conditions::{
    self, REASON_ADVERTISED, REASON_INVALID_ADDRESS, REASON_INVALID_RANGE, REASON_INVALID_SELECTOR,
    REASON_NOT_ADVERTISED, REASON_NO_POOL_SELECTED, REASON_OVERLAPPING_POOL, REASON_POOLS_SELECTED,
    REASON_UNKNOWN_POOL, REASON_VALID, STATUS_FALSE, STATUS_TRUE, TYPE_ADVERTISED,
    TYPE_POOLS_SELECTED, TYPE_VALID,
};
use ferrolb_crds::selector::{self, LabelSelector};
use ferrolb_crds::{IPAddressPool, IPAddressPoolStatus, L2Advertisement, L2AdvertisementStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector as K8sSelector, Time,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use ferrolb_core::allocator::{Pool, PoolCounts, PoolError, ServiceAllocation, Validity};

mod spec_checks;

/// Converts a Kubernetes label selector into the allocator's, refusing
/// one it may not evaluate (an unknown operator, `In` without values, ...):
/// the caller reports the error in a `Valid` condition and the selector
/// selects nothing.
pub fn label_selector(k8s: &K8sSelector) -> selector::Result<LabelSelector> {
    let out = selector::from_k8s(k8s);
    out.validate()?;
    Ok(out)
}

/// The precedence key of a pool: older first, then namespace/name. The
/// allocator marks the later of two overlapping pools invalid, so this
/// order decides which one keeps working.
fn precedence(pool: &IPAddressPool) -> (Option<Timestamp>, String, String) {
    (
        pool.metadata.creation_timestamp.as_ref().map(|t| t.0),
        pool.namespace().unwrap_or_default(),
        pool.name_any(),
    )
}

/// Allocator pools for `objects`, in precedence order.
pub fn pools<'a>(objects: impl IntoIterator<Item = &'a IPAddressPool>) -> Vec<Pool> {
    let mut objects: Vec<&IPAddressPool> = objects.into_iter().collect();
    objects.sort_by_cached_key(|p| precedence(p));
    objects.into_iter().map(pool).collect()
}

/// One allocator pool from its resource. A selector that cannot be
/// converted makes the pool invalid (its `Valid` condition says which).
pub fn pool(object: &IPAddressPool) -> Pool {
    let name = object.name_any();
    let spec = &object.spec;
    let mut pool = Pool::parse(name.clone(), &spec.addresses);
    pool.auto_assign = spec.auto_assign;
    pool.avoid_buggy_ips = spec.avoid_buggy_ips;
    if let Some(alloc) = &spec.service_allocation {
        let mut allocation = ServiceAllocation {
            priority: alloc.priority,
            namespaces: alloc.namespaces.clone(),
            ..Default::default()
        };
        for (field, from, to) in [
            (
                "serviceAllocation.namespaceSelectors",
                &alloc.namespace_selectors,
                &mut allocation.namespace_selectors,
            ),
            (
                "serviceAllocation.serviceSelectors",
                &alloc.service_selectors,
                &mut allocation.service_selectors,
            ),
        ] {
            for selector in from {
                match label_selector(selector) {
                    Ok(s) => to.push(s),
                    Err(err) => {
                        pool.config_error.get_or_insert(PoolError::InvalidSelector {
                            pool: name.clone(),
                            field,
                            detail: err.to_string(),
                        });
                    }
                }
            }
        }
        pool.allocation = allocation;
    }
    pool
}

/// The condition reason for an invalid pool.
pub fn invalid_reason(err: &PoolError) -> &'static str {
    match err {
        // The parser reports a reversed range as an invalid address; the
        // CRD documents a separate reason for it.
        PoolError::InvalidAddress { detail, .. } if detail.contains("comes after") => {
            REASON_INVALID_RANGE
        }
        PoolError::InvalidAddress { .. } => REASON_INVALID_ADDRESS,
        PoolError::PoolRangesOverlap { .. } | PoolError::PoolOverlapsPool { .. } => {
            REASON_OVERLAPPING_POOL
        }
        PoolError::InvalidSelector { .. } => REASON_INVALID_SELECTOR,
        // Pools are read from one namespace, so names are unique; this
        // only guards against a future change of that.
        PoolError::DuplicatePoolName { .. } => "DuplicatePoolName",
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { STATUS_TRUE } else { STATUS_FALSE }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// The `Valid` condition of a pool.
pub fn valid_condition(validity: &Validity, generation: Option<i64>, now: Timestamp) -> Condition {
    match validity {
        Validity::Valid => condition(
            TYPE_VALID,
            true,
            REASON_VALID,
            "every address entry is valid and overlaps no other pool".to_string(),
            generation,
            now,
        ),
        Validity::Invalid(err) => condition(
            TYPE_VALID,
            false,
            invalid_reason(err),
            err.to_string(),
            generation,
            now,
        ),
    }
}

/// The `Advertised` condition of a pool selected by `advertisers` (names
/// of L2Advertisements, sorted).
pub fn advertised_condition(
    advertisers: &BTreeSet<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    if advertisers.is_empty() {
        condition(
            TYPE_ADVERTISED,
            false,
            REASON_NOT_ADVERTISED,
            "no L2Advertisement selects this pool: its IPs are assigned but not announced"
                .to_string(),
            generation,
            now,
        )
    } else {
        let names: Vec<String> = advertisers.iter().map(|n| format!("{n:?}")).collect();
        condition(
            TYPE_ADVERTISED,
            true,
            REASON_ADVERTISED,
            format!("announced by L2Advertisement {}", names.join(", ")),
            generation,
            now,
        )
    }
}

/// The status of a pool: `base` (what is known to be written) with the
/// counts and both conditions brought up to date. `lastTransitionTime`
/// only moves when a condition's status flips.
pub fn pool_status(
    base: Option<&IPAddressPoolStatus>,
    counts: PoolCounts,
    validity: &Validity,
    advertisers: &BTreeSet<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> IPAddressPoolStatus {
    let mut status = base.cloned().unwrap_or_default();
    let counts = counts.saturating_i64();
    status.assigned_ipv4 = counts.assigned_v4;
    status.assigned_ipv6 = counts.assigned_v6;
    status.available_ipv4 = counts.available_v4;
    status.available_ipv6 = counts.available_v6;
    conditions::set(
        &mut status.conditions,
        valid_condition(validity, generation, now),
    );
    conditions::set(
        &mut status.conditions,
        advertised_condition(advertisers, generation, now),
    );
    status
}

/// What one L2Advertisement selects, and its status.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Names of the existing pools it selects.
    pub pools: BTreeSet<String>,
    /// `PoolsSelected` (and `Valid`) conditions.
    pub status: L2AdvertisementStatus,
    /// A Warning for the advertisement when its spec is invalid or it
    /// selects nothing: (reason, message).
    pub warning: Option<(&'static str, String)>,
}

/// Evaluates every advertisement against the pools (all in one namespace).
///
/// Named pools and pools whose labels match a selector are selected; an
/// advertisement with neither selects every pool (MetalLB's minimal
/// setup). A named pool that does not exist makes `PoolsSelected` False
/// with `UnknownPool`, even when other pools are selected, because the
/// operator most likely mistyped it.
pub fn advertisements<'a>(
    ads: impl IntoIterator<Item = &'a L2Advertisement>,
    pools: &BTreeMap<String, BTreeMap<String, String>>,
    now: Timestamp,
) -> BTreeMap<String, Selection> {
    ads.into_iter()
        .map(|ad| (ad.name_any(), advertisement(ad, pools, now)))
        .collect()
}

fn advertisement(
    ad: &L2Advertisement,
    pools: &BTreeMap<String, BTreeMap<String, String>>,
    now: Timestamp,
) -> Selection {
    let generation = ad.metadata.generation;
    let base = ad.status.clone().unwrap_or_default();
    let mut status = base;
    let spec = &ad.spec;
    let mut selected = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut bad_selector = None;
    for name in &spec.ip_address_pools {
        if pools.contains_key(name) {
            selected.insert(name.clone());
        } else {
            unknown.push(name.clone());
        }
    }
    for (i, selector) in spec.ip_address_pool_selectors.iter().enumerate() {
        match label_selector(selector) {
            Ok(sel) => selected.extend(
                pools
                    .iter()
                    .filter(|(_, labels)| sel.matches(labels))
                    .map(|(n, _)| n.clone()),
            ),
            Err(err) => {
                bad_selector.get_or_insert(format!("ipAddressPoolSelectors[{i}]: {err}"));
            }
        }
    }
    if spec.ip_address_pools.is_empty() && spec.ip_address_pool_selectors.is_empty() {
        selected.extend(pools.keys().cloned());
    }
    let problem = bad_selector
        .map(|msg| (REASON_INVALID_SELECTOR, msg))
        .or_else(|| spec_checks::problem(spec));
    let valid = match &problem {
        Some((reason, msg)) => condition(TYPE_VALID, false, reason, msg.clone(), generation, now),
        None => condition(
            TYPE_VALID,
            true,
            REASON_VALID,
            "every selector is valid".to_string(),
            generation,
            now,
        ),
    };
    conditions::set(&mut status.conditions, valid);
    let (ok, reason, message) = if let Some(first) = unknown.first() {
        (
            false,
            REASON_UNKNOWN_POOL,
            format!("IPAddressPool {first:?} named in ipAddressPools does not exist"),
        )
    } else if selected.is_empty() {
        (
            false,
            REASON_NO_POOL_SELECTED,
            "ipAddressPools and ipAddressPoolSelectors select no IPAddressPool".to_string(),
        )
    } else {
        let names: Vec<String> = selected.iter().map(|n| format!("{n:?}")).collect();
        (
            true,
            REASON_POOLS_SELECTED,
            format!("selects IPAddressPool {}", names.join(", ")),
        )
    };
    // An invalid spec is warned about first: it is the likelier mistake,
    // and it often is why nothing is selected.
    let warning = problem.or_else(|| (!ok).then(|| (reason, message.clone())));
    conditions::set(
        &mut status.conditions,
        condition(TYPE_POOLS_SELECTED, ok, reason, message, generation, now),
    );
    Selection {
        pools: selected,
        status,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_core::allocator::Allocator;
    use ferrolb_crds::{IPAddressPoolSpec, L2AdvertisementSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("in range")
    }

    fn pool_obj(name: &str, created: i64, addresses: &[&str]) -> IPAddressPool {
        let mut p = IPAddressPool::new(
            name,
            IPAddressPoolSpec {
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        );
        p.metadata.namespace = Some("ferrolb-system".into());
        p.metadata.creation_timestamp = Some(Time(at(created)));
        p.metadata.generation = Some(1);
        p
    }

    fn ad(name: &str, spec: L2AdvertisementSpec) -> L2Advertisement {
        let mut a = L2Advertisement::new(name, spec);
        a.metadata.generation = Some(2);
        a
    }

    #[test]
    fn pools_come_out_oldest_first_then_by_name() {
        let a = pool_obj("a", 20, &["198.51.100.0/24"]);
        let b = pool_obj("b", 10, &["198.51.100.0/24"]);
        let c = pool_obj("c", 10, &["203.0.113.0/24"]);
        let names: Vec<String> = pools([&a, &c, &b]).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["b", "c", "a"]);
    }

    #[test]
    fn the_younger_of_two_overlapping_pools_is_invalid_and_names_the_older() {
        let old = pool_obj("old", 10, &["198.51.100.0/24"]);
        let young = pool_obj("young", 20, &["198.51.100.128/25"]);
        let mut alloc = Allocator::new();
        alloc.set_pools(pools([&young, &old]));
        let validity = alloc.validity("young").expect("known").clone();
        let cond = valid_condition(&validity, Some(1), at(5));
        assert_eq!(cond.status, STATUS_FALSE);
        assert_eq!(cond.reason, REASON_OVERLAPPING_POOL);
        assert!(cond.message.contains("\"old\""), "{}", cond.message);
        assert!(alloc.validity("old").expect("known").is_valid());
    }

    #[test]
    fn a_malformed_address_is_quoted_in_the_valid_condition() {
        let bad = pool_obj("bad", 10, &["198.51.100.0/24", "198.51.100.300"]);
        let mut alloc = Allocator::new();
        alloc.set_pools(pools([&bad]));
        let cond = valid_condition(alloc.validity("bad").expect("known"), None, at(5));
        assert_eq!(cond.reason, REASON_INVALID_ADDRESS);
        assert!(
            cond.message.contains("\"198.51.100.300\""),
            "{}",
            cond.message
        );
    }

    #[test]
    fn a_reversed_range_is_reported_as_an_invalid_range() {
        let bad = pool_obj("bad", 10, &["198.51.100.20-198.51.100.10"]);
        let mut alloc = Allocator::new();
        alloc.set_pools(pools([&bad]));
        let cond = valid_condition(alloc.validity("bad").expect("known"), None, at(5));
        assert_eq!(cond.reason, REASON_INVALID_RANGE, "{}", cond.message);
    }

    #[test]
    fn an_unknown_selector_operator_makes_the_pool_invalid() {
        let mut p = pool_obj("sel", 10, &["198.51.100.0/24"]);
        p.spec.service_allocation = Some(ferrolb_crds::ServiceAllocation {
            service_selectors: vec![K8sSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Near".into(),
                    values: None,
                }]),
                match_labels: None,
            }],
            ..Default::default()
        });
        let converted = pool(&p);
        let err = converted.config_error.expect("invalid");
        assert_eq!(invalid_reason(&err), REASON_INVALID_SELECTOR);
        assert!(err.to_string().contains("\"Near\""), "{err}");
    }

    #[test]
    fn pool_status_counts_saturate_and_keep_the_transition_time() {
        let counts = PoolCounts {
            assigned_v4: 1,
            assigned_v6: 0,
            available_v4: 253,
            available_v6: u128::MAX,
        };
        let ads = BTreeSet::from(["l2".to_string()]);
        let first = pool_status(None, counts, &Validity::Valid, &ads, Some(1), at(10));
        assert_eq!(first.available_ipv6, i64::MAX);
        assert_eq!(first.available_ipv4, 253);
        let again = pool_status(
            Some(&first),
            counts,
            &Validity::Valid,
            &ads,
            Some(1),
            at(99),
        );
        assert_eq!(again, first, "nothing changed, so nothing to write");
        let unadvertised = pool_status(
            Some(&first),
            counts,
            &Validity::Valid,
            &BTreeSet::new(),
            Some(1),
            at(50),
        );
        let cond = conditions::find(&unadvertised.conditions, TYPE_ADVERTISED).expect("set");
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            (STATUS_FALSE, REASON_NOT_ADVERTISED)
        );
        assert_eq!(cond.last_transition_time.0, at(50));
    }

    fn pool_labels(
        entries: &[(&str, &[(&str, &str)])],
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        entries
            .iter()
            .map(|(n, labels)| {
                (
                    n.to_string(),
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_advertisement_selects_every_pool() {
        let pools = pool_labels(&[("a", &[]), ("b", &[])]);
        let out = advertisements([&ad("all", Default::default())], &pools, at(1));
        let sel = &out["all"];
        assert_eq!(sel.pools.len(), 2);
        assert!(sel.warning.is_none());
        assert!(conditions::is_true(
            &sel.status.conditions,
            TYPE_POOLS_SELECTED
        ));
    }

    #[test]
    fn an_advertisement_naming_a_missing_pool_says_which() {
        let pools = pool_labels(&[("a", &[])]);
        let spec = L2AdvertisementSpec {
            ip_address_pools: vec!["a".into(), "nope".into()],
            ..Default::default()
        };
        let out = advertisements([&ad("typo", spec)], &pools, at(1));
        let sel = &out["typo"];
        assert_eq!(sel.pools, BTreeSet::from(["a".to_string()]));
        let cond = conditions::find(&sel.status.conditions, TYPE_POOLS_SELECTED).expect("set");
        assert_eq!(cond.reason, REASON_UNKNOWN_POOL);
        assert_eq!(
            cond.message,
            "IPAddressPool \"nope\" named in ipAddressPools does not exist"
        );
        assert_eq!(cond.observed_generation, Some(2));
        assert_eq!(sel.warning.as_ref().map(|w| w.0), Some(REASON_UNKNOWN_POOL));
    }

    #[test]
    fn an_advertisement_selector_with_an_unknown_operator_is_invalid_and_selects_nothing() {
        let pools = pool_labels(&[("a", &[("tier", "edge")])]);
        let spec = L2AdvertisementSpec {
            ip_address_pool_selectors: vec![K8sSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Near".into(),
                    values: None,
                }]),
            }],
            ..Default::default()
        };
        let out = advertisements([&ad("typo", spec)], &pools, at(1));
        let sel = &out["typo"];
        assert!(sel.pools.is_empty());
        let valid = conditions::find(&sel.status.conditions, TYPE_VALID).expect("set");
        assert_eq!(
            (valid.status.as_str(), valid.reason.as_str()),
            (STATUS_FALSE, REASON_INVALID_SELECTOR)
        );
        assert_eq!(
            valid.message,
            "ipAddressPoolSelectors[0]: operator \"Near\" on key \"tier\" is not In, NotIn, Exists or DoesNotExist"
        );
    }

    #[test]
    fn a_weight_out_of_range_makes_the_advertisement_invalid_and_warns() {
        let pools = pool_labels(&[("a", &[])]);
        let spec = L2AdvertisementSpec {
            preferred_node_selectors: vec![ferrolb_crds::PreferredNodeSelector {
                weight: 0,
                preference: K8sSelector::default(),
            }],
            ..Default::default()
        };
        let out = advertisements([&ad("zero", spec)], &pools, at(1));
        let sel = &out["zero"];
        assert_eq!(sel.pools.len(), 1, "it still selects its pools");
        let valid = conditions::find(&sel.status.conditions, TYPE_VALID).expect("set");
        assert_eq!(
            (valid.status.as_str(), valid.reason.as_str()),
            (STATUS_FALSE, conditions::REASON_INVALID_WEIGHT)
        );
        assert_eq!(
            sel.warning,
            Some((
                conditions::REASON_INVALID_WEIGHT,
                "preferredNodeSelectors[0].weight: 0 is not between 1 and 100".to_string()
            ))
        );
    }

    #[test]
    fn a_selector_matching_no_pool_selects_nothing_and_warns() {
        let pools = pool_labels(&[("a", &[("tier", "edge")])]);
        let spec = L2AdvertisementSpec {
            ip_address_pool_selectors: vec![K8sSelector {
                match_labels: Some(BTreeMap::from([("tier".into(), "core".into())])),
                match_expressions: None,
            }],
            ..Default::default()
        };
        let out = advertisements([&ad("none", spec)], &pools, at(1));
        let sel = &out["none"];
        assert!(sel.pools.is_empty());
        assert_eq!(
            sel.warning.as_ref().map(|w| w.0),
            Some(REASON_NO_POOL_SELECTED)
        );
    }
}
