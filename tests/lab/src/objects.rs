//! The Kubernetes objects the lab creates, as JSON (pure).
//!
//! The API test server runs no controllers, so the lab plays the kubelet
//! (Nodes with addresses and a Ready condition) and the EndpointSlice
//! controller (one ready endpoint per node for every Service).

use serde_json::{json, Value};
use std::net::IpAddr;

use crate::topology;

/// A Node as a kubelet registers it: InternalIPs in both families and
/// `Ready=True`.
pub fn node(name: &str, v4: IpAddr, v6: IpAddr, now: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
        },
        "status": node_status(name, v4, v6, now),
    })
}

/// The `status` of [`node`], also patched through `/status` in case the
/// server drops status on create.
pub fn node_status(name: &str, v4: IpAddr, v6: IpAddr, now: &str) -> Value {
    json!({
        "addresses": [
            {"type": "InternalIP", "address": v4.to_string()},
            {"type": "InternalIP", "address": v6.to_string()},
            {"type": "Hostname", "address": name},
        ],
        "conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "ferrolb-lab node",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }],
    })
}

/// How a lab Service is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Name in namespace `default`.
    pub name: String,
    /// The Service port (also the port the nodes' stand-in servers listen on).
    pub port: u16,
    /// The IP families it asks for.
    pub families: Families,
    /// `externalTrafficPolicy: Local` instead of `Cluster`.
    pub local: bool,
    /// `ferrolb.io/loadBalancerIPs`.
    pub requested_ips: Vec<IpAddr>,
    /// `ferrolb.io/allow-shared-ip`.
    pub sharing_key: Option<String>,
    /// `ferrolb.io/address-pool`.
    pub pool: Option<String>,
    /// NodePorts allocated (`allocateLoadBalancerNodePorts`); thousands of
    /// Services need `false`, the range has 2,768 ports.
    pub node_ports: bool,
}

impl ServiceSpec {
    /// A dual-stack Cluster-policy Service.
    pub fn new(name: &str, port: u16) -> Self {
        Self {
            name: name.to_owned(),
            port,
            families: Families::Dual,
            local: false,
            requested_ips: Vec::new(),
            sharing_key: None,
            pool: None,
            node_ports: true,
        }
    }
}

/// The IP families of a lab Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    /// `SingleStack` IPv4.
    V4,
    /// `SingleStack` IPv6.
    V6,
    /// `RequireDualStack`, IPv4 first.
    Dual,
}

impl Families {
    /// `false` (IPv4) and/or `true` (IPv6), in `spec.ipFamilies` order.
    pub fn v6_flags(self) -> &'static [bool] {
        match self {
            Families::V4 => &[false],
            Families::V6 => &[true],
            Families::Dual => &[false, true],
        }
    }
}

/// A LoadBalancer Service selecting `app: <name>`.
pub fn service(spec: &ServiceSpec) -> Value {
    let mut annotations = serde_json::Map::new();
    if !spec.requested_ips.is_empty() {
        let ips: Vec<String> = spec.requested_ips.iter().map(|i| i.to_string()).collect();
        annotations.insert("ferrolb.io/loadBalancerIPs".into(), ips.join(",").into());
    }
    if let Some(key) = &spec.sharing_key {
        annotations.insert("ferrolb.io/allow-shared-ip".into(), key.clone().into());
    }
    if let Some(pool) = &spec.pool {
        annotations.insert("ferrolb.io/address-pool".into(), pool.clone().into());
    }
    let mut svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": "default", "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": spec.name},
            "externalTrafficPolicy": if spec.local { "Local" } else { "Cluster" },
            "ports": [{"name": "tcp", "protocol": "TCP", "port": spec.port, "targetPort": spec.port}],
        },
    });
    let (policy, families) = match spec.families {
        Families::V4 => ("SingleStack", json!(["IPv4"])),
        Families::V6 => ("SingleStack", json!(["IPv6"])),
        Families::Dual => ("RequireDualStack", json!(["IPv4", "IPv6"])),
    };
    svc["spec"]["ipFamilyPolicy"] = json!(policy);
    svc["spec"]["ipFamilies"] = families;
    if !spec.node_ports {
        svc["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
    }
    svc
}

