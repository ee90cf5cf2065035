//! Bytes the controller's index holds per Service: seeds an index with
//! one pool and 10,000 assigned IPv6 Services, as the API server lists
//! them (kubectl's last-applied copy, managedFields, ports, selector), and
//! prints what it allocated, as counted by dhat's allocator. Run with
//! `cargo run --release -p ferrolb-controller --example controller_memory [services]`.

use ferrolb_controller::index::{Index, Settings};
use ferrolb_crds::IPAddressPool;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live() -> f64 {
    dhat::HeapStats::get().curr_bytes as f64
}

/// A Service as `kubectl apply` and the controller leave it.
fn service(k: usize) -> Service {
    let name = format!("service-{k:05}");
    let ip = format!("2001:db8:1::{k:x}");
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": "default",
            "uid": format!("6f1c2a4e-0000-4000-8000-{k:012}"),
            "resourceVersion": format!("{}", 1000 + k),
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app": name.clone(), "tier": "web"},
            "annotations": {
                "ferrolb.io/ip-allocated-from-pool": "bench",
                "kubectl.kubernetes.io/last-applied-configuration":
                    format!("{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"default\"}},\"spec\":{{\"type\":\"LoadBalancer\",\"ipFamilies\":[\"IPv6\"],\"ports\":[{{\"port\":80,\"targetPort\":8080}}],\"selector\":{{\"app\":\"{name}\"}}}}}}")
            },
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {".": {}}, "f:selector": {}, "f:type": {}}}},
                {"manager": "ferrolb-controller", "operation": "Update", "apiVersion": "v1",
                 "subresource": "status", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}}
            ]
        },
        "spec": {
            "type": "LoadBalancer", "clusterIP": format!("2001:db8:ffff::{k:x}"),
            "clusterIPs": [format!("2001:db8:ffff::{k:x}")],
            "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None", "allocateLoadBalancerNodePorts": true,
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30000 + (k % 2000)}]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
    }))
    .expect("a Service")
}

fn main() {
    let services: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let _profiler = dhat::Profiler::builder().testing().build();
    let list: Vec<Service> = (0..services).map(service).collect();
    let listed = live();
    let pool: IPAddressPool = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": "ferrolb-system"},
        "spec": {"addresses": ["2001:db8:1::/112"]},
    }))
    .expect("a pool");
    let start = live();
    let mut index = Index::new(Settings::default());
    index.reset_pools(vec![pool]);
    index.reset_advertisements(Vec::new());
    index.reset_namespaces(&[]);
    index.reset_services(list);
    let held = live() - start;
    index.seed();
    let _ = index.flush(k8s_openapi::jiff::Timestamp::now());
    let seeded = live() - start;
    let per = |b: f64| b / services as f64;
    println!("{services} Services (bytes requested from the allocator)");
    println!("{:<44} {:>10} {:>12}", "part", "total KiB", "per Service");
    for (what, b) in [
        ("the list as parsed (dropped after the reset)", listed),
        ("index: slimmed Services", held + listed),
        ("index: + allocator, seeded", seeded + listed),
    ] {
        println!("{what:<44} {:>10.0} {:>12.0}", b / 1024.0, per(b));
    }
}
