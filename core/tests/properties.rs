//! Property tests: random pools, requests, releases and pool updates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::{ip, labels};
use ferrolb_core::allocator::{
    is_buggy, AddressRange, AllocRequest, Allocator, Assignment, Family, FamilyPolicy, Pool,
    PoolCounts, Port, Protocol, Refusal, ServiceKey,
};
use proptest::prelude::*;

const RANGES: &[&str] = &[
    "198.51.100.0/29",
    "198.51.100.4-198.51.100.11",
    "203.0.113.254-203.0.113.255",
    "192.0.2.0/30",
    "2001:db8::/126",
    "2001:db8::2-2001:db8::5",
];

const WANTED_IPS: &[&str] = &[
    "198.51.100.1",
    "198.51.100.5",
    "203.0.113.255",
    "192.0.2.0",
    "2001:db8::1",
    "2001:db8::4",
    "203.0.113.1",
];

const SERVICES: usize = 8;

fn service(i: usize) -> ServiceKey {
    ServiceKey::new(format!("ns{}", i % 2), format!("s{i}"))
}

fn pool_strategy(index: usize) -> impl Strategy<Value = Pool> {
    (
        proptest::sample::subsequence((0..RANGES.len()).collect::<Vec<_>>(), 1..=2),
        prop::bool::weighted(0.8),
        any::<bool>(),
        proptest::option::of(0..3i32),
        prop::bool::weighted(0.25),
    )
        .prop_map(move |(ranges, auto_assign, avoid, priority, restrict)| {
            let mut pool = Pool::new(
                format!("p{index}"),
                ranges
                    .into_iter()
                    .map(|r| AddressRange::parse(RANGES[r]).unwrap())
                    .collect(),
            );
            pool.auto_assign = auto_assign;
            pool.avoid_buggy_ips = avoid;
            pool.allocation.priority = priority;
            if restrict {
                pool.allocation.namespaces = vec!["ns0".into()];
            }
            pool
        })
}

fn pools_strategy() -> impl Strategy<Value = Vec<Pool>> {
    (1..=3usize).prop_flat_map(|n| (0..n).map(pool_strategy).collect::<Vec<_>>())
}

fn request_strategy() -> impl Strategy<Value = AllocRequest> {
    (
        0..6usize,
        0..3usize,
        0..3usize,
        prop::bool::weighted(0.2),
        0..2usize,
        proptest::option::weighted(0.2, 0..3usize),
        proptest::sample::subsequence((0..WANTED_IPS.len()).collect::<Vec<_>>(), 0..=2),
        prop::bool::weighted(0.7),
    )
        .prop_map(|(fam, key, port, local, app, pool, wanted, no_ips)| {
            let (families, family_policy) = match fam {
                0 => (vec![], FamilyPolicy::SingleStack),
                1 => (vec![Family::V6], FamilyPolicy::SingleStack),
                2 => (vec![Family::V4, Family::V6], FamilyPolicy::PreferDualStack),
                3 => (vec![Family::V6, Family::V4], FamilyPolicy::PreferDualStack),
                4 => (vec![Family::V4, Family::V6], FamilyPolicy::RequireDualStack),
                _ => (vec![Family::V6, Family::V4], FamilyPolicy::SingleStack),
            };
            let ports = [
                Port::tcp(80),
                Port::tcp(443),
                Port {
                    protocol: Protocol::Udp,
                    port: 80,
                },
            ];
            AllocRequest {
                families,
                family_policy,
                requested_ips: if no_ips {
                    vec![]
                } else {
                    wanted.into_iter().map(|i| ip(WANTED_IPS[i])).collect()
                },
                requested_pool: pool.map(|p| format!("p{p}")),
                sharing_key: [None, Some("a"), Some("b")][key].map(str::to_string),
                ports: vec![ports[port]],
                external_traffic_local: local,
                selector: labels(&[("app", ["x", "y"][app])]),
                ..Default::default()
            }
        })
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize, AllocRequest),
    Release(usize),
    SetPools(Vec<Pool>),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SERVICES, request_strategy()).prop_map(|(s, r)| Op::Allocate(s, r)),
        2 => (0..SERVICES).prop_map(Op::Release),
        1 => pools_strategy().prop_map(Op::SetPools),
    ]
}

