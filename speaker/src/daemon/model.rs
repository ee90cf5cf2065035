//! The daemon's own small types, converted from Kubernetes objects at the
//! edge so the desired-state computation never sees `k8s_openapi`.

use ferrolb_core::election::TrafficPolicy;
use ferrolb_crds::range::AddressRange;
use ferrolb_crds::selector::LabelSelector;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// The label an EndpointSlice carries naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace/name` of a namespaced object.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Kubernetes object (cluster-scoped: empty namespace).
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A LoadBalancer Service with at least one ingress IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its key.
    pub key: ObjectKey,
    /// `status.loadBalancer.ingress[].ip`, in order.
    pub ips: Vec<IpAddr>,
    /// The pool named by `ferrolb.io/ip-allocated-from-pool`. Only a hint:
    /// the pool whose addresses hold the IPs wins (see
    /// [`super::desired::service_pool`]), since `kubectl replace`, a GitOps
    /// tool or a migration can remove the annotation or leave it naming the
    /// wrong pool.
    pub pool: Option<String>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// `metadata.uid`, for Event references (`kubectl describe` selects
    /// Events by it).
    pub uid: Option<String>,
}

impl ServiceInfo {
    /// `None` for Services the speaker ignores: not of type LoadBalancer,
    /// or without ingress IPs yet.
    pub fn from_service(svc: &Service) -> Option<Self> {
        let spec = svc.spec.as_ref()?;
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return None;
        }
        let ips = ferrolb_crds::service::ingress_ips(svc);
        if ips.is_empty() {
            return None;
        }
        Some(Self {
            key: ObjectKey::of(svc),
            ips,
            pool: ferrolb_crds::service::allocated_pool(svc),
            local: spec.external_traffic_policy.as_deref() == Some("Local"),
            uid: svc.uid(),
        })
    }
}

/// The ready endpoints of one EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service it belongs to.
    pub service: Option<ObjectKey>,
    /// Ready endpoints on any node, including those without `nodeName`.
    pub ready: usize,
    /// Nodes holding at least one ready endpoint.
    pub ready_nodes: BTreeSet<String>,
}

impl SliceInfo {
    /// Reads an EndpointSlice. An endpoint whose `ready` is unset counts as
    /// ready, as the API documents.
    pub fn from_slice(slice: &EndpointSlice) -> Self {
        let service = slice
            .labels()
            .get(SERVICE_NAME_LABEL)
            .map(|name| ObjectKey::new(slice.namespace().unwrap_or_default(), name.clone()));
        let mut out = Self {
            service,
            ..Self::default()
        };
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if ready {
                out.ready += 1;
                if let Some(node) = &ep.node_name {
                    out.ready_nodes.insert(node.clone());
                }
            }
        }
        out
    }
}

/// A Node's name, labels and the conditions the speaker reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `Ready` is `True`.
    pub ready: bool,
    /// `NetworkUnavailable` is `True`.
    pub network_unavailable: bool,
    /// The first `InternalIP` address: where its speaker gossips.
    pub internal_ip: Option<IpAddr>,
}

impl NodeFacts {
    /// Reads a Node.
    pub fn from_node(node: &Node) -> Self {
        let status = |type_: &str| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == type_ && c.status == "True")
        };
        Self {
            name: node.name_any(),
            labels: node.labels().clone(),
            ready: status("Ready"),
            network_unavailable: status("NetworkUnavailable"),
            internal_ip: node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .into_iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP")
                .find_map(|a| a.address.parse().ok()),
        }
    }
}

/// An IPAddressPool's identity, labels (for `ipAddressPoolSelectors`) and
/// addresses (to find the pool holding a Service's IPs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The entries of `spec.addresses` that parse, in order. Entries that
    /// do not parse are skipped: the controller reports them on the pool's
    /// `Valid` condition, and the rest of the pool still holds the IPs it
    /// handed out before the bad entry appeared.
    pub ranges: Vec<AddressRange>,
}

impl PoolInfo {
    /// Reads a pool.
    pub fn from_pool(pool: &IPAddressPool) -> Self {
        Self {
            name: pool.name_any(),
            labels: pool.labels().clone(),
            ranges: pool
                .spec
                .addresses
                .iter()
                .filter_map(|a| AddressRange::parse(a).ok())
                .collect(),
        }
    }

    /// Whether one of the pool's ranges holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }
}

/// An L2Advertisement's selection rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdInfo {
    /// Its key, for logs and Events.
    pub key: ObjectKey,
    /// `ipAddressPools`.
    pub pools: Vec<String>,
    /// `ipAddressPoolSelectors`. An invalid one (unknown operator, `In`
    /// or `NotIn` without values, ...) matches nothing, as in the
    /// controller, which reports it on the advertisement; a typo never
    /// widens a selection.
    pub pool_selectors: Vec<LabelSelector>,
    /// `nodeSelectors`, read the same way.
    pub node_selectors: Vec<LabelSelector>,
    /// `interfaces`.
    pub interfaces: Vec<String>,
    /// `metadata.uid`, for Event references.
    pub uid: Option<String>,
}

