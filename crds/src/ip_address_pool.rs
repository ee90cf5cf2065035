//! The `IPAddressPool` kind: addresses the controller may assign to
//! LoadBalancer Services.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{self, ADDRESSES_MAX_ITEMS, ADDRESS_MAX_LENGTH};

/// Desired state of an IPAddressPool: the addresses it owns and how the
/// controller may hand them out. Same fields and defaults as MetalLB's
/// metallb.io/v1beta1 IPAddressPool.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy mistakes for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    singular = "ipaddresspool",
    plural = "ipaddresspools",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    category = "ferrolb",
    doc = "A pool of IP addresses that ferrolb may allocate to Services of type LoadBalancer.",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(
        name = "Assigned IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Assigned IPv6",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "Available IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Available IPv6",
        type_ = "integer",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Address ranges the pool owns, all sharing the pool's settings. Each
    /// entry is a CIDR (198.51.100.0/24, 2001:db8::/120; a single address is
    /// /32 or /128) or an inclusive range of two IPs of the same family
    /// (198.51.100.10-198.51.100.20). IPv4 and IPv6 may be mixed.
    #[schemars(
        length(min = 1, max = ADDRESSES_MAX_ITEMS),
        inner(length(min = 1, max = ADDRESS_MAX_LENGTH), pattern(schema::address_pattern())),
        transform = schema::address_items_cel
    )]
    pub addresses: Vec<String>,

    /// Whether the controller may pick addresses from this pool for Services
    /// that did not ask for it by name or IP. Defaults to true.
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Skip addresses ending in .0 and .255 (some old clients and
    /// routers mistake them for network or broadcast addresses). Affects
    /// IPv4 only. Defaults to false.
    #[serde(rename = "avoidBuggyIPs", default)]
    pub avoid_buggy_ips: bool,

    /// Restricts the pool to some namespaces and Services and orders it
    /// against other pools. Absent: any Service may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

impl Default for IPAddressPoolSpec {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Which Services may take addresses from a pool, and how much the pool is
/// preferred. Every condition that is set must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Preference among pools that match a Service: the lowest value wins.
    /// A pool without a priority is used only when no pool with one can
    /// serve the Service; ties are broken by pool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,

    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 63), pattern(schema::NAMESPACE_PATTERN))
    )]
    pub namespaces: Vec<String>,

    /// Label selectors on Namespaces whose Services may use the pool; a
    /// namespace matching any selector qualifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Label selectors on Services that may use the pool; a Service
    /// matching any selector qualifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub service_selectors: Vec<LabelSelector>,
}

/// Observed state of an IPAddressPool, written by the controller.
///
/// Counts use MetalLB's names. An IPv6 pool can hold more addresses than an
/// int64 counts; such counts saturate at 9223372036854775807.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses of the pool currently assigned to Services.
    #[serde(rename = "assignedIPv4", default)]
    #[schemars(range(min = 0))]
    pub assigned_ipv4: i64,

    /// IPv6 addresses of the pool currently assigned to Services.
    #[serde(rename = "assignedIPv6", default)]
    #[schemars(range(min = 0))]
    pub assigned_ipv6: i64,

    /// IPv4 addresses of the pool still free to assign.
    #[serde(rename = "availableIPv4", default)]
    #[schemars(range(min = 0))]
    pub available_ipv4: i64,

    /// IPv6 addresses of the pool still free to assign.
    #[serde(rename = "availableIPv6", default)]
    #[schemars(range(min = 0))]
    pub available_ipv6: i64,

    /// Valid (the addresses parse and overlap no other pool) and
    /// Advertised (an L2Advertisement selects the pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_auto_assign_and_avoid_buggy_ips_take_metallb_defaults() {
        let spec: IPAddressPoolSpec =
            serde_json::from_str(r#"{"addresses":["198.51.100.0/24"]}"#).expect("valid spec");
        assert!(spec.auto_assign);
        assert!(!spec.avoid_buggy_ips);
        assert_eq!(spec.service_allocation, None);
        assert_eq!(
            spec,
            IPAddressPoolSpec {
                addresses: vec!["198.51.100.0/24".into()],
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_spec_without_addresses_does_not_deserialize() {
        let err = serde_json::from_str::<IPAddressPoolSpec>(r#"{"autoAssign":false}"#)
            .expect_err("addresses is required");
        assert!(err.to_string().contains("addresses"), "{err}");
    }

    #[test]
    fn spec_serializes_with_metallb_field_names() {
        let spec = IPAddressPoolSpec {
            addresses: vec!["2001:db8::/120".into()],
            auto_assign: false,
            avoid_buggy_ips: true,
            service_allocation: Some(ServiceAllocation {
                priority: Some(5),
                namespaces: vec!["web".into()],
                ..Default::default()
            }),
        };
        let value = serde_json::to_value(&spec).expect("serializable");
        assert_eq!(
            value,
            serde_json::json!({
                "addresses": ["2001:db8::/120"],
                "autoAssign": false,
                "avoidBuggyIPs": true,
                "serviceAllocation": {"priority": 5, "namespaces": ["web"]},
            })
        );
    }

    #[test]
    fn status_uses_metallb_count_names_and_tolerates_missing_fields() {
        let status: IPAddressPoolStatus =
            serde_json::from_str(r#"{"assignedIPv4":3,"availableIPv6":7}"#).expect("valid status");
        assert_eq!(status.assigned_ipv4, 3);
        assert_eq!(status.assigned_ipv6, 0);
        assert_eq!(status.available_ipv4, 0);
        assert_eq!(status.available_ipv6, 7);
        let value = serde_json::to_value(&status).expect("serializable");
        assert_eq!(
            value,
            serde_json::json!({"assignedIPv4":3,"assignedIPv6":0,"availableIPv4":0,"availableIPv6":7})
        );
    }
}
