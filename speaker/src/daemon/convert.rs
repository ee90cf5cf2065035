//! The watch edge: Kubernetes objects in, the announce decision's domain
//! types ([`ferrolb_core::announce::model`]) out, so the decision never
//! sees `k8s_openapi`.

use super::partial::{Conditions, EndpointSlice};
use ferrolb_core::announce::model::{
    AdInfo, NodeFacts, ObjectKey, PoolInfo, Preference, ServiceInfo, ServiceLabels, SliceInfo,
};
use ferrolb_crds::annotations::ALLOW_SHARED_IP_KEYS;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::ResourceExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The label an EndpointSlice carries naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Names that recur across thousands of objects (namespaces, node names)
/// are kept once: [`shared`] hands out one `Arc<str>` per distinct name.
/// Bounded: past [`SHARED_MAX`] names the table starts over (only the
/// sharing is lost).
static SHARED: Mutex<Option<HashSet<Arc<str>>>> = Mutex::new(None);

/// Distinct names [`shared`] remembers at most.
pub const SHARED_MAX: usize = 65_536;

/// `name` as a shared string.
pub fn shared(name: &str) -> Arc<str> {
    let Ok(mut guard) = SHARED.lock() else {
        return Arc::from(name);
    };
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(s) = set.get(name) {
        return s.clone();
    }
    if set.len() >= SHARED_MAX {
        set.clear();
    }
    let s: Arc<str> = Arc::from(name);
    set.insert(s.clone());
    s
}

/// The key of a Kubernetes object (cluster-scoped: empty namespace).
pub fn key<K: kube::Resource>(obj: &K) -> ObjectKey {
    ObjectKey::new(
        shared(obj.meta().namespace.as_deref().unwrap_or_default()),
        obj.name_any(),
    )
}

/// The annotation asking that a Service's IP move when that evens the
/// load (any value; remove it to pin the Service again). Read only with
/// `--ownership sticky`.
pub const REBALANCE_ANNOTATION: &str = "ferrolb.io/rebalance";

/// `None` for Services the speaker ignores: not of type LoadBalancer, or
/// without ingress IPs yet.
pub fn service(svc: &Service) -> Option<ServiceInfo> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let ips = ferrolb_crds::service::ingress_ips(svc);
    if ips.is_empty() {
        return None;
    }
    Some(ServiceInfo {
        key: key(svc),
        ips,
        pool: ferrolb_crds::service::allocated_pool(svc),
        local: spec.external_traffic_policy.as_deref() == Some("Local"),
        uid: svc.uid(),
        labels: ServiceLabels::new(svc.labels()),
        allows_sharing: ALLOW_SHARED_IP_KEYS
            .iter()
            .any(|k| svc.annotations().contains_key(*k)),
        rebalance: svc.annotations().contains_key(REBALANCE_ANNOTATION),
    })
}

/// Reads an EndpointSlice: its ready endpoints (an unset `ready` counts as
/// ready, as the API documents) and those terminating but still serving
/// (kube-proxy's fallback; see `model::traffic_policy`).
pub fn slice(slice: &EndpointSlice) -> SliceInfo {
    let service = slice.labels().get(SERVICE_NAME_LABEL).map(|name| {
        ObjectKey::new(
            shared(slice.metadata.namespace.as_deref().unwrap_or_default()),
            name.as_str(),
        )
    });
    let (ready, ready_nodes) = endpoints(slice, Conditions::is_ready);
    let (terminating, terminating_nodes) = endpoints(slice, Conditions::is_terminating_and_serving);
    SliceInfo {
        service,
        ready,
        ready_nodes,
        terminating,
        terminating_nodes,
    }
}

