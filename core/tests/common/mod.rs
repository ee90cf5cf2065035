//! Helpers shared by the core's integration tests (allocator, election,
//! announce decision).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_core::allocator::{
    AddressRange, AllocRequest, Allocator, Family, FamilyPolicy, LabelSelector, Pool, Port,
    ServiceKey,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP parses")
}

pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

pub fn key(namespace: &str, name: &str) -> ServiceKey {
    ServiceKey::new(namespace, name)
}

pub fn svc(name: &str) -> ServiceKey {
    key("default", name)
}

pub fn pool(name: &str, addresses: &[&str]) -> Pool {
    Pool::new(
        name,
        addresses
            .iter()
            .map(|a| AddressRange::parse(a).expect("test range parses"))
            .collect(),
    )
}

pub fn allocator(pools: Vec<Pool>) -> Allocator {
    let mut a = Allocator::new();
    let evicted = a.set_pools(pools);
    assert!(evicted.is_empty());
    a
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        match_expressions: vec![],
    }
}

/// A plain IPv4 SingleStack request.
pub fn v4() -> AllocRequest {
    AllocRequest::default()
}

pub fn v6() -> AllocRequest {
    AllocRequest {
        families: vec![Family::V6],
        ..Default::default()
    }
}

pub fn dual(policy: FamilyPolicy, first: Family) -> AllocRequest {
    AllocRequest {
        families: vec![first, first.other()],
        family_policy: policy,
        ..Default::default()
    }
}

pub fn in_pool(pool: &str) -> AllocRequest {
    AllocRequest {
        requested_pool: Some(pool.to_string()),
        ..Default::default()
    }
}

pub fn wants(list: &[&str]) -> AllocRequest {
    AllocRequest {
        requested_ips: ips(list),
        ..Default::default()
    }
}

pub fn shared(sharing_key: &str, ports: &[Port]) -> AllocRequest {
    AllocRequest {
        sharing_key: Some(sharing_key.to_string()),
        ports: ports.to_vec(),
        ..Default::default()
    }
}

/// Allocates and returns the IPs, panicking with the refusal otherwise.
pub fn got(a: &mut Allocator, service: &ServiceKey, request: &AllocRequest) -> Vec<IpAddr> {
    match a.allocate(service, request) {
        Ok(assignment) => assignment.ips,
        Err(err) => panic!("allocation for {service} refused: {err}"),
    }
}

/// 2,000 distinct documentation addresses, IPv4 and IPv6 mixed.
pub fn many_ips() -> Vec<IpAddr> {
    let v4 = [[192, 0, 2], [198, 51, 100], [203, 0, 113]]
        .into_iter()
        .flat_map(|[a, b, c]| (0..=255u8).map(move |d| IpAddr::V4(Ipv4Addr::new(a, b, c, d))));
    let v6 = (0u16..).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 7, i)));
    v4.chain(v6).take(2_000).collect()
}
