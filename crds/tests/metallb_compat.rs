//! A MetalLB user's manifests work after changing only `apiVersion`.
//!
//! The YAML below is MetalLB's documented configuration examples
//! (metallb.io/v1beta1 IPAddressPool and L2Advertisement), with `apiVersion`
//! changed and the addresses moved into documentation ranges. Each one must
//! deserialize into our types with the same meaning, and pass our schema
//! without any field being unknown (which the API server would drop).

mod common;

use common::{rejections, yaml_documents};
use ferrolb_crds::generate::{ip_address_pool_crd, l2_advertisement_crd};
use ferrolb_crds::{IPAddressPool, L2Advertisement};

const METALLB_EXAMPLES: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
  namespace: metallb-system
spec:
  addresses:
  - 198.51.100.0/24
  - 203.0.113.1-203.0.113.5
  - 2001:db8:f853:ccd:e799::/124
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: expensive
  namespace: metallb-system
spec:
  addresses:
  - 192.0.2.64/30
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: ippool-ns-service-alloc-sample
  namespace: metallb-system
spec:
  addresses:
    - 192.0.2.128/26
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces:
      - namespace-a
      - namespace-b
    namespaceSelectors:
      - matchLabels:
          foo: bar
    serviceSelectors:
      - matchExpressions:
          - {key: app, operator: In, values: [bar]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: example
  namespace: metallb-system
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: example
  namespace: metallb-system
spec:
  ipAddressPools:
  - first-pool
  nodeSelectors:
  - matchLabels:
      kubernetes.io/hostname: NodeA
  - matchLabels:
      kubernetes.io/hostname: NodeB
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2-ip-pool-selector
  namespace: metallb-system
spec:
  ipAddressPoolSelectors:
  - matchExpressions:
    - key: pool
      operator: In
      values: [first-pool]
  interfaces:
  - eth0
  - eth1
"#;

fn docs() -> Vec<serde_json::Value> {
    let docs = yaml_documents(METALLB_EXAMPLES);
    assert_eq!(docs.len(), 6);
    docs
}

fn pool(index: usize) -> IPAddressPool {
    serde_json::from_value(docs()[index].clone()).expect("MetalLB pool deserializes")
}

fn advertisement(index: usize) -> L2Advertisement {
    serde_json::from_value(docs()[index].clone()).expect("MetalLB advertisement deserializes")
}

#[test]
fn metallb_pool_with_mixed_families_and_a_range_keeps_every_entry() {
    let pool = pool(0);
    assert_eq!(pool.metadata.name.as_deref(), Some("first-pool"));
    assert_eq!(
        pool.spec.addresses,
        [
            "198.51.100.0/24",
            "203.0.113.1-203.0.113.5",
            "2001:db8:f853:ccd:e799::/124"
        ]
    );
    assert!(
        pool.spec.auto_assign,
        "autoAssign defaults to true as in MetalLB"
    );
    assert!(
        !pool.spec.avoid_buggy_ips,
        "avoidBuggyIPs defaults to false as in MetalLB"
    );
    assert!(pool.spec.service_allocation.is_none());
}

#[test]
fn metallb_pool_without_auto_assign_is_not_auto_assigned() {
    assert!(!pool(1).spec.auto_assign);
}

#[test]
fn metallb_service_allocation_maps_field_for_field() {
    let pool = pool(2);
    assert!(pool.spec.avoid_buggy_ips);
    let alloc = pool.spec.service_allocation.expect("serviceAllocation");
    assert_eq!(alloc.priority, Some(50));
    assert_eq!(alloc.namespaces, ["namespace-a", "namespace-b"]);
    let ns_labels = alloc.namespace_selectors[0]
        .match_labels
        .as_ref()
        .expect("matchLabels");
    assert_eq!(ns_labels.get("foo").map(String::as_str), Some("bar"));
    let expr = &alloc.service_selectors[0]
        .match_expressions
        .as_ref()
        .expect("matchExpressions")[0];
    assert_eq!((expr.key.as_str(), expr.operator.as_str()), ("app", "In"));
    assert_eq!(expr.values.as_deref(), Some(&["bar".to_string()][..]));
}

#[test]
fn metallb_advertisement_without_spec_announces_every_pool_everywhere() {
    let ad = advertisement(3);
    assert!(ad.spec.ip_address_pools.is_empty());
    assert!(ad.spec.ip_address_pool_selectors.is_empty());
    assert!(ad.spec.node_selectors.is_empty());
    assert!(ad.spec.interfaces.is_empty());
}

#[test]
fn metallb_advertisement_with_pools_and_node_selectors_maps_field_for_field() {
    let ad = advertisement(4);
    assert_eq!(ad.spec.ip_address_pools, ["first-pool"]);
    let hosts: Vec<_> = ad
        .spec
        .node_selectors
        .iter()
        .filter_map(|s| {
            s.match_labels
                .as_ref()?
                .get("kubernetes.io/hostname")
                .cloned()
        })
        .collect();
    assert_eq!(hosts, ["NodeA", "NodeB"]);
}

#[test]
fn metallb_advertisement_with_pool_selectors_and_interfaces_maps_field_for_field() {
    let ad = advertisement(5);
    assert_eq!(ad.spec.interfaces, ["eth0", "eth1"]);
    let expr = &ad.spec.ip_address_pool_selectors[0]
        .match_expressions
        .as_ref()
        .expect("expr")[0];
    assert_eq!(expr.key, "pool");
}

#[test]
fn every_metallb_example_passes_our_schema_with_no_unknown_field() {
    for doc in docs() {
        let crd = match doc["kind"].as_str() {
            Some("IPAddressPool") => ip_address_pool_crd(),
            Some("L2Advertisement") => l2_advertisement_crd(),
            other => panic!("unexpected kind {other:?}"),
        };
        assert_eq!(
            rejections(&crd, &doc),
            Vec::<String>::new(),
            "{}",
            doc["metadata"]["name"]
        );
    }
}

/// The documents of `ours` as MetalLB's manifest: `apiVersion`
/// metallb.io/v1beta1, nothing else changed.
fn as_metallb(ours: &str) -> Vec<serde_json::Value> {
    let metallb = ours.replace(
        "apiVersion: ferrolb.io/v1beta1",
        "apiVersion: metallb.io/v1beta1",
    );
    let docs = yaml_documents(&metallb);
    for doc in &docs {
        assert_eq!(doc["apiVersion"], "metallb.io/v1beta1");
    }
    docs
}

#[test]
fn the_same_manifest_under_metallb_api_version_means_the_same_thing() {
    // Our types ignore apiVersion when deserializing, so this shows that only
    // the apiVersion line differs between a MetalLB manifest and ours.
    for (ours, theirs) in docs().into_iter().zip(as_metallb(METALLB_EXAMPLES)) {
        assert_eq!(ours["spec"], theirs["spec"]);
        assert_eq!(ours["kind"], theirs["kind"]);
    }
}

/// MetalLB's examples of the newer L2Advertisement fields (the
/// `preferredNodeSelectors` design, `design/preferred-node-l2.md`, and its
/// `serviceSelectors` example), `apiVersion` changed.
const METALLB_NEWER_FIELDS: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: prefer-edge
  namespace: metallb-system
spec:
  ipAddressPools:
    - production-pool
  nodeSelectors:
    - matchLabels:
        role: lb
  preferredNodeSelectors:
    - weight: 100
      preference:
        matchLabels:
          node-role: edge
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: tiered-zones
  namespace: metallb-system
spec:
  ipAddressPools:
    - production-pool
  preferredNodeSelectors:
    - weight: 100
      preference:
        matchLabels:
          zone: primary
    - weight: 50
      preference:
        matchLabels:
          zone: secondary
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: zone-preference-for-frontend
  namespace: metallb-system
spec:
  ipAddressPools:
    - shared-pool
  serviceSelectors:
    - matchLabels:
        app: frontend
  preferredNodeSelectors:
    - weight: 100
      preference:
        matchLabels:
          zone: primary
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: preferred-nomatch
  namespace: metallb-system
spec:
  preferredNodeSelectors:
    - weight: 100
      preference:
        matchLabels:
          l2-preferred-node-nomatch: "true"
    - weight: 10
      preference: {}
"#;

fn newer() -> Vec<L2Advertisement> {
    yaml_documents(METALLB_NEWER_FIELDS)
        .into_iter()
        .map(|doc| {
            assert_eq!(
                rejections(&l2_advertisement_crd(), &doc),
                Vec::<String>::new(),
                "{}",
                doc["metadata"]["name"]
            );
            serde_json::from_value(doc).expect("MetalLB advertisement deserializes")
        })
        .collect()
}

#[test]
fn metallb_preferred_node_selectors_map_field_for_field() {
    let ads = newer();
    assert_eq!(ads.len(), 4);
    let edge = &ads[0].spec;
    assert_eq!(edge.ip_address_pools, ["production-pool"]);
    assert_eq!(edge.node_selectors.len(), 1);
    let p = &edge.preferred_node_selectors[0];
    assert_eq!(p.weight, 100);
    let labels = p.preference.match_labels.as_ref().expect("matchLabels");
    assert_eq!(labels.get("node-role").map(String::as_str), Some("edge"));
    let tiers: Vec<i32> = ads[1]
        .spec
        .preferred_node_selectors
        .iter()
        .map(|p| p.weight)
        .collect();
    assert_eq!(tiers, [100, 50]);
    let match_all = &ads[3].spec.preferred_node_selectors[1];
    assert_eq!(match_all.weight, 10);
    assert_eq!(match_all.preference, Default::default());
}

#[test]
fn metallb_service_selectors_map_field_for_field() {
    let ad = &newer()[2].spec;
    let labels = ad.service_selectors[0]
        .match_labels
        .as_ref()
        .expect("matchLabels");
    assert_eq!(labels.get("app").map(String::as_str), Some("frontend"));
    assert_eq!(ad.preferred_node_selectors[0].weight, 100);
}

#[test]
fn the_newer_fields_serialize_back_under_metallb_names() {
    for (ad, theirs) in newer().into_iter().zip(as_metallb(METALLB_NEWER_FIELDS)) {
        assert_eq!(
            serde_json::to_value(&ad.spec).expect("serializable"),
            theirs["spec"]
        );
    }
}