/// The EndpointSlice of one family for Service `service` in `namespace`:
/// one ready endpoint on each of `nodes` (`(index, name)`), serving `ports`
/// (EndpointSlice `ports`: `[{name, protocol, port}]`).
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    ports: Value,
    v6: bool,
    nodes: &[(usize, String)],
) -> Value {
    let endpoints: Vec<Value> = nodes
        .iter()
        .map(|(i, name)| {
            json!({
                "addresses": [topology::pod_ip(*i, 1, v6).to_string()],
                "nodeName": name,
                "conditions": {"ready": true, "serving": true, "terminating": false},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(service, v6),
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": if v6 { "IPv6" } else { "IPv4" },
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// The state of a Pod behind an endpoint, as the EndpointSlice controller
/// writes its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pod {
    /// Running and ready.
    Ready,
    /// Started, readiness probe not passed yet.
    Starting,
    /// Deleted, draining: terminating but still serving.
    Draining,
}

impl Pod {
    /// The endpoint's `conditions`.
    pub fn conditions(self) -> Value {
        let (ready, serving, terminating) = match self {
            Pod::Ready => (true, true, false),
            Pod::Starting => (false, false, false),
            Pod::Draining => (false, true, true),
        };
        json!({"ready": ready, "serving": serving, "terminating": terminating})
    }
}

/// `endpointslice.kubernetes.io/managed-by` of the slices the lab writes.
pub const MANAGED_BY: &str = "ferrolb-lab";

/// Name of the lab's EndpointSlice of one family for `service`:
/// `<service>-v4` / `<service>-v6`.
pub fn slice_name(service: &str, v6: bool) -> String {
    format!("{service}-{}", if v6 { "v6" } else { "v4" })
}

/// EndpointSlice `ports` for one TCP port.
pub fn tcp_port(port: u16) -> Value {
    json!([{"name": "tcp", "protocol": "TCP", "port": port}])
}

/// The ingress IPs of a Service object (`status.loadBalancer.ingress[].ip`).
pub fn ingress_ips(svc: &Value) -> Vec<IpAddr> {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| i["ip"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `port/TCP` list as `kubectl get svc` prints it (`80:30080/TCP`).
pub fn ports_column(svc: &Value) -> String {
    let Some(ports) = svc["spec"]["ports"].as_array() else {
        return "<none>".into();
    };
    ports
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_u64() {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dual_stack_service_requires_both_families() {
        let svc = service(&ServiceSpec::new("web", 8080));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(svc["spec"]["type"], "LoadBalancer");
        assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
        let mut v6 = ServiceSpec::new("v6", 80);
        v6.families = Families::V6;
        let svc = service(&v6);
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv6"]));
        assert!(svc["spec"].get("allocateLoadBalancerNodePorts").is_none());
        v6.node_ports = false;
        assert_eq!(service(&v6)["spec"]["allocateLoadBalancerNodePorts"], false);
    }

    #[test]
    fn requested_ips_and_sharing_key_become_annotations() {
        let mut spec = ServiceSpec::new("dns", 53);
        spec.requested_ips = vec!["198.51.100.20".parse().unwrap()];
        spec.sharing_key = Some("k".into());
        spec.pool = Some("p".into());
        let svc = service(&spec);
        let a = &svc["metadata"]["annotations"];
        assert_eq!(a["ferrolb.io/address-pool"], "p");
        assert_eq!(a["ferrolb.io/loadBalancerIPs"], "198.51.100.20");
        assert_eq!(a["ferrolb.io/allow-shared-ip"], "k");
    }

    #[test]
    fn endpoint_slices_name_the_service_and_every_node() {
        let nodes = vec![(1, "node-1".to_owned()), (2, "node-2".to_owned())];
        let s = endpoint_slice("default", "web", tcp_port(80), true, &nodes);
        assert_eq!(s["metadata"]["labels"]["kubernetes.io/service-name"], "web");
        assert_eq!(s["addressType"], "IPv6");
        assert_eq!(s["endpoints"][1]["nodeName"], "node-2");
        assert_eq!(s["metadata"]["name"], "web-v6");
        assert_eq!(s["ports"][0]["port"], 80);
    }

    #[test]
    fn ingress_and_ports_read_like_kubectl() {
        let svc = json!({
            "spec": {"ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}, {"ip": "2001:db8:0:1::10"}]}},
        });
        assert_eq!(ingress_ips(&svc).len(), 2);
        assert_eq!(ports_column(&svc), "80:30080/TCP");
        assert!(ingress_ips(&json!({})).is_empty());
    }
}