/// What the test remembers about the run, to check the allocator against.
#[derive(Debug, Default)]
struct Model {
    pools: Vec<Pool>,
    holding: BTreeMap<ServiceKey, AllocRequest>,
}

/// The outcome of one op, compared between runs.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Allocated(Result<Assignment, Refusal>),
    Released(Option<Assignment>),
    Evicted(Vec<(ServiceKey, String)>),
}

fn apply(a: &mut Allocator, model: &mut Model, op: &Op) -> Outcome {
    match op {
        Op::Allocate(s, req) => {
            let result = a.allocate(&service(*s), req);
            // A Service that keeps its IPs keeps them under the new request.
            match &result {
                Ok(_) | Err(Refusal { kept: Some(_), .. }) => {
                    model.holding.insert(service(*s), req.clone())
                }
                Err(Refusal { kept: None, .. }) => model.holding.remove(&service(*s)),
            };
            Outcome::Allocated(result)
        }
        Op::Release(s) => {
            model.holding.remove(&service(*s));
            Outcome::Released(a.release(&service(*s)))
        }
        Op::SetPools(pools) => {
            model.pools = pools.clone();
            let evicted = a.set_pools(pools.clone());
            for e in &evicted {
                model.holding.remove(&e.service);
            }
            Outcome::Evicted(
                evicted
                    .into_iter()
                    .map(|e| (e.service, e.reason.reason().to_string()))
                    .collect(),
            )
        }
    }
}

/// The sharing rules, written again independently of the allocator.
fn may_share(a: &AllocRequest, b: &AllocRequest) -> bool {
    let key = |r: &AllocRequest| r.sharing_key.clone().filter(|k| !k.is_empty());
    key(a).is_some()
        && key(a) == key(b)
        && !a.ports.iter().any(|p| b.ports.contains(p))
        && a.external_traffic_local == b.external_traffic_local
        && (!a.external_traffic_local || a.selector == b.selector)
}

fn pool_allows(pool: &Pool, service: &ServiceKey) -> bool {
    pool.allocation.namespaces.is_empty() || pool.allocation.namespaces.contains(&service.namespace)
}

fn check_invariants(a: &Allocator, model: &Model) -> Result<(), TestCaseError> {
    let held: BTreeMap<&ServiceKey, &Assignment> = a.assignments().collect();
    prop_assert_eq!(
        held.keys().copied().collect::<BTreeSet<_>>(),
        model.holding.keys().collect::<BTreeSet<_>>()
    );
    let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
    for (service, assignment) in &held {
        // Every IP lies in a valid pool the Service may use.
        let pool = model.pools.iter().find(|p| p.name == assignment.pool);
        let pool = pool.ok_or_else(|| TestCaseError::fail("assignment names an unknown pool"))?;
        prop_assert!(a.validity(&pool.name).is_some_and(|v| v.is_valid()));
        prop_assert!(pool_allows(pool, service));
        prop_assert!(!assignment.ips.is_empty() && assignment.ips.len() <= 2);
        let families: BTreeSet<Family> = assignment.ips.iter().map(|i| Family::of(*i)).collect();
        prop_assert_eq!(families.len(), assignment.ips.len());
        for &addr in &assignment.ips {
            prop_assert!(pool.addresses.iter().any(|r| r.contains(addr)));
            prop_assert!(!(pool.avoid_buggy_ips && is_buggy(addr)));
            by_ip.entry(addr).or_default().push(service);
        }
    }
    // No IP goes to two Services unless they legally share it.
    for (addr, services) in &by_ip {
        prop_assert_eq!(a.services_on(*addr).collect::<Vec<_>>(), services.clone());
        for (i, x) in services.iter().enumerate() {
            for y in &services[i + 1..] {
                prop_assert!(
                    may_share(&model.holding[*x], &model.holding[*y]),
                    "{} and {} share {} illegally",
                    x,
                    y,
                    addr
                );
            }
        }
    }
    // Counts agree with a count by hand (the ranges here are tiny).
    for pool in &model.pools {
        if a.validity(&pool.name).is_some_and(|v| v.is_valid()) && pool.name.starts_with('p') {
            let in_pool = |f: Family| {
                by_ip
                    .keys()
                    .filter(|addr| Family::of(**addr) == f && held_in(&held, **addr, &pool.name))
                    .count() as u128
            };
            let capacity = |f: Family| {
                pool.addresses
                    .iter()
                    .filter(|r| r.family() == f)
                    .map(|r| {
                        let (lo, hi) = (num(r.start()), num(r.end()));
                        (lo..=hi)
                            .filter(|n| {
                                !(pool.avoid_buggy_ips
                                    && f == Family::V4
                                    && matches!(n & 0xff, 0 | 0xff))
                            })
                            .count() as u128
                    })
                    .sum::<u128>()
            };
            let expect = PoolCounts {
                assigned_v4: in_pool(Family::V4),
                assigned_v6: in_pool(Family::V6),
                available_v4: capacity(Family::V4) - in_pool(Family::V4),
                available_v6: capacity(Family::V6) - in_pool(Family::V6),
            };
            prop_assert_eq!(a.counts(&pool.name), Some(expect));
        }
    }
    Ok(())
}