/// How many endpoints of `slice` pass `keep`, and their nodes.
fn endpoints(
    slice: &EndpointSlice,
    keep: fn(Option<&Conditions>) -> bool,
) -> (usize, Vec<Arc<str>>) {
    let kept: Vec<_> = slice
        .endpoints
        .iter()
        .filter(|ep| keep(ep.conditions.as_ref()))
        .collect();
    let nodes = SliceInfo::nodes(
        kept.iter()
            .filter_map(|ep| ep.node_name.as_deref())
            .map(shared),
    );
    (kept.len(), nodes)
}

/// Reads a Node.
pub fn node(node: &Node) -> NodeFacts {
    let status = |type_: &str| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    NodeFacts {
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

/// Reads a pool; entries of `spec.addresses` that do not parse are
/// skipped ([`PoolInfo::new`]).
pub fn pool(pool: &IPAddressPool) -> PoolInfo {
    PoolInfo::new(pool.name_any(), pool.labels().clone(), &pool.spec.addresses)
}

/// Reads an advertisement. Selectors are converted without validation and
/// an invalid one selects nothing ([`AdInfo::pool_selectors`]); a
/// preference whose weight is outside 1-100 (which the CRD rejects, and
/// the controller reports on an object stored before that rule) is
/// dropped.
pub fn advertisement(ad: &L2Advertisement) -> AdInfo {
    let selectors = |list: &[_]| {
        list.iter()
            .map(|s| ferrolb_crds::selector::from_k8s(s).valid_or_nothing())
            .collect()
    };
    AdInfo {
        key: key(ad),
        pools: ad.spec.ip_address_pools.clone(),
        pool_selectors: selectors(&ad.spec.ip_address_pool_selectors),
        node_selectors: selectors(&ad.spec.node_selectors),
        interfaces: ad.spec.interfaces.clone(),
        uid: ad.uid(),
        service_selectors: selectors(&ad.spec.service_selectors),
        preferences: ad
            .spec
            .preferred_node_selectors
            .iter()
            .filter_map(|p| {
                let weight = u32::try_from(p.weight)
                    .ok()
                    .filter(|w| (1..=100).contains(w))?;
                Some(Preference {
                    weight,
                    selector: ferrolb_crds::selector::from_k8s(&p.preference).valid_or_nothing(),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

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
        let info = advertisement(&ad);
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
        let info = advertisement(&ad);
        assert!(!info.selects_node(&BTreeMap::new()));
        assert!(!info.selects_node(&BTreeMap::from([("zone".into(), "a".into())])));
    }

    #[test]
    fn endpoints_without_ready_count_as_ready_and_not_ready_ones_do_not() {
        let obj: EndpointSlice = serde_json::from_value(json!({
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
        let info = slice(&obj);
        assert_eq!(info.service, Some(ObjectKey::new("default", "web")));
        assert_eq!(info.ready, 2);
        assert_eq!(info.ready_nodes, SliceInfo::nodes(["a"]));
        assert_eq!(info.terminating, 0, "not ready and not serving: nothing");
    }

    #[test]
    fn terminating_endpoints_that_still_serve_are_kept_apart() {
        let obj: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                // Draining during a rolling update: kube-proxy's fallback.
                {"addresses": ["10.0.0.1"], "nodeName": "a",
                 "conditions": {"ready": false, "serving": true, "terminating": true}},
                // Terminating and no longer serving: nothing.
                {"addresses": ["10.0.0.2"], "nodeName": "b",
                 "conditions": {"ready": false, "serving": false, "terminating": true}},
                // Starting, not ready yet (`serving` unset defers to `ready`).
                {"addresses": ["10.0.0.3"], "nodeName": "c",
                 "conditions": {"ready": false}},
                // Ready and serving.
                {"addresses": ["10.0.0.4"], "nodeName": "d",
                 "conditions": {"ready": true, "serving": true, "terminating": false}},
            ],
        }))
        .unwrap();
        let info = slice(&obj);
        assert_eq!((info.ready, info.terminating), (1, 1));
        assert_eq!(info.ready_nodes, SliceInfo::nodes(["d"]));
        assert_eq!(info.terminating_nodes, SliceInfo::nodes(["a"]));
    }

    #[test]
    fn a_pool_keeps_the_entries_that_parse_and_contains_their_addresses() {
        let obj: IPAddressPool = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "a", "namespace": "ferrolb-system", "labels": {"tier": "gold"}},
            "spec": {"addresses": ["192.0.2.0/28", "192.0.2.300", "2001:db8::10-2001:db8::1f"]},
        }))
        .unwrap();
        let info = pool(&obj);
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
        let obj: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {"ferrolb.io/ip-allocated-from-pool": "public"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}, {"hostname": "x"}]}},
        }))
        .unwrap();
        let info = service(&obj).unwrap();
        assert_eq!(info.ips.len(), 2);
        assert_eq!(info.pool.as_deref(), Some("public"));
        assert!(info.local);
        assert!(info.labels.is_empty());
        assert!(!info.allows_sharing);
        assert!(!info.rebalance);
    }

    #[test]
    fn the_rebalance_annotation_is_read_whatever_its_value() {
        for value in ["true", "", "please"] {
            let obj: Service = serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default",
                             "annotations": {REBALANCE_ANNOTATION: value}},
                "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
            }))
            .unwrap();
            assert!(service(&obj).unwrap().rebalance, "{value:?}");
        }
    }

    #[test]
    fn a_service_reads_its_labels_and_any_spelling_of_the_sharing_annotation() {
        use ferrolb_core::selector::LabelSource;
        for key in ALLOW_SHARED_IP_KEYS {
            let obj: Service = serde_json::from_value(json!({
                "metadata": {"name": "dns", "namespace": "default",
                             "labels": {"app": "dns", "tier": "core"},
                             "annotations": {key: "dns"}},
                "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.53"}]}},
            }))
            .unwrap();
            let info = service(&obj).unwrap();
            assert!(info.allows_sharing, "{key}");
            assert_eq!(info.labels.label("app"), Some("dns"));
            assert_eq!(info.labels.iter().count(), 2);
        }
    }

    #[test]
    fn an_advertisement_reads_service_selectors_and_preferences() {
        let ad: L2Advertisement = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "edge", "namespace": "ferrolb-system"},
            "spec": {
                "serviceSelectors": [{"matchLabels": {"app": "web"}}],
                "preferredNodeSelectors": [
                    {"weight": 100, "preference": {"matchLabels": {"role": "edge"}}},
                    // Refused by the CRD; an object stored before that rule
                    // loses this preference here.
                    {"weight": 0, "preference": {}},
                    {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "Near"}]}},
                ],
            },
        }))
        .unwrap();
        let info = advertisement(&ad);
        let web = ServiceLabels::new([("app", "web")]);
        assert!(info.selects_service(&web));
        assert!(!info.selects_service(&ServiceLabels::default()));
        let weights: Vec<u32> = info.preferences.iter().map(|p| p.weight).collect();
        assert_eq!(weights, [100, 20]);
        let edge = BTreeMap::from([
            ("role".to_string(), "edge".to_string()),
            ("zone".to_string(), "a".to_string()),
        ]);
        assert_eq!(
            info.score(&edge),
            100,
            "the invalid selector matches nothing"
        );
    }

    #[test]
    fn recurring_names_are_kept_once() {
        let obj = |name: &str| -> EndpointSlice {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "node-7"}],
            }))
            .unwrap()
        };
        let (a, b) = (slice(&obj("web-a")), slice(&obj("web-b")));
        assert!(Arc::ptr_eq(&a.ready_nodes[0], &b.ready_nodes[0]));
        let (ka, kb) = (a.service.unwrap(), b.service.unwrap());
        assert!(Arc::ptr_eq(&ka.namespace, &kb.namespace));
        assert!(Arc::ptr_eq(&key(&obj("web-a")).namespace, &ka.namespace));
    }
}
