//! The `L2Advertisement` kind: which pools the speakers announce with
//! ARP/NDP, from which nodes and on which interfaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::schema::{self, INTERFACE_MAX_LENGTH};

/// Desired state of an L2Advertisement. Same fields as MetalLB's
/// metallb.io/v1beta1 L2Advertisement; every field is optional and an
/// empty spec (or none at all) announces every pool from every node on
/// every interface.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy mistakes for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    singular = "l2advertisement",
    plural = "l2advertisements",
    namespaced,
    status = "L2AdvertisementStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "Announces the IPs of selected IPAddressPools on the local network (ARP for IPv4, NDP for IPv6) from selected nodes.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    ),
    printcolumn(
        name = "Pools Selected",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"PoolsSelected\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// `remote = "Self"` turns the derives into inherent functions that the
// hand-written trait impls below wrap; see the Deserialize impl for why.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Names of pools (in the advertisement's namespace) to announce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 253), pattern(schema::OBJECT_NAME_PATTERN))
    )]
    pub ip_address_pools: Vec<String>,

    /// Label selectors on pools to announce, in addition to the named ones.
    /// When neither names nor selectors are given, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Label selectors on Nodes allowed to announce; a node matching any
    /// selector qualifies. Empty: every node with a speaker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub node_selectors: Vec<LabelSelector>,

    /// Network interfaces to answer ARP/NDP on. Empty: every interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = INTERFACE_MAX_LENGTH), pattern(schema::INTERFACE_PATTERN))
    )]
    pub interfaces: Vec<String>,

    /// Label selectors on Services: the advertisement applies only to
    /// Services matching any of them. Empty: every Service of the selected
    /// pools. A Service carrying the allow-shared-ip annotation is not
    /// announced while an advertisement with serviceSelectors applies to
    /// it, since Services sharing one IP could otherwise be announced from
    /// different nodes (as in MetalLB).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), transform = schema::selector_list_cel)]
    pub service_selectors: Vec<LabelSelector>,

    /// Soft preferences for the announcing node, like a Pod's
    /// `preferredDuringSchedulingIgnoredDuringExecution`: each live
    /// candidate node scores the weights of the preferences it matches,
    /// summed over every advertisement that applies to the Service (an
    /// advertisement scores only the nodes its own nodeSelectors allow),
    /// and the highest score wins; equal scores fall back to the usual
    /// hash order. When no preferred node is available, any other
    /// candidate announces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// A weighted soft preference for nodes (MetalLB's `PreferredNodeSelector`,
/// shaped like Kubernetes' `PreferredSchedulingTerm`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredNodeSelector {
    /// Score a matching node gets from this preference, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,

    /// The nodes this preference favours; an empty selector matches every
    /// node the advertisement allows.
    #[schemars(transform = schema::selector_cel)]
    pub preference: LabelSelector,
}

impl<'de> Deserialize<'de> for L2AdvertisementSpec {
    /// Accepts a missing or `null` spec as the empty spec.
    ///
    /// MetalLB's documented minimal advertisement has no `spec` at all, but
    /// the root type generated by `CustomResource` requires one. A missing
    /// field reaches serde's `deserialize_option` as `None`, so going
    /// through `Option` turns "absent" into "default" without touching the
    /// generated root.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Present(#[serde(with = "L2AdvertisementSpec")] L2AdvertisementSpec);

        Ok(Option::<Present>::deserialize(deserializer)?
            .map(|present| present.0)
            .unwrap_or_default())
    }
}

impl Serialize for L2AdvertisementSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        L2AdvertisementSpec::serialize(self, serializer)
    }
}

/// Observed state of an L2Advertisement, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementStatus {
    /// Valid (the selectors parse) and PoolsSelected (at least one existing
    /// pool is selected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertisement_without_spec_announces_everything() {
        let ad: L2Advertisement = serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "everything", "namespace": "ferrolb-system"},
        }))
        .expect("a spec-less advertisement is valid");
        assert_eq!(ad.spec, L2AdvertisementSpec::default());
    }

    #[test]
    fn a_null_spec_is_the_empty_spec() {
        let spec: L2AdvertisementSpec = serde_json::from_str("null").expect("null is accepted");
        assert_eq!(spec, L2AdvertisementSpec::default());
    }

    #[test]
    fn spec_round_trips_with_metallb_field_names() {
        let json = serde_json::json!({
            "ipAddressPools": ["public"],
            "ipAddressPoolSelectors": [{"matchLabels": {"tier": "edge"}}],
            "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node-a"}}],
            "interfaces": ["eth0"],
            "serviceSelectors": [{"matchLabels": {"app": "web"}}],
            "preferredNodeSelectors": [{"weight": 40, "preference": {"matchLabels": {"zone": "a"}}}],
        });
        let spec: L2AdvertisementSpec = serde_json::from_value(json.clone()).expect("valid spec");
        assert_eq!(spec.ip_address_pools, ["public"]);
        assert_eq!(spec.interfaces, ["eth0"]);
        assert_eq!(spec.service_selectors.len(), 1);
        assert_eq!(spec.preferred_node_selectors[0].weight, 40);
        assert_eq!(serde_json::to_value(&spec).expect("serializable"), json);
    }

    #[test]
    fn a_preference_needs_a_weight_and_a_preference() {
        for json in [r#"{"weight": 10}"#, r#"{"preference": {}}"#] {
            assert!(
                serde_json::from_str::<PreferredNodeSelector>(json).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn a_wrongly_typed_field_is_still_an_error() {
        let err = serde_json::from_str::<L2AdvertisementSpec>(r#"{"interfaces":"eth0"}"#)
            .expect_err("interfaces must be a list");
        assert!(err.to_string().contains("sequence"), "{err}");
    }
}
