//! Every manifest under `deploy/examples/` deserializes into the right type
//! and passes the CRD schema.

mod common;

use std::path::PathBuf;

use common::{rejections, yaml_documents};
use ferrolb_crds::annotations;
use ferrolb_crds::generate::{ip_address_pool_crd, l2_advertisement_crd};
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

fn example(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_documents(&text)
}

fn services(name: &str) -> Vec<Service> {
    example(name)
        .into_iter()
        .map(|doc| serde_json::from_value(doc).expect("example is a Service"))
        .collect()
}

fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[test]
fn example_pool_has_an_ipv4_cidr_and_an_ipv6_range_and_passes_the_schema() {
    let docs = example("ipaddresspool.yaml");
    assert_eq!(docs.len(), 1);
    assert_eq!(
        rejections(&ip_address_pool_crd(), &docs[0]),
        Vec::<String>::new()
    );
    let pool: IPAddressPool = serde_json::from_value(docs[0].clone()).expect("an IPAddressPool");
    assert_eq!(
        pool.spec.addresses,
        ["198.51.100.0/24", "2001:db8:0:1::10-2001:db8:0:1::ff"]
    );
    assert!(pool.spec.auto_assign);
    assert!(pool.spec.avoid_buggy_ips);
}

#[test]
fn example_advertisement_announces_the_example_pool_and_passes_the_schema() {
    let docs = example("l2advertisement.yaml");
    assert_eq!(docs.len(), 1);
    assert_eq!(
        rejections(&l2_advertisement_crd(), &docs[0]),
        Vec::<String>::new()
    );
    let ad: L2Advertisement = serde_json::from_value(docs[0].clone()).expect("an L2Advertisement");
    let pool: IPAddressPool =
        serde_json::from_value(example("ipaddresspool.yaml")[0].clone()).expect("pool");
    assert_eq!(
        ad.spec.ip_address_pools,
        [pool.metadata.name.expect("named")]
    );
    assert_eq!(ad.metadata.namespace, pool.metadata.namespace);
    assert_eq!(ad.spec.interfaces, ["eth0"]);
}

#[test]
fn example_ipv4_service_asks_for_the_example_pool() {
    let svcs = services("service-v4.yaml");
    assert_eq!(svcs.len(), 1);
    let spec = svcs[0].spec.as_ref().expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        annotation(&svcs[0], annotations::ADDRESS_POOL),
        Some("default")
    );
}

#[test]
fn example_dual_stack_service_requests_one_ip_per_family_inside_the_pool() {
    let svcs = services("service-dualstack.yaml");
    assert_eq!(svcs.len(), 1);
    let spec = svcs[0].spec.as_ref().expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("RequireDualStack"));
    assert_eq!(
        spec.ip_families.as_deref(),
        Some(&["IPv4".to_string(), "IPv6".to_string()][..])
    );
    let ips: Vec<std::net::IpAddr> = annotation(&svcs[0], annotations::LOAD_BALANCER_IPS)
        .expect("loadBalancerIPs")
        .split(',')
        .map(|ip| ip.trim().parse().expect("an IP"))
        .collect();
    assert_eq!(ips.len(), 2);
    assert!(ips[0].is_ipv4() && ips[1].is_ipv6());
    let v4: std::net::Ipv4Addr = "198.51.100.0".parse().expect("ip");
    let (lo, hi): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (
        "2001:db8:0:1::10".parse().expect("ip"),
        "2001:db8:0:1::ff".parse().expect("ip"),
    );
    match (ips[0], ips[1]) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V6(b)) => {
            assert_eq!(
                a.octets()[..3],
                v4.octets()[..3],
                "{a} is in 198.51.100.0/24"
            );
            assert!(lo <= b && b <= hi, "{b} is in the example IPv6 range");
        }
        other => panic!("unexpected families {other:?}"),
    }
}

#[test]
fn example_shared_services_carry_one_key_one_ip_and_ports_that_do_not_clash() {
    let svcs = services("service-shared.yaml");
    assert_eq!(svcs.len(), 2);
    let keys: Vec<_> = svcs
        .iter()
        .map(|s| annotation(s, annotations::ALLOW_SHARED_IP))
        .collect();
    assert!(keys[0].is_some() && keys[0] == keys[1], "{keys:?}");
    let ips: Vec<_> = svcs
        .iter()
        .map(|s| annotation(s, annotations::LOAD_BALANCER_IPS))
        .collect();
    assert!(ips[0].is_some() && ips[0] == ips[1], "{ips:?}");
    let ports: Vec<(i32, String)> = svcs
        .iter()
        .flat_map(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.ports.clone())
                .unwrap_or_default()
        })
        .map(|p| (p.port, p.protocol.unwrap_or_else(|| "TCP".into())))
        .collect();
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "ports clash: {ports:?}");
}