/// Whether `service`, as `request` describes it, may hold `ips` where it
/// stands (whatever IPs or pool the request names), judged from the model:
/// all in one valid pool that allows it, not buggy there, and shareable
/// with every other holder.
fn legal_for(
    a: &Allocator,
    model: &Model,
    service: &ServiceKey,
    request: &AllocRequest,
    ips: &[IpAddr],
) -> bool {
    let valid = |p: &&Pool| a.validity(&p.name).is_some_and(|v| v.is_valid());
    let pools: Vec<Option<&Pool>> = ips
        .iter()
        .map(|ip| {
            model
                .pools
                .iter()
                .filter(valid)
                .find(|p| p.addresses.iter().any(|r| r.contains(*ip)))
        })
        .collect();
    let Some(Some(pool)) = pools.first().copied() else {
        return false;
    };
    pools.iter().all(|p| p.is_some_and(|p| p.name == pool.name))
        && pool_allows(pool, service)
        && ips
            .iter()
            .all(|ip| !(pool.avoid_buggy_ips && is_buggy(*ip)))
        && ips.iter().all(|ip| {
            a.services_on(*ip)
                .filter(|other| *other != service)
                .all(|other| may_share(request, &model.holding[other]))
        })
}

fn held_in(held: &BTreeMap<&ServiceKey, &Assignment>, addr: IpAddr, pool: &str) -> bool {
    held.values()
        .any(|a| a.pool == pool && a.ips.contains(&addr))
}

