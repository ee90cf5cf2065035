//! The `ServiceL2Status` kind: which node announces a Service, on which
//! interfaces, readable with `kubectl get servicel2statuses`.
//!
//! The speakers write it, never an operator. Fields and labels are
//! MetalLB's (`metallb.io/v1beta1` `ServiceL2Status`), under our group:
//! `status.node`, `status.serviceName`, `status.serviceNamespace`,
//! `status.interfaces[].name` and the labels [`NODE_LABEL`],
//! [`SERVICE_NAME_LABEL`] and [`SERVICE_NAMESPACE_LABEL`]. Where ferrolb
//! differs (see `docs/crds.md`):
//!
//! - one record per announced Service, named like the Service and kept in
//!   the Service's namespace with an ownerReference to it, so deleting the
//!   Service deletes its record (MetalLB keeps records in its own namespace
//!   under random names, owned by the speaker Pod);
//! - no status subresource: the owner writes a record in one request;
//! - `status.node` may change (a new owner takes the record over), and two
//!   more fields: `status.ips` and `status.lastTransitionTime`;
//! - a short name, `l2status`: with MetalLB installed side by side (a
//!   migration), `servicel2statuses` names two kinds and kubectl picks
//!   one; `kubectl get l2status` is always ferrolb's.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::schema::{self, INTERFACE_MAX_LENGTH};

/// Label naming the node that announces the Service (MetalLB's
/// `metallb.io/node`). Absent when the node's name is too long for a label
/// value (more than 63 characters); `status.node` always names it.
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service (MetalLB's `metallb.io/service-name`).
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace (MetalLB's
/// `metallb.io/service-namespace`).
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";

/// Longest label value Kubernetes accepts.
const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Most IPs a record lists: a Service has one per family, but
/// `status.loadBalancer.ingress` may list more.
const IPS_MAX_ITEMS: u32 = 16;
/// Longest textual IP (an IPv6 address with an embedded IPv4 one).
const IP_MAX_LENGTH: u32 = 45;

/// A ServiceL2Status has nothing to ask for: everything is in `status`,
/// as in MetalLB. A missing or `null` spec reads as the empty one.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy mistakes for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    singular = "servicel2status",
    plural = "servicel2statuses",
    shortname = "l2status",
    namespaced,
    status = "ServiceL2StatusStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "Which node announces a LoadBalancer Service's IPs (ARP for IPv4, NDP for IPv6) and on which interfaces. Written by the announcing node's speaker; named like the Service, in its namespace.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "IPs", type_ = "string", json_path = ".status.ips"),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".status.interfaces"
    ),
    printcolumn(
        name = "Since",
        type_ = "date",
        json_path = ".status.lastTransitionTime"
    ),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName",
        priority = 1
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        priority = 1
    )
)]
pub struct ServiceL2StatusSpec {}

impl<'de> Deserialize<'de> for ServiceL2StatusSpec {
    /// Accepts anything, `null` and a missing spec included: the spec has
    /// no fields, and a hand-made record without one must not break the
    /// speakers' watch.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<serde::de::IgnoredAny>::deserialize(deserializer)?;
        Ok(Self {})
    }
}

/// Who announces the Service, written by that node's speaker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node that announces the Service's IPs, so receives their
    /// traffic. Changes when another node takes the Service over.
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub node: String,

    /// The Service this record is about (its name is also the record's).
    #[serde(default)]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("serviceName is immutable"))]
    pub service_name: String,

    /// The Service's namespace (also the record's).
    #[serde(default)]
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("serviceNamespace is immutable"))]
    pub service_namespace: String,

    /// The interfaces the node answers ARP/NDP on for the Service. Empty
    /// when the node has none it can use (a Warning Event says why).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub interfaces: Vec<InterfaceInfo>,

    /// The Service's IPs the node announces (not in MetalLB's record).
    #[serde(default)]
    #[schemars(
        length(max = IPS_MAX_ITEMS),
        inner(length(min = 1, max = IP_MAX_LENGTH)),
        transform = schema::ip_items_cel
    )]
    pub ips: Vec<String>,

    /// When `node` started announcing the Service (not in MetalLB's
    /// record). Unchanged while the same node announces, whatever else
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<MicroTime>,
}

