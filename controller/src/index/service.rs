//! Reading a Service at the edge: whether it is ours, what it asks for,
//! what its status already says, and the Event texts about it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use ferrolb_core::allocator::{
    self, AllocRequest, AllocationError, Assignment, RequestError, ServiceKey, ServiceParts,
};

/// Event reason (Normal): IPs were assigned. MetalLB's spelling.
pub const REASON_IP_ALLOCATED: &str = "IPAllocated";
/// Event reason (Warning): no IP could be assigned. MetalLB's spelling.
pub const REASON_ALLOCATION_FAILED: &str = "AllocationFailed";
/// Event reason (Warning): a pool change made the current IPs illegal.
/// MetalLB's spelling.
pub const REASON_CLEAR_ASSIGNMENT: &str = "ClearAssignment";

/// The key of a Service.
pub fn key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

pub use ferrolb_crds::service::class_is_ours;

/// Whether the Service is a LoadBalancer.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// What the API server currently holds for the parts we write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `status.loadBalancer.ingress[*].ip` that parse, in order.
    pub ips: Vec<IpAddr>,
    /// Our `ferrolb.io/ip-allocated-from-pool` annotation.
    pub pool: Option<String>,
}

impl Observed {
    /// Reads them from a Service.
    pub fn of(svc: &Service) -> Observed {
        let ips = ferrolb_crds::service::ingress_ips(svc);
        let pool = ferrolb_crds::service::allocated_pool(svc);
        Observed { ips, pool }
    }

    /// Whether the object already shows `desired` (`None`: nothing of ours).
    pub fn shows(&self, desired: Option<&Assignment>) -> bool {
        match desired {
            Some(a) => self.ips == a.ips && self.pool.as_deref() == Some(a.pool.as_str()),
            None => self.ips.is_empty() && self.pool.is_none(),
        }
    }
}

/// The allocator request of a Service in a namespace labelled
/// `namespace_labels`; the error quotes the malformed annotation or field.
pub fn request(
    svc: &Service,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<AllocRequest, RequestError> {
    request_with(svc, svc.annotations(), namespace_labels)
}

/// A request that ignores every annotation except the sharing key: used
/// to keep the IPs a Service already holds when its annotations are
/// malformed, so a typo never costs it its address.
pub fn lenient_request(
    svc: &Service,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<AllocRequest, RequestError> {
    let sharing: BTreeMap<String, String> = svc
        .annotations()
        .iter()
        .filter(|(k, _)| allocator::SHARING_KEY_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    request_with(svc, &sharing, namespace_labels)
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

fn request_with(
    svc: &Service,
    annotations: &BTreeMap<String, String>,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<AllocRequest, RequestError> {
    let spec = svc.spec.as_ref();
    let ports: Vec<(String, u16)> = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.protocol.clone().unwrap_or_default(),
                // The API server refuses ports outside 1..=65535.
                u16::try_from(p.port).unwrap_or(0),
            )
        })
        .collect();
    let families: &[String] = spec
        .and_then(|s| s.ip_families.as_deref())
        .unwrap_or_default();
    AllocRequest::from_service(&ServiceParts {
        annotations,
        load_balancer_ip: spec
            .and_then(|s| s.load_balancer_ip.as_deref())
            .filter(|s| !s.is_empty()),
        ip_families: families,
        ip_family_policy: spec.and_then(|s| s.ip_family_policy.as_deref()),
        ports: &ports,
        external_traffic_policy: spec.and_then(|s| s.external_traffic_policy.as_deref()),
        selector: spec.and_then(|s| s.selector.as_ref()).unwrap_or(&EMPTY),
        labels: svc.metadata.labels.as_ref().unwrap_or(&EMPTY),
        namespace_labels,
    })
}

/// IPs as Go's `%q` prints a `[]net.IP`: `["198.51.100.1" "2001:db8::1"]`.
/// MetalLB's Event texts use that form, and alerts match on it.
pub fn go_quoted(ips: &[IpAddr]) -> String {
    let items: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!("[{}]", items.join(" "))
}

/// `IPAllocated` text: MetalLB's, plus the pool.
pub fn allocated_note(assignment: &Assignment) -> String {
    format!(
        "Assigned IP {} from pool {:?}",
        go_quoted(&assignment.ips),
        assignment.pool
    )
}

/// `AllocationFailed` text, as MetalLB words it.
pub fn failed_note(key: &ServiceKey, err: &allocator::Error) -> String {
    format!("Failed to allocate IP for {:?}: {err}", key.to_string())
}

/// `ClearAssignment` text, as MetalLB words it.
pub fn cleared_note(key: &ServiceKey, err: &AllocationError) -> String {
    format!(
        "current IP for {:?} not allowed by config, will attempt for new IP assignment: {err}",
        key.to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_texts_match_metallb() {
        let a = Assignment {
            pool: "blue".into(),
            ips: vec![
                "198.51.100.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
        };
        assert_eq!(
            allocated_note(&a),
            r#"Assigned IP ["198.51.100.1" "2001:db8::1"] from pool "blue""#
        );
        let key = ServiceKey::new("default", "web");
        let err = AllocationError::UnknownPool {
            pool: "nope".into(),
        };
        assert_eq!(
            failed_note(&key, &err.clone().into()),
            r#"Failed to allocate IP for "default/web": requested IPAddressPool "nope" does not exist"#
        );
        assert!(cleared_note(&key, &err)
            .starts_with(r#"current IP for "default/web" not allowed by config"#));
    }
}