impl AdInfo {
    /// Reads an advertisement.
    pub fn from_ad(ad: &L2Advertisement) -> Self {
        Self {
            key: ObjectKey::of(ad),
            pools: ad.spec.ip_address_pools.clone(),
            pool_selectors: ad
                .spec
                .ip_address_pool_selectors
                .iter()
                .map(|s| ferrolb_crds::selector::from_k8s(s).valid_or_nothing())
                .collect(),
            node_selectors: ad
                .spec
                .node_selectors
                .iter()
                .map(|s| ferrolb_crds::selector::from_k8s(s).valid_or_nothing())
                .collect(),
            interfaces: ad.spec.interfaces.clone(),
            uid: ad.uid(),
        }
    }

    /// Whether it announces `pool`: named, or matched by a selector, or
    /// every pool when it has neither.
    pub fn selects_pool(&self, pool: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.pools.is_empty() && self.pool_selectors.is_empty() {
            return true;
        }
        self.pools.iter().any(|p| p == pool)
            || labels.is_some_and(|l| self.pool_selectors.iter().any(|s| s.matches(l)))
    }

    /// Whether it lets `node` announce: every node without selectors,
    /// otherwise a node matching any selector.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(labels))
    }
}

/// The endpoint facts of a Service, summed over its slices, as the
/// election wants them.
pub fn traffic_policy<'a>(
    local: bool,
    slices: impl IntoIterator<Item = &'a SliceInfo>,
) -> TrafficPolicy {
    // Node names are collected only where the policy needs them.
    if local {
        let ready_nodes = slices
            .into_iter()
            .flat_map(|s| s.ready_nodes.iter().cloned())
            .collect();
        TrafficPolicy::Local { ready_nodes }
    } else {
        TrafficPolicy::Cluster {
            has_ready_endpoint: slices.into_iter().any(|s| s.ready > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_selector_with_an_unknown_operator_selects_no_pool_and_no_node() {
        let ad: L2Advertisement = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "typo", "namespace": "ferrolb-system"},
            "spec": {
                "ipAddressPoolSelectors": [{"matchExpressions": [{"key": "tier", "operator": "Near"}]}],
                "nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "in", "values": ["a"]}]}],
            },
        }))
        .unwrap();
        let info = AdInfo::from_ad(&ad);
        let tier = BTreeMap::from([("tier".to_string(), "gold".to_string())]);
        let zone = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        assert!(!info.selects_pool("gold", Some(&tier)));
        assert!(!info.selects_pool("gold", Some(&BTreeMap::new())));
        assert!(!info.selects_node(&zone), "operators are case-sensitive");
        assert!(!info.selects_node(&BTreeMap::new()));
    }

    #[test]
    fn a_selector_the_controller_rejects_selects_nothing_here_either() {
        // `NotIn` without values would match every node if evaluated as
        // written; the controller marks it invalid, so it selects nothing.
        let ad: L2Advertisement = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "empty", "namespace": "ferrolb-system"},
            "spec": {
                "nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "NotIn"}]}],
            },
        }))
        .unwrap();
        let info = AdInfo::from_ad(&ad);
        assert!(!info.selects_node(&BTreeMap::new()));
        assert!(!info.selects_node(&BTreeMap::from([("zone".into(), "a".into())])));
    }

    #[test]
    fn endpoints_without_ready_count_as_ready_and_not_ready_ones_do_not() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "a"},
                {"addresses": ["10.0.0.2"], "nodeName": "b", "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": true}},
            ],
        }))
        .unwrap();
        let info = SliceInfo::from_slice(&slice);
        assert_eq!(info.service, Some(ObjectKey::new("default", "web")));
        assert_eq!(info.ready, 2);
        assert_eq!(info.ready_nodes, ["a".to_string()].into());
    }

    #[test]
    fn a_pool_keeps_the_entries_that_parse_and_contains_their_addresses() {
        let pool: IPAddressPool = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "a", "namespace": "ferrolb-system", "labels": {"tier": "gold"}},
            "spec": {"addresses": ["192.0.2.0/28", "192.0.2.300", "2001:db8::10-2001:db8::1f"]},
        }))
        .unwrap();
        let info = PoolInfo::from_pool(&pool);
        assert_eq!(info.name, "a");
        assert_eq!(info.labels["tier"], "gold");
        assert_eq!(info.ranges.len(), 2, "the bad entry is skipped");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(info.contains(ip("192.0.2.15")));
        assert!(info.contains(ip("2001:db8::1f")));
        assert!(!info.contains(ip("192.0.2.16")));
        assert!(!info.contains(ip("2001:db8::20")));
    }

    #[test]
    fn a_service_reads_ips_pool_and_policy() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {"ferrolb.io/ip-allocated-from-pool": "public"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}, {"hostname": "x"}]}},
        }))
        .unwrap();
        let info = ServiceInfo::from_service(&svc).unwrap();
        assert_eq!(info.ips.len(), 2);
        assert_eq!(info.pool.as_deref(), Some("public"));
        assert!(info.local);
    }
}