/// One interface a record names (MetalLB's `InterfaceInfo`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct InterfaceInfo {
    /// The interface's name.
    #[schemars(length(max = INTERFACE_MAX_LENGTH), pattern(schema::INTERFACE_PATTERN))]
    pub name: String,
}

/// The labels of the record about `namespace/service` announced by
/// `node`: the node's is left out when the name cannot be a label value.
///
/// ```
/// let labels = ferrolb_crds::service_l2_status::labels("node-a", "shop", "web");
/// assert_eq!(labels["ferrolb.io/node"], "node-a");
/// assert_eq!(labels["ferrolb.io/service-name"], "web");
/// assert_eq!(labels["ferrolb.io/service-namespace"], "shop");
/// ```
pub fn labels(node: &str, namespace: &str, service: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (SERVICE_NAME_LABEL.to_owned(), service.to_owned()),
        (SERVICE_NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
    ]);
    if is_label_value(node) {
        labels.insert(NODE_LABEL.to_owned(), node.to_owned());
    }
    labels
}

/// Whether `value` is a valid label value: at most 63 characters,
/// alphanumerics, `-`, `_` and `.`, beginning and ending with an
/// alphanumeric (or empty).
fn is_label_value(value: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let edge = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    value.len() <= LABEL_VALUE_MAX_LENGTH
        && value.chars().all(ok_char)
        && edge(value.chars().next())
        && edge(value.chars().last())
}

impl ServiceL2Status {
    /// The node the record names, if it has a status.
    pub fn node(&self) -> Option<&str> {
        self.status
            .as_ref()
            .map(|s| s.node.as_str())
            .filter(|n| !n.is_empty())
    }

    /// The interface names the record lists, in order.
    pub fn interface_names(&self) -> Vec<&str> {
        self.status
            .iter()
            .flat_map(|s| &s.interfaces)
            .map(|i| i.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_metallb_field_names() {
        let record: ServiceL2Status = serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "ServiceL2Status",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {},
            "status": {
                "node": "node-a",
                "serviceName": "web",
                "serviceNamespace": "shop",
                "interfaces": [{"name": "eth0"}, {"name": "eth1"}],
            },
        }))
        .expect("a MetalLB-shaped record");
        assert_eq!(record.node(), Some("node-a"));
        assert_eq!(record.interface_names(), ["eth0", "eth1"]);
        let status = record.status.expect("status");
        assert_eq!(status.service_namespace, "shop");
        assert!(status.ips.is_empty());
        assert_eq!(status.last_transition_time, None);
    }

    #[test]
    fn a_record_without_spec_or_status_still_reads() {
        for json in [
            serde_json::json!({"metadata": {"name": "web"}}),
            serde_json::json!({"metadata": {"name": "web"}, "spec": null, "status": {}}),
        ] {
            let record: ServiceL2Status = serde_json::from_value(json).expect("lenient");
            assert_eq!(record.node(), None);
            assert!(record.interface_names().is_empty());
        }
    }

    #[test]
    fn ips_and_an_empty_interface_list_are_always_written() {
        // A merge patch must be able to clear both lists.
        let status = ServiceL2StatusStatus {
            node: "node-a".into(),
            ..Default::default()
        };
        let value = serde_json::to_value(&status).expect("serializable");
        assert_eq!(value["interfaces"], serde_json::json!([]));
        assert_eq!(value["ips"], serde_json::json!([]));
        assert!(value.get("lastTransitionTime").is_none());
    }

    #[test]
    fn a_node_name_that_is_no_label_value_is_left_out_of_the_labels() {
        let long = "n".repeat(64);
        assert!(!labels(&long, "shop", "web").contains_key(NODE_LABEL));
        assert!(labels(&"n".repeat(63), "shop", "web").contains_key(NODE_LABEL));
        assert!(labels("worker-1.example.com", "shop", "web").contains_key(NODE_LABEL));
        assert!(!labels("-bad", "shop", "web").contains_key(NODE_LABEL));
        assert_eq!(labels(&long, "shop", "web").len(), 2);
    }
}