fn num(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn run(pools: &[Pool], ops: &[Op]) -> (Allocator, Model, Vec<Outcome>) {
    let mut a = Allocator::new();
    let mut model = Model::default();
    let mut outcomes = vec![apply(&mut a, &mut model, &Op::SetPools(pools.to_vec()))];
    for op in ops {
        outcomes.push(apply(&mut a, &mut model, op));
    }
    (a, model, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_state_is_legal_and_counted_right(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..40),
    ) {
        let mut a = Allocator::new();
        let mut model = Model::default();
        apply(&mut a, &mut model, &Op::SetPools(pools));
        check_invariants(&a, &model)?;
        for op in &ops {
            apply(&mut a, &mut model, op);
            check_invariants(&a, &model)?;
        }
    }

    #[test]
    fn no_request_edit_costs_a_service_an_ip_that_is_still_legal(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..60),
    ) {
        let mut a = Allocator::new();
        let mut model = Model::default();
        apply(&mut a, &mut model, &Op::SetPools(pools));
        for op in &ops {
            let Op::Allocate(s, request) = op else {
                apply(&mut a, &mut model, op);
                continue;
            };
            let s = service(*s);
            let before = a.assignment(&s).cloned();
            let legal = before
                .as_ref()
                .is_some_and(|held| legal_for(&a, &model, &s, request, &held.ips));
            let mut fresh = a.clone();
            fresh.release(&s);
            let outcome = apply(&mut a, &mut model, op);
            let Outcome::Allocated(result) = outcome else {
                return Err(TestCaseError::fail("an allocation gives an allocation outcome"));
            };
            match result {
                Ok(assignment) => prop_assert_eq!(a.assignment(&s), Some(&assignment)),
                Err(refusal) => {
                    // The old IPs stay exactly when they are still legal.
                    let expect = if legal { before.clone().map(Box::new) } else { None };
                    prop_assert_eq!(&refusal.kept, &expect, "{}", refusal);
                    prop_assert_eq!(a.assignment(&s), expect.as_deref());
                    // Keeping never hides a request that could be met.
                    prop_assert!(fresh.allocate(&s, request).is_err());
                }
            }
            if legal {
                prop_assert!(a.assignment(&s).is_some(), "{} lost a legal IP", s);
            }
            check_invariants(&a, &model)?;
        }
    }

    #[test]
    fn the_same_input_always_gives_the_same_result(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..40),
    ) {
        let (first, _, first_outcomes) = run(&pools, &ops);
        let (second, _, second_outcomes) = run(&pools, &ops);
        prop_assert_eq!(first_outcomes, second_outcomes);
        prop_assert_eq!(
            first.assignments().collect::<Vec<_>>(),
            second.assignments().collect::<Vec<_>>()
        );
    }

    #[test]
    fn rebuilding_from_assignments_matches_never_restarting(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..30),
        later in proptest::collection::vec((0..SERVICES, request_strategy()), 1..10),
    ) {
        let (mut running, model, _) = run(&pools, &ops);
        let mut rebuilt = Allocator::new();
        prop_assert!(rebuilt.set_pools(model.pools.clone()).is_empty());
        for (service, request) in &model.holding {
            let ips = running.assignment(service).map(|a| a.ips.clone()).unwrap_or_default();
            let restored = rebuilt.restore(service, request, &ips);
            prop_assert!(restored.is_ok(), "restore of {} refused: {:?}", service, restored);
        }
        prop_assert_eq!(
            running.assignments().collect::<Vec<_>>(),
            rebuilt.assignments().collect::<Vec<_>>()
        );
        for name in running.pool_names().map(str::to_string).collect::<Vec<_>>() {
            prop_assert_eq!(running.counts(&name), rebuilt.counts(&name));
        }
        for (s, request) in &later {
            let expect = running.allocate(&service(*s), request);
            prop_assert_eq!(rebuilt.allocate(&service(*s), request), expect);
        }
        prop_assert_eq!(
            running.assignments().collect::<Vec<_>>(),
            rebuilt.assignments().collect::<Vec<_>>()
        );
    }

    #[test]
    fn allocate_then_release_never_leaks_an_address(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(), 0..30),
        extra in request_strategy(),
    ) {
        let (mut a, _, _) = run(&pools, &ops);
        let names: Vec<String> = a.pool_names().map(str::to_string).collect();
        let counts_before: Vec<_> = names.iter().map(|n| a.counts(n)).collect();
        let held_before: Vec<_> = a.assignments().map(|(k, v)| (k.clone(), v.clone())).collect();
        let newcomer = ServiceKey::new("ns0", "newcomer");
        let _ = a.allocate(&newcomer, &extra);
        a.release(&newcomer);
        let counts_after: Vec<_> = names.iter().map(|n| a.counts(n)).collect();
        let held_after: Vec<_> = a.assignments().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(counts_before, counts_after);
        prop_assert_eq!(held_before, held_after);
    }
}
